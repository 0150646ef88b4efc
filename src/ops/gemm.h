/* The one matrix product every layer of dfrcl goes through (1x1 convolutions of the CAE and
 * their gradients, the PCA covariance). float32, row-major like C.
 *
 * Shapes in DFR: features are [B, C, P] (P positions per image).
 *   forward   Out[Co x P]  = W[Co x Ci] * In[Ci x P]      NN, batch B, b/c_stride = Ci*P, Co*P
 *   backward  dIn[Ci x P]  = W^T * dOut[Co x P]           TN (trans_a), batch B
 *             dW[Co x Ci] += sum over images of dOut * In^T   NT (trans_b), batch B, c_stride 0
 *   PCA       Cov[C x C]   = X^T X, X [N x C]              TN, k = N */
#ifndef DFRCL_OPS_GEMM_H
#define DFRCL_OPS_GEMM_H

#include "cl/runtime.h"

typedef struct dfr_gemm_desc {
    int trans_a, trans_b; /* op(X) = X, or X^T when set */
    int m, n, k;          /* op(A) is m x k, op(B) is k x n, C is m x n; each >= 0 */
    float alpha, beta;    /* C = alpha*op(A)*op(B) + beta*C; beta == 0 means C is not read (NaN in
                             C does not propagate); alpha == 0 or k == 0: A and B are not read */
    /* Offsets, leading dimensions and batch strides in elements. A is stored (trans_a ? k x m :
     * m x k) with rows lda apart; likewise B (k x n, or n x k transposed) and C (m x n). */
    cl_mem a;
    size_t a_offset, lda, a_stride;
    cl_mem b;
    size_t b_offset, ldb, b_stride;
    cl_mem c;
    size_t c_offset, ldc, c_stride;
    /* >= 1: matrix i of A, B, C starts at offset + i*stride. The C matrices of a batch must not
     * overlap, except c_stride == 0 with batch > 1, which SUMS the batch into one C:
     * C = alpha * sum_i op(A_i) op(B_i) + beta*C (the weight gradient over a batch of images). */
    int batch;
    /* Storage of each operand: 0 fp32 (the default), 1 fp16 (2-byte elements; offsets, leading
     * dimensions and strides still count elements). Arithmetic and sums are fp32 either way.
     * Products with an fp16 operand run on the own kernels (CLBlast's half GEMM would sum in
     * half). */
    int half_a, half_b, half_c;
} dfr_gemm_desc;

/* Enqueues C = alpha*op(A)*op(B) + beta*C on rt's queue and returns without waiting. Every size,
 * leading dimension and offset is checked against the buffers' sizes; C may not share elements
 * with A or B. `label` names the profiling stage (a static string). The own kernels record a
 * profiling event; CLBlast's launches are not recorded (see gemm.c). */
int dfr_gemm(dfr_runtime *rt, const dfr_gemm_desc *g, const char *label);

/* Which implementation dfr_gemm uses on a runtime.
 * AUTO: the environment variable DFRCL_GEMM (own | clblast) as it was when the runtime opened
 *       (dfr_runtime_reload_env reads it again), else the faster
 *       one for the device type: the own register-tiled kernel on CPUs, CLBlast on GPUs and
 *       accelerators (its per-device tuning database covers far more GPUs than our one
 *       untuned local-memory kernel; see gemm.c).
 * OWN: the own kernel that suits the device type (gemm_reg on CPUs, gemm_lds otherwise).
 * OWN_REG, OWN_LDS: one own kernel whatever the device (tests and benchmarks).
 * CLBLAST: CLBlast. */
typedef enum {
    DFR_GEMM_AUTO,
    DFR_GEMM_OWN,
    DFR_GEMM_CLBLAST,
    DFR_GEMM_OWN_REG,
    DFR_GEMM_OWN_LDS,
} dfr_gemm_backend;

/* Sets the backend for one runtime (kept in rt->gemm; AUTO goes back to the environment's or the
 * device's). Like every use of a runtime, from the one thread that uses rt at the time. */
void dfr_gemm_set_backend(dfr_runtime *rt, dfr_gemm_backend b);
/* The implementation the next dfr_gemm on rt will use: OWN_REG, OWN_LDS or CLBLAST. */
dfr_gemm_backend dfr_gemm_backend_in_use(dfr_runtime *rt);
/* "own-reg", "own-lds", "clblast", ... */
const char *dfr_gemm_backend_name(dfr_gemm_backend b);

/* Frees the packing buffers dfr_gemm keeps for rt (those of the own CPU kernel, ~100 MB at DFR's
 * sizes); the backend setting stays. Harmless between products (the next one allocates again);
 * dfr_runtime_close frees everything in rt->gemm. */
void dfr_gemm_release(dfr_runtime *rt);

#endif
