/* The CAE against PyTorch (fixtures from tools/make_cae_fixtures.py): one training step (forward
 * output, loss, every gradient, the parameters after Adam, the running statistics), three steps
 * (Adam's bias corrections), eval-mode inference with folded BatchNorm, a 20-step loss curve with
 * uneven batches; plus the default initialisation, tensor access and bad arguments.
 *
 * Tolerances (fp32 on both sides; the summation orders differ), per tensor:
 * - every element: |got - want| <= RTOL * |want| + ATOL * max|want|. RTOL 1e-4 covers the ~1e-6
 *   relative rounding differences of sums over up to 2000 terms through six layers with margin;
 *   ATOL (relative to the tensor's scale) 1e-5 covers elements that are small only through
 *   cancellation (BN outputs near zero, gradients summing mixed signs), whose absolute error is
 *   set by the tensor's scale, not by their own size;
 * - the whole tensor: NMSE = sum (got - want)^2 / sum want^2 <= 1e-11, i.e. about 3e-6 relative
 *   RMS: measured up to 5e-13 on PoCL, while a systematic error of 1e-5 relative (a wrong constant
 *   somewhere) gives 1e-10. Losses: 1e-5 relative (measured <= 2e-7). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "io/safetensors.h"
#include "model/cae.h"
#include "testutil.h"
#include "util/error.h"

#define RTOL 1e-4f
#define ATOL 1e-5f
#define NMSE_MAX 1e-11

static dfr_runtime *rt;

/* The biases whose gradient is exactly zero in training (see cae.h). */
static int zero_grad_bias(const char *name)
{
    static const char *const names[] = {"enc.0.bias", "enc.3.bias", "enc.6.bias", "dec.0.bias",
                                        "dec.3.bias"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0) return 1;
    return 0;
}

/* ---- fixture access ---- */

typedef struct fixture {
    dfr_safetensors *st;
    int c, d, b, p;
} fixture;

static int meta_int(dfr_safetensors *st, const char *key)
{
    const char *v = dfr_st_metadata(st, key);
    assert_non_null(v);
    return atoi(v);
}

static void fixture_open(fixture *f, const char *name)
{
    assert_int_equal(dfr_st_open(&f->st, dfr_test_fixture(name)), DFRCL_OK);
    f->c = meta_int(f->st, "channels");
    f->d = meta_int(f->st, "latent");
    f->b = meta_int(f->st, "batch");
    f->p = meta_int(f->st, "npos");
}

/* Reads tensor `name` (n elements) into a new array. */
static float *fx_get(fixture *f, const char *name, size_t n)
{
    const dfr_st_tensor *t = dfr_st_find(f->st, name);
    if (!t) fail_msg("fixture has no tensor %s", name);
    assert_int_equal(dfr_st_numel(t), n);
    float *v = malloc(n * sizeof *v);
    assert_non_null(v);
    assert_int_equal(dfr_st_read_f32(f->st, name, 0, NULL, v, n), DFRCL_OK);
    return v;
}

/* ---- comparisons ---- */

static float max_abs(const float *v, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(v[i]));
    return m;
}

/* Checks got against want with the file's tolerance; prints the worst error for the record. */
static void expect_close(const char *what, const float *got, const float *want, size_t n)
{
    float scale = max_abs(want, n), worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmaxf(worst, fabsf(got[i] - want[i]));
    size_t bad = dfr_test_compare(what, got, want, n, ATOL * scale, RTOL);
    if (getenv("DFRCL_TEST_VERBOSE"))
        fprintf(stderr, "  %-28s max|err| %.3g (scale %.3g), nmse %.3g\n", what, (double)worst,
                (double)scale, dfr_test_nmse(got, want, n));
    if (bad) fail_msg("%s: %zu of %zu elements out of tolerance", what, bad, n);
    double nmse = dfr_test_nmse(got, want, n);
    if (!(nmse <= NMSE_MAX)) fail_msg("%s: NMSE %.3g > %.3g", what, nmse, NMSE_MAX);
}

/* Every tensor of the CAE against <prefix>/<name> of the fixture. */
static void expect_state(dfr_cae *m, fixture *f, const char *prefix)
{
    for (int i = 0; i < DFR_CAE_NUM_TENSORS; i++) {
        dfr_cae_tensor t;
        assert_int_equal(dfr_cae_tensor_info(m, i, &t), DFRCL_OK);
        char key[96];
        snprintf(key, sizeof key, "%s/%s", prefix, t.name);
        float *want = fx_get(f, key, t.numel), *got = malloc(t.numel * sizeof *got);
        dfr_test_poison(got, t.numel);
        assert_int_equal(dfr_cae_get_tensor(m, t.name, got, t.numel), DFRCL_OK);
        expect_close(key, got, want, t.numel);
        free(want);
        free(got);
    }
}

/* Loads <prefix>/<name> of the fixture into the CAE. */
static void load_state(dfr_cae *m, fixture *f, const char *prefix)
{
    for (int i = 0; i < DFR_CAE_NUM_TENSORS; i++) {
        dfr_cae_tensor t;
        assert_int_equal(dfr_cae_tensor_info(m, i, &t), DFRCL_OK);
        char key[96];
        snprintf(key, sizeof key, "%s/%s", prefix, t.name);
        float *v = fx_get(f, key, t.numel);
        assert_int_equal(dfr_cae_set_tensor(m, t.name, v, t.numel), DFRCL_OK);
        free(v);
    }
}

static cl_mem upload(const float *v, size_t n)
{
    cl_mem b;
    assert_int_equal(dfr_buffer_new(rt, n * sizeof *v, CL_MEM_READ_WRITE, "test", &b), DFRCL_OK);
    if (v) assert_int_equal(dfr_write(rt, b, 0, n * sizeof *v, v, "test"), DFRCL_OK);
    return b;
}

static void expect_loss(const char *what, float got, float want)
{
    if (getenv("DFRCL_TEST_VERBOSE"))
        fprintf(stderr, "  %-28s %.8g vs %.8g (rel %.3g)\n", what, (double)got, (double)want,
                fabs((double)got - want) / fabs((double)want));
    if (!(fabsf(got - want) <= 1e-5f * fabsf(want)))
        fail_msg("%s: got %.8g, want %.8g", what, (double)got, (double)want);
}

/* Eval-mode inference of x (fixture batch) against want, into a poisoned output. */
static void expect_infer(dfr_cae *m, cl_mem x, size_t xoff, int batch, const float *want,
                         size_t n, const char *what)
{
    float *got = malloc(n * sizeof *got);
    assert_non_null(got);
    dfr_test_poison(got, n);
    cl_mem r = upload(got, n);
    assert_int_equal(dfr_cae_infer(m, x, xoff, batch, r), DFRCL_OK);
    dfr_test_poison(got, n);
    assert_int_equal(dfr_read(rt, r, 0, n * sizeof *got, got, "test"), DFRCL_OK);
    expect_close(what, got, want, n);
    dfr_buffer_release(&r);
    free(got);
}

/* ---- tests ---- */

/* One step, every intermediate; then steps 2 and 3; then inference with the trained state. */
static void test_steps(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, "cae_step.safetensors");
    dfr_cae *m = NULL;
    assert_int_equal(dfr_cae_new(&m, rt, f.c, f.d, f.b, f.p, 1), DFRCL_OK);
    load_state(m, &f, "init");
    assert_int_equal(dfr_cae_keep_output(m, 1), DFRCL_OK);

    /* The four batches one after another in one buffer, behind a gap: x_offset is exercised. */
    size_t nb = (size_t)f.b * f.c * f.p, gap = 7;
    float *xs = malloc((gap + 4 * nb) * sizeof *xs);
    dfr_test_poison(xs, gap);
    for (int i = 0; i < 4; i++) {
        char key[8];
        snprintf(key, sizeof key, "x%d", i + 1);
        float *v = fx_get(&f, key, nb);
        memcpy(xs + gap + i * nb, v, nb * sizeof *v);
        free(v);
    }
    cl_mem x = upload(xs, gap + 4 * nb);

    float loss = NAN;
    assert_int_equal(dfr_cae_train_step(m, x, gap, f.b, 1e-4f, &loss), DFRCL_OK);
    float *want = fx_get(&f, "step1/loss", 1);
    expect_loss("step1/loss", loss, want[0]);
    free(want);

    float *out = malloc(nb * sizeof *out);
    dfr_test_poison(out, nb);
    assert_int_equal(dfr_cae_get_output(m, out, nb), DFRCL_OK);
    want = fx_get(&f, "step1/out", nb);
    expect_close("step1/out", out, want, nb);
    free(want);
    free(out);

    for (int i = 0; i < DFR_CAE_NUM_TENSORS; i++) {
        dfr_cae_tensor t;
        assert_int_equal(dfr_cae_tensor_info(m, i, &t), DFRCL_OK);
        if (!t.is_param) continue;
        char key[96];
        snprintf(key, sizeof key, "grad/%s", t.name);
        float *g = malloc(t.numel * sizeof *g);
        dfr_test_poison(g, t.numel);
        assert_int_equal(dfr_cae_get_grad(m, t.name, g, t.numel), DFRCL_OK);
        want = fx_get(&f, key, t.numel);
        if (zero_grad_bias(t.name)) {
            /* Exactly zero here; autograd's rounding noise is tiny next to the weights' grads. */
            for (size_t k = 0; k < t.numel; k++) assert_true(g[k] == 0.0f);
            assert_true(max_abs(want, t.numel) < 1e-6f);
        } else {
            expect_close(key, g, want, t.numel);
        }
        free(want);
        free(g);
    }
    expect_state(m, &f, "step1");

    assert_int_equal(dfr_cae_train_step(m, x, gap + nb, f.b, 1e-4f, &loss), DFRCL_OK);
    want = fx_get(&f, "step2/loss", 1);
    expect_loss("step2/loss", loss, want[0]);
    free(want);
    assert_int_equal(dfr_cae_train_step(m, x, gap + 2 * nb, f.b, 1e-4f, NULL), DFRCL_OK);
    assert_int_equal(dfr_cae_steps(m), 3);
    /* The third loss through the epoch accumulator. */
    double mean = 0;
    int steps = 0;
    assert_int_equal(dfr_cae_epoch_loss(m, &mean, &steps), DFRCL_OK);
    assert_int_equal(steps, 3);
    float *l1 = fx_get(&f, "step1/loss", 1), *l2 = fx_get(&f, "step2/loss", 1),
          *l3 = fx_get(&f, "step3/loss", 1);
    expect_loss("mean loss of steps 1-3", (float)mean, (l1[0] + l2[0] + l3[0]) / 3);
    free(l1);
    free(l2);
    free(l3);
    assert_int_equal(dfr_cae_epoch_loss(m, &mean, &steps), DFRCL_OK);
    assert_int_equal(steps, 0);
    expect_state(m, &f, "step3");

    /* Eval mode with the state this CAE trained itself. */
    want = fx_get(&f, "eval/out", nb);
    expect_infer(m, x, gap + 3 * nb, f.b, want, nb, "eval/out (own training)");

    free(want);
    free(xs);
    dfr_buffer_release(&x);
    dfr_cae_free(&m);
    assert_null(m);
    dfr_st_close(&f.st);
}

/* Eval mode from a loaded state (folding on load), fold again after training and reloading. */
static void test_infer_loaded(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, "cae_step.safetensors");
    size_t nb = (size_t)f.b * f.c * f.p;
    dfr_cae *m = NULL;
    assert_int_equal(dfr_cae_new(&m, rt, f.c, f.d, f.b + 1, f.p, 5), DFRCL_OK);
    load_state(m, &f, "step3");
    float *x4 = fx_get(&f, "x4", nb), *want = fx_get(&f, "eval/out", nb);
    cl_mem x = upload(x4, nb);
    expect_infer(m, x, 0, f.b, want, nb, "eval/out (loaded)");
    expect_infer(m, x, 0, f.b, want, nb, "eval/out (again)");
    /* Training changes the weights: the next inference must refold, and differ. */
    assert_int_equal(dfr_cae_train_step(m, x, 0, f.b, 1e-2f, NULL), DFRCL_OK);
    float *got = malloc(nb * sizeof *got);
    cl_mem r = upload(NULL, nb);
    assert_int_equal(dfr_cae_infer(m, x, 0, f.b, r), DFRCL_OK);
    assert_int_equal(dfr_read(rt, r, 0, nb * sizeof *got, got, "test"), DFRCL_OK);
    assert_true(dfr_test_nmse(got, want, nb) > 1e-6);
    load_state(m, &f, "step3");
    expect_infer(m, x, 0, f.b, want, nb, "eval/out (reloaded)");
    /* One image alone gives that image's part of the batch output. */
    expect_infer(m, x, nb / f.b, 1, want + nb / f.b, nb / f.b, "eval/out (image 2 alone)");
    /* In place: the reconstruction over its input. */
    assert_int_equal(dfr_cae_infer(m, x, 0, f.b, x), DFRCL_OK);
    assert_int_equal(dfr_read(rt, x, 0, nb * sizeof *got, got, "test"), DFRCL_OK);
    expect_close("eval/out (in place)", got, want, nb);
    dfr_buffer_release(&r);
    dfr_buffer_release(&x);
    free(got);
    free(x4);
    free(want);
    dfr_cae_free(&m);
    dfr_st_close(&f.st);
}

/* 20 steps over 5 images in batches of 3 and 2: each loss within 1e-5 relative of PyTorch's. */
static void test_curve(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, "cae_curve.safetensors");
    int steps = meta_int(f.st, "steps"), nimg = 5;
    size_t ni = (size_t)f.c * f.p;
    float *data = fx_get(&f, "data", nimg * ni), *sched = fx_get(&f, "schedule", steps * f.b);
    float *losses = fx_get(&f, "losses", steps);
    dfr_cae *m = NULL;
    assert_int_equal(dfr_cae_new(&m, rt, f.c, f.d, f.b, f.p, 2), DFRCL_OK);
    load_state(m, &f, "init");
    cl_mem x = upload(NULL, f.b * ni);
    double sum = 0;
    for (int s = 0; s < steps; s++) {
        int batch = 0;
        for (int j = 0; j < f.b; j++) {
            int idx = (int)sched[s * f.b + j];
            if (idx < 0) continue;
            assert_true(idx < nimg);
            assert_int_equal(dfr_write(rt, x, batch * ni * sizeof(float), ni * sizeof(float),
                                       data + idx * ni, "test"),
                             DFRCL_OK);
            batch++;
        }
        float loss = NAN;
        assert_int_equal(dfr_cae_train_step(m, x, 0, batch, 1e-4f, &loss), DFRCL_OK);
        char what[32];
        snprintf(what, sizeof what, "loss of step %d", s + 1);
        expect_loss(what, loss, losses[s]);
        sum += losses[s];
    }
    double mean = 0;
    int n = 0;
    assert_int_equal(dfr_cae_epoch_loss(m, &mean, &n), DFRCL_OK);
    assert_int_equal(n, steps);
    expect_loss("mean loss", (float)mean, (float)(sum / steps));
    expect_state(m, &f, "final");
    dfr_buffer_release(&x);
    dfr_cae_free(&m);
    free(data);
    free(sched);
    free(losses);
    dfr_st_close(&f.st);
}

/* PyTorch-like default initialisation from dfr_rand, and the tensor table. */
static void test_init(void **state)
{
    (void)state;
    const int C = 30, d = 4, h = (C + 2 * d) / 2;
    dfr_cae *m = NULL, *m2 = NULL;
    assert_int_equal(dfr_cae_new(&m, rt, C, d, 2, 9, 42), DFRCL_OK);
    assert_int_equal(dfr_cae_new(&m2, rt, C, d, 1, 4, 43), DFRCL_OK);
    assert_int_equal(dfr_cae_channels(m), C);
    assert_int_equal(dfr_cae_latent(m), d);
    assert_int_equal(dfr_cae_hidden(m), h);
    assert_int_equal(dfr_cae_steps(m), 0);
    static const char *const names[DFR_CAE_NUM_TENSORS] = {
        "enc.0.weight", "enc.0.bias", "enc.1.weight", "enc.1.bias", "enc.1.running_mean",
        "enc.1.running_var", "enc.3.weight", "enc.3.bias", "enc.4.weight", "enc.4.bias",
        "enc.4.running_mean", "enc.4.running_var", "enc.6.weight", "enc.6.bias", "dec.0.weight",
        "dec.0.bias", "dec.1.weight", "dec.1.bias", "dec.1.running_mean", "dec.1.running_var",
        "dec.3.weight", "dec.3.bias", "dec.4.weight", "dec.4.bias", "dec.4.running_mean",
        "dec.4.running_var", "dec.6.weight", "dec.6.bias"};
    const int conv_io[6][2] = {{C, h}, {h, 2 * d}, {2 * d, d}, {d, 2 * d}, {2 * d, h}, {h, C}};
    size_t param_index = 0; /* the element's index in the flat parameter vector */
    int conv = 0;
    for (int i = 0; i < DFR_CAE_NUM_TENSORS; i++) {
        dfr_cae_tensor t;
        assert_int_equal(dfr_cae_tensor_info(m, i, &t), DFRCL_OK);
        assert_string_equal(t.name, names[i]);
        float *v = malloc(t.numel * sizeof *v), *v2 = malloc(t.numel * sizeof *v2);
        dfr_test_poison(v, t.numel);
        assert_int_equal(dfr_cae_get_tensor(m, t.name, v, t.numel), DFRCL_OK);
        assert_int_equal(dfr_cae_get_tensor(m2, t.name, v2, t.numel), DFRCL_OK);
        const char *what = strrchr(t.name, '.') + 1;
        int is_conv = strncmp(t.name, "enc.0", 5) == 0 || strncmp(t.name, "enc.3", 5) == 0 ||
                      strncmp(t.name, "enc.6", 5) == 0 || strncmp(t.name, "dec.0", 5) == 0 ||
                      strncmp(t.name, "dec.3", 5) == 0 || strncmp(t.name, "dec.6", 5) == 0;
        if (is_conv) {
            int ci = conv_io[conv][0], co = conv_io[conv][1];
            if (strcmp(what, "weight") == 0) {
                assert_int_equal(t.ndim, 4);
                assert_int_equal(t.shape[0], co);
                assert_int_equal(t.shape[1], ci);
                assert_int_equal(t.shape[2] * t.shape[3], 1);
            } else {
                assert_int_equal(t.ndim, 1);
                assert_int_equal(t.numel, co);
                conv++;
            }
            float b = 1.0f / sqrtf((float)ci);
            int differ = 0;
            for (size_t k = 0; k < t.numel; k++) {
                assert_true(v[k] == dfr_rand_uniform(42, (uint32_t)(param_index + k), -b, b));
                assert_true(v[k] >= -b && v[k] < b);
                differ |= v[k] != v2[k];
            }
            assert_true(differ); /* another seed, other values */
            assert_true(t.is_param);
            param_index += t.numel;
        } else {
            float want = strcmp(what, "weight") == 0 || strcmp(what, "running_var") == 0 ? 1.0f
                                                                                        : 0.0f;
            for (size_t k = 0; k < t.numel; k++) assert_true(v[k] == want);
            assert_int_equal(t.is_param, strncmp(what, "running", 7) != 0);
            if (t.is_param) param_index += t.numel;
        }
        free(v);
        free(v2);
    }
    dfr_cae_free(&m);
    dfr_cae_free(&m2);
    dfr_cae_free(&m2); /* twice is fine */
    dfr_cae_free(NULL);
}

static void test_bad_args(void **state)
{
    (void)state;
    dfr_cae *m = NULL;
    const int E = DFRCL_ERR_INVALID_ARG;
    assert_int_equal(dfr_cae_new(&m, rt, 8, 9, 2, 4, 1), E); /* latent > channels */
    assert_null(m);
    assert_int_equal(dfr_cae_new(&m, rt, 8, 0, 2, 4, 1), E);
    assert_int_equal(dfr_cae_new(&m, rt, 0, 1, 2, 4, 1), E);
    assert_int_equal(dfr_cae_new(&m, rt, 8, 2, 0, 4, 1), E);
    assert_int_equal(dfr_cae_new(&m, rt, 8, 2, 2, 0, 1), E);
    assert_int_equal(dfr_cae_new(&m, rt, 8, 2, 1 << 20, 1 << 20, 1), E);
    assert_int_equal(dfr_cae_new(&m, NULL, 8, 2, 2, 4, 1), E);
    assert_int_equal(dfr_cae_new(NULL, rt, 8, 2, 2, 4, 1), E);

    const int C = 8, P = 4, B = 2;
    assert_int_equal(dfr_cae_new(&m, rt, C, 2, B, P, 1), DFRCL_OK);
    cl_mem x = upload(NULL, B * C * P), small = upload(NULL, B * C * P - 1);
    assert_int_equal(dfr_cae_train_step(m, x, 0, B + 1, 1e-4f, NULL), E); /* batch > max */
    assert_int_equal(dfr_cae_train_step(m, x, 0, 0, 1e-4f, NULL), E);
    assert_int_equal(dfr_cae_train_step(m, small, 0, B, 1e-4f, NULL), E);
    assert_int_equal(dfr_cae_train_step(m, x, 1, B, 1e-4f, NULL), E); /* offset past the end */
    assert_int_equal(dfr_cae_train_step(m, x, (size_t)-1, 1, 1e-4f, NULL), E);
    assert_int_equal(dfr_cae_train_step(m, NULL, 0, B, 1e-4f, NULL), E);
    assert_int_equal(dfr_cae_train_step(m, x, 0, B, 0.0f, NULL), E);
    assert_int_equal(dfr_cae_train_step(m, x, 0, B, NAN, NULL), E);
    assert_int_equal(dfr_cae_train_step(NULL, x, 0, B, 1e-4f, NULL), E);
    assert_int_equal(dfr_cae_infer(m, x, 0, B + 1, x), E);
    assert_int_equal(dfr_cae_infer(m, x, 0, B, small), E); /* output too small */
    assert_int_equal(dfr_cae_infer(m, x, 0, B, NULL), E);
    assert_int_equal(dfr_cae_steps(m), 0);

    float v[64];
    dfr_cae_tensor t;
    assert_int_equal(dfr_cae_tensor_info(m, DFR_CAE_NUM_TENSORS, &t), E);
    assert_int_equal(dfr_cae_tensor_info(m, -1, &t), E);
    assert_int_equal(dfr_cae_get_tensor(m, "enc.2.weight", v, 5), E);
    assert_int_equal(dfr_cae_get_tensor(m, "enc.0.bias", v, 5), E); /* h = 6 */
    assert_int_equal(dfr_cae_get_tensor(m, "enc.0.bias", v, 6), DFRCL_OK);
    assert_int_equal(dfr_cae_get_grad(m, "enc.1.running_mean", v, 6), E);
    for (int i = 0; i < 6; i++) v[i] = 1.0f;
    v[3] = NAN;
    assert_int_equal(dfr_cae_set_tensor(m, "enc.1.weight", v, 6), E);
    v[3] = -1.0f;
    assert_int_equal(dfr_cae_set_tensor(m, "enc.1.running_var", v, 6), E);
    assert_int_equal(dfr_cae_get_output(m, v, 64), E); /* nothing kept */
    dfr_cae_free(&m);

    /* One value per channel: BatchNorm cannot train on it (PyTorch refuses too). */
    assert_int_equal(dfr_cae_new(&m, rt, C, 2, 1, 1, 1), DFRCL_OK);
    assert_int_equal(dfr_cae_train_step(m, x, 0, 1, 1e-4f, NULL), E);
    assert_int_equal(dfr_cae_infer(m, x, 0, 1, x), DFRCL_OK); /* inference is fine */
    dfr_cae_free(&m);
    dfr_buffer_release(&x);
    dfr_buffer_release(&small);
}

int main(void)
{
    DFR_TEST_OPEN_RUNTIME(&rt);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_args), cmocka_unit_test(test_init),
        cmocka_unit_test(test_steps),    cmocka_unit_test(test_infer_loaded),
        cmocka_unit_test(test_curve),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    dfr_runtime_close(&rt);
    return failed;
}
