/* The training feature store: fp32 <-> fp16 packing and gathering one image's features (all or a
 * subset of its positions) into a training batch. fp16 lives in ushort buffers, so it works on
 * every device, with or without cl_khr_fp16. */

/* fp16 by hand on 16-bit integers rather than with vload_half / vstore_half: every OpenCL C
 * compiler has those in principle, but not every one's headers declare them (clang's for nvptx
 * do not), and the rounding is then the same everywhere: to nearest, ties to even. */
inline ushort fs_to_half(float f)
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

inline float fs_from_half(ushort h)
{
    uint s = (uint)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) return as_float(s | as_uint((float)m * 5.9604644775390625e-8f)); /* m * 2^-24 */
    if (e == 31) return as_float(s | 0x7f800000u | (m << 13));
    return as_float(s | ((e + 112u) << 23) | (m << 13));
}

/* dst[i] = half(src[i]) for i < n. */
__kernel void fs_pack_half(__global const float *src, ulong src_off, int n, __global ushort *dst,
                           ulong dst_off)
{
    int i = get_global_id(0);
    if (i < n) dst[dst_off + i] = fs_to_half(src[src_off + i]);
}

/* One image [c, npos] of the store -> [c, k] at dst + dst_off: dst[ch, j] = src[ch, pos[j]], or
 * src[ch, j] when use_pos == 0 (k == npos). FS_HALF: the source is fp16. */
#ifdef FS_HALF
#define FS_SRC __global const ushort *
#define FS_LOAD(p, i) fs_from_half((p)[(i)])
#else
#define FS_SRC __global const float *
#define FS_LOAD(p, i) (p)[(i)]
#endif
__kernel void fs_gather(FS_SRC src, ulong src_off, int c, int npos, __global const int *pos,
                        int use_pos, int k, __global float *dst, ulong dst_off)
{
    int j = get_global_id(0), ch = get_global_id(1);
    if (j >= k || ch >= c) return;
    int p = use_pos ? pos[j] : j;
    dst[dst_off + (size_t)ch * k + j] = FS_LOAD(src, src_off + (size_t)ch * npos + p);
}
