/* Decoding ahead (internal): a worker thread decodes and resizes the next images while the
 * caller's device works on the current one, so the host's JPEG/PNG decoding (milliseconds per
 * image, more than a GPU's whole pipeline) stays off the critical path. Images come back in the
 * order of `paths`, each with its own status. */
#ifndef DFRCL_IO_PREFETCH_H
#define DFRCL_IO_PREFETCH_H

#include "dfrcl.h"

typedef struct dfr_prefetch dfr_prefetch;

/* Starts decoding paths[0..n-1] (borrowed: they must outlive the prefetcher), each resized to
 * size x size (size 0: as decoded), at most `depth` images ahead of the caller (>= 1). */
int dfr_prefetch_open(dfr_prefetch **pf, const char *const *paths, int n, int size, int depth);

/* The next image, in order, into *img (the caller frees it); orig_w/orig_h (may be NULL) receive
 * the file's own size. Returns that image's decode status with its error message set on the
 * calling thread, as a direct decode would; DFRCL_ERR_INVALID_ARG past the last image. */
int dfr_prefetch_next(dfr_prefetch *pf, dfrcl_image *img, int *orig_w, int *orig_h);

/* Stops the worker (at any point, images not taken are freed) and frees everything. */
void dfr_prefetch_close(dfr_prefetch **pf);

#endif
