/* DFR's multi-scale regional feature, fused: bilinear resize (align_corners=True) of a map to
 * size x size followed by 4x4 stride-4 average pooling, without storing the resized map. Each
 * work-item makes one output value from its 16 bilinear samples and writes it at its channel
 * offset of the concatenated feature. */

__kernel void regional(__global const float *map, int h, int w, int size,
                       __global float *feat, int c_offset)
{
    int ox = get_global_id(0), oy = get_global_id(1), c = get_global_id(2);
    int osz = size / 4;
    if (ox >= osz || oy >= osz) return;
    __global const float *m = map + (size_t)c * h * w;

    int x0[4], x1[4];
    float lx[4];
    for (int d = 0; d < 4; d++) dfr_align_corners(4 * ox + d, w, size, &x0[d], &x1[d], &lx[d]);
    float acc = 0.0f;
    for (int dy = 0; dy < 4; dy++) {
        int y0, y1;
        float ly;
        dfr_align_corners(4 * oy + dy, h, size, &y0, &y1, &ly);
        __global const float *r0 = m + y0 * w, *r1 = m + y1 * w;
        for (int dx = 0; dx < 4; dx++) {
            float top = (1.0f - lx[dx]) * r0[x0[dx]] + lx[dx] * r0[x1[dx]];
            float bot = (1.0f - lx[dx]) * r1[x0[dx]] + lx[dx] * r1[x1[dx]];
            acc += (1.0f - ly) * top + ly * bot;
        }
    }
    feat[((size_t)(c_offset + c) * osz + oy) * osz + ox] = acc * (1.0f / 16.0f);
}
