/* DFR end to end: features of normal images, the latent size by PCA (90% of the variance of
 * the first 10 images), training the convolutional autoencoder, scoring (per-position mean
 * squared reconstruction error, upsampled), the threshold, and the model file. */
#ifndef DFRCL_MODEL_DFR_H
#define DFRCL_MODEL_DFR_H

#include <stdint.h>

#include "model/cae.h"
#include "model/vgg19.h"

#define DFR_MODEL_FORMAT "dfrcl-dfr"
#define DFR_MODEL_VERSION 1
#define DFR_MODEL_MAX_SIZE 8192 /* largest image size a model file may hold */

/* What the model file's __metadata__ holds besides the CAE tensors: the public struct (dfrcl.h),
 * one definition. Its threshold is a float; the model keeps the double as well (below). */
typedef dfrcl_model_info dfr_model_info;

typedef struct dfr_model dfr_model;

/* Training recipes. PUBLISHED is DFR as published (Adam, lr 1e-4, betas 0.9/0.999, on every
 * position of batches of 4 shuffled images, a fixed number of epochs: 150 by default) and equals the PyTorch reference.
 * FAST (the default) reaches the same accuracy in far less compute: each step trains on a random
 * subset of the batch's feature positions (the autoencoder is 1x1 convolutions, so positions are
 * independent samples) with a 3x larger learning rate, and training stops when the epoch loss
 * levels off: the last `patience` epochs lowered it by less than 3% of its fall since the first
 * epoch (the epoch count is then a cap). */
enum { DFR_RECIPE_FAST = 0, DFR_RECIPE_PUBLISHED = 1 };
const char *dfr_recipe_name(int recipe);

/* Training takes the public options (dfrcl.h, defaults from dfrcl_default_train_options) and
 * calls their progress and on_progress itself: a non-zero return of on_progress stops training
 * (a checkpoint is written, DFRCL_ERR_INTERRUPTED). What only the library sets is here. */
typedef struct dfr_train_hooks {
    /* on_eval with the trainer's model (dfrcl_model_train wraps it for the public on_eval):
     * called every o->eval_every epochs and after the last, with a model that scores as the
     * trained one would at that point (threshold 0) and the training time so far (evaluations
     * excluded). A non-zero return stops training with that status. */
    int (*on_eval)(void *user, int epoch, double train_seconds, dfr_model *m);
    void *user;
    int64_t stop_at_step; /* tests: stop as if asked to when this many steps are done (0: no) */
} dfr_train_hooks;

/* The recipe's values for the fields left 0 (epochs, lr, positions, patience), for npos positions
 * per image. */
void dfr_train_resolve(dfrcl_train_options *o, int npos);
/* The default memory budget: a quarter of the host's physical memory, at most 2 GiB, and at most
 * half the device's global memory. */
double dfr_train_auto_budget(const dfr_runtime *rt);

/* A trained (or loaded) model on a runtime: the backbone is borrowed, the CAE owned. */
struct dfr_model {
    dfr_runtime *rt;
    dfr_vgg19 *vgg;
    dfr_cae *cae;
    dfr_model_info info;
    /* The threshold as training set it or the file's 9 digits give it: the file and evaluation
     * take this double, info.threshold is it as a float (dfr_model_set_threshold sets both). */
    double threshold;
    /* scoring buffers for up to `cap` images */
    int cap;
    cl_mem feat, recon, score_small, score_full;
    /* The batches the CAE takes (0 = 1), and whether the model owns a scorer CAE it may replace
     * by a larger one (a loaded model; training's models borrow or train theirs). */
    int cae_batch, cae_resizable;
};

/* Sets m->threshold and its float copy info.threshold together. */
void dfr_model_set_threshold(dfr_model *m, double threshold);

/* An untrained model (the autoencoder's seed-0 weights, threshold 0) over vgg at `size`: for
 * benchmarks and tests of the scoring path. */
int dfr_model_untrained(dfr_model **out, dfr_runtime *rt, dfr_vgg19 *vgg, int size, int latent);

/* Trains on the images (resized to `size`): features once (on the device when they fit, else
 * kept on the host and streamed), latent size by PCA, CAE epochs, then the threshold from the
 * training images' pixel scores. hooks may be NULL. */
int dfr_train(dfr_model **out, dfr_runtime *rt, dfr_vgg19 *vgg, const char *const *images, int n,
              int size, const dfrcl_train_options *o, const dfr_train_hooks *hooks);

/* Internal, for training's threshold: scoring buffers for up to `cap` images (m->feat holds
 * their features), and the score maps of the first `batch` of them into m->score_full. */
int dfr_model_score_buffers(dfr_model *m, int cap);
int dfr_model_score_features(dfr_model *m, int batch);
/* The same into `out` ([batch, S, S] floats) instead of m->score_full. */
int dfr_model_score_features_into(dfr_model *m, int batch, cl_mem out);
/* Makes m score batches of `batch` images: its buffers, and a scorer CAE that takes them (a
 * loaded model's is replaced; another kind's stays, DFRCL_ERR_INVALID_ARG if too small). */
int dfr_model_reserve_batch(dfr_model *m, int batch);
/* The largest batch, at most `cap`, whose scoring buffers (features, reconstructions, maps, the
 * autoencoder's activations, double-buffered transfers) fit in a quarter of the device's global
 * memory, each buffer within its largest allocation; at least 1. */
int dfr_model_auto_batch(const dfr_model *m, int cap);

/* Scores one image (already size x size, 8-bit, 1 or 3 channels): the S x S map into `map`
 * (size*size floats, caller-owned); returns the image score (max of the map) in *score. */
int dfr_model_score(dfr_model *m, const uint8_t *pixels, int channels, float *map, float *score);

/* Loads an image file, resizes it to the model's size; the caller frees img. orig_w/orig_h (may
 * be NULL) receive the file's own size. */
int dfr_model_load_image(const dfr_model *m, const char *path, dfrcl_image *img, int *orig_w,
                         int *orig_h);

/* Model file: safetensors with the 28 CAE tensors (PyTorch state_dict names) and the metadata,
 * written atomically. Loading checks the format, the version, the shapes, and that `vgg` is the
 * backbone the model was trained with. */
int dfr_model_save(dfr_model *m, const char *path);
int dfr_model_load(dfr_model **out, dfr_runtime *rt, dfr_vgg19 *vgg, const char *path);
/* Reads only the metadata (to know which backbone and layers to load first). */
int dfr_model_peek(const char *path, dfr_model_info *info);
void dfr_model_free(dfr_model **m);
/* Releases the scoring buffers only. */
void dfr_model_free_buffers(dfr_model *m);

#endif
