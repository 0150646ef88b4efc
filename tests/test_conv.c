/* The 3x3 convolution (reflection padding, bias, ReLU) against a plain C reference, on random
 * inputs of awkward sizes (odd, narrower than a tile, not multiples of it) and channel counts
 * (1, 3, 5, 64 in; 1, 7, 16, 70 out), for the tile configuration this device gets by default
 * and for forced ones from the tunables table (every device class's defaults and the table's
 * test variants), so that code paths other devices take are checked here too.
 *
 * Buffers are allocated at their exact sizes and outputs are poisoned before each run.
 * Tolerance: |got - ref| <= 1e-5 + 1e-5 * |ref| per element (reference accumulated in double),
 * and NMSE <= 1e-10 over each output. */
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

/* The plain C reference: dfr_test_ref_conv3x3_relu (testutil.h). */

/* ---- helpers ---- */

static float *random_floats(size_t n, uint32_t seed, float lo, float hi)
{
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = dfr_test_uniform(seed, (uint32_t)i, lo, hi);
    return p;
}

static cl_mem new_buffer(size_t bytes, const void *init)
{
    cl_mem m;
    assert_int_equal(dfr_buffer_new(rt, bytes, CL_MEM_READ_WRITE, "test", &m), DFRCL_OK);
    if (init) assert_int_equal(dfr_write(rt, m, 0, bytes, init, "test"), DFRCL_OK);
    return m;
}

/* Runs one shape with the current configuration; returns the number of bad elements. */
static size_t check_shape(int cin, int cout, int h, int w, uint32_t seed)
{
    size_t nin = (size_t)cin * h * w, nout = (size_t)cout * h * w;
    float *in = random_floats(nin, seed, -1.0f, 1.0f);
    /* Weights scaled like a trained layer's so sums stay O(1); bias centred so that ReLU
     * zeroes part of the outputs and passes the rest. */
    float scale = 1.0f / (float)(cin * 3);
    float *wt = random_floats((size_t)cout * cin * 9, seed + 1, -scale, scale);
    float *b = random_floats((size_t)cout, seed + 2, -0.2f, 0.3f);
    float *out = malloc(nout * sizeof *out), *ref = malloc(nout * sizeof *ref);
    assert_non_null(out);
    assert_non_null(ref);
    dfr_test_poison(out, nout);
    dfr_test_ref_conv3x3_relu(in, wt, b, ref, cin, cout, h, w);

    dfr_conv_weights cw;
    assert_int_equal(dfr_conv_upload(rt, wt, b, cin, cout, &cw), DFRCL_OK);
    cl_mem din = new_buffer(nin * sizeof(float), in), dout = new_buffer(nout * sizeof(float), out);
    int rc = dfr_op_conv3x3_relu(rt, &cw, din, dout, h, w);
    if (rc) fprintf(stderr, "%s\n", dfrcl_last_error());
    assert_int_equal(rc, DFRCL_OK);
    assert_int_equal(dfr_read(rt, dout, 0, nout * sizeof(float), out, "test"), DFRCL_OK);

    char what[96];
    snprintf(what, sizeof what, "conv %d->%d %dx%d", cin, cout, h, w);
    size_t bad = dfr_test_compare(what, out, ref, nout, 1e-5f, 1e-5f);
    double nmse = dfr_test_nmse(out, ref, nout);
    if (!(nmse <= 1e-10)) {
        fprintf(stderr, "%s: NMSE %g\n", what, nmse);
        bad++;
    }
    dfr_buffer_release(&din);
    dfr_buffer_release(&dout);
    dfr_conv_release(&cw);
    free(in);
    free(wt);
    free(b);
    free(out);
    free(ref);
    return bad;
}

static void check_all_shapes(const char *tune)
{
    if (tune) assert_int_equal(dfr_test_setenv(rt, "DFRCL_CONV_TUNE", tune), 0);
    else assert_int_equal(dfr_test_setenv(rt, "DFRCL_CONV_TUNE", NULL), 0);
    static const int sizes[][2] = {{2, 2}, {3, 5}, {17, 31}, {33, 18}, {64, 64}};
    static const int chans[][2] = {{1, 1}, {3, 7}, {5, 16}, {64, 70}, {3, 64}, {64, 1}};
    size_t bad = 0;
    uint32_t seed = 100;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (size_t c = 0; c < sizeof chans / sizeof chans[0]; c++) {
            bad += check_shape(chans[c][0], chans[c][1], sizes[s][0], sizes[s][1], seed);
            seed += 10;
        }
    assert_int_equal(dfr_test_setenv(rt, "DFRCL_CONV_TUNE", NULL), 0);
    if (bad) fprintf(stderr, "configuration %s: %zu bad elements\n", tune ? tune : "default", bad);
    assert_int_equal(bad, 0);
}

/* ---- tests ---- */

static void test_default_config(void **state)
{
    (void)state;
    check_all_shapes(NULL);
}

/* Every device class's defaults from the tunables table (the GPU's: no chunks, a small tile),
 * so that code paths other devices take are checked here too. */
static void test_class_configs(void **state)
{
    (void)state;
    const dfr_tune_kernel *k = &dfr_tune_kernels[DFR_TK_CONV];
    char done[DFR_NCLASS][128];
    for (int c = 0; c < DFR_NCLASS; c++) {
        int v[DFR_TUNE_MAX_PARAMS];
        dfr_tune_class_defaults(k, (dfr_dev_class)c, v);
        dfr_tune_format(k, v, done[c], sizeof done[c]);
        int dup = 0;
        for (int d = 0; d < c; d++) dup |= !strcmp(done[d], done[c]);
        if (!dup) check_all_shapes(done[c]);
    }
}

/* The table's test variants: chunks of input channels smaller than cin and not dividing it,
 * a wide channel tile (16), odd pixel tiles and work-groups. */
static void test_other_configs(void **state)
{
    (void)state;
    const dfr_tune_kernel *k = &dfr_tune_kernels[DFR_TK_CONV];
    for (int i = 0; i < 6 && k->test_variants[i]; i++) check_all_shapes(k->test_variants[i]);
}

static void test_bad_args(void **state)
{
    (void)state;
    float wt[2 * 3 * 9] = {0}, b[2] = {0};
    dfr_conv_weights cw;
    assert_int_equal(dfr_conv_upload(rt, wt, b, 0, 2, &cw), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_conv_upload(rt, wt, b, 3, 0, &cw), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_conv_upload(rt, NULL, b, 3, 2, &cw), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_conv_upload(rt, wt, b, 3, 2, &cw), DFRCL_OK);
    cl_mem in = new_buffer(3 * 8 * 8 * sizeof(float), NULL);
    cl_mem out = new_buffer(2 * 8 * 8 * sizeof(float), NULL);
    /* reflection padding needs two pixels each way */
    assert_int_equal(dfr_op_conv3x3_relu(rt, &cw, in, out, 1, 8), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_op_conv3x3_relu(rt, &cw, in, out, 8, 1), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_op_conv3x3_relu(rt, &cw, in, out, 0, 0), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_op_conv3x3_relu(rt, &cw, in, out, -4, 8), DFRCL_ERR_INVALID_ARG);
    /* buffers too small for the map */
    assert_int_equal(dfr_op_conv3x3_relu(rt, &cw, in, out, 8, 9), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_op_conv3x3_relu(rt, &cw, out, out, 8, 8), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_op_conv3x3_relu(rt, &cw, in, in, 8, 8), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_op_conv3x3_relu(rt, &cw, in, out, 8, 8), DFRCL_OK);
    assert_int_equal(dfr_finish(rt), DFRCL_OK);
    /* a malformed tuning override is an error, not a silent default */
    assert_int_equal(dfr_test_setenv(rt, "DFRCL_CONV_TUNE", "8,12"), 0);
    assert_int_equal(dfr_op_conv3x3_relu(rt, &cw, in, out, 8, 8), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_test_setenv(rt, "DFRCL_CONV_TUNE", "3,12,0"), 0);
    assert_int_equal(dfr_op_conv3x3_relu(rt, &cw, in, out, 8, 8), DFRCL_ERR_INVALID_ARG);
    /* weights laid out for one channel tile, launched with another */
    assert_int_equal(dfr_test_setenv(rt, "DFRCL_CONV_TUNE", cw.tco == 4 ? "8,4,0" : "4,4,0"), 0);
    assert_int_equal(dfr_op_conv3x3_relu(rt, &cw, in, out, 8, 8), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_test_setenv(rt, "DFRCL_CONV_TUNE", NULL), 0);
    dfr_conv_release(&cw);
    assert_null(cw.w);
    dfr_conv_release(&cw); /* twice is harmless */
    dfr_buffer_release(&in);
    dfr_buffer_release(&out);
}

int main(void)
{
    DFR_TEST_OPEN_RUNTIME(&rt);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_default_config),
        cmocka_unit_test(test_class_configs),
        cmocka_unit_test(test_other_configs),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    dfr_runtime_close(&rt);
    return failed;
}
