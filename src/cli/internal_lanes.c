/* The CLI helpers over internal structs: see internal_lanes.h. */
#include "cli/internal_lanes.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/outputs.h"
#include "cli/progress.h"
#include "cli/train_opts.h"
#include "eval/published.h"
#include "util/error.h"
#include "util/fsutil.h"

static int check_backbone(const cli_backbone_opts *o, int *layers_out)
{
    if (!o->weights && o->random_seed < 0)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "no backbone weights: give --weights FILE (VGG19 as safetensors, see the "
                         "README) or set DFRCL_WEIGHTS, or --random-backbone SEED to try dfrcl "
                         "without them");
    int layers = o->layers;
    if (o->weights && !layers) {
        int rc = dfr_vgg19_file_layers(o->weights, &layers);
        if (rc) return rc;
        if (layers > 12) layers = 12;
    }
    *layers_out = layers ? layers : 12;
    return DFRCL_OK;
}

static int load_backbone(const cli_backbone_opts *o, int layers, dfr_runtime *rt, dfr_vgg19 **vgg,
                         int note)
{
    if (o->weights) return dfr_vgg19_load(vgg, rt, o->weights, layers);
    int rc = dfr_vgg19_random(vgg, rt, layers, (uint32_t)o->random_seed);
    if (!rc && note)
        dfr_log(1, "using a random backbone (seed %d): its features are not meaningful; real "
                   "use needs pretrained VGG19 weights (--weights)", o->random_seed);
    return rc;
}

/* --precision on a runtime: auto is fp16 on GPUs (its accuracy cost on the shared test sets was
 * below 0.0002; memory and traffic halve) and fp32 on CPUs, where PoCL's half conversions made
 * the convolutions 3.4x slower. */
static void cli_apply_precision(const cli_backbone_opts *o, dfr_runtime *rt)
{
    rt->half = o->half < 0 ? rt->info.is_gpu : o->half;
}

int cli_backbone_open(const cli_backbone_opts *o, int profiling, dfr_runtime **rt, dfr_vgg19 **vgg)
{
    *rt = NULL;
    *vgg = NULL;
    dfr_verbosity = o->verbosity;
    int layers = 0;
    int rc = check_backbone(o, &layers);
    if (!rc) rc = dfr_runtime_open(rt, o->device, NULL, profiling);
    if (rc) return rc;
    cli_apply_precision(o, *rt);
    rc = load_backbone(o, layers, *rt, vgg, 1);
    if (rc) dfr_runtime_close(rt);
    return rc;
}

int cli_lanes_open(const cli_backbone_opts *o, int profiling, cli_lanes *l)
{
    memset(l, 0, sizeof *l);
    l->so.batch = o->batch;
    l->so.threads = o->threads;
    dfr_verbosity = o->verbosity;
    int layers = 0, n = 0;
    dfr_runtime **rts = NULL;
    int rc = check_backbone(o, &layers);
    if (!rc) rc = dfr_runtime_open_list(&rts, &n, o->device, NULL, profiling);
    if (rc) return rc;
    if (n > CLI_MAX_LANES) {
        for (int i = CLI_MAX_LANES; i < n; i++) dfr_runtime_close(&rts[i]);
        dfr_log(1, "warning: using the first %d of %d devices", CLI_MAX_LANES, n);
        n = CLI_MAX_LANES;
    }
    l->k = n;
    for (int i = 0; i < n; i++) l->rt[i] = rts[i];
    free(rts);
    for (int i = 0; i < n; i++) cli_apply_precision(o, l->rt[i]);
    for (int i = 0; i < n && !rc; i++) rc = load_backbone(o, layers, l->rt[i], &l->vgg[i], i == 0);
    if (rc) cli_lanes_close(l);
    return rc;
}

int cli_lanes_load_model(cli_lanes *l, const char *path)
{
    cli_lanes_free_models(l);
    int rc = DFRCL_OK;
    for (int i = 0; i < l->k && !rc; i++) rc = dfr_model_load(&l->m[i], l->rt[i], l->vgg[i], path);
    if (rc) cli_lanes_free_models(l);
    return rc;
}

void cli_lanes_free_models(cli_lanes *l)
{
    for (int i = 0; i < l->k; i++) dfr_model_free(&l->m[i]);
}

void cli_lanes_close(cli_lanes *l)
{
    cli_lanes_free_models(l);
    for (int i = 0; i < l->k; i++) {
        dfr_vgg19_free(&l->vgg[i]);
        dfr_runtime_close(&l->rt[i]);
    }
    l->k = 0;
}

void cli_lanes_names(const cli_lanes *l, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < l->k && used < n - 1; i++) {
        int w = snprintf(buf + used, n - used, "%s[%d] %s", i ? ", " : "", l->rt[i]->info.index,
                         l->rt[i]->info.name);
        if (w < 0) break;
        used += (size_t)w;
    }
}

static void on_progress(void *user, int done, int total)
{
    cli_progress *p = user;
    (void)total;
    cli_progress_update(p, done, 1, NULL);
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

int cli_train_option(dfr_train_opts *o, int opt, const char *arg)
{
    dfrcl_train_options t;
    dfrcl_default_train_options(&t);
    int r = cli_train_parse(&t, opt, arg);
    if (r <= 0) return r;
    switch (opt) { /* the one field the option set */
    case 'e': o->epochs = t.epochs; break;
    case 'b': o->batch = t.batch; break;
    case 1205: o->seed = t.seed; break;
    case 1202: o->lr = t.lr; break;
    case 1204: o->fpr = t.fpr; break;
    case 1203: o->latent = t.latent; break;
    case 1210: o->recipe = t.recipe; break;
    case 1211: o->positions = t.positions; break;
    case 1212: o->patience = t.patience; break;
    case 1213: o->memory = t.memory_mib * 1024.0 * 1024.0; break;
    case 1214: o->store = t.store; break;
    case 1215: o->store_precision = t.store_precision; break;
    case 1216: o->feature_dir = t.feature_dir; break;
    }
    return r;
}
