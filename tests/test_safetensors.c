/* safetensors reader and writer: round trip, F16/BF16/F64 conversion, shape checks, a table of
 * malformed files made in memory from a valid one (each must fail cleanly with the file name in
 * the message), files that shrink while open, and the shared VGG19 weights file. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <float.h>
#include <sys/stat.h>

#include "io/safetensors.h"
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

static int setup_dir(void **state)
{
    (void)state;
    return dfr_test_mkdtemp(tmpdir, sizeof tmpdir, "safetensors");
}

static int teardown_dir(void **state)
{
    (void)state;
    dfr_test_rmdir_flat(tmpdir);
    return 0;
}

/* Files in tmpdir, so a test can see that no temp file was left behind. */
static int count_files(void)
{
    int n = 0;
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static int contains(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

#define assert_msg_has(s)                                                                      \
    do {                                                                                       \
        if (!contains(dfrcl_last_error(), (s))) {                                              \
            fprintf(stderr, "message '%s' lacks '%s'\n", dfrcl_last_error(), (s));             \
            fail();                                                                            \
        }                                                                                      \
    } while (0)

/* A safetensors image: u64 length + header + data. */
static unsigned char *make_file(const char *header, const void *data, size_t data_len, size_t *len)
{
    size_t n = strlen(header);
    unsigned char *buf = malloc(8 + n + data_len + 1);
    assert_non_null(buf);
    uint64_t n64 = n;
    memcpy(buf, &n64, 8);
    memcpy(buf + 8, header, n);
    if (data_len) memcpy(buf + 8 + n, data, data_len);
    *len = 8 + n + data_len;
    return buf;
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* ---- Round trip --------------------------------------------------------- */

static void test_round_trip(void **state)
{
    (void)state;
    float a[24], b[5] = {1.5f, -0.0f, INFINITY, -INFINITY, 3.25e-41f /* subnormal */}, s = 42.0f;
    for (int i = 0; i < 24; i++) a[i] = dfr_test_uniform(7, (uint32_t)i, -5.0f, 5.0f);
    int64_t sa[4] = {2, 3, 1, 4}, sb[1] = {5}, sz[2] = {3, 0};
    dfr_st_writer *w = NULL;
    assert_int_equal(dfr_st_writer_new(&w), DFRCL_OK);
    assert_int_equal(dfr_st_writer_add_f32(w, "layer.a", 4, sa, a), DFRCL_OK);
    assert_int_equal(dfr_st_writer_add_f32(w, "b", 1, sb, b), DFRCL_OK);
    assert_int_equal(dfr_st_writer_add_f32(w, "scalar", 0, NULL, &s), DFRCL_OK);
    assert_int_equal(dfr_st_writer_add_f32(w, "empty", 2, sz, NULL), DFRCL_OK);
    assert_int_equal(dfr_st_writer_meta(w, "size", "256"), DFRCL_OK);
    const char *note = "quote \" backslash \\ newline \n é ✓";
    assert_int_equal(dfr_st_writer_meta(w, "note", note), DFRCL_OK);
    assert_int_equal(dfr_st_writer_meta(w, "size", "512"), DFRCL_OK); /* replaces */
    const char *path = tmp_path("rt.safetensors");
    int before = count_files();
    assert_int_equal(dfr_st_writer_write(w, path), DFRCL_OK);
    dfr_st_writer_free(&w);
    assert_null(w);
    assert_int_equal(count_files(), before + 1); /* no temp file left behind */

    /* Layout: header length a multiple of 8, padded with spaces, data right after it. */
    unsigned char *raw;
    size_t rawlen;
    assert_int_equal(dfr_read_file(path, &raw, &rawlen), DFRCL_OK);
    uint64_t n;
    memcpy(&n, raw, 8);
    assert_int_equal(n % 8, 0);
    assert_int_equal(rawlen, 8 + n + (24 + 5 + 1) * 4);
    assert_int_equal(raw[8], '{');
    size_t k = 8 + n;
    while (raw[k - 1] == ' ') k--;
    assert_int_equal(raw[k - 1], '}');
    assert_true(8 + n - k < 8);
    free(raw);

    dfr_safetensors *st = NULL;
    assert_int_equal(dfr_st_open(&st, path), DFRCL_OK);
    assert_string_equal(dfr_st_path(st), path);
    assert_int_equal(dfr_st_count(st), 4);
    const char *order[4] = {"layer.a", "b", "scalar", "empty"};
    for (int i = 0; i < 4; i++) assert_string_equal(dfr_st_tensor_at(st, i)->name, order[i]);
    assert_null(dfr_st_tensor_at(st, 4));
    assert_null(dfr_st_tensor_at(st, -1));
    const dfr_st_tensor *t = dfr_st_find(st, "layer.a");
    assert_non_null(t);
    assert_int_equal(t->dtype, DFR_DT_F32);
    assert_int_equal(t->ndim, 4);
    for (int i = 0; i < 4; i++) assert_int_equal(t->shape[i], sa[i]);
    assert_int_equal(t->begin, 8 + n);
    assert_int_equal(t->end - t->begin, 96);
    assert_int_equal(dfr_st_numel(t), 24);
    t = dfr_st_find(st, "scalar");
    assert_int_equal(t->ndim, 0);
    assert_int_equal(dfr_st_numel(t), 1);
    t = dfr_st_find(st, "empty");
    assert_int_equal(t->ndim, 2);
    assert_int_equal(dfr_st_numel(t), 0);
    assert_null(dfr_st_find(st, "layer"));
    assert_null(dfr_st_find(st, "__metadata__"));
    assert_string_equal(dfr_st_metadata(st, "size"), "512");
    assert_string_equal(dfr_st_metadata(st, "note"), note);
    assert_null(dfr_st_metadata(st, "absent"));

    float ra[24], rb[8], rs;
    dfr_test_poison(rb, 8);
    assert_int_equal(dfr_st_read_f32(st, "layer.a", 4, sa, ra, 24), DFRCL_OK);
    assert_memory_equal(ra, a, sizeof a);
    /* ndim 0: no shape check; a larger buffer is fine and only numel floats are written */
    assert_int_equal(dfr_st_read_f32(st, "b", 0, NULL, rb, 8), DFRCL_OK);
    assert_memory_equal(rb, b, sizeof b);
    assert_true(rb[5] == DFR_POISON);
    assert_int_equal(dfr_st_read_f32(st, "scalar", 0, NULL, &rs, 1), DFRCL_OK);
    assert_true(rs == 42.0f);
    assert_int_equal(dfr_st_read_f32(st, "empty", 2, sz, NULL, 0), DFRCL_OK);
    dfr_st_close(&st);
    assert_null(st);
    dfr_st_close(&st); /* twice is fine */

    /* Overwriting an existing file replaces it whole. */
    assert_int_equal(dfr_st_writer_new(&w), DFRCL_OK);
    assert_int_equal(dfr_st_writer_add_f32(w, "only", 1, sb, b), DFRCL_OK);
    assert_int_equal(dfr_st_writer_write(w, path), DFRCL_OK);
    dfr_st_writer_free(&w);
    assert_int_equal(dfr_st_open(&st, path), DFRCL_OK);
    assert_int_equal(dfr_st_count(st), 1);
    assert_null(dfr_st_metadata(st, "size"));
    dfr_st_close(&st);
    assert_int_equal(count_files(), before + 1);
}

static void test_writer_empty(void **state)
{
    (void)state;
    dfr_st_writer *w = NULL;
    assert_int_equal(dfr_st_writer_new(&w), DFRCL_OK);
    const char *path = tmp_path("empty.safetensors");
    assert_int_equal(dfr_st_writer_write(w, path), DFRCL_OK);
    dfr_st_writer_free(&w);
    dfr_safetensors *st = NULL;
    assert_int_equal(dfr_st_open(&st, path), DFRCL_OK);
    assert_int_equal(dfr_st_count(st), 0);
    assert_null(dfr_st_find(st, "x"));
    assert_null(dfr_st_metadata(st, "x"));
    dfr_st_close(&st);
}

static void test_writer_rejects(void **state)
{
    (void)state;
    float x[4] = {0};
    int64_t s1[1] = {4}, neg[2] = {2, -2}, nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 4};
    int64_t huge[3] = {INT64_C(1) << 40, INT64_C(1) << 40, INT64_C(1) << 40};
    dfr_st_writer *w = NULL;
    assert_int_equal(dfr_st_writer_new(&w), DFRCL_OK);
    assert_int_equal(dfr_st_writer_add_f32(w, "x", 1, s1, x), DFRCL_OK);
    assert_int_equal(dfr_st_writer_add_f32(w, "x", 1, s1, x), DFRCL_ERR_INVALID_ARG);
    assert_msg_has("added twice");
    assert_int_equal(dfr_st_writer_add_f32(w, "__metadata__", 1, s1, x), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_st_writer_add_f32(w, "", 1, s1, x), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_st_writer_add_f32(w, "bad\xff", 1, s1, x), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_st_writer_add_f32(w, "overlong\xc0\xaf", 1, s1, x), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_st_writer_add_f32(w, "surrogate\xed\xa0\x80", 1, s1, x),
                     DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_st_writer_add_f32(w, "neg", 2, neg, x), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_st_writer_add_f32(w, "nine", 9, nine, x), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_st_writer_add_f32(w, "huge", 3, huge, x), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_st_writer_add_f32(w, "nodata", 1, s1, NULL), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_st_writer_meta(w, "k", "\x80"), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_st_writer_meta(w, "k", NULL), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_st_writer_meta(w, "ünï", "cödé"), DFRCL_OK);
    /* a directory that does not exist: IO error naming the path, nothing created */
    assert_int_equal(dfr_st_writer_write(w, "/nonexistent-dir/x.safetensors"), DFRCL_ERR_IO);
    assert_msg_has("/nonexistent-dir/x.safetensors");
    /* the rejected adds left the writer as it was */
    const char *path = tmp_path("rejects.safetensors");
    assert_int_equal(dfr_st_writer_write(w, path), DFRCL_OK);
    dfr_st_writer_free(&w);
    dfr_st_writer_free(&w);
    dfr_safetensors *st = NULL;
    assert_int_equal(dfr_st_open(&st, path), DFRCL_OK);
    assert_int_equal(dfr_st_count(st), 1);
    assert_string_equal(dfr_st_metadata(st, "ünï"), "cödé");
    dfr_st_close(&st);
}

/* ---- Conversions -------------------------------------------------------- */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void test_half_conversions(void **state)
{
    (void)state;
    /* Every F16 and BF16 bit pattern, and a few F64 values, in one file. */
    enum { N16 = 65536, N64 = 6 };
    size_t dlen = 2 * N16 * 2 + N64 * 8;
    unsigned char *data = malloc(dlen);
    assert_non_null(data);
    for (uint32_t i = 0; i < N16; i++) {
        uint16_t h = (uint16_t)i;
        memcpy(data + 2 * i, &h, 2);
        memcpy(data + 2 * N16 + 2 * i, &h, 2);
    }
    const double d64[N64] = {0.1, -1e300, 1e-300, 3.0, -0.0, 65504.0};
    memcpy(data + 4 * N16, d64, sizeof d64);
    char header[512];
    snprintf(header, sizeof header,
             "{\"h\":{\"dtype\":\"F16\",\"shape\":[256,256],\"data_offsets\":[0,%d]},"
             "\"bf\":{\"dtype\":\"BF16\",\"shape\":[%d],\"data_offsets\":[%d,%d]},"
             "\"d\":{\"dtype\":\"F64\",\"shape\":[%d],\"data_offsets\":[%d,%zu]},"
             "\"i\":{\"dtype\":\"I32\",\"shape\":[0],\"data_offsets\":[0,0]}}",
             2 * N16, N16, 2 * N16, 4 * N16, N64, 4 * N16, dlen);
    size_t len;
    unsigned char *file = make_file(header, data, dlen, &len);
    free(data);
    dfr_safetensors *st = NULL;
    assert_int_equal(dfr_st_open_memory(&st, file, len, "conv.safetensors"), DFRCL_OK);

    float *out = malloc(N16 * sizeof(float));
    int64_t hs[2] = {256, 256};
    assert_int_equal(dfr_st_read_f32(st, "h", 2, hs, out, N16), DFRCL_OK);
    /* spot values, independent of any compiler support */
    assert_true(out[0x3c00] == 1.0f);
    assert_true(out[0xc000] == -2.0f);
    assert_true(out[0x7bff] == 65504.0f);
    assert_true(out[0x0001] == 0x1p-24f);
    assert_true(out[0x03ff] == 1023 * 0x1p-24f);
    assert_true(out[0x0400] == 0x1p-14f);
    assert_true(out[0x3555] == 0.333251953125f);
    assert_true(f32_bits(out[0x8000]) == 0x80000000u);
    assert_true(out[0x7c00] == INFINITY && out[0xfc00] == -INFINITY);
    assert_true(isnan(out[0x7e00]) && isnan(out[0xfc01]));
#ifdef __FLT16_MAX__
    /* exhaustive, against the compiler's own _Float16 */
    for (uint32_t i = 0; i < N16; i++) {
        _Float16 h;
        uint16_t b = (uint16_t)i;
        memcpy(&h, &b, 2);
        float want = (float)h;
        if (isnan(want)) assert_true(isnan(out[i]));
        else if (f32_bits(out[i]) != f32_bits(want)) {
            fprintf(stderr, "F16 0x%04x: got %a want %a\n", i, out[i], want);
            fail();
        }
    }
#endif
    assert_int_equal(dfr_st_read_f32(st, "bf", 0, NULL, out, N16), DFRCL_OK);
    for (uint32_t i = 0; i < N16; i++) assert_int_equal(f32_bits(out[i]), i << 16);

    float d[N64];
    assert_int_equal(dfr_st_read_f32(st, "d", 1, (int64_t[]){N64}, d, N64), DFRCL_OK);
    for (int i = 0; i < N64; i++) assert_true(f32_bits(d[i]) == f32_bits((float)d64[i]));

    /* other dtypes are refused, naming the dtype */
    assert_int_equal(dfr_st_read_f32(st, "i", 0, NULL, out, N16), DFRCL_ERR_FORMAT);
    assert_msg_has("conv.safetensors");
    assert_msg_has("I32");
    free(out);
    dfr_st_close(&st);
    free(file);
}

/* ---- Shape checks and read errors --------------------------------------- */

static const char valid_header[] =
    "{\"__metadata__\":{\"format\":\"pt\",\"k\":\"v\"},"
    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
    "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]}}";

static unsigned char valid_data[32];

static unsigned char *valid_file(size_t *len)
{
    for (int i = 0; i < 32; i++) valid_data[i] = (unsigned char)(i * 37 + 1);
    return make_file(valid_header, valid_data, sizeof valid_data, len);
}

static void test_shape_checks(void **state)
{
    (void)state;
    size_t len;
    unsigned char *file = valid_file(&len);
    dfr_safetensors *st = NULL;
    assert_int_equal(dfr_st_open_memory(&st, file, len, "shapes.safetensors"), DFRCL_OK);
    assert_string_equal(dfr_st_metadata(st, "format"), "pt");
    float out[8];
    assert_int_equal(dfr_st_read_f32(st, "a", 2, (int64_t[]){2, 3}, out, 6), DFRCL_OK);
    assert_memory_equal(out, valid_data, 24);

    assert_int_equal(dfr_st_read_f32(st, "a", 2, (int64_t[]){3, 2}, out, 6), DFRCL_ERR_FORMAT);
    assert_msg_has("shapes.safetensors");
    assert_msg_has("'a'");
    assert_msg_has("[2, 3]");
    assert_msg_has("[3, 2]");
    assert_int_equal(dfr_st_read_f32(st, "a", 3, (int64_t[]){2, 3, 1}, out, 6), DFRCL_ERR_FORMAT);
    assert_msg_has("[2, 3, 1]");
    assert_int_equal(dfr_st_read_f32(st, "a", 1, (int64_t[]){6}, out, 6), DFRCL_ERR_FORMAT);
    assert_msg_has("[6]");
    assert_int_equal(dfr_st_read_f32(st, "nope", 0, NULL, out, 6), DFRCL_ERR_FORMAT);
    assert_msg_has("shapes.safetensors");
    assert_msg_has("nope");
    /* buffer too small for the tensor */
    assert_int_equal(dfr_st_read_f32(st, "a", 2, (int64_t[]){2, 3}, out, 5), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_st_read_f32(st, "a", -1, NULL, out, 6), DFRCL_ERR_INVALID_ARG);
    dfr_st_close(&st);
    free(file);
}

/* A file that shrinks after its header was validated: reads fail, they do not crash. */
static void test_file_shrinks(void **state)
{
    (void)state;
    size_t len;
    unsigned char *file = valid_file(&len);
    const char *path = tmp_path("shrinks.safetensors");
    write_bytes(path, file, len);
    dfr_safetensors *st = NULL;
    assert_int_equal(dfr_st_open(&st, path), DFRCL_OK);
    assert_int_equal(truncate(path, (off_t)len - 4), 0);
    float out[6];
    assert_int_equal(dfr_st_read_f32(st, "a", 2, (int64_t[]){2, 3}, out, 6), DFRCL_OK);
    assert_int_equal(dfr_st_read_f32(st, "b", 1, (int64_t[]){4}, out, 4), DFRCL_ERR_FORMAT);
    assert_msg_has(path);
    dfr_st_close(&st);
    free(file);
}

static void test_open_io_errors(void **state)
{
    (void)state;
    dfr_safetensors *st = (dfr_safetensors *)&st; /* must be set to NULL on failure */
    assert_int_equal(dfr_st_open(&st, tmp_path("does-not-exist.safetensors")), DFRCL_ERR_IO);
    assert_null(st);
    assert_msg_has("does-not-exist.safetensors");
    assert_int_equal(dfr_st_open(&st, tmpdir), DFRCL_ERR_IO);
    assert_msg_has(tmpdir);
}

/* ---- Malformed files ---------------------------------------------------- */

#define T_A "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}"
#define T_B "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]}"

static const struct bad_case {
    const char *what;
    const char *header; /* with the valid 32 data bytes after it */
    const char *msg;    /* a piece the message must contain */
} bad_cases[] = {
    {"bad JSON", "{\"a\":{\"dtype\":\"F32\",", "not valid JSON"},
    {"bad JSON 2", "{\"a\" {}}", "not valid JSON"},
    {"unterminated string", "{\"a\":{\"dtype\":\"F32}}", "not valid JSON"},
    {"not an object", "[1, 2]  ", "not a JSON object"},
    {"trailing garbage", "{" T_A "," T_B "}x", "trailing"},
    {"two roots", "{" T_A "}{}", "trailing"},
    {"NUL in header", "{" T_A "}\0", "trailing"},
    {"unknown dtype", "{\"a\":{\"dtype\":\"F33\",\"shape\":[2,3],\"data_offsets\":[0,24]}}",
     "dtype 'F33'"},
    {"sub-byte dtype", "{\"a\":{\"dtype\":\"F4\",\"shape\":[2,3],\"data_offsets\":[0,24]}}",
     "dtype 'F4'"},
    {"dtype not a string", "{\"a\":{\"dtype\":4,\"shape\":[2,3],\"data_offsets\":[0,24]}}",
     "dtype is not a string"},
    {"shape/range mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,24]}}",
     "hold 24 bytes"},
    {"dtype/range mismatch", "{\"a\":{\"dtype\":\"F64\",\"shape\":[2,3],\"data_offsets\":[0,24]}}",
     "hold 24 bytes"},
    {"scalar mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,8]}}",
     "hold 8 bytes"},
    {"range outside data",
     "{" T_A ",\"b\":{\"dtype\":\"F16\",\"shape\":[8],\"data_offsets\":[24,40]}}",
     "past the end"},
    {"range far outside", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":"
     "[9007199254740991,9007199254740992]}}", "past the end"},
    {"begin after end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,16]}}",
     "end before"},
    {"overlap", "{" T_A ",\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[20,28]}}",
     "overlap"},
    {"same range", "{" T_A ",\"b\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]}}",
     "overlap"},
    {"contained", "{" T_A ",\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[4,8]}}",
     "overlap"},
    {"negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2,-3],\"data_offsets\":[0,24]}}",
     "dimension 0"},
    {"fractional dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3.5],\"data_offsets\":[0,24]}}",
     "dimension 1"},
    {"string dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\",3],\"data_offsets\":[0,24]}}",
     "dimension 0"},
    {"huge dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,24]}}",
     "dimension 0"},
    {"dim over 2^53",
     "{\"a\":{\"dtype\":\"U8\",\"shape\":[9007199254740994],\"data_offsets\":[0,8]}}",
     "dimension 0"},
    {"shape overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
     "\"data_offsets\":[0,24]}}", "overflow"},
    {"byte count overflow", "{\"a\":{\"dtype\":\"F64\",\"shape\":[2147483648,2147483648],"
     "\"data_offsets\":[0,0]}}", "needs"},
    {"zero dim with bytes", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,24]}}",
     "hold 24"},
    {"too many dims", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,6],"
     "\"data_offsets\":[0,24]}}", "more than 8"},
    {"shape not array", "{\"a\":{\"dtype\":\"F32\",\"shape\":6,\"data_offsets\":[0,24]}}",
     "not an array"},
    {"missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3]}}", "data_offsets"},
    {"missing dtype", "{\"a\":{\"shape\":[2,3],\"data_offsets\":[0,24]}}", "no 'dtype'"},
    {"missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,24]}}", "no 'shape'"},
    {"three offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24,32]}}",
     "data_offsets"},
    {"one offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[24]}}",
     "data_offsets"},
    {"negative offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[-8,16]}}",
     "data_offsets"},
    {"fractional offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0.5,24]}}",
     "data_offsets"},
    {"offsets not array", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":{\"0\":24}}}",
     "data_offsets"},
    {"duplicate field", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[2,3],"
     "\"data_offsets\":[0,24]}}", "two 'dtype'"},
    {"entry not object", "{" T_A ",\"b\":5}", "'b' is not a JSON object"},
    {"metadata non-string", "{\"__metadata__\":{\"k\":1}," T_A "}", "not a string"},
    {"metadata null", "{\"__metadata__\":{\"k\":null}," T_A "}", "not a string"},
    {"metadata nested", "{\"__metadata__\":{\"k\":{\"x\":\"y\"}}," T_A "}", "not a string"},
    {"metadata not object", "{\"__metadata__\":\"x\"," T_A "}", "__metadata__"},
    {"metadata twice", "{\"__metadata__\":{}," T_A ",\"__metadata__\":{}}", "twice"},
    {"metadata duplicate key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}," T_A "}", "twice"},
    {"duplicate tensor", "{" T_A "," T_A "}", "'a' appears twice"},
    {"duplicate tensor, other ranges",
     "{" T_A ",\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]}}", "twice"},
};

/* Opens a buffer from memory, and the same bytes from a file; both must fail with FORMAT (or
 * IO) and name the file; `msg` if given must be in the message. */
static void expect_bad(const char *what, const unsigned char *buf, size_t len, const char *msg)
{
    dfr_safetensors *st = NULL;
    int rc = dfr_st_open_memory(&st, buf, len, "bad-mem.safetensors");
    if (rc != DFRCL_ERR_FORMAT && rc != DFRCL_ERR_IO) {
        fprintf(stderr, "%s (%zu bytes): memory open gave %d (%s)\n", what, len, rc,
                dfrcl_last_error());
        fail();
    }
    assert_null(st);
    assert_msg_has("bad-mem.safetensors");
    if (msg) assert_msg_has(msg);

    const char *path = tmp_path("bad-file.safetensors");
    write_bytes(path, buf, len);
    st = (dfr_safetensors *)&st;
    rc = dfr_st_open(&st, path);
    if (rc != DFRCL_ERR_FORMAT && rc != DFRCL_ERR_IO) {
        fprintf(stderr, "%s (%zu bytes): file open gave %d (%s)\n", what, len, rc,
                dfrcl_last_error());
        fail();
    }
    assert_null(st);
    assert_msg_has(path);
    if (msg) assert_msg_has(msg);
}

static void test_malformed_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *c = &bad_cases[i];
        size_t hlen = strlen(c->header), len;
        if (!strcmp(c->what, "NUL in header")) hlen++; /* the string's own NUL */
        unsigned char *buf = malloc(8 + hlen + sizeof valid_data);
        uint64_t h64 = hlen;
        memcpy(buf, &h64, 8);
        memcpy(buf + 8, c->header, hlen);
        memcpy(buf + 8 + hlen, valid_data, sizeof valid_data);
        len = 8 + hlen + sizeof valid_data;
        expect_bad(c->what, buf, len, c->msg);
        free(buf);
    }
}

/* Nesting far past cJSON's limit: an error, not a stack overflow. */
static void test_malformed_deep(void **state)
{
    (void)state;
    enum { DEPTH = 100000 };
    char *h = malloc(2 * DEPTH + 64);
    size_t n = (size_t)sprintf(h, "{\"a\":");
    for (int i = 0; i < DEPTH; i++) h[n++] = '[';
    for (int i = 0; i < DEPTH; i++) h[n++] = ']';
    h[n++] = '}';
    h[n] = 0;
    size_t len;
    unsigned char *buf = make_file(h, NULL, 0, &len);
    expect_bad("deep nesting", buf, len, "not valid JSON");
    free(buf);
    free(h);
}

/* Limits on counts: too many tensors, too many JSON values. */
static void test_malformed_counts(void **state)
{
    (void)state;
    size_t cap = (size_t)(DFR_ST_MAX_TENSORS + 1) * 16 + 16, n = 0, len;
    char *h = malloc(cap);
    h[n++] = '{';
    for (int i = 0; i <= DFR_ST_MAX_TENSORS; i++)
        n += (size_t)sprintf(h + n, "%s\"t%d\":0", i ? "," : "", i);
    h[n++] = '}';
    h[n] = 0;
    unsigned char *buf = make_file(h, NULL, 0, &len);
    expect_bad("too many tensors", buf, len, "more than");
    free(buf);
    free(h);

    size_t values = (size_t)1 << 22;
    h = malloc(2 * values + 16);
    n = (size_t)sprintf(h, "{\"a\":[0");
    for (size_t i = 0; i < values; i++) h[n++] = ',', h[n++] = '0';
    h[n++] = ']';
    h[n++] = '}';
    h[n] = 0;
    buf = make_file(h, NULL, 0, &len);
    expect_bad("too many values", buf, len, "JSON values");
    free(buf);
    free(h);
}

/* The valid file cut at every length: inside the length prefix, the header and the data. */
static void test_malformed_truncated(void **state)
{
    (void)state;
    size_t len;
    unsigned char *file = valid_file(&len);
    dfr_safetensors *st = NULL;
    assert_int_equal(dfr_st_open_memory(&st, file, len, "whole.safetensors"), DFRCL_OK);
    dfr_st_close(&st);
    for (size_t cut = 0; cut < len; cut++) {
        /* a fresh copy of exactly `cut` bytes, so ASan sees any read past its end */
        unsigned char *part = malloc(cut ? cut : 1);
        memcpy(part, file, cut);
        char what[64];
        snprintf(what, sizeof what, "truncated at %zu", cut);
        expect_bad(what, part, cut, NULL);
        free(part);
    }
    free(file);
}

static void test_malformed_prefix(void **state)
{
    (void)state;
    size_t len;
    unsigned char *file = valid_file(&len);
    uint64_t real;
    memcpy(&real, file, 8);
    const uint64_t lens[] = {real + 33, real + 1000, UINT64_MAX, UINT64_C(1) << 63, 0, 1};
    const char *msgs[] = {"more than", "more than", "limit", "limit", "too short", "too short"};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        memcpy(file, &lens[i], 8);
        expect_bad("header length", file, len, msgs[i]);
    }
    /* length one byte off either way: the JSON is cut or has data bytes after it */
    uint64_t l = real - 1;
    memcpy(file, &l, 8);
    expect_bad("header length - 1", file, len, "JSON");
    l = real + 1;
    memcpy(file, &l, 8);
    expect_bad("header length + 1", file, len, NULL);
    free(file);

    /* over the 100 MB cap in a buffer that big (calloc'd pages are never touched) */
    size_t big = DFR_ST_MAX_HEADER + 64;
    unsigned char *huge = calloc(1, big);
    assert_non_null(huge);
    l = DFR_ST_MAX_HEADER + 1;
    memcpy(huge, &l, 8);
    dfr_safetensors *st = NULL;
    assert_int_equal(dfr_st_open_memory(&st, huge, big, "huge.safetensors"), DFRCL_ERR_FORMAT);
    assert_msg_has("huge.safetensors");
    assert_msg_has("limit");
    free(huge);
}

/* Gaps between tensors and bytes after the last one are tolerated (only overlaps are errors);
 * the padding spaces after the JSON, and unknown fields, too. */
static void test_lenient_but_valid(void **state)
{
    (void)state;
    size_t len;
    unsigned char *buf = make_file(
        "{\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32],\"extra\":[1,2]},"
        "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}   \n ",
        valid_data, sizeof valid_data, &len);
    dfr_safetensors *st = NULL;
    assert_int_equal(dfr_st_open_memory(&st, buf, len, "gaps.safetensors"), DFRCL_OK);
    assert_int_equal(dfr_st_count(st), 3);
    assert_string_equal(dfr_st_tensor_at(st, 0)->name, "b"); /* header order, not name order */
    assert_null(dfr_st_metadata(st, "format"));
    float x;
    assert_int_equal(dfr_st_read_f32(st, "a", 1, (int64_t[]){1}, &x, 1), DFRCL_OK);
    assert_memory_equal(&x, valid_data + 4, 4);
    unsigned char raw[8];
    assert_int_equal(dfr_st_read_raw(st, dfr_st_find(st, "b"), raw, 8), DFRCL_OK);
    assert_memory_equal(raw, valid_data + 24, 8);
    assert_int_equal(dfr_st_read_raw(st, dfr_st_find(st, "b"), raw, 7), DFRCL_ERR_INVALID_ARG);
    dfr_st_close(&st);
    free(buf);

    /* nested unknown fields within cJSON's nesting limit are ignored too */
    char h[512];
    size_t n = (size_t)sprintf(h, "{\"a\":{\"dtype\":\"U8\",\"shape\":[],"
                                  "\"data_offsets\":[0,1],\"x\":");
    for (int i = 0; i < 200; i++) h[n++] = i < 100 ? '[' : ']';
    strcpy(h + n, "}}");
    buf = make_file(h, valid_data, sizeof valid_data, &len);
    assert_int_equal(dfr_st_open_memory(&st, buf, len, "nested.safetensors"), DFRCL_OK);
    assert_int_equal(dfr_st_find(st, "a")->dtype, DFR_DT_U8);
    dfr_st_close(&st);
    free(buf);
}

/* ---- The shared VGG19 weights ------------------------------------------- */

static void test_shared_vgg19(void **state)
{
    (void)state;
    const char *shared = dfr_test_shared_dir();
    if (!shared) {
        fprintf(stderr, "skip: no shared folder (set DFRCL_SHARED)\n");
        skip();
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/weights/vgg19-imagenet-conv1_1-conv3_4.safetensors", shared);
    dfr_safetensors *st = NULL;
    assert_int_equal(dfr_st_open(&st, path), DFRCL_OK);
    assert_int_equal(dfr_st_count(st), 16);
    assert_string_equal(dfr_st_metadata(st, "architecture"), "vgg19");
    const dfr_st_tensor *t = dfr_st_find(st, "features.0.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, DFR_DT_F32);
    assert_int_equal(t->ndim, 4);
    const int64_t want[4] = {64, 3, 3, 3};
    for (int i = 0; i < 4; i++) assert_int_equal(t->shape[i], want[i]);
    /* every conv layer present with its torchvision shape */
    const int idx[8] = {0, 2, 5, 7, 10, 12, 14, 16};
    const int cout[8] = {64, 64, 128, 128, 256, 256, 256, 256};
    for (int l = 0; l < 8; l++) {
        char wn[64], bn[64];
        snprintf(wn, sizeof wn, "features.%d.weight", idx[l]);
        snprintf(bn, sizeof bn, "features.%d.bias", idx[l]);
        const dfr_st_tensor *w = dfr_st_find(st, wn), *b = dfr_st_find(st, bn);
        assert_non_null(w);
        assert_non_null(b);
        assert_int_equal(w->shape[0], cout[l]);
        assert_int_equal(w->shape[1], l == 0 ? 3 : cout[l - 1]);
        assert_int_equal(b->ndim, 1);
        assert_int_equal(b->shape[0], cout[l]);
    }

    /* the values read equal the file's bytes at the offsets, read here independently */
    float w0[64 * 27], ref[64 * 27];
    assert_int_equal(dfr_st_read_f32(st, "features.0.weight", 4, want, w0, 64 * 27), DFRCL_OK);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint64_t n;
    assert_int_equal(fread(&n, 8, 1, f), 1);
    assert_int_equal(t->begin, 8 + n + 256); /* after features.0.bias [64] */
    assert_int_equal(fseek(f, (long)t->begin, SEEK_SET), 0);
    assert_int_equal(fread(ref, sizeof ref, 1, f), 1);
    fclose(f);
    assert_memory_equal(w0, ref, sizeof ref);
    double sum = 0;
    for (int i = 0; i < 64 * 27; i++) {
        assert_true(isfinite(w0[i]));
        sum += fabs(w0[i]);
    }
    assert_true(sum > 0);
    /* a wrong expected shape names the file, the tensor and both shapes */
    assert_int_equal(dfr_st_read_f32(st, "features.0.weight", 4, (int64_t[]){64, 3, 3, 1}, w0,
                                     64 * 27),
                     DFRCL_ERR_FORMAT);
    assert_msg_has("vgg19-imagenet-conv1_1-conv3_4.safetensors");
    assert_msg_has("features.0.weight");
    assert_msg_has("[64, 3, 3, 3]");
    assert_msg_has("[64, 3, 3, 1]");
    dfr_st_close(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_writer_empty),
        cmocka_unit_test(test_writer_rejects),
        cmocka_unit_test(test_half_conversions),
        cmocka_unit_test(test_shape_checks),
        cmocka_unit_test(test_file_shrinks),
        cmocka_unit_test(test_open_io_errors),
        cmocka_unit_test(test_malformed_table),
        cmocka_unit_test(test_malformed_deep),
        cmocka_unit_test(test_malformed_counts),
        cmocka_unit_test(test_malformed_truncated),
        cmocka_unit_test(test_malformed_prefix),
        cmocka_unit_test(test_lenient_but_valid),
        cmocka_unit_test(test_shared_vgg19),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
