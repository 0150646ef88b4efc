/* Shared helpers, prepended to every stage file. OpenCL C 1.2. */

/* Bilinear source coordinate with align_corners=True: out index o of n_out maps to
 * o * (n_in - 1) / (n_out - 1), split into the lower index, the upper index (clamped) and the
 * weight of the upper one, as PyTorch computes it (scale in float). */
inline void dfr_align_corners(int o, int n_in, int n_out, int *i0, int *i1, float *l1)
{
    float scale = n_out > 1 ? (float)(n_in - 1) / (float)(n_out - 1) : 0.0f;
    float src = scale * (float)o;
    int i = (int)src;
    if (i > n_in - 1) i = n_in - 1;
    *i0 = i;
    *i1 = i < n_in - 1 ? i + 1 : i;
    *l1 = src - (float)i;
}

/* fp16 by hand on 16-bit integers, rounding to nearest, ties to even, as vstore_half does: for
 * the training feature store (featstore.cl) and for compilers whose headers lack vload_half. */
inline ushort dfr_float_to_half_bits(float f)
{
    uint x = as_uint(f), s = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return (ushort)(s | 0x7e00u);  /* NaN */
    if (a >= 0x477ff000u) return (ushort)(s | 0x7c00u); /* >= 65520 (and inf): inf */
    if (a < 0x38800000u) /* below 2^-14: a subnormal half, a multiple of 2^-24 */
        return (ushort)(s | (uint)rint(as_float(a) * 16777216.0f));
    uint h = (((a >> 23) - 112u) << 10) | ((a >> 13) & 0x3ffu), rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* a carry moves into the exponent */
    return (ushort)(s | h);
}

inline float dfr_half_bits_to_float(ushort h)
{
    uint s = (uint)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) return as_float(s | as_uint((float)m * 5.9604644775390625e-8f)); /* m * 2^-24 */
    if (e == 31) return as_float(s | 0x7f800000u | (m << 13));
    return as_float(s | ((e + 112u) << 23) | (m << 13));
}

/* ---- Storage precision of activations (dfrcl --precision) ----
 * Built with -DDFR_HALF=1 (the host adds it when dfr_runtime.half is set), these buffers hold fp16
 * (2 bytes an element; converted to float on load, rounded to nearest even on store):
 *   - the backbone's activations: preprocess output, every conv and max-pool output;
 *   - the regional feature [n, C, size/4, size/4], the largest buffer;
 *   - the autoencoder's activations in inference (its 1x1 conv outputs) and its reconstruction.
 * fp32 always: weights and biases, the regional weight table, the GEMM's packed panels, the score
 * maps, and everything in training (dfr_train runs in fp32 whatever the runtime says).
 * All arithmetic, and every accumulation, is fp32: values are widened on load. (PoCL on CPUs has
 * no cl_khr_fp16, and the accumulating kernels must sum in fp32, so no kernel computes in half.)
 *
 * ACT_T is the element type of those buffers in the kernels, ACT_LD(i, p) / ACT_ST(v, i, p) read
 * and write element i of p as float, ACT_LDV(n, i, p) / ACT_STV(n, v, i, p) the float vector of
 * elements n*i .. n*i+n-1 (as vloadn). Without DFR_HALF they are plain float accesses. The DFR_*
 * forms take the storage flag (0 or 1) as their first argument, for kernels whose operands differ
 * (gemm.cl). */
#ifndef DFR_HALF
#define DFR_HALF 0
#endif
#define DFR_CAT_(a, b) a##b
#define DFR_CAT(a, b) DFR_CAT_(a, b)
#define DFR_T_0 float
#define DFR_T_1 half
#define DFR_LD_0(i, p) ((p)[i])
#define DFR_ST_0(v, i, p) ((p)[i] = (v))
#define DFR_LDV_0(n, i, p) DFR_CAT(vload, n)(i, p)
#define DFR_STV_0(n, v, i, p) DFR_CAT(vstore, n)(v, i, p)
#if defined(__NVPTX__) && !defined(cl_khr_fp16)
/* clang's OpenCL headers for nvptx declare no vload_half: convert by hand there. */
#define DFR_HB(p) ((__global const ushort *)(p))
#define DFR_LD_1(i, p) dfr_half_bits_to_float(DFR_HB(p)[i])
#define DFR_ST_1(v, i, p) (((__global ushort *)(p))[i] = dfr_float_to_half_bits(v))
#define DFR_SOFT_HALFN(n)                                                                       \
    inline DFR_CAT(float, n) DFR_CAT(dfr_vload_half, n)(size_t i, __global const half *p)       \
    {                                                                                           \
        float t[n];                                                                             \
        for (int k = 0; k < n; k++) t[k] = dfr_half_bits_to_float(DFR_HB(p)[i * n + k]);       \
        return DFR_CAT(vload, n)(0, t);                                                         \
    }                                                                                           \
    inline void DFR_CAT(dfr_vstore_half, n)(DFR_CAT(float, n) v, size_t i, __global half *p)    \
    {                                                                                           \
        float t[n];                                                                             \
        DFR_CAT(vstore, n)(v, 0, t);                                                            \
        for (int k = 0; k < n; k++)                                                             \
            ((__global ushort *)p)[i * n + k] = dfr_float_to_half_bits(t[k]);                   \
    }
DFR_SOFT_HALFN(2)
DFR_SOFT_HALFN(4)
DFR_SOFT_HALFN(8)
DFR_SOFT_HALFN(16)
#define DFR_LDV_1(n, i, p) DFR_CAT(dfr_vload_half, n)(i, p)
#define DFR_STV_1(n, v, i, p) DFR_CAT(dfr_vstore_half, n)(v, i, p)
#else
#define DFR_LD_1(i, p) vload_half(i, p)
#define DFR_ST_1(v, i, p) vstore_half(v, i, p)
#define DFR_LDV_1(n, i, p) DFR_CAT(vload_half, n)(i, p)
#define DFR_STV_1(n, v, i, p) DFR_CAT(vstore_half, n)(v, i, p)
#endif
#define DFR_T(h) DFR_CAT(DFR_T_, h)
#define DFR_LD(h, i, p) DFR_CAT(DFR_LD_, h)(i, p)
#define DFR_ST(h, v, i, p) DFR_CAT(DFR_ST_, h)(v, i, p)
#define DFR_LDV(h, n, i, p) DFR_CAT(DFR_LDV_, h)(n, i, p)
#define DFR_STV(h, n, v, i, p) DFR_CAT(DFR_STV_, h)(n, v, i, p)
#define ACT_T DFR_T(DFR_HALF)
#define ACT_LD(i, p) DFR_LD(DFR_HALF, i, p)
#define ACT_ST(v, i, p) DFR_ST(DFR_HALF, v, i, p)
#define ACT_LDV(n, i, p) DFR_LDV(DFR_HALF, n, i, p)
#define ACT_STV(n, v, i, p) DFR_STV(DFR_HALF, n, v, i, p)
