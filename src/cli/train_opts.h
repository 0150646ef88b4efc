/* Training options and progress shared by train, run and demo. */
#ifndef DFRCL_CLI_TRAIN_OPTS_H
#define DFRCL_CLI_TRAIN_OPTS_H

#include "dfrcl.h"
#include "progress.h"

#define CLI_TRAIN_LONGOPTS                                                                      \
    {"epochs", required_argument, 0, 'e'}, {"batch", required_argument, 0, 'b'},                \
        {"lr", required_argument, 0, 1202}, {"latent", required_argument, 0, 1203},             \
        {"fpr", required_argument, 0, 1204}, {"seed", required_argument, 0, 1205},              \
        {"recipe", required_argument, 0, 1210}, {"positions", required_argument, 0, 1211},      \
        {"patience", required_argument, 0, 1212}, {"memory", required_argument, 0, 1213},       \
        {"store", required_argument, 0, 1214}, {"precision", required_argument, 0, 1215},       \
        {"feature-dir", required_argument, 0, 1216}
#define CLI_TRAIN_SHORTOPTS "e:b:"
#define CLI_TRAIN_HELP                                                                         \
    "      --recipe fast|published  how to train (default fast):\n"                            \
    "                            fast: each step trains on a random 1/8 of the feature\n"     \
    "                            positions of its batch, Adam lr 3e-4, and training stops\n"   \
    "                            when the last 5 epochs lowered the loss by less than 3%% of\n" \
    "                            its fall since the first (at most 100 epochs); the same\n"    \
    "                            accuracy for a tenth of the compute or less\n"                \
    "                            published: DFR as published (every position, lr 1e-4,\n"    \
    "                            150 epochs, no early stop); equals the PyTorch reference\n"  \
    "  -e, --epochs N            the most epochs (fast 100, published 150)\n"                 \
    "  -b, --batch N             images per batch (default 4)\n"                              \
    "      --lr X                Adam learning rate (fast 3e-4, published 1e-4)\n"            \
    "      --positions N|all     feature positions per image in a step (fast 1/8 of them)\n"   \
    "      --patience N|off      the early stop's window: N epochs, at least 50 steps\n"       \
    "                            (fast 5)\n"                                                  \
    "      --latent auto|N       latent size (default auto: PCA, 90%% of the variance of\n"    \
    "                            the first 10 images)\n"                                       \
    "      --fpr X               expected pixel false-positive rate of the threshold on\n"     \
    "                            normal images (default 0.005)\n"                              \
    "      --seed N              seed of the initialisation and sampling (default 0)\n"        \
    "      --memory SIZE         memory budget of training, e.g. 800M or 2G (default: a\n"     \
    "                            quarter of RAM, at most 2G and 3/4 of the device's memory);\n" \
    "                            it decides where the training features live: on the device,\n" \
    "                            in host memory, as fp16, or streamed from a temporary file\n"  \
    "      --store auto|device|host|disk   force where the features live\n"                  \
    "      --precision auto|fp32|fp16      force how they are stored (fp32 is exact; fp16\n" \
    "                            halves the bytes; auto: fp32 in memory, fp16 on disk)\n"     \
    "      --feature-dir DIR     folder of the disk store (default $TMPDIR, else /var/tmp);\n" \
    "                            its file is deleted as soon as it is made\n"

/* Handles one getopt_long result for the training options: 1 if it was one, 0 if not, -1 on a
 * bad value (message printed). */
int cli_train_parse(dfrcl_train_options *o, int opt, const char *arg);
/* The recipe's name ("fast", "published"). */
const char *cli_recipe_name(int recipe);

/* A dfrcl_train_options.on_progress callback drawing one bar per phase (user is a
 * cli_train_progress); returns non-zero once a signal asked to stop (cli_stop_on_signals). */
typedef struct cli_train_progress {
    cli_progress bar;
    int train_images; /* for images/s while training */
    struct curve_ctx *curve; /* train --eval-every */
    double losses[4096];     /* every epoch's loss, for the curve */
    int n_losses;
} cli_train_progress;
int cli_train_progress_cb(void *user, const char *phase, int done, int total, double loss);
#endif
