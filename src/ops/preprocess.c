#include "ops/ops.h"
#include "util/error.h"

int dfr_op_preprocess(dfr_runtime *rt, cl_mem src_u8, int width, int height, int channels,
                      cl_mem dst)
{
    if (width < 1 || height < 1 || (channels != 1 && channels != 3))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "preprocess: bad image %dx%d with %d channel(s)",
                         width, height, channels);
    cl_kernel k;
    int rc = dfr_kernel_get(rt, "preprocess.cl", dfr_act_opts(rt), "preprocess", &k);
    if (!rc) rc = dfr_set_args(k, "preprocess", DFR_ARG(src_u8), DFR_ARG(width), DFR_ARG(height),
                               DFR_ARG(channels), DFR_ARG(dst), DFR_ARGS_END);
    size_t g[2] = {(size_t)width, (size_t)height};
    if (!rc) rc = dfr_enqueue(rt, k, 2, g, NULL, "preprocess");
    return rc;
}
