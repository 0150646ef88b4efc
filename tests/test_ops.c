/* Each small kernel (preprocess, max pool, regional aggregation, squared error, upsampling)
 * against a plain C reference, on random inputs of awkward sizes. Outputs are poisoned before
 * each run so an element the kernel fails to write is caught. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ops/ops.h"
#include "ops/tunables.h"
#include "testutil.h"
#include "util/error.h"

static dfr_runtime *rt;

/* ---- plain C references ---- */

static void ref_align(int o, int n_in, int n_out, int *i0, int *i1, float *l1)
{
    float scale = n_out > 1 ? (float)(n_in - 1) / (float)(n_out - 1) : 0.0f;
    float src = scale * (float)o;
    int i = (int)src;
    if (i > n_in - 1) i = n_in - 1;
    *i0 = i;
    *i1 = i < n_in - 1 ? i + 1 : i;
    *l1 = src - (float)i;
}

static float ref_bilinear(const float *m, int h, int w, int H, int W, int y, int x)
{
    int x0, x1, y0, y1;
    float lx, ly;
    ref_align(x, w, W, &x0, &x1, &lx);
    ref_align(y, h, H, &y0, &y1, &ly);
    float top = (1 - lx) * m[y0 * w + x0] + lx * m[y0 * w + x1];
    float bot = (1 - lx) * m[y1 * w + x0] + lx * m[y1 * w + x1];
    return (1 - ly) * top + ly * bot;
}

/* ---- helpers ---- */

static cl_mem upload(const void *p, size_t bytes)
{
    cl_mem m;
    assert_int_equal(dfr_buffer_new(rt, bytes, CL_MEM_READ_WRITE, "test", &m), DFRCL_OK);
    assert_int_equal(dfr_write(rt, m, 0, bytes, p, "test"), DFRCL_OK);
    return m;
}

static float *random_floats(size_t n, uint32_t seed, float lo, float hi)
{
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = dfr_test_uniform(seed, (uint32_t)i, lo, hi);
    return p;
}

/* ---- tests ---- */

static void test_preprocess(void **state)
{
    (void)state;
    static const int shapes[][3] = {{1, 1, 3}, {7, 5, 3}, {33, 17, 1}, {64, 64, 3}};
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std_[3] = {0.229f, 0.224f, 0.225f};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int w = shapes[s][0], h = shapes[s][1], ch = shapes[s][2];
        size_t n = (size_t)w * h;
        uint8_t *px = malloc(n * ch);
        for (size_t i = 0; i < n * ch; i++) px[i] = (uint8_t)(dfr_test_hash(11, (uint32_t)i) >> 24);
        float *out = malloc(3 * n * sizeof(float)), *ref = malloc(3 * n * sizeof(float));
        dfr_test_poison(out, 3 * n);
        for (int c = 0; c < 3; c++)
            for (size_t p = 0; p < n; p++)
                ref[c * n + p] = ((float)px[p * ch + (ch == 3 ? c : 0)] / 255.0f - mean[c]) / std_[c];
        cl_mem src = upload(px, n * ch), dst = upload(out, 3 * n * sizeof(float));
        assert_int_equal(dfr_op_preprocess(rt, src, w, h, ch, dst), DFRCL_OK);
        assert_int_equal(dfr_read(rt, dst, 0, 3 * n * sizeof(float), out, "test"), DFRCL_OK);
        assert_int_equal(dfr_test_compare("preprocess", out, ref, 3 * n, 1e-6f, 1e-6f), 0);
        dfr_buffer_release(&src);
        dfr_buffer_release(&dst);
        free(px);
        free(out);
        free(ref);
    }
    cl_mem dummy = NULL;
    assert_int_equal(dfr_op_preprocess(rt, dummy, 4, 4, 2, dummy), DFRCL_ERR_INVALID_ARG);
}

static void test_maxpool(void **state)
{
    (void)state;
    static const int shapes[][3] = {{1, 2, 2}, {3, 5, 7}, {2, 17, 16}, {64, 32, 33}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int c = shapes[s][0], h = shapes[s][1], w = shapes[s][2], oh = h / 2, ow = w / 2;
        size_t n = (size_t)c * h * w, on = (size_t)c * oh * ow;
        float *in = random_floats(n, 21 + (uint32_t)s, -3, 3);
        float *out = malloc(on * sizeof(float)), *ref = malloc(on * sizeof(float));
        dfr_test_poison(out, on);
        for (int k = 0; k < c; k++)
            for (int y = 0; y < oh; y++)
                for (int x = 0; x < ow; x++) {
                    const float *p = in + ((size_t)k * h + 2 * y) * w + 2 * x;
                    float m = p[0];
                    if (p[1] > m) m = p[1];
                    if (p[w] > m) m = p[w];
                    if (p[w + 1] > m) m = p[w + 1];
                    ref[((size_t)k * oh + y) * ow + x] = m;
                }
        cl_mem din = upload(in, n * sizeof(float)), dout = upload(out, on * sizeof(float));
        assert_int_equal(dfr_op_maxpool2(rt, din, dout, c, h, w), DFRCL_OK);
        assert_int_equal(dfr_read(rt, dout, 0, on * sizeof(float), out, "test"), DFRCL_OK);
        assert_int_equal(dfr_test_compare("maxpool", out, ref, on, 0, 0), 0);
        dfr_buffer_release(&din);
        dfr_buffer_release(&dout);
        free(in);
        free(out);
        free(ref);
    }
}

/* Regional: the reference materialises the size x size map, as PyTorch does, then averages.
 * Cases: odd sizes, h or w = 1, maps as large as size (plain 4x4 pooling) or just below, a size
 * whose size/4 is not a multiple of the kernel's vector width, channel counts that do not fill
 * the per-work-item channel group, offsets into a larger feature. Channels outside
 * [c_offset, c_offset + c) must stay untouched. */
static const int regional_cases[][6] = {
    /* {c, h, w, size, c_offset, c_total} */
    {1, 1, 1, 4, 0, 1},       {1, 2, 2, 8, 0, 1},        {3, 5, 7, 12, 2, 6},
    {5, 16, 16, 16, 0, 5},    {2, 17, 9, 32, 1, 4},      {4, 32, 32, 64, 4, 9},
    {2, 4, 4, 4, 0, 2},       {3, 1, 40, 40, 0, 3},      {2, 40, 1, 40, 1, 3},
    {9, 100, 3, 300, 1, 10},  {1, 7, 130, 132, 0, 1},    {2, 255, 250, 256, 0, 2},
    {3, 256, 256, 256, 0, 3}, {13, 64, 64, 256, 3, 20},  {17, 32, 32, 256, 0, 17},
};
#define N_REGIONAL_CASES (sizeof regional_cases / sizeof regional_cases[0])

/* Runs the cases listed in `which` (all when NULL) and compares with the reference. */
static void regional_check(const int *which, size_t n_which, const char *tune)
{
    size_t n_cases = which ? n_which : N_REGIONAL_CASES;
    for (size_t i = 0; i < n_cases; i++) {
        size_t s = which ? (size_t)which[i] : i;
        const int *cs = regional_cases[s];
        int c = cs[0], h = cs[1], w = cs[2], S = cs[3], off = cs[4], tot = cs[5], q = S / 4;
        size_t n = (size_t)c * h * w, on = (size_t)tot * q * q;
        float *in = random_floats(n, 31 + (uint32_t)s, 0, 4);
        float *out = malloc(on * sizeof(float)), *ref = malloc(on * sizeof(float));
        float *big = malloc((size_t)S * S * sizeof(float));
        assert_non_null(out);
        assert_non_null(ref);
        assert_non_null(big);
        dfr_test_poison(out, on);
        dfr_test_poison(ref, on); /* channels outside [off, off+c) must stay untouched */
        for (int k = 0; k < c; k++) {
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++)
                    big[y * S + x] = ref_bilinear(in + (size_t)k * h * w, h, w, S, S, y, x);
            for (int oy = 0; oy < q; oy++)
                for (int ox = 0; ox < q; ox++) {
                    double acc = 0;
                    for (int dy = 0; dy < 4; dy++)
                        for (int dx = 0; dx < 4; dx++) acc += big[(4 * oy + dy) * S + 4 * ox + dx];
                    ref[((size_t)(off + k) * q + oy) * q + ox] = (float)(acc / 16);
                }
        }
        cl_mem din = upload(in, n * sizeof(float)), dout = upload(out, on * sizeof(float));
        assert_int_equal(dfr_op_regional(rt, din, c, h, w, S, dout, off, tot), DFRCL_OK);
        assert_int_equal(dfr_read(rt, dout, 0, on * sizeof(float), out, "test"), DFRCL_OK);
        size_t bad = dfr_test_compare("regional", out, ref, on, 1e-5f, 1e-5f);
        if (bad)
            fprintf(stderr, "regional: %zu wrong for map [%d, %d, %d], size %d, channels %d of %d, "
                            "tune %s\n", bad, c, h, w, S, off, tot, tune ? tune : "default");
        assert_int_equal(bad, 0);
        dfr_buffer_release(&din);
        dfr_buffer_release(&dout);
        free(in);
        free(out);
        free(ref);
        free(big);
    }
}

static void test_regional(void **state)
{
    (void)state;
    regional_check(NULL, 0, NULL);
    /* Other tile shapes from the tunables table: every device class's defaults (the GPU's: one
     * output per work-item) and the test variants (the widest vector, explicit work-groups that
     * round the grid up); on a few edge cases each, since every shape is a kernel build. */
    const dfr_tune_kernel *tk = &dfr_tune_kernels[DFR_TK_REGIONAL];
    char tunes[DFR_NCLASS + 6][DFR_TUNE_STR];
    int nt = dfr_tune_test_variants(tk, tunes, DFR_NCLASS + 6);
    static const int edge_cases[] = {2, 7, 8, 9, 13};
    for (int i = 0; i < nt; i++) {
        dfr_test_setenv(rt, "DFRCL_REGIONAL_TUNE", tunes[i]);
        regional_check(edge_cases, sizeof edge_cases / sizeof edge_cases[0], tunes[i]);
    }
    dfr_test_setenv(rt, "DFRCL_REGIONAL_TUNE", NULL);

    cl_mem dummy = NULL;
    assert_int_equal(dfr_op_regional(rt, dummy, 2, 4, 4, 10, dummy, 0, 2), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_op_regional(rt, dummy, 2, 4, 4, 8, dummy, 1, 2), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_op_regional(rt, dummy, 2, 9, 4, 8, dummy, 0, 2), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_op_regional(rt, dummy, 2, 4, 4, 8, dummy, 2147483647, 2147483647),
                     DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_op_regional(rt, dummy, 2, 4, 4, 8, dummy, 0, 2), DFRCL_ERR_INVALID_ARG);
    /* buffers smaller than the shapes say */
    float zeros[64] = {0};
    cl_mem map = upload(zeros, sizeof zeros); /* 64 floats each */
    cl_mem feat = upload(zeros, sizeof zeros);
    assert_int_equal(dfr_op_regional(rt, map, 5, 4, 4, 8, feat, 0, 5), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_op_regional(rt, map, 1, 4, 4, 32, feat, 0, 2), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_op_regional(rt, map, 1, 4, 4, 8, feat, 0, 16), DFRCL_OK);
    /* a malformed tuning string is refused, not ignored */
    dfr_test_setenv(rt, "DFRCL_REGIONAL_TUNE", "3,1,1");
    assert_int_equal(dfr_op_regional(rt, map, 1, 4, 4, 8, feat, 0, 16), DFRCL_ERR_INVALID_ARG);
    dfr_test_setenv(rt, "DFRCL_REGIONAL_TUNE", "8,4,8,1,1");
    assert_int_equal(dfr_op_regional(rt, map, 1, 4, 4, 8, feat, 0, 16), DFRCL_ERR_INVALID_ARG);
    dfr_test_setenv(rt, "DFRCL_REGIONAL_TUNE", NULL);
    assert_int_equal(dfr_finish(rt), DFRCL_OK);
    dfr_buffer_release(&map);
    dfr_buffer_release(&feat);
}

static void sqerr_check(void)
{
    static const int cases[][3] = {{1, 1, 1}, {2, 3, 7}, {3, 70, 33}, {1, 1408, 64}};
    for (size_t s = 0; s < sizeof cases / sizeof cases[0]; s++) {
        int b = cases[s][0], c = cases[s][1], np = cases[s][2];
        size_t n = (size_t)b * c * np;
        float *a = random_floats(n, 41 + (uint32_t)s, -2, 2);
        float *r = random_floats(n, 51 + (uint32_t)s, -2, 2);
        float *out = malloc((size_t)b * np * sizeof(float)), *ref = malloc((size_t)b * np * sizeof(float));
        dfr_test_poison(out, (size_t)b * np);
        for (int i = 0; i < b; i++)
            for (int p = 0; p < np; p++) {
                double acc = 0;
                for (int k = 0; k < c; k++) {
                    double d = (double)a[((size_t)i * c + k) * np + p] - r[((size_t)i * c + k) * np + p];
                    acc += d * d;
                }
                ref[(size_t)i * np + p] = (float)(acc / c);
            }
        cl_mem da = upload(a, n * sizeof(float)), dr = upload(r, n * sizeof(float));
        cl_mem ds = upload(out, (size_t)b * np * sizeof(float));
        assert_int_equal(dfr_op_sqerr_mean(rt, da, dr, b, c, np, ds), DFRCL_OK);
        assert_int_equal(dfr_read(rt, ds, 0, (size_t)b * np * sizeof(float), out, "test"), DFRCL_OK);
        assert_int_equal(dfr_test_compare("sqerr", out, ref, (size_t)b * np, 1e-6f, 1e-5f), 0);
        dfr_buffer_release(&da);
        dfr_buffer_release(&dr);
        dfr_buffer_release(&ds);
        free(a);
        free(r);
        free(out);
        free(ref);
    }
}

/* The default variant, then the tunables table's score variants (vector widths, work-groups). */
static void test_sqerr_mean(void **state)
{
    (void)state;
    dfr_test_setenv(rt, "DFRCL_SCORE_TUNE", NULL);
    sqerr_check();
    const dfr_tune_kernel *tk = &dfr_tune_kernels[DFR_TK_SCORE];
    for (int i = 0; i < 6 && tk->test_variants[i]; i++) {
        dfr_test_setenv(rt, "DFRCL_SCORE_TUNE", tk->test_variants[i]);
        sqerr_check();
    }
    dfr_test_setenv(rt, "DFRCL_SCORE_TUNE", NULL);
}

static void test_upsample(void **state)
{
    (void)state;
    /* {n, h, w, H, W} */
    static const int cases[][5] = {{1, 1, 1, 3, 3}, {1, 2, 2, 5, 9}, {2, 7, 5, 7, 5}, {3, 16, 16, 64, 64}, {1, 9, 13, 31, 17}};
    for (size_t s = 0; s < sizeof cases / sizeof cases[0]; s++) {
        int nn = cases[s][0], h = cases[s][1], w = cases[s][2], H = cases[s][3], W = cases[s][4];
        size_t n = (size_t)nn * h * w, on = (size_t)nn * H * W;
        float *in = random_floats(n, 61 + (uint32_t)s, 0, 10);
        float *out = malloc(on * sizeof(float)), *ref = malloc(on * sizeof(float));
        dfr_test_poison(out, on);
        for (int k = 0; k < nn; k++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    ref[((size_t)k * H + y) * W + x] = ref_bilinear(in + (size_t)k * h * w, h, w, H, W, y, x);
        cl_mem din = upload(in, n * sizeof(float)), dout = upload(out, on * sizeof(float));
        assert_int_equal(dfr_op_upsample(rt, din, nn, h, w, dout, H, W), DFRCL_OK);
        assert_int_equal(dfr_read(rt, dout, 0, on * sizeof(float), out, "test"), DFRCL_OK);
        assert_int_equal(dfr_test_compare("upsample", out, ref, on, 1e-5f, 1e-5f), 0);
        dfr_buffer_release(&din);
        dfr_buffer_release(&dout);
        free(in);
        free(out);
        free(ref);
    }
}

int main(void)
{
    DFR_TEST_OPEN_RUNTIME(&rt);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_preprocess), cmocka_unit_test(test_maxpool),
        cmocka_unit_test(test_regional),   cmocka_unit_test(test_sqerr_mean),
        cmocka_unit_test(test_upsample),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    dfr_runtime_close(&rt);
    return failed;
}
