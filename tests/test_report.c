/* The HTML evaluation report (src/eval/report.c):
 *  - base64 against the RFC 4648 test vectors;
 *  - a report with synthetic items and curves: starts with <!DOCTYPE html>, every element
 *    closes in order (a small tag-stack parser), no http:// or https:// anywhere, each item's
 *    name appears exactly once, the worst-first order (FP by descending score, FN ascending,
 *    then TP, then TN), caller strings with <>&"' and control characters escaped, every
 *    thumbnail's data: URI decodes (base64 then PNG) to the exact pixels given, NaN metrics
 *    show "n/a", finite ones 4 decimals, curve paths clipped to the chart and thinned;
 *  - atomic writes: no temp file left, bad items and unwritable paths leave no file and keep an
 *    existing one; bad arguments are refused with a message.
 * `test_report --demo OUT.html` writes a realistic-looking report (data/demo/woven_scratch.png
 * with synthetic anomaly maps) for looking at in a browser. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <locale.h>
#include <sys/stat.h>

#include "eval/report.h"
#include "io/heatmap.h"
#include "io/image.h"
#include "testutil.h"
#include "util/error.h"
#include "util/fsutil.h"

static char tmpdir[64];
static char curdir[128]; /* each test works in its own subfolder, so one failing test's
                            leftovers do not fail the next */

static void use_dir(const char *name)
{
    snprintf(curdir, sizeof curdir, "%s/%s", tmpdir, name);
    assert_int_equal(mkdir(curdir, 0755), 0);
}

static const char *tmp_path(const char *name)
{
    static char buf[sizeof curdir + 256];
    snprintf(buf, sizeof buf, "%s/%s", curdir, name);
    return buf;
}

/* The whole file as a NUL-terminated string (read here with stdio, not the library). */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        len += fread(buf + len, 1, cap - 1 - len, f);
        if (len < cap - 1) break;
        cap *= 2;
        buf = realloc(buf, cap);
        assert_non_null(buf);
    }
    assert_int_equal(ferror(f), 0);
    fclose(f);
    buf[len] = 0;
    assert_int_equal(strlen(buf), len); /* no NUL bytes in the page */
    return buf;
}

static int count_occurrences(const char *hay, const char *needle)
{
    int n = 0;
    size_t len = strlen(needle);
    for (const char *p = strstr(hay, needle); p; p = strstr(p + len, needle)) n++;
    return n;
}

/* Counts (and names) the files in the test's folder other than `keep`: "no temp file left". */
static int count_other_files(const char *keep)
{
    DIR *d = opendir(curdir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || (keep && strcmp(e->d_name, keep) == 0)) continue;
        fprintf(stderr, "unexpected file %s\n", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

/* ---- base64 ---------------------------------------------------------------------------- */

static int b64_value(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Strict decoder written independently of the encoder: length a multiple of 4, '=' only as
 * padding at the end, unused bits zero. Returns the decoded length or -1. */
static long b64_decode(const char *s, size_t n, uint8_t *out)
{
    if (n % 4) return -1;
    long o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
            } else {
                if (pad) return -1; /* data after '=' */
                v[k] = b64_value((unsigned char)s[i + k]);
                if (v[k] < 0) return -1;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | v[3];
        if ((pad == 2 && (w & 0xffff)) || (pad == 1 && (w & 0xff))) return -1;
        out[o++] = (uint8_t)(w >> 16);
        if (pad < 2) out[o++] = (uint8_t)(w >> 8);
        if (pad < 1) out[o++] = (uint8_t)w;
    }
    return o;
}

static void test_base64_vectors(void **state)
{
    (void)state;
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                        "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char out[16];
        memset(out, '#', sizeof out);
        size_t n = strlen(plain[i]);
        assert_int_equal(dfr_base64_len(n), strlen(coded[i]));
        assert_int_equal(dfr_base64_encode(out, (const uint8_t *)plain[i], n), strlen(coded[i]));
        assert_string_equal(out, coded[i]);
    }
    /* every byte value, every tail length: round trip through the test's decoder */
    uint8_t bytes[259], back[259];
    char text[400];
    for (int i = 0; i < 259; i++) bytes[i] = (uint8_t)(255 - i * 7);
    for (size_t n = 256; n < 259; n++) {
        size_t m = dfr_base64_encode(text, bytes, n);
        assert_int_equal(m, dfr_base64_len(n));
        assert_int_equal(b64_decode(text, m, back), (long)n);
        assert_memory_equal(back, bytes, n);
    }
    assert_int_equal(dfr_base64_len(SIZE_MAX), SIZE_MAX);
}

/* ---- a well-formedness check ----------------------------------------------------------- */

static int is_void_element(const char *name, size_t len)
{
    static const char *const v[] = {"meta", "img", "input", "br", "hr", "link", "wbr"};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        if (strlen(v[i]) == len && strncmp(v[i], name, len) == 0) return 1;
    return 0;
}

/* Every '<' in the page starts a tag (text is escaped and the CSS has none); every element
 * opened closes, in order. Also counts the elements of a few kinds. */
static void check_tags(const char *html, int *n_svg, int *n_img, int *n_card)
{
    const char *stack[256];
    size_t stack_len[256];
    int depth = 0;
    *n_svg = *n_img = *n_card = 0;
    for (const char *p = strchr(html, '<'); p; p = strchr(p + 1, '<')) {
        const char *end = strchr(p, '>');
        assert_non_null(end);
        if (p[1] == '!') { /* doctype */
            assert_true(strncmp(p, "<!DOCTYPE html>", 15) == 0);
            continue;
        }
        int closing = p[1] == '/';
        const char *name = p + 1 + closing;
        size_t len = strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789");
        if (len == 0) {
            fprintf(stderr, "stray '<' at \"%.40s\"\n", p);
            fail();
        }
        /* no '<' inside a tag: attribute values are escaped */
        const char *lt = strchr(p + 1, '<');
        assert_true(!lt || lt > end);
        if (closing) {
            if (depth == 0 || stack_len[depth - 1] != len ||
                strncmp(stack[depth - 1], name, len) != 0) {
                fprintf(stderr, "unbalanced </%.*s> (open: <%.*s>)\n", (int)len, name,
                        depth ? (int)stack_len[depth - 1] : 0, depth ? stack[depth - 1] : "");
                fail();
            }
            depth--;
            continue;
        }
        if (len == 3 && strncmp(name, "svg", 3) == 0) (*n_svg)++;
        if (len == 3 && strncmp(name, "img", 3) == 0) (*n_img)++;
        if (len == 3 && strncmp(name, "div", 3) == 0 && strncmp(name + 3, " class=\"card ", 13) == 0)
            (*n_card)++;
        if (end[-1] == '/' || is_void_element(name, len)) continue;
        assert_true(depth < 256);
        stack[depth] = name;
        stack_len[depth] = len;
        depth++;
    }
    assert_int_equal(depth, 0);
}

/* ---- the synthetic report -------------------------------------------------------------- */

enum { N_ITEMS = 8 };
static const char *const item_names[N_ITEMS] = {
    "good/unscored", "good/tn_low",   "crack/fn_high", "good/fp_low", "crack/tp_mid",
    "good/fp_high",  "crack/fn_low",  "scratch/evil<b>&amp;\"'\x01<script>",
};
static const char *const item_defects[N_ITEMS] = {"good", "good",  "crack", "good",   "crack",
                                                  "good",  "crack", "scr<atch"};
static const int item_labels[N_ITEMS] = {0, 0, 1, 0, 1, 0, 1, 1};
static const int item_pred[N_ITEMS] = {0, 0, 0, 1, 1, 1, 0, 1};
static const double item_scores[N_ITEMS] = {NAN, 0.2, 0.45, 0.6, 0.7, 0.9, 0.1, 0.95};
/* expected page order: FP desc, FN asc, TP desc, TN desc; the NaN score last in its group */
static const int expected_order[N_ITEMS] = {5, 3, 6, 2, 7, 4, 1, 0};
static const char *const evil_escaped = "scratch/evil&lt;b&gt;&amp;amp;&quot;&#39;\xEF\xBF\xBD"
                                        "&lt;script&gt;";

typedef struct {
    dfr_report_item items[N_ITEMS];
    dfr_report_metric metrics[4];
    dfr_report_curve curves[3];
    double roc_x[5], roc_y[5];
    double *pro_x, *pro_y; /* a long curve that runs past the x range */
    dfr_report report;
} fixture;

static void make_image(dfrcl_image *img, int w, int h, int c, uint32_t seed)
{
    img->width = w;
    img->height = h;
    img->channels = c;
    img->pixels = malloc((size_t)w * h * c);
    assert_non_null(img->pixels);
    for (size_t i = 0; i < (size_t)w * h * c; i++)
        img->pixels[i] = (uint8_t)dfr_test_hash(seed, (uint32_t)i);
}

enum { PRO_N = 200000 };

static void fixture_init(fixture *fx)
{
    memset(fx, 0, sizeof *fx);
    for (int i = 0; i < N_ITEMS; i++) {
        dfr_report_item *it = &fx->items[i];
        it->name = item_names[i];
        it->defect = item_defects[i];
        it->label = item_labels[i];
        it->predicted = item_pred[i];
        it->score = item_scores[i];
        /* tiny, odd-sized, distinct thumbnails; one grey input; normal items have no mask */
        make_image(&it->image, 5 + i, 4, i == 4 ? 1 : 3, 100 + (uint32_t)i);
        make_image(&it->overlay, 5 + i, 4, 3, 200 + (uint32_t)i);
        if (it->label) make_image(&it->mask, 5 + i, 4, 1, 300 + (uint32_t)i);
    }
    fx->metrics[0] = (dfr_report_metric){"image AUROC", 0.123456, "all test images"};
    fx->metrics[1] = (dfr_report_metric){"pixel AUROC", NAN, "no ground truth"};
    fx->metrics[2] = (dfr_report_metric){"AUPRO <0.3>", 1.0, NULL};
    fx->metrics[3] = (dfr_report_metric){"F1 & co", -INFINITY, "x"};
    const double rx[5] = {0, 0.1, 0.1, 0.5, 1}, ry[5] = {0, 0.4, NAN, 0.9, 1};
    memcpy(fx->roc_x, rx, sizeof rx);
    memcpy(fx->roc_y, ry, sizeof ry);
    fx->pro_x = malloc(PRO_N * sizeof(double));
    fx->pro_y = malloc(PRO_N * sizeof(double));
    assert_non_null(fx->pro_x);
    assert_non_null(fx->pro_y);
    for (int i = 0; i < PRO_N; i++) {
        double t = (double)i / (PRO_N - 1);
        fx->pro_x[i] = t; /* FPR 0..1, axis 0..0.3: 70% of the curve lies right of the chart */
        fx->pro_y[i] = sqrt(t);
    }
    fx->curves[0] = (dfr_report_curve){.label = "Image ROC",
                                       .x = fx->roc_x,
                                       .y = fx->roc_y,
                                       .n = 5,
                                       .note = "AUROC 0.8000",
                                       .x_label = "False positive rate",
                                       .y_label = "True positive rate",
                                       .diagonal = 1};
    fx->curves[1] = (dfr_report_curve){.label = "PRO",
                                       .x = fx->pro_x,
                                       .y = fx->pro_y,
                                       .n = PRO_N,
                                       .x_label = "False positive rate",
                                       .y_label = "Per-region overlap",
                                       .x_max = 0.3,
                                       .y_max = 1};
    fx->curves[2] = (dfr_report_curve){.label = "Empty <curve>", .n = 0};
    fx->report = (dfr_report){
        .title = "dfrcl eval: <toy> & \"friends\"",
        .subtitle = "model m.safetensors, device <cpu>",
        .metrics = fx->metrics,
        .n_metrics = 4,
        .curves = fx->curves,
        .n_curves = 3,
        .items = fx->items,
        .n_items = N_ITEMS,
        .threshold = 0.5,
        .settings_json = "{\"note\": \"</pre><script>alert(1)</script>\", \"amp\": \"a&b\"}",
    };
}

static void fixture_free(fixture *fx)
{
    for (int i = 0; i < N_ITEMS; i++) {
        free(fx->items[i].image.pixels);
        free(fx->items[i].overlay.pixels);
        free(fx->items[i].mask.pixels);
    }
    free(fx->pro_x);
    free(fx->pro_y);
}

static int same_image(const dfrcl_image *a, const dfrcl_image *b)
{
    return a->width == b->width && a->height == b->height && a->channels == b->channels &&
           memcmp(a->pixels, b->pixels, (size_t)a->width * a->height * a->channels) == 0;
}

/* Decodes every data: URI of the page in order; each must match the thumbnails of the items
 * in page order (input, overlay, then the mask when there is one). */
static void check_thumbnails(const char *html, const fixture *fx)
{
    const char *prefix = "data:image/png;base64,";
    const char *p = html;
    int n_uri = 0;
    for (int k = 0; k < N_ITEMS; k++) {
        const dfr_report_item *it = &fx->items[expected_order[k]];
        const dfrcl_image *want[3] = {&it->image, &it->overlay, &it->mask};
        for (int t = 0; t < 3; t++) {
            if (want[t]->width == 0) continue;
            p = strstr(p, prefix);
            assert_non_null(p);
            p += strlen(prefix);
            size_t n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                 "0123456789+/=");
            assert_int_equal(p[n], '"');
            uint8_t *png = malloc(n);
            assert_non_null(png);
            long len = b64_decode(p, n, png);
            assert_true(len > 8);
            assert_memory_equal(png, "\x89PNG\r\n\x1a\n", 8);
            dfrcl_image got = {0};
            assert_int_equal(dfr_image_decode_memory(&got, png, (size_t)len, "thumbnail"),
                             DFRCL_OK);
            if (!same_image(&got, want[t])) {
                fprintf(stderr, "thumbnail %d of %s differs\n", t, it->name);
                fail();
            }
            dfrcl_image_free(&got);
            free(png);
            n_uri++;
        }
    }
    assert_null(strstr(p, prefix)); /* no more */
    assert_int_equal(count_occurrences(html, prefix), n_uri);
}

/* Every coordinate of every <path d="..."> lies in the chart (380 x 300); returns the number
 * of points in the longest path. */
static long check_paths(const char *html)
{
    long longest = 0;
    for (const char *p = strstr(html, " d=\""); p; p = strstr(p + 1, " d=\"")) {
        p += 4;
        const char *end = strchr(p, '"');
        assert_non_null(end);
        long points = 0;
        for (const char *q = p; q < end;) {
            assert_true(*q == 'M' || *q == 'L');
            char *after;
            double x = strtod(q + 1, &after);
            assert_int_equal(*after, ',');
            double y = strtod(after + 1, &after);
            if (!(x >= 0 && x <= 380 && y >= 0 && y <= 300)) {
                fprintf(stderr, "path point %g,%g outside the chart\n", x, y);
                fail();
            }
            points++;
            q = after;
        }
        if (points > longest) longest = points;
    }
    return longest;
}

static void test_report_content(void **state)
{
    (void)state;
    use_dir("content");
    fixture fx;
    fixture_init(&fx);
    const char *path = tmp_path("report.html");
    if (dfr_report_write_html(path, &fx.report) != DFRCL_OK) {
        fprintf(stderr, "%s\n", dfrcl_last_error());
        fail();
    }
    assert_int_equal(count_other_files("report.html"), 0);
    char *html = read_text(path);

    assert_true(strncmp(html, "<!DOCTYPE html>\n<html", 21) == 0);
    assert_non_null(strstr(html, "<meta charset=\"utf-8\">"));
    size_t len = strlen(html);
    assert_true(len > 8 && strcmp(html + len - 8, "</html>\n") == 0);
    int n_svg, n_img, n_card;
    check_tags(html, &n_svg, &n_img, &n_card);
    assert_int_equal(n_svg, 4); /* 3 curves + the score strip */
    assert_int_equal(n_card, N_ITEMS);
    assert_int_equal(n_img, 2 * N_ITEMS + 4); /* input + overlay each, 4 masks */
    assert_int_equal(count_occurrences(html, "<circle "), N_ITEMS - 1); /* finite scores */
    assert_non_null(strstr(html, "1 without a finite score not shown"));
    assert_non_null(strstr(html, "score <span class=\"sc\">n/a</span> vs"));
    assert_int_equal(count_occurrences(html, "<body>"), 1);

    /* self-contained */
    assert_null(strstr(html, "http://"));
    assert_null(strstr(html, "https://"));
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "<link"));
    assert_null(strstr(html, "src=\"/"));

    /* names exactly once, worst first */
    const char *pos[N_ITEMS];
    for (int i = 0; i < N_ITEMS; i++) {
        const char *esc = i == 7 ? evil_escaped : item_names[i];
        if (count_occurrences(html, esc) != 1) {
            fprintf(stderr, "name %s appears %d times\n", esc, count_occurrences(html, esc));
            fail();
        }
        pos[i] = strstr(html, esc);
    }
    for (int k = 1; k < N_ITEMS; k++)
        if (!(pos[expected_order[k - 1]] < pos[expected_order[k]])) {
            fprintf(stderr, "%s should come before %s\n", item_names[expected_order[k - 1]],
                    item_names[expected_order[k]]);
            fail();
        }
    /* the badge of each card says its verdict */
    static const char *const verdicts[N_ITEMS] = {"TN", "TN", "FN", "FP", "TP", "FP", "FN", "TP"};
    for (int i = 0; i < N_ITEMS; i++) {
        const char *badge = pos[i];
        while (badge > html && strncmp(badge, "<span class=\"badge ", 19) != 0) badge--;
        char want[64];
        snprintf(want, sizeof want, "<span class=\"badge %c%c\">%s</span>",
                 verdicts[i][0] | 0x20, verdicts[i][1] | 0x20, verdicts[i]);
        assert_true(strncmp(badge, want, strlen(want)) == 0);
    }

    /* escaping of every caller string */
    assert_non_null(strstr(html, "<title>dfrcl eval: &lt;toy&gt; &amp; &quot;friends&quot;</title>"));
    assert_non_null(strstr(html, "device &lt;cpu&gt;"));
    assert_non_null(strstr(html, "scr&lt;atch"));
    assert_non_null(strstr(html, "AUPRO &lt;0.3&gt;"));
    assert_non_null(strstr(html, "F1 &amp; co"));
    assert_non_null(strstr(html, "Empty &lt;curve&gt;"));
    assert_non_null(strstr(html, "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_non_null(strstr(html, "a&amp;b"));
    assert_null(strchr(html, '\x01'));

    /* metrics: 4 decimals, non-finite -> n/a */
    const char *row = strstr(html, "image AUROC");
    assert_non_null(row);
    const char *row_end = strstr(row, "</tr>");
    const char *v = strstr(row, "0.1235");
    assert_true(v && v < row_end);
    row = strstr(html, "AUPRO &lt;0.3&gt;");
    v = strstr(row, "1.0000");
    assert_true(v && v < strstr(row, "</tr>"));
    const char *metric_nan[2] = {"pixel AUROC", "F1 &amp; co"};
    for (int i = 0; i < 2; i++) {
        row = strstr(html, metric_nan[i]);
        assert_non_null(row);
        row_end = strstr(row, "</tr>");
        v = strstr(row, "n/a");
        assert_true(v && v < row_end);
    }
    assert_null(strstr(html, "nan"));
    assert_null(strstr(html, "NaN"));
    assert_null(strstr(html, "inf<"));

    /* scores against the threshold */
    assert_non_null(strstr(html, "0.9500</span> &gt; <span class=\"sc\">0.5000"));
    assert_non_null(strstr(html, "0.1000</span> \xE2\x89\xA4 <span class=\"sc\">0.5000"));

    /* curves: clipped to the chart, the 200000-point PRO curve thinned */
    long longest = check_paths(html);
    assert_true(longest >= 3);
    assert_true(longest < 2000);
    assert_non_null(strstr(html, "no data in range"));
    assert_non_null(strstr(html, "stroke-dasharray=\"5 4\"")); /* the ROC diagonal */
    assert_non_null(strstr(html, "AUROC 0.8000"));

    check_thumbnails(html, &fx);
    free(html);

    /* writing again replaces the file atomically */
    fx.report.title = "second";
    assert_int_equal(dfr_report_write_html(path, &fx.report), DFRCL_OK);
    html = read_text(path);
    assert_non_null(strstr(html, "<title>second</title>"));
    free(html);
    assert_int_equal(count_other_files("report.html"), 0);
    unlink(path);
    fixture_free(&fx);
}

/* A report with nothing in it is still a whole page. */
static void test_report_empty(void **state)
{
    (void)state;
    use_dir("empty");
    dfr_report r = {.threshold = NAN};
    const char *path = tmp_path("empty.html");
    assert_int_equal(dfr_report_write_html(path, &r), DFRCL_OK);
    char *html = read_text(path);
    int n_svg, n_img, n_card;
    check_tags(html, &n_svg, &n_img, &n_card);
    assert_int_equal(n_svg + n_img + n_card, 0);
    assert_non_null(strstr(html, "No test images."));
    assert_non_null(strstr(html, "threshold <b>n/a</b>"));
    free(html);
    unlink(path);
    assert_int_equal(count_other_files(NULL), 0);
}

/* A program that called setlocale() must still get '.' decimal points. */
static void test_report_locale(void **state)
{
    (void)state;
    use_dir("locale");
    const char *loc = setlocale(LC_NUMERIC, "de_DE.UTF-8");
    if (!loc) loc = setlocale(LC_NUMERIC, "fr_FR.UTF-8");
    if (!loc) {
        fprintf(stderr, "no locale with a decimal comma installed; locale check skipped\n");
        return;
    }
    char probe[16];
    snprintf(probe, sizeof probe, "%.1f", 0.5);
    assert_string_equal(probe, "0,5");
    fixture fx;
    fixture_init(&fx);
    const char *path = tmp_path("locale.html");
    int rc = dfr_report_write_html(path, &fx.report);
    setlocale(LC_NUMERIC, "C");
    assert_int_equal(rc, DFRCL_OK);
    char *html = read_text(path);
    assert_non_null(strstr(html, "0.1235"));
    check_paths(html);
    free(html);
    unlink(path);
    fixture_free(&fx);
}

static void assert_msg_has(const char *s)
{
    if (!strstr(dfrcl_last_error(), s)) {
        fprintf(stderr, "message \"%s\" lacks \"%s\"\n", dfrcl_last_error(), s);
        fail();
    }
}

static void test_report_bad_args(void **state)
{
    (void)state;
    use_dir("bad_args");
    fixture fx;
    fixture_init(&fx);
    const char *path = tmp_path("bad.html");
    /* an existing report survives a failed write */
    assert_int_equal(dfr_write_file_atomic(path, "old", 3), DFRCL_OK);

    assert_int_equal(dfr_report_write_html(path, NULL), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(dfr_report_write_html(NULL, &fx.report), DFRCL_ERR_INVALID_ARG);

    dfr_report r = fx.report;
    r.n_items = -1;
    assert_int_equal(dfr_report_write_html(path, &r), DFRCL_ERR_INVALID_ARG);
    r = fx.report;
    r.items = NULL;
    assert_int_equal(dfr_report_write_html(path, &r), DFRCL_ERR_INVALID_ARG);
    r = fx.report;
    r.metrics = NULL;
    assert_int_equal(dfr_report_write_html(path, &r), DFRCL_ERR_INVALID_ARG);

    fx.curves[0].x = NULL;
    assert_int_equal(dfr_report_write_html(path, &fx.report), DFRCL_ERR_INVALID_ARG);
    assert_msg_has("Image ROC");
    fx.curves[0].x = fx.roc_x;

    /* a thumbnail without pixels, one with 5 channels: the item is named */
    uint8_t *keep = fx.items[4].overlay.pixels;
    fx.items[4].overlay.pixels = NULL;
    assert_int_equal(dfr_report_write_html(path, &fx.report), DFRCL_ERR_INVALID_ARG);
    assert_msg_has("crack/tp_mid");
    assert_msg_has(path);
    fx.items[4].overlay.pixels = keep;
    fx.items[2].mask.channels = 5;
    assert_int_equal(dfr_report_write_html(path, &fx.report), DFRCL_ERR_INVALID_ARG);
    assert_msg_has("crack/fn_high");
    fx.items[2].mask.channels = 1;
    fx.items[2].image.height = -4;
    assert_int_equal(dfr_report_write_html(path, &fx.report), DFRCL_ERR_INVALID_ARG);
    fx.items[2].image.height = 4;

    char *html = read_text(path);
    assert_string_equal(html, "old");
    free(html);
    assert_int_equal(count_other_files("bad.html"), 0);
    unlink(path);

    /* unwritable place: IO error naming the path, nothing left behind */
    assert_int_equal(dfr_report_write_html(tmp_path("no/such/dir/report.html"), &fx.report),
                     DFRCL_ERR_IO);
    assert_msg_has("no/such/dir");
    assert_int_equal(count_other_files(NULL), 0);
    fixture_free(&fx);
}

/* ---- demo report ----------------------------------------------------------------------- */

/* Gaussian blob of height a at (cx, cy), radius s (pixels of a w x h map), added in place. */
static void add_blob(float *m, int w, int h, double cx, double cy, double sx, double sy,
                     double a)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double dx = (x - cx) / sx, dy = (y - cy) / sy;
            m[(size_t)y * w + x] += (float)(a * exp(-0.5 * (dx * dx + dy * dy)));
        }
}

static int write_demo(const char *out)
{
    enum { T = 128, N = 18 };
    char src[4096];
    snprintf(src, sizeof src, "%s/data/demo/woven_scratch.png", DFRCL_SOURCE_DIR);
    dfrcl_image full = {0}, base = {0};
    if (dfrcl_image_load(&full, src) || dfrcl_image_resize(&base, &full, T, T)) {
        fprintf(stderr, "%s\n", dfrcl_last_error());
        return 1;
    }
    dfr_report_item items[N];
    char names[N][64];
    float *map = malloc(sizeof(float) * T * T), *gt = malloc(sizeof(float) * T * T);
    if (!map || !gt) return 1;
    static const char *const defects[] = {"good", "scratch", "hole", "color"};
    const double thr = 0.42;
    for (int i = 0; i < N; i++) {
        dfr_report_item *it = &items[i];
        memset(it, 0, sizeof *it);
        int kind = i % 4;
        it->defect = defects[kind];
        it->label = kind != 0;
        snprintf(names[i], sizeof names[i], "%s/%03d", it->defect, i);
        it->name = names[i];
        /* input: the demo picture shifted and flipped per item */
        make_image(&it->image, T, T, 3, 1);
        for (int y = 0; y < T; y++)
            for (int x = 0; x < T; x++) {
                int sx = (x + 17 * i) % T, sy = (i & 1) ? T - 1 - y : y;
                memcpy(&it->image.pixels[(y * T + x) * 3], &base.pixels[(sy * T + sx) * 3], 3);
            }
        /* score map: low-level texture noise, plus a blob where the defect is */
        for (int k = 0; k < T * T; k++)
            map[k] = (float)(0.08 + dfr_test_uniform((uint32_t)i, (uint32_t)k, 0.0f, 0.06f));
        memset(gt, 0, sizeof(float) * T * T);
        double cx = 30 + (i * 37) % 70, cy = 25 + (i * 53) % 80;
        double strength = 0.15 + dfr_test_uniform(77u, (uint32_t)i, 0.0f, 0.55f);
        if (it->label) {
            double sx = kind == 1 ? 22 : 9, sy = kind == 1 ? 4 : 9;
            add_blob(gt, T, T, cx, cy, sx, sy, 1.0);
            add_blob(map, T, T, cx, cy, sx * 1.2, sy * 1.5, strength + 0.15);
        } else if (i % 8 == 4) {
            add_blob(map, T, T, cx, cy, 10, 10, 0.45); /* a false alarm */
        }
        float mx = 0;
        for (int k = 0; k < T * T; k++) mx = map[k] > mx ? map[k] : mx;
        it->score = mx;
        it->predicted = it->score > thr;
        if (dfr_heatmap_overlay(&it->image, map, T, T, 0.0f, 0.9f, 0.55f, &it->overlay))
            return 1;
        if (it->label) {
            if (dfr_mask_image(gt, T, T, 0.5f, &it->mask)) return 1;
            dfr_outline_overlay(&it->overlay, &it->mask, NULL);
        }
    }
    /* plausible curves */
    enum { NP = 400 };
    static double rx[NP], ry[NP], ix[12], iy[12], px[NP], py[NP];
    for (int k = 0; k < NP; k++) {
        double t = (double)k / (NP - 1);
        rx[k] = t;
        ry[k] = 1 - pow(1 - t, 12);
        px[k] = t;
        py[k] = 1 - pow(1 - fmin(1, t * 3.2), 2.2) * 0.9 - 0.1 * (1 - t);
    }
    const double sx[12] = {0, 0, 0.2, 0.2, 0.4, 0.4, 0.6, 0.6, 0.8, 0.8, 1, 1};
    const double sy[12] = {0, 0.46, 0.46, 0.69, 0.69, 0.85, 0.85, 0.92, 0.92, 1, 1, 1};
    memcpy(ix, sx, sizeof sx);
    memcpy(iy, sy, sizeof sy);
    dfr_report_curve curves[3] = {
        {.label = "Pixel ROC", .x = rx, .y = ry, .n = NP, .note = "AUROC 0.9231",
         .x_label = "False positive rate", .y_label = "True positive rate", .diagonal = 1},
        {.label = "Image ROC", .x = ix, .y = iy, .n = 12, .note = "AUROC 0.7840",
         .x_label = "False positive rate", .y_label = "True positive rate", .diagonal = 1},
        {.label = "PRO", .x = px, .y = py, .n = NP, .note = "AUPRO@0.3 0.6712",
         .x_label = "False positive rate", .y_label = "Per-region overlap", .x_max = 0.3,
         .y_max = 1},
    };
    dfr_report_metric metrics[] = {
        {"Image AUROC", 0.78403, "image score = max of the map"},
        {"Pixel AUROC", 0.923101, NULL},
        {"AUPRO (FPR \xE2\x89\xA4 0.3)", 0.671234, "normalised by 0.3"},
        {"Image F1 at threshold", 0.8, NULL},
        {"Pixel AUROC, good images only", NAN, "undefined: no defective pixels"},
    };
    dfr_report r = {
        .title = "dfrcl eval: woven_toy",
        .subtitle = "model woven_toy.safetensors \xC2\xB7 VGG19 relu1_1..relu4_4 \xC2\xB7 "
                    "device: NVIDIA H100 (OpenCL 3.0) \xC2\xB7 2024-05-01 12:00",
        .metrics = metrics,
        .n_metrics = 5,
        .curves = curves,
        .n_curves = 3,
        .items = items,
        .n_items = N,
        .threshold = thr,
        .settings_json = "{\n  \"size\": 256,\n  \"layers\": \"relu1_1..relu4_4\",\n  "
                         "\"expected_fpr\": 0.005,\n  \"epochs\": 150\n}",
    };
    int rc = dfr_report_write_html(out, &r);
    if (rc) fprintf(stderr, "%s\n", dfrcl_last_error());
    for (int i = 0; i < N; i++) {
        dfrcl_image_free(&items[i].image);
        dfrcl_image_free(&items[i].overlay);
        dfrcl_image_free(&items[i].mask);
    }
    dfrcl_image_free(&full);
    dfrcl_image_free(&base);
    free(map);
    free(gt);
    return rc ? 1 : 0;
}

/* ---- main ------------------------------------------------------------------------------ */

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dfrcl-test-report-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

/* Removes a folder holding files and folders of files (all this test makes). */
static void remove_tree(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[1024];
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
            if (unlink(path) != 0 && depth < 1) remove_tree(path, depth + 1);
        }
        closedir(d);
    }
    rmdir(dir);
}

static int teardown_dir(void **state)
{
    (void)state;
    remove_tree(tmpdir, 0);
    return 0;
}

int main(int argc, char **argv)
{
    dfr_verbosity = 0;
    if (argc == 3 && strcmp(argv[1], "--demo") == 0) return write_demo(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_vectors),
        cmocka_unit_test(test_report_content),
        cmocka_unit_test(test_report_empty),
        cmocka_unit_test(test_report_locale),
        cmocka_unit_test(test_report_bad_args),
    };
    return cmocka_run_group_tests_name("report", tests, setup_dir, teardown_dir);
}
