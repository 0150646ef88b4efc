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
 *    (decompression bombs); so are images whose decoding would need more memory (output pixels
 *    plus the decoder's buffers, estimated from the header) than the decoding limit (see
 *    dfr_image_max_decode_bytes), ancillary PNG chunks inflating to over 64 MiB (or the limit,
 *    if lower), progressive JPEGs with more than 500 scans, and baseline JPEGs with too little
 *    scan data for their declared size (a big frame header in front of a few bytes);
 *  - PNGs are decoded row by row into the output: memory is about the output image (1 or 3
 *    bytes per pixel) even for 16-bit RGBA files (8 bytes per pixel).
 * A corrupt, truncated, unsupported or unknown file is DFRCL_ERR_FORMAT with a message that
 * names the file and the problem; *img is then zeroed. dfrcl is stricter than PIL here:
 *  - PNG: any CRC mismatch (PIL skips IDAT CRCs) and any file cut before the end of the CRC of
 *    its IEND chunk (checked here: libspng does not read that CRC) are errors; PIL accepts a
 *    file cut anywhere after the compressed stream;
 *  - JPEG: a file whose marker structure does not reach the end-of-image marker is truncated
 *    (PIL accepts a file missing only that 2-byte marker); so is one whose scan data ends early
 *    (libjpeg's "premature end of data segment" warning: it makes up the rest of the image,
 *    and PIL accepts it). libjpeg warnings that leave a whole image (stray bytes before a
 *    marker, a bad Huffman code in the data, ...) are tolerated, as PIL tolerates them; fatal
 *    errors are not, even after a warning (TurboJPEG 2.1's tjGetErrorCode() then says
 *    "warning", so the message text is what decides). TurboJPEG 2.1 reports only the first
 *    warning's text, so scan data ending early after an earlier tolerated warning goes
 *    unnoticed (the memory bound still holds).
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
/* Default limit on the memory one image decode may use, in MiB: decoded pixels plus the
 * decoder's working buffers. 512 MiB takes any image dfrcl is meant for with a wide margin
 * (a 100-megapixel RGB photo needs about 290 MiB; the data sets' images need a few MiB), stays
 * under half the memory of a small 1-2 GiB board even with a second image decoding in the
 * prefetch thread, and refuses a 16000x16000 RGB header (768 MB) from a file of a few bytes. */
#define DFR_IMAGE_DEFAULT_DECODE_MB 512
/* Largest value DFRCL_MAX_DECODE_MB takes (1 TiB). */
#define DFR_IMAGE_MAX_DECODE_MB (1024 * 1024)
/* Channel counts dfrcl_image_resize accepts (channels are resampled independently). */
#define DFR_IMAGE_MAX_CHANNELS 16

/* The decoding memory limit in bytes: the value given to dfr_image_set_max_decode_bytes, else
 * the environment variable DFRCL_MAX_DECODE_MB (whole MiB, 1..DFR_IMAGE_MAX_DECODE_MB; read at
 * each decode), else DFR_IMAGE_DEFAULT_DECODE_MB. A malformed variable is DFRCL_ERR_INVALID_ARG
 * (and fails every decode, naming the variable) rather than silently ignored. */
int dfr_image_max_decode_bytes(uint64_t *bytes);
/* Sets the decoding memory limit for the whole process (e.g. from a command-line option),
 * overriding the environment; 0 goes back to the environment / default. Thread-safe. */
void dfr_image_set_max_decode_bytes(uint64_t bytes);

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
