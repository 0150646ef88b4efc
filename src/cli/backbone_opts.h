/* Options every command that runs the backbone shares: device, weights, layers, size. */
#ifndef DFRCL_CLI_BACKBONE_OPTS_H
#define DFRCL_CLI_BACKBONE_OPTS_H

#include "dfrcl.h"

/* --batch's most images per launch (the scheduler's limit). */
#define CLI_MAX_BATCH 64

typedef struct cli_backbone_opts {
    const char *device;  /* --device, else DFRCL_DEVICE */
    const char *weights; /* --weights, else DFRCL_WEIGHTS */
    int random_seed;     /* --random-backbone SEED (-1: not asked) */
    int layers;          /* --layers; 0 = all the file has, at most 12 (relu1_1..relu4_4) */
    int size;            /* --size, default 256 */
    int verbosity;
    int batch, threads;  /* --batch, --threads (scoring commands); 0 = automatic */
    int half;            /* --precision: 1 fp16 inference activations, 0 fp32, -1 auto */
} cli_backbone_opts;

void cli_backbone_defaults(cli_backbone_opts *o);
/* Handles one getopt_long result for the shared options; returns 1 if it was one of them,
 * 0 if not, -1 on a bad value (message printed). */
int cli_backbone_option(cli_backbone_opts *o, int opt, const char *arg);
#define CLI_BACKBONE_LONGOPTS                                                                  \
    {"device", required_argument, 0, 'd'}, {"weights", required_argument, 0, 'w'},             \
        {"random-backbone", required_argument, 0, 1001}, {"layers", required_argument, 0, 'l'}, \
        {"size", required_argument, 0, 's'}, {"verbose", no_argument, 0, 'v'},                  \
        {"quiet", no_argument, 0, 'q'}
#define CLI_BACKBONE_HELP                                                                       \
    "  -w, --weights FILE        VGG19 weights, safetensors with torchvision names\n"           \
    "                            (default: $DFRCL_WEIGHTS)\n"                                   \
    "      --random-backbone SEED  use a seeded random VGG19 instead (for trying dfrcl\n"       \
    "                            without weights; its results mean nothing)\n"                  \
    "  -l, --layers N|NAME       ReLU layers from relu1_1, as a count or the last one's\n"    \
    "                            name (relu3_4 = 8); default: all the file has, at most\n"    \
    "                            12 = relu4_4, as published\n"                                 \
    "  -s, --size S              image side after resizing (default 256)\n"                     \
    "  -d, --device D            OpenCL device index or name substring (default:\n"            \
    "                            $DFRCL_DEVICE, else the first GPU, else the first device)\n"  \
    "  -v, --verbose / -q, --quiet\n"

/* The scoring options: --batch and --threads, and --device taking a list ("all", "0,2"). */
#define CLI_SCHED_LONGOPTS \
    {"batch", required_argument, 0, 1002}, {"threads", required_argument, 0, 1003}
/* run: --batch is training's there. */
#define CLI_SCHED_LONGOPTS_RUN \
    {"score-batch", required_argument, 0, 1002}, {"threads", required_argument, 0, 1003}
#define CLI_SCHED_HELP                                                                          \
    "  -d, --device D            also a list: 'all', or indices/names separated by commas\n"  \
    "                            ('0,2'): images are spread over those devices\n"            \
    "      --batch N             images per launch (default: on GPUs from the device's\n"   \
    "                            memory, at most 16; on CPUs 1); results are the same\n"    \
    "      --threads N           image decoding threads (default: one per core)\n"

/* --precision fp32|fp16 for the commands that score (infer, eval, bench; run has its own, shared
 * with training's feature store). cli_backbone_option handles it; cli_settings applies it. */
#define CLI_PRECISION_LONGOPT {"precision", required_argument, 0, 1004}
#define CLI_PRECISION_HELP                                                                      \
    "      --precision fp32|fp16 storage of activations and features on the device\n"          \
    "                            (default: fp16 on GPUs, fp32 on CPUs); fp16 halves their\n"  \
    "                            memory and traffic, computing and summing still in fp32\n"

/* The context settings the options describe: device list, verbosity, precision, and the
 * command's logger (cli_log_sink). Also sets cli_verbosity. */
void cli_settings(const cli_backbone_opts *o, dfrcl_settings *s);
/* Opens a context on the device(s) the options name and loads the backbone they describe (the
 * weights file, else the random one, with a note). On failure both are NULL. */
int cli_open(const cli_backbone_opts *o, dfrcl_context **ctx, dfrcl_backbone **bb);
/* The score options --batch and --threads give, stopped by a signal (cli_stop_on_signals) and
 * drawing `bar` (a cli_progress, may be NULL). */
void cli_score_options(const cli_backbone_opts *o, dfrcl_score_options *so, void *bar);
/* "[0] name, [1] name" of the context's devices, for reports. */
void cli_device_names(const dfrcl_context *ctx, char *buf, size_t n);
#endif
