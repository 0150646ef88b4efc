/* Each small kernel (preprocess, max pool, regional aggregation, squared error, upsampling, the
 * autoencoder's BatchNorm, bias, loss, Adam and folding) against a plain C reference, on random inputs of awkward sizes. Outputs are poisoned before
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
#include "util/half.h"

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

/* ---- the autoencoder's kernels (src/ops/cae_ops.c) ----
 * Each against a plain C reference in double (or in float where the kernel's arithmetic is
 * elementwise and exact to mirror), with tensors at awkward offsets inside flat buffers, rows
 * that are not multiples of the work-group size, and every output poisoned first. */

static float *poisoned(size_t n)
{
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    dfr_test_poison(p, n);
    return p;
}

static void download(cl_mem m, float *dst, size_t n)
{
    assert_int_equal(dfr_read(rt, m, 0, n * sizeof(float), dst, "test"), DFRCL_OK);
}

/* A BatchNorm over nch channels: params [5 | gamma | 1 | beta | 2 | bias | 3], running
 * [2 | mean | 1 | var] (the gaps are poison: no kernel may write there). */
typedef struct bn_host {
    int nch;
    size_t np, nr;
    float *params, *running;
    dfr_cae_bn bn;
} bn_host;

static void bn_host_make(bn_host *h, int nch, uint32_t seed)
{
    h->nch = nch;
    h->np = 5 + (size_t)nch + 1 + nch + 2 + nch + 3;
    h->nr = 2 + (size_t)nch + 1 + nch;
    h->params = poisoned(h->np);
    h->running = poisoned(h->nr);
    h->bn = (dfr_cae_bn){.gamma_off = 5, .beta_off = 6 + nch, .bias_off = 8 + 2 * nch,
                         .mean_off = 2, .var_off = 3 + nch};
    for (int c = 0; c < nch; c++) {
        h->params[h->bn.gamma_off + c] = dfr_test_uniform(seed, (uint32_t)c, 0.5f, 1.5f);
        h->params[h->bn.beta_off + c] = dfr_test_uniform(seed + 1, (uint32_t)c, -0.5f, 0.5f);
        h->params[h->bn.bias_off + c] = dfr_test_uniform(seed + 2, (uint32_t)c, -1, 1);
        h->running[h->bn.mean_off + c] = dfr_test_uniform(seed + 3, (uint32_t)c, -1, 1);
        h->running[h->bn.var_off + c] = dfr_test_uniform(seed + 4, (uint32_t)c, 0.1f, 2);
    }
    h->bn.params = upload(h->params, h->np * sizeof(float));
    h->bn.running = upload(h->running, h->nr * sizeof(float));
}

static void bn_host_free(bn_host *h)
{
    dfr_buffer_release(&h->bn.params);
    dfr_buffer_release(&h->bn.running);
    dfr_buffer_release(&h->bn.stats);
    free(h->params);
    free(h->running);
}

static const float T_MOM = 0.1f, T_EPS = 1e-5f;

/* {nch, n}: n = 2 (the least), below, at and past the work-group size, not multiples of it. */
static const int bn_cases[][2] = {{1, 2}, {3, 7}, {5, 257}, {2, 1000}};

static void bn_forward_check(void)
{
    for (size_t s = 0; s < sizeof bn_cases / sizeof bn_cases[0]; s++) {
        int nch = bn_cases[s][0], n = bn_cases[s][1];
        size_t zn = (size_t)nch * n;
        bn_host h;
        bn_host_make(&h, nch, 100 + (uint32_t)s);
        float *z = random_floats(zn, 110 + (uint32_t)s, -2, 3), *a = poisoned(zn);
        float *st = poisoned(2 * (size_t)nch);
        float *ra = malloc(zn * sizeof(float)), *rst = malloc(2 * nch * sizeof(float));
        float *rr = malloc(h.nr * sizeof(float));
        memcpy(rr, h.running, h.nr * sizeof(float));
        for (int c = 0; c < nch; c++) {
            const float *zr = z + (size_t)c * n;
            double mean = 0, q = 0;
            for (int i = 0; i < n; i++) mean += zr[i];
            mean /= n;
            for (int i = 0; i < n; i++) q += (zr[i] - mean) * (zr[i] - mean);
            double invstd = 1 / sqrt(q / n + T_EPS);
            double g = h.params[h.bn.gamma_off + c], be = h.params[h.bn.beta_off + c];
            for (int i = 0; i < n; i++) {
                double y = (zr[i] - mean) * invstd * g + be;
                ra[(size_t)c * n + i] = y > 0 ? (float)y : 0.0f;
            }
            rst[c] = (float)mean;
            rst[nch + c] = (float)invstd;
            float *rm = &rr[h.bn.mean_off + c], *rv = &rr[h.bn.var_off + c];
            *rm = (float)(T_MOM * (mean + h.params[h.bn.bias_off + c]) + (1 - T_MOM) * *rm);
            *rv = (float)(T_MOM * (q / (n - 1)) + (1 - T_MOM) * *rv);
        }
        cl_mem dz = upload(z, zn * sizeof(float)), da = upload(a, zn * sizeof(float));
        h.bn.stats = upload(st, 2 * nch * sizeof(float));
        assert_int_equal(dfr_op_cae_bn_forward(rt, dz, n, nch, &h.bn, T_MOM, T_EPS, da), 0);
        download(da, a, zn);
        download(h.bn.stats, st, 2 * (size_t)nch);
        download(h.bn.running, h.running, h.nr);
        assert_int_equal(dfr_test_compare("bn_forward a", a, ra, zn, 1e-5f, 1e-4f), 0);
        assert_int_equal(dfr_test_compare("bn_forward stats", st, rst, 2 * (size_t)nch, 1e-5f,
                                          1e-4f), 0);
        assert_int_equal(dfr_test_compare("bn_forward running", h.running, rr, h.nr, 1e-5f,
                                          1e-4f), 0);
        dfr_buffer_release(&dz);
        dfr_buffer_release(&da);
        bn_host_free(&h);
        free(z), free(a), free(st), free(ra), free(rst), free(rr);
    }
}

static void bn_backward_check(void)
{
    for (size_t s = 0; s < sizeof bn_cases / sizeof bn_cases[0]; s++) {
        int nch = bn_cases[s][0], n = bn_cases[s][1];
        size_t zn = (size_t)nch * n;
        bn_host h;
        bn_host_make(&h, nch, 200 + (uint32_t)s);
        float *z = random_floats(zn, 210 + (uint32_t)s, -2, 3);
        float *dA = random_floats(zn, 220 + (uint32_t)s, -1, 1);
        float *st = malloc(2 * nch * sizeof(float)), *gr = poisoned(h.np);
        float *rz = malloc(zn * sizeof(float)), *rg = poisoned(h.np);
        for (int c = 0; c < nch; c++) {
            st[c] = dfr_test_uniform(230, (uint32_t)c, -0.5f, 0.5f);
            st[nch + c] = dfr_test_uniform(231, (uint32_t)c, 0.5f, 2);
            float mean = st[c], invstd = st[nch + c], gamma = h.params[h.bn.gamma_off + c];
            /* The ReLU mask exactly as the kernel computes it (cae_bn_affine, fma). */
            float alpha = gamma * invstd, shift = h.params[h.bn.beta_off + c] - mean * alpha;
            const float *zr = z + (size_t)c * n, *dr = dA + (size_t)c * n;
            double s1 = 0, s2 = 0;
            for (int i = 0; i < n; i++) {
                double dy = fmaf(zr[i], alpha, shift) > 0 ? dr[i] : 0;
                s1 += dy;
                s2 += dy * ((double)zr[i] - mean) * invstd;
            }
            rg[h.bn.gamma_off + c] = (float)s2;
            rg[h.bn.beta_off + c] = (float)s1;
            for (int i = 0; i < n; i++) {
                double dy = fmaf(zr[i], alpha, shift) > 0 ? dr[i] : 0;
                double xh = ((double)zr[i] - mean) * invstd;
                rz[(size_t)c * n + i] = (float)((double)gamma * invstd * (dy - s1 / n - xh * s2 / n));
            }
        }
        cl_mem dz = upload(z, zn * sizeof(float)), dda = upload(dA, zn * sizeof(float));
        cl_mem dg = upload(gr, h.np * sizeof(float));
        h.bn.stats = upload(st, 2 * nch * sizeof(float));
        assert_int_equal(dfr_op_cae_bn_backward(rt, dz, dda, n, nch, &h.bn, dg), 0);
        download(dz, z, zn);
        download(dg, gr, h.np);
        assert_int_equal(dfr_test_compare("bn_backward dz", z, rz, zn, 1e-4f, 1e-3f), 0);
        assert_int_equal(dfr_test_compare("bn_backward grads", gr, rg, h.np, 1e-4f, 1e-4f), 0);
        dfr_buffer_release(&dz);
        dfr_buffer_release(&dda);
        dfr_buffer_release(&dg);
        bn_host_free(&h);
        free(z), free(dA), free(st), free(gr), free(rz), free(rg);
    }
}

/* The reductions with the default work-group size, then the tunables table's test variants. */
static void test_cae_bn(void **state)
{
    (void)state;
    const dfr_tune_kernel *tk = &dfr_tune_kernels[DFR_TK_CAE];
    for (int i = -1; i < 6 && (i < 0 || tk->test_variants[i]); i++) {
        dfr_test_setenv(rt, "DFRCL_CAE_LS", i < 0 ? NULL : tk->test_variants[i]);
        bn_forward_check();
        bn_backward_check();
    }
    dfr_test_setenv(rt, "DFRCL_CAE_LS", NULL);
}

/* fp32 and fp16 storage, with and without ReLU; rows = batch * nch with nch not dividing n. */
static void test_cae_bias_act(void **state)
{
    (void)state;
    const int nch = 5, rows = 3 * nch, n = 37, boff = 4;
    size_t yn = (size_t)rows * n;
    float *params = random_floats(boff + nch + 2, 300, -1, 1);
    cl_mem dp = upload(params, (boff + nch + 2) * sizeof(float));
    for (int half = 0; half < 2; half++)
        for (int relu = 0; relu < 2; relu++) {
            float *y = random_floats(yn, 310 + (uint32_t)(2 * half + relu), -2, 2);
            float *ref = malloc(yn * sizeof(float)), *got = poisoned(yn);
            uint16_t *yh = malloc(yn * sizeof *yh);
            for (size_t k = 0; k < yn; k++) {
                if (half) y[k] = dfr_round_half(y[k]);
                float v = y[k] + params[boff + (int)(k / n) % nch];
                if (relu && v < 0) v = 0;
                ref[k] = half ? dfr_round_half(v) : v;
                yh[k] = dfr_float_to_half(y[k]);
            }
            cl_mem dy = half ? upload(yh, yn * 2) : upload(y, yn * sizeof(float));
            assert_int_equal(dfr_op_cae_bias_act(rt, dy, n, rows, nch, dp, boff, relu, half), 0);
            if (half) {
                assert_int_equal(dfr_read(rt, dy, 0, yn * 2, yh, "test"), DFRCL_OK);
                for (size_t k = 0; k < yn; k++) got[k] = dfr_half_to_float(yh[k]);
            } else {
                download(dy, got, yn);
            }
            assert_int_equal(dfr_test_compare("bias_act", got, ref, yn, 0, 0), 0);
            dfr_buffer_release(&dy);
            free(y), free(ref), free(got), free(yh);
        }
    dfr_buffer_release(&dp);
    free(params);
}

/* The loss's two passes, chained as in training, with and without the kept output. */
static void mse_check(int batch, int nch, int npos, int keep_on)
{
    int rows = batch * nch, boff = 3, dboff = 1;
    size_t on = (size_t)rows * npos, xoff = 11;
    float *out = random_floats(on, 400, -1, 1), *x = random_floats(on + xoff, 401, -1, 1);
    float *params = random_floats(boff + nch, 402, -1, 1);
    float *keep = poisoned(on), *part = poisoned(2 * (size_t)rows);
    float *grads = poisoned(dboff + nch + 2), *loss = poisoned(3);
    loss[1] = 1.5f, loss[2] = 2.0f; /* the epoch accumulator so far */
    float count = (float)((double)rows * npos), inv_n = 1.0f / count;
    float *rout = malloc(on * sizeof(float)), *rkeep = poisoned(on);
    float *rpart = malloc(2 * rows * sizeof(float)), *rgrads = poisoned(dboff + nch + 2);
    float rloss[3];
    double total = 0;
    for (int r = 0; r < rows; r++) {
        double sq = 0, sg = 0;
        for (int i = 0; i < npos; i++) {
            size_t k = (size_t)r * npos + i;
            float y = out[k] + params[boff + r % nch], d = y - x[xoff + k];
            rkeep[k] = keep_on ? y : DFR_POISON;
            rout[k] = (2.0f * d) * inv_n;
            sq += (double)d * d;
            sg += rout[k];
        }
        rpart[r] = (float)sq, rpart[rows + r] = (float)sg;
        total += sq;
    }
    for (int c = 0; c < nch; c++) {
        double s = 0;
        for (int r = c; r < rows; r += nch) s += rpart[rows + r];
        rgrads[dboff + c] = (float)s;
    }
    rloss[0] = (float)(total / count), rloss[1] = 1.5f + rloss[0], rloss[2] = 3.0f;
    cl_mem dout = upload(out, on * 4), dx = upload(x, (on + xoff) * 4);
    cl_mem dp = upload(params, (boff + nch) * 4), dk = upload(keep, on * 4);
    cl_mem dpart = upload(part, 2 * rows * 4), dg = upload(grads, (dboff + nch + 2) * 4);
    cl_mem dl = upload(loss, 3 * 4);
    assert_int_equal(dfr_op_cae_mse(rt, dout, dx, xoff, npos, nch, rows, dp, boff, inv_n,
                                    keep_on ? dk : NULL, dpart), 0);
    assert_int_equal(dfr_op_cae_mse_finish(rt, dpart, rows, nch, count, dg, dboff, dl), 0);
    download(dout, out, on);
    download(dk, keep, on);
    download(dpart, part, 2 * (size_t)rows);
    download(dg, grads, dboff + (size_t)nch + 2);
    download(dl, loss, 3);
    assert_int_equal(dfr_test_compare("mse out", out, rout, on, 0, 0), 0);
    assert_int_equal(dfr_test_compare("mse keep", keep, rkeep, on, 0, 0), 0);
    assert_int_equal(dfr_test_compare("mse part", part, rpart, 2 * (size_t)rows, 1e-6f, 1e-4f), 0);
    assert_int_equal(dfr_test_compare("mse grads", grads, rgrads, dboff + (size_t)nch + 2, 1e-6f,
                                      1e-4f), 0);
    assert_int_equal(dfr_test_compare("mse loss", loss, rloss, 3, 1e-7f, 1e-5f), 0);
    cl_mem bufs[] = {dout, dx, dp, dk, dpart, dg, dl};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) dfr_buffer_release(&bufs[i]);
    free(out), free(x), free(params), free(keep), free(part), free(grads), free(loss);
    free(rout), free(rkeep), free(rpart), free(rgrads);
}

static void test_cae_mse(void **state)
{
    (void)state;
    const dfr_tune_kernel *tk = &dfr_tune_kernels[DFR_TK_CAE];
    for (int i = -1; i < 6 && (i < 0 || tk->test_variants[i]); i++) {
        dfr_test_setenv(rt, "DFRCL_CAE_LS", i < 0 ? NULL : tk->test_variants[i]);
        mse_check(1, 1, 1, 0);
        mse_check(3, 5, 37, 1);
        mse_check(2, 300, 259, 0); /* more rows and channels than a work-group */
    }
    dfr_test_setenv(rt, "DFRCL_CAE_LS", NULL);
}

static void test_cae_adam(void **state)
{
    (void)state;
    const int n = 1001;
    dfr_adam_hyper hy = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    for (int64_t t = 1; t <= 7; t += 6) {
        float *p = random_floats(n, 500, -1, 1), *g = random_floats(n, 501, -1, 1);
        float *m = random_floats(n, 502, -0.1f, 0.1f), *v = random_floats(n, 503, 0, 0.01f);
        float *rp = malloc(n * 4), *rm = malloc(n * 4), *rv = malloc(n * 4);
        double bc1 = 1 - pow(hy.beta1, (double)t), bc2 = 1 - pow(hy.beta2, (double)t);
        float step = (float)(hy.lr / bc1), bc2s = (float)sqrt(bc2);
        for (int i = 0; i < n; i++) {
            rm[i] = 0.9f * m[i] + 0.1f * g[i];
            rv[i] = 0.999f * v[i] + 0.001f * g[i] * g[i];
            rp[i] = p[i] - step * rm[i] / (sqrtf(rv[i]) / bc2s + 1e-8f);
        }
        cl_mem dp = upload(p, n * 4), dg = upload(g, n * 4), dm = upload(m, n * 4),
               dv = upload(v, n * 4);
        dfr_test_poison(p, n), dfr_test_poison(m, n), dfr_test_poison(v, n);
        assert_int_equal(dfr_op_cae_adam(rt, dp, dg, dm, dv, n, &hy, t), 0);
        download(dp, p, n), download(dm, m, n), download(dv, v, n);
        assert_int_equal(dfr_test_compare("adam m", m, rm, n, 1e-8f, 1e-5f), 0);
        assert_int_equal(dfr_test_compare("adam v", v, rv, n, 1e-9f, 1e-5f), 0);
        assert_int_equal(dfr_test_compare("adam p", p, rp, n, 1e-7f, 1e-5f), 0);
        cl_mem bufs[] = {dp, dg, dm, dv};
        for (size_t i = 0; i < 4; i++) dfr_buffer_release(&bufs[i]);
        free(p), free(g), free(m), free(v), free(rp), free(rm), free(rv);
    }
    assert_int_not_equal(dfr_op_cae_adam(rt, NULL, NULL, NULL, NULL, n, &hy, 0), DFRCL_OK);
}

/* Folding writes the conv's weight and bias at their offsets of the copy, nothing else. */
static void test_cae_fold_bn(void **state)
{
    (void)state;
    const int cin = 7, cout = 5, w_off = 3;
    bn_host h;
    bn_host_make(&h, cout, 600);
    /* The weight [cout, cin] after the poison gap at the start, clear of the BN's tensors: a
     * params vector of its own, with the BN's at the same offsets past it. */
    size_t np = h.np + (size_t)cout * cin + w_off;
    float *params = poisoned(np);
    memcpy(params, h.params, h.np * sizeof(float));
    int wo = (int)h.np + w_off;
    for (int k = 0; k < cout * cin; k++) params[wo + k] = dfr_test_uniform(601, (uint32_t)k, -1, 1);
    dfr_buffer_release(&h.bn.params);
    h.bn.params = upload(params, np * 4);
    float *ref = poisoned(np), *got = poisoned(np);
    for (int c = 0; c < cout; c++) {
        double sc = h.params[h.bn.gamma_off + c] / sqrt(h.running[h.bn.var_off + c] + T_EPS);
        for (int k = 0; k < cin; k++)
            ref[wo + c * cin + k] = (float)(params[wo + c * cin + k] * sc);
        ref[h.bn.bias_off + c] = (float)((params[h.bn.bias_off + c] -
                                          h.running[h.bn.mean_off + c]) * sc +
                                         params[h.bn.beta_off + c]);
    }
    cl_mem dfold = upload(got, np * 4);
    assert_int_equal(dfr_op_cae_fold_bn(rt, &h.bn, wo, cin, cout, T_EPS, dfold), 0);
    download(dfold, got, np);
    assert_int_equal(dfr_test_compare("fold_bn", got, ref, np, 1e-6f, 1e-5f), 0);
    dfr_buffer_release(&dfold);
    bn_host_free(&h);
    free(params), free(ref), free(got);
}

int main(void)
{
    DFR_TEST_OPEN_RUNTIME(&rt);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_preprocess), cmocka_unit_test(test_maxpool),
        cmocka_unit_test(test_regional),   cmocka_unit_test(test_sqerr_mean),
        cmocka_unit_test(test_upsample),   cmocka_unit_test(test_cae_bn),
        cmocka_unit_test(test_cae_bias_act), cmocka_unit_test(test_cae_mse),
        cmocka_unit_test(test_cae_adam),   cmocka_unit_test(test_cae_fold_bn),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    dfr_runtime_close(&rt);
    return failed;
}
