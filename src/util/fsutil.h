/* Small file-system helpers: whole-file reads, atomic writes (temp file + rename) and the
 * clean-up of temp files that an interrupted or killed process left behind. */
#ifndef DFRCL_UTIL_FSUTIL_H
#define DFRCL_UTIL_FSUTIL_H
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

/* Largest file dfr_read_file reads whole (4 GiB); bigger ones are refused by name. */
#define DFR_READ_FILE_MAX ((unsigned long long)1 << 32)

/* Opens `path` read-only and refuses anything that is not a regular file (a directory, a FIFO
 * that would block, a device), naming the path and what it is. The open never blocks; *fd is
 * left in blocking mode, close-on-exec. *size gets the file's size (may be NULL). */
int dfr_open_regular(const char *path, int *fd, off_t *size);
/* "a directory", "a FIFO", "a character device", ... for an st_mode. */
const char *dfr_file_kind(mode_t mode);

/* Reads a whole regular file into a malloc'd buffer (NUL-terminated for convenience; *len
 * excludes it). Refuses non-regular files and files over DFR_READ_FILE_MAX. */
int dfr_read_file(const char *path, unsigned char **data, size_t *len);

/* Temp files are "<folder of path>/.dfrcl-tmp.<pid>.<12 random hex digits>": created with
 * O_CREAT|O_EXCL|O_NOFOLLOW (a planted link or file at that name is never followed or reused),
 * short whatever the length of the destination's name. */
#define DFR_TEMP_PREFIX ".dfrcl-tmp."

/* Atomic writer: writes go to a fresh temp file in the destination's folder; dfr_atomic_commit()
 * fsyncs it, renames it over `path` and fsyncs the folder; dfr_atomic_abort() removes it. A crash
 * never leaves a half-written `path`, and the next dfr_atomic_open in that folder removes temp
 * files whose process is gone. Open temp files are registered for dfr_atomic_abort_all(). */
typedef struct dfr_atomic_file {
    FILE *f;
    char path[4096];
    char tmp[4096 + 64];
    int slot; /* registry slot, -1 when not registered */
} dfr_atomic_file;
int dfr_atomic_open(dfr_atomic_file *af, const char *path);
int dfr_atomic_commit(dfr_atomic_file *af);
void dfr_atomic_abort(dfr_atomic_file *af);
/* Convenience: writes one buffer atomically. */
int dfr_write_file_atomic(const char *path, const void *data, size_t len);

/* Unlinks every temp file this process has open (only unlink() over a fixed array, so it may be
 * called from a signal handler on its way to _exit). The writers' FILEs stay open. */
void dfr_atomic_abort_all(void);

/* Removes the dfrcl temp files in `dir` whose process no longer runs (its pid gives ESRCH and
 * nobody holds the file's lock), logging each removal. Quiet when `dir` cannot be read. */
void dfr_clean_stale_temps(const char *dir);

/* The folder part of `path` into dir[n]: "." when it has none, "/" for a file at the root. */
void dfr_folder_of(const char *path, char *dir, size_t n);

/* mkdir -p; 0 on success. */
int dfr_mkdir_p(const char *path);
#endif
