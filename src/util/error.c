#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cl/clinc.h"

static _Thread_local char last_error[4096];
int dfr_verbosity = 1;

int dfr_error(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

int dfr_error_prefix(int status, const char *fmt, ...)
{
    char old[sizeof last_error];
    memcpy(old, last_error, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    /* Append ": <old>", truncating the old message if the buffer is full. */
    size_t used = n < 0 ? 0 : (size_t)n;
    if (used + 2 < sizeof last_error) {
        memcpy(last_error + used, ": ", 2);
        used += 2;
        size_t room = sizeof last_error - used - 1, len = strlen(old);
        if (len > room) len = room;
        memcpy(last_error + used, old, len);
        last_error[used + len] = 0;
    }
    return status;
}

void dfr_error_clear(void) { last_error[0] = 0; }

const char *dfrcl_last_error(void) { return last_error; }

void dfr_vlog(dfr_log_fn fn, void *user, int verbosity, int level, const char *fmt, va_list ap)
{
    if (verbosity == DFR_VERBOSITY_GLOBAL) verbosity = dfr_verbosity;
    if (level > verbosity) return;
    char msg[4096];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (fn) fn(user, level, msg);
    else fprintf(stderr, "dfrcl: %s\n", msg); /* one call: stdio locks the stream for it */
}

void dfr_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dfr_vlog(NULL, NULL, DFR_VERBOSITY_GLOBAL, level, fmt, ap);
    va_end(ap);
}

const char *dfrcl_version(void) { return DFRCL_VERSION; }

const char *dfrcl_status_name(int s)
{
    switch (s) {
#define N(x) case x: return #x;
    N(DFRCL_OK) N(DFRCL_ERR_NO_DEVICE) N(DFRCL_ERR_BUILD) N(DFRCL_ERR_IO) N(DFRCL_ERR_FORMAT)
    N(DFRCL_ERR_INVALID_ARG) N(DFRCL_ERR_DEVICE_MEMORY) N(DFRCL_ERR_HOST_MEMORY)
    N(DFRCL_ERR_MISMATCH) N(DFRCL_ERR_INTERNAL) N(DFRCL_ERR_INTERRUPTED)
    N(CL_DEVICE_NOT_FOUND) N(CL_DEVICE_NOT_AVAILABLE) N(CL_COMPILER_NOT_AVAILABLE)
    N(CL_MEM_OBJECT_ALLOCATION_FAILURE) N(CL_OUT_OF_RESOURCES) N(CL_OUT_OF_HOST_MEMORY)
    N(CL_BUILD_PROGRAM_FAILURE) N(CL_INVALID_VALUE) N(CL_INVALID_DEVICE) N(CL_INVALID_CONTEXT)
    N(CL_INVALID_COMMAND_QUEUE) N(CL_INVALID_MEM_OBJECT) N(CL_INVALID_BINARY)
    N(CL_INVALID_BUILD_OPTIONS) N(CL_INVALID_PROGRAM) N(CL_INVALID_KERNEL_NAME)
    N(CL_INVALID_KERNEL) N(CL_INVALID_ARG_INDEX) N(CL_INVALID_ARG_VALUE) N(CL_INVALID_ARG_SIZE)
    N(CL_INVALID_KERNEL_ARGS) N(CL_INVALID_WORK_DIMENSION) N(CL_INVALID_WORK_GROUP_SIZE)
    N(CL_INVALID_WORK_ITEM_SIZE) N(CL_INVALID_GLOBAL_OFFSET) N(CL_INVALID_EVENT_WAIT_LIST)
    N(CL_INVALID_EVENT) N(CL_INVALID_BUFFER_SIZE) N(CL_INVALID_GLOBAL_WORK_SIZE)
   
#undef N
    default: return "unknown status";
    }
}
