/* The training feature store: fp32 <-> fp16 packing and gathering one image's features (all or a
 * subset of its positions) into a training batch. vload_half / vstore_half are core OpenCL C, so
 * fp16 storage works on every device, with or without cl_khr_fp16. */

/* dst[i] = half(src[i]) rounded to nearest even, for i < n. */
__kernel void fs_pack_half(__global const float *src, ulong src_off, int n, __global half *dst,
                           ulong dst_off)
{
    int i = get_global_id(0);
    if (i < n) vstore_half_rte(src[src_off + i], dst_off + i, dst);
}

/* One image [c, npos] of the store -> [c, k] at dst + dst_off: dst[ch, j] = src[ch, pos[j]], or
 * src[ch, j] when use_pos == 0 (k == npos). FS_HALF: the source is fp16. */
#ifdef FS_HALF
#define FS_SRC __global const half *
#define FS_LOAD(p, i) vload_half((i), (p))
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
