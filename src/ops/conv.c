/* Host side of the 3x3 convolution (kernels/conv.cl): per-device tile sizes, the weight layout
 * the kernel reads, argument checks and launch geometry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/tunables.h"
#include "util/error.h"

/* Register tile (output channels x pixels of one row) and work-group shape for a device. */
typedef struct conv_config {
    int tco, tx;
    int cb;          /* input channels per chunk between work-group barriers, 0 = no chunks */
    size_t local[3]; /* {0,0,0}: let the driver choose */
    char defines[128]; /* the -D options */
} conv_config;

/* The device's values (tunables.c: class defaults, tuning database, DFRCL_CONV_TUNE). They are
 * read at upload and at each launch; a launch whose channel tile differs from the one the
 * weights were laid out for is refused. */
static int conv_get_config(dfr_runtime *rt, conv_config *cfg)
{
    int v[DFR_TUNE_MAX_PARAMS];
    int rc = dfr_tune_resolve(rt, DFR_TK_CONV, v, NULL);
    if (rc) return rc;
    cfg->tco = v[CONV_TCO];
    cfg->tx = v[CONV_TX];
    cfg->cb = v[CONV_CB];
    for (int i = 0; i < 3; i++) cfg->local[i] = (size_t)v[CONV_LX + i];
    dfr_tune_defines(&dfr_tune_kernels[DFR_TK_CONV], v, cfg->defines, sizeof cfg->defines);
    return DFRCL_OK;
}

int dfr_conv_upload(dfr_runtime *rt, const float *w, const float *b, int cin, int cout,
                    dfr_conv_weights *out)
{
    if (!out) return dfr_error(DFRCL_ERR_INVALID_ARG, "conv upload: no output struct");
    memset(out, 0, sizeof *out);
    if (!w || !b || cin < 1 || cout < 1 || cin > (1 << 16) || cout > (1 << 16))
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "conv upload: bad arguments (cin %d, cout %d, weights %s, bias %s)", cin,
                         cout, w ? "given" : "missing", b ? "given" : "missing");
    conv_config cfg;
    int rc = conv_get_config(rt, &cfg);
    if (rc) return rc;
    /* [cout_pad / TCO][cin][3][3][TCO], zero in the padding channels. */
    int tco = cfg.tco, nblk = (cout + tco - 1) / tco;
    size_t n = (size_t)nblk * tco * cin * 9;
    float *lay = calloc(n, sizeof *lay);
    if (!lay)
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "conv upload: out of memory (%zu weights)", n);
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++)
            for (int t = 0; t < 9; t++)
                lay[(((size_t)(co / tco) * cin + ci) * 9 + t) * tco + co % tco] =
                    w[((size_t)co * cin + ci) * 9 + t];
    rc = dfr_buffer_new(rt, n * sizeof *lay, CL_MEM_READ_ONLY, "conv weights", &out->w);
    if (!rc) rc = dfr_write(rt, out->w, 0, n * sizeof *lay, lay, "conv weights upload");
    free(lay);
    if (!rc) {
        size_t nb = (size_t)nblk * tco;
        float *bp = calloc(nb, sizeof *bp);
        if (!bp) rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "conv upload: out of memory");
        if (!rc) {
            memcpy(bp, b, (size_t)cout * sizeof *b);
            rc = dfr_buffer_new(rt, nb * sizeof *bp, CL_MEM_READ_ONLY, "conv bias", &out->b);
        }
        if (!rc) rc = dfr_write(rt, out->b, 0, nb * sizeof *bp, bp, "conv bias upload");
        free(bp);
    }
    if (rc) {
        dfr_conv_release(out);
        return rc;
    }
    out->cin = cin;
    out->cout = cout;
    out->tco = tco;
    return DFRCL_OK;
}

void dfr_conv_release(dfr_conv_weights *cw)
{
    if (!cw) return;
    dfr_buffer_release(&cw->w);
    dfr_buffer_release(&cw->b);
    cw->cin = cw->cout = cw->tco = 0;
}

int dfr_op_conv3x3_relu(dfr_runtime *rt, const dfr_conv_weights *cw, cl_mem in, cl_mem out,
                        int h, int w)
{
    if (!cw || !cw->w || !cw->b || !in || !out)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "conv3x3: weights or buffers missing");
    if (in == out)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "conv3x3: input and output must be different buffers");
    /* Reflection padding of 1 needs two pixels; the index arithmetic is int. */
    if (h < 2 || w < 2 || (size_t)h * w > (1u << 30) / 4)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "conv3x3: map %d x %d is unsupported (reflection padding needs h, w >= 2)",
                         h, w);
    int cin = cw->cin, cout = cw->cout;
    size_t plane = (size_t)h * w, in_size = 0, out_size = 0;
    cl_int err = clGetMemObjectInfo(in, CL_MEM_SIZE, sizeof in_size, &in_size, NULL);
    if (err == CL_SUCCESS)
        err = clGetMemObjectInfo(out, CL_MEM_SIZE, sizeof out_size, &out_size, NULL);
    if (err != CL_SUCCESS) return dfr_cl_error(err, "conv3x3: querying the buffer sizes");
    size_t eb = dfr_act_bytes(rt); /* activations are fp32 or fp16 */
    if (in_size / eb / cin < plane || out_size / eb / cout < plane)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "conv3x3: buffers of %zu and %zu bytes are too small for [%d, %d, %d] -> "
                         "[%d, %d, %d]",
                         in_size, out_size, cin, h, w, cout, h, w);
    conv_config cfg;
    int rc = conv_get_config(rt, &cfg);
    if (rc) return rc;
    if (cfg.tco != cw->tco)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "conv3x3: weights laid out for a channel tile of %d, the kernel uses %d "
                         "(DFRCL_CONV_TUNE changed after the upload?)",
                         cw->tco, cfg.tco);
    char opts[192];
    snprintf(opts, sizeof opts, "%s%s", cfg.defines, dfr_act_opts(rt));
    cl_kernel k;
    rc = dfr_kernel_get(rt, "conv.cl", opts, "conv3x3_relu", &k);
    if (!rc) rc = dfr_set_args(k, "conv3x3_relu", DFR_ARG(in), DFR_ARG(cw->w), DFR_ARG(cw->b),
                               DFR_ARG(out), DFR_ARG(cin), DFR_ARG(cout), DFR_ARG(h), DFR_ARG(w),
                               DFR_ARGS_END);
    size_t g[3] = {(size_t)((w + cfg.tx - 1) / cfg.tx), (size_t)h,
                   (size_t)((cout + cfg.tco - 1) / cfg.tco)};
    /* A device that cannot run the table's work-group size picks its own. */
    int use_local = cfg.local[0] && cfg.local[0] * cfg.local[1] * cfg.local[2] <=
                                        rt->info.max_work_group_size;
    if (!rc) rc = dfr_enqueue(rt, k, 3, g, use_local ? cfg.local : NULL, "conv");
    return rc;
}
