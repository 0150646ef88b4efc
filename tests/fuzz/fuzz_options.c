/* libFuzzer target for command-line options: the input, split at newlines and NUL bytes, is the
 * argument list of a command that takes the backbone and training options (train, run, demo),
 * parsed with getopt_long over the real option tables and handlers (cli_backbone_option,
 * cli_train_parse, cli_int). Every accepted value must lie in its documented range, every
 * refusal must be an error return; nothing may crash. */
#include <getopt.h>
#include <math.h>

#include "cli/backbone_opts.h"
#include "cli/train_opts.h"
#include "fuzz_common.h"
#include "model/dfr.h"
#include "model/featstore.h"

#define MAX_ARGS 32

static const struct option opts[] = {CLI_BACKBONE_LONGOPTS, CLI_TRAIN_LONGOPTS, {0, 0, 0, 0}};

static int in(double v, double lo, double hi) { return v >= lo && v <= hi; }

static void check(const cli_backbone_opts *b, const dfrcl_train_options *t)
{
    int ok = in(b->layers, 0, DFR_VGG19_LAYERS) && in(b->size, 4, 8192) &&
             in(b->random_seed, -1, 1000000) && in(b->verbosity, 0, 2) &&
             in(t->epochs, 0, 1000000) && in(t->batch, 1, 4096) && t->lr >= 0 && t->lr < 10 &&
             t->fpr > 0 && t->fpr < 1 && in(t->latent, 0, 1 << 20) &&
             in(t->positions, 0, 1 << 30) && (t->patience == -1 || in(t->patience, 0, 1000000)) &&
             isfinite(t->memory_mib) && in(t->memory_mib, 0, 1e9) && in(t->store, 0, DFR_FS_DISK) &&
             (t->store_precision == 0 || t->store_precision == 16 || t->store_precision == 32) &&
             (t->recipe == DFR_RECIPE_FAST || t->recipe == DFR_RECIPE_PUBLISHED);
    if (!ok) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), *argv[MAX_ARGS + 2];
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    int argc = 0;
    argv[argc++] = "dfrcl-train";
    for (size_t i = 0; i < size; i++)
        if (text[i] == '\n') text[i] = 0;
    for (char *s = text; s < text + size && argc <= MAX_ARGS; s += strlen(s) + 1) argv[argc++] = s;
    argv[argc] = NULL;

    cli_backbone_opts b;
    dfrcl_train_options t;
    cli_backbone_defaults(&b);
    dfrcl_default_train_options(&t);
    optind = 0; /* GNU: start over, forgetting the previous argument list */
    int c, rc = 1;
    const char *shortopts = "d:w:l:s:vq" CLI_TRAIN_SHORTOPTS;
    while (rc == 1 && (c = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
        rc = cli_backbone_option(&b, c, optarg);
        if (rc == 0) rc = cli_train_parse(&t, c, optarg);
        if (rc == 0 && c != '?' && c != ':') abort(); /* an option in the table nobody handles */
    }
    if (rc == 1) {
        check(&b, &t);
        /* what training makes of them for this size: every value set and in range */
        int npos = (b.size / 4) * (b.size / 4);
        dfr_train_resolve(&t, npos);
        if (t.epochs < 1 || !(t.lr > 0) || !in(t.positions, 1, npos) || t.patience == 0) abort();
    }
    free(text);
    return 0;
}
