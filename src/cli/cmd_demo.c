/* dfrcl demo: the whole job on data the project makes itself — a small synthetic inspection
 * dataset (woven texture with scratches, stains and holes), a short training, an evaluation with
 * its report. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backbone_opts.h"
#include "cli.h"
#include "outputs.h"
#include "progress.h"
#include "train_opts.h"

static void help(void)
{
    printf("usage: dfrcl demo [--out DIR] [options]\n\n"
           "Runs DFR end to end on a synthetic dataset it generates (a woven fabric with\n"
           "scratch, stain and hole defects, with exact masks): writes the dataset, trains a\n"
           "model briefly, evaluates it and writes the HTML report. Uses pretrained VGG19\n"
           "weights from --weights or DFRCL_WEIGHTS when given, else a seeded random backbone\n"
           "(fine for a demo; real use needs pretrained weights, see the README).\n\noptions:\n"
           "      --out DIR             where everything goes (default dfrcl-demo); must not\n"
           "                            exist unless --force\n"
           "      --force               reuse an existing --out folder\n"
           "  -e, --epochs N            at most this many training epochs (default 25)\n"
           "      --train N             training images to generate (default 16)\n"
           CLI_BACKBONE_HELP "                            (demo default: --size 128, 8 layers)\n"
           CLI_SCHED_HELP
           "  -h, --help\n");
}

int cmd_demo(int argc, char **argv)
{
    static const struct option opts[] = {CLI_BACKBONE_LONGOPTS, CLI_SCHED_LONGOPTS,
                                         {"out", required_argument, 0, 1501},
                                         {"force", no_argument, 0, 1502},
                                         {"epochs", required_argument, 0, 'e'},
                                         {"train", required_argument, 0, 1503},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    cli_backbone_opts bo;
    cli_backbone_defaults(&bo);
    bo.size = 128;
    bo.layers = 8;
    const char *out = "dfrcl-demo";
    int force = 0, epochs = 25, n_train = 16, c;
    while ((c = getopt_long(argc, argv, "d:w:l:s:vqe:h", opts, NULL)) != -1) {
        int r = cli_backbone_option(&bo, c, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (c == 1501) out = optarg;
        else if (c == 1502) force = 1;
        else if (c == 'e') {
            if (!cli_int("--epochs", optarg, 1, 100000, &epochs)) return 2;
        } else if (c == 1503) {
            if (!cli_int("--train", optarg, 2, 1000, &n_train)) return 2;
        } else if (c == 'h') {
            help();
            return 0;
        } else return 2;
    }
    if (optind != argc) {
        fprintf(stderr, "dfrcl demo: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    struct stat st;
    if (stat(out, &st) == 0 && !force) {
        fprintf(stderr, "dfrcl: error: %s already exists; choose another --out or add --force\n", out);
        return 1;
    }
    if (!bo.weights && bo.random_seed < 0) {
        bo.random_seed = 0;
        fprintf(stderr, "dfrcl demo: no VGG19 weights given (--weights or DFRCL_WEIGHTS): using a "
                        "seeded random backbone. It shows the whole pipeline working; real use "
                        "needs pretrained weights (see the README).\n");
    }
    char data[4096], model[4200], report[4200], json[4200];
    snprintf(data, sizeof data, "%s/data", out);
    snprintf(model, sizeof model, "%s/model.safetensors", out);
    snprintf(report, sizeof report, "%s/eval", out);
    snprintf(json, sizeof json, "%s/metrics.json", out);

    double t0 = cli_now();
    char **files = NULL;
    int n_files = 0;
    dfrcl_context *ctx = NULL;
    dfrcl_backbone *bb = NULL;
    dfrcl_model *m = NULL;
    dfrcl_model_info info;
    dfrcl_metrics mt;
    int rc = cli_mkdir_p(out);
    if (!rc) rc = dfrcl_demo_dataset_write(data, bo.size, n_train, 4, 4, 1);
    if (!rc) {
        printf("1/3 dataset: %s (synthetic woven fabric, %d training images, defects: scratch, "
               "stain, hole)\n", data, n_train);
        fflush(stdout);
        rc = dfrcl_list_images(data, 1, &files, &n_files);
    }
    if (!rc) rc = cli_open(&bo, &ctx, &bb);
    if (!rc) {
        dfrcl_train_options to;
        dfrcl_default_train_options(&to);
        to.epochs = epochs;
        cli_train_progress prog = {0};
        prog.bar.quiet = bo.verbosity == 0;
        prog.train_images = n_files;
        to.on_progress = cli_train_progress_cb;
        to.user = &prog;
        rc = dfrcl_model_train(&m, bb, (const char *const *)files, n_files, bo.size, &to);
        if (prog.bar.phase) cli_progress_end(&prog.bar);
    }
    if (!rc) rc = dfrcl_model_save(m, model);
    if (!rc) rc = dfrcl_model_get_info(m, &info);
    if (!rc) {
        printf("2/3 model: %s (%d layers, latent %d, %d epochs, threshold %.6g)\n", model,
               info.layers, info.latent, info.epochs, info.threshold);
        fflush(stdout);
        rc = cli_mkdir_p(report);
    }
    /* Evaluation on every device of --device's list (the context's). */
    if (!rc) rc = cli_evaluate(m, &bo, data, NULL, NULL, report, json,
                               "dfrcl demo: synthetic woven fabric", model, &mt);
    if (!rc) {
        printf("3/3 evaluation of %d test images:\n", mt.images);
        cli_print_metrics(&mt);
        printf("\nreport: %s/report.html\nmetrics: %s\ndone in %.0f s\n", report, json, cli_now() - t0);
    }
    int ret = rc ? cli_fail(NULL) : 0;
    dfrcl_model_close(&m);
    dfrcl_backbone_close(&bb);
    dfrcl_close(&ctx);
    dfrcl_free_list(files, n_files);
    return ret;
}
