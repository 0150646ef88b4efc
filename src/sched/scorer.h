/* The scoring scheduler: scores a list of images on one or more devices ("lanes", one model per
 * device), N images per launch, with the stages of consecutive batches overlapped.
 *
 * - Decoding runs on a pool of threads (io/prefetch.h), ahead of the devices.
 * - Each lane has a worker thread. It takes the next images (a shared counter: a faster device
 *   takes more batches), and per batch enqueues the upload on the runtime's upload queue, the
 *   backbone and autoencoder on its compute queue, and the read-back on its download queue,
 *   chained by events; device buffers are double-buffered, so uploading batch i+1 and reading
 *   back batch i-1 overlap computing batch i. The thread blocks only for a batch's results.
 *   On host-unified devices (integrated GPUs, PoCL) the transfers are map/unmap of
 *   CL_MEM_ALLOC_HOST_PTR buffers instead of copies.
 * - Results come back to a callback on the caller's thread in input order.
 * - A lane whose device fails (an OpenCL error) stops; its images go to the other lanes, and
 *   the failure is reported (dfr_log) naming the device and the images. When no lane is left,
 *   the run fails with that report.
 *
 * A batch's maps are bit-identical to scoring its images one at a time (tests/test_sched.c). */
#ifndef DFRCL_SCHED_SCORER_H
#define DFRCL_SCHED_SCORER_H

#include "model/dfr.h"

#define DFR_SCHED_MAX_BATCH 64
#define DFR_SCHED_AUTO_BATCH 16 /* the most an automatic batch takes */

typedef struct dfr_sched_opts {
    int batch;   /* images per launch; 0 = from each GPU's memory (dfr_model_auto_batch), 1 on
                  * CPU devices */
    int threads; /* decoding threads; 0 = from the cores */
} dfr_sched_opts;

typedef struct dfr_sched_result {
    int index;                /* in the input list */
    int status;               /* DFRCL_OK, or why the image could not be read (not scored) */
    const char *message;      /* the error when status != 0 */
    const dfrcl_image *image; /* the image as scored (size x size) */
    int orig_w, orig_h;       /* the file's own size */
    const float *map;         /* size x size pixel scores */
    float score;              /* the maximum of the map */
    int device;               /* index of the device that scored it; -1 when not scored */
} dfr_sched_result;

/* Returns 0 to go on; anything else stops the run, which returns it (with its message). */
typedef int (*dfr_sched_cb)(void *user, const dfr_sched_result *r);

typedef struct dfr_scorer dfr_scorer;

/* A scorer over k models of the same model file, each on its own runtime (borrowed: they must
 * outlive the scorer; it prepares their batch buffers). */
int dfr_scorer_open(dfr_scorer **s, dfr_model *const *models, int k, const dfr_sched_opts *o);
void dfr_scorer_close(dfr_scorer **s);
/* The batch lane i uses. */
int dfr_scorer_batch(const dfr_scorer *s, int lane);

/* Scores image files (decoded and resized to the model's size). A file that cannot be read is
 * delivered with its status and no map; a device failure with no lane left fails the run.
 * stop (may be NULL): when non-zero, the run stops before the next batch with
 * DFRCL_ERR_INTERRUPTED. */
int dfr_scorer_run(dfr_scorer *s, const char *const *paths, int n, dfr_sched_cb cb, void *user,
                   volatile int *stop);
/* The same for images in memory, each already size x size (1 or 3 channels; borrowed). */
int dfr_scorer_run_images(dfr_scorer *s, const dfrcl_image *imgs, int n, dfr_sched_cb cb,
                          void *user, volatile int *stop);

/* Scores n images in memory (each size x size) on one model in batches of `batch` (0 = from
 * memory): maps [n, size, size] and scores[n] (may be NULL), caller-owned. */
int dfr_sched_score_images(dfr_model *m, const dfrcl_image *imgs, int n, int batch, float *maps,
                           float *scores);

/* Images scored per lane in the last run, and how many images a failed lane handed on (tests,
 * reports). */
int dfr_scorer_lane_images(const dfr_scorer *s, int lane);
int dfr_scorer_lane_failed(const dfr_scorer *s, int lane);

#endif
