#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/backbone_opts.h"
#include "cli/cli.h"
#include "cli/outputs.h"
#include "cli/progress.h"
#include "cli/train_opts.h"
#include "eval/evaluate.h"
#include "io/dataset.h"
#include "model/cae.h"
#include "model/dfr.h"
#include "util/error.h"
#include "util/fsutil.h"

/* --eval-every: the accuracy curve, one entry per evaluation, rewritten atomically each time. */
typedef struct curve_ctx {
    dfr_test_set ts;
    cJSON *root, *points;
    const char *path;
} curve_ctx;

static int on_eval(void *user, int epoch, double seconds, dfr_model *m)
{
    cli_train_progress *tp = user;
    curve_ctx *c = tp->curve;
    dfr_metrics mt;
    dfr_eval_opts eo = {.quiet = 1};
    int rc = dfr_evaluate(m, &c->ts, &eo, &mt);
    if (rc) return rc;
    dfr_log(1, "epoch %d, %.1f s of training: pixel AUROC %.4f, image AUROC %.4f, AUPRO %.4f",
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
    rc = txt ? dfr_write_file_atomic(c->path, txt, strlen(txt))
             : dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    free(txt);
    return rc;
}

/* About the bytes of the model file (the autoencoder's weights), for the room it needs on the disk;
 * with the latent size still unknown (PCA), a tenth of the channels, a typical choice. */
static double model_bytes(int channels, int latent)
{
    if (latent <= 0) latent = channels / 10 > 0 ? channels / 10 : 1;
    return dfr_cae_device_bytes(channels, latent, 0, 0) / 2;
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
    dfr_train_opts to;
    dfr_train_defaults(&to);
    const char *data = NULL, *out_path = NULL, *train_dir = NULL, *ck_path = NULL,
               *curve_path = NULL;
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
        cli_sibling_path(ck_default, sizeof ck_default, out_path, ".checkpoint");
        ck_path = ck_default;
    }
    to.checkpoint = ck_path;
    to.stop = cli_stop_on_signals();
    curve_ctx curve = {0};
    char curve_default[4096 + 16];
    if (to.eval_every) {
        if (!curve_path) {
            cli_sibling_path(curve_default, sizeof curve_default, out_path, ".curve.json");
            curve_path = curve_default;
        }
        if (dfr_test_set_load(train_dir ? NULL : data, NULL, NULL, &curve.ts))
            return cli_fail("--eval-every needs the dataset's test set");
        curve.root = cJSON_CreateObject();
        cJSON_AddStringToObject(curve.root, "data", data);
        cJSON_AddStringToObject(curve.root, "recipe", dfr_recipe_name(to.recipe));
        cJSON_AddNumberToObject(curve.root, "train_images", files.count);
        cJSON_AddNumberToObject(curve.root, "batch", to.batch);
        curve.points = cJSON_AddArrayToObject(curve.root, "points");
        curve.path = curve_path;
        to.on_eval = on_eval;
    }
    dfr_runtime *rt = NULL;
    dfr_vgg19 *vgg = NULL;
    dfr_model *m = NULL;
    cli_train_progress prog = {0};
    prog.bar.quiet = bo.verbosity == 0;
    prog.train_images = files.count;
    prog.curve = &curve;
    to.progress = cli_train_on_progress;
    to.user = &prog;
    double t0 = cli_now();
    int rc = cli_backbone_open(&bo, 0, &rt, &vgg);
    if (!rc && cli_probe_file(out_path, model_bytes(vgg->channels, to.latent)))
        rc = dfr_error_prefix(DFRCL_ERR_IO, "cannot write the model");
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
    int ret = rc == DFRCL_ERR_INTERRUPTED ? (cli_fail(NULL), cli_stop_exit_code())
              : rc                        ? cli_fail(NULL)
                                          : 0;
    if (rc == DFRCL_ERR_INTERRUPTED)
        fprintf(stderr, "dfrcl: continue with the same command and --resume\n");
    dfr_model_free(&m);
    dfr_vgg19_free(&vgg);
    dfr_runtime_close(&rt);
    dfr_file_list_free(&files);
    if (to.eval_every) dfr_test_set_free(&curve.ts);
    cJSON_Delete(curve.root);
    return ret;
}
