#include "io/npy.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fsutil.h"

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

/* numpy >= 1.23 leaves room after the dict so the first axis can grow in place to 21 digits. */
#define NPY_GROWTH_DIGITS 21
#define NPY_ALIGN 64
/* Header text cap for the reader: numpy refuses headers over 10000 bytes by default too. */
#define NPY_MAX_HEADER 10000
#define NPY_STR2(x) #x
#define NPY_STR(x) NPY_STR2(x)

static int host_is_little_endian(void)
{
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void swap32(void *buf, size_t n)
{
    unsigned char *p = buf;
    for (size_t i = 0; i < n; i++, p += 4) {
        unsigned char t = p[0];
        p[0] = p[3];
        p[3] = t;
        t = p[1];
        p[1] = p[2];
        p[2] = t;
    }
}

/* "(2, 3)" / "(4,)" / "()" exactly as Python's repr of a tuple of ints. Returns the length. */
static int format_shape(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "(");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (ndim == 1 && n < cap) n += (size_t)snprintf(buf + n, cap - n, ",");
    if (n < cap) n += (size_t)snprintf(buf + n, cap - n, ")");
    return n < cap ? (int)n : (int)cap - 1;
}

/* Element count of a shape, 0 with *ok = 0 when it overflows a byte count in size_t. */
static uint64_t shape_count(int ndim, const int64_t *shape, int *ok)
{
    uint64_t count = 1;
    const uint64_t limit = (uint64_t)(SIZE_MAX / sizeof(float)) < (uint64_t)INT64_MAX
                               ? (uint64_t)(SIZE_MAX / sizeof(float))
                               : (uint64_t)INT64_MAX;
    *ok = 1;
    for (int i = 0; i < ndim; i++) {
        uint64_t d = (uint64_t)shape[i];
        if (d != 0 && count > limit / d) {
            *ok = 0;
            return 0;
        }
        count *= d;
    }
    return count;
}

int dfr_npy_write_f32(const char *path, int ndim, const int64_t *shape, const float *data)
{
    if (!path) return dfr_error(DFRCL_ERR_INVALID_ARG, "npy write: path is NULL");
    if (ndim < 0 || ndim > DFR_NPY_MAX_DIMS)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: npy write: %d dimensions (0..%d allowed)", path,
                         ndim, DFR_NPY_MAX_DIMS);
    if (ndim > 0 && !shape)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: npy write: shape is NULL", path);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: npy write: dimension %d is negative (%lld)",
                             path, i, (long long)shape[i]);
    int ok;
    uint64_t count = shape_count(ndim, shape, &ok);
    if (!ok) return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: npy write: shape too large", path);
    if (count > 0 && !data)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: npy write: data is NULL", path);

    /* 10 bytes of prefix, then the dict, growth room, padding spaces and '\n'. Worst case
     * (8 dims of 19 digits) is about 300 bytes. */
    unsigned char head[512];
    char *h = (char *)head + 10;
    const size_t hcap = sizeof head - 10;
    char shp[256];
    format_shape(shp, sizeof shp, ndim, shape);
    int n = snprintf(h, hcap, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shp);
    if (ndim > 0) {
        char first[32];
        int digits = snprintf(first, sizeof first, "%lld", (long long)shape[0]);
        for (int i = digits; i < NPY_GROWTH_DIGITS; i++) h[n++] = ' ';
    }
    /* numpy pads by ALIGN - (len % ALIGN): a full 64 spaces when already aligned. */
    int pad = NPY_ALIGN - (int)((10 + (size_t)n + 1) % NPY_ALIGN);
    memset(h + n, ' ', (size_t)pad);
    n += pad;
    h[n++] = '\n';
    memcpy(head, npy_magic, 6);
    head[6] = 1;
    head[7] = 0;
    head[8] = (unsigned char)(n & 0xff);
    head[9] = (unsigned char)(n >> 8);

    dfr_atomic_file af;
    int rc = dfr_atomic_open(&af, path);
    if (rc) return rc;
    int bad = fwrite(head, 1, 10 + (size_t)n, af.f) != 10 + (size_t)n;
    if (host_is_little_endian()) {
        if (!bad && count && fwrite(data, sizeof(float), (size_t)count, af.f) != (size_t)count)
            bad = 1;
    } else {
        float chunk[1024];
        for (uint64_t i = 0; i < count && !bad; i += 1024) {
            size_t m = count - i < 1024 ? (size_t)(count - i) : 1024;
            memcpy(chunk, data + i, m * sizeof(float));
            swap32(chunk, m);
            bad = fwrite(chunk, sizeof(float), m, af.f) != m;
        }
    }
    if (bad) {
        int e = errno;
        dfr_atomic_abort(&af);
        return dfr_error(DFRCL_ERR_IO, "%s: write failed: %s", path, strerror(e ? e : EIO));
    }
    return dfr_atomic_commit(&af);
}

/* ---- reader ------------------------------------------------------------------------------ */

/* A cursor over the header text: a Python dict literal, parsed only as far as numpy writes it. */
typedef struct {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int accept(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted string without escapes, at most cap-1 characters. */
static int parse_string(cursor *c, char *out, size_t cap)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= cap) return 0;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return 0;
    c->p++;
    out[n] = 0;
    return 1;
}

/* A bare word (True, False). */
static int parse_word(cursor *c, char *out, size_t cap)
{
    skip_ws(c);
    size_t n = 0;
    while (c->p < c->end && ((*c->p >= 'A' && *c->p <= 'Z') || (*c->p >= 'a' && *c->p <= 'z'))) {
        if (n + 1 >= cap) return 0;
        out[n++] = *c->p++;
    }
    out[n] = 0;
    return n > 0;
}

/* A non-negative decimal integer; Python 2 era files may carry an 'L' suffix. */
static int parse_dim(cursor *c, int64_t *v)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') return 0;
    int64_t x = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        int d = *c->p++ - '0';
        if (x > (INT64_MAX - d) / 10) return 0;
        x = x * 10 + d;
    }
    if (c->p < c->end && *c->p == 'L') c->p++;
    *v = x;
    return 1;
}

/* "(a, b, ...)" with Python's tuple rules: one element needs its trailing comma. */
static int parse_shape(cursor *c, int *ndim, int64_t *shape, const char **why)
{
    *why = "'shape' is not a tuple of non-negative integers";
    if (!accept(c, '(')) return 0;
    int n = 0, trailing_comma = 0;
    if (accept(c, ')')) {
        *ndim = 0;
        return 1;
    }
    for (;;) {
        if (n == DFR_NPY_MAX_DIMS) {
            *why = "'shape' has more than " NPY_STR(DFR_NPY_MAX_DIMS) " dimensions";
            return 0;
        }
        if (!parse_dim(c, &shape[n])) return 0;
        n++;
        trailing_comma = accept(c, ',');
        if (accept(c, ')')) break;
        if (!trailing_comma) return 0;
    }
    if (n == 1 && !trailing_comma) return 0; /* "(3)" is the integer 3, not a tuple */
    *ndim = n;
    return 1;
}

static int parse_header(const char *path, const char *text, size_t len, int *ndim,
                        int64_t *shape)
{
    cursor c = {text, text + len};
    char key[32], descr[32] = "", word[16];
    int have_descr = 0, have_fortran = 0, have_shape = 0, fortran = 0;
    if (!accept(&c, '{')) return dfr_error(DFRCL_ERR_FORMAT, "%s: npy header is not a dict", path);
    while (!accept(&c, '}')) {
        if (!parse_string(&c, key, sizeof key) || !accept(&c, ':'))
            return dfr_error(DFRCL_ERR_FORMAT, "%s: npy header: malformed dict near offset %ld",
                             path, (long)(c.p - text));
        if (!strcmp(key, "descr")) {
            if (have_descr++)
                return dfr_error(DFRCL_ERR_FORMAT, "%s: npy header: 'descr' given twice", path);
            if (!parse_string(&c, descr, sizeof descr))
                return dfr_error(DFRCL_ERR_FORMAT,
                                 "%s: npy header: 'descr' is not a simple dtype string "
                                 "(structured arrays are not supported)",
                                 path);
        } else if (!strcmp(key, "fortran_order")) {
            if (have_fortran++)
                return dfr_error(DFRCL_ERR_FORMAT, "%s: npy header: 'fortran_order' given twice",
                                 path);
            if (!parse_word(&c, word, sizeof word) ||
                (strcmp(word, "True") && strcmp(word, "False")))
                return dfr_error(DFRCL_ERR_FORMAT,
                                 "%s: npy header: 'fortran_order' is not True or False", path);
            fortran = !strcmp(word, "True");
        } else if (!strcmp(key, "shape")) {
            const char *why;
            if (have_shape++)
                return dfr_error(DFRCL_ERR_FORMAT, "%s: npy header: 'shape' given twice", path);
            if (!parse_shape(&c, ndim, shape, &why))
                return dfr_error(DFRCL_ERR_FORMAT, "%s: npy header: %s", path, why);
        } else {
            return dfr_error(DFRCL_ERR_FORMAT, "%s: npy header: unexpected key '%s'", path, key);
        }
        /* Items are separated by commas; one may trail before the '}'. */
        if (!accept(&c, ',')) {
            if (!accept(&c, '}'))
                return dfr_error(DFRCL_ERR_FORMAT,
                                 "%s: npy header: malformed dict near offset %ld", path,
                                 (long)(c.p - text));
            break;
        }
    }
    skip_ws(&c);
    if (c.p != c.end)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: npy header: unexpected text after the dict", path);
    if (!have_descr || !have_fortran || !have_shape)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: npy header lacks the key '%s'", path,
                         !have_descr ? "descr" : !have_fortran ? "fortran_order" : "shape");
    if (strcmp(descr, "<f4"))
        return dfr_error(DFRCL_ERR_FORMAT,
                         "%s: npy dtype '%s' is not supported (only little-endian float32 '<f4')",
                         path, descr);
    if (fortran)
        return dfr_error(DFRCL_ERR_FORMAT,
                         "%s: npy array is in Fortran order (only C order is supported)", path);
    return DFRCL_OK;
}

int dfr_npy_read_f32(const char *path, int *ndim, int64_t shape[DFR_NPY_MAX_DIMS], float **data)
{
    if (!ndim || !shape || !data)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "npy read: NULL output argument");
    *ndim = 0;
    *data = NULL;
    if (!path) return dfr_error(DFRCL_ERR_INVALID_ARG, "npy read: path is NULL");

    /* Refuses a FIFO (which would block), a directory or a device, by name. */
    int fd;
    int orc = dfr_open_regular(path, &fd, NULL);
    if (orc) return orc;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return dfr_error(DFRCL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    int rc = DFRCL_OK;
    char *text = NULL;
    float *out = NULL;
    if (fseek(f, 0, SEEK_END) != 0) goto io_error;
    long flen = ftell(f);
    if (flen < 0 || fseek(f, 0, SEEK_SET) != 0) goto io_error;
    uint64_t file_len = (uint64_t)flen;

    unsigned char pre[12];
    if (file_len < 10) {
        rc = dfr_error(DFRCL_ERR_FORMAT, "%s: not an npy file (only %llu bytes)", path,
                       (unsigned long long)file_len);
        goto done;
    }
    if (fread(pre, 1, 10, f) != 10) goto io_error;
    if (memcmp(pre, npy_magic, 6) != 0) {
        rc = dfr_error(DFRCL_ERR_FORMAT, "%s: not an npy file (bad magic)", path);
        goto done;
    }
    if (pre[6] < 1 || pre[6] > 3 || pre[7] != 0) {
        rc = dfr_error(DFRCL_ERR_FORMAT, "%s: unsupported npy format version %u.%u", path, pre[6],
                       pre[7]);
        goto done;
    }
    /* Version 1.0 has a 2-byte header length, 2.0 and 3.0 (UTF-8 header) a 4-byte one. */
    uint64_t hlen, prefix;
    if (pre[6] == 1) {
        hlen = (uint64_t)pre[8] | (uint64_t)pre[9] << 8;
        prefix = 10;
    } else {
        if (file_len < 12) {
            rc = dfr_error(DFRCL_ERR_FORMAT, "%s: npy file truncated in its header", path);
            goto done;
        }
        if (fread(pre + 10, 1, 2, f) != 2) goto io_error;
        hlen = (uint64_t)pre[8] | (uint64_t)pre[9] << 8 | (uint64_t)pre[10] << 16 |
               (uint64_t)pre[11] << 24;
        prefix = 12;
    }
    if (hlen > NPY_MAX_HEADER) {
        rc = dfr_error(DFRCL_ERR_FORMAT, "%s: npy header length %llu is implausible", path,
                       (unsigned long long)hlen);
        goto done;
    }
    if (hlen > file_len - prefix) {
        rc = dfr_error(DFRCL_ERR_FORMAT,
                       "%s: npy file truncated: header of %llu bytes but only %llu follow", path,
                       (unsigned long long)hlen, (unsigned long long)(file_len - prefix));
        goto done;
    }
    text = malloc((size_t)hlen + 1);
    if (!text) {
        rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: out of memory for the npy header", path);
        goto done;
    }
    if (hlen && fread(text, 1, (size_t)hlen, f) != (size_t)hlen) goto io_error;
    text[hlen] = 0;
    if (memchr(text, 0, (size_t)hlen)) {
        rc = dfr_error(DFRCL_ERR_FORMAT, "%s: npy header contains a NUL byte", path);
        goto done;
    }
    int nd = 0;
    int64_t shp[DFR_NPY_MAX_DIMS];
    if ((rc = parse_header(path, text, (size_t)hlen, &nd, shp))) goto done;

    int ok;
    uint64_t count = shape_count(nd, shp, &ok);
    char sbuf[256];
    format_shape(sbuf, sizeof sbuf, nd, shp);
    uint64_t have = file_len - prefix - hlen;
    if (!ok) {
        rc = dfr_error(DFRCL_ERR_FORMAT, "%s: npy shape %s is too large", path, sbuf);
        goto done;
    }
    if (have != count * sizeof(float)) {
        rc = dfr_error(DFRCL_ERR_FORMAT, "%s: npy %s: shape %s needs %llu data bytes, file has %llu",
                       path, have < count * sizeof(float) ? "file truncated" : "trailing data",
                       sbuf, (unsigned long long)(count * sizeof(float)), (unsigned long long)have);
        goto done;
    }
    out = malloc(count ? (size_t)count * sizeof(float) : 1);
    if (!out) {
        rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: out of memory for %llu floats", path,
                       (unsigned long long)count);
        goto done;
    }
    if (count && fread(out, sizeof(float), (size_t)count, f) != (size_t)count) goto io_error;
    if (!host_is_little_endian()) swap32(out, (size_t)count);
    *ndim = nd;
    memcpy(shape, shp, (size_t)nd * sizeof *shp);
    *data = out;
    out = NULL;
    goto done;

io_error:;
    int e = errno;
    rc = dfr_error(DFRCL_ERR_IO, "%s: read failed: %s", path,
                   ferror(f) && e ? strerror(e) : "short read");
done:
    fclose(f);
    free(text);
    free(out);
    return rc;
}
