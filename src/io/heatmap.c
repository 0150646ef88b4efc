#include "io/heatmap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "util/error.h"

/* Control points at t = i/8, chosen by hand to follow an inferno-like path with relative
 * luminance rising at every step (CIE L* steps of 8 to 15). */
static const float cmap_points[9][3] = {
    {0, 0, 4},       {30, 11, 70},   {84, 15, 108},  {136, 33, 106}, {186, 54, 85},
    {227, 89, 51},   {249, 140, 12}, {248, 201, 52}, {252, 254, 164},
};
#define CMAP_SEGMENTS 8

void dfr_colormap(float t, float rgb[3])
{
    if (!(t > 0.0f)) t = 0.0f; /* NaN too */
    if (t > 1.0f) t = 1.0f;
    float x = t * CMAP_SEGMENTS;
    int i = (int)x;
    if (i > CMAP_SEGMENTS - 1) i = CMAP_SEGMENTS - 1;
    float f = x - (float)i;
    for (int c = 0; c < 3; c++)
        rgb[c] = cmap_points[i][c] + f * (cmap_points[i + 1][c] - cmap_points[i][c]);
}

static inline uint8_t round_u8(float v)
{
    if (!(v > 0.0f)) return 0;
    if (v >= 254.5f) return 255;
    return (uint8_t)(v + 0.5f);
}

static int check_score_size(const char *what, const float *score, int w, int h)
{
    if (!score) return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: score map is NULL", what);
    if (w < 1 || h < 1 || (uint64_t)w * (uint64_t)h > DFR_IMAGE_MAX_PIXELS)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: bad score map size %dx%d", what, w, h);
    return DFRCL_OK;
}

int dfr_heatmap_overlay(const dfrcl_image *base, const float *score, int sw, int sh, float lo,
                        float hi, float alpha, dfrcl_image *out)
{
    if (!out) return dfr_error(DFRCL_ERR_INVALID_ARG, "heatmap: out is NULL");
    if (out == base) return dfr_error(DFRCL_ERR_INVALID_ARG, "heatmap: out must not be base");
    memset(out, 0, sizeof *out);
    int rc = dfr_image_check(base, "heatmap base image");
    if (rc) return rc;
    if (base->channels != 1 && base->channels != 3)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "heatmap: base image has %d channels (1 or 3)",
                         base->channels);
    if ((rc = check_score_size("heatmap", score, sw, sh))) return rc;
    if (!isfinite(lo) || !isfinite(hi) || lo > hi)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "heatmap: bad score range [%g, %g]", (double)lo,
                         (double)hi);
    if (!(alpha >= 0.0f && alpha <= 1.0f))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "heatmap: alpha %g is not in [0, 1]",
                         (double)alpha);

    /* The picture follows the score map's size: that is the resolution the scores mean. */
    dfrcl_image resized = {0};
    const dfrcl_image *b = base;
    if (base->width != sw || base->height != sh) {
        if ((rc = dfrcl_image_resize(&resized, base, sw, sh))) return rc;
        b = &resized;
    }
    const size_t n = (size_t)sw * (size_t)sh;
    uint8_t *px = malloc(n * 3);
    if (!px) {
        dfrcl_image_free(&resized);
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "heatmap: out of memory for %dx%d image", sw, sh);
    }
    /* In double so that a huge range (hi - lo overflowing float) still scales correctly. */
    const double range = (double)hi - (double)lo;
    const float keep = 1.0f - alpha;
    const int bc = b->channels;
    for (size_t i = 0; i < n; i++) {
        float s = score[i], t;
        if (isnan(s)) t = 0.0f;
        else if (range > 0) t = (float)(((double)s - lo) / range); /* clipped by dfr_colormap */
        else t = s > lo ? 1.0f : 0.0f;
        float c[3];
        dfr_colormap(t, c);
        const uint8_t *src = b->pixels + i * (size_t)bc;
        for (int k = 0; k < 3; k++) {
            float v = bc == 3 ? src[k] : src[0];
            px[3 * i + (size_t)k] = round_u8(keep * v + alpha * c[k]);
        }
    }
    dfrcl_image_free(&resized);
    out->width = sw;
    out->height = sh;
    out->channels = 3;
    out->pixels = px;
    return DFRCL_OK;
}

int dfr_mask_image(const float *score, int w, int h, float threshold, dfrcl_image *out)
{
    if (!out) return dfr_error(DFRCL_ERR_INVALID_ARG, "mask: out is NULL");
    memset(out, 0, sizeof *out);
    int rc = check_score_size("mask", score, w, h);
    if (rc) return rc;
    if (isnan(threshold)) return dfr_error(DFRCL_ERR_INVALID_ARG, "mask: threshold is NaN");
    const size_t n = (size_t)w * (size_t)h;
    uint8_t *px = malloc(n);
    if (!px) return dfr_error(DFRCL_ERR_HOST_MEMORY, "mask: out of memory for %dx%d image", w, h);
    for (size_t i = 0; i < n; i++) px[i] = score[i] > threshold ? 255 : 0;
    out->width = w;
    out->height = h;
    out->channels = 1;
    out->pixels = px;
    return DFRCL_OK;
}

int dfr_outline_overlay(dfrcl_image *img, const dfrcl_image *mask, const uint8_t *rgb)
{
    static const uint8_t default_rgb[3] = DFR_OUTLINE_RGB;
    int rc = dfr_image_check(img, "outline image");
    if (rc) return rc;
    if ((rc = dfr_image_check(mask, "outline mask"))) return rc;
    if (img->channels != 3 || mask->channels != 1)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "outline: need a 3-channel image and a 1-channel mask, got %d and %d",
                         img->channels, mask->channels);
    if (img->width != mask->width || img->height != mask->height)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "outline: image %dx%d and mask %dx%d differ",
                         img->width, img->height, mask->width, mask->height);
    if (!rgb) rgb = default_rgb;
    const int w = mask->width, h = mask->height;
    const uint8_t *m = mask->pixels;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            if (!m[(size_t)y * w + x]) continue;
            /* Outside the image counts as unset, so regions touching the border stay closed. */
            int edge = x == 0 || y == 0 || x == w - 1 || y == h - 1;
            for (int dy = -1; dy <= 1 && !edge; dy++)
                for (int dx = -1; dx <= 1 && !edge; dx++)
                    if (!m[(size_t)(y + dy) * w + (x + dx)]) edge = 1;
            if (edge) memcpy(img->pixels + ((size_t)y * w + x) * 3, rgb, 3);
        }
    }
    return DFRCL_OK;
}

int dfr_anomaly_overlay(const dfrcl_image *base, const float *score, int w, int h, float threshold,
                        dfrcl_image *overlay, dfrcl_image *mask)
{
    dfrcl_image m = {0};
    int rc = dfr_heatmap_overlay(base, score, w, h, 0.0f, 2.0f * threshold, 0.5f, overlay);
    if (!rc) rc = dfr_mask_image(score, w, h, threshold, &m);
    if (!rc) rc = dfr_outline_overlay(overlay, &m, NULL);
    if (rc) dfrcl_image_free(overlay);
    if (!rc && mask) *mask = m;
    else dfrcl_image_free(&m);
    return rc;
}
