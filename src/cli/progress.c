#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void cli_progress_start(cli_progress *p, const char *phase, int total, const char *unit, int quiet)
{
    p->phase = phase;
    p->total = total;
    p->unit = unit;
    p->start = cli_now();
    p->last_print = p->start; /* the first line after one interval, not at once */
    p->tty = isatty(fileno(stderr));
    p->quiet = quiet;
}

static void fmt_time(char *b, size_t n, double s)
{
    if (s < 0 || s > 1e7) snprintf(b, n, "?");
    else if (s < 60) snprintf(b, n, "%.0fs", s);
    else if (s < 3600) snprintf(b, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(b, n, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
}

void cli_progress_update(cli_progress *p, int done, double items_per_unit, const char *extra)
{
    if (p->quiet) return;
    double now = cli_now(), el = now - p->start;
    /* A terminal gets a redraw at most 10 times a second; a log a line every 10 s and at the end. */
    if (done < p->total && now - p->last_print < (p->tty ? 0.1 : 10.0)) return;
    p->last_print = now;
    double rate = el > 0 ? done * items_per_unit / el : 0;
    char eta[32], ela[32];
    fmt_time(eta, sizeof eta, done > 0 ? el * (p->total - done) / done : -1);
    fmt_time(ela, sizeof ela, el);
    if (p->tty) {
        char bar[31];
        int fill = p->total ? 30 * done / p->total : 30;
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '.', (size_t)(30 - fill));
        bar[30] = 0;
        fprintf(stderr, "\r%-9s [%s] %d/%d %s%s%s | %.2f img/s | %s, ETA %s\033[K", p->phase, bar,
                done, p->total, p->unit, extra ? " | " : "", extra ? extra : "", rate, ela, eta);
    } else {
        fprintf(stderr, "dfrcl: %s %d/%d %s%s%s, %.2f img/s, %s elapsed, ETA %s\n", p->phase, done,
                p->total, p->unit, extra ? ", " : "", extra ? extra : "", rate, ela, eta);
    }
    fflush(stderr);
}

void cli_progress_end(cli_progress *p)
{
    if (!p->quiet && p->tty) fputc('\n', stderr);
}
