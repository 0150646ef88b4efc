/* Progress on stderr: a redrawn bar when stderr is a terminal, plain periodic lines otherwise. */
#ifndef DFRCL_CLI_PROGRESS_H
#define DFRCL_CLI_PROGRESS_H

typedef struct cli_progress {
    const char *phase;
    int total;
    double start, last_print;
    int tty, quiet;
    const char *unit; /* "img", "epochs" */
    double images_per_unit; /* for the img/s figure */
} cli_progress;

void cli_progress_start(cli_progress *p, const char *phase, int total, const char *unit, int quiet);
/* extra: e.g. "loss 41.2" (may be NULL). */
void cli_progress_update(cli_progress *p, int done, double items_per_unit, const char *extra);
void cli_progress_end(cli_progress *p);
double cli_now(void);
#endif
