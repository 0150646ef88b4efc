/* 8-bit interleaved image -> normalised planar activations (ImageNet mean/std), grey copied to
 * RGB. */
/* compile-variant: -DDFR_HALF=1 */

__constant float DFR_MEAN[3] = {0.485f, 0.456f, 0.406f};
__constant float DFR_STD[3] = {0.229f, 0.224f, 0.225f};

__kernel void preprocess(__global const uchar *src, int width, int height, int channels,
                         __global ACT_T *dst)
{
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= width || y >= height) return;
    int plane = width * height, p = y * width + x;
    for (int c = 0; c < 3; c++) {
        uchar v = src[p * channels + (channels == 3 ? c : 0)];
        /* the same two float operations as torch: v/255, then (x - mean) / std */
        float f = (float)v / 255.0f;
        ACT_ST((f - DFR_MEAN[c]) / DFR_STD[c], c * plane + p, dst);
    }
}
