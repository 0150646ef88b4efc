#include "eval/report.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "util/error.h"
#include "util/fsutil.h"

/* ---- base64 ---------------------------------------------------------------------------- */

size_t dfr_base64_len(size_t n)
{
    size_t groups = n / 3 + (n % 3 != 0);
    if (groups > (SIZE_MAX - 1) / 4) return SIZE_MAX;
    return groups * 4;
}

size_t dfr_base64_encode(char *out, const uint8_t *in, size_t n)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = 0;
    return o;
}

/* ---- text output ----------------------------------------------------------------------- */

/* HTML-escapes s (NULL writes nothing). C0 controls other than tab/newline/CR and DEL are
 * parse errors in HTML even as character references, so they become U+FFFD. */
static void put_esc(FILE *f, const char *s)
{
    if (!s) return;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default:
            if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
                fputs("\xEF\xBF\xBD", f);
            else
                fputc(c, f);
        }
    }
}

/* printf-style number formatting that ignores the caller's LC_NUMERIC: the library may run
 * inside a program that called setlocale(), and "0,5" would break SVG coordinates. */
static void fix_decimal_point(char *buf)
{
    for (char *p = buf; *p; p++)
        if (*p == ',') *p = '.';
}

static void fmt_fixed(char *buf, size_t size, double v, int decimals)
{
    snprintf(buf, size, "%.*f", decimals, v);
    fix_decimal_point(buf);
}

/* A score or threshold: 4 decimals, scientific when that would hide its digits. */
static void fmt_score(char *buf, size_t size, double v)
{
    if (isnan(v)) {
        snprintf(buf, size, "n/a");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, size, v > 0 ? "inf" : "-inf");
        return;
    }
    double a = fabs(v);
    if (a == 0 || (a >= 1e-3 && a < 1e7))
        snprintf(buf, size, "%.4f", v);
    else
        snprintf(buf, size, "%.3e", v);
    fix_decimal_point(buf);
}

/* SVG coordinate, one decimal. */
static void put_coord(FILE *f, double v)
{
    char buf[64];
    fmt_fixed(buf, sizeof buf, v, 1);
    fputs(buf, f);
}

/* ---- page head ------------------------------------------------------------------------- */

static const char page_css[] =
    ":root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#f6f8fa;--card:#fff;"
    "--tp:#1a7f37;--tn:#59636e;--fp:#cf222e;--fn:#bc4c00;--accent:#0969da}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"
    "'Segoe UI',Roboto,'DejaVu Sans','Liberation Sans',sans-serif}\n"
    "main{max-width:1260px;margin:0 auto;padding:20px 24px 40px}\n"
    "h1{font-size:24px;margin:0 0 4px}\n"
    "h2{font-size:18px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}\n"
    ".sub{color:var(--muted);margin:0 0 10px}\n"
    ".summary{display:flex;flex-wrap:wrap;gap:8px;margin:10px 0 0;padding:0;list-style:none}\n"
    ".summary li{background:var(--card);border:1px solid var(--line);border-radius:6px;"
    "padding:4px 10px}\n"
    ".summary b{font-variant-numeric:tabular-nums}\n"
    ".tables{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}\n"
    "table{border-collapse:collapse;background:var(--card);border:1px solid var(--line)}\n"
    "th,td{padding:5px 12px;border-bottom:1px solid var(--line);text-align:left}\n"
    "th{background:#eef1f4;font-weight:600}\n"
    "td.num{text-align:right;font-variant-numeric:tabular-nums;font-family:ui-monospace,"
    "'DejaVu Sans Mono',monospace}\n"
    "td.note{color:var(--muted)}\n"
    ".na{color:var(--muted);font-style:italic}\n"
    ".charts{display:flex;flex-wrap:wrap;gap:16px}\n"
    ".chart{background:var(--card);border:1px solid var(--line);border-radius:6px;"
    "max-width:100%;height:auto}\n"
    ".chart text{font-family:inherit;fill:var(--fg)}\n"
    ".chart .tick{font-size:11px;fill:var(--muted)}\n"
    ".chart .ttl{font-size:13px;font-weight:600}\n"
    ".chart .axl{font-size:12px}\n"
    ".view{display:flex;flex-wrap:wrap;gap:6px;align-items:center}\n"
    ".view>input{position:absolute;opacity:0;pointer-events:none}\n"
    ".view>label{border:1px solid var(--line);background:var(--card);border-radius:16px;"
    "padding:3px 12px;cursor:pointer;user-select:none}\n"
    ".view>input:checked+label{background:var(--fg);color:#fff;border-color:var(--fg)}\n"
    ".view>input:focus-visible+label{outline:2px solid var(--accent);outline-offset:2px}\n"
    ".gallery{flex:1 1 100%;margin-top:8px;display:grid;"
    "grid-template-columns:repeat(auto-fill,minmax(min(394px,100%),1fr));gap:12px}\n"
    ".grp{grid-column:1/-1;margin:10px 0 0;font-size:15px;display:flex;align-items:center;"
    "gap:8px}\n"
    ".grp .cnt{color:var(--muted);font-weight:400}\n"
    ".card{background:var(--card);border:1px solid var(--line);border-left:5px solid var(--tn);"
    "border-radius:6px;padding:8px}\n"
    ".card.tp{border-left-color:var(--tp)}.card.fp{border-left-color:var(--fp)}"
    ".card.fn{border-left-color:var(--fn)}\n"
    ".thumbs{display:flex;gap:6px}\n"
    ".thumbs figure{margin:0;text-align:center}\n"
    ".thumbs img,.thumbs .none{display:block;width:120px;height:120px;object-fit:contain;"
    "background:#e6e9ec;border-radius:3px}\n"
    ".thumbs .none{display:flex;align-items:center;justify-content:center;color:var(--muted);"
    "font-size:12px;text-align:center;padding:8px}\n"
    ".thumbs figcaption{font-size:11px;color:var(--muted)}\n"
    ".meta{margin-top:6px;display:grid;grid-template-columns:auto 1fr auto;gap:2px 8px;"
    "align-items:center}\n"
    ".name{font-weight:600;overflow-wrap:anywhere}\n"
    ".defect{font-size:12px;color:var(--muted);border:1px solid var(--line);border-radius:10px;"
    "padding:0 8px;overflow-wrap:anywhere;max-width:140px}\n"
    ".line2{grid-column:1/-1;color:var(--muted);font-size:13px}\n"
    ".line2 .sc{color:var(--fg);font-family:ui-monospace,'DejaVu Sans Mono',monospace}\n"
    ".badge{display:inline-block;min-width:34px;text-align:center;font-weight:700;"
    "font-size:12px;color:#fff;border-radius:4px;padding:1px 6px;background:var(--tn)}\n"
    ".badge.tp{background:var(--tp)}.badge.fp{background:var(--fp)}"
    ".badge.fn{background:var(--fn)}\n"
    ".empty{color:var(--muted)}\n"
    "details{background:var(--card);border:1px solid var(--line);border-radius:6px;"
    "padding:8px 12px;margin-top:24px}\n"
    "summary{cursor:pointer;font-weight:600}\n"
    "pre{white-space:pre-wrap;overflow-wrap:anywhere;font:12px/1.4 ui-monospace,"
    "'DejaVu Sans Mono',monospace;margin:8px 0 0}\n"
    "footer{color:var(--muted);font-size:12px;margin-top:24px}\n"
    "td.up{color:var(--tp)}td.down{color:var(--fp)}tr.mean td{font-weight:600;"
    "border-top:2px solid var(--fg)}th.span{text-align:center}ul.notes{color:var(--muted)}\n"
    "@media print{body{background:#fff}.view>label,.view>span{display:none}.card{break-inside:avoid}}\n";

/* ---- verdicts and order ---------------------------------------------------------------- */

enum { V_FP, V_FN, V_TP, V_TN, V_COUNT };
static const char *const v_class[V_COUNT] = {"fp", "fn", "tp", "tn"};
static const char *const v_abbr[V_COUNT] = {"FP", "FN", "TP", "TN"};
static const char *const v_title[V_COUNT] = {
    "False positives: normal images predicted anomalous",
    "False negatives: defective images predicted normal",
    "True positives: defective images predicted anomalous",
    "True negatives: normal images predicted normal",
};
static const char *const v_order_note[V_COUNT] = {"highest score first", "lowest score first",
                                                  "highest score first", "highest score first"};

static int verdict(const dfr_report_item *it)
{
    if (it->label) return it->predicted ? V_TP : V_FN;
    return it->predicted ? V_FP : V_TN;
}

typedef struct {
    int idx, group, nan;
    double key; /* ascending key */
} order_entry;

static int order_cmp(const void *pa, const void *pb)
{
    const order_entry *a = pa, *b = pb;
    if (a->group != b->group) return a->group < b->group ? -1 : 1;
    if (a->nan != b->nan) return a->nan ? 1 : -1; /* NaN scores last in their group */
    if (!a->nan && a->key != b->key) return a->key < b->key ? -1 : 1;
    return a->idx < b->idx ? -1 : (a->idx > b->idx); /* stable: caller's order */
}

/* ---- charts ---------------------------------------------------------------------------- */

#define CH_W 380
#define CH_H 300
#define CH_L 56.0 /* plot area inside the chart */
#define CH_R (CH_W - 16.0)
#define CH_T 34.0
#define CH_B (CH_H - 48.0)

static void axis_range(double lo, double hi, double *out_lo, double *out_hi)
{
    if (isfinite(lo) && isfinite(hi) && hi > lo && isfinite(hi - lo)) {
        *out_lo = lo;
        *out_hi = hi;
    } else {
        *out_lo = 0;
        *out_hi = 1;
    }
}

/* A 1-2-5 tick step giving about 6 intervals over span (> 0, finite). */
static double tick_step(double span)
{
    double raw = span / 6;
    double p = pow(10, floor(log10(raw)));
    double m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

static int tick_decimals(double step)
{
    int d = (int)-floor(log10(step) + 1e-9);
    return d < 0 ? 0 : d > 12 ? 12 : d;
}

typedef struct {
    double lo, hi, p0, p1; /* data range -> pixel range */
} axis_map;

static double amap(const axis_map *m, double v)
{
    return m->p0 + (v - m->lo) / (m->hi - m->lo) * (m->p1 - m->p0);
}

/* Ticks, grid lines and tick labels of one axis (horizontal: x axis at the bottom). */
static void put_ticks(FILE *f, const axis_map *m, int horizontal, double y_or_x_at)
{
    double step = tick_step(m->hi - m->lo);
    int dec = tick_decimals(step);
    double first = ceil(m->lo / step - 1e-9);
    for (int k = 0; k < 64; k++) {
        double t = (first + k) * step;
        if (t > m->hi + step * 1e-9) break;
        if (fabs(t) < step * 1e-9) t = 0; /* no "-0.0" */
        double p = amap(m, t);
        char lab[64];
        fmt_fixed(lab, sizeof lab, t, dec);
        if (horizontal) {
            fputs("<line x1=\"", f); put_coord(f, p);
            fprintf(f, "\" y1=\"%g\" x2=\"", CH_T); put_coord(f, p);
            fprintf(f, "\" y2=\"%g\" stroke=\"#e6e9ec\"/>", y_or_x_at + 4);
            fputs("<text class=\"tick\" text-anchor=\"middle\" x=\"", f); put_coord(f, p);
            fprintf(f, "\" y=\"%g\">%s</text>\n", y_or_x_at + 16, lab);
        } else {
            fprintf(f, "<line x1=\"%g\" y1=\"", y_or_x_at - 4); put_coord(f, p);
            fprintf(f, "\" x2=\"%g\" y2=\"", CH_R); put_coord(f, p);
            fputs("\" stroke=\"#e6e9ec\"/>", f);
            fprintf(f, "<text class=\"tick\" text-anchor=\"end\" x=\"%g\" y=\"", y_or_x_at - 7);
            put_coord(f, p + 4);
            fprintf(f, "\">%s</text>\n", lab);
        }
    }
}

/* Liang-Barsky: clips the segment (x0,y0)-(x1,y1) to the plot area; 0 when nothing is left. */
static int clip_segment(double *x0, double *y0, double *x1, double *y1)
{
    double t0 = 0, t1 = 1, dx = *x1 - *x0, dy = *y1 - *y0;
    const double p[4] = {-dx, dx, -dy, dy};
    const double q[4] = {*x0 - CH_L, CH_R - *x0, *y0 - CH_T, CH_B - *y0};
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0) {
            if (q[i] < 0) return 0;
            continue;
        }
        double r = q[i] / p[i];
        if (p[i] < 0) {
            if (r > t1) return 0;
            if (r > t0) t0 = r;
        } else {
            if (r < t0) return 0;
            if (r < t1) t1 = r;
        }
    }
    double ax = *x0 + t0 * dx, ay = *y0 + t0 * dy;
    double bx = *x0 + t1 * dx, by = *y0 + t1 * dy;
    *x0 = ax;
    *y0 = ay;
    *x1 = bx;
    *y1 = by;
    return 1;
}

/* Path state for the curve: thins points closer than half a pixel to the last one written. */
typedef struct {
    FILE *f;
    int pen;            /* a subpath is open */
    double cx, cy;      /* end of the last segment drawn */
    double lx, ly;      /* last point written */
    int pending;        /* (px, py) was skipped by thinning and not yet written */
    double px, py;
    long written;
} path_state;

static void path_point(path_state *s, char cmd, double x, double y)
{
    fputc(cmd, s->f);
    put_coord(s->f, x);
    fputc(',', s->f);
    put_coord(s->f, y);
    s->lx = x;
    s->ly = y;
    s->written++;
}

static void path_flush(path_state *s)
{
    if (s->pending) path_point(s, 'L', s->px, s->py);
    s->pending = 0;
}

static void path_break(path_state *s)
{
    path_flush(s);
    s->pen = 0;
}

static void path_segment(path_state *s, double ax, double ay, double bx, double by)
{
    double x0 = ax, y0 = ay, x1 = bx, y1 = by;
    if (!clip_segment(&x0, &y0, &x1, &y1)) {
        path_break(s);
        return;
    }
    if (!s->pen || x0 != s->cx || y0 != s->cy) { /* start was clipped or after a break */
        path_flush(s);
        path_point(s, 'M', x0, y0);
        s->pen = 1;
    }
    if (hypot(x1 - s->lx, y1 - s->ly) >= 0.5) {
        s->pending = 0;
        path_point(s, 'L', x1, y1);
    } else {
        s->pending = 1;
        s->px = x1;
        s->py = y1;
    }
    s->cx = x1;
    s->cy = y1;
    if (x1 != bx || y1 != by) path_break(s); /* left the plot area */
}

static void put_curve_chart(FILE *f, const dfr_report_curve *c)
{
    axis_map xm, ym;
    axis_range(c->x_min, c->x_max, &xm.lo, &xm.hi);
    axis_range(c->y_min, c->y_max, &ym.lo, &ym.hi);
    xm.p0 = CH_L;
    xm.p1 = CH_R;
    ym.p0 = CH_B;
    ym.p1 = CH_T;

    fprintf(f, "<svg class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "role=\"img\" aria-label=\"",
            CH_W, CH_H, CH_W, CH_H);
    put_esc(f, c->label ? c->label : "curve");
    fputs("\">\n", f);
    /* title */
    fprintf(f, "<text class=\"ttl\" x=\"%g\" y=\"20\">", CH_L);
    put_esc(f, c->label ? c->label : "curve");
    if (c->note && *c->note) {
        fputs("<tspan font-weight=\"400\" fill=\"#59636e\"> \xE2\x80\x94 ", f);
        put_esc(f, c->note);
        fputs("</tspan>", f);
    }
    fputs("</text>\n", f);
    fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"#fff\"/>\n", CH_L, CH_T,
            CH_R - CH_L, CH_B - CH_T);
    put_ticks(f, &xm, 1, CH_B);
    put_ticks(f, &ym, 0, CH_L);
    fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" "
               "stroke=\"#8c959f\"/>\n",
            CH_L, CH_T, CH_R - CH_L, CH_B - CH_T);
    /* axis labels */
    fprintf(f, "<text class=\"axl\" text-anchor=\"middle\" x=\"%g\" y=\"%d\">",
            (CH_L + CH_R) / 2, CH_H - 10);
    put_esc(f, c->x_label ? c->x_label : "x");
    fprintf(f, "</text>\n<text class=\"axl\" text-anchor=\"middle\" "
               "transform=\"translate(16 %g) rotate(-90)\">",
            (CH_T + CH_B) / 2);
    put_esc(f, c->y_label ? c->y_label : "y");
    fputs("</text>\n", f);

    if (c->diagonal) { /* chance line y = x over the part both ranges share */
        double t0 = fmax(xm.lo, ym.lo), t1 = fmin(xm.hi, ym.hi);
        if (t0 < t1) {
            fputs("<line x1=\"", f); put_coord(f, amap(&xm, t0));
            fputs("\" y1=\"", f); put_coord(f, amap(&ym, t0));
            fputs("\" x2=\"", f); put_coord(f, amap(&xm, t1));
            fputs("\" y2=\"", f); put_coord(f, amap(&ym, t1));
            fputs("\" stroke=\"#8c959f\" stroke-dasharray=\"5 4\"/>\n", f);
        }
    }

    path_state s = {.f = f};
    if (c->n >= 2) {
        fputs("<path fill=\"none\" stroke=\"#0969da\" stroke-width=\"2\" "
              "stroke-linejoin=\"round\" d=\"",
              f);
        double ax = 0, ay = 0;
        int a_ok = 0;
        for (int i = 0; i < c->n; i++) {
            double bx = amap(&xm, c->x[i]), by = amap(&ym, c->y[i]);
            int b_ok = isfinite(bx) && isfinite(by);
            if (a_ok && b_ok) path_segment(&s, ax, ay, bx, by);
            else path_break(&s);
            ax = bx;
            ay = by;
            a_ok = b_ok;
        }
        path_break(&s);
        if (s.written == 0) fputs("M0,0", f); /* an empty d is an SVG error */
        fputs("\"/>\n", f);
    }
    if (s.written == 0)
        fprintf(f, "<text class=\"axl\" text-anchor=\"middle\" x=\"%g\" y=\"%g\" "
                   "fill=\"#59636e\">no data in range</text>\n",
                (CH_L + CH_R) / 2, (CH_T + CH_B) / 2);
    fputs("</svg>\n", f);
}

/* Image scores of normal and defective images on one axis, with the threshold: shows at a
 * glance how well the two sets separate. */
#define SP_W 780
#define SP_H 180
static void put_score_strip(FILE *f, const dfr_report *r)
{
    double lo = r->threshold, hi = r->threshold;
    int n_bad = 0;
    for (int i = 0; i < r->n_items; i++) {
        double v = r->items[i].score;
        if (!isfinite(v)) {
            n_bad++;
            continue;
        }
        if (!isfinite(lo) || v < lo) lo = v;
        if (!isfinite(hi) || v > hi) hi = v;
    }
    if (!isfinite(lo) || !isfinite(hi)) return; /* nothing finite to draw */
    double span = hi - lo;
    if (!(span > 0) || !isfinite(span)) span = fabs(hi) > 0 ? fabs(hi) * 0.2 : 1;
    lo -= span * 0.04;
    hi += span * 0.04;
    if (!(hi > lo) || !isfinite(hi - lo)) return;
    const double L = 110, R = SP_W - 20, T = 40, B = SP_H - 42;
    axis_map xm = {lo, hi, L, R};
    fprintf(f, "<svg class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "role=\"img\" aria-label=\"Image scores\">\n",
            SP_W, SP_H, SP_W, SP_H);
    fprintf(f, "<text class=\"ttl\" x=\"%g\" y=\"20\">Image scores<tspan font-weight=\"400\" "
               "fill=\"#59636e\"> \xE2\x80\x94 one dot per test image, colour = verdict",
            L);
    if (n_bad) fprintf(f, "; %d without a finite score not shown", n_bad);
    fputs("</tspan></text>\n", f);
    fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"#fff\"/>\n", L, T,
            R - L, B - T);
    double step = tick_step(hi - lo);
    int dec = tick_decimals(step);
    double first = ceil(lo / step - 1e-9);
    for (int k = 0; k < 64; k++) {
        double t = (first + k) * step;
        if (t > hi + step * 1e-9) break;
        if (fabs(t) < step * 1e-9) t = 0;
        double p = amap(&xm, t);
        char lab[64];
        fmt_fixed(lab, sizeof lab, t, dec);
        fputs("<line x1=\"", f); put_coord(f, p);
        fprintf(f, "\" y1=\"%g\" x2=\"", T); put_coord(f, p);
        fprintf(f, "\" y2=\"%g\" stroke=\"#e6e9ec\"/>", B + 4);
        fputs("<text class=\"tick\" text-anchor=\"middle\" x=\"", f); put_coord(f, p);
        fprintf(f, "\" y=\"%g\">%s</text>\n", B + 16, lab);
    }
    fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" "
               "stroke=\"#8c959f\"/>\n",
            L, T, R - L, B - T);
    const double row_h = (B - T) / 2;
    const char *row_name[2] = {"normal", "defective"};
    for (int row = 0; row < 2; row++)
        fprintf(f, "<text class=\"axl\" text-anchor=\"end\" x=\"%g\" y=\"%g\">%s</text>\n", L - 8,
                T + row_h * (row + 0.5) + 4, row_name[row]);
    fprintf(f, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"#d1d9e0\"/>\n", L,
            T + row_h, R, T + row_h);
    static const char *const dot_fill[V_COUNT] = {"#cf222e", "#bc4c00", "#1a7f37", "#8c959f"};
    for (int i = 0; i < r->n_items; i++) {
        const dfr_report_item *it = &r->items[i];
        if (!isfinite(it->score)) continue;
        /* deterministic vertical jitter so equal scores do not hide each other */
        uint32_t h = (uint32_t)i * 2654435761u;
        double jitter = ((h >> 8) % 1000) / 1000.0 - 0.5;
        int row = it->label ? 1 : 0;
        double y = T + row_h * (row + 0.5) + jitter * row_h * 0.6;
        fputs("<circle r=\"4\" fill-opacity=\"0.75\" cx=\"", f);
        put_coord(f, amap(&xm, it->score));
        fputs("\" cy=\"", f);
        put_coord(f, y);
        fprintf(f, "\" fill=\"%s\"/>\n", dot_fill[verdict(it)]);
    }
    double tx = amap(&xm, r->threshold);
    if (isfinite(tx)) {
        char thr[64];
        fmt_score(thr, sizeof thr, r->threshold);
        fputs("<line stroke=\"#1f2328\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\" x1=\"", f);
        put_coord(f, tx);
        fprintf(f, "\" y1=\"%g\" x2=\"", T - 14);
        put_coord(f, tx);
        fprintf(f, "\" y2=\"%g\"/>\n", B);
        /* label on the side with more room */
        int right = tx < (L + R) / 2;
        fprintf(f, "<text class=\"tick\" text-anchor=\"%s\" x=\"", right ? "start" : "end");
        put_coord(f, tx + (right ? 5 : -5));
        fprintf(f, "\" y=\"%g\">threshold %s</text>\n", T - 5, thr);
    }
    fprintf(f, "<text class=\"axl\" text-anchor=\"middle\" x=\"%g\" y=\"%d\">image score "
               "(maximum of the anomaly map)</text>\n",
            (L + R) / 2, SP_H - 10);
    fputs("</svg>\n", f);
}

/* ---- thumbnails and cards -------------------------------------------------------------- */

static int check_thumb(const dfrcl_image *img, const char *what, int item, const char *name)
{
    if (img->width == 0) return DFRCL_OK; /* none */
    char buf[64];
    snprintf(buf, sizeof buf, "%s thumbnail", what);
    int rc = dfr_image_check(img, buf);
    if (!rc && img->channels > 4)
        rc = dfr_error(DFRCL_ERR_INVALID_ARG, "%s: %d channels (1 to 4 allowed)", buf,
                       img->channels);
    if (rc) return dfr_error_prefix(rc, "report item %d (%s)", item, name ? name : "unnamed");
    return DFRCL_OK;
}

static int put_thumb(FILE *f, const dfrcl_image *img, const char *caption, const char *none)
{
    fputs("<figure>", f);
    if (img->width == 0) {
        fputs("<div class=\"none\">", f);
        put_esc(f, none);
        fputs("</div>", f);
    } else {
        uint8_t *png = NULL;
        size_t len = 0;
        int rc = dfr_png_encode(&png, &len, img->width, img->height, img->channels, img->pixels);
        if (rc) return rc;
        size_t blen = dfr_base64_len(len);
        char *b64 = blen == SIZE_MAX ? NULL : malloc(blen + 1);
        if (!b64) {
            free(png);
            return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory (base64 of %zu bytes)", len);
        }
        dfr_base64_encode(b64, png, len);
        free(png);
        fprintf(f, "<img width=\"%d\" height=\"%d\" alt=\"", img->width, img->height);
        put_esc(f, caption);
        fputs("\" src=\"data:image/png;base64,", f);
        fwrite(b64, 1, blen, f);
        fputs("\">", f);
        free(b64);
    }
    fputs("<figcaption>", f);
    put_esc(f, caption);
    fputs("</figcaption></figure>", f);
    return DFRCL_OK;
}

static int put_card(FILE *f, const dfr_report_item *it, int v, double threshold, int idx)
{
    fprintf(f, "<div class=\"card %s\">\n<div class=\"thumbs\">", v_class[v]);
    int rc = put_thumb(f, &it->image, "input", "no image");
    if (!rc) rc = put_thumb(f, &it->overlay, "anomaly map", "no map");
    if (!rc) rc = put_thumb(f, &it->mask, "ground truth", it->label ? "no ground truth" : "normal: no defect");
    if (rc) return dfr_error_prefix(rc, "report item %d (%s)", idx, it->name ? it->name : "unnamed");
    char sc[64], thr[64];
    fmt_score(sc, sizeof sc, it->score);
    fmt_score(thr, sizeof thr, threshold);
    const char *cmp = isnan(it->score) || isnan(threshold) ? "vs"
                      : it->score > threshold               ? "&gt;"
                                                             : "\xE2\x89\xA4"; /* <= sign */
    fprintf(f, "</div>\n<div class=\"meta\"><span class=\"badge %s\">%s</span>"
               "<span class=\"name\">",
            v_class[v], v_abbr[v]);
    put_esc(f, it->name);
    fputs("</span><span class=\"defect\">", f);
    put_esc(f, it->defect && *it->defect ? it->defect : it->label ? "defective" : "normal");
    fprintf(f, "</span><div class=\"line2\">score <span class=\"sc\">%s</span> %s "
               "<span class=\"sc\">%s</span> threshold, predicted %s</div></div>\n</div>\n",
            sc, cmp, thr, it->predicted ? "anomalous" : "normal");
    return DFRCL_OK;
}

/* ---- the page -------------------------------------------------------------------------- */

static int check_report(const char *path, const dfr_report *r)
{
    if (!path || !*path) return dfr_error(DFRCL_ERR_INVALID_ARG, "report: no output path");
    if (!r) return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: report is NULL", path);
    if (r->n_metrics < 0 || (r->n_metrics > 0 && !r->metrics))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: bad metrics (%d, %p)", path, r->n_metrics,
                         (const void *)r->metrics);
    if (r->n_curves < 0 || (r->n_curves > 0 && !r->curves))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: bad curves (%d, %p)", path, r->n_curves,
                         (const void *)r->curves);
    if (r->n_items < 0 || (r->n_items > 0 && !r->items))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: bad items (%d, %p)", path, r->n_items,
                         (const void *)r->items);
    for (int i = 0; i < r->n_curves; i++) {
        const dfr_report_curve *c = &r->curves[i];
        if (c->n < 0 || (c->n > 0 && (!c->x || !c->y)))
            return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: curve %d (%s): bad points (%d)", path,
                             i, c->label ? c->label : "unnamed", c->n);
    }
    for (int i = 0; i < r->n_items; i++) {
        const dfr_report_item *it = &r->items[i];
        int rc = check_thumb(&it->image, "input", i, it->name);
        if (!rc) rc = check_thumb(&it->overlay, "overlay", i, it->name);
        if (!rc) rc = check_thumb(&it->mask, "ground-truth", i, it->name);
        if (rc) return dfr_error_prefix(rc, "%s", path);
    }
    return DFRCL_OK;
}

/* A number cell: `decimals` digits, "n/a" when not finite. */
static void put_cell(FILE *f, double v, int decimals)
{
    char buf[64];
    if (!isfinite(v)) {
        fputs("<td class=\"num na\">n/a</td>", f);
        return;
    }
    fmt_fixed(buf, sizeof buf, v, decimals);
    fprintf(f, "<td class=\"num\">%s</td>", buf);
}

static void put_metrics(FILE *f, const dfr_report *r, const int counts[V_COUNT])
{
    fputs("<h2>Metrics</h2>\n<div class=\"tables\">\n", f);
    if (r->n_metrics > 0) {
        fputs("<table><thead><tr><th>Metric</th><th>Value</th><th>Note</th></tr></thead>"
              "<tbody>\n",
              f);
        for (int i = 0; i < r->n_metrics; i++) {
            const dfr_report_metric *m = &r->metrics[i];
            fputs("<tr><td>", f);
            put_esc(f, m->name);
            fputs("</td>", f);
            put_cell(f, m->value, 4);
            fputs("<td class=\"note\">", f);
            put_esc(f, m->note);
            fputs("</td></tr>\n", f);
        }
        fputs("</tbody></table>\n", f);
    } else {
        fputs("<p class=\"empty\">No metrics.</p>\n", f);
    }
    /* confusion matrix of the image verdicts at the threshold */
    fprintf(f,
            "<table><thead><tr><th>Images</th><th>predicted normal</th>"
            "<th>predicted anomalous</th></tr></thead><tbody>\n"
            "<tr><th>normal</th><td class=\"num\">%d <span class=\"badge tn\">TN</span></td>"
            "<td class=\"num\">%d <span class=\"badge fp\">FP</span></td></tr>\n"
            "<tr><th>defective</th><td class=\"num\">%d <span class=\"badge fn\">FN</span></td>"
            "<td class=\"num\">%d <span class=\"badge tp\">TP</span></td></tr>\n"
            "</tbody></table>\n</div>\n",
            counts[V_TN], counts[V_FP], counts[V_FN], counts[V_TP]);
}

static int put_gallery(FILE *f, const dfr_report *r, const order_entry *order,
                       const int counts[V_COUNT])
{
    fputs("<h2>Test images, worst first</h2>\n", f);
    if (r->n_items == 0) {
        fputs("<p class=\"empty\">No test images.</p>\n", f);
        return DFRCL_OK;
    }
    /* CSS-only filter: the radio buttons are the gallery's preceding siblings, so
     * "#show-fp:checked ~ .gallery" selectors reach it; without CSS everything shows. */
    fprintf(f, "<div class=\"view\"><span>Show:</span>"
               "<input type=\"radio\" name=\"show\" id=\"show-all\" checked>"
               "<label for=\"show-all\">all (%d)</label>"
               "<input type=\"radio\" name=\"show\" id=\"show-err\">"
               "<label for=\"show-err\">errors (%d)</label>",
            r->n_items, counts[V_FP] + counts[V_FN]);
    for (int v = 0; v < V_COUNT; v++)
        fprintf(f, "<input type=\"radio\" name=\"show\" id=\"show-%s\">"
                   "<label for=\"show-%s\">%s (%d)</label>",
                v_class[v], v_class[v], v_abbr[v], counts[v]);
    fputs("\n<div class=\"gallery\">\n", f);
    int k = 0;
    for (int g = 0; g < V_COUNT; g++) {
        /* an empty error group still gets its heading: "no false negatives" is news too */
        if (counts[g] == 0 && g != V_FP && g != V_FN) continue;
        fprintf(f, "<h3 class=\"grp %s\"><span class=\"badge %s\">%s</span>%s ",
                v_class[g], v_class[g], v_abbr[g], v_title[g]);
        if (counts[g] == 0) fputs("<span class=\"cnt\">(none)</span></h3>\n", f);
        else
            fprintf(f, "<span class=\"cnt\">(%d, %s)</span></h3>\n", counts[g],
                    v_order_note[g]);
        for (; k < r->n_items && order[k].group == g; k++) {
            int rc = put_card(f, &r->items[order[k].idx], g, r->threshold, order[k].idx);
            if (rc) return rc;
        }
    }
    fputs("</div></div>\n", f);
    return DFRCL_OK;
}

static void put_filter_css(FILE *f)
{
    fputs("#show-err:checked~.gallery>:not(.fp):not(.fn){display:none}\n", f);
    for (int v = 0; v < V_COUNT; v++)
        fprintf(f, "#show-%s:checked~.gallery>:not(.%s){display:none}\n", v_class[v],
                v_class[v]);
}

/* The page head up to the end of <header>'s title and subtitle. CSP: the page itself forbids
 * every fetch (images only as data: URIs), so nothing can reach the network even if a caller
 * string looked like a URL. `gallery` adds the gallery filter's CSS. */
static void put_page_head(FILE *f, const char *title, const char *subtitle, int gallery)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
          "img-src data:; style-src 'unsafe-inline'\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<meta name=\"generator\" content=\"dfrcl " DFRCL_VERSION "\">\n<title>",
          f);
    put_esc(f, title);
    fputs("</title>\n<style>\n", f);
    fputs(page_css, f);
    if (gallery) put_filter_css(f);
    fputs("</style>\n</head>\n<body>\n<main>\n<header>\n<h1>", f);
    put_esc(f, title);
    fputs("</h1>\n", f);
    if (subtitle && *subtitle) {
        fputs("<p class=\"sub\">", f);
        put_esc(f, subtitle);
        fputs("</p>\n", f);
    }
}

int dfr_report_write_html(const char *path, const dfr_report *r)
{
    int rc = check_report(path, r);
    if (rc) return rc;

    order_entry *order = NULL;
    int counts[V_COUNT] = {0};
    if (r->n_items > 0) {
        order = malloc((size_t)r->n_items * sizeof *order);
        if (!order)
            return dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: out of memory (%d items)", path,
                             r->n_items);
        for (int i = 0; i < r->n_items; i++) {
            const dfr_report_item *it = &r->items[i];
            int v = verdict(it);
            counts[v]++;
            order[i].idx = i;
            order[i].group = v;
            order[i].nan = isnan(it->score);
            /* FN ascending (the most missed first), the others descending */
            order[i].key = v == V_FN ? it->score : -it->score;
        }
        qsort(order, (size_t)r->n_items, sizeof *order, order_cmp);
    }

    dfr_atomic_file af;
    rc = dfr_atomic_open(&af, path);
    if (rc) {
        free(order);
        return rc;
    }
    FILE *f = af.f;
    const char *title = r->title && *r->title ? r->title : "dfrcl evaluation report";

    put_page_head(f, title, r->subtitle, 1);
    char thr[64];
    fmt_score(thr, sizeof thr, r->threshold);
    fprintf(f, "<ul class=\"summary\"><li><b>%d</b> test images (%d normal, %d defective)</li>"
               "<li>threshold <b>%s</b></li>"
               "<li><span class=\"badge fp\">FP</span> <b>%d</b></li>"
               "<li><span class=\"badge fn\">FN</span> <b>%d</b></li></ul>\n</header>\n",
            r->n_items, counts[V_TN] + counts[V_FP], counts[V_TP] + counts[V_FN], thr,
            counts[V_FP], counts[V_FN]);

    put_metrics(f, r, counts);

    if (r->n_curves > 0 || r->n_items > 0) {
        fputs("<h2>Curves</h2>\n<div class=\"charts\">\n", f);
        for (int i = 0; i < r->n_curves; i++) put_curve_chart(f, &r->curves[i]);
        if (r->n_items > 0) put_score_strip(f, r);
        fputs("</div>\n", f);
    }

    rc = put_gallery(f, r, order, counts);
    free(order);
    if (rc) {
        dfr_atomic_abort(&af);
        return dfr_error_prefix(rc, "%s", path);
    }

    if (r->settings_json && *r->settings_json) {
        fputs("<details>\n<summary>Settings</summary>\n<pre>", f);
        put_esc(f, r->settings_json);
        fputs("</pre>\n</details>\n", f);
    }
    fputs("<footer>Written by dfrcl " DFRCL_VERSION ". This page is self-contained: it loads "
          "nothing from the network and needs no JavaScript.</footer>\n"
          "</main>\n</body>\n</html>\n",
          f);
    return dfr_atomic_commit(&af);
}

/* ---- the campaign page ------------------------------------------------------------------ */

/* ours - paper, green when not below, red when below by more than the paper's rounding. */
static void put_delta(FILE *f, double ours, double paper)
{
    if (!isfinite(ours) || !isfinite(paper)) {
        fputs("<td class=\"num na\"></td>", f);
        return;
    }
    char buf[64];
    double d = ours - paper;
    fmt_fixed(buf, sizeof buf, d, 3);
    const char *cls = d >= -0.005 ? "up" : "down";
    fprintf(f, "<td class=\"num %s\">%s%s</td>", cls, d >= 0 ? "+" : "", buf);
}

int dfr_report_write_campaign_html(const char *path, const char *title, const char *subtitle,
                                   const dfr_campaign_row *rows, int n, const char *const *notes,
                                   int n_notes)
{
    if (!path || n < 0 || (n > 0 && !rows) || n_notes < 0 || (n_notes > 0 && !notes))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "campaign page: bad arguments");
    dfr_atomic_file af;
    int rc = dfr_atomic_open(&af, path);
    if (rc) return rc;
    FILE *f = af.f;
    if (!title || !*title) title = "dfrcl run";
    put_page_head(f, title, subtitle, 0);
    fputs("</header>\n<h2>Categories</h2>\n<table>\n<tr><th rowspan=\"2\">category</th>"
          "<th class=\"span\" colspan=\"3\">pixel AUROC</th><th rowspan=\"2\">image AUROC</th>"
          "<th class=\"span\" colspan=\"3\">AUPRO (FPR 0..0.3)</th><th rowspan=\"2\">F1 at "
          "threshold</th><th rowspan=\"2\">time s</th><th rowspan=\"2\">status</th></tr>\n"
          "<tr><th>ours</th><th>paper</th><th>&Delta;</th><th>ours</th><th>paper</th>"
          "<th>&Delta;</th></tr>\n",
          f);
    for (int i = 0; i < n; i++) {
        const dfr_campaign_row *r = &rows[i];
        fputs(r->is_mean ? "<tr class=\"mean\"><td>" : "<tr><td>", f);
        if (r->href && *r->href) {
            fputs("<a href=\"", f);
            put_esc(f, r->href);
            fputs("\">", f);
            put_esc(f, r->name);
            fputs("</a>", f);
        } else put_esc(f, r->name);
        fputs("</td>", f);
        put_cell(f, r->ours[0], 4);
        put_cell(f, r->paper[0], r->is_mean ? 3 : 2);
        put_delta(f, r->ours[0], r->paper[0]);
        put_cell(f, r->ours[1], 4);
        put_cell(f, r->ours[2], 4);
        put_cell(f, r->paper[1], r->is_mean ? 3 : 2);
        put_delta(f, r->ours[2], r->paper[1]);
        put_cell(f, r->ours[3], 4);
        put_cell(f, r->seconds, 0);
        fputs("<td>", f);
        put_esc(f, r->status);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
    if (n_notes > 0) {
        fputs("<ul class=\"notes\">\n", f);
        for (int i = 0; i < n_notes; i++) {
            fputs("<li>", f);
            put_esc(f, notes[i]);
            fputs("</li>\n", f);
        }
        fputs("</ul>\n", f);
    }
    fputs("<footer>Written by dfrcl " DFRCL_VERSION ". Each category's name links to its own "
          "report.</footer>\n</main>\n</body>\n</html>\n",
          f);
    return dfr_atomic_commit(&af);
}
