/* Exact anomaly-segmentation metrics (see metrics.h for the definitions and the memory budget). */
#include "eval/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

/* ---- float32 scores as sortable 32-bit keys ---- */

/* Unsigned order of the key equals the numeric order of the score (NaN excluded by callers).
 * -0.0 is mapped as +0.0: they compare equal, so they must be one tie. */
static inline uint32_t score_key(float f)
{
    uint32_t u;
    if (f == 0.0f) f = 0.0f;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static inline float key_score(uint32_t k)
{
    uint32_t u = (k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- in-place radix sort (MSD, 8-bit digits, "American flag"), ascending ----
 * In place so that sorting the pixels of a whole category needs no second buffer; an optional
 * payload array is permuted along with the keys. */

static void insertion_sort(uint32_t *k, uint32_t *p, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        uint32_t v = k[i], pv = p ? p[i] : 0;
        size_t j = i;
        while (j > 0 && k[j - 1] > v) {
            k[j] = k[j - 1];
            if (p) p[j] = p[j - 1];
            j--;
        }
        k[j] = v;
        if (p) p[j] = pv;
    }
}

static void radix_sort(uint32_t *k, uint32_t *p, size_t n, int shift)
{
    if (n <= 48) {
        insertion_sort(k, p, n);
        return;
    }
    size_t count[256] = {0}, start[256], next[256];
    for (size_t i = 0; i < n; i++) count[(k[i] >> shift) & 255u]++;
    size_t s = 0;
    for (int b = 0; b < 256; b++) {
        start[b] = next[b] = s;
        s += count[b];
    }
    for (int b = 0; b < 256; b++) {
        size_t end = start[b] + count[b];
        while (next[b] < end) {
            /* Carry the element at next[b] to its bucket, taking the one found there, until an
             * element of bucket b comes back. */
            uint32_t v = k[next[b]], pv = p ? p[next[b]] : 0;
            unsigned d = (v >> shift) & 255u;
            while (d != (unsigned)b) {
                size_t t = next[d]++;
                uint32_t tv = k[t];
                k[t] = v;
                v = tv;
                if (p) {
                    uint32_t tp = p[t];
                    p[t] = pv;
                    pv = tp;
                }
                d = (v >> shift) & 255u;
            }
            k[next[b]] = v;
            if (p) p[next[b]] = pv;
            next[b]++;
        }
    }
    if (shift == 0) return;
    for (int b = 0; b < 256; b++)
        if (count[b] > 1) radix_sort(k + start[b], p ? p + start[b] : NULL, count[b], shift - 8);
}

static void sort_keys(uint32_t *k, uint32_t *p, size_t n)
{
    if (n > 1) radix_sort(k, p, n, 24);
}

/* ---- curves: exact while they fit, else downsampled ---- */

typedef struct curve_builder {
    int on;
    double sx, step;        /* x scale for the distance rule; minimum |dx|/sx + |dy| kept */
    double *ex, *ey;        /* the first DFR_CURVE_MAX_POINTS exact points */
    long long n_exact;      /* points seen (may exceed the buffer) */
    double *dx, *dy;        /* the downsampled selection */
    int n_down;
    double px, py;          /* last point seen */
    int pending;            /* last point seen is not in the selection */
} curve_builder;

static void cb_free(curve_builder *cb)
{
    free(cb->ex);
    free(cb->ey);
    free(cb->dx);
    free(cb->dy);
    memset(cb, 0, sizeof *cb);
}

static int cb_init(curve_builder *cb, int wanted, double sx)
{
    memset(cb, 0, sizeof *cb);
    if (!wanted) return 0;
    size_t bytes = DFR_CURVE_MAX_POINTS * sizeof(double);
    cb->ex = malloc(bytes);
    cb->ey = malloc(bytes);
    cb->dx = malloc(bytes);
    cb->dy = malloc(bytes);
    if (!cb->ex || !cb->ey || !cb->dx || !cb->dy) {
        cb_free(cb);
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "metrics: out of memory for curves");
    }
    cb->sx = sx;
    cb->step = 2.0 / (DFR_CURVE_MAX_POINTS - 2);
    return 0;
}

static void cb_add(curve_builder *cb, double x, double y)
{
    if (!cb->on) return;
    if (cb->n_exact < DFR_CURVE_MAX_POINTS) {
        cb->ex[cb->n_exact] = x;
        cb->ey[cb->n_exact] = y;
    }
    cb->n_exact++;
    /* The path from (0,0) is monotone in both coordinates and at most 2 long in this distance,
     * so kept points are at most 2/step + 2 = MAX; the last slot stays free for the end point. */
    int keep = cb->n_down == 0;
    if (!keep && cb->n_down < DFR_CURVE_MAX_POINTS - 1) {
        double d = fabs(x - cb->dx[cb->n_down - 1]) / cb->sx + fabs(y - cb->dy[cb->n_down - 1]);
        keep = d >= cb->step;
    }
    if (keep) {
        cb->dx[cb->n_down] = x;
        cb->dy[cb->n_down] = y;
        cb->n_down++;
    }
    cb->px = x;
    cb->py = y;
    cb->pending = !keep;
}

/* Moves the finished curve into out (which must be empty). */
static int cb_finish(curve_builder *cb, dfr_curve *out)
{
    if (!cb->on || !out) return 0;
    if (cb->pending) {
        cb->dx[cb->n_down] = cb->px;
        cb->dy[cb->n_down] = cb->py;
        cb->n_down++;
    }
    int exact = cb->n_exact <= DFR_CURVE_MAX_POINTS;
    int n = exact ? (int)cb->n_exact : cb->n_down;
    double *x = malloc((size_t)n * sizeof(double)), *y = malloc((size_t)n * sizeof(double));
    if (!x || !y) {
        free(x);
        free(y);
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "metrics: out of memory for curves");
    }
    memcpy(x, exact ? cb->ex : cb->dx, (size_t)n * sizeof(double));
    memcpy(y, exact ? cb->ey : cb->dy, (size_t)n * sizeof(double));
    out->x = x;
    out->y = y;
    out->n = n;
    return 0;
}

void dfr_curve_free(dfr_curve *c)
{
    if (!c) return;
    free(c->x);
    free(c->y);
    c->x = c->y = NULL;
    c->n = 0;
}

/* ---- one descending walk over the sorted keys of both classes ---- */

typedef struct walk_in {
    const uint32_t *nk; /* normal keys, ascending */
    size_t nn;
    const uint32_t *dk; /* defective keys, ascending */
    size_t nd;
    const uint32_t *rid;      /* region of each dk, or NULL (no PRO) */
    const uint32_t *reg_size; /* pixels per region */
    size_t nreg;
    double threshold;
} walk_in;

typedef struct walk_out {
    double auroc, aupro, best_f1, best_thr;
    uint64_t tp_t, fp_t; /* counts at score > threshold */
} walk_out;

/* Neumaier-compensated running sum: PRO adds millions of 1/|region| terms. */
static inline void csum_add(double *s, double *c, double v)
{
    double t = *s + v;
    if (fabs(*s) >= fabs(v)) *c += (*s - t) + v;
    else *c += (v - t) + *s;
    *s = t;
}

static void walk(const walk_in *in, walk_out *out, curve_builder *roc, curve_builder *pro)
{
    const uint64_t N = in->nn, P = in->nd;
    size_t i = in->nn, j = in->nd;
    uint64_t TP = 0, FP = 0, auc2 = 0;
    double best_num = 0, best_den = 1, best_thr = NAN;
    int has_best = 0;
    int do_pro = in->rid && in->nreg > 0 && N > 0;
    double lim = DFR_AUPRO_FPR_LIMIT * (double)N, area = 0, ps = 0, pc = 0;
    int pro_done = !do_pro;
    int do_roc = N > 0 && P > 0;

    out->tp_t = out->fp_t = 0;
    roc->on = roc->on && do_roc;
    pro->on = pro->on && do_pro;
    cb_add(roc, 0.0, 0.0);
    cb_add(pro, 0.0, 0.0);
    while (i > 0 || j > 0) {
        uint32_t k;
        if (i == 0) k = in->dk[j - 1];
        else if (j == 0) k = in->nk[i - 1];
        else k = in->nk[i - 1] > in->dk[j - 1] ? in->nk[i - 1] : in->dk[j - 1];
        uint64_t fg = 0, tg = 0;
        while (i > 0 && in->nk[i - 1] == k) {
            i--;
            fg++;
        }
        double pro_before = ps + pc;
        while (j > 0 && in->dk[j - 1] == k) {
            j--;
            tg++;
            if (do_pro) csum_add(&ps, &pc, 1.0 / in->reg_size[in->rid[j]]);
        }
        /* Each normal pixel of the group is beaten by every earlier positive and ties with the
         * group's positives (1/2 each): twice the count stays an integer. */
        auc2 += fg * (2 * TP + tg);
        uint64_t F0 = FP;
        TP += tg;
        FP += fg;
        double v = key_score(k);
        if (v > in->threshold) { /* the model's rule: a pixel above the threshold is anomalous */
            out->tp_t = TP;
            out->fp_t = FP;
        }
        if (P > 0) {
            /* F1 = 2TP / (TP + FP + P); ">=" moves ties to the lower threshold. */
            double num = 2.0 * (double)TP, den = (double)(TP + FP + P);
            if (!has_best || num * best_den >= best_num * den) {
                best_num = num;
                best_den = den;
                best_thr = v;
                has_best = 1;
            }
        }
        if (do_roc) cb_add(roc, (double)FP / (double)N, (double)TP / (double)P);
        if (!pro_done) {
            double pro_after = ps + pc, f0 = (double)F0, f1 = (double)FP;
            if (f1 <= lim) {
                area += (f1 - f0) * (pro_before + pro_after) * 0.5;
                cb_add(pro, f1 / (double)N, pro_after / (double)in->nreg);
            } else {
                /* Cut the segment at the FPR limit, as np.interp does between the two points. */
                double t = (lim - f0) / (f1 - f0);
                double pl = pro_before + t * (pro_after - pro_before);
                area += (lim - f0) * (pro_before + pl) * 0.5;
                cb_add(pro, DFR_AUPRO_FPR_LIMIT, pl / (double)in->nreg);
                pro_done = 1;
            }
        }
    }
    out->auroc = do_roc ? (double)auc2 / (2.0 * (double)N * (double)P) : NAN;
    out->aupro = do_pro ? area / ((double)N * (double)in->nreg) / DFR_AUPRO_FPR_LIMIT : NAN;
    out->best_f1 = has_best ? best_num / best_den : NAN;
    out->best_thr = has_best ? best_thr : NAN;
}

/* ---- standalone AUROC ---- */

/* Splits scores into keys: negatives from the front of k, positives from the back. */
static int split_keys(const float *scores, const uint8_t *labels, size_t n, uint32_t *k,
                      size_t *nneg)
{
    size_t a = 0, b = n;
    for (size_t i = 0; i < n; i++) {
        if (isnan(scores[i]))
            return dfr_error(DFRCL_ERR_INVALID_ARG, "metrics: score %zu is NaN", i);
        if (labels[i]) k[--b] = score_key(scores[i]);
        else k[a++] = score_key(scores[i]);
    }
    *nneg = a;
    return 0;
}

static int auroc_curve(const float *scores, const uint8_t *labels, size_t n, double *auroc,
                       dfr_curve *curve)
{
    *auroc = NAN;
    if (n == 0) return 0;
    if (!scores || !labels)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "metrics: auroc: NULL scores or labels");
    if ((uint64_t)n >= UINT32_MAX)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "metrics: auroc: %zu scores (at most 2^32-2)", n);
    uint32_t *k = malloc(n * sizeof(uint32_t));
    if (!k) return dfr_error(DFRCL_ERR_HOST_MEMORY, "metrics: auroc: out of memory (%zu scores)", n);
    size_t nn = 0;
    int rc = split_keys(scores, labels, n, k, &nn);
    curve_builder roc, none;
    if (!rc) rc = cb_init(&roc, curve != NULL, 1.0);
    if (rc) {
        free(k);
        return rc;
    }
    roc.on = curve != NULL;
    memset(&none, 0, sizeof none);
    sort_keys(k, NULL, nn);
    sort_keys(k + nn, NULL, n - nn);
    walk_in in = {k, nn, k + nn, n - nn, NULL, NULL, 0, INFINITY};
    walk_out o;
    walk(&in, &o, &roc, &none);
    *auroc = o.auroc;
    rc = cb_finish(&roc, curve);
    cb_free(&roc);
    free(k);
    return rc;
}

int dfr_auroc(const float *scores, const uint8_t *labels, size_t n, double *auroc)
{
    double dummy;
    return auroc_curve(scores, labels, n, auroc ? auroc : &dummy, NULL);
}

/* ---- accumulator ---- */

struct dfr_eval_acc {
    int w, h, max_images, images, defective_images;
    size_t hw;
    /* Keys: normal pixels in keys[0 .. n_norm), defective ones in keys[cap - n_def .. cap).
     * rid[j] is the region of keys[cap - 1 - j] (both grow away from the ends). */
    uint32_t *keys;
    size_t cap, n_norm, n_def;
    uint32_t *rid;
    size_t rid_cap;
    uint32_t *reg_size;
    size_t n_reg, reg_cap;
    float *img_score;
    uint8_t *img_label;
    uint32_t *lab, *stack; /* labelling scratch, one image */
};

int dfr_eval_acc_new(dfr_eval_acc **out, int width, int height, int max_images)
{
    if (!out) return dfr_error(DFRCL_ERR_INVALID_ARG, "metrics: NULL accumulator pointer");
    *out = NULL;
    if (width < 1 || height < 1 || max_images < 1)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "metrics: bad accumulator size %d x %d x %d images (each must be >= 1)",
                         width, height, max_images);
    uint64_t hw = (uint64_t)width * (uint64_t)height, total = hw * (uint64_t)max_images;
    if (total >= UINT32_MAX || total > SIZE_MAX / sizeof(uint32_t))
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "metrics: %d images of %d x %d are %llu pixels (at most 2^32-2)",
                         max_images, width, height, (unsigned long long)total);
    dfr_eval_acc *a = calloc(1, sizeof *a);
    if (!a) return dfr_error(DFRCL_ERR_HOST_MEMORY, "metrics: out of memory");
    a->w = width;
    a->h = height;
    a->max_images = max_images;
    a->hw = (size_t)hw;
    a->cap = (size_t)total;
    a->keys = malloc(a->cap * sizeof(uint32_t));
    a->img_score = malloc((size_t)max_images * sizeof(float));
    a->img_label = malloc((size_t)max_images);
    a->lab = malloc(a->hw * sizeof(uint32_t));
    a->stack = malloc(a->hw * sizeof(uint32_t));
    if (!a->keys || !a->img_score || !a->img_label || !a->lab || !a->stack) {
        dfr_eval_acc_free(&a);
        return dfr_error(DFRCL_ERR_HOST_MEMORY,
                         "metrics: out of memory for %llu pixels (%llu MB)",
                         (unsigned long long)total, (unsigned long long)(total * 4 >> 20));
    }
    *out = a;
    return 0;
}

void dfr_eval_acc_free(dfr_eval_acc **pa)
{
    if (!pa || !*pa) return;
    dfr_eval_acc *a = *pa;
    free(a->keys);
    free(a->rid);
    free(a->reg_size);
    free(a->img_score);
    free(a->img_label);
    free(a->lab);
    free(a->stack);
    free(a);
    *pa = NULL;
}

size_t dfr_eval_acc_bytes(const dfr_eval_acc *a)
{
    if (!a) return 0;
    return sizeof *a + a->cap * 4 + a->rid_cap * 4 + a->reg_cap * 4 + (size_t)a->max_images * 5 +
           a->hw * 8;
}

static int grow_u32(uint32_t **p, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    size_t c = *cap < 1024 ? 1024 : *cap;
    while (c < need) c = c > SIZE_MAX / 8 ? need : c * 2;
    uint32_t *q = realloc(*p, c * sizeof(uint32_t));
    if (!q) return dfr_error(DFRCL_ERR_HOST_MEMORY, "metrics: out of memory (%zu entries)", c);
    *p = q;
    *cap = c;
    return 0;
}

/* 8-connected flood fill of mask into a->lab (1-based region numbers); region r's pixel count
 * goes to sizes[r - 1]. Returns the number of regions. */
static uint32_t label_regions(dfr_eval_acc *a, const uint8_t *mask, uint32_t *sizes)
{
    const int w = a->w, h = a->h;
    uint32_t *lab = a->lab, *stack = a->stack, r = 0;
    memset(lab, 0, a->hw * sizeof(uint32_t));
    for (size_t p = 0; p < a->hw; p++) {
        if (!mask[p] || lab[p]) continue;
        r++;
        lab[p] = r;
        size_t top = 0;
        uint32_t size = 0;
        stack[top++] = (uint32_t)p;
        while (top > 0) {
            uint32_t q = stack[--top];
            int qx = (int)(q % (uint32_t)w), qy = (int)(q / (uint32_t)w);
            size++;
            for (int y = qy - 1; y <= qy + 1; y++) {
                if (y < 0 || y >= h) continue;
                for (int x = qx - 1; x <= qx + 1; x++) {
                    if (x < 0 || x >= w) continue;
                    size_t t = (size_t)y * (size_t)w + (size_t)x;
                    if (mask[t] && !lab[t]) {
                        lab[t] = r;
                        stack[top++] = (uint32_t)t; /* each pixel is pushed once: top <= hw */
                    }
                }
            }
        }
        sizes[r - 1] = size;
    }
    return r;
}

int dfr_eval_acc_add(dfr_eval_acc *a, const float *map, const uint8_t *mask, int label)
{
    if (!a || !map) return dfr_error(DFRCL_ERR_INVALID_ARG, "metrics: add: NULL accumulator or map");
    int idx = a->images;
    if (label != 0 && label != 1)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "metrics: image %d: label %d (must be 0 or 1)", idx,
                         label);
    if (idx >= a->max_images)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "metrics: more than the %d images announced",
                         a->max_images);
    float mx = -INFINITY;
    for (size_t p = 0; p < a->hw; p++) {
        if (isnan(map[p]))
            return dfr_error(DFRCL_ERR_INVALID_ARG, "metrics: image %d: score at (%zu, %zu) is NaN",
                             idx, p % (size_t)a->w, p / (size_t)a->w);
        if (map[p] > mx) mx = map[p];
    }
    size_t nd = 0;
    if (mask)
        for (size_t p = 0; p < a->hw; p++) nd += mask[p] != 0;
    if (nd > 0 && label == 0)
        return dfr_error(DFRCL_ERR_INVALID_ARG,
                         "metrics: image %d is labelled good but its mask has %zu defective pixels",
                         idx, nd);
    uint32_t nr = 0;
    if (nd > 0) {
        int rc = grow_u32(&a->rid, &a->rid_cap, a->n_def + nd);
        if (!rc) rc = grow_u32(&a->reg_size, &a->reg_cap, a->n_reg + nd);
        if (rc) return rc;
        nr = label_regions(a, mask, a->reg_size + a->n_reg);
    }
    for (size_t p = 0; p < a->hw; p++) {
        uint32_t k = score_key(map[p]);
        if (nd > 0 && mask[p]) {
            a->keys[a->cap - 1 - a->n_def] = k;
            a->rid[a->n_def] = (uint32_t)a->n_reg + a->lab[p] - 1;
            a->n_def++;
        } else {
            a->keys[a->n_norm++] = k;
        }
    }
    a->n_reg += nr;
    a->img_score[idx] = mx;
    a->img_label[idx] = (uint8_t)label;
    a->defective_images += label;
    a->images++;
    return 0;
}

static void reverse_u32(uint32_t *p, size_t n)
{
    for (size_t i = 0, j = n; i + 1 < j; i++, j--) {
        uint32_t t = p[i];
        p[i] = p[j - 1];
        p[j - 1] = t;
    }
}

int dfr_eval_acc_finish(dfr_eval_acc *a, double threshold, dfr_metrics *m, dfr_curve *pixel_roc,
                        dfr_curve *image_roc, dfr_curve *pro)
{
    dfr_curve *curves[3] = {pixel_roc, image_roc, pro};
    for (int c = 0; c < 3; c++)
        if (curves[c]) memset(curves[c], 0, sizeof *curves[c]);
    if (!a || !m) return dfr_error(DFRCL_ERR_INVALID_ARG, "metrics: finish: NULL argument");
    if (isnan(threshold)) return dfr_error(DFRCL_ERR_INVALID_ARG, "metrics: the threshold is NaN");

    curve_builder cb_roc, cb_pro;
    int rc = cb_init(&cb_roc, pixel_roc != NULL, 1.0);
    if (!rc) {
        rc = cb_init(&cb_pro, pro != NULL, DFR_AUPRO_FPR_LIMIT);
        if (rc) cb_free(&cb_roc);
    }
    if (rc) return rc;
    cb_roc.on = pixel_roc != NULL;
    cb_pro.on = pro != NULL;

    /* Pixels. The region ids are reversed so that rid[i] pairs with the i-th defective key in
     * memory order for the sort, and reversed back afterwards so that add may go on. */
    uint32_t *dk = a->keys + (a->cap - a->n_def);
    reverse_u32(a->rid, a->n_def);
    sort_keys(a->keys, NULL, a->n_norm);
    sort_keys(dk, a->rid, a->n_def);
    walk_in in = {a->keys, a->n_norm, dk, a->n_def, a->rid, a->reg_size, a->n_reg, threshold};
    walk_out px;
    walk(&in, &px, &cb_roc, &cb_pro);
    reverse_u32(a->rid, a->n_def);

    memset(m, 0, sizeof *m);
    m->pixel_auroc = px.auroc;
    m->aupro = px.aupro;
    m->best_f1 = px.best_f1;
    m->best_f1_threshold = px.best_thr;
    m->threshold = threshold;
    double tp = (double)px.tp_t, fp = (double)px.fp_t, P = (double)a->n_def;
    m->precision = tp + fp > 0 ? tp / (tp + fp) : NAN;
    m->recall = P > 0 ? tp / P : NAN;
    m->f1 = fp + P > 0 ? 2 * tp / (tp + fp + P) : NAN;
    m->iou = fp + P > 0 ? tp / (fp + P) : NAN;
    m->pixels = (long long)(a->n_norm + a->n_def);
    m->defect_pixels = (long long)a->n_def;
    m->regions = (long long)a->n_reg;
    m->images = a->images;
    m->defective_images = a->defective_images;

    rc = cb_finish(&cb_roc, pixel_roc);
    if (!rc) rc = cb_finish(&cb_pro, pro);
    cb_free(&cb_roc);
    cb_free(&cb_pro);
    /* Images: the maximum of each map. */
    if (!rc) rc = auroc_curve(a->img_score, a->img_label, (size_t)a->images, &m->image_auroc, image_roc);
    if (rc)
        for (int c = 0; c < 3; c++) dfr_curve_free(curves[c]);
    return rc;
}
