/* Image decode (libspng, TurboJPEG) and PNG encode. The pixel conventions, which follow what
 * Pillow 9.4's Image.open(f).convert('L' / 'RGB') gives, are described in image.h. */
#include "io/image.h"

#include <limits.h>
#include <spng.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "util/error.h"
#include "util/fsutil.h"

/* libspng keeps ancillary chunks (text, ICC profiles) decompressed in memory: this bounds each
 * one and their total (zTXt bombs). Image data (IDAT) is streamed and not subject to it. */
#define PNG_CHUNK_LIMIT ((size_t)64 << 20)

int dfr_image_check(const dfrcl_image *img, const char *what)
{
    if (!img) return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: image is NULL", what);
    if (!img->pixels) return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: image has no pixels", what);
    if (img->width < 1 || img->height < 1)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: bad image size %dx%d", what, img->width,
                         img->height);
    if (img->channels < 1 || img->channels > DFR_IMAGE_MAX_CHANNELS)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: bad channel count %d", what, img->channels);
    if ((uint64_t)img->width * (uint64_t)img->height > DFR_IMAGE_MAX_PIXELS)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: image %dx%d is larger than %llu pixels",
                         what, img->width, img->height,
                         (unsigned long long)DFR_IMAGE_MAX_PIXELS);
    return DFRCL_OK;
}

static int check_decoded_size(const char *name, const char *fmt, uint64_t w, uint64_t h)
{
    if (w == 0 || h == 0)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: %s image has zero size (%llux%llu)", name, fmt,
                         (unsigned long long)w, (unsigned long long)h);
    if (w > INT_MAX || h > INT_MAX || w * h > DFR_IMAGE_MAX_PIXELS)
        return dfr_error(DFRCL_ERR_FORMAT,
                         "%s: %s image of %llux%llu pixels exceeds the limit of %llu pixels "
                         "(possible decompression bomb)",
                         name, fmt, (unsigned long long)w, (unsigned long long)h,
                         (unsigned long long)DFR_IMAGE_MAX_PIXELS);
    return DFRCL_OK;
}

/* ---- PNG ------------------------------------------------------------------------------ */

static int decode_png(dfrcl_image *img, const uint8_t *data, size_t len, const char *name)
{
    uint8_t *raw = NULL, *px = NULL;
    int rc = DFRCL_OK;
    spng_ctx *ctx = spng_ctx_new(0);
    if (!ctx) return dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: out of memory (PNG decoder)", name);
    int e = spng_set_chunk_limits(ctx, PNG_CHUNK_LIMIT, PNG_CHUNK_LIMIT);
    /* PIL rejects a bad CRC on the chunks it checks, ancillary ones included; so do we (on all
     * chunks: libspng's default would silently drop an ancillary chunk with a bad CRC). */
    if (!e) e = spng_set_crc_action(ctx, SPNG_CRC_ERROR, SPNG_CRC_ERROR);
    if (!e) e = spng_set_png_buffer(ctx, data, len);
    struct spng_ihdr ih;
    if (!e) e = spng_get_ihdr(ctx, &ih);
    if (e) {
        rc = dfr_error(DFRCL_ERR_FORMAT, "%s: bad PNG header: %s", name, spng_strerror(e));
        goto out;
    }
    rc = check_decoded_size(name, "PNG", ih.width, ih.height);
    if (rc) goto out;

    /* libspng does palette expansion and low-bit-depth grey scaling (to 0..255) itself; 8 and
     * 16-bit samples come raw (host-endian) and are reduced below the way PIL reduces them. */
    int fmt, src_ch, out_ch, wide = ih.bit_depth == 16;
    switch (ih.color_type) {
    case SPNG_COLOR_TYPE_GRAYSCALE:
        fmt = wide ? SPNG_FMT_PNG : SPNG_FMT_G8, src_ch = 1, out_ch = 1;
        break;
    case SPNG_COLOR_TYPE_GRAYSCALE_ALPHA: fmt = SPNG_FMT_PNG, src_ch = 2, out_ch = 1; break;
    case SPNG_COLOR_TYPE_TRUECOLOR: fmt = SPNG_FMT_PNG, src_ch = 3, out_ch = 3; break;
    case SPNG_COLOR_TYPE_TRUECOLOR_ALPHA: fmt = SPNG_FMT_PNG, src_ch = 4, out_ch = 3; break;
    case SPNG_COLOR_TYPE_INDEXED: fmt = SPNG_FMT_RGB8, src_ch = 3, out_ch = 3, wide = 0; break;
    default:
        rc = dfr_error(DFRCL_ERR_FORMAT, "%s: unsupported PNG colour type %d", name,
                       (int)ih.color_type);
        goto out;
    }
    size_t npix = (size_t)ih.width * ih.height, raw_len;
    e = spng_decoded_image_size(ctx, fmt, &raw_len);
    if (e) {
        rc = dfr_error(DFRCL_ERR_FORMAT, "%s: unsupported PNG (colour type %d, %d bit): %s", name,
                       (int)ih.color_type, (int)ih.bit_depth, spng_strerror(e));
        goto out;
    }
    if (raw_len != npix * (size_t)src_ch * (wide ? 2 : 1)) {
        rc = dfr_error(DFRCL_ERR_INTERNAL, "%s: unexpected PNG decode size %zu", name, raw_len);
        goto out;
    }
    raw = malloc(raw_len);
    if (!raw) {
        rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: out of memory for %ux%u PNG", name,
                       (unsigned)ih.width, (unsigned)ih.height);
        goto out;
    }
    /* No SPNG_DECODE_TRNS / _GAMMA: transparency and gamma are ignored, as PIL's convert does. */
    e = spng_decode_image(ctx, raw, raw_len, fmt, 0);
    /* Read on to IEND, so that a file cut after the pixel data, or with a bad CRC on the last
     * IDAT or a later chunk, is still reported as truncated/corrupt. */
    if (!e) e = spng_decode_chunks(ctx);
    if (e) {
        rc = dfr_error(e == SPNG_EMEM ? DFRCL_ERR_HOST_MEMORY : DFRCL_ERR_FORMAT,
                       "%s: corrupt or truncated PNG: %s", name, spng_strerror(e));
        goto out;
    }

    if (src_ch == out_ch && !wide) { /* already what we want */
        px = raw;
        raw = NULL;
    } else {
        px = malloc(npix * (size_t)out_ch);
        if (!px) {
            rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: out of memory for %ux%u PNG", name,
                           (unsigned)ih.width, (unsigned)ih.height);
            goto out;
        }
        const uint16_t *r16 = (const uint16_t *)(const void *)raw;
        if (wide && ih.color_type == SPNG_COLOR_TYPE_GRAYSCALE) {
            /* PIL reads 16-bit grey as an int32 image and clips it to 0..255 when converting. */
            for (size_t i = 0; i < npix; i++) px[i] = r16[i] > 255 ? 255 : (uint8_t)r16[i];
        } else {
            /* Drop alpha (not composited); 16-bit samples keep their high byte. */
            for (size_t i = 0; i < npix; i++)
                for (int c = 0; c < out_ch; c++) {
                    size_t s = i * (size_t)src_ch + (size_t)c;
                    px[i * (size_t)out_ch + (size_t)c] = wide ? (uint8_t)(r16[s] >> 8) : raw[s];
                }
        }
    }
    img->width = (int)ih.width;
    img->height = (int)ih.height;
    img->channels = out_ch;
    img->pixels = px;
    px = NULL;
out:
    free(raw);
    free(px);
    spng_ctx_free(ctx);
    return rc;
}

/* ---- JPEG ----------------------------------------------------------------------------- */

/* PIL's 8-bit a*b/255 with rounding (its MULDIV255 macro, restated). */
static inline int muldiv255(int a, int b)
{
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

/* Whether the marker structure reaches an EOI marker: walks the segments from SOI (skipping
 * each by its length, so an EXIF thumbnail's markers are never seen) and the entropy-coded data
 * after each SOS. libjpeg only warns about a missing end and makes up the rest of the image;
 * PIL reports such a file as truncated, and so do we. */
static int jpeg_reaches_eoi(const uint8_t *d, size_t n)
{
    size_t i = 2; /* after SOI */
    for (;;) {
        /* Next marker: libjpeg skips stray bytes and 0xFF fill bytes in front of it. */
        while (i < n && d[i] != 0xFF) i++;
        while (i < n && d[i] == 0xFF) i++;
        if (i >= n) return 0;
        uint8_t m = d[i++];
        if (m == 0xD9) return 1;                                      /* EOI */
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue; /* no length */
        if (n - i < 2) return 0;
        size_t seg = (size_t)d[i] << 8 | d[i + 1];
        if (seg < 2 || n - i < seg) return 0;
        i += seg;
        if (m == 0xDA) { /* SOS: entropy-coded data runs to the next marker other than RSTn */
            for (;;) {
                while (i < n && d[i] != 0xFF) i++;
                if (n - i < 2) return 0;
                uint8_t c = d[i + 1];
                if (c == 0x00 || (c >= 0xD0 && c <= 0xD7) || c == 0xFF) {
                    i += c == 0xFF ? 1 : 2; /* stuffed byte, restart marker, or fill */
                    continue;
                }
                break; /* a real marker: handled by the outer loop */
            }
        }
    }
}

/* libjpeg warnings after which the image is complete (PIL ignores them). TurboJPEG 2.1 keeps the
 * text of the first warning, but a fatal error's text replaces it and tjGetErrorCode() still
 * says "warning" once any warning was seen: so the text is what tells them apart. */
static int jpeg_benign_warning(const char *msg)
{
    static const char *const ok[] = {
        "Corrupt JPEG data",              /* extraneous bytes, bad Huffman code, bad ICC, ... */
        "Warning: unknown JFIF revision", /* JFIF version we do not know */
        "Inconsistent progression sequence",
        "Unknown Adobe color transform code",
        "Invalid SOS parameters for sequential JPEG",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strncmp(msg, ok[i], strlen(ok[i]))) return 1;
    return 0;
}

static int decode_jpeg(dfrcl_image *img, const uint8_t *data, size_t len, const char *name)
{
    uint8_t *px = NULL;
    int rc = DFRCL_OK;
    if (len > ULONG_MAX)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: JPEG file too large (%zu bytes)", name, len);
    tjhandle tj = tjInitDecompress();
    if (!tj) return dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: cannot create a JPEG decoder", name);
    /* TurboJPEG returns success without touching these for a stream with no frame header
     * (tables only, or cut short), hence the initial values. */
    int w = 0, h = 0, subsamp = -1, cs = -1;
    if (tjDecompressHeader3(tj, data, (unsigned long)len, &w, &h, &subsamp, &cs) != 0 &&
        !(tjGetErrorCode(tj) == TJERR_WARNING && jpeg_benign_warning(tjGetErrorStr2(tj)))) {
        rc = dfr_error(DFRCL_ERR_FORMAT, "%s: bad JPEG header: %s", name, tjGetErrorStr2(tj));
        goto out;
    }
    if (w <= 0 || h <= 0) {
        rc = dfr_error(DFRCL_ERR_FORMAT, "%s: truncated JPEG or no image in it (no frame header)",
                       name);
        goto out;
    }
    rc = check_decoded_size(name, "JPEG", (uint64_t)w, (uint64_t)h);
    if (rc) goto out;
    if (!jpeg_reaches_eoi(data, len)) {
        rc = dfr_error(DFRCL_ERR_FORMAT, "%s: truncated JPEG (the data ends before the "
                                         "end-of-image marker)", name);
        goto out;
    }
    int pf, ch;
    if (cs == TJCS_GRAY) pf = TJPF_GRAY, ch = 1;
    else if (cs == TJCS_CMYK || cs == TJCS_YCCK) pf = TJPF_CMYK, ch = 4;
    else pf = TJPF_RGB, ch = 3;
    size_t npix = (size_t)w * (size_t)h;
    px = malloc(npix * (size_t)ch);
    if (!px) {
        rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: out of memory for %dx%d JPEG", name, w, h);
        goto out;
    }
    /* Default flags = accurate integer IDCT and fancy upsampling, what PIL's libjpeg does.
     * LIMITSCANS refuses progressive files with absurd scan counts (CPU-time bombs). */
    if (tjDecompress2(tj, data, (unsigned long)len, px, w, 0, h, pf, TJFLAG_LIMITSCANS) != 0) {
        const char *msg = tjGetErrorStr2(tj);
        if (tjGetErrorCode(tj) != TJERR_WARNING || !jpeg_benign_warning(msg)) {
            rc = dfr_error(DFRCL_ERR_FORMAT, "%s: corrupt JPEG: %s", name, msg);
            goto out;
        }
        dfr_log(2, "%s: JPEG warning: %s", name, msg);
    }
    if (ch == 4) {
        /* PIL treats CMYK JPEGs as Adobe-inverted (raw mode "CMYK;I"), then converts CMYK to
         * RGB as c' = (255-k) - (c*(255-k))/255, rounded its way. */
        for (size_t i = 0; i < npix; i++) {
            const uint8_t *s = px + 4 * i;
            int nk = s[3]; /* = 255 - k after inversion */
            uint8_t rgb[3];
            for (int c = 0; c < 3; c++) {
                int v = nk - muldiv255(255 - s[c], nk);
                rgb[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
            memcpy(px + 3 * i, rgb, 3); /* 3*i <= 4*i: never overwrites unread input */
        }
        uint8_t *shrunk = realloc(px, npix * 3);
        if (shrunk) px = shrunk;
        ch = 3;
    }
    img->width = w;
    img->height = h;
    img->channels = ch;
    img->pixels = px;
    px = NULL;
out:
    free(px);
    tjDestroy(tj);
    return rc;
}

/* ---- dispatch ------------------------------------------------------------------------- */

static const char *sniff_other(const uint8_t *d, size_t n)
{
    if (n >= 6 && (!memcmp(d, "GIF87a", 6) || !memcmp(d, "GIF89a", 6))) return "GIF";
    if (n >= 2 && !memcmp(d, "BM", 2)) return "BMP";
    if (n >= 4 && (!memcmp(d, "II*\0", 4) || !memcmp(d, "MM\0*", 4))) return "TIFF";
    if (n >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBP", 4)) return "WebP";
    if (n >= 2 && d[0] == 'P' && d[1] >= '1' && d[1] <= '7') return "PNM";
    return NULL;
}

int dfr_image_decode_memory(dfrcl_image *img, const void *data, size_t len, const char *name)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (!name) name = "(image)";
    if (!img) return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: image is NULL", name);
    memset(img, 0, sizeof *img);
    if (!data && len) return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: no data", name);
    const uint8_t *d = data;
    if (len >= 8 && !memcmp(d, png_sig, 8)) return decode_png(img, d, len, name);
    if (len >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF)
        return decode_jpeg(img, d, len, name);
    if (len == 0) return dfr_error(DFRCL_ERR_FORMAT, "%s: empty file", name);
    const char *other = sniff_other(d, len);
    if (other)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: %s images are not supported (PNG or JPEG only)",
                         name, other);
    return dfr_error(DFRCL_ERR_FORMAT, "%s: unknown image format (not PNG or JPEG)", name);
}

DFRCL_API int dfrcl_image_load(dfrcl_image *img, const char *path)
{
    if (!img) return dfr_error(DFRCL_ERR_INVALID_ARG, "dfrcl_image_load: image is NULL");
    memset(img, 0, sizeof *img);
    if (!path) return dfr_error(DFRCL_ERR_INVALID_ARG, "dfrcl_image_load: path is NULL");
    unsigned char *data;
    size_t len;
    int rc = dfr_read_file(path, &data, &len);
    if (rc) return rc;
    rc = dfr_image_decode_memory(img, data, len, path);
    free(data);
    return rc;
}

DFRCL_API void dfrcl_image_free(dfrcl_image *img)
{
    if (!img) return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}

int dfr_image_to_rgb(dfrcl_image *img)
{
    int rc = dfr_image_check(img, "dfr_image_to_rgb");
    if (rc) return rc;
    if (img->channels == 3) return DFRCL_OK;
    if (img->channels != 1)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "cannot convert a %d-channel image to RGB",
                         img->channels);
    size_t n = (size_t)img->width * (size_t)img->height;
    uint8_t *p = realloc(img->pixels, n * 3);
    if (!p)
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory converting %dx%d image to RGB",
                         img->width, img->height);
    /* Back to front, so no grey value is overwritten before it is read. */
    for (size_t i = n; i-- > 0;) p[3 * i] = p[3 * i + 1] = p[3 * i + 2] = p[i];
    img->pixels = p;
    img->channels = 3;
    return DFRCL_OK;
}

/* ---- PNG encode ----------------------------------------------------------------------- */

int dfr_png_encode(uint8_t **out, size_t *out_len, int width, int height, int channels,
                   const uint8_t *px)
{
    static const uint8_t color_type[5] = {0, SPNG_COLOR_TYPE_GRAYSCALE,
                                          SPNG_COLOR_TYPE_GRAYSCALE_ALPHA,
                                          SPNG_COLOR_TYPE_TRUECOLOR,
                                          SPNG_COLOR_TYPE_TRUECOLOR_ALPHA};
    *out = NULL;
    *out_len = 0;
    if (!px || width < 1 || height < 1 || channels < 1 || channels > 4 ||
        (uint64_t)width * (uint64_t)height > DFR_IMAGE_MAX_PIXELS)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "PNG encode: bad image %dx%dx%d", width, height,
                         channels);
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    if (!ctx) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory (PNG encoder)");
    struct spng_ihdr ih = {.width = (uint32_t)width,
                           .height = (uint32_t)height,
                           .bit_depth = 8,
                           .color_type = color_type[channels]};
    int e = spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    /* Fast compression: outputs (overlays, masks, demo data) are many and written often. */
    if (!e) e = spng_set_option(ctx, SPNG_IMG_COMPRESSION_LEVEL, 1);
    if (!e) e = spng_set_ihdr(ctx, &ih);
    size_t n = (size_t)width * (size_t)height * (size_t)channels;
    if (!e) e = spng_encode_image(ctx, px, n, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    void *buf = NULL;
    size_t len = 0;
    if (!e) buf = spng_get_png_buffer(ctx, &len, &e);
    spng_ctx_free(ctx);
    if (e || !buf) {
        free(buf);
        return dfr_error(e == SPNG_EMEM ? DFRCL_ERR_HOST_MEMORY : DFRCL_ERR_INTERNAL,
                         "PNG encode failed: %s", spng_strerror(e));
    }
    *out = buf;
    *out_len = len;
    return DFRCL_OK;
}

int dfr_png_write(const char *path, int width, int height, int channels, const uint8_t *px)
{
    uint8_t *buf;
    size_t len;
    int rc = dfr_png_encode(&buf, &len, width, height, channels, px);
    if (rc) return dfr_error_prefix(rc, "%s", path);
    rc = dfr_write_file_atomic(path, buf, len);
    free(buf);
    return rc;
}

int dfr_image_load_resized(const char *path, int size, dfrcl_image *img, int *orig_w, int *orig_h)
{
    dfrcl_image raw = {0};
    int rc = dfrcl_image_load(&raw, path);
    if (rc) return rc;
    if (orig_w) *orig_w = raw.width;
    if (orig_h) *orig_h = raw.height;
    if (size == 0 || (raw.width == size && raw.height == size)) {
        *img = raw;
        return DFRCL_OK;
    }
    rc = dfrcl_image_resize(img, &raw, size, size);
    dfrcl_image_free(&raw);
    if (rc) return dfr_error_prefix(rc, "%s", path);
    return DFRCL_OK;
}
