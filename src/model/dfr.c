#include "model/dfr.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "io/prefetch.h"
#include "io/safetensors.h"
#include "model/pca.h"
#include "ops/ops.h"
#include "util/error.h"
#include "util/rand.h"

#define NORMALISATION "imagenet mean [0.485, 0.456, 0.406] std [0.229, 0.224, 0.225]"

void dfr_train_defaults(dfr_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->epochs = 150;
    o->batch = 4;
    o->lr = 1e-4f;
    o->pca_keep = 0.9;
    o->pca_images = 10;
    o->fpr = 0.005;
}

int dfr_model_load_image(const dfr_model *m, const char *path, dfrcl_image *img, int *orig_w,
                         int *orig_h)
{
    return dfr_image_load_resized(path, m->info.size, img, orig_w, orig_h);
}

/* Scoring buffers for up to `cap` images at once. */
static int ensure_score_buffers(dfr_model *m, int cap)
{
    if (m->cap >= cap) return DFRCL_OK;
    dfr_buffer_release(&m->feat);
    dfr_buffer_release(&m->recon);
    dfr_buffer_release(&m->score_small);
    dfr_buffer_release(&m->score_full);
    m->cap = 0;
    size_t q = (size_t)(m->info.size / 4), P = q * q, S = (size_t)m->info.size;
    size_t per = (size_t)m->info.channels * P;
    int rc = dfr_buffer_new(m->rt, cap * per * sizeof(float), CL_MEM_READ_WRITE, "features", &m->feat);
    if (!rc) rc = dfr_buffer_new(m->rt, cap * per * sizeof(float), CL_MEM_READ_WRITE,
                                 "reconstructions", &m->recon);
    if (!rc) rc = dfr_buffer_new(m->rt, cap * P * sizeof(float), CL_MEM_READ_WRITE, "score maps",
                                 &m->score_small);
    if (!rc) rc = dfr_buffer_new(m->rt, cap * S * S * sizeof(float), CL_MEM_READ_WRITE,
                                 "score maps", &m->score_full);
    if (!rc) m->cap = cap;
    return rc;
}

/* Score maps [batch, S, S] of the features in m->feat (images 0..batch-1) into m->score_full. */
static int score_features(dfr_model *m, int batch)
{
    int q = m->info.size / 4, S = m->info.size;
    int rc = dfr_cae_infer(m->cae, m->feat, 0, batch, m->recon);
    if (!rc) rc = dfr_op_sqerr_mean(m->rt, m->feat, m->recon, batch, m->info.channels, q * q,
                                    m->score_small);
    if (!rc) rc = dfr_op_upsample(m->rt, m->score_small, batch, q, q, m->score_full, S, S);
    return rc;
}

int dfr_model_score(dfr_model *m, const uint8_t *pixels, int channels, float *map, float *score)
{
    int S = m->info.size;
    int rc = ensure_score_buffers(m, 1);
    if (!rc) rc = dfr_vgg19_features(m->vgg, pixels, channels, S, m->feat, 0);
    if (!rc) rc = score_features(m, 1);
    if (!rc) rc = dfr_read(m->rt, m->score_full, 0, (size_t)S * S * sizeof(float), map, "download");
    if (rc) return rc;
    float mx = -INFINITY;
    for (size_t i = 0; i < (size_t)S * S; i++)
        if (map[i] > mx) mx = map[i];
    *score = mx;
    return DFRCL_OK;
}

/* ---- training ---- */

typedef struct feature_store {
    int n;
    size_t per;  /* floats per image */
    cl_mem dev;  /* [n, C, P] when it fits on the device */
    float *host; /* else [n, C, P] on the host */
} feature_store;

static void progress(const dfr_train_opts *o, const char *phase, int done, int total, double loss)
{
    if (o->progress) o->progress(o->user, phase, done, total, loss);
}

static int extract_features(dfr_runtime *rt, dfr_vgg19 *vgg, const char *const *images, int n,
                            int size, const dfr_train_opts *o, feature_store *fs)
{
    int q = size / 4;
    fs->n = n;
    fs->per = (size_t)vgg->channels * q * q;
    size_t bytes = fs->per * n * sizeof(float);
    /* Keep them on the device when one buffer can hold them and they leave room for the CAE. */
    int on_device = bytes <= rt->info.max_alloc_bytes && bytes <= rt->info.global_mem_bytes / 2;
    cl_mem one = NULL;
    int rc;
    if (on_device) {
        rc = dfr_buffer_new(rt, bytes, CL_MEM_READ_WRITE, "the training features", &fs->dev);
        if (rc == DFRCL_ERR_DEVICE_MEMORY) {
            dfr_error_clear();
            on_device = 0;
        } else if (rc) return rc;
    }
    if (!on_device) {
        dfr_log(1, "training features (%.0f MiB) kept in host memory and streamed", bytes / 1048576.0);
        fs->host = malloc(bytes);
        if (!fs->host)
            return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory for %.0f MiB of training features",
                             bytes / 1048576.0);
        rc = dfr_buffer_new(rt, fs->per * sizeof(float), CL_MEM_READ_WRITE, "features", &one);
        if (rc) return rc;
    }
    /* Images are decoded on a worker thread, ahead of the device's work. */
    dfr_prefetch *pf = NULL;
    rc = dfr_prefetch_open(&pf, images, n, size, 2);
    for (int i = 0; i < n && !rc; i++) {
        dfrcl_image img = {0};
        rc = dfr_prefetch_next(pf, &img, NULL, NULL);
        if (rc) break;
        if (on_device) {
            rc = dfr_vgg19_features(vgg, img.pixels, img.channels, size, fs->dev, i);
        } else {
            rc = dfr_vgg19_features(vgg, img.pixels, img.channels, size, one, 0);
            if (!rc) rc = dfr_read(rt, one, 0, fs->per * sizeof(float), fs->host + fs->per * i,
                                   "download");
        }
        dfrcl_image_free(&img);
        if (rc) rc = dfr_error_prefix(rc, "%s", images[i]);
        progress(o, "features", i + 1, n, 0);
    }
    dfr_prefetch_close(&pf);
    if (!rc) rc = dfr_finish(rt);
    dfr_buffer_release(&one);
    return rc;
}

/* Copies image `src` of the store into slot `dst` of a device batch buffer. */
static int stage_image(dfr_runtime *rt, const feature_store *fs, int src, cl_mem batch, int dst)
{
    size_t b = fs->per * sizeof(float);
    if (fs->dev) {
        cl_int err = clEnqueueCopyBuffer(rt->queue, fs->dev, batch, b * src, b * dst, b, 0, NULL, NULL);
        return dfr_cl_error(err, "copying training features");
    }
    return dfr_write(rt, batch, b * dst, b, fs->host + fs->per * src, "upload");
}

static int cmp_float_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The score above which a fraction `fpr` of the training pixels lies. */
static double threshold_from_scores(float *s, size_t n, double fpr)
{
    qsort(s, n, sizeof *s, cmp_float_desc);
    size_t k = (size_t)floor(fpr * (double)n);
    if (k >= n) k = n - 1;
    return s[k];
}

int dfr_train(dfr_model **out, dfr_runtime *rt, dfr_vgg19 *vgg, const char *const *images, int n,
              int size, const dfr_train_opts *o)
{
    *out = NULL;
    if (n < 1) return dfr_error(DFRCL_ERR_INVALID_ARG, "no training images");
    if (o->epochs < 1 || o->batch < 1 || !(o->lr > 0) || !(o->fpr > 0 && o->fpr < 1))
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "bad training options (epochs %d, batch %d, lr %g, fpr %g)", o->epochs,
                         o->batch, o->lr, o->fpr);
    if (o->latent > vgg->channels)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "--latent %d is larger than the feature's %d channels", o->latent,
                         vgg->channels);
    if (o->latent < 0)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "latent size %d: 0 (by PCA) or a size", o->latent);
    if (o->latent == 0 && !(o->pca_keep > 0 && o->pca_keep <= 1 && o->pca_images >= 1))
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "bad PCA options (keep %g must be in (0, 1], images %d at least 1)",
                         o->pca_keep, o->pca_images);
    if (size > DFR_MODEL_MAX_SIZE)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "image size %d: a model holds at most %d", size,
                         DFR_MODEL_MAX_SIZE);
    int rc = dfr_vgg19_check_size(vgg, size);
    if (rc) return rc;
    dfr_model *m = calloc(1, sizeof *m);
    if (!m) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    m->rt = rt;
    m->vgg = vgg;
    dfr_model_info *info = &m->info;
    info->layers = vgg->layers;
    info->size = size;
    info->channels = vgg->channels;
    info->epochs = o->epochs;
    info->batch = o->batch;
    info->lr = o->lr;
    info->fpr = o->fpr;
    info->seed = o->seed;
    info->train_images = n;
    snprintf(info->backbone_sha256, sizeof info->backbone_sha256, "%s", vgg->identity);
    snprintf(info->backbone_desc, sizeof info->backbone_desc, "%s", vgg->desc);

    feature_store fs = {0};
    cl_mem batch = NULL;
    float *scores = NULL;
    int q = size / 4, P = q * q, bmax = o->batch < n ? o->batch : n;
    rc = extract_features(rt, vgg, images, n, size, o, &fs);

    /* Latent size: PCA of the first pca_images images, unless given. */
    if (!rc && o->latent > 0) info->latent = o->latent;
    else if (!rc) {
        int np = o->pca_images < n ? o->pca_images : n;
        cl_mem src = fs.dev, tmp = NULL;
        if (!src) {
            rc = dfr_buffer_new(rt, fs.per * np * sizeof(float), CL_MEM_READ_ONLY, "PCA features", &tmp);
            if (!rc) rc = dfr_write(rt, tmp, 0, fs.per * np * sizeof(float), fs.host, "upload");
            src = tmp;
        }
        double kept = 0;
        if (!rc) rc = dfr_pca_latent(rt, src, np, info->channels, P, o->pca_keep, &info->latent, &kept);
        dfr_buffer_release(&tmp);
        if (!rc)
            dfr_log(1, "PCA on %d image(s): latent size %d keeps %.1f%% of the variance", np,
                    info->latent, 100 * kept);
    }
    if (!rc) rc = dfr_cae_new(&m->cae, rt, info->channels, info->latent, bmax, P, o->seed);
    if (!rc) rc = dfr_buffer_new(rt, fs.per * bmax * sizeof(float), CL_MEM_READ_WRITE,
                                 "a training batch", &batch);
    if (rc == DFRCL_ERR_DEVICE_MEMORY) {
        /* A rough need: activations and their gradients for the batch, plus the weights with
         * their gradients and Adam's two moments. */
        double C = info->channels, d = info->latent, h = (C + 2 * d) / 2;
        double acts = 4.0 * bmax * P * (2 * C + 2 * h + 3 * d) * 2;
        double weights = 4.0 * 4 * (2 * C * h + 4 * h * d + 4 * d * d);
        rc = dfr_error_prefix(rc,
                              "training C=%d, latent %d, batch %d needs about %.0f MiB on the "
                              "device besides the features (%.0f MiB); try --batch %d or a "
                              "smaller --size",
                              info->channels, info->latent, bmax, (acts + weights) / 1048576.0,
                              fs.per * (double)n * 4 / 1048576.0, bmax > 1 ? bmax / 2 : 1);
    }

    int *perm = rc ? NULL : malloc((size_t)n * sizeof *perm);
    if (!rc && !perm) rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    for (int ep = 0; ep < o->epochs && !rc; ep++) {
        /* Seeded shuffle (Fisher-Yates) for each epoch. */
        for (int i = 0; i < n; i++) perm[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = (int)(dfr_rand_u32(o->seed * 7919u + 17u, (uint32_t)(ep * n + i)) % (uint32_t)(i + 1));
            int t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (int b0 = 0; b0 < n && !rc; b0 += o->batch) {
            int bs = n - b0 < o->batch ? n - b0 : o->batch;
            if (bs * P < 2) continue; /* BatchNorm needs two values per channel */
            for (int j = 0; j < bs && !rc; j++) rc = stage_image(rt, &fs, perm[b0 + j], batch, j);
            if (!rc) rc = dfr_cae_train_step(m->cae, batch, 0, bs, o->lr, NULL);
        }
        double loss = 0;
        if (!rc) rc = dfr_cae_epoch_loss(m->cae, &loss, NULL);
        if (!rc) {
            info->final_loss = loss;
            progress(o, "train", ep + 1, o->epochs, loss);
        }
    }

    /* Threshold: the pixel score exceeded by a fraction fpr of the training pixels. */
    size_t SS = (size_t)size * size;
    if (!rc) rc = ensure_score_buffers(m, bmax);
    if (!rc && !(scores = malloc(SS * n * sizeof(float))))
        rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    for (int b0 = 0; b0 < n && !rc; b0 += bmax) {
        int bs = n - b0 < bmax ? n - b0 : bmax;
        for (int j = 0; j < bs && !rc; j++) rc = stage_image(rt, &fs, b0 + j, m->feat, j);
        if (!rc) rc = score_features(m, bs);
        if (!rc) rc = dfr_read(rt, m->score_full, 0, SS * bs * sizeof(float), scores + SS * b0, "download");
        progress(o, "threshold", b0 + bs, n, 0);
    }
    if (!rc) {
        info->threshold = threshold_from_scores(scores, SS * n, o->fpr);
        dfr_log(1, "threshold %.6g (pixel false-positive rate %g on the training images)",
                info->threshold, o->fpr);
    }
    free(scores);
    free(perm);
    dfr_buffer_release(&batch);
    dfr_buffer_release(&fs.dev);
    free(fs.host);
    if (rc) {
        dfr_model_free(&m);
        return rc;
    }
    *out = m;
    return DFRCL_OK;
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
    if (!rc) rc = dfr_st_writer_new(&w);
    for (int i = 0; i < DFR_CAE_NUM_TENSORS && !rc; i++)
        rc = dfr_st_writer_add_f32(w, t[i].name, t[i].ndim, t[i].shape, data[i]);
    const dfr_model_info *in = &m->info;
    char v[64];
#define META_INT(key, val)                                                                     \
    if (!rc) {                                                                                 \
        snprintf(v, sizeof v, "%lld", (long long)(val));                                       \
        rc = dfr_st_writer_meta(w, key, v);                                                    \
    }
#define META_DBL(key, val)                                                                     \
    if (!rc) {                                                                                 \
        snprintf(v, sizeof v, "%.9g", (double)(val));                                          \
        rc = dfr_st_writer_meta(w, key, v);                                                    \
    }
    if (!rc) rc = dfr_st_writer_meta(w, "format", DFR_MODEL_FORMAT);
    META_INT("format_version", DFR_MODEL_VERSION)
    if (!rc) rc = dfr_st_writer_meta(w, "dfrcl_version", DFRCL_VERSION);
    META_INT("layers", in->layers)
    snprintf(v, sizeof v, "relu1_1..%s", dfr_vgg19_layer_name(in->layers - 1));
    if (!rc) rc = dfr_st_writer_meta(w, "layer_names", v);
    META_INT("size", in->size)
    META_INT("channels", in->channels)
    META_INT("latent", in->latent)
    META_DBL("threshold", in->threshold)
    META_DBL("fpr", in->fpr)
    META_INT("epochs", in->epochs)
    META_INT("batch", in->batch)
    META_DBL("lr", in->lr)
    META_INT("seed", in->seed)
    META_INT("train_images", in->train_images)
    META_DBL("final_loss", in->final_loss)
    META_INT("num_batches_tracked", dfr_cae_steps(m->cae))
    if (!rc) rc = dfr_st_writer_meta(w, "normalisation", NORMALISATION);
    if (!rc) rc = dfr_st_writer_meta(w, "backbone_sha256", in->backbone_sha256);
    if (!rc) rc = dfr_st_writer_meta(w, "backbone", in->backbone_desc);
#undef META_INT
#undef META_DBL
    if (!rc) rc = dfr_st_writer_write(w, path);
    dfr_st_writer_free(&w);
    for (int i = 0; i < DFR_CAE_NUM_TENSORS; i++) free(data[i]);
    return rc;
}

static int meta_long(dfr_safetensors *st, const char *path, const char *key, long lo, long hi,
                     long *out)
{
    const char *s = dfr_st_metadata(st, key);
    char *end = NULL;
    if (!s) return dfr_error(DFRCL_ERR_FORMAT, "%s: model metadata lacks '%s'", path, key);
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: model metadata '%s' = '%s' is not an integer in %ld..%ld",
                         path, key, s, lo, hi);
    *out = v;
    return DFRCL_OK;
}

static int meta_double(dfr_safetensors *st, const char *path, const char *key, double *out)
{
    const char *s = dfr_st_metadata(st, key);
    char *end = NULL;
    if (!s) return dfr_error(DFRCL_ERR_FORMAT, "%s: model metadata lacks '%s'", path, key);
    double v = strtod(s, &end);
    if (!*s || *end || !isfinite(v))
        return dfr_error(DFRCL_ERR_FORMAT, "%s: model metadata '%s' = '%s' is not a number", path, key, s);
    *out = v;
    return DFRCL_OK;
}

static int read_info(dfr_safetensors *st, const char *path, dfr_model_info *in)
{
    memset(in, 0, sizeof *in);
    const char *fmt = dfr_st_metadata(st, "format");
    if (!fmt || strcmp(fmt, DFR_MODEL_FORMAT) != 0)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: not a dfrcl model (metadata format is %s%s%s)", path,
                         fmt ? "'" : "", fmt ? fmt : "missing", fmt ? "'" : "");
    long v;
    int rc = meta_long(st, path, "format_version", 1, 1000000, &v);
    if (rc) return rc;
    if (v != DFR_MODEL_VERSION)
        return dfr_error(DFRCL_ERR_MISMATCH,
                         "%s: model format version %ld, but this dfrcl (%s) reads version %d; "
                         "retrain the model or use a matching dfrcl",
                         path, v, DFRCL_VERSION, DFR_MODEL_VERSION);
    long layers = 0, size = 0, channels = 0, latent = 0;
    if (!rc) rc = meta_long(st, path, "layers", 1, DFR_VGG19_LAYERS, &layers);
    if (!rc) rc = meta_long(st, path, "size", 4, DFR_MODEL_MAX_SIZE, &size);
    if (!rc) rc = meta_long(st, path, "channels", 1, 1 << 20, &channels);
    if (!rc) rc = meta_long(st, path, "latent", 1, 1 << 20, &latent);
    if (!rc) rc = meta_double(st, path, "threshold", &in->threshold);
    if (!rc) rc = meta_double(st, path, "fpr", &in->fpr);
    in->layers = (int)layers;
    in->size = (int)size;
    in->channels = (int)channels;
    in->latent = (int)latent;
    if (rc) return rc;
    if (meta_long(st, path, "epochs", 0, 1 << 30, &v) == 0) in->epochs = (int)v;
    if (meta_long(st, path, "seed", 0, 0xffffffffL, &v) == 0) in->seed = (uint32_t)v;
    if (meta_long(st, path, "train_images", 0, 1 << 30, &v) == 0) in->train_images = (int)v;
    if (meta_long(st, path, "batch", 0, 1 << 30, &v) == 0) in->batch = (int)v;
    double d = 0;
    if (meta_double(st, path, "lr", &d) == 0) in->lr = d;
    if (meta_double(st, path, "final_loss", &d) == 0) in->final_loss = d;
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

int dfr_model_peek(const char *path, dfr_model_info *info)
{
    dfr_safetensors *st = NULL;
    int rc = dfr_st_open(&st, path);
    if (!rc) rc = read_info(st, path, info);
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
    rc = read_info(st, path, &m->info);
    if (!rc && (vgg->layers != m->info.layers || strcmp(vgg->identity, m->info.backbone_sha256) != 0))
        rc = dfr_error(DFRCL_ERR_MISMATCH,
                       "%s: the model was trained with another backbone (%d layers, %s, sha256 "
                       "%.16s...) than the one given (%d layers, sha256 %.16s...); give the same "
                       "--weights (and --layers) as for training",
                       path, m->info.layers, m->info.backbone_desc, m->info.backbone_sha256,
                       vgg->layers, vgg->identity);
    int q = m->info.size / 4;
    if (!rc) rc = dfr_cae_new(&m->cae, rt, m->info.channels, m->info.latent, 4, q * q, 0);
    for (int i = 0; i < DFR_CAE_NUM_TENSORS && !rc; i++) {
        dfr_cae_tensor t;
        rc = dfr_cae_tensor_info(m->cae, i, &t);
        float *buf = rc ? NULL : malloc(t.numel * sizeof(float));
        if (!rc && !buf) rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
        if (!rc) rc = dfr_st_read_f32(st, t.name, t.ndim, t.shape, buf, t.numel);
        if (!rc) rc = dfr_cae_set_tensor(m->cae, t.name, buf, t.numel);
        free(buf);
    }
    dfr_st_close(&st);
    if (rc) {
        dfr_model_free(&m);
        return rc;
    }
    *out = m;
    return DFRCL_OK;
}
