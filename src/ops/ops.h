/* Host side of each kernel: argument checks, launch geometry, enqueue. Every op enqueues on the
 * runtime's in-order queue and returns without waiting. Tensors are planar [C, H, W] (row-major,
 * W fastest) unless said otherwise. Activations (images after preprocessing, conv and pool
 * outputs, regional features, the sqerr inputs) are stored in the runtime's activation precision
 * (rt->half: fp16, else fp32; dfr_act_bytes); weights, tables and score maps are always fp32. */
#ifndef DFRCL_OPS_OPS_H
#define DFRCL_OPS_OPS_H

#include <stdint.h>

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

/* ---- the autoencoder's non-GEMM kernels (kernels/cae.cl) ----
 * Activations are [nch, n] row-major (a channel's values over the batch in one row). Parameters,
 * gradients, Adam moments and running statistics are flat fp32 buffers; a tensor is addressed by
 * its element offset there (int, as the kernels take it). The reductions (BatchNorm, loss) run
 * one work-group of dfr_cae_ls values per channel or row, in a fixed order. Profiling: label
 * "cae", tagged with the kernel's name. */

/* The reductions' work-group size: CAE_LS from tunables.c (DFRCL_CAE_LS), halved down to what the
 * device accepts. */
int dfr_cae_ls(dfr_runtime *rt, size_t *ls);

/* Where one BatchNorm's tensors live. */
typedef struct dfr_cae_bn {
    cl_mem params;                   /* gamma, beta and the conv's bias before the BatchNorm */
    int gamma_off, beta_off, bias_off;
    cl_mem running;                  /* running mean and variance */
    int mean_off, var_off;
    cl_mem stats;                    /* [2, nch]: the batch's mean and 1/sqrt(var + eps) */
} dfr_cae_bn;

/* Training BatchNorm + ReLU of z [nch, n] (n >= 2) into a [nch, n]: batch statistics into
 * bn->stats, running statistics updated with `momentum`. */
int dfr_op_cae_bn_forward(dfr_runtime *rt, cl_mem z, int n, int nch, const dfr_cae_bn *bn,
                          float momentum, float eps, cl_mem a);
/* Its backward, in place: da [nch, n] holds dL/da, z [nch, n] becomes dL/dz; dL/dgamma and
 * dL/dbeta go to grads at bn's gamma and beta offsets. */
int dfr_op_cae_bn_backward(dfr_runtime *rt, cl_mem z, cl_mem da, int n, int nch,
                           const dfr_cae_bn *bn, cl_mem grads);
/* y [rows, n] += params[bias_off + row % nch], then ReLU when relu; y is fp16 when half (the
 * inference storage), else fp32. */
int dfr_op_cae_bias_act(dfr_runtime *rt, cl_mem y, int n, int rows, int nch, cl_mem params,
                        int bias_off, int relu, int half);
/* The MSE loss's first pass over out [rows, npos] (rows = batch * nch) against x at element
 * x_off: y = out + params[bias_off + row % nch] (copied to keep unless keep is NULL), out <-
 * (2 (y - x)) * inv_n, part[row] = sum (y - x)^2, part[rows + row] = sum of the new out. */
int dfr_op_cae_mse(dfr_runtime *rt, cl_mem out, cl_mem x, size_t x_off, int npos, int nch,
                   int rows, cl_mem params, int bias_off, float inv_n, cl_mem keep, cl_mem part);
/* Its second pass: grads[db_off + c] = sum over rows r = c (mod nch) of part[rows + r];
 * loss[0] = sum(part[0..rows)) / count, loss[1] += loss[0], loss[2] += 1. */
int dfr_op_cae_mse_finish(dfr_runtime *rt, cl_mem part, int rows, int nch, float count,
                          cl_mem grads, int db_off, cl_mem loss);
/* Adam step `t` (>= 1) over n parameters p with gradients g and moments m, v (torch.optim.Adam,
 * no weight decay: bias corrections computed in double as PyTorch does). */
typedef struct dfr_adam_hyper {
    double lr, beta1, beta2, eps;
} dfr_adam_hyper;
int dfr_op_cae_adam(dfr_runtime *rt, cl_mem p, cl_mem g, cl_mem m, cl_mem v, int n,
                    const dfr_adam_hyper *h, int64_t t);
/* Folds an eval-mode BatchNorm (bn's gamma, beta, running statistics; stats unused) into the
 * conv before it, whose weight [cout, cin] is at w_off and bias at bn->bias_off of bn->params:
 * writes the same offsets of `folded`. */
int dfr_op_cae_fold_bn(dfr_runtime *rt, const dfr_cae_bn *bn, int w_off, int cin, int cout,
                       float eps, cl_mem folded);

#endif
