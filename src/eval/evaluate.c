#include "eval/evaluate.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/report.h"
#include "io/dataset.h"
#include "io/heatmap.h"
#include "io/image.h"
#include "io/npy.h"
#include "io/prefetch.h"
#include "util/error.h"
#include "util/fsutil.h"

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The ground truth of image <stem> of defect folder `defect`: <stem>_mask.* or <stem>.*. */
static char *find_mask(const dfr_runtime *rt, const char *masks_root, const char *defect,
                       const char *stem)
{
    static const char *const ext[] = {".png", ".jpg", ".jpeg", ".bmp", ".PNG"};
    static const char *const suffix[] = {"_mask", ""};
    char p[8192];
    for (int s = 0; s < 2; s++)
        for (size_t e = 0; e < sizeof ext / sizeof ext[0]; e++) {
            snprintf(p, sizeof p, "%s/%s/%s%s%s", masks_root, defect, stem, suffix[s], ext[e]);
            if (access(p, R_OK) == 0) return strdup(p);
            struct stat ls;
            if (lstat(p, &ls) == 0) /* there, but no use: say so rather than skip it silently */
                dfr_rt_log(rt, 1, "warning: %s: %s; this image counts as having no mask", p,
                           S_ISLNK(ls.st_mode) ? "a dangling or looping link" : "not readable");
        }
    return NULL;
}

void dfr_test_set_free(dfr_test_set *ts)
{
    for (int i = 0; i < ts->count; i++) {
        free(ts->items[i].path);
        free(ts->items[i].defect);
        free(ts->items[i].mask_path);
    }
    free(ts->items);
    memset(ts, 0, sizeof *ts);
}

int dfr_test_set_load(const dfr_runtime *rt, const char *root, const char *test_dir,
                      const char *masks_dir, dfr_test_set *out)
{
    memset(out, 0, sizeof *out);
    char tbuf[4096], mbuf[4096];
    if (!test_dir) {
        snprintf(tbuf, sizeof tbuf, "%s/test", root);
        test_dir = tbuf;
    }
    if (!masks_dir) {
        snprintf(mbuf, sizeof mbuf, "%s/ground_truth", root ? root : ".");
        masks_dir = mbuf;
    }
    if (!is_dir(test_dir))
        return dfr_error(DFRCL_ERR_FORMAT,
                         "%s: no such folder; a dataset holds its test images in test/<good or "
                         "defect type>/ (MVTec AD layout), or give the test images' folder "
                         "(test_dir)",
                         test_dir);
    DIR *d = opendir(test_dir);
    if (!d) return dfr_error(DFRCL_ERR_IO, "%s: cannot open: %s", test_dir, strerror(errno));
    char *defects[1024];
    int nd = 0;
    struct dirent *e;
    while ((e = readdir(d)) && nd < 1024) {
        if (e->d_name[0] == '.') continue;
        char p[8192];
        snprintf(p, sizeof p, "%s/%s", test_dir, e->d_name);
        if (is_dir(p)) defects[nd++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(defects, (size_t)nd, sizeof defects[0], cmp_names);
    int rc = DFRCL_OK, cap = 0;
    for (int k = 0; k < nd && !rc; k++) {
        char dir[8192];
        snprintf(dir, sizeof dir, "%s/%s", test_dir, defects[k]);
        dfr_file_list fl;
        rc = dfr_list_images(dir, &fl);
        for (int i = 0; i < fl.count && !rc; i++) {
            if (out->count == cap) {
                cap = cap ? 2 * cap : 256;
                dfr_test_item *ni = realloc(out->items, (size_t)cap * sizeof *ni);
                if (!ni) {
                    rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
                    break;
                }
                out->items = ni;
            }
            dfr_test_item *it = &out->items[out->count++];
            memset(it, 0, sizeof *it);
            it->path = strdup(fl.paths[i]);
            it->defect = strdup(defects[k]);
            it->label = strcmp(defects[k], "good") != 0;
            if (it->label) {
                const char *base = strrchr(fl.paths[i], '/') + 1;
                char stem[1024];
                snprintf(stem, sizeof stem, "%s", base);
                char *dot = strrchr(stem, '.');
                if (dot && dot != stem) *dot = 0;
                it->mask_path = find_mask(rt, masks_dir, defects[k], stem);
                if (!it->mask_path) out->missing_masks++;
            }
            if (!it->path || !it->defect) rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
        }
        dfr_file_list_free(&fl);
    }
    for (int k = 0; k < nd; k++) free(defects[k]);
    if (!rc && out->count == 0)
        rc = dfr_error(DFRCL_ERR_FORMAT, "%s: no test images in its sub-folders", test_dir);
    if (rc) dfr_test_set_free(out);
    return rc;
}

/* Nearest-neighbour resize as PIL's NEAREST (source = floor((i + 0.5) * in / out)), then > 127. */
static void mask_to_size(const dfrcl_image *m, int S, uint8_t *out)
{
    for (int y = 0; y < S; y++) {
        int sy = (int)((y + 0.5) * m->height / S);
        if (sy >= m->height) sy = m->height - 1;
        for (int x = 0; x < S; x++) {
            int sx = (int)((x + 0.5) * m->width / S);
            if (sx >= m->width) sx = m->width - 1;
            out[y * S + x] = m->pixels[((size_t)sy * m->width + sx) * m->channels] > 127;
        }
    }
}

/* OUT/<sub>/<defect>/<stem><ext>, creating the folder. */
static int item_path(char *buf, size_t n, const char *out, const char *sub, const dfr_test_item *it,
                     const char *ext)
{
    char dir[8192];
    snprintf(dir, sizeof dir, "%s/%s/%s", out, sub, it->defect);
    int rc = dfr_mkdir_p(dir);
    if (rc) return rc;
    const char *base = strrchr(it->path, '/');
    base = base ? base + 1 : it->path;
    char stem[1024];
    snprintf(stem, sizeof stem, "%s", base);
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem) *dot = 0;
    if ((size_t)snprintf(buf, n, "%s/%s%s", dir, stem, ext) >= n)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "path too long under %s", out);
    return DFRCL_OK;
}

static int thumb(const dfrcl_image *src, int t, dfrcl_image *dst)
{
    return dfrcl_image_resize(dst, src, t, t);
}

/* What scoring hands each image to, in order. */
typedef struct eval_ctx {
    const dfr_test_set *ts;
    const dfr_eval_opts *o;
    int S, T;
    double thr;
    uint8_t *mask;
    dfr_eval_acc *acc;
    dfr_report_item *items;
    const dfr_runtime *rt; /* whose logger gets the warnings */
} eval_ctx;

static int eval_one(void *user, const dfr_sched_result *r)
{
    eval_ctx *c = user;
    const dfr_eval_opts *o = c->o;
    const dfr_test_item *it = &c->ts->items[r->index];
    int S = c->S, T = c->T;
    size_t SS = (size_t)S * S;
    if (r->status) return dfr_error(r->status, "%s", r->message);
    const float *map = r->map;
    float score = r->score;
    const dfrcl_image *img = r->image;
    dfrcl_image gt = {0}, ov = {0};
    uint8_t *mask = c->mask;
    int rc = DFRCL_OK;
    memset(mask, 0, SS);
    if (it->mask_path) {
        rc = dfrcl_image_load(&gt, it->mask_path);
        if (!rc) {
            if (r->orig_w != gt.width || r->orig_h != gt.height)
                dfr_rt_log(c->rt, 1, "warning: %s is %dx%d but its image is %dx%d: resized",
                           it->mask_path, gt.width, gt.height, r->orig_w, r->orig_h);
            mask_to_size(&gt, S, mask);
        }
    }
    if (!rc) rc = dfr_eval_acc_add(c->acc, map, it->mask_path ? mask : NULL, it->label);
    if (!rc && o->out_dir) {
        char p[8400];
        int64_t shape[2] = {S, S};
        rc = item_path(p, sizeof p, o->out_dir, "maps", it, ".npy");
        if (!rc) rc = dfr_npy_write_f32(p, 2, shape, map);
        if (!rc) rc = dfr_anomaly_overlay(img, map, S, S, (float)c->thr, &ov, NULL);
        if (!rc) rc = item_path(p, sizeof p, o->out_dir, "overlays", it, ".png");
        if (!rc) rc = dfr_png_write(p, ov.width, ov.height, ov.channels, ov.pixels);
        dfr_report_item *ri = &c->items[r->index];
        const char *base = strrchr(it->path, '/');
        char name[2048];
        snprintf(name, sizeof name, "%s/%s", it->defect, base ? base + 1 : it->path);
        ri->name = strdup(name);
        ri->defect = it->defect;
        ri->label = it->label;
        ri->score = score;
        ri->predicted = score > c->thr;
        if (!rc) rc = thumb(img, T, &ri->image);
        if (!rc) rc = thumb(&ov, T, &ri->overlay);
        if (!rc && it->mask_path) {
            dfrcl_image mk = {.width = S, .height = S, .channels = 1, .pixels = malloc(SS)};
            if (!mk.pixels) rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
            for (size_t k = 0; !rc && k < SS; k++) mk.pixels[k] = mask[k] ? 255 : 0;
            if (!rc) rc = thumb(&mk, T, &ri->mask);
            free(mk.pixels);
        }
    }
    dfrcl_image_free(&gt);
    dfrcl_image_free(&ov);
    if (o->progress) o->progress(o->user, r->index + 1, c->ts->count);
    return rc;
}

int dfr_evaluate(dfr_model *m, const dfr_test_set *ts, const dfr_eval_opts *o, dfr_metrics *res)
{
    int S = m->info.size, T = o->thumb_size > 0 ? o->thumb_size : 128;
    double thr = m->threshold;
    size_t SS = (size_t)S * S;
    uint8_t *mask = malloc(SS);
    dfr_eval_acc *acc = NULL;
    dfr_report_item *items = o->out_dir ? calloc((size_t)ts->count, sizeof *items) : NULL;
    dfr_curve proc = {0}, iroc = {0}, pro = {0};
    /* Decoding on a thread pool and scoring in batches on the devices (src/sched). */
    const char **paths = malloc((ts->count > 0 ? (size_t)ts->count : 1) * sizeof *paths);
    dfr_scorer *sc = NULL;
    for (int i = 0; paths && i < ts->count; i++) paths[i] = ts->items[i].path;
    int rc = (!mask || !paths || (o->out_dir && !items))
                 ? dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory")
                 : dfr_eval_acc_new(&acc, S, S, ts->count);
    if (!rc) rc = dfr_scorer_open(&sc, o->models ? o->models : &m, o->models ? o->n_models : 1,
                                  &o->sched);
    if (!rc && ts->missing_masks)
        dfr_rt_log(m->rt, 1, "warning: %d defective image(s) have no ground-truth mask: pixel-level metrics "
                   "are skipped, image AUROC only",
                ts->missing_masks);
    eval_ctx ctx = {ts, o, S, T, thr, mask, acc, items, m->rt};
    if (!rc) rc = dfr_scorer_run(sc, paths, ts->count, eval_one, &ctx, o->stop);
    dfr_scorer_close(&sc);
    free(paths);
    if (!rc && o->stop && *o->stop)
        rc = dfr_error(DFRCL_ERR_INTERRUPTED, "interrupted after all %d images", ts->count);
    if (!rc) rc = dfr_eval_acc_finish(acc, thr, res, &proc, &iroc, &pro);
    if (!rc) res->missing_masks = ts->missing_masks;
    if (!rc && ts->missing_masks) {
        res->pixel_auroc = res->aupro = NAN;
        res->best_f1 = res->best_f1_threshold = NAN;
        res->precision = res->recall = res->f1 = res->iou = NAN;
    }
    if (!rc && o->out_dir) {
        char pauc[64] = "AUROC n/a", iauc[64] = "AUROC n/a", apro[64] = "AUPRO n/a";
        if (isfinite(res->pixel_auroc)) snprintf(pauc, sizeof pauc, "AUROC %.4f", res->pixel_auroc);
        if (isfinite(res->image_auroc)) snprintf(iauc, sizeof iauc, "AUROC %.4f", res->image_auroc);
        if (isfinite(res->aupro)) snprintf(apro, sizeof apro, "AUPRO %.4f", res->aupro);
        dfr_report_curve curves[3] = {
            {"Pixel ROC", proc.x, proc.y, proc.n, pauc, "False positive rate", "True positive rate", 0, 1, 0, 1, 1},
            {"Image ROC", iroc.x, iroc.y, iroc.n, iauc, "False positive rate", "True positive rate", 0, 1, 0, 1, 1},
            {"Per-region overlap", pro.x, pro.y, pro.n, apro, "Pixel false positive rate", "PRO", 0, 0.3, 0, 1, 0},
        };
        dfr_report_metric mets[] = {
            {"Pixel AUROC", res->pixel_auroc, "all test pixels"},
            {"Image AUROC", res->image_auroc, "image score = max of the map"},
            {"AUPRO", res->aupro, "FPR 0..0.3, normalised"},
            {"Best pixel F1", res->best_f1, "over all thresholds"},
            {"Precision", res->precision, "pixels, at the model's threshold"},
            {"Recall", res->recall, "pixels, at the model's threshold"},
            {"F1", res->f1, "pixels, at the model's threshold"},
            {"IoU", res->iou, "pixels, at the model's threshold"},
        };
        dfr_report r = {
            .title = o->title, .subtitle = o->subtitle, .metrics = mets,
            .n_metrics = (int)(sizeof mets / sizeof mets[0]), .curves = curves, .n_curves = 3,
            .items = items, .n_items = ts->count, .threshold = thr, .settings_json = o->settings_json,
        };
        char p[8400];
        snprintf(p, sizeof p, "%s/report.html", o->out_dir);
        rc = dfr_report_write_html(p, &r);
    }
    if (items)
        for (int i = 0; i < ts->count; i++) {
            free((char *)items[i].name);
            dfrcl_image_free(&items[i].image);
            dfrcl_image_free(&items[i].overlay);
            dfrcl_image_free(&items[i].mask);
        }
    free(items);
    dfr_curve_free(&proc);
    dfr_curve_free(&iroc);
    dfr_curve_free(&pro);
    dfr_eval_acc_free(&acc);
    free(mask);
    return rc;
}

static void add_num(cJSON *o, const char *k, double v)
{
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

char *dfr_metrics_json(const dfr_metrics *mt)
{
    cJSON *o = cJSON_CreateObject();
    add_num(o, "pixel_auroc", mt->pixel_auroc);
    add_num(o, "image_auroc", mt->image_auroc);
    add_num(o, "aupro", mt->aupro);
    add_num(o, "best_f1", mt->best_f1);
    add_num(o, "best_f1_threshold", mt->best_f1_threshold);
    add_num(o, "threshold", mt->threshold);
    add_num(o, "precision", mt->precision);
    add_num(o, "recall", mt->recall);
    add_num(o, "f1", mt->f1);
    add_num(o, "iou", mt->iou);
    add_num(o, "images", mt->images);
    add_num(o, "defective_images", mt->defective_images);
    add_num(o, "pixels", (double)mt->pixels);
    add_num(o, "defect_pixels", (double)mt->defect_pixels);
    add_num(o, "regions", (double)mt->regions);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}
