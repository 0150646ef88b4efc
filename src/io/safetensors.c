#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fsutil.h"

/* safetensors data is little-endian; this code reads and writes it with plain memcpy. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors I/O assumes a little-endian host");
_Static_assert(sizeof(float) == 4 && sizeof(double) == 8, "IEEE float and double expected");
_Static_assert(SIZE_MAX >= UINT64_MAX, "byte counts are u64 and must fit in size_t");

/* cJSON allocates a node per JSON value: bound them before parsing, so a 100 MB header of tiny
 * arrays cannot make it allocate gigabytes. Real headers need ~14 nodes per tensor. */
#define MAX_JSON_VALUES (1u << 22)
/* Integers above 2^53 do not survive cJSON's doubles; no real offset or dimension gets there. */
#define MAX_JSON_INT 9007199254740992.0
/* Names are quoted in messages up to this length. */
#define NAME_FMT "%.200s"

static const struct {
    const char *name;
    size_t size;
} dtypes[DFR_DT_COUNT] = {
    [DFR_DT_F32] = {"F32", 4},         [DFR_DT_F16] = {"F16", 2},
    [DFR_DT_BF16] = {"BF16", 2},       [DFR_DT_F64] = {"F64", 8},
    [DFR_DT_I64] = {"I64", 8},         [DFR_DT_I32] = {"I32", 4},
    [DFR_DT_I16] = {"I16", 2},         [DFR_DT_I8] = {"I8", 1},
    [DFR_DT_U8] = {"U8", 1},           [DFR_DT_BOOL] = {"BOOL", 1},
    [DFR_DT_U16] = {"U16", 2},         [DFR_DT_U32] = {"U32", 4},
    [DFR_DT_U64] = {"U64", 8},         [DFR_DT_F8_E4M3] = {"F8_E4M3", 1},
    [DFR_DT_F8_E5M2] = {"F8_E5M2", 1}, [DFR_DT_F8_E8M0] = {"F8_E8M0", 1},
    [DFR_DT_C64] = {"C64", 8},
};

const char *dfr_dtype_name(dfr_dtype dt)
{
    return (unsigned)dt < DFR_DT_COUNT ? dtypes[dt].name : "?";
}

size_t dfr_dtype_size(dfr_dtype dt)
{
    return (unsigned)dt < DFR_DT_COUNT ? dtypes[dt].size : 0;
}

uint64_t dfr_st_numel(const dfr_st_tensor *t)
{
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (uint64_t)t->shape[i];
    return n;
}

/* ---- Reader ----------------------------------------------------------- */

typedef struct meta_entry {
    char *key, *value;
} meta_entry;

struct dfr_safetensors {
    char *path;
    int fd;                   /* -1 when reading from memory */
    const unsigned char *mem; /* borrowed */
    uint64_t size;            /* of the whole file */
    uint64_t data_start;      /* 8 + header length */
    dfr_st_tensor *tensors;   /* header order */
    int count;
    int *by_name; /* indices of tensors sorted by name, for bsearch */
    meta_entry *meta;
    int nmeta;
};

static int cmp_tensor_name(const void *a, const void *b, void *ctx)
{
    const dfr_st_tensor *t = ctx;
    return strcmp(t[*(const int *)a].name, t[*(const int *)b].name);
}

static int cmp_tensor_begin(const void *a, const void *b, void *ctx)
{
    const dfr_st_tensor *t = ctx;
    const dfr_st_tensor *x = &t[*(const int *)a], *y = &t[*(const int *)b];
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int cmp_meta(const void *a, const void *b)
{
    return strcmp(((const meta_entry *)a)->key, ((const meta_entry *)b)->key);
}

/* Upper bound on the number of JSON values in s[0..n): every value but the root either opens a
 * container's contents or follows a comma. Brackets inside strings are skipped. */
static size_t json_value_bound(const char *s, size_t n)
{
    size_t count = 1;
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == ',' || c == '[' || c == '{') {
            count++;
        }
    }
    return count;
}

/* A JSON number that is an integer in [0, 2^53]. */
static int json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= MAX_JSON_INT) || d != (double)(uint64_t)d) return 0;
    *out = (uint64_t)d;
    return 1;
}

static void format_shape(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t used = 0;
    int w = snprintf(buf, n, "[");
    if (w < 0 || (size_t)w >= n) return;
    used = (size_t)w;
    for (int i = 0; i < ndim; i++) {
        w = snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
        if (w < 0 || (size_t)w >= n - used) return;
        used += (size_t)w;
    }
    snprintf(buf + used, n - used, "]");
}

static int parse_metadata(dfr_safetensors *st, const cJSON *obj)
{
    const char *p = st->path;
    if (!cJSON_IsObject(obj))
        return dfr_error(DFRCL_ERR_FORMAT, "%s: __metadata__ is not a JSON object", p);
    int n = 0;
    for (const cJSON *c = obj->child; c; c = c->next) n++;
    if (n == 0) return DFRCL_OK;
    st->meta = calloc((size_t)n, sizeof *st->meta);
    if (!st->meta) return dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: out of memory", p);
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (!cJSON_IsString(c) || !c->valuestring)
            return dfr_error(DFRCL_ERR_FORMAT, "%s: __metadata__ value of '" NAME_FMT
                             "' is not a string", p, c->string);
        meta_entry *m = &st->meta[st->nmeta];
        m->key = strdup(c->string);
        m->value = strdup(c->valuestring);
        if (!m->key || !m->value) {
            free(m->key);
            free(m->value);
            return dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: out of memory", p);
        }
        st->nmeta++;
    }
    qsort(st->meta, (size_t)st->nmeta, sizeof *st->meta, cmp_meta);
    for (int i = 1; i < st->nmeta; i++)
        if (strcmp(st->meta[i - 1].key, st->meta[i].key) == 0)
            return dfr_error(DFRCL_ERR_FORMAT, "%s: __metadata__ key '" NAME_FMT
                             "' appears twice", p, st->meta[i].key);
    return DFRCL_OK;
}

/* Fills t from its header entry and checks it against the data section [0, data_len). */
static int parse_tensor(dfr_safetensors *st, const cJSON *obj, dfr_st_tensor *t, uint64_t data_len)
{
    const char *p = st->path, *name = obj->string;
    if (!cJSON_IsObject(obj))
        return dfr_error(DFRCL_ERR_FORMAT, "%s: entry '" NAME_FMT "' is not a JSON object", p,
                         name);
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *c = obj->child; c; c = c->next) {
        const cJSON **slot = !strcmp(c->string, "dtype")          ? &dtype
                             : !strcmp(c->string, "shape")        ? &shape
                             : !strcmp(c->string, "data_offsets") ? &offs
                                                                  : NULL;
        if (!slot) continue; /* unknown fields are ignored, as the reference does */
        if (*slot)
            return dfr_error(DFRCL_ERR_FORMAT, "%s: tensor '" NAME_FMT "' has two '%s' fields", p,
                             name, c->string);
        *slot = c;
    }
    if (!dtype || !shape || !offs)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: tensor '" NAME_FMT "' has no '%s'", p, name,
                         !dtype ? "dtype" : !shape ? "shape" : "data_offsets");

    if (!cJSON_IsString(dtype) || !dtype->valuestring)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: tensor '" NAME_FMT "': dtype is not a string", p,
                         name);
    int dt = -1;
    for (int i = 0; i < DFR_DT_COUNT; i++)
        if (!strcmp(dtype->valuestring, dtypes[i].name)) dt = i;
    if (dt < 0)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: tensor '" NAME_FMT "' has unknown or unsupported "
                         "dtype '%.40s'", p, name, dtype->valuestring);
    t->dtype = (dfr_dtype)dt;

    if (!cJSON_IsArray(shape))
        return dfr_error(DFRCL_ERR_FORMAT, "%s: tensor '" NAME_FMT "': shape is not an array", p,
                         name);
    int nd = 0;
    uint64_t numel = 1;
    for (const cJSON *c = shape->child; c; c = c->next, nd++) {
        uint64_t d;
        if (nd >= DFR_ST_MAX_DIMS)
            return dfr_error(DFRCL_ERR_FORMAT, "%s: tensor '" NAME_FMT "' has more than %d "
                             "dimensions", p, name, DFR_ST_MAX_DIMS);
        if (!json_uint(c, &d))
            return dfr_error(DFRCL_ERR_FORMAT, "%s: tensor '" NAME_FMT "': shape dimension %d is "
                             "not an integer in [0, 2^53]", p, name, nd);
        if (__builtin_mul_overflow(numel, d, &numel))
            return dfr_error(DFRCL_ERR_FORMAT, "%s: tensor '" NAME_FMT "': shape overflows", p,
                             name);
        t->shape[nd] = (int64_t)d;
    }
    t->ndim = nd;

    uint64_t b, e, nbytes;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_uint(offs->child, &b) ||
        !json_uint(offs->child->next, &e))
        return dfr_error(DFRCL_ERR_FORMAT, "%s: tensor '" NAME_FMT "': data_offsets is not two "
                         "non-negative integers", p, name);
    if (b > e)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: tensor '" NAME_FMT "': data_offsets [%llu, %llu] "
                         "end before they begin", p, name, (unsigned long long)b,
                         (unsigned long long)e);
    if (e > data_len)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: tensor '" NAME_FMT "': data_offsets [%llu, %llu] "
                         "run past the end of the data section (%llu bytes); is the file "
                         "truncated?", p, name, (unsigned long long)b, (unsigned long long)e,
                         (unsigned long long)data_len);
    if (__builtin_mul_overflow(numel, (uint64_t)dtypes[dt].size, &nbytes) || nbytes != e - b) {
        char sh[160];
        format_shape(sh, sizeof sh, nd, t->shape);
        return dfr_error(DFRCL_ERR_FORMAT, "%s: tensor '" NAME_FMT "': shape %s of %s needs "
                         "%llu elements x %zu bytes, but data_offsets [%llu, %llu] hold %llu bytes",
                         p, name, sh, dtypes[dt].name, (unsigned long long)numel,
                         dtypes[dt].size, (unsigned long long)b, (unsigned long long)e,
                         (unsigned long long)(e - b));
    }
    t->begin = st->data_start + b;
    t->end = st->data_start + e;
    t->name = strdup(name);
    if (!t->name) return dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: out of memory", p);
    return DFRCL_OK;
}

/* Parses and validates the header hdr[0..n) (NUL-terminated at hdr[n]). */
static int parse_header(dfr_safetensors *st, const char *hdr, size_t n)
{
    const char *p = st->path;
    uint64_t data_len = st->size - st->data_start;
    if (json_value_bound(hdr, n) > MAX_JSON_VALUES)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: header has more than %u JSON values", p,
                         MAX_JSON_VALUES);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, n, &end, 0);
    if (!root) {
        size_t at = end && end >= hdr && end <= hdr + n ? (size_t)(end - hdr) : 0;
        return dfr_error(DFRCL_ERR_FORMAT, "%s: header is not valid JSON (near byte %zu of %zu)",
                         p, at, n);
    }
    int rc = DFRCL_OK;
    /* The reference pads the header with spaces; anything else after the JSON is an error. */
    for (const char *q = end; q < hdr + n; q++) {
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            rc = dfr_error(DFRCL_ERR_FORMAT, "%s: header has trailing bytes after its JSON "
                           "(at byte %zu of %zu)", p, (size_t)(q - hdr), n);
            goto out;
        }
    }
    if (!cJSON_IsObject(root)) {
        rc = dfr_error(DFRCL_ERR_FORMAT, "%s: header is not a JSON object", p);
        goto out;
    }
    int ntensors = 0, nmeta = 0;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (!strcmp(c->string, "__metadata__")) nmeta++;
        else if (++ntensors > DFR_ST_MAX_TENSORS) {
            rc = dfr_error(DFRCL_ERR_FORMAT, "%s: more than %d tensors", p, DFR_ST_MAX_TENSORS);
            goto out;
        }
    }
    if (nmeta > 1) {
        rc = dfr_error(DFRCL_ERR_FORMAT, "%s: __metadata__ appears twice", p);
        goto out;
    }
    if (ntensors) {
        st->tensors = calloc((size_t)ntensors, sizeof *st->tensors);
        st->by_name = malloc((size_t)ntensors * sizeof *st->by_name);
        if (!st->tensors || !st->by_name) {
            rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: out of memory for %d tensors", p, ntensors);
            goto out;
        }
    }
    for (const cJSON *c = root->child; c && !rc; c = c->next) {
        if (!strcmp(c->string, "__metadata__")) {
            rc = parse_metadata(st, c);
        } else {
            rc = parse_tensor(st, c, &st->tensors[st->count], data_len);
            if (!rc) st->count++;
        }
    }
    if (rc) goto out;

    for (int i = 0; i < st->count; i++) st->by_name[i] = i;
    if (st->count > 1)
        qsort_r(st->by_name, (size_t)st->count, sizeof *st->by_name, cmp_tensor_name,
                st->tensors);
    for (int i = 1; i < st->count; i++) {
        const char *a = st->tensors[st->by_name[i - 1]].name;
        if (!strcmp(a, st->tensors[st->by_name[i]].name)) {
            rc = dfr_error(DFRCL_ERR_FORMAT, "%s: tensor '" NAME_FMT "' appears twice", p, a);
            goto out;
        }
    }
    /* Overlap check on a copy ordered by offset; empty tensors hold no bytes and cannot overlap. */
    if (st->count > 1) {
        int *order = malloc((size_t)st->count * sizeof *order);
        if (!order) {
            rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: out of memory", p);
            goto out;
        }
        for (int i = 0; i < st->count; i++) order[i] = i;
        qsort_r(order, (size_t)st->count, sizeof *order, cmp_tensor_begin, st->tensors);
        const dfr_st_tensor *prev = NULL;
        for (int i = 0; i < st->count && !rc; i++) {
            const dfr_st_tensor *t = &st->tensors[order[i]];
            if (t->begin == t->end) continue;
            if (prev && t->begin < prev->end)
                rc = dfr_error(DFRCL_ERR_FORMAT, "%s: tensors '" NAME_FMT "' and '" NAME_FMT
                               "' overlap in the data section", p, prev->name, t->name);
            prev = t;
        }
        free(order);
    }
out:
    cJSON_Delete(root);
    return rc;
}

static int st_new(dfr_safetensors **out, const char *path)
{
    dfr_safetensors *st = calloc(1, sizeof *st);
    if (st) st->path = strdup(path ? path : "(memory)");
    if (!st || !st->path) {
        free(st);
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: out of memory", path ? path : "(memory)");
    }
    st->fd = -1;
    *out = st;
    return DFRCL_OK;
}

/* Checks the length prefix against the file size; returns the header length in *n. */
static int check_prefix(const dfr_safetensors *st, const unsigned char prefix[8], size_t *n)
{
    uint64_t len;
    memcpy(&len, prefix, 8);
    if (len > DFR_ST_MAX_HEADER)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: header length %llu is over the %u-byte limit; "
                         "not a safetensors file?", st->path, (unsigned long long)len,
                         DFR_ST_MAX_HEADER);
    if (len > st->size - 8)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: header length %llu is more than the %llu bytes "
                         "after it; truncated or not a safetensors file?", st->path,
                         (unsigned long long)len, (unsigned long long)(st->size - 8));
    if (len < 2)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: header length %llu is too short for a JSON "
                         "object", st->path, (unsigned long long)len);
    *n = (size_t)len;
    return DFRCL_OK;
}

static int too_short(const dfr_safetensors *st)
{
    return dfr_error(DFRCL_ERR_FORMAT, "%s: %llu bytes is too short for a safetensors file",
                     st->path, (unsigned long long)st->size);
}

/* pread until done; a short file is FORMAT (it shrank or lied), a failing read is IO. */
static int read_at(const dfr_safetensors *st, uint64_t off, void *dst, size_t len)
{
    if (st->fd < 0) {
        if (off > st->size || len > st->size - off)
            return dfr_error(DFRCL_ERR_INTERNAL, "%s: read past the buffer", st->path);
        memcpy(dst, st->mem + off, len);
        return DFRCL_OK;
    }
    unsigned char *d = dst;
    while (len) {
        ssize_t r = pread(st->fd, d, len, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return dfr_error(DFRCL_ERR_IO, "%s: read failed: %s", st->path, strerror(errno));
        if (r == 0)
            return dfr_error(DFRCL_ERR_FORMAT, "%s: file ended at byte %llu, before the data its "
                             "header lists (changed while open?)", st->path,
                             (unsigned long long)off);
        d += r;
        off += (uint64_t)r;
        len -= (size_t)r;
    }
    return DFRCL_OK;
}

int dfr_st_open(dfr_safetensors **out, const char *path)
{
    *out = NULL;
    dfr_safetensors *st = NULL;
    int rc = st_new(&st, path);
    if (rc) return rc;
    char *hdr = NULL;
    /* Refuses a FIFO (which would block), a directory or a device, by name. */
    off_t fsize = 0;
    rc = dfr_open_regular(path, &st->fd, &fsize);
    if (rc) goto fail;
    st->size = (uint64_t)fsize;
    if (st->size < 8) {
        rc = too_short(st);
        goto fail;
    }
    unsigned char prefix[8];
    size_t n = 0;
    rc = read_at(st, 0, prefix, 8);
    if (!rc) rc = check_prefix(st, prefix, &n);
    if (rc) goto fail;
    st->data_start = 8 + (uint64_t)n;
    hdr = malloc(n + 1);
    if (!hdr) {
        rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: out of memory for a %zu-byte header", path, n);
        goto fail;
    }
    rc = read_at(st, 8, hdr, n);
    if (rc) goto fail;
    hdr[n] = 0;
    rc = parse_header(st, hdr, n);
    if (rc) goto fail;
    free(hdr);
    *out = st;
    return DFRCL_OK;
fail:
    free(hdr);
    dfr_st_close(&st);
    return rc;
}

int dfr_st_open_memory(dfr_safetensors **out, const void *data, size_t len, const char *name)
{
    *out = NULL;
    dfr_safetensors *st = NULL;
    int rc = st_new(&st, name);
    if (rc) return rc;
    st->mem = data;
    st->size = len;
    char *hdr = NULL;
    size_t n = 0;
    if (!data && len) rc = dfr_error(DFRCL_ERR_INVALID_ARG, "%s: no data", st->path);
    else if (len < 8) rc = too_short(st);
    else rc = check_prefix(st, data, &n);
    if (rc) goto fail;
    st->data_start = 8 + (uint64_t)n;
    /* A NUL-terminated copy: cJSON never has to be trusted to stop at the length. */
    hdr = malloc(n + 1);
    if (!hdr) {
        rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: out of memory", st->path);
        goto fail;
    }
    memcpy(hdr, st->mem + 8, n);
    hdr[n] = 0;
    rc = parse_header(st, hdr, n);
    if (rc) goto fail;
    free(hdr);
    *out = st;
    return DFRCL_OK;
fail:
    free(hdr);
    dfr_st_close(&st);
    return rc;
}

void dfr_st_close(dfr_safetensors **pst)
{
    if (!pst || !*pst) return;
    dfr_safetensors *st = *pst;
    if (st->fd >= 0) close(st->fd);
    for (int i = 0; i < st->count; i++) free(st->tensors[i].name);
    for (int i = 0; i < st->nmeta; i++) {
        free(st->meta[i].key);
        free(st->meta[i].value);
    }
    free(st->tensors);
    free(st->by_name);
    free(st->meta);
    free(st->path);
    free(st);
    *pst = NULL;
}

int dfr_st_count(const dfr_safetensors *st) { return st->count; }

const dfr_st_tensor *dfr_st_tensor_at(const dfr_safetensors *st, int i)
{
    return i >= 0 && i < st->count ? &st->tensors[i] : NULL;
}

const dfr_st_tensor *dfr_st_find(const dfr_safetensors *st, const char *name)
{
    int lo = 0, hi = st->count;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        const dfr_st_tensor *t = &st->tensors[st->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

const char *dfr_st_metadata(const dfr_safetensors *st, const char *key)
{
    meta_entry k = {(char *)key, NULL};
    const meta_entry *m = st->nmeta ? bsearch(&k, st->meta, (size_t)st->nmeta, sizeof k, cmp_meta)
                                    : NULL;
    return m ? m->value : NULL;
}

int dfr_st_meta_long(const dfr_safetensors *st, const char *path, const char *key, long lo,
                     long hi, long *out)
{
    const char *s = dfr_st_metadata(st, key);
    char *end = NULL;
    if (!s) return dfr_error(DFRCL_ERR_FORMAT, "%s: metadata lacks '%s'", path, key);
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: metadata '%s' = '%s' is not an integer in %ld..%ld",
                         path, key, s, lo, hi);
    *out = v;
    return DFRCL_OK;
}

int dfr_st_meta_double(const dfr_safetensors *st, const char *path, const char *key, double *out)
{
    const char *s = dfr_st_metadata(st, key);
    char *end = NULL;
    if (!s) return dfr_error(DFRCL_ERR_FORMAT, "%s: metadata lacks '%s'", path, key);
    double v = strtod(s, &end);
    if (!*s || *end || !isfinite(v))
        return dfr_error(DFRCL_ERR_FORMAT, "%s: metadata '%s' = '%s' is not a number", path, key, s);
    *out = v;
    return DFRCL_OK;
}

const char *dfr_st_path(const dfr_safetensors *st) { return st->path; }

int dfr_st_read_raw(dfr_safetensors *st, const dfr_st_tensor *t, void *out, size_t out_len)
{
    uint64_t n = t->end - t->begin;
    if (out_len < n)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: tensor '" NAME_FMT "' has %llu bytes, the "
                         "buffer %zu", st->path, t->name, (unsigned long long)n, out_len);
    return read_at(st, t->begin, out, (size_t)n);
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24 is exact in float */
        float f = (float)mant * 0x1p-24f;
        return sign ? -f : f;
    }
    if (exp == 31) bits = sign | 0x7f800000u | (mant << 13); /* inf, NaN (payload kept) */
    else bits = sign | ((exp + 112u) << 23) | (mant << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static float bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int dfr_st_read_f32(dfr_safetensors *st, const char *name, int ndim, const int64_t *shape,
                    float *out, size_t out_count)
{
    const dfr_st_tensor *t = dfr_st_find(st, name);
    if (!t) return dfr_error(DFRCL_ERR_FORMAT, "%s: has no tensor '" NAME_FMT "'", st->path, name);
    if (ndim < 0 || (ndim > 0 && !shape))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: bad expected shape for '" NAME_FMT "'",
                         st->path, name);
    if (ndim > 0) {
        int same = ndim == t->ndim;
        for (int i = 0; same && i < ndim; i++) same = shape[i] == t->shape[i];
        if (!same) {
            char want[160], have[160];
            format_shape(want, sizeof want, ndim, shape);
            format_shape(have, sizeof have, t->ndim, t->shape);
            return dfr_error(DFRCL_ERR_FORMAT, "%s: tensor '" NAME_FMT "' has shape %s, expected "
                             "%s", st->path, name, have, want);
        }
    }
    uint64_t numel = dfr_st_numel(t);
    if (numel > out_count || (numel && !out))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: tensor '" NAME_FMT "' has %llu elements, the "
                         "buffer room for %zu", st->path, name, (unsigned long long)numel,
                         out_count);
    if (t->dtype == DFR_DT_F32) return read_at(st, t->begin, out, (size_t)numel * 4);
    if (t->dtype != DFR_DT_F16 && t->dtype != DFR_DT_BF16 && t->dtype != DFR_DT_F64)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: tensor '" NAME_FMT "' has dtype %s; expected "
                         "F32, F16, BF16 or F64", st->path, name, dfr_dtype_name(t->dtype));
    /* Convert through a small stack buffer, a chunk at a time. */
    size_t es = dtypes[t->dtype].size;
    uint64_t chunk_buf[2048];
    size_t per_chunk = sizeof chunk_buf / es;
    for (size_t done = 0; done < numel;) {
        size_t k = numel - done < per_chunk ? (size_t)(numel - done) : per_chunk;
        int rc = read_at(st, t->begin + done * es, chunk_buf, k * es);
        if (rc) return rc;
        const unsigned char *src = (const unsigned char *)chunk_buf;
        for (size_t i = 0; i < k; i++) {
            if (t->dtype == DFR_DT_F64) {
                double d;
                memcpy(&d, src + i * 8, 8);
                out[done + i] = (float)d;
            } else {
                uint16_t h;
                memcpy(&h, src + i * 2, 2);
                out[done + i] = t->dtype == DFR_DT_F16 ? f16_to_f32(h) : bf16_to_f32(h);
            }
        }
        done += k;
    }
    return DFRCL_OK;
}

/* ---- Writer ----------------------------------------------------------- */

typedef struct wtensor {
    char *name;
    int ndim;
    int64_t shape[DFR_ST_MAX_DIMS];
    const float *data; /* borrowed */
    uint64_t nbytes;
} wtensor;

struct dfr_st_writer {
    wtensor *t;
    int n, cap;
    meta_entry *meta;
    int nmeta, capmeta;
};

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF): JSON readers such as the
 * reference implementation's reject anything else. */
static int valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p++;
        if (c < 0x80) continue;
        int more;
        unsigned cp, min;
        if ((c & 0xe0) == 0xc0) more = 1, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0) more = 2, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0) more = 3, cp = c & 0x07, min = 0x10000;
        else return 0;
        for (int i = 0; i < more; i++) {
            if ((*p & 0xc0) != 0x80) return 0; /* also stops at the NUL */
            cp = (cp << 6) | (*p++ & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    }
    return 1;
}

int dfr_st_writer_new(dfr_st_writer **w)
{
    *w = calloc(1, sizeof **w);
    return *w ? DFRCL_OK : dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
}

void dfr_st_writer_free(dfr_st_writer **pw)
{
    if (!pw || !*pw) return;
    dfr_st_writer *w = *pw;
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
    for (int i = 0; i < w->nmeta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->t);
    free(w->meta);
    free(w);
    *pw = NULL;
}

int dfr_st_writer_add_f32(dfr_st_writer *w, const char *name, int ndim, const int64_t *shape,
                          const float *data)
{
    if (!name || !*name || !valid_utf8(name) || !strcmp(name, "__metadata__"))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "safetensors writer: bad tensor name '" NAME_FMT
                         "' (empty, not UTF-8 or reserved)", name ? name : "(null)");
    if (ndim < 0 || ndim > DFR_ST_MAX_DIMS || (ndim > 0 && !shape))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "safetensors writer: tensor '" NAME_FMT "': bad "
                         "rank %d", name, ndim);
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name))
            return dfr_error(DFRCL_ERR_INVALID_ARG, "safetensors writer: tensor '" NAME_FMT
                             "' added twice", name);
    uint64_t numel = 1, nbytes;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || (double)shape[i] > MAX_JSON_INT ||
            __builtin_mul_overflow(numel, (uint64_t)shape[i], &numel))
            return dfr_error(DFRCL_ERR_INVALID_ARG, "safetensors writer: tensor '" NAME_FMT
                             "': bad dimension %d (%lld)", name, i, (long long)shape[i]);
    if (__builtin_mul_overflow(numel, (uint64_t)4, &nbytes) || (nbytes && !data))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "safetensors writer: tensor '" NAME_FMT "': too "
                         "large or no data", name);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        wtensor *t = realloc(w->t, (size_t)cap * sizeof *t);
        if (!t) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
        w->t = t;
        w->cap = cap;
    }
    wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->data = data;
    t->nbytes = nbytes;
    w->n++;
    return DFRCL_OK;
}

int dfr_st_writer_meta(dfr_st_writer *w, const char *key, const char *value)
{
    if (!key || !value || !valid_utf8(key) || !valid_utf8(value))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "safetensors writer: metadata '" NAME_FMT "': key "
                         "and value must be UTF-8 strings", key ? key : "(null)");
    char *v = strdup(value);
    if (!v) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    for (int i = 0; i < w->nmeta; i++) {
        if (!strcmp(w->meta[i].key, key)) {
            free(w->meta[i].value);
            w->meta[i].value = v;
            return DFRCL_OK;
        }
    }
    if (w->nmeta == w->capmeta) {
        int cap = w->capmeta ? 2 * w->capmeta : 8;
        meta_entry *m = realloc(w->meta, (size_t)cap * sizeof *m);
        if (!m) {
            free(v);
            return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
        }
        w->meta = m;
        w->capmeta = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(v);
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    }
    w->meta[w->nmeta++] = (meta_entry){k, v};
    return DFRCL_OK;
}

/* Integers go in as raw text: cJSON's doubles would print values >= 1e15 in exponent form. */
static int add_uint(cJSON *arr, uint64_t v)
{
    char num[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    cJSON *item = cJSON_CreateRaw(num);
    if (item && cJSON_AddItemToArray(arr, item)) return 1;
    cJSON_Delete(item);
    return 0;
}

static char *build_header(const dfr_st_writer *w)
{
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    if (ok && w->nmeta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        ok = m != NULL;
        for (int i = 0; ok && i < w->nmeta; i++)
            ok = cJSON_AddStringToObject(m, w->meta[i].key, w->meta[i].value) != NULL;
    }
    uint64_t off = 0;
    for (int i = 0; ok && i < w->n; i++) {
        const wtensor *t = &w->t[i];
        cJSON *o = cJSON_AddObjectToObject(root, t->name);
        ok = o && cJSON_AddStringToObject(o, "dtype", "F32");
        cJSON *shape = ok ? cJSON_AddArrayToObject(o, "shape") : NULL;
        ok = shape != NULL;
        for (int d = 0; ok && d < t->ndim; d++) ok = add_uint(shape, (uint64_t)t->shape[d]);
        cJSON *offs = ok ? cJSON_AddArrayToObject(o, "data_offsets") : NULL;
        ok = offs && add_uint(offs, off) && add_uint(offs, off + t->nbytes);
        off += t->nbytes;
    }
    char *s = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

int dfr_st_writer_write(dfr_st_writer *w, const char *path)
{
    char *json = build_header(w);
    if (!json)
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: out of memory building the header", path);
    size_t len = strlen(json), padded = (len + 7) / 8 * 8;
    if (padded > DFR_ST_MAX_HEADER) {
        free(json);
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: header of %zu bytes is over the %u-byte limit",
                         path, padded, DFR_ST_MAX_HEADER);
    }
    dfr_atomic_file af;
    int rc = dfr_atomic_open(&af, path);
    if (rc) {
        free(json);
        return rc;
    }
    uint64_t n64 = padded;
    static const char spaces[8] = "        ";
    int ok = fwrite(&n64, 8, 1, af.f) == 1 && fwrite(json, 1, len, af.f) == len &&
             fwrite(spaces, 1, padded - len, af.f) == padded - len;
    free(json);
    for (int i = 0; ok && i < w->n; i++)
        if (w->t[i].nbytes) ok = fwrite(w->t[i].data, 1, w->t[i].nbytes, af.f) == w->t[i].nbytes;
    if (!ok) {
        int e = errno;
        dfr_atomic_abort(&af);
        return dfr_error(DFRCL_ERR_IO, "%s: write failed: %s", path, strerror(e ? e : EIO));
    }
    return dfr_atomic_commit(&af);
}
