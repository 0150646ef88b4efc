/* dfr_gemm against a plain C reference (double accumulation), for every implementation: the own
 * register-tiled kernel (CPUs), the own local-memory kernel (GPUs; run here on whatever device
 * there is, so that it is checked without a GPU) and CLBlast.
 *
 * Shapes: 1s, primes, sizes just off the tile sizes, all four transpose combinations, offsets
 * and leading dimensions wider than the matrices, batches with strides, a batch summed into one
 * C, alpha/beta variants, beta = 0 over NaN, k = 0, alpha = 0. Elements of C's buffer outside the
 * m x n windows are checked to be untouched.
 * Tolerance: |got - ref| <= 1e-3 + 5e-3*|ref| (CLBlast's own test tolerances for fp32); inputs in
 * [-1, 1), k up to ~1000, so fp32 rounding stays near 1e-5 relative. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ops/gemm.h"
#include "ops/tunables.h"
#include "testutil.h"
#include "util/error.h"

static dfr_runtime *rt;
static const dfr_gemm_backend backends[] = {DFR_GEMM_OWN_REG, DFR_GEMM_OWN_LDS,
                                            DFR_GEMM_CLBLAST};
#define N_BACKENDS (sizeof backends / sizeof backends[0])

#define ATOL 1e-3f
#define RTOL 5e-3f
#define CANARY 777.25f /* fills C's buffer outside the windows: must survive */

typedef struct gemm_case {
    int ta, tb, m, n, k;
    float alpha, beta;
    size_t a_off, b_off, c_off; /* offsets */
    size_t a_pad, b_pad, c_pad; /* ld = width + pad */
    int batch;
    int a_shared;  /* a_stride = 0: one A for the whole batch (the weights of a layer) */
    int sum;       /* c_stride = 0: the batch is summed into one C */
    int nan_c;     /* C starts as NaN (with beta = 0) */
} gemm_case;

static float *random_floats(size_t n, uint32_t seed)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = dfr_test_uniform(seed, (uint32_t)i, -1.0f, 1.0f);
    return p;
}

static cl_mem upload(const float *p, size_t n)
{
    cl_mem m;
    size_t bytes = (n ? n : 1) * sizeof(float);
    assert_int_equal(dfr_buffer_new(rt, bytes, CL_MEM_READ_WRITE, "test", &m), DFRCL_OK);
    if (n) assert_int_equal(dfr_write(rt, m, 0, n * sizeof(float), p, "test"), DFRCL_OK);
    return m;
}

/* Element (i, j) of op(X) where X is stored with leading dimension ld. */
static double op_at(const float *x, size_t ld, int trans, int i, int j)
{
    return trans ? x[(size_t)j * ld + (size_t)i] : x[(size_t)i * ld + (size_t)j];
}

/* Runs one case with one backend; returns the number of bad elements. */
static size_t run_case(const gemm_case *t, dfr_gemm_backend be, uint32_t seed)
{
    const int m = t->m, n = t->n, k = t->k, nb = t->batch;
    /* Stored shapes. */
    size_t a_rows = t->ta ? (size_t)k : (size_t)m, a_cols = t->ta ? (size_t)m : (size_t)k;
    size_t b_rows = t->tb ? (size_t)n : (size_t)k, b_cols = t->tb ? (size_t)k : (size_t)n;
    size_t lda = a_cols + t->a_pad, ldb = b_cols + t->b_pad, ldc = (size_t)n + t->c_pad;
    if (lda == 0) lda = 1;
    if (ldb == 0) ldb = 1;
    /* Batch strides: a little more than a matrix, so items do not start aligned. */
    size_t a_str = t->a_shared ? 0 : a_rows * lda + 3, b_str = b_rows * ldb + 5;
    size_t c_str = t->sum ? 0 : (size_t)m * ldc + 2;
    int c_items = t->sum ? 1 : nb;
    size_t na = t->a_off + (size_t)nb * a_str + a_rows * lda, nbf = t->b_off + (size_t)nb * b_str;
    size_t nc = t->c_off + (size_t)c_items * ((size_t)m * ldc + 2) + 7;

    float *a = random_floats(na, seed), *b = random_floats(nbf, seed + 1);
    float *c0 = malloc(nc * sizeof(float)), *ref = malloc(nc * sizeof(float));
    float *got = malloc(nc * sizeof(float));
    assert_true(c0 && ref && got);
    for (size_t i = 0; i < nc; i++) c0[i] = CANARY;
    for (int it = 0; it < c_items; it++)
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                size_t idx = t->c_off + (size_t)it * c_str + (size_t)i * ldc + (size_t)j;
                c0[idx] = t->nan_c ? NAN : dfr_test_uniform(seed + 2, (uint32_t)idx, -1, 1);
            }

    /* Reference. */
    memcpy(ref, c0, nc * sizeof(float));
    for (int it = 0; it < c_items; it++)
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int bi = t->sum ? 0 : it; bi < (t->sum ? nb : it + 1); bi++) {
                    const float *ab = a + t->a_off + (size_t)bi * a_str;
                    const float *bb = b + t->b_off + (size_t)bi * b_str;
                    for (int kk = 0; kk < k; kk++)
                        s += op_at(ab, lda, t->ta, i, kk) * op_at(bb, ldb, t->tb, kk, j);
                }
                size_t idx = t->c_off + (size_t)it * c_str + (size_t)i * ldc + (size_t)j;
                double v = t->alpha * s;
                if (t->beta != 0.0f) v += (double)t->beta * c0[idx];
                ref[idx] = (float)v;
            }

    cl_mem da = upload(a, na), db = upload(b, nbf), dc = upload(c0, nc);
    dfr_gemm_desc g = {
        .trans_a = t->ta, .trans_b = t->tb, .m = m, .n = n, .k = k,
        .alpha = t->alpha, .beta = t->beta,
        .a = da, .a_offset = t->a_off, .lda = lda, .a_stride = a_str,
        .b = db, .b_offset = t->b_off, .ldb = ldb, .b_stride = b_str,
        .c = dc, .c_offset = t->c_off, .ldc = ldc, .c_stride = c_str,
        .batch = nb,
    };
    dfr_gemm_set_backend(rt, be);
    int rc = dfr_gemm(rt, &g, "test");
    if (rc) fprintf(stderr, "%s\n", dfrcl_last_error());
    assert_int_equal(rc, DFRCL_OK);
    assert_int_equal(dfr_read(rt, dc, 0, nc * sizeof(float), got, "test"), DFRCL_OK);

    char what[160];
    snprintf(what, sizeof what, "%s %c%c %dx%dx%d b%d%s a%.1f b%.1f", dfr_gemm_backend_name(be),
             t->ta ? 'T' : 'N', t->tb ? 'T' : 'N', m, n, k, nb, t->sum ? " sum" : "",
             (double)t->alpha, (double)t->beta);
    size_t bad = dfr_test_compare(what, got, ref, nc, ATOL, RTOL);
    if (bad) fprintf(stderr, "%s: %zu bad of %zu\n", what, bad, nc);
    dfr_buffer_release(&da);
    dfr_buffer_release(&db);
    dfr_buffer_release(&dc);
    free(a);
    free(b);
    free(c0);
    free(ref);
    free(got);
    return bad;
}

static void run_cases(const gemm_case *cases, size_t n, uint32_t seed)
{
    size_t bad = 0;
    for (size_t bi = 0; bi < N_BACKENDS; bi++)
        for (size_t i = 0; i < n; i++)
            bad += run_case(&cases[i], backends[bi], seed + (uint32_t)i * 7);
    dfr_gemm_set_backend(rt, DFR_GEMM_AUTO);
    assert_int_equal(bad, 0);
}

/* Shapes around and away from the tile sizes, each transpose combination. */
static void test_shapes(void **state)
{
    (void)state;
    static const int shapes[][3] = {
        {1, 1, 1},   {1, 37, 29},  {37, 1, 29},  {37, 53, 1},   {37, 53, 29},
        {130, 70, 257}, {5, 16, 3}, {64, 64, 16}, {65, 33, 17},  {7, 100, 300},
    };
    gemm_case cases[4 * sizeof shapes / sizeof shapes[0]];
    size_t n = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int tr = 0; tr < 4; tr++)
            cases[n++] = (gemm_case){.ta = tr & 1, .tb = tr >> 1, .m = shapes[s][0],
                                     .n = shapes[s][1], .k = shapes[s][2], .alpha = 1.0f,
                                     .beta = 0.0f, .batch = 1};
    run_cases(cases, n, 100);
}

/* Offsets, padded leading dimensions, batches with strides, sums over the batch, alpha/beta. */
static void test_layouts(void **state)
{
    (void)state;
    static const gemm_case cases[] = {
        {.ta = 0, .tb = 0, .m = 37, .n = 53, .k = 29, .alpha = 1, .beta = 0, .a_off = 5,
         .b_off = 11, .c_off = 3, .a_pad = 4, .b_pad = 9, .c_pad = 6, .batch = 1},
        {.ta = 1, .tb = 0, .m = 37, .n = 53, .k = 29, .alpha = -0.5f, .beta = 1, .a_off = 1,
         .b_off = 2, .c_off = 13, .a_pad = 1, .b_pad = 2, .c_pad = 3, .batch = 3},
        {.ta = 0, .tb = 1, .m = 20, .n = 45, .k = 66, .alpha = 2, .beta = 0.5f, .a_off = 7,
         .c_off = 1, .a_pad = 3, .b_pad = 5, .c_pad = 17, .batch = 3},
        {.ta = 1, .tb = 1, .m = 31, .n = 18, .k = 40, .alpha = 1, .beta = -1, .b_off = 9,
         .c_pad = 1, .batch = 3},
        /* One A for the whole batch (a layer's weights over a batch of images). */
        {.ta = 0, .tb = 0, .m = 30, .n = 70, .k = 45, .alpha = 1, .beta = 0, .batch = 3,
         .a_shared = 1},
        {.ta = 1, .tb = 0, .m = 45, .n = 70, .k = 30, .alpha = 1, .beta = 0.5f, .a_pad = 3,
         .batch = 2, .a_shared = 1},
        /* Batches summed into one C (weight gradients): NT as in DFR, and NN. */
        {.ta = 0, .tb = 1, .m = 29, .n = 41, .k = 64, .alpha = 1, .beta = 1, .a_pad = 2,
         .c_off = 4, .batch = 3, .sum = 1},
        {.ta = 0, .tb = 1, .m = 50, .n = 17, .k = 33, .alpha = 0.25f, .beta = 0, .batch = 4,
         .sum = 1, .nan_c = 1},
        {.ta = 0, .tb = 0, .m = 19, .n = 35, .k = 23, .alpha = 1, .beta = 2, .c_pad = 5,
         .batch = 3, .sum = 1},
        /* beta = 0 over NaN, all transposes. */
        {.ta = 0, .tb = 0, .m = 23, .n = 40, .k = 31, .alpha = 1, .beta = 0, .c_pad = 2,
         .batch = 2, .nan_c = 1},
        {.ta = 1, .tb = 0, .m = 23, .n = 40, .k = 31, .alpha = 1, .beta = 0, .batch = 1,
         .nan_c = 1},
        {.ta = 0, .tb = 1, .m = 23, .n = 40, .k = 31, .alpha = 1, .beta = 0, .batch = 1,
         .nan_c = 1},
        {.ta = 1, .tb = 1, .m = 23, .n = 40, .k = 31, .alpha = 1, .beta = 0, .batch = 2,
         .nan_c = 1},
        /* Nothing to multiply: C = beta*C (and 0 over NaN). */
        {.ta = 0, .tb = 0, .m = 9, .n = 21, .k = 0, .alpha = 1, .beta = 0.5f, .c_pad = 3,
         .batch = 2},
        {.ta = 0, .tb = 1, .m = 9, .n = 21, .k = 0, .alpha = 1, .beta = 0, .batch = 1,
         .nan_c = 1},
        {.ta = 1, .tb = 0, .m = 9, .n = 21, .k = 13, .alpha = 0, .beta = 3, .batch = 1},
    };
    run_cases(cases, sizeof cases / sizeof cases[0], 200);
}

/* A DFR-like layer at small size: Out = W In over a batch, dIn = W^T dOut, dW = sum dOut In^T,
 * with k around a thousand. */
static void test_dfr_layer(void **state)
{
    (void)state;
    static const gemm_case cases[] = {
        {.ta = 0, .tb = 0, .m = 72, .n = 256, .k = 141, .alpha = 1, .beta = 0, .batch = 2},
        {.ta = 1, .tb = 0, .m = 141, .n = 256, .k = 72, .alpha = 1, .beta = 0, .batch = 2},
        {.ta = 0, .tb = 1, .m = 72, .n = 141, .k = 256, .alpha = 1, .beta = 1, .batch = 2,
         .sum = 1},
        {.ta = 1, .tb = 0, .m = 48, .n = 48, .k = 1000, .alpha = 1, .beta = 0, .batch = 1},
    };
    run_cases(cases, sizeof cases / sizeof cases[0], 300);
}

/* The CPU kernel's packing budget exceeded: batch items in groups, then the depth in passes
 * (C accumulated with beta = 1 after the first, a summed batch split across passes). The
 * budget and depth limit are forced small through DFRCL_GEMM_TUNE. */
static void test_splitting(void **state)
{
    (void)state;
    static const gemm_case cases[] = {
        {.ta = 0, .tb = 0, .m = 37, .n = 53, .k = 29, .alpha = 1, .beta = 0, .batch = 3,
         .nan_c = 1},
        {.ta = 1, .tb = 0, .m = 37, .n = 53, .k = 29, .alpha = 1, .beta = 0.5f, .batch = 3,
         .a_shared = 1},
        {.ta = 0, .tb = 1, .m = 29, .n = 41, .k = 64, .alpha = 1, .beta = 1, .batch = 3,
         .sum = 1},
        {.ta = 1, .tb = 1, .m = 20, .n = 33, .k = 50, .alpha = 0.5f, .beta = 0, .batch = 4,
         .sum = 1, .nan_c = 1},
        {.ta = 0, .tb = 0, .m = 64, .n = 300, .k = 200, .alpha = 1, .beta = -1, .batch = 1},
    };
    static const char *const tunes[] = {"pk=8", "pk=2", "kc=7", "pk=1,kc=50"};
    size_t bad = 0;
    for (size_t ti = 0; ti < sizeof tunes / sizeof tunes[0]; ti++) {
        dfr_test_setenv(rt, "DFRCL_GEMM_TUNE", tunes[ti]);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            bad += run_case(&cases[i], DFR_GEMM_OWN_REG, 400 + (uint32_t)(i + 10 * ti));
    }
    dfr_test_setenv(rt, "DFRCL_GEMM_TUNE", NULL);
    dfr_gemm_set_backend(rt, DFR_GEMM_AUTO);
    assert_int_equal(bad, 0);
}

/* Both own kernels with every device class's defaults from the tunables table (the GPU's
 * 64 x 64 local-memory tiles, which the other tests, run on a CPU, do not use) and the table's
 * test variants. */
static void test_table_variants(void **state)
{
    (void)state;
    static const gemm_case cases[] = {
        {.ta = 0, .tb = 0, .m = 130, .n = 70, .k = 257, .alpha = 1, .beta = 0, .batch = 1},
        {.ta = 1, .tb = 0, .m = 65, .n = 129, .k = 33, .alpha = 1, .beta = 0.5f, .a_pad = 3,
         .c_pad = 2, .a_off = 1, .batch = 2},
        {.ta = 0, .tb = 1, .m = 37, .n = 53, .k = 29, .alpha = 1, .beta = 0, .batch = 3, .sum = 1,
         .nan_c = 1},
        {.ta = 1, .tb = 1, .m = 1, .n = 64, .k = 17, .alpha = -1, .beta = 1, .batch = 2},
        {.ta = 0, .tb = 0, .m = 64, .n = 1, .k = 1, .alpha = 1, .beta = 0, .batch = 1,
         .a_shared = 1},
    };
    const dfr_tune_kernel *tk = &dfr_tune_kernels[DFR_TK_GEMM];
    char tunes[DFR_NCLASS + 6][DFR_TUNE_STR];
    int nt = dfr_tune_test_variants(tk, tunes, DFR_NCLASS + 6);
    size_t bad = 0;
    for (int t = 0; t < nt; t++) {
        dfr_test_setenv(rt, "DFRCL_GEMM_TUNE", tunes[t]);
        size_t before = bad;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            bad += run_case(&cases[i], DFR_GEMM_OWN_LDS, 500 + (uint32_t)i);
            bad += run_case(&cases[i], DFR_GEMM_OWN_REG, 600 + (uint32_t)i);
        }
        if (bad > before) fprintf(stderr, "gemm with %s: %zu bad\n", tunes[t], bad - before);
    }
    dfr_test_setenv(rt, "DFRCL_GEMM_TUNE", NULL);
    dfr_gemm_set_backend(rt, DFR_GEMM_AUTO);
    assert_int_equal(bad, 0);
}

/* Bad arguments are refused with a message, and nothing is launched. */
static void test_errors(void **state)
{
    (void)state;
    cl_mem buf;
    assert_int_equal(dfr_buffer_new(rt, 100 * sizeof(float), CL_MEM_READ_WRITE, "t", &buf), 0);
    cl_mem other;
    assert_int_equal(dfr_buffer_new(rt, 100 * sizeof(float), CL_MEM_READ_WRITE, "t", &other), 0);
    dfr_gemm_desc ok = {.m = 5, .n = 5, .k = 5, .alpha = 1, .a = buf, .lda = 5, .b = buf,
                        .b_offset = 25, .ldb = 5, .c = other, .ldc = 5, .batch = 1};
    assert_int_equal(dfr_gemm(rt, &ok, "t"), DFRCL_OK);
    dfr_gemm_desc g;
    g = ok, g.m = -1;
    assert_int_equal(dfr_gemm(rt, &g, "t"), DFRCL_ERR_INVALID_ARG);
    g = ok, g.batch = 0;
    assert_int_equal(dfr_gemm(rt, &g, "t"), DFRCL_ERR_INVALID_ARG);
    g = ok, g.lda = 4; /* narrower than k */
    assert_int_equal(dfr_gemm(rt, &g, "t"), DFRCL_ERR_INVALID_ARG);
    assert_non_null(strstr(dfrcl_last_error(), "ldA"));
    g = ok, g.trans_a = 1, g.m = 6, g.lda = 5; /* stored k x m: ld must be >= m */
    assert_int_equal(dfr_gemm(rt, &g, "t"), DFRCL_ERR_INVALID_ARG);
    g = ok, g.b_offset = 80; /* reaches past the buffer */
    assert_int_equal(dfr_gemm(rt, &g, "t"), DFRCL_ERR_INVALID_ARG);
    assert_non_null(strstr(dfrcl_last_error(), "past its buffer"));
    g = ok, g.batch = 4, g.b_stride = 25; /* the 4th B ends at 25 + 3*25 + 25 > 100 */
    assert_int_equal(dfr_gemm(rt, &g, "t"), DFRCL_ERR_INVALID_ARG);
    g = ok, g.c_offset = (size_t)-1; /* overflows */
    assert_int_equal(dfr_gemm(rt, &g, "t"), DFRCL_ERR_INVALID_ARG);
    g = ok, g.c = buf, g.c_offset = 40; /* C overlaps B */
    assert_int_equal(dfr_gemm(rt, &g, "t"), DFRCL_ERR_INVALID_ARG);
    assert_non_null(strstr(dfrcl_last_error(), "shares"));
    g = ok, g.c = buf, g.c_offset = 50; /* C after A and B: allowed */
    assert_int_equal(dfr_gemm(rt, &g, "t"), DFRCL_OK);
    g = ok, g.a = NULL;
    assert_int_equal(dfr_gemm(rt, &g, "t"), DFRCL_ERR_INVALID_ARG);
    g = ok, g.m = 0, g.c = NULL; /* empty: nothing checked, nothing done */
    assert_int_equal(dfr_gemm(rt, &g, "t"), DFRCL_OK);
    assert_int_equal(dfr_gemm(rt, NULL, "t"), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_finish(rt), DFRCL_OK);
    dfr_buffer_release(&buf);
    dfr_buffer_release(&other);
}

/* The backend choice: explicit setting, then DFRCL_GEMM, then the device type. */
static void test_backend_choice(void **state)
{
    (void)state;
    dfr_test_setenv(rt, "DFRCL_GEMM", NULL);
    dfr_gemm_set_backend(rt, DFR_GEMM_AUTO);
    dfr_gemm_backend def = dfr_gemm_backend_in_use(rt);
    assert_int_equal(def, rt->info.is_cpu ? DFR_GEMM_OWN_REG : DFR_GEMM_CLBLAST);
    dfr_test_setenv(rt, "DFRCL_GEMM", "clblast");
    assert_int_equal(dfr_gemm_backend_in_use(rt), DFR_GEMM_CLBLAST);
    dfr_test_setenv(rt, "DFRCL_GEMM", "own");
    assert_int_equal(dfr_gemm_backend_in_use(rt),
                     rt->info.is_cpu ? DFR_GEMM_OWN_REG : DFR_GEMM_OWN_LDS);
    dfr_gemm_set_backend(rt, DFR_GEMM_OWN_LDS); /* explicit beats the environment */
    assert_int_equal(dfr_gemm_backend_in_use(rt), DFR_GEMM_OWN_LDS);
    dfr_gemm_set_backend(rt, DFR_GEMM_AUTO);
    dfr_test_setenv(rt, "DFRCL_GEMM", "bogus");
    assert_int_equal(dfr_gemm_backend_in_use(rt), def);
    dfr_test_setenv(rt, "DFRCL_GEMM", NULL);
    /* Inconsistent tunables are refused with a message, not a build failure. */
    dfr_test_setenv(rt, "DFRCL_GEMM_TUNE", "vw=3");
    dfr_gemm_set_backend(rt, DFR_GEMM_OWN_REG);
    cl_mem buf;
    assert_int_equal(dfr_buffer_new(rt, 64 * sizeof(float), CL_MEM_READ_WRITE, "t", &buf), 0);
    dfr_gemm_desc g = {.m = 4, .n = 4, .k = 4, .alpha = 1, .a = buf, .lda = 4, .b = buf,
                       .b_offset = 16, .ldb = 4, .c = buf, .c_offset = 32, .ldc = 4, .batch = 1};
    assert_int_equal(dfr_gemm(rt, &g, "t"), DFRCL_ERR_INVALID_ARG);
    assert_non_null(strstr(dfrcl_last_error(), "tunables"));
    dfr_test_setenv(rt, "DFRCL_GEMM_TUNE", NULL);
    assert_int_equal(dfr_gemm(rt, &g, "t"), DFRCL_OK);
    dfr_gemm_set_backend(rt, DFR_GEMM_AUTO);
    assert_int_equal(dfr_finish(rt), DFRCL_OK);
    dfr_buffer_release(&buf);
}

int main(void)
{
    DFR_TEST_OPEN_RUNTIME(&rt);
    /* The tunables the tests see are the device's defaults, whatever the caller's shell says. */
    dfr_test_setenv(rt, "DFRCL_GEMM_TUNE", NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),         cmocka_unit_test(test_layouts),
        cmocka_unit_test(test_dfr_layer),      cmocka_unit_test(test_splitting),
        cmocka_unit_test(test_table_variants),   cmocka_unit_test(test_errors),
        cmocka_unit_test(test_backend_choice),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    dfr_gemm_release(rt);
    dfr_runtime_close(&rt);
    return failed;
}
