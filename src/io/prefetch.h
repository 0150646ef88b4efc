/* Decoding ahead (internal): worker threads decode and resizes the next images while the
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
/* The same on a pool of `threads` decoding threads (0 = one per core, at most 16); images still
 * come back in order. depth >= threads keeps them all busy. */
int dfr_prefetch_open_pool(dfr_prefetch **pf, const char *const *paths, int n, int size, int depth,
                           int threads);
/* Decoding threads for `threads` (0 = from the cores: one per core, at most 16). */
int dfr_prefetch_threads(int threads);

/* The next image, in order, into *img (the caller frees it); orig_w/orig_h (may be NULL) receive
 * the file's own size. Returns that image's decode status with its error message set on the
 * calling thread, as a direct decode would; DFRCL_ERR_INVALID_ARG past the last image. */
int dfr_prefetch_next(dfr_prefetch *pf, dfrcl_image *img, int *orig_w, int *orig_h);

/* Stops the worker (at any point, images not taken are freed) and frees everything. */
void dfr_prefetch_close(dfr_prefetch **pf);

#endif
