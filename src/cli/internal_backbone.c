/* The CLI helpers over internal structs: see internal_backbone.h. */
#include "cli/internal_backbone.h"

#include <stdio.h>

#include "cli/cli.h"
#include "util/error.h"

static int check_backbone(const cli_backbone_opts *o, int *layers_out)
{
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
    *layers_out = layers ? layers : 12;
    return DFRCL_OK;
}

static int load_backbone(const cli_backbone_opts *o, int layers, dfr_runtime *rt, dfr_vgg19 **vgg,
                         int note)
{
    if (o->weights) return dfr_vgg19_load(vgg, rt, o->weights, layers);
    int rc = dfr_vgg19_random(vgg, rt, layers, (uint32_t)o->random_seed);
    if (!rc && note)
        dfr_log(1, "using a random backbone (seed %d): its features are not meaningful; real "
                   "use needs pretrained VGG19 weights (--weights)", o->random_seed);
    return rc;
}

/* --precision on a runtime: auto is fp16 on GPUs (its accuracy cost on the shared test sets was
 * below 0.0002; memory and traffic halve) and fp32 on CPUs, where PoCL's half conversions made
 * the convolutions 3.4x slower. */
static void cli_apply_precision(const cli_backbone_opts *o, dfr_runtime *rt)
{
    rt->half = o->half < 0 ? rt->info.is_gpu : o->half;
}

int cli_backbone_open(const cli_backbone_opts *o, int profiling, dfr_runtime **rt, dfr_vgg19 **vgg)
{
    *rt = NULL;
    *vgg = NULL;
    dfr_verbosity = o->verbosity;
    int layers = 0;
    int rc = check_backbone(o, &layers);
    if (!rc) rc = dfr_runtime_open(rt, o->device, NULL, profiling);
    if (rc) return rc;
    cli_apply_precision(o, *rt);
    rc = load_backbone(o, layers, *rt, vgg, 1);
    if (rc) dfr_runtime_close(rt);
    return rc;
}
