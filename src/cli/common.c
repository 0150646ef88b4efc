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

/* API setting -> the option that sets it (the commands' options share these names). */
static const struct {
    const char *setting, *option;
} setting_options[] = {
    {"batch", "--batch"},   {"feature_dir", "--feature-dir"}, {"latent", "--latent"},
    {"layers", "--layers"}, {"lr", "--lr"},                   {"memory_mib", "--memory"},
    {"resume", "--resume"}, {"size", "--size"},               {"store", "--store"},
    {"test_dir", "--test"}, {"weights", "--weights"},
};

void cli_option_hint(const char *msg, char *out, size_t n)
{
    const size_t ns = sizeof setting_options / sizeof setting_options[0];
    int named[sizeof setting_options / sizeof setting_options[0]] = {0}, count = 0;
    for (const char *p = msg ? strchr(msg, '(') : NULL; p; p = strchr(p + 1, '(')) {
        size_t len = strcspn(p + 1, " ),");
        for (size_t i = 0; i < ns; i++)
            if (!named[i] && strlen(setting_options[i].setting) == len &&
                !strncmp(p + 1, setting_options[i].setting, len) && p[1 + len])
                named[i] = ++count; /* in the order the message names them */
    }
    size_t used = 0;
    out[0] = 0;
    for (int k = 1; k <= count; k++)
        for (size_t i = 0; i < ns; i++)
            if (named[i] == k && used < n)
                used += (size_t)snprintf(out + used, n - used, "%s%s",
                                         k == 1 ? (count > 1 ? " (command-line options: "
                                                             : " (command-line option: ")
                                                : ", ",
                                         setting_options[i].option);
    if (count && used < n) snprintf(out + used, n - used, ")");
}

int cli_fail(const char *context)
{
    const char *msg = cli_msg[0] ? cli_msg : dfrcl_last_error();
    char hint[160];
    cli_option_hint(msg, hint, sizeof hint);
    if (context) fprintf(stderr, "dfrcl: error: %s: %s%s\n", context, msg, hint);
    else fprintf(stderr, "dfrcl: error: %s%s\n", msg, hint);
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
