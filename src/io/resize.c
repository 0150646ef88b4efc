/* Resize with the same arithmetic as Pillow's Image.resize(size, Image.BILINEAR) on 8-bit images
 * (Pillow 9.4, libImaging/Resample.c), so that dfrcl sees the very pixels the Python reference
 * pipeline sees:
 *  - a separable triangle filter; when shrinking, its support is widened by the scale factor
 *    (antialiasing), so every source pixel contributes;
 *  - per output pixel, the weights are computed in double, normalised to sum 1, then turned into
 *    22-bit fixed point (rounded half away from zero);
 *  - the horizontal pass runs first into an 8-bit intermediate image (only the rows the
 *    vertical pass will read), then the vertical pass; each result is
 *    (sum + 2^21) >> 22, clamped to 0..255;
 *  - an axis whose size does not change is not filtered at all.
 * Every channel is filtered on its own. That equals PIL for L, RGB, RGBX and CMYK images; PIL
 * premultiplies alpha for LA and RGBA, which is not done here. The floating-point steps are
 * written in Pillow's order and involve no multiply-add whose fused form could round
 * differently, so the result does not depend on -ffp-contract. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "util/error.h"

#define COEF_BITS 22 /* Pillow's PRECISION_BITS: 32 - 8 - 2 */

/* Per output position of one axis: first source index, tap count, fixed-point taps. */
typedef struct axis_coeffs {
    int ksize;     /* taps stored per output position */
    int *first;    /* [out] */
    int *count;    /* [out] */
    int32_t *taps; /* [out * ksize] */
} axis_coeffs;

static void axis_free(axis_coeffs *a)
{
    free(a->first);
    free(a->count);
    free(a->taps);
    memset(a, 0, sizeof *a);
}

static double triangle(double x)
{
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static int axis_compute(axis_coeffs *a, int in_size, int out_size)
{
    memset(a, 0, sizeof *a);
    /* Pillow passes the box edges as float; in_size is exact in float below 2^24, and
     * dfr_image_check caps sizes at 2^28 pixels, so round through float the same way. */
    double scale = (double)(float)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale; /* the triangle's support is 1 */
    double ksize_d = ceil(support) * 2 + 1;
    if (ksize_d > (double)INT32_MAX / 2)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "resize: scale %d -> %d too large", in_size,
                         out_size);
    int ksize = (int)ksize_d;
    if ((size_t)out_size > SIZE_MAX / sizeof(int32_t) / (size_t)ksize)
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "resize: coefficient table too large");
    a->ksize = ksize;
    a->first = malloc((size_t)out_size * sizeof *a->first);
    a->count = malloc((size_t)out_size * sizeof *a->count);
    a->taps = calloc((size_t)out_size * (size_t)ksize, sizeof *a->taps);
    double *w = malloc((size_t)ksize * sizeof *w);
    if (!a->first || !a->count || !a->taps || !w) {
        free(w);
        axis_free(a);
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "resize: out of memory for coefficients");
    }
    double ss = 1.0 / filterscale;
    for (int o = 0; o < out_size; o++) {
        double center = 0.0 + (o + 0.5) * scale;
        /* Bounds rounded by truncation of x + 0.5, as Pillow does. */
        int lo = (int)(center - support + 0.5);
        if (lo < 0) lo = 0;
        int hi = (int)(center + support + 0.5);
        if (hi > in_size) hi = in_size;
        int n = hi - lo;
        if (n > ksize) n = ksize; /* cannot happen; keeps the table access provably in range */
        if (n < 0) n = 0;
        double sum = 0.0;
        for (int i = 0; i < n; i++) {
            w[i] = triangle((i + lo - center + 0.5) * ss);
            sum += w[i];
        }
        int32_t *t = a->taps + (size_t)o * (size_t)ksize;
        for (int i = 0; i < n; i++) {
            double v = sum != 0.0 ? w[i] / sum : w[i];
            t[i] = v < 0 ? (int32_t)(-0.5 + v * (1 << COEF_BITS))
                         : (int32_t)(0.5 + v * (1 << COEF_BITS));
        }
        a->first[o] = lo;
        a->count[o] = n;
    }
    free(w);
    return DFRCL_OK;
}

static inline uint8_t fixed_to_u8(int64_t acc)
{
    acc >>= COEF_BITS;
    return (uint8_t)(acc < 0 ? 0 : acc > 255 ? 255 : acc);
}

/* rows x in_w x ch -> rows x out_w x ch. Accumulates in 64 bits: identical to Pillow's 32-bit
 * sums wherever those do not overflow, and safe for extreme shrink factors. */
static void pass_horizontal(uint8_t *dst, const uint8_t *src, int rows, int in_w, int out_w,
                            int ch, const axis_coeffs *a)
{
    size_t in_stride = (size_t)in_w * (size_t)ch, out_stride = (size_t)out_w * (size_t)ch;
    for (int y = 0; y < rows; y++) {
        const uint8_t *s = src + (size_t)y * in_stride;
        uint8_t *d = dst + (size_t)y * out_stride;
        for (int o = 0; o < out_w; o++) {
            const int32_t *t = a->taps + (size_t)o * (size_t)a->ksize;
            const uint8_t *p = s + (size_t)a->first[o] * (size_t)ch;
            int n = a->count[o];
            for (int c = 0; c < ch; c++) {
                int64_t acc = 1 << (COEF_BITS - 1);
                for (int i = 0; i < n; i++) acc += (int64_t)p[(size_t)i * (size_t)ch + (size_t)c] * t[i];
                d[(size_t)o * (size_t)ch + (size_t)c] = fixed_to_u8(acc);
            }
        }
    }
}

/* Filters columns: out row o mixes source rows first[o] - row0 .. + count[o]. A row of
 * interleaved samples is one flat run of row_len values, every one filtered alike. */
static void pass_vertical(uint8_t *dst, const uint8_t *src, int row0, int out_h, size_t row_len,
                          const axis_coeffs *a)
{
    for (int o = 0; o < out_h; o++) {
        const int32_t *t = a->taps + (size_t)o * (size_t)a->ksize;
        const uint8_t *s = src + (size_t)(a->first[o] - row0) * row_len;
        int n = a->count[o];
        uint8_t *d = dst + (size_t)o * row_len;
        for (size_t x = 0; x < row_len; x++) {
            int64_t acc = 1 << (COEF_BITS - 1);
            for (int i = 0; i < n; i++) acc += (int64_t)s[(size_t)i * row_len + x] * t[i];
            d[x] = fixed_to_u8(acc);
        }
    }
}

DFRCL_API int dfrcl_image_resize(dfrcl_image *dst, const dfrcl_image *src, int width, int height)
{
    if (!dst) return dfr_error(DFRCL_ERR_INVALID_ARG, "dfrcl_image_resize: dst is NULL");
    uint8_t *out = NULL, *tmp = NULL;
    axis_coeffs ax = {0}, ay = {0};
    int rc = dfr_image_check(src, "dfrcl_image_resize: src");
    if (rc) goto fail;
    if (width < 1 || height < 1 || (uint64_t)width * (uint64_t)height > DFR_IMAGE_MAX_PIXELS) {
        rc = dfr_error(DFRCL_ERR_INVALID_ARG,
                       "dfrcl_image_resize: bad target size width x height = %dx%d", width, height);
        goto fail;
    }
    const int in_w = src->width, in_h = src->height, ch = src->channels;
    const size_t out_row = (size_t)width * (size_t)ch;
    out = malloc(out_row * (size_t)height);
    if (!out) {
        rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "resize: out of memory for %dx%d image", width,
                       height);
        goto fail;
    }
    const int need_h = width != in_w, need_v = height != in_h;
    if (!need_h && !need_v) {
        memcpy(out, src->pixels, out_row * (size_t)height);
    } else if (!need_v) {
        if ((rc = axis_compute(&ax, in_w, width))) goto fail;
        pass_horizontal(out, src->pixels, in_h, in_w, width, ch, &ax);
    } else if (!need_h) {
        if ((rc = axis_compute(&ay, in_h, height))) goto fail;
        pass_vertical(out, src->pixels, 0, height, out_row, &ay);
    } else {
        if ((rc = axis_compute(&ay, in_h, height))) goto fail;
        if ((rc = axis_compute(&ax, in_w, width))) goto fail;
        /* Only the source rows the vertical pass reads go through the horizontal pass. */
        const int row0 = ay.first[0];
        const int rows = ay.first[height - 1] + ay.count[height - 1] - row0;
        tmp = malloc((size_t)rows * out_row);
        if (!tmp) {
            rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "resize: out of memory");
            goto fail;
        }
        pass_horizontal(tmp, src->pixels + (size_t)row0 * (size_t)in_w * (size_t)ch, rows, in_w,
                        width, ch, &ax);
        pass_vertical(out, tmp, row0, height, out_row, &ay);
    }
    free(tmp);
    axis_free(&ax);
    axis_free(&ay);
    if (dst == src) free(dst->pixels); /* in-place resize: the old pixels are ours to drop */
    dst->width = width;
    dst->height = height;
    dst->channels = ch;
    dst->pixels = out;
    return DFRCL_OK;
fail:
    free(out);
    free(tmp);
    axis_free(&ax);
    axis_free(&ay);
    if (dst != src) memset(dst, 0, sizeof *dst);
    return rc;
}
