/* dfrcl demo: the whole job on data the project makes itself — a small synthetic inspection
 * dataset (woven texture with scratches, stains and holes), a short training, an evaluation with
 * its report. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/backbone_opts.h"
#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/train_opts.h"
#include "io/dataset.h"
#include "io/demo_data.h"
#include "model/dfr.h"
#include "util/error.h"
#include "util/fsutil.h"

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
    dfr_file_list files = {0};
    cli_lanes lanes = {0};
    dfr_model *m = NULL;
    dfr_metrics mt;
    int rc = dfr_mkdir_p(out);
    if (!rc) rc = dfr_demo_dataset_write(data, bo.size, n_train, 4, 4, 1);
    if (!rc) {
        printf("1/3 dataset: %s (synthetic woven fabric, %d training images, defects: scratch, "
               "stain, hole)\n", data, n_train);
        fflush(stdout);
        rc = dfr_list_train_images(data, &files);
    }
    if (!rc) rc = cli_lanes_open(&bo, 0, &lanes);
    if (!rc) {
        dfr_train_opts to;
        dfr_train_defaults(&to);
        to.epochs = epochs;
        cli_train_progress prog = {0};
        prog.bar.quiet = bo.verbosity == 0;
        prog.train_images = files.count;
        to.progress = cli_train_on_progress;
        to.user = &prog;
        rc = dfr_train(&m, lanes.rt[0], lanes.vgg[0], (const char *const *)files.paths, files.count, bo.size, &to);
        if (prog.bar.phase) cli_progress_end(&prog.bar);
    }
    if (!rc) rc = dfr_model_save(m, model);
    if (!rc) {
        printf("2/3 model: %s (%d layers, latent %d, %d epochs, threshold %.6g)\n", model,
               m->info.layers, m->info.latent, m->info.epochs, m->info.threshold);
        fflush(stdout);
        rc = dfr_mkdir_p(report);
    }
    /* Evaluation on every device of --device's list: the saved model loaded on each. */
    if (!rc) rc = cli_lanes_load_model(&lanes, model);
    if (!rc) rc = cli_eval_model(&lanes, data, NULL, NULL, report, json, "dfrcl demo: synthetic woven fabric",
                                 model, bo.verbosity == 0, &mt);
    if (!rc) {
        printf("3/3 evaluation of %d test images:\n", mt.images);
        cli_print_metrics(&mt);
        printf("\nreport: %s/report.html\nmetrics: %s\ndone in %.0f s\n", report, json, cli_now() - t0);
    }
    int ret = rc ? cli_fail(NULL) : 0;
    dfr_model_free(&m);
    cli_lanes_close(&lanes);
    dfr_file_list_free(&files);
    return ret;
}
