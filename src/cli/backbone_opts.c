#include "cli/backbone_opts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/error.h"

void cli_backbone_defaults(cli_backbone_opts *o)
{
    o->device = NULL;
    o->weights = getenv("DFRCL_WEIGHTS");
    if (o->weights && !*o->weights) o->weights = NULL;
    o->random_seed = -1;
    o->layers = 0;
    o->size = 256;
    o->verbosity = 1;
    o->half = 0;
}

int cli_backbone_option(cli_backbone_opts *o, int opt, const char *arg)
{
    switch (opt) {
    case 'd': o->device = arg; return 1;
    case 'w': o->weights = arg; return 1;
    case 1001: return cli_int("--random-backbone", arg, 0, 1000000, &o->random_seed) ? 1 : -1;
    case 'l':
        /* a count, or the name of the last layer: --layers 8 == --layers relu3_4 */
        for (int i = 0; i < DFR_VGG19_LAYERS; i++)
            if (!strcmp(arg, dfr_vgg19_layer_name(i))) {
                o->layers = i + 1;
                return 1;
            }
        if (cli_int("--layers", arg, 1, DFR_VGG19_LAYERS, &o->layers)) return 1;
        fprintf(stderr, "  (or a layer name: relu1_1, relu1_2, relu2_1, ..., relu5_4)\n");
        return -1;
    case 's': return cli_int("--size", arg, 4, 8192, &o->size) ? 1 : -1;
    case 1002:
        if (!strcmp(arg, "fp32") || !strcmp(arg, "fp16")) {
            o->half = arg[2] == '1';
            return 1;
        }
        fprintf(stderr, "dfrcl: error: --precision expects fp32 or fp16, not '%s'\n", arg);
        return -1;
    case 'v': o->verbosity = 2; return 1;
    case 'q': o->verbosity = 0; return 1;
    default: return 0;
    }
}

int cli_backbone_open(const cli_backbone_opts *o, int profiling, dfr_runtime **rt, dfr_vgg19 **vgg)
{
    *rt = NULL;
    *vgg = NULL;
    dfr_verbosity = o->verbosity;
    if (!o->weights && o->random_seed < 0)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "no backbone weights: give --weights FILE (VGG19 as safetensors, see the "
                         "README) or set DFRCL_WEIGHTS, or --random-backbone SEED to try dfrcl "
                         "without them");
    int layers = o->layers;
    if (o->weights && !layers) {
        int rc = dfr_vgg19_file_layers(o->weights, &layers);
        if (rc) return rc;
        if (layers > 12) layers = 12;
    }
    if (!layers) layers = 12;
    int rc = dfr_runtime_open(rt, o->device, NULL, profiling);
    if (rc) return rc;
    (*rt)->half = o->half;
    if (o->weights) {
        rc = dfr_vgg19_load(vgg, *rt, o->weights, layers);
    } else {
        rc = dfr_vgg19_random(vgg, *rt, layers, (uint32_t)o->random_seed);
        if (!rc)
            dfr_log(1, "using a random backbone (seed %d): its features are not meaningful; real "
                       "use needs pretrained VGG19 weights (--weights)", o->random_seed);
    }
    if (rc) dfr_runtime_close(rt);
    return rc;
}

