#include "train_opts.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char *cli_recipe_name(int recipe) { return recipe == 1 ? "published" : "fast"; }

int cli_train_parse(dfrcl_train_options *o, int opt, const char *arg)
{
    char *end = NULL;
    int seed = 0;
    switch (opt) {
    case 'e': return cli_int("--epochs", arg, 1, 1000000, &o->epochs) ? 1 : -1;
    case 'b': return cli_int("--batch", arg, 1, 4096, &o->batch) ? 1 : -1;
    case 1205:
        if (!cli_int("--seed", arg, 0, 2000000000, &seed)) return -1;
        o->seed = (uint32_t)seed;
        return 1;
    case 1202:
        o->lr = strtof(arg, &end);
        if (!*arg || *end || !(o->lr > 0 && o->lr < 10)) {
            fprintf(stderr, "dfrcl: error: --lr expects a number in (0, 10), not '%s'\n", arg);
            return -1;
        }
        return 1;
    case 1204:
        o->fpr = strtod(arg, &end);
        if (!*arg || *end || !(o->fpr > 0 && o->fpr < 1)) {
            fprintf(stderr, "dfrcl: error: --fpr expects a number in (0, 1), not '%s'\n", arg);
            return -1;
        }
        return 1;
    case 1203:
        if (!strcmp(arg, "auto")) {
            o->latent = 0;
            return 1;
        }
        return cli_int("--latent", arg, 1, 1 << 20, &o->latent) ? 1 : -1;
    case 1210:
        if (!strcmp(arg, "fast")) o->recipe = 0;
        else if (!strcmp(arg, "published")) o->recipe = 1;
        else {
            fprintf(stderr, "dfrcl: error: --recipe expects fast or published, not '%s'\n", arg);
            return -1;
        }
        return 1;
    case 1211:
        if (!strcmp(arg, "all")) {
            o->positions = 1 << 30; /* clamped to the image's positions */
            return 1;
        }
        return cli_int("--positions", arg, 1, 1 << 30, &o->positions) ? 1 : -1;
    case 1212:
        if (!strcmp(arg, "off")) {
            o->patience = -1;
            return 1;
        }
        return cli_int("--patience", arg, 1, 1000000, &o->patience) ? 1 : -1;
    case 1213: { /* a size: a number with an optional K, M (the default) or G, then B or iB */
        double v = strtod(arg, &end), unit = 1024.0 * 1024.0;
        if (*end == 'K' || *end == 'k') unit = 1024.0, end++;
        else if (*end == 'M' || *end == 'm') end++;
        else if (*end == 'G' || *end == 'g') unit = 1024.0 * 1024.0 * 1024.0, end++;
        if (!strcmp(end, "iB") || !strcmp(end, "B")) end += strlen(end);
        if (end == arg || *end || !(v > 0) || v * unit > 1e15) {
            fprintf(stderr, "dfrcl: error: --memory expects a size such as 800M or 2G, not '%s'\n",
                    arg);
            return -1;
        }
        o->memory_mib = v * unit / (1024.0 * 1024.0);
        return 1;
    }
    case 1214: {
        static const char *const places[] = {"auto", "device", "host", "disk"};
        for (int i = 0; i < 4; i++) /* dfrcl_train_options.store's values */
            if (!strcmp(arg, places[i])) {
                o->store = i;
                return 1;
            }
        fprintf(stderr, "dfrcl: error: --store expects auto, device, host or disk, not '%s'\n", arg);
        return -1;
    }
    case 1215:
        if (!strcmp(arg, "auto")) o->store_precision = 0;
        else if (!strcmp(arg, "fp32")) o->store_precision = 32;
        else if (!strcmp(arg, "fp16")) o->store_precision = 16;
        else {
            fprintf(stderr, "dfrcl: error: --precision expects auto, fp32 or fp16, not '%s'\n", arg);
            return -1;
        }
        return 1;
    case 1216: o->feature_dir = arg; return 1;
    default: return 0;
    }
}

int cli_train_progress_cb(void *user, const char *phase, int done, int total, double loss)
{
    if (!strcmp(phase, "step")) return *cli_stop_flag(); /* only to see a stop within an epoch */
    cli_train_progress *tp = user;
    cli_progress *p = &tp->bar;
    if (!p->phase || strcmp(p->phase, phase) != 0) {
        if (p->phase) cli_progress_end(p);
        cli_progress_start(p, phase, total, strcmp(phase, "train") ? "img" : "epochs", p->quiet);
        p->images_per_unit = strcmp(phase, "train") ? 1 : tp->train_images;
    }
    char extra[64] = "";
    if (!strcmp(phase, "train")) {
        snprintf(extra, sizeof extra, "loss %.5g", loss);
        if (done >= 1 && done <= 4096) {
            tp->losses[done - 1] = loss;
            if (done > tp->n_losses) tp->n_losses = done;
        }
    }
    cli_progress_update(p, done, p->images_per_unit, extra[0] ? extra : NULL);
    return *cli_stop_flag();
}
