#include "cli/train_opts.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int cli_train_option(dfr_train_opts *o, int opt, const char *arg)
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
    default: return 0;
    }
}

void cli_train_on_progress(void *user, const char *phase, int done, int total, double loss)
{
    cli_train_progress *tp = user;
    cli_progress *p = &tp->bar;
    if (!p->phase || strcmp(p->phase, phase) != 0) {
        if (p->phase) cli_progress_end(p);
        cli_progress_start(p, phase, total, strcmp(phase, "train") ? "img" : "epochs", p->quiet);
        p->images_per_unit = strcmp(phase, "train") ? 1 : tp->train_images;
    }
    char extra[64] = "";
    if (!strcmp(phase, "train")) snprintf(extra, sizeof extra, "loss %.5g", loss);
    cli_progress_update(p, done, p->images_per_unit, extra[0] ? extra : NULL);
}
