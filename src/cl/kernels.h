/* The OpenCL C sources embedded at build time (the .cl files in kernels/). */
#ifndef DFRCL_CL_KERNELS_H
#define DFRCL_CL_KERNELS_H
#include <stddef.h>

typedef struct dfr_kernel_source {
    const char *name; /* file name, e.g. "conv.cl" */
    const char *text; /* NUL-terminated */
    size_t len;
} dfr_kernel_source;

/* Terminated by an entry with name == NULL. */
extern const dfr_kernel_source dfr_kernel_sources[];
#endif
