/* What the libFuzzer targets share: the input as a file for path-based readers, and the check
 * that an error names its input. Parsers print refusals on stderr: run.sh passes
 * -close_fd_mask=2 (libFuzzer keeps its own report and the sanitizers' on a copy of stderr). */
#ifndef DFRCL_FUZZ_COMMON_H
#define DFRCL_FUZZ_COMMON_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dfrcl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input written to one memory file per process; returns its /proc/self/fd path (a regular
 * file, so readers that refuse pipes and folders still take it). */
static inline const char *fuzz_as_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz-input", 0);
        if (fd < 0) abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0) abort();
    for (size_t done = 0; done < size;) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        if (n <= 0) abort();
        done += (size_t)n;
    }
    return path;
}

/* Every refusal must say which input it was about. */
static inline void fuzz_check_message(const char *name)
{
    if (!strstr(dfrcl_last_error(), name)) {
        fprintf(stderr, "error message does not name '%s': '%s'\n", name, dfrcl_last_error());
        abort();
    }
}

#endif
