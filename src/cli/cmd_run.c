/* dfrcl run: an evaluation campaign — train and evaluate every category of a dataset root,
 * resumable, ending with a summary table, JSON and CSV. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/backbone_opts.h"
#include "cli/cli.h"
#include "cli/internal_lanes.h"
#include "cli/outputs.h"
#include "cli/progress.h"
#include "cli/train_opts.h"
#include "eval/published.h"
#include "eval/report.h"
#include "io/dataset.h"
#include "model/dfr.h"
#include "util/error.h"
#include "util/fsutil.h"

#define MAX_CATEGORIES 256

/* Shard i of n (1-based; n == 0: not sharded) takes the categories whose index (in sorted order)
 * is i - 1 modulo n. */
typedef struct shard_spec {
    int i, n;
} shard_spec;

static int mine(const shard_spec *sh, int k) { return sh->n == 0 || k % sh->n == sh->i - 1; }

typedef struct cat_result {
    char name[256];
    double pixel_auroc, image_auroc, aupro, f1;
    double seconds;
    int skipped, failed;
} cat_result;

static void help(void)
{
    printf("usage: dfrcl run --data ROOT --out DIR [--categories a,b] [--shard I/N] [options]\n"
           "       dfrcl run --merge DIR\n\n"
           "Trains and evaluates every category of a dataset root (folders holding train/good,\n"
           "as in MVTec AD; ROOT itself if it holds train/good). Per category it writes\n"
           "DIR/<category>/model.safetensors, metrics.json and eval/ (maps, overlays,\n"
           "report.html). Resumable: a category with a model and metrics is skipped, and one\n"
           "stopped while training (Ctrl-C, SIGTERM) continues from its checkpoint,\n"
           "DIR/<category>/train.checkpoint. Ends with a summary table (per category and\n"
           "mean), DIR/summary.html, .json and .csv, beside the published DFR figures for\n"
           "MVTec AD categories (by folder name).\n\n"
           "Each category's settings (size, layers, backbone, recipe, epochs, lr, batch,\n"
           "positions, patience, latent, fpr, seed, precision) are kept in\n"
           "DIR/<category>/settings.json: a rerun with other settings refuses, naming what\n"
           "changed, unless --force, which redoes those categories. One run at a time per\n"
           "DIR: a second one is refused (lock file DIR/dfrcl-run.lock). Ctrl-C or SIGTERM\n"
           "stops at a safe point (a training checkpoint, or before the next test image),\n"
           "removes the stopped category's partial eval/ and exits 130 (SIGINT) or 143\n"
           "(SIGTERM); the same command continues.\n\n"
           "On a cluster, a job array splits the campaign: --shard I/N runs categories I, I+N,\n"
           "I+2N.. (in sorted order, from 1) and records them in DIR/shards/I-of-N.json\n"
           "instead of writing the summary; shards run at once into one shared DIR (each\n"
           "locks DIR/shards/I-of-N.lock and shares DIR/dfrcl-run.lock). --shard auto takes\n"
           "I and N from a Slurm array (SLURM_ARRAY_TASK_ID, _MIN, _COUNT) or a Kubernetes\n"
           "Indexed Job (JOB_COMPLETION_INDEX, from 0, and DFRCL_SHARD_COUNT). Once every\n"
           "shard is done, --merge DIR writes the summary, as one unsharded run would; it\n"
           "refuses missing shards or categories and shards run with other settings.\n\n"
           "options:\n"
           "      --data ROOT           dataset root (required)\n"
           "      --out DIR             campaign folder (required)\n"
           "      --categories a,b      only these categories\n"
           "      --force               redo categories done with other settings\n"
           "      --shard I/N|auto      run only shard I of N (see above)\n"
           "      --merge DIR           write the summary of DIR's finished shards\n"
           CLI_TRAIN_HELP
           "                            (fp16 also stores evaluation's activations and features\n"
           "                            as fp16, as --precision fp16 does for eval)\n"
           CLI_BACKBONE_HELP
           "  -d, --device LIST         also 'all' or '0,2': each category trains on the first\n"
           "                            device, and its evaluation spreads the test images over\n"
           "                            all of them\n"
           "      --score-batch N       images per launch when evaluating (default: from the\n"
           "                            device's memory)\n"
           "      --threads N           image decoding threads (default: one per core)\n"
           "  -h, --help\n");
}

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

static double json_num(cJSON *o, const char *k)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Reads the metrics of a finished category (its metrics.json). */
static int read_metrics(const char *path, cat_result *r)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc = dfr_read_file(path, &buf, &len);
    if (rc) return rc;
    cJSON *root = cJSON_Parse((const char *)buf);
    free(buf);
    cJSON *m = root ? cJSON_GetObjectItemCaseSensitive(root, "metrics") : NULL;
    if (!m) {
        cJSON_Delete(root);
        return dfr_error(DFRCL_ERR_FORMAT, "%s: not a dfrcl metrics file", path);
    }
    r->pixel_auroc = json_num(m, "pixel_auroc");
    r->image_auroc = json_num(m, "image_auroc");
    r->aupro = json_num(m, "aupro");
    r->f1 = json_num(m, "f1");
    cJSON_Delete(root);
    return DFRCL_OK;
}

static void fmt(char *b, size_t n, double v)
{
    if (isfinite(v)) snprintf(b, n, "%.4f", v);
    else snprintf(b, n, "n/a");
}

/* What the campaign ran with, to say how far it is from the published setting. */
typedef struct run_setting {
    int layers, size, epochs;
} run_setting;

static void fmt_paper(char *b, size_t n, const dfr_published *p, int aupro)
{
    if (p) snprintf(b, n, "%.2f", aupro ? p->aupro : p->pixel_auroc);
    else snprintf(b, n, "-");
}

static void add_num_or_null(cJSON *o, const char *k, double v)
{
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

/* A folder name as a relative URL path: bytes other than unreserved ones percent-encoded (a
 * category named "a#b" must not become a fragment). */
static void url_path(char *out, size_t n, const char *name)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && o + 4 < n; p++) {
        if (isalnum(*p) || strchr("-._~", *p)) out[o++] = (char)*p;
        else o += (size_t)snprintf(out + o, n - o, "%%%02X", *p);
    }
    out[o] = 0;
}

/* Everything the summary shows, computed once for the table, the page and the files. */
typedef struct summary {
    const cat_result *r;
    int n;
    run_setting rs;
    const dfr_published *pub[MAX_CATEGORIES]; /* the paper's figures per category, or NULL */
    double mean[4];  /* ours, over the categories that ran */
    double smean[4]; /* ours, over those of them the paper reports */
    double pmean[2]; /* the paper's, over the same */
    int nok, pcnt, all_reported, paper_layers;
    char notes[3][512];
    int n_notes;
} summary;

/* A category's four metrics (pixel AUROC, image AUROC, AUPRO, F1 at threshold); NaN if failed. */
static void cat_values(const cat_result *r, double v[4])
{
    v[0] = r->failed ? NAN : r->pixel_auroc;
    v[1] = r->failed ? NAN : r->image_auroc;
    v[2] = r->failed ? NAN : r->aupro;
    v[3] = r->failed ? NAN : r->f1;
}

static void summarize(summary *s, const cat_result *r, int n, run_setting rs)
{
    memset(s, 0, sizeof *s);
    s->r = r;
    s->n = n;
    s->rs = rs;
    double sum[4] = {0}, ssum[4] = {0}, psum[2] = {0};
    int cnt[4] = {0}, scnt[4] = {0};
    for (int i = 0; i < n; i++) {
        s->pub[i] = dfr_published_find(r[i].name, rs.layers);
        if (r[i].failed) continue;
        s->nok++;
        double v[4];
        cat_values(&r[i], v);
        for (int k = 0; k < 4; k++)
            if (isfinite(v[k])) sum[k] += v[k], cnt[k]++;
        if (!s->pub[i]) continue;
        psum[0] += s->pub[i]->pixel_auroc, psum[1] += s->pub[i]->aupro, s->pcnt++;
        for (int k = 0; k < 4; k++)
            if (isfinite(v[k])) ssum[k] += v[k], scnt[k]++;
    }
    for (int k = 0; k < 4; k++) s->mean[k] = cnt[k] ? sum[k] / cnt[k] : NAN;
    for (int k = 0; k < 4; k++) s->smean[k] = scnt[k] ? ssum[k] / scnt[k] : NAN;
    for (int k = 0; k < 2; k++) s->pmean[k] = s->pcnt ? psum[k] / s->pcnt : NAN;
    s->all_reported = s->pcnt > 0 && s->pcnt == s->nok;
    s->paper_layers = dfr_published_layers(rs.layers);

    size_t nn = sizeof s->notes[0];
    if (s->pcnt) {
        snprintf(s->notes[s->n_notes++], nn, "paper: DFR as published, VGG19 %d layers, %d px, %d epochs (%s)",
                 s->paper_layers, DFR_PUBLISHED_SIZE, DFR_PUBLISHED_EPOCHS, dfr_published_source());
        if (!s->all_reported)
            snprintf(s->notes[s->n_notes++], nn,
                     "paper: it reports %d of these %d categories; \"mean, paper's ones\" compares "
                     "over those", s->pcnt, s->nok);
        if (rs.layers != s->paper_layers || rs.size != DFR_PUBLISHED_SIZE || rs.epochs != DFR_PUBLISHED_EPOCHS)
            snprintf(s->notes[s->n_notes++], nn,
                     "note: this run used %d layers, %d px, %d epoch%s: the comparison is "
                     "indicative only", rs.layers, rs.size, rs.epochs, rs.epochs == 1 ? "" : "s");
    } else {
        snprintf(s->notes[s->n_notes++], nn,
                 "paper: no published DFR figures for these categories (the paper reports MVTec "
                 "AD's 15)");
    }
}

static void print_row(const char *label, const double v[4], const char *pa, const char *pc,
                      const char *t)
{
    char f[4][16];
    for (int k = 0; k < 4; k++) fmt(f[k], sizeof f[k], v[k]);
    printf("%-20s %12s %6s %12s %10s %6s %9s %9s\n", label, f[0], pa, f[1], f[2], pc, f[3], t);
}

static void print_summary(const summary *s)
{
    printf("\n%-20s %12s %6s %12s %10s %6s %9s %9s\n", "category", "pixel AUROC", "paper",
           "image AUROC", "AUPRO", "paper", "F1@thr", "time s");
    for (int i = 0; i < s->n; i++) {
        const cat_result *r = &s->r[i];
        if (r->failed) {
            printf("%-20s %12s\n", r->name, "FAILED");
            continue;
        }
        double v[4];
        char pa[16], pc[16], t[16] = "(done)";
        cat_values(r, v);
        fmt_paper(pa, sizeof pa, s->pub[i], 0);
        fmt_paper(pc, sizeof pc, s->pub[i], 1);
        if (!r->skipped) snprintf(t, sizeof t, "%.0f", r->seconds);
        print_row(r->name, v, pa, pc, t);
    }
    char pa[16] = "-", pc[16] = "-";
    if (s->pcnt) snprintf(pa, sizeof pa, "%.3f", s->pmean[0]), snprintf(pc, sizeof pc, "%.3f", s->pmean[1]);
    print_row("mean", s->mean, s->all_reported ? pa : "-", s->all_reported ? pc : "-", "");
    if (s->pcnt && !s->all_reported) print_row("mean, paper's ones", s->smean, pa, pc, "");
    for (int k = 0; k < s->n_notes; k++) printf("%s\n", s->notes[k]);
}

/* The campaign page: the same table, each category linked to its report. */
static int write_summary_html(const summary *s, const char *out)
{
    dfr_campaign_row rows[MAX_CATEGORIES + 2];
    char hrefs[MAX_CATEGORIES][800]; /* a 255-byte name percent-encoded, and the rest */
    int nr = 0;
    for (int i = 0; i < s->n; i++) {
        const cat_result *r = &s->r[i];
        dfr_campaign_row *w = &rows[nr++];
        memset(w, 0, sizeof *w);
        w->name = r->name;
        url_path(hrefs[i], sizeof hrefs[i], r->name);
        strncat(hrefs[i], "/eval/report.html", sizeof hrefs[i] - strlen(hrefs[i]) - 1);
        w->href = r->failed ? NULL : hrefs[i];
        w->status = r->failed ? "failed" : r->skipped ? "done before" : "ok";
        cat_values(r, w->ours);
        w->paper[0] = s->pub[i] ? s->pub[i]->pixel_auroc : NAN;
        w->paper[1] = s->pub[i] ? s->pub[i]->aupro : NAN;
        w->seconds = r->skipped || r->failed ? NAN : r->seconds;
    }
    for (int m = 0; m < 2; m++) {
        if (m == 1 && !(s->pcnt && !s->all_reported)) break;
        dfr_campaign_row *w = &rows[nr++];
        memset(w, 0, sizeof *w);
        w->name = m == 0 ? "mean" : "mean, paper's ones";
        w->status = "";
        w->is_mean = 1;
        for (int k = 0; k < 4; k++) w->ours[k] = m == 0 ? s->mean[k] : s->smean[k];
        for (int k = 0; k < 2; k++) w->paper[k] = m == 1 || s->all_reported ? s->pmean[k] : NAN;
        w->seconds = NAN;
    }
    const char *notes[3] = {s->notes[0], s->notes[1], s->notes[2]};
    char path[4200], sub[600];
    snprintf(path, sizeof path, "%s/summary.html", out);
    snprintf(sub, sizeof sub, "%d categor%s; this run: %d layers, %d px, %d epochs", s->n,
             s->n == 1 ? "y" : "ies", s->rs.layers, s->rs.size, s->rs.epochs);
    return dfr_report_write_campaign_html(path, "dfrcl run: campaign summary", sub, rows, nr, notes,
                                          s->n_notes);
}

/* A CSV field: quoted (quotes doubled) when it holds a comma, a quote or a line break. */
static size_t csv_field(char *out, size_t n, const char *v)
{
    if (!strpbrk(v, ",\"\r\n")) return (size_t)snprintf(out, n, "%s", v);
    size_t o = 0;
    if (o + 1 < n) out[o++] = '"';
    for (; *v && o + 3 < n; v++) {
        if (*v == '"') out[o++] = '"';
        out[o++] = *v;
    }
    if (o + 1 < n) out[o++] = '"';
    out[o < n ? o : n - 1] = 0;
    return o;
}

static void add_metrics(cJSON *o, const double v[4], const double pv[2])
{
    const char *keys[4] = {"pixel_auroc", "image_auroc", "aupro", "f1_at_threshold"};
    for (int k = 0; k < 4; k++) add_num_or_null(o, keys[k], v[k]);
    if (isfinite(pv[0])) {
        cJSON *po = cJSON_AddObjectToObject(o, "published");
        cJSON_AddNumberToObject(po, "pixel_auroc", pv[0]);
        cJSON_AddNumberToObject(po, "aupro", pv[1]);
    } else cJSON_AddNullToObject(o, "published");
}

/* DIR/summary.csv and DIR/summary.json, atomically. */
static int write_summary_files(const summary *s, const char *out)
{
    size_t cap = 512 + (size_t)s->n * 900, used = 0;
    char *csv = malloc(cap);
    if (!csv) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    used += (size_t)snprintf(csv + used, cap - used,
                             "category,pixel_auroc,image_auroc,aupro,f1_at_threshold,"
                             "published_pixel_auroc,published_aupro,status\n");
    cJSON *root = cJSON_CreateObject();
    cJSON *run = cJSON_AddObjectToObject(root, "run");
    cJSON_AddNumberToObject(run, "layers", s->rs.layers);
    cJSON_AddNumberToObject(run, "size", s->rs.size);
    cJSON_AddNumberToObject(run, "epochs", s->rs.epochs);
    cJSON *arr = cJSON_AddArrayToObject(root, "categories");
    for (int i = 0; i <= s->n; i++) {
        double v[4], pv[2];
        const char *status = "";
        if (i < s->n) {
            cat_values(&s->r[i], v);
            pv[0] = s->pub[i] ? s->pub[i]->pixel_auroc : NAN;
            pv[1] = s->pub[i] ? s->pub[i]->aupro : NAN;
            status = s->r[i].failed ? "failed" : "ok";
        } else {
            memcpy(v, s->mean, sizeof v);
            pv[0] = s->all_reported ? s->pmean[0] : NAN;
            pv[1] = s->all_reported ? s->pmean[1] : NAN;
        }
        const char *name = i < s->n ? s->r[i].name : "mean";
        char f[6][16];
        for (int k = 0; k < 4; k++) fmt(f[k], sizeof f[k], v[k]);
        for (int k = 0; k < 2; k++) fmt(f[4 + k], sizeof f[4 + k], pv[k]);
        used += csv_field(csv + used, cap - used, name);
        used += (size_t)snprintf(csv + used, cap - used, ",%s,%s,%s,%s,%s,%s,%s\n", f[0], f[1], f[2],
                                 f[3], f[4], f[5], status);
        cJSON *o = i < s->n ? cJSON_CreateObject() : cJSON_AddObjectToObject(root, "mean");
        if (i < s->n) {
            cJSON_AddStringToObject(o, "category", name);
            cJSON_AddStringToObject(o, "status", status);
            cJSON_AddItemToArray(arr, o);
        }
        add_metrics(o, v, pv);
    }
    if (s->pcnt && !s->all_reported) { /* ours and the paper's means over the categories it reports */
        cJSON *so = cJSON_AddObjectToObject(root, "mean_over_published_categories");
        cJSON_AddNumberToObject(so, "categories", s->pcnt);
        add_metrics(so, s->smean, s->pmean);
    }
    cJSON *po = cJSON_AddObjectToObject(root, "published");
    cJSON_AddStringToObject(po, "method", "DFR");
    cJSON_AddStringToObject(po, "source", dfr_published_source());
    cJSON_AddNumberToObject(po, "layers", s->paper_layers);
    cJSON_AddNumberToObject(po, "size", DFR_PUBLISHED_SIZE);
    cJSON_AddNumberToObject(po, "epochs", DFR_PUBLISHED_EPOCHS);
    cJSON_AddStringToObject(po, "note", "two decimals as printed; pixel_auroc is the paper's "
                                        "pixel ROC AUC, aupro its PRO AUC up to 30% FPR");
    char p[4200];
    snprintf(p, sizeof p, "%s/summary.csv", out);
    int rc = dfr_write_file_atomic(p, csv, used);
    char *js = cJSON_Print(root);
    snprintf(p, sizeof p, "%s/summary.json", out);
    if (!rc) rc = js ? dfr_write_file_atomic(p, js, strlen(js)) : dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    free(js);
    free(csv);
    cJSON_Delete(root);
    return rc;
}

static int write_summary(const char *out, const cat_result *r, int n, run_setting rs)
{
    summary s;
    summarize(&s, r, n, rs);
    print_summary(&s);
    int rc = write_summary_html(&s, out);
    if (!rc) rc = write_summary_files(&s, out);
    if (!rc) printf("summary: %s/summary.html, summary.json, summary.csv\n", out);
    return rc;
}

/* Locks are flocks, which the kernel drops when the process ends, however it ends. File systems
 * without them (Lustre mounted without -o flock) get a warning and no lock. */
static int lock_unsupported(int e) { return e == ENOSYS || e == ENOLCK || e == EOPNOTSUPP || e == EINVAL; }

/* Opens and locks path (exclusive or shared, never waiting): 0 with the descriptor in fd_out
 * (-1 when locks are unsupported), 1 when another process holds it (its pid, if the file names
 * one, in pid), or an error. */
static int take_lock(const char *path, int shared, int *fd_out, char *pid, size_t pid_n)
{
    *fd_out = -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return dfr_error(DFRCL_ERR_IO, "%s: cannot open the lock file: %s", path, strerror(errno));
    if (flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
        int e = errno;
        if (lock_unsupported(e)) {
            fprintf(stderr, "dfrcl: warning: %s: this file system has no file locks (%s); running "
                            "without them: do not start the same run twice\n", path, strerror(e));
            close(fd);
            return DFRCL_OK;
        }
        ssize_t k = pread(fd, pid, pid_n - 1, 0);
        pid[k > 0 ? k : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        close(fd);
        return 1;
    }
    /* The holder's pid, only informative. A shared holder empties it: no single pid holds it. */
    char t[32];
    int len = shared ? 0 : snprintf(t, sizeof t, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || (len && pwrite(fd, t, (size_t)len, 0) != len)) { /* informative */ }
    *fd_out = fd;
    return DFRCL_OK;
}

/* DIR/dfrcl-run.lock: an unsharded run or a merge holds it alone (exclusive); shards share it, so
 * any number of shards run at once into one DIR but never beside an unsharded run or a merge. */
static int lock_campaign(const char *out, int shared, int *fd_out)
{
    char p[4200], pid[32];
    snprintf(p, sizeof p, "%s/dfrcl-run.lock", out);
    int rc = take_lock(p, shared, fd_out, pid, sizeof pid);
    if (rc != 1) return rc;
    if (shared || pid[0])
        return dfr_error(DFRCL_ERR_IO, "%s is in use by another 'dfrcl run'%s (pid %s, lock %s); wait "
                         "for it to end or choose another --out", out, shared ? " or merge" : "",
                         pid[0] ? pid : "?", p);
    return dfr_error(DFRCL_ERR_IO, "%s is in use by shards of a 'dfrcl run --shard' (locks %s/shards/"
                     "*.lock); wait for them to end or choose another --out", out, out);
}

/* Everything that changes a category's results, as stored in its settings.json. */
static cJSON *run_settings(const cli_backbone_opts *bo, const dfr_vgg19 *vgg, const dfr_train_opts *to)
{
    dfr_train_opts r = *to;
    dfr_train_resolve(&r, (bo->size / 4) * (bo->size / 4));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "size", bo->size);
    cJSON_AddNumberToObject(o, "layers", vgg->layers);
    cJSON_AddStringToObject(o, "backbone", vgg->identity);
    cJSON_AddStringToObject(o, "recipe", dfr_recipe_name(r.recipe));
    cJSON_AddNumberToObject(o, "epochs", r.epochs);
    cJSON_AddNumberToObject(o, "lr", r.lr);
    cJSON_AddNumberToObject(o, "batch", r.batch);
    cJSON_AddNumberToObject(o, "positions", r.positions);
    cJSON_AddNumberToObject(o, "patience", r.patience);
    cJSON_AddNumberToObject(o, "latent", r.latent);
    cJSON_AddNumberToObject(o, "fpr", r.fpr);
    cJSON_AddNumberToObject(o, "seed", r.seed);
    cJSON_AddNumberToObject(o, "precision", r.store_precision);
    return o;
}

static void fmt_value(char *b, size_t n, const cJSON *v)
{
    if (!v) snprintf(b, n, "(none)");
    else if (cJSON_IsNumber(v)) snprintf(b, n, "%.9g", v->valuedouble);
    else if (cJSON_IsString(v)) snprintf(b, n, "%.20s", v->valuestring);
    else snprintf(b, n, "?");
}

/* 1 if every setting of now is the same in old, else 0 with "epochs 1 -> 2, size 32 -> 64". */
static int settings_diff(const cJSON *old, const cJSON *now, char *diff, size_t n)
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

/* Compares a category's stored settings with this run's: 1 if the same, else 0 with what differs
 * ("epochs 1 -> 2, size 32 -> 64") in diff. No settings file (an older dfrcl) differs too. */
static int same_settings(const char *path, const cJSON *now, char *diff, size_t n)
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
    int same = settings_diff(old, now, diff, n);
    cJSON_Delete(old);
    return same;
}

/* A category's files, and whether it holds anything from an earlier run. */
typedef struct cat_files {
    char dir[4400], model[4500], metrics[4500], eval[4500], ck[4500], settings[4500];
} cat_files;

static void cat_paths(cat_files *f, const char *out, const char *name)
{
    snprintf(f->dir, sizeof f->dir, "%s/%s", out, name);
    snprintf(f->model, sizeof f->model, "%s/model.safetensors", f->dir);
    snprintf(f->metrics, sizeof f->metrics, "%s/metrics.json", f->dir);
    snprintf(f->eval, sizeof f->eval, "%s/eval", f->dir);
    snprintf(f->ck, sizeof f->ck, "%s/train.checkpoint", f->dir);
    snprintf(f->settings, sizeof f->settings, "%s/settings.json", f->dir);
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Before any work: categories whose earlier results were made with other settings. Without
 * --force that is an error listing them; with it, their results are removed and redone. */
static int check_settings(char *const *names, int n, const shard_spec *sh, const char *out,
                          const cJSON *now, int force)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        if (!mine(sh, i)) continue;
        cat_files f;
        cat_paths(&f, out, names[i]);
        char diff[1024];
        if (!exists(f.model) && !exists(f.metrics) && !exists(f.ck)) continue; /* nothing yet */
        if (same_settings(f.settings, now, diff, sizeof diff)) continue;
        bad++;
        if (!force) {
            fprintf(stderr, "dfrcl: error: %s was run with other settings: %s\n", f.dir, diff);
            continue;
        }
        printf("%s: run with other settings (%s): redoing it\n", names[i], diff);
        remove(f.model), remove(f.metrics), remove(f.ck), remove(f.settings);
        cli_remove_tree(f.eval);
    }
    if (bad && !force)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%d categor%s of %s hold%s results of other "
                         "settings; use another --out, or add --force to redo %s", bad,
                         bad == 1 ? "y" : "ies", out, bad == 1 ? "s" : "", bad == 1 ? "it" : "them");
    return DFRCL_OK;
}

/* --- Shards: one campaign split over the tasks of a job array ------------------------------- */

/* A whole decimal number in 0..1e6, or -1. */
static long parse_count(const char *s, const char **end)
{
    long v = 0;
    const char *p = s;
    for (; isdigit((unsigned char)*p) && v <= 1000000; p++) v = v * 10 + (*p - '0');
    *end = p;
    return p == s || v > 1000000 ? -1 : v;
}

static int shard_check(shard_spec *sh, long i, long n, const char *from)
{
    if (n < 1)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: the shard count must be at least 1 (got %ld)", from, n);
    if (i < 1 || i > n)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: shard %ld is outside 1..%ld (shards are numbered "
                         "from 1)", from, i, n);
    sh->i = (int)i, sh->n = (int)n;
    return DFRCL_OK;
}

/* An environment variable holding a whole number: 1 if set (value in v), 0 if unset, -1 if bad. */
static int env_count(const char *name, long *v)
{
    const char *s = getenv(name), *end;
    if (!s || !*s) return 0;
    *v = parse_count(s, &end);
    if (*v < 0 || *end) {
        dfr_error(DFRCL_ERR_INVALID_ARG, "--shard auto: %s='%s' is not a whole number", name, s);
        return -1;
    }
    return 1;
}

/* --shard auto: a Slurm job array (task ids from SLURM_ARRAY_TASK_MIN, in steps of
 * SLURM_ARRAY_TASK_STEP) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX from 0; the count in
 * DFRCL_SHARD_COUNT, as Kubernetes does not give it). */
static int shard_from_env(shard_spec *sh)
{
    long id, cnt, min = 0, step = 1;
    int r = env_count("SLURM_ARRAY_TASK_ID", &id);
    if (r < 0) return DFRCL_ERR_INVALID_ARG;
    if (r) {
        if (env_count("SLURM_ARRAY_TASK_COUNT", &cnt) != 1)
            return dfr_error(DFRCL_ERR_INVALID_ARG, "--shard auto: SLURM_ARRAY_TASK_ID is set but "
                             "SLURM_ARRAY_TASK_COUNT is not a count; give --shard I/N");
        if (env_count("SLURM_ARRAY_TASK_MIN", &min) < 0 || env_count("SLURM_ARRAY_TASK_STEP", &step) < 0)
            return DFRCL_ERR_INVALID_ARG;
        if (step < 1) step = 1;
        if (id < min || (id - min) % step)
            return dfr_error(DFRCL_ERR_INVALID_ARG, "--shard auto: Slurm task %ld is not in the array "
                             "from %ld in steps of %ld; use a plain range (--array=0-%ld)", id, min,
                             step, cnt - 1);
        return shard_check(sh, (id - min) / step + 1, cnt, "--shard auto (Slurm array)");
    }
    r = env_count("JOB_COMPLETION_INDEX", &id);
    if (r < 0) return DFRCL_ERR_INVALID_ARG;
    if (r) {
        if (env_count("DFRCL_SHARD_COUNT", &cnt) != 1)
            return dfr_error(DFRCL_ERR_INVALID_ARG, "--shard auto: JOB_COMPLETION_INDEX is set but "
                             "not DFRCL_SHARD_COUNT; set it to the Job's completions");
        return shard_check(sh, id + 1, cnt, "--shard auto (JOB_COMPLETION_INDEX, DFRCL_SHARD_COUNT)");
    }
    return dfr_error(DFRCL_ERR_INVALID_ARG, "--shard auto: neither SLURM_ARRAY_TASK_ID (a Slurm job "
                     "array) nor JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set; give --shard I/N");
}

/* --shard I/N or auto. */
static int parse_shard(const char *s, shard_spec *sh)
{
    if (!strcmp(s, "auto")) return shard_from_env(sh);
    const char *e;
    long i = parse_count(s, &e), n = -1;
    if (i >= 0 && *e == '/') n = parse_count(e + 1, &e);
    if (i < 0 || n < 0 || *e)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "--shard '%s': want I/N (shard I of N, from 1, as "
                         "--shard 2/4) or auto", s);
    return shard_check(sh, i, n, "--shard");
}

static void shard_paths(char *rec, char *lock, size_t n, const char *out, const shard_spec *sh)
{
    snprintf(rec, n, "%s/shards/%d-of-%d.json", out, sh->i, sh->n);
    snprintf(lock, n, "%s/shards/%d-of-%d.lock", out, sh->i, sh->n);
}

/* A category's status in a shard record: pending until it ends. */
static const char *cat_status(const cat_result *r, int done)
{
    return !done ? "pending" : r->failed ? "failed" : r->skipped ? "done before" : "ok";
}

/* DIR/shards/I-of-N.json: the shard, its settings, the campaign's categories (all shards'), and
 * its own with their status and time; complete once it ended without an error. */
static int write_shard_record(const char *out, const shard_spec *sh, const cJSON *settings,
                              char *const *names, int n, const cat_result *res, const int *done,
                              int complete)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "shard", sh->i);
    cJSON_AddNumberToObject(root, "of", sh->n);
    cJSON_AddBoolToObject(root, "complete", complete);
    cJSON_AddItemToObject(root, "settings", cJSON_Duplicate(settings, 1));
    cJSON *all = cJSON_AddArrayToObject(root, "categories");
    cJSON *own = cJSON_AddArrayToObject(root, "results");
    for (int k = 0; k < n; k++) {
        cJSON_AddItemToArray(all, cJSON_CreateString(names[k]));
        if (!mine(sh, k)) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "category", names[k]);
        cJSON_AddStringToObject(o, "status", cat_status(&res[k], done[k]));
        if (done[k] && !res[k].skipped && !res[k].failed) cJSON_AddNumberToObject(o, "seconds", res[k].seconds);
        cJSON_AddItemToArray(own, o);
    }
    char *js = cJSON_Print(root);
    cJSON_Delete(root);
    char rec[4200], lock[4200];
    shard_paths(rec, lock, sizeof rec, out, sh);
    int rc = js ? dfr_write_file_atomic(rec, js, strlen(js)) : dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    free(js);
    return rc;
}

/* A shard's own lock, DIR/shards/I-of-N.lock: the same shard twice at once is refused. A shard of
 * another count than the records already in DIR/shards is refused too (their categories overlap). */
static int lock_shard(const char *out, const shard_spec *sh, int *fd_out)
{
    char rec[4200], lock[4200], dir[4200], pid[32];
    snprintf(dir, sizeof dir, "%s/shards", out);
    int rc = dfr_mkdir_p(dir);
    if (rc) return rc;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        int i, n, len = 0;
        if (sscanf(e->d_name, "%d-of-%d.json%n", &i, &n, &len) == 2 && len == (int)strlen(e->d_name) &&
            n != sh->n) {
            rc = dfr_error(DFRCL_ERR_INVALID_ARG, "%s holds shard %d/%d's record: the shards of a "
                           "campaign share one count (this is %d/%d); remove %s to split it anew "
                           "(finished categories are kept)", dir, i, n, sh->i, sh->n, dir);
            break;
        }
    }
    if (d) closedir(d);
    if (rc) return rc;
    shard_paths(rec, lock, sizeof rec, out, sh);
    rc = take_lock(lock, 0, fd_out, pid, sizeof pid);
    if (rc == 1)
        return dfr_error(DFRCL_ERR_IO, "shard %d/%d of %s is already running (pid %s, lock %s)", sh->i,
                         sh->n, out, pid[0] ? pid : "?", lock);
    return rc;
}

/* Reads a JSON file into *root; an error naming it if absent or not JSON. */
static int read_json(const char *path, cJSON **root)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    *root = NULL;
    int rc = dfr_read_file(path, &buf, &len);
    if (rc) return rc;
    *root = cJSON_Parse((const char *)buf);
    free(buf);
    if (!cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        return dfr_error(DFRCL_ERR_FORMAT, "%s: not a JSON object", path);
    }
    return DFRCL_OK;
}

static int json_int(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

/* A problem found by the merge: printed at once, counted, and the merge refused at the end. */
#define MERGE_PROBLEM(cnt, ...) (fprintf(stderr, "dfrcl: error: " __VA_ARGS__), fputc('\n', stderr), (cnt)++)

/* The records of DIR/shards: all of one count n, each 1..n present; recs[i - 1] = shard i's. */
static int load_shard_records(const char *out, cJSON **recs, int *n_out)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/shards", out);
    DIR *d = opendir(dir);
    if (!d)
        return dfr_error(DFRCL_ERR_IO, "%s: no shard records (%s/I-of-N.json): run the shards with "
                         "'dfrcl run --shard I/N --out %s' first", out, dir, out);
    int n = 0, bad = 0;
    char first[300] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        int i, k, len = 0;
        if (sscanf(e->d_name, "%d-of-%d.json%n", &i, &k, &len) != 2 || len != (int)strlen(e->d_name)) continue;
        if (!n) n = k, snprintf(first, sizeof first, "%s", e->d_name);
        else if (k != n)
            MERGE_PROBLEM(bad, "%s holds shards of two counts (%s, %s): remove the stale ones", dir,
                          first, e->d_name);
    }
    closedir(d);
    if (bad) return dfr_error(DFRCL_ERR_INVALID_ARG, "merge refused: the shard records disagree");
    if (n < 1 || n > MAX_CATEGORIES)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: no shard records (I-of-N.json): run the shards "
                         "with 'dfrcl run --shard I/N --out %s' first", dir, out);
    char missing[2048] = "";
    for (int i = 1; i <= n; i++) {
        char p[4400];
        snprintf(p, sizeof p, "%s/%d-of-%d.json", dir, i, n);
        if (!exists(p)) {
            size_t u = strlen(missing);
            snprintf(missing + u, sizeof missing - u, "%s%d/%d", u ? ", " : "", i, n);
            bad++;
            continue;
        }
        if (read_json(p, &recs[i - 1])) {
            MERGE_PROBLEM(bad, "%s", dfrcl_last_error());
            continue;
        }
        if (json_int(recs[i - 1], "shard") != i || json_int(recs[i - 1], "of") != n ||
            !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(recs[i - 1], "settings")) ||
            !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(recs[i - 1], "categories")) ||
            !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(recs[i - 1], "results")))
            MERGE_PROBLEM(bad, "%s: not a dfrcl shard record of shard %d/%d", p, i, n);
    }
    if (missing[0])
        MERGE_PROBLEM(bad, "%s: missing shard%s %s: run %s with 'dfrcl run --shard I/%d --out %s' "
                      "(the same settings)", out, strchr(missing, ',') ? "s" : "", missing,
                      strchr(missing, ',') ? "them" : "it", n, out);
    *n_out = n;
    return bad ? dfr_error(DFRCL_ERR_INVALID_ARG, "merge refused: %d problem%s above", bad,
                           bad == 1 ? "" : "s")
               : DFRCL_OK;
}

/* The result of category name from shard (rec, i of n): its status and time from the record, its
 * metrics from DIR/name/metrics.json, its settings checked against the shard's. */
static void merge_category(const char *out, const cJSON *rec, int i, int n, const char *name,
                           cat_result *r, int *bad)
{
    snprintf(r->name, sizeof r->name, "%s", name);
    const cJSON *e = NULL, *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(rec, "results"))
    {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "category");
        if (cJSON_IsString(c) && !strcmp(c->valuestring, name)) e = it;
    }
    const cJSON *st = e ? cJSON_GetObjectItemCaseSensitive(e, "status") : NULL;
    const char *s = cJSON_IsString(st) ? st->valuestring : "";
    if (!e) {
        MERGE_PROBLEM(*bad, "category %s is missing from shard %d/%d's record", name, i, n);
        return;
    }
    if (strcmp(s, "ok") && strcmp(s, "done before") && strcmp(s, "failed")) {
        MERGE_PROBLEM(*bad, "category %s of shard %d/%d has not finished (%s): wait for the shard, "
                      "or rerun 'dfrcl run --shard %d/%d --out %s' with its settings", name, i, n,
                      s[0] ? s : "?", i, n, out);
        return;
    }
    r->failed = !strcmp(s, "failed");
    r->skipped = !strcmp(s, "done before");
    r->seconds = json_num((cJSON *)e, "seconds");
    if (r->failed) return;
    cat_files f;
    cat_paths(&f, out, name);
    if (!exists(f.metrics)) {
        MERGE_PROBLEM(*bad, "category %s (shard %d/%d): %s is missing", name, i, n, f.metrics);
        return;
    }
    if (read_metrics(f.metrics, r)) {
        MERGE_PROBLEM(*bad, "category %s (shard %d/%d): %s", name, i, n, dfrcl_last_error());
        return;
    }
    char diff[1024];
    if (!same_settings(f.settings, cJSON_GetObjectItemCaseSensitive(rec, "settings"), diff, sizeof diff))
        MERGE_PROBLEM(*bad, "category %s: %s differs from shard %d/%d's settings: %s", name,
                      f.settings, i, n, diff);
}

/* dfrcl run --merge DIR: the summary of a sharded campaign, as one unsharded run writes it. */
static int run_merge(const char *out)
{
    cJSON *recs[MAX_CATEGORIES] = {0};
    cat_result *res = NULL;
    int n = 0, lock_fd = -1, bad = 0, ncat = 0;
    int rc = lock_campaign(out, 0, &lock_fd);
    if (!rc) rc = load_shard_records(out, recs, &n);
    const cJSON *set1 = NULL, *cats1 = NULL;
    if (!rc) {
        set1 = cJSON_GetObjectItemCaseSensitive(recs[0], "settings");
        cats1 = cJSON_GetObjectItemCaseSensitive(recs[0], "categories");
        ncat = cJSON_GetArraySize(cats1);
        for (int i = 2; i <= n; i++) { /* one campaign: the same settings and categories */
            char diff[1024];
            const cJSON *set = cJSON_GetObjectItemCaseSensitive(recs[i - 1], "settings");
            if (!settings_diff(set1, set, diff, sizeof diff))
                MERGE_PROBLEM(bad, "shard %d/%d ran with other settings than shard 1/%d: %s", i, n, n, diff);
            if (!cJSON_Compare(cats1, cJSON_GetObjectItemCaseSensitive(recs[i - 1], "categories"), 1))
                MERGE_PROBLEM(bad, "shard %d/%d ran over other categories than shard 1/%d (another "
                              "--data or --categories)", i, n, n);
        }
        if (ncat < 1 || ncat > MAX_CATEGORIES) MERGE_PROBLEM(bad, "shard 1/%d lists no categories", n);
    }
    if (!rc && !bad) {
        res = calloc((size_t)ncat, sizeof *res);
        if (!res) rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    }
    for (int k = 0; !rc && res && k < ncat; k++) { /* every problem, not only the first */
        const cJSON *c = cJSON_GetArrayItem(cats1, k);
        if (!cJSON_IsString(c)) {
            MERGE_PROBLEM(bad, "shard 1/%d: category %d is not a name", n, k + 1);
            continue;
        }
        int i = k % n + 1;
        merge_category(out, recs[i - 1], i, n, c->valuestring, &res[k], &bad);
    }
    if (!rc && bad)
        rc = dfr_error(DFRCL_ERR_INVALID_ARG, "merge of %s refused: %d problem%s above", out, bad,
                       bad == 1 ? "" : "s");
    if (!rc) {
        run_setting rs = {json_int(set1, "layers"), json_int(set1, "size"), json_int(set1, "epochs")};
        printf("merging %d shard%s of %s: %d categor%s\n", n, n == 1 ? "" : "s", out, ncat,
               ncat == 1 ? "y" : "ies");
        rc = write_summary(out, res, ncat, rs);
    }
    int any_failed = 0;
    for (int k = 0; res && k < ncat; k++) any_failed |= res[k].failed;
    for (int i = 0; i < n; i++) cJSON_Delete(recs[i]);
    free(res);
    if (lock_fd >= 0) close(lock_fd);
    return rc ? cli_fail(NULL) : any_failed ? 1 : 0;
}

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {CLI_BACKBONE_LONGOPTS, CLI_SCHED_LONGOPTS_RUN,
                                         {"data", required_argument, 0, 1601},
                                         {"out", required_argument, 0, 1602},
                                         {"categories", required_argument, 0, 1603},
                                         {"force", no_argument, 0, 1604},
                                         {"shard", required_argument, 0, 1605},
                                         {"merge", required_argument, 0, 1606},
                                         CLI_TRAIN_LONGOPTS,
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    cli_backbone_opts bo;
    cli_backbone_defaults(&bo);
    dfr_train_opts to;
    dfr_train_defaults(&to);
    const char *root = NULL, *out = NULL, *cats = NULL, *merge = NULL;
    int c, force = 0;
    shard_spec sh = {0, 0};
    while ((c = getopt_long(argc, argv, "d:w:l:s:vqh" CLI_TRAIN_SHORTOPTS, opts, NULL)) != -1) {
        int r = cli_backbone_option(&bo, c, optarg);
        if (!r) r = cli_train_option(&to, c, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        switch (c) {
        case 1601: root = optarg; break;
        case 1602: out = optarg; break;
        case 1603: cats = optarg; break;
        case 1604: force = 1; break;
        case 1605:
            if (parse_shard(optarg, &sh)) {
                fprintf(stderr, "dfrcl run: %s\n", dfrcl_last_error());
                return 2;
            }
            break;
        case 1606: merge = optarg; break;
        case 'h': help(); return 0;
        default: return 2;
        }
    }
    /* --precision fp16/fp32: evaluation's activations too (auto: by the device, as for eval) */
    bo.half = to.store_precision == 16 ? 1 : to.store_precision == 32 ? 0 : -1;
    if (merge) { /* the summary of the shards' results: nothing to train, no dataset needed */
        if (root || sh.n || cats || force || optind != argc || (out && strcmp(out, merge))) {
            fprintf(stderr, "dfrcl run: --merge DIR takes no --data, --shard, --categories, --force "
                            "or other --out: it reads what the shards wrote into DIR\n");
            return 2;
        }
        return run_merge(merge);
    }
    if (!root || !out || optind != argc) {
        fprintf(stderr, "dfrcl run: need --data ROOT and --out DIR (see --help)\n");
        return 2;
    }
    /* The categories: ROOT itself, or its sub-folders holding train/good. */
    char *names[MAX_CATEGORIES], *dirs[MAX_CATEGORIES];
    int n = 0;
    if (has_train(root)) {
        const char *b = strrchr(root, '/');
        names[0] = strdup(b && b[1] ? b + 1 : root);
        dirs[0] = strdup(root);
        n = 1;
    } else {
        DIR *d = opendir(root);
        if (!d) {
            fprintf(stderr, "dfrcl: error: %s: cannot open the dataset root\n", root);
            return 1;
        }
        struct dirent *e;
        char *found[MAX_CATEGORIES];
        int nf = 0;
        while ((e = readdir(d)) && nf < MAX_CATEGORIES) {
            if (e->d_name[0] == '.') continue;
            char p[4200];
            snprintf(p, sizeof p, "%s/%s", root, e->d_name);
            if (has_train(p)) found[nf++] = strdup(e->d_name);
        }
        closedir(d);
        qsort(found, (size_t)nf, sizeof found[0], cmp_str);
        for (int i = 0; i < nf; i++) {
            if (in_list(cats, found[i])) {
                names[n] = found[i];
                char p[4200];
                snprintf(p, sizeof p, "%s/%s", root, found[i]);
                dirs[n++] = strdup(p);
            } else free(found[i]);
        }
    }
    if (n == 0) {
        fprintf(stderr, "dfrcl: error: %s has no categories (folders holding train/good%s)\n", root,
                cats ? " among --categories" : "");
        return 1;
    }
    if (cats) /* every category asked for must exist */
        for (const char *p = cats; *p;) {
            const char *e = strchr(p, ',');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            int ok = 0;
            for (int i = 0; i < n; i++) ok |= strlen(names[i]) == len && !strncmp(names[i], p, len);
            if (!ok) {
                fprintf(stderr, "dfrcl: error: category '%.*s' not found in %s\n", (int)len, p, root);
                return 1;
            }
            if (!e) break;
            p = e + 1;
        }

    cat_result *res = calloc((size_t)n, sizeof *res);
    cli_lanes lanes = {0};
    dfr_runtime *rt = NULL; /* training's device: the first of --device's list */
    dfr_vgg19 *vgg = NULL;
    cJSON *settings = NULL;
    char *settings_txt = NULL;
    int lock_fd = -1, shard_fd = -1, own = 0, recorded = 0;
    int *done = calloc((size_t)n, sizeof *done); /* per category: ended (for the shard record) */
    for (int i = 0; i < n; i++) own += mine(&sh, i);
    int rc = res && done ? dfr_mkdir_p(out) : dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    if (!rc) rc = lock_campaign(out, sh.n > 0, &lock_fd);
    if (!rc && sh.n) rc = lock_shard(out, &sh, &shard_fd);
    if (!rc) rc = cli_lanes_open(&bo, 0, &lanes);
    if (!rc) {
        rt = lanes.rt[0];
        vgg = lanes.vgg[0];
        settings = run_settings(&bo, vgg, &to);
        settings_txt = cJSON_Print(settings);
        rc = check_settings(names, n, &sh, out, settings, force);
    }
    if (!rc && sh.n) {
        printf("shard %d/%d: %d of %d categories\n", sh.i, sh.n, own, n);
        rc = write_shard_record(out, &sh, settings, names, n, res, done, 0);
        recorded = !rc;
    }
    /* Training checkpoints in each category's folder: an interrupted campaign resumes inside the
     * category it was training. */
    to.stop = cli_stop_on_signals();
    to.resume = 1;
    for (int i = 0, k = 0; i < n && !rc; i++) {
        cat_result *r = &res[i];
        snprintf(r->name, sizeof r->name, "%s", names[i]);
        if (!mine(&sh, i)) continue;
        k++; /* the category's number among this run's (or shard's) own */
        if (recorded && k > 1) rc = write_shard_record(out, &sh, settings, names, n, res, done, 0);
        if (rc) break;
        if (*to.stop) { /* between categories: a safe point */
            rc = dfr_error(DFRCL_ERR_INTERRUPTED, "interrupted before %s", names[i]);
            break;
        }
        cat_files f;
        cat_paths(&f, out, names[i]);
        to.checkpoint = f.ck;
        int have_model = exists(f.model); /* with check_settings: made with these settings */
        if (have_model && exists(f.metrics) && read_metrics(f.metrics, r) == DFRCL_OK) {
            r->skipped = done[i] = 1;
            printf("[%d/%d] %s: done before, skipped\n", k, own, names[i]);
            continue;
        }
        printf("[%d/%d] %s: %s\n", k, own, names[i], have_model ? "evaluating its model" : "training");
        fflush(stdout);
        double t0 = cli_now();
        dfr_file_list files = {0};
        dfr_model *m = NULL;
        dfr_metrics mt;
        int crc = dfr_mkdir_p(f.eval);
        /* The settings go first: a checkpoint or model found later was made with them. */
        if (!crc) crc = dfr_write_file_atomic(f.settings, settings_txt, strlen(settings_txt));
        if (!crc && !have_model) crc = dfr_list_train_images(dirs[i], &files);
        if (!crc && !have_model) {
            cli_train_progress prog = {0};
            prog.bar.quiet = bo.verbosity == 0;
            prog.train_images = files.count;
            to.progress = cli_train_on_progress;
            to.user = &prog;
            crc = dfr_train(&m, rt, vgg, (const char *const *)files.paths, files.count, bo.size, &to);
            if (prog.bar.phase) cli_progress_end(&prog.bar);
            if (!crc) crc = dfr_model_save(m, f.model);
            if (!crc) remove(f.ck);
        }
        /* Evaluation spreads the category's images over every device of --device's list. */
        dfr_model_free(&m);
        if (!crc) crc = cli_lanes_load_model(&lanes, f.model);
        if (!crc) m = lanes.m[0];
        char title[512];
        snprintf(title, sizeof title, "dfrcl run: %s", names[i]);
        if (!crc) crc = cli_eval_model(&lanes, dirs[i], NULL, NULL, f.eval, f.metrics, title, f.model,
                                       bo.verbosity == 0, &mt);
        if (crc == DFRCL_ERR_INTERRUPTED && m) cli_remove_tree(f.eval); /* stopped evaluating */
        if (!crc) {
            /* As metrics.json holds them (its numbers may round the last bit), so this summary
             * equals a resumed run's and a merge of shards'. */
            if (read_metrics(f.metrics, r) != DFRCL_OK) {
                r->pixel_auroc = mt.pixel_auroc;
                r->image_auroc = mt.image_auroc;
                r->aupro = mt.aupro;
                r->f1 = mt.f1;
            }
            r->seconds = cli_now() - t0;
            printf("[%d/%d] %s: pixel AUROC %.4f, image AUROC %.4f, AUPRO %.4f (%.0f s)\n", k, own,
                   names[i], mt.pixel_auroc, mt.image_auroc, mt.aupro, r->seconds);
        } else if (crc == DFRCL_ERR_FORMAT || crc == DFRCL_ERR_IO) {
            /* A broken category is reported and the campaign goes on. */
            fprintf(stderr, "dfrcl: error: %s: %s\n", names[i], dfrcl_last_error());
            r->failed = 1;
        } else rc = crc;
        done[i] = !rc;
        m = NULL;
        cli_lanes_free_models(&lanes);
        dfr_file_list_free(&files);
    }
    int any_failed = 0;
    for (int i = 0; i < n && res; i++) any_failed |= res[i].failed;
    dfr_train_opts resolved = to;
    dfr_train_resolve(&resolved, (bo.size / 4) * (bo.size / 4));
    run_setting rs = {vgg ? vgg->layers : bo.layers, bo.size, resolved.epochs};
    if (recorded) { /* a shard ends with its record, complete unless stopped by an error */
        int wr = write_shard_record(out, &sh, settings, names, n, res, done, !rc);
        if (!rc) rc = wr;
        if (!rc)
            printf("shard %d/%d done; once all %d are, 'dfrcl run --merge %s' writes the summary\n",
                   sh.i, sh.n, sh.n, out);
    }
    if (!rc && !sh.n) rc = write_summary(out, res, n, rs);
    int ret = rc ? cli_fail(NULL) : any_failed ? 1 : 0;
    if (rc == DFRCL_ERR_INTERRUPTED) {
        fprintf(stderr, "dfrcl: run stopped by %s; the same command continues the campaign where "
                        "it stopped\n", cli_stop_signal_name());
        ret = cli_stop_exit_code();
    }
    if (shard_fd >= 0) close(shard_fd);
    if (lock_fd >= 0) close(lock_fd);
    free(done);
    cJSON_Delete(settings);
    free(settings_txt);
    cli_lanes_close(&lanes);
    for (int i = 0; i < n; i++) {
        free(names[i]);
        free(dirs[i]);
    }
    free(res);
    return ret;
}
