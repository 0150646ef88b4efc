#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/backbone_opts.h"
#include "cli/cli.h"
#include "cli/outputs.h"
#include "cli/progress.h"
#include "eval/evaluate.h"
#include "eval/published.h"
#include "util/error.h"
#include "util/fsutil.h"

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

static void on_progress(void *user, int done, int total)
{
    cli_progress *p = user;
    (void)total;
    cli_progress_update(p, done, 1, NULL);
}

void cli_print_metrics(const dfr_metrics *mt)
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

/* The published DFR figures for the dataset's folder name (an MVTec AD category), or NULL. */
static const dfr_published *published_for(const char *data, int layers)
{
    if (!data) return NULL;
    char name[1024];
    snprintf(name, sizeof name, "%s", data);
    size_t n = strlen(name);
    while (n > 1 && name[n - 1] == '/') name[--n] = 0;
    const char *b = strrchr(name, '/');
    return dfr_published_find(b ? b + 1 : name, layers);
}

int cli_eval_model(const cli_lanes *l, const char *data, const char *test_dir, const char *masks_dir,
                   const char *out_dir, const char *json_path, const char *title,
                   const char *model_path, int quiet, dfr_metrics *mt)
{
    dfr_model *m = l->m[0];
    char devices[2048];
    cli_lanes_names(l, devices, sizeof devices);
    dfr_test_set ts;
    int rc = dfr_test_set_load(data, test_dir, masks_dir, &ts);
    if (rc) return rc;
    cJSON *settings = cJSON_CreateObject();
    cli_json_add_name(settings, "model", model_path);
    cli_json_add_name(settings, "data", data ? data : "");
    cJSON_AddNumberToObject(settings, "size", m->info.size);
    cJSON_AddNumberToObject(settings, "layers", m->info.layers);
    cJSON_AddNumberToObject(settings, "channels", m->info.channels);
    cJSON_AddNumberToObject(settings, "latent", m->info.latent);
    cJSON_AddNumberToObject(settings, "threshold", m->info.threshold);
    cJSON_AddNumberToObject(settings, "fpr", m->info.fpr);
    cJSON_AddNumberToObject(settings, "epochs", m->info.epochs);
    cJSON_AddStringToObject(settings, "backbone", m->info.backbone_desc);
    cJSON_AddStringToObject(settings, "device", m->rt->info.name);
    if (l->k > 1) cJSON_AddStringToObject(settings, "devices", devices);
    cJSON_AddStringToObject(settings, "dfrcl_version", DFRCL_VERSION);
    char *settings_str = cJSON_Print(settings);
    char subtitle[4096];
    snprintf(subtitle, sizeof subtitle, "model %s · %d layers, latent %d, size %d · backbone %s · %s",
             model_path, m->info.layers, m->info.latent, m->info.size, m->info.backbone_desc,
             l->k > 1 ? devices : m->rt->info.name);
    cli_progress prog;
    cli_progress_start(&prog, "eval", ts.count, "img", quiet);
    prog.images_per_unit = 1;
    dfr_eval_opts eo = {.out_dir = out_dir, .title = title, .subtitle = subtitle,
                        .settings_json = settings_str, .quiet = quiet,
                        .progress = on_progress, .user = &prog, .stop = cli_stop_flag(),
                        .models = l->m, .n_models = l->k, .sched = l->so};
    rc = dfr_evaluate(m, &ts, &eo, mt);
    cli_progress_end(&prog);
    if (!rc && json_path) {
        char *ms = dfr_metrics_json(mt);
        cJSON *root = cJSON_CreateObject();
        cJSON_AddItemToObject(root, "metrics", cJSON_Parse(ms));
        cJSON_AddItemToObject(root, "settings", settings);
        settings = NULL;
        const dfr_published *pub = published_for(data, m->info.layers);
        if (pub) { /* the dataset's folder is an MVTec AD category: the paper's figures */
            cJSON *po = cJSON_AddObjectToObject(root, "published");
            cJSON_AddStringToObject(po, "category", pub->category);
            cJSON_AddNumberToObject(po, "layers", dfr_published_layers(m->info.layers));
            cJSON_AddNumberToObject(po, "pixel_auroc", pub->pixel_auroc);
            cJSON_AddNumberToObject(po, "aupro", pub->aupro);
            cJSON_AddStringToObject(po, "source", dfr_published_source());
        }
        char *s = cJSON_Print(root);
        rc = s ? dfr_write_file_atomic(json_path, s, strlen(s)) : dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
        free(s);
        free(ms);
        cJSON_Delete(root);
    }
    cJSON_Delete(settings);
    free(settings_str);
    dfr_test_set_free(&ts);
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
    dfr_model_info info;
    if (dfr_model_peek(model_path, &info) != DFRCL_OK) {
        if (created) cli_remove_tree(out_dir);
        return cli_fail(NULL);
    }
    bo.layers = info.layers;
    bo.size = info.size;
    cli_lanes lanes;
    dfr_metrics mt;
    int rc = cli_lanes_open(&bo, 0, &lanes);
    if (!rc) rc = cli_lanes_load_model(&lanes, model_path);
    dfr_model *m = lanes.m[0];
    char title[1024];
    snprintf(title, sizeof title, "dfrcl eval: %s", data ? data : test_dir);
    if (!rc) rc = cli_eval_model(&lanes, data, test_dir, masks_dir, out_dir, json_path, title,
                                 model_path, bo.verbosity == 0, &mt);
    if (!rc) {
        cli_print_metrics(&mt);
        const dfr_published *pub = published_for(data, m->info.layers);
        if (pub)
            printf("published DFR for %s (VGG19 %d layers, %d px, %d epochs): pixel AUROC %.2f, "
                   "AUPRO %.2f\n", pub->category, dfr_published_layers(m->info.layers),
                   DFR_PUBLISHED_SIZE, DFR_PUBLISHED_EPOCHS, pub->pixel_auroc, pub->aupro);
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
    cli_lanes_close(&lanes);
    return ret;
}
