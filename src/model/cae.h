/* DFR's convolutional autoencoder on the device: training (forward, MSE loss, backward, Adam)
 * and inference, with the semantics of the official PyTorch DFR code's CAE:
 *
 *   enc: conv C->h, BN, ReLU, conv h->2d, BN, ReLU, conv 2d->d       h = (C + 2d) / 2 (floor)
 *   dec: conv d->2d, BN, ReLU, conv 2d->h, BN, ReLU, conv h->C       (no final activation)
 *
 * every conv 1x1 with bias. BatchNorm: batch statistics over (images, positions) in training
 * (biased variance to normalise, running statistics updated with momentum 0.1 and the unbiased
 * variance), running statistics in inference; eps 1e-5. Loss: mean((out - x)^2) over all
 * elements. Adam as torch.optim.Adam (betas 0.9/0.999, eps 1e-8, no weight decay).
 *
 * One deliberate difference: the biases of the convs followed by a BatchNorm (enc.0, enc.3,
 * dec.0, dec.3) and of the latent conv (enc.6, whose output goes through a conv into a
 * BatchNorm) have an exactly zero gradient in training mode, as a per-channel shift is removed by
 * the batch mean. Autograd leaves rounding noise there, which Adam can turn into steps of up to
 * lr on tiny problems (not at DFR's sizes); dfrcl uses the exact zero, so these biases keep their
 * values. The forward output and the loss do not depend on them.
 *
 * Layout: an input batch is `batch` images of [channels, npos] floats, one after another
 * ([batch, channels, npos], as the regional features come). Every matrix product goes through
 * dfr_gemm (src/ops/gemm.h). Everything is enqueued on the runtime's in-order queue; nothing
 * waits unless a function says so. Profiling labels: "cae_gemm" (tags "enc.0 fwd", "enc.0 dW",
 * "dec.6 dA", ...) and "cae" (tagged with the kernel's name). */
#ifndef DFRCL_MODEL_CAE_H
#define DFRCL_MODEL_CAE_H

#include <stddef.h>
#include <stdint.h>

#include "cl/runtime.h"

typedef struct dfr_cae dfr_cae;

/* Allocates a CAE for batches of up to `max_batch` images of `channels` x `npos` and initialises
 * it as PyTorch does by default: conv weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) from
 * dfr_rand_uniform(seed, i) (i = the element's index in the flat parameter vector, in state_dict
 * order), BN gamma 1, beta 0, running mean 0, running var 1; Adam state zero.
 * 1 <= latent <= channels, max_batch >= 1, npos >= 1, else DFRCL_ERR_INVALID_ARG. The runtime must
 * outlive the CAE. */
int dfr_cae_new(dfr_cae **cae, dfr_runtime *rt, int channels, int latent, int max_batch,
                int npos, uint32_t seed);
/* The same for inference only (dfr_cae_infer and the tensors): no gradients, Adam state or
 * training activations, about a third of the memory. Weights start as for seed 0. */
int dfr_cae_new_scorer(dfr_cae **cae, dfr_runtime *rt, int channels, int latent, int max_batch,
                       int npos);
/* Device bytes a CAE of these sizes allocates for `columns` = max_batch * npos positions: a
 * training one (train != 0; its folded weights come only with a first inference) or a scorer. */
double dfr_cae_device_bytes(int channels, int latent, double columns, int train);
/* Releases everything and sets *cae to NULL; NULL or *cae == NULL is fine. */
void dfr_cae_free(dfr_cae **cae);

int dfr_cae_channels(const dfr_cae *cae);
int dfr_cae_latent(const dfr_cae *cae);
int dfr_cae_hidden(const dfr_cae *cae); /* h = (channels + 2 latent) / 2 */
/* Training steps done (Adam's t; also PyTorch's num_batches_tracked of every BatchNorm). */
int64_t dfr_cae_steps(const dfr_cae *cae);

/* One training step on the `batch` images at element offset x_offset of x (not modified):
 * forward in training mode, loss, backward, Adam with learning rate lr. 1 <= batch <= max_batch,
 * batch * npos >= 2 (BatchNorm needs two values per channel), x large enough, lr > 0.
 * loss: NULL = do not wait (the loss is still added to the epoch accumulator); else the step's
 * loss is read back (the host waits for the step to finish). */
int dfr_cae_train_step(dfr_cae *cae, cl_mem x, size_t x_offset, int batch, float lr, float *loss);
/* Reads the sum of the losses of the steps since the last call (waits for them) and their count,
 * and resets the accumulator. mean: sum / count, 0 when there were none. Either may be NULL. */
int dfr_cae_epoch_loss(dfr_cae *cae, double *mean, int *steps);
/* Resets Adam (moments and t) without touching the parameters. */
int dfr_cae_reset_optimizer(dfr_cae *cae);

/* Eval-mode reconstruction of `batch` images at element offset x_offset of x into recon
 * [batch, channels, npos] at offset 0. Uses a copy of the weights with the BatchNorms folded in,
 * refolded on the first call after training or after dfr_cae_set_tensor. recon may be x itself. */
int dfr_cae_infer(dfr_cae *cae, cl_mem x, size_t x_offset, int batch, cl_mem recon);

/* Floating-point operations of the GEMMs of one training step (train != 0) or one inference of
 * `batch` images; the other kernels are memory-bound and not counted. */
double dfr_cae_gemm_flops(const dfr_cae *cae, int batch, int train);

/* ---- Tensors by PyTorch state_dict name (for the model file) ----
 * enc.0.weight [h, C, 1, 1], enc.0.bias [h], enc.1.weight / .bias / .running_mean /
 * .running_var [h], enc.3.* (conv h->2d), enc.4.* (BN 2d), enc.6.* (conv 2d->d), dec.0.*
 * (conv d->2d), dec.1.* (BN 2d), dec.3.* (conv 2d->h), dec.4.* (BN h), dec.6.* (conv h->C):
 * 28 float tensors in state_dict order. num_batches_tracked (int64 in PyTorch) is not among them:
 * dfr_cae_steps() gives it. Adam's state is not exposed. */
#define DFR_CAE_NUM_TENSORS 28
typedef struct dfr_cae_tensor {
    const char *name; /* static string */
    int ndim;         /* 4 for conv weights, else 1 */
    int64_t shape[4];
    size_t numel;
    int is_param; /* 1: a trained parameter (has a gradient); 0: a running statistic */
} dfr_cae_tensor;
/* Describes tensor `index` (0..DFR_CAE_NUM_TENSORS-1), else DFRCL_ERR_INVALID_ARG. */
int dfr_cae_tensor_info(const dfr_cae *cae, int index, dfr_cae_tensor *out);
/* Copies tensor `name` from the device into dst (count must equal its numel; waits). */
int dfr_cae_get_tensor(dfr_cae *cae, const char *name, float *dst, size_t count);
/* Uploads tensor `name` from src (count must equal its numel; waits); the folded inference
 * weights are refreshed on the next dfr_cae_infer. Adam's state is left as it is. */
int dfr_cae_set_tensor(dfr_cae *cae, const char *name, const float *src, size_t count);
/* All 28 in index order: dst[i] / src[i] hold tensor i's numel floats. */
int dfr_cae_get_tensors(dfr_cae *cae, float *const *dst);
int dfr_cae_set_tensors(dfr_cae *cae, const float *const *src);

/* Copies the weights and running statistics of src into dst (same channels and latent size, on
 * the same runtime), on the device; dst's folded weights are refreshed on its next inference. */
int dfr_cae_copy_weights(dfr_cae *dst, dfr_cae *src);

/* ---- Training state (checkpoints) ----
 * The whole state of training as flat float vectors: parameters, Adam's two moments (nparams
 * each), running statistics (nrunning), Adam's step count, and the epoch loss accumulator
 * (sum, count: dfr_cae_epoch_loss). Restoring it continues training exactly where it was. */
size_t dfr_cae_nparams(const dfr_cae *cae);
size_t dfr_cae_nrunning(const dfr_cae *cae);
int dfr_cae_get_state(dfr_cae *cae, float *params, float *adam_m, float *adam_v, float *running,
                      int64_t *steps, float loss_acc[3]);
int dfr_cae_set_state(dfr_cae *cae, const float *params, const float *adam_m, const float *adam_v,
                      const float *running, int64_t steps, const float loss_acc[3]);

/* ---- Debugging and tests ---- */
/* The gradient of parameter `name` computed by the last training step (waits). */
int dfr_cae_get_grad(dfr_cae *cae, const char *name, float *dst, size_t count);
/* on != 0: training steps also keep their forward output, which dfr_cae_get_output reads
 * ([batch, channels, npos] of the last step; count = batch * channels * npos; waits). */
int dfr_cae_keep_output(dfr_cae *cae, int on);
int dfr_cae_get_output(dfr_cae *cae, float *dst, size_t count);

#endif
