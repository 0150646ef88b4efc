#include "model/vgg19.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "util/error.h"
#include "util/finite.h"
#include "util/half.h"
#include "util/hash.h"
#include "util/rand.h"

static const int torch_index[DFR_VGG19_LAYERS] = {0,  2,  5,  7,  10, 12, 14, 16,
                                                  19, 21, 23, 25, 28, 30, 32, 34};
static const int layer_cout[DFR_VGG19_LAYERS] = {64,  64,  128, 128, 256, 256, 256, 256,
                                                 512, 512, 512, 512, 512, 512, 512, 512};
static const int layer_block[DFR_VGG19_LAYERS] = {0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4};
static const char *const layer_names[DFR_VGG19_LAYERS] = {
    "relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2", "relu3_3", "relu3_4",
    "relu4_1", "relu4_2", "relu4_3", "relu4_4", "relu5_1", "relu5_2", "relu5_3", "relu5_4"};

int dfr_vgg19_torch_index(int l) { return torch_index[l]; }
int dfr_vgg19_layer_channels(int l) { return layer_cout[l]; }
int dfr_vgg19_layer_block(int l) { return layer_block[l]; }
const char *dfr_vgg19_layer_name(int l)
{
    return l >= 0 && l < DFR_VGG19_LAYERS ? layer_names[l] : "?";
}

int dfr_vgg19_channels(int layers)
{
    int c = 0;
    for (int i = 0; i < layers && i < DFR_VGG19_LAYERS; i++) c += layer_cout[i];
    return c;
}

static int layer_cin(int l) { return l == 0 ? 3 : layer_cout[l - 1]; }

static int check_layers(int layers)
{
    if (layers < 1 || layers > DFR_VGG19_LAYERS)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "layers must be 1..%d (relu1_1..relu5_4), not %d",
                         DFR_VGG19_LAYERS, layers);
    return DFRCL_OK;
}

static void hash_tensor(dfr_sha256 *h, const char *name, int cout, int cin, const float *w,
                        const float *b)
{
    char shape[64];
    snprintf(shape, sizeof shape, "%d,%d,3,3", cout, cin);
    dfr_sha256_update_str(h, name);
    dfr_sha256_update_str(h, shape);
    dfr_sha256_update(h, w, (size_t)cout * cin * 9 * sizeof(float));
    dfr_sha256_update(h, b, (size_t)cout * sizeof(float));
}

int dfr_vgg19_from_arrays(dfr_vgg19 **out, dfr_runtime *rt, int layers, const float *const *w,
                          const float *const *b)
{
    *out = NULL;
    int rc = check_layers(layers);
    if (rc) return rc;
    dfr_vgg19 *v = calloc(1, sizeof *v);
    if (!v) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    v->rt = rt;
    v->layers = layers;
    v->channels = dfr_vgg19_channels(layers);
    dfr_sha256 h;
    dfr_sha256_init(&h);
    for (int i = 0; i < layers; i++) {
        char name[64];
        snprintf(name, sizeof name, "features.%d", torch_index[i]);
        hash_tensor(&h, name, layer_cout[i], layer_cin(i), w[i], b[i]);
        rc = dfr_conv_upload(rt, w[i], b[i], layer_cin(i), layer_cout[i], &v->conv[i]);
        if (rc) {
            dfr_vgg19_free(&v);
            return dfr_error_prefix(rc, "uploading %s", layer_names[i]);
        }
    }
    dfr_sha256_hex(&h, v->identity);
    snprintf(v->desc, sizeof v->desc, "arrays"); /* the loaders below say where they came from */
    *out = v;
    return DFRCL_OK;
}

/* Non-finite weights make every feature NaN, and everything trained on them: refuse them here. */
static int check_finite(const char *path, const char *name, const float *x, size_t n)
{
    size_t i = dfr_first_nonfinite(x, n);
    if (i < n)
        return dfr_error(DFRCL_ERR_FORMAT,
                         "%s: tensor %s: element %zu is %g: the weights file is damaged "
                         "(non-finite values); use an intact copy",
                         path, name, i, (double)x[i]);
    return DFRCL_OK;
}

/* "features.0, features.2, ..." of the conv weights a file has, for error messages. */
static void list_layers(dfr_safetensors *st, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < DFR_VGG19_LAYERS; i++) {
        char name[64];
        snprintf(name, sizeof name, "features.%d.weight", torch_index[i]);
        if (!dfr_st_find(st, name)) continue;
        int w = snprintf(buf + used, n - used, "%s%s (features.%d)", used ? ", " : "",
                         layer_names[i], torch_index[i]);
        if (w < 0 || (size_t)w >= n - used) break;
        used += (size_t)w;
    }
    if (!used) snprintf(buf, n, "none");
}

int dfr_vgg19_load(dfr_vgg19 **out, dfr_runtime *rt, const char *path, int layers)
{
    *out = NULL;
    int rc = check_layers(layers);
    if (rc) return rc;
    dfr_safetensors *st = NULL;
    rc = dfr_st_open(&st, path);
    if (rc) return rc;
    float *w[DFR_VGG19_LAYERS] = {0}, *b[DFR_VGG19_LAYERS] = {0};
    for (int i = 0; i < layers && !rc; i++) {
        char wn[64], bn[64];
        snprintf(wn, sizeof wn, "features.%d.weight", torch_index[i]);
        snprintf(bn, sizeof bn, "features.%d.bias", torch_index[i]);
        if (!dfr_st_find(st, wn) || !dfr_st_find(st, bn)) {
            char have[1024];
            list_layers(st, have, sizeof have);
            rc = dfr_error(DFRCL_ERR_FORMAT,
                           "%s: has no %s (%s, %s) but %d layer(s) were asked for; the file has: "
                           "%s. Ask for at most the layers it has (layers), or give a full VGG19 "
                           "file",
                           path, layer_names[i], wn, bn, layers, have);
            break;
        }
        int64_t ws[4] = {layer_cout[i], layer_cin(i), 3, 3}, bs[1] = {layer_cout[i]};
        size_t wc = (size_t)layer_cout[i] * layer_cin(i) * 9;
        w[i] = malloc(wc * sizeof(float));
        b[i] = malloc((size_t)layer_cout[i] * sizeof(float));
        if (!w[i] || !b[i]) {
            rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory loading %s", path);
            break;
        }
        rc = dfr_st_read_f32(st, wn, 4, ws, w[i], wc);
        if (!rc) rc = dfr_st_read_f32(st, bn, 1, bs, b[i], (size_t)layer_cout[i]);
        if (!rc) rc = check_finite(path, wn, w[i], wc);
        if (!rc) rc = check_finite(path, bn, b[i], (size_t)layer_cout[i]);
    }
    dfr_st_close(&st);
    if (!rc) rc = dfr_vgg19_from_arrays(out, rt, layers, (const float *const *)w,
                                        (const float *const *)b);
    if (!rc) {
        const char *slash = strrchr(path, '/');
        snprintf((*out)->desc, sizeof (*out)->desc, "file %s", slash ? slash + 1 : path);
    }
    for (int i = 0; i < DFR_VGG19_LAYERS; i++) {
        free(w[i]);
        free(b[i]);
    }
    return rc;
}

void dfr_vgg19_free(dfr_vgg19 **pv)
{
    dfr_vgg19 *v = *pv;
    if (!v) return;
    for (int i = 0; i < DFR_VGG19_LAYERS; i++) dfr_conv_release(&v->conv[i]);
    dfr_buffer_release(&v->img_u8);
    dfr_buffer_release(&v->act[0]);
    dfr_buffer_release(&v->act[1]);
    free(v);
    *pv = NULL;
}

/* Bytes of buffer m (0 if none). */
static size_t buffer_bytes(cl_mem m)
{
    size_t b = 0;
    if (!m || clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof b, &b, NULL) != CL_SUCCESS) return 0;
    return b;
}

/* Work buffers for size x size images in the runtime's activation precision (remade when the
 * size changes or fp32 follows fp16). */
static int ensure_buffers(dfr_vgg19 *v, int size)
{
    /* The largest map: 64 channels at full size (block 0); later blocks are smaller. */
    size_t biggest = 0;
    for (int i = 0; i < v->layers; i++) {
        size_t s = (size_t)size >> layer_block[i];
        size_t n = (size_t)layer_cout[i] * s * s;
        if (n > biggest) biggest = n;
    }
    size_t in3 = (size_t)3 * size * size;
    if (in3 > biggest) biggest = in3;
    biggest *= dfr_act_bytes(v->rt);
    if (v->buf_size == size && buffer_bytes(v->act[0]) >= biggest) return DFRCL_OK;
    dfr_buffer_release(&v->img_u8);
    dfr_buffer_release(&v->act[0]);
    dfr_buffer_release(&v->act[1]);
    v->buf_size = 0;
    int rc = dfr_buffer_new(v->rt, (size_t)size * size * 3, CL_MEM_READ_ONLY, "the input image",
                            &v->img_u8);
    if (!rc) rc = dfr_buffer_new(v->rt, biggest, CL_MEM_READ_WRITE, "backbone activations",
                                 &v->act[0]);
    if (!rc) rc = dfr_buffer_new(v->rt, biggest, CL_MEM_READ_WRITE, "backbone activations",
                                 &v->act[1]);
    if (rc) return rc;
    v->buf_size = size;
    return DFRCL_OK;
}

int dfr_vgg19_check_size(const dfr_vgg19 *v, int size)
{
    int last_block = layer_block[v->layers - 1];
    int multiple = 4 > (1 << last_block) ? 4 : 1 << last_block;
    int smallest = 4 > (2 << last_block) ? 4 : 2 << last_block;
    if (size < smallest || size % multiple != 0)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "image size %d does not fit %d layers: it must be a multiple of %d and "
                         "at least %d",
                         size, v->layers, multiple, smallest);
    return DFRCL_OK;
}

/* Reads n activations as floats (widening fp16 ones). */
static int read_act(dfr_runtime *rt, cl_mem src, size_t n, float *dst)
{
    if (!rt->half) return dfr_read(rt, src, 0, n * sizeof(float), dst, "debug download");
    uint16_t *h = malloc(n * sizeof *h);
    if (!h) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    int rc = dfr_read(rt, src, 0, n * sizeof *h, h, "debug download");
    for (size_t i = 0; !rc && i < n; i++) dst[i] = dfr_half_to_float(h[i]);
    free(h);
    return rc;
}

/* The image comes from host `pixels`, or when NULL from device buffer dev_px at dev_off. */
static int features(dfr_vgg19 *v, const uint8_t *pixels, cl_mem dev_px, size_t dev_off,
                    int channels, int size, cl_mem feat, int image_index, float **keep)
{
    int rc = dfr_vgg19_check_size(v, size);
    if (rc) return rc;
    if (channels != 1 && channels != 3)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "image has %d channels (1 or 3 expected)", channels);
    rc = ensure_buffers(v, size);
    if (rc) return rc;
    if (pixels) rc = dfr_write(v->rt, v->img_u8, 0, (size_t)size * size * channels, pixels, "upload");
    else rc = dfr_copy(v->rt, dev_px, dev_off, v->img_u8, 0, (size_t)size * size * channels,
                       "an image of a batch");
    if (!rc) rc = dfr_op_preprocess(v->rt, v->img_u8, size, size, channels, v->act[0]);
    int cur = 0, h = size, c_off = image_index * v->channels;
    for (int i = 0; i < v->layers && !rc; i++) {
        if (i > 0 && layer_block[i] != layer_block[i - 1]) {
            rc = dfr_op_maxpool2(v->rt, v->act[cur], v->act[cur ^ 1], layer_cout[i - 1], h, h);
            cur ^= 1;
            h /= 2;
            if (rc) break;
        }
        v->rt->prof_tag = layer_names[i];
        rc = dfr_op_conv3x3_relu(v->rt, &v->conv[i], v->act[cur], v->act[cur ^ 1], h, h);
        cur ^= 1;
        if (!rc) rc = dfr_op_regional(v->rt, v->act[cur], layer_cout[i], h, h, size, feat, c_off,
                                      (image_index + 1) * v->channels);
        if (!rc && keep && keep[i])
            rc = read_act(v->rt, v->act[cur], (size_t)layer_cout[i] * h * h, keep[i]);
        c_off += layer_cout[i];
    }
    v->rt->prof_tag = NULL;
    return rc;
}

int dfr_vgg19_features_debug(dfr_vgg19 *v, const uint8_t *pixels, int channels, int size,
                             cl_mem feat, int image_index, float **keep)
{
    return features(v, pixels, NULL, 0, channels, size, feat, image_index, keep);
}

int dfr_vgg19_features_dev(dfr_vgg19 *v, cl_mem pixels, size_t offset, int channels, int size,
                           cl_mem feat, int image_index)
{
    if (!pixels) return dfr_error(DFRCL_ERR_INVALID_ARG, "backbone: no pixel buffer");
    return features(v, NULL, pixels, offset, channels, size, feat, image_index, NULL);
}

int dfr_vgg19_features(dfr_vgg19 *v, const uint8_t *pixels, int channels, int size, cl_mem feat,
                       int image_index)
{
    return dfr_vgg19_features_debug(v, pixels, channels, size, feat, image_index, NULL);
}

int dfr_vgg19_random(dfr_vgg19 **out, dfr_runtime *rt, int layers, uint32_t seed)
{
    *out = NULL;
    int rc = check_layers(layers);
    if (rc) return rc;
    float *w[DFR_VGG19_LAYERS] = {0}, *b[DFR_VGG19_LAYERS] = {0};
    for (int i = 0; i < layers && !rc; i++) {
        int cin = layer_cin(i), cout = layer_cout[i], n = torch_index[i];
        size_t wc = (size_t)cout * cin * 9;
        w[i] = malloc(wc * sizeof(float));
        b[i] = malloc((size_t)cout * sizeof(float));
        if (!w[i] || !b[i]) {
            rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
            break;
        }
        /* Kaiming-uniform bound keeps activations of similar magnitude through the layers. */
        float a = sqrtf(6.0f / (float)(cin * 9));
        uint32_t s = seed * 100000u;
        for (size_t j = 0; j < wc; j++) w[i][j] = dfr_rand_uniform(s + (uint32_t)n, (uint32_t)j, -a, a);
        for (int j = 0; j < cout; j++)
            b[i][j] = dfr_rand_uniform(s + 1000u + (uint32_t)n, (uint32_t)j, -0.05f, 0.05f);
    }
    if (!rc) rc = dfr_vgg19_from_arrays(out, rt, layers, (const float *const *)w,
                                        (const float *const *)b);
    if (!rc) snprintf((*out)->desc, sizeof (*out)->desc, "random seed %u", (unsigned)seed);
    for (int i = 0; i < DFR_VGG19_LAYERS; i++) {
        free(w[i]);
        free(b[i]);
    }
    return rc;
}

int dfr_vgg19_file_layers(const char *path, int *layers)
{
    *layers = 0;
    dfr_safetensors *st = NULL;
    int rc = dfr_st_open(&st, path);
    if (rc) return rc;
    int n = 0;
    for (; n < DFR_VGG19_LAYERS; n++) {
        char wn[64], bn[64];
        snprintf(wn, sizeof wn, "features.%d.weight", torch_index[n]);
        snprintf(bn, sizeof bn, "features.%d.bias", torch_index[n]);
        if (!dfr_st_find(st, wn) || !dfr_st_find(st, bn)) break;
    }
    dfr_st_close(&st);
    if (n == 0)
        return dfr_error(DFRCL_ERR_FORMAT,
                         "%s: no VGG19 convolution weights (features.0.weight, features.0.bias); "
                         "is it a torchvision/timm VGG19 file?",
                         path);
    *layers = n;
    return DFRCL_OK;
}
