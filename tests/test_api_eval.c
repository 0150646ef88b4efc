/* API 1.1 behaviour through the shared library only: scoring files on every device, cancelling
 * scoring and training, dfrcl_evaluate against `dfrcl eval --json`, the per-context logger (also
 * for evaluation's mask warnings), and a
 * two-device context against one device (run with POCL_DEVICES="pthread pthread" too).
 * Usage: test_api_eval DFRCL_EXECUTABLE */
#include "dfrcl.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testfs.h"

#define S 32
#define LAYERS 4

static const char *dfrcl_exe;
static char dir[256], data[320], model_path[320];
static dfrcl_context *ctx;
static dfrcl_backbone *bb;
static dfrcl_model *model;
static char **tests;
static int n_tests, log_messages;

static void on_log(void *user, int level, const char *msg)
{
    (void)user, (void)level, (void)msg;
    log_messages++;
}

/* The test images: every defect folder's, then good's (the order does not matter here). */
static int list_tests(void)
{
    const char *sub[] = {"good", "hole", "scratch", "stain"};
    for (size_t d = 0; d < sizeof sub / sizeof *sub; d++) {
        char p[400];
        snprintf(p, sizeof p, "%s/test/%s", data, sub[d]);
        char **l = NULL;
        int n = 0;
        if (dfrcl_list_images(p, 0, &l, &n)) return -1;
        char **all = realloc(tests, (size_t)(n_tests + n) * sizeof *all);
        if (!all) return -1;
        tests = all;
        for (int i = 0; i < n; i++) tests[n_tests++] = strdup(l[i]);
        dfrcl_free_list(l, n);
    }
    return n_tests > 0 ? 0 : -1;
}

static int setup(void **state)
{
    (void)state;
    if (dfr_test_mkdtemp(dir, sizeof dir, "apieval")) return -1;
    snprintf(data, sizeof data, "%s/demo", dir);
    snprintf(model_path, sizeof model_path, "%s/m.dfr", dir);
    if (dfrcl_demo_dataset_write(data, S, 4, 2, 1, 7)) return -1;
    dfrcl_settings s;
    dfrcl_default_settings(&s);
    s.device = getenv("POCL_DEVICES") ? "all" : NULL;
    s.verbosity = 2;
    s.log = on_log;
    if (dfrcl_open(&ctx, &s) || dfrcl_backbone_random(&bb, ctx, LAYERS, 0)) {
        fprintf(stderr, "setup: %s\n", dfrcl_last_error());
        return -1;
    }
    char **train = NULL;
    int n = 0;
    dfrcl_train_options o;
    dfrcl_default_train_options(&o);
    o.epochs = 2;
    int rc = dfrcl_list_images(data, 1, &train, &n);
    if (!rc) rc = dfrcl_model_train(&model, bb, (const char *const *)train, n, S, &o);
    if (!rc) rc = dfrcl_model_save(model, model_path);
    dfrcl_free_list(train, n);
    if (rc || list_tests()) {
        fprintf(stderr, "setup: %s\n", dfrcl_last_error());
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dfrcl_model_close(&model);
    dfrcl_backbone_close(&bb);
    dfrcl_close(&ctx);
    dfrcl_free_list(tests, n_tests);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Collects maps and scores of a run. */
typedef struct collect {
    float *maps, *scores;
    int delivered, devices_seen;
} collect;

static int on_result(void *user, const dfrcl_result *r)
{
    collect *c = user;
    assert_int_equal(r->status, DFRCL_OK);
    memcpy(c->maps + (size_t)r->index * S * S, r->map, sizeof(float) * S * S);
    c->scores[r->index] = r->score;
    size_t above = 0;
    for (int i = 0; i < S * S; i++) above += r->map[i] > r->threshold;
    assert_true(fabs(r->anomalous_fraction - (double)above / (S * S)) < 1e-12);
    assert_int_equal(r->anomalous, r->score > r->threshold);
    c->devices_seen |= 1 << r->device;
    c->delivered++;
    return 0;
}

static void poison(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = NAN;
}

static void score_all(dfrcl_model *m, collect *c)
{
    size_t n = (size_t)n_tests * S * S;
    c->maps = malloc(n * sizeof(float));
    c->scores = malloc((size_t)n_tests * sizeof(float));
    assert_non_null(c->maps);
    assert_non_null(c->scores);
    poison(c->maps, n);
    poison(c->scores, (size_t)n_tests);
    dfrcl_score_options o;
    dfrcl_default_score_options(&o);
    assert_int_equal(dfrcl_model_score_files(m, (const char *const *)tests, n_tests, &o,
                                             on_result, c), DFRCL_OK);
    assert_int_equal(c->delivered, n_tests);
}

static void test_score_files_equals_one_at_a_time(void **state)
{
    (void)state;
    collect c = {0};
    score_all(model, &c);
    float *one = malloc(sizeof(float) * S * S);
    assert_non_null(one);
    for (int i = 0; i < n_tests; i++) {
        float s = NAN;
        poison(one, S * S);
        assert_int_equal(dfrcl_model_score_file(model, tests[i], one, &s), DFRCL_OK);
        assert_memory_equal(one, c.maps + (size_t)i * S * S, sizeof(float) * S * S);
        assert_true(s == c.scores[i]);
    }
    free(one);
    free(c.maps);
    free(c.scores);
}

static int stop_at_first(void *user, int done, int total)
{
    (void)user, (void)total;
    return done >= 1;
}

static void test_score_files_progress_stops(void **state)
{
    (void)state;
    collect c = {0};
    c.maps = malloc(sizeof(float) * S * S * (size_t)n_tests);
    c.scores = malloc(sizeof(float) * (size_t)n_tests);
    dfrcl_score_options o;
    dfrcl_default_score_options(&o);
    o.progress = stop_at_first;
    assert_int_equal(dfrcl_model_score_files(model, (const char *const *)tests, n_tests, &o,
                                             on_result, &c), DFRCL_ERR_INTERRUPTED);
    assert_int_equal(c.delivered, 1);
    assert_non_null(strstr(dfrcl_last_error(), "progress"));
    free(c.maps);
    free(c.scores);
}

/* The "metrics" object of a JSON file dfrcl wrote (its text up to "settings"). */
static char *metrics_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[2][65536];
    static int which;
    char *b = buf[which ^= 1];
    size_t n = fread(b, 1, sizeof buf[0] - 1, f);
    fclose(f);
    b[n] = 0;
    char *m = strstr(b, "\"metrics\""), *s = strstr(b, "\"settings\"");
    assert_non_null(m);
    assert_non_null(s);
    *s = 0;
    return m;
}

static void test_evaluate_equals_cli(void **state)
{
    (void)state;
    char json[400], json_cli[400], out[400], cmd[2048];
    snprintf(json, sizeof json, "%s/api.json", dir);
    snprintf(json_cli, sizeof json_cli, "%s/cli.json", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    dfrcl_eval_options o;
    dfrcl_default_eval_options(&o);
    o.data = data;
    o.json_path = json;
    o.out_dir = out;
    o.model_name = model_path;
    dfrcl_metrics mt;
    memset(&mt, 0xff, sizeof mt);
    /* The command loads the model file (whose threshold has 9 digits): so does this. */
    dfrcl_model *loaded = NULL;
    assert_int_equal(dfrcl_model_load(&loaded, bb, model_path), DFRCL_OK);
    assert_int_equal(dfrcl_evaluate(loaded, &o, &mt), DFRCL_OK);
    dfrcl_model_close(&loaded);
    assert_int_equal(mt.images, n_tests);
    assert_int_equal(mt.missing_masks, 0);
    assert_true(mt.pixel_auroc >= 0 && mt.pixel_auroc <= 1);
    for (size_t i = 0; i < sizeof mt.reserved / sizeof *mt.reserved; i++)
        assert_true(mt.reserved[i] == 0);
    struct stat st;
    char report[480];
    snprintf(report, sizeof report, "%s/report.html", out);
    assert_int_equal(stat(report, &st), 0);
    snprintf(cmd, sizeof cmd, "'%s' eval -q --model '%s' --data '%s' --random-backbone 0 "
             "--json '%s'", dfrcl_exe, model_path, data, json_cli);
    assert_int_equal(system(cmd), 0);
    assert_string_equal(metrics_text(json), metrics_text(json_cli));
}

static void test_evaluate_progress_stops(void **state)
{
    (void)state;
    char json[400];
    snprintf(json, sizeof json, "%s/stopped.json", dir);
    dfrcl_eval_options o;
    dfrcl_default_eval_options(&o);
    o.data = data;
    o.json_path = json;
    o.score.progress = stop_at_first;
    assert_int_equal(dfrcl_evaluate(model, &o, NULL), DFRCL_ERR_INTERRUPTED);
    assert_int_not_equal(access(json, F_OK), 0);
}

static int stop_at_step(void *user, const char *phase, int done, int total, double loss)
{
    (void)done, (void)total, (void)loss;
    if (strcmp(phase, "step")) return 0;
    ++*(int *)user;
    return 1;
}

static void test_train_on_progress_cancels(void **state)
{
    (void)state;
    char ck[400];
    snprintf(ck, sizeof ck, "%s/train.ck", dir);
    char **train = NULL;
    int n = 0, steps = 0;
    assert_int_equal(dfrcl_list_images(data, 1, &train, &n), DFRCL_OK);
    dfrcl_train_options o;
    dfrcl_default_train_options(&o);
    o.epochs = 5;
    o.batch = 2;
    o.checkpoint = ck;
    o.on_progress = stop_at_step;
    o.user = &steps;
    dfrcl_model *m = (dfrcl_model *)&m;
    assert_int_equal(dfrcl_model_train(&m, bb, (const char *const *)train, n, S, &o),
                     DFRCL_ERR_INTERRUPTED);
    assert_null(m);
    assert_int_equal(steps, 1); /* stopped within the first step */
    assert_int_equal(access(ck, F_OK), 0);
    dfrcl_free_list(train, n);
}

/* Runs work() on the saved model in a fresh context whose logger is `log`, with stderr
 * redirected to a file around it (meson's log cannot be checked for being empty), and asserts
 * that nothing reached stderr. Returns work's status. */
static int run_logged(dfrcl_log_fn log, int verbosity, int (*work)(dfrcl_model *m, void *arg),
                      void *arg)
{
    char errp[400];
    snprintf(errp, sizeof errp, "%s/stderr.txt", dir);
    fflush(stderr);
    int saved = dup(2);
    FILE *f = freopen(errp, "w", stderr);
    assert_non_null(f);
    dfrcl_settings s;
    dfrcl_default_settings(&s);
    s.verbosity = verbosity;
    s.log = log;
    dfrcl_context *c = NULL;
    dfrcl_backbone *b = NULL;
    dfrcl_model *m = NULL;
    int rc = dfrcl_open(&c, &s);
    if (!rc) rc = dfrcl_backbone_random(&b, c, LAYERS, 0);
    if (!rc) rc = dfrcl_model_load(&m, b, model_path);
    if (!rc) rc = work(m, arg);
    dfrcl_model_close(&m);
    dfrcl_backbone_close(&b);
    dfrcl_close(&c);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    struct stat st;
    assert_int_equal(stat(errp, &st), 0);
    assert_int_equal(st.st_size, 0);
    return rc;
}

static int score_first(dfrcl_model *m, void *arg)
{
    (void)arg;
    float *map = malloc(sizeof(float) * S * S);
    int rc = dfrcl_model_score_file(m, tests[0], map, NULL);
    free(map);
    return rc;
}

/* The logger got the context's messages (verbosity 2: the device line at least), and a fresh
 * context's work wrote nothing to stderr. */
static void test_logger_gets_messages_not_stderr(void **state)
{
    (void)state;
    assert_true(log_messages > 0);
    int before = log_messages;
    assert_int_equal(run_logged(on_log, 2, score_first, NULL), DFRCL_OK);
    assert_true(log_messages > before);
}

/* Evaluation's warnings about masks (one unreadable, one of another size) reach the context's
 * logger, not stderr. */
static int saw_dangling, saw_resized;

static void on_eval_log(void *user, int level, const char *msg)
{
    (void)user, (void)level;
    saw_dangling |= strstr(msg, "a dangling or looping link") != NULL;
    saw_resized |= strstr(msg, "resized") != NULL;
}

typedef struct evaluation {
    dfrcl_eval_options o;
    dfrcl_metrics mt;
} evaluation;

static int evaluate_into(dfrcl_model *m, void *arg)
{
    evaluation *e = arg;
    return dfrcl_evaluate(m, &e->o, &e->mt);
}

static void test_evaluate_warnings_reach_the_logger(void **state)
{
    (void)state;
    char data2[400], cmd[1400], gt[480];
    snprintf(data2, sizeof data2, "%s/demo_masks", dir);
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", data, data2);
    assert_int_equal(system(cmd), 0);
    /* hole's mask a dangling link, scratch's 8x8 instead of the image's size */
    const char *defect[2] = {"hole", "scratch"};
    for (int d = 0; d < 2; d++) {
        snprintf(gt, sizeof gt, "%s/ground_truth/%s", data2, defect[d]);
        char **masks = NULL;
        int n = 0;
        assert_int_equal(dfrcl_list_images(gt, 0, &masks, &n), DFRCL_OK);
        assert_true(n >= 1);
        if (d == 0) {
            assert_int_equal(unlink(masks[0]), 0);
            assert_int_equal(symlink("/nonexistent/mask.png", masks[0]), 0);
        } else {
            uint8_t px[64] = {0};
            px[27] = 255;
            dfrcl_image small = {8, 8, 1, px};
            assert_int_equal(dfrcl_image_save_png(&small, masks[0]), DFRCL_OK);
        }
        dfrcl_free_list(masks, n);
    }

    evaluation e;
    dfrcl_default_eval_options(&e.o);
    e.o.data = data2;
    assert_int_equal(run_logged(on_eval_log, 1, evaluate_into, &e), DFRCL_OK);
    assert_int_equal(e.mt.missing_masks, 1);
    assert_true(saw_dangling);
    assert_true(saw_resized);
}

static void test_two_devices_equal_one(void **state)
{
    (void)state;
    int k = dfrcl_context_device_count(ctx);
    assert_true(k >= 1);
    assert_null(dfrcl_context_device_at(ctx, k));
    if (k < 2) {
        fprintf(stderr, "note: one device: the two-device case is checked with "
                        "POCL_DEVICES=\"pthread pthread\"\n");
        return;
    }
    dfrcl_settings s;
    dfrcl_default_settings(&s);
    s.device = "0";
    s.verbosity = 0;
    dfrcl_context *c1 = NULL;
    dfrcl_backbone *b1 = NULL;
    dfrcl_model *m1 = NULL;
    assert_int_equal(dfrcl_open(&c1, &s), DFRCL_OK);
    assert_int_equal(dfrcl_context_device_count(c1), 1);
    assert_int_equal(dfrcl_backbone_random(&b1, c1, LAYERS, 0), DFRCL_OK);
    assert_int_equal(dfrcl_model_load(&m1, b1, model_path), DFRCL_OK);
    collect one = {0}, many = {0};
    score_all(m1, &one);
    score_all(model, &many); /* trained on device 0, copied to the others */
    assert_memory_equal(one.maps, many.maps, sizeof(float) * S * S * (size_t)n_tests);
    assert_memory_equal(one.scores, many.scores, sizeof(float) * (size_t)n_tests);
    free(one.maps), free(one.scores), free(many.maps), free(many.scores);
    dfrcl_model_close(&m1);
    dfrcl_backbone_close(&b1);
    dfrcl_close(&c1);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_api_eval DFRCL_EXECUTABLE\n");
        return 2;
    }
    dfrcl_exe = argv[1];
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_score_files_equals_one_at_a_time),
        cmocka_unit_test(test_score_files_progress_stops),
        cmocka_unit_test(test_evaluate_equals_cli),
        cmocka_unit_test(test_evaluate_progress_stops),
        cmocka_unit_test(test_train_on_progress_cancels),
        cmocka_unit_test(test_logger_gets_messages_not_stderr),
        cmocka_unit_test(test_evaluate_warnings_reach_the_logger),
        cmocka_unit_test(test_two_devices_equal_one),
    };
    return cmocka_run_group_tests(t, setup, teardown);
}
