/* 2x2 stride-2 max pooling, floor mode (odd last row/column dropped, as PyTorch). */

__kernel void maxpool2(__global const float *in, int h, int w, __global float *out, int oh, int ow)
{
    int x = get_global_id(0), y = get_global_id(1), c = get_global_id(2);
    if (x >= ow || y >= oh) return;
    __global const float *p = in + ((size_t)c * h + 2 * y) * w + 2 * x;
    out[((size_t)c * oh + y) * ow + x] = fmax(fmax(p[0], p[1]), fmax(p[w], p[w + 1]));
}
