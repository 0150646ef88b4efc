/* The public API's handles (include/dfrcl.h), for the library's own code that works on them
 * (src/api.c, the evaluation and campaign entry points). Not installed.
 *
 * A context spans k devices ("lanes"); each lane has its own runtime, backbone and model, all
 * the same. Lane 0 is the one single-device code uses (training, dfrcl_model_score,
 * dfrcl_features); scoring many images spreads them over every lane (src/sched). */
#ifndef DFRCL_API_INTERNAL_H
#define DFRCL_API_INTERNAL_H

#include "cl/runtime.h"
#include "dfrcl.h"
#include "model/dfr.h"
#include "model/vgg19.h"

/* The most devices one context spans (more in a list: the first ones, with a warning). */
#define DFRCL_MAX_DEVICES 16

struct dfrcl_context {
    int k;                              /* lanes: 1..DFRCL_MAX_DEVICES */
    dfr_runtime *rt[DFRCL_MAX_DEVICES]; /* rt[0]: the first device */
};

struct dfrcl_backbone {
    dfrcl_context *ctx;
    dfr_vgg19 *vgg[DFRCL_MAX_DEVICES]; /* one per lane of ctx, the same weights */
    cl_mem feat;                       /* [C, size/4, size/4] for one image, on lane 0 */
    int feat_size;
};

struct dfrcl_model {
    dfrcl_backbone *bb;                /* borrowed */
    int k;                             /* lanes holding the model: m[0..k-1] */
    dfr_model *m[DFRCL_MAX_DEVICES];   /* one per lane of bb->ctx, the same model */
    /* 1: m[0] is borrowed (training's on_eval hands a model it keeps): never freed here. */
    int borrowed;
};

/* Argument checks: a NULL or out-of-range argument is DFRCL_ERR_INVALID_ARG, never a crash. */
#define DFRCL_CHECK_ARG(cond, ...)                                                             \
    do {                                                                                       \
        if (!(cond)) return dfr_error(DFRCL_ERR_INVALID_ARG, __VA_ARGS__);                     \
    } while (0)

/* 1 when a caller-filled struct's reserved space is zero. */
int dfr_api_reserved_zero(const uint64_t *r, size_t n);
#define DFRCL_RESERVED_ZERO(st)                                                                \
    dfr_api_reserved_zero((st)->reserved, sizeof(st)->reserved / sizeof *(st)->reserved)
#define DFRCL_RESERVED_ADVICE                                                                  \
    "initialise it with %s first (or the program was built with a newer dfrcl.h than this "    \
    "library, API %u.%u.%u, knows)"
#define DFRCL_RESERVED_ARGS(fn)                                                                \
    fn, DFRCL_API_VERSION_MAJOR, DFRCL_API_VERSION_MINOR, DFRCL_API_VERSION_PATCH

/* Checks a score options struct (NULL is fine: the defaults), naming it `what` in messages. */
int dfr_api_check_score_options(const dfrcl_score_options *o, const char *what);

#endif
