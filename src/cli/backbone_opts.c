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
    o->batch = 0;
    o->threads = 0;
    o->half = -1; /* auto: fp16 on GPUs, fp32 on CPUs */
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
    case 1002: return cli_int("--batch", arg, 1, DFR_SCHED_MAX_BATCH, &o->batch) ? 1 : -1;
    case 1003: return cli_int("--threads", arg, 1, 16, &o->threads) ? 1 : -1;
    case 1004:
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

int cli_lanes_open(const cli_backbone_opts *o, int profiling, cli_lanes *l)
{
    memset(l, 0, sizeof *l);
    l->so.batch = o->batch;
    l->so.threads = o->threads;
    dfr_verbosity = o->verbosity;
    int layers = 0, n = 0;
    dfr_runtime **rts = NULL;
    int rc = check_backbone(o, &layers);
    if (!rc) rc = dfr_runtime_open_list(&rts, &n, o->device, NULL, profiling);
    if (rc) return rc;
    if (n > CLI_MAX_LANES) {
        for (int i = CLI_MAX_LANES; i < n; i++) dfr_runtime_close(&rts[i]);
        dfr_log(1, "warning: using the first %d of %d devices", CLI_MAX_LANES, n);
        n = CLI_MAX_LANES;
    }
    l->k = n;
    for (int i = 0; i < n; i++) l->rt[i] = rts[i];
    free(rts);
    for (int i = 0; i < n; i++) cli_apply_precision(o, l->rt[i]);
    for (int i = 0; i < n && !rc; i++) rc = load_backbone(o, layers, l->rt[i], &l->vgg[i], i == 0);
    if (rc) cli_lanes_close(l);
    return rc;
}

int cli_lanes_load_model(cli_lanes *l, const char *path)
{
    cli_lanes_free_models(l);
    int rc = DFRCL_OK;
    for (int i = 0; i < l->k && !rc; i++) rc = dfr_model_load(&l->m[i], l->rt[i], l->vgg[i], path);
    if (rc) cli_lanes_free_models(l);
    return rc;
}

void cli_lanes_free_models(cli_lanes *l)
{
    for (int i = 0; i < l->k; i++) dfr_model_free(&l->m[i]);
}

void cli_lanes_close(cli_lanes *l)
{
    cli_lanes_free_models(l);
    for (int i = 0; i < l->k; i++) {
        dfr_vgg19_free(&l->vgg[i]);
        dfr_runtime_close(&l->rt[i]);
    }
    l->k = 0;
}

void cli_lanes_names(const cli_lanes *l, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < l->k && used < n - 1; i++) {
        int w = snprintf(buf + used, n - used, "%s[%d] %s", i ? ", " : "", l->rt[i]->info.index,
                         l->rt[i]->info.name);
        if (w < 0) break;
        used += (size_t)w;
    }
}
