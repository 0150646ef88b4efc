/*
 * Pictures of anomaly score maps (internal): a colour-mapped heat map blended over the input
 * image, a binary defect mask, and the mask's outline drawn over a picture. Written to PNG by
 * the caller with dfr_png_write().
 *
 * The colormap is an inferno-like gradient (near black -> purple -> red -> orange -> pale
 * yellow) given by 9 evenly spaced control points and interpolated linearly in sRGB. Its relative
 * luminance (linear light) rises strictly from one end to the other, so the heat map still reads
 * in greyscale print and for colour-blind readers; low scores darken the picture and defects
 * glow. Score values are mapped linearly from [lo, hi] to [0, 1] and clipped; NaN counts as lo,
 * +inf as hi, -inf as lo.
 */
#ifndef DFRCL_IO_HEATMAP_H
#define DFRCL_IO_HEATMAP_H

#include <stdint.h>

#include "dfrcl.h"

/* The colour of t in [0, 1] (clipped; NaN -> 0) as R, G, B floats in [0, 255]. */
void dfr_colormap(float t, float rgb[3]);

/* Heat map of `score` (sw x sh floats, row-major) blended over `base` (1 or 3 channels; grey is
 * expanded to RGB): out = (1 - alpha) * base + alpha * colormap((s - lo) / (hi - lo)), rounded to
 * nearest. When base is not sw x sh it is first resized to sw x sh (dfrcl_image_resize), so the
 * result is always sw x sh RGB. lo and hi must be finite with lo <= hi; when lo == hi a score
 * maps to 1 if it is above lo, else 0. alpha in [0, 1]. *out receives a malloc'd image (free with
 * dfrcl_image_free) and must not be base; on failure it is zeroed. */
int dfr_heatmap_overlay(const dfrcl_image *base, const float *score, int sw, int sh, float lo,
                        float hi, float alpha, dfrcl_image *out);

/* Binary mask, 1 channel, w x h: 255 where score > threshold (strictly), else 0 (NaN -> 0).
 * threshold must not be NaN. *out receives a malloc'd image; on failure it is zeroed. */
int dfr_mask_image(const float *score, int w, int h, float threshold, dfrcl_image *out);

/* Default outline colour: cyan, which the inferno-like colormap never produces. */
#define DFR_OUTLINE_RGB {0, 255, 255}

/* Paints, in place on the 3-channel `img`, every pixel of `mask` (1 channel, same size, nonzero =
 * set) that is set and has an unset 8-neighbour or lies on the image border: a closed outline,
 * one pixel wide, of each defect region. rgb NULL means DFR_OUTLINE_RGB. */
int dfr_outline_overlay(dfrcl_image *img, const dfrcl_image *mask, const uint8_t *rgb);

/* dfrcl's anomaly picture: the heat map of `score` (w x h) over `base` on one fixed scale,
 * 0 .. twice the threshold (so colours compare across images), half transparent, with the outline
 * of the pixels above the threshold. *overlay receives RGB; *mask (may be NULL) the 0/255 mask. */
int dfr_anomaly_overlay(const dfrcl_image *base, const float *score, int w, int h, float threshold,
                        dfrcl_image *overlay, dfrcl_image *mask);

#endif
