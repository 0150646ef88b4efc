/* The check every loader and saver makes before trusting floats: is everything finite? */
#ifndef DFRCL_UTIL_FINITE_H
#define DFRCL_UTIL_FINITE_H
#include <math.h>
#include <stddef.h>

/* Index of the first NaN or infinity in x[0..n-1]; n when all are finite. */
static inline size_t dfr_first_nonfinite(const float *x, size_t n)
{
    size_t i = 0;
    while (i < n && isfinite(x[i])) i++;
    return i;
}
#endif
