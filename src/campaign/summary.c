/* A campaign's summary: the table (as text for the caller to print), out/summary.html, .json and
 * .csv, each category beside the published DFR figures. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "campaign/campaign.h"
#include "eval/published.h"
#include "eval/report.h"
#include "util/error.h"
#include "util/fsutil.h"

static double json_num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

int dfr_campaign_read_metrics(const char *path, dfr_cat_result *r)
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
    const dfr_cat_result *r;
    int n;
    dfr_run_setting rs;
    const dfr_published *pub[DFR_CAMPAIGN_MAX_CATEGORIES]; /* the paper's figures, or NULL */
    double mean[4];  /* ours, over the categories that ran */
    double smean[4]; /* ours, over those of them the paper reports */
    double pmean[2]; /* the paper's, over the same */
    int nok, pcnt, all_reported, paper_layers;
    char notes[3][512];
    int n_notes;
} summary;

/* A category's four metrics (pixel AUROC, image AUROC, AUPRO, F1 at threshold); NaN if failed. */
static void cat_values(const dfr_cat_result *r, double v[4])
{
    v[0] = r->failed ? NAN : r->pixel_auroc;
    v[1] = r->failed ? NAN : r->image_auroc;
    v[2] = r->failed ? NAN : r->aupro;
    v[3] = r->failed ? NAN : r->f1;
}

static void summarize(summary *s, const dfr_cat_result *r, int n, dfr_run_setting rs)
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

/* A growing text; on allocation failure it stays as it was and `failed` is set. */
typedef struct text {
    char *s;
    size_t len, cap;
    int failed;
} text;

static void text_add(text *t, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int k = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    if (k < 0 || t->failed) return;
    if (t->len + (size_t)k + 1 > t->cap) {
        size_t cap = (t->len + (size_t)k + 1) * 2;
        char *s = realloc(t->s, cap);
        if (!s) {
            t->failed = 1;
            return;
        }
        t->s = s, t->cap = cap;
    }
    va_start(ap, f);
    vsnprintf(t->s + t->len, t->cap - t->len, f, ap);
    va_end(ap);
    t->len += (size_t)k;
}

static void table_row(text *t, const char *label, const double v[4], const char *pa,
                      const char *pc, const char *tm)
{
    char f[4][16];
    for (int k = 0; k < 4; k++) fmt(f[k], sizeof f[k], v[k]);
    text_add(t, "%-20s %12s %6s %12s %10s %6s %9s %9s\n", label, f[0], pa, f[1], f[2], pc, f[3], tm);
}

/* The table as the command prints it: a blank line, the header, a row per category, the means
 * and the notes. */
static void summary_table(const summary *s, text *t)
{
    text_add(t, "\n%-20s %12s %6s %12s %10s %6s %9s %9s\n", "category", "pixel AUROC", "paper",
             "image AUROC", "AUPRO", "paper", "F1@thr", "time s");
    for (int i = 0; i < s->n; i++) {
        const dfr_cat_result *r = &s->r[i];
        if (r->failed) {
            text_add(t, "%-20s %12s\n", r->name, "FAILED");
            continue;
        }
        double v[4];
        char pa[16], pc[16], tm[16] = "(done)";
        cat_values(r, v);
        fmt_paper(pa, sizeof pa, s->pub[i], 0);
        fmt_paper(pc, sizeof pc, s->pub[i], 1);
        if (!r->skipped) snprintf(tm, sizeof tm, "%.0f", r->seconds);
        table_row(t, r->name, v, pa, pc, tm);
    }
    char pa[16] = "-", pc[16] = "-";
    if (s->pcnt) snprintf(pa, sizeof pa, "%.3f", s->pmean[0]), snprintf(pc, sizeof pc, "%.3f", s->pmean[1]);
    table_row(t, "mean", s->mean, s->all_reported ? pa : "-", s->all_reported ? pc : "-", "");
    if (s->pcnt && !s->all_reported) table_row(t, "mean, paper's ones", s->smean, pa, pc, "");
    for (int k = 0; k < s->n_notes; k++) text_add(t, "%s\n", s->notes[k]);
}

/* The campaign page: the same table, each category linked to its report. */
static int write_summary_html(const summary *s, const char *out)
{
    dfr_campaign_row *rows = calloc((size_t)s->n + 2, sizeof *rows);
    char (*hrefs)[800] = calloc((size_t)s->n + 1, sizeof *hrefs); /* a name percent-encoded */
    if (!rows || !hrefs) {
        free(rows), free(hrefs);
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    }
    int nr = 0;
    for (int i = 0; i < s->n; i++) {
        const dfr_cat_result *r = &s->r[i];
        dfr_campaign_row *w = &rows[nr++];
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
    int rc = dfr_report_write_campaign_html(path, "dfrcl run: campaign summary", sub, rows, nr,
                                            notes, s->n_notes);
    free(rows);
    free(hrefs);
    return rc;
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

/* out/summary.csv and out/summary.json, atomically. */
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

int dfr_campaign_write_summary(const char *out, const dfr_cat_result *r, int n, dfr_run_setting rs,
                               dfrcl_campaign_fn fn, void *user)
{
    summary *s = malloc(sizeof *s);
    if (!s) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    summarize(s, r, n, rs);
    int rc = write_summary_html(s, out);
    if (!rc) rc = write_summary_files(s, out);
    text t = {0};
    if (!rc) summary_table(s, &t);
    if (!rc && t.failed) rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    if (!rc) {
        dfrcl_campaign_event e = {.kind = DFRCL_CAMPAIGN_SUMMARY, .count = n, .message = t.s};
        dfr_campaign_emit(fn, user, &e); /* the files are written: nothing left to stop */
    }
    free(t.s);
    free(s);
    return rc;
}
