/* The training feature store: fp32 <-> fp16 packing and gathering one image's features (all or a
 * subset of its positions) into a training batch. fp16 lives in ushort buffers, so it works on
 * every device, with or without cl_khr_fp16. */

/* fp16 by hand on 16-bit integers (dfr_float_to_half_bits, dfr_half_bits_to_float in common.cl)
 * rather than with vload_half / vstore_half: the rounding is then the same everywhere. */

/* dst[i] = half(src[i]) for i < n. */
__kernel void fs_pack_half(__global const float *src, ulong src_off, int n, __global ushort *dst,
                           ulong dst_off)
{
    int i = get_global_id(0);
    if (i < n) dst[dst_off + i] = dfr_float_to_half_bits(src[src_off + i]);
}

/* One image [c, npos] of the store -> [c, k] at dst + dst_off: dst[ch, j] = src[ch, pos[j]], or
 * src[ch, j] when use_pos == 0 (k == npos). FS_HALF: the source is fp16. */
#ifdef FS_HALF
#define FS_SRC __global const ushort *
#define FS_LOAD(p, i) dfr_half_bits_to_float((p)[(i)])
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
