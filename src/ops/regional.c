/* Host side of the regional feature (kernels/regional.cl): argument checks, the per-axis weight
 * table, per-device tile sizes and launch geometry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/tunables.h"
#include "util/error.h"

/* Source indices one output may touch along an axis: its 4 bilinear samples lie within 3 source
 * steps (scale <= 1), plus the upper neighbour; a few spare for rounding. */
#define REG_SPAN 8

/* Tiles and work-group shape for a device. */
typedef struct reg_config {
    int vw;          /* output columns per work-item (vector width): 1, 2, 4, 8 or 16 */
    int ty;          /* output rows per work-item */
    int cpw;         /* channels per work-item */
    size_t local[3]; /* {0,0,0}: let the driver choose */
    char defines[96];
} reg_config;

/* The device's values (tunables.c: class defaults, tuning database, DFRCL_REGIONAL_TUNE). */
static int reg_get_config(dfr_runtime *rt, reg_config *cfg)
{
    int v[DFR_TUNE_MAX_PARAMS];
    int rc = dfr_tune_resolve(rt, DFR_TK_REGIONAL, v, NULL);
    if (rc) return rc;
    cfg->vw = v[REG_VW_];
    cfg->ty = v[REG_TY_];
    cfg->cpw = v[REG_CPW_];
    for (int i = 0; i < 3; i++) cfg->local[i] = (size_t)v[REG_LX_ + i];
    dfr_tune_defines(&dfr_tune_kernels[DFR_TK_REGIONAL], v, cfg->defines, sizeof cfg->defines);
    return DFRCL_OK;
}

/* The weights of output index o along an axis of n_in source samples resized to `size`: the
 * average of its 4 bilinear samples (align_corners=True), over source indices first ..
 * first + REG_SPAN - 1. PyTorch's float arithmetic (as common.cl's dfr_align_corners): scale in
 * float, source = scale * index, lower index truncated, upper clamped. Returns first, or -1 if
 * an index falls outside the span (cannot happen while n_in <= size). */
static int region_weights(int o, int n_in, int size, float wt[REG_SPAN])
{
    float scale = size > 1 ? (float)(n_in - 1) / (float)(size - 1) : 0.0f;
    int first = 0;
    for (int k = 0; k < REG_SPAN; k++) wt[k] = 0.0f;
    for (int d = 0; d < 4; d++) {
        float src = scale * (float)(4 * o + d);
        int i = (int)src;
        if (i > n_in - 1) i = n_in - 1;
        int i1 = i < n_in - 1 ? i + 1 : i;
        float l1 = src - (float)i;
        if (d == 0) first = i;
        if (i < first || i1 - first >= REG_SPAN) return -1;
        wt[i - first] += 1.0f - l1;
        wt[i1 - first] += l1;
    }
    for (int k = 0; k < REG_SPAN; k++) wt[k] *= 0.25f;
    return first;
}

/* Number of taps up to the last nonzero one (at least 1). */
static int taps_used(const float wt[REG_SPAN])
{
    int n = 1;
    for (int k = 0; k < REG_SPAN; k++)
        if (wt[k] != 0.0f) n = k + 1;
    return n;
}

/* The table the kernel reads (layout in regional.cl), malloc'd; *ky and *l are the vertical taps
 * and the columns per chunk of vw outputs; offsets in floats. */
typedef struct reg_table {
    float *data;
    size_t n;
    int ky, l, yw_off, xb_off, yb_off;
} reg_table;

static int reg_table_build(int h, int w, int size, int vw, reg_table *t)
{
    memset(t, 0, sizeof *t);
    int osz = size / 4, nch = (osz + vw - 1) / vw;
    float wt[REG_SPAN];
    int ky = 1, l = 1;
    for (int o = 0; o < osz; o++) {
        if (region_weights(o, h, size, wt) < 0) goto span;
        int n = taps_used(wt);
        if (n > ky) ky = n;
    }
    for (int j = 0; j < nch; j++) {
        int xb = region_weights(j * vw, w, size, wt);
        for (int i = 0; i < vw && j * vw + i < osz; i++) {
            int f = region_weights(j * vw + i, w, size, wt);
            if (xb < 0 || f < xb) goto span;
            int n = f - xb + taps_used(wt);
            if (n > l) l = n;
        }
    }
    /* L is at most 4 (vw - 1) + REG_SPAN; everything below is far from int overflow for any
     * osz that fits the checks of dfr_op_regional. */
    size_t nwx = (size_t)nch * l * vw;
    t->n = nwx + (size_t)osz * ky + nch + osz;
    t->data = calloc(t->n, sizeof(float));
    if (!t->data) return dfr_error(DFRCL_ERR_HOST_MEMORY, "regional: out of memory for the table");
    t->ky = ky;
    t->l = l;
    t->yw_off = (int)nwx;
    t->xb_off = t->yw_off + osz * ky;
    t->yb_off = t->xb_off + nch;
    for (int j = 0; j < nch; j++) {
        int xb = region_weights(j * vw, w, size, wt);
        memcpy(&t->data[t->xb_off + j], &xb, sizeof xb);
        for (int i = 0; i < vw && j * vw + i < osz; i++) {
            int f = region_weights(j * vw + i, w, size, wt);
            for (int k = 0; k < REG_SPAN && f - xb + k < l; k++)
                t->data[((size_t)j * l + f - xb + k) * vw + i] = wt[k];
        }
    }
    for (int o = 0; o < osz; o++) {
        int f = region_weights(o, h, size, wt);
        memcpy(&t->data[t->yb_off + o], &f, sizeof f);
        for (int a = 0; a < ky; a++) t->data[t->yw_off + (size_t)o * ky + a] = wt[a];
    }
    return DFRCL_OK;
span:
    return dfr_error(DFRCL_ERR_INTERNAL, "regional: a %dx%d map resized to %d spans too many "
                                         "source pixels per output", h, w, size);
}

int dfr_regional_taps(int h, int w, int size, int vw, int *ky, int *l)
{
    reg_table t;
    int rc = reg_table_build(h, w, size, vw, &t);
    if (rc) return rc;
    *ky = t.ky;
    *l = t.l;
    free(t.data);
    return DFRCL_OK;
}

/* Whether buffer m holds at least `bytes`. */
static int buffer_holds(cl_mem m, double bytes)
{
    size_t have = 0;
    if (!m || clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof have, &have, NULL) != CL_SUCCESS) return 0;
    return (double)have >= bytes;
}

int dfr_op_regional(dfr_runtime *rt, cl_mem map, int c, int h, int w, int size, cl_mem feat,
                    int c_offset, int c_total)
{
    if (c < 1 || h < 1 || w < 1 || size < 4 || size % 4 != 0 || c_offset < 0 || c_total < c ||
        c_offset > c_total - c || h > size || w > size)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "regional: bad arguments (map [%d, %d, %d] must not exceed size %d, a "
                         "multiple of 4; channels %d..%lld of %d)",
                         c, h, w, size, c_offset, (long long)c_offset + c, c_total);
    int osz = size / 4;
    /* The kernel indexes within a map plane and within an output plane with int. */
    if ((double)h * w > 2147483647.0 || (double)osz * osz > 2147483647.0)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "regional: map [%d, %d] or size %d too large", h, w,
                         size);
    double eb = (double)dfr_act_bytes(rt); /* map and feature are fp32 or fp16 */
    if (!buffer_holds(map, eb * c * h * w) || !buffer_holds(feat, eb * c_total * osz * osz))
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "regional: buffers too small for map [%d, %d, %d] and feature "
                         "[%d, %d, %d]",
                         c, h, w, c_total, osz, osz);
    reg_config cfg;
    int rc = reg_get_config(rt, &cfg);
    if (rc) return rc;
    reg_table t;
    rc = reg_table_build(h, w, size, cfg.vw, &t);
    if (rc) return rc;

    char opts[192];
    snprintf(opts, sizeof opts, "%s -DREG_KY=%d -DREG_L=%d%s", cfg.defines, t.ky, t.l,
             dfr_act_opts(rt));
    cl_kernel k;
    rc = dfr_kernel_get(rt, "regional.cl", opts, "regional", &k);
    /* A fresh table buffer per call, filled at creation (no queue round trip); released right
     * after the launch, OpenCL keeps it until the kernel has run. */
    cl_mem tab = NULL;
    if (!rc) {
        cl_int err;
        tab = clCreateBuffer(rt->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                             t.n * sizeof(float), t.data, &err);
        if (err != CL_SUCCESS) {
            tab = NULL;
            rc = dfr_cl_error(err, "regional: weight table");
        }
    }
    free(t.data);
    if (!rc)
        rc = dfr_set_args(k, "regional", DFR_ARG(map), DFR_ARG(c), DFR_ARG(h), DFR_ARG(w),
                          DFR_ARG(osz), DFR_ARG(feat), DFR_ARG(c_offset), DFR_ARG(tab),
                          DFR_ARG(t.yw_off), DFR_ARG(t.xb_off), DFR_ARG(t.yb_off), DFR_ARGS_END);
    size_t g[3] = {(size_t)(osz + cfg.vw - 1) / cfg.vw, (size_t)(osz + cfg.ty - 1) / cfg.ty,
                   (size_t)(c + cfg.cpw - 1) / cfg.cpw};
    if (!rc) rc = dfr_enqueue(rt, k, 3, g, cfg.local[0] ? cfg.local : NULL, "regional");
    dfr_buffer_release(&tab);
    return rc;
}
