#include "ops/ops.h"
#include "util/error.h"

int dfr_op_maxpool2(dfr_runtime *rt, cl_mem in, cl_mem out, int c, int h, int w)
{
    if (c < 1 || h < 2 || w < 2)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "maxpool: map [%d, %d, %d] is too small", c, h, w);
    int oh = h / 2, ow = w / 2;
    cl_kernel k;
    int rc = dfr_kernel_get(rt, "pool.cl", dfr_act_opts(rt), "maxpool2", &k);
    if (!rc) rc = dfr_set_args(k, "maxpool2", DFR_ARG(in), DFR_ARG(h), DFR_ARG(w), DFR_ARG(out),
                               DFR_ARG(oh), DFR_ARG(ow), DFR_ARGS_END);
    size_t g[3] = {(size_t)ow, (size_t)oh, (size_t)c};
    if (!rc) rc = dfr_enqueue(rt, k, 3, g, NULL, "maxpool");
    return rc;
}
