/* The public API (include/dfrcl.h) over the internal runtime and model. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_internal.h"
#include "cl/runtime.h"
#include "io/image.h"
#include "model/dfr.h"
#include "model/vgg19.h"
#include "sched/scorer.h"
#include "util/error.h"

#define CHECK_ARG DFRCL_CHECK_ARG
#define RESERVED_ZERO DFRCL_RESERVED_ZERO
#define RESERVED_ADVICE DFRCL_RESERVED_ADVICE
#define RESERVED_ARGS DFRCL_RESERVED_ARGS

/* A caller-filled struct's reserved space must be zero: anything else is an uninitialised struct
 * or a field from a newer dfrcl.h that this library would silently ignore. */
int dfr_api_reserved_zero(const uint64_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (r[i]) return 0;
    return 1;
}

unsigned dfrcl_version_api(void) { return DFRCL_API_VERSION; }

void dfrcl_free(void *ptr) { free(ptr); }

int dfrcl_list_devices(dfrcl_device_info **out, int *count)
{
    if (out) *out = NULL;
    if (count) *count = 0;
    CHECK_ARG(out, "dfrcl_list_devices: out is NULL");
    CHECK_ARG(count, "dfrcl_list_devices: count is NULL");
    return dfr_list_devices(out, count, NULL, NULL);
}

void dfrcl_default_settings(dfrcl_settings *s)
{
    if (!s) return;
    memset(s, 0, sizeof *s);
    s->verbosity = 1;
}

/* Storage precision of inference activations: automatic is fp16 on GPUs (its accuracy cost on
 * the shared test sets was below 0.0002; memory and traffic halve) and fp32 on CPUs, where
 * PoCL's half conversions made the convolutions 3.4x slower. */
static void apply_precision(dfr_runtime *rt, int precision)
{
    rt->half = precision == 0 ? rt->info.is_gpu : precision == 16;
}

/* One runtime per device the selector list names, each logging through the settings. */
static int open_lanes(dfrcl_context *c, const dfrcl_settings *s)
{
    int *idx = NULL, n = 0;
    int rc = dfr_device_select(s->device, &idx, &n);
    if (rc) return rc;
    int k = n < DFRCL_MAX_DEVICES ? n : DFRCL_MAX_DEVICES;
    for (int i = 0; i < k && !rc; i++) {
        char sel[16];
        snprintf(sel, sizeof sel, "%d", idx[i]);
        dfr_runtime_opts ro = {.selector = sel, .cache_dir = s->cache_dir,
                               .verbosity = s->verbosity > 2 ? 2 : s->verbosity,
                               .log = s->log, .log_user = s->log_user};
        rc = dfr_runtime_open_opts(&c->rt[i], &ro);
        if (!rc) {
            apply_precision(c->rt[i], s->precision);
            c->k = i + 1;
        }
    }
    if (!rc && n > k)
        dfr_rt_log(c->rt[0], 1, "warning: using the first %d of the %d devices listed", k, n);
    free(idx);
    return rc;
}

int dfrcl_open(dfrcl_context **out, const dfrcl_settings *s)
{
    CHECK_ARG(out, "dfrcl_open: ctx is NULL");
    *out = NULL;
    dfrcl_settings def;
    if (!s) {
        dfrcl_default_settings(&def);
        s = &def;
    }
    CHECK_ARG(RESERVED_ZERO(s), "dfrcl_open: s->reserved is not zero: " RESERVED_ADVICE,
              RESERVED_ARGS("dfrcl_default_settings"));
    CHECK_ARG(s->verbosity >= 0, "dfrcl_open: s->verbosity is %d (0 quiet, 1 info, 2 debug)",
              s->verbosity);
    CHECK_ARG(s->precision == 0 || s->precision == 16 || s->precision == 32,
              "dfrcl_open: s->precision is %d (0 automatic, 16 fp16, 32 fp32)", s->precision);
    dfrcl_context *c = calloc(1, sizeof *c);
    if (!c) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    int rc = open_lanes(c, s);
    if (rc) {
        dfrcl_close(&c);
        return rc;
    }
    *out = c;
    return DFRCL_OK;
}

void dfrcl_close(dfrcl_context **pc)
{
    if (!pc || !*pc) return;
    for (int i = 0; i < (*pc)->k; i++) dfr_runtime_close(&(*pc)->rt[i]);
    free(*pc);
    *pc = NULL;
}

const dfrcl_device_info *dfrcl_context_device(const dfrcl_context *c)
{
    if (!c) {
        dfr_error(DFRCL_ERR_INVALID_ARG, "dfrcl_context_device: ctx is NULL");
        return NULL;
    }
    return &c->rt[0]->info;
}

int dfrcl_context_device_count(const dfrcl_context *c)
{
    CHECK_ARG(c, "dfrcl_context_device_count: ctx is NULL");
    return c->k;
}

const dfrcl_device_info *dfrcl_context_device_at(const dfrcl_context *c, int i)
{
    if (!c) {
        dfr_error(DFRCL_ERR_INVALID_ARG, "dfrcl_context_device_at: ctx is NULL");
        return NULL;
    }
    if (i < 0 || i >= c->k) {
        dfr_error(DFRCL_ERR_INVALID_ARG, "dfrcl_context_device_at: i is %d, not 0..%d", i,
                  c->k - 1);
        return NULL;
    }
    return &c->rt[i]->info;
}

const char *dfrcl_layer_name(int layer)
{
    if (layer < 0 || layer >= DFRCL_VGG19_MAX_LAYERS) {
        dfr_error(DFRCL_ERR_INVALID_ARG, "dfrcl_layer_name: layer %d is not 0..%d", layer,
                  DFRCL_VGG19_MAX_LAYERS - 1);
        return NULL;
    }
    return dfr_vgg19_layer_name(layer);
}

/* Loads (path != NULL) or makes a random backbone (path == NULL), on every lane. */
static int backbone_open(dfrcl_backbone **out, dfrcl_context *ctx, const char *path, int layers,
                         uint32_t seed)
{
    const char *fn = path ? "dfrcl_backbone_load" : "dfrcl_backbone_random";
    CHECK_ARG(out, "%s: bb is NULL", fn);
    *out = NULL;
    CHECK_ARG(ctx, "%s: ctx is NULL", fn);
    CHECK_ARG((layers >= 1 || (path && layers == 0)) && layers <= DFRCL_VGG19_MAX_LAYERS,
              "%s: layers is %d, not %s..%d (relu1_1..relu5_4)", fn, layers, path ? "0" : "1",
              DFRCL_VGG19_MAX_LAYERS);
    int rc = DFRCL_OK;
    if (!layers) { /* all the file holds, at most relu4_4 as published */
        rc = dfr_vgg19_file_layers(path, &layers);
        if (rc) return rc;
        if (layers > 12) layers = 12;
    }
    dfrcl_backbone *bb = calloc(1, sizeof *bb);
    if (!bb) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    bb->ctx = ctx;
    for (int i = 0; i < ctx->k && !rc; i++) {
        if (path) rc = dfr_vgg19_load(&bb->vgg[i], ctx->rt[i], path, layers);
        else rc = dfr_vgg19_random(&bb->vgg[i], ctx->rt[i], layers, seed);
    }
    if (rc) {
        dfrcl_backbone_close(&bb);
        return rc;
    }
    *out = bb;
    return DFRCL_OK;
}

int dfrcl_backbone_load(dfrcl_backbone **bb, dfrcl_context *ctx, const char *path, int layers)
{
    if (bb) *bb = NULL;
    CHECK_ARG(path && *path, "dfrcl_backbone_load: no path (path is NULL or empty)");
    return backbone_open(bb, ctx, path, layers, 0);
}

int dfrcl_backbone_random(dfrcl_backbone **out, dfrcl_context *ctx, int layers, uint32_t seed)
{
    return backbone_open(out, ctx, NULL, layers, seed);
}

void dfrcl_backbone_close(dfrcl_backbone **pb)
{
    if (!pb || !*pb) return;
    dfrcl_backbone *bb = *pb;
    dfr_buffer_release(&bb->feat);
    for (int i = 0; i < DFRCL_MAX_DEVICES; i++) dfr_vgg19_free(&bb->vgg[i]);
    free(bb);
    *pb = NULL;
}

int dfrcl_backbone_channels(const dfrcl_backbone *bb)
{
    CHECK_ARG(bb, "dfrcl_backbone_channels: bb is NULL");
    return bb->vgg[0]->channels;
}

int dfrcl_backbone_layers(const dfrcl_backbone *bb)
{
    CHECK_ARG(bb, "dfrcl_backbone_layers: bb is NULL");
    return bb->vgg[0]->layers;
}

/* size fits the model file's limit and the backbone's pooling (a multiple of 4, 8 or 16). */
static int check_size(const dfrcl_backbone *bb, int size, const char *fn)
{
    CHECK_ARG(size >= 1 && size <= DFR_MODEL_MAX_SIZE, "%s: size is %d, not 1..%d", fn, size,
              DFR_MODEL_MAX_SIZE);
    int rc = dfr_vgg19_check_size(bb->vgg[0], size);
    return rc ? dfr_error_prefix(rc, "%s: size", fn) : DFRCL_OK;
}

int dfrcl_features(dfrcl_backbone *bb, const dfrcl_image *img, int size, float *out)
{
    CHECK_ARG(bb, "dfrcl_features: bb is NULL");
    CHECK_ARG(out, "dfrcl_features: out is NULL");
    int rc = check_size(bb, size, "dfrcl_features");
    if (!rc) rc = dfr_image_check(img, "dfrcl_features: img");
    if (rc) return rc;
    CHECK_ARG(img->width == size && img->height == size,
              "dfrcl_features: img is %dx%d, not size x size = %dx%d (resize it first)",
              img->width, img->height, size, size);
    size_t n = (size_t)bb->vgg[0]->channels * (size / 4) * (size / 4);
    if (bb->feat_size != size) {
        dfr_buffer_release(&bb->feat);
        bb->feat_size = 0;
        rc = dfr_buffer_new(bb->ctx->rt[0], n * sizeof(float), CL_MEM_READ_WRITE,
                                "the regional feature", &bb->feat);
        if (rc) return rc;
        bb->feat_size = size;
    }
    rc = dfr_vgg19_features(bb->vgg[0], img->pixels, img->channels, size, bb->feat, 0);
    if (!rc) rc = dfr_read(bb->ctx->rt[0], bb->feat, 0, n * sizeof(float), out, "download");
    return rc;
}

/* ---- DFR model ---- */

/* dfrcl_default_train_options: in src/model/train.c, beside the recipes it defaults to. */

/* What only the API has (reserved space, on_eval); the trainer checks each option's range
 * (dfr_train). */
static int check_train_options(const dfrcl_train_options *o)
{
    CHECK_ARG(RESERVED_ZERO(o), "dfrcl_model_train: o->reserved is not zero: " RESERVED_ADVICE,
              RESERVED_ARGS("dfrcl_default_train_options"));
    CHECK_ARG(!o->eval_every || o->on_eval,
              "dfrcl_model_train: o->eval_every is %d but o->on_eval is NULL", o->eval_every);
    return DFRCL_OK;
}

/* on_eval gets the trainer's model as a public one for the call (lane 0 only, borrowed). */
typedef struct train_eval {
    const dfrcl_train_options *o;
    dfrcl_backbone *bb;
} train_eval;

static int train_on_eval(void *user, int epoch, double seconds, dfr_model *dm)
{
    train_eval *te = user;
    dfrcl_model m = {.bb = te->bb, .k = 1, .borrowed = 1};
    m.m[0] = dm;
    return te->o->on_eval(te->o->user, epoch, seconds, &m);
}

/* A new public model holding *pm (taken) as lane 0's. */
static dfrcl_model *model_wrap(dfrcl_backbone *bb, dfr_model **pm)
{
    dfrcl_model *m = calloc(1, sizeof *m);
    if (!m) {
        dfr_model_free(pm);
        dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
        return NULL;
    }
    m->bb = bb;
    m->m[0] = *pm;
    m->k = 1;
    *pm = NULL;
    return m;
}

/* Gives the other lanes of a multi-device context lane 0's model (trained there): through a
 * temporary model file, so each lane loads exactly what dfrcl_model_load would. */
static int model_spread(dfrcl_model *m)
{
    dfrcl_context *ctx = m->bb->ctx;
    if (ctx->k < 2) return DFRCL_OK;
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/dfrcl-model-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return dfr_error(DFRCL_ERR_IO, "%s: cannot create a temporary model file to copy the "
                         "model to the context's other devices: %s", path, strerror(errno));
    close(fd);
    int rc = dfr_model_save(m->m[0], path);
    for (int i = 1; i < ctx->k && !rc; i++)
        rc = dfr_model_load(&m->m[i], ctx->rt[i], m->bb->vgg[i], path);
    if (!rc) m->k = ctx->k;
    remove(path);
    return rc;
}

int dfrcl_model_train(dfrcl_model **out, dfrcl_backbone *bb, const char *const *image_paths,
                      int n, int size, const dfrcl_train_options *o)
{
    CHECK_ARG(out, "dfrcl_model_train: m is NULL");
    *out = NULL;
    CHECK_ARG(bb, "dfrcl_model_train: bb is NULL");
    CHECK_ARG(n >= 1, "dfrcl_model_train: no training images (n = %d)", n);
    CHECK_ARG(image_paths, "dfrcl_model_train: image_paths is NULL");
    for (int i = 0; i < n; i++)
        CHECK_ARG(image_paths[i], "dfrcl_model_train: image_paths[%d] is NULL", i);
    int rc = check_size(bb, size, "dfrcl_model_train");
    if (rc) return rc;
    dfrcl_train_options def;
    if (!o) {
        dfrcl_default_train_options(&def);
        o = &def;
    }
    rc = check_train_options(o);
    if (rc) return rc;
    train_eval te = {o, bb};
    dfr_train_hooks h = {.on_eval = o->on_eval ? train_on_eval : NULL, .user = &te};
    dfr_model *dm = NULL;
    rc = dfr_train(&dm, bb->ctx->rt[0], bb->vgg[0], image_paths, n, size, o, &h);
    if (rc) return rc;
    dfrcl_model *m = model_wrap(bb, &dm);
    if (!m) return DFRCL_ERR_HOST_MEMORY;
    rc = model_spread(m);
    if (rc) {
        dfrcl_model_close(&m);
        return rc;
    }
    *out = m;
    return DFRCL_OK;
}

int dfrcl_model_save(dfrcl_model *m, const char *path)
{
    CHECK_ARG(m, "dfrcl_model_save: m is NULL");
    CHECK_ARG(path && *path, "dfrcl_model_save: no path");
    return dfr_model_save(m->m[0], path);
}

int dfrcl_model_load(dfrcl_model **out, dfrcl_backbone *bb, const char *path)
{
    CHECK_ARG(out, "dfrcl_model_load: m is NULL");
    *out = NULL;
    CHECK_ARG(bb, "dfrcl_model_load: bb is NULL");
    CHECK_ARG(path && *path, "dfrcl_model_load: no path");
    dfrcl_model *m = calloc(1, sizeof *m);
    if (!m) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    m->bb = bb;
    int rc = DFRCL_OK;
    for (int i = 0; i < bb->ctx->k && !rc; i++)
        rc = dfr_model_load(&m->m[i], bb->ctx->rt[i], bb->vgg[i], path);
    m->k = bb->ctx->k;
    if (rc) {
        dfrcl_model_close(&m);
        return rc;
    }
    *out = m;
    return DFRCL_OK;
}

int dfrcl_model_peek(dfrcl_model_info *info, const char *path)
{
    CHECK_ARG(info, "dfrcl_model_peek: info is NULL");
    CHECK_ARG(path && *path, "dfrcl_model_peek: no path");
    return dfr_model_peek(path, info);
}

int dfrcl_model_get_info(const dfrcl_model *m, dfrcl_model_info *info)
{
    CHECK_ARG(m, "dfrcl_model_get_info: m is NULL");
    CHECK_ARG(info, "dfrcl_model_get_info: info is NULL");
    *info = m->m[0]->info;
    return DFRCL_OK;
}

void dfrcl_model_close(dfrcl_model **pm)
{
    if (!pm || !*pm) return;
    dfrcl_model *m = *pm;
    for (int i = m->borrowed ? 1 : 0; i < DFRCL_MAX_DEVICES; i++) dfr_model_free(&m->m[i]);
    free(m);
    *pm = NULL;
}

int dfrcl_model_score(dfrcl_model *m, const dfrcl_image *img, float *map, float *score)
{
    CHECK_ARG(m, "dfrcl_model_score: m is NULL");
    CHECK_ARG(map, "dfrcl_model_score: map is NULL");
    int rc = dfr_image_check(img, "dfrcl_model_score: img");
    if (rc) return rc;
    int S = m->m[0]->info.size;
    CHECK_ARG(img->width == S && img->height == S,
              "dfrcl_model_score: img is %dx%d but the model scores %dx%d images (resize it "
              "first: dfrcl_image_resize, or use dfrcl_model_score_file)",
              img->width, img->height, S, S);
    /* channels: checked by the backbone (1 or 3) */
    float s;
    rc = dfr_model_score(m->m[0], img->pixels, img->channels, map, &s);
    if (!rc && score) *score = s;
    return rc;
}

int dfrcl_model_score_file(dfrcl_model *m, const char *path, float *map, float *score)
{
    CHECK_ARG(m, "dfrcl_model_score_file: m is NULL");
    CHECK_ARG(path && *path, "dfrcl_model_score_file: no path");
    CHECK_ARG(map, "dfrcl_model_score_file: map is NULL");
    dfrcl_image img = {0};
    int rc = dfr_model_load_image(m->m[0], path, &img, NULL, NULL);
    if (!rc) {
        rc = dfrcl_model_score(m, &img, map, score);
        if (rc) rc = dfr_error_prefix(rc, "%s", path);
    }
    dfrcl_image_free(&img);
    return rc;
}

/* dfrcl_model_score_batch on several lanes: the scheduler's results into the caller's arrays. */
typedef struct batch_run {
    float *maps, *scores;
    size_t np;
} batch_run;
static int batch_run_result(void *u, const dfr_sched_result *r);
static int scorer_open(dfrcl_model *m, const dfrcl_score_options *o, dfr_scorer **out);

int dfrcl_model_score_batch(dfrcl_model *m, const dfrcl_image *imgs, int n, int batch, float *maps,
                            float *scores)
{
    CHECK_ARG(m, "dfrcl_model_score_batch: m is NULL");
    CHECK_ARG(n >= 0, "dfrcl_model_score_batch: n is %d", n);
    CHECK_ARG(n == 0 || imgs, "dfrcl_model_score_batch: imgs is NULL (n = %d)", n);
    CHECK_ARG(n == 0 || maps, "dfrcl_model_score_batch: maps is NULL");
    CHECK_ARG(batch >= 0 && batch <= DFR_SCHED_MAX_BATCH,
              "dfrcl_model_score_batch: batch %d (0 = automatic, at most %d)", batch,
              DFR_SCHED_MAX_BATCH);
    int S = m->m[0]->info.size;
    for (int i = 0; i < n; i++) {
        int rc = dfr_image_check(&imgs[i], "dfrcl_model_score_batch: imgs");
        if (rc) return dfr_error_prefix(rc, "image %d", i);
        CHECK_ARG(imgs[i].width == S && imgs[i].height == S && (imgs[i].channels == 1 ||
                  imgs[i].channels == 3),
                  "dfrcl_model_score_batch: image %d is %dx%d with %d channel(s) but the model "
                  "scores %dx%d images with 1 or 3 (resize it first: dfrcl_image_resize)", i,
                  imgs[i].width, imgs[i].height, imgs[i].channels, S, S);
    }
    if (m->k < 2) return dfr_sched_score_images(m->m[0], imgs, n, batch, maps, scores);
    if (n == 0) return DFRCL_OK;
    dfrcl_score_options o;
    dfrcl_default_score_options(&o);
    o.batch = batch;
    dfr_scorer *s = NULL;
    int rc = scorer_open(m, &o, &s);
    if (rc) return rc;
    batch_run br = {maps, scores, (size_t)S * S};
    rc = dfr_scorer_run_images(s, imgs, n, batch_run_result, &br, NULL);
    dfr_scorer_close(&s);
    return rc;
}

/* ---- 1.1: scoring many images on every lane ---- */

void dfrcl_default_score_options(dfrcl_score_options *o)
{
    if (o) memset(o, 0, sizeof *o);
}

int dfr_api_check_score_options(const dfrcl_score_options *o, const char *what)
{
    if (!o) return DFRCL_OK;
    CHECK_ARG(RESERVED_ZERO(o), "%s->reserved is not zero: " RESERVED_ADVICE, what,
              RESERVED_ARGS("dfrcl_default_score_options"));
    CHECK_ARG(o->batch >= 0 && o->batch <= DFR_SCHED_MAX_BATCH,
              "%s->batch is %d (0 = automatic, at most %d)", what, o->batch, DFR_SCHED_MAX_BATCH);
    CHECK_ARG(o->threads >= 0 && o->threads <= 64, "%s->threads is %d (0 = one per core, at most "
              "64)", what, o->threads);
    return DFRCL_OK;
}

/* A scorer over every lane of the model's context. */
static int scorer_open(dfrcl_model *m, const dfrcl_score_options *o, dfr_scorer **out)
{
    dfr_sched_opts so = {o ? o->batch : 0, o ? o->threads : 0};
    return dfr_scorer_open(out, m->m, m->k, &so);
}

/* One run of dfrcl_model_score_files: the scheduler's results to the caller's. */
typedef struct score_run {
    const dfrcl_model *m;
    const dfrcl_score_options *o;
    dfrcl_result_fn on_result;
    void *user;
    const char *const *paths;
    int n, done;
    volatile int stop;
} score_run;

static int score_run_result(void *u, const dfr_sched_result *r)
{
    score_run *sr = u;
    const dfr_model *dm = sr->m->m[0];
    float thr = dm->info.threshold;
    dfrcl_result res = {.index = r->index, .path = sr->paths[r->index], .status = r->status,
                        .message = r->message ? r->message : "", .image = r->image,
                        .orig_width = r->orig_w, .orig_height = r->orig_h, .map = r->map,
                        .score = r->score, .threshold = thr, .device = r->device};
    if (!r->status && r->map) {
        size_t np = (size_t)dm->info.size * dm->info.size, above = 0;
        for (size_t i = 0; i < np; i++) above += r->map[i] > thr;
        res.anomalous = r->score > thr;
        res.anomalous_fraction = (double)above / (double)np;
    }
    int rc = sr->on_result ? sr->on_result(sr->user, &res) : 0;
    if (rc) {
        /* keep a message the callback set through dfrcl; else say who stopped the run */
        if (!*dfrcl_last_error())
            dfr_error(rc, "dfrcl_model_score_files: the result callback returned %d at image %d",
                      rc, r->index);
        return rc;
    }
    sr->done++;
    if (sr->o && sr->o->progress && sr->o->progress(sr->o->user, sr->done, sr->n)) sr->stop = 1;
    return 0;
}

int dfrcl_model_score_files(dfrcl_model *m, const char *const *paths, int n,
                            const dfrcl_score_options *o, dfrcl_result_fn on_result, void *user)
{
    CHECK_ARG(m, "dfrcl_model_score_files: m is NULL");
    CHECK_ARG(n >= 0, "dfrcl_model_score_files: n is %d", n);
    CHECK_ARG(n == 0 || paths, "dfrcl_model_score_files: paths is NULL (n = %d)", n);
    for (int i = 0; i < n; i++)
        CHECK_ARG(paths[i] && *paths[i], "dfrcl_model_score_files: paths[%d] is %s", i,
                  paths[i] ? "empty" : "NULL");
    int rc = dfr_api_check_score_options(o, "dfrcl_model_score_files: o");
    if (rc || n == 0) return rc;
    dfr_scorer *s = NULL;
    rc = scorer_open(m, o, &s);
    if (rc) return rc;
    score_run sr = {m, o, on_result, user, paths, n, 0, 0};
    dfr_error_clear();
    rc = dfr_scorer_run(s, paths, n, score_run_result, &sr, &sr.stop);
    if (rc == DFRCL_ERR_INTERRUPTED)
        dfr_error(rc, "dfrcl_model_score_files: stopped by the progress callback after %d of %d "
                  "images", sr.done, n);
    dfr_scorer_close(&s);
    return rc;
}

static int batch_run_result(void *u, const dfr_sched_result *r)
{
    batch_run *br = u;
    if (r->status) return r->status; /* images in memory: cannot happen */
    memcpy(br->maps + (size_t)r->index * br->np, r->map, br->np * sizeof *r->map);
    if (br->scores) br->scores[r->index] = r->score;
    return 0;
}
