/*
 * dfrcl — DFR anomaly segmentation on any OpenCL device.
 *
 * Public C API. All handles are opaque; every function that can fail returns a
 * dfrcl_status (0 on success, negative on failure) and leaves a human-readable
 * explanation in dfrcl_last_error() (per thread). Ownership: the caller owns
 * every handle it receives from an *_open or *_load function and frees it with the
 * matching *_close, which sets the caller's pointer to NULL.
 */
#ifndef DFRCL_H
#define DFRCL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(DFRCL_BUILDING) && defined(__GNUC__)
#define DFRCL_API __attribute__((visibility("default")))
#else
#define DFRCL_API
#endif

/* Status codes. OpenCL error codes (-1 .. -1999, KHR extensions included) pass through unchanged; dfrcl's
 * own codes live in their own range below -2000. */
typedef enum dfrcl_status {
    DFRCL_OK = 0,
    DFRCL_ERR_NO_DEVICE = -2001,     /* no OpenCL platform/device, or selector matched none */
    DFRCL_ERR_BUILD = -2002,         /* a kernel program failed to build (log in message) */
    DFRCL_ERR_IO = -2003,            /* a file could not be read or written */
    DFRCL_ERR_FORMAT = -2004,        /* a file is malformed, truncated or unsupported */
    DFRCL_ERR_INVALID_ARG = -2005,   /* a caller passed something out of range */
    DFRCL_ERR_DEVICE_MEMORY = -2006, /* the device ran out of memory */
    DFRCL_ERR_HOST_MEMORY = -2007,   /* malloc failed */
    DFRCL_ERR_MISMATCH = -2008,      /* files that must agree do not (model vs backbone, ...) */
    DFRCL_ERR_INTERNAL = -2009,
} dfrcl_status;

/* The message describing the last failure on this thread ("" if none). */
DFRCL_API const char *dfrcl_last_error(void);
/* A short fixed name for a status code ("CL_OUT_OF_RESOURCES", "DFRCL_ERR_FORMAT", ...). */
DFRCL_API const char *dfrcl_status_name(int status);
DFRCL_API const char *dfrcl_version(void);

/* ---- Devices ---------------------------------------------------------- */

typedef struct dfrcl_device_info {
    int index;                 /* global index across platforms, as --device takes it */
    int platform_index;
    char platform_name[128];
    char platform_version[128];
    char name[256];
    char vendor[128];
    char driver_version[128];
    char opencl_c_version[128];
    int is_gpu, is_cpu;
    unsigned compute_units;
    uint64_t global_mem_bytes;
    uint64_t max_alloc_bytes;
    uint64_t local_mem_bytes;
    size_t max_work_group_size;
    int is_default;            /* the device dfrcl picks when no selector is given */
} dfrcl_device_info;

/* Lists every OpenCL device. *out is malloc'd and owned by the caller (free()). */
DFRCL_API int dfrcl_list_devices(dfrcl_device_info **out, int *count);

/* ---- Context ---------------------------------------------------------- */

typedef struct dfrcl_context dfrcl_context;

typedef struct dfrcl_settings {
    /* Device selector: index or case-insensitive name substring; NULL = the
     * DFRCL_DEVICE environment variable, else the first GPU, else the first device. */
    const char *device;
    /* Directory of the compiled-kernel cache; NULL = DFRCL_CACHE_DIR, else
     * $XDG_CACHE_HOME/dfrcl, else ~/.cache/dfrcl. "" or DFRCL_CACHE_DIR="" disables it. */
    const char *cache_dir;
    /* Log verbosity on stderr: 0 quiet, 1 info (device choice), 2 debug. */
    int verbosity;
} dfrcl_settings;

DFRCL_API void dfrcl_default_settings(dfrcl_settings *s);
DFRCL_API int dfrcl_open(dfrcl_context **ctx, const dfrcl_settings *s);
DFRCL_API void dfrcl_close(dfrcl_context **ctx);
/* Information on the device the context runs on (valid while ctx lives). */
DFRCL_API const dfrcl_device_info *dfrcl_context_device(const dfrcl_context *ctx);

/* ---- Backbone and regional features ---------------------------------- */

/* The 16 VGG19 ReLU layers dfrcl can tap, in order: relu1_1 .. relu5_4. */
#define DFRCL_VGG19_MAX_LAYERS 16
DFRCL_API const char *dfrcl_layer_name(int layer);

typedef struct dfrcl_backbone dfrcl_backbone;

/* Loads the first `layers` ReLU layers (1..16) of VGG19 from a safetensors file
 * with torchvision names (features.N.weight / .bias) and uploads them. */
DFRCL_API int dfrcl_backbone_load(dfrcl_backbone **bb, dfrcl_context *ctx, const char *path,
                                  int layers);
DFRCL_API void dfrcl_backbone_close(dfrcl_backbone **bb);
/* Total channels of the concatenated regional feature (1408 for 8 layers). */
DFRCL_API int dfrcl_backbone_channels(const dfrcl_backbone *bb);
DFRCL_API int dfrcl_backbone_layers(const dfrcl_backbone *bb);

/* An 8-bit image in host memory, interleaved, row-major. channels: 1 (grey) or 3 (RGB). */
typedef struct dfrcl_image {
    int width, height, channels;
    uint8_t *pixels; /* owned by whoever filled it; dfrcl_image_free() for images dfrcl made */
} dfrcl_image;

/* Decodes a PNG or JPEG file into 8-bit grey or RGB (alpha dropped, 16-bit scaled). */
DFRCL_API int dfrcl_image_load(dfrcl_image *img, const char *path);
/* Resizes with PIL's antialiased bilinear (triangle) filter into a new image. */
DFRCL_API int dfrcl_image_resize(dfrcl_image *dst, const dfrcl_image *src, int width, int height);
DFRCL_API void dfrcl_image_free(dfrcl_image *img);

/* Computes the regional feature [C, size/4, size/4] of one image (which must
 * already be size x size) into `out` (C*(size/4)^2 floats, caller-owned). */
DFRCL_API int dfrcl_features(dfrcl_backbone *bb, const dfrcl_image *img, int size, float *out);

#ifdef __cplusplus
}
#endif
#endif
