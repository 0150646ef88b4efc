/* 2x2 stride-2 max pooling, floor mode (odd last row/column dropped, as PyTorch). */
/* compile-variant: -DDFR_HALF=1 */

__kernel void maxpool2(__global const ACT_T *in, int h, int w, __global ACT_T *out, int oh, int ow)
{
    int x = get_global_id(0), y = get_global_id(1), c = get_global_id(2);
    if (x >= ow || y >= oh) return;
    __global const ACT_T *p = in + ((size_t)c * h + 2 * y) * w + 2 * x;
    float m = fmax(fmax(ACT_LD(0, p), ACT_LD(1, p)), fmax(ACT_LD(w, p), ACT_LD(w + 1, p)));
    ACT_ST(m, ((size_t)c * oh + y) * ow + x, out);
}
