/* Matrix products C = alpha * op(A) * op(B) + beta * C (src/ops/gemm.c is the host side).
 *
 * Operands are addressed by element strides, so one kernel covers the transposes, offsets and
 * leading dimensions: op(A)(i, k) = A[a_off + item*a_sb + i*a_si + k*a_sk], C(i, j) = C[c_off +
 * item*c_sb + i*c_si + j*c_sj], likewise op(B)(k, j); `item` is the batch index (global id 2).
 * nsum > 1 sums that many consecutive batch items into one C (the weight gradient of a 1x1
 * convolution over a batch of images).
 * beta == 0 never reads C, so whatever C holds (NaN) does not leak into the result.
 *
 * Two kernels, picked per device by the host:
 * - gemm_reg (CPUs, PoCL): no local memory; each work-item keeps a GEMM_RM x (GEMM_NV*GEMM_VW)
 *   tile of C in vector registers. It reads op(A) and op(B) packed by gemm_pack into panels
 *   (GEMM_RM rows of op(A), GEMM_NV*GEMM_VW columns of op(B), zero-padded, each panel one
 *   sequential stream along k), so its inner loop has no edges, strides or transposes, and
 *   caches and prefetchers see only sequential reads.
 * - gemm_lds (GPUs): a work-group computes a GEMM_TM x GEMM_TN tile, staging GEMM_TK-deep slices
 *   of op(A) and op(B) in local memory; each work-item keeps GEMM_WM x GEMM_WN results, strided
 *   over the tile so that local reads and global writes are consecutive across work-items. Any
 *   strides, no packing.
 */
/* The tunables gemm.c gives GPUs, then CPUs with AVX2 (tests/test_kernels_compile.sh builds
 * both): */
/* compile-variant: -DGEMM_TM=64 -DGEMM_TN=64 -DGEMM_TK=16 -DGEMM_WM=4 -DGEMM_WN=4 -DGEMM_RM=4 -DGEMM_VW=4 -DGEMM_NV=1 */
/* compile-variant: -DGEMM_RM=6 -DGEMM_VW=8 -DGEMM_NV=2 -DGEMM_TM=32 -DGEMM_TN=32 -DGEMM_TK=8 -DGEMM_WM=4 -DGEMM_WN=4 */
/* With fp16 operands (--precision fp16), the GPU tunables: */
/* compile-variant: -DGEMM_TM=64 -DGEMM_TN=64 -DGEMM_TK=16 -DGEMM_WM=4 -DGEMM_WN=4 -DGEMM_RM=4 -DGEMM_VW=4 -DGEMM_NV=1 -DGEMM_A_HALF=1 -DGEMM_B_HALF=1 -DGEMM_C_HALF=1 -DGEMM_PACK_HALF=1 */

/* ---- gemm_reg tunables ---- */
#ifndef GEMM_RM
#define GEMM_RM 6 /* rows of C per work-item */
#endif
#ifndef GEMM_VW
#define GEMM_VW 8 /* float vector width along n: 2, 4, 8 or 16 */
#endif
#ifndef GEMM_NV
#define GEMM_NV 2 /* vectors per row: a work-item covers GEMM_NV * GEMM_VW columns */
#endif

/* ---- gemm_lds tunables ---- */
#ifndef GEMM_TM
#define GEMM_TM 64 /* rows of the work-group tile */
#endif
#ifndef GEMM_TN
#define GEMM_TN 64 /* columns of the work-group tile */
#endif
#ifndef GEMM_TK
#define GEMM_TK 16 /* depth of the slices staged in local memory */
#endif
#ifndef GEMM_WM
#define GEMM_WM 4 /* rows per work-item */
#endif
#ifndef GEMM_WN
#define GEMM_WN 4 /* columns per work-item */
#endif

#if GEMM_VW != 2 && GEMM_VW != 4 && GEMM_VW != 8 && GEMM_VW != 16
#error "GEMM_VW must be 2, 4, 8 or 16"
#endif
#if GEMM_TM % GEMM_WM != 0 || GEMM_TN % GEMM_WN != 0
#error "GEMM_TM and GEMM_TN must be multiples of GEMM_WM and GEMM_WN"
#endif

#define GEMM_CAT_(a, b) a##b
#define GEMM_CAT(a, b) GEMM_CAT_(a, b)
typedef GEMM_CAT(float, GEMM_VW) gemm_vec;
#define GEMM_VLOAD GEMM_CAT(vload, GEMM_VW)
#define GEMM_VSTORE GEMM_CAT(vstore, GEMM_VW)
#define GEMM_NT (GEMM_VW * GEMM_NV)

/* Storage of the operands, not tunables: 1 = fp16 (common.cl), set by gemm.c per product. A and B
 * of gemm_lds; C of both kernels; the source of gemm_pack (the packed panels stay fp32). */
#ifndef GEMM_A_HALF
#define GEMM_A_HALF 0
#endif
#ifndef GEMM_B_HALF
#define GEMM_B_HALF 0
#endif
#ifndef GEMM_C_HALF
#define GEMM_C_HALF 0
#endif
#ifndef GEMM_PACK_HALF
#define GEMM_PACK_HALF 0
#endif
#define GEMM_A_T DFR_T(GEMM_A_HALF)
#define GEMM_B_T DFR_T(GEMM_B_HALF)
#define GEMM_C_T DFR_T(GEMM_C_HALF)
#define GEMM_CLD(i, p) DFR_LD(GEMM_C_HALF, i, p)
#define GEMM_CST(v, i, p) DFR_ST(GEMM_C_HALF, v, i, p)

#ifndef GEMM_FMA
#define GEMM_FMA 1 /* 1: fma() (the host sets 0 where the device lacks hardware FMA) */
#endif
#if GEMM_FMA
#define GEMM_MAD(a, b, c) fma(a, b, c)
#else
#define GEMM_MAD(a, b, c) mad(a, b, c)
#endif

/* C (m x n, strides c_si, c_sj) = alpha * Ap Bp + beta * C for batch item get_global_id(2),
 * where Ap holds ceil(m / GEMM_RM) panels [kp][GEMM_RM] and Bp ceil(n / GEMM_NT) panels
 * [kp][GEMM_NT] per item (item strides ap_sb, bp_sb; 0 = shared by all items). */
__kernel void gemm_reg(const int m, const int n, const int kp, const float alpha, const float beta,
                       __global const float *restrict Ap, const ulong ap_sb,
                       __global const float *restrict Bp, const ulong bp_sb, __global GEMM_C_T *C,
                       const ulong c_off, const ulong c_si, const ulong c_sj, const ulong c_sb)
{
    const int pj = (int)get_global_id(0), ti = (int)get_global_id(1);
    const int j0 = pj * GEMM_NT, i0 = ti * GEMM_RM;
    if (j0 >= n || i0 >= m) return;
    const ulong item = get_global_id(2);
    __global const float *pa = Ap + item * ap_sb + (ulong)ti * (ulong)kp * GEMM_RM;
    __global const float *pb = Bp + item * bp_sb + (ulong)pj * (ulong)kp * GEMM_NT;

    gemm_vec acc[GEMM_RM][GEMM_NV];
    #pragma unroll
    for (int r = 0; r < GEMM_RM; r++)
        #pragma unroll
        for (int v = 0; v < GEMM_NV; v++) acc[r][v] = (gemm_vec)(0.0f);
    for (int kk = 0; kk < kp; kk++) {
        gemm_vec b[GEMM_NV];
        #pragma unroll
        for (int v = 0; v < GEMM_NV; v++) b[v] = GEMM_VLOAD(v, pb);
        #pragma unroll
        for (int r = 0; r < GEMM_RM; r++) {
            const gemm_vec a = (gemm_vec)(pa[r]);
            #pragma unroll
            for (int v = 0; v < GEMM_NV; v++) acc[r][v] = GEMM_MAD(a, b[v], acc[r][v]);
        }
        pa += GEMM_RM;
        pb += GEMM_NT;
    }

    __global GEMM_C_T *pc0 = C + c_off + item * c_sb + (ulong)i0 * c_si + (ulong)j0 * c_sj;
    const int full = j0 + GEMM_NT <= n && c_sj == 1;
    #pragma unroll
    for (int r = 0; r < GEMM_RM; r++) {
        __global GEMM_C_T *pc = pc0 + (ulong)r * c_si;
        if (i0 + r < m && full) {
            #pragma unroll
            for (int v = 0; v < GEMM_NV; v++) {
                gemm_vec o = alpha * acc[r][v];
                if (beta != 0.0f) o += beta * DFR_LDV(GEMM_C_HALF, GEMM_VW, v, pc);
                DFR_STV(GEMM_C_HALF, GEMM_VW, o, v, pc);
            }
        } else if (i0 + r < m) {
            float vals[GEMM_NT];
            #pragma unroll
            for (int v = 0; v < GEMM_NV; v++) GEMM_VSTORE(acc[r][v], v, vals);
            for (int c = 0; c < GEMM_NT && j0 + c < n; c++) {
                __global GEMM_C_T *p = pc + (ulong)c * c_sj;
                float o = alpha * vals[c];
                if (beta != 0.0f) o += beta * GEMM_CLD(0, p);
                GEMM_CST(o, 0, p);
            }
        }
    }
}

#define GEMM_RX (GEMM_TN / GEMM_WN) /* work-items along n */
#define GEMM_RY (GEMM_TM / GEMM_WM) /* work-items along m */
#define GEMM_NWI (GEMM_RX * GEMM_RY)
/* Elements of each staged slice that every work-item loads. */
#define GEMM_LA (GEMM_TM * GEMM_TK / GEMM_NWI)
#define GEMM_LB (GEMM_TN * GEMM_TK / GEMM_NWI)
#if (GEMM_TM * GEMM_TK) % GEMM_NWI != 0 || (GEMM_TN * GEMM_TK) % GEMM_NWI != 0
#error "GEMM_TM * GEMM_TK and GEMM_TN * GEMM_TK must be multiples of the work-group size"
#endif

__kernel __attribute__((reqd_work_group_size(GEMM_RX, GEMM_RY, 1))) void
gemm_lds(const int m, const int n, const int k, const int nsum, const float alpha, const float beta,
         __global const GEMM_A_T *restrict A, const ulong a_off, const ulong a_si, const ulong a_sk,
         const ulong a_sb, __global const GEMM_B_T *restrict B, const ulong b_off, const ulong b_sk,
         const ulong b_sj, const ulong b_sb, __global GEMM_C_T *C, const ulong c_off,
         const ulong c_si, const ulong c_sj, const ulong c_sb)
{
    /* +1 column: a slice loaded along k writes with a stride that would otherwise hit one bank. */
    __local float As[GEMM_TK][GEMM_TM + 1];
    __local float Bs[GEMM_TK][GEMM_TN + 1];
    const int tx = (int)get_local_id(0), ty = (int)get_local_id(1);
    const int tid = ty * GEMM_RX + tx;
    const int j0 = (int)get_group_id(0) * GEMM_TN;
    const int i0 = (int)get_group_id(1) * GEMM_TM;
    const ulong item = get_global_id(2);

    /* What this work-item loads of each slice: consecutive work-items take consecutive addresses
     * (along k when the operand is contiguous along k, else along m or n). The element's offset
     * from the slice's corner is fixed; only the corner moves along k. Rows and columns past the
     * matrix, and depths past k, are staged as zeros. */
    const int a_kfast = a_sk == 1, b_kfast = b_sj != 1 && b_sk == 1;
    int la_i[GEMM_LA], la_k[GEMM_LA], la_ok[GEMM_LA];
    ulong la_off[GEMM_LA];
    #pragma unroll
    for (int l = 0; l < GEMM_LA; l++) {
        const int e = tid + l * GEMM_NWI;
        /* Remainders written out: clang turns a '/' and '%' pair into IR (freeze) that
         * llvm-spirv-14 cannot translate. */
        const int da = a_kfast ? GEMM_TK : GEMM_TM, qa = e / da, ra = e - qa * da;
        la_i[l] = a_kfast ? qa : ra;
        la_k[l] = a_kfast ? ra : qa;
        la_ok[l] = i0 + la_i[l] < m;
        la_off[l] = la_ok[l] ? (ulong)(i0 + la_i[l]) * a_si + (ulong)la_k[l] * a_sk : 0;
    }
    int lb_j[GEMM_LB], lb_k[GEMM_LB], lb_ok[GEMM_LB];
    ulong lb_off[GEMM_LB];
    #pragma unroll
    for (int l = 0; l < GEMM_LB; l++) {
        const int e = tid + l * GEMM_NWI;
        const int db = b_kfast ? GEMM_TK : GEMM_TN, qb = e / db, rb = e - qb * db;
        lb_j[l] = b_kfast ? qb : rb;
        lb_k[l] = b_kfast ? rb : qb;
        lb_ok[l] = j0 + lb_j[l] < n;
        lb_off[l] = lb_ok[l] ? (ulong)(j0 + lb_j[l]) * b_sj + (ulong)lb_k[l] * b_sk : 0;
    }

    float acc[GEMM_WM][GEMM_WN];
    #pragma unroll
    for (int r = 0; r < GEMM_WM; r++)
        #pragma unroll
        for (int c = 0; c < GEMM_WN; c++) acc[r][c] = 0.0f;

    for (int s = 0; s < nsum; s++) {
        __global const GEMM_A_T *pa = A + a_off + (item + (ulong)s) * a_sb;
        __global const GEMM_B_T *pb = B + b_off + (item + (ulong)s) * b_sb;
        for (int k0 = 0; k0 < k; k0 += GEMM_TK) {
            __global const GEMM_A_T *sa = pa + (ulong)k0 * a_sk;
            __global const GEMM_B_T *sb = pb + (ulong)k0 * b_sk;
            #pragma unroll
            for (int l = 0; l < GEMM_LA; l++)
                As[la_k[l]][la_i[l]] =
                    la_ok[l] && k0 + la_k[l] < k ? DFR_LD(GEMM_A_HALF, la_off[l], sa) : 0.0f;
            #pragma unroll
            for (int l = 0; l < GEMM_LB; l++)
                Bs[lb_k[l]][lb_j[l]] =
                    lb_ok[l] && k0 + lb_k[l] < k ? DFR_LD(GEMM_B_HALF, lb_off[l], sb) : 0.0f;
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int kk = 0; kk < GEMM_TK; kk++) {
                float a[GEMM_WM], b[GEMM_WN];
                #pragma unroll
                for (int r = 0; r < GEMM_WM; r++) a[r] = As[kk][ty + r * GEMM_RY];
                #pragma unroll
                for (int c = 0; c < GEMM_WN; c++) b[c] = Bs[kk][tx + c * GEMM_RX];
                #pragma unroll
                for (int r = 0; r < GEMM_WM; r++)
                    #pragma unroll
                    for (int c = 0; c < GEMM_WN; c++) acc[r][c] = mad(a[r], b[c], acc[r][c]);
            }
            barrier(CLK_LOCAL_MEM_FENCE);
        }
    }

    __global GEMM_C_T *pc = C + c_off + item * c_sb;
    #pragma unroll
    for (int r = 0; r < GEMM_WM; r++) {
        const int i = i0 + ty + r * GEMM_RY;
        if (i >= m) break;
        #pragma unroll
        for (int c = 0; c < GEMM_WN; c++) {
            const int j = j0 + tx + c * GEMM_RX;
            if (j >= n) break;
            __global GEMM_C_T *p = pc + (ulong)i * c_si + (ulong)j * c_sj;
            float o = alpha * acc[r][c];
            if (beta != 0.0f) o += beta * GEMM_CLD(0, p);
            GEMM_CST(o, 0, p);
        }
    }
}

/* Packing for gemm_reg. The source is an operand seen as X (x_len x k per batch item: rows of
 * op(A), or columns of op(B)), element (x, kk) of source item t at
 * src[s_off + t*s_sb + x*s_sx + kk*s_sk]. A sum over nsum items is a product of depth nsum*k;
 * this packs depths [kbeg, kbeg + klen) of it for output item get_global_id(2):
 * dst[item*d_sb + ((x / w) * klen + kk) * w + x % w], zero for x >= x_len.
 * A work-item copies a panel's w columns over GEMM_PKB depths, reading along whichever of x
 * (x_fast, s_sx == 1) or k the source is contiguous in. */
#ifndef GEMM_PKB
#define GEMM_PKB 16
#endif
__kernel void gemm_pack(const int x_len, const int w, const int k, const int nsum, const long kbeg,
                        const int klen, const int x_fast,
                        __global const DFR_T(GEMM_PACK_HALF) *restrict src,
                        const ulong s_off, const ulong s_sx, const ulong s_sk, const ulong s_sb,
                        __global float *restrict dst, const ulong d_sb)
{
    const int panel = (int)get_global_id(0), kb = (int)get_global_id(1) * GEMM_PKB;
    const int x0 = panel * w;
    if (x0 >= x_len || kb >= klen) return;
    const ulong item = get_global_id(2);
    const int kend = min(klen, kb + GEMM_PKB), xn = min(w, x_len - x0);
    /* Depth kbeg + kb of the summed product: item s of the sum, depth kr in it. */
    const long ke = kbeg + kb;
    const int s = (int)(ke / k), kr = (int)(ke - (long)s * k);
    __global float *d = dst + item * d_sb + ((ulong)panel * (ulong)klen + (ulong)kb) * (ulong)w;
    __global const DFR_T(GEMM_PACK_HALF) *base =
        src + s_off + item * (ulong)nsum * s_sb + (ulong)x0 * s_sx;
    if (x_fast) {
        int si = s, ki = kr;
        for (int kk = kb; kk < kend; kk++) {
            __global const DFR_T(GEMM_PACK_HALF) *p = base + (ulong)si * s_sb + (ulong)ki * s_sk;
            for (int c = 0; c < xn; c++) d[c] = DFR_LD(GEMM_PACK_HALF, c, p);
            for (int c = xn; c < w; c++) d[c] = 0.0f;
            d += w;
            if (++ki == k) ki = 0, si++;
        }
    } else if (kr + (kend - kb) <= k) {
        /* The common case: the depths lie within one item of the sum. */
        __global const DFR_T(GEMM_PACK_HALF) *p0 = base + (ulong)s * s_sb + (ulong)kr * s_sk;
        const int nk = kend - kb;
        for (int j = 0; j < nk; j++) {
            __global const DFR_T(GEMM_PACK_HALF) *p = p0 + (ulong)j * s_sk;
            for (int c = 0; c < xn; c++) d[c] = DFR_LD(GEMM_PACK_HALF, (ulong)c * s_sx, p);
            for (int c = xn; c < w; c++) d[c] = 0.0f;
            d += w;
        }
    } else {
        for (int c = 0; c < w; c++) {
            int si = s, ki = kr;
            for (int kk = kb; kk < kend; kk++) {
                d[(kk - kb) * w + c] =
                    c < xn ? DFR_LD(GEMM_PACK_HALF,
                                    (ulong)si * s_sb + (ulong)c * s_sx + (ulong)ki * s_sk, base)
                           : 0.0f;
                if (++ki == k) ki = 0, si++;
            }
        }
    }
}
