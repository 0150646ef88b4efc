#include "backbone_opts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "progress.h"

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
        for (int i = 0; i < DFRCL_VGG19_MAX_LAYERS; i++)
            if (!strcmp(arg, dfrcl_layer_name(i))) {
                o->layers = i + 1;
                return 1;
            }
        if (cli_int("--layers", arg, 1, DFRCL_VGG19_MAX_LAYERS, &o->layers)) return 1;
        fprintf(stderr, "  (or a layer name: relu1_1, relu1_2, relu2_1, ..., relu5_4)\n");
        return -1;
    case 's': return cli_int("--size", arg, 4, 8192, &o->size) ? 1 : -1;
    case 1002: return cli_int("--batch", arg, 1, CLI_MAX_BATCH, &o->batch) ? 1 : -1;
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

void cli_settings(const cli_backbone_opts *o, dfrcl_settings *s)
{
    dfrcl_default_settings(s);
    s->device = o->device;
    s->verbosity = o->verbosity;
    /* --precision: automatic is fp16 on GPUs (its accuracy cost on the shared test sets was
     * below 0.0002; memory and traffic halve) and fp32 on CPUs (PoCL's half conversions made
     * the convolutions 3.4x slower). */
    s->precision = o->half < 0 ? 0 : o->half ? 16 : 32;
    s->log = cli_log_sink;
    cli_verbosity = o->verbosity;
}

int cli_open(const cli_backbone_opts *o, dfrcl_context **ctx, dfrcl_backbone **bb)
{
    *ctx = NULL;
    *bb = NULL;
    cli_verbosity = o->verbosity;
    if (!o->weights && o->random_seed < 0)
        return cli_error(DFRCL_ERR_INVALID_ARG,
                         "no backbone weights: give --weights FILE (VGG19 as safetensors, see the "
                         "README) or set DFRCL_WEIGHTS, or --random-backbone SEED to try dfrcl "
                         "without them");
    dfrcl_settings s;
    cli_settings(o, &s);
    int rc = dfrcl_open(ctx, &s);
    if (rc) return rc;
    if (o->weights) {
        rc = dfrcl_backbone_load(bb, *ctx, o->weights, o->layers); /* 0: the file's, at most 12 */
    } else {
        rc = dfrcl_backbone_random(bb, *ctx, o->layers ? o->layers : 12,
                                   (uint32_t)o->random_seed);
        if (!rc)
            cli_log(1, "using a random backbone (seed %d): its features are not meaningful; real "
                       "use needs pretrained VGG19 weights (--weights)", o->random_seed);
    }
    if (rc) dfrcl_close(ctx);
    return rc;
}

static int score_progress(void *user, int done, int total)
{
    cli_progress *p = user;
    if (p) {
        p->total = total;
        cli_progress_update(p, done, 1, NULL);
    }
    return *cli_stop_flag();
}

void cli_score_options(const cli_backbone_opts *o, dfrcl_score_options *so, void *bar)
{
    dfrcl_default_score_options(so);
    so->batch = o->batch;
    so->threads = o->threads;
    so->progress = score_progress;
    so->user = bar;
}

void cli_device_names(const dfrcl_context *ctx, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = 0;
    int k = dfrcl_context_device_count(ctx);
    for (int i = 0; i < k && used < n - 1; i++) {
        const dfrcl_device_info *d = dfrcl_context_device_at(ctx, i);
        int w = snprintf(buf + used, n - used, "%s[%d] %s", i ? ", " : "", d->index, d->name);
        if (w < 0) break;
        used += (size_t)w;
    }
}
