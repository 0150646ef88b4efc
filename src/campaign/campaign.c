/* dfrcl_campaign_run: train and evaluate every category of a dataset root into a campaign
 * folder, resumable and optionally one shard of many, ending with the summary. */
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api_internal.h"
#include "campaign/campaign.h"
#include "io/dataset.h"
#include "model/dfr.h"
#include "util/error.h"
#include "util/fsutil.h"

int dfr_campaign_emit(dfrcl_campaign_fn fn, void *user, dfrcl_campaign_event *e)
{
    return fn ? fn(user, e) : 0;
}

void dfr_campaign_warn(dfrcl_campaign_fn fn, void *user, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    dfrcl_campaign_event e = {.kind = DFRCL_CAMPAIGN_WARNING, .message = msg};
    if (fn) fn(user, &e);
    else fprintf(stderr, "dfrcl: warning: %s\n", msg);
}

void dfr_cat_paths(dfr_cat_files *f, const char *out, const char *name)
{
    snprintf(f->dir, sizeof f->dir, "%s/%s", out, name);
    snprintf(f->model, sizeof f->model, "%s/model.safetensors", f->dir);
    snprintf(f->metrics, sizeof f->metrics, "%s/metrics.json", f->dir);
    snprintf(f->eval, sizeof f->eval, "%s/eval", f->dir);
    snprintf(f->ck, sizeof f->ck, "%s/train.checkpoint", f->dir);
    snprintf(f->settings, sizeof f->settings, "%s/settings.json", f->dir);
}

int dfr_path_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static int remove_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    return remove(p), 0;
}

/* A folder and everything in it, links not followed (a stopped category's partial eval/). */
static void remove_tree(const char *dir) { nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- Settings: everything that changes a category's results ---- */

static void fmt_value(char *b, size_t n, const cJSON *v)
{
    if (!v) snprintf(b, n, "(none)");
    else if (cJSON_IsNumber(v)) snprintf(b, n, "%.9g", v->valuedouble);
    else if (cJSON_IsString(v)) snprintf(b, n, "%.20s", v->valuestring);
    else snprintf(b, n, "?");
}

int dfr_settings_diff(const cJSON *old, const cJSON *now, char *diff, size_t n)
{
    const cJSON *v;
    diff[0] = 0;
    cJSON_ArrayForEach(v, now)
    {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(old, v->string);
        if (o && cJSON_Compare(o, v, 1)) continue;
        char a[64], b[64];
        fmt_value(a, sizeof a, o);
        fmt_value(b, sizeof b, v);
        size_t used = strlen(diff);
        snprintf(diff + used, n - used, "%s%s %s -> %s", used ? ", " : "", v->string, a, b);
    }
    return diff[0] == 0;
}

int dfr_settings_same(const char *path, const cJSON *now, char *diff, size_t n)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    diff[0] = 0;
    if (dfr_read_file(path, &buf, &len) != DFRCL_OK) {
        snprintf(diff, n, "no settings.json (made by an older dfrcl?)");
        return 0;
    }
    cJSON *old = cJSON_Parse((const char *)buf);
    free(buf);
    if (!cJSON_IsObject(old)) {
        snprintf(diff, n, "its settings.json is unreadable");
        cJSON_Delete(old);
        return 0;
    }
    int same = dfr_settings_diff(old, now, diff, n);
    cJSON_Delete(old);
    return same;
}

/* The training options as training resolves them (the recipe's values for those left 0). */
static dfrcl_train_options resolved_train(const dfrcl_campaign_options *o)
{
    dfrcl_train_options r = o->train;
    dfr_train_resolve(&r, (o->size / 4) * (o->size / 4));
    return r;
}

/* The settings.json of every category of this campaign. */
static cJSON *run_settings(const dfrcl_backbone *bb, const dfrcl_campaign_options *o)
{
    dfrcl_train_options r = resolved_train(o);
    cJSON *s = cJSON_CreateObject();
    cJSON_AddNumberToObject(s, "size", o->size);
    cJSON_AddNumberToObject(s, "layers", bb->vgg[0]->layers);
    cJSON_AddStringToObject(s, "backbone", bb->vgg[0]->identity);
    cJSON_AddStringToObject(s, "recipe", dfr_recipe_name(r.recipe));
    cJSON_AddNumberToObject(s, "epochs", r.epochs);
    cJSON_AddNumberToObject(s, "lr", r.lr);
    cJSON_AddNumberToObject(s, "batch", r.batch);
    cJSON_AddNumberToObject(s, "positions", r.positions);
    cJSON_AddNumberToObject(s, "patience", r.patience);
    cJSON_AddNumberToObject(s, "latent", r.latent);
    cJSON_AddNumberToObject(s, "fpr", r.fpr);
    cJSON_AddNumberToObject(s, "seed", r.seed);
    cJSON_AddNumberToObject(s, "precision", r.store_precision);
    return s;
}

/* ---- Categories ---- */

static int has_train(const char *dir)
{
    char p[8192];
    struct stat st;
    if ((size_t)snprintf(p, sizeof p, "%s/train/good", dir) >= sizeof p) return 0;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int in_list(const char *list, const char *name)
{
    if (!list) return 1;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, name, n)) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

/* A campaign in progress. */
typedef struct campaign {
    dfrcl_backbone *bb;
    const dfrcl_campaign_options *o;
    char *names[DFR_CAMPAIGN_MAX_CATEGORIES], *dirs[DFR_CAMPAIGN_MAX_CATEGORIES];
    int n, own;
    dfr_cat_result *res;
    int *done; /* per category: ended (for the shard record) */
    cJSON *settings;
    char *settings_txt;
    int reason;
    /* the category running, for its events */
    const char *cat, *cat_dir;
    int k;
} campaign;

static char *dup_str(const char *s)
{
    char *d = malloc(strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

/* The categories: the root itself, or its sub-folders holding train/good (sorted), those of
 * the list when there is one; every listed one must exist. */
static int find_categories(campaign *c)
{
    const char *root = c->o->root, *cats = c->o->categories;
    if (has_train(root)) {
        const char *b = strrchr(root, '/');
        c->names[0] = dup_str(b && b[1] ? b + 1 : root);
        c->dirs[0] = dup_str(root);
        c->n = 1;
    } else {
        DIR *d = opendir(root);
        if (!d) return dfr_error(DFRCL_ERR_IO, "%s: cannot open the dataset root", root);
        struct dirent *e;
        char *found[DFR_CAMPAIGN_MAX_CATEGORIES];
        int nf = 0;
        while ((e = readdir(d)) && nf < DFR_CAMPAIGN_MAX_CATEGORIES) {
            if (e->d_name[0] == '.') continue;
            char p[4200];
            snprintf(p, sizeof p, "%s/%s", root, e->d_name);
            if (has_train(p)) found[nf++] = dup_str(e->d_name);
        }
        closedir(d);
        qsort(found, (size_t)nf, sizeof found[0], cmp_str);
        for (int i = 0; i < nf; i++) {
            if (found[i] && in_list(cats, found[i])) {
                char p[4200];
                snprintf(p, sizeof p, "%s/%s", root, found[i]);
                c->names[c->n] = found[i];
                c->dirs[c->n++] = dup_str(p);
            } else free(found[i]);
        }
    }
    for (int i = 0; i < c->n; i++)
        if (!c->names[i] || !c->dirs[i]) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    if (c->n == 0) {
        c->reason = DFRCL_CAMPAIGN_NO_CATEGORIES;
        return dfr_error(DFRCL_ERR_IO, "%s has no categories (folders holding train/good%s)", root,
                         cats ? " among the categories asked for" : "");
    }
    for (const char *p = cats; p && *p;) { /* every category asked for must exist */
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int ok = 0;
        for (int i = 0; i < c->n; i++) ok |= strlen(c->names[i]) == len && !strncmp(c->names[i], p, len);
        if (!ok) {
            c->reason = DFRCL_CAMPAIGN_UNKNOWN_CATEGORY;
            return dfr_error(DFRCL_ERR_IO, "category '%.*s' not found in %s", (int)len, p, root);
        }
        if (!e) break;
        p = e + 1;
    }
    return DFRCL_OK;
}

static int mine(const campaign *c, int k)
{
    return dfr_shard_mine(c->o->shard_index, c->o->shard_count, k);
}

/* Before any work: categories whose earlier results were made with other settings. Without
 * force that refuses the run, naming them; with it, their results are removed and redone. */
static int check_settings(campaign *c)
{
    int bad = 0;
    char first[1400] = "";
    for (int i = 0; i < c->n; i++) {
        if (!mine(c, i)) continue;
        dfr_cat_files f;
        dfr_cat_paths(&f, c->o->out, c->names[i]);
        char diff[1024];
        if (!dfr_path_exists(f.model) && !dfr_path_exists(f.metrics) && !dfr_path_exists(f.ck)) continue;
        if (dfr_settings_same(f.settings, c->settings, diff, sizeof diff)) continue;
        if (!bad++) snprintf(first, sizeof first, "%s: %s", c->names[i], diff);
        dfrcl_campaign_event e = {.kind = DFRCL_CAMPAIGN_OTHER_SETTINGS, .category = c->names[i],
                                  .dir = f.dir, .message = diff};
        dfr_campaign_emit(c->o->on_event, c->o->user, &e);
        if (!c->o->force) continue;
        remove(f.model), remove(f.metrics), remove(f.ck), remove(f.settings);
        remove_tree(f.eval);
    }
    if (bad && !c->o->force) {
        c->reason = DFRCL_CAMPAIGN_SETTINGS_DIFFER;
        return dfr_error(DFRCL_ERR_MISMATCH, "%d categor%s of %s hold%s results of other settings "
                         "(%s%s)", bad, bad == 1 ? "y" : "ies", c->o->out, bad == 1 ? "s" : "",
                         first, bad > 1 ? "; ..." : "");
    }
    return DFRCL_OK;
}

/* ---- One category ---- */

static int on_train_progress(void *user, const char *phase, int done, int total, double loss)
{
    campaign *c = user;
    dfrcl_campaign_event e = {.kind = DFRCL_CAMPAIGN_PROGRESS, .category = c->cat,
                              .dir = c->cat_dir, .index = c->k, .count = c->own,
                              .shard_index = c->o->shard_index, .shard_count = c->o->shard_count,
                              .phase = phase, .done = done, .total = total, .loss = loss};
    return dfr_campaign_emit(c->o->on_event, c->o->user, &e);
}

static int on_eval_progress(void *user, int done, int total)
{
    return on_train_progress(user, "eval", done, total, 0);
}

static int emit_cat(campaign *c, int kind, const char *msg, const dfrcl_metrics *mt, double s)
{
    dfrcl_campaign_event e = {.kind = kind, .category = c->cat, .dir = c->cat_dir,
                              .index = c->k, .count = c->own,
                              .shard_index = c->o->shard_index, .shard_count = c->o->shard_count,
                              .message = msg, .metrics = mt, .seconds = s};
    return dfr_campaign_emit(c->o->on_event, c->o->user, &e);
}

/* Trains category i when it has no model yet (resuming its checkpoint), evaluates the model
 * into its folder and fills res[i]. */
static int run_category(campaign *c, int i, const dfr_cat_files *f)
{
    dfr_cat_result *r = &c->res[i];
    int have_model = dfr_path_exists(f->model); /* with check_settings: made with these settings */
    if (emit_cat(c, have_model ? DFRCL_CAMPAIGN_EVALUATING : DFRCL_CAMPAIGN_TRAINING, NULL, NULL, 0))
        return dfr_error(DFRCL_ERR_INTERRUPTED, "stopped before %s", c->names[i]);
    double t0 = now_s();
    dfr_file_list files = {0};
    dfrcl_model *m = NULL;
    dfrcl_metrics mt;
    int rc = dfr_mkdir_p(f->eval);
    /* The settings go first: a checkpoint or model found later was made with them. */
    if (!rc) rc = dfr_write_file_atomic(f->settings, c->settings_txt, strlen(c->settings_txt));
    if (!rc && !have_model) rc = dfr_list_train_images(c->dirs[i], &files);
    if (!rc && !have_model) {
        dfrcl_train_options to = c->o->train;
        to.checkpoint = f->ck;
        to.resume = 1;
        to.on_progress = on_train_progress;
        to.user = c;
        rc = dfrcl_model_train(&m, c->bb, (const char *const *)files.paths, files.count,
                               c->o->size, &to);
        if (!rc) rc = dfrcl_model_save(m, f->model);
        if (!rc) remove(f->ck);
        dfrcl_model_close(&m);
    }
    /* Evaluated as loaded from its file (on every device of the context), as a resumed run does. */
    if (!rc) rc = dfrcl_model_load(&m, c->bb, f->model);
    if (!rc) {
        char title[512];
        snprintf(title, sizeof title, "dfrcl run: %s", c->names[i]);
        dfrcl_eval_options eo;
        dfrcl_default_eval_options(&eo);
        eo.data = c->dirs[i];
        eo.out_dir = f->eval;
        eo.json_path = f->metrics;
        eo.title = title;
        eo.model_name = f->model;
        eo.score = c->o->score;
        eo.score.progress = on_eval_progress;
        eo.score.user = c;
        rc = dfrcl_evaluate(m, &eo, &mt);
        if (rc == DFRCL_ERR_INTERRUPTED) remove_tree(f->eval); /* stopped evaluating */
    }
    dfrcl_model_close(&m);
    dfr_file_list_free(&files);
    if (!rc) {
        /* As metrics.json holds them (its numbers may round the last bit), so this summary
         * equals a resumed run's and a merge of shards'. */
        if (dfr_campaign_read_metrics(f->metrics, r) != DFRCL_OK) {
            r->pixel_auroc = mt.pixel_auroc;
            r->image_auroc = mt.image_auroc;
            r->aupro = mt.aupro;
            r->f1 = mt.f1;
        }
        r->seconds = now_s() - t0;
        emit_cat(c, DFRCL_CAMPAIGN_DONE, NULL, &mt, r->seconds);
    } else if (rc == DFRCL_ERR_FORMAT || rc == DFRCL_ERR_IO) {
        /* A broken category is reported and the campaign goes on. */
        emit_cat(c, DFRCL_CAMPAIGN_FAILED, dfrcl_last_error(), NULL, 0);
        r->failed = 1;
        rc = DFRCL_OK;
    }
    return rc;
}

/* Every category of this run (or shard) in turn; a shard's record is rewritten before each. */
static int run_categories(campaign *c, int recorded)
{
    const dfrcl_campaign_options *o = c->o;
    int rc = DFRCL_OK;
    for (int i = 0, k = 0; i < c->n && !rc; i++) {
        if (!mine(c, i)) continue;
        k++; /* the category's number among this run's (or shard's) own */
        if (recorded && k > 1)
            rc = dfr_shard_record_write(o->out, o->shard_index, o->shard_count, c->settings,
                                        c->names, c->n, c->res, c->done, 0);
        if (rc) break;
        dfr_cat_files f;
        dfr_cat_paths(&f, o->out, c->names[i]);
        c->cat = c->names[i], c->cat_dir = f.dir, c->k = k;
        dfr_cat_result *r = &c->res[i];
        if (dfr_path_exists(f.model) && dfr_path_exists(f.metrics) &&
            dfr_campaign_read_metrics(f.metrics, r) == DFRCL_OK) {
            r->skipped = c->done[i] = 1;
            if (emit_cat(c, DFRCL_CAMPAIGN_SKIPPED, NULL, NULL, 0))
                rc = dfr_error(DFRCL_ERR_INTERRUPTED, "stopped after %s", c->names[i]);
            continue;
        }
        rc = run_category(c, i, &f);
        c->done[i] = !rc;
    }
    c->cat = c->cat_dir = NULL;
    return rc;
}

/* ---- The entry points ---- */

void dfrcl_default_campaign_options(dfrcl_campaign_options *o)
{
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = 256;
    dfrcl_default_train_options(&o->train);
    dfrcl_default_score_options(&o->score);
}

static int check_options(const dfrcl_campaign_options *o)
{
#define FN "dfrcl_campaign_run: "
    DFRCL_CHECK_ARG(DFRCL_RESERVED_ZERO(o), FN "o->reserved is not zero: " DFRCL_RESERVED_ADVICE,
                    DFRCL_RESERVED_ARGS("dfrcl_default_campaign_options"));
    DFRCL_CHECK_ARG(o->root && *o->root, FN "o->root (the dataset root) is not set");
    DFRCL_CHECK_ARG(o->out && *o->out, FN "o->out (the campaign folder) is not set");
    DFRCL_CHECK_ARG(o->shard_count >= 0 && o->shard_count <= 1000000,
                    FN "o->shard_count is %d (0: not sharded)", o->shard_count);
    if (o->shard_count) {
        int rc = dfr_shard_check(o->shard_index, o->shard_count, "dfrcl_campaign_run");
        if (rc) return rc;
    } else
        DFRCL_CHECK_ARG(o->shard_index == 0, FN "o->shard_index is %d without a shard_count",
                        o->shard_index);
    DFRCL_CHECK_ARG(o->size >= 4 && o->size <= 8192 && o->size % 4 == 0,
                    FN "o->size is %d, not a multiple of 4 in 4..8192", o->size);
    DFRCL_CHECK_ARG(!o->train.checkpoint && !o->train.resume && !o->train.progress &&
                        !o->train.on_progress && !o->train.on_eval && !o->train.eval_every,
                    FN "o->train sets a checkpoint, resume, progress or on_eval: the campaign "
                       "keeps a checkpoint per category and reports progress to o->on_event");
    DFRCL_CHECK_ARG(!o->score.progress, FN "o->score.progress is set: the campaign reports "
                                           "evaluation's progress to o->on_event");
    return dfr_api_check_score_options(&o->score, "dfrcl_campaign_run: o->score");
#undef FN
}

static void campaign_free(campaign *c)
{
    for (int i = 0; i < c->n; i++) free(c->names[i]), free(c->dirs[i]);
    free(c->res);
    free(c->done);
    cJSON_Delete(c->settings);
    free(c->settings_txt);
}

static void fill_result(const campaign *c, dfrcl_campaign_result *res)
{
    res->categories = c->n;
    res->own = c->own;
    res->reason = c->reason;
    res->shard_count = c->o->shard_count;
    for (int i = 0; c->res && i < c->n; i++) {
        if (!mine(c, i) || !c->done[i]) continue;
        res->failed += c->res[i].failed;
        res->skipped += c->res[i].skipped;
        res->ran += !c->res[i].failed && !c->res[i].skipped;
    }
}

int dfrcl_campaign_run(dfrcl_backbone *bb, const dfrcl_campaign_options *o,
                       dfrcl_campaign_result *res)
{
    if (res) memset(res, 0, sizeof *res);
    DFRCL_CHECK_ARG(bb, "dfrcl_campaign_run: bb is NULL");
    DFRCL_CHECK_ARG(o, "dfrcl_campaign_run: o is NULL");
    int rc = check_options(o);
    if (rc) return rc;
    campaign c = {.bb = bb, .o = o};
    int lock_fd = -1, shard_fd = -1, recorded = 0, sharded = o->shard_count > 0;
    rc = find_categories(&c);
    if (!rc) {
        for (int i = 0; i < c.n; i++) c.own += mine(&c, i);
        c.res = calloc((size_t)c.n, sizeof *c.res);
        c.done = calloc((size_t)c.n, sizeof *c.done);
        c.settings = run_settings(bb, o);
        c.settings_txt = c.settings ? cJSON_Print(c.settings) : NULL;
        for (int i = 0; c.res && i < c.n; i++) snprintf(c.res[i].name, sizeof c.res[i].name, "%s", c.names[i]);
        rc = c.res && c.done && c.settings_txt ? dfr_mkdir_p(o->out)
                                               : dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    }
    if (!rc) rc = dfr_campaign_lock(o->out, sharded, &lock_fd, &c.reason, o->on_event, o->user);
    if (!rc && sharded)
        rc = dfr_campaign_lock_shard(o->out, o->shard_index, o->shard_count, &shard_fd, &c.reason,
                                     o->on_event, o->user);
    if (!rc) rc = check_settings(&c);
    if (!rc) {
        dfrcl_campaign_event e = {.kind = DFRCL_CAMPAIGN_START, .count = c.n, .total_own = c.own,
                                  .shard_index = o->shard_index, .shard_count = o->shard_count};
        if (dfr_campaign_emit(o->on_event, o->user, &e))
            rc = dfr_error(DFRCL_ERR_INTERRUPTED, "stopped before the first category");
    }
    if (!rc && sharded) {
        rc = dfr_shard_record_write(o->out, o->shard_index, o->shard_count, c.settings, c.names,
                                    c.n, c.res, c.done, 0);
        recorded = !rc;
    }
    if (!rc) rc = run_categories(&c, recorded);
    if (recorded) { /* a shard ends with its record, complete unless stopped by an error */
        int wr = dfr_shard_record_write(o->out, o->shard_index, o->shard_count, c.settings,
                                        c.names, c.n, c.res, c.done, !rc);
        if (!rc) rc = wr;
    }
    if (!rc && !sharded) {
        dfrcl_train_options r = resolved_train(o);
        dfr_run_setting rs = {bb->vgg[0]->layers, o->size, r.epochs};
        rc = dfr_campaign_write_summary(o->out, c.res, c.n, rs, o->on_event, o->user);
    }
    if (res) fill_result(&c, res);
    if (shard_fd >= 0) close(shard_fd);
    if (lock_fd >= 0) close(lock_fd);
    campaign_free(&c);
    return rc;
}
