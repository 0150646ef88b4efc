/* Image decode, PNG encode and resize.
 *  - PNGs of every colour type and bit depth (palette, tRNS, Adam7 included) and JPEGs (grey,
 *    4:2:0, 4:4:4, progressive 4:2:2, CMYK) decode to exactly what Pillow's convert('L'/'RGB')
 *    gives (tests/fixtures/image_*.pil.png, made by tools/make_resize_fixtures.py);
 *  - every cut of every fixture, and byte flips, fail cleanly (DFRCL_ERR_FORMAT naming the file);
 *    JPEG warnings that leave a whole image are tolerated (as PIL does), fatal errors are not;
 *  - decompression bombs, unknown formats, missing files;
 *  - resize equals PIL's Image.resize(BILINEAR) on synthetic images (fixtures resize_c*.png),
 *    plus properties (constant images stay constant, channels are independent, in place).
 * With the argument --shared it instead compares against PIL on the shared data set images
 * (exit 77 when ../shared is absent). Run it under valgrind or ASan: no crash, no leak. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <malloc.h>
#include <spng.h>
#include <turbojpeg.h>

#include "io/image.h"
#include "io/prefetch.h"
#include "testutil.h"
#include "util/error.h"
#include "util/fsutil.h"

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
    static char buf[sizeof tmpdir + 256];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

static void assert_msg_has(const char *s)
{
    if (!strstr(dfrcl_last_error(), s)) {
        fprintf(stderr, "message \"%s\" lacks \"%s\"\n", dfrcl_last_error(), s);
        fail();
    }
}

static void assert_zeroed(const dfrcl_image *im)
{
    assert_null(im->pixels);
    assert_int_equal(im->width, 0);
    assert_int_equal(im->height, 0);
    assert_int_equal(im->channels, 0);
}

static unsigned char *read_all(const char *path, size_t *len)
{
    unsigned char *d;
    if (dfr_read_file(path, &d, len) != DFRCL_OK) {
        fprintf(stderr, "%s\n", dfrcl_last_error());
        fail();
    }
    return d;
}

/* An 8-bit PNG exactly as stored (all channels, alpha kept): reads the fixtures independently of
 * the decoder under test. */
static dfrcl_image read_png_raw(const char *path)
{
    size_t len;
    unsigned char *data = read_all(path, &len);
    spng_ctx *ctx = spng_ctx_new(0);
    assert_non_null(ctx);
    assert_int_equal(spng_set_png_buffer(ctx, data, len), 0);
    struct spng_ihdr ih;
    assert_int_equal(spng_get_ihdr(ctx, &ih), 0);
    assert_int_equal(ih.bit_depth, 8);
    int ch = ih.color_type == SPNG_COLOR_TYPE_GRAYSCALE         ? 1
             : ih.color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA ? 2
             : ih.color_type == SPNG_COLOR_TYPE_TRUECOLOR       ? 3
             : ih.color_type == SPNG_COLOR_TYPE_TRUECOLOR_ALPHA ? 4
                                                                : 0;
    assert_true(ch > 0);
    size_t n;
    assert_int_equal(spng_decoded_image_size(ctx, SPNG_FMT_PNG, &n), 0);
    assert_int_equal(n, (size_t)ih.width * ih.height * ch);
    dfrcl_image im = {(int)ih.width, (int)ih.height, ch, malloc(n)};
    assert_non_null(im.pixels);
    assert_int_equal(spng_decode_image(ctx, im.pixels, n, SPNG_FMT_PNG, 0), 0);
    spng_ctx_free(ctx);
    free(data);
    return im;
}

/* Max |a-b| over two images of the same shape (fails on a shape mismatch). */
static int max_diff(const dfrcl_image *a, const dfrcl_image *b, const char *what)
{
    if (a->width != b->width || a->height != b->height || a->channels != b->channels) {
        fprintf(stderr, "%s: shape %dx%dx%d, want %dx%dx%d\n", what, a->width, a->height,
                a->channels, b->width, b->height, b->channels);
        fail();
    }
    size_t n = (size_t)a->width * a->height * a->channels;
    int worst = 0;
    size_t at = 0, count = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a->pixels[i] - (int)b->pixels[i]);
        if (d) count++;
        if (d > worst) worst = d, at = i;
    }
    if (worst)
        fprintf(stderr, "%s: max diff %d at %zu (got %d want %d), %zu of %zu differ\n", what,
                worst, at, a->pixels[at], b->pixels[at], count, n);
    return worst;
}

/* ---- decode vs PIL -------------------------------------------------------------------- */

typedef struct decode_case {
    const char *kind;
    int jpeg, channels;
} decode_case;

/* Keep in step with decode_cases() in tools/make_resize_fixtures.py. */
static const decode_case decode_cases[] = {
    {"g1", 0, 1},     {"g2", 0, 1},      {"g4", 0, 1},     {"g8", 0, 1},
    {"g16", 0, 1},    {"ga8", 0, 1},     {"ga16", 0, 1},   {"rgb8", 0, 3},
    {"rgb16", 0, 3},  {"rgba8", 0, 3},   {"rgba16", 0, 3}, {"p1", 0, 3},
    {"p2", 0, 3},     {"p4", 0, 3},      {"p8", 0, 3},     {"p8trns", 0, 3},
    {"g8trns", 0, 1}, {"rgb8i", 0, 3},   {"g16i", 0, 1},   {"jgrey", 1, 1},
    {"jrgb420", 1, 3}, {"jrgb444", 1, 3}, {"jrgb422prog", 1, 3}, {"jcmyk", 1, 3},
};
#define N_DECODE (sizeof decode_cases / sizeof decode_cases[0])

static const char *case_file(const decode_case *c, int expected)
{
    static char name[64];
    snprintf(name, sizeof name, "image_%s.%s", c->kind,
             expected ? "pil.png" : c->jpeg ? "jpg" : "png");
    return dfr_test_fixture(name);
}

static const decode_case *find_case(const char *kind)
{
    for (size_t i = 0; i < N_DECODE; i++)
        if (!strcmp(decode_cases[i].kind, kind)) return &decode_cases[i];
    fail_msg("no decode case %s", kind);
    return NULL;
}

static void test_decode_matches_pil(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_DECODE; i++) {
        const decode_case *c = &decode_cases[i];
        dfrcl_image want = read_png_raw(case_file(c, 1));
        dfrcl_image got;
        int rc = dfrcl_image_load(&got, case_file(c, 0));
        if (rc) fprintf(stderr, "%s\n", dfrcl_last_error());
        assert_int_equal(rc, DFRCL_OK);
        assert_int_equal(got.channels, c->channels);
        /* Same libjpeg-turbo as PIL on Debian 12: exact. Another libjpeg may differ by 1. */
        assert_int_equal(max_diff(&got, &want, c->kind), 0);
        dfrcl_image_free(&got);
        assert_zeroed(&got);
        dfrcl_image_free(&want);
    }
}

/* The format comes from the content: a PNG named .jpg, a JPEG named .png, no extension. */
static void test_decode_by_magic(void **state)
{
    (void)state;
    const char *names[] = {"png_named.jpg", "jpeg_named.png", "noext"};
    const decode_case *srcs[] = {find_case("g8"), find_case("jrgb420"), find_case("rgb8")};
    for (int i = 0; i < 3; i++) {
        size_t len;
        unsigned char *d = read_all(case_file(srcs[i], 0), &len);
        assert_int_equal(dfr_write_file_atomic(tmp_path(names[i]), d, len), DFRCL_OK);
        dfrcl_image a, b;
        assert_int_equal(dfrcl_image_load(&a, tmp_path(names[i])), DFRCL_OK);
        assert_int_equal(dfr_image_decode_memory(&b, d, len, "x"), DFRCL_OK);
        assert_int_equal(max_diff(&a, &b, names[i]), 0);
        assert_int_equal(a.channels, srcs[i]->channels);
        dfrcl_image_free(&a);
        dfrcl_image_free(&b);
        free(d);
    }
}

/* ---- broken input --------------------------------------------------------------------- */

/* Every prefix of every fixture must fail, naming the file, and leave the image zeroed. (PIL is
 * laxer: it takes a JPEG without its EOI marker, a PNG cut after the zlib stream.) That includes
 * a PNG missing only (part of) the CRC of its IEND chunk, which libspng itself does not read. */
static void test_truncated(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_DECODE; i++) {
        const decode_case *c = &decode_cases[i];
        size_t len;
        unsigned char *full = read_all(case_file(c, 0), &len);
        dfrcl_image ref;
        assert_int_equal(dfr_image_decode_memory(&ref, full, len, "full"), DFRCL_OK);
        for (size_t cut = 0; cut < len; cut++) {
            char name[96];
            snprintf(name, sizeof name, "cut-%s-%zu.img", c->kind, cut);
            /* A fresh copy of exactly `cut` bytes, so reading past it is an ASan/valgrind error. */
            unsigned char *d = malloc(cut ? cut : 1);
            assert_non_null(d);
            memcpy(d, full, cut);
            dfrcl_image im = {7, 7, 7, (uint8_t *)d}; /* junk: must be overwritten */
            int rc = dfr_image_decode_memory(&im, d, cut, name);
            if (rc == DFRCL_OK) {
                fprintf(stderr, "%s decoded although cut at %zu of %zu\n", c->kind, cut, len);
                fail();
            }
            assert_int_equal(rc, DFRCL_ERR_FORMAT);
            assert_msg_has(name);
            assert_zeroed(&im);
            free(d);
        }
        dfrcl_image_free(&ref);
        free(full);
    }
}

/* One byte changed at many places. PNG chunks carry CRCs, and we check them all (the final IEND
 * CRC, which libspng does not read, included), so every change must fail. A JPEG has no checksum
 * and may decode to other pixels, but must never crash, leak or return anything but OK or
 * DFRCL_ERR_FORMAT. */
static void test_corrupt_bytes(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_DECODE; i++) {
        const decode_case *c = &decode_cases[i];
        size_t len;
        unsigned char *d = read_all(case_file(c, 0), &len);
        size_t step = c->jpeg ? 3 : 1;
        for (size_t pos = 0; pos < len; pos += step) {
            static const uint8_t flips[] = {0x01, 0x80, 0xFF};
            for (int f = 0; f < 3; f++) {
                d[pos] ^= flips[f];
                char name[96];
                snprintf(name, sizeof name, "flip-%s-%zu-%d", c->kind, pos, f);
                dfrcl_image im;
                int rc = dfr_image_decode_memory(&im, d, len, name);
                if (rc == DFRCL_OK) {
                    if (!c->jpeg) {
                        fprintf(stderr, "%s: PNG with byte %zu changed decoded\n", c->kind, pos);
                        fail();
                    }
                    assert_non_null(im.pixels);
                    assert_true(im.channels == 1 || im.channels == 3);
                    dfrcl_image_free(&im);
                } else {
                    assert_int_equal(rc, DFRCL_ERR_FORMAT);
                    assert_msg_has(name);
                    assert_zeroed(&im);
                }
                d[pos] ^= flips[f];
            }
        }
        free(d);
    }
}

/* Inserts `ins` (n bytes) in front of the first occurrence of marker FF <m>. */
static unsigned char *insert_before_marker(const unsigned char *d, size_t len, uint8_t m,
                                           const char *ins, size_t n, size_t *out_len)
{
    size_t at = 0;
    for (size_t i = 2; i + 1 < len; i++)
        if (d[i] == 0xFF && d[i + 1] == m) {
            at = i;
            break;
        }
    assert_true(at > 0);
    unsigned char *o = malloc(len + n);
    assert_non_null(o);
    memcpy(o, d, at);
    memcpy(o + at, ins, n);
    memcpy(o + at + n, d + at, len - at);
    *out_len = len + n;
    return o;
}

/* libjpeg only warns about stray bytes before a marker and decodes the whole image; PIL takes
 * such files, so must we, with the same pixels. A fatal error after such a warning must still
 * fail: TurboJPEG 2.1 then reports the error code as a mere warning. */
static void test_jpeg_warnings(void **state)
{
    (void)state;
    size_t len, n2;
    const decode_case *c = find_case("jrgb420");
    unsigned char *d = read_all(case_file(c, 0), &len);
    dfrcl_image ref, im;
    assert_int_equal(dfr_image_decode_memory(&ref, d, len, "ref"), DFRCL_OK);
    static const uint8_t markers[] = {0xDB, 0xC4, 0xDA, 0xD9}; /* DQT, DHT, SOS, EOI */
    for (int k = 0; k < 4; k++) {
        unsigned char *e = insert_before_marker(d, len, markers[k], "garbage", 7, &n2);
        assert_int_equal(dfr_image_decode_memory(&im, e, n2, "stray.jpg"), DFRCL_OK);
        assert_int_equal(max_diff(&im, &ref, "stray bytes"), 0);
        dfrcl_image_free(&im);
        free(e);
    }
    dfrcl_image_free(&ref);
    free(d);

    /* Progressive file: stray bytes before DQT (a warning, also in the header pass), then a
     * bogus DHT between two scans, which only the full decode meets (fatal). TurboJPEG 2.1
     * says TJERR_WARNING for this; the pixels are incomplete. */
    c = find_case("jrgb422prog");
    d = read_all(case_file(c, 0), &len);
    unsigned char *e = insert_before_marker(d, len, 0xDB, "garbage", 7, &n2);
    assert_int_equal(dfr_image_decode_memory(&im, e, n2, "stray2.jpg"), DFRCL_OK);
    dfrcl_image_free(&im);
    size_t sos = 0, dht = 0;
    for (size_t i = 2; i + 1 < n2 && !sos; i++)
        if (e[i] == 0xFF && e[i + 1] == 0xDA) sos = i;
    for (size_t i = sos; i + 21 < n2 && !dht; i++)
        if (e[i] == 0xFF && e[i + 1] == 0xC4) dht = i;
    assert_true(sos > 0 && dht > sos);
    memset(e + dht + 5, 0xFF, 16); /* 16 code lengths of 255 codes each: bogus table */
    assert_int_equal(dfr_image_decode_memory(&im, e, n2, "bogus.jpg"), DFRCL_ERR_FORMAT);
    assert_msg_has("bogus.jpg");
    assert_msg_has("Huffman");
    assert_zeroed(&im);
    free(e);
    free(d);
}

static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

/* Headers announcing huge images are refused before any pixel buffer is allocated. */
static void test_bombs(void **state)
{
    (void)state;
    /* PNG: a real 8-bit grey fixture with IHDR rewritten to 20000 x 20000 (valid CRC). */
    size_t len;
    unsigned char *d = read_all(case_file(find_case("g8"), 0), &len);
    assert_memory_equal(d + 12, "IHDR", 4);
    put_be32(d + 16, 20000);
    put_be32(d + 20, 20000);
    put_be32(d + 29, crc32_png(d + 12, 17));
    dfrcl_image im;
    assert_int_equal(dfr_image_decode_memory(&im, d, len, "bomb.png"), DFRCL_ERR_FORMAT);
    assert_msg_has("bomb.png");
    assert_msg_has("20000x20000");
    assert_msg_has("exceeds");
    assert_zeroed(&im);
    /* allowed size but the data is missing: still an error, not a crash */
    put_be32(d + 16, 3000);
    put_be32(d + 20, 3000);
    put_be32(d + 29, crc32_png(d + 12, 17));
    assert_int_equal(dfr_image_decode_memory(&im, d, len, "big.png"), DFRCL_ERR_FORMAT);
    assert_msg_has("big.png");
    assert_zeroed(&im);
    /* zero width is malformed */
    put_be32(d + 16, 0);
    put_be32(d + 29, crc32_png(d + 12, 17));
    assert_int_equal(dfr_image_decode_memory(&im, d, len, "zero.png"), DFRCL_ERR_FORMAT);
    assert_msg_has("zero.png");
    free(d);

    /* JPEG: the SOF frame header of the grey fixture rewritten to 60000 x 60000. */
    d = read_all(case_file(find_case("jgrey"), 0), &len);
    size_t sof = 0;
    for (size_t i = 2; i + 9 < len; i++)
        if (d[i] == 0xFF && (d[i + 1] == 0xC0 || d[i + 1] == 0xC1 || d[i + 1] == 0xC2)) {
            sof = i;
            break;
        }
    assert_true(sof > 0);
    d[sof + 5] = 60000 >> 8, d[sof + 6] = 60000 & 255; /* height */
    d[sof + 7] = 60000 >> 8, d[sof + 8] = 60000 & 255; /* width */
    assert_int_equal(dfr_image_decode_memory(&im, d, len, "bomb.jpg"), DFRCL_ERR_FORMAT);
    assert_msg_has("bomb.jpg");
    assert_msg_has("60000x60000");
    assert_zeroed(&im);
    free(d);
}

static void test_unknown_and_missing(void **state)
{
    (void)state;
    static const struct {
        const char *data;
        size_t len;
        const char *says;
    } cases[] = {
        {"", 0, "empty"},
        {"hello, world\n", 13, "unknown image format"},
        {"\x89PNG", 4, "unknown image format"},      /* too short to be a PNG */
        {"\xFF\xD8", 2, "unknown image format"},     /* too short to be a JPEG */
        {"\x89PNG\r\n\x1a\n", 8, "bad PNG header"},  /* signature only */
        {"\xFF\xD8\xFF\xD9", 4, "no frame header"},  /* SOI then EOI */
        {"GIF89a\x01\x00\x01\x00", 10, "GIF images are not supported"},
        {"BM\x00\x00\x00\x00", 6, "BMP images are not supported"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dfrcl_image im;
        char name[32];
        snprintf(name, sizeof name, "case%zu.png", i);
        assert_int_equal(dfr_image_decode_memory(&im, cases[i].data, cases[i].len, name),
                         DFRCL_ERR_FORMAT);
        assert_msg_has(name);
        assert_msg_has(cases[i].says);
        assert_zeroed(&im);
    }
    /* the same through a file */
    assert_int_equal(dfr_write_file_atomic(tmp_path("text.png"), "not an image", 12), DFRCL_OK);
    dfrcl_image im;
    assert_int_equal(dfrcl_image_load(&im, tmp_path("text.png")), DFRCL_ERR_FORMAT);
    assert_msg_has(tmp_path("text.png"));
    assert_zeroed(&im);
    /* a missing file is an I/O error, not a format error */
    assert_int_equal(dfrcl_image_load(&im, tmp_path("absent.png")), DFRCL_ERR_IO);
    assert_msg_has("absent.png");
    assert_zeroed(&im);
    assert_int_equal(dfrcl_image_load(&im, NULL), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfrcl_image_load(NULL, "x"), DFRCL_ERR_INVALID_ARG);
    dfrcl_image_free(NULL);
}

/* ---- PNG write, grey -> RGB ----------------------------------------------------------- */

static int count_files(void)
{
    int n = 0;
    DIR *dir = opendir(tmpdir);
    assert_non_null(dir);
    struct dirent *e;
    while ((e = readdir(dir)))
        if (e->d_name[0] != '.') n++;
    closedir(dir);
    return n;
}

static void test_png_write(void **state)
{
    (void)state;
    const int w = 29, h = 13;
    for (int ch = 1; ch <= 4; ch++) {
        uint8_t *px = malloc((size_t)w * h * ch);
        assert_non_null(px);
        for (int i = 0; i < w * h * ch; i++) px[i] = (uint8_t)dfr_test_hash(ch, (uint32_t)i);
        char name[32];
        snprintf(name, sizeof name, "w%d.png", ch);
        int before = count_files();
        assert_int_equal(dfr_png_write(tmp_path(name), w, h, ch, px), DFRCL_OK);
        assert_int_equal(count_files(), before + 1); /* no temp file left */
        dfrcl_image raw = read_png_raw(tmp_path(name));
        dfrcl_image want = {w, h, ch, px};
        assert_int_equal(max_diff(&raw, &want, name), 0);
        dfrcl_image_free(&raw);
        /* through the decoder: alpha dropped, grey stays grey */
        dfrcl_image im;
        assert_int_equal(dfrcl_image_load(&im, tmp_path(name)), DFRCL_OK);
        int oc = ch <= 2 ? 1 : 3;
        assert_int_equal(im.channels, oc);
        for (int i = 0; i < w * h; i++)
            for (int c = 0; c < oc; c++) assert_int_equal(im.pixels[i * oc + c], px[i * ch + c]);
        dfrcl_image_free(&im);
        free(px);
    }
    uint8_t px[4] = {0};
    int before = count_files();
    assert_int_equal(dfr_png_write(tmp_path("bad.png"), 0, 1, 1, px), DFRCL_ERR_INVALID_ARG);
    assert_msg_has("bad.png");
    assert_int_equal(dfr_png_write(tmp_path("bad.png"), 1, 1, 5, px), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_png_write(tmp_path("bad.png"), 1, 1, 1, NULL), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_png_write(tmp_path("no/such/dir/x.png"), 1, 1, 1, px), DFRCL_ERR_IO);
    assert_int_equal(count_files(), before);
}

/* Encodes a 5x1 grey PNG with an ICC profile of `profile_len` bytes (zlib-compressed by libspng);
 * returns the file bytes (free()). */
static unsigned char *png_with_iccp(size_t profile_len, size_t *len)
{
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    assert_non_null(ctx);
    assert_int_equal(spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1), 0);
    struct spng_ihdr ih = {.width = 5, .height = 1, .bit_depth = 8,
                           .color_type = SPNG_COLOR_TYPE_GRAYSCALE};
    assert_int_equal(spng_set_ihdr(ctx, &ih), 0);
    struct spng_iccp icc = {.profile_name = "big", .profile_len = profile_len,
                            .profile = calloc(profile_len, 1)};
    assert_non_null(icc.profile);
    assert_int_equal(spng_set_iccp(ctx, &icc), 0);
    static const uint8_t px[5] = {0, 60, 120, 180, 240};
    assert_int_equal(spng_encode_image(ctx, px, 5, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE), 0);
    int e;
    unsigned char *buf = spng_get_png_buffer(ctx, len, &e);
    assert_int_equal(e, 0);
    assert_non_null(buf);
    spng_ctx_free(ctx);
    free(icc.profile);
    return buf;
}

/* A small file may carry a large compressed ICC profile or text (PIL reads it): fine. One that
 * inflates to more than 64 MiB is refused (a zTXt/iCCP bomb), not decompressed into memory. */
static void test_png_ancillary_limits(void **state)
{
    (void)state;
    size_t len;
    unsigned char *d = png_with_iccp(1 << 20, &len);
    assert_true(len < 4096); /* 1 MiB of zeros compresses to ~1 KB */
    dfrcl_image im;
    int rc = dfr_image_decode_memory(&im, d, len, "icc.png");
    if (rc) fprintf(stderr, "%s\n", dfrcl_last_error());
    assert_int_equal(rc, DFRCL_OK);
    assert_int_equal(im.width, 5);
    assert_int_equal(im.pixels[4], 240);
    dfrcl_image_free(&im);
    free(d);
    d = png_with_iccp((size_t)65 << 20, &len);
    assert_int_equal(dfr_image_decode_memory(&im, d, len, "iccbomb.png"), DFRCL_ERR_FORMAT);
    assert_msg_has("limits");
    assert_msg_has("iccbomb.png");
    assert_zeroed(&im);
    free(d);
}

/* ---- decoding memory: limit, row-by-row PNG, JPEG scan data -------------------------------- */

/* Offsets in a JPEG: the first byte after the first SOS header, and the EOI marker. */
static void jpeg_scan_bounds(const unsigned char *d, size_t len, size_t *scan, size_t *eoi)
{
    *scan = *eoi = 0;
    for (size_t i = 2; i + 3 < len && !*scan; i++)
        if (d[i] == 0xFF && d[i + 1] == 0xDA) *scan = i + 2 + (size_t)(d[i + 2] << 8 | d[i + 3]);
    assert_true(*scan > 0 && *scan < len);
    assert_true(len >= 2 && d[len - 2] == 0xFF && d[len - 1] == 0xD9);
    *eoi = len - 2;
}

/* Writes w x h into a JPEG's first frame header. */
static void jpeg_set_size(unsigned char *d, size_t len, int w, int h)
{
    for (size_t i = 2; i + 9 < len; i++)
        if (d[i] == 0xFF && d[i + 1] >= 0xC0 && d[i + 1] <= 0xC2) {
            d[i + 5] = (uint8_t)(h >> 8), d[i + 6] = (uint8_t)h;
            d[i + 7] = (uint8_t)(w >> 8), d[i + 8] = (uint8_t)w;
            return;
        }
    fail_msg("no frame header");
}

/* The classic JPEG bomb: a small file whose frame header says 16000 x 16000, with the scan data
 * of a tiny image. It used to decode (rc 0, libjpeg "premature end of data segment" taken as a
 * harmless warning) into a made-up 768 MB image; it must be refused from the markers alone,
 * even with the memory limit raised, and fast. */
static void test_jpeg_bomb_missing_scan(void **state)
{
    (void)state;
    const char *kinds[] = {"jgrey", "jrgb420", "jrgb444"};
    for (int k = 0; k < 3; k++) {
        size_t len;
        unsigned char *d = read_all(case_file(find_case(kinds[k]), 0), &len);
        assert_true(len < 1200);
        jpeg_set_size(d, len, 16000, 16000);
        for (int raised = 0; raised <= 1; raised++) {
            dfr_image_set_max_decode_bytes(raised ? (uint64_t)4 << 30 : 0);
            dfrcl_image im;
            assert_int_equal(dfr_image_decode_memory(&im, d, len, "bomb16k.jpg"),
                             DFRCL_ERR_FORMAT);
            assert_msg_has("bomb16k.jpg");
            assert_msg_has("16000x16000");
            assert_msg_has("scan data");
            assert_zeroed(&im);
        }
        dfr_image_set_max_decode_bytes(0);
        free(d);
    }
}

/* Scan data cut in the middle, the end-of-image marker still there: libjpeg warns "premature end
 * of data segment" and fills the rest in grey. That is a truncated file. */
static void test_jpeg_truncated_scan(void **state)
{
    (void)state;
    const char *kinds[] = {"jgrey", "jrgb420", "jrgb444", "jcmyk"};
    for (int k = 0; k < 4; k++) {
        size_t len, scan, eoi;
        unsigned char *d = read_all(case_file(find_case(kinds[k]), 0), &len);
        jpeg_scan_bounds(d, len, &scan, &eoi);
        size_t keep = scan + (eoi - scan) / 2;
        memmove(d + keep, d + eoi, 2); /* ... half the scan data, then EOI */
        char name[64];
        snprintf(name, sizeof name, "halfscan-%s.jpg", kinds[k]);
        dfrcl_image im;
        assert_int_equal(dfr_image_decode_memory(&im, d, keep + 2, name), DFRCL_ERR_FORMAT);
        assert_msg_has(name);
        assert_msg_has("premature end");
        assert_zeroed(&im);
        free(d);
    }
}

/* A PNG header declaring an image inside the pixel limit but over the memory limit: refused
 * from the header, the message giving the size, the memory needed, the limit and its knob. */
static void test_png_over_memory_limit(void **state)
{
    (void)state;
    size_t len;
    unsigned char *d = read_all(case_file(find_case("g8"), 0), &len);
    put_be32(d + 16, 16000);
    put_be32(d + 20, 16000);
    d[24] = 16, d[25] = 6; /* 16-bit RGBA */
    put_be32(d + 29, crc32_png(d + 12, 17));
    dfrcl_image im;
    assert_int_equal(dfr_image_decode_memory(&im, d, len, "huge.png"), DFRCL_ERR_FORMAT);
    assert_msg_has("huge.png");
    assert_msg_has("16000x16000 16-bit RGBA PNG");
    assert_msg_has("needs about");
    assert_msg_has("limit of 512 MiB");
    assert_msg_has("DFRCL_MAX_DECODE_MB");
    assert_zeroed(&im);
    free(d);
}

/* 16-bit RGBA PNG from libspng's encoder (host-endian samples); rows in one go or progressively
 * (interlaced). Sample values have different high and low bytes. */
static uint16_t rgba16_value(uint32_t x, uint32_t y, int c)
{
    return (uint16_t)(x * 263u + y * 4099u + (uint32_t)c * 20011u);
}

static unsigned char *png_rgba16(uint32_t w, uint32_t h, int interlace, size_t *len)
{
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    assert_non_null(ctx);
    struct spng_ihdr ih = {.width = w, .height = h, .bit_depth = 16,
                           .color_type = SPNG_COLOR_TYPE_TRUECOLOR_ALPHA,
                           .interlace_method = (uint8_t)interlace};
    assert_int_equal(spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1), 0);
    assert_int_equal(spng_set_option(ctx, SPNG_IMG_COMPRESSION_LEVEL, 1), 0);
    assert_int_equal(spng_set_ihdr(ctx, &ih), 0);
    assert_int_equal(spng_encode_image(ctx, NULL, 0, SPNG_FMT_PNG,
                                       SPNG_ENCODE_PROGRESSIVE | SPNG_ENCODE_FINALIZE), 0);
    uint16_t *row = malloc((size_t)w * 8);
    assert_non_null(row);
    int e;
    do {
        struct spng_row_info ri;
        assert_int_equal(spng_get_row_info(ctx, &ri), 0);
        for (uint32_t x = 0; x < w; x++)
            for (int c = 0; c < 4; c++) row[(size_t)x * 4 + c] = rgba16_value(x, ri.row_num, c);
        e = spng_encode_row(ctx, row, (size_t)w * 8);
    } while (!e);
    assert_int_equal(e, SPNG_EOI);
    free(row);
    void *png = spng_get_png_buffer(ctx, len, &e);
    assert_int_equal(e, 0);
    assert_non_null(png);
    spng_ctx_free(ctx);
    return png;
}

static void assert_rgba16_decoded(const dfrcl_image *im, uint32_t w, uint32_t h)
{
    assert_int_equal(im->width, (int)w);
    assert_int_equal(im->height, (int)h);
    assert_int_equal(im->channels, 3);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) { /* high byte, alpha dropped */
                uint8_t want = (uint8_t)(rgba16_value(x, y, c) >> 8);
                uint8_t got = im->pixels[((size_t)y * w + x) * 3 + (size_t)c];
                if (got != want) fail_msg("(%u,%u,%d): %d, want %d", x, y, c, got, want);
            }
}

/* Peak resident memory (kB) since the last reset, or -1 where /proc cannot tell (not Linux). */
static long peak_rss_reset(void)
{
#ifdef __GLIBC__
    malloc_trim(0); /* freed memory from earlier tests must not hide new allocations */
#endif
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0; /* 5: reset the peak to the current size */
    if (fclose(f) || !ok) return -1;
    return 0;
}

static long peak_rss_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, strlen(field))) kb = strtol(line + strlen(field), NULL, 10);
    fclose(f);
    return kb;
}

/* A 16-bit RGBA PNG decodes to the high bytes of its RGB samples, interlaced or not, and the
 * decode's peak memory is about the output image (3 bytes per pixel): it used to hold the whole
 * file decoded at 8 bytes per pixel as well (a 2 MB file reached 3 GB). */
static void test_png_16bit_rows(void **state)
{
    (void)state;
    /* one row or column: Adam7 passes left empty after the last row */
    static const uint32_t sizes[][2] = {{37, 23}, {28, 1}, {1, 5}, {1, 1}};
    for (int interlace = 0; interlace <= 1; interlace++)
        for (int k = 0; k < 4; k++) {
            size_t len;
            unsigned char *d = png_rgba16(sizes[k][0], sizes[k][1], interlace, &len);
            dfrcl_image im;
            int rc = dfr_image_decode_memory(&im, d, len, "rgba16.png");
            if (rc) fprintf(stderr, "%s\n", dfrcl_last_error());
            assert_int_equal(rc, DFRCL_OK);
            assert_rgba16_decoded(&im, sizes[k][0], sizes[k][1]);
            dfrcl_image_free(&im);
            free(d);
        }
    const uint32_t W = 1500, H = 1500; /* 18 MB as 16-bit RGBA, 6.75 MB decoded */
    size_t len;
    unsigned char *d = png_rgba16(W, H, 0, &len);
    dfrcl_image im;
    long base = peak_rss_reset() ? -1 : peak_rss_kb("VmRSS:");
    assert_int_equal(dfr_image_decode_memory(&im, d, len, "big16.png"), DFRCL_OK);
    long peak = peak_rss_kb("VmHWM:");
    if (base >= 0 && peak >= 0) {
        long out_kb = (long)W * H * 3 / 1024;
        fprintf(stderr, "16-bit RGBA %ux%u: decode peak %ld kB over the start, output %ld kB\n",
                W, H, peak - base, out_kb);
        assert_true(peak - base < out_kb * 3 / 2 + 4096);
    } else {
        fprintf(stderr, "(no /proc/self/clear_refs: peak memory not checked)\n");
    }
    assert_rgba16_decoded(&im, W, H);
    dfrcl_image_free(&im);
    free(d);
}

/* A PNG cut anywhere in its IEND chunk, its IEND CRC changed, or IEND missing, is refused; bytes
 * after a whole IEND are ignored (as PIL does). */
static void test_png_iend(void **state)
{
    (void)state;
    size_t len;
    unsigned char *d = read_all(case_file(find_case("rgb8"), 0), &len);
    assert_memory_equal(d + len - 8, "IEND\xAE\x42\x60\x82", 8);
    dfrcl_image im;
    for (size_t cut = 1; cut <= 12; cut++) { /* cut = 12: no IEND at all */
        char name[32];
        snprintf(name, sizeof name, "iendcut%zu.png", cut);
        assert_int_equal(dfr_image_decode_memory(&im, d, len - cut, name), DFRCL_ERR_FORMAT);
        assert_msg_has(name);
        assert_zeroed(&im);
    }
    d[len - 1] ^= 1;
    assert_int_equal(dfr_image_decode_memory(&im, d, len, "iendcrc.png"), DFRCL_ERR_FORMAT);
    assert_msg_has("iendcrc.png");
    d[len - 1] ^= 1;
    unsigned char *t = malloc(len + 5);
    assert_non_null(t);
    memcpy(t, d, len);
    memcpy(t + len, "junk\n", 5);
    assert_int_equal(dfr_image_decode_memory(&im, t, len + 5, "trailing.png"), DFRCL_OK);
    dfrcl_image_free(&im);
    free(t);
    free(d);
}

/* DFRCL_MAX_DECODE_MB: a tiny limit refuses ordinary images (PNG and JPEG, 800 x 800 RGB, 1.8
 * MiB decoded) naming the file and the variable; unset, they decode; malformed, every decode
 * fails naming the variable; dfr_image_set_max_decode_bytes overrides it. */
static void test_decode_limit_env(void **state)
{
    (void)state;
    const int w = 800, h = 800;
    uint8_t *px = malloc((size_t)w * h * 3);
    assert_non_null(px);
    for (size_t i = 0; i < (size_t)w * h * 3; i++) px[i] = (uint8_t)(i * 7 / 3);
    uint8_t *png;
    size_t png_len;
    assert_int_equal(dfr_png_encode(&png, &png_len, w, h, 3, px), DFRCL_OK);
    tjhandle tj = tjInitCompress();
    assert_non_null(tj);
    unsigned char *jpg = NULL;
    unsigned long jpg_len = 0;
    assert_int_equal(tjCompress2(tj, px, w, 0, h, TJPF_RGB, &jpg, &jpg_len, TJSAMP_420, 90, 0), 0);
    tjDestroy(tj);
    const struct {
        const void *d;
        size_t n;
        const char *name;
    } files[] = {{png, png_len, "ordinary.png"}, {jpg, jpg_len, "ordinary.jpg"}};
    for (int f = 0; f < 2; f++) {
        dfrcl_image im;
        assert_int_equal(setenv("DFRCL_MAX_DECODE_MB", "1", 1), 0);
        assert_int_equal(dfr_image_decode_memory(&im, files[f].d, files[f].n, files[f].name),
                         DFRCL_ERR_FORMAT);
        assert_msg_has(files[f].name);
        assert_msg_has("800x800");
        assert_msg_has("limit of 1 MiB");
        assert_msg_has("DFRCL_MAX_DECODE_MB");
        assert_zeroed(&im);
        /* the setter wins over the variable; 0 hands back to it */
        dfr_image_set_max_decode_bytes((uint64_t)64 << 20);
        assert_int_equal(dfr_image_decode_memory(&im, files[f].d, files[f].n, "x"), DFRCL_OK);
        dfrcl_image_free(&im);
        dfr_image_set_max_decode_bytes(0);
        assert_int_equal(dfr_image_decode_memory(&im, files[f].d, files[f].n, "x"),
                         DFRCL_ERR_FORMAT);
        static const char *const bad[] = {"abc", "0", "-5", "12x", "99999999999999999999"};
        for (int b = 0; b < 5; b++) {
            assert_int_equal(setenv("DFRCL_MAX_DECODE_MB", bad[b], 1), 0);
            assert_int_equal(dfr_image_decode_memory(&im, files[f].d, files[f].n, files[f].name),
                             DFRCL_ERR_INVALID_ARG);
            assert_msg_has(files[f].name);
            assert_msg_has("DFRCL_MAX_DECODE_MB");
            assert_msg_has(bad[b]);
            assert_zeroed(&im);
        }
        assert_int_equal(unsetenv("DFRCL_MAX_DECODE_MB"), 0);
        assert_int_equal(dfr_image_decode_memory(&im, files[f].d, files[f].n, files[f].name),
                         DFRCL_OK);
        assert_int_equal(im.width, w);
        assert_int_equal(im.channels, 3);
        dfrcl_image_free(&im);
    }
    tjFree(jpg);
    free(png);
    free(px);
}

static void test_to_rgb(void **state)
{
    (void)state;
    dfrcl_image im = {5, 3, 1, malloc(15)};
    assert_non_null(im.pixels);
    for (int i = 0; i < 15; i++) im.pixels[i] = (uint8_t)(i * 17);
    assert_int_equal(dfr_image_to_rgb(&im), DFRCL_OK);
    assert_int_equal(im.channels, 3);
    for (int i = 0; i < 15; i++)
        for (int c = 0; c < 3; c++) assert_int_equal(im.pixels[3 * i + c], i * 17);
    assert_int_equal(dfr_image_to_rgb(&im), DFRCL_OK); /* RGB stays RGB */
    assert_int_equal(im.channels, 3);
    assert_int_equal(im.pixels[3 * 14 + 2], 14 * 17);
    im.channels = 2;
    assert_int_equal(dfr_image_to_rgb(&im), DFRCL_ERR_INVALID_ARG);
    dfrcl_image_free(&im);
    assert_int_equal(dfr_image_to_rgb(&im), DFRCL_ERR_INVALID_ARG); /* no pixels */
}

/* ---- resize --------------------------------------------------------------------------- */

/* Keep in step with pattern() in tools/make_resize_fixtures.py. */
static uint8_t pattern(int x, int y, int c)
{
    return (uint8_t)((x * x * 3 + y * 17 + c * 85 + ((x / 5 + y / 3) % 2) * 90 + (x * y) % 7) &
                     255);
}

static dfrcl_image make_pattern(int w, int h, int ch)
{
    dfrcl_image im = {w, h, ch, malloc((size_t)w * h * ch)};
    assert_non_null(im.pixels);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < ch; c++) im.pixels[((size_t)y * w + x) * ch + c] = pattern(x, y, c);
    return im;
}

/* Keep in step with RESIZE_CASES in tools/make_resize_fixtures.py. */
static const int resize_cases[][5] = {
    {1, 37, 23, 16, 9},   {1, 37, 23, 80, 51}, {1, 37, 23, 1, 1},   {1, 37, 23, 1, 23},
    {1, 37, 23, 37, 1},   {1, 37, 23, 5, 40},  {1, 37, 23, 12, 23}, {1, 37, 23, 37, 7},
    {1, 37, 23, 111, 23}, {1, 37, 23, 3, 2},   {1, 200, 150, 13, 11}, {1, 1, 1, 5, 3},
    {1, 2, 1, 7, 4},      {1, 64, 64, 24, 24}, {3, 37, 23, 16, 9},  {3, 37, 23, 58, 31},
    {3, 37, 23, 7, 1},    {4, 37, 23, 16, 9},  {4, 37, 23, 41, 27},
};

static void test_resize_matches_pil(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof resize_cases / sizeof resize_cases[0]; i++) {
        const int *r = resize_cases[i];
        char name[96];
        snprintf(name, sizeof name, "resize_c%d_%dx%d_%dx%d.png", r[0], r[1], r[2], r[3], r[4]);
        dfrcl_image want = read_png_raw(dfr_test_fixture(name));
        dfrcl_image src = make_pattern(r[1], r[2], r[0]);
        dfrcl_image got;
        assert_int_equal(dfrcl_image_resize(&got, &src, r[3], r[4]), DFRCL_OK);
        assert_int_equal(max_diff(&got, &want, name), 0); /* exact, not just within 1 */
        dfrcl_image_free(&got);
        dfrcl_image_free(&src);
        dfrcl_image_free(&want);
    }
}

static void test_resize_properties(void **state)
{
    (void)state;
    /* a constant image stays constant at any size (weights normalised, rounding right) */
    static const int sizes[][2] = {{1, 1}, {3, 100}, {100, 3}, {57, 41}, {400, 7}, {2, 2}};
    for (int v = 0; v <= 255; v += 85) {
        dfrcl_image src = {57, 41, 2, malloc(57 * 41 * 2)};
        assert_non_null(src.pixels);
        memset(src.pixels, v, 57 * 41 * 2);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            dfrcl_image d;
            assert_int_equal(dfrcl_image_resize(&d, &src, sizes[s][0], sizes[s][1]), DFRCL_OK);
            for (int i = 0; i < sizes[s][0] * sizes[s][1] * 2; i++)
                assert_int_equal(d.pixels[i], v);
            dfrcl_image_free(&d);
        }
        dfrcl_image_free(&src);
    }
    /* channels are independent: a 2-channel resize equals two grey resizes */
    dfrcl_image two = make_pattern(45, 31, 2), g[2], rg[2], r2;
    for (int c = 0; c < 2; c++) {
        g[c] = (dfrcl_image){45, 31, 1, malloc(45 * 31)};
        assert_non_null(g[c].pixels);
        for (int i = 0; i < 45 * 31; i++) g[c].pixels[i] = two.pixels[2 * i + c];
        assert_int_equal(dfrcl_image_resize(&rg[c], &g[c], 19, 50), DFRCL_OK);
    }
    assert_int_equal(dfrcl_image_resize(&r2, &two, 19, 50), DFRCL_OK);
    for (int i = 0; i < 19 * 50; i++)
        for (int c = 0; c < 2; c++) assert_int_equal(r2.pixels[2 * i + c], rg[c].pixels[i]);
    /* same size is a copy */
    dfrcl_image same;
    assert_int_equal(dfrcl_image_resize(&same, &two, 45, 31), DFRCL_OK);
    assert_ptr_not_equal(same.pixels, two.pixels);
    assert_memory_equal(same.pixels, two.pixels, 45 * 31 * 2);
    /* in place: dst == src replaces the pixels */
    assert_int_equal(dfrcl_image_resize(&two, &two, 19, 50), DFRCL_OK);
    assert_int_equal(two.width, 19);
    assert_memory_equal(two.pixels, r2.pixels, 19 * 50 * 2);
    for (int c = 0; c < 2; c++) dfrcl_image_free(&g[c]), dfrcl_image_free(&rg[c]);
    dfrcl_image_free(&r2);
    dfrcl_image_free(&same);
    dfrcl_image_free(&two);
}

static void test_resize_bad_args(void **state)
{
    (void)state;
    uint8_t px[12] = {0};
    dfrcl_image src = {2, 2, 3, px}, d = {1, 2, 3, px};
    assert_int_equal(dfrcl_image_resize(&d, &src, 0, 5), DFRCL_ERR_INVALID_ARG);
    assert_zeroed(&d);
    assert_int_equal(dfrcl_image_resize(&d, &src, 5, -1), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfrcl_image_resize(&d, &src, 65536, 65536), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfrcl_image_resize(&d, NULL, 5, 5), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfrcl_image_resize(NULL, &src, 5, 5), DFRCL_ERR_INVALID_ARG);
    dfrcl_image bad[] = {{0, 2, 3, px}, {2, 0, 3, px}, {2, 2, 0, px}, {2, 2, 17, px},
                         {2, 2, 3, NULL}, {1 << 15, 1 << 15, 1, px}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(dfrcl_image_resize(&d, &bad[i], 5, 5), DFRCL_ERR_INVALID_ARG);
        assert_zeroed(&d);
    }
    /* a failed in-place resize leaves the image alone */
    assert_int_equal(dfrcl_image_resize(&src, &src, 0, 0), DFRCL_ERR_INVALID_ARG);
    assert_ptr_equal(src.pixels, px);
    assert_int_equal(src.width, 2);
}

/* ---- shared data set images (--shared) ------------------------------------------------ */

static const char *shared_dir;

/* libjpeg-turbo decodes the hazelnut JPEG; PIL's output came from PIL's own libjpeg(-turbo), so
 * the bound is one grey level. On Debian 12 both are libjpeg-turbo 2.1.5: exact. */
static void shared_case(const char *src_rel, const char *fixture, int w, int h, int channels)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/data/%s", shared_dir, src_rel);
    dfrcl_image src, got;
    int rc = dfrcl_image_load(&src, path);
    if (rc) fprintf(stderr, "%s\n", dfrcl_last_error());
    assert_int_equal(rc, DFRCL_OK);
    assert_int_equal(src.channels, channels);
    assert_int_equal(dfrcl_image_resize(&got, &src, w, h), DFRCL_OK);
    dfrcl_image want = read_png_raw(dfr_test_fixture(fixture));
    int d = max_diff(&got, &want, fixture);
    fprintf(stderr, "%s -> %dx%d: max |dfrcl - PIL| = %d\n", src_rel, w, h, d);
    assert_true(d <= 1);
    dfrcl_image_free(&src);
    dfrcl_image_free(&got);
    dfrcl_image_free(&want);
}

static void test_shared_hazelnut(void **state)
{
    (void)state;
    shared_case("hazelnut_toy/train/good/00.jpg", "resize_hazelnut_96.png", 96, 96, 3);
}

static void test_shared_grid(void **state)
{
    (void)state;
    shared_case("mvtec_grid_subset/train/good/000.png", "resize_grid_64.png", 64, 64, 1);
}

static int setup_dir(void **state)
{
    (void)state;
    return dfr_test_mkdtemp(tmpdir, sizeof tmpdir, "image");
}

static int teardown_dir(void **state)
{
    (void)state;
    dfr_test_rmdir_flat(tmpdir);
    return 0;
}

/* Decoding ahead: the images come back in order, equal to a direct decode and resize, each with
 * its own status (a corrupt file in the middle fails alone, its message naming it), for any
 * depth; closing early frees what was not taken; nothing to decode works too. */
static void test_prefetch(void **state)
{
    (void)state;
    enum { N = 7 };
    char paths[N][4096];
    const char *pp[N];
    for (int i = 0; i < N; i++) {
        int w = 20 + 7 * i, h = 31 - 2 * i, ch = i % 2 ? 3 : 1;
        uint8_t *px = malloc((size_t)w * h * ch);
        assert_non_null(px);
        for (int k = 0; k < w * h * ch; k++) px[k] = (uint8_t)(k * 37 + i * 11);
        snprintf(paths[i], sizeof paths[i], "%s/pf%d.png", tmpdir, i);
        if (i == 3) { /* not an image */
            FILE *f = fopen(paths[i], "wb");
            assert_non_null(f);
            fputs("not a picture", f);
            fclose(f);
        } else assert_int_equal(dfr_png_write(paths[i], w, h, ch, px), 0);
        free(px);
        pp[i] = paths[i];
    }
    for (int depth = 1; depth <= 3; depth++)
        for (int size = 0; size <= 16; size += 16) {
            dfr_prefetch *pf = NULL;
            assert_int_equal(dfr_prefetch_open(&pf, pp, N, size, depth), 0);
            for (int i = 0; i < N; i++) {
                dfrcl_image a = {0}, b = {0};
                int aw = 0, ah = 0, bw = 0, bh = 0;
                int ra = dfr_prefetch_next(pf, &a, &aw, &ah);
                if (i == 3) {
                    assert_int_equal(ra, DFRCL_ERR_FORMAT);
                    assert_non_null(strstr(dfrcl_last_error(), "pf3.png"));
                    assert_null(a.pixels);
                    continue;
                }
                assert_int_equal(ra, 0);
                assert_int_equal(dfr_image_load_resized(pp[i], size, &b, &bw, &bh), 0);
                assert_int_equal(aw, bw);
                assert_int_equal(ah, bh);
                assert_int_equal(a.width, size ? size : bw);
                assert_int_equal(a.width, b.width);
                assert_int_equal(a.height, b.height);
                assert_int_equal(a.channels, b.channels);
                assert_memory_equal(a.pixels, b.pixels, (size_t)a.width * a.height * a.channels);
                dfrcl_image_free(&a);
                dfrcl_image_free(&b);
            }
            dfrcl_image c = {0};
            assert_int_equal(dfr_prefetch_next(pf, &c, NULL, NULL), DFRCL_ERR_INVALID_ARG);
            dfr_prefetch_close(&pf);
            assert_null(pf);
        }
    /* closing after one image, or before any: the worker stops, the rest is freed (ASan) */
    for (int taken = 0; taken <= 1; taken++) {
        dfr_prefetch *pf = NULL;
        assert_int_equal(dfr_prefetch_open(&pf, pp, N, 8, 2), 0);
        if (taken) {
            dfrcl_image a = {0};
            assert_int_equal(dfr_prefetch_next(pf, &a, NULL, NULL), 0);
            dfrcl_image_free(&a);
        }
        dfr_prefetch_close(&pf);
    }
    dfr_prefetch *pf = NULL;
    assert_int_equal(dfr_prefetch_open(&pf, NULL, 0, 8, 2), 0);
    dfrcl_image a = {0};
    assert_int_equal(dfr_prefetch_next(pf, &a, NULL, NULL), DFRCL_ERR_INVALID_ARG);
    dfr_prefetch_close(&pf);
    dfr_prefetch_close(&pf); /* NULL: nothing */
    assert_int_equal(dfr_prefetch_open(&pf, pp, N, 8, 0), DFRCL_ERR_INVALID_ARG);
    assert_null(pf);
}

int main(int argc, char **argv)
{
    dfr_verbosity = 0;
    if (argc > 1 && !strcmp(argv[1], "--shared")) {
        shared_dir = dfr_test_shared_dir();
        if (!shared_dir) {
            fprintf(stderr, "skip: shared data folder absent (set DFRCL_SHARED)\n");
            return DFR_TEST_SKIP;
        }
        const struct CMUnitTest shared[] = {
            cmocka_unit_test(test_shared_hazelnut),
            cmocka_unit_test(test_shared_grid),
        };
        return cmocka_run_group_tests_name("image_shared", shared, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_matches_pil),
        cmocka_unit_test(test_decode_by_magic),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_corrupt_bytes),
        cmocka_unit_test(test_jpeg_warnings),
        cmocka_unit_test(test_bombs),
        cmocka_unit_test(test_unknown_and_missing),
        cmocka_unit_test(test_png_write),
        cmocka_unit_test(test_png_ancillary_limits),
        cmocka_unit_test(test_jpeg_bomb_missing_scan),
        cmocka_unit_test(test_jpeg_truncated_scan),
        cmocka_unit_test(test_png_over_memory_limit),
        cmocka_unit_test(test_png_16bit_rows),
        cmocka_unit_test(test_png_iend),
        cmocka_unit_test(test_decode_limit_env),
        cmocka_unit_test(test_to_rgb),
        cmocka_unit_test(test_resize_matches_pil),
        cmocka_unit_test(test_resize_properties),
        cmocka_unit_test(test_resize_bad_args),
        cmocka_unit_test(test_prefetch),
    };
    return cmocka_run_group_tests_name("image", tests, setup_dir, teardown_dir);
}
