/* Training options and progress shared by train, run and demo. */
#ifndef DFRCL_CLI_TRAIN_OPTS_H
#define DFRCL_CLI_TRAIN_OPTS_H

#include "cli/progress.h"
#include "model/dfr.h"

#define CLI_TRAIN_LONGOPTS                                                                      \
    {"epochs", required_argument, 0, 'e'}, {"batch", required_argument, 0, 'b'},                \
        {"lr", required_argument, 0, 1202}, {"latent", required_argument, 0, 1203},             \
        {"fpr", required_argument, 0, 1204}, {"seed", required_argument, 0, 1205}
#define CLI_TRAIN_SHORTOPTS "e:b:"
#define CLI_TRAIN_HELP                                                                         \
    "  -e, --epochs N            training epochs (default 150)\n"                              \
    "  -b, --batch N             images per batch (default 4)\n"                               \
    "      --lr X                Adam learning rate (default 1e-4)\n"                          \
    "      --latent auto|N       latent size (default auto: PCA, 90%% of the variance of\n"    \
    "                            the first 10 images)\n"                                       \
    "      --fpr X               expected pixel false-positive rate of the threshold on\n"     \
    "                            normal images (default 0.005)\n"                              \
    "      --seed N              seed of the initialisation and shuffling (default 0)\n"

/* Handles one getopt_long result for the training options: 1 if it was one, 0 if not, -1 on a
 * bad value (message printed). */
int cli_train_option(dfr_train_opts *o, int opt, const char *arg);

/* A dfr_train_opts.progress callback drawing one bar per phase; user is a cli_train_progress. */
typedef struct cli_train_progress {
    cli_progress bar;
    int train_images; /* for images/s while training */
} cli_train_progress;
void cli_train_on_progress(void *user, const char *phase, int done, int total, double loss);
#endif
