/* Image decode (libspng, TurboJPEG) and PNG encode. The pixel conventions, which follow what
 * Pillow 9.4's Image.open(f).convert('L' / 'RGB') gives, are described in image.h. */
#include "io/image.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <spng.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "util/error.h"
#include "util/fsutil.h"

/* libspng keeps ancillary chunks (text, ICC profiles) decompressed in memory: this bounds each
 * one and their total (zTXt bombs), apart from the decoding limit below. Image data (IDAT) is
 * streamed and not subject to it. */
#define PNG_CHUNK_LIMIT ((size_t)64 << 20)
#define MIB ((uint64_t)1 << 20)

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

/* ---- decoding memory limit ------------------------------------------------------------ */

/* Set by dfr_image_set_max_decode_bytes; 0: not set (environment or default). Atomic: decoders
 * run on prefetch threads. */
static _Atomic uint64_t decode_limit_set;

void dfr_image_set_max_decode_bytes(uint64_t bytes)
{
    atomic_store(&decode_limit_set, bytes);
}

int dfr_image_max_decode_bytes(uint64_t *bytes)
{
    *bytes = atomic_load(&decode_limit_set);
    if (*bytes) return DFRCL_OK;
    *bytes = (uint64_t)DFR_IMAGE_DEFAULT_DECODE_MB * MIB;
    const char *env = getenv("DFRCL_MAX_DECODE_MB");
    if (!env || !*env) return DFRCL_OK;
    char *end;
    errno = 0;
    unsigned long long mb = strtoull(env, &end, 10);
    if (errno || *end || *env < '0' || *env > '9' || mb < 1 || mb > DFR_IMAGE_MAX_DECODE_MB)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "DFRCL_MAX_DECODE_MB=\"%s\" is not a whole number of MiB from 1 to %llu",
                         env, (unsigned long long)DFR_IMAGE_MAX_DECODE_MB);
    *bytes = (uint64_t)mb * MIB;
    return DFRCL_OK;
}

/* Refuses a decode whose estimated memory (output pixels + decoder buffers) is over the limit,
 * before any of it is allocated. */
static int check_decode_bytes(const char *name, const char *what, int w, int h, uint64_t need)
{
    uint64_t limit;
    int rc = dfr_image_max_decode_bytes(&limit);
    if (rc) return dfr_error_prefix(rc, "%s", name);
    if (need <= limit) return DFRCL_OK;
    return dfr_error(DFRCL_ERR_FORMAT,
                     "%s: decoding this %dx%d %s needs about %llu MiB (%llu bytes), over the "
                     "limit of %llu MiB per image (possible decompression bomb); if the file is "
                     "trusted, raise the limit with the environment variable "
                     "DFRCL_MAX_DECODE_MB=<MiB>",
                     name, w, h, what, (unsigned long long)((need + MIB - 1) / MIB),
                     (unsigned long long)need, (unsigned long long)(limit / MIB));
}

/* ---- PNG ------------------------------------------------------------------------------ */

/* How a row in libspng's output format becomes a row of ours (see image.h). */
typedef struct png_conv {
    int src_ch, out_ch;
    int wide;   /* 16-bit samples (host-endian) */
    int grey16; /* 16-bit grey: clipped to 255, not shifted */
} png_conv;

/* Converts pixels x0, x0+dx, ... of a decoded row into the same pixels of an output row.
 * Interlaced images deliver a row in up to 4 passes, each with its own x0 and dx. */
static void png_convert_row(const png_conv *c, const uint8_t *src, uint8_t *dst, uint32_t w,
                            uint32_t x0, uint32_t dx)
{
    for (uint32_t x = x0; x < w; x += dx) {
        uint8_t *o = dst + (size_t)x * (size_t)c->out_ch;
        if (!c->wide) {
            memcpy(o, src + (size_t)x * (size_t)c->src_ch, (size_t)c->out_ch); /* drop alpha */
            continue;
        }
        const uint8_t *s = src + (size_t)x * (size_t)c->src_ch * 2;
        for (int ch = 0; ch < c->out_ch; ch++) {
            uint16_t v;
            memcpy(&v, s + 2 * ch, 2);
            /* PIL reads 16-bit grey as int32 and clips it; other 16-bit modes keep the high byte */
            o[ch] = c->grey16 ? (v > 255 ? 255 : (uint8_t)v) : (uint8_t)(v >> 8);
        }
    }
}

/* libspng reads up to the IEND chunk's type but not its CRC: a file cut there, or with a bad
 * CRC there, would pass. Finds IEND by walking the chunks (libspng has checked those before it)
 * and checks that it is whole. */
static int png_check_iend(const uint8_t *d, size_t n, const char *name)
{
    static const uint8_t iend[8] = {0, 0, 0, 0, 'I', 'E', 'N', 'D'};
    static const uint8_t iend_crc[4] = {0xAE, 0x42, 0x60, 0x82}; /* CRC-32 of "IEND" */
    size_t i = 8;
    while (n - i >= 8 && memcmp(d + i, iend, 8)) {
        uint64_t len = (uint64_t)d[i] << 24 | (uint64_t)d[i + 1] << 16 | d[i + 2] << 8 | d[i + 3];
        if (len > n - i - 8 || n - i - 8 - len < 4) break;
        i += 12 + (size_t)len;
    }
    if (n - i < 12)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: truncated PNG (the file ends before the end of "
                                           "its IEND chunk)", name);
    if (memcmp(d + i, iend, 8) || memcmp(d + i + 8, iend_crc, 4))
        return dfr_error(DFRCL_ERR_FORMAT, "%s: corrupt PNG: bad IEND chunk or CRC", name);
    return DFRCL_OK;
}

/* Decodes the rows one at a time (libspng's progressive API) straight into the output image, so
 * that a 16-bit RGBA file never exists whole at 8 bytes per pixel. */
static int png_decode_rows(spng_ctx *ctx, const png_conv *c, uint32_t w, uint8_t *px,
                           uint8_t *row, size_t row_len, int interlaced)
{
    static const uint32_t adam7_x0[7] = {0, 4, 0, 2, 0, 1, 0};
    static const uint32_t adam7_dx[7] = {8, 8, 4, 4, 2, 2, 1};
    size_t out_row = (size_t)w * (size_t)c->out_ch;
    int e;
    do {
        struct spng_row_info ri;
        e = spng_get_row_info(ctx, &ri);
        if (e == SPNG_EOI) return 0; /* interlaced: the last row came before empty passes */
        if (e) return e;
        uint8_t *dst = px + (size_t)ri.row_num * out_row;
        /* Without a conversion, libspng writes (a pass's pixels of) the row in place. */
        e = spng_decode_row(ctx, row ? row : dst, row_len);
        if (e && e != SPNG_EOI) return e;
        if (row) {
            int p = interlaced && ri.pass >= 0 && ri.pass < 7 ? ri.pass : 6;
            png_convert_row(c, row, dst, w, adam7_x0[p], adam7_dx[p]);
        }
    } while (e != SPNG_EOI);
    return 0;
}

static int decode_png(dfrcl_image *img, const uint8_t *data, size_t len, const char *name)
{
    uint8_t *row = NULL, *px = NULL;
    int rc = DFRCL_OK;
    uint64_t limit;
    rc = dfr_image_max_decode_bytes(&limit);
    if (rc) return dfr_error_prefix(rc, "%s", name);
    spng_ctx *ctx = spng_ctx_new(0);
    if (!ctx) return dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: out of memory (PNG decoder)", name);
    size_t chunks = limit < PNG_CHUNK_LIMIT ? (size_t)limit : PNG_CHUNK_LIMIT;
    int e = spng_set_chunk_limits(ctx, chunks, chunks);
    if (!e) e = spng_set_image_limits(ctx, DFR_IMAGE_MAX_PIXELS, DFR_IMAGE_MAX_PIXELS);
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
     * 16-bit samples come raw (host-endian) and are reduced the way PIL reduces them. */
    int fmt;
    png_conv c = {.wide = ih.bit_depth == 16};
    switch (ih.color_type) {
    case SPNG_COLOR_TYPE_GRAYSCALE:
        fmt = c.wide ? SPNG_FMT_PNG : SPNG_FMT_G8, c.src_ch = 1, c.out_ch = 1, c.grey16 = c.wide;
        break;
    case SPNG_COLOR_TYPE_GRAYSCALE_ALPHA: fmt = SPNG_FMT_PNG, c.src_ch = 2, c.out_ch = 1; break;
    case SPNG_COLOR_TYPE_TRUECOLOR: fmt = SPNG_FMT_PNG, c.src_ch = 3, c.out_ch = 3; break;
    case SPNG_COLOR_TYPE_TRUECOLOR_ALPHA: fmt = SPNG_FMT_PNG, c.src_ch = 4, c.out_ch = 3; break;
    case SPNG_COLOR_TYPE_INDEXED: fmt = SPNG_FMT_RGB8, c.src_ch = 3, c.out_ch = 3, c.wide = 0; break;
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
    size_t row_len = raw_len / ih.height;
    if (row_len != (size_t)ih.width * (size_t)c.src_ch * (c.wide ? 2 : 1)) {
        rc = dfr_error(DFRCL_ERR_INTERNAL, "%s: unexpected PNG row size %zu", name, row_len);
        goto out;
    }
    /* Output image + libspng's two scanlines and deinterlacing row + our row + zlib state. */
    static const char *const kind[7] = {"grey", "?", "RGB", "palette", "grey+alpha", "?", "RGBA"};
    char what[48];
    snprintf(what, sizeof what, "%d-bit %s PNG", (int)ih.bit_depth, kind[ih.color_type]);
    rc = check_decode_bytes(name, what, (int)ih.width, (int)ih.height,
                            (uint64_t)npix * (uint64_t)c.out_ch + 4 * (uint64_t)row_len + 256 * 1024);
    if (rc) goto out;
    px = malloc(npix * (size_t)c.out_ch);
    int convert = c.src_ch != c.out_ch || c.wide;
    if (convert) row = malloc(row_len);
    if (!px || (convert && !row)) {
        rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: out of memory for %ux%u PNG", name,
                       (unsigned)ih.width, (unsigned)ih.height);
        goto out;
    }
    /* No SPNG_DECODE_TRNS / _GAMMA: transparency and gamma are ignored, as PIL's convert does. */
    e = spng_decode_image(ctx, NULL, 0, fmt, SPNG_DECODE_PROGRESSIVE);
    if (!e) e = png_decode_rows(ctx, &c, ih.width, px, row, row_len, ih.interlace_method != 0);
    /* Read on to IEND, so that a file cut after the pixel data, or with a bad CRC on the last
     * IDAT or a later chunk, is still reported as truncated/corrupt. */
    if (!e) e = spng_decode_chunks(ctx);
    if (e) {
        rc = dfr_error(e == SPNG_EMEM ? DFRCL_ERR_HOST_MEMORY : DFRCL_ERR_FORMAT,
                       "%s: corrupt or truncated PNG: %s", name, spng_strerror(e));
        goto out;
    }
    rc = png_check_iend(data, len, name);
    if (rc) goto out;
    img->width = (int)ih.width;
    img->height = (int)ih.height;
    img->channels = c.out_ch;
    img->pixels = px;
    px = NULL;
out:
    free(row);
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

/* What the marker structure of a JPEG says, read without decoding. */
typedef struct jpeg_layout {
    int eoi;            /* the markers reach an end-of-image marker */
    int sof;            /* first frame header's marker (0xC0..0xCF), 0 if none */
    int w, h, ncomp;    /* from that frame header */
    int hs[4], vs[4];   /* sampling factors */
    int hmax, vmax;
    int scans;          /* SOS markers */
    size_t scan_bytes;  /* entropy-coded bytes after all SOS markers */
} jpeg_layout;

static void jpeg_read_sof(jpeg_layout *L, const uint8_t *s, size_t seg)
{
    if (seg < 8) return;
    int nc = s[7];
    if (nc < 1 || nc > 4 || seg < 8 + 3 * (size_t)nc) return;
    L->h = s[3] << 8 | s[4];
    L->w = s[5] << 8 | s[6];
    L->ncomp = nc;
    L->hmax = L->vmax = 1;
    for (int c = 0; c < nc; c++) {
        int hv = s[8 + 3 * c + 1];
        L->hs[c] = hv >> 4 ? hv >> 4 : 1;
        L->vs[c] = hv & 15 ? hv & 15 : 1;
        if (L->hs[c] > L->hmax) L->hmax = L->hs[c];
        if (L->vs[c] > L->vmax) L->vmax = L->vs[c];
    }
}

/* Walks the segments from SOI (skipping each by its length, so an EXIF thumbnail's markers are
 * never seen) and the entropy-coded data after each SOS, up to an EOI marker. libjpeg only warns
 * about a missing end and makes up the rest of the image; PIL reports such a file as truncated,
 * and so do we. */
static void jpeg_walk(const uint8_t *d, size_t n, jpeg_layout *L)
{
    memset(L, 0, sizeof *L);
    size_t i = 2; /* after SOI */
    for (;;) {
        /* Next marker: libjpeg skips stray bytes and 0xFF fill bytes in front of it. */
        while (i < n && d[i] != 0xFF) i++;
        while (i < n && d[i] == 0xFF) i++;
        if (i >= n) return;
        uint8_t m = d[i++];
        if (m == 0xD9) { /* EOI */
            L->eoi = 1;
            return;
        }
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue; /* no length */
        if (n - i < 2) return;
        size_t seg = (size_t)d[i] << 8 | d[i + 1];
        if (seg < 2 || n - i < seg) return;
        /* SOFn: C0-CF but DHT (C4), JPG (C8) and DAC (CC) */
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC && !L->sof) {
            L->sof = m;
            jpeg_read_sof(L, d + i, seg);
        }
        i += seg;
        if (m == 0xDA) { /* SOS: entropy-coded data runs to the next marker other than RSTn */
            L->scans++;
            size_t start = i;
            for (;;) {
                while (i < n && d[i] != 0xFF) i++;
                if (n - i < 2) return;
                uint8_t c = d[i + 1];
                if (c == 0x00 || (c >= 0xD0 && c <= 0xD7) || c == 0xFF) {
                    i += c == 0xFF ? 1 : 2; /* stuffed byte, restart marker, or fill */
                    continue;
                }
                break; /* a real marker: handled by the outer loop */
            }
            L->scan_bytes += i - start;
        }
    }
}

/* Blocks of 8x8 samples of component c as libjpeg stores them (padded to whole MCUs). */
static uint64_t jpeg_comp_blocks(const jpeg_layout *L, int c)
{
    uint64_t bw = ((uint64_t)L->w * L->hs[c] + (uint64_t)L->hmax * 8 - 1) / ((uint64_t)L->hmax * 8);
    uint64_t bh = ((uint64_t)L->h * L->vs[c] + (uint64_t)L->vmax * 8 - 1) / ((uint64_t)L->vmax * 8);
    bw = (bw + (uint64_t)L->hs[c] - 1) / L->hs[c] * L->hs[c];
    bh = (bh + (uint64_t)L->vs[c] - 1) / L->vs[c] * L->vs[c];
    return bw * bh;
}

/* A Huffman sequential scan codes each block in at least 2 bits (a DC code and an end-of-block
 * or AC code, each at least 1 bit), and every scan holds at least one block per MCU of the
 * whole frame. A file with less scan data than half that bound is cut short (the classic
 * bomb: a big frame header in front of a few bytes). Progressive and arithmetic-coded files can
 * legitimately be far smaller, so they are not checked here. */
static int jpeg_scan_too_short(const jpeg_layout *L, uint64_t *min_bytes)
{
    if (L->sof != 0xC0 && L->sof != 0xC1) return 0;
    uint64_t mcus = ((uint64_t)L->w + 8 * (uint64_t)L->hmax - 1) / (8 * (uint64_t)L->hmax) *
                    (((uint64_t)L->h + 8 * (uint64_t)L->vmax - 1) / (8 * (uint64_t)L->vmax));
    *min_bytes = mcus / 8; /* 1 bit per MCU: half the least a complete scan needs */
    return L->scan_bytes < *min_bytes;
}

/* Memory tjDecompress2 needs besides the output image: a few MCU rows of every component, and
 * for progressive or multi-scan files libjpeg's whole-image coefficient buffer (2 bytes for each
 * of the 64 coefficients of every block). */
static uint64_t jpeg_work_bytes(const jpeg_layout *L)
{
    uint64_t rows = ((uint64_t)L->w + 16 * (uint64_t)L->hmax) * 16 * (uint64_t)L->vmax *
                    (uint64_t)L->ncomp * 4;
    uint64_t coef = 0;
    int buffered = L->sof == 0xC2 || L->sof == 0xC6 || L->sof == 0xCA || L->sof == 0xCE ||
                   L->scans > 1;
    if (buffered)
        for (int c = 0; c < L->ncomp; c++) coef += jpeg_comp_blocks(L, c) * 64 * 2;
    return rows + coef + MIB;
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
    /* "Corrupt JPEG data: premature end of data segment": scan data is missing and libjpeg made
     * up the rest of the image (grey). That is a truncated file, not a blemish. */
    if (strstr(msg, "premature end")) return 0;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strncmp(msg, ok[i], strlen(ok[i]))) return 1;
    return 0;
}

/* Whether the file's structure is whole and its decode fits the memory limit: all checked from
 * the markers, before any pixel memory is allocated. */
static int jpeg_check_layout(const uint8_t *data, size_t len, const char *name, int w, int h,
                             int ch)
{
    jpeg_layout L;
    jpeg_walk(data, len, &L);
    if (!L.eoi)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: truncated JPEG (the data ends before the "
                                           "end-of-image marker)", name);
    if (L.w != w || L.h != h || !L.ncomp) { /* not the frame libjpeg read: assume the worst */
        L.w = w, L.h = h, L.ncomp = 4, L.hmax = L.vmax = 1, L.sof = 0xC2;
        for (int c = 0; c < 4; c++) L.hs[c] = L.vs[c] = 1;
    }
    uint64_t min_bytes;
    if (jpeg_scan_too_short(&L, &min_bytes))
        return dfr_error(DFRCL_ERR_FORMAT,
                         "%s: truncated or corrupt JPEG: its %zu bytes of scan data cannot hold "
                         "a %dx%d image (at least %llu bytes needed); the scan data is missing",
                         name, L.scan_bytes, w, h, (unsigned long long)min_bytes);
    return check_decode_bytes(name, "JPEG", w, h,
                              (uint64_t)w * (uint64_t)h * (uint64_t)ch + jpeg_work_bytes(&L));
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
    int pf, ch;
    if (cs == TJCS_GRAY) pf = TJPF_GRAY, ch = 1;
    else if (cs == TJCS_CMYK || cs == TJCS_YCCK) pf = TJPF_CMYK, ch = 4;
    else pf = TJPF_RGB, ch = 3;
    rc = jpeg_check_layout(data, len, name, w, h, ch);
    if (rc) goto out;
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
    if (!img) return dfr_error(DFRCL_ERR_INVALID_ARG, "dfrcl_image_load: img is NULL");
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
