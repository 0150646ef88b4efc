/* The published DFR figures on MVTec AD, to print beside a campaign's own. */
#ifndef DFRCL_EVAL_PUBLISHED_H
#define DFRCL_EVAL_PUBLISHED_H

typedef struct dfr_published {
    const char *category;
    double pixel_auroc; /* the paper's pixel-level ROC AUC */
    double aupro;       /* the paper's PRO AUC up to 30% FPR, normalised (our "aupro") */
} dfr_published;

/* The setting of the published figures: 256 px images, 700 epochs. */
#define DFR_PUBLISHED_SIZE 256
#define DFR_PUBLISHED_EPOCHS 700

/* The paper reports two backbone depths: relu1_1..relu4_4 (12 layers) and relu1_1..relu5_4 (16).
 * Returns the depth whose figures a run with `layers` layers is compared with: 16 for 16, else 12
 * (the method's default; the caller says when the run's depth differs). */
int dfr_published_layers(int layers);

/* The figures for an MVTec AD category (case-insensitive name) at that depth, or NULL for a
 * category the paper does not report. */
const dfr_published *dfr_published_find(const char *category, int layers);

/* Where the figures come from, in one line. */
const char *dfr_published_source(void);

#endif
