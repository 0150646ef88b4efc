/* Host side of each kernel: argument checks, launch geometry, enqueue. Every op enqueues on the
 * runtime's in-order queue and returns without waiting. Tensors are planar [C, H, W] (row-major,
 * W fastest) unless said otherwise. Activations (images after preprocessing, conv and pool
 * outputs, regional features, the sqerr inputs) are stored in the runtime's activation precision
 * (rt->half: fp16, else fp32; dfr_act_bytes); weights, tables and score maps are always fp32. */
#ifndef DFRCL_OPS_OPS_H
#define DFRCL_OPS_OPS_H

#include "cl/runtime.h"

/* ImageNet normalisation: u8 interleaved [H, W, channels] (channels 1 or 3; grey is copied to
 * all three) -> float [3, H, W] = (v/255 - mean) / std. */
int dfr_op_preprocess(dfr_runtime *rt, cl_mem src_u8, int width, int height, int channels,
                      cl_mem dst);

/* 3x3 convolution weights on the device, in whatever layout the kernel wants. */
typedef struct dfr_conv_weights {
    int cin, cout;
    int tco; /* output-channel tile the layout was made for (checked at each launch) */
    cl_mem w, b;
} dfr_conv_weights;
/* Uploads torch-layout weights w [cout, cin, 3, 3] and bias [cout]. */
int dfr_conv_upload(dfr_runtime *rt, const float *w, const float *b, int cin, int cout,
                    dfr_conv_weights *out);
void dfr_conv_release(dfr_conv_weights *cw);
/* out [cout, h, w] = ReLU(conv3x3(reflect_pad1(in [cin, h, w])) + bias); h, w >= 2. */
int dfr_op_conv3x3_relu(dfr_runtime *rt, const dfr_conv_weights *cw, cl_mem in, cl_mem out,
                        int h, int w);

/* 2x2 stride-2 max pooling, floor mode: [c, h, w] -> [c, h/2, w/2]. */
int dfr_op_maxpool2(dfr_runtime *rt, cl_mem in, cl_mem out, int c, int h, int w);

/* Regional aggregation, fused: bilinear resize (align_corners=True) of map [c, h, w] to
 * size x size, then 4x4 stride-4 average, written to channels [c_offset, c_offset + c) of
 * feat [c_total, size/4, size/4]. The size x size map is never stored; h, w <= size. */
int dfr_op_regional(dfr_runtime *rt, cl_mem map, int c, int h, int w, int size, cl_mem feat,
                    int c_offset, int c_total);

/* The shape-dependent options of the regional kernel for a map [h, w] resized to `size` with
 * vw outputs per work-item: REG_KY and REG_L (for reports of the compiled variants). */
int dfr_regional_taps(int h, int w, int size, int vw, int *ky, int *l);

/* score[b, p] = mean over c of (a[b, c, p] - r[b, c, p])^2, for `batch` images of c x npos. */
int dfr_op_sqerr_mean(dfr_runtime *rt, cl_mem a, cl_mem r, int batch, int c, int npos,
                      cl_mem score);

/* Bilinear upsampling, align_corners=True, of `n` planes [h, w] -> [H, W]. */
int dfr_op_upsample(dfr_runtime *rt, cl_mem src, int n, int h, int w, cl_mem dst, int H, int W);

#endif
