/* DFR training (dfr.h): the features of the normal images into a feature store, the latent size
 * by PCA, the autoencoder's epochs under a recipe, checkpoints, and the threshold. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io/prefetch.h"
#include "io/safetensors.h"
#include "model/dfr.h"
#include "model/featstore.h"
#include "model/pca.h"
#include "util/error.h"
#include "util/finite.h"
#include "util/fsutil.h"
#include "util/hash.h"
#include "util/rand.h"

#define MIB (1024.0 * 1024.0)
#define CHECKPOINT_FORMAT "dfrcl-checkpoint"
#define CHECKPOINT_VERSION 1

const char *dfr_recipe_name(int recipe) { return recipe == DFR_RECIPE_PUBLISHED ? "published" : "fast"; }

void dfrcl_default_train_options(dfrcl_train_options *o)
{
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->recipe = DFR_RECIPE_FAST;
    o->batch = 4;
    o->pca_keep = 0.9;
    o->pca_images = 10;
    o->fpr = 0.005;
}

void dfr_train_resolve(dfrcl_train_options *o, int npos)
{
    int fast = o->recipe != DFR_RECIPE_PUBLISHED;
    if (o->epochs <= 0) o->epochs = fast ? 100 : 150;
    if (!(o->lr > 0)) o->lr = fast ? 3e-4f : 1e-4f;
    if (o->positions <= 0) o->positions = fast ? (npos >= 16 ? npos / 8 : npos) : npos;
    if (o->positions > npos) o->positions = npos;
    if (o->patience == 0) o->patience = fast ? 5 : -1;
}

double dfr_train_auto_budget(const dfr_runtime *rt)
{
    double host = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    double b = host > 0 ? host / 4 : 2048 * MIB;
    if (b > 2048 * MIB) b = 2048 * MIB;
    double dev = (double)rt->info.global_mem_bytes * 3 / 4;
    if (dev > 0 && b > dev) b = dev;
    return b;
}

/* Bytes of training the autoencoder on `cols` positions per step (the CAE itself, the input
 * batch, the GEMM's packing scratch: at most 128 MB), and of scoring one image for the threshold
 * (a scorer, the image's features and reconstruction, its score maps). */
#define GEMM_SCRATCH_BYTES (128.0 * 1024 * 1024)
static double cae_train_bytes(int C, int d, double cols)
{
    return dfr_cae_device_bytes(C, d, cols, 1) + 4.0 * cols * C + GEMM_SCRATCH_BYTES;
}

static double score_bytes(int C, int d, int P, int S)
{
    return dfr_cae_device_bytes(C, d, P, 0) + 4.0 * (2.0 * C * P + P + (double)S * S) +
           GEMM_SCRATCH_BYTES;
}

/* What training takes besides the feature store, with latent size d. */
static double train_reserve(int C, int d, int P, int S, double cols)
{
    double train = cae_train_bytes(C, d, cols), score = score_bytes(C, d, P, S);
    double pca = 4.0 * (3.0 * C * P) + 12.0 * C * C;
    double r = train > score ? train : score;
    return r > pca ? r : pca;
}

/* The caller's progress (API 1.0: every phase but "step") and on_progress, whose non-zero return
 * asks training to stop (*stop stays set; training stops where it next looks). */
static void progress(const dfrcl_train_options *o, int *stop, const char *phase, int done,
                     int total, double loss)
{
    if (o->progress && strcmp(phase, "step") != 0) o->progress(o->user, phase, done, total, loss);
    if (o->on_progress && o->on_progress(o->user, phase, done, total, loss)) *stop = 1;
}

/* ---- features ---- */

static int extract_features(dfr_runtime *rt, dfr_vgg19 *vgg, const char *const *images, int n,
                            int size, const dfrcl_train_options *o, int *stop, dfr_fs *fs)
{
    int q = size / 4;
    cl_mem one = NULL;
    int rc = dfr_buffer_new(rt, (size_t)vgg->channels * q * q * sizeof(float), CL_MEM_READ_WRITE,
                            "features", &one);
    /* Images are decoded on a worker thread, ahead of the device's work. */
    dfr_prefetch *pf = NULL;
    if (!rc) rc = dfr_prefetch_open(&pf, images, n, size, 2);
    for (int i = 0; i < n && !rc; i++) {
        dfrcl_image img = {0};
        rc = dfr_prefetch_next(pf, &img, NULL, NULL);
        if (!rc) rc = dfr_vgg19_features(vgg, img.pixels, img.channels, size, one, 0);
        if (!rc) rc = dfr_fs_put(fs, i, one, 0);
        dfrcl_image_free(&img);
        if (rc) rc = dfr_error_prefix(rc, "%s", images[i]);
        progress(o, stop, "features", i + 1, n, 0);
        if (!rc && *stop)
            rc = dfr_error(DFRCL_ERR_INTERRUPTED, "interrupted while extracting the features");
    }
    dfr_prefetch_close(&pf);
    if (!rc) rc = dfr_finish(rt);
    dfr_buffer_release(&one);
    return rc;
}

static int pca_load(void *user, int i, cl_mem dst)
{
    return dfr_fs_gather(user, &i, 1, NULL, dfr_fs_npos(user), dst);
}

/* ---- the threshold ---- */


/* The k+1 largest pixel scores seen so far, as a min-heap: its root is the (k+1)-th largest, the
 * score above which a fraction fpr = k / n of the n training pixels lies. It holds fpr of the
 * scores (0.5% by default), not all of them, and gives the same value as sorting them all. */
typedef struct top_scores {
    float *h;
    size_t len, cap;
} top_scores;

static void top_sift_down(top_scores *t, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < t->len && t->h[l] < t->h[m]) m = l;
        if (r < t->len && t->h[r] < t->h[m]) m = r;
        if (m == i) return;
        float x = t->h[i];
        t->h[i] = t->h[m];
        t->h[m] = x;
        i = m;
    }
}

static void top_push(top_scores *t, float v)
{
    if (t->len < t->cap) { /* not full yet: sift up */
        size_t i = t->len++;
        while (i > 0 && t->h[(i - 1) / 2] > v) {
            t->h[i] = t->h[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        t->h[i] = v;
    } else if (v > t->h[0]) { /* replaces the smallest of the kept ones */
        t->h[0] = v;
        top_sift_down(t, 0);
    }
}

static int set_threshold(dfr_model *m, dfr_fs *fs, const char *const *images, int n,
                         const dfrcl_train_options *o, int *stop)
{
    int S = m->info.size, P = (S / 4) * (S / 4);
    size_t SS = (size_t)S * S, total = SS * (size_t)n;
    size_t k = (size_t)floor(o->fpr * (double)total);
    if (k >= total) k = total - 1;
    top_scores top = {malloc((k + 1) * sizeof(float)), 0, k + 1};
    /* Batches as large as the device's memory and the feature store's batch allow: the maps are
     * those of one image at a time (tests/test_sched.c), so the threshold is too. */
    int B = dfr_model_auto_batch(m, 16), store_batch = o->batch < n ? o->batch : n;
    if (B > store_batch) B = store_batch;
    if (B < 1) B = 1;
    float *scores = malloc(SS * B * sizeof(float));
    int idx[64];
    int rc = scores && top.h ? DFRCL_OK : dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    if (!rc) rc = dfr_model_reserve_batch(m, B);
    for (int i = 0; i < n && !rc; i += B) {
        int cnt = n - i < B ? n - i : B, next = 0;
        for (int j = 0; j < cnt; j++) idx[j] = i + j;
        rc = dfr_fs_gather(fs, idx, cnt, NULL, P, m->feat);
        for (int j = i + cnt; j < n && next < B; j++) idx[next++] = j;
        if (next) dfr_fs_hint(fs, idx, next);
        if (!rc) rc = dfr_model_score_features(m, cnt);
        if (!rc) rc = dfr_read(m->rt, m->score_full, 0, SS * cnt * sizeof(float), scores, "download");
        for (int j = 0; j < cnt && !rc; j++) {
            const float *sj = scores + SS * j;
            size_t bad = dfr_first_nonfinite(sj, SS);
            if (bad < SS)
                rc = dfr_error(DFRCL_ERR_INVALID_ARG,
                               "setting the threshold: the pixel scores of %s are not finite (%g): "
                               "the autoencoder or the features hold non-finite values (check the "
                               "backbone weights and the images, or train with a lower learning "
                               "rate (lr))",
                               images[i + j], (double)sj[bad]);
            for (size_t q = 0; q < SS && !rc; q++) top_push(&top, sj[q]);
        }
        progress(o, stop, "threshold", i + cnt, n, 0);
        if (!rc && *stop)
            rc = dfr_error(DFRCL_ERR_INTERRUPTED,
                           "interrupted while setting the threshold%s", o->checkpoint ?
                           "; training is done, and a resumed run (resume) goes straight to the "
                           "threshold" : "");
    }
    if (!rc) {
        dfr_model_set_threshold(m, top.h[0]);
        dfr_rt_log(m->rt, 1, "threshold %.6g (pixel false-positive rate %g on the training images)",
                m->threshold, o->fpr);
    }
    free(top.h);
    free(scores);
    return rc;
}

/* ---- the loop's state, and checkpoints ---- */

typedef struct train_state {
    int epoch;        /* epochs finished */
    int next;         /* first image (in the epoch's order) of the next step */
    int64_t step;     /* steps taken */
    float *losses;    /* every finished epoch's loss; room for n_losses (the epoch cap) */
    int n_losses;
    int done;         /* stopped early */
    double last_loss; /* the last finished epoch's loss */
    double initial_loss; /* the untrained autoencoder's loss (the first step's); 0 = unknown */
    int diverged;        /* training failed: the loss or the weights are not finite, or too high */
    double seconds;   /* training time before this process */
} train_state;

/* The identity of a training run: everything that decides the model. A checkpoint continues only
 * the run it came from. */
typedef struct run_identity {
    char data[65];     /* SHA-256 of the image files, in order */
    char backbone[65]; /* the backbone's tensors */
    char options[512]; /* the resolved options, as text */
} run_identity;

static int hash_images(const char *const *images, int n, char hex[65])
{
    dfr_sha256 h;
    dfr_sha256_init(&h);
    for (int i = 0; i < n; i++) {
        unsigned char *data = NULL;
        size_t len = 0;
        int rc = dfr_read_file(images[i], &data, &len);
        if (rc) return rc;
        const char *base = strrchr(images[i], '/');
        dfr_sha256_update_str(&h, base ? base + 1 : images[i]);
        dfr_sha256_update(&h, data, len);
        free(data);
    }
    dfr_sha256_hex(&h, hex);
    return DFRCL_OK;
}

/* The options that decide the model, as asked for (latent "auto" stays auto: the checkpoint
 * records the size PCA gave). */
static void describe_options(const dfrcl_train_options *o, int size, int layers, char *buf, size_t n)
{
    char latent[16], prec[8];
    snprintf(latent, sizeof latent, o->latent > 0 ? "%d" : "auto", o->latent);
    snprintf(prec, sizeof prec, o->store_precision ? "fp%d" : "auto", o->store_precision);
    snprintf(buf, n,
             "recipe %s, size %d, layers %d, latent %s, pca %g of %d images, epochs %d, batch %d, "
             "lr %.9g, positions %d, patience %d, seed %u, store precision %s",
             dfr_recipe_name(o->recipe), size, layers, latent, o->pca_keep, o->pca_images,
             o->epochs, o->batch, (double)o->lr, o->positions, o->patience, o->seed, prec);
}

/* Training diverged: `what` says how. The usual causes: too high a learning rate, or features
 * too large to train on (damaged backbone weights or inputs); lead with the likelier one. */
static int diverged(const dfrcl_train_options *o, const char *what)
{
    dfrcl_train_options d = {.recipe = o->recipe};
    dfr_train_resolve(&d, 1);
    if (o->lr > d.lr)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "training diverged: %s. The learning rate (lr %g) is likely too high: "
                         "try a lower one (the %s recipe's default is %g); if that does not help, "
                         "check the backbone weights and the images",
                         what, (double)o->lr, dfr_recipe_name(o->recipe), (double)d.lr);
    return dfr_error(DFRCL_ERR_INVALID_ARG,
                     "training diverged: %s. The backbone weights or the images likely give "
                     "features too large to train on (check the weights file), or the learning "
                     "rate (lr %g) is too high for these data: try a lower one",
                     what, (double)o->lr);
}

/* seconds: the training time so far, this process's included. */
static int write_checkpoint(const char *path, dfr_cae *cae, train_state *st, double seconds,
                            const run_identity *id, int latent, int precision,
                            const dfrcl_train_options *o)
{
    size_t np = dfr_cae_nparams(cae), nr = dfr_cae_nrunning(cae);
    float *buf = malloc((3 * np + nr) * sizeof(float));
    float loss[3];
    int64_t steps = 0;
    if (!buf) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory for the checkpoint");
    int rc = dfr_cae_get_state(cae, buf, buf + np, buf + 2 * np, buf + 3 * np, &steps, loss);
    if (!rc && dfr_first_nonfinite(buf, 3 * np + nr) < 3 * np + nr) {
        char what[128];
        snprintf(what, sizeof what, "the autoencoder's weights are not finite by step %lld "
                 "(epoch %d), so no checkpoint is written", (long long)st->step, st->epoch + 1);
        rc = diverged(o, what);
        st->diverged = 1;
    }
    dfr_st_writer *w = NULL;
    if (!rc) rc = dfr_st_writer_new(&w);
    int64_t snp[1] = {(int64_t)np}, snr[1] = {(int64_t)nr}, s3[1] = {3};
    if (!rc) rc = dfr_st_writer_add_f32(w, "params", 1, snp, buf);
    if (!rc) rc = dfr_st_writer_add_f32(w, "adam_m", 1, snp, buf + np);
    if (!rc) rc = dfr_st_writer_add_f32(w, "adam_v", 1, snp, buf + 2 * np);
    if (!rc) rc = dfr_st_writer_add_f32(w, "running", 1, snr, buf + 3 * np);
    if (!rc) rc = dfr_st_writer_add_f32(w, "loss_acc", 1, s3, loss);
    int64_t se[1] = {st->n_losses};
    if (!rc) rc = dfr_st_writer_add_f32(w, "epoch_losses", 1, se, st->losses);
    char v[64];
#define META(key, fmt, val)                                                                    \
    if (!rc) {                                                                                 \
        snprintf(v, sizeof v, fmt, val);                                                       \
        rc = dfr_st_writer_meta(w, key, v);                                                    \
    }
    if (!rc) rc = dfr_st_writer_meta(w, "format", CHECKPOINT_FORMAT);
    META("format_version", "%d", CHECKPOINT_VERSION)
    if (!rc) rc = dfr_st_writer_meta(w, "data_sha256", id->data);
    if (!rc) rc = dfr_st_writer_meta(w, "backbone_sha256", id->backbone);
    if (!rc) rc = dfr_st_writer_meta(w, "options", id->options);
    META("latent", "%d", latent)
    META("store_precision", "%d", precision)
    META("epoch", "%d", st->epoch)
    META("next", "%d", st->next)
    META("step", "%lld", (long long)st->step)
    META("adam_steps", "%lld", (long long)steps)
    META("done", "%d", st->done)
    META("last_loss", "%.17g", st->last_loss)
    META("initial_loss", "%.17g", st->initial_loss)
    META("seconds", "%.3f", seconds)
#undef META
    if (!rc) rc = dfr_st_writer_write(w, path);
    if (rc) rc = dfr_error_prefix(rc, "writing the checkpoint %s", path);
    dfr_st_writer_free(&w);
    free(buf);
    return rc;
}

/* Reads the identity and loop state of a checkpoint, and checks that it continues this run. */
static int peek_checkpoint(const char *path, const run_identity *id, int *latent, int *precision,
                           train_state *ts, int n_images)
{
    dfr_safetensors *st = NULL;
    int rc = dfr_st_open(&st, path);
    if (rc) return rc;
    const char *fmt = dfr_st_metadata(st, "format");
    long v = 0;
    if (!fmt || strcmp(fmt, CHECKPOINT_FORMAT) != 0)
        rc = dfr_error(DFRCL_ERR_FORMAT, "%s: not a dfrcl training checkpoint", path);
    if (!rc) rc = dfr_st_meta_long(st, path, "format_version", 0, LONG_MAX, &v);
    if (!rc && v != CHECKPOINT_VERSION)
        rc = dfr_error(DFRCL_ERR_MISMATCH, "%s: checkpoint version %ld, this dfrcl reads %d", path,
                       v, CHECKPOINT_VERSION);
    const char *data = dfr_st_metadata(st, "data_sha256");
    const char *bb = dfr_st_metadata(st, "backbone_sha256");
    const char *opts = dfr_st_metadata(st, "options");
    if (!rc && (!data || !bb || !opts))
        rc = dfr_error(DFRCL_ERR_FORMAT, "%s: checkpoint lacks its run's identity", path);
    if (!rc && strcmp(bb, id->backbone) != 0)
        rc = dfr_error(DFRCL_ERR_MISMATCH,
                       "%s: the checkpoint was made with another backbone; open the same weights "
                       "file (weights) and layers (layers), or start afresh without resuming "
                       "(resume)",
                       path);
    if (!rc && strcmp(data, id->data) != 0)
        rc = dfr_error(DFRCL_ERR_MISMATCH,
                       "%s: the checkpoint was made with other training images (their contents "
                       "differ); start afresh without resuming (resume)",
                       path);
    long lat = 0, prec = 0, ep = 0, next = 0, step = 0, done = 0;
    if (!rc) rc = dfr_st_meta_long(st, path, "latent", 0, LONG_MAX, &lat);
    if (!rc) rc = dfr_st_meta_long(st, path, "store_precision", 0, LONG_MAX, &prec);
    if (!rc && prec != 16 && prec != 32)
        rc = dfr_error(DFRCL_ERR_FORMAT, "%s: checkpoint store precision %ld", path, prec);
    if (!rc && strcmp(opts, id->options) != 0)
        rc = dfr_error(DFRCL_ERR_MISMATCH,
                       "%s: the checkpoint was made with other training options (%s; now %s); "
                       "give the same options, or start afresh without resuming (resume)",
                       path, opts, id->options);
    if (!rc) rc = dfr_st_meta_long(st, path, "epoch", 0, LONG_MAX, &ep);
    if (!rc) rc = dfr_st_meta_long(st, path, "next", 0, LONG_MAX, &next);
    if (!rc) rc = dfr_st_meta_long(st, path, "step", 0, LONG_MAX, &step);
    if (!rc) rc = dfr_st_meta_long(st, path, "done", 0, LONG_MAX, &done);
    if (!rc) rc = dfr_st_meta_double(st, path, "last_loss", &ts->last_loss);
    if (!rc) rc = dfr_st_meta_double(st, path, "seconds", &ts->seconds);
    if (!rc && dfr_st_meta_double(st, path, "initial_loss", &ts->initial_loss) != 0) {
        ts->initial_loss = 0; /* older checkpoints lack it: the divergence check then skips */
        dfr_error_clear();
    }
    if (!rc && (next > n_images || lat < 1))
        rc = dfr_error(DFRCL_ERR_FORMAT, "%s: checkpoint state out of range", path);
    dfr_st_close(&st);
    if (rc) return rc;
    *latent = (int)lat;
    *precision = (int)prec;
    ts->epoch = (int)ep;
    ts->next = (int)next;
    ts->step = step;
    ts->done = (int)done;
    return DFRCL_OK;
}

static int load_checkpoint(const char *path, dfr_cae *cae, train_state *ts)
{
    size_t np = dfr_cae_nparams(cae), nr = dfr_cae_nrunning(cae);
    float *buf = malloc((3 * np + nr) * sizeof(float));
    float loss[3];
    dfr_safetensors *st = NULL;
    long steps = 0;
    if (!buf) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory for the checkpoint");
    int rc = dfr_st_open(&st, path);
    int64_t snp[1] = {(int64_t)np}, snr[1] = {(int64_t)nr}, s3[1] = {3};
    if (!rc) rc = dfr_st_read_f32(st, "params", 1, snp, buf, np);
    if (!rc) rc = dfr_st_read_f32(st, "adam_m", 1, snp, buf + np, np);
    if (!rc) rc = dfr_st_read_f32(st, "adam_v", 1, snp, buf + 2 * np, np);
    if (!rc) rc = dfr_st_read_f32(st, "running", 1, snr, buf + 3 * np, nr);
    if (!rc) rc = dfr_st_read_f32(st, "loss_acc", 1, s3, loss, 3);
    int64_t se[1] = {ts->n_losses};
    if (!rc) rc = dfr_st_read_f32(st, "epoch_losses", 1, se, ts->losses, (size_t)ts->n_losses);
    if (!rc) rc = dfr_st_meta_long(st, path, "adam_steps", 0, LONG_MAX, &steps);
    if (!rc && dfr_first_nonfinite(buf, 3 * np + nr) < 3 * np + nr)
        rc = dfr_error(DFRCL_ERR_FORMAT, "the checkpoint holds non-finite values; start afresh "
                       "without resuming (resume)");
    if (!rc) rc = dfr_cae_set_state(cae, buf, buf + np, buf + 2 * np, buf + 3 * np, steps, loss);
    if (rc) rc = dfr_error_prefix(rc, "resuming from %s", path);
    dfr_st_close(&st);
    free(buf);
    return rc;
}

/* ---- the loop ---- */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* The images of epoch `ep` in training order: a seeded Fisher-Yates shuffle. */
static void epoch_order(int *perm, int n, uint32_t seed, int ep)
{
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(dfr_rand_u32(seed * 7919u + 17u, (uint32_t)(ep * n + i)) % (uint32_t)(i + 1));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The k of npos positions that step `step` trains on (the same for every image of the batch),
 * in ascending order: a partial seeded Fisher-Yates. scratch holds npos ints. */
static void step_positions(int *out, int *scratch, int k, int npos, uint32_t seed, int64_t step)
{
    uint32_t stream = dfr_rand_u32(seed ^ 0x5eed1234u, (uint32_t)step) ^ (uint32_t)(step >> 32);
    for (int i = 0; i < npos; i++) scratch[i] = i;
    for (int i = 0; i < k; i++) {
        int j = i + (int)(dfr_rand_u32(stream, (uint32_t)i) % (uint32_t)(npos - i));
        int t = scratch[i];
        scratch[i] = scratch[j];
        scratch[j] = t;
    }
    memcpy(out, scratch, (size_t)k * sizeof *out);
    qsort(out, (size_t)k, sizeof *out, cmp_int);
}

/* The fast recipe's stop: the last `window` epochs lowered the loss by less than 3% of what it
 * fell since the first epoch. Scale-free; on the sets measured it stops where the test accuracy
 * has levelled off, while the loss itself goes on falling slowly for long after. The window is
 * at least STOP_MIN_STEPS steps: with few images an epoch is a step or two, and its loss too
 * noisy to judge over 5 of them. */
#define STOP_FRACTION 0.03
#define STOP_MIN_STEPS 50
static int should_stop(const float *loss, int epochs, int window)
{
    if (window < 1 || epochs <= window) return 0;
    double recent = (double)loss[epochs - 1 - window] - loss[epochs - 1];
    double total = (double)loss[0] - loss[epochs - 1];
    return recent < STOP_FRACTION * total;
}

/* A healthy training never ends with a loss this many times the untrained autoencoder's (with a
 * sane learning rate even the first epoch's mean stays near it); one that does has diverged and
 * scores nothing, although its values are finite. */
#define DIVERGED_FACTOR 10.0
static int check_converged(train_state *ts, const dfrcl_train_options *o)
{
    if (!(ts->initial_loss > 0) || ts->epoch < 1 ||
        ts->last_loss <= DIVERGED_FACTOR * ts->initial_loss)
        return DFRCL_OK;
    char what[160];
    snprintf(what, sizeof what, "after %d epoch(s) the loss is %.4g, %.0f times the untrained "
             "autoencoder's %.4g", ts->epoch, ts->last_loss, ts->last_loss / ts->initial_loss,
             ts->initial_loss);
    ts->diverged = 1;
    return diverged(o, what);
}

/* The trained autoencoder as one that scores whole images (the fast recipe trains on fewer
 * positions per image than scoring takes), without the training buffers. */
static int clone_for_scoring(dfr_cae **out, dfr_cae *src, dfr_runtime *rt, int npos)
{
    int rc = dfr_cae_new_scorer(out, rt, dfr_cae_channels(src), dfr_cae_latent(src), 1, npos);
    if (!rc) rc = dfr_cae_copy_weights(*out, src);
    if (rc) dfr_cae_free(out);
    return rc;
}

/* Hands on_eval a model that scores with the autoencoder as trained so far. */
static int eval_now(dfr_model *m, int k, int P, const dfr_train_hooks *h, int epoch,
                    double seconds)
{
    dfr_model e = *m;
    e.cap = 0;
    e.feat = e.recon = e.score_small = e.score_full = NULL;
    dfr_model_set_threshold(&e, 0);
    e.info.epochs = epoch;
    int rc = k < P ? clone_for_scoring(&e.cae, m->cae, m->rt, P) : DFRCL_OK;
    if (!rc) rc = h->on_eval(h->user, epoch, seconds, &e);
    if (k < P) dfr_cae_free(&e.cae);
    e.cae = NULL;
    dfr_model_free_buffers(&e);
    return rc;
}

/* Each option in range, named as a caller of dfrcl_model_train knows it, then what depends on
 * the backbone and the images. */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) return dfr_error(DFRCL_ERR_INVALID_ARG, "dfrcl_model_train: " __VA_ARGS__);   \
    } while (0)
static int check_options(const dfr_vgg19 *vgg, int n, int size, const dfrcl_train_options *o)
{
    CHECK(n >= 1, "no training images (n = %d)", n);
    CHECK(o->recipe == DFR_RECIPE_FAST || o->recipe == DFR_RECIPE_PUBLISHED,
          "o->recipe is %d (0 fast, 1 published)", o->recipe);
    CHECK(o->epochs >= 0, "o->epochs is %d (0 = the recipe's)", o->epochs);
    CHECK(o->batch >= 1 && o->batch <= 64, "o->batch is %d, not 1..64", o->batch);
    CHECK(o->lr >= 0 && isfinite(o->lr), "o->lr is %g (0 = the recipe's)", (double)o->lr);
    CHECK(o->latent >= 0, "o->latent is %d (0 = by PCA)", o->latent);
    CHECK(o->latent <= vgg->channels,
          "the latent size (latent %d) is larger than the feature's %d channels", o->latent,
          vgg->channels);
    CHECK(o->latent || (o->pca_keep > 0 && o->pca_keep <= 1), "o->pca_keep is %g, not in (0, 1]",
          o->pca_keep);
    CHECK(o->latent || o->pca_images >= 1, "o->pca_images is %d, not at least 1", o->pca_images);
    CHECK(o->fpr > 0 && o->fpr < 1, "o->fpr is %g, not in (0, 1)", o->fpr);
    CHECK(o->memory_mib >= 0 && isfinite(o->memory_mib), "o->memory_mib is %g (0 = automatic)",
          o->memory_mib);
    CHECK(o->positions >= 0, "o->positions is %d (0 = the recipe's)", o->positions);
    CHECK(o->patience >= -1, "o->patience is %d (0 = the recipe's, -1 never)", o->patience);
    CHECK(o->store >= 0 && o->store <= 3, "o->store is %d (0 by memory_mib, 1 device, 2 host, 3 file)",
          o->store);
    CHECK(o->store_precision == 0 || o->store_precision == 16 || o->store_precision == 32,
          "o->store_precision is %d (0 automatic, 16, 32)", o->store_precision);
    CHECK(o->checkpoint_s >= 0 && isfinite(o->checkpoint_s), "o->checkpoint_s is %g (0 = 300)",
          o->checkpoint_s);
    CHECK(!o->checkpoint || *o->checkpoint, "o->checkpoint is empty (NULL: none)");
    CHECK(!o->resume || o->checkpoint, "o->resume is set but o->checkpoint is NULL");
    CHECK(o->eval_every >= 0, "o->eval_every is %d (0 = never)", o->eval_every);
    CHECK(size <= DFR_MODEL_MAX_SIZE, "image size %d: a model holds at most %d", size,
          DFR_MODEL_MAX_SIZE);
    return dfr_vgg19_check_size(vgg, size);
}
#undef CHECK

static int train_fp32(dfr_model **out, dfr_runtime *rt, dfr_vgg19 *vgg, const char *const *images,
                      int n, int size, const dfrcl_train_options *opts,
                      const dfr_train_hooks *hooks)
{
    *out = NULL;
    int rc = check_options(vgg, n, size, opts);
    if (rc) return rc;
    int q = size / 4, P = q * q, C = vgg->channels;
    dfrcl_train_options o = *opts;
    dfr_train_resolve(&o, P);
    const dfr_train_hooks none = {0}, *h = hooks ? hooks : &none;
    int bmax = o.batch < n ? o.batch : n, k = o.positions;
    double budget = o.memory_mib > 0 ? o.memory_mib * MIB : dfr_train_auto_budget(rt);
    int stop_asked = 0; /* by on_progress */

    dfr_model *m = calloc(1, sizeof *m);
    if (!m) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    m->rt = rt;
    m->vgg = vgg;
    dfr_model_info *info = &m->info;
    info->layers = vgg->layers;
    info->size = size;
    info->channels = C;
    info->epochs = o.epochs;
    info->batch = o.batch;
    info->lr = o.lr;
    info->fpr = o.fpr;
    info->seed = o.seed;
    info->train_images = n;
    info->recipe = o.recipe;
    info->positions = k;
    snprintf(info->backbone_sha256, sizeof info->backbone_sha256, "%s", vgg->identity);
    snprintf(info->backbone_desc, sizeof info->backbone_desc, "%s", vgg->desc);

    /* A checkpoint to continue? It fixes the latent size and the store's precision. */
    run_identity id = {0};
    train_state ts = {0};
    ts.n_losses = o.epochs;
    ts.losses = calloc((size_t)ts.n_losses, sizeof *ts.losses);
    if (!ts.losses) rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    int resumed = 0, latent = o.latent, precision = o.store_precision;
    if (!rc && o.checkpoint) {
        snprintf(id.backbone, sizeof id.backbone, "%s", vgg->identity);
        describe_options(&o, size, vgg->layers, id.options, sizeof id.options);
        rc = hash_images(images, n, id.data);
        if (!rc && o.resume && access(o.checkpoint, F_OK) == 0) {
            rc = peek_checkpoint(o.checkpoint, &id, &latent, &precision, &ts, n);
            if (!rc && ts.epoch > o.epochs)
                rc = dfr_error(DFRCL_ERR_FORMAT, "%s: checkpoint past the last epoch", o.checkpoint);
            if (!rc) {
                resumed = 1;
                dfr_rt_log(rt, 1,
                    "resuming from %s: epoch %d, step %lld, %.0f s trained", o.checkpoint,
                        ts.epoch + (ts.next > 0), (long long)ts.step, ts.seconds);
            }
        } else if (!rc && access(o.checkpoint, F_OK) == 0) {
            dfr_rt_log(rt, 1, "%s exists: starting afresh (resume continues it)", o.checkpoint);
        }
    }

    /* The store gets what the autoencoder and scoring leave of the budget. The latent size is
     * not known before PCA: reserve for d = C / 16 (PCA keeps 90% of the variance of VGG
     * features with C / 17 at 12 layers, C / 56 at 8), and check again once it is known. */
    int d_guess = latent > 0 ? latent : (C / 16 > 1 ? C / 16 : 1);
    double reserve = train_reserve(C, d_guess, P, size, (double)bmax * k);
    dfr_fs *fs = NULL;
    dfr_fs_opts fo = {.place = (dfr_fs_place)o.store, .precision = precision,
                      .budget = budget - reserve, .dir = o.feature_dir, .batch = bmax};
    double smallest_store = dfr_fs_need(DFR_FS_DISK, 16, n, C, P, bmax);
    if (!rc && budget - reserve <= 0)
        rc = dfr_error(DFRCL_ERR_HOST_MEMORY,
                       "the memory budget (%.0f MiB) is below the minimum for training this model: "
                       "about %.0f MiB for the autoencoder and buffers plus %.0f MiB for the "
                       "smallest feature store; give a memory budget (memory_mib) of %.0f MiB or "
                       "more",
                       budget / MIB, reserve / MIB, smallest_store / MIB,
                       ceil((reserve + smallest_store) / MIB));
    if (!rc) {
        rc = dfr_fs_open(&fs, rt, n, C, P, &fo);
        if (rc == DFRCL_ERR_HOST_MEMORY)
            rc = dfr_error_prefix(rc, "memory budget %.0f MiB, of which the autoencoder and "
                                  "buffers take about %.0f MiB",
                                  budget / MIB, reserve / MIB);
    }
    if (!rc) {
        dfr_rt_log(rt, 1,
            "memory budget %.0f MiB%s: features %s fp%d, autoencoder and buffers about "
                   "%.0f MiB",
                budget / MIB, o.memory_mib > 0 ? "" : " (auto)", dfr_fs_place_name(dfr_fs_where(fs)),
                dfr_fs_precision(fs), reserve / MIB);
        rc = extract_features(rt, vgg, images, n, size, &o, &stop_asked, fs);
    }
    /* Latent size: the checkpoint's, the one given, or PCA of the first pca_images images. */
    if (!rc && latent > 0) info->latent = latent;
    else if (!rc) {
        int np = o.pca_images < n ? o.pca_images : n;
        double kept = 0;
        rc = dfr_pca_latent_each(rt, np, C, P, pca_load, fs, o.pca_keep, &info->latent, &kept);
        if (!rc)
            dfr_rt_log(rt, 1, "PCA on %d image(s): latent size %d keeps %.1f%% of the variance", np,
                    info->latent, 100 * kept);
    }
    if (!rc && info->latent > d_guess) {
        double need = train_reserve(C, info->latent, P, size, (double)bmax * k);
        double have = budget - dfr_fs_need(dfr_fs_where(fs), dfr_fs_precision(fs), n, C, P, bmax);
        if (need > have)
            rc = dfr_error(DFRCL_ERR_HOST_MEMORY,
                           "latent size %d: the autoencoder and buffers need about %.0f MiB, but "
                           "the memory budget leaves %.0f MiB beside the features; give a memory "
                           "budget (memory_mib) of %.0f MiB or more, or a smaller latent size "
                           "(latent)",
                           info->latent, need / MIB, have / MIB, ceil((budget + need - have) / MIB));
    }
    cl_mem batch = NULL, pos = NULL;
    int *perm = NULL, *pick = NULL, *scratch = NULL;
    if (!rc) rc = dfr_cae_new(&m->cae, rt, C, info->latent, bmax, k, o.seed);
    if (!rc) rc = dfr_buffer_new(rt, (size_t)C * k * bmax * sizeof(float), CL_MEM_READ_WRITE,
                                 "a training batch", &batch);
    if (!rc && k < P)
        rc = dfr_buffer_new(rt, (size_t)k * sizeof(int), CL_MEM_READ_ONLY, "positions", &pos);
    if (rc == DFRCL_ERR_DEVICE_MEMORY)
        rc = dfr_error_prefix(rc,
                              "training C=%d, latent %d, batch %d needs about %.0f MiB on the "
                              "device besides the features; try a batch (batch) of %d or a smaller "
                              "image size (size)",
                              C, info->latent, bmax,
                              cae_train_bytes(C, info->latent, (double)bmax * k) / MIB,
                              bmax > 1 ? bmax / 2 : 1);
    if (!rc && resumed) rc = load_checkpoint(o.checkpoint, m->cae, &ts);
    if (!rc) {
        perm = malloc((size_t)n * sizeof *perm);
        pick = malloc((size_t)k * sizeof *pick);
        scratch = malloc((size_t)P * sizeof *scratch);
        if (!perm || !pick || !scratch) rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    }
    if (!rc)
        dfr_rt_log(rt, 1,
            "recipe %s: Adam lr %g, batch %d, %d of %d positions per image a step, %s%d "
                   "epochs",
                dfr_recipe_name(o.recipe), (double)o.lr, o.batch, k, P,
                o.patience > 0 ? "stop when the loss levels off, at most " : "", o.epochs);

    int steps_per_epoch = (n + o.batch - 1) / o.batch;
    int stop_window = o.patience < 1 ? 0 : o.patience;
    if (stop_window && stop_window * steps_per_epoch < STOP_MIN_STEPS)
        stop_window = (STOP_MIN_STEPS + steps_per_epoch - 1) / steps_per_epoch;
    double t_start = now_s(), t_ck = t_start; /* evaluations move both forward */
    while (!rc && !ts.done && ts.epoch < o.epochs) {
        epoch_order(perm, n, o.seed, ts.epoch);
        while (!rc && ts.next < n) {
            int b0 = ts.next, bs = n - b0 < o.batch ? n - b0 : o.batch;
            if (bs * k >= 2) { /* BatchNorm needs two values per channel */
                if (pos) {
                    step_positions(pick, scratch, k, P, o.seed, ts.step);
                    rc = dfr_write(rt, pos, 0, (size_t)k * sizeof(int), pick, "upload");
                }
                if (!rc) rc = dfr_fs_gather(fs, perm + b0, bs, pos, k, batch);
                int nb = b0 + bs < n ? (n - b0 - bs < o.batch ? n - b0 - bs : o.batch) : 0;
                if (nb) dfr_fs_hint(fs, perm + b0 + bs, nb);
                /* The untrained autoencoder's loss, the yardstick of divergence: read once. */
                float first = 0;
                if (!rc)
                    rc = dfr_cae_train_step(m->cae, batch, 0, bs, o.lr, ts.step ? NULL : &first);
                if (!rc && ts.step == 0) ts.initial_loss = first;
                ts.step++;
            }
            ts.next = b0 + bs;
            if (!rc && o.on_progress)
                progress(&o, &stop_asked, "step", (ts.next + o.batch - 1) / o.batch,
                         steps_per_epoch, ts.last_loss);
            /* Checkpoint every few minutes, and when asked to stop. */
            int stop = stop_asked || (h->stop_at_step > 0 && ts.step == h->stop_at_step);
            if (!rc && o.checkpoint && (stop || now_s() - t_ck >= (o.checkpoint_s > 0 ? o.checkpoint_s : 300))) {
                rc = write_checkpoint(o.checkpoint, m->cae, &ts, ts.seconds + now_s() - t_start,
                                      &id, info->latent, dfr_fs_precision(fs), &o);
                t_ck = now_s();
                if (!rc) dfr_rt_log(rt, 2,
                    "checkpoint %s: epoch %d, step %lld", o.checkpoint, ts.epoch + 1,
                                 (long long)ts.step);
            }
            if (!rc && stop) {
                rc = dfr_error(DFRCL_ERR_INTERRUPTED,
                               "training interrupted after %lld steps in %.1f s (epoch %d)%s%s",
                               (long long)ts.step, ts.seconds + now_s() - t_start, ts.epoch + 1,
                               o.checkpoint ? "; checkpoint written to " : "",
                               o.checkpoint ? o.checkpoint : "");
            }
        }
        if (rc) break;
        double loss = 0;
        rc = dfr_cae_epoch_loss(m->cae, &loss, NULL);
        if (!rc && !isfinite(loss)) {
            char what[128];
            snprintf(what, sizeof what, "the loss became %g in epoch %d (by step %lld)", loss,
                     ts.epoch + 1, (long long)ts.step);
            rc = diverged(&o, what);
            ts.diverged = 1;
        }
        if (rc) break;
        ts.epoch++;
        ts.next = 0;
        ts.last_loss = loss;
        ts.losses[ts.epoch - 1] = (float)loss;
        ts.done = should_stop(ts.losses, ts.epoch, stop_window);
        progress(&o, &stop_asked, "train", ts.epoch, ts.done ? ts.epoch : o.epochs, loss);
        if (h->on_eval && o.eval_every > 0 &&
            (ts.epoch % o.eval_every == 0 || ts.done || ts.epoch == o.epochs)) {
            double t_eval = now_s();
            rc = eval_now(m, k, P, h, ts.epoch, ts.seconds + t_eval - t_start);
            t_start += now_s() - t_eval; /* evaluations are not training time */
            t_ck += now_s() - t_eval;
        }
        if (ts.done)
            dfr_rt_log(rt, 1,
                "the loss has levelled off: stopped after epoch %d (loss %.6g)", ts.epoch, loss);
    }
    if (!rc) rc = check_converged(&ts, &o);
    /* A diverged run is not worth resuming: with the same options it diverges again. */
    if (rc && rc != DFRCL_ERR_INTERRUPTED && o.checkpoint && ts.diverged) remove(o.checkpoint);
    /* Training is done: a last checkpoint, so that an interruption from here on (the threshold
     * scores every training image) resumes without training again. */
    if (!rc && o.checkpoint) {
        ts.done = 1;
        rc = write_checkpoint(o.checkpoint, m->cae, &ts, ts.seconds + now_s() - t_start, &id,
                              info->latent, dfr_fs_precision(fs), &o);
    }
    if (!rc) {
        info->epochs = ts.epoch;
        info->final_loss = ts.last_loss;
        info->steps = dfr_cae_steps(m->cae);
        dfr_rt_log(rt, 1, "trained %d epochs, %lld steps in %.1f s", ts.epoch, (long long)ts.step,
                ts.seconds + now_s() - t_start);
    }
    dfr_buffer_release(&batch);
    dfr_buffer_release(&pos);
    /* Scoring takes every position of one image at a time, without the training buffers. */
    if (!rc) {
        dfr_cae *scorer = NULL;
        rc = clone_for_scoring(&scorer, m->cae, rt, P);
        dfr_cae_free(&m->cae);
        m->cae = scorer;
        m->cae_batch = 1; /* a scorer of its own: reserve_batch may grow it */
        m->cae_resizable = 1;
    }
    if (!rc) rc = set_threshold(m, fs, images, n, &o, &stop_asked);
    free(perm);
    free(pick);
    free(scratch);
    free(ts.losses);
    dfr_fs_close(&fs);
    if (rc == DFRCL_ERR_INTERRUPTED && stop_asked) rc = dfr_error_prefix(rc, "stopped by on_progress");
    if (rc) {
        dfr_model_free(&m);
        return rc;
    }
    *out = m;
    return DFRCL_OK;
}

/* Training runs in fp32 whatever the runtime's activation precision (--precision is for
 * inference): its features, autoencoder and threshold pass are fp32. */
int dfr_train(dfr_model **out, dfr_runtime *rt, dfr_vgg19 *vgg, const char *const *images, int n,
              int size, const dfrcl_train_options *opts, const dfr_train_hooks *hooks)
{
    int half = rt ? rt->half : 0;
    if (rt) rt->half = 0;
    int rc = train_fp32(out, rt, vgg, images, n, size, opts, hooks);
    if (rt) rt->half = half;
    return rc;
}
