/*
 * The evaluation report (internal): one self-contained HTML file, DIR/report.html of
 * `dfrcl eval --out DIR`. It needs no network and no JavaScript: inline CSS, charts as inline
 * SVG, thumbnails as data:image/png;base64 URIs. The gallery can be filtered by verdict with
 * CSS-only radio buttons.
 *
 * Page order: title and summary; metrics table (4 decimals, NaN shown as "n/a"); one SVG chart
 * per curve; a strip plot of image scores against the threshold; the gallery, worst first:
 *   1. false positives (normal images predicted anomalous), highest score first,
 *   2. false negatives (defective images predicted normal), lowest score first,
 *   3. true positives (defective, predicted anomalous), highest score first,
 *   4. true negatives (normal, predicted normal), highest score first;
 * ties keep the caller's order and NaN scores come last in their group. Each group has a
 * heading (the FP and FN ones even when empty). Each card shows the input, overlay and
 * ground-truth thumbnails side by side, the name, the defect folder, the score against the
 * threshold and the verdict (TP/TN/FP/FN, colour and text).
 * Thumbnails are embedded as PNG as given: at 128 px, about 25 KB each for photographs, so
 * ~10 MB for a 150-image test set; pass small thumbnails.
 * Settings (JSON text) are shown verbatim in a <details> block. Every caller string is
 * HTML-escaped; C0 control characters become U+FFFD.
 *
 * The structs only borrow: nothing is freed or kept by the writer.
 */
#ifndef DFRCL_EVAL_REPORT_H
#define DFRCL_EVAL_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "dfrcl.h"

/* One curve, drawn as its own chart. Points are joined in the given order; non-finite points
 * break the line; the line is clipped to the axis ranges. Long curves (pixel ROC) are thinned
 * to points at least half a chart pixel apart, so the file stays small. */
typedef struct dfr_report_curve {
    const char *label;   /* chart title, e.g. "Pixel ROC" */
    const double *x, *y; /* n points each; may be NULL when n == 0 */
    int n;
    const char *note;    /* shown after the title, e.g. "AUROC 0.9731"; NULL for none */
    const char *x_label; /* e.g. "False positive rate"; NULL -> "x" */
    const char *y_label; /* e.g. "True positive rate"; NULL -> "y" */
    /* Axis ranges. A range with max <= min (or a non-finite end), e.g. all zero, means 0..1.
     * ROC: 0..1 x 0..1; PRO: x 0..0.3, y 0..1. */
    double x_min, x_max, y_min, y_max;
    int diagonal; /* nonzero: draw the chance line y = x (ROC curves) */
} dfr_report_curve;

typedef struct dfr_report_metric {
    const char *name;
    double value;     /* shown with 4 decimals; NaN (or inf) -> "n/a" */
    const char *note; /* e.g. "FPR <= 0.3"; NULL for none */
} dfr_report_metric;

typedef struct dfr_report_item {
    const char *name;    /* "<defect>/<stem>" */
    const char *defect;  /* folder name, "good" for normal images */
    int label;           /* 1 = defective */
    double score;        /* image score (max of the map) */
    int predicted;       /* score > threshold */
    dfrcl_image image;   /* thumbnail of the input (1 or 3 channels), e.g. 128 px */
    dfrcl_image overlay; /* heat map overlay thumbnail (RGB) */
    dfrcl_image mask;    /* ground-truth thumbnail (1 channel 0/255), width 0 when none */
} dfr_report_item;
/* A thumbnail with width 0 is shown as a labelled empty box ("no ground truth" for the mask).
 * Otherwise it must pass dfr_image_check with 1 to 4 channels, else DFRCL_ERR_INVALID_ARG. */

typedef struct dfr_report {
    const char *title;    /* e.g. "dfrcl eval: hazelnut_toy" */
    const char *subtitle; /* model, weights, device, date; NULL for none */
    const dfr_report_metric *metrics;
    int n_metrics;
    const dfr_report_curve *curves;
    int n_curves;
    const dfr_report_item *items;
    int n_items;
    double threshold;
    const char *settings_json; /* NULL for none */
} dfr_report;

/* Writes the report atomically (temp file + rename): a failure leaves no file behind and any
 * previous `path` untouched. DFRCL_ERR_INVALID_ARG for bad arguments (negative counts, NULL
 * arrays with a nonzero count, malformed thumbnails; the message names the item),
 * DFRCL_ERR_IO for write failures, DFRCL_ERR_HOST_MEMORY. */
int dfr_report_write_html(const char *path, const dfr_report *r);

/* The campaign page of `dfrcl run` (DIR/summary.html): one row per category with ours beside the
 * published figures, the difference coloured, and a link to the category's own report. */
typedef struct dfr_campaign_row {
    const char *name;
    const char *href;    /* relative link to its report.html; NULL for none */
    const char *status;  /* e.g. "ok", "failed", "done before" */
    double ours[4];      /* pixel AUROC, image AUROC, AUPRO, F1 at threshold; NaN = n/a */
    double paper[2];     /* published pixel AUROC and AUPRO; NaN = not published */
    double seconds;      /* NaN for none */
    int is_mean;         /* a mean row: drawn bold, after a rule */
} dfr_campaign_row;

/* Writes the page atomically. `notes` (n_notes lines, may be NULL when 0) go under the table. */
int dfr_report_write_campaign_html(const char *path, const char *title, const char *subtitle,
                                   const dfr_campaign_row *rows, int n, const char *const *notes,
                                   int n_notes);

/* Standard base64 (RFC 4648, '+' '/', '=' padding) of n bytes into out, which must hold
 * dfr_base64_len(n) + 1 bytes; NUL-terminated. Returns the number of characters written. */
size_t dfr_base64_len(size_t n); /* 4 * ceil(n / 3); SIZE_MAX when that overflows */
size_t dfr_base64_encode(char *out, const uint8_t *in, size_t n);

#endif
