/* No process-global state: two runtimes (and two public-API contexts) used on two threads at
 * once give exactly what they give one at a time, each with the settings it opened with
 * (environment variables are read at open), its own logger and its own error messages.
 * Built with -Db_sanitize=thread, this is the TSan test (tests/tsan.supp). */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cl/runtime.h"
#include "dfrcl.h"
#include "io/image.h"
#include "ops/gemm.h"
#include "ops/tunables.h"
#include "testutil.h"
#include "util/error.h"

/* ---- environment read at open, per runtime ---- */

static void test_env_at_open(void **state)
{
    (void)state;
    dfr_runtime *a = NULL, *b = NULL;
    assert_int_equal(dfr_test_setenv(NULL, "DFRCL_GEMM", "clblast"), 0);
    assert_int_equal(dfr_test_setenv(NULL, "DFRCL_GEMM_TUNE", "vw=3"), 0);
    assert_int_equal(dfr_runtime_open(&a, NULL, NULL, 0), DFRCL_OK);
    assert_int_equal(dfr_test_setenv(NULL, "DFRCL_GEMM", NULL), 0);
    assert_int_equal(dfr_test_setenv(NULL, "DFRCL_GEMM_TUNE", NULL), 0);
    assert_int_equal(dfr_runtime_open(&b, NULL, NULL, 0), DFRCL_OK);
    /* a keeps what the environment said when it opened; b never saw it */
    assert_int_equal(dfr_gemm_backend_in_use(a), DFR_GEMM_CLBLAST);
    const dfr_gemm_backend own = b->info.is_cpu ? DFR_GEMM_OWN_REG : DFR_GEMM_CLBLAST;
    assert_int_equal(dfr_gemm_backend_in_use(b), own);
    int v[DFR_TUNE_MAX_PARAMS];
    assert_int_equal(dfr_tune_resolve(a, DFR_TK_GEMM, v, NULL), DFRCL_ERR_INVALID_ARG);
    assert_non_null(strstr(dfrcl_last_error(), "DFRCL_GEMM_TUNE"));
    assert_int_equal(dfr_tune_resolve(b, DFR_TK_GEMM, v, NULL), DFRCL_OK);
    /* a backend set on one runtime is that runtime's only */
    dfr_gemm_set_backend(b, DFR_GEMM_OWN_LDS);
    assert_int_equal(dfr_gemm_backend_in_use(a), DFR_GEMM_CLBLAST);
    assert_int_equal(dfr_gemm_backend_in_use(b), DFR_GEMM_OWN_LDS);
    dfr_gemm_release(b); /* frees the scratch buffers, not the choice */
    assert_int_equal(dfr_gemm_backend_in_use(b), DFR_GEMM_OWN_LDS);
    /* reading the environment again forgets the open's values */
    assert_int_equal(dfr_runtime_reload_env(a), DFRCL_OK);
    assert_int_equal(dfr_gemm_backend_in_use(a), own);
    assert_int_equal(dfr_tune_resolve(a, DFR_TK_GEMM, v, NULL), DFRCL_OK);
    dfr_runtime_close(&a);
    dfr_runtime_close(&b);
    assert_null(dfr_rt_getenv(NULL, "DFRCL_GEMM"));
}

/* ---- logger per runtime ---- */

typedef struct log_rec {
    int n, max_level;
    char first[256];
} log_rec;

static void collect_log(void *user, int level, const char *msg)
{
    log_rec *r = user;
    if (!r->n++) snprintf(r->first, sizeof r->first, "%s", msg);
    if (level > r->max_level) r->max_level = level;
}

static void test_logger(void **state)
{
    (void)state;
    log_rec info = {0}, quiet = {0};
    dfr_verbosity = 0; /* the process-wide default says nothing; the runtimes decide */
    dfr_runtime *a = NULL, *b = NULL;
    dfr_runtime_opts oa = {.verbosity = 1, .log = collect_log, .log_user = &info};
    dfr_runtime_opts ob = {.verbosity = 0, .log = collect_log, .log_user = &quiet};
    assert_int_equal(dfr_runtime_open_opts(&a, &oa), DFRCL_OK);
    assert_int_equal(dfr_runtime_open_opts(&b, &ob), DFRCL_OK);
    assert_int_equal(info.n, 1); /* the device line of the open itself */
    assert_non_null(strstr(info.first, "device ["));
    assert_int_equal(quiet.n, 0);
    dfr_rt_log(a, 2, "debug: not at verbosity 1");
    dfr_rt_log(a, 1, "info %d", 7);
    assert_int_equal(info.n, 2);
    assert_int_equal(info.max_level, 1);
    dfr_rt_log(b, 0, "a warning");
    assert_int_equal(quiet.n, 1);
    dfr_runtime_close(&a);
    dfr_runtime_close(&b);
}

/* ---- error messages per thread ---- */

static void *make_error(void *arg)
{
    const char *what = arg;
    for (int i = 0; i < 2000; i++) {
        dfr_error(DFRCL_ERR_INVALID_ARG, "error of %s %d", what, i);
        char want[64];
        snprintf(want, sizeof want, "error of %s %d", what, i);
        if (strcmp(dfrcl_last_error(), want)) return (void *)1;
    }
    return NULL;
}

static void test_errors_per_thread(void **state)
{
    (void)state;
    pthread_t t[2];
    void *r[2];
    assert_int_equal(pthread_create(&t[0], NULL, make_error, "one"), 0);
    assert_int_equal(pthread_create(&t[1], NULL, make_error, "two"), 0);
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_join(t[i], &r[i]), 0);
    assert_null(r[0]);
    assert_null(r[1]);
}

/* ---- GEMM on two runtimes at once ---- */

/* Products of one runtime: each size once, into host results. */
typedef struct gemm_job {
    dfr_runtime *rt;
    int sizes[3];
    float *out[3];
    int rc;
    char err[512];
} gemm_job;

static int gemm_one(dfr_runtime *rt, int n, float *out)
{
    const int m = n + 3, k = n * 2 + 1;
    const size_t na = (size_t)m * k, nb = (size_t)k * n, nc = (size_t)m * n;
    float *h = malloc((na + nb + nc) * sizeof *h);
    if (!h) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    for (size_t i = 0; i < na + nb; i++) h[i] = dfr_test_uniform(17, (uint32_t)i, -0.5f, 0.5f);
    dfr_test_poison(h + na + nb, nc);
    cl_mem a = NULL, b = NULL, c = NULL;
    int rc = dfr_buffer_new(rt, na * 4, CL_MEM_READ_WRITE, "A", &a);
    if (!rc) rc = dfr_buffer_new(rt, nb * 4, CL_MEM_READ_WRITE, "B", &b);
    if (!rc) rc = dfr_buffer_new(rt, nc * 4, CL_MEM_READ_WRITE, "C", &c);
    if (!rc) rc = dfr_write(rt, a, 0, na * 4, h, "up");
    if (!rc) rc = dfr_write(rt, b, 0, nb * 4, h + na, "up");
    if (!rc) rc = dfr_write(rt, c, 0, nc * 4, h + na + nb, "up");
    dfr_gemm_desc g = {.m = m, .n = n, .k = k, .alpha = 1, .beta = 0, .a = a, .lda = (size_t)k,
                       .b = b, .ldb = (size_t)n, .c = c, .ldc = (size_t)n, .batch = 1};
    if (!rc) rc = dfr_gemm(rt, &g, "gemm");
    if (!rc) rc = dfr_read(rt, c, 0, nc * 4, out, "down");
    dfr_buffer_release(&a);
    dfr_buffer_release(&b);
    dfr_buffer_release(&c);
    free(h);
    return rc;
}

static void *gemm_run(void *arg)
{
    gemm_job *j = arg;
    for (int i = 0; i < 3 && !j->rc; i++) j->rc = gemm_one(j->rt, j->sizes[i], j->out[i]);
    if (j->rc) snprintf(j->err, sizeof j->err, "%s", dfrcl_last_error());
    return NULL;
}

static size_t gemm_elems(int n)
{
    return (size_t)(n + 3) * n;
}

static void test_gemm_two_threads(void **state)
{
    (void)state;
    gemm_job j[2] = {{.sizes = {37, 130, 64}}, {.sizes = {91, 20, 150}}};
    /* One runtime takes CLBlast from the environment at its open, the other the own kernel. */
    assert_int_equal(dfr_test_setenv(NULL, "DFRCL_GEMM", "clblast"), 0);
    assert_int_equal(dfr_runtime_open(&j[0].rt, NULL, NULL, 0), DFRCL_OK);
    assert_int_equal(dfr_test_setenv(NULL, "DFRCL_GEMM", "own"), 0);
    assert_int_equal(dfr_runtime_open(&j[1].rt, NULL, NULL, 0), DFRCL_OK);
    assert_int_equal(dfr_test_setenv(NULL, "DFRCL_GEMM", NULL), 0);
    float *ref[2][3];
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 3; i++) {
            size_t n = gemm_elems(j[t].sizes[i]);
            j[t].out[i] = malloc(n * sizeof(float));
            ref[t][i] = malloc(n * sizeof(float));
            assert_non_null(j[t].out[i]);
            assert_non_null(ref[t][i]);
        }
    /* one at a time */
    for (int t = 0; t < 2; t++) {
        gemm_run(&j[t]);
        if (j[t].rc) fail_msg("runtime %d alone: %s", t, j[t].err);
        for (int i = 0; i < 3; i++) {
            memcpy(ref[t][i], j[t].out[i], gemm_elems(j[t].sizes[i]) * sizeof(float));
            dfr_test_poison(j[t].out[i], gemm_elems(j[t].sizes[i]));
        }
    }
    /* both at once */
    pthread_t th[2];
    for (int t = 0; t < 2; t++) assert_int_equal(pthread_create(&th[t], NULL, gemm_run, &j[t]), 0);
    for (int t = 0; t < 2; t++) assert_int_equal(pthread_join(th[t], NULL), 0);
    for (int t = 0; t < 2; t++) {
        if (j[t].rc) fail_msg("runtime %d beside the other: %s", t, j[t].err);
        for (int i = 0; i < 3; i++)
            assert_memory_equal(j[t].out[i], ref[t][i],
                                gemm_elems(j[t].sizes[i]) * sizeof(float));
    }
    assert_int_equal(dfr_gemm_backend_in_use(j[0].rt), DFR_GEMM_CLBLAST);
    for (int t = 0; t < 2; t++) {
        for (int i = 0; i < 3; i++) {
            free(j[t].out[i]);
            free(ref[t][i]);
        }
        dfr_runtime_close(&j[t].rt);
    }
}

/* ---- two public-API contexts: train, score, features ---- */

#define N_TRAIN 3
static char dir[256], train_png[N_TRAIN][320];

typedef struct ctx_job {
    const char *gemm; /* DFRCL_GEMM when the context opens (unset afterwards) */
    int layers, size;
    uint32_t seed;
    dfrcl_context *ctx;
    dfrcl_backbone *bb;
    float *map, *feat, score;
    size_t feat_n;
    int rc;
    char err[512];
} ctx_job;

static int ctx_work(ctx_job *j)
{
    dfrcl_train_options o;
    dfrcl_default_train_options(&o);
    o.epochs = 1;
    o.batch = 2;
    o.pca_images = N_TRAIN;
    o.seed = j->seed;
    const char *paths[N_TRAIN];
    for (int i = 0; i < N_TRAIN; i++) paths[i] = train_png[i];
    dfrcl_model *m = NULL;
    int rc = dfrcl_model_train(&m, j->bb, paths, N_TRAIN, j->size, &o);
    if (!rc) rc = dfrcl_model_score_file(m, train_png[0], j->map, &j->score);
    dfrcl_model_close(&m);
    dfrcl_image img = {0}, small = {0};
    if (!rc) rc = dfrcl_image_load(&img, train_png[1]);
    if (!rc) rc = dfrcl_image_resize(&small, &img, j->size, j->size);
    if (!rc) rc = dfrcl_features(j->bb, &small, j->size, j->feat);
    dfrcl_image_free(&img);
    dfrcl_image_free(&small);
    return rc;
}

static void *ctx_run(void *arg)
{
    ctx_job *j = arg;
    j->rc = ctx_work(j);
    if (j->rc) snprintf(j->err, sizeof j->err, "%s", dfrcl_last_error());
    return NULL;
}

static void test_contexts_two_threads(void **state)
{
    (void)state;
    ctx_job j[2] = {{.gemm = "clblast", .layers = 4, .size = 32, .seed = 3},
                    {.gemm = NULL, .layers = 3, .size = 24, .seed = 5}};
    float *ref_map[2], *ref_feat[2], ref_score[2];
    for (int t = 0; t < 2; t++) {
        dfrcl_settings s;
        dfrcl_default_settings(&s);
        s.verbosity = 0;
        assert_int_equal(dfr_test_setenv(NULL, "DFRCL_GEMM", j[t].gemm), 0);
        assert_int_equal(dfrcl_open(&j[t].ctx, &s), DFRCL_OK);
        assert_int_equal(dfrcl_backbone_random(&j[t].bb, j[t].ctx, j[t].layers, 11), DFRCL_OK);
        size_t q = (size_t)(j[t].size / 4);
        j[t].feat_n = (size_t)dfrcl_backbone_channels(j[t].bb) * q * q;
        j[t].map = malloc((size_t)j[t].size * j[t].size * sizeof(float));
        j[t].feat = malloc(j[t].feat_n * sizeof(float));
        ref_map[t] = malloc((size_t)j[t].size * j[t].size * sizeof(float));
        ref_feat[t] = malloc(j[t].feat_n * sizeof(float));
        assert_true(j[t].map && j[t].feat && ref_map[t] && ref_feat[t]);
    }
    assert_int_equal(dfr_test_setenv(NULL, "DFRCL_GEMM", NULL), 0);
    for (int t = 0; t < 2; t++) { /* one at a time */
        ctx_run(&j[t]);
        if (j[t].rc) fail_msg("context %d alone: %s", t, j[t].err);
        memcpy(ref_map[t], j[t].map, (size_t)j[t].size * j[t].size * sizeof(float));
        memcpy(ref_feat[t], j[t].feat, j[t].feat_n * sizeof(float));
        ref_score[t] = j[t].score;
        dfr_test_poison(j[t].map, (size_t)j[t].size * j[t].size);
        dfr_test_poison(j[t].feat, j[t].feat_n);
    }
    pthread_t th[2]; /* both at once */
    for (int t = 0; t < 2; t++) assert_int_equal(pthread_create(&th[t], NULL, ctx_run, &j[t]), 0);
    for (int t = 0; t < 2; t++) assert_int_equal(pthread_join(th[t], NULL), 0);
    for (int t = 0; t < 2; t++) {
        if (j[t].rc) fail_msg("context %d beside the other: %s", t, j[t].err);
        assert_memory_equal(j[t].map, ref_map[t], (size_t)j[t].size * j[t].size * sizeof(float));
        assert_memory_equal(j[t].feat, ref_feat[t], j[t].feat_n * sizeof(float));
        assert_true(j[t].score == ref_score[t]);
        dfrcl_backbone_close(&j[t].bb);
        dfrcl_close(&j[t].ctx);
        free(j[t].map);
        free(j[t].feat);
        free(ref_map[t]);
        free(ref_feat[t]);
    }
}

static int write_train_images(void)
{
    if (dfr_test_mkdtemp(dir, sizeof dir, "threads")) return 1;
    uint8_t px[40 * 36 * 3];
    for (int i = 0; i < N_TRAIN; i++) {
        for (size_t p = 0; p < sizeof px; p++)
            px[p] = (uint8_t)(dfr_test_hash(100 + (uint32_t)i, (uint32_t)p) >> 24);
        snprintf(train_png[i], sizeof train_png[i], "%s/train%d.png", dir, i);
        if (dfr_png_write(train_png[i], 40, 36, 3, px)) return 1;
    }
    return 0;
}

int main(void)
{
    dfr_runtime *probe = NULL;
    DFR_TEST_OPEN_RUNTIME(&probe); /* skips without a device */
    dfr_runtime_close(&probe);
    if (write_train_images()) {
        fprintf(stderr, "writing the training images: %s\n", dfrcl_last_error());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_at_open),          cmocka_unit_test(test_logger),
        cmocka_unit_test(test_errors_per_thread),    cmocka_unit_test(test_gemm_two_threads),
        cmocka_unit_test(test_contexts_two_threads),
    };
    int fails = cmocka_run_group_tests(tests, NULL, NULL);
    dfr_test_rmdir_flat(dir);
    return fails;
}
