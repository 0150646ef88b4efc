/*
 * safetensors reader and writer (internal).
 *
 * File layout: u64 little-endian N, then N bytes of JSON header
 *   {"<name>": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"<key>": "<string>", ...}}
 * then the data section; data_offsets are relative to its start.
 *
 * The reader validates the whole header when the file is opened (header length against the file
 * size, well-formed JSON, known dtypes, shape x element size == byte range, ranges inside the data
 * section and not overlapping, metadata made of strings, no duplicate names, bounded counts) and
 * reads tensor data only when asked, tensor by tensor. Every failure is a DFRCL_ERR_FORMAT (or
 * DFRCL_ERR_IO) whose message starts with the file name.
 * Tolerated, as other readers do: gaps between tensors and bytes after the last one, unknown
 * fields in a tensor entry, whitespace padding after the JSON. Names are not checked for UTF-8.
 */
#ifndef DFRCL_IO_SAFETENSORS_H
#define DFRCL_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum dfr_dtype {
    DFR_DT_F32,
    DFR_DT_F16,
    DFR_DT_BF16,
    DFR_DT_F64,
    DFR_DT_I64,
    DFR_DT_I32,
    DFR_DT_I16,
    DFR_DT_I8,
    DFR_DT_U8,
    DFR_DT_BOOL,
    DFR_DT_U16,
    DFR_DT_U32,
    DFR_DT_U64,
    DFR_DT_F8_E4M3,
    DFR_DT_F8_E5M2,
    DFR_DT_F8_E8M0,
    DFR_DT_C64,
    DFR_DT_COUNT
} dfr_dtype;

/* The safetensors spelling ("F32", "BF16", ...) and the size of one element in bytes. */
const char *dfr_dtype_name(dfr_dtype dt);
size_t dfr_dtype_size(dfr_dtype dt);

#define DFR_ST_MAX_DIMS 8
/* Limits on what the reader accepts; beyond them a file is rejected as malformed. */
#define DFR_ST_MAX_HEADER (100u * 1000u * 1000u) /* bytes, the reference implementation's cap */
#define DFR_ST_MAX_TENSORS (1 << 18)

typedef struct dfr_st_tensor {
    char *name;
    dfr_dtype dtype;
    int ndim;
    int64_t shape[DFR_ST_MAX_DIMS];
    uint64_t begin, end; /* absolute file offsets: [begin, end) */
} dfr_st_tensor;

/* Number of elements (product of the shape; 1 for a scalar). Validated not to overflow at open. */
uint64_t dfr_st_numel(const dfr_st_tensor *t);

typedef struct dfr_safetensors dfr_safetensors; /* opaque */

/* Opens `path`, reads and validates its header only; the file stays open for the reads. */
int dfr_st_open(dfr_safetensors **st, const char *path);
/* Same over a buffer (tests, fuzzer). `name` is used in messages; `data` must outlive *st. */
int dfr_st_open_memory(dfr_safetensors **st, const void *data, size_t len, const char *name);
/* Closes and sets *st to NULL; NULL or *st == NULL is fine. */
void dfr_st_close(dfr_safetensors **st);

/* Tensors in the order the header lists them. tensor_at returns NULL when i is out of range. */
int dfr_st_count(const dfr_safetensors *st);
const dfr_st_tensor *dfr_st_tensor_at(const dfr_safetensors *st, int i);
/* NULL when absent (no error is set). */
const dfr_st_tensor *dfr_st_find(const dfr_safetensors *st, const char *name);
/* A __metadata__ value, NULL if absent. Valid while st lives. */
const char *dfr_st_metadata(const dfr_safetensors *st, const char *key);
/* Metadata value `key` as an integer in lo..hi, or as a finite number: DFRCL_ERR_FORMAT naming
 * `path` and the key when it is missing or malformed. */
int dfr_st_meta_long(const dfr_safetensors *st, const char *path, const char *key, long lo,
                     long hi, long *out);
int dfr_st_meta_double(const dfr_safetensors *st, const char *path, const char *key, double *out);
/* The path (or the memory buffer's name) given at open. */
const char *dfr_st_path(const dfr_safetensors *st);

/* Reads tensor `name` as float32 into out (F32 as is; F16, BF16 and F64 converted; any other
 * dtype is a DFRCL_ERR_FORMAT error). If ndim > 0 the tensor's shape must equal shape[0..ndim-1],
 * else DFRCL_ERR_FORMAT naming the file, the tensor, the expected and the actual shape.
 * A missing tensor is DFRCL_ERR_FORMAT naming it. out_count must be at least the element count
 * (DFRCL_ERR_INVALID_ARG otherwise); only the first numel floats are written. */
int dfr_st_read_f32(dfr_safetensors *st, const char *name, int ndim, const int64_t *shape,
                    float *out, size_t out_count);
/* Reads the raw little-endian bytes of a tensor; out_len must be at least end - begin. */
int dfr_st_read_raw(dfr_safetensors *st, const dfr_st_tensor *t, void *out, size_t out_len);

/* Writer. Names, metadata keys and values are copied when added; tensor *data* is BORROWED:
 * the caller keeps it alive and unchanged until dfr_st_writer_write() returns (or the writer is
 * freed). Tensors are written in the order added, contiguously, after a header padded with spaces
 * to a multiple of 8 bytes (so the data section, and every F32 tensor, stays aligned). */
typedef struct dfr_st_writer dfr_st_writer;
int dfr_st_writer_new(dfr_st_writer **w);
/* ndim 0..8; dims >= 0; names unique, valid UTF-8, not "__metadata__" (else INVALID_ARG). */
int dfr_st_writer_add_f32(dfr_st_writer *w, const char *name, int ndim, const int64_t *shape,
                          const float *data);
/* A string metadata entry; adding an existing key replaces its value. Valid UTF-8 only. */
int dfr_st_writer_meta(dfr_st_writer *w, const char *key, const char *value);
/* Writes the file atomically (temp file + rename): `path` is either the old file or the new one. */
int dfr_st_writer_write(dfr_st_writer *w, const char *path);
void dfr_st_writer_free(dfr_st_writer **w);

#endif
