/* Evaluating a model on a test set: scores, the field's metrics, per-image outputs and the HTML
 * report (shared by dfrcl eval, run and demo). */
#ifndef DFRCL_EVAL_EVALUATE_H
#define DFRCL_EVAL_EVALUATE_H

#include "eval/metrics.h"
#include "model/dfr.h"
#include "sched/scorer.h"

typedef struct dfr_test_item {
    char *path;      /* the image */
    char *defect;    /* its folder name: "good" or the defect type */
    char *mask_path; /* ground truth, NULL for good images (and defective ones lacking a mask) */
    int label;       /* 1 = defective */
} dfr_test_item;

typedef struct dfr_test_set {
    dfr_test_item *items;
    int count;
    int missing_masks; /* defective images without a mask */
} dfr_test_set;

/* MVTec layout: root/test/<defect>/ (every image), masks root/ground_truth/<defect>/<stem>_mask.png or
 * <stem>.png (any image extension). test_dir/masks_dir override the two folders (custom layout).
 * Warnings (a mask that is there but unreadable) go to rt's logger (NULL: the process's). */
int dfr_test_set_load(const dfr_runtime *rt, const char *root, const char *test_dir,
                      const char *masks_dir, dfr_test_set *out);
void dfr_test_set_free(dfr_test_set *ts);

typedef struct dfr_eval_opts {
    const char *out_dir; /* NULL: metrics only */
    const char *title;   /* report title */
    const char *subtitle;
    const char *settings_json; /* shown in the report */
    int thumb_size;            /* report thumbnails, default 128 */
    int quiet;
    void (*progress)(void *user, int done, int total);
    void *user;
    /* When *stop becomes non-zero (a signal), dfr_evaluate stops before the next image and
     * returns DFRCL_ERR_INTERRUPTED, with no report written; NULL: never. */
    volatile int *stop;
    /* Scoring: the same model on several devices (NULL: the model given alone), batches and
     * decoding threads (src/sched). */
    dfr_model *const *models;
    int n_models;
    dfr_sched_opts sched;
} dfr_eval_opts;

/* Scores every test image, computes the metrics at the model's threshold, and with out_dir
 * writes maps/<defect>/<stem>.npy, overlays/<defect>/<stem>.png and report.html there.
 * Pixel-level metrics are NaN when a defective image has no mask (a warning says so). */
int dfr_evaluate(dfr_model *m, const dfr_test_set *ts, const dfr_eval_opts *o, dfr_metrics *res);

/* JSON object with every metric (NaN as null). Caller frees (free()). */
char *dfr_metrics_json(const dfr_metrics *mt);
#endif
