/* Metrics against values computed independently: scikit-learn (AUROC, ROC curves, best F1), numpy
 * (precision/recall/F1/IoU), scipy (8-connected regions) and an independent Python AUPRO (the one tools/make_metrics_fixtures.py imports),
 * stored in tests/fixtures/metrics_*.safetensors by tools/make_metrics_fixtures.py; hand-computed
 * tiny cases; AUROC against a brute-force pair count; degenerate inputs; and a large case
 * (300 maps of 256x256) against a histogram computation, with its peak memory measured.
 * Tolerance: 1e-9 absolute on every metric against the references (they agree to ~1e-15). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <time.h>

#include "eval/metrics.h"
#include "eval/published.h"
#include "io/safetensors.h"
#include "testutil.h"
#include "util/error.h"

#define TOL 1e-9

/* a == b within tol, or both NaN */
static int same(double a, double b, double tol)
{
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    if (isinf(a) || isinf(b)) return a == b;
    return fabs(a - b) <= tol;
}

#define assert_same(a, b, tol)                                                                  \
    do {                                                                                        \
        double a_ = (a), b_ = (b);                                                              \
        if (!same(a_, b_, (tol))) fail_msg("%s = %.17g, expected %.17g", #a, a_, b_);           \
    } while (0)

/* ---- standalone AUROC ---- */

static double auroc_of(const float *s, const uint8_t *l, size_t n)
{
    double v = -1;
    assert_int_equal(dfr_auroc(s, l, n, &v), 0);
    return v;
}

static void test_auroc_tiny(void **state)
{
    (void)state;
    /* 3 pixels, perfectly separated */
    float s1[] = {0.1f, 0.4f, 0.35f};
    uint8_t l1[] = {0, 1, 1};
    assert_same(auroc_of(s1, l1, 3), 1.0, 0);
    /* inverted */
    uint8_t l1i[] = {1, 0, 0};
    assert_same(auroc_of(s1, l1i, 3), 0.0, 0);
    /* tie between the positive and one negative: (0.5 + 1) / 2 */
    float s2[] = {0.5f, 0.5f, 0.2f};
    uint8_t l2[] = {1, 0, 0};
    assert_same(auroc_of(s2, l2, 3), 0.75, 0);
    /* P=2 N=2, three tied: pairs 0.5+0.5+1+1 of 4 */
    float s3[] = {0.3f, 0.3f, 0.3f, 0.1f};
    uint8_t l3[] = {1, 0, 1, 0};
    assert_same(auroc_of(s3, l3, 4), 0.75, 0);
    /* all equal: 0.5; labels other than 1 count as positive */
    float s4[] = {2, 2, 2, 2, 2};
    uint8_t l4[] = {0, 255, 0, 7, 0};
    assert_same(auroc_of(s4, l4, 5), 0.5, 0);
    /* -0.0 and +0.0 are one score */
    float s5[] = {-0.0f, 0.0f};
    uint8_t l5[] = {1, 0};
    assert_same(auroc_of(s5, l5, 2), 0.5, 0);
    /* infinities and negatives order numerically */
    float s6[] = {INFINITY, 1.0f, -INFINITY, -3.0f, -2.5f};
    uint8_t l6[] = {1, 0, 0, 0, 1};
    /* pos inf beats 3; pos -2.5 beats -inf and -3 -> 5 of 6 */
    assert_same(auroc_of(s6, l6, 5), 5.0 / 6.0, 1e-15);
}

static void test_auroc_degenerate(void **state)
{
    (void)state;
    float s[] = {0.1f, NAN, 0.3f};
    uint8_t pos[] = {1, 1, 1}, neg[] = {0, 0, 0}, mix[] = {0, 1, 0};
    assert_true(isnan(auroc_of(s, pos, 1))); /* no negative */
    assert_true(isnan(auroc_of(s, neg, 1))); /* no positive */
    assert_true(isnan(auroc_of(NULL, NULL, 0)));
    double v = 0;
    assert_int_equal(dfr_auroc(s, mix, 3, &v), DFRCL_ERR_INVALID_ARG); /* NaN score */
    assert_int_equal(dfr_auroc(NULL, mix, 3, &v), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_auroc(s, NULL, 3, &v), DFRCL_ERR_INVALID_ARG);
}

/* Against the definition: the fraction of (positive, negative) pairs ordered right, ties 1/2.
 * Sizes straddle the radix sort's insertion-sort cutoff; few levels make many ties. */
static void test_auroc_pairs(void **state)
{
    (void)state;
    size_t sizes[] = {1, 2, 7, 47, 48, 49, 300, 1000, 3001};
    for (int c = 0; c < 18; c++) {
        size_t n = sizes[c % 9];
        int levels = c < 9 ? 11 : 100000;
        float *s = malloc(n * sizeof(float));
        uint8_t *l = malloc(n);
        for (size_t i = 0; i < n; i++) {
            uint32_t r = dfr_test_hash(40 + c, (uint32_t)i);
            l[i] = (r >> 28) < 5;
            float v = (float)((int)(dfr_test_hash(80 + c, (uint32_t)i) % (uint32_t)levels) - levels / 3);
            if (!l[i]) v -= levels / 10; /* separate the classes somewhat */
            s[i] = v * 0.37f;
            if (r % 97 == 0) s[i] = (r & 1) ? INFINITY : -INFINITY;
            if (r % 89 == 0) s[i] = (r & 2) ? 0.0f : -0.0f;
        }
        double pairs = 0, P = 0, N = 0;
        for (size_t i = 0; i < n; i++) {
            if (l[i]) P++;
            else N++;
            if (!l[i]) continue;
            for (size_t j = 0; j < n; j++)
                if (!l[j]) pairs += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
        }
        double want = P > 0 && N > 0 ? pairs / (P * N) : NAN;
        double got = auroc_of(s, l, n);
        if (!same(got, want, 1e-12)) fail_msg("case %d (n=%zu): %.17g, expected %.17g", c, n, got, want);
        free(s);
        free(l);
    }
}

/* ---- accumulator, hand-computed ---- */

static void check_curve(const dfr_curve *c, const double *x, const double *y, int n)
{
    assert_int_equal(c->n, n);
    for (int i = 0; i < n; i++) {
        assert_same(c->x[i], x[i], 1e-15);
        assert_same(c->y[i], y[i], 1e-15);
    }
}

static void test_acc_hand(void **state)
{
    (void)state;
    /* 2 images of 3x1. Good: {0.1, 0.2, 0.3}. Defective: {0.4, 0.2, 0.05}, mask {1, 1, 0}: one
     * region of 2 pixels. Normals 0.1 0.2 0.3 0.05 (N=4), defects 0.4 0.2 (P=2).
     * AUROC: 0.4 beats 4, 0.2 beats 2 and ties 1 -> 6.5/8.
     * (FP, PRO) by threshold: 0.4 (0, .5), 0.3 (1, .5), 0.2 (2, 1), ...; FPR limit 0.3 = 1.2 FP:
     * area 1 * .5 + .2 * (.5 + .6) / 2 = .61 FP units -> .61 / 4 / .3.
     * F1 = 2TP/(TP+FP+P): 0.4: 2/3, 0.3: 1/2, 0.2: 4/6, 0.1: 4/7 -> 2/3 at 0.4 and 0.2: the lower.
     * At 0.25: TP 1, FP 1: P .5, R .5, F1 2/4, IoU 1/3. At 0.2: TP 2, FP 2: .5, 1, 4/6, 2/4. */
    float g[] = {0.1f, 0.2f, 0.3f}, d[] = {0.4f, 0.2f, 0.05f};
    uint8_t md[] = {1, 1, 0};
    dfr_eval_acc *a = NULL;
    assert_int_equal(dfr_eval_acc_new(&a, 3, 1, 2), 0);
    assert_int_equal(dfr_eval_acc_add(a, g, NULL, 0), 0);
    assert_int_equal(dfr_eval_acc_add(a, d, md, 1), 0);
    dfr_metrics m;
    dfr_curve roc, iroc, pro;
    assert_int_equal(dfr_eval_acc_finish(a, 0.25, &m, &roc, &iroc, &pro), 0);
    assert_same(m.pixel_auroc, 6.5 / 8, 1e-15);
    assert_same(m.image_auroc, 1.0, 0);
    assert_same(m.aupro, 0.61 / 4 / 0.3, 1e-15);
    assert_same(m.best_f1, 2.0 / 3.0, 1e-15);
    assert_same(m.best_f1_threshold, (double)0.2f, 0);
    assert_same(m.precision, 0.5, 0);
    assert_same(m.recall, 0.5, 0);
    assert_same(m.f1, 0.5, 0);
    assert_same(m.iou, 1.0 / 3.0, 1e-15);
    assert_int_equal(m.pixels, 6);
    assert_int_equal(m.defect_pixels, 2);
    assert_int_equal(m.regions, 1);
    assert_int_equal(m.images, 2);
    assert_int_equal(m.defective_images, 1);
    double rx[] = {0, 0, .25, .5, .75, 1}, ry[] = {0, .5, .5, 1, 1, 1};
    check_curve(&roc, rx, ry, 6);
    double px[] = {0, 0, .25, .3}, py[] = {0, .5, .5, .6};
    check_curve(&pro, px, py, 4);
    double ix[] = {0, 0, 1}, iy[] = {0, 1, 1};
    check_curve(&iroc, ix, iy, 3);
    dfr_curve_free(&roc);
    dfr_curve_free(&iroc);
    dfr_curve_free(&pro);
    assert_null(roc.x);
    /* the model's threshold is exclusive: exactly 0.2f leaves the 0.2f pixels out, just below
     * it takes them */
    assert_int_equal(dfr_eval_acc_finish(a, (double)0.2f, &m, NULL, NULL, NULL), 0);
    assert_true(m.recall < 1.0);
    assert_int_equal(dfr_eval_acc_finish(a, nextafter((double)0.2f, 0.0), &m, NULL, NULL, NULL), 0);
    assert_same(m.precision, 0.5, 0);
    assert_same(m.recall, 1.0, 0);
    assert_same(m.f1, 4.0 / 6.0, 1e-15);
    assert_same(m.iou, 0.5, 0);
    /* nothing predicted: precision undefined, F1 and IoU 0 */
    assert_int_equal(dfr_eval_acc_finish(a, INFINITY, &m, NULL, NULL, NULL), 0);
    assert_true(isnan(m.precision));
    assert_same(m.recall, 0, 0);
    assert_same(m.f1, 0, 0);
    assert_same(m.iou, 0, 0);
    dfr_eval_acc_free(&a);
    assert_null(a);
    dfr_eval_acc_free(&a);
}

/* 8-connected labelling: diagonal neighbours join, regions reaching every border, and PRO
 * weighting regions equally whatever their size. */
static void test_regions(void **state)
{
    (void)state;
    enum { W = 5, H = 4 };
    const uint8_t mask[H * W] = {
        1, 0, 0, 0, 1, /* (0,0)-(1,1)-(2,2) diagonal chain: one region */
        0, 1, 0, 0, 1, /* right column (4,0)-(4,1): a second one */
        0, 0, 1, 0, 0,
        1, 0, 0, 0, 1, /* two single pixels in the bottom corners: 4 regions */
    };
    float s[H * W];
    /* The single pixel at the bottom left scores highest, the rest of the defects lowest:
     * at the top threshold PRO = 1/4 (one region of four complete), FPR 0. */
    for (int i = 0; i < W * H; i++) s[i] = mask[i] ? -1.0f : (float)i / 100;
    s[15] = 5.0f;
    dfr_eval_acc *a = NULL;
    assert_int_equal(dfr_eval_acc_new(&a, W, H, 1), 0);
    assert_int_equal(dfr_eval_acc_add(a, s, mask, 1), 0);
    dfr_metrics m;
    dfr_curve pro;
    assert_int_equal(dfr_eval_acc_finish(a, 0, &m, NULL, NULL, &pro), 0);
    assert_int_equal(m.regions, 4);
    assert_int_equal(m.defect_pixels, 7);
    assert_true(pro.n >= 2);
    assert_same(pro.x[1], 0.0, 0);
    assert_same(pro.y[1], 0.25, 1e-15);
    /* the other defects come after every normal pixel: PRO stays 1/4 up to FPR 0.3 */
    assert_same(m.aupro, 0.25, 1e-15);
    dfr_curve_free(&pro);
    dfr_eval_acc_free(&a);
}

/* ---- fixtures ---- */

static double meta_num(dfr_safetensors *st, const char *key)
{
    const char *v = dfr_st_metadata(st, key);
    if (!v) fail_msg("fixture lacks metadata %s", key);
    char *end;
    double d = strtod(v, &end);
    assert_true(end != v && *end == 0);
    return d;
}

static int meta_list(dfr_safetensors *st, const char *key, double *out, int max)
{
    const char *v = dfr_st_metadata(st, key);
    if (!v) fail_msg("fixture lacks metadata %s", key);
    int n = 0;
    for (;;) {
        char *end;
        double d = strtod(v, &end);
        if (end == v) break;
        assert_true(n < max);
        out[n++] = d;
        v = end;
    }
    return n;
}

/* A tensor of dtype dt read raw; *count receives its element count. */
static void *read_tensor(dfr_safetensors *st, const char *name, dfr_dtype dt, size_t *count)
{
    const dfr_st_tensor *t = dfr_st_find(st, name);
    if (!t) fail_msg("fixture lacks tensor %s", name);
    assert_int_equal(t->dtype, dt);
    size_t bytes = (size_t)(t->end - t->begin);
    void *p = malloc(bytes ? bytes : 1);
    assert_non_null(p);
    assert_int_equal(dfr_st_read_raw(st, t, p, bytes), 0);
    *count = (size_t)dfr_st_numel(t);
    return p;
}

/* Is (x, y) one of the reference curve's points? (x is non-decreasing along it) */
static int on_curve(double x, double y, const double *rx, const double *ry, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fabs(rx[i] - x) <= 1e-12 && fabs(ry[i] - y) <= 1e-12) return 1;
    return 0;
}

static void check_against_reference(const char *what, const dfr_curve *c, const double *rx,
                                    const double *ry, size_t rn)
{
    assert_true(c->n >= 2 && c->n <= DFR_CURVE_MAX_POINTS);
    if (rn <= DFR_CURVE_MAX_POINTS) assert_int_equal((size_t)c->n, rn); /* exact curve */
    for (int i = 0; i < c->n; i++) {
        if (!on_curve(c->x[i], c->y[i], rx, ry, rn))
            fail_msg("%s point %d (%.17g, %.17g) is not on the reference curve", what, i, c->x[i], c->y[i]);
        if (i > 0 && (c->x[i] < c->x[i - 1] || c->y[i] < c->y[i - 1])) fail_msg("%s not monotone", what);
    }
    assert_same(c->x[0], 0, 0);
    assert_same(c->y[0], 0, 0);
    assert_same(c->x[c->n - 1], 1, 0);
    assert_same(c->y[c->n - 1], 1, 0);
}

static double trapezoid(const dfr_curve *c)
{
    double a = 0;
    for (int i = 1; i < c->n; i++) a += (c->x[i] - c->x[i - 1]) * (c->y[i] + c->y[i - 1]) / 2;
    return a;
}

static void run_fixture(const char *file)
{
    dfr_safetensors *st = NULL;
    if (dfr_st_open(&st, dfr_test_fixture(file)) != 0) fail_msg("%s", dfrcl_last_error());
    const dfr_st_tensor *ts = dfr_st_find(st, "scores");
    assert_non_null(ts);
    assert_int_equal(ts->ndim, 3);
    int n = (int)ts->shape[0], h = (int)ts->shape[1], w = (int)ts->shape[2];
    size_t hw = (size_t)w * h, cnt;
    float *scores = malloc(hw * n * sizeof(float));
    assert_int_equal(dfr_st_read_f32(st, "scores", 3, ts->shape, scores, hw * n), 0);
    uint8_t *masks = read_tensor(st, "masks", DFR_DT_U8, &cnt);
    assert_int_equal(cnt, hw * n);
    uint8_t *labels = read_tensor(st, "labels", DFR_DT_U8, &cnt);
    assert_int_equal(cnt, (size_t)n);
    size_t rn, irn;
    double *rfpr = read_tensor(st, "roc_fpr", DFR_DT_F64, &rn);
    double *rtpr = read_tensor(st, "roc_tpr", DFR_DT_F64, &cnt);
    assert_int_equal(cnt, rn);
    double *ifpr = read_tensor(st, "image_roc_fpr", DFR_DT_F64, &irn);
    double *itpr = read_tensor(st, "image_roc_tpr", DFR_DT_F64, &cnt);
    assert_int_equal(cnt, irn);

    dfr_eval_acc *a = NULL;
    assert_int_equal(dfr_eval_acc_new(&a, w, h, n), 0);
    for (int i = 0; i < n; i++) {
        /* good images go in without a mask, as callers give them */
        const uint8_t *mk = labels[i] ? masks + hw * i : NULL;
        int rc = dfr_eval_acc_add(a, scores + hw * i, mk, labels[i]);
        if (rc) fail_msg("%s", dfrcl_last_error());
    }
    double thr[16], prec[16], rec[16], f1[16], iou[16];
    int nt = meta_list(st, "thresholds", thr, 16);
    assert_int_equal(meta_list(st, "precision", prec, 16), nt);
    assert_int_equal(meta_list(st, "recall", rec, 16), nt);
    assert_int_equal(meta_list(st, "f1", f1, 16), nt);
    assert_int_equal(meta_list(st, "iou", iou, 16), nt);
    assert_true(nt >= 4);
    for (int t = 0; t < nt; t++) {
        dfr_metrics m;
        dfr_curve roc, iroc, pro;
        assert_int_equal(dfr_eval_acc_finish(a, thr[t], &m, &roc, &iroc, &pro), 0);
        assert_same(m.pixel_auroc, meta_num(st, "pixel_auroc"), TOL);
        assert_same(m.image_auroc, meta_num(st, "image_auroc"), TOL);
        assert_same(m.aupro, meta_num(st, "aupro"), TOL);
        assert_same(m.best_f1, meta_num(st, "best_f1"), TOL);
        if (meta_num(st, "best_f1_unique") == 1)
            assert_same(m.best_f1_threshold, meta_num(st, "best_f1_threshold"), 0);
        assert_int_equal(m.regions, (long long)meta_num(st, "regions"));
        assert_int_equal(m.pixels, (long long)meta_num(st, "pixels"));
        assert_int_equal(m.defect_pixels, (long long)meta_num(st, "defect_pixels"));
        assert_int_equal(m.images, (int)meta_num(st, "images"));
        assert_int_equal(m.defective_images, (int)meta_num(st, "defective_images"));
        assert_same(m.precision, prec[t], TOL);
        assert_same(m.recall, rec[t], TOL);
        assert_same(m.f1, f1[t], TOL);
        assert_same(m.iou, iou[t], TOL);
        check_against_reference("pixel ROC", &roc, rfpr, rtpr, rn);
        check_against_reference("image ROC", &iroc, ifpr, itpr, irn);
        /* with every point kept the curves integrate to the metrics exactly */
        if (rn <= DFR_CURVE_MAX_POINTS) assert_same(trapezoid(&roc), m.pixel_auroc, 1e-12);
        else assert_same(trapezoid(&roc), m.pixel_auroc, 2e-3);
        assert_true(pro.n >= 2 && pro.n <= DFR_CURVE_MAX_POINTS);
        assert_same(pro.x[pro.n - 1], DFR_AUPRO_FPR_LIMIT, 0);
        for (int i = 1; i < pro.n; i++) assert_true(pro.x[i] >= pro.x[i - 1] && pro.y[i] >= pro.y[i - 1]);
        double tol_pro = meta_num(st, "distinct_scores") < DFR_CURVE_MAX_POINTS - 2 ? 1e-12 : 1e-2;
        assert_same(trapezoid(&pro) / DFR_AUPRO_FPR_LIMIT, m.aupro, tol_pro);
        dfr_curve_free(&roc);
        dfr_curve_free(&iroc);
        dfr_curve_free(&pro);
    }
    /* the best-F1 threshold is inclusive (score >= it), the model's exclusive (score > it): just
     * below the best-F1 threshold, the F1 at the threshold is the best F1 (scores are floats, so
     * nothing lies between the two) */
    dfr_metrics m;
    double below = nextafter(meta_num(st, "best_f1_threshold"), -INFINITY);
    assert_int_equal(dfr_eval_acc_finish(a, below, &m, NULL, NULL, NULL), 0);
    assert_same(m.f1, meta_num(st, "best_f1"), TOL);
    dfr_eval_acc_free(&a);
    free(scores);
    free(masks);
    free(labels);
    free(rfpr);
    free(rtpr);
    free(ifpr);
    free(itpr);
    dfr_st_close(&st);
}

static void test_fixture_small(void **state)
{
    (void)state;
    run_fixture("metrics_small.safetensors");
}

static void test_fixture_mid(void **state)
{
    (void)state;
    run_fixture("metrics_mid.safetensors");
}

/* ---- degenerate inputs and errors ---- */

static void test_acc_degenerate(void **state)
{
    (void)state;
    dfr_eval_acc *a = NULL;
    dfr_metrics m;
    dfr_curve roc = {(double *)1, (double *)1, 5}, iroc, pro;
    float s[4] = {0.1f, 0.2f, 0.2f, 0.3f};
    uint8_t full[4] = {1, 1, 1, 1}, some[4] = {0, 1, 0, 0};

    assert_int_equal(dfr_eval_acc_new(&a, 0, 2, 1), DFRCL_ERR_INVALID_ARG);
    assert_null(a);
    assert_int_equal(dfr_eval_acc_new(&a, 2, 2, 0), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_eval_acc_new(&a, 65536, 65536, 1), DFRCL_ERR_INVALID_ARG); /* 2^32 pixels */
    assert_int_equal(dfr_eval_acc_new(NULL, 2, 2, 1), DFRCL_ERR_INVALID_ARG);

    /* no image at all: everything undefined, curves empty */
    assert_int_equal(dfr_eval_acc_new(&a, 2, 2, 3), 0);
    assert_int_equal(dfr_eval_acc_finish(a, 0.5, &m, &roc, &iroc, &pro), 0);
    assert_true(isnan(m.pixel_auroc) && isnan(m.image_auroc) && isnan(m.aupro) && isnan(m.best_f1));
    assert_true(isnan(m.precision) && isnan(m.recall) && isnan(m.f1) && isnan(m.iou));
    assert_int_equal(m.pixels, 0);
    assert_int_equal(roc.n + iroc.n + pro.n, 0);
    assert_null(roc.x);

    /* errors leave the accumulator as it was */
    float bad[4] = {0.1f, NAN, 0, 0};
    assert_int_equal(dfr_eval_acc_add(a, bad, NULL, 0), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_eval_acc_add(a, s, some, 0), DFRCL_ERR_INVALID_ARG); /* good with defects */
    assert_int_equal(dfr_eval_acc_add(a, s, NULL, 2), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_eval_acc_add(a, NULL, NULL, 0), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_eval_acc_finish(a, NAN, &m, NULL, NULL, NULL), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_eval_acc_finish(a, 0, NULL, NULL, NULL, NULL), DFRCL_ERR_INVALID_ARG);

    /* good images only: no defective pixel, no defective image */
    assert_int_equal(dfr_eval_acc_add(a, s, NULL, 0), 0);
    assert_int_equal(dfr_eval_acc_add(a, s, (const uint8_t[4]){0, 0, 0, 0}, 0), 0);
    assert_int_equal(dfr_eval_acc_finish(a, 0.2, &m, &roc, &iroc, &pro), 0);
    assert_int_equal(m.images, 2);
    assert_int_equal(m.pixels, 8);
    assert_int_equal(m.regions, 0);
    assert_true(isnan(m.pixel_auroc) && isnan(m.image_auroc) && isnan(m.aupro) && isnan(m.best_f1));
    assert_same(m.precision, 0, 0); /* 6 predicted, none right */
    assert_true(isnan(m.recall));
    assert_same(m.f1, 0, 0);
    assert_same(m.iou, 0, 0);
    assert_int_equal(roc.n + iroc.n + pro.n, 0);
    /* a defective image whose mask is all defective: still no normal pixel there, but the good
     * ones give normals; the image ROC is now defined */
    assert_int_equal(dfr_eval_acc_add(a, s, full, 1), 0);
    assert_int_equal(dfr_eval_acc_add(a, s, full, 1), DFRCL_ERR_INVALID_ARG); /* 4th of 3 */
    assert_int_equal(dfr_eval_acc_finish(a, 0.2, &m, &roc, &iroc, &pro), 0);
    assert_int_equal(m.regions, 1);
    assert_same(m.pixel_auroc, 0.5, 0); /* same scores in both classes */
    assert_same(m.image_auroc, 0.5, 0); /* all maxima equal */
    assert_int_equal(roc.n, 4);           /* (0,0) and three distinct scores */
    dfr_curve_free(&roc);
    dfr_curve_free(&iroc);
    dfr_curve_free(&pro);
    dfr_eval_acc_free(&a);

    /* defective pixels only: pixel AUROC and AUPRO undefined, best F1 defined */
    assert_int_equal(dfr_eval_acc_new(&a, 2, 2, 1), 0);
    assert_int_equal(dfr_eval_acc_add(a, s, full, 1), 0);
    assert_int_equal(dfr_eval_acc_finish(a, 0.2, &m, &roc, NULL, &pro), 0);
    assert_true(isnan(m.pixel_auroc) && isnan(m.aupro) && isnan(m.image_auroc));
    assert_same(m.best_f1, 1.0, 0);
    assert_same(m.best_f1_threshold, (double)0.1f, 0);
    assert_same(m.precision, 1, 0);
    assert_same(m.recall, 0.75, 0);
    assert_int_equal(roc.n + pro.n, 0);
    dfr_eval_acc_free(&a);

    /* all scores equal */
    float e[4] = {3, 3, 3, 3};
    assert_int_equal(dfr_eval_acc_new(&a, 2, 2, 2), 0);
    assert_int_equal(dfr_eval_acc_add(a, e, some, 1), 0);
    assert_int_equal(dfr_eval_acc_add(a, e, NULL, 0), 0);
    assert_int_equal(dfr_eval_acc_finish(a, 3, &m, &roc, NULL, &pro), 0);
    assert_same(m.pixel_auroc, 0.5, 0);
    assert_same(m.best_f1, 2.0 / 9.0, 1e-15); /* TP 1, FP 7, P 1 */
    assert_same(m.aupro, 0.15, 1e-15);       /* PRO = FPR on the one segment: 0.3^2/2 / 0.3 */
    assert_int_equal(roc.n, 2);
    assert_int_equal(pro.n, 2);
    assert_same(pro.y[1], 0.3, 1e-15);
    dfr_curve_free(&roc);
    dfr_curve_free(&pro);
    dfr_eval_acc_free(&a);
}

/* finish sorts in place; adding after it and finishing again must equal one pass. */
static void test_acc_resume(void **state)
{
    (void)state;
    enum { W = 23, H = 17, N = 9 };
    float *s = malloc(sizeof(float) * W * H * N);
    uint8_t *mk = malloc(W * H * N);
    for (int i = 0; i < W * H * N; i++) {
        int img = i / (W * H), p = i % (W * H), x = p % W, y = p / W;
        int blob = img % 3 != 0 && abs(x - 5 - img) < 3 + img % 2 && abs(y - 8) < 4;
        mk[i] = (uint8_t)blob;
        s[i] = (float)(dfr_test_hash(5, (uint32_t)i) % 1000) / 500.0f + (blob ? 0.7f : 0.0f);
    }
    dfr_eval_acc *a = NULL, *b = NULL;
    dfr_metrics ma, mb;
    assert_int_equal(dfr_eval_acc_new(&a, W, H, N), 0);
    assert_int_equal(dfr_eval_acc_new(&b, W, H, N), 0);
    for (int img = 0; img < N; img++) {
        assert_int_equal(dfr_eval_acc_add(a, s + W * H * img, mk + W * H * img, img % 3 != 0), 0);
        assert_int_equal(dfr_eval_acc_add(b, s + W * H * img, mk + W * H * img, img % 3 != 0), 0);
        if (img == 2 || img == 5) assert_int_equal(dfr_eval_acc_finish(b, 1.0, &mb, NULL, NULL, NULL), 0);
    }
    assert_int_equal(dfr_eval_acc_finish(a, 1.0, &ma, NULL, NULL, NULL), 0);
    assert_int_equal(dfr_eval_acc_finish(b, 1.0, &mb, NULL, NULL, NULL), 0);
    assert_int_equal(memcmp(&ma, &mb, sizeof ma), 0);
    assert_true(ma.pixel_auroc > 0.6 && ma.aupro > 0.1 && ma.regions == 6);
    dfr_eval_acc_free(&a);
    dfr_eval_acc_free(&b);
    free(s);
    free(mk);
}

/* ---- large: a whole category's worth of pixels ---- */

/* VmHWM or VmRSS of this process in bytes (0 when /proc is not there). */
static size_t proc_status_bytes(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0, klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') kb = strtoull(line + klen + 1, NULL, 10);
    fclose(f);
    return kb * 1024;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* 300 maps of 256x256 (19.7M pixels). Defects are squares in separate 64x64 cells, so regions and
 * their sizes are known without labelling; scores are levels/1024, so per-level histograms give
 * the AUROC and AUPRO without sorting. */
static void test_large(void **state)
{
    (void)state;
    enum { S = 256, N = 300, L = 1024, CELL = 64 };
    const size_t hw = (size_t)S * S;
    float *map = malloc(hw * sizeof(float));
    uint8_t *mask = malloc(hw);
    float *img_max = malloc(N * sizeof(float));
    uint8_t *lab = malloc(N);
    double *hn = calloc(L, sizeof(double)), *hd = calloc(L, sizeof(double)), *hw_ = calloc(L, sizeof(double));
    long long regions = 0;
    size_t base = proc_status_bytes("VmHWM");
    dfr_eval_acc *a = NULL;
    assert_int_equal(dfr_eval_acc_new(&a, S, S, N), 0);
    double t0 = now_s();
    for (int i = 0; i < N; i++) {
        int defective = i % 3 != 0;
        memset(mask, 0, hw);
        uint32_t seed = 1000 + (uint32_t)i;
        /* squares of 8..40 px, at most one per cell, 1-4 per defective image */
        int nsq = defective ? 1 + (int)(dfr_test_hash(seed, 0) % 4) : 0;
        int side[16] = {0};
        for (int q = 0; q < nsq; q++) {
            int cell = (int)(dfr_test_hash(seed, 1 + q) % 16);
            if (side[cell]) continue; /* taken: fewer squares */
            int sz = 8 + (int)(dfr_test_hash(seed, 20 + q) % 33);
            side[cell] = sz;
            int ox = (cell % 4) * CELL + (int)(dfr_test_hash(seed, 40 + q) % (CELL - sz)) + 1;
            int oy = (cell / 4) * CELL + (int)(dfr_test_hash(seed, 60 + q) % (CELL - sz)) + 1;
            for (int y = oy; y < oy + sz - 1; y++) memset(mask + (size_t)y * S + ox, 1, (size_t)sz - 1);
            side[cell] = (sz - 1) * (sz - 1); /* area */
            regions++;
        }
        /* area of the region each defective pixel belongs to: from its cell */
        float mx = -INFINITY;
        for (size_t p = 0; p < hw; p++) {
            uint32_t r = dfr_test_hash(seed + 7777, (uint32_t)p);
            int lvl = mask[p] ? 300 + (int)(r % 724) : (int)(r % 700);
            map[p] = (float)lvl / L;
            if (map[p] > mx) mx = map[p];
            if (mask[p]) {
                int cell = (int)((p / S) / CELL * 4 + (p % S) / CELL);
                hd[lvl] += 1;
                hw_[lvl] += 1.0 / side[cell];
            } else {
                hn[lvl] += 1;
            }
        }
        img_max[i] = mx;
        lab[i] = (uint8_t)defective;
        assert_int_equal(dfr_eval_acc_add(a, map, defective ? mask : NULL, defective), 0);
    }
    double t1 = now_s();
    dfr_metrics m;
    dfr_curve roc, pro;
    assert_int_equal(dfr_eval_acc_finish(a, 0.5, &m, &roc, NULL, &pro), 0);
    double t2 = now_s();
    size_t peak = proc_status_bytes("VmHWM");

    /* histogram reference */
    double Nn = 0, P = 0, auc2 = 0, TP = 0, FP = 0, tp5 = 0, fp5 = 0;
    for (int l = 0; l < L; l++) {
        Nn += hn[l];
        P += hd[l];
    }
    double lim = 0.3 * Nn, area = 0, pr = 0;
    int done = 0;
    for (int l = L - 1; l >= 0; l--) {
        auc2 += hn[l] * (2 * TP + hd[l]);
        double f0 = FP, p0 = pr;
        TP += hd[l];
        FP += hn[l];
        pr += hw_[l];
        if ((double)l / L > 0.5) { /* the model's rule: above the threshold */
            tp5 = TP;
            fp5 = FP;
        }
        if (!done) {
            if (FP <= lim) area += (FP - f0) * (p0 + pr) / 2;
            else {
                double pl = p0 + (lim - f0) / (FP - f0) * (pr - p0);
                area += (lim - f0) * (p0 + pl) / 2;
                done = 1;
            }
        }
    }
    assert_int_equal(m.pixels, (long long)N * S * S);
    assert_int_equal(m.defect_pixels, (long long)P);
    assert_int_equal(m.regions, regions);
    assert_same(m.pixel_auroc, auc2 / (2 * Nn * P), 1e-12);
    assert_same(m.aupro, area / (Nn * (double)regions) / 0.3, 1e-9);
    assert_same(m.precision, tp5 / (tp5 + fp5), 1e-12);
    assert_same(m.recall, tp5 / P, 1e-12);
    double want_img;
    assert_int_equal(dfr_auroc(img_max, lab, N, &want_img), 0);
    assert_same(m.image_auroc, want_img, 0);
    assert_true(roc.n > 100 && roc.n <= DFR_CURVE_MAX_POINTS);
    assert_true(pro.n > 10 && pro.n <= DFR_CURVE_MAX_POINTS);

    double px = (double)m.pixels;
    print_message("large: %lld pixels (%.1f%% defective, %lld regions): add %.2f s, finish %.2f s; "
                  "accumulator %.2f B/pixel; peak RSS growth %.1f MB = %.2f B/pixel\n",
                  m.pixels, 100.0 * m.defect_pixels / px, m.regions, t1 - t0, t2 - t1,
                  dfr_eval_acc_bytes(a) / px, (peak - base) / 1048576.0, (peak - base) / px);
    /* 4 B/pixel + 4-8 B per defective pixel (~2% here) + one image's scratch; a sort with a
     * second buffer or stored maps (>= 8 B/pixel) fails this */
    if (base && peak) assert_true((double)(peak - base) / px < 5.0);
    assert_true(dfr_eval_acc_bytes(a) / px < 4.5);
    dfr_curve_free(&roc);
    dfr_curve_free(&pro);
    dfr_eval_acc_free(&a);
    free(map);
    free(mask);
    free(img_max);
    free(lab);
    free(hn);
    free(hd);
    free(hw_);
}

/* The published figures: every MVTec AD category at both depths, values in (0.5, 1], and their
 * means equal to the means the paper states (0.94/0.90 for 12 layers, 0.95/0.91 for 16) after
 * rounding to two decimals; unknown names get NULL. */
static void test_published(void **state)
{
    (void)state;
    static const char *cats[] = {"bottle", "cable", "capsule", "carpet", "grid",
                                 "hazelnut", "leather", "metal_nut", "pill", "screw",
                                 "tile", "toothbrush", "transistor", "wood", "zipper"};
    const double stated[2][2] = {{0.94, 0.90}, {0.95, 0.91}};
    const int depth[2] = {12, 16};
    for (int d = 0; d < 2; d++) {
        double s_roc = 0, s_pro = 0;
        for (int i = 0; i < 15; i++) {
            const dfr_published *p = dfr_published_find(cats[i], depth[d]);
            assert_non_null(p);
            assert_string_equal(p->category, cats[i]);
            assert_true(p->pixel_auroc > 0.5 && p->pixel_auroc <= 1.0);
            assert_true(p->aupro > 0.5 && p->aupro <= 1.0);
            s_roc += p->pixel_auroc, s_pro += p->aupro;
        }
        assert_true(fabs(round(s_roc / 15 * 100) / 100 - stated[d][0]) < 1e-9);
        assert_true(fabs(round(s_pro / 15 * 100) / 100 - stated[d][1]) < 1e-9);
    }
    assert_int_equal(dfr_published_layers(8), 12);
    assert_int_equal(dfr_published_layers(16), 16);
    assert_non_null(dfr_published_find("Hazelnut", 12));
    assert_true(dfr_published_find("hazelnut", 12)->pixel_auroc == 0.98);
    assert_null(dfr_published_find("fabric", 12));
    assert_null(dfr_published_find("hazelnut_toy", 12));
    assert_null(dfr_published_find(NULL, 12));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auroc_tiny),    cmocka_unit_test(test_auroc_degenerate),
        cmocka_unit_test(test_auroc_pairs),   cmocka_unit_test(test_acc_hand),
        cmocka_unit_test(test_regions),       cmocka_unit_test(test_fixture_small),
        cmocka_unit_test(test_fixture_mid),   cmocka_unit_test(test_acc_degenerate),
        cmocka_unit_test(test_acc_resume),    cmocka_unit_test(test_large),
        cmocka_unit_test(test_published),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
