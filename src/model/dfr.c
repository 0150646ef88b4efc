#include "model/dfr.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "io/prefetch.h"
#include "io/safetensors.h"
#include "model/pca.h"
#include "ops/ops.h"
#include "util/error.h"
#include "util/finite.h"
#include "util/hash.h"
#include "util/rand.h"

#define NORMALISATION "imagenet mean [0.485, 0.456, 0.406] std [0.229, 0.224, 0.225]"

int dfr_model_load_image(const dfr_model *m, const char *path, dfrcl_image *img, int *orig_w,
                         int *orig_h)
{
    return dfr_image_load_resized(path, m->info.size, img, orig_w, orig_h);
}

/* Scoring buffers for up to `cap` images at once; features and reconstructions in the runtime's
 * activation precision (remade when fp32 follows fp16). */
int dfr_model_score_buffers(dfr_model *m, int cap)
{
    size_t q = (size_t)(m->info.size / 4), P = q * q, S = (size_t)m->info.size;
    size_t per = (size_t)m->info.channels * P, eb = dfr_act_bytes(m->rt), have = 0;
    if (m->feat && clGetMemObjectInfo(m->feat, CL_MEM_SIZE, sizeof have, &have, NULL) != CL_SUCCESS)
        have = 0;
    if (m->cap >= cap && have >= (size_t)m->cap * per * eb) return DFRCL_OK;
    dfr_buffer_release(&m->feat);
    dfr_buffer_release(&m->recon);
    dfr_buffer_release(&m->score_small);
    dfr_buffer_release(&m->score_full);
    if (m->cap > cap) cap = m->cap;
    m->cap = 0;
    int rc = dfr_buffer_new(m->rt, cap * per * eb, CL_MEM_READ_WRITE, "features", &m->feat);
    if (!rc) rc = dfr_buffer_new(m->rt, cap * per * eb, CL_MEM_READ_WRITE, "reconstructions",
                                 &m->recon);
    if (!rc) rc = dfr_buffer_new(m->rt, cap * P * sizeof(float), CL_MEM_READ_WRITE, "score maps",
                                 &m->score_small);
    if (!rc) rc = dfr_buffer_new(m->rt, cap * S * S * sizeof(float), CL_MEM_READ_WRITE,
                                 "score maps", &m->score_full);
    if (!rc) m->cap = cap;
    return rc;
}

/* Score maps [batch, S, S] of the features in m->feat (images 0..batch-1) into out. */
int dfr_model_score_features_into(dfr_model *m, int batch, cl_mem out)
{
    int q = m->info.size / 4, S = m->info.size;
    int rc = dfr_cae_infer(m->cae, m->feat, 0, batch, m->recon);
    if (!rc) rc = dfr_op_sqerr_mean(m->rt, m->feat, m->recon, batch, m->info.channels, q * q,
                                    m->score_small);
    if (!rc) rc = dfr_op_upsample(m->rt, m->score_small, batch, q, q, out, S, S);
    return rc;
}

int dfr_model_score_features(dfr_model *m, int batch)
{
    return dfr_model_score_features_into(m, batch, m->score_full);
}

int dfr_model_reserve_batch(dfr_model *m, int batch)
{
    int have = m->cae_batch > 0 ? m->cae_batch : 1;
    if (batch > have) {
        if (!m->cae_resizable)
            return dfr_error(DFRCL_ERR_INVALID_ARG, "this model's autoencoder scores batches of at "
                             "most %d images, not %d", have, batch);
        int q = m->info.size / 4;
        dfr_cae *bigger = NULL;
        int rc = dfr_cae_new_scorer(&bigger, m->rt, m->info.channels, m->info.latent, batch, q * q);
        if (!rc) rc = dfr_cae_copy_weights(bigger, m->cae);
        if (rc) {
            dfr_cae_free(&bigger);
            return rc;
        }
        dfr_cae_free(&m->cae);
        m->cae = bigger;
        m->cae_batch = batch;
    }
    return dfr_model_score_buffers(m, batch);
}

int dfr_model_auto_batch(const dfr_model *m, int cap)
{
    const dfrcl_device_info *d = &m->rt->info;
    double S = m->info.size, P = (S / 4) * (S / 4), C = m->info.channels;
    double cae1 = dfr_cae_device_bytes((int)C, m->info.latent, P, 0);
    double cae_per = dfr_cae_device_bytes((int)C, m->info.latent, 2 * P, 0) - cae1;
    double per = 2 * C * P * 4 + P * 4 + 3 * S * S * 4 + 2 * S * S * 3 + cae_per;
    double budget = 0.25 * (double)d->global_mem_bytes - (cae1 - cae_per);
    int b = cap > 0 ? cap : 1;
    while (b > 1 && (b * per > budget ||
                     (d->max_alloc_bytes && b * C * P * 4 > (double)d->max_alloc_bytes)))
        b--;
    return b;
}

int dfr_model_score(dfr_model *m, const uint8_t *pixels, int channels, float *map, float *score)
{
    int S = m->info.size;
    int rc = dfr_model_score_buffers(m, 1);
    if (!rc) rc = dfr_vgg19_features(m->vgg, pixels, channels, S, m->feat, 0);
    if (!rc) rc = dfr_model_score_features(m, 1);
    if (!rc) rc = dfr_read(m->rt, m->score_full, 0, (size_t)S * S * sizeof(float), map, "download");
    if (rc) return rc;
    float mx = -INFINITY;
    for (size_t i = 0; i < (size_t)S * S; i++)
        if (map[i] > mx) mx = map[i];
    *score = mx;
    return DFRCL_OK;
}

int dfr_model_untrained(dfr_model **out, dfr_runtime *rt, dfr_vgg19 *vgg, int size, int latent)
{
    *out = NULL;
    int rc = dfr_vgg19_check_size(vgg, size);
    if (rc) return rc;
    dfr_model *m = calloc(1, sizeof *m);
    if (!m) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    m->rt = rt;
    m->vgg = vgg;
    m->info.layers = vgg->layers;
    m->info.size = size;
    m->info.channels = vgg->channels;
    m->info.latent = latent;
    snprintf(m->info.backbone_sha256, sizeof m->info.backbone_sha256, "%s", vgg->identity);
    snprintf(m->info.backbone_desc, sizeof m->info.backbone_desc, "%s", vgg->desc);
    m->cae_batch = 1;
    m->cae_resizable = 1;
    rc = dfr_cae_new_scorer(&m->cae, rt, vgg->channels, latent, 1, (size / 4) * (size / 4));
    if (rc) {
        dfr_model_free(&m);
        return rc;
    }
    *out = m;
    return DFRCL_OK;
}

void dfr_model_free_buffers(dfr_model *m)
{
    dfr_buffer_release(&m->feat);
    dfr_buffer_release(&m->recon);
    dfr_buffer_release(&m->score_small);
    dfr_buffer_release(&m->score_full);
    m->cap = 0;
}

void dfr_model_free(dfr_model **pm)
{
    dfr_model *m = *pm;
    if (!m) return;
    dfr_cae_free(&m->cae);
    dfr_buffer_release(&m->feat);
    dfr_buffer_release(&m->recon);
    dfr_buffer_release(&m->score_small);
    dfr_buffer_release(&m->score_full);
    free(m);
    *pm = NULL;
}

/* ---- model file ---- */

/* The metadata keys the content checksum covers: those that decide scoring and must agree with
 * the tensors (the threshold holds only at the size, layers and backbone it was set with). The
 * training record (epochs, lr, ...) is informative and left out. */
static const char *const checked_keys[] = {"format",  "format_version", "layers",
                                           "size",    "channels",       "latent",
                                           "threshold", "fpr",          "normalisation",
                                           "backbone_sha256"};
#define N_CHECKED (int)(sizeof checked_keys / sizeof *checked_keys)
#define CHECKSUM_KEY "content_sha256"

static void hash_tensor(dfr_sha256 *h, const dfr_cae_tensor *t, const float *data)
{
    char shape[96];
    int used = 0;
    for (int d = 0; d < t->ndim && used < (int)sizeof shape - 24; d++)
        used += snprintf(shape + used, sizeof shape - used, "%lld,", (long long)t->shape[d]);
    shape[used] = 0;
    dfr_sha256_update_str(h, t->name);
    dfr_sha256_update_str(h, shape);
    dfr_sha256_update(h, data, t->numel * sizeof(float));
}

/* The model's metadata, as the strings the file holds. */
typedef struct meta_list {
    int n;
    const char *key[32];
    char val[32][272];
} meta_list;

static void meta_add(meta_list *l, const char *key, const char *fmt, ...) DFR_PRINTF(3, 4);
static void meta_add(meta_list *l, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    l->key[l->n] = key;
    vsnprintf(l->val[l->n], sizeof l->val[0], fmt, ap);
    va_end(ap);
    l->n++;
}

static const char *meta_get(const meta_list *l, const char *key)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->key[i], key)) return l->val[i];
    return NULL;
}

void dfr_model_set_threshold(dfr_model *m, double threshold)
{
    m->threshold = threshold;
    /* Pixel scores are floats: the threshold is one of them, and the file's 9 digits restore it
     * exactly as a float (not as the double they print). */
    m->info.threshold = (float)threshold;
}

static void model_meta(const dfr_model *m, meta_list *l)
{
    const dfr_model_info *in = &m->info;
    l->n = 0;
    meta_add(l, "format", "%s", DFR_MODEL_FORMAT);
    meta_add(l, "format_version", "%d", DFR_MODEL_VERSION);
    meta_add(l, "dfrcl_version", "%s", DFRCL_VERSION);
    meta_add(l, "layers", "%d", in->layers);
    meta_add(l, "layer_names", "relu1_1..%s", dfr_vgg19_layer_name(in->layers - 1));
    meta_add(l, "size", "%d", in->size);
    meta_add(l, "channels", "%d", in->channels);
    meta_add(l, "latent", "%d", in->latent);
    meta_add(l, "threshold", "%.9g", m->threshold);
    meta_add(l, "fpr", "%.9g", in->fpr);
    meta_add(l, "epochs", "%d", in->epochs);
    meta_add(l, "batch", "%d", in->batch);
    meta_add(l, "lr", "%.9g", (double)in->lr);
    meta_add(l, "seed", "%u", (unsigned)in->seed);
    meta_add(l, "train_images", "%d", in->train_images);
    meta_add(l, "final_loss", "%.9g", in->final_loss);
    meta_add(l, "num_batches_tracked", "%lld", (long long)in->steps);
    meta_add(l, "recipe", "%s", dfr_recipe_name(in->recipe));
    meta_add(l, "positions", "%d", in->positions);
    meta_add(l, "normalisation", "%s", NORMALISATION);
    meta_add(l, "backbone_sha256", "%s", in->backbone_sha256);
    meta_add(l, "backbone", "%s", in->backbone_desc);
}

/* A model with a non-finite value loads nowhere and scores nothing: refuse to write one. */
static int check_finite(const dfr_model *m, const dfr_cae_tensor *t, float *const *data,
                        const char *path)
{
    static const char *const advice = "training diverged: try a lower learning rate (lr), and "
                                      "check the backbone weights and images";
    const dfr_model_info *in = &m->info;
    const struct { const char *what; double v; } vals[] = {
        {"the threshold", m->threshold}, {"the false-positive rate", in->fpr},
        {"the learning rate", in->lr}, {"the final loss", in->final_loss}};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++)
        if (!isfinite(vals[i].v))
            return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: not writing a model with non-finite "
                             "values: %s is %g (%s)", path, vals[i].what, vals[i].v, advice);
    for (int i = 0; i < DFR_CAE_NUM_TENSORS; i++) {
        size_t j = dfr_first_nonfinite(data[i], t[i].numel);
        if (j < t[i].numel)
            return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: not writing a model with non-finite "
                             "values: tensor %s, element %zu is %g (%s)", path, t[i].name, j,
                             (double)data[i][j], advice);
    }
    return DFRCL_OK;
}

int dfr_model_save(dfr_model *m, const char *path)
{
    float *data[DFR_CAE_NUM_TENSORS] = {0};
    dfr_cae_tensor t[DFR_CAE_NUM_TENSORS];
    dfr_st_writer *w = NULL;
    int rc = DFRCL_OK;
    for (int i = 0; i < DFR_CAE_NUM_TENSORS && !rc; i++) {
        rc = dfr_cae_tensor_info(m->cae, i, &t[i]);
        if (!rc && !(data[i] = malloc(t[i].numel * sizeof(float))))
            rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    }
    if (!rc) rc = dfr_cae_get_tensors(m->cae, data);
    if (!rc) rc = check_finite(m, t, data, path);
    if (!rc) rc = dfr_st_writer_new(&w);
    for (int i = 0; i < DFR_CAE_NUM_TENSORS && !rc; i++)
        rc = dfr_st_writer_add_f32(w, t[i].name, t[i].ndim, t[i].shape, data[i]);
    meta_list meta;
    model_meta(m, &meta);
    for (int i = 0; i < meta.n && !rc; i++) rc = dfr_st_writer_meta(w, meta.key[i], meta.val[i]);
    /* The checksum ties the metadata that scoring relies on to the tensors. */
    dfr_sha256 h;
    dfr_sha256_init(&h);
    for (int i = 0; i < N_CHECKED; i++) {
        dfr_sha256_update_str(&h, checked_keys[i]);
        dfr_sha256_update_str(&h, meta_get(&meta, checked_keys[i]));
    }
    for (int i = 0; i < DFR_CAE_NUM_TENSORS && !rc; i++) hash_tensor(&h, &t[i], data[i]);
    char hex[65];
    dfr_sha256_hex(&h, hex);
    if (!rc) rc = dfr_st_writer_meta(w, CHECKSUM_KEY, hex);
    if (!rc) rc = dfr_st_writer_write(w, path);
    dfr_st_writer_free(&w);
    for (int i = 0; i < DFR_CAE_NUM_TENSORS; i++) free(data[i]);
    return rc;
}

static int read_info(dfr_safetensors *st, const char *path, dfr_model_info *in, double *threshold)
{
    memset(in, 0, sizeof *in);
    *threshold = 0;
    const char *fmt = dfr_st_metadata(st, "format");
    if (!fmt || strcmp(fmt, DFR_MODEL_FORMAT) != 0)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: not a dfrcl model (metadata format is %s%s%s)", path,
                         fmt ? "'" : "", fmt ? fmt : "missing", fmt ? "'" : "");
    long v;
    int rc = dfr_st_meta_long(st, path, "format_version", 1, 1000000, &v);
    if (rc) return rc;
    if (v != DFR_MODEL_VERSION)
        return dfr_error(DFRCL_ERR_MISMATCH,
                         "%s: model format version %ld, but this dfrcl (%s) reads version %d; "
                         "retrain the model or use a matching dfrcl",
                         path, v, DFRCL_VERSION, DFR_MODEL_VERSION);
    long layers = 0, size = 0, channels = 0, latent = 0;
    if (!rc) rc = dfr_st_meta_long(st, path, "layers", 1, DFR_VGG19_LAYERS, &layers);
    if (!rc) rc = dfr_st_meta_long(st, path, "size", 4, DFR_MODEL_MAX_SIZE, &size);
    if (!rc) rc = dfr_st_meta_long(st, path, "channels", 1, 1 << 20, &channels);
    if (!rc) rc = dfr_st_meta_long(st, path, "latent", 1, 1 << 20, &latent);
    if (!rc) rc = dfr_st_meta_double(st, path, "threshold", threshold);
    /* Pixel scores are floats: a threshold beyond a float's range would pass nothing or all. */
    if (!rc && !isfinite((float)*threshold))
        rc = dfr_error(DFRCL_ERR_FORMAT, "%s: metadata threshold %g is beyond a float's range",
                       path, *threshold);
    in->threshold = (float)*threshold;
    if (!rc) rc = dfr_st_meta_double(st, path, "fpr", &in->fpr);
    in->layers = (int)layers;
    in->size = (int)size;
    in->channels = (int)channels;
    in->latent = (int)latent;
    if (rc) return rc;
    if (dfr_st_meta_long(st, path, "epochs", 0, 1 << 30, &v) == 0) in->epochs = (int)v;
    if (dfr_st_meta_long(st, path, "seed", 0, 0xffffffffL, &v) == 0) in->seed = (uint32_t)v;
    if (dfr_st_meta_long(st, path, "train_images", 0, 1 << 30, &v) == 0) in->train_images = (int)v;
    if (dfr_st_meta_long(st, path, "batch", 0, 1 << 30, &v) == 0) in->batch = (int)v;
    double d = 0;
    if (dfr_st_meta_double(st, path, "lr", &d) == 0) in->lr = (float)d;
    if (dfr_st_meta_double(st, path, "final_loss", &d) == 0) in->final_loss = d;
    if (dfr_st_meta_long(st, path, "num_batches_tracked", 0, LONG_MAX, &v) == 0) in->steps = v;
    if (dfr_st_meta_long(st, path, "positions", 0, 1 << 30, &v) == 0) in->positions = (int)v;
    const char *recipe = dfr_st_metadata(st, "recipe");
    in->recipe = recipe && !strcmp(recipe, "fast") ? DFR_RECIPE_FAST : DFR_RECIPE_PUBLISHED;
    dfr_error_clear(); /* the training record is informative: a missing field stays 0 */
    if (in->size % 4 || in->latent > in->channels || in->channels != dfr_vgg19_channels(in->layers))
        return dfr_error(DFRCL_ERR_FORMAT,
                         "%s: inconsistent model metadata (layers %d, channels %d, latent %d, size %d)",
                         path, in->layers, in->channels, in->latent, in->size);
    const char *sha = dfr_st_metadata(st, "backbone_sha256");
    const char *desc = dfr_st_metadata(st, "backbone");
    if (!sha || strlen(sha) != 64)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: model metadata lacks the backbone's identity", path);
    snprintf(in->backbone_sha256, sizeof in->backbone_sha256, "%s", sha);
    snprintf(in->backbone_desc, sizeof in->backbone_desc, "%s", desc ? desc : "unknown");
    return DFRCL_OK;
}

/* Compares the checksum of what was read with the one training stored. Models written before
 * dfrcl stored one are taken as they are, with a note. */
static int check_content(const dfr_runtime *rt, dfr_safetensors *st, const char *path,
                         dfr_sha256 *h)
{
    const char *want = dfr_st_metadata(st, CHECKSUM_KEY);
    if (!want) {
        dfr_rt_log(rt, 1, "%s: an older model without a content checksum: its metadata (size, "
                          "threshold, ...) cannot be verified", path);
        return DFRCL_OK;
    }
    char got[65];
    dfr_sha256_hex(h, got);
    if (strcmp(got, want) != 0)
        return dfr_error(DFRCL_ERR_FORMAT,
                         "%s: the model's metadata or tensors do not match its checksum "
                         "(%s): the file was edited or damaged. Its size, layers, latent, "
                         "threshold and tensors must stay as training wrote them (the threshold "
                         "holds only at the size it was set at); retrain, or restore the file",
                         path, CHECKSUM_KEY);
    return DFRCL_OK;
}

int dfr_model_peek(const char *path, dfr_model_info *info)
{
    dfr_safetensors *st = NULL;
    int rc = dfr_st_open(&st, path);
    double threshold;
    if (!rc) rc = read_info(st, path, info, &threshold);
    dfr_st_close(&st);
    return rc;
}

int dfr_model_load(dfr_model **out, dfr_runtime *rt, dfr_vgg19 *vgg, const char *path)
{
    *out = NULL;
    dfr_safetensors *st = NULL;
    int rc = dfr_st_open(&st, path);
    if (rc) return rc;
    dfr_model *m = calloc(1, sizeof *m);
    if (!m) {
        dfr_st_close(&st);
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    }
    m->rt = rt;
    m->vgg = vgg;
    rc = read_info(st, path, &m->info, &m->threshold);
    if (!rc && (vgg->layers != m->info.layers || strcmp(vgg->identity, m->info.backbone_sha256) != 0))
        rc = dfr_error(DFRCL_ERR_MISMATCH,
                       "%s: the model was trained with another backbone (%d layers, %s, sha256 "
                       "%.16s...) than the one given (%d layers, sha256 %.16s...); open the "
                       "backbone it was trained with: the same weights file (weights) and layers "
                       "(layers)",
                       path, m->info.layers, m->info.backbone_desc, m->info.backbone_sha256,
                       vgg->layers, vgg->identity);
    if (!rc && (rc = dfr_vgg19_check_size(vgg, m->info.size)))
        rc = dfr_error_prefix(rc, "%s: metadata 'size'", path);
    int q = m->info.size / 4;
    dfr_sha256 h;
    dfr_sha256_init(&h);
    for (int i = 0; i < N_CHECKED; i++) {
        const char *v = dfr_st_metadata(st, checked_keys[i]);
        dfr_sha256_update_str(&h, checked_keys[i]);
        dfr_sha256_update_str(&h, v ? v : "");
    }
    if (!rc) rc = dfr_cae_new_scorer(&m->cae, rt, m->info.channels, m->info.latent, 1, q * q);
    for (int i = 0; i < DFR_CAE_NUM_TENSORS && !rc; i++) {
        dfr_cae_tensor t;
        rc = dfr_cae_tensor_info(m->cae, i, &t);
        float *buf = rc ? NULL : malloc(t.numel * sizeof(float));
        if (!rc && !buf) rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
        if (!rc) rc = dfr_st_read_f32(st, t.name, t.ndim, t.shape, buf, t.numel);
        if (!rc) {
            hash_tensor(&h, &t, buf);
            rc = dfr_cae_set_tensor(m->cae, t.name, buf, t.numel);
            if (rc) rc = dfr_error_prefix(rc, "%s", path);
        }
        free(buf);
    }
    if (!rc) rc = check_content(rt, st, path, &h);
    m->cae_batch = 1;
    m->cae_resizable = 1;
    dfr_st_close(&st);
    if (rc) {
        dfr_model_free(&m);
        return rc;
    }
    *out = m;
    return DFRCL_OK;
}
