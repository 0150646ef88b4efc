/* 3x3 convolution + bias + ReLU with reflection padding of 1, planar [C, H, W]; fp32 weights,
 * input and output in the activation precision (common.cl).
 *
 * out[co, y, x] = ReLU(bias[co] +
 *                      sum_{ci,ky,kx} W[co,ci,ky,kx] * in[ci, refl(y+ky-1), refl(x+kx-1)])
 *
 * Each work-item computes a register tile of CONV_TX consecutive pixels of one output row x
 * CONV_TCO output channels, held as CONV_TX vectors floatCONV_TCO (one per pixel, the channels
 * in the lanes). For each input channel and kernel row it walks the CONV_TX + 2 input values of
 * the row segment once: each value is broadcast and multiplied with the weight vectors of the
 * (up to) three taps it meets, so every load feeds several vector FMAs and no shuffles are
 * needed. No padded copy or im2col of the input is made.
 *
 * Weights and bias are laid out by dfr_conv_upload as [cout_pad / TCO][cin][3][3][TCO] and
 * [cout_pad] (cout_pad = cout rounded up to TCO, zero-filled), so the TCO weights of one tap
 * are one vector load.
 *
 * Work-item (tx, y, k) stores pixels [tx*TX, tx*TX + TX) of row y for channels
 * [k*TCO, k*TCO + TCO). The last tile of a row is shifted left to end at the row end (its
 * overlap with the previous tile is computed but not stored), so every tile takes the fast path
 * with reflection only at the two end values; rows narrower than TX take a slow, gathering path.
 * The global size may be rounded up to the work-group size: out-of-range work-items store nothing.
 *
 * Tunables: CONV_TCO (2, 4, 8 or 16), CONV_TX (1..32), CONV_CB (0 or the input channels per
 * chunk: with chunks, the work-group passes a barrier after each chunk, which on PoCL makes it
 * run the chunk for all its work-items in turn, so they share the chunk's weights in L1).
 */
/* compile-variant: -DCONV_TCO=4 -DCONV_TX=4 */
/* compile-variant: -DCONV_TCO=8 -DCONV_TX=12 -DCONV_CB=16 */
/* compile-variant: -DCONV_TCO=16 -DCONV_TX=12 -DCONV_CB=16 */
/* compile-variant: -DCONV_TCO=2 -DCONV_TX=1 -DCONV_CB=3 */
/* compile-variant: -DDFR_HALF=1 -DCONV_TCO=4 -DCONV_TX=4 */

#ifndef CONV_TCO
#define CONV_TCO 8
#endif
#ifndef CONV_TX
#define CONV_TX 12
#endif
#ifndef CONV_CB
#define CONV_CB 16
#endif
#if CONV_TCO != 2 && CONV_TCO != 4 && CONV_TCO != 8 && CONV_TCO != 16
#error "CONV_TCO must be 2, 4, 8 or 16"
#endif
#if CONV_TX < 1 || CONV_TX > 32
#error "CONV_TX must be 1..32"
#endif

#define CONV_CAT_(a, b) a##b
#define CONV_CAT(a, b) CONV_CAT_(a, b)
#define CONV_VEC CONV_CAT(float, CONV_TCO)
#define CONV_VLOAD CONV_CAT(vload, CONV_TCO)
#define CONV_VSTORE CONV_CAT(vstore, CONV_TCO)

/* Reflected index (-1 -> 1, w -> w-2), clamped into the row for lanes that are never stored. */
inline int conv_refl(int x, int w)
{
    x = x < 0 ? -x : x;
    x = x >= w ? 2 * w - 2 - x : x;
    return clamp(x, 0, w - 1);
}

/* The sum over input channels and taps into acc[0..TX). ELEM(j) is input value j of the row
 * segment `row` (j = 0..TX+1, pixel x0 - 1 + j). A macro rather than a function so that acc stays
 * in registers (a pointer to it would keep it in memory on PoCL). */
#define CONV_SUM(ELEM)                                                                          \
    for (int ci = c0; ci < c1; ci++) {                                                          \
        _Pragma("unroll") for (int ky = 0; ky < 3; ky++) {                                      \
            __global const ACT_T *row = ip + (ky == 0 ? o0 : ky == 1 ? o1 : o2);                \
            __global const ACT_T *rp = row + x0;                                                \
            CONV_VEC w0 = CONV_VLOAD(0, wp + (3 * ky + 0) * CONV_TCO);                          \
            CONV_VEC w1 = CONV_VLOAD(0, wp + (3 * ky + 1) * CONV_TCO);                          \
            CONV_VEC w2 = CONV_VLOAD(0, wp + (3 * ky + 2) * CONV_TCO);                          \
            _Pragma("unroll") for (int j = 0; j < CONV_TX + 2; j++) {                           \
                CONV_VEC v = (CONV_VEC)(ELEM(j));                                               \
                if (j < CONV_TX) acc[j] = fma(v, w0, acc[j]);                                   \
                if (j >= 1 && j <= CONV_TX) acc[j - 1] = fma(v, w1, acc[j - 1]);                \
                if (j >= 2) acc[j - 2] = fma(v, w2, acc[j - 2]);                                \
            }                                                                                   \
        }                                                                                       \
        ip += plane;                                                                            \
        wp += 9 * CONV_TCO;                                                                     \
    }

#define CONV_ELEM_FAST(j)                                                                       \
    ((j) == 0 ? ACT_LD(xl, row) : (j) == CONV_TX + 1 ? ACT_LD(xr, row) : ACT_LD((j) - 1, rp))
#define CONV_ELEM_SLOW(j) (ACT_LD(conv_refl(x0 + (j) - 1, w) - x0, rp))

__kernel void conv3x3_relu(__global const ACT_T *in, __global const float *wt,
                           __global const float *bias, __global ACT_T *out, int cin, int cout,
                           int h, int w)
{
    int xs = (int)get_global_id(0) * CONV_TX; /* first pixel this work-item stores */
    int y = (int)get_global_id(1);
    int co0 = (int)get_global_id(2) * CONV_TCO;
#if CONV_CB > 0
    /* Work-items past the end must still reach the barriers: they skip the work, and their
     * coordinates are clamped so that no address goes out of range. */
    int active = xs < w && y < h && co0 < cout;
    y = min(y, h - 1);
    co0 = min(co0, (cout - 1) / CONV_TCO * CONV_TCO);
#else
    if (xs >= w || y >= h || co0 >= cout) return;
    const int active = 1;
#endif

    /* Row offsets of the three input rows, reflected (h >= 2). */
    int o0 = (y > 0 ? y - 1 : 1) * w;
    int o1 = y * w;
    int o2 = (y < h - 1 ? y + 1 : h - 2) * w;
    size_t plane = (size_t)h * w;
    __global const ACT_T *ip = in;
    __global const float *wp = wt + (size_t)co0 * cin * 9;

    CONV_VEC acc[CONV_TX];
#pragma unroll
    for (int j = 0; j < CONV_TX; j++) acc[j] = (CONV_VEC)(0.0f);

    int fast = w >= CONV_TX;
    int x0 = fast ? min(xs, w - CONV_TX) : 0;
    int xl = x0 > 0 ? x0 - 1 : 1;                     /* left neighbour, reflected */
    int xr = x0 + CONV_TX < w ? x0 + CONV_TX : w - 2; /* right neighbour, reflected */
#if CONV_CB > 0
    /* Input channels in chunks, a barrier after each: the work-group then runs one chunk for all
     * its work-items before the next, so the chunk's weights are reused from the L1 cache. */
    for (int c0 = 0; c0 < cin; c0 += CONV_CB) {
        int c1 = min(c0 + CONV_CB, cin);
#else
    {
        int c0 = 0, c1 = cin;
#endif
        if (active && fast) {
            CONV_SUM(CONV_ELEM_FAST)
        } else if (active) {
            CONV_SUM(CONV_ELEM_SLOW)
        }
#if CONV_CB > 0
        barrier(CLK_LOCAL_MEM_FENCE);
#endif
    }

    /* bias, ReLU (NaN kept, as torch), store the pixels this work-item owns */
    CONV_VEC b = CONV_VLOAD(0, bias + co0);
    __global ACT_T *op = out + (size_t)co0 * plane + o1;
#pragma unroll
    for (int j = 0; j < CONV_TX; j++) {
        float t[CONV_TCO];
        CONV_VEC v = acc[j] + b;
        CONV_VSTORE(v, 0, t);
        int x = x0 + j;
        if (active && x >= xs && x < w) {
#pragma unroll
            for (int k = 0; k < CONV_TCO; k++)
                if (co0 + k < cout) ACT_ST(t[k] < 0.0f ? 0.0f : t[k], (size_t)k * plane + x, op);
        }
    }
}
