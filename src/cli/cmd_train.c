#include <cjson/cJSON.h>
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

/* --eval-every: the accuracy curve, one entry per evaluation, rewritten atomically each time. */
typedef struct curve_ctx {
    const char *data;
    cJSON *root, *points;
    const char *path;
} curve_ctx;

static int on_eval(void *user, int epoch, double seconds, dfrcl_model *m)
{
    cli_train_progress *tp = user;
    curve_ctx *c = tp->curve;
    dfrcl_metrics mt;
    dfrcl_eval_options eo; /* metrics only, no progress: a stop request is seen by training */
    dfrcl_default_eval_options(&eo);
    eo.data = c->data;
    int rc = dfrcl_evaluate(m, &eo, &mt);
    if (rc) return rc;
    cli_log(1, "epoch %d, %.1f s of training: pixel AUROC %.4f, image AUROC %.4f, AUPRO %.4f",
            epoch, seconds, mt.pixel_auroc, mt.image_auroc, mt.aupro);
    cJSON *pt = cJSON_CreateObject();
    cJSON_AddNumberToObject(pt, "epoch", epoch);
    cJSON_AddNumberToObject(pt, "train_seconds", seconds);
    cJSON_AddNumberToObject(pt, "pixel_auroc", mt.pixel_auroc);
    cJSON_AddNumberToObject(pt, "image_auroc", mt.image_auroc);
    cJSON_AddNumberToObject(pt, "aupro", mt.aupro);
    cJSON_AddItemToArray(c->points, pt);
    cJSON_DeleteItemFromObject(c->root, "losses");
    cJSON_AddItemToObject(c->root, "losses", cJSON_CreateDoubleArray(tp->losses, tp->n_losses));
    char *txt = cJSON_Print(c->root);
    rc = txt ? dfrcl_write_file(c->path, txt, strlen(txt))
             : cli_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    free(txt);
    return rc;
}

/* About the bytes of the model file (the autoencoder's fp32 weights and biases: 1x1 convolutions
 * C -> (C+2L)/2 -> 2L -> L -> 2L -> (C+2L)/2 -> C), for the room it needs on the disk; with the
 * latent size still unknown (PCA), a tenth of the channels, a typical choice. */
static double model_bytes(int channels, int latent)
{
    if (latent <= 0) latent = channels / 10 > 0 ? channels / 10 : 1;
    double h = (channels + 2 * latent) / 2, dims[7] = {channels, h, 2 * latent, latent,
                                                        2 * latent, h, channels};
    double params = 0;
    for (int l = 0; l < 6; l++) params += dims[l] * dims[l + 1] + 3 * dims[l + 1]; /* + bias, BN */
    return params * sizeof(float);
}

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
           "      --eval-every N        evaluate on the dataset's test set every N epochs (pixel\n"
           "                            and image AUROC, AUPRO) and write the accuracy curve\n"
           "      --curve FILE          where (default MODEL.curve.json)\n"
           CLI_TRAIN_HELP CLI_BACKBONE_HELP "  -h, --help\n");
}

/* Trains on the listed images and writes the model (cmd_train's work after its checks). */
static int train(const cli_backbone_opts *bo, dfrcl_train_options *to, const char *data,
                 const char *train_dir, const char *out_path, const char *ck_path,
                 const char *curve_path, char **files, int n_files)
{
    char ck_default[4096 + 16], curve_default[4096 + 16];
    if (!ck_path) {
        cli_sibling_path(ck_default, sizeof ck_default, out_path, ".checkpoint");
        ck_path = ck_default;
    }
    to->checkpoint = ck_path;
    cli_stop_on_signals(); /* cli_train_progress_cb asks training to stop */
    curve_ctx curve = {0};
    if (to->eval_every) {
        if (!curve_path) {
            cli_sibling_path(curve_default, sizeof curve_default, out_path, ".curve.json");
            curve_path = curve_default;
        }
        char test[4200];
        struct stat st;
        snprintf(test, sizeof test, "%s/test", data ? data : "");
        if (!data) {
            fprintf(stderr, "dfrcl: error: --eval-every needs the dataset's test set: give --data "
                            "DIR (a dataset folder) instead of --train\n");
            return 1;
        }
        if (stat(test, &st) != 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "dfrcl: error: --eval-every needs the dataset's test set: %s: no such "
                            "folder\n", test);
            return 1;
        }
        curve.data = data;
        curve.root = cJSON_CreateObject();
        cJSON_AddStringToObject(curve.root, "data", data);
        cJSON_AddStringToObject(curve.root, "recipe", cli_recipe_name(to->recipe));
        cJSON_AddNumberToObject(curve.root, "train_images", n_files);
        cJSON_AddNumberToObject(curve.root, "batch", to->batch);
        curve.points = cJSON_AddArrayToObject(curve.root, "points");
        curve.path = curve_path;
        to->on_eval = on_eval;
    }
    if (!data) data = train_dir;
    dfrcl_context *ctx = NULL;
    dfrcl_backbone *bb = NULL;
    dfrcl_model *m = NULL;
    dfrcl_model_info info;
    cli_train_progress prog = {0};
    prog.bar.quiet = bo->verbosity == 0;
    prog.train_images = n_files;
    prog.curve = &curve;
    to->on_progress = cli_train_progress_cb;
    to->user = &prog;
    double t0 = cli_now();
    int rc = cli_open(bo, &ctx, &bb);
    if (!rc && cli_probe_file(out_path, model_bytes(dfrcl_backbone_channels(bb), to->latent)))
        rc = cli_error_prefix(DFRCL_ERR_IO, "cannot write the model");
    if (!rc) {
        cli_log(1, "training on %d image(s) of %s at %dx%d, %d layers (C=%d), %s recipe", n_files,
                data, bo->size, bo->size, dfrcl_backbone_layers(bb), dfrcl_backbone_channels(bb),
                cli_recipe_name(to->recipe));
        rc = dfrcl_model_train(&m, bb, (const char *const *)files, n_files, bo->size, to);
        if (prog.bar.phase) cli_progress_end(&prog.bar);
    }
    if (!rc) rc = dfrcl_model_save(m, out_path);
    if (!rc) rc = dfrcl_model_get_info(m, &info);
    if (!rc) remove(ck_path); /* the model is written: nothing left to resume */
    if (!rc)
        printf("wrote %s: %d layers (C=%d), latent %d, size %d, %d epochs, final loss %.6g, "
               "threshold %.6g (fpr %g); %.1f s\n",
               out_path, info.layers, info.channels, info.latent, info.size, info.epochs,
               info.final_loss, info.threshold, info.fpr, cli_now() - t0);
    int ret = rc == DFRCL_ERR_INTERRUPTED ? (cli_fail(NULL), cli_stop_exit_code())
              : rc                        ? cli_fail(NULL)
                                          : 0;
    if (rc == DFRCL_ERR_INTERRUPTED)
        fprintf(stderr, "dfrcl: continue with the same command and --resume\n");
    dfrcl_model_close(&m);
    dfrcl_backbone_close(&bb);
    dfrcl_close(&ctx);
    cJSON_Delete(curve.root);
    return ret;
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
                                         {"eval-every", required_argument, 0, 1209},
                                         {"curve", required_argument, 0, 1217},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    cli_backbone_opts bo;
    cli_backbone_defaults(&bo);
    dfrcl_train_options to;
    dfrcl_default_train_options(&to);
    const char *data = NULL, *out_path = NULL, *train_dir = NULL, *ck_path = NULL,
               *curve_path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "d:w:l:s:vqo:h" CLI_TRAIN_SHORTOPTS, opts, NULL)) != -1) {
        int r = cli_backbone_option(&bo, c, optarg);
        if (!r) r = cli_train_parse(&to, c, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        switch (c) {
        case 1201: data = optarg; break;
        case 1206: train_dir = optarg; break;
        case 1207: ck_path = optarg; break;
        case 1208: to.resume = 1; break;
        case 1209:
            if (!cli_int("--eval-every", optarg, 1, 1000000, &to.eval_every)) return 2;
            break;
        case 1217: curve_path = optarg; break;
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
    if (cli_probe_file(out_path, 0)) return cli_fail("cannot write the model");

    char **files = NULL;
    int n_files = 0;
    if (dfrcl_list_images(data ? data : train_dir, !!data, &files, &n_files)) return cli_fail(NULL);
    if (n_files == 0) {
        fprintf(stderr, "dfrcl: error: %s: no images (.png, .jpg, .jpeg) in it\n", train_dir);
        dfrcl_free_list(files, n_files);
        return 1;
    }
    int ret = train(&bo, &to, data, train_dir, out_path, ck_path, curve_path, files, n_files);
    dfrcl_free_list(files, n_files);
    return ret;
}
