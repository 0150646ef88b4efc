/*
 * The synthetic dataset behind `dfrcl demo`: a small MVTec-AD-layout folder of procedural woven
 * fabric images (the look of data/demo/woven_scratch.png) with synthetic defects and their pixel
 * masks, made on the spot so the demo needs no download.
 *
 * Layout written under `root` (NNN = 000, 001, ...):
 *   train/good/NNN.png                  defect-free
 *   test/good/NNN.png                   defect-free
 *   test/<kind>/NNN.png                 one defect each, for every kind of dfr_demo_defect_kinds()
 *   ground_truth/<kind>/NNN_mask.png    1-channel, 255 on the defect, 0 elsewhere, same size
 * Images are 8-bit RGB, size x size. Every image differs (phase, thread jitter, slight rotation,
 * lighting, noise); defects have random position, size and shape.
 *
 * Masks: a mask pixel is 255 exactly where the defect changed the image, i.e. the mask equals the
 * set of pixels that differ from the same image rendered without the defect, and every one of them
 * differs by at least DFR_DEMO_MIN_CHANGE levels in some channel (no invisible defect pixels).
 *
 * Deterministic: the same arguments give the same bytes (on the same platform: sinf/expf come
 * from the C library). Each image has its own random stream, chosen by its id (below), so an
 * image does not change when the other counts change.
 */
#ifndef DFRCL_IO_DEMO_DATA_H
#define DFRCL_IO_DEMO_DATA_H

#include <stdint.h>

/* Defaults for a quick demo. */
#define DFR_DEMO_DEFAULT_SIZE 256
#define DFR_DEMO_DEFAULT_TRAIN 16
#define DFR_DEMO_DEFAULT_TEST_GOOD 4
#define DFR_DEMO_DEFAULT_TEST_DEFECT 4

/* Accepted ranges: images of DFR_DEMO_MIN_SIZE..DFR_DEMO_MAX_SIZE pixels a side; at most
 * DFR_DEMO_MAX_COUNT images per folder (three-digit names). n_train >= 1, the others >= 0. */
#define DFR_DEMO_MIN_SIZE 32
#define DFR_DEMO_MAX_SIZE 4096
#define DFR_DEMO_MAX_COUNT 1000

/* Every defect pixel differs from the defect-free image by at least this much in some channel. */
#define DFR_DEMO_MIN_CHANGE 12

/* Image ids (they pick each image's random stream). kind is an index into dfr_demo_defect_kinds. */
#define DFR_DEMO_ID_TRAIN(i) ((uint32_t)(i))
#define DFR_DEMO_ID_TEST_GOOD(i) (1000u + (uint32_t)(i))
#define DFR_DEMO_ID_DEFECT(kind, i) (2000u + 1000u * (uint32_t)(kind) + (uint32_t)(i))

/* Renders nothing where this is passed as the defect kind. */
#define DFR_DEMO_NO_DEFECT (-1)

/* Writes the dataset described above under `root` (created if needed, with parents). Existing
 * files of the same names are replaced atomically; other files in `root` are left alone, so pass
 * a fresh or empty folder. Errors: bad sizes or counts -> DFRCL_ERR_INVALID_ARG; a folder or file
 * that cannot be made -> DFRCL_ERR_IO with a message naming `root` and the path. */
int dfr_demo_dataset_write(const char *root, int size, int n_train, int n_test_good,
                           int n_test_defect, uint32_t seed);

/* The defect kinds, in folder order ("scratch", "stain", "hole"); *n gets their count. */
const char *const *dfr_demo_defect_kinds(int *n);

/* Renders one image (exposed for tests): rgb gets size*size*3 bytes; for kind >= 0, mask gets
 * size*size bytes (0/255) and the defect is drawn; for DFR_DEMO_NO_DEFECT the defect-free image is
 * rendered and mask (may be NULL) is zeroed. The defect-free pixels of an image with a defect are
 * identical to the same id rendered with DFR_DEMO_NO_DEFECT. */
int dfr_demo_render(uint8_t *rgb, uint8_t *mask, int size, uint32_t seed, uint32_t image_id,
                    int kind);

#endif
