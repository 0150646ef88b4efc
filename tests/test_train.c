/* Training in bounded memory: the feature store against a plain C reference in every place and
 * precision, budgets and disk errors, training that gives the same model wherever the features
 * live, and checkpoints that resume to the same model as an uninterrupted run. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "io/image.h"
#include "model/dfr.h"
#include "model/featstore.h"
#include "testutil.h"
#include "util/error.h"

static dfr_runtime *rt;

/* ---- plain C reference of fp16 storage: round to nearest even, back to float ---- */

static float ref_half(float f)
{
    /* Through the bits: normal halves keep 10 mantissa bits, subnormals a fixed 2^-24 step. */
    if (isnan(f)) return f;
    float a = fabsf(f);
    if (a >= 65520.0f) return copysignf(INFINITY, f);
    if (a < 6.103515625e-05f) { /* subnormal half: multiples of 2^-24 */
        float q = a * 16777216.0f;
        float r = rintf(q); /* rint rounds half to even in the default mode */
        return copysignf(r / 16777216.0f, f);
    }
    int e;
    float m = frexpf(a, &e); /* a = m * 2^e, m in [0.5, 1) */
    float q = rintf(ldexpf(m, 11));
    return copysignf(ldexpf(q, e - 11), f);
}

/* ---- the store ---- */

enum { N = 7, C = 13, P = 37, B = 3 };

static float *make_features(void)
{
    float *f = malloc((size_t)N * C * P * sizeof *f);
    assert_non_null(f);
    for (size_t i = 0; i < (size_t)N * C * P; i++)
        f[i] = dfr_test_uniform(11, (uint32_t)i, -3.0f, 40.0f);
    f[5] = 1e-6f; /* a half subnormal */
    f[6] = 0.0f;
    return f;
}

static void check_store(dfr_fs_place place, int prec, const char *dir)
{
    float *ref = make_features();
    cl_mem one, dst, pos;
    assert_int_equal(dfr_buffer_new(rt, (size_t)C * P * 4, CL_MEM_READ_WRITE, "t", &one), DFRCL_OK);
    assert_int_equal(dfr_buffer_new(rt, (size_t)B * C * P * 4, CL_MEM_READ_WRITE, "t", &dst), DFRCL_OK);
    assert_int_equal(dfr_buffer_new(rt, (size_t)P * 4, CL_MEM_READ_WRITE, "t", &pos), DFRCL_OK);
    dfr_fs *fs = NULL;
    dfr_fs_opts o = {.place = place, .precision = prec, .budget = 0, .dir = dir, .batch = B};
    assert_int_equal(dfr_fs_open(&fs, rt, N, C, P, &o), DFRCL_OK);
    assert_int_equal(dfr_fs_where(fs), place);
    assert_int_equal(dfr_fs_precision(fs), prec);
    for (int i = 0; i < N; i++) {
        assert_int_equal(dfr_write(rt, one, 0, (size_t)C * P * 4, ref + (size_t)i * C * P, "t"), DFRCL_OK);
        assert_int_equal(dfr_fs_put(fs, i, one, 0), DFRCL_OK);
    }
    float *got = malloc((size_t)B * C * P * sizeof *got);
    assert_non_null(got);
    /* all positions, then subsets of k positions; with and without a read-ahead hint */
    const int idx[4][B] = {{6, 0, 3}, {2, 2, 5}, {1, 4, 0}, {5, 6, 1}};
    const int counts[4] = {3, 2, 3, 1};
    for (int t = 0; t < 4; t++) {
        int k = t % 2 ? 5 : P, pk[P];
        for (int j = 0; j < k; j++) pk[j] = t % 2 ? (int)(dfr_test_hash(t, j) % P) : j;
        if (t % 2) assert_int_equal(dfr_write(rt, pos, 0, (size_t)k * 4, pk, "t"), DFRCL_OK);
        if (t == 2) dfr_fs_hint(fs, idx[t], counts[t]);
        dfr_test_poison(got, (size_t)B * C * P);
        assert_int_equal(dfr_write(rt, dst, 0, (size_t)B * C * P * 4, got, "t"), DFRCL_OK);
        assert_int_equal(dfr_fs_gather(fs, idx[t], counts[t], t % 2 ? pos : NULL, k, dst), DFRCL_OK);
        assert_int_equal(dfr_read(rt, dst, 0, (size_t)B * C * P * 4, got, "t"), DFRCL_OK);
        size_t bad = 0;
        for (int b = 0; b < counts[t]; b++)
            for (int c = 0; c < C; c++)
                for (int j = 0; j < k; j++) {
                    float want = ref[((size_t)idx[t][b] * C + c) * P + pk[j]];
                    if (prec == 16) want = ref_half(want);
                    float g = got[((size_t)b * C + c) * k + j];
                    if (memcmp(&g, &want, 4) != 0 && bad++ < 5)
                        fprintf(stderr, "%s fp%d gather %d: [%d,%d,%d] got %.9g want %.9g\n",
                                dfr_fs_place_name(place), prec, t, b, c, j, g, want);
                }
        assert_int_equal(bad, 0);
        /* nothing past the gathered images is written */
        for (size_t i = (size_t)counts[t] * C * k; i < (size_t)B * C * P; i++)
            assert_true(got[i] == DFR_POISON);
    }
    dfr_fs_close(&fs);
    assert_null(fs);
    dfr_buffer_release(&one);
    dfr_buffer_release(&dst);
    dfr_buffer_release(&pos);
    free(got);
    free(ref);
}

static int dir_entries(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

static void test_store_places(void **state)
{
    char dir[64];
    assert_int_equal(dfr_test_mkdtemp(dir, sizeof dir, "store"), 0);
    const dfr_fs_place places[3] = {DFR_FS_DEVICE, DFR_FS_HOST, DFR_FS_DISK};
    for (int p = 0; p < 3; p++) {
        check_store(places[p], 32, dir);
        check_store(places[p], 16, dir);
    }
    /* the disk store's file is unlinked at once: nothing is left behind */
    assert_int_equal(dir_entries(dir), 0);
    dfr_test_rmdir_flat(dir);
}

static void test_store_budget(void **state)
{
    dfr_fs *fs = NULL;
    double img = (double)C * P;
    /* fp32 in memory fits: device fp32 first */
    dfr_fs_opts o = {.budget = N * img * 4, .batch = B};
    assert_int_equal(dfr_fs_open(&fs, rt, N, C, P, &o), DFRCL_OK);
    assert_int_equal(dfr_fs_where(fs), DFR_FS_DEVICE);
    assert_int_equal(dfr_fs_precision(fs), 32);
    dfr_fs_close(&fs);
    /* only fp16 fits */
    o.budget = N * img * 2;
    assert_int_equal(dfr_fs_open(&fs, rt, N, C, P, &o), DFRCL_OK);
    assert_int_equal(dfr_fs_where(fs), DFR_FS_DEVICE);
    assert_int_equal(dfr_fs_precision(fs), 16);
    dfr_fs_close(&fs);
    /* only the disk store fits: a batch read from the file and one image's staging */
    o.budget = (B + 1) * img * 2;
    assert_int_equal(dfr_fs_open(&fs, rt, N, C, P, &o), DFRCL_OK);
    assert_int_equal(dfr_fs_where(fs), DFR_FS_DISK);
    assert_int_equal(dfr_fs_precision(fs), 16);
    dfr_fs_close(&fs);
    /* nothing fits: the error names the minimum */
    o.budget = (B + 1) * img * 2 - 1;
    assert_int_equal(dfr_fs_open(&fs, rt, N, C, P, &o), DFRCL_ERR_HOST_MEMORY);
    assert_non_null(strstr(dfrcl_last_error(), "needs at least"));
    assert_null(fs);
    /* a forced place beyond the budget is refused, not silently exceeded */
    o.budget = N * img * 4 - 1;
    o.place = DFR_FS_DEVICE;
    o.precision = 32;
    assert_int_equal(dfr_fs_open(&fs, rt, N, C, P, &o), DFRCL_ERR_HOST_MEMORY);
    assert_non_null(strstr(dfrcl_last_error(), "device store"));
}

static void test_store_disk_errors(void **state)
{
    dfr_fs *fs = NULL;
    dfr_fs_opts o = {.place = DFR_FS_DISK, .batch = B, .dir = "/nonexistent/dfrcl"};
    assert_int_equal(dfr_fs_open(&fs, rt, N, C, P, &o), DFRCL_ERR_IO);
    assert_non_null(strstr(dfrcl_last_error(), "/nonexistent/dfrcl"));
    assert_non_null(strstr(dfrcl_last_error(), "(feature_dir)"));
    assert_null(fs);
    if (geteuid() != 0) { /* root writes anywhere: the read-only case needs another user */
        char dir[64];
        assert_int_equal(dfr_test_mkdtemp(dir, sizeof dir, "ro"), 0);
        chmod(dir, 0500);
        o.dir = dir;
        assert_int_equal(dfr_fs_open(&fs, rt, N, C, P, &o), DFRCL_ERR_IO);
        chmod(dir, 0700);
        dfr_test_rmdir_flat(dir);
    }
    /* a store larger than the disk: refused before anything is written (/dev/shm is small) */
    if (access("/dev/shm", W_OK) == 0) {
        o.dir = "/dev/shm";
        dfr_fs_opts big = o;
        int rc = dfr_fs_open(&fs, rt, 1 << 20, 1 << 10, 1 << 12, &big); /* 4 TiB in fp16... */
        assert_int_equal(rc, DFRCL_ERR_IO);
        assert_non_null(strstr(dfrcl_last_error(), "MiB in /dev/shm"));
        assert_null(fs);
    }
}

/* ---- training ---- */

static char img_dir[64];
static char *paths[6];
static dfr_vgg19 *vgg;

static void make_images(void)
{
    assert_int_equal(dfr_test_mkdtemp(img_dir, sizeof img_dir, "train"), 0);
    uint8_t px[24 * 20 * 3];
    for (int i = 0; i < 6; i++) {
        for (int j = 0; j < 24 * 20 * 3; j++)
            px[j] = (uint8_t)(dfr_test_hash(100 + i, j) % 64 + (j / 3 % 24) * 6);
        char p[128];
        snprintf(p, sizeof p, "%s/img%d.png", img_dir, i);
        assert_int_equal(dfr_png_write(p, 24, 20, 3, px), DFRCL_OK);
        paths[i] = strdup(p);
    }
}

/* The trained tensors and the threshold. */
typedef struct trained {
    float *t[DFR_CAE_NUM_TENSORS];
    size_t numel[DFR_CAE_NUM_TENSORS];
    double threshold, loss;
    int epochs, latent;
} trained;

static dfr_train_hooks hooks; /* stop_at_step, for the checkpoint tests */

static int train(trained *out, const dfrcl_train_options *o)
{
    dfr_model *m = NULL;
    int rc = dfr_train(&m, rt, vgg, (const char *const *)paths, 6, 32, o, &hooks);
    if (rc) return rc;
    for (int i = 0; i < DFR_CAE_NUM_TENSORS; i++) {
        dfr_cae_tensor t;
        assert_int_equal(dfr_cae_tensor_info(m->cae, i, &t), DFRCL_OK);
        out->numel[i] = t.numel;
        out->t[i] = malloc(t.numel * sizeof(float));
        assert_non_null(out->t[i]);
    }
    assert_int_equal(dfr_cae_get_tensors(m->cae, out->t), DFRCL_OK);
    out->threshold = m->threshold;
    out->loss = m->info.final_loss;
    out->epochs = m->info.epochs;
    out->latent = m->info.latent;
    dfr_model_free(&m);
    return DFRCL_OK;
}

static void free_trained(trained *t)
{
    for (int i = 0; i < DFR_CAE_NUM_TENSORS; i++) free(t->t[i]);
}

/* Bit-identical tensors, threshold and loss. */
static void assert_same(const trained *a, const trained *b)
{
    assert_int_equal(a->epochs, b->epochs);
    assert_int_equal(a->latent, b->latent);
    for (int i = 0; i < DFR_CAE_NUM_TENSORS; i++)
        assert_memory_equal(a->t[i], b->t[i], a->numel[i] * sizeof(float));
    assert_true(a->threshold == b->threshold);
    assert_true(a->loss == b->loss);
}

static void base_opts(dfrcl_train_options *o, int recipe)
{
    dfrcl_default_train_options(o);
    o->recipe = recipe;
    o->epochs = 4;
    o->batch = 4; /* 6 images: a full and a short batch each epoch */
    o->seed = 3;
    o->patience = -1;
}

static void test_train_places(void **state)
{
    char dir[64];
    assert_int_equal(dfr_test_mkdtemp(dir, sizeof dir, "feat"), 0);
    for (int recipe = 0; recipe < 2; recipe++) {
        dfrcl_train_options o;
        base_opts(&o, recipe);
        trained ref = {0}, got = {0};
        o.store = DFR_FS_DEVICE;
        o.store_precision = 32;
        assert_int_equal(train(&ref, &o), DFRCL_OK);
        const dfr_fs_place others[2] = {DFR_FS_HOST, DFR_FS_DISK};
        for (int p = 0; p < 2; p++) {
            o.store = others[p];
            o.feature_dir = dir;
            assert_int_equal(train(&got, &o), DFRCL_OK);
            assert_same(&got, &ref); /* fp32 anywhere: the same model, bit for bit */
            free_trained(&got);
        }
        /* fp16 (features rounded to 11 bits): Adam's steps of about lr each make the weights
         * differ at once, but the model is as good: the loss and threshold stay within 5% */
        o.store = DFR_FS_AUTO;
        o.store_precision = 16;
        assert_int_equal(train(&got, &o), DFRCL_OK);
        assert_int_equal(got.epochs, ref.epochs);
        assert_true(fabs(got.loss - ref.loss) <= 0.05 * ref.loss);
        assert_true(fabs(got.threshold - ref.threshold) <= 0.05 * ref.threshold);
        free_trained(&got);
        /* a budget below the autoencoder's own needs: refused, naming the minimum */
        o.store = DFR_FS_AUTO;
        o.store_precision = 0;
        o.memory_mib = 1;
        assert_int_equal(train(&got, &o), DFRCL_ERR_HOST_MEMORY);
        assert_non_null(strstr(dfrcl_last_error(), "memory budget (memory_mib) of"));
        free_trained(&ref);
    }
    assert_int_equal(dir_entries(dir), 0);
    dfr_test_rmdir_flat(dir);
}

static void test_train_fast_recipe(void **state)
{
    /* The fast recipe: fewer positions a step, early stop; the published one runs every epoch */
    dfrcl_train_options o;
    base_opts(&o, DFR_RECIPE_FAST);
    o.epochs = 200;
    o.patience = 2;
    trained t = {0};
    assert_int_equal(train(&t, &o), DFRCL_OK);
    assert_true(t.epochs < 200); /* stopped when the loss stopped improving */
    assert_true(t.epochs > 2);
    free_trained(&t);
    dfrcl_train_options r;
    dfrcl_default_train_options(&r);
    dfr_train_resolve(&r, 4096);
    assert_int_equal(r.positions, 512);
    assert_true(r.lr == 3e-4f);
    assert_int_equal(r.patience, 5);
    dfrcl_default_train_options(&r);
    r.recipe = DFR_RECIPE_PUBLISHED;
    dfr_train_resolve(&r, 4096);
    assert_int_equal(r.positions, 4096);
    assert_true(r.lr == 1e-4f);
    assert_int_equal(r.epochs, 150);
    assert_int_equal(r.patience, -1);
}

/* Asks training to stop once the threshold is being set (all epochs done). */
static int stop_in_threshold(void *user, const char *phase, int done, int total, double loss)
{
    return !strcmp(phase, "threshold");
}

static void test_resume(void **state)
{
    char dir[64], ck[128];
    assert_int_equal(dfr_test_mkdtemp(dir, sizeof dir, "ck"), 0);
    snprintf(ck, sizeof ck, "%s/model.checkpoint", dir);
    for (int recipe = 0; recipe < 2; recipe++) {
        dfrcl_train_options o;
        base_opts(&o, recipe);
        o.epochs = 3;
        o.patience = recipe == DFR_RECIPE_FAST ? 2 : -1;
        trained ref = {0}, got = {0};
        assert_int_equal(train(&ref, &o), DFRCL_OK);
        /* interrupted at a step in the middle of an epoch (2 steps an epoch: step 3 is the first
         * of epoch 2), then resumed */
        int64_t at = 3 + recipe * 2;
        o.checkpoint = ck;
        hooks.stop_at_step = at;
        assert_int_equal(train(&got, &o), DFRCL_ERR_INTERRUPTED);
        assert_int_equal(access(ck, R_OK), 0);
        hooks.stop_at_step = 0;
        o.resume = 1;
        assert_int_equal(train(&got, &o), DFRCL_OK);
        assert_same(&got, &ref);
        free_trained(&got);
        /* stopped while setting the threshold: the resumed run does not train again */
        o.resume = 0;
        o.on_progress = stop_in_threshold;
        assert_int_equal(train(&got, &o), DFRCL_ERR_INTERRUPTED);
        assert_non_null(strstr(dfrcl_last_error(), "stopped by on_progress"));
        assert_non_null(strstr(dfrcl_last_error(), "threshold"));
        o.on_progress = NULL;
        o.resume = 1;
        assert_int_equal(train(&got, &o), DFRCL_OK);
        assert_same(&got, &ref);
        free_trained(&got);
        /* a checkpoint of other options or data is refused with the reason */
        hooks.stop_at_step = at;
        o.resume = 0;
        assert_int_equal(train(&got, &o), DFRCL_ERR_INTERRUPTED);
        hooks.stop_at_step = 0;
        o.resume = 1;
        o.seed = 4;
        assert_int_equal(train(&got, &o), DFRCL_ERR_MISMATCH);
        assert_non_null(strstr(dfrcl_last_error(), "other training options"));
        o.seed = 3;
        char *saved = paths[5];
        paths[5] = paths[4];
        assert_int_equal(train(&got, &o), DFRCL_ERR_MISMATCH);
        assert_non_null(strstr(dfrcl_last_error(), "other training images"));
        paths[5] = saved;
        /* a corrupt checkpoint is refused, never half used */
        FILE *f = fopen(ck, "r+b");
        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        assert_int_equal(ftruncate(fileno(f), len / 2), 0);
        fclose(f);
        assert_int_not_equal(train(&got, &o), DFRCL_OK);
        remove(ck);
        free_trained(&ref);
    }
    dfr_test_rmdir_flat(dir);
}

/* ---- divergence and non-finite values ---- */

/* A backbone whose features overflow to Inf (weights of 1e30, finite, so it loads). */
static dfr_vgg19 *huge_backbone(void)
{
    static const int cin[4] = {3, 64, 64, 128}, cout[4] = {64, 64, 128, 128};
    float *w[4], *b[4];
    for (int l = 0; l < 4; l++) {
        size_t n = (size_t)cout[l] * cin[l] * 9;
        w[l] = malloc(n * sizeof(float));
        b[l] = calloc((size_t)cout[l], sizeof(float));
        assert_true(w[l] && b[l]);
        for (size_t j = 0; j < n; j++) w[l][j] = dfr_test_uniform(l, (uint32_t)j, -1e30f, 1e30f);
    }
    dfr_vgg19 *v = NULL;
    assert_int_equal(dfr_vgg19_from_arrays(&v, rt, 4, (const float *const *)w,
                                           (const float *const *)b), DFRCL_OK);
    for (int l = 0; l < 4; l++) {
        free(w[l]);
        free(b[l]);
    }
    return v;
}

static void test_diverged(void **state)
{
    char dir[64], ck[128];
    assert_int_equal(dfr_test_mkdtemp(dir, sizeof dir, "div"), 0);
    snprintf(ck, sizeof ck, "%s/model.checkpoint", dir);
    dfrcl_train_options o;
    base_opts(&o, DFR_RECIPE_FAST);
    o.checkpoint = ck;
    trained t = {0};
    /* a finite loss far above the untrained autoencoder's: refused, naming the learning rate,
     * and the checkpoint of the diverged run is gone */
    o.lr = 9.9f;
    assert_int_equal(train(&t, &o), DFRCL_ERR_INVALID_ARG);
    assert_non_null(strstr(dfrcl_last_error(), "diverged"));
    assert_non_null(strstr(dfrcl_last_error(), "(lr 9.9)"));
    assert_int_equal(dir_entries(dir), 0);
    o.lr = 0;
    /* features that overflow: PCA says so (LAPACK said "info -5") */
    dfr_vgg19 *good = vgg;
    vgg = huge_backbone();
    assert_int_equal(train(&t, &o), DFRCL_ERR_FORMAT);
    assert_non_null(strstr(dfrcl_last_error(), "PCA: the features of training image 1"));
    /* with a latent size given, the loss is NaN in the first epoch: stopped there */
    o.latent = 8;
    assert_int_equal(train(&t, &o), DFRCL_ERR_INVALID_ARG);
    assert_non_null(strstr(dfrcl_last_error(), "nan in epoch 1"));
    assert_non_null(strstr(dfrcl_last_error(), "(lr "));
    assert_int_equal(dir_entries(dir), 0);
    /* nor is a checkpoint written with non-finite weights (interrupted after step 1) */
    hooks.stop_at_step = 1;
    assert_int_equal(train(&t, &o), DFRCL_ERR_INVALID_ARG);
    assert_non_null(strstr(dfrcl_last_error(), "no checkpoint is written"));
    hooks.stop_at_step = 0;
    assert_int_equal(dir_entries(dir), 0);
    dfr_vgg19_free(&vgg);
    vgg = good;
    dfr_test_rmdir_flat(dir);
}

static void test_save_nonfinite(void **state)
{
    char dir[64], path[128];
    assert_int_equal(dfr_test_mkdtemp(dir, sizeof dir, "save"), 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    dfrcl_train_options o;
    base_opts(&o, DFR_RECIPE_FAST);
    o.epochs = 1;
    dfr_model *m = NULL;
    assert_int_equal(dfr_train(&m, rt, vgg, (const char *const *)paths, 6, 32, &o, NULL), DFRCL_OK);
    double th = m->threshold;
    m->threshold = NAN;
    assert_int_equal(dfr_model_save(m, path), DFRCL_ERR_INVALID_ARG);
    assert_non_null(strstr(dfrcl_last_error(), "model.safetensors: not writing a model with "
                                               "non-finite values: the threshold is"));
    assert_int_equal(dir_entries(dir), 0);
    m->threshold = th;
    assert_int_equal(dfr_model_save(m, path), DFRCL_OK);
    dfr_model_free(&m);
    /* it loads; the same file with another size does not (its threshold was set at 32) */
    assert_int_equal(dfr_model_load(&m, rt, vgg, path), DFRCL_OK);
    dfr_model_free(&m);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    char head[4096] = {0};
    size_t got = fread(head, 1, sizeof head - 1, f);
    char *at = strstr(head + 8, "\"size\":\"32\""); /* after the header's length */
    assert_true(got > 0 && at);
    fseek(f, (long)(at - head) + 8, SEEK_SET);
    fputs("64", f);
    fclose(f);
    assert_int_equal(dfr_model_load(&m, rt, vgg, path), DFRCL_ERR_FORMAT);
    assert_non_null(strstr(dfrcl_last_error(), "model.safetensors: the model's metadata or "
                                               "tensors do not match its checksum"));
    assert_null(m);
    remove(path);
    dfr_test_rmdir_flat(dir);
}

int main(void)
{
    DFR_TEST_OPEN_RUNTIME(&rt);
    if (dfr_vgg19_random(&vgg, rt, 4, 0)) {
        fprintf(stderr, "%s\n", dfrcl_last_error());
        return 1;
    }
    make_images();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_places),
        cmocka_unit_test(test_store_budget),
        cmocka_unit_test(test_store_disk_errors),
        cmocka_unit_test(test_train_places),
        cmocka_unit_test(test_train_fast_recipe),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_diverged),
        cmocka_unit_test(test_save_nonfinite),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    for (int i = 0; i < 6; i++) free(paths[i]);
    dfr_test_rmdir_flat(img_dir);
    dfr_vgg19_free(&vgg);
    dfr_runtime_close(&rt);
    return rc;
}
