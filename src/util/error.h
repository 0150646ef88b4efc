/* Internal error reporting: set the thread's message and return the code. */
#ifndef DFRCL_UTIL_ERROR_H
#define DFRCL_UTIL_ERROR_H

#include "dfrcl.h"

#if defined(__GNUC__)
#define DFR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define DFR_PRINTF(a, b)
#endif

/* Formats the message of the last error on this thread and returns `status`. */
int dfr_error(int status, const char *fmt, ...) DFR_PRINTF(2, 3);
/* Prefixes the current message: "<prefix>: <old message>". Returns `status`. */
int dfr_error_prefix(int status, const char *fmt, ...) DFR_PRINTF(2, 3);
void dfr_error_clear(void);

/* Logging on stderr, filtered by the global verbosity (0 quiet, 1 info, 2 debug). */
extern int dfr_verbosity;
void dfr_log(int level, const char *fmt, ...) DFR_PRINTF(2, 3);

#endif
