/*
 * Anomaly-segmentation metrics as the field reports them (as DFR and anomalib report them), computed exactly.
 *
 * - Pixel AUROC: ROC AUC over all pixels of all images; a pixel is positive where its mask is
 *   nonzero. Exact: pixels are sorted by score, tied scores form one ROC step (the diagonal
 *   segment scikit-learn's roc_auc_score gives them), so the value is the Mann-Whitney statistic
 *   with ties counting 1/2, computed in integers and divided once.
 * - Image AUROC: the same over image scores, the maximum of each map, against the images' labels.
 * - AUPRO: the per-region overlap (PRO) is the mean over all 8-connected ground-truth regions of
 *   all images of the fraction of the region's pixels at or above a threshold; every distinct
 *   score is a threshold. The (pixel FPR, PRO) polyline from (0, 0) is integrated with the
 *   trapezoid rule from FPR 0 to DFR_AUPRO_FPR_LIMIT (the last segment is cut there by linear
 *   interpolation) and divided by DFR_AUPRO_FPR_LIMIT (anomalib's convention).
 * - Best pixel F1 over all thresholds (every distinct score). A pixel is predicted defective when
 *   score >= threshold. Among thresholds with the same F1 the lowest is reported, as an argmax
 *   over scikit-learn's ascending precision_recall_curve thresholds would.
 * - At a given threshold, the model's: pixel precision TP/(TP+FP), recall TP/(TP+FN),
 *   F1 = 2TP/(2TP+FP+FN) and IoU = TP/(TP+FP+FN), where score > threshold is defective (strictly,
 *   as dfrcl infer draws its masks and verdicts; the best-F1 search above uses >=).
 *
 * Undefined values are NaN (callers print "n/a"): both AUROCs and the best F1 need at least one
 * positive and one negative (pixel or image); AUPRO needs at least one normal pixel and one
 * region; precision needs a pixel predicted defective, recall a defective pixel, F1 and IoU a
 * pixel that is defective or predicted so.
 *
 * Scores are float32 and compared as float32 (as scikit-learn does on float32 input); -0.0 and
 * +0.0 are the same score; +-infinity are allowed; a NaN score is an error (DFRCL_ERR_INVALID_ARG).
 *
 * Memory: the accumulator keeps no maps. Each pixel is kept as one 32-bit sort key, ordered as
 * its score (normal pixels from the front of one array, defective ones from its back), and each
 * defective pixel also keeps its 32-bit region id; per image 5 bytes, per region 4. The sort at
 * the end is an in-place radix sort (no second buffer). Peak: 4 bytes per pixel + 4 bytes per
 * defective pixel (8 while its array doubles) + 4 per region + 8 bytes per pixel of ONE image
 * (labelling scratch) + the curves (<= DFR_CURVE_MAX_POINTS points each). A whole MVTec category
 * (33M pixels, a few % defective) peaks near 140 MB. The key array is reserved for max_images
 * images at creation; pages are committed as images arrive.
 * Limits: fewer than 2^32 pixels in all (max_images * width * height), checked at creation.
 */
#ifndef DFRCL_EVAL_METRICS_H
#define DFRCL_EVAL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "dfrcl.h"

/* Upper end of the FPR range AUPRO integrates over. */
#define DFR_AUPRO_FPR_LIMIT 0.3
/* Curves have at most this many points: every point when there are that few, else a subset of
 * the exact points chosen so that no two kept neighbours are closer than (2 / (MAX - 2)) in
 * |dx| + |dy| (x of the PRO curve scaled by 1 / DFR_AUPRO_FPR_LIMIT). First and last kept. */
#define DFR_CURVE_MAX_POINTS 200

/* The metrics are the public struct (include/dfrcl.h): one definition. best_f1_threshold is a
 * score value (a float32); threshold the one given to finish, at which precision, recall, F1 and
 * IoU are; missing_masks is set by the evaluation (dfr_evaluate), 0 here. */
typedef dfrcl_metrics dfr_metrics;

/* Points (x[i], y[i]), i < n, in order of decreasing threshold: x and y never decrease.
 * Empty (NULL, NULL, 0) when the curve is undefined. */
typedef struct dfr_curve {
    double *x, *y;
    int n;
} dfr_curve;
/* Frees the arrays and empties the curve; NULL is fine. */
void dfr_curve_free(dfr_curve *c);

/* ROC AUC of scores[i] against labels[i] (nonzero = positive), ties as scikit-learn handles them.
 * *auroc is NaN when there is no positive or no negative (or n == 0): that is not an error.
 * Errors: a NaN score, NULL pointers with n > 0, n >= 2^32 (INVALID_ARG), malloc (HOST_MEMORY).
 * Extra memory: 4 bytes per element. */
int dfr_auroc(const float *scores, const uint8_t *labels, size_t n, double *auroc);

/* Accumulator: add the test images one by one, then finish. */
typedef struct dfr_eval_acc dfr_eval_acc;

/* width, height >= 1; max_images >= 1 is the most images add may take. */
int dfr_eval_acc_new(dfr_eval_acc **a, int width, int height, int max_images);

/* Adds one image: its score map (width*height float32, row-major) and its ground-truth mask
 * (width*height bytes, nonzero = defective; NULL = all normal, as for good images). label is
 * 1 when the image is defective, else 0. A defective image may have an all-normal or NULL mask
 * (a defect lost when the mask was resized); a good image (label 0) with defective pixels is an
 * error. The mask's 8-connected regions are labelled here. On error (NaN score, inconsistent
 * label, too many images, malloc) nothing is added and the accumulator stays usable. */
int dfr_eval_acc_add(dfr_eval_acc *a, const float *score_map, const uint8_t *mask, int label);

/* Computes all metrics (threshold: the model's, for precision/recall/F1/IoU; not NaN).
 * Each curve pointer may be NULL; otherwise it receives a curve the caller frees with
 * dfr_curve_free: pixel_roc and image_roc are (FPR, TPR) from (0, 0) to (1, 1); pro is
 * (pixel FPR, PRO) from (0, 0) to (DFR_AUPRO_FPR_LIMIT, PRO there). On error the curves are empty.
 * finish sorts the stored keys in place but keeps them: it may be called again, and more images
 * may be added after it. */
int dfr_eval_acc_finish(dfr_eval_acc *a, double threshold, dfr_metrics *m, dfr_curve *pixel_roc,
                        dfr_curve *image_roc, dfr_curve *pro);

/* Bytes the accumulator holds now (the key array counted whole, though only the pages used are
 * touched). For tests and reports. */
size_t dfr_eval_acc_bytes(const dfr_eval_acc *a);

/* Frees and sets *a to NULL; NULL or *a == NULL is fine. */
void dfr_eval_acc_free(dfr_eval_acc **a);

#endif
