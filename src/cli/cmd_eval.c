#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "backbone_opts.h"
#include "cli.h"
#include "outputs.h"
#include "progress.h"

static void help(void)
{
    printf("usage: dfrcl eval --model MODEL --data DIR [--out DIR] [--json FILE] [options]\n\n"
           "Scores every test image of a dataset (MVTec AD layout: DIR/test/<good|defect>/,\n"
           "masks in DIR/ground_truth/<defect>/<stem>_mask.png or <stem>.png) and prints the\n"
           "field's metrics: pixel AUROC, image AUROC, AUPRO (FPR <= 0.3), best pixel F1, and\n"
           "pixel precision, recall, F1 and IoU at the model's threshold.\n\noptions:\n"
           "  -m, --model FILE          model from 'dfrcl train' (required)\n"
           "      --data DIR            dataset folder\n"
           "      --test DIR            test images folder instead of DIR/test\n"
           "      --masks DIR           ground-truth folder instead of DIR/ground_truth (it\n"
           "                            must exist)\n"
           "      --out DIR             write maps/<defect>/<stem>.npy, overlays/ and report.html\n"
           "      --force               allow --out to be an existing folder (files are replaced)\n"
           "      --json FILE           write every metric and the settings as JSON\n"
           "  -w, --weights FILE / --random-backbone SEED\n"
           "                            the backbone the model was trained with\n"
           "  -d, --device D, -v, -q    as for the other commands\n"
           CLI_SCHED_HELP CLI_PRECISION_HELP
           "  -h, --help\n\n"
           "An unreadable test image or mask stops the evaluation with an error naming it:\n"
           "metrics over part of a test set would look valid but mean something else.\n"
           "The destinations (--out, --json) are checked before the model is run. Ctrl-C or\n"
           "SIGTERM stops before the next image, removes the --out folder this run created,\n"
           "and exits 130 (SIGINT) or 143 (SIGTERM).\n");
}

void cli_print_metrics(const dfrcl_metrics *mt)
{
    const struct { const char *name; double v; } rows[] = {
        {"pixel AUROC", mt->pixel_auroc}, {"image AUROC", mt->image_auroc},
        {"AUPRO (FPR<=0.3)", mt->aupro},  {"best pixel F1", mt->best_f1},
        {"precision @thr", mt->precision}, {"recall @thr", mt->recall},
        {"F1 @thr", mt->f1},               {"IoU @thr", mt->iou},
    };
    printf("%-18s %8s\n", "metric", "value");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        if (rows[i].v == rows[i].v) printf("%-18s %8.4f\n", rows[i].name, rows[i].v);
        else printf("%-18s %8s\n", rows[i].name, "n/a");
    }
    printf("(%d images, %d defective; %lld pixels, %lld defective, %lld regions; threshold %.6g)\n",
           mt->images, mt->defective_images, mt->pixels, mt->defect_pixels, mt->regions,
           mt->threshold);
}

void cli_print_published(const char *data, int layers)
{
    dfrcl_published pub;
    if (data && dfrcl_published_find(data, layers, &pub) == 1)
        printf("published DFR for %s (VGG19 %d layers, %d px, %d epochs): pixel AUROC %.2f, "
               "AUPRO %.2f\n", pub.category, pub.layers, pub.size, pub.epochs, pub.pixel_auroc,
               pub.aupro);
}

int cli_evaluate(dfrcl_model *m, const cli_backbone_opts *bo, const char *data,
                 const char *test_dir, const char *masks_dir, const char *out_dir,
                 const char *json_path, const char *title, const char *model_path,
                 dfrcl_metrics *mt)
{
    dfrcl_eval_options eo;
    dfrcl_default_eval_options(&eo);
    eo.data = data;
    eo.test_dir = test_dir;
    eo.masks_dir = masks_dir;
    eo.out_dir = out_dir;
    eo.json_path = json_path;
    eo.title = title;
    eo.model_name = model_path;
    cli_progress prog;
    cli_progress_start(&prog, "eval", 0, "img", bo->verbosity == 0); /* total: at the first image */
    prog.images_per_unit = 1;
    cli_score_options(bo, &eo.score, &prog);
    int rc = dfrcl_evaluate(m, &eo, mt);
    cli_progress_end(&prog);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {CLI_BACKBONE_LONGOPTS, CLI_SCHED_LONGOPTS,
                                          CLI_PRECISION_LONGOPT,
                                         {"model", required_argument, 0, 'm'},
                                         {"data", required_argument, 0, 1401},
                                         {"test", required_argument, 0, 1402},
                                         {"masks", required_argument, 0, 1403},
                                         {"out", required_argument, 0, 1404},
                                         {"json", required_argument, 0, 1405},
                                         {"force", no_argument, 0, 1406},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    cli_backbone_opts bo;
    cli_backbone_defaults(&bo);
    const char *model_path = NULL, *data = NULL, *test_dir = NULL, *masks_dir = NULL;
    const char *out_dir = NULL, *json_path = NULL;
    int force = 0, c;
    while ((c = getopt_long(argc, argv, "d:w:l:s:vqm:h", opts, NULL)) != -1) {
        int r = cli_backbone_option(&bo, c, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        switch (c) {
        case 'm': model_path = optarg; break;
        case 1401: data = optarg; break;
        case 1402: test_dir = optarg; break;
        case 1403: masks_dir = optarg; break;
        case 1404: out_dir = optarg; break;
        case 1405: json_path = optarg; break;
        case 1406: force = 1; break;
        case 'h': help(); return 0;
        default: return 2;
        }
    }
    if (!model_path || (!data && !test_dir) || optind != argc) {
        fprintf(stderr, "dfrcl eval: need --model MODEL and --data DIR (or --test DIR) (see --help)\n");
        return 2;
    }
    struct stat st;
    if (masks_dir && (stat(masks_dir, &st) != 0 || !S_ISDIR(st.st_mode))) {
        fprintf(stderr, "dfrcl: error: %s: %s (--masks); give the folder holding "
                        "<defect>/<stem>_mask.png\n", masks_dir,
                stat(masks_dir, &st) == 0 ? "not a folder" : "no such folder");
        return 1;
    }
    if (out_dir && stat(out_dir, &st) == 0 && !force) {
        fprintf(stderr, "dfrcl: error: %s already exists; choose another --out or add --force to "
                        "replace its files\n", out_dir);
        return 1;
    }
    /* Fail now, not after scoring every image, if the outputs cannot be written. */
    if (json_path && cli_probe_file(json_path, 0)) return cli_fail("--json");
    int created = 0;
    if (out_dir && cli_prepare_dir(out_dir, &created)) return cli_fail("--out");
    cli_stop_on_signals();
    dfrcl_model_info info;
    if (dfrcl_model_peek(&info, model_path) != DFRCL_OK) {
        if (created) cli_remove_tree(out_dir);
        return cli_fail(NULL);
    }
    bo.layers = info.layers;
    bo.size = info.size;
    dfrcl_context *ctx = NULL;
    dfrcl_backbone *bb = NULL;
    dfrcl_model *m = NULL;
    dfrcl_metrics mt;
    int rc = cli_open(&bo, &ctx, &bb);
    if (!rc) rc = dfrcl_model_load(&m, bb, model_path);
    char title[1024];
    snprintf(title, sizeof title, "dfrcl eval: %s", data ? data : test_dir);
    if (!rc) rc = cli_evaluate(m, &bo, data, test_dir, masks_dir, out_dir, json_path, title,
                               model_path, &mt);
    if (!rc) {
        cli_print_metrics(&mt);
        cli_print_published(data, info.layers);
        if (out_dir) printf("report: %s/report.html\n", out_dir);
        if (json_path) printf("metrics: %s\n", json_path);
    }
    int ret = rc ? cli_fail(NULL) : 0;
    /* A failed or interrupted run leaves no partial --out to block the next one. */
    if (rc && created) cli_remove_tree(out_dir);
    if (rc == DFRCL_ERR_INTERRUPTED) {
        fprintf(stderr, "dfrcl: eval stopped by %s%s%s\n", cli_stop_signal_name(),
                created ? "; removed the partial " : "", created ? out_dir : "");
        ret = cli_stop_exit_code();
    }
    dfrcl_model_close(&m);
    dfrcl_backbone_close(&bb);
    dfrcl_close(&ctx);
    return ret;
}
