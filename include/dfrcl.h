/*
 * dfrcl — DFR anomaly segmentation on any OpenCL device.
 *
 * Public C API. All handles are opaque; every function that can fail returns a
 * dfrcl_status (0 on success, negative on failure) and leaves a human-readable
 * explanation in dfrcl_last_error() (per thread). A NULL or out-of-range argument is
 * DFRCL_ERR_INVALID_ARG with a message naming the argument, never a crash.
 *
 * Ownership: the caller owns what it receives and frees it with the matching function:
 *   dfrcl_context   dfrcl_close           dfrcl_backbone  dfrcl_backbone_close
 *   dfrcl_model     dfrcl_model_close     dfrcl_image     dfrcl_image_free (pixels)
 *   the device list of dfrcl_list_devices: dfrcl_free
 * The *_close functions set the caller's pointer to NULL; all of them accept NULL and a pointer
 * to NULL. Use dfrcl_free, not free(): the library and the caller may not share a C runtime.
 *
 * ABI: the shared library's SONAME is libdfrcl.so.DFRCL_API_VERSION_MAJOR. MINOR grows when
 * functions or struct fields are added (a program built against an older header keeps working);
 * MAJOR grows when anything is removed or changed, PATCH on fixes. Public structs keep their
 * size across MINOR versions: each ends with `reserved` space from which new fields are taken.
 * Structs the caller fills (dfrcl_settings, dfrcl_train_options) must be initialised with their
 * dfrcl_default_* function, which zeroes `reserved`; functions taking them refuse one whose
 * reserved space is not zero (an uninitialised struct, or a field this library does not know).
 * Structs the library fills (dfrcl_device_info, dfrcl_model_info) come back with it zeroed.
 * dfrcl_image does not grow: it is a plain description of 8-bit pixels.
 * Adding a field: declare it just before `reserved`, shrink `reserved` by the 8-byte slots it
 * takes (a zero field must mean the old behaviour), bump MINOR; tests/test_api_args.c checks
 * the sizes, tests/libdfrcl.symbols the exported functions.
 */
#ifndef DFRCL_H
#define DFRCL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The shared library exports exactly the DFRCL_API functions (built with -fvisibility=hidden). */
#if defined(DFRCL_BUILDING) && defined(__GNUC__)
#define DFRCL_API __attribute__((visibility("default")))
#else
#define DFRCL_API
#endif

/* The API version this header describes; dfrcl_version_api() gives the library's. A program
 * needs a library with the same MAJOR and at least the MINOR it was built with. */
#define DFRCL_API_VERSION_MAJOR 1
#define DFRCL_API_VERSION_MINOR 1
#define DFRCL_API_VERSION_PATCH 0
/* Encoded as one unsigned int (0x00MMmmpp), comparable with < and >. */
#define DFRCL_API_VERSION_ENCODE(major, minor, patch)                                            \
    (((unsigned)(major) << 16) | ((unsigned)(minor) << 8) | (unsigned)(patch))
#define DFRCL_API_VERSION                                                                        \
    DFRCL_API_VERSION_ENCODE(DFRCL_API_VERSION_MAJOR, DFRCL_API_VERSION_MINOR,                   \
                             DFRCL_API_VERSION_PATCH)
/* Pick an encoded version apart. */
#define DFRCL_API_MAJOR(v) (((unsigned)(v) >> 16) & 0xffu)
#define DFRCL_API_MINOR(v) (((unsigned)(v) >> 8) & 0xffu)
#define DFRCL_API_PATCH(v) ((unsigned)(v) & 0xffu)

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
    DFRCL_ERR_INTERRUPTED = -2010,   /* stopped on request (a signal); a checkpoint was written */
} dfrcl_status;

/* The message describing the last failure on this thread ("" if none). */
DFRCL_API const char *dfrcl_last_error(void);
/* A short fixed name for a status code ("CL_OUT_OF_RESOURCES", "DFRCL_ERR_FORMAT", ...). */
DFRCL_API const char *dfrcl_status_name(int status);
/* dfrcl's release ("0.1.0"), for people. */
DFRCL_API const char *dfrcl_version(void);
/* The library's API version, DFRCL_API_VERSION_ENCODE(major, minor, patch): check at run time
 * that DFRCL_API_MAJOR(dfrcl_version_api()) == DFRCL_API_VERSION_MAJOR and that its MINOR is at
 * least DFRCL_API_VERSION_MINOR. */
DFRCL_API unsigned dfrcl_version_api(void);
/* Frees memory dfrcl allocated for the caller (the device list); NULL does nothing. */
DFRCL_API void dfrcl_free(void *ptr);

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
    uint64_t reserved[16];     /* zero; later fields come from here (see the top of the file) */
} dfrcl_device_info;

/* Lists every OpenCL device into *out (*count entries; free it with dfrcl_free). On failure *out
 * is NULL and *count 0. */
DFRCL_API int dfrcl_list_devices(dfrcl_device_info **out, int *count);

/* ---- Context ---------------------------------------------------------- */

typedef struct dfrcl_context dfrcl_context;

/* A logger (dfrcl_settings.log): level 1 info and warnings, 2 debug. */
typedef void (*dfrcl_log_fn)(void *user, int level, const char *msg);

typedef struct dfrcl_settings {
    /* Device selector: index or case-insensitive name substring; NULL = the
     * DFRCL_DEVICE environment variable, else the first GPU, else the first device.
     * 1.1: also "all", or several selectors separated by commas ("0,2"): the context then spans
     * those devices; scoring spreads images over them, training uses the first. */
    const char *device;
    /* Directory of the compiled-kernel cache; NULL = DFRCL_CACHE_DIR, else
     * $XDG_CACHE_HOME/dfrcl, else ~/.cache/dfrcl. "" or DFRCL_CACHE_DIR="" disables it. */
    const char *cache_dir;
    /* Log verbosity: 0 quiet, 1 info (device choice, warnings), 2 debug (more acts as 2). */
    int verbosity;
    /* 1.1: storage of the inference activations and features on the device: 0 automatic (fp16
     * on GPUs, fp32 on CPUs), 32 fp32, 16 fp16 (computing and summing stay fp32). */
    int precision;
    /* 1.1: where this context's messages go (NULL: stderr, "dfrcl: " prefixed): each message up
     * to `verbosity`, without a newline, on the thread that logs it. Per context: two contexts
     * in one process may log to two places. */
    dfrcl_log_fn log;
    void *log_user;
    uint64_t reserved[14]; /* zero (dfrcl_default_settings); later fields come from here */
} dfrcl_settings;

/* Fills s with the defaults (NULL selectors, verbosity 1) and zeroes its reserved space. */
DFRCL_API void dfrcl_default_settings(dfrcl_settings *s);
/* Opens a context on a device; s may be NULL for the defaults. On failure *ctx is NULL. */
DFRCL_API int dfrcl_open(dfrcl_context **ctx, const dfrcl_settings *s);
DFRCL_API void dfrcl_close(dfrcl_context **ctx);
/* Information on the device the context runs on (valid while ctx lives; NULL if ctx is); for a
 * context over several devices, the first. */
DFRCL_API const dfrcl_device_info *dfrcl_context_device(const dfrcl_context *ctx);
/* 1.1: how many devices the context spans (negative on a NULL ctx), and the i-th of them
 * (NULL outside 0..count-1). */
DFRCL_API int dfrcl_context_device_count(const dfrcl_context *ctx);
DFRCL_API const dfrcl_device_info *dfrcl_context_device_at(const dfrcl_context *ctx, int i);

/* ---- Backbone and regional features ---------------------------------- */

/* The 16 VGG19 ReLU layers dfrcl can tap, in order: relu1_1 .. relu5_4. */
#define DFRCL_VGG19_MAX_LAYERS 16
/* "relu1_1" .. "relu5_4" for layer 0..15; NULL (and a message) outside. */
DFRCL_API const char *dfrcl_layer_name(int layer);

typedef struct dfrcl_backbone dfrcl_backbone;

/* Loads the first `layers` ReLU layers (1..16) of VGG19 from a safetensors file
 * with torchvision names (features.N.weight / .bias) and uploads them (on every device of the
 * context). 1.1: layers 0 = all the file holds, at most 12 (relu4_4, as published). */
DFRCL_API int dfrcl_backbone_load(dfrcl_backbone **bb, dfrcl_context *ctx, const char *path,
                                  int layers);
/* A seeded random backbone of `layers` ReLU layers (1..16): Kaiming-uniform weights, small
 * biases. Its features are NOT meaningful (no anomaly detection worth the name); it exists for
 * tests and demos without pretrained weights. The same seed always gives the same backbone, so a
 * model trained on it loads again with dfrcl_backbone_random(..., same layers, same seed). */
DFRCL_API int dfrcl_backbone_random(dfrcl_backbone **bb, dfrcl_context *ctx, int layers,
                                    uint32_t seed);
DFRCL_API void dfrcl_backbone_close(dfrcl_backbone **bb);
/* Total channels of the concatenated regional feature (1408 for 8 layers), and the number of
 * layers; DFRCL_ERR_INVALID_ARG (negative) if bb is NULL. */
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
 * already be size x size, size fitting the backbone's layers as for dfrcl_model_train) into
 * `out` (C*(size/4)^2 floats, caller-owned). */
DFRCL_API int dfrcl_features(dfrcl_backbone *bb, const dfrcl_image *img, int size, float *out);

/* ---- DFR model: train, save, load, score ------------------------------ */

/* A trained DFR model: a convolutional autoencoder over a backbone's regional features, plus the
 * pixel-score threshold. The model BORROWS its backbone (it does not own or count it): keep the
 * backbone (and its context) open while the model lives, and close the model first. A model and
 * its backbone share device buffers: use them from one thread at a time. */
typedef struct dfrcl_model dfrcl_model;

/* What a model records (a copy; the model file's metadata). */
typedef struct dfrcl_model_info {
    int layers;               /* backbone ReLU layers from relu1_1 it was trained with */
    int size;                 /* images are scored at size x size */
    int channels;             /* channels of the regional feature */
    int latent;               /* the autoencoder's latent size */
    float threshold;          /* pixel score above which a pixel is anomalous */
    double fpr;               /* pixel false-positive rate on the training images it was set for */
    int epochs, batch, train_images;
    float lr;                 /* Adam learning rate */
    double final_loss;        /* mean training loss of the last epoch */
    uint32_t seed;            /* seed of the initialisation and shuffling */
    char backbone_sha256[65]; /* identity of the backbone tensors (hex) */
    char backbone_desc[256];  /* how to get that backbone again: "file NAME" or "random seed N" */
    /* ---- 1.1 ---- */
    int recipe;               /* the recipe it was trained with (dfrcl_train_options.recipe) */
    int positions;            /* feature positions per image in a training step */
    int64_t steps;            /* training steps taken (PyTorch's num_batches_tracked) */
    uint64_t reserved[14];    /* zero; later fields come from here */
} dfrcl_model_info;

typedef struct dfrcl_train_options {
    int recipe;       /* 0: fast (default): each step trains on a random 1/8 of the feature
                       * positions, lr 3e-4, stops when the loss levels off; 1: published
                       * (every position, lr 1e-4, 150 epochs), equal to the PyTorch reference */
    int epochs;       /* the most epochs; 0 = the recipe's (fast 100, published 150) */
    int batch;        /* images per batch (default 4) */
    float lr;         /* Adam learning rate; 0 = the recipe's (fast 3e-4, published 1e-4) */
    int latent;       /* latent size; 0 = by PCA (default) */
    double pca_keep;  /* with latent 0: fraction of the variance to keep (default 0.9) */
    int pca_images;   /* with latent 0: images the PCA looks at (default 10) */
    double fpr;       /* threshold's pixel false-positive rate on the training images (0.005) */
    uint32_t seed;    /* seed of the initialisation, shuffling and sampling (default 0) */
    double memory_mib; /* memory budget of training in MiB; 0 = automatic (a quarter of RAM, at
                        * most 2 GiB and 3/4 of the device's memory). It decides where the
                        * training features live: device, host, fp16, or a temporary file */
    /* API 1.0's progress, may be NULL (default); it cannot stop training: new code sets
     * on_progress instead (when both are set, both are called). Called with phase "features"
     * after each image's features (done of total images, loss 0), "train" after each epoch (done
     * of total epochs, loss = the epoch's mean loss), "threshold" while scoring the training
     * images (done of total). */
    void (*progress)(void *user, const char *phase, int done, int total, double loss);
    void *user;       /* passed to progress, on_progress and on_eval */
    /* ---- 1.1 ---- */
    /* Feature positions of each image in a training step; 0 = the recipe's (fast: 1/8 of them,
     * published: all). */
    int positions;
    /* The fast recipe's early stop: it stops when the last `patience` epochs lowered the loss by
     * less than 3% of its fall since the first; 0 = the recipe's (fast 5), -1 = never. */
    int patience;
    /* Where the training features live: 0 by memory_mib, 1 device, 2 host memory, 3 a
     * temporary file in feature_dir; how they are stored: 0 automatic (fp32 in memory, fp16 on
     * disk), 32, 16. */
    int store;
    int store_precision;
    const char *feature_dir; /* the temporary file's folder; NULL = $TMPDIR, else /var/tmp */
    /* A checkpoint file (NULL: none), written atomically every checkpoint_s seconds of training
     * (0 = 300) and when training is stopped; with resume != 0, training continues from it when
     * it exists (it must match the images, options and backbone, else DFRCL_ERR_MISMATCH). */
    const char *checkpoint;
    double checkpoint_s;
    int resume;
    /* Every eval_every epochs (and after the last; 0 = never) on_eval gets a model that scores
     * as the trained one would at that point (threshold 0; valid during the call only: score or
     * dfrcl_evaluate it there) and the training time so far. A non-zero return stops training
     * and dfrcl_model_train returns it. */
    int eval_every;
    int (*on_eval)(void *user, int epoch, double train_seconds, dfrcl_model *m);
    /* Progress that can stop training (may be NULL): phases as for progress, and also "step"
     * after each training step (done of total steps of the epoch), so a request is seen within
     * a step; its loss is the previous epoch's mean (0 in the first): the device sums an epoch's
     * loss without reading it back per step. A non-zero return stops training: the checkpoint
     * (if any) is written and dfrcl_model_train returns DFRCL_ERR_INTERRUPTED. */
    int (*on_progress)(void *user, const char *phase, int done, int total, double loss);
    uint64_t reserved[8]; /* zero (dfrcl_default_train_options); later fields come from here */
} dfrcl_train_options;

/* Fills o with the defaults above (the fast recipe) and zeroes its reserved space. */
DFRCL_API void dfrcl_default_train_options(dfrcl_train_options *o);

/* Trains a model on n defect-free images (PNG or JPEG files, resized to size x size) with the
 * backbone bb (borrowed, see above). size: 4..8192, a multiple of 4 (of 8 with relu4_x layers,
 * of 16 with relu5_x), at least 16 with relu4_x layers, 32 with relu5_x; 256 as published.
 * o may be NULL for the defaults. Takes minutes to hours on real data. */
DFRCL_API int dfrcl_model_train(dfrcl_model **m, dfrcl_backbone *bb,
                                const char *const *image_paths, int n, int size,
                                const dfrcl_train_options *o);

/* Model files (safetensors with metadata). Saving is atomic (temporary file + rename). Loading
 * checks the format and that bb is the backbone the model was trained with (same layers and
 * tensors, else DFRCL_ERR_MISMATCH); dfrcl_model_peek reads only the metadata, to know which
 * backbone to open first. */
DFRCL_API int dfrcl_model_save(dfrcl_model *m, const char *path);
DFRCL_API int dfrcl_model_load(dfrcl_model **m, dfrcl_backbone *bb, const char *path);
DFRCL_API int dfrcl_model_peek(dfrcl_model_info *info, const char *path);
DFRCL_API int dfrcl_model_get_info(const dfrcl_model *m, dfrcl_model_info *info);
DFRCL_API void dfrcl_model_close(dfrcl_model **m);

/* Scores one image, which must already be size x size (the model's size; resize it first with
 * dfrcl_image_resize), 1 or 3 channels. map (caller-owned, size*size floats, row-major) receives
 * the pixel score map; *score the image score, the maximum of the map (score may be NULL).
 * A pixel is anomalous when its score exceeds the model's threshold. */
DFRCL_API int dfrcl_model_score(dfrcl_model *m, const dfrcl_image *img, float *map, float *score);
/* Same for an image file of any size: decoded and resized to the model's size first. */
DFRCL_API int dfrcl_model_score_file(dfrcl_model *m, const char *path, float *map, float *score);
/* Scores n images (each as for dfrcl_model_score) `batch` at a time on the device (0 = on a
 * GPU as many as its memory allows, at most 16; 1 on a CPU device), with uploads and read-backs
 * overlapping the computation. maps (caller-owned, n * size * size floats) receives the maps
 * one after another, scores (may be NULL) the n image scores: the same values as n calls of
 * dfrcl_model_score. */
DFRCL_API int dfrcl_model_score_batch(dfrcl_model *m, const dfrcl_image *imgs, int n, int batch,
                                      float *maps, float *scores);

/* ---- 1.1: scoring files, evaluation, outputs ---------------------------- */

/* How to score many images (dfrcl_model_score_files, dfrcl_evaluate). Caller-filled: initialise
 * with dfrcl_default_score_options. */
typedef struct dfrcl_score_options {
    int batch;   /* images per launch; 0 = automatic (on a GPU as many as its memory allows, at
                  * most 16; 1 on a CPU device). Results do not depend on it. */
    int threads; /* threads decoding files ahead of the devices; 0 = one per core, at most 16 */
    /* Called on the caller's thread after each image, in input order (done of total); a
     * non-zero return stops the run before the next batch with DFRCL_ERR_INTERRUPTED. May be
     * NULL. */
    int (*progress)(void *user, int done, int total);
    void *user;
    uint64_t reserved[16]; /* zero (dfrcl_default_score_options) */
} dfrcl_score_options;
DFRCL_API void dfrcl_default_score_options(dfrcl_score_options *o);

/* One scored file, as dfrcl_model_score_files delivers it. Library-filled and valid during the
 * callback only; later versions may append fields (never move these). */
typedef struct dfrcl_result {
    int index;                /* in the input list */
    const char *path;
    /* DFRCL_OK, or why the file could not be read (DFRCL_ERR_IO, DFRCL_ERR_FORMAT): then it is
     * not scored, message says why, and the run goes on. */
    int status;
    const char *message;
    const dfrcl_image *image; /* the image as scored: resized to the model's size */
    int orig_width, orig_height; /* the file's own size */
    const float *map;         /* size x size pixel scores, row-major */
    float score;              /* the image score: the maximum of the map */
    float threshold;          /* the model's pixel threshold */
    int anomalous;            /* score > threshold */
    double anomalous_fraction; /* of the map's pixels above the threshold */
    int device;               /* which of the context's devices scored it */
} dfrcl_result;
/* Returns 0 to go on; anything else stops the run, which returns it. */
typedef int (*dfrcl_result_fn)(void *user, const dfrcl_result *r);

/* Scores n image files (PNG or JPEG, any size: resized to the model's), decoding ahead on
 * o->threads threads and scoring o->batch at a time on every device of the context; results
 * reach on_result on the caller's thread in input order. o may be NULL for the defaults. An
 * unreadable file is delivered with its status and the run goes on; a device failure moves
 * its images to the context's other devices, and fails the run when none is left. */
DFRCL_API int dfrcl_model_score_files(dfrcl_model *m, const char *const *paths, int n,
                                      const dfrcl_score_options *o, dfrcl_result_fn on_result,
                                      void *user);

/* The field's metrics of a test set at the model's threshold. NaN where undefined (a test set
 * without defective or good images; pixel metrics when a defective image has no mask).
 * Library-filled (reserved zero). */
typedef struct dfrcl_metrics {
    double pixel_auroc, image_auroc;
    double aupro;             /* area under the per-region overlap curve up to FPR 0.3, / 0.3 */
    double best_f1, best_f1_threshold; /* the best pixel F1 over thresholds, and where */
    double threshold;         /* the model's: the four below are at it */
    double precision, recall, f1, iou;
    long long pixels, defect_pixels, regions;
    int images, defective_images;
    int missing_masks;        /* defective images without a mask */
    uint64_t reserved[15];
} dfrcl_metrics;

/* What to evaluate on and what to write. Caller-filled: dfrcl_default_eval_options first. */
typedef struct dfrcl_eval_options {
    /* A dataset folder in the MVTec AD layout: data/test/<good|defect>/ images and
     * data/ground_truth/<defect>/<stem>_mask.png (or <stem>.png) masks. test_dir and masks_dir
     * replace those two folders (then data may be NULL). */
    const char *data, *test_dir, *masks_dir;
    /* NULL: metrics only. Else (created if needed; files in it are replaced):
     * maps/<defect>/<stem>.npy, overlays/<defect>/<stem>.png and report.html. */
    const char *out_dir;
    /* NULL: none. Else every metric, the settings and (for an MVTec AD category) the published
     * figures as JSON, written atomically. */
    const char *json_path;
    const char *title;      /* the report's title; NULL: "dfrcl eval: <data>" */
    const char *model_name; /* how the report and JSON name the model (its file); NULL: "" */
    dfrcl_score_options score; /* batch, threads, progress (which may stop the evaluation) */
    uint64_t reserved[16];  /* zero (dfrcl_default_eval_options) */
} dfrcl_eval_options;
DFRCL_API void dfrcl_default_eval_options(dfrcl_eval_options *o);

/* Scores every test image on the context's devices and computes the metrics into *out (which
 * may be NULL when only the files are wanted). An unreadable test image or mask fails the
 * evaluation naming it: metrics over part of a test set would look valid but mean something
 * else. Stopped by o->score.progress: DFRCL_ERR_INTERRUPTED, and no report or JSON written. */
DFRCL_API int dfrcl_evaluate(dfrcl_model *m, const dfrcl_eval_options *o, dfrcl_metrics *out);

/* The DFR paper's figures for an MVTec AD category, to print beside one's own. */
typedef struct dfrcl_published {
    char category[32];
    int layers;          /* the depth the figures are for: 12 (relu4_4) or 16 (relu5_4) */
    int size, epochs;    /* their setting: 256 px, 700 epochs */
    double pixel_auroc, aupro;
    const char *source;  /* where they come from, in one line */
    uint64_t reserved[8];
} dfrcl_published;
/* Looks up the category named by the last component of `data` (a dataset folder, trailing
 * slashes ignored; case-insensitive) for a run with `layers` layers. Returns 1 and fills *out
 * when the paper reports it, 0 when not, negative on a NULL argument. */
DFRCL_API int dfrcl_published_find(const char *data, int layers, dfrcl_published *out);

/* Image files (.png, .jpg, .jpeg, sorted by name) in a folder, into *paths (*n of them; free
 * with dfrcl_free_list); with train != 0, `dir` is a dataset folder and the files are those of
 * dir/train/good (MVTec AD layout). An empty folder is not an error (*n = 0). */
DFRCL_API int dfrcl_list_images(const char *dir, int train, char ***paths, int *n);
/* Frees a list dfrcl allocated (each string, then the array); NULL does nothing. */
DFRCL_API void dfrcl_free_list(char **list, int n);

/* Outputs a person can look at. The map is size x size (the image's size) floats. */
/* The image with the pixels above threshold tinted red and outlined, and the 0/255 mask of those
 * pixels (1 channel); both new images (dfrcl_image_free). mask may be NULL. */
DFRCL_API int dfrcl_overlay(const dfrcl_image *img, const float *map, float threshold,
                            dfrcl_image *overlay, dfrcl_image *mask);
/* Writes an 8-bit image as PNG, atomically (a temporary file, then rename). */
DFRCL_API int dfrcl_image_save_png(const dfrcl_image *img, const char *path);
/* Writes a map (height x width floats, row-major) as a NumPy .npy file, atomically. */
DFRCL_API int dfrcl_save_npy(const float *map, int width, int height, const char *path);
/* A copy of s (a file name) that is valid UTF-8, as JSON and HTML need: each byte that is not
 * part of a valid sequence becomes U+FFFD, and *lossy (may be NULL) is set to 1 when one was.
 * Free it with dfrcl_free; NULL (and a message) on a NULL s or no memory. */
DFRCL_API char *dfrcl_utf8(const char *s, int *lossy);
/* Writes n bytes to path atomically (for a caller's own reports, as dfrcl writes its files). */
DFRCL_API int dfrcl_write_file(const char *path, const void *data, size_t n);

/* The synthetic dataset behind `dfrcl demo`: an MVTec AD layout folder of procedural woven
 * fabric (train/good, test/good, test/<scratch|stain|hole>, ground_truth) with pixel masks,
 * size x size RGB, the same bytes for the same arguments. size 32..4096; counts per folder up to
 * 1000 (n_train >= 1). Existing files of the same names are replaced. */
DFRCL_API int dfrcl_demo_dataset_write(const char *dir, int size, int n_train, int n_test_good,
                                       int n_test_defect, uint32_t seed);

/* ---- 1.1: campaigns (many categories, optionally sharded over a cluster) ---- */
/* A campaign trains and evaluates every category of a dataset root (its sub-folders holding
 * train/good, as in MVTec AD; the root itself when it holds train/good) into a campaign folder
 * `out`: out/<category>/model.safetensors, metrics.json, settings.json and eval/ (maps,
 * overlays, report.html), then out/summary.html, .json and .csv beside the published DFR figures.
 * It resumes: a category with a model and metrics made with the same settings is skipped, and
 * training stopped midway continues from out/<category>/train.checkpoint. One run at a time per
 * folder (out/dfrcl-run.lock; the same file as the `dfrcl run` command's).
 *
 * Sharded (shard_count N > 0), it runs categories I, I+N, ... (in sorted order, from 1) and
 * records them in out/shards/I-of-N.json instead of writing the summary; the N shards may run at
 * once into one folder (from the tasks of a Slurm job array or a Kubernetes Indexed Job), and
 * dfrcl_campaign_merge then writes the summary, the same files as one unsharded run. */

/* What a campaign reports as it goes (dfrcl_campaign_event.kind). */
typedef enum dfrcl_campaign_event_kind {
    DFRCL_CAMPAIGN_START = 1,  /* the categories are known: count (own of them: total) */
    DFRCL_CAMPAIGN_OTHER_SETTINGS, /* a category holds results of other settings (message: what
                                    * differs); with force they are removed and it is redone */
    DFRCL_CAMPAIGN_SKIPPED,    /* a category done before with these settings */
    DFRCL_CAMPAIGN_TRAINING,   /* a category starts (or resumes) training */
    DFRCL_CAMPAIGN_EVALUATING, /* a category's model exists: it is evaluated */
    DFRCL_CAMPAIGN_PROGRESS,   /* phase "features", "train", "step", "threshold" (as training's
                                * on_progress) or "eval": done of total, loss */
    DFRCL_CAMPAIGN_DONE,       /* a category's metrics (and seconds) */
    DFRCL_CAMPAIGN_FAILED,     /* a category's files could not be read (message): the campaign
                                * goes on and marks it failed */
    DFRCL_CAMPAIGN_MERGING,    /* a merge found shard_count shards over count categories */
    DFRCL_CAMPAIGN_PROBLEM,    /* one reason a merge is refused (message, reason) */
    DFRCL_CAMPAIGN_SUMMARY,    /* the summary files are written; message: the table as text */
    DFRCL_CAMPAIGN_WARNING,    /* message (e.g. a file system without file locks) */
} dfrcl_campaign_event_kind;

/* Why a campaign call was refused, or a merge problem (dfrcl_campaign_result.reason,
 * dfrcl_campaign_event.reason): so a program can give advice in its own terms. */
typedef enum dfrcl_campaign_reason {
    DFRCL_CAMPAIGN_BUSY = 1,          /* out is in use by another run or a merge */
    DFRCL_CAMPAIGN_BUSY_SHARDS,       /* out is in use by shards */
    DFRCL_CAMPAIGN_SHARD_RUNNING,     /* this shard already runs */
    DFRCL_CAMPAIGN_SETTINGS_DIFFER,   /* categories hold results of other settings (not force) */
    DFRCL_CAMPAIGN_SHARD_COUNT,       /* out/shards holds records of another shard count */
    DFRCL_CAMPAIGN_NO_CATEGORIES,     /* the root holds no category (or none of the list) */
    DFRCL_CAMPAIGN_UNKNOWN_CATEGORY,  /* a listed category is not in the root */
    DFRCL_CAMPAIGN_NO_SHARDS,         /* merge: out holds no shard records */
    DFRCL_CAMPAIGN_MISSING_SHARDS,    /* merge problem: shards never recorded (shard_count N) */
    DFRCL_CAMPAIGN_UNFINISHED,        /* merge problem: a category of a shard has not ended */
    DFRCL_CAMPAIGN_MERGE_REFUSED,     /* merge refused: the problems it reported */
} dfrcl_campaign_reason;

/* One event. Library-filled and valid during the callback only; later versions may append
 * fields (never move these). */
typedef struct dfrcl_campaign_event {
    int kind;                 /* a dfrcl_campaign_event_kind */
    const char *category;     /* NULL for campaign-wide events */
    const char *dir;          /* the category's folder in out (NULL without a category) */
    int index, count;         /* the category's number among this run's own (1..), of how many;
                               * START, MERGING: count = all categories */
    int total_own;            /* START: this run's (shard's) own categories */
    int shard_index, shard_count; /* 0 when not sharded */
    const char *message;      /* OTHER_SETTINGS, FAILED, PROBLEM, SUMMARY, WARNING */
    int reason;               /* PROBLEM: a dfrcl_campaign_reason, 0 for others */
    const dfrcl_metrics *metrics; /* DONE */
    double seconds;           /* DONE: the category's time */
    const char *phase;        /* PROGRESS */
    int done, total;
    double loss;
} dfrcl_campaign_event;
/* Returns 0 to go on. A non-zero return stops the run at the next safe point (a training
 * checkpoint, before the next test image or category): dfrcl_campaign_run then returns
 * DFRCL_ERR_INTERRUPTED, the stopped category's partial eval/ is removed, and the same call
 * continues the campaign. */
typedef int (*dfrcl_campaign_fn)(void *user, const dfrcl_campaign_event *e);

/* Caller-filled: initialise with dfrcl_default_campaign_options. */
typedef struct dfrcl_campaign_options {
    const char *root;        /* the dataset root (required) */
    const char *out;         /* the campaign folder (required; created if needed) */
    const char *categories;  /* NULL: every category; else "a,b": only these (each must exist) */
    int shard_index, shard_count; /* shard I of N (1 <= I <= N), or 0, 0: not sharded */
    /* Categories holding results of other settings: 0 refuses the run (DFRCL_ERR_MISMATCH,
     * reason SETTINGS_DIFFER) naming them, 1 removes their results and redoes them. */
    int force;
    int size;                /* images are trained and scored at size x size (default 256) */
    /* Training (per category). checkpoint, resume, progress, on_progress, on_eval and
     * eval_every must stay unset: the campaign keeps a checkpoint per category and reports
     * progress through on_event. */
    dfrcl_train_options train;
    /* Evaluation's batch and threads; its progress must stay NULL (on_event gets it). */
    dfrcl_score_options score;
    dfrcl_campaign_fn on_event; /* may be NULL */
    void *user;
    uint64_t reserved[16];   /* zero (dfrcl_default_campaign_options) */
} dfrcl_campaign_options;
/* Fills o with the defaults (no root or out, unsharded, size 256, the default train and score
 * options) and zeroes its reserved space. */
DFRCL_API void dfrcl_default_campaign_options(dfrcl_campaign_options *o);

/* How a campaign call ended. Library-filled (also on failure; reserved zero). */
typedef struct dfrcl_campaign_result {
    int categories;           /* in the campaign (every shard's) */
    int own;                  /* this run's (its shard's) */
    int ran, skipped, failed; /* of its own: trained and/or evaluated now, done before, failed */
    int reason;               /* when refused: a dfrcl_campaign_reason; else 0 */
    int shard_count;          /* merge: the shards merged */
    uint64_t reserved[13];
} dfrcl_campaign_result;

/* Runs the campaign o describes with the backbone bb (its context's devices: each category
 * trains on the first, and its evaluation spreads over all of them). res may be NULL. A category
 * whose files cannot be read fails alone (DFRCL_CAMPAIGN_FAILED, counted in res->failed) and
 * the call still returns DFRCL_OK; anything else stops the campaign with its status. */
DFRCL_API int dfrcl_campaign_run(dfrcl_backbone *bb, const dfrcl_campaign_options *o,
                                 dfrcl_campaign_result *res);
/* Writes the summary of a sharded campaign in out from its shards' records, as one unsharded
 * run would. Refuses (DFRCL_ERR_INVALID_ARG, reason MERGE_REFUSED or NO_SHARDS; every problem
 * also reaches on_event as a PROBLEM) missing shards, unfinished or missing categories, and
 * shards or categories of other settings; writes nothing then. on_event may be NULL. */
DFRCL_API int dfrcl_campaign_merge(const char *out, dfrcl_campaign_fn on_event, void *user,
                                   dfrcl_campaign_result *res);
/* Parses a shard: "I/N" (shard I of N, from 1), or "auto": from a Slurm job array
 * (SLURM_ARRAY_TASK_ID, _MIN, _STEP, _COUNT) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX,
 * from 0, and DFRCL_SHARD_COUNT). DFRCL_ERR_INVALID_ARG names what is wrong. */
DFRCL_API int dfrcl_campaign_shard_parse(const char *spec, int *index, int *count);

#ifdef __cplusplus
}
#endif
#endif
