/* Small file-system helpers: whole-file reads and atomic writes (temp file + rename). */
#ifndef DFRCL_UTIL_FSUTIL_H
#define DFRCL_UTIL_FSUTIL_H
#include <stddef.h>
#include <stdio.h>

/* Reads a whole file into a malloc'd buffer (NUL-terminated for convenience; *len excludes it). */
int dfr_read_file(const char *path, unsigned char **data, size_t *len);

/* Atomic writer: writes go to "<path>.tmp.<pid>.<n>", dfr_atomic_commit() fsyncs and renames it
 * over `path`, dfr_atomic_abort() removes it. A crash never leaves a half-written `path`. */
typedef struct dfr_atomic_file {
    FILE *f;
    char path[4096];
    char tmp[4096 + 64];
} dfr_atomic_file;
int dfr_atomic_open(dfr_atomic_file *af, const char *path);
int dfr_atomic_commit(dfr_atomic_file *af);
void dfr_atomic_abort(dfr_atomic_file *af);
/* Convenience: writes one buffer atomically. */
int dfr_write_file_atomic(const char *path, const void *data, size_t len);

/* mkdir -p; 0 on success. */
int dfr_mkdir_p(const char *path);
#endif
