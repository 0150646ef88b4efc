#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/backbone_opts.h"
#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/train_opts.h"
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
           "      --checkpoint FILE     training checkpoint, written every 5 minutes and on\n"
           "                            Ctrl-C / SIGTERM (default MODEL.checkpoint; removed once\n"
           "                            the model is written)\n"
           "      --resume              continue from the checkpoint (same data and options)\n"
           CLI_TRAIN_HELP CLI_BACKBONE_HELP "  -h, --help\n");
}

int cmd_train(int argc, char **argv)
{
    static const struct option opts[] = {CLI_BACKBONE_LONGOPTS,
                                         {"data", required_argument, 0, 1201},
                                         {"output", required_argument, 0, 'o'},
                                         CLI_TRAIN_LONGOPTS,
                                         {"train", required_argument, 0, 1206},
                                         {"checkpoint", required_argument, 0, 1207},
                                         {"resume", no_argument, 0, 1208},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    cli_backbone_opts bo;
    cli_backbone_defaults(&bo);
    dfr_train_opts to;
    dfr_train_defaults(&to);
    const char *data = NULL, *out_path = NULL, *train_dir = NULL, *ck_path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "d:w:l:s:vqo:h" CLI_TRAIN_SHORTOPTS, opts, NULL)) != -1) {
        int r = cli_backbone_option(&bo, c, optarg);
        if (!r) r = cli_train_option(&to, c, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        switch (c) {
        case 1201: data = optarg; break;
        case 1206: train_dir = optarg; break;
        case 1207: ck_path = optarg; break;
        case 1208: to.resume = 1; break;
        case 'o': out_path = optarg; break;
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
    char ck_default[4096 + 16];
    if (!ck_path) {
        snprintf(ck_default, sizeof ck_default, "%s.checkpoint", out_path);
        ck_path = ck_default;
    }
    to.checkpoint = ck_path;
    to.stop = cli_stop_on_signals();
    dfr_runtime *rt = NULL;
    dfr_vgg19 *vgg = NULL;
    dfr_model *m = NULL;
    cli_train_progress prog = {0};
    prog.bar.quiet = bo.verbosity == 0;
    prog.train_images = files.count;
    to.progress = cli_train_on_progress;
    to.user = &prog;
    double t0 = cli_now();
    int rc = cli_backbone_open(&bo, 0, &rt, &vgg);
    if (!rc) {
        dfr_log(1, "training on %d image(s) of %s at %dx%d, %d layers (C=%d), %s recipe",
                files.count, data, bo.size, bo.size, vgg->layers, vgg->channels,
                dfr_recipe_name(to.recipe));
        rc = dfr_train(&m, rt, vgg, (const char *const *)files.paths, files.count, bo.size, &to);
        if (prog.bar.phase) cli_progress_end(&prog.bar);
    }
    if (!rc) rc = dfr_model_save(m, out_path);
    if (!rc) remove(ck_path); /* the model is written: nothing left to resume */
    if (!rc)
        printf("wrote %s: %d layers (C=%d), latent %d, size %d, %d epochs, final loss %.6g, "
               "threshold %.6g (fpr %g); %.1f s\n",
               out_path, m->info.layers, m->info.channels, m->info.latent, m->info.size,
               m->info.epochs, m->info.final_loss, m->info.threshold, m->info.fpr, cli_now() - t0);
    int ret = rc == DFRCL_ERR_INTERRUPTED ? (cli_fail(NULL), 130) : rc ? cli_fail(NULL) : 0;
    if (rc == DFRCL_ERR_INTERRUPTED)
        fprintf(stderr, "dfrcl: continue with the same command and --resume\n");
    dfr_model_free(&m);
    dfr_vgg19_free(&vgg);
    dfr_runtime_close(&rt);
    dfr_file_list_free(&files);
    return ret;
}
