/* The public evaluation (include/dfrcl.h, 1.1): dfrcl_evaluate over dfr_evaluate on every device
 * of the model's context, the settings and JSON file the command writes, and the published
 * figures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "api_internal.h"
#include "eval/evaluate.h"
#include "eval/published.h"
#include "sched/scorer.h"
#include "util/error.h"
#include "util/fsutil.h"
#include "util/jsonname.h"

#define CHECK_ARG DFRCL_CHECK_ARG

void dfrcl_default_eval_options(dfrcl_eval_options *o)
{
    if (!o) return;
    memset(o, 0, sizeof *o);
    dfrcl_default_score_options(&o->score);
}

int dfrcl_published_find(const char *data, int layers, dfrcl_published *out)
{
    if (out) memset(out, 0, sizeof *out);
    CHECK_ARG(data, "dfrcl_published_find: data is NULL");
    CHECK_ARG(out, "dfrcl_published_find: out is NULL");
    char name[1024];
    snprintf(name, sizeof name, "%s", data);
    size_t n = strlen(name);
    while (n > 1 && name[n - 1] == '/') name[--n] = 0;
    const char *b = strrchr(name, '/');
    const dfr_published *p = dfr_published_find(b ? b + 1 : name, layers);
    if (!p) return 0;
    snprintf(out->category, sizeof out->category, "%s", p->category);
    out->layers = dfr_published_layers(layers);
    out->size = DFR_PUBLISHED_SIZE;
    out->epochs = DFR_PUBLISHED_EPOCHS;
    out->pixel_auroc = p->pixel_auroc;
    out->aupro = p->aupro;
    out->source = dfr_published_source();
    return 1;
}

/* "[0] name, [1] name" of the context's devices, for the report and settings. */
static void device_names(const dfrcl_context *c, int k, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < k && used < n - 1; i++) {
        int w = snprintf(buf + used, n - used, "%s[%d] %s", i ? ", " : "", c->rt[i]->info.index,
                         c->rt[i]->info.name);
        if (w < 0) break;
        used += (size_t)w;
    }
}

/* The settings an evaluation records (report and JSON). */
static cJSON *settings_json(const dfrcl_model *m, const dfrcl_eval_options *o, const char *devs)
{
    const dfr_model_info *in = &m->m[0]->info;
    cJSON *s = cJSON_CreateObject();
    if (!s) return NULL;
    dfr_json_add_name(s, "model", o->model_name ? o->model_name : "");
    dfr_json_add_name(s, "data", o->data ? o->data : "");
    cJSON_AddNumberToObject(s, "size", in->size);
    cJSON_AddNumberToObject(s, "layers", in->layers);
    cJSON_AddNumberToObject(s, "channels", in->channels);
    cJSON_AddNumberToObject(s, "latent", in->latent);
    cJSON_AddNumberToObject(s, "threshold", m->m[0]->threshold);
    cJSON_AddNumberToObject(s, "fpr", in->fpr);
    cJSON_AddNumberToObject(s, "epochs", in->epochs);
    cJSON_AddStringToObject(s, "backbone", in->backbone_desc);
    cJSON_AddStringToObject(s, "device", m->m[0]->rt->info.name);
    if (m->k > 1) cJSON_AddStringToObject(s, "devices", devs);
    cJSON_AddStringToObject(s, "dfrcl_version", DFRCL_VERSION);
    return s;
}

/* The JSON file: metrics, settings (taken) and, for an MVTec AD category, the paper's figures. */
static int write_json(const char *path, const dfrcl_metrics *mt, cJSON *settings,
                      const char *data, int layers)
{
    char *ms = dfr_metrics_json(mt);
    cJSON *root = cJSON_CreateObject();
    if (!ms || !root) {
        free(ms);
        cJSON_Delete(root);
        cJSON_Delete(settings);
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    }
    cJSON_AddItemToObject(root, "metrics", cJSON_Parse(ms));
    cJSON_AddItemToObject(root, "settings", settings);
    dfrcl_published pub;
    if (data && dfrcl_published_find(data, layers, &pub) == 1) {
        cJSON *po = cJSON_AddObjectToObject(root, "published");
        cJSON_AddStringToObject(po, "category", pub.category);
        cJSON_AddNumberToObject(po, "layers", pub.layers);
        cJSON_AddNumberToObject(po, "pixel_auroc", pub.pixel_auroc);
        cJSON_AddNumberToObject(po, "aupro", pub.aupro);
        cJSON_AddStringToObject(po, "source", pub.source);
    }
    char *s = cJSON_Print(root);
    int rc = s ? dfr_write_file_atomic(path, s, strlen(s))
               : dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    free(s);
    free(ms);
    cJSON_Delete(root);
    return rc;
}

/* The caller's progress, which may ask to stop: dfr_evaluate then stops before the next batch. */
typedef struct eval_progress {
    const dfrcl_score_options *so;
    volatile int stop;
} eval_progress;

static void on_eval_progress(void *user, int done, int total)
{
    eval_progress *p = user;
    if (p->so->progress && p->so->progress(p->so->user, done, total)) p->stop = 1;
}

static int check_eval_options(const dfrcl_eval_options *o)
{
#define FN "dfrcl_evaluate: "
    CHECK_ARG(o, FN "o is NULL (dfrcl_default_eval_options, then set data)");
    CHECK_ARG(DFRCL_RESERVED_ZERO(o), FN "o->reserved is not zero: " DFRCL_RESERVED_ADVICE,
              DFRCL_RESERVED_ARGS("dfrcl_default_eval_options"));
    int rc = dfr_api_check_score_options(&o->score, FN "o->score");
    if (rc) return rc;
    CHECK_ARG((o->data && *o->data) || (o->test_dir && *o->test_dir),
              FN "no test set: o->data and o->test_dir are both NULL or empty");
    CHECK_ARG(!o->out_dir || *o->out_dir, FN "o->out_dir is empty (NULL: no files)");
    CHECK_ARG(!o->json_path || *o->json_path, FN "o->json_path is empty (NULL: no JSON)");
    struct stat st;
    if (o->masks_dir && (stat(o->masks_dir, &st) != 0 || !S_ISDIR(st.st_mode)))
        return dfr_error(DFRCL_ERR_IO, "%s: %s (the masks folder); give the folder holding "
                         "<defect>/<stem>_mask.png", o->masks_dir,
                         stat(o->masks_dir, &st) == 0 ? "not a folder" : "no such folder");
    return DFRCL_OK;
#undef FN
}

int dfrcl_evaluate(dfrcl_model *m, const dfrcl_eval_options *o, dfrcl_metrics *out)
{
    if (out) memset(out, 0, sizeof *out);
    CHECK_ARG(m, "dfrcl_evaluate: m is NULL");
    int rc = check_eval_options(o);
    if (rc) return rc;
    if (o->out_dir && dfr_mkdir_p(o->out_dir))
        return dfr_error(DFRCL_ERR_IO, "%s: cannot create the output folder", o->out_dir);
    const dfr_model *dm = m->m[0];
    dfr_test_set ts;
    rc = dfr_test_set_load(dm->rt, o->data, o->test_dir, o->masks_dir, &ts);
    if (rc) return rc;
    const dfrcl_context *ctx = m->bb->ctx;
    char devs[2048], subtitle[4096], title[1024];
    device_names(ctx, m->k, devs, sizeof devs);
    snprintf(subtitle, sizeof subtitle, "model %s · %d layers, latent %d, size %d · backbone %s · %s",
             o->model_name ? o->model_name : "", dm->info.layers, dm->info.latent, dm->info.size,
             dm->info.backbone_desc, m->k > 1 ? devs : dm->rt->info.name);
    snprintf(title, sizeof title, "dfrcl eval: %s", o->data ? o->data : o->test_dir);
    cJSON *settings = settings_json(m, o, devs);
    char *settings_str = settings ? cJSON_Print(settings) : NULL;
    if (!settings_str) rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    eval_progress ep = {&o->score, 0};
    dfr_eval_opts eo = {.out_dir = o->out_dir, .title = o->title ? o->title : title,
                        .subtitle = subtitle, .settings_json = settings_str,
                        .quiet = dm->rt->verbosity == 0, .progress = on_eval_progress,
                        .user = &ep, .stop = &ep.stop, .models = m->m, .n_models = m->k,
                        .sched = {o->score.batch, o->score.threads}};
    dfrcl_metrics mt;
    if (!rc) rc = dfr_evaluate(m->m[0], &ts, &eo, &mt);
    if (rc == DFRCL_ERR_INTERRUPTED && ep.stop)
        rc = dfr_error(rc, "dfrcl_evaluate: stopped by the progress callback; no report or JSON "
                       "written");
    if (!rc && o->json_path) {
        rc = write_json(o->json_path, &mt, settings, o->data, dm->info.layers);
        settings = NULL;
    }
    if (!rc && out) *out = mt;
    cJSON_Delete(settings);
    free(settings_str);
    dfr_test_set_free(&ts);
    return rc;
}
