/* The whole regional-feature chain on the OpenCL device equals PyTorch's (fixtures made by
 * tools/make_fixtures.py with Debian's torch): normalised MSE <= 1e-7 for
 *  (a) a real hazelnut image with the shared VGG19 weights, 8 layers, S=32;
 *  (b) 12 layers: the shared 8 plus seeded random features.19..25, S=16;
 *  (c) 12 random layers and a synthetic image, S=16 (needs nothing from ../shared);
 *  and the intermediate ReLU maps of (c), so a failure names the stage that broke. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>

#include "io/safetensors.h"
#include "model/vgg19.h"
#include "testutil.h"
#include "util/error.h"

#define NMSE_MAX 1e-7

static dfr_runtime *rt;

/* Reads the fixture's image (floats 0..255) as 8-bit RGB and its expected features. */
static void load_fixture(const char *name, int size, int channels, uint8_t **px, float **feat)
{
    dfr_safetensors *st = NULL;
    assert_int_equal(dfr_st_open(&st, dfr_test_fixture(name)), DFRCL_OK);
    size_t npx = (size_t)size * size * 3, nf = (size_t)channels * (size / 4) * (size / 4);
    float *img = malloc(npx * sizeof(float));
    *px = malloc(npx);
    *feat = malloc(nf * sizeof(float));
    int64_t ishape[3] = {size, size, 3}, fshape[3] = {channels, size / 4, size / 4};
    assert_int_equal(dfr_st_read_f32(st, "image", 3, ishape, img, npx), DFRCL_OK);
    assert_int_equal(dfr_st_read_f32(st, "features", 3, fshape, *feat, nf), DFRCL_OK);
    for (size_t i = 0; i < npx; i++) {
        assert_true(img[i] >= 0 && img[i] <= 255 && img[i] == floorf(img[i]));
        (*px)[i] = (uint8_t)img[i];
    }
    free(img);
    dfr_st_close(&st);
}

/* Runs the chain and compares; returns the NMSE. */
static double run_and_compare(dfr_vgg19 *v, const uint8_t *px, int size, const float *want,
                              float **keep)
{
    size_t nf = (size_t)v->channels * (size / 4) * (size / 4);
    float *got = malloc(nf * sizeof(float));
    dfr_test_poison(got, nf);
    cl_mem feat;
    assert_int_equal(dfr_buffer_new(rt, nf * sizeof(float), CL_MEM_READ_WRITE, "feat", &feat), DFRCL_OK);
    assert_int_equal(dfr_write(rt, feat, 0, nf * sizeof(float), got, "poison"), DFRCL_OK);
    assert_int_equal(dfr_vgg19_features_debug(v, px, 3, size, feat, 0, keep), DFRCL_OK);
    assert_int_equal(dfr_read(rt, feat, 0, nf * sizeof(float), got, "t"), DFRCL_OK);
    double e = dfr_test_nmse(got, want, nf);
    size_t poisoned = 0;
    for (size_t i = 0; i < nf; i++) poisoned += got[i] == DFR_POISON;
    assert_int_equal(poisoned, 0);
    /* per-layer NMSE, to say which part of the concat is off */
    int off = 0, q2 = (size / 4) * (size / 4);
    for (int l = 0; l < v->layers; l++) {
        int c = dfr_vgg19_layer_channels(l);
        double el = dfr_test_nmse(got + (size_t)off * q2, want + (size_t)off * q2, (size_t)c * q2);
        fprintf(stderr, "  %-8s NMSE %.3g\n", dfr_vgg19_layer_name(l), el);
        off += c;
    }
    fprintf(stderr, "  all      NMSE %.3g (limit %.0e)\n", e, NMSE_MAX);
    dfr_buffer_release(&feat);
    free(got);
    return e;
}

/* The random layer rule of tools/make_fixtures.py (and dfr_vgg19_random with seed 0). */
static void random_layer(int l, float **w, float **b)
{
    int cin = l ? dfr_vgg19_layer_channels(l - 1) : 3, cout = dfr_vgg19_layer_channels(l);
    uint32_t n = (uint32_t)dfr_vgg19_torch_index(l);
    size_t wc = (size_t)cout * cin * 9;
    float a = sqrtf(6.0f / (float)(cin * 9));
    *w = malloc(wc * sizeof(float));
    *b = malloc((size_t)cout * sizeof(float));
    for (size_t j = 0; j < wc; j++) (*w)[j] = dfr_test_uniform(n, (uint32_t)j, -a, a);
    for (int j = 0; j < cout; j++) (*b)[j] = dfr_test_uniform(1000 + n, (uint32_t)j, -0.05f, 0.05f);
}

static const char *weights_path(void)
{
    static char p[4200];
    const char *shared = dfr_test_shared_dir();
    if (!shared) return NULL;
    snprintf(p, sizeof p, "%s/weights/vgg19-imagenet-conv1_1-conv3_4.safetensors", shared);
    return p;
}

static void test_real_8layers(void **state)
{
    (void)state;
    const char *wp = weights_path();
    if (!wp) skip();
    dfr_vgg19 *v = NULL;
    assert_int_equal(dfr_vgg19_load(&v, rt, wp, 8), DFRCL_OK);
    assert_int_equal(v->channels, 1408);
    uint8_t *px;
    float *want;
    load_fixture("regional_8layers_s32.safetensors", 32, 1408, &px, &want);
    assert_true(run_and_compare(v, px, 32, want, NULL) <= NMSE_MAX);
    free(px);
    free(want);
    dfr_vgg19_free(&v);
}

static void test_real_plus_random_12layers(void **state)
{
    (void)state;
    const char *wp = weights_path();
    if (!wp) skip();
    float *w[12] = {0}, *b[12] = {0};
    dfr_safetensors *st = NULL;
    assert_int_equal(dfr_st_open(&st, wp), DFRCL_OK);
    for (int l = 0; l < 8; l++) {
        int cin = l ? dfr_vgg19_layer_channels(l - 1) : 3, cout = dfr_vgg19_layer_channels(l);
        char wn[64], bn[64];
        snprintf(wn, sizeof wn, "features.%d.weight", dfr_vgg19_torch_index(l));
        snprintf(bn, sizeof bn, "features.%d.bias", dfr_vgg19_torch_index(l));
        int64_t ws[4] = {cout, cin, 3, 3}, bs[1] = {cout};
        w[l] = malloc((size_t)cout * cin * 9 * sizeof(float));
        b[l] = malloc((size_t)cout * sizeof(float));
        assert_int_equal(dfr_st_read_f32(st, wn, 4, ws, w[l], (size_t)cout * cin * 9), DFRCL_OK);
        assert_int_equal(dfr_st_read_f32(st, bn, 1, bs, b[l], (size_t)cout), DFRCL_OK);
    }
    dfr_st_close(&st);
    for (int l = 8; l < 12; l++) random_layer(l, &w[l], &b[l]);
    dfr_vgg19 *v = NULL;
    assert_int_equal(dfr_vgg19_from_arrays(&v, rt, 12, (const float *const *)w, (const float *const *)b), DFRCL_OK);
    assert_int_equal(v->channels, 3456);
    uint8_t *px;
    float *want;
    load_fixture("regional_12layers_s16.safetensors", 16, 3456, &px, &want);
    assert_true(run_and_compare(v, px, 16, want, NULL) <= NMSE_MAX);
    free(px);
    free(want);
    for (int l = 0; l < 12; l++) {
        free(w[l]);
        free(b[l]);
    }
    dfr_vgg19_free(&v);
}

static void test_random_12layers_and_stages(void **state)
{
    (void)state;
    dfr_vgg19 *v = NULL;
    assert_int_equal(dfr_vgg19_random(&v, rt, 12, 0), DFRCL_OK);
    uint8_t *px;
    float *want;
    load_fixture("regional_12layers_random_s16.safetensors", 16, 3456, &px, &want);
    /* The image is made by formula too: check the fixture agrees with it. */
    for (uint32_t i = 0; i < 16 * 16 * 3; i++) {
        float u = floorf(dfr_test_uniform(4242, i, 0, 256));
        assert_int_equal(px[i], (uint8_t)(u > 255 ? 255 : u));
    }
    /* Intermediate maps: relu1_1 [64,16,16], relu2_1 [128,8,8], relu3_1 [256,4,4], relu4_4 [512,2,2]. */
    static const struct { int layer, c, hw; const char *name; } stages[] = {
        {0, 64, 16, "relu1_1"}, {2, 128, 8, "relu2_1"}, {4, 256, 4, "relu3_1"}, {11, 512, 2, "relu4_4"}};
    float *keep[16] = {0};
    for (size_t s = 0; s < 4; s++) keep[stages[s].layer] = malloc((size_t)stages[s].c * stages[s].hw * stages[s].hw * sizeof(float));
    double e = run_and_compare(v, px, 16, want, keep);
    dfr_safetensors *st = NULL;
    assert_int_equal(dfr_st_open(&st, dfr_test_fixture("vgg_stages_s16.safetensors")), DFRCL_OK);
    for (size_t s = 0; s < 4; s++) {
        size_t n = (size_t)stages[s].c * stages[s].hw * stages[s].hw;
        float *ref = malloc(n * sizeof(float));
        int64_t shape[3] = {stages[s].c, stages[s].hw, stages[s].hw};
        assert_int_equal(dfr_st_read_f32(st, stages[s].name, 3, shape, ref, n), DFRCL_OK);
        double es = dfr_test_nmse(keep[stages[s].layer], ref, n);
        fprintf(stderr, "  stage %-8s NMSE %.3g\n", stages[s].name, es);
        assert_true(es <= NMSE_MAX);
        free(ref);
        free(keep[stages[s].layer]);
    }
    dfr_st_close(&st);
    assert_true(e <= NMSE_MAX);
    free(px);
    free(want);
    dfr_vgg19_free(&v);
}

int main(void)
{
    DFR_TEST_OPEN_RUNTIME(&rt);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_12layers_and_stages),
        cmocka_unit_test(test_real_8layers),
        cmocka_unit_test(test_real_plus_random_12layers),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    dfr_runtime_close(&rt);
    return failed;
}
