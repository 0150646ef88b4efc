/* libFuzzer target for image loading (PNG and JPEG: the fuzz_png and fuzz_jpeg builds differ
 * only in their seed corpora). The input goes through the loader the commands use
 * (dfr_image_load_resized: read the file, decode by magic, resize) and through the decoder from
 * memory. Any input must decode to a well-formed image, the same both ways, or be refused with
 * a message naming it; never crash, hang or exceed the pixel limit. */
#include "fuzz_common.h"
#include "io/image.h"

#define NAME "fuzz-image"

/* A smaller decoding budget than the default keeps each input fast; the limit's own checks are
 * the same at any size. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    setenv("DFRCL_MAX_DECODE_MB", "64", 0);
    return 0;
}

static void check_image(const dfrcl_image *img, int w, int h)
{
    if (dfr_image_check(img, NAME) != DFRCL_OK || (img->channels != 1 && img->channels != 3) ||
        img->width != w || img->height != h)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dfrcl_image dec = {0}, small = {0};
    int rc = dfr_image_decode_memory(&dec, data, size, NAME);
    if (rc) {
        if (rc != DFRCL_ERR_FORMAT && rc != DFRCL_ERR_HOST_MEMORY) abort();
        if (dec.pixels || dec.width || dec.height) abort();
        fuzz_check_message(NAME);
    } else {
        check_image(&dec, dec.width, dec.height);
        if ((uint64_t)dec.width * (uint64_t)dec.height > DFR_IMAGE_MAX_PIXELS) abort();
    }

    /* the file loader must agree with the decoder, and resizing must take whatever it gives */
    const char *path = fuzz_as_file(data, size);
    int w = 0, h = 0;
    int rc2 = dfr_image_load_resized(path, 12, &small, &w, &h);
    if ((rc2 == DFRCL_OK) != (rc == DFRCL_OK)) abort();
    if (rc2 == DFRCL_OK) {
        check_image(&small, 12, 12);
        if (w != dec.width || h != dec.height || small.channels != dec.channels) abort();
    } else {
        fuzz_check_message(path);
    }
    dfrcl_image_free(&dec);
    dfrcl_image_free(&small);
    return 0;
}
