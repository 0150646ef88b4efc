/* Reconstruction error and score-map upsampling. */
/* compile-variant: -DDFR_HALF=1 */

/* score[b, p] = mean over channels of (a - r)^2; a, r are [batch, c, npos] activations, score is
 * fp32. Each work-item
 * makes SQ_VEC consecutive positions with vector loads (a scalar tail when npos is not a
 * multiple), so every channel row is read contiguously. */
#ifndef SQ_VEC
#define SQ_VEC 8 /* 2, 4, 8 or 16 */
#endif
#define SQ_CAT_(a, b) a##b
#define SQ_CAT(a, b) SQ_CAT_(a, b)
__kernel void sqerr_mean(__global const ACT_T *a, __global const ACT_T *r, int c, int npos,
                         __global float *score)
{
    int p0 = get_global_id(0) * SQ_VEC, b = get_global_id(1);
    if (p0 >= npos) return;
    size_t base = (size_t)b * c * npos;
    if (p0 + SQ_VEC <= npos) {
        SQ_CAT(float, SQ_VEC) acc = 0.0f;
        for (int k = 0; k < c; k++) {
            size_t o = base + (size_t)k * npos + p0;
            SQ_CAT(float, SQ_VEC) d = ACT_LDV(SQ_VEC, 0, a + o) - ACT_LDV(SQ_VEC, 0, r + o);
            acc = fma(d, d, acc);
        }
        SQ_CAT(vstore, SQ_VEC)(acc / (float)c, 0, score + (size_t)b * npos + p0);
        return;
    }
    for (int p = p0; p < npos; p++) {
        float acc = 0.0f;
        for (int k = 0; k < c; k++) {
            size_t o = base + (size_t)k * npos + p;
            float d = ACT_LD(o, a) - ACT_LD(o, r);
            acc = fma(d, d, acc);
        }
        score[(size_t)b * npos + p] = acc / (float)c;
    }
}

/* Bilinear upsampling, align_corners=True, of planes [h, w] -> [H, W]. */
__kernel void upsample_bilinear(__global const float *src, int h, int w, __global float *dst, int H, int W)
{
    int x = get_global_id(0), y = get_global_id(1), n = get_global_id(2);
    if (x >= W || y >= H) return;
    int x0, x1, y0, y1;
    float lx, ly;
    dfr_align_corners(x, w, W, &x0, &x1, &lx);
    dfr_align_corners(y, h, H, &y0, &y1, &ly);
    __global const float *s = src + (size_t)n * h * w;
    float top = (1.0f - lx) * s[y0 * w + x0] + lx * s[y0 * w + x1];
    float bot = (1.0f - lx) * s[y1 * w + x0] + lx * s[y1 * w + x1];
    dst[((size_t)n * H + y) * W + x] = (1.0f - ly) * top + ly * bot;
}
