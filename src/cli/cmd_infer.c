#include <cjson/cJSON.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/backbone_opts.h"
#include "cli/cli.h"
#include "cli/progress.h"
#include "io/heatmap.h"
#include "io/image.h"
#include "io/npy.h"
#include "io/prefetch.h"
#include "model/dfr.h"
#include "util/error.h"
#include "util/fsutil.h"

static void help(void)
{
    printf("usage: dfrcl infer --model MODEL [options] IMAGE...\n\n"
           "Scores images with a trained model: prints each image's score (the maximum of its\n"
           "pixel score map) and verdict (anomalous when the score exceeds the model's\n"
           "threshold). Images are resized to the model's size.\n\noptions:\n"
           "  -m, --model FILE          model from 'dfrcl train' (required)\n"
           "      --out DIR             also write, per image, under DIR/<image's folder name>/:\n"
           "                            <stem>.npy (raw S x S float32 score map),\n"
           "                            <stem>_overlay.png (heatmap over the image, defect\n"
           "                            outlines in cyan), <stem>_mask.png (pixels above the\n"
           "                            threshold)\n"
           "      --json                print JSON instead of a table\n"
           "  -w, --weights FILE / --random-backbone SEED\n"
           "                            the backbone the model was trained with\n"
           "  -d, --device D, -v, -q    as for the other commands\n"
           "  -h, --help\n");
}

/* DIR/<parent folder of img>/<stem><suffix> (the parent keeps test/<defect>/000.png apart). */
static int out_path(char *buf, size_t n, const char *dir, const char *img, const char *suffix,
                    int make_dir)
{
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s", img);
    snprintf(b, sizeof b, "%s", img);
    const char *parent = basename(dirname(a));
    char *stem = basename(b), *dot = strrchr(stem, '.');
    if (dot && dot != stem) *dot = 0;
    if (!strcmp(parent, ".") || !strcmp(parent, "/")) parent = "_";
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/%s", dir, parent);
    if (make_dir) {
        int rc = dfr_mkdir_p(sub);
        if (rc) return rc;
    }
    if ((size_t)snprintf(buf, n, "%s/%s%s", sub, stem, suffix) >= n)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "output path too long for %s", img);
    return DFRCL_OK;
}

static int write_outputs(const char *dir, const char *path, const dfrcl_image *img,
                         const float *map, int S, double threshold, cJSON *item)
{
    char p[4400];
    int rc = out_path(p, sizeof p, dir, path, ".npy", 1);
    int64_t shape[2] = {S, S};
    if (!rc) rc = dfr_npy_write_f32(p, 2, shape, map);
    if (!rc && item) cJSON_AddStringToObject(item, "score_map", p);
    dfrcl_image overlay = {0}, mask = {0};
    if (!rc) rc = dfr_anomaly_overlay(img, map, S, S, (float)threshold, &overlay, &mask);
    if (!rc) rc = out_path(p, sizeof p, dir, path, "_overlay.png", 0);
    if (!rc) rc = dfr_png_write(p, overlay.width, overlay.height, overlay.channels, overlay.pixels);
    if (!rc && item) cJSON_AddStringToObject(item, "overlay", p);
    if (!rc) rc = out_path(p, sizeof p, dir, path, "_mask.png", 0);
    if (!rc) rc = dfr_png_write(p, mask.width, mask.height, 1, mask.pixels);
    if (!rc && item) cJSON_AddStringToObject(item, "mask", p);
    dfrcl_image_free(&overlay);
    dfrcl_image_free(&mask);
    return rc;
}

int cmd_infer(int argc, char **argv)
{
    static const struct option opts[] = {CLI_BACKBONE_LONGOPTS,
                                         {"model", required_argument, 0, 'm'},
                                         {"out", required_argument, 0, 1301},
                                         {"json", no_argument, 0, 1302},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    cli_backbone_opts bo;
    cli_backbone_defaults(&bo);
    const char *model_path = NULL, *out_dir = NULL;
    int json = 0, c;
    while ((c = getopt_long(argc, argv, "d:w:l:s:vqm:h", opts, NULL)) != -1) {
        int r = cli_backbone_option(&bo, c, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (c == 'm') model_path = optarg;
        else if (c == 1301) out_dir = optarg;
        else if (c == 1302) json = 1;
        else if (c == 'h') {
            help();
            return 0;
        } else return 2;
    }
    if (!model_path || optind >= argc) {
        fprintf(stderr, "dfrcl infer: need --model MODEL and at least one IMAGE (see --help)\n");
        return 2;
    }
    dfr_model_info info;
    if (dfr_model_peek(model_path, &info) != DFRCL_OK) return cli_fail(NULL);
    if (bo.layers && bo.layers != info.layers) {
        fprintf(stderr, "dfrcl: error: --layers %d, but the model was trained with %d\n", bo.layers,
                info.layers);
        return 2;
    }
    bo.layers = info.layers;
    bo.size = info.size;

    dfr_runtime *rt = NULL;
    dfr_vgg19 *vgg = NULL;
    dfr_model *m = NULL;
    float *map = malloc((size_t)info.size * info.size * sizeof(float));
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "images");
    int rc = map ? cli_backbone_open(&bo, 0, &rt, &vgg) : dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    if (!rc) rc = dfr_model_load(&m, rt, vgg, model_path);
    if (!rc && out_dir) rc = dfr_mkdir_p(out_dir);
    int n = argc - optind, anomalous = 0, failed = 0;
    cli_progress prog;
    cli_progress_start(&prog, "infer", n, "img", bo.verbosity == 0 || !out_dir);
    prog.images_per_unit = 1;
    if (!rc && !json) printf("%-50s %12s  %s\n", "image", "score", "verdict");
    /* Images are decoded on a worker thread, ahead of the device's work. */
    dfr_prefetch *pf = NULL;
    if (!rc) rc = dfr_prefetch_open(&pf, (const char *const *)argv + optind, n, info.size, 2);
    for (int i = 0; i < n && !rc; i++) {
        const char *path = argv[optind + i];
        dfrcl_image img = {0};
        float score = 0;
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "path", path);
        /* An unreadable image is reported and skipped; any other failure stops the run. */
        int r = dfr_prefetch_next(pf, &img, NULL, NULL);
        if (r == DFRCL_ERR_FORMAT || r == DFRCL_ERR_IO) {
            fprintf(stderr, "dfrcl: error: %s\n", dfrcl_last_error());
            cJSON_AddStringToObject(item, "error", dfrcl_last_error());
            failed++;
        } else {
            rc = r;
            if (!rc) rc = dfr_model_score(m, img.pixels, img.channels, map, &score);
            int bad = score > info.threshold;
            size_t above = 0;
            for (size_t k = 0; !rc && k < (size_t)info.size * info.size; k++) above += map[k] > info.threshold;
            if (!rc && out_dir) rc = write_outputs(out_dir, path, &img, map, info.size, info.threshold, item);
            if (!rc) {
                anomalous += bad;
                cJSON_AddNumberToObject(item, "score", score);
                cJSON_AddBoolToObject(item, "anomalous", bad);
                cJSON_AddNumberToObject(item, "anomalous_pixel_fraction",
                                        (double)above / ((double)info.size * info.size));
                if (!json) printf("%-50s %12.6g  %s\n", path, score, bad ? "ANOMALOUS" : "normal");
            }
        }
        cJSON_AddItemToArray(arr, item);
        dfrcl_image_free(&img);
        cli_progress_update(&prog, i + 1, 1, NULL);
    }
    dfr_prefetch_close(&pf);
    cli_progress_end(&prog);
    if (!rc) {
        if (json) {
            cJSON_AddStringToObject(root, "model", model_path);
            cJSON_AddNumberToObject(root, "threshold", info.threshold);
            cJSON_AddNumberToObject(root, "size", info.size);
            cJSON_AddNumberToObject(root, "anomalous", anomalous);
            cJSON_AddNumberToObject(root, "failed", failed);
            char *s = cJSON_Print(root);
            if (s) puts(s);
            free(s);
        } else {
            printf("%d image(s): %d anomalous, %d normal%s (threshold %.6g)\n", n - failed, anomalous,
                   n - failed - anomalous, failed ? ", some unreadable" : "", info.threshold);
            if (out_dir) printf("score maps, overlays and masks in %s/\n", out_dir);
        }
    }
    int ret = rc ? cli_fail(NULL) : failed ? 1 : 0;
    cJSON_Delete(root);
    free(map);
    dfr_model_free(&m);
    dfr_vgg19_free(&vgg);
    dfr_runtime_close(&rt);
    return ret;
}
