#include <string.h>
#include "ops/ops.h"
#include "ops/tunables.h"
#include "util/error.h"

int dfr_op_sqerr_mean(dfr_runtime *rt, cl_mem a, cl_mem r, int batch, int c, int npos,
                      cl_mem score)
{
    if (batch < 1 || c < 1 || npos < 1)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "sqerr_mean: bad shape [%d, %d, %d]", batch, c,
                         npos);
    /* Positions per work-item and work-group width: tunables.c (DFRCL_SCORE_TUNE="vec[,lx]"). */
    int v[DFR_TUNE_MAX_PARAMS];
    int rc = dfr_tune_resolve(rt, DFR_TK_SCORE, v, NULL);
    char opts[96];
    dfr_tune_defines(&dfr_tune_kernels[DFR_TK_SCORE], v, opts, sizeof opts);
    strncat(opts, dfr_act_opts(rt), sizeof opts - strlen(opts) - 1);
    cl_kernel k;
    if (!rc) rc = dfr_kernel_get(rt, "score.cl", opts, "sqerr_mean", &k);
    if (!rc) rc = dfr_set_args(k, "sqerr_mean", DFR_ARG(a), DFR_ARG(r), DFR_ARG(c), DFR_ARG(npos),
                               DFR_ARG(score), DFR_ARGS_END);
    size_t g[2] = {(size_t)(npos + v[SQ_VEC_] - 1) / (size_t)v[SQ_VEC_], (size_t)batch};
    size_t l[2] = {(size_t)v[SQ_LX_], 1};
    if (!rc) rc = dfr_enqueue(rt, k, 2, g, v[SQ_LX_] ? l : NULL, "score");
    return rc;
}

int dfr_op_upsample(dfr_runtime *rt, cl_mem src, int n, int h, int w, cl_mem dst, int H, int W)
{
    if (n < 1 || h < 1 || w < 1 || H < 1 || W < 1)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "upsample: bad shape [%d, %d, %d] -> [%d, %d]", n,
                         h, w, H, W);
    cl_kernel k;
    int rc = dfr_kernel_get(rt, "score.cl", "", "upsample_bilinear", &k);
    if (!rc) rc = dfr_set_args(k, "upsample_bilinear", DFR_ARG(src), DFR_ARG(h), DFR_ARG(w), DFR_ARG(dst),
                               DFR_ARG(H), DFR_ARG(W), DFR_ARGS_END);
    size_t g[3] = {(size_t)W, (size_t)H, (size_t)n};
    if (!rc) rc = dfr_enqueue(rt, k, 3, g, NULL, "upsample");
    return rc;
}
