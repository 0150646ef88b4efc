/* Options every command that runs the backbone shares: device, weights, layers, size. */
#ifndef DFRCL_CLI_BACKBONE_OPTS_H
#define DFRCL_CLI_BACKBONE_OPTS_H

#include "cl/runtime.h"
#include "model/vgg19.h"

typedef struct cli_backbone_opts {
    const char *device;  /* --device, else DFRCL_DEVICE */
    const char *weights; /* --weights, else DFRCL_WEIGHTS */
    int random_seed;     /* --random-backbone SEED (-1: not asked) */
    int layers;          /* --layers; 0 = all the file has, at most 12 (relu1_1..relu4_4) */
    int size;            /* --size, default 256 */
    int verbosity;
    int half;            /* --precision fp16: inference activations stored as fp16 */
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

/* --precision fp32|fp16 for the commands that score (infer, eval, bench; run has its own, shared
 * with training's feature store). cli_backbone_option handles it; cli_backbone_open applies it. */
#define CLI_PRECISION_LONGOPT {"precision", required_argument, 0, 1002}
#define CLI_PRECISION_HELP                                                                      \
    "      --precision fp32|fp16 storage of activations and features on the device\n"          \
    "                            (default fp32); fp16 halves their memory and traffic,\n"      \
    "                            computing and summing still in fp32\n"

/* Opens the runtime (with the precision asked for) and loads the backbone the options describe. */
int cli_backbone_open(const cli_backbone_opts *o, int profiling, dfr_runtime **rt,
                      dfr_vgg19 **vgg);
#endif
