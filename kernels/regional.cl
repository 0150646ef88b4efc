/* DFR's multi-scale regional feature, fused: bilinear resize (align_corners=True) of a map to
 * size x size followed by 4x4 stride-4 average pooling, without storing the resized map.
 *
 * Both steps are linear and separable: output (oy, ox) = sum_a wy[oy][a] sum_b wx[ox][b]
 * m[y0(oy) + a][x0(ox) + b], where wy and wx average the 4 bilinear samples along each axis and
 * touch at most 5 consecutive source indices (the map is not larger than size). The host
 * (src/ops/regional.c) computes these weights once per call, with PyTorch's float arithmetic,
 * into a small table; the kernel does no index arithmetic beyond clamping.
 *
 * Work-item (j, b, g) computes outputs ox0 = j*VW .. ox0+VW-1 (a vector) of rows
 * oy0 = b*TY .. oy0+TY-1 for channels g*CPW .. g*CPW+CPW-1, in two passes per channel:
 *  1. vertical, along contiguous source rows: v[r][t] = sum_a wy[oy][a] m[y0(oy) + a][xb + t]
 *     for the L source columns xb .. xb+L-1 that the VW outputs read (vector loads);
 *  2. horizontal, as a small dense product: out[r] = sum_t v[r][t] * WX[t], where WX[t] (a
 *     vector, from the table) holds the weight of column xb + t in each of the VW outputs (zero
 *     where an output does not read it). Broadcast-multiply-adds: no gathers, no shuffles.
 * Each WX[t] load serves the TY rows, whose sums are independent (no long dependency chain).
 *
 * Table (floats; indices stored as int bits): [0, yw_off) the WX vectors, [chunk][t][lane];
 * [yw_off, xb_off) wy, [oy][a]; [xb_off, yb_off) xb per chunk; [yb_off, ...) y0 per output row.
 *
 * Tunables: REG_VW (1, 2, 4, 8 or 16), REG_TY (output rows per work-item), REG_CPW (channels per
 * work-item). Set by the host for each map shape: REG_KY (source rows per output row, 1..8) and
 * REG_L (source columns per VW outputs).
 */
/* compile-variant: -DREG_VW=1 -DREG_TY=1 -DREG_CPW=1 -DREG_KY=3 -DREG_L=3 */
/* compile-variant: -DREG_VW=8 -DREG_TY=4 -DREG_CPW=8 -DREG_KY=3 -DREG_L=6 */
/* compile-variant: -DREG_VW=16 -DREG_TY=2 -DREG_CPW=4 -DREG_KY=4 -DREG_L=64 */
/* compile-variant: -DREG_VW=4 -DREG_TY=3 -DREG_CPW=2 -DREG_KY=1 -DREG_L=1 */
/* compile-variant: -DDFR_HALF=1 -DREG_VW=1 -DREG_TY=1 -DREG_CPW=1 -DREG_KY=3 -DREG_L=3 */
/* compile-variant: -DDFR_HALF=1 -DREG_VW=8 -DREG_TY=4 -DREG_CPW=8 -DREG_KY=3 -DREG_L=6 */

#ifndef REG_VW
#define REG_VW 8
#endif
#ifndef REG_TY
#define REG_TY 4
#endif
#ifndef REG_CPW
#define REG_CPW 8
#endif
#ifndef REG_KY
#define REG_KY 4
#endif
#ifndef REG_L
#define REG_L 32
#endif
#define REG_NQ ((REG_L + REG_VW - 1) / REG_VW) /* vectors per source row segment */

#define REG_CAT_(a, b) a##b
#define REG_CAT(a, b) REG_CAT_(a, b)
#if REG_VW == 1
#define REG_VEC float
#define REG_VLOAD(i, p) ((p)[i])
#define REG_VSTORE(v, i, p) ((p)[i] = (v))
#else
#define REG_VEC REG_CAT(float, REG_VW)
#define REG_VLOAD(i, p) REG_CAT(vload, REG_VW)(i, p)
#define REG_VSTORE(v, i, p) REG_CAT(vstore, REG_VW)(v, i, p)
#endif
/* The same for the map and the feature, in the activation precision (common.cl). */
#if REG_VW == 1
#define REG_ACT_LOAD(i, p) ACT_LD(i, p)
#define REG_ACT_STORE(v, i, p) ACT_ST(v, i, p)
#else
#define REG_ACT_LOAD(i, p) ACT_LDV(REG_VW, i, p)
#define REG_ACT_STORE(v, i, p) ACT_STV(REG_VW, v, i, p)
#endif

__kernel void regional(__global const ACT_T *map, int c, int h, int w, int osz,
                       __global ACT_T *feat, int c_offset, __global const float *tab, int yw_off,
                       int xb_off, int yb_off)
{
    int j = get_global_id(0), ox0 = j * REG_VW, oy0 = get_global_id(1) * REG_TY;
    int c0 = get_global_id(2) * REG_CPW;
    if (ox0 >= osz || oy0 >= osz || c0 >= c) return;

    int xb = as_int(tab[xb_off + j]);
    __global const float *wx = tab + (size_t)j * REG_L * REG_VW;
    /* Whether the NQ vectors of a row segment stay inside the row; otherwise (the last chunks)
     * the columns past the end, which have weight 0, are read clamped. */
    int fast = xb + REG_NQ * REG_VW <= w;
    int nr = min(REG_TY, osz - oy0), nl = min(REG_VW, osz - ox0);
    int c1 = min(c0 + REG_CPW, c);

    /* Rows past the last output row repeat it (computed, not stored); source rows past the end
     * have weight 0 and are read clamped. */
    int yrow[REG_TY][REG_KY];
    float wy[REG_TY][REG_KY];
#pragma unroll
    for (int r = 0; r < REG_TY; r++) {
        int oy = min(oy0 + r, osz - 1);
        int y0 = as_int(tab[yb_off + oy]);
#pragma unroll
        for (int a = 0; a < REG_KY; a++) {
            yrow[r][a] = min(y0 + a, h - 1) * w;
            wy[r][a] = tab[yw_off + oy * REG_KY + a];
        }
    }

    for (int ch = c0; ch < c1; ch++) {
        __global const ACT_T *m = map + (size_t)ch * h * w + xb;
        /* pass 1: vertical */
        float v[REG_TY][REG_NQ * REG_VW];
#pragma unroll
        for (int r = 0; r < REG_TY; r++) {
            REG_VEC s[REG_NQ];
#pragma unroll
            for (int q = 0; q < REG_NQ; q++) s[q] = (REG_VEC)(0.0f);
#pragma unroll
            for (int a = 0; a < REG_KY; a++) {
                __global const ACT_T *row = m + yrow[r][a];
                REG_VEC wa = (REG_VEC)(wy[r][a]);
                if (fast) {
#pragma unroll
                    for (int q = 0; q < REG_NQ; q++) s[q] = fma(wa, REG_ACT_LOAD(q, row), s[q]);
                } else {
                    float seg[REG_NQ * REG_VW];
                    for (int i = 0; i < REG_NQ * REG_VW; i++)
                        seg[i] = ACT_LD(min(i, w - 1 - xb), row);
#pragma unroll
                    for (int q = 0; q < REG_NQ; q++) s[q] = fma(wa, REG_VLOAD(q, seg), s[q]);
                }
            }
#pragma unroll
            for (int q = 0; q < REG_NQ; q++) REG_VSTORE(s[q], q, v[r]);
        }
        /* pass 2: horizontal */
        REG_VEC acc[REG_TY];
#pragma unroll
        for (int r = 0; r < REG_TY; r++) acc[r] = (REG_VEC)(0.0f);
#pragma unroll
        for (int t = 0; t < REG_L; t++) {
            REG_VEC wt = REG_VLOAD(t, wx);
#pragma unroll
            for (int r = 0; r < REG_TY; r++) acc[r] = fma((REG_VEC)(v[r][t]), wt, acc[r]);
        }
        __global ACT_T *f = feat + ((size_t)(c_offset + ch) * osz + oy0) * osz + ox0;
        for (int r = 0; r < nr; r++) {
            if (nl == REG_VW) {
                REG_ACT_STORE(acc[r], 0, f + r * osz);
            } else { /* the last chunk of a row: only the outputs that exist */
                float part[REG_VW];
                REG_VSTORE(acc[r], 0, part);
                for (int i = 0; i < nl; i++) ACT_ST(part[i], r * osz + i, f);
            }
        }
    }
}
