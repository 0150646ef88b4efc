/* Device memory limits (issue 10, small devices): dfr_buffer_new refuses a buffer over the
 * device's largest allocation or one past its global memory (counting what the runtime's buffers
 * hold, released ones leaving the count), the batch-size helper, the GEMM's packing scratch
 * staying within a small device's buffers, and the autoencoder's inference in position chunks. The limits are lowered in rt->info to test what a
 * small device would do on any device. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cl/runtime.h"
#include "model/cae.h"
#include "ops/gemm.h"
#include "testutil.h"
#include "util/error.h"

#define MIB ((size_t)1 << 20)

static dfr_runtime *open_rt(void)
{
    dfr_runtime *rt = NULL;
    int rc = dfr_runtime_open(&rt, NULL, NULL, 0);
    if (rc) fail_msg("runtime: %s", dfrcl_last_error());
    return rt;
}

static void test_counts_and_releases(void **state)
{
    (void)state;
    dfr_runtime *rt = open_rt();
    size_t base = dfr_runtime_mem_used(rt);
    cl_mem a = NULL, b = NULL;
    assert_int_equal(dfr_buffer_new(rt, 3 * MIB, CL_MEM_READ_WRITE, "a", &a), DFRCL_OK);
    assert_int_equal(dfr_buffer_new(rt, 5 * MIB, CL_MEM_READ_WRITE, "b", &b), DFRCL_OK);
    assert_int_equal(dfr_runtime_mem_used(rt), base + 8 * MIB);
    dfr_buffer_release(&a);
    dfr_finish(rt);
    assert_int_equal(dfr_runtime_mem_used(rt), base + 5 * MIB);
    /* A buffer may outlive its runtime (the account stays until both are gone). */
    dfr_runtime_close(&rt);
    dfr_buffer_release(&b);
}

static void test_refuses_over_max_alloc(void **state)
{
    (void)state;
    dfr_runtime *rt = open_rt();
    rt->info.max_alloc_bytes = 4 * MIB;
    cl_mem a = (cl_mem)1;
    assert_int_equal(dfr_buffer_new(rt, 4 * MIB + 4, CL_MEM_READ_WRITE, "the big one", &a),
                     DFRCL_ERR_DEVICE_MEMORY);
    assert_null(a);
    const char *msg = dfrcl_last_error();
    assert_non_null(strstr(msg, "the big one"));
    assert_non_null(strstr(msg, "4.0 MiB per buffer"));
    assert_non_null(strstr(msg, "image size (size)"));
    assert_int_equal(dfr_buffer_new(rt, 4 * MIB, CL_MEM_READ_WRITE, "the largest", &a), DFRCL_OK);
    assert_false(dfr_runtime_fits(rt, 4 * MIB + 1));
    dfr_buffer_release(&a);
    dfr_runtime_close(&rt);
}

static void test_refuses_past_global(void **state)
{
    (void)state;
    dfr_runtime *rt = open_rt();
    rt->info.global_mem_bytes = dfr_runtime_mem_used(rt) + 10 * MIB;
    cl_mem a = NULL, b = NULL, c = (cl_mem)1;
    assert_int_equal(dfr_buffer_new(rt, 4 * MIB, CL_MEM_READ_WRITE, "a", &a), DFRCL_OK);
    assert_int_equal(dfr_buffer_new(rt, 4 * MIB, CL_MEM_READ_WRITE, "b", &b), DFRCL_OK);
    assert_true(dfr_runtime_fits(rt, 2 * MIB));
    assert_false(dfr_runtime_fits(rt, 2 * MIB + 1));
    assert_int_equal(dfr_buffer_new(rt, 4 * MIB, CL_MEM_READ_WRITE, "the third", &c),
                     DFRCL_ERR_DEVICE_MEMORY);
    assert_null(c);
    const char *msg = dfrcl_last_error();
    assert_non_null(strstr(msg, "the third"));
    assert_non_null(strstr(msg, "holds 8.0 MiB"));
    /* Released (even with work in flight on it): room again. */
    dfr_buffer_release(&a);
    assert_int_equal(dfr_buffer_new(rt, 4 * MIB, CL_MEM_READ_WRITE, "the third", &c), DFRCL_OK);
    dfr_buffer_release(&b);
    dfr_buffer_release(&c);
    dfr_runtime_close(&rt);
}

static void test_batch_fits(void **state)
{
    (void)state;
    dfr_runtime *rt = open_rt();
    size_t base = dfr_runtime_mem_used(rt);
    rt->info.global_mem_bytes = base + 64 * MIB; /* 7/8: 56 MiB usable */
    rt->info.max_alloc_bytes = 16 * MIB;
    /* (56 - 8) / 10 = 4.8 images by memory, 16 / 4 = 4 by the largest buffer. */
    assert_int_equal(dfr_runtime_batch_fits(rt, 8 * MIB, 10 * MIB, 4 * MIB, 100), 4);
    assert_int_equal(dfr_runtime_batch_fits(rt, 8 * MIB, 10 * MIB, 3 * MIB, 100), 4);
    assert_int_equal(dfr_runtime_batch_fits(rt, 8 * MIB, 5 * MIB, 3 * MIB, 100), 5);
    assert_int_equal(dfr_runtime_batch_fits(rt, 8 * MIB, 5 * MIB, 3 * MIB, 2), 2);
    assert_int_equal(dfr_runtime_batch_fits(rt, 8 * MIB, 10 * MIB, 17 * MIB, 100), 0);
    assert_int_equal(dfr_runtime_batch_fits(rt, 50 * MIB, 10 * MIB, 1 * MIB, 100), 0);
    cl_mem a = NULL; /* what the runtime holds counts */
    assert_int_equal(dfr_buffer_new(rt, 16 * MIB, CL_MEM_READ_WRITE, "a", &a), DFRCL_OK);
    assert_int_equal(dfr_runtime_batch_fits(rt, 8 * MIB, 10 * MIB, 4 * MIB, 100), 3);
    dfr_buffer_release(&a);
    dfr_runtime_close(&rt);
}

/* C = A B with packed operands of 2 MiB on a device allowing 1 MiB per buffer: the packing goes
 * in depth chunks, every element right. */
static void test_gemm_small_buffers(void **state)
{
    (void)state;
    dfr_runtime *rt = open_rt();
    rt->info.max_alloc_bytes = 1 * MIB;
    dfr_gemm_set_backend(rt, DFR_GEMM_OWN_REG);
    enum { M = 256, N = 256, K = 1024 };
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N);
    float *c = malloc(sizeof(float) * M * N), *ref = calloc(M * N, sizeof(float));
    assert_true(a && b && c && ref);
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = dfr_test_uniform(1, (uint32_t)i, -1, 1);
    for (size_t i = 0; i < (size_t)K * N; i++) b[i] = dfr_test_uniform(2, (uint32_t)i, -1, 1);
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++)
            for (int j = 0; j < N; j++) ref[i * N + j] += a[i * K + k] * b[k * N + j];
    dfr_test_poison(c, (size_t)M * N);
    cl_mem da, db, dc;
    assert_int_equal(dfr_buffer_new(rt, sizeof(float) * M * K, CL_MEM_READ_ONLY, "A", &da), 0);
    assert_int_equal(dfr_buffer_new(rt, sizeof(float) * K * N, CL_MEM_READ_ONLY, "B", &db), 0);
    assert_int_equal(dfr_buffer_new(rt, sizeof(float) * M * N, CL_MEM_READ_WRITE, "C", &dc), 0);
    assert_int_equal(dfr_write(rt, da, 0, sizeof(float) * M * K, a, "up"), 0);
    assert_int_equal(dfr_write(rt, db, 0, sizeof(float) * K * N, b, "up"), 0);
    assert_int_equal(dfr_write(rt, dc, 0, sizeof(float) * M * N, c, "up"), 0);
    dfr_gemm_desc g = {.m = M, .n = N, .k = K, .alpha = 1, .beta = 0, .a = da, .lda = K,
                       .b = db, .ldb = N, .c = dc, .ldc = N, .batch = 1};
    int rc = dfr_gemm(rt, &g, "gemm");
    if (rc) fail_msg("gemm: %s", dfrcl_last_error());
    assert_int_equal(dfr_read(rt, dc, 0, sizeof(float) * M * N, c, "down"), 0);
    assert_int_equal(dfr_test_compare("C", c, ref, (size_t)M * N, 1e-3f, 1e-4f), 0);
    dfr_buffer_release(&da);
    dfr_buffer_release(&db);
    dfr_buffer_release(&dc);
    free(a), free(b), free(c), free(ref);
    dfr_runtime_close(&rt);
}

/* 1x1 conv + bias on the host: y[co][P] = W x + b. */
static void host_conv(const float *w, const float *b, const double *x, int ci, int co, int P,
                      double *y)
{
    for (int o = 0; o < co; o++)
        for (int p = 0; p < P; p++) {
            double v = b[o];
            for (int i = 0; i < ci; i++) v += (double)w[o * ci + i] * x[(size_t)i * P + p];
            y[(size_t)o * P + p] = v;
        }
}

/* Inference on images of 5000 positions (chunks of 4096 and 904), two at an element offset:
 * every position as the host computes it (eval-mode BatchNorm with set running statistics). */
static void test_cae_infer_chunks(void **state)
{
    (void)state;
    dfr_runtime *rt = open_rt();
    enum { C = 12, D = 3, P = 5000, B = 2, OFF = 7 };
    dfr_cae *cae = NULL;
    assert_int_equal(dfr_cae_new_scorer(&cae, rt, C, D, B, P), DFRCL_OK);
    const int H = dfr_cae_hidden(cae), ch[7] = {C, H, 2 * D, D, 2 * D, H, C};
    static const char *conv[6] = {"enc.0", "enc.3", "enc.6", "dec.0", "dec.3", "dec.6"};
    static const char *bn[6] = {"enc.1", "enc.4", NULL, "dec.1", "dec.4", NULL};
    float *w[6], *bias[6], *st[6][4] = {{0}};
    static const char *sn[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int l = 0; l < 6; l++) {
        char name[64];
        w[l] = malloc(sizeof(float) * ch[l] * ch[l + 1]);
        bias[l] = malloc(sizeof(float) * ch[l + 1]);
        snprintf(name, sizeof name, "%s.weight", conv[l]);
        assert_int_equal(dfr_cae_get_tensor(cae, name, w[l], (size_t)ch[l] * ch[l + 1]), 0);
        snprintf(name, sizeof name, "%s.bias", conv[l]);
        assert_int_equal(dfr_cae_get_tensor(cae, name, bias[l], (size_t)ch[l + 1]), 0);
        for (int t = 0; bn[l] && t < 4; t++) { /* gamma, beta, mean, var away from 1, 0, 0, 1 */
            st[l][t] = malloc(sizeof(float) * ch[l + 1]);
            for (int c = 0; c < ch[l + 1]; c++)
                st[l][t][c] = t == 3 ? dfr_test_uniform(50 + l, c, 0.5f, 2.0f)
                                     : dfr_test_uniform(60 + 4 * l + t, c, -0.5f, 0.5f);
            snprintf(name, sizeof name, "%s.%s", bn[l], sn[t]);
            assert_int_equal(dfr_cae_set_tensor(cae, name, st[l][t], (size_t)ch[l + 1]), 0);
        }
    }
    size_t n = (size_t)B * C * P;
    float *x = malloc(sizeof(float) * (n + OFF)), *out = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n + OFF; i++) x[i] = dfr_test_uniform(3, (uint32_t)i, -1, 1);
    dfr_test_poison(out, n);
    cl_mem dx, dout;
    assert_int_equal(dfr_buffer_new(rt, sizeof(float) * (n + OFF), CL_MEM_READ_ONLY, "x", &dx), 0);
    assert_int_equal(dfr_buffer_new(rt, sizeof(float) * n, CL_MEM_READ_WRITE, "out", &dout), 0);
    assert_int_equal(dfr_write(rt, dx, 0, sizeof(float) * (n + OFF), x, "up"), 0);
    assert_int_equal(dfr_write(rt, dout, 0, sizeof(float) * n, out, "up"), 0);
    int rc = dfr_cae_infer(cae, dx, OFF, B, dout);
    if (rc) fail_msg("infer: %s", dfrcl_last_error());
    assert_int_equal(dfr_read(rt, dout, 0, sizeof(float) * n, out, "down"), 0);
    /* The host: per image, every layer over all positions in double. */
    float *ref = malloc(sizeof(float) * n);
    size_t most = (size_t)(H > C ? H : C) * P;
    double *a = malloc(sizeof(double) * most), *y = malloc(sizeof(double) * most);
    for (int b = 0; b < B; b++) {
        for (size_t i = 0; i < (size_t)C * P; i++) a[i] = x[OFF + (size_t)b * C * P + i];
        for (int l = 0; l < 6; l++) {
            host_conv(w[l], bias[l], a, ch[l], ch[l + 1], P, y);
            for (int c = 0; c < ch[l + 1]; c++)
                for (int p = 0; p < P; p++) {
                    double v = y[(size_t)c * P + p];
                    if (bn[l]) {
                        v = (v - st[l][2][c]) / sqrt((double)st[l][3][c] + 1e-5) * st[l][0][c] +
                            st[l][1][c];
                        v = v > 0 ? v : 0;
                    }
                    a[(size_t)c * P + p] = v;
                }
        }
        for (size_t i = 0; i < (size_t)C * P; i++) ref[(size_t)b * C * P + i] = (float)a[i];
    }
    assert_int_equal(dfr_test_compare("recon", out, ref, n, 1e-4f, 1e-3f), 0);
    for (int l = 0; l < 6; l++) {
        free(w[l]), free(bias[l]);
        for (int t = 0; t < 4; t++) free(st[l][t]);
    }
    free(x), free(out), free(ref), free(a), free(y);
    dfr_buffer_release(&dx);
    dfr_buffer_release(&dout);
    dfr_cae_free(&cae);
    dfr_runtime_close(&rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_and_releases),
        cmocka_unit_test(test_refuses_over_max_alloc),
        cmocka_unit_test(test_refuses_past_global),
        cmocka_unit_test(test_batch_fits),
        cmocka_unit_test(test_gemm_small_buffers),
        cmocka_unit_test(test_cae_infer_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
