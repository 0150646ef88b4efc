#include "ops/ops.h"
#include "util/error.h"

int dfr_op_regional(dfr_runtime *rt, cl_mem map, int c, int h, int w, int size, cl_mem feat,
                    int c_offset, int c_total)
{
    if (c < 1 || h < 1 || w < 1 || size < 4 || size % 4 != 0 || c_offset < 0 ||
        c_offset + c > c_total || h > size || w > size)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "regional: bad arguments (map [%d, %d, %d] must not exceed size %d, a multiple "
                         "of 4; channels %d..%d of %d)",
                         c, h, w, size, c_offset, c_offset + c, c_total);
    cl_kernel k;
    int rc = dfr_kernel_get(rt, "regional.cl", "", "regional", &k);
    if (!rc) rc = dfr_set_args(k, "regional", DFR_ARG(map), DFR_ARG(c), DFR_ARG(h), DFR_ARG(w), DFR_ARG(size),
                               DFR_ARG(feat), DFR_ARG(c_offset), DFR_ARGS_END);
    /* REG_CPT (kernel default 16) channels per work-item */
    size_t g[3] = {(size_t)(size / 4), (size_t)(size / 4), (size_t)(c + 15) / 16};
    if (!rc) rc = dfr_enqueue(rt, k, 3, g, NULL, "regional");
    return rc;
}
