/*
 * Image decode (PNG via libspng, JPEG via TurboJPEG), PNG encode and PIL-compatible resize
 * (internal). The public entry points are dfrcl_image_load / _resize / _free in dfrcl.h.
 *
 * Decoding always yields 8-bit interleaved pixels, 1 channel (grey) or 3 (RGB), chosen to equal
 * what Pillow 9.4 gives for Image.open(f).convert('L') (grey sources) or .convert('RGB'):
 *  - the format is found from the magic bytes, never from the file name;
 *  - PNG grey and grey+alpha -> 1 channel; RGB, RGBA and palette -> 3 channels;
 *  - alpha and tRNS transparency are dropped, NOT composited over a background
 *    (the colour stored under a transparent pixel is kept; PIL's convert does the same);
 *  - grey bit depths 1/2/4 are scaled to 0..255 (x255, x85, x17);
 *  - 16-bit RGB, RGBA and grey+alpha keep the high byte (v >> 8), as PIL's unpackers do;
 *  - 16-bit GREY is CLAMPED to 255 (v > 255 -> 255), not scaled: PIL opens it as a 32-bit
 *    integer image ("I") and its I -> L / I -> RGB conversion clips. Odd, but it is what the
 *    Python reference pipeline sees, so we match it;
 *  - gAMA, sBIT, iCCP and the like are ignored (PIL ignores them too);
 *  - JPEG grey -> 1 channel, YCbCr/RGB -> 3 channels (libjpeg-turbo's default accurate integer
 *    IDCT and fancy upsampling, as PIL uses); CMYK/YCCK -> RGB as PIL does: the samples are
 *    inverted (PIL assumes Adobe-style inverted CMYK), then R = (255-K) - (C*(255-K))/255 with
 *    PIL's rounding, likewise G from M and B from Y;
 *  - images over DFR_IMAGE_MAX_PIXELS pixels are refused before any pixel memory is allocated
 *    (decompression bombs); so are ancillary PNG chunks inflating to over 64 MiB, and
 *    progressive JPEGs with more than 500 scans.
 * A corrupt, truncated, unsupported or unknown file is DFRCL_ERR_FORMAT with a message that
 * names the file and the problem; *img is then zeroed. dfrcl is stricter than PIL here:
 *  - PNG: any CRC mismatch (PIL skips IDAT CRCs) and any file cut before the CRC of its IEND
 *    chunk (libspng does not need that CRC) are errors; PIL accepts a file cut anywhere after
 *    the compressed stream;
 *  - JPEG: a file whose marker structure does not reach the end-of-image marker is truncated
 *    (PIL accepts a file missing only that 2-byte marker). libjpeg warnings that leave a whole
 *    image (stray bytes before a marker, a bad Huffman code in the data, ...) are tolerated, as
 *    PIL tolerates them; fatal errors are not, even after a warning (TurboJPEG 2.1's
 *    tjGetErrorCode() then says "warning", so the message text is what decides).
 * TurboJPEG 2.1 refuses JPEGs with unusual chroma sampling factors that it cannot classify
 * (PIL's libjpeg decodes them). 12-bit and lossless JPEGs are refused (8-bit libjpeg-turbo).
 */
#ifndef DFRCL_IO_IMAGE_H
#define DFRCL_IO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "dfrcl.h"

/* Decoded images larger than this many pixels are refused (2^28: 16384 x 16384). */
#define DFR_IMAGE_MAX_PIXELS ((uint64_t)1 << 28)
/* Channel counts dfrcl_image_resize accepts (channels are resampled independently). */
#define DFR_IMAGE_MAX_CHANNELS 16

/* Decodes a PNG or JPEG held in memory. `name` is used in error messages only. On success *img
 * holds malloc'd pixels (free with dfrcl_image_free); on failure *img is zeroed. */
int dfr_image_decode_memory(dfrcl_image *img, const void *data, size_t len, const char *name);

/* Decodes one image file and resizes it to size x size (size 0: as decoded); orig_w/orig_h (may
 * be NULL) receive the file's own size. */
int dfr_image_load_resized(const char *path, int size, dfrcl_image *img, int *orig_w, int *orig_h);

/* Writes an 8-bit PNG atomically (temp file + rename). channels: 1 grey, 2 grey+alpha, 3 RGB,
 * 4 RGBA; px is interleaved, rows packed (width*channels bytes each). */
int dfr_png_write(const char *path, int width, int height, int channels, const uint8_t *px);
/* Same, into a malloc'd buffer *out (caller frees) of *len bytes. */
int dfr_png_encode(uint8_t **out, size_t *len, int width, int height, int channels,
                   const uint8_t *px);

/* Grey (1 channel) -> RGB (3 channels) in place, copying the grey level to R, G and B; pixels
 * are reallocated. A 3-channel image is left as it is; other channel counts are an error. */
int dfr_image_to_rgb(dfrcl_image *img);

/* Checks that an image is well formed: pixels set, sizes >= 1, channels 1..DFR_IMAGE_MAX_CHANNELS,
 * width*height <= DFR_IMAGE_MAX_PIXELS. `what` names it in the message. */
int dfr_image_check(const dfrcl_image *img, const char *what);

#endif
