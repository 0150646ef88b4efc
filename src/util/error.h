/* Internal error reporting: set the thread's message and return the code. */
#ifndef DFRCL_UTIL_ERROR_H
#define DFRCL_UTIL_ERROR_H

#include <stdarg.h>

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

/* Logging on stderr, filtered by the process-wide verbosity (0 quiet, 1 info, 2 debug): the
 * default for code with no runtime at hand (the command's own messages). Code working on a
 * runtime logs through it instead (dfr_rt_log, cl/runtime.h), with that runtime's verbosity and
 * logger. */
extern int dfr_verbosity;
void dfr_log(int level, const char *fmt, ...) DFR_PRINTF(2, 3);

/* A logger: gets each message (no "dfrcl: " prefix, no newline) of `level` or below. */
typedef void (*dfr_log_fn)(void *user, int level, const char *msg);
#define DFR_VERBOSITY_GLOBAL (-1)
/* The message goes to fn (when set) or stderr if level <= verbosity (DFR_VERBOSITY_GLOBAL:
 * dfr_verbosity). One write per message, so lines of threads do not interleave. */
void dfr_vlog(dfr_log_fn fn, void *user, int verbosity, int level, const char *fmt, va_list ap);

#endif
