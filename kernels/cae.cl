/* The convolutional autoencoder's non-GEMM work: BatchNorm with batch statistics (forward and
 * backward, ReLU fused), bias and activation, the MSE loss and its gradient, Adam, and BatchNorm
 * folding for inference. The GEMMs (every 1x1 convolution) go through the project's GEMM.
 *
 * Activations inside the CAE are [channels, n] row-major, n = batch * positions (the images of a
 * batch side by side in each channel's row), so per-channel statistics are reductions over one
 * contiguous row. Parameters, gradients and Adam moments each live in one flat buffer; a tensor is
 * addressed by its element offset there (int arguments named *_off). */

/* Work-group size of the reductions (one work-group per channel or row): a power of two. */
/* compile-variant: -DCAE_LS=64 */
/* compile-variant: -DCAE_LS=64 -DDFR_HALF=1 */
#ifndef CAE_LS
#define CAE_LS 256
#endif

/* Sum over the work-group of one value per work-item, by a tree in local memory (a fixed order,
 * so results do not depend on timing). Every work-item gets the total. */
inline float cae_wg_sum(float v, __local float *scratch)
{
    int l = get_local_id(0);
    scratch[l] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = CAE_LS / 2; s > 0; s >>= 1) {
        if (l < s) scratch[l] += scratch[l + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE); /* scratch is reused by the next call */
    return r;
}

/* ReLU that lets NaN through, so a diverged training shows in the loss instead of hiding. */
inline float cae_relu(float y)
{
    return y < 0.0f ? 0.0f : y;
}

/* BatchNorm as the affine map y = z * alpha + shift (PyTorch's CPU formulation). The forward and
 * the backward both call this, so the ReLU mask the backward recomputes is the forward's. */
inline float2 cae_bn_affine(float mean, float invstd, float gamma, float beta)
{
    float alpha = gamma * invstd;
    return (float2)(alpha, beta - mean * alpha);
}

/* BatchNorm (training) + ReLU over channel c = group id of z [nch, n] (the conv output without
 * its bias: the bias only shifts the mean, which the normalisation removes):
 *   mean, biased variance over the row; a = ReLU(gamma * (z - mean) / sqrt(var + eps) + beta);
 *   stats[c] = mean, stats[nch + c] = 1/sqrt(var + eps) for the backward;
 *   running_mean = (1-m) running_mean + m (mean + bias); running_var likewise with the unbiased
 *   variance (n >= 2). The variance is two-pass (sum of squared deviations), not E[z^2]-mean^2. */
__kernel __attribute__((reqd_work_group_size(CAE_LS, 1, 1)))
void cae_bn_forward(__global const float *z, int n, int nch, __global const float *params,
                    int gamma_off, int beta_off, int bias_off, __global float *running, int rm_off,
                    int rv_off, __global float *stats, float momentum, float eps,
                    __global float *a)
{
    __local float scratch[CAE_LS];
    int c = get_group_id(0), l = get_local_id(0);
    __global const float *zr = z + (size_t)c * n;
    float s = 0.0f;
    for (int i = l; i < n; i += CAE_LS) s += zr[i];
    float mean = cae_wg_sum(s, scratch) / (float)n;
    float q = 0.0f;
    for (int i = l; i < n; i += CAE_LS) {
        float t = zr[i] - mean;
        q = fma(t, t, q);
    }
    float var_sum = cae_wg_sum(q, scratch);
    float invstd = 1.0f / sqrt(var_sum / (float)n + eps);
    float2 af = cae_bn_affine(mean, invstd, params[gamma_off + c], params[beta_off + c]);
    __global float *ar = a + (size_t)c * n;
    for (int i = l; i < n; i += CAE_LS) ar[i] = cae_relu(fma(zr[i], af.x, af.y));
    if (l == 0) {
        stats[c] = mean;
        stats[nch + c] = invstd;
        float bm = mean + params[bias_off + c];
        float uv = var_sum / (float)(n - 1);
        running[rm_off + c] = momentum * bm + (1.0f - momentum) * running[rm_off + c];
        running[rv_off + c] = momentum * uv + (1.0f - momentum) * running[rv_off + c];
    }
}

/* Backward of ReLU(BatchNorm(z)) for channel c = group id, in place: da [nch, n] holds dL/da;
 * z [nch, n] (the forward's input) is overwritten with dL/dz. With xhat = (z - mean) * invstd and
 * dy = dL/dy where y > 0 (else 0):
 *   dgamma = sum(dy * xhat), dbeta = sum(dy),
 *   dz = gamma * invstd * (dy - dbeta / n - xhat * dgamma / n).
 * (The conv bias before the BatchNorm has an exactly zero gradient; nothing is computed for it.) */
__kernel __attribute__((reqd_work_group_size(CAE_LS, 1, 1)))
void cae_bn_backward(__global float *z, __global const float *da, int n, int nch,
                     __global const float *params, int gamma_off, int beta_off,
                     __global const float *stats, __global float *grads)
{
    __local float scratch[CAE_LS];
    int c = get_group_id(0), l = get_local_id(0);
    float mean = stats[c], invstd = stats[nch + c], gamma = params[gamma_off + c];
    float2 af = cae_bn_affine(mean, invstd, gamma, params[beta_off + c]);
    __global float *zr = z + (size_t)c * n;
    __global const float *dr = da + (size_t)c * n;
    float s1 = 0.0f, s2 = 0.0f;
    for (int i = l; i < n; i += CAE_LS) {
        float zi = zr[i];
        float dy = fma(zi, af.x, af.y) > 0.0f ? dr[i] : 0.0f;
        s1 += dy;
        s2 = fma(dy, (zi - mean) * invstd, s2);
    }
    float dbeta = cae_wg_sum(s1, scratch);
    float dgamma = cae_wg_sum(s2, scratch);
    if (l == 0) {
        grads[gamma_off + c] = dgamma;
        grads[beta_off + c] = dbeta;
    }
    float k1 = dbeta / (float)n, k2 = dgamma / (float)n, g = gamma * invstd;
    for (int i = l; i < n; i += CAE_LS) {
        float zi = zr[i];
        float dy = fma(zi, af.x, af.y) > 0.0f ? dr[i] : 0.0f;
        zr[i] = g * (dy - k1 - (zi - mean) * invstd * k2);
    }
}

/* y[row, i] += bias[row % nch], then ReLU if relu != 0; y is [rows, n]. Covers both layouts:
 * [nch, batch * npos] (rows = nch) and the output's [batch, nch, npos] (rows = batch * nch).
 * y is in the activation precision (fp16 only in inference; the other kernels here are training's
 * and stay fp32). */
__kernel void cae_bias_act(__global ACT_T *y, int n, int rows, int nch,
                           __global const float *params, int bias_off, int relu)
{
    int i = get_global_id(0), row = get_global_id(1);
    if (i >= n || row >= rows) return;
    size_t k = (size_t)row * n + i;
    float v = ACT_LD(k, y) + params[bias_off + row % nch];
    ACT_ST(relu ? cae_relu(v) : v, k, y);
}

/* The loss and its gradient, one work-group per row (b, c) of the output [batch, nch, npos]:
 *   y = out + bias[c] (written to keep[] when keep_on), diff = y - x,
 *   out <- dL/dy = (2 * diff) * inv_n (as autograd computes d mean(diff^2)),
 *   part[row] = sum(diff^2), part[rows + row] = sum(dL/dy) (for the bias gradient). */
__kernel __attribute__((reqd_work_group_size(CAE_LS, 1, 1)))
void cae_mse(__global float *out, __global const float *x, ulong x_off, int npos, int nch,
             __global const float *params, int bias_off, float inv_n, __global float *keep,
             int keep_on, __global float *part, int rows)
{
    __local float scratch[CAE_LS];
    int row = get_group_id(0), l = get_local_id(0);
    float b = params[bias_off + row % nch];
    size_t base = (size_t)row * npos;
    __global const float *xr = x + x_off + base;
    float sq = 0.0f, sg = 0.0f;
    for (int i = l; i < npos; i += CAE_LS) {
        float y = out[base + i] + b;
        if (keep_on) keep[base + i] = y;
        float d = y - xr[i];
        sq = fma(d, d, sq);
        float g = (2.0f * d) * inv_n;
        out[base + i] = g;
        sg += g;
    }
    sq = cae_wg_sum(sq, scratch);
    sg = cae_wg_sum(sg, scratch);
    if (l == 0) {
        part[row] = sq;
        part[rows + row] = sg;
    }
}

/* Finishes cae_mse in one work-group: the output bias gradient grads[db_off + c] = sum over the
 * batch of part[rows + b * nch + c]; loss[0] = sum(part[0..rows)) / count; loss[1] += loss[0] and
 * loss[2] += 1 (the epoch accumulator the host reads when it wants). */
__kernel __attribute__((reqd_work_group_size(CAE_LS, 1, 1)))
void cae_mse_finish(__global const float *part, int rows, int nch, float count,
                    __global float *grads, int db_off, __global float *loss)
{
    __local float scratch[CAE_LS];
    int l = get_local_id(0);
    for (int c = l; c < nch; c += CAE_LS) {
        float s = 0.0f;
        for (int r = c; r < rows; r += nch) s += part[rows + r];
        grads[db_off + c] = s;
    }
    float s = 0.0f;
    for (int r = l; r < rows; r += CAE_LS) s += part[r];
    s = cae_wg_sum(s, scratch);
    if (l == 0) {
        float v = s / count;
        loss[0] = v;
        loss[1] += v;
        loss[2] += 1.0f;
    }
}

/* Adam (torch.optim.Adam, no weight decay, no amsgrad) over n parameters:
 *   m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= step_size * m / (sqrt(v) / bc2_sqrt + eps)
 * with step_size = lr / (1 - b1^t) and bc2_sqrt = sqrt(1 - b2^t) from the host. */
__kernel void cae_adam(__global float *p, __global const float *g, __global float *m,
                       __global float *v, int n, float b1, float one_minus_b1, float b2,
                       float one_minus_b2, float step_size, float bc2_sqrt, float eps)
{
    int i = get_global_id(0);
    if (i >= n) return;
    float gi = g[i];
    float mi = fma(one_minus_b1, gi, m[i] * b1);
    float vi = fma(one_minus_b2 * gi, gi, v[i] * b2);
    m[i] = mi;
    v[i] = vi;
    float denom = sqrt(vi) / bc2_sqrt + eps;
    p[i] = p[i] + (-step_size * mi) / denom;
}

/* Folds an eval-mode BatchNorm into the conv before it, for output channel c = global id 1:
 *   s = gamma / sqrt(running_var + eps); W'[c, :] = W[c, :] * s;
 *   b'[c] = (b[c] - running_mean[c]) * s + beta[c].
 * Reads the training parameters, writes the same offsets of the folded copy. */
__kernel void cae_fold_bn(__global const float *params, int w_off, int b_off, int gamma_off,
                          int beta_off, __global const float *running, int rm_off, int rv_off,
                          int cin, int cout, float eps, __global float *folded)
{
    int k = get_global_id(0), c = get_global_id(1);
    if (k >= cin || c >= cout) return;
    float s = params[gamma_off + c] * (1.0f / sqrt(running[rv_off + c] + eps));
    size_t wi = (size_t)w_off + (size_t)c * cin + k;
    folded[wi] = params[wi] * s;
    if (k == 0)
        folded[b_off + c] = (params[b_off + c] - running[rm_off + c]) * s + params[beta_off + c];
}
