#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/backbone_opts.h"
#include "cli/cli.h"
#include "cli/progress.h"
#include "io/dataset.h"
#include "model/dfr.h"
#include "util/error.h"
#include "util/fsutil.h"

static void help(void)
{
    printf("usage: dfrcl train --data DIR -o MODEL.safetensors [options]\n\n"
           "Learns what normal looks like from DIR/train/good (MVTec AD layout): extracts the\n"
           "regional features of every image once, picks the latent size by PCA (90%% of the\n"
           "variance of the first 10 images) unless --latent is given, trains the convolutional\n"
           "autoencoder (Adam, MSE), and sets the anomaly threshold at the pixel score that a\n"
           "fraction --fpr of the training pixels exceed. Writes one model file.\n\noptions:\n"
           "      --data DIR            dataset folder holding train/good (MVTec AD layout)\n"
           "      --train DIR           or: a folder of normal images (custom layout)\n"
           "  -o, --output FILE         model file to write (required)\n"
           "  -e, --epochs N            training epochs (default 150)\n"
           "  -b, --batch N             images per batch (default 4)\n"
           "      --lr X                Adam learning rate (default 1e-4)\n"
           "      --latent auto|N       latent size (default auto: PCA)\n"
           "      --fpr X               expected pixel false-positive rate of the threshold\n"
           "                            on normal images (default 0.005)\n"
           "      --seed N              seed of the initialisation and shuffling (default 0)\n"
           CLI_BACKBONE_HELP "  -h, --help\n");
}

static int n_train_images; /* for images/s while training */

static void on_progress(void *user, const char *phase, int done, int total, double loss)
{
    cli_progress *p = user;
    if (!p->phase || strcmp(p->phase, phase) != 0) {
        if (p->phase) cli_progress_end(p);
        int quiet = p->quiet;
        cli_progress_start(p, phase, total, strcmp(phase, "train") ? "img" : "epochs", quiet);
        p->images_per_unit = strcmp(phase, "train") ? 1 : n_train_images;
    }
    char extra[64] = "";
    if (!strcmp(phase, "train")) snprintf(extra, sizeof extra, "loss %.5g", loss);
    cli_progress_update(p, done, p->images_per_unit, extra[0] ? extra : NULL);
}

int cmd_train(int argc, char **argv)
{
    static const struct option opts[] = {CLI_BACKBONE_LONGOPTS,
                                         {"data", required_argument, 0, 1201},
                                         {"output", required_argument, 0, 'o'},
                                         {"epochs", required_argument, 0, 'e'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"lr", required_argument, 0, 1202},
                                         {"latent", required_argument, 0, 1203},
                                         {"fpr", required_argument, 0, 1204},
                                         {"seed", required_argument, 0, 1205},
                                         {"train", required_argument, 0, 1206},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    cli_backbone_opts bo;
    cli_backbone_defaults(&bo);
    dfr_train_opts to;
    dfr_train_defaults(&to);
    const char *data = NULL, *out_path = NULL, *train_dir = NULL;
    int c, seed = 0;
    while ((c = getopt_long(argc, argv, "d:w:l:s:vqo:e:b:h", opts, NULL)) != -1) {
        int r = cli_backbone_option(&bo, c, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        char *end = NULL;
        switch (c) {
        case 1201: data = optarg; break;
        case 1206: train_dir = optarg; break;
        case 'o': out_path = optarg; break;
        case 'e': if (!cli_int("--epochs", optarg, 1, 1000000, &to.epochs)) return 2; break;
        case 'b': if (!cli_int("--batch", optarg, 1, 4096, &to.batch)) return 2; break;
        case 1205: if (!cli_int("--seed", optarg, 0, 2000000000, &seed)) return 2; to.seed = (uint32_t)seed; break;
        case 1202:
            to.lr = strtof(optarg, &end);
            if (!*optarg || *end || !(to.lr > 0 && to.lr < 10)) {
                fprintf(stderr, "dfrcl: error: --lr expects a number in (0, 10), not '%s'\n", optarg);
                return 2;
            }
            break;
        case 1204:
            to.fpr = strtod(optarg, &end);
            if (!*optarg || *end || !(to.fpr > 0 && to.fpr < 1)) {
                fprintf(stderr, "dfrcl: error: --fpr expects a number in (0, 1), not '%s'\n", optarg);
                return 2;
            }
            break;
        case 1203:
            if (!strcmp(optarg, "auto")) to.latent = 0;
            else if (!cli_int("--latent", optarg, 1, 1 << 20, &to.latent)) return 2;
            break;
        case 'h': help(); return 0;
        default: return 2;
        }
    }
    if (!!data == !!train_dir || !out_path || optind != argc) {
        fprintf(stderr, "dfrcl train: need --data DIR (or --train DIR) and -o MODEL (see --help)\n");
        return 2;
    }
    /* Fail now, not after hours of training, if the model cannot be written there. */
    dfr_atomic_file probe;
    if (dfr_atomic_open(&probe, out_path) != DFRCL_OK) return cli_fail("cannot write the model");
    dfr_atomic_abort(&probe);

    dfr_file_list files = {0};
    if (data ? dfr_list_train_images(data, &files) : dfr_list_images(train_dir, &files))
        return cli_fail(NULL);
    if (files.count == 0) {
        fprintf(stderr, "dfrcl: error: %s: no images (.png, .jpg, .jpeg) in it\n", train_dir);
        return 1;
    }
    if (!data) data = train_dir;
    n_train_images = files.count;
    dfr_runtime *rt = NULL;
    dfr_vgg19 *vgg = NULL;
    dfr_model *m = NULL;
    cli_progress prog = {0};
    prog.quiet = bo.verbosity == 0;
    to.progress = on_progress;
    to.user = &prog;
    double t0 = cli_now();
    int rc = cli_backbone_open(&bo, 0, &rt, &vgg);
    if (!rc) {
        dfr_log(1, "training on %d image(s) of %s at %dx%d, %d layers (C=%d), %d epochs, batch %d",
                files.count, data, bo.size, bo.size, vgg->layers, vgg->channels, to.epochs, to.batch);
        rc = dfr_train(&m, rt, vgg, (const char *const *)files.paths, files.count, bo.size, &to);
        if (prog.phase) cli_progress_end(&prog);
    }
    if (!rc) {
        if (bo.weights) {
            char tmp[4096];
            snprintf(tmp, sizeof tmp, "%s", bo.weights);
            snprintf(m->info.backbone_desc, sizeof m->info.backbone_desc, "file %s", basename(tmp));
        } else snprintf(m->info.backbone_desc, sizeof m->info.backbone_desc, "random seed %d", bo.random_seed);
        rc = dfr_model_save(m, out_path);
    }
    if (!rc)
        printf("wrote %s: %d layers (C=%d), latent %d, size %d, %d epochs, final loss %.6g, "
               "threshold %.6g (fpr %g); %.1f s\n",
               out_path, m->info.layers, m->info.channels, m->info.latent, m->info.size,
               m->info.epochs, m->info.final_loss, m->info.threshold, m->info.fpr, cli_now() - t0);
    int ret = rc ? cli_fail(NULL) : 0;
    dfr_model_free(&m);
    dfr_vgg19_free(&vgg);
    dfr_runtime_close(&rt);
    dfr_file_list_free(&files);
    return ret;
}
