/* The frozen VGG19 backbone and DFR's multi-scale regional features: each ReLU map resized to
 * S x S (bilinear, align_corners) and averaged over 4x4 windows, concatenated along channels. */
#ifndef DFRCL_MODEL_VGG19_H
#define DFRCL_MODEL_VGG19_H

#include <stdint.h>

#include "cl/runtime.h"
#include "ops/ops.h"

#define DFR_VGG19_LAYERS 16

typedef struct dfr_vgg19 {
    dfr_runtime *rt;             /* borrowed */
    int layers;                  /* ReLU taps used, from relu1_1 */
    int channels;                /* total channels of the regional feature */
    dfr_conv_weights conv[DFR_VGG19_LAYERS];
    char identity[65];           /* sha256 of the names, shapes and bytes of the tensors used */
    char desc[256];              /* how to get it again: "file NAME", "random seed N" or "arrays" */
    /* Work buffers, sized for `buf_size` (grown on demand). */
    int buf_size;
    cl_mem img_u8, act[2];
} dfr_vgg19;

/* torchvision index N of features.N for ReLU layer i (0 = relu1_1). */
int dfr_vgg19_torch_index(int layer);
int dfr_vgg19_layer_channels(int layer);
/* Which block (0..4) a layer is in; each block after the first starts with a 2x2 max pool. */
int dfr_vgg19_layer_block(int layer);
const char *dfr_vgg19_layer_name(int layer);
/* Sum of the channels of the first `layers` layers (1408 for 8, 3456 for 12). */
int dfr_vgg19_channels(int layers);

/* Loads the first `layers` conv layers from a safetensors file (torchvision names), checking
 * shapes; a missing layer is an error listing the layers the file has. */
int dfr_vgg19_load(dfr_vgg19 **out, dfr_runtime *rt, const char *path, int layers);
/* Same from host arrays w[i] [cout, cin, 3, 3] and b[i] [cout] (tests, random backbones). */
int dfr_vgg19_from_arrays(dfr_vgg19 **out, dfr_runtime *rt, int layers, const float *const *w,
                          const float *const *b);
/* A seeded random backbone (Kaiming-uniform weights, small biases) for demos without pretrained
 * weights, tests and benchmarks. Seed 0 gives tools/make_fixtures.py's random layers. */
int dfr_vgg19_random(dfr_vgg19 **out, dfr_runtime *rt, int layers, uint32_t seed);
/* DFRCL_ERR_INVALID_ARG unless size x size images fit the backbone's layers: each block halves
 * the map and reflection padding needs at least 2 pixels in the last one. */
int dfr_vgg19_check_size(const dfr_vgg19 *v, int size);
/* How many consecutive layers from relu1_1 a weights file has (an error if none). */
int dfr_vgg19_file_layers(const char *path, int *layers);
void dfr_vgg19_free(dfr_vgg19 **v);

/* Enqueues the features of one size x size 8-bit image (interleaved, 1 or 3 channels) into
 * channels [image_index*C, (image_index+1)*C) of feat, a [n*C, size/4, size/4] buffer: image n
 * of a batch laid out [n, C, size/4, size/4]. Does not wait for the device. */
int dfr_vgg19_features(dfr_vgg19 *v, const uint8_t *pixels, int channels, int size, cl_mem feat,
                       int image_index);
/* The same for an image already on the device: `channels` x size x size bytes at `offset` of
 * `pixels` (a batch's upload), copied on the device into the backbone's input. */
int dfr_vgg19_features_dev(dfr_vgg19 *v, cl_mem pixels, size_t offset, int channels, int size,
                           cl_mem feat, int image_index);
/* Debug/tests: after dfr_vgg19_features with keep != NULL, keep[i] receives a copy of relu map i
 * (the caller allocates [cout_i, h_i, w_i] floats or passes NULL to skip that layer). */
int dfr_vgg19_features_debug(dfr_vgg19 *v, const uint8_t *pixels, int channels, int size,
                             cl_mem feat, int image_index, float **keep);
#endif
