/* fp16 activation storage (rt->half, dfrcl --precision fp16): every kernel that reads or writes
 * activations, run in fp16 mode against a plain C reference, and the whole scoring path against
 * the fp32 one.
 *
 * Kernel tests: inputs are rounded to fp16 on the host (what the device holds), the reference is
 * computed in double from those values, and the fp16 output must be within
 * |got - ref| <= ATOL + RTOL * |ref| (RTOL = 1e-3, two fp16 rounding steps of 2^-11; ATOL = 1e-4
 * covers results near zero). Max pooling is exact. Outputs are poisoned (fp16 NaN) before each
 * run; regions a kernel must not touch hold the fp16 rounding of DFR_POISON and must keep it.
 *
 * End to end: a random 4-layer backbone and a scorer autoencoder score the same images in fp32
 * and fp16; the fp16 maps must match the fp32 ones to max |d| <= 2e-3 * max |map| and the same
 * image score within 2e-3 relative (measured: about 3e-4 and 1e-4). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "model/cae.h"
#include "model/dfr.h"
#include "model/vgg19.h"
#include "ops/gemm.h"
#include "ops/ops.h"
#include "testutil.h"
#include "util/error.h"
#include "util/half.h"

#define RTOL 1e-3f
#define ATOL 1e-4f
#define HALF_NAN 0x7e00u

static dfr_runtime *rt;

/* ---- helpers ---- */

/* n values in [lo, hi), rounded to fp16. */
static float *random_halves(size_t n, uint32_t seed, float lo, float hi)
{
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = dfr_round_half(dfr_test_uniform(seed, (uint32_t)i, lo, hi));
    return p;
}

static cl_mem new_buffer(size_t bytes, const void *init)
{
    cl_mem m;
    assert_int_equal(dfr_buffer_new(rt, bytes, CL_MEM_READ_WRITE, "test", &m), DFRCL_OK);
    if (init) assert_int_equal(dfr_write(rt, m, 0, bytes, init, "test"), DFRCL_OK);
    return m;
}

/* A device buffer of n fp16 values: x converted, or all fp16 NaN (poison) when x is NULL. */
static cl_mem upload_half(const float *x, size_t n)
{
    uint16_t *h = malloc(n * sizeof *h);
    assert_non_null(h);
    for (size_t i = 0; i < n; i++) h[i] = x ? dfr_float_to_half(x[i]) : HALF_NAN;
    cl_mem m = new_buffer(n * sizeof *h, h);
    free(h);
    return m;
}

static void download_half(cl_mem m, size_t n, float *out)
{
    uint16_t *h = malloc(n * sizeof *h);
    assert_non_null(h);
    assert_int_equal(dfr_read(rt, m, 0, n * sizeof *h, h, "test"), DFRCL_OK);
    for (size_t i = 0; i < n; i++) out[i] = dfr_half_to_float(h[i]);
    free(h);
}

static size_t compare(const char *what, const float *got, const float *ref, size_t n)
{
    size_t bad = dfr_test_compare(what, got, ref, n, ATOL, RTOL);
    if (bad) fprintf(stderr, "%s: %zu of %zu wrong\n", what, bad, n);
    return bad;
}

/* ---- the small kernels ---- */

static void test_preprocess(void **state)
{
    (void)state;
    static const int shapes[][3] = {{1, 1, 3}, {7, 5, 3}, {33, 17, 1}};
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std_[3] = {0.229f, 0.224f, 0.225f};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int w = shapes[s][0], h = shapes[s][1], ch = shapes[s][2];
        size_t n = (size_t)w * h;
        uint8_t *px = malloc(n * ch);
        float *got = malloc(3 * n * sizeof(float)), *ref = malloc(3 * n * sizeof(float));
        assert_true(px && got && ref);
        for (size_t i = 0; i < n * ch; i++) px[i] = (uint8_t)(dfr_test_hash(13, (uint32_t)i) >> 24);
        for (int c = 0; c < 3; c++)
            for (size_t p = 0; p < n; p++)
                ref[c * n + p] = ((float)px[p * ch + (ch == 3 ? c : 0)] / 255.0f - mean[c]) / std_[c];
        cl_mem src = new_buffer(n * ch, px), dst = upload_half(NULL, 3 * n);
        assert_int_equal(dfr_op_preprocess(rt, src, w, h, ch, dst), DFRCL_OK);
        download_half(dst, 3 * n, got);
        assert_int_equal(compare("preprocess fp16", got, ref, 3 * n), 0);
        dfr_buffer_release(&src);
        dfr_buffer_release(&dst);
        free(px);
        free(got);
        free(ref);
    }
}

static void test_maxpool(void **state)
{
    (void)state;
    static const int shapes[][3] = {{1, 2, 2}, {3, 5, 7}, {64, 32, 33}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int c = shapes[s][0], h = shapes[s][1], w = shapes[s][2], oh = h / 2, ow = w / 2;
        size_t n = (size_t)c * h * w, on = (size_t)c * oh * ow;
        float *in = random_halves(n, 23 + (uint32_t)s, -3, 3);
        float *got = malloc(on * sizeof(float)), *ref = malloc(on * sizeof(float));
        assert_true(got && ref);
        for (int k = 0; k < c; k++)
            for (int y = 0; y < oh; y++)
                for (int x = 0; x < ow; x++) {
                    const float *p = in + ((size_t)k * h + 2 * y) * w + 2 * x;
                    float m = fmaxf(fmaxf(p[0], p[1]), fmaxf(p[w], p[w + 1]));
                    ref[((size_t)k * oh + y) * ow + x] = m;
                }
        cl_mem din = upload_half(in, n), dout = upload_half(NULL, on);
        assert_int_equal(dfr_op_maxpool2(rt, din, dout, c, h, w), DFRCL_OK);
        download_half(dout, on, got);
        assert_int_equal(dfr_test_compare("maxpool fp16", got, ref, on, 0, 0), 0);
        dfr_buffer_release(&din);
        dfr_buffer_release(&dout);
        free(in);
        free(got);
        free(ref);
    }
}

/* Bilinear sample (align_corners=True) with PyTorch's float index arithmetic, in double. */
static double ref_bilinear(const float *m, int h, int w, int H, int W, int y, int x)
{
    float sy = H > 1 ? (float)(h - 1) / (float)(H - 1) : 0.0f;
    float sx = W > 1 ? (float)(w - 1) / (float)(W - 1) : 0.0f;
    float fy = sy * (float)y, fx = sx * (float)x;
    int y0 = (int)fy, x0 = (int)fx;
    if (y0 > h - 1) y0 = h - 1;
    if (x0 > w - 1) x0 = w - 1;
    int y1 = y0 < h - 1 ? y0 + 1 : y0, x1 = x0 < w - 1 ? x0 + 1 : x0;
    double ly = fy - (float)y0, lx = fx - (float)x0;
    double top = (1 - lx) * m[y0 * w + x0] + lx * m[y0 * w + x1];
    double bot = (1 - lx) * m[y1 * w + x0] + lx * m[y1 * w + x1];
    return (1 - ly) * top + ly * bot;
}

/* {c, h, w, size, c_offset, c_total}: odd sizes, a row or column of 1, maps as large as size,
 * vectors that do not fill a row, channels beyond the per-work-item group, offsets. */
static const int regional_cases[][6] = {
    {1, 1, 1, 4, 0, 1},   {3, 5, 7, 12, 2, 6},   {2, 17, 9, 32, 1, 4},
    {3, 1, 40, 40, 0, 3}, {9, 100, 3, 300, 1, 10}, {13, 64, 64, 256, 3, 20},
};

static void regional_check(const char *tune)
{
    for (size_t s = 0; s < sizeof regional_cases / sizeof regional_cases[0]; s++) {
        const int *cs = regional_cases[s];
        int c = cs[0], h = cs[1], w = cs[2], S = cs[3], off = cs[4], tot = cs[5], q = S / 4;
        size_t n = (size_t)c * h * w, on = (size_t)tot * q * q;
        float *in = random_halves(n, 37 + (uint32_t)s, 0, 4);
        float *got = malloc(on * sizeof(float)), *ref = malloc(on * sizeof(float));
        assert_true(got && ref);
        float poison = dfr_round_half(DFR_POISON);
        for (size_t i = 0; i < on; i++) ref[i] = poison; /* other channels stay untouched */
        for (int k = 0; k < c; k++)
            for (int oy = 0; oy < q; oy++)
                for (int ox = 0; ox < q; ox++) {
                    double acc = 0;
                    for (int dy = 0; dy < 4; dy++)
                        for (int dx = 0; dx < 4; dx++)
                            acc += ref_bilinear(in + (size_t)k * h * w, h, w, S, S, 4 * oy + dy,
                                                4 * ox + dx);
                    ref[((size_t)(off + k) * q + oy) * q + ox] = (float)(acc / 16);
                }
        /* NaN where the kernel writes, the poison (which it must keep) elsewhere */
        float *fill = malloc(on * sizeof(float));
        assert_non_null(fill);
        for (size_t i = 0; i < on; i++) {
            size_t ch = i / ((size_t)q * q);
            fill[i] = ch >= (size_t)off && ch < (size_t)(off + c) ? NAN : poison;
        }
        cl_mem din = upload_half(in, n), dout = upload_half(fill, on);
        assert_int_equal(dfr_op_regional(rt, din, c, h, w, S, dout, off, tot), DFRCL_OK);
        download_half(dout, on, got);
        char what[96];
        snprintf(what, sizeof what, "regional fp16 [%d,%d,%d] size %d tune %s", c, h, w, S,
                 tune ? tune : "default");
        assert_int_equal(compare(what, got, ref, on), 0);
        dfr_buffer_release(&din);
        dfr_buffer_release(&dout);
        free(in);
        free(got);
        free(ref);
        free(fill);
    }
}

static void test_regional(void **state)
{
    (void)state;
    regional_check(NULL);
    /* Scalar (VW 1: the GPU shape), the widest vector, explicit work-groups. */
    static const char *const tunes[] = {"1,1,1", "16,3,5", "4,2,3,2,2,1"};
    for (size_t i = 0; i < sizeof tunes / sizeof tunes[0]; i++) {
        dfr_test_setenv(rt, "DFRCL_REGIONAL_TUNE", tunes[i]);
        regional_check(tunes[i]);
    }
    dfr_test_setenv(rt, "DFRCL_REGIONAL_TUNE", NULL);
    /* Buffers are checked in fp16 elements: 64 of them (128 bytes, 32 floats) hold a [4, 4, 4]
     * map, not a [5, 4, 4] one; the feature [c_total, 2, 2] fits 16 channels, not 17. */
    cl_mem map = upload_half(NULL, 64), feat = upload_half(NULL, 64);
    assert_int_equal(dfr_op_regional(rt, map, 4, 4, 4, 8, feat, 0, 16), DFRCL_OK);
    assert_int_equal(dfr_op_regional(rt, map, 5, 4, 4, 8, feat, 0, 16), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_op_regional(rt, map, 4, 4, 4, 8, feat, 0, 17), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_finish(rt), DFRCL_OK);
    dfr_buffer_release(&map);
    dfr_buffer_release(&feat);
}

static void test_sqerr_mean(void **state)
{
    (void)state;
    static const int cases[][3] = {{1, 1, 1}, {2, 3, 7}, {3, 70, 33}, {1, 1408, 64}};
    for (size_t s = 0; s < sizeof cases / sizeof cases[0]; s++) {
        int b = cases[s][0], c = cases[s][1], np = cases[s][2];
        size_t n = (size_t)b * c * np, on = (size_t)b * np;
        float *a = random_halves(n, 43 + (uint32_t)s, -2, 2);
        float *r = random_halves(n, 53 + (uint32_t)s, -2, 2);
        float *got = malloc(on * sizeof(float)), *ref = malloc(on * sizeof(float));
        assert_true(got && ref);
        dfr_test_poison(got, on);
        for (int i = 0; i < b; i++)
            for (int p = 0; p < np; p++) {
                double acc = 0;
                for (int k = 0; k < c; k++) {
                    size_t o = ((size_t)i * c + k) * np + p;
                    acc += ((double)a[o] - r[o]) * ((double)a[o] - r[o]);
                }
                ref[(size_t)i * np + p] = (float)(acc / c);
            }
        cl_mem da = upload_half(a, n), dr = upload_half(r, n);
        cl_mem ds = new_buffer(on * sizeof(float), got); /* the score stays fp32 */
        assert_int_equal(dfr_op_sqerr_mean(rt, da, dr, b, c, np, ds), DFRCL_OK);
        assert_int_equal(dfr_read(rt, ds, 0, on * sizeof(float), got, "test"), DFRCL_OK);
        assert_int_equal(dfr_test_compare("sqerr fp16", got, ref, on, 1e-6f, 1e-5f), 0);
        dfr_buffer_release(&da);
        dfr_buffer_release(&dr);
        dfr_buffer_release(&ds);
        free(a);
        free(r);
        free(got);
        free(ref);
    }
}

/* ---- convolution ---- */

static size_t conv_check(int cin, int cout, int h, int w, uint32_t seed, const char *tune)
{
    size_t nin = (size_t)cin * h * w, nout = (size_t)cout * h * w;
    float *in = random_halves(nin, seed, -1, 1);
    float scale = 1.0f / (float)(cin * 3);
    float *wt = malloc((size_t)cout * cin * 9 * sizeof(float)), *b = malloc(cout * sizeof(float));
    float *got = malloc(nout * sizeof(float)), *ref = malloc(nout * sizeof(float));
    assert_true(wt && b && got && ref);
    for (size_t i = 0; i < (size_t)cout * cin * 9; i++)
        wt[i] = dfr_test_uniform(seed + 1, (uint32_t)i, -scale, scale); /* fp32 weights */
    for (int i = 0; i < cout; i++) b[i] = dfr_test_uniform(seed + 2, (uint32_t)i, -0.2f, 0.3f);
    dfr_test_ref_conv3x3_relu(in, wt, b, ref, cin, cout, h, w);
    dfr_conv_weights cw;
    assert_int_equal(dfr_conv_upload(rt, wt, b, cin, cout, &cw), DFRCL_OK);
    cl_mem din = upload_half(in, nin), dout = upload_half(NULL, nout);
    assert_int_equal(dfr_op_conv3x3_relu(rt, &cw, din, dout, h, w), DFRCL_OK);
    download_half(dout, nout, got);
    char what[96];
    snprintf(what, sizeof what, "conv fp16 %d->%d %dx%d tune %s", cin, cout, h, w,
             tune ? tune : "default");
    size_t bad = compare(what, got, ref, nout);
    dfr_conv_release(&cw);
    dfr_buffer_release(&din);
    dfr_buffer_release(&dout);
    free(in);
    free(wt);
    free(b);
    free(got);
    free(ref);
    return bad;
}

static void test_conv(void **state)
{
    (void)state;
    static const int shapes[][4] = {{3, 7, 5, 9}, {5, 16, 13, 2}, {64, 70, 17, 19}, {1, 1, 2, 40}};
    /* The device's default tile, the GPU table's, a one-pixel tile with chunks. */
    static const char *const tunes[] = {NULL, "4,4,0,8,8,1", "2,1,3"};
    for (size_t t = 0; t < sizeof tunes / sizeof tunes[0]; t++) {
        if (tunes[t]) dfr_test_setenv(rt, "DFRCL_CONV_TUNE", tunes[t]);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            assert_int_equal(conv_check(shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3],
                                        71 + 3 * (uint32_t)s, tunes[t]), 0);
        dfr_test_setenv(rt, "DFRCL_CONV_TUNE", NULL);
    }
    /* Sizes are checked in fp16 elements: [3, 4, 4] fits 96 bytes. */
    float wt[27 * 2] = {0}, b[2] = {0};
    dfr_conv_weights cw;
    assert_int_equal(dfr_conv_upload(rt, wt, b, 3, 2, &cw), DFRCL_OK);
    cl_mem in = upload_half(NULL, 48), out = upload_half(NULL, 31);
    assert_int_equal(dfr_op_conv3x3_relu(rt, &cw, in, out, 4, 4), DFRCL_ERR_INVALID_ARG);
    dfr_buffer_release(&out);
    out = upload_half(NULL, 32);
    assert_int_equal(dfr_op_conv3x3_relu(rt, &cw, in, out, 4, 4), DFRCL_OK);
    assert_int_equal(dfr_finish(rt), DFRCL_OK);
    dfr_buffer_release(&in);
    dfr_buffer_release(&out);
    dfr_conv_release(&cw);
}

/* ---- GEMM with fp16 operands ---- */

typedef struct hcase {
    int ta, tb, m, n, k, batch, sum, ha, hb, hc;
    float beta;
} hcase;

static size_t gemm_check(const hcase *t, dfr_gemm_backend be, uint32_t seed)
{
    const int m = t->m, n = t->n, k = t->k, nb = t->batch, items = t->sum ? 1 : nb;
    size_t lda = t->ta ? (size_t)m : (size_t)k, ldb = t->tb ? (size_t)k : (size_t)n;
    size_t a_str = (size_t)m * k + 3, b_str = (size_t)k * n + 1, c_str = t->sum ? 0 : (size_t)m * n + 2;
    size_t na = (size_t)nb * a_str, nbf = (size_t)nb * b_str, nc = (size_t)items * ((size_t)m * n + 2);
    /* Every operand holds fp16-representable values, so fp32 and fp16 storage hold the same. */
    float *a = random_halves(na, seed, -1, 1), *b = random_halves(nbf, seed + 1, -1, 1);
    float *c0 = random_halves(nc, seed + 2, -1, 1);
    float *ref = malloc(nc * sizeof(float)), *got = malloc(nc * sizeof(float));
    assert_true(ref && got);
    memcpy(ref, c0, nc * sizeof(float));
    for (int it = 0; it < items; it++)
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int bi = t->sum ? 0 : it; bi < (t->sum ? nb : it + 1); bi++)
                    for (int kk = 0; kk < k; kk++) {
                        const float *ab = a + (size_t)bi * a_str, *bb = b + (size_t)bi * b_str;
                        double x = t->ta ? ab[(size_t)kk * lda + i] : ab[(size_t)i * lda + kk];
                        double y = t->tb ? bb[(size_t)j * ldb + kk] : bb[(size_t)kk * ldb + j];
                        s += x * y;
                    }
                size_t idx = (size_t)it * c_str + (size_t)i * n + j;
                ref[idx] = (float)(s + (double)t->beta * c0[idx]);
            }
    cl_mem da = t->ha ? upload_half(a, na) : new_buffer(na * 4, a);
    cl_mem db = t->hb ? upload_half(b, nbf) : new_buffer(nbf * 4, b);
    cl_mem dc = t->hc ? upload_half(c0, nc) : new_buffer(nc * 4, c0);
    dfr_gemm_desc g = {
        .trans_a = t->ta, .trans_b = t->tb, .m = m, .n = n, .k = k, .alpha = 1.0f,
        .beta = t->beta, .a = da, .lda = lda, .a_stride = a_str, .b = db, .ldb = ldb,
        .b_stride = b_str, .c = dc, .ldc = (size_t)n, .c_stride = c_str, .batch = nb,
        .half_a = t->ha, .half_b = t->hb, .half_c = t->hc,
    };
    dfr_gemm_set_backend(rt, be);
    int rc = dfr_gemm(rt, &g, "test");
    if (rc) fprintf(stderr, "%s\n", dfrcl_last_error());
    assert_int_equal(rc, DFRCL_OK);
    if (t->hc) download_half(dc, nc, got);
    else assert_int_equal(dfr_read(rt, dc, 0, nc * 4, got, "test"), DFRCL_OK);
    char what[128];
    snprintf(what, sizeof what, "gemm %s %c%c %dx%dx%d b%d%s half a%d b%d c%d beta %.1f",
             dfr_gemm_backend_name(be), t->ta ? 'T' : 'N', t->tb ? 'T' : 'N', m, n, k, nb,
             t->sum ? " sum" : "", t->ha, t->hb, t->hc, (double)t->beta);
    /* fp32 C: only the fp32 sum's rounding; fp16 C: one more rounding. */
    size_t bad = dfr_test_compare(what, got, ref, nc, 1e-4f * k, t->hc ? RTOL : 1e-5f);
    if (bad) fprintf(stderr, "%s: %zu bad\n", what, bad);
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

static void test_gemm(void **state)
{
    (void)state;
    static const hcase cases[] = {
        /* the CAE's inference: fp32 weights times fp16 activations into fp16 */
        {0, 0, 7, 33, 19, 2, 0, 0, 1, 1, 0.0f},
        {0, 0, 13, 70, 37, 1, 0, 0, 1, 1, 0.0f},
        /* every operand alone, transposes, C read back in fp16 (beta), a sum over the batch */
        {1, 0, 9, 17, 5, 3, 0, 1, 0, 0, 0.0f},
        {0, 1, 6, 25, 11, 2, 0, 0, 1, 0, 0.5f},
        {1, 1, 5, 9, 23, 2, 0, 1, 1, 1, 1.0f},
        {0, 1, 8, 8, 29, 3, 1, 1, 1, 1, 0.0f},
    };
    static const dfr_gemm_backend be[] = {DFR_GEMM_OWN_REG, DFR_GEMM_OWN_LDS, DFR_GEMM_CLBLAST};
    size_t bad = 0;
    for (size_t b = 0; b < sizeof be / sizeof be[0]; b++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            bad += gemm_check(&cases[i], be[b], 101 + 7 * (uint32_t)i);
    dfr_gemm_set_backend(rt, DFR_GEMM_AUTO);
    assert_int_equal(bad, 0);
    /* Bounds are checked in each operand's element size: 20 fp16 values are not 20 floats. */
    cl_mem h = upload_half(NULL, 20), f = new_buffer(20 * 4, NULL);
    dfr_gemm_desc g = {.m = 4, .n = 5, .k = 1, .alpha = 1, .a = f, .lda = 1, .b = f, .ldb = 5,
                       .c = h, .ldc = 5, .batch = 1, .half_c = 1};
    assert_int_equal(dfr_gemm(rt, &g, "test"), DFRCL_OK);
    g.m = 5;
    g.half_c = 0;
    g.c = f;
    g.a = h;
    g.half_a = 1;
    g.lda = 4;
    g.k = 4;
    g.b = new_buffer(20 * 4, NULL);
    assert_int_equal(dfr_gemm(rt, &g, "test"), DFRCL_ERR_INVALID_ARG); /* A: 5 x 4 fp16 */
    g.m = 4;
    g.n = 4;
    g.ldc = 4;
    assert_int_equal(dfr_gemm(rt, &g, "test"), DFRCL_OK);
    assert_int_equal(dfr_finish(rt), DFRCL_OK);
    dfr_buffer_release(&g.b);
    dfr_buffer_release(&h);
    dfr_buffer_release(&f);
}

/* ---- the autoencoder's inference ---- */

/* fp16 against fp32 inference of the same weights and input (fp16-representable). */
static void test_cae(void **state)
{
    (void)state;
    const int C = 37, d = 5, B = 2, P = 29;
    size_t n = (size_t)B * C * P;
    float *x = random_halves(n, 131, 0, 2);
    float *r32 = malloc(n * sizeof(float)), *r16 = malloc(n * sizeof(float));
    assert_true(r32 && r16);
    dfr_cae *c32 = NULL, *c16 = NULL;
    rt->half = 0;
    assert_int_equal(dfr_cae_new_scorer(&c32, rt, C, d, B, P), DFRCL_OK);
    cl_mem x32 = new_buffer(n * 4, x), o32 = new_buffer(n * 4, NULL);
    assert_int_equal(dfr_cae_infer(c32, x32, 0, B, o32), DFRCL_OK);
    assert_int_equal(dfr_read(rt, o32, 0, n * 4, r32, "test"), DFRCL_OK);
    rt->half = 1;
    assert_int_equal(dfr_cae_new_scorer(&c16, rt, C, d, B, P), DFRCL_OK);
    cl_mem x16 = upload_half(x, n), o16 = upload_half(NULL, n);
    assert_int_equal(dfr_cae_infer(c16, x16, 0, B, o16), DFRCL_OK);
    download_half(o16, n, r16);
    float mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmaxf(mx, fabsf(r32[i]));
    /* Four fp16 roundings on the way (the input's is shared): 2e-3 of the largest output. */
    assert_int_equal(dfr_test_compare("cae fp16 vs fp32", r16, r32, n, 2e-3f * mx, 2e-3f), 0);
    /* An fp32 runtime cannot use the fp16 scorer's smaller buffers. */
    rt->half = 0;
    assert_int_equal(dfr_cae_infer(c16, x32, 0, B, o32), DFRCL_ERR_INVALID_ARG);
    /* ... while an fp32 scorer serves fp16 inference (its buffers are larger than needed). */
    rt->half = 1;
    assert_int_equal(dfr_cae_infer(c32, x16, 0, B, o16), DFRCL_OK);
    download_half(o16, n, r16);
    assert_int_equal(dfr_test_compare("cae fp16 on fp32 scorer", r16, r32, n, 2e-3f * mx, 2e-3f), 0);
    /* Input sizes count fp16 values: one image short is refused. */
    cl_mem small = upload_half(NULL, n - 1);
    assert_int_equal(dfr_cae_infer(c16, small, 0, B, o16), DFRCL_ERR_INVALID_ARG);
    dfr_buffer_release(&small);
    dfr_cae_free(&c32);
    dfr_cae_free(&c16);
    dfr_buffer_release(&x32);
    dfr_buffer_release(&o32);
    dfr_buffer_release(&x16);
    dfr_buffer_release(&o16);
    free(x);
    free(r32);
    free(r16);
}

/* ---- end to end ---- */

/* Scores `n` images in the current precision; maps [n, S, S], scores [n]; relu maps of layer
 * `keep_layer` of the first image into keep (when not NULL). */
static void score_all(dfr_model *m, const uint8_t *imgs, int n, float *maps, float *scores,
                      float *keep, int keep_layer)
{
    int S = m->info.size;
    for (int i = 0; i < n; i++) {
        const uint8_t *px = imgs + (size_t)i * S * S * 3;
        if (keep && i == 0) {
            float *k[DFR_VGG19_LAYERS] = {0};
            k[keep_layer] = keep;
            assert_int_equal(dfr_model_score_buffers(m, 1), DFRCL_OK);
            assert_int_equal(dfr_vgg19_features_debug(m->vgg, px, 3, S, m->feat, 0, k), DFRCL_OK);
        }
        dfr_test_poison(maps + (size_t)i * S * S, (size_t)S * S);
        assert_int_equal(dfr_model_score(m, px, 3, maps + (size_t)i * S * S, &scores[i]),
                         DFRCL_OK);
    }
}

static void test_end_to_end(void **state)
{
    (void)state;
    const int S = 32, L = 4, N = 3, latent = 12;
    rt->half = 0;
    dfr_vgg19 *vgg = NULL;
    assert_int_equal(dfr_vgg19_random(&vgg, rt, L, 1), DFRCL_OK);
    dfr_model m = {.rt = rt, .vgg = vgg};
    m.info.size = S;
    m.info.layers = L;
    m.info.channels = vgg->channels;
    assert_int_equal(dfr_cae_new_scorer(&m.cae, rt, vgg->channels, latent, 1, (S / 4) * (S / 4)),
                     DFRCL_OK);
    /* Images with structure: smooth gradients plus a bright square in the last one. */
    uint8_t *imgs = malloc((size_t)N * S * S * 3);
    assert_non_null(imgs);
    for (int i = 0; i < N; i++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++)
                for (int c = 0; c < 3; c++) {
                    int v = (x * (3 + c) + y * (5 - i)) * 2 +
                            (int)(dfr_test_hash(7 + i, (uint32_t)((y * S + x) * 3 + c)) >> 28);
                    if (i == N - 1 && x > 10 && x < 18 && y > 12 && y < 20) v = 250;
                    imgs[(((size_t)i * S + y) * S + x) * 3 + c] = (uint8_t)(v & 255);
                }
    size_t SS = (size_t)S * S;
    int kl = L - 1, kh = S >> dfr_vgg19_layer_block(kl);
    size_t kn = (size_t)dfr_vgg19_layer_channels(kl) * kh * kh;
    float *m32 = malloc(N * SS * sizeof(float)), *m16 = malloc(N * SS * sizeof(float));
    float *k32 = malloc(kn * sizeof(float)), *k16 = malloc(kn * sizeof(float));
    float s32[3], s16[3];
    assert_true(m32 && m16 && k32 && k16);
    score_all(&m, imgs, N, m32, s32, k32, kl);
    /* The same model object switched to fp16: its buffers are reused (fp32-sized) or remade. */
    rt->half = 1;
    dfr_test_poison(k16, kn);
    score_all(&m, imgs, N, m16, s16, k16, kl);
    rt->half = 0;

    float kmax = 0, mmax = 0;
    for (size_t i = 0; i < kn; i++) kmax = fmaxf(kmax, fabsf(k32[i]));
    for (size_t i = 0; i < N * SS; i++) mmax = fmaxf(mmax, fabsf(m32[i]));
    double dk = 0, dm = 0;
    for (size_t i = 0; i < kn; i++) dk = fmax(dk, fabs((double)k16[i] - k32[i]));
    for (size_t i = 0; i < N * SS; i++) dm = fmax(dm, fabs((double)m16[i] - m32[i]));
    fprintf(stderr, "fp16 vs fp32: relu%d max |d| %.3g of max %.3g; maps max |d| %.3g of max "
                    "%.3g (%.2g relative); scores %.6g/%.6g %.6g/%.6g %.6g/%.6g\n",
            kl + 1, dk, (double)kmax, dm, (double)mmax, dm / mmax, (double)s16[0],
            (double)s32[0], (double)s16[1], (double)s32[1], (double)s16[2], (double)s32[2]);
    assert_true(kmax > 0 && mmax > 0);
    assert_true(dk <= 5e-3 * kmax);
    assert_true(dm <= 2e-3 * mmax);
    for (int i = 0; i < N; i++) assert_true(fabsf(s16[i] - s32[i]) <= 2e-3f * fabsf(s32[i]));

    dfr_cae_free(&m.cae);
    dfr_model_free_buffers(&m);
    dfr_vgg19_free(&vgg);
    free(imgs);
    free(m32);
    free(m16);
    free(k32);
    free(k16);
}

static int half_on(void **state)
{
    (void)state;
    rt->half = 1;
    return 0;
}

int main(void)
{
    DFR_TEST_OPEN_RUNTIME(&rt);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_preprocess, half_on), cmocka_unit_test_setup(test_maxpool, half_on),
        cmocka_unit_test_setup(test_regional, half_on),   cmocka_unit_test_setup(test_sqerr_mean, half_on),
        cmocka_unit_test_setup(test_conv, half_on),       cmocka_unit_test_setup(test_gemm, half_on),
        cmocka_unit_test_setup(test_cae, half_on),        cmocka_unit_test(test_end_to_end),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    dfr_runtime_close(&rt);
    return failed;
}
