/* What every command shares: option values, errors and messages (public API only). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_verbosity = 1;
static char cli_msg[4096]; /* the command's own last failure; "" when the library's is current */

int cli_error(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cli_msg, sizeof cli_msg, fmt, ap);
    va_end(ap);
    return status;
}

int cli_error_prefix(int status, const char *fmt, ...)
{
    char head[1024], old[sizeof cli_msg];
    snprintf(old, sizeof old, "%s", cli_msg[0] ? cli_msg : dfrcl_last_error());
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    snprintf(cli_msg, sizeof cli_msg, "%s: %.3000s", head, old);
    return status;
}

int cli_fail(const char *context)
{
    const char *msg = cli_msg[0] ? cli_msg : dfrcl_last_error();
    if (context) fprintf(stderr, "dfrcl: error: %s: %s\n", context, msg);
    else fprintf(stderr, "dfrcl: error: %s\n", msg);
    cli_msg[0] = 0;
    return 1;
}

int cli_int(const char *opt, const char *val, int lo, int hi, int *out)
{
    char *end = NULL;
    long v = strtol(val, &end, 10);
    if (!*val || *end || v < lo || v > hi) {
        fprintf(stderr, "dfrcl: error: %s expects an integer in %d..%d, not '%s'\n", opt, lo, hi,
                val);
        return 0;
    }
    *out = (int)v;
    return 1;
}

void cli_log_sink(void *user, int level, const char *msg)
{
    (void)user, (void)level;
    fprintf(stderr, "dfrcl: %s\n", msg); /* one call: stdio locks the stream for it */
}

void cli_log(int level, const char *fmt, ...)
{
    if (level > cli_verbosity) return;
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cli_log_sink(NULL, level, msg);
}
