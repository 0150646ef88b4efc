/* Output files of `dfrcl infer` / `eval`: .npy arrays and heat map / mask pictures.
 *  - npy: the writer's bytes equal numpy 1.24's np.save() for four arrays (2-D, 1-D, 0-D and
 *    empty; the expected bytes below were produced once with np.save); round trips are
 *    bit-exact (NaN, inf, denormals); every cut of a file, bad magic/version, wrong dtype,
 *    Fortran order, shape/size disagreement, trailing bytes and malformed headers are
 *    DFRCL_ERR_FORMAT with the file named; headers numpy may write differently (version 2.0,
 *    other key order, double quotes, no padding, 'L' suffixes) are read;
 *  - heat map: colormap endpoints and strictly rising luminance; exact blending on small cases;
 *    NaN/inf scores; degenerate ranges; resizing of a base of another size; bad arguments;
 *  - mask threshold strictness; outline pixels of regions inside and at the border. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <float.h>

#include "io/heatmap.h"
#include "io/image.h"
#include "io/npy.h"
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

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* ---- npy: numpy's exact bytes ------------------------------------------------------------ */

/* Made once with numpy 1.24.2: np.save(f, a) for the arrays named below. Each file is the
 * 10-byte prefix "\x93NUMPY\x01\x00\x76\x00", the dict, `spaces` spaces, '\n' (128 header
 * bytes in all), then the data bytes. */
typedef struct {
    const char *dict;
    int spaces;
    int ndim;
    int64_t shape[2];
    const unsigned char *data;
    size_t data_len;
    size_t file_len; /* len(np.save output) */
} npy_case;

/* np.array([[1.0, -2.5, 0.0], [3.25, 1e-3, -np.inf]], dtype='<f4') */
static const unsigned char np_2x3_data[] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc0,
                                            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x50, 0x40,
                                            0x6f, 0x12, 0x83, 0x3a, 0x00, 0x00, 0x80, 0xff};
static const float np_2x3_values[] = {1.0f, -2.5f, 0.0f, 3.25f, 1e-3f, -INFINITY};
/* np.arange(4, dtype='<f4') * 0.5 */
static const unsigned char np_4_data[] = {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3f,
                                          0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0xc0, 0x3f};
/* np.array(7.0, dtype='<f4') */
static const unsigned char np_scalar_data[] = {0x00, 0x00, 0xe0, 0x40};

static const npy_case np_cases[] = {
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 58, 2, {2, 3}, np_2x3_data,
     sizeof np_2x3_data, 152},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 60, 1, {4, 0}, np_4_data,
     sizeof np_4_data, 144},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 62, 0, {0, 0}, np_scalar_data,
     sizeof np_scalar_data, 132},
    /* np.zeros((0, 3), dtype='<f4') */
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", 58, 2, {0, 3}, NULL, 0, 128},
};

/* Assembles the numpy bytes of a case into buf; returns the length. */
static size_t numpy_bytes(const npy_case *c, unsigned char *buf, size_t cap)
{
    size_t n = 0;
    memcpy(buf, "\x93NUMPY\x01\x00\x76\x00", 10);
    n = 10;
    size_t dl = strlen(c->dict);
    assert_true(n + dl + (size_t)c->spaces + 1 + c->data_len <= cap);
    memcpy(buf + n, c->dict, dl);
    n += dl;
    memset(buf + n, ' ', (size_t)c->spaces);
    n += (size_t)c->spaces;
    buf[n++] = '\n';
    assert_int_equal(n, 128);
    if (c->data_len) memcpy(buf + n, c->data, c->data_len);
    n += c->data_len;
    assert_int_equal(n, c->file_len);
    return n;
}

static void test_npy_numpy_bytes(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof np_cases / sizeof *np_cases; k++) {
        const npy_case *c = &np_cases[k];
        unsigned char want[256];
        size_t want_len = numpy_bytes(c, want, sizeof want);
        float vals[8];
        memcpy(vals, c->data ? (const void *)c->data : (const void *)"", c->data_len);
        const char *path = tmp_path("numpy.npy");
        assert_int_equal(dfr_npy_write_f32(path, c->ndim, c->shape, vals), DFRCL_OK);
        unsigned char *got;
        size_t got_len;
        assert_int_equal(dfr_read_file(path, &got, &got_len), DFRCL_OK);
        if (got_len != want_len || memcmp(got, want, want_len) != 0) {
            fprintf(stderr, "case %zu differs from np.save: got %zu bytes \"%.*s\"\n", k, got_len,
                    (int)(got_len > 10 ? got_len - 10 : 0), (const char *)got + 10);
            fail();
        }
        free(got);

        /* And numpy's file reads back as that array. */
        write_bytes(path, want, want_len);
        int nd;
        int64_t shape[DFR_NPY_MAX_DIMS];
        float *data;
        assert_int_equal(dfr_npy_read_f32(path, &nd, shape, &data), DFRCL_OK);
        assert_int_equal(nd, c->ndim);
        for (int i = 0; i < nd; i++) assert_int_equal(shape[i], c->shape[i]);
        assert_non_null(data);
        if (c->data_len) assert_memory_equal(data, c->data, c->data_len);
        if (k == 0)
            for (int i = 0; i < 6; i++) assert_true(data[i] == np_2x3_values[i]);
        free(data);
    }
}

static void test_npy_round_trip(void **state)
{
    (void)state;
    const int64_t shapes[][4] = {{3, 5, 7, 0}, {1, 1, 1, 0}, {2, 1, 33, 1}, {123456, 0, 0, 0}};
    const int ndims[] = {3, 3, 4, 1};
    for (int k = 0; k < 4; k++) {
        size_t n = 1;
        for (int i = 0; i < ndims[k]; i++) n *= (size_t)shapes[k][i];
        float *a = malloc(n * sizeof *a);
        assert_non_null(a);
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = dfr_test_hash((uint32_t)k, (uint32_t)i);
            memcpy(&a[i], &bits, 4); /* any bit pattern: NaNs, infs, denormals */
        }
        a[0] = NAN;
        if (n > 2) a[1] = INFINITY, a[2] = 1e-40f;
        const char *path = tmp_path("rt.npy");
        assert_int_equal(dfr_npy_write_f32(path, ndims[k], shapes[k], a), DFRCL_OK);
        int nd = -1;
        int64_t shape[DFR_NPY_MAX_DIMS];
        float *b = NULL;
        assert_int_equal(dfr_npy_read_f32(path, &nd, shape, &b), DFRCL_OK);
        assert_int_equal(nd, ndims[k]);
        for (int i = 0; i < nd; i++) assert_int_equal(shape[i], shapes[k][i]);
        assert_memory_equal(a, b, n * sizeof *a);
        free(a);
        free(b);
    }
    /* Eight dimensions, the most allowed, and a first axis of many digits. */
    int64_t s8[8] = {1, 2, 1, 2, 1, 2, 1, 2};
    float v16[16];
    for (int i = 0; i < 16; i++) v16[i] = (float)i - 7.5f;
    assert_int_equal(dfr_npy_write_f32(tmp_path("d8.npy"), 8, s8, v16), DFRCL_OK);
    int nd;
    int64_t shape[DFR_NPY_MAX_DIMS];
    float *b;
    assert_int_equal(dfr_npy_read_f32(tmp_path("d8.npy"), &nd, shape, &b), DFRCL_OK);
    assert_int_equal(nd, 8);
    assert_memory_equal(shape, s8, sizeof s8);
    assert_memory_equal(b, v16, sizeof v16);
    free(b);
    int64_t big[2] = {1000000000000LL, 0};
    assert_int_equal(dfr_npy_write_f32(tmp_path("big.npy"), 2, big, NULL), DFRCL_OK);
    assert_int_equal(dfr_npy_read_f32(tmp_path("big.npy"), &nd, shape, &b), DFRCL_OK);
    assert_int_equal(nd, 2);
    assert_int_equal(shape[0], big[0]);
    free(b);
    /* Headers stay a multiple of 64 bytes and end in '\n'. */
    unsigned char *raw;
    size_t len;
    assert_int_equal(dfr_read_file(tmp_path("big.npy"), &raw, &len), DFRCL_OK);
    size_t hl = 10 + (size_t)raw[8] + 256u * raw[9];
    assert_int_equal(hl % 64, 0);
    assert_int_equal(len, hl);
    assert_int_equal(raw[hl - 1], '\n');
    free(raw);

    /* No temporary files are left behind. */
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) assert_null(strstr(e->d_name, "tmp.")); /* .dfrcl-tmp.* */
    closedir(d);
}

static void test_npy_write_bad_args(void **state)
{
    (void)state;
    float v[4] = {0};
    int64_t s[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    const char *path = tmp_path("bad_w.npy");
    assert_int_equal(dfr_npy_write_f32(path, 9, s, v), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_npy_write_f32(path, -1, s, v), DFRCL_ERR_INVALID_ARG);
    int64_t neg[2] = {2, -2};
    assert_int_equal(dfr_npy_write_f32(path, 2, neg, v), DFRCL_ERR_INVALID_ARG);
    assert_msg_has("negative");
    int64_t two[1] = {2};
    assert_int_equal(dfr_npy_write_f32(path, 1, two, NULL), DFRCL_ERR_INVALID_ARG);
    int64_t huge[2] = {INT64_MAX, 3};
    assert_int_equal(dfr_npy_write_f32(path, 2, huge, v), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(dfr_npy_write_f32(tmp_path("no/such/dir.npy"), 1, two, v), DFRCL_ERR_IO);
    assert_msg_has("no/such/dir.npy");
}

/* Reads `bytes` from a file and expects DFRCL_ERR_FORMAT naming the file and mentioning `why`
 * (NULL: any reason); outputs must be cleared. */
static void expect_format_error(const void *bytes, size_t len, const char *why)
{
    const char *path = tmp_path("bad.npy");
    write_bytes(path, bytes, len);
    int nd = 5;
    int64_t shape[DFR_NPY_MAX_DIMS];
    float *data = (float *)(uintptr_t)1;
    int rc = dfr_npy_read_f32(path, &nd, shape, &data);
    if (rc != DFRCL_ERR_FORMAT) {
        fprintf(stderr, "len %zu: rc %d (%s), wanted FORMAT (%s)\n", len, rc, dfrcl_last_error(),
                why ? why : "any");
        fail();
    }
    assert_msg_has(path);
    if (why) assert_msg_has(why);
    assert_int_equal(nd, 0);
    assert_null(data);
}

/* The 2x3 numpy file with `from` (first occurrence in the header) replaced by `to`, with the
 * header length fixed when they differ in length. */
static size_t patched(unsigned char *buf, size_t cap, const char *from, const char *to)
{
    unsigned char orig[256];
    size_t n = numpy_bytes(&np_cases[0], orig, sizeof orig);
    char *hit = strstr((char *)orig + 10, from); /* the header is NUL-free, data follows */
    assert_non_null(hit);
    size_t at = (size_t)(hit - (char *)orig), fl = strlen(from), tl = strlen(to);
    assert_true(n - fl + tl <= cap);
    memcpy(buf, orig, at);
    memcpy(buf + at, to, tl);
    memcpy(buf + at + tl, orig + at + fl, n - at - fl);
    size_t hlen = 118 - fl + tl;
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8);
    return n - fl + tl;
}

static void test_npy_malformed(void **state)
{
    (void)state;
    unsigned char good[256], buf[512];
    size_t n = numpy_bytes(&np_cases[0], good, sizeof good);

    /* Every cut, including the empty file, is an error. */
    for (size_t cut = 0; cut < n; cut++) expect_format_error(good, cut, NULL);
    expect_format_error(good, 5, "not an npy file");
    expect_format_error(good, 100, "truncated");
    expect_format_error(good, n - 1, "truncated");
    /* Trailing bytes. */
    memcpy(buf, good, n);
    memset(buf + n, 0, 4);
    expect_format_error(buf, n + 4, "trailing data");
    /* Magic and version. */
    memcpy(buf, good, n);
    buf[1] = 'n';
    expect_format_error(buf, n, "bad magic");
    memcpy(buf, good, n);
    buf[6] = 4;
    expect_format_error(buf, n, "version 4.0");
    memcpy(buf, good, n);
    buf[7] = 1;
    expect_format_error(buf, n, "version 1.1");
    /* Header length beyond the file, or implausibly large. */
    memcpy(buf, good, n);
    buf[8] = 0xff;
    buf[9] = 0x00;
    expect_format_error(buf, n, "truncated");
    memcpy(buf, good, n);
    buf[9] = 0xff;
    expect_format_error(buf, n, "header length");
    /* Dtype, order and shape. */
    expect_format_error(buf, patched(buf, sizeof buf, "<f4", "<f8"), "'<f8'");
    expect_format_error(buf, patched(buf, sizeof buf, "<f4", ">f4"), "'>f4'");
    expect_format_error(buf, patched(buf, sizeof buf, "'<f4'", "[('a', '<f4')]"), "descr");
    expect_format_error(buf, patched(buf, sizeof buf, "False", "True"), "Fortran");
    expect_format_error(buf, patched(buf, sizeof buf, "False", "0"), "fortran_order");
    expect_format_error(buf, patched(buf, sizeof buf, "(2, 3)", "(2, 4)"), "needs 32 data bytes");
    expect_format_error(buf, patched(buf, sizeof buf, "(2, 3)", "(2,)"), "needs 8 data bytes");
    expect_format_error(buf, patched(buf, sizeof buf, "(2, 3)", "(6)"), "'shape'");
    expect_format_error(buf, patched(buf, sizeof buf, "(2, 3)", "(-2, -3)"), "'shape'");
    expect_format_error(buf, patched(buf, sizeof buf, "(2, 3)", "[2, 3]"), "'shape'");
    expect_format_error(buf, patched(buf, sizeof buf, "(2, 3)", "(2, 3,,)"), "'shape'");
    expect_format_error(buf, patched(buf, sizeof buf, "(2, 3)", "(1, 1, 1, 1, 1, 1, 1, 2, 3)"),
                        "more than 8");
    expect_format_error(buf, patched(buf, sizeof buf, "(2, 3)", "(99999999999999999999, 3)"),
                        "'shape'");
    expect_format_error(buf, patched(buf, sizeof buf, "(2, 3)", "(4611686018427387904, 4)"),
                        "too large");
    /* Dict structure. */
    expect_format_error(buf, patched(buf, sizeof buf, "'shape': (2, 3), ", ""), "'shape'");
    expect_format_error(buf, patched(buf, sizeof buf, "'shape'", "'shap'"), "unexpected key");
    expect_format_error(buf, patched(buf, sizeof buf, "'shape': (2, 3), ",
                                     "'shape': (2, 3), 'shape': (2, 3), "),
                        "twice");
    expect_format_error(buf, patched(buf, sizeof buf, "'descr': '<f4', ", "'descr': '<f4' "),
                        "malformed");
    expect_format_error(buf, patched(buf, sizeof buf, "{", "("), "not a dict");
    expect_format_error(buf, patched(buf, sizeof buf, "}", "} x"), "after the dict");
    expect_format_error(buf, patched(buf, sizeof buf, "'<f4'", "'<f\\4'"), "descr");
    memcpy(buf, good, n);
    buf[20] = 0;
    expect_format_error(buf, n, "NUL");

    /* Not found is an I/O error, not a format error. */
    int nd;
    int64_t shape[DFR_NPY_MAX_DIMS];
    float *data;
    assert_int_equal(dfr_npy_read_f32(tmp_path("missing.npy"), &nd, shape, &data), DFRCL_ERR_IO);
    assert_msg_has("missing.npy");
    assert_null(data);
}

/* Headers numpy (or another writer) may produce differently are still read. */
static void test_npy_header_variants(void **state)
{
    (void)state;
    static const char *dicts[] = {
        "{\"shape\": (2L, 3L), \"fortran_order\": False, \"descr\": \"<f4\"}",
        "{'descr':'<f4','fortran_order':False,'shape':(2,3)}",
        "{ 'fortran_order' : False , 'shape' : ( 2 , 3 , ) , 'descr' : '<f4' , }",
    };
    for (int version = 1; version <= 3; version++) {
        for (size_t k = 0; k < sizeof dicts / sizeof *dicts; k++) {
            unsigned char buf[512];
            size_t pre = version == 1 ? 10 : 12, dl = strlen(dicts[k]);
            size_t hlen = dl + 1 + (k == 1 ? 0 : 5); /* with and without padding */
            memcpy(buf, "\x93NUMPY", 6);
            buf[6] = (unsigned char)version;
            buf[7] = 0;
            buf[8] = (unsigned char)hlen;
            buf[9] = 0;
            buf[10] = buf[11] = 0; /* upper bytes of a 4-byte length (versions 2 and 3) */
            memcpy(buf + pre, dicts[k], dl);
            memset(buf + pre + dl, ' ', hlen - dl - 1);
            buf[pre + hlen - 1] = '\n';
            memcpy(buf + pre + hlen, np_2x3_data, sizeof np_2x3_data);
            const char *path = tmp_path("variant.npy");
            write_bytes(path, buf, pre + hlen + sizeof np_2x3_data);
            int nd;
            int64_t shape[DFR_NPY_MAX_DIMS];
            float *data;
            if (dfr_npy_read_f32(path, &nd, shape, &data) != DFRCL_OK) {
                fprintf(stderr, "v%d %s: %s\n", version, dicts[k], dfrcl_last_error());
                fail();
            }
            assert_int_equal(nd, 2);
            assert_int_equal(shape[0], 2);
            assert_int_equal(shape[1], 3);
            assert_memory_equal(data, np_2x3_values, sizeof np_2x3_values);
            free(data);
        }
    }
}

/* ---- heat map ---------------------------------------------------------------------------- */

static double srgb_to_linear(double c)
{
    c /= 255.0;
    return c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4);
}

static double luminance(const float rgb[3])
{
    return 0.2126 * srgb_to_linear(rgb[0]) + 0.7152 * srgb_to_linear(rgb[1]) +
           0.0722 * srgb_to_linear(rgb[2]);
}

static void assert_rgb(const float got[3], float r, float g, float b)
{
    if (got[0] != r || got[1] != g || got[2] != b) {
        fprintf(stderr, "colour (%g, %g, %g), want (%g, %g, %g)\n", got[0], got[1], got[2], r, g, b);
        fail();
    }
}

static void test_colormap(void **state)
{
    (void)state;
    float c[3];
    dfr_colormap(0.0f, c);
    assert_rgb(c, 0, 0, 4);
    dfr_colormap(1.0f, c);
    assert_rgb(c, 252, 254, 164);
    dfr_colormap(0.5f, c);
    assert_rgb(c, 186, 54, 85);
    /* Clipping. */
    dfr_colormap(-3.0f, c);
    assert_rgb(c, 0, 0, 4);
    dfr_colormap(NAN, c);
    assert_rgb(c, 0, 0, 4);
    dfr_colormap(-INFINITY, c);
    assert_rgb(c, 0, 0, 4);
    dfr_colormap(7.0f, c);
    assert_rgb(c, 252, 254, 164);
    dfr_colormap(INFINITY, c);
    assert_rgb(c, 252, 254, 164);
    /* Luminance rises strictly (the map reads in grey), continuously (no step over 3% of the
     * full range between neighbouring samples), and channels stay in range. */
    double prev = -1.0, lo = 0, hi = 0;
    const int steps = 4096;
    for (int i = 0; i <= steps; i++) {
        dfr_colormap((float)i / steps, c);
        for (int k = 0; k < 3; k++) assert_true(c[k] >= 0.0f && c[k] <= 255.0f);
        double y = luminance(c);
        if (!(y > prev)) {
            fprintf(stderr, "luminance falls at t=%g: %g after %g\n", (double)i / steps, y, prev);
            fail();
        }
        if (i > 0) assert_true(y - prev < 0.03 * 0.94);
        if (i == 0) lo = y;
        hi = y;
        prev = y;
    }
    assert_true(lo < 0.001 && hi > 0.9);
}

static void assert_px(const dfrcl_image *im, int x, int y, int r, int g, int b)
{
    const uint8_t *p = im->pixels + ((size_t)y * im->width + x) * 3;
    if (p[0] != r || p[1] != g || p[2] != b) {
        fprintf(stderr, "pixel (%d,%d) = (%d, %d, %d), want (%d, %d, %d)\n", x, y, p[0], p[1],
                p[2], r, g, b);
        fail();
    }
}

static void test_heatmap_blend(void **state)
{
    (void)state;
    /* Grey 2x2 base, alpha 0.5, range [0, 1]: scores lo, hi, the middle, NaN (= lo).
     * 0.5*b + 0.5*c rounded half up, by hand:
     *   b=0,   c=(0,0,4)       -> (0, 0, 2)
     *   b=100, c=(252,254,164) -> (176, 177, 132)
     *   b=200, c=(186,54,85)   -> (193, 127, 142.5 -> 143)
     *   b=255, c=(0,0,4)       -> (127.5 -> 128, 128, 129.5 -> 130) */
    uint8_t grey[4] = {0, 100, 200, 255};
    dfrcl_image base = {2, 2, 1, grey};
    float score[4] = {0.0f, 1.0f, 0.5f, NAN};
    dfrcl_image out;
    assert_int_equal(dfr_heatmap_overlay(&base, score, 2, 2, 0.0f, 1.0f, 0.5f, &out), DFRCL_OK);
    assert_int_equal(out.width, 2);
    assert_int_equal(out.height, 2);
    assert_int_equal(out.channels, 3);
    assert_px(&out, 0, 0, 0, 0, 2);
    assert_px(&out, 1, 0, 176, 177, 132);
    assert_px(&out, 0, 1, 193, 127, 143);
    assert_px(&out, 1, 1, 128, 128, 130);
    dfrcl_image_free(&out);

    /* Another range: [10, 30] puts 20 in the middle, 40 above. */
    float score2[4] = {10.0f, 40.0f, 20.0f, 5.0f};
    assert_int_equal(dfr_heatmap_overlay(&base, score2, 2, 2, 10.0f, 30.0f, 0.5f, &out), DFRCL_OK);
    assert_px(&out, 1, 0, 176, 177, 132);
    assert_px(&out, 0, 1, 193, 127, 143);
    assert_px(&out, 1, 1, 128, 128, 130);
    dfrcl_image_free(&out);

    /* RGB base, alpha 0.25: 0.75*(10,20,30) + 0.25*(252,254,164) = (70.5, 78.5, 63.5). */
    uint8_t rgb[3] = {10, 20, 30};
    dfrcl_image b1 = {1, 1, 3, rgb};
    float one = 2.0f;
    assert_int_equal(dfr_heatmap_overlay(&b1, &one, 1, 1, 0.0f, 1.0f, 0.25f, &out), DFRCL_OK);
    assert_px(&out, 0, 0, 71, 79, 64);
    dfrcl_image_free(&out);
    /* alpha 0 gives the base, alpha 1 the colormap. */
    assert_int_equal(dfr_heatmap_overlay(&b1, &one, 1, 1, 0.0f, 1.0f, 0.0f, &out), DFRCL_OK);
    assert_px(&out, 0, 0, 10, 20, 30);
    dfrcl_image_free(&out);
    assert_int_equal(dfr_heatmap_overlay(&b1, &one, 1, 1, 0.0f, 1.0f, 1.0f, &out), DFRCL_OK);
    assert_px(&out, 0, 0, 252, 254, 164);
    dfrcl_image_free(&out);
}

static void test_heatmap_nonfinite(void **state)
{
    (void)state;
    uint8_t px[8 * 3];
    memset(px, 90, sizeof px);
    dfrcl_image base = {8, 1, 3, px};
    float s[8] = {NAN, INFINITY, -INFINITY, 1e30f, -1e30f, -NAN, FLT_MAX, 0.5f};
    dfrcl_image out;
    assert_int_equal(dfr_heatmap_overlay(&base, s, 8, 1, 0.0f, 1.0f, 1.0f, &out), DFRCL_OK);
    assert_px(&out, 0, 0, 0, 0, 4);
    assert_px(&out, 1, 0, 252, 254, 164);
    assert_px(&out, 2, 0, 0, 0, 4);
    assert_px(&out, 3, 0, 252, 254, 164);
    assert_px(&out, 4, 0, 0, 0, 4);
    assert_px(&out, 5, 0, 0, 0, 4);
    assert_px(&out, 6, 0, 252, 254, 164);
    assert_px(&out, 7, 0, 186, 54, 85);
    dfrcl_image_free(&out);
    /* A range wider than float can subtract: 0 is still the middle. */
    assert_int_equal(dfr_heatmap_overlay(&base, s, 8, 1, -FLT_MAX, FLT_MAX, 1.0f, &out), DFRCL_OK);
    assert_px(&out, 7, 0, 186, 54, 85);
    assert_px(&out, 1, 0, 252, 254, 164);
    assert_px(&out, 0, 0, 0, 0, 4);
    dfrcl_image_free(&out);
    /* lo == hi (a constant score map): above is 1, the rest 0. */
    float c[3] = {0.49f, 0.5f, 0.51f};
    dfrcl_image b3 = {3, 1, 3, px};
    assert_int_equal(dfr_heatmap_overlay(&b3, c, 3, 1, 0.5f, 0.5f, 1.0f, &out), DFRCL_OK);
    assert_px(&out, 0, 0, 0, 0, 4);
    assert_px(&out, 1, 0, 0, 0, 4);
    assert_px(&out, 2, 0, 252, 254, 164);
    dfrcl_image_free(&out);
}

static void test_heatmap_resize(void **state)
{
    (void)state;
    /* A 7x5 RGB gradient under a 3x2 score map: the picture is 3x2, and with alpha 0 it is
     * exactly the resized base. */
    uint8_t px[7 * 5 * 3];
    for (int i = 0; i < 7 * 5 * 3; i++) px[i] = (uint8_t)(i * 37 % 251);
    dfrcl_image base = {7, 5, 3, px};
    float s[6] = {0, 0.2f, 0.4f, 0.6f, 0.8f, 1};
    dfrcl_image out, want;
    assert_int_equal(dfr_heatmap_overlay(&base, s, 3, 2, 0, 1, 0.0f, &out), DFRCL_OK);
    assert_int_equal(out.width, 3);
    assert_int_equal(out.height, 2);
    assert_int_equal(out.channels, 3);
    assert_int_equal(dfrcl_image_resize(&want, &base, 3, 2), DFRCL_OK);
    assert_memory_equal(out.pixels, want.pixels, 3 * 2 * 3);
    dfrcl_image_free(&want);
    dfrcl_image_free(&out);
    /* Grey base enlarged to 9x4: every channel equals the resized grey level. */
    uint8_t g[4] = {0, 80, 160, 240};
    dfrcl_image gb = {2, 2, 1, g};
    float s2[36] = {0};
    assert_int_equal(dfr_heatmap_overlay(&gb, s2, 9, 4, 0, 1, 0.0f, &out), DFRCL_OK);
    assert_int_equal(dfrcl_image_resize(&want, &gb, 9, 4), DFRCL_OK);
    assert_int_equal(out.width, 9);
    assert_int_equal(out.height, 4);
    for (int i = 0; i < 36; i++)
        for (int k = 0; k < 3; k++) assert_int_equal(out.pixels[3 * i + k], want.pixels[i]);
    /* The base itself is untouched. */
    assert_int_equal(g[1], 80);
    assert_int_equal(gb.width, 2);
    dfrcl_image_free(&want);
    dfrcl_image_free(&out);
}

static void assert_zeroed(const dfrcl_image *im)
{
    assert_null(im->pixels);
    assert_int_equal(im->width, 0);
    assert_int_equal(im->height, 0);
    assert_int_equal(im->channels, 0);
}

static void test_heatmap_bad_args(void **state)
{
    (void)state;
    uint8_t px[12] = {0};
    dfrcl_image base = {2, 2, 3, px};
    float s[4] = {0};
    dfrcl_image out;
#define BAD(call)                                                                                  \
    do {                                                                                           \
        memset(&out, 0x55, sizeof out);                                                            \
        assert_int_equal((call), DFRCL_ERR_INVALID_ARG);                                          \
        assert_zeroed(&out);                                                                       \
    } while (0)
    BAD(dfr_heatmap_overlay(&base, NULL, 2, 2, 0, 1, 0.5f, &out));
    BAD(dfr_heatmap_overlay(&base, s, 0, 2, 0, 1, 0.5f, &out));
    BAD(dfr_heatmap_overlay(&base, s, 2, -1, 0, 1, 0.5f, &out));
    BAD(dfr_heatmap_overlay(&base, s, 1 << 16, 1 << 16, 0, 1, 0.5f, &out));
    BAD(dfr_heatmap_overlay(&base, s, 2, 2, 1, 0, 0.5f, &out));
    BAD(dfr_heatmap_overlay(&base, s, 2, 2, NAN, 1, 0.5f, &out));
    BAD(dfr_heatmap_overlay(&base, s, 2, 2, 0, INFINITY, 0.5f, &out));
    BAD(dfr_heatmap_overlay(&base, s, 2, 2, 0, 1, 1.5f, &out));
    BAD(dfr_heatmap_overlay(&base, s, 2, 2, 0, 1, -0.1f, &out));
    BAD(dfr_heatmap_overlay(&base, s, 2, 2, 0, 1, NAN, &out));
    BAD(dfr_heatmap_overlay(NULL, s, 2, 2, 0, 1, 0.5f, &out));
    dfrcl_image two = {2, 2, 2, px};
    BAD(dfr_heatmap_overlay(&two, s, 2, 2, 0, 1, 0.5f, &out));
    assert_msg_has("2 channels");
    dfrcl_image nopx = {2, 2, 3, NULL};
    BAD(dfr_heatmap_overlay(&nopx, s, 2, 2, 0, 1, 0.5f, &out));
    BAD(dfr_mask_image(NULL, 2, 2, 0.5f, &out));
    BAD(dfr_mask_image(s, 2, 0, 0.5f, &out));
    BAD(dfr_mask_image(s, 2, 2, NAN, &out));
#undef BAD
    /* out aliasing base is refused, and base survives. */
    dfrcl_image same = base;
    assert_int_equal(dfr_heatmap_overlay(&same, s, 2, 2, 0, 1, 0.5f, &same), DFRCL_ERR_INVALID_ARG);
    assert_ptr_equal(same.pixels, px);
    assert_int_equal(dfr_heatmap_overlay(&base, s, 2, 2, 0, 1, 0.5f, NULL), DFRCL_ERR_INVALID_ARG);
}

static void test_mask(void **state)
{
    (void)state;
    float s[8] = {0.49f, 0.5f, 0.51f, NAN, INFINITY, -INFINITY, 0.5000001f, -0.0f};
    dfrcl_image m;
    assert_int_equal(dfr_mask_image(s, 4, 2, 0.5f, &m), DFRCL_OK);
    assert_int_equal(m.width, 4);
    assert_int_equal(m.height, 2);
    assert_int_equal(m.channels, 1);
    const uint8_t want[8] = {0, 0, 255, 0, 255, 0, 255, 0};
    assert_memory_equal(m.pixels, want, 8);
    dfrcl_image_free(&m);
    /* -inf threshold: everything but NaN and -inf itself. */
    assert_int_equal(dfr_mask_image(s, 8, 1, -INFINITY, &m), DFRCL_OK);
    const uint8_t want2[8] = {255, 255, 255, 0, 255, 0, 255, 255};
    assert_memory_equal(m.pixels, want2, 8);
    dfrcl_image_free(&m);
}

/* Builds a w x h mask from a picture of '#' (set) and '.' (unset) rows. */
static void make_mask(dfrcl_image *m, uint8_t *px, int w, int h, const char *rows)
{
    for (int i = 0; i < w * h; i++) px[i] = rows[i] == '#' ? 255 : 0;
    m->width = w;
    m->height = h;
    m->channels = 1;
    m->pixels = px;
}

static void check_outline(int w, int h, const char *rows, const char *want, const uint8_t *rgb)
{
    uint8_t mp[64], ip[64 * 3];
    dfrcl_image m, img = {w, h, 3, ip};
    make_mask(&m, mp, w, h, rows);
    memset(ip, 7, sizeof ip);
    assert_int_equal(dfr_outline_overlay(&img, &m, rgb), DFRCL_OK);
    const uint8_t cyan[3] = {0, 255, 255};
    const uint8_t *c = rgb ? rgb : cyan;
    for (int i = 0; i < w * h; i++) {
        int painted = !memcmp(ip + 3 * i, c, 3);
        int untouched = ip[3 * i] == 7 && ip[3 * i + 1] == 7 && ip[3 * i + 2] == 7;
        if (want[i] == 'o' ? !painted : !untouched) {
            fprintf(stderr, "outline pixel (%d,%d): want '%c'\n", i % w, i / w, want[i]);
            fail();
        }
    }
}

static void test_outline(void **state)
{
    (void)state;
    /* A block inside: its ring is painted, its inside and outside are not. */
    check_outline(6, 6,
                  "......"
                  ".####."
                  ".####."
                  ".####."
                  ".####."
                  "......",
                  "......"
                  ".oooo."
                  ".o..o."
                  ".o..o."
                  ".oooo."
                  "......",
                  NULL);
    /* Regions at the border are closed along it; a diagonal neighbour unset makes an edge;
     * a lone pixel is its own outline. */
    const uint8_t red[3] = {255, 0, 0};
    check_outline(5, 5,
                  "###.."
                  "###.."
                  "####."
                  "....."
                  "...#.",
                  "ooo.."
                  "o.o.."
                  "oooo."
                  "....."
                  "...o.",
                  red);
    /* An all-set mask is outlined along the image border only. */
    check_outline(4, 3,
                  "####"
                  "####"
                  "####",
                  "oooo"
                  "o..o"
                  "oooo",
                  NULL);
    /* Shape and channel mismatches. */
    uint8_t mp[4] = {0}, ip[12] = {0};
    dfrcl_image m = {2, 2, 1, mp}, img = {2, 2, 3, ip}, small = {1, 2, 1, mp}, g = {2, 2, 1, ip};
    assert_int_equal(dfr_outline_overlay(&img, &small, NULL), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_outline_overlay(&g, &m, NULL), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_outline_overlay(&img, &img, NULL), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_outline_overlay(NULL, &m, NULL), DFRCL_ERR_INVALID_ARG);
}

static int setup_dir(void **state)
{
    (void)state;
    return dfr_test_mkdtemp(tmpdir, sizeof tmpdir, "outputs");
}

static int teardown_dir(void **state)
{
    (void)state;
    dfr_test_rmdir_flat(tmpdir);
    return 0;
}

int main(void)
{
    dfr_verbosity = 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_numpy_bytes),
        cmocka_unit_test(test_npy_round_trip),
        cmocka_unit_test(test_npy_write_bad_args),
        cmocka_unit_test(test_npy_malformed),
        cmocka_unit_test(test_npy_header_variants),
        cmocka_unit_test(test_colormap),
        cmocka_unit_test(test_heatmap_blend),
        cmocka_unit_test(test_heatmap_nonfinite),
        cmocka_unit_test(test_heatmap_resize),
        cmocka_unit_test(test_heatmap_bad_args),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_outline),
    };
    return cmocka_run_group_tests_name("outputs", tests, setup_dir, teardown_dir);
}
