/* DFR's convolutional autoencoder on the device (see cae.h for the contract).
 *
 * Inside, activations are [channels, batch * npos]: the images of a batch side by side in each
 * channel's row. A middle layer is then one GEMM with n = batch * npos, its weight gradient one
 * GEMM with k = batch * npos, and BatchNorm statistics are reductions over contiguous rows. Only
 * the first and the last conv touch the caller's [batch, channels, npos] layout, as batched GEMMs
 * with strides (and c_stride 0 sums the first/last weight gradients over the images).
 *
 * Memory: per BN layer the conv output z (kept for the backward) and the activation a; the
 * backward writes dL/da over a (after the weight gradient has used it) and dL/dz over z, so no
 * extra activation-sized buffer is needed. The output buffer holds dL/dout after the loss. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/cae.h"
#include "ops/gemm.h"
#include "ops/ops.h"
#include "util/error.h"
#include "util/rand.h"

#define NCONV 6
#define NBN 4

static const float BN_EPS = 1e-5f, BN_MOMENTUM = 0.1f;
/* Python floats in PyTorch: the bias corrections are computed in double from these. */
static const double ADAM_B1 = 0.9, ADAM_B2 = 0.999, ADAM_EPS = 1e-8;

/* Module names of the convs and BatchNorms in state_dict order; bn_of_conv[l] is the BN after
 * conv l (-1: none). */
static const char *const conv_names[NCONV] = {"enc.0", "enc.3", "enc.6", "dec.0", "dec.3", "dec.6"};
static const char *const bn_names[NBN] = {"enc.1", "enc.4", "dec.1", "dec.4"};
static const int bn_of_conv[NCONV] = {0, 1, -1, 2, 3, -1};

/* Where a tensor lives: the parameter vector (and its gradient, Adam moments) or the running
 * statistics. */
typedef struct cae_tensor {
    char name[32];
    int ndim;
    int64_t shape[4];
    size_t numel, offset;
    int is_param;
} cae_tensor;

struct dfr_cae {
    dfr_runtime *rt;
    int ch[NCONV + 1]; /* conv l maps ch[l] -> ch[l+1]: C, h, 2d, d, 2d, h, C */
    int max_batch, npos;
    int scorer; /* made by dfr_cae_new_scorer: no training buffers */
    size_t w_off[NCONV], b_off[NCONV], g_off[NBN], be_off[NBN], nparams; /* in params */
    size_t rm_off[NBN], rv_off[NBN], nrunning;                           /* in running */
    cae_tensor tensors[DFR_CAE_NUM_TENSORS];
    cl_mem params, grads, adam_m, adam_v, folded, running, stats[NBN];
    /* Activations: z[j] conv output j (pre-BN), a[j] the input of conv j (j = 1..5; for j = 3,
     * the latent, a == z); out [batch, C, npos]. */
    cl_mem z[NCONV], a[NCONV], out;
    cl_mem part, loss, keep; /* loss partials [2, batch*C]; loss[3]; kept output or NULL */
    int keep_on, keep_batch;
    int64_t steps;
    int folded_ok;
    /* Activation storage: bytes per element the inference buffers z[] were made for (4; 2 for a
     * scorer made on an fp16 runtime), and whether the running forward stores fp16 (inference on
     * an fp16 runtime: its input, z[] and output are fp16, the weights fp32). */
    size_t act_bytes;
    int infer_half;
};

/* ---- small helpers ---- */

/* Positions an inference pass takes at once (a 256 px image's map). */
#define INFER_COLS 4096
static int infer_cols(const dfr_cae *m)
{
    return m->npos < INFER_COLS ? m->npos : INFER_COLS;
}

/* Profiling tags of the GEMMs: [forward, weight gradient, input gradient][conv]. */
static const char *const gemm_tags[3][NCONV] = {
    {"enc.0 fwd", "enc.3 fwd", "enc.6 fwd", "dec.0 fwd", "dec.3 fwd", "dec.6 fwd"},
    {"enc.0 dW", "enc.3 dW", "enc.6 dW", "dec.0 dW", "dec.3 dW", "dec.6 dW"},
    {"enc.0 dA", "enc.3 dA", "enc.6 dA", "dec.0 dA", "dec.3 dA", "dec.6 dA"},
};
enum { FWD, DW, DA };

/* C[i] = op(A[i]) op(B[i]) (+ C when beta == 1) over `batch` matrices; alpha 1. `what` (FWD, DW,
 * DA) and conv l name the profiling tag. */
static int gemm(dfr_cae *m, int what, int l, int ta, int tb, int M, int N, int K, float beta,
                cl_mem a, size_t aoff, size_t lda, size_t astr, cl_mem b, size_t boff, size_t ldb,
                size_t bstr, cl_mem c, size_t coff, size_t ldc, size_t cstr, int batch)
{
    dfr_gemm_desc g = {
        .trans_a = ta, .trans_b = tb, .m = M, .n = N, .k = K, .alpha = 1.0f, .beta = beta,
        .a = a, .a_offset = aoff, .lda = lda, .a_stride = astr,
        .b = b, .b_offset = boff, .ldb = ldb, .b_stride = bstr,
        .c = c, .c_offset = coff, .ldc = ldc, .c_stride = cstr, .batch = batch,
        .half_b = what == FWD && m->infer_half, .half_c = what == FWD && m->infer_half,
    };
    const char *saved = m->rt->prof_tag;
    m->rt->prof_tag = gemm_tags[what][l];
    int rc = dfr_gemm(m->rt, &g, "cae_gemm");
    m->rt->prof_tag = saved;
    return rc;
}

/* Elements of `elem` bytes that buffer b holds. */
static size_t buffer_elems(cl_mem b, size_t elem)
{
    size_t bytes = 0;
    if (clGetMemObjectInfo(b, CL_MEM_SIZE, sizeof bytes, &bytes, NULL) != CL_SUCCESS) return 0;
    return bytes / elem;
}
#define buffer_floats(b) buffer_elems(b, sizeof(float))

static const cae_tensor *find_tensor(const dfr_cae *m, const char *name)
{
    for (int i = 0; i < DFR_CAE_NUM_TENSORS; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

/* ---- creation ---- */

static void add_tensor(dfr_cae *m, int *nt, const char *module, const char *what, int ndim,
                       int64_t d0, int64_t d1, size_t offset, int is_param)
{
    cae_tensor *t = &m->tensors[(*nt)++];
    snprintf(t->name, sizeof t->name, "%s.%s", module, what);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim == 4 ? d1 : 0;
    t->shape[2] = t->shape[3] = ndim == 4 ? 1 : 0;
    t->numel = (size_t)d0 * (ndim == 4 ? (size_t)d1 : 1);
    t->offset = offset;
    t->is_param = is_param;
}

/* Lays out the flat parameter and running-statistics vectors in state_dict order. */
static void layout(dfr_cae *m)
{
    size_t p = 0, r = 0;
    int nt = 0;
    for (int l = 0; l < NCONV; l++) {
        int ci = m->ch[l], co = m->ch[l + 1], k = bn_of_conv[l];
        m->w_off[l] = p;
        add_tensor(m, &nt, conv_names[l], "weight", 4, co, ci, p, 1);
        p += (size_t)co * ci;
        m->b_off[l] = p;
        add_tensor(m, &nt, conv_names[l], "bias", 1, co, 0, p, 1);
        p += (size_t)co;
        if (k < 0) continue;
        m->g_off[k] = p;
        add_tensor(m, &nt, bn_names[k], "weight", 1, co, 0, p, 1);
        p += (size_t)co;
        m->be_off[k] = p;
        add_tensor(m, &nt, bn_names[k], "bias", 1, co, 0, p, 1);
        p += (size_t)co;
        m->rm_off[k] = r;
        add_tensor(m, &nt, bn_names[k], "running_mean", 1, co, 0, r, 0);
        r += (size_t)co;
        m->rv_off[k] = r;
        add_tensor(m, &nt, bn_names[k], "running_var", 1, co, 0, r, 0);
        r += (size_t)co;
    }
    m->nparams = p;
    m->nrunning = r;
}

/* PyTorch's default init (weights and biases U(-1/sqrt(fan_in), +1/sqrt(fan_in)), gamma 1,
 * beta 0, running mean 0, var 1), on the host. */
static void init_host(const dfr_cae *m, uint32_t seed, float *params, float *running)
{
    for (int l = 0; l < NCONV; l++) {
        int ci = m->ch[l], co = m->ch[l + 1], k = bn_of_conv[l];
        float bound = 1.0f / sqrtf((float)ci);
        size_t nw = (size_t)co * ci;
        for (size_t i = 0; i < nw + (size_t)co; i++) {
            size_t at = m->w_off[l] + i; /* the bias follows the weight */
            params[at] = dfr_rand_uniform(seed, (uint32_t)at, -bound, bound);
        }
        if (k < 0) continue;
        for (int c = 0; c < co; c++) {
            params[m->g_off[k] + c] = 1.0f;
            params[m->be_off[k] + c] = 0.0f;
            running[m->rm_off[k] + c] = 0.0f;
            running[m->rv_off[k] + c] = 1.0f;
        }
    }
}

static int zero_buffer(dfr_cae *m, cl_mem b, size_t n)
{
    float zero = 0.0f;
    return dfr_fill(m->rt, b, 0, n * sizeof(float), &zero, sizeof zero, "CAE state");
}

static int cae_create(dfr_cae **cae, dfr_runtime *rt, int channels, int latent, int max_batch,
                      int npos, uint32_t seed, int train)
{
    if (!cae) return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE: no output pointer");
    *cae = NULL;
    if (!rt) return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE: no runtime");
    if (channels < 1 || latent < 1 || latent > channels || max_batch < 1 || npos < 1)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "CAE: bad shape (channels %d, latent %d, max batch %d, positions %d): "
                         "need 1 <= latent <= channels, batch >= 1, positions >= 1",
                         channels, latent, max_batch, npos);
    /* Every row length and matrix size must fit the kernels' int indices and the GEMM's ints;
     * kernels index buffers with size_t. */
    if ((int64_t)max_batch * npos > INT_MAX / 2 || channels > (1 << 20) ||
        (int64_t)max_batch * npos * channels > ((int64_t)1 << 40))
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "CAE: too large (channels %d, max batch %d, positions %d)", channels,
                         max_batch, npos);
    dfr_cae *m = calloc(1, sizeof *m);
    if (!m) return dfr_error(DFRCL_ERR_HOST_MEMORY, "CAE: out of host memory");
    m->rt = rt;
    int h = (channels + 2 * latent) / 2;
    int dims[NCONV + 1] = {channels, h, 2 * latent, latent, 2 * latent, h, channels};
    memcpy(m->ch, dims, sizeof dims);
    m->max_batch = max_batch;
    m->npos = npos;
    m->scorer = !train;
    layout(m);
    if (m->nparams > INT_MAX) {
        free(m);
        return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE: too many parameters (channels %d)",
                         channels);
    }
    /* The reductions' work-group size (tunables.c, DFRCL_CAE_LS): a bad override fails here. */
    size_t ls;
    int trc = dfr_cae_ls(rt, &ls);
    if (trc) {
        free(m);
        return trc;
    }

    size_t bp = (size_t)max_batch * npos, io = bp * (size_t)channels;
    size_t fb = sizeof(float);
    int rc = DFRCL_OK;
    const cl_mem_flags rw = CL_MEM_READ_WRITE;
    if (!rc) rc = dfr_buffer_new(rt, m->nparams * fb, rw, "CAE parameters", &m->params);
    if (!rc && train) rc = dfr_buffer_new(rt, m->nparams * fb, rw, "CAE gradients", &m->grads);
    if (!rc && train) rc = dfr_buffer_new(rt, m->nparams * fb, rw, "CAE Adam moments", &m->adam_m);
    if (!rc && train) rc = dfr_buffer_new(rt, m->nparams * fb, rw, "CAE Adam moments", &m->adam_v);
    /* A training autoencoder makes its folded weights on its first inference (most never do). */
    if (!rc && !train)
        rc = dfr_buffer_new(rt, m->nparams * fb, rw, "CAE folded weights", &m->folded);
    if (!rc) rc = dfr_buffer_new(rt, m->nrunning * fb, rw, "CAE running stats", &m->running);
    m->act_bytes = train ? fb : dfr_act_bytes(rt);
    for (int l = 0; l < NCONV && !rc; l++) {
        int k = bn_of_conv[l];
        size_t n = (size_t)m->ch[l + 1] * bp * fb;
        if (!train) { /* inference needs only the conv outputs of a chunk, biased in place */
            n = (size_t)m->ch[l + 1] * (size_t)infer_cols(m) * m->act_bytes;
            if (l + 1 < NCONV) rc = dfr_buffer_new(rt, n, rw, "CAE activations", &m->z[l + 1]);
        } else if (k >= 0) {
            rc = dfr_buffer_new(rt, (size_t)m->ch[l + 1] * 2 * fb, rw, "CAE BN stats",
                                &m->stats[k]);
            if (!rc) rc = dfr_buffer_new(rt, n, rw, "CAE activations", &m->z[l + 1]);
            if (!rc) rc = dfr_buffer_new(rt, n, rw, "CAE activations", &m->a[l + 1]);
        } else if (l + 1 < NCONV) {
            rc = dfr_buffer_new(rt, n, rw, "CAE activations", &m->a[l + 1]);
            m->z[l + 1] = m->a[l + 1];
            if (!rc) clRetainMemObject(m->a[l + 1]);
        }
    }
    if (!rc && train) rc = dfr_buffer_new(rt, io * fb, rw, "CAE output", &m->out);
    if (!rc && train)
        rc = dfr_buffer_new(rt, 2 * (size_t)max_batch * channels * fb, rw, "CAE loss", &m->part);
    if (!rc && train) rc = dfr_buffer_new(rt, 3 * fb, rw, "CAE loss", &m->loss);
    float *hp = NULL, *hr = NULL;
    if (!rc) {
        hp = malloc(m->nparams * fb);
        hr = malloc(m->nrunning * fb);
        if (!hp || !hr) rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "CAE: out of host memory");
    }
    if (!rc) {
        init_host(m, seed, hp, hr);
        rc = dfr_write(rt, m->params, 0, m->nparams * fb, hp, "CAE upload");
    }
    if (!rc) rc = dfr_write(rt, m->running, 0, m->nrunning * fb, hr, "CAE upload");
    /* Gradients start at zero: the biases whose gradient is exactly zero are never written. */
    if (!rc && train) rc = zero_buffer(m, m->grads, m->nparams);
    if (!rc && train) rc = zero_buffer(m, m->loss, 3);
    if (!rc && train) rc = dfr_cae_reset_optimizer(m);
    if (!rc) rc = dfr_finish(rt);
    free(hp);
    free(hr);
    if (rc) {
        dfr_cae_free(&m);
        return rc;
    }
    *cae = m;
    return DFRCL_OK;
}

double dfr_cae_device_bytes(int channels, int latent, double columns, int train)
{
    dfr_cae m = {0};
    int h = (channels + 2 * latent) / 2;
    int dims[NCONV + 1] = {channels, h, 2 * latent, latent, 2 * latent, h, channels};
    memcpy(m.ch, dims, sizeof dims);
    layout(&m); /* the parameter and running-statistics counts, as cae_create lays them out */
    double floats = (double)m.nparams * (train ? 4 : 2) + (double)m.nrunning;
    if (!train && columns > INFER_COLS) columns = INFER_COLS; /* a scorer works in chunks */
    for (int l = 0; l + 1 < NCONV; l++) /* activations per position, as cae_create allocates */
        floats += columns * m.ch[l + 1] * (train && bn_of_conv[l] >= 0 ? 2 : 1);
    if (train) floats += columns * channels; /* the output */
    return floats * sizeof(float);
}

int dfr_cae_new(dfr_cae **cae, dfr_runtime *rt, int channels, int latent, int max_batch,
                int npos, uint32_t seed)
{
    return cae_create(cae, rt, channels, latent, max_batch, npos, seed, 1);
}

int dfr_cae_new_scorer(dfr_cae **cae, dfr_runtime *rt, int channels, int latent, int max_batch,
                       int npos)
{
    return cae_create(cae, rt, channels, latent, max_batch, npos, 0, 0);
}

void dfr_cae_free(dfr_cae **cae)
{
    if (!cae || !*cae) return;
    dfr_cae *m = *cae;
    /* Enqueued work may still read these buffers; the release is deferred by OpenCL until it
     * completes, but wait anyway so that errors surface here and not later. */
    if (m->rt) dfr_finish(m->rt);
    cl_mem *bufs[] = {&m->params, &m->grads, &m->adam_m, &m->adam_v, &m->folded, &m->running,
                      &m->out, &m->part, &m->loss, &m->keep};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) dfr_buffer_release(bufs[i]);
    for (int k = 0; k < NBN; k++) dfr_buffer_release(&m->stats[k]);
    for (int j = 0; j < NCONV; j++) {
        dfr_buffer_release(&m->z[j]);
        dfr_buffer_release(&m->a[j]);
    }
    free(m);
    *cae = NULL;
}

int dfr_cae_channels(const dfr_cae *cae) { return cae ? cae->ch[0] : 0; }
int dfr_cae_latent(const dfr_cae *cae) { return cae ? cae->ch[3] : 0; }
int dfr_cae_hidden(const dfr_cae *cae) { return cae ? cae->ch[1] : 0; }
int64_t dfr_cae_steps(const dfr_cae *cae) { return cae ? cae->steps : 0; }

int dfr_cae_reset_optimizer(dfr_cae *cae)
{
    if (!cae || cae->scorer) return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE: no model to train");
    int rc = zero_buffer(cae, cae->adam_m, cae->nparams);
    if (!rc) rc = zero_buffer(cae, cae->adam_v, cae->nparams);
    if (!rc) cae->steps = 0;
    return rc;
}

/* ---- argument checks shared by training and inference ---- */

static int check_batch(const dfr_cae *m, const char *what, cl_mem x, size_t x_offset, int batch,
                       size_t elem)
{
    if (!m) return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE %s: no model", what);
    if (!x) return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE %s: no input buffer", what);
    if (batch < 1 || batch > m->max_batch)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE %s: batch %d outside 1..%d", what, batch,
                         m->max_batch);
    size_t need = (size_t)batch * m->ch[0] * m->npos, have = buffer_elems(x, elem);
    if (x_offset > have || have - x_offset < need)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "CAE %s: input of %zu %s too small for %zu at offset %zu", what,
                         have, elem == 2 ? "fp16 values" : "floats", need, x_offset);
    return DFRCL_OK;
}

/* ---- the layers ---- */

/* Where BatchNorm k (after conv l) keeps its tensors. */
static dfr_cae_bn bn_of(const dfr_cae *m, int l)
{
    int k = bn_of_conv[l];
    return (dfr_cae_bn){.params = m->params, .gamma_off = (int)m->g_off[k],
                        .beta_off = (int)m->be_off[k], .bias_off = (int)m->b_off[l],
                        .running = m->running, .mean_off = (int)m->rm_off[k],
                        .var_off = (int)m->rv_off[k], .stats = m->stats[k]};
}

/* y is in the forward's activation storage (fp16 only in inference on an fp16 runtime). */
static int bias_act(dfr_cae *m, cl_mem y, int n, int rows, int nch, cl_mem w, size_t b_off,
                    int relu)
{
    return dfr_op_cae_bias_act(m->rt, y, n, rows, nch, w, (int)b_off, relu, m->infer_half);
}

static int bn_forward(dfr_cae *m, int l, int n)
{
    dfr_cae_bn bn = bn_of(m, l);
    return dfr_op_cae_bn_forward(m->rt, m->z[l + 1], n, m->ch[l + 1], &bn, BN_MOMENTUM, BN_EPS,
                                 m->a[l + 1]);
}

static int bn_backward(dfr_cae *m, int l, int n)
{
    dfr_cae_bn bn = bn_of(m, l);
    return dfr_op_cae_bn_backward(m->rt, m->z[l + 1], m->a[l + 1], n, m->ch[l + 1], &bn,
                                  m->grads);
}

/* Forward through the 6 convs in training mode: BatchNorm with batch statistics on the training
 * parameters into a[j], the last conv's raw product left in `out` (the loss kernel adds its
 * bias). */
static int forward_train(dfr_cae *m, cl_mem x, size_t xoff, int batch, cl_mem out)
{
    cl_mem w = m->params;
    size_t P = (size_t)m->npos, bp = (size_t)batch * P;
    int n = (int)bp;
    cl_mem in = x; /* the input of conv l */
    int rc = DFRCL_OK;
    m->infer_half = 0; /* training is fp32 */
    for (int l = 0; l < NCONV && !rc; l++) {
        int ci = m->ch[l], co = m->ch[l + 1], bn = bn_of_conv[l];
        cl_mem dst = l == NCONV - 1 ? out : m->z[l + 1];
        if (l == 0) /* per image: z[1][:, b*P..] = W0 x_b */
            rc = gemm(m, FWD, l, 0, 0, co, (int)P, ci, 0.0f, w, m->w_off[0], (size_t)ci, 0, in,
                      xoff, P, (size_t)ci * P, dst, 0, bp, P, batch);
        else if (l == NCONV - 1) /* per image: out_b = W5 a[5][:, b*P..] */
            rc = gemm(m, FWD, l, 0, 0, co, (int)P, ci, 0.0f, w, m->w_off[l], (size_t)ci, 0, in, 0,
                      bp, P, dst, 0, P, (size_t)co * P, batch);
        else
            rc = gemm(m, FWD, l, 0, 0, co, n, ci, 0.0f, w, m->w_off[l], (size_t)ci, 0, in, 0, bp, 0,
                      dst, 0, bp, 0, 1);
        if (rc || l == NCONV - 1) break;
        in = dst;
        if (bn < 0) {
            rc = bias_act(m, dst, n, co, co, w, m->b_off[l], 0);
        } else {
            rc = bn_forward(m, l, n);
            in = m->a[l + 1];
        }
    }
    return rc;
}

/* Inference, image by image in chunks of at most INFER_COLS positions: the activations take
 * INFER_COLS columns whatever the batch and image size (80 MB at 12 layers instead of 320 MB a
 * 512 px image), and every image's products are the same whatever the batch. Every column is
 * independent (1x1 convolutions, folded BatchNorm), so chunks give what one pass would. */
static int infer_chunks(dfr_cae *m, cl_mem x, size_t xoff, int batch, cl_mem out)
{
    const size_t P = (size_t)m->npos;
    const int C = m->ch[0], cols = infer_cols(m);
    int rc = DFRCL_OK;
    m->infer_half = m->rt->half;
    for (int b = 0; b < batch && !rc; b++) {
        size_t img = (size_t)b * C * P; /* the image's offset in x and out, in elements */
        for (size_t p0 = 0; p0 < P && !rc; p0 += (size_t)cols) {
            int pc = P - p0 < (size_t)cols ? (int)(P - p0) : cols;
            for (int l = 0; l < NCONV && !rc; l++) {
                int ci = m->ch[l], co = m->ch[l + 1], bn = bn_of_conv[l];
                int first = l == 0, last = l == NCONV - 1;
                cl_mem in = first ? x : m->z[l], dst = last ? out : m->z[l + 1];
                size_t ioff = first ? xoff + img + p0 : 0, ldi = first ? P : (size_t)pc;
                size_t ooff = last ? img + p0 : 0, ldo = last ? P : (size_t)pc;
                rc = gemm(m, FWD, l, 0, 0, co, pc, ci, 0.0f, m->folded, m->w_off[l], (size_t)ci,
                          0, in, ioff, ldi, 0, dst, ooff, ldo, 0, 1);
                if (!rc && !last)
                    rc = bias_act(m, dst, pc, co, co, m->folded, m->b_off[l], bn >= 0);
            }
        }
    }
    /* The output's bias, on the whole batch at once. */
    if (!rc) rc = bias_act(m, out, (int)P, batch * C, C, m->folded, m->b_off[NCONV - 1], 0);
    return rc;
}

static int loss_and_grad(dfr_cae *m, cl_mem x, size_t xoff, int batch)
{
    int C = m->ch[0], P = m->npos, rows = batch * C, boff = (int)m->b_off[NCONV - 1];
    double total = (double)rows * P;
    float count = (float)total, inv_n = 1.0f / count; /* as autograd: 1/N, then (2 d) * (1/N) */
    int rc = dfr_op_cae_mse(m->rt, m->out, x, xoff, P, C, rows, m->params, boff, inv_n,
                            m->keep_on ? m->keep : NULL, m->part);
    if (!rc)
        rc = dfr_op_cae_mse_finish(m->rt, m->part, rows, C, count, m->grads, boff, m->loss);
    if (!rc && m->keep_on) m->keep_batch = batch;
    return rc;
}

/* Weight gradients and the gradients flowing back, from dL/dout (in m->out) to conv 0. */
static int backward(dfr_cae *m, cl_mem x, size_t xoff, int batch)
{
    size_t P = (size_t)m->npos, bp = (size_t)batch * P;
    int n = (int)bp, rc = DFRCL_OK;
    cl_mem W = m->params, G = m->grads;
    for (int l = NCONV - 1; l >= 0 && !rc; l--) {
        int ci = m->ch[l], co = m->ch[l + 1];
        /* dZ of conv l: the output gradient, or z[l+1] after the BN backward (the latent has no
         * BN: its a == z holds dL/da = dL/dz). */
        cl_mem dz = l == NCONV - 1 ? m->out : m->z[l + 1];
        if (l == NCONV - 1) {
            /* dW5 = sum_b dOut_b a5_b^T (c_stride 0 sums the images); dA5 = W5^T dOut_b. */
            rc = gemm(m, DW, l, 0, 1, co, ci, (int)P, 0.0f, dz, 0, P, (size_t)co * P, m->a[l], 0,
                      bp, P, G, m->w_off[l], (size_t)ci, 0, batch);
            if (!rc)
                rc = gemm(m, DA, l, 1, 0, ci, (int)P, co, 0.0f, W, m->w_off[l], (size_t)ci, 0, dz,
                          0, P, (size_t)co * P, m->a[l], 0, bp, P, batch);
        } else if (l == 0) {
            /* dW0 = sum_b dZ1_b x_b^T; no gradient for the input. */
            rc = gemm(m, DW, l, 0, 1, co, ci, (int)P, 0.0f, dz, 0, bp, P, x, xoff, P,
                      (size_t)ci * P, G, m->w_off[0], (size_t)ci, 0, batch);
        } else {
            rc = gemm(m, DW, l, 0, 1, co, ci, n, 0.0f, dz, 0, bp, 0, m->a[l], 0, bp, 0, G,
                      m->w_off[l], (size_t)ci, 0, 1);
            if (!rc)
                rc = gemm(m, DA, l, 1, 0, ci, n, co, 0.0f, W, m->w_off[l], (size_t)ci, 0, dz, 0, bp,
                          0, m->a[l], 0, bp, 0, 1);
        }
        /* a[l] now holds dL/da; through the BN and ReLU before it to dL/dz in z[l]. */
        if (!rc && l > 0 && bn_of_conv[l - 1] >= 0) rc = bn_backward(m, l - 1, n);
    }
    return rc;
}

static int adam(dfr_cae *m, float lr)
{
    dfr_adam_hyper h = {.lr = lr, .beta1 = ADAM_B1, .beta2 = ADAM_B2, .eps = ADAM_EPS};
    return dfr_op_cae_adam(m->rt, m->params, m->grads, m->adam_m, m->adam_v, (int)m->nparams, &h,
                           m->steps);
}

int dfr_cae_train_step(dfr_cae *cae, cl_mem x, size_t x_offset, int batch, float lr, float *loss)
{
    int rc = check_batch(cae, "training", x, x_offset, batch, sizeof(float));
    if (rc) return rc;
    if (cae->scorer) return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE: a scorer does not train");
    if (!(lr > 0.0f) || isinf(lr))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE training: learning rate %g", (double)lr);
    if ((int64_t)batch * cae->npos < 2)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "CAE training: BatchNorm needs more than one value per channel "
                         "(batch %d x %d positions)", batch, cae->npos);
    cae->folded_ok = 0; /* the running statistics change from the first kernel on */
    rc = forward_train(cae, x, x_offset, batch, cae->out);
    if (!rc) rc = loss_and_grad(cae, x, x_offset, batch);
    if (!rc) rc = backward(cae, x, x_offset, batch);
    if (!rc) {
        cae->steps++;
        rc = adam(cae, lr);
    }
    if (!rc && loss) rc = dfr_read(cae->rt, cae->loss, 0, sizeof *loss, loss, "CAE loss");
    return rc;
}

int dfr_cae_epoch_loss(dfr_cae *cae, double *mean, int *steps)
{
    if (!cae || cae->scorer) return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE: no model to train");
    float v[3];
    int rc = dfr_read(cae->rt, cae->loss, 0, sizeof v, v, "CAE loss");
    if (!rc) rc = zero_buffer(cae, cae->loss, 3);
    if (rc) return rc;
    if (mean) *mean = v[2] > 0 ? (double)v[1] / v[2] : 0.0;
    if (steps) *steps = (int)v[2];
    return DFRCL_OK;
}

/* ---- inference ---- */

static int fold(dfr_cae *m)
{
    if (!m->folded) {
        int rc = dfr_buffer_new(m->rt, m->nparams * sizeof(float), CL_MEM_READ_WRITE,
                                "CAE folded weights", &m->folded);
        if (rc) return rc;
    }
    int rc = dfr_copy(m->rt, m->params, 0, m->folded, 0, m->nparams * sizeof(float),
                      "the CAE weights to fold");
    for (int l = 0; l < NCONV && !rc; l++) {
        int k = bn_of_conv[l];
        if (k < 0) continue;
        dfr_cae_bn bn = bn_of(m, l);
        rc = dfr_op_cae_fold_bn(m->rt, &bn, (int)m->w_off[l], m->ch[l], m->ch[l + 1], BN_EPS,
                                m->folded);
    }
    if (!rc) m->folded_ok = 1;
    return rc;
}

int dfr_cae_infer(dfr_cae *cae, cl_mem x, size_t x_offset, int batch, cl_mem recon)
{
    size_t eb = dfr_act_bytes(cae ? cae->rt : NULL);
    int rc = check_batch(cae, "inference", x, x_offset, batch, eb);
    if (rc) return rc;
    if (eb > cae->act_bytes)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "CAE inference: made for fp16 activations, the runtime now asks for fp32; "
                         "set the precision before making the autoencoder");
    size_t need = (size_t)batch * cae->ch[0] * cae->npos;
    if (!recon || buffer_elems(recon, eb) < need)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "CAE inference: output buffer %s (need %zu %s)",
                         recon ? "too small" : "missing", need, eb == 2 ? "fp16 values" : "floats");
    if (!cae->folded_ok) rc = fold(cae);
    if (!rc) rc = infer_chunks(cae, x, x_offset, batch, recon);
    return rc;
}

double dfr_cae_gemm_flops(const dfr_cae *cae, int batch, int train)
{
    if (!cae) return 0;
    double f = 0, n = (double)batch * cae->npos;
    for (int l = 0; l < NCONV; l++) {
        double mk = (double)cae->ch[l] * cae->ch[l + 1];
        f += 2 * mk * n;                             /* forward */
        if (train) f += 2 * mk * n * (l > 0 ? 2 : 1); /* dW, and dA except for the input */
    }
    return f;
}

/* ---- tensors ---- */

int dfr_cae_tensor_info(const dfr_cae *cae, int index, dfr_cae_tensor *out)
{
    if (!cae || !out || index < 0 || index >= DFR_CAE_NUM_TENSORS)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE: no tensor %d (0..%d)", index,
                         DFR_CAE_NUM_TENSORS - 1);
    const cae_tensor *t = &cae->tensors[index];
    out->name = t->name;
    out->ndim = t->ndim;
    memcpy(out->shape, t->shape, sizeof out->shape);
    out->numel = t->numel;
    out->is_param = t->is_param;
    return DFRCL_OK;
}

static int tensor_lookup(dfr_cae *cae, const char *name, const void *data, size_t count,
                         int grad, const cae_tensor **out)
{
    if (!cae || !name || !data)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE: tensor access without %s",
                         !cae ? "a model" : !name ? "a name" : "a buffer");
    const cae_tensor *t = find_tensor(cae, name);
    if (!t || (grad && !t->is_param))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE: no %s named \"%s\"",
                         grad ? "parameter" : "tensor", name);
    if (count != t->numel)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE: tensor %s has %zu elements, not %zu",
                         name, t->numel, count);
    *out = t;
    return DFRCL_OK;
}

int dfr_cae_get_tensor(dfr_cae *cae, const char *name, float *dst, size_t count)
{
    const cae_tensor *t = NULL;
    int rc = tensor_lookup(cae, name, dst, count, 0, &t);
    if (rc) return rc;
    return dfr_read(cae->rt, t->is_param ? cae->params : cae->running, t->offset * sizeof(float),
                    count * sizeof(float), dst, "CAE download");
}

int dfr_cae_set_tensor(dfr_cae *cae, const char *name, const float *src, size_t count)
{
    const cae_tensor *t = NULL;
    int rc = tensor_lookup(cae, name, src, count, 0, &t);
    if (rc) return rc;
    for (size_t i = 0; i < count; i++)
        if (!isfinite(src[i]) || (!t->is_param && strstr(name, "running_var") && src[i] < 0))
            return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE: tensor %s: element %zu is %g", name, i,
                             (double)src[i]);
    cae->folded_ok = 0;
    return dfr_write(cae->rt, t->is_param ? cae->params : cae->running,
                     t->offset * sizeof(float), count * sizeof(float), src, "CAE upload");
}

int dfr_cae_get_tensors(dfr_cae *cae, float *const *dst)
{
    if (!cae || !dst) return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE: get_tensors without buffers");
    for (int i = 0; i < DFR_CAE_NUM_TENSORS; i++) {
        int rc = dfr_cae_get_tensor(cae, cae->tensors[i].name, dst[i], cae->tensors[i].numel);
        if (rc) return rc;
    }
    return DFRCL_OK;
}

int dfr_cae_set_tensors(dfr_cae *cae, const float *const *src)
{
    if (!cae || !src) return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE: set_tensors without buffers");
    for (int i = 0; i < DFR_CAE_NUM_TENSORS; i++) {
        int rc = dfr_cae_set_tensor(cae, cae->tensors[i].name, src[i], cae->tensors[i].numel);
        if (rc) return rc;
    }
    return DFRCL_OK;
}

int dfr_cae_copy_weights(dfr_cae *dst, dfr_cae *src)
{
    if (!dst || !src || memcmp(dst->ch, src->ch, sizeof dst->ch) != 0)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE: copying weights between different shapes");
    int rc = dfr_copy(src->rt, src->params, 0, dst->params, 0, src->nparams * sizeof(float),
                      "the CAE weights");
    if (!rc)
        rc = dfr_copy(src->rt, src->running, 0, dst->running, 0, src->nrunning * sizeof(float),
                      "the CAE running statistics");
    dst->folded_ok = 0;
    return rc;
}

size_t dfr_cae_nparams(const dfr_cae *cae) { return cae ? cae->nparams : 0; }
size_t dfr_cae_nrunning(const dfr_cae *cae) { return cae ? cae->nrunning : 0; }

int dfr_cae_get_state(dfr_cae *cae, float *params, float *adam_m, float *adam_v, float *running,
                      int64_t *steps, float loss_acc[3])
{
    if (!cae || cae->scorer || !params || !adam_m || !adam_v || !running || !steps || !loss_acc)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE: get_state without a training model or buffers");
    size_t np = cae->nparams * sizeof(float);
    int rc = dfr_read(cae->rt, cae->params, 0, np, params, "CAE download");
    if (!rc) rc = dfr_read(cae->rt, cae->adam_m, 0, np, adam_m, "CAE download");
    if (!rc) rc = dfr_read(cae->rt, cae->adam_v, 0, np, adam_v, "CAE download");
    if (!rc) rc = dfr_read(cae->rt, cae->running, 0, cae->nrunning * sizeof(float), running,
                           "CAE download");
    if (!rc) rc = dfr_read(cae->rt, cae->loss, 0, 3 * sizeof(float), loss_acc, "CAE download");
    *steps = cae->steps;
    return rc;
}

int dfr_cae_set_state(dfr_cae *cae, const float *params, const float *adam_m, const float *adam_v,
                      const float *running, int64_t steps, const float loss_acc[3])
{
    if (!cae || cae->scorer || !params || !adam_m || !adam_v || !running || !loss_acc || steps < 0)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE: set_state without a training model or buffers");
    size_t np = cae->nparams * sizeof(float);
    int rc = dfr_write(cae->rt, cae->params, 0, np, params, "CAE upload");
    if (!rc) rc = dfr_write(cae->rt, cae->adam_m, 0, np, adam_m, "CAE upload");
    if (!rc) rc = dfr_write(cae->rt, cae->adam_v, 0, np, adam_v, "CAE upload");
    if (!rc) rc = dfr_write(cae->rt, cae->running, 0, cae->nrunning * sizeof(float), running,
                            "CAE upload");
    if (!rc) rc = dfr_write(cae->rt, cae->loss, 0, 3 * sizeof(float), loss_acc, "CAE upload");
    if (!rc) {
        cae->steps = steps;
        cae->folded_ok = 0;
    }
    return rc;
}

int dfr_cae_get_grad(dfr_cae *cae, const char *name, float *dst, size_t count)
{
    if (cae && cae->scorer) return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE: a scorer has no gradients");
    const cae_tensor *t = NULL;
    int rc = tensor_lookup(cae, name, dst, count, 1, &t);
    if (rc) return rc;
    return dfr_read(cae->rt, cae->grads, t->offset * sizeof(float), count * sizeof(float), dst,
                    "CAE download");
}

int dfr_cae_keep_output(dfr_cae *cae, int on)
{
    if (cae && cae->scorer) return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE: a scorer does not train");
    if (!cae) return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE: no model");
    if (on && !cae->keep) {
        size_t n = (size_t)cae->max_batch * cae->ch[0] * cae->npos;
        int rc = dfr_buffer_new(cae->rt, n * sizeof(float), CL_MEM_READ_WRITE, "CAE kept output",
                                &cae->keep);
        if (rc) return rc;
    }
    cae->keep_on = on != 0;
    cae->keep_batch = 0;
    return DFRCL_OK;
}

int dfr_cae_get_output(dfr_cae *cae, float *dst, size_t count)
{
    if (!cae || !dst) return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE: get_output without buffers");
    size_t n = (size_t)cae->keep_batch * cae->ch[0] * cae->npos;
    if (!cae->keep || cae->keep_batch == 0)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "CAE: no kept output (dfr_cae_keep_output, then a training step)");
    if (count != n)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "CAE: the kept output has %zu floats, not %zu", n,
                         count);
    return dfr_read(cae->rt, cae->keep, 0, n * sizeof(float), dst, "CAE download");
}
