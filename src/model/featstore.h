/* Where the training features live (issue: training in bounded memory). Training reads every
 * image's regional feature [C, P] once per epoch; at 8 layers that is 23 MB an image in fp32, so
 * a few hundred images outgrow an integrated GPU or a small host. The store keeps them in one of:
 *
 *   device  the device's memory (in chunks no larger than its biggest allocation)
 *   host    host memory, uploaded image by image
 *   disk    an unlinked temporary file (nothing is left behind, even on a crash), streamed in
 *           batches, the next batch read on a worker thread while the device trains on this one
 *
 * as fp32 (exact) or fp16 (half the bytes; packed on the device, rounding to nearest even). A
 * memory budget picks the first of device fp32, host fp32, device fp16, host fp16,
 * disk fp16 that fits; every choice is logged. Whatever the place, a gather returns the same
 * floats: an fp32 store gives bit-identical training. */
#ifndef DFRCL_MODEL_FEATSTORE_H
#define DFRCL_MODEL_FEATSTORE_H

#include <stddef.h>

#include "cl/runtime.h"

typedef enum dfr_fs_place {
    DFR_FS_AUTO = 0,
    DFR_FS_DEVICE,
    DFR_FS_HOST,
    DFR_FS_DISK,
} dfr_fs_place;

typedef struct dfr_fs_opts {
    dfr_fs_place place; /* DFR_FS_AUTO: by the budget */
    int precision;      /* 0 auto, 32 or 16 */
    double budget;      /* bytes the store (with its staging buffers) may use; <= 0: no limit */
    const char *dir;    /* folder of the disk store; NULL: $TMPDIR, else /var/tmp */
    int batch;          /* most images one gather takes (sizes the staging buffers) */
} dfr_fs_opts;

typedef struct dfr_fs dfr_fs;

/* Bytes the store needs at `place` and `precision` (16 or 32) for n images of channels x npos
 * floats, gathered `batch` at a time: the store itself where it is in memory, plus its staging
 * buffers. */
double dfr_fs_need(dfr_fs_place place, int precision, int n, int channels, int npos, int batch);

/* Opens a store for n images of channels x npos. Fails with DFRCL_ERR_HOST_MEMORY when no place
 * fits the budget (the message gives the smallest budget that works), or with DFRCL_ERR_IO when
 * the disk store's folder is unwritable or lacks the space (checked now, before any training). */
int dfr_fs_open(dfr_fs **fs, dfr_runtime *rt, int n, int channels, int npos, const dfr_fs_opts *o);
void dfr_fs_close(dfr_fs **fs);

/* Stores image i from slot `slot` of the device buffer src ([.., channels, npos] fp32). */
int dfr_fs_put(dfr_fs *fs, int i, cl_mem src, int slot);

/* Gathers images idx[0..count) into dst as [count, channels, k] fp32: every position when pos is
 * NULL (k = npos), else positions pos[0..k) of each image (pos is a device buffer of k ints).
 * count <= the batch the store was opened for. Enqueued on the runtime's queue. */
int dfr_fs_gather(dfr_fs *fs, const int *idx, int count, cl_mem pos, int k, cl_mem dst);

/* Says which images the next gather will take, so that a disk store reads them ahead. */
void dfr_fs_hint(dfr_fs *fs, const int *idx, int count);

/* The place and precision chosen, the positions per image, and a place's name. */
dfr_fs_place dfr_fs_where(const dfr_fs *fs);
int dfr_fs_precision(const dfr_fs *fs);
int dfr_fs_npos(const dfr_fs *fs);
const char *dfr_fs_place_name(dfr_fs_place p);

#endif
