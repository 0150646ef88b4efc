/* Device memory limits (issue 10, small devices): dfr_buffer_new refuses a buffer over the
 * device's largest allocation or one past its global memory (counting what the runtime's buffers
 * hold, released ones leaving the count), the batch-size helper, and the GEMM's packing scratch
 * staying within a small device's buffers. The limits are lowered in rt->info to test what a
 * small device would do on any device. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cl/runtime.h"
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
    assert_non_null(strstr(msg, "--size"));
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_and_releases),
        cmocka_unit_test(test_refuses_over_max_alloc),
        cmocka_unit_test(test_refuses_past_global),
        cmocka_unit_test(test_batch_fits),
        cmocka_unit_test(test_gemm_small_buffers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
