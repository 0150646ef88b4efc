/* Host side of the autoencoder's non-GEMM kernels (kernels/cae.cl): the reductions' work-group
 * size, argument checks and launch geometry. The model (src/model/cae.c) only orchestrates. */
#include <math.h>
#include <stdio.h>

#include "ops/ops.h"
#include "ops/tunables.h"
#include "util/error.h"

int dfr_cae_ls(dfr_runtime *rt, size_t *ls)
{
    int v[DFR_TUNE_MAX_PARAMS];
    int rc = dfr_tune_resolve(rt, DFR_TK_CAE, v, NULL);
    if (rc) return rc;
    size_t n = (size_t)v[CAE_LS_];
    while (n > 1 && n > rt->info.max_work_group_size) n /= 2;
    *ls = n;
    return DFRCL_OK;
}

/* The kernel `name` of cae.cl built for the reductions' work-group size (and fp16 storage when
 * half); *ls receives that size. */
static int cae_kernel(dfr_runtime *rt, const char *name, int half, cl_kernel *k, size_t *ls)
{
    *ls = 1;
    int rc = dfr_cae_ls(rt, ls);
    if (rc) return rc;
    char opts[64];
    snprintf(opts, sizeof opts, "-DCAE_LS=%zu%s", *ls, half ? " -DDFR_HALF=1" : "");
    return dfr_kernel_get(rt, "cae.cl", opts, name, k);
}

/* Enqueues under the profiling label "cae", tagged with the kernel's name. */
static int cae_enqueue(dfr_runtime *rt, cl_kernel k, const char *name, cl_uint dims,
                       const size_t *global, const size_t *local)
{
    const char *saved = rt->prof_tag;
    rt->prof_tag = name;
    int rc = dfr_enqueue(rt, k, dims, global, local, "cae");
    rt->prof_tag = saved;
    return rc;
}

static int bad_shape(const char *op, int a, int b)
{
    return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: bad shape (%d, %d)", op, a, b);
}

static int check_bn(const char *op, const dfr_cae_bn *bn, int need_stats)
{
    if (!bn || !bn->params || !bn->running || (need_stats && !bn->stats))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: BatchNorm buffers missing", op);
    return DFRCL_OK;
}

int dfr_op_cae_bn_forward(dfr_runtime *rt, cl_mem z, int n, int nch, const dfr_cae_bn *bn,
                          float momentum, float eps, cl_mem a)
{
    const char *kn = "cae_bn_forward";
    if (n < 2 || nch < 1) return bad_shape(kn, nch, n); /* the unbiased variance needs n >= 2 */
    int rc = check_bn(kn, bn, 1);
    if (rc) return rc;
    if (!z || !a) return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: buffers missing", kn);
    cl_kernel k;
    size_t ls;
    rc = cae_kernel(rt, kn, 0, &k, &ls);
    if (!rc)
        rc = dfr_set_args(k, kn, DFR_ARG(z), DFR_ARG(n), DFR_ARG(nch), DFR_ARG(bn->params),
                          DFR_ARG(bn->gamma_off), DFR_ARG(bn->beta_off), DFR_ARG(bn->bias_off),
                          DFR_ARG(bn->running), DFR_ARG(bn->mean_off), DFR_ARG(bn->var_off),
                          DFR_ARG(bn->stats), DFR_ARG(momentum), DFR_ARG(eps), DFR_ARG(a),
                          DFR_ARGS_END);
    size_t gs = (size_t)nch * ls;
    if (!rc) rc = cae_enqueue(rt, k, kn, 1, &gs, &ls);
    return rc;
}

int dfr_op_cae_bn_backward(dfr_runtime *rt, cl_mem z, cl_mem da, int n, int nch,
                           const dfr_cae_bn *bn, cl_mem grads)
{
    const char *kn = "cae_bn_backward";
    if (n < 1 || nch < 1) return bad_shape(kn, nch, n);
    int rc = check_bn(kn, bn, 1);
    if (rc) return rc;
    if (!z || !da || !grads) return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: buffers missing", kn);
    cl_kernel k;
    size_t ls;
    rc = cae_kernel(rt, kn, 0, &k, &ls);
    if (!rc)
        rc = dfr_set_args(k, kn, DFR_ARG(z), DFR_ARG(da), DFR_ARG(n), DFR_ARG(nch),
                          DFR_ARG(bn->params), DFR_ARG(bn->gamma_off), DFR_ARG(bn->beta_off),
                          DFR_ARG(bn->stats), DFR_ARG(grads), DFR_ARGS_END);
    size_t gs = (size_t)nch * ls;
    if (!rc) rc = cae_enqueue(rt, k, kn, 1, &gs, &ls);
    return rc;
}

int dfr_op_cae_bias_act(dfr_runtime *rt, cl_mem y, int n, int rows, int nch, cl_mem params,
                        int bias_off, int relu, int half)
{
    const char *kn = "cae_bias_act";
    if (n < 1 || rows < 1 || nch < 1) return bad_shape(kn, rows, n);
    if (!y || !params) return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: buffers missing", kn);
    cl_kernel k;
    size_t ls;
    int rc = cae_kernel(rt, kn, half, &k, &ls);
    if (!rc)
        rc = dfr_set_args(k, kn, DFR_ARG(y), DFR_ARG(n), DFR_ARG(rows), DFR_ARG(nch),
                          DFR_ARG(params), DFR_ARG(bias_off), DFR_ARG(relu), DFR_ARGS_END);
    size_t g[2] = {(size_t)n, (size_t)rows};
    if (!rc) rc = cae_enqueue(rt, k, kn, 2, g, NULL);
    return rc;
}

int dfr_op_cae_mse(dfr_runtime *rt, cl_mem out, cl_mem x, size_t x_off, int npos, int nch,
                   int rows, cl_mem params, int bias_off, float inv_n, cl_mem keep, cl_mem part)
{
    const char *kn = "cae_mse";
    if (npos < 1 || nch < 1 || rows < 1) return bad_shape(kn, rows, npos);
    if (!out || !x || !params || !part)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: buffers missing", kn);
    cl_ulong xo = x_off;
    int keep_on = keep != NULL;
    if (!keep) keep = out; /* any buffer: the kernel does not touch it */
    cl_kernel k;
    size_t ls;
    int rc = cae_kernel(rt, kn, 0, &k, &ls);
    if (!rc)
        rc = dfr_set_args(k, kn, DFR_ARG(out), DFR_ARG(x), DFR_ARG(xo), DFR_ARG(npos),
                          DFR_ARG(nch), DFR_ARG(params), DFR_ARG(bias_off), DFR_ARG(inv_n),
                          DFR_ARG(keep), DFR_ARG(keep_on), DFR_ARG(part), DFR_ARG(rows),
                          DFR_ARGS_END);
    size_t gs = (size_t)rows * ls;
    if (!rc) rc = cae_enqueue(rt, k, kn, 1, &gs, &ls);
    return rc;
}

int dfr_op_cae_mse_finish(dfr_runtime *rt, cl_mem part, int rows, int nch, float count,
                          cl_mem grads, int db_off, cl_mem loss)
{
    const char *kn = "cae_mse_finish";
    if (rows < 1 || nch < 1) return bad_shape(kn, rows, nch);
    if (!part || !grads || !loss)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: buffers missing", kn);
    cl_kernel k;
    size_t ls;
    int rc = cae_kernel(rt, kn, 0, &k, &ls);
    if (!rc)
        rc = dfr_set_args(k, kn, DFR_ARG(part), DFR_ARG(rows), DFR_ARG(nch), DFR_ARG(count),
                          DFR_ARG(grads), DFR_ARG(db_off), DFR_ARG(loss), DFR_ARGS_END);
    if (!rc) rc = cae_enqueue(rt, k, kn, 1, &ls, &ls); /* one work-group */
    return rc;
}

int dfr_op_cae_adam(dfr_runtime *rt, cl_mem p, cl_mem g, cl_mem m, cl_mem v, int n,
                    const dfr_adam_hyper *h, int64_t t)
{
    const char *kn = "cae_adam";
    if (n < 1 || t < 1 || !h)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: bad arguments (%d parameters, step %lld%s)",
                         kn, n, (long long)t, h ? "" : ", no hyper-parameters");
    if (!p || !g || !m || !v) return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: buffers missing", kn);
    /* Bias corrections in double as PyTorch computes them (Python floats), then float. */
    double bc1 = 1.0 - pow(h->beta1, (double)t), bc2 = 1.0 - pow(h->beta2, (double)t);
    float b1 = (float)h->beta1, b2 = (float)h->beta2, eps = (float)h->eps;
    float omb1 = (float)(1.0 - h->beta1), omb2 = (float)(1.0 - h->beta2);
    float step_size = (float)(h->lr / bc1), bc2s = (float)sqrt(bc2);
    cl_kernel k;
    size_t ls;
    int rc = cae_kernel(rt, kn, 0, &k, &ls);
    if (!rc)
        rc = dfr_set_args(k, kn, DFR_ARG(p), DFR_ARG(g), DFR_ARG(m), DFR_ARG(v), DFR_ARG(n),
                          DFR_ARG(b1), DFR_ARG(omb1), DFR_ARG(b2), DFR_ARG(omb2),
                          DFR_ARG(step_size), DFR_ARG(bc2s), DFR_ARG(eps), DFR_ARGS_END);
    size_t gs = (size_t)n;
    if (!rc) rc = cae_enqueue(rt, k, kn, 1, &gs, NULL);
    return rc;
}

int dfr_op_cae_fold_bn(dfr_runtime *rt, const dfr_cae_bn *bn, int w_off, int cin, int cout,
                       float eps, cl_mem folded)
{
    const char *kn = "cae_fold_bn";
    if (cin < 1 || cout < 1) return bad_shape(kn, cout, cin);
    int rc = check_bn(kn, bn, 0);
    if (rc) return rc;
    if (!folded) return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: no output buffer", kn);
    cl_kernel k;
    size_t ls;
    rc = cae_kernel(rt, kn, 0, &k, &ls);
    if (!rc)
        rc = dfr_set_args(k, kn, DFR_ARG(bn->params), DFR_ARG(w_off), DFR_ARG(bn->bias_off),
                          DFR_ARG(bn->gamma_off), DFR_ARG(bn->beta_off), DFR_ARG(bn->running),
                          DFR_ARG(bn->mean_off), DFR_ARG(bn->var_off), DFR_ARG(cin),
                          DFR_ARG(cout), DFR_ARG(eps), DFR_ARG(folded), DFR_ARGS_END);
    size_t gs[2] = {(size_t)cin, (size_t)cout};
    if (!rc) rc = cae_enqueue(rt, k, kn, 2, gs, NULL);
    return rc;
}
