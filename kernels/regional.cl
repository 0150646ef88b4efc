/* DFR's multi-scale regional feature, fused: bilinear resize (align_corners=True) of a map to
 * size x size followed by 4x4 stride-4 average pooling, without storing the resized map.
 *
 * Both steps are linear and separable, so one output is sum_a sum_b wy[a] wx[b] m[y0+a][x0+b]:
 * the 4 bilinear samples along an axis, averaged, touch at most 5 consecutive source indices when
 * the map is not larger than size (3 sample steps of at most 1 source pixel, plus the upper
 * neighbour). That is 25 loads per output instead of the 64 of 16 separate samples. */

#define REG_K 5

/* The averaged weights of output index o over source indices first .. first+REG_K-1. Written
 * with selects rather than indexed stores so the arrays stay in registers. */
inline int dfr_region_weights(int o, int n_in, int size, float *wt)
{
    int i0[4], i1[4];
    float l1[4];
    for (int d = 0; d < 4; d++) dfr_align_corners(4 * o + d, n_in, size, &i0[d], &i1[d], &l1[d]);
    int first = i0[0];
    for (int k = 0; k < REG_K; k++) {
        float s = 0.0f;
        for (int d = 0; d < 4; d++) {
            s += i0[d] - first == k ? 1.0f - l1[d] : 0.0f;
            s += i1[d] - first == k ? l1[d] : 0.0f;
        }
        wt[k] = 0.25f * s;
    }
    return first;
}

/* Channels per work-item: the weights depend only on the position, so they are computed once
 * and reused for REG_CPT channels. */
#ifndef REG_CPT
#define REG_CPT 16
#endif

__kernel void regional(__global const float *map, int c, int h, int w, int size,
                       __global float *feat, int c_offset)
{
    int ox = get_global_id(0), oy = get_global_id(1), c0 = get_global_id(2) * REG_CPT;
    int osz = size / 4;
    if (ox >= osz || oy >= osz) return;

    float wx[REG_K], wy[REG_K];
    int x0 = dfr_region_weights(ox, w, size, wx);
    int y0 = dfr_region_weights(oy, h, size, wy);
    /* indices past the edge only ever get weight 0: clamp them to stay in bounds */
    int xs[REG_K], ys[REG_K];
    for (int k = 0; k < REG_K; k++) {
        xs[k] = min(x0 + k, w - 1);
        ys[k] = min(y0 + k, h - 1) * w;
    }
    int c1 = min(c0 + REG_CPT, c);
    for (int ch = c0; ch < c1; ch++) {
        __global const float *m = map + (size_t)ch * h * w;
        float acc = 0.0f;
        for (int a = 0; a < REG_K; a++) {
            float r = 0.0f;
            for (int b = 0; b < REG_K; b++) r = fma(wx[b], m[ys[a] + xs[b]], r);
            acc = fma(wy[a], r, acc);
        }
        feat[((size_t)(c_offset + ch) * osz + oy) * osz + ox] = acc;
    }
}
