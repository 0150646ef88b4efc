/* Campaigns through the shared library and the public header only: a campaign sharded two ways
 * and merged writes the same summary as one unsharded run; a stop request is honoured and the
 * same call resumes; bad shards, a merge with a missing shard, shards and reruns of other
 * settings are refused naming what is missing or different; NULL arguments. */
#include "dfrcl.h"

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "testfs.h"

#define S 32
#define LAYERS 4

static char tmp[256];
static dfrcl_context *ctx;
static dfrcl_backbone *bb;

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p), 0;
}

static void path(char *out, size_t n, const char *a, const char *b)
{
    snprintf(out, n, "%s/%s%s%s", tmp, a, b ? "/" : "", b ? b : "");
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static char *slurp(const char *p)
{
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    (void)n;
    fclose(f);
    return buf;
}

/* Events seen, and a stop on demand. */
typedef struct seen {
    int n[16];
    int stop_on; /* a kind: stop there (0: never) */
    int last_reason;
    char problems[4096];
} seen;

static int on_event(void *user, const dfrcl_campaign_event *e)
{
    seen *s = user;
    if (e->kind > 0 && e->kind < 16) s->n[e->kind]++;
    if (e->kind == DFRCL_CAMPAIGN_PROBLEM) {
        s->last_reason = e->reason;
        size_t u = strlen(s->problems);
        snprintf(s->problems + u, sizeof s->problems - u, "%s\n", e->message);
    }
    return s->stop_on && e->kind == s->stop_on;
}

static void options(dfrcl_campaign_options *o, const char *out, int i, int n, seen *s)
{
    static char root[512], outp[512];
    dfrcl_default_campaign_options(o);
    path(root, sizeof root, "root", NULL);
    path(outp, sizeof outp, out, NULL);
    o->root = root;
    o->out = outp;
    o->shard_index = i, o->shard_count = n;
    o->size = S;
    o->train.epochs = 1;
    o->train.batch = 2;
    o->on_event = on_event;
    o->user = s;
}

static int setup(void **state)
{
    (void)state;
    if (dfr_test_mkdtemp(tmp, sizeof tmp, "campaign")) return -1;
    const char *cats[3] = {"carpet", "fabric", "zebra"};
    for (int k = 0; k < 3; k++) { /* three categories that differ: other seeds, other counts */
        char d[512];
        path(d, sizeof d, "root", cats[k]);
        if (dfrcl_demo_dataset_write(d, S, 2 + k, 1, 1, 7u + (uint32_t)k)) return -1;
    }
    dfrcl_settings s;
    dfrcl_default_settings(&s);
    s.verbosity = 0;
    if (dfrcl_open(&ctx, &s)) return -1;
    return dfrcl_backbone_random(&bb, ctx, LAYERS, 0) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    dfrcl_backbone_close(&bb);
    dfrcl_close(&ctx);
    nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void same_file(const char *a_dir, const char *b_dir, const char *name)
{
    char a[512], b[512];
    path(a, sizeof a, a_dir, name);
    path(b, sizeof b, b_dir, name);
    char *x = slurp(a), *y = slurp(b);
    assert_non_null(x);
    assert_non_null(y);
    assert_string_equal(x, y);
    free(x), free(y);
}

/* Shards 1/2 and 2/2, merged: the summary files equal an unsharded run's. A stop asked at the
 * first category's training stops the run; the same call then finishes it. */
static void test_sharded_equals_unsharded(void **state)
{
    (void)state;
    dfrcl_campaign_options o;
    dfrcl_campaign_result r;
    seen s = {.stop_on = DFRCL_CAMPAIGN_TRAINING};
    options(&o, "u", 0, 0, &s);
    assert_int_equal(dfrcl_campaign_run(bb, &o, &r), DFRCL_ERR_INTERRUPTED);
    char p[512];
    path(p, sizeof p, "u", "summary.json");
    assert_false(exists(p));
    s = (seen){0};
    assert_int_equal(dfrcl_campaign_run(bb, &o, &r), DFRCL_OK);
    assert_int_equal(r.categories, 3);
    assert_int_equal(r.own, 3);
    assert_int_equal(r.ran, 3);
    assert_int_equal(r.failed, 0);
    assert_int_equal(s.n[DFRCL_CAMPAIGN_DONE], 3);
    assert_int_equal(s.n[DFRCL_CAMPAIGN_SUMMARY], 1);
    assert_true(s.n[DFRCL_CAMPAIGN_PROGRESS] > 0);
    assert_true(exists(p));

    for (int i = 1; i <= 2; i++) {
        s = (seen){0};
        options(&o, "s", i, 2, &s);
        assert_int_equal(dfrcl_campaign_run(bb, &o, &r), DFRCL_OK);
        assert_int_equal(r.own, i == 1 ? 2 : 1); /* carpet and zebra, then fabric */
        assert_int_equal(s.n[DFRCL_CAMPAIGN_SUMMARY], 0);
        path(p, sizeof p, "s", "summary.json");
        assert_false(exists(p));
    }
    path(p, sizeof p, "s", "fabric/metrics.json");
    assert_true(exists(p));
    s = (seen){0};
    char out[512];
    path(out, sizeof out, "s", NULL);
    assert_int_equal(dfrcl_campaign_merge(out, on_event, &s, &r), DFRCL_OK);
    assert_int_equal(r.shard_count, 2);
    assert_int_equal(r.categories, 3);
    assert_int_equal(s.n[DFRCL_CAMPAIGN_MERGING], 1);
    assert_int_equal(s.n[DFRCL_CAMPAIGN_SUMMARY], 1);
    same_file("u", "s", "summary.json");
    same_file("u", "s", "summary.csv");

    /* A rerun skips every category and writes the same summary. */
    s = (seen){0};
    options(&o, "u", 0, 0, &s);
    assert_int_equal(dfrcl_campaign_run(bb, &o, &r), DFRCL_OK);
    assert_int_equal(r.skipped, 3);
    same_file("u", "s", "summary.json");

    /* Other settings: refused naming the difference, unless force (which redoes them). */
    s = (seen){0};
    o.train.epochs = 2;
    o.categories = "fabric";
    assert_int_equal(dfrcl_campaign_run(bb, &o, &r), DFRCL_ERR_MISMATCH);
    assert_int_equal(r.reason, DFRCL_CAMPAIGN_SETTINGS_DIFFER);
    assert_non_null(strstr(dfrcl_last_error(), "fabric: epochs 1 -> 2"));
    assert_null(strstr(dfrcl_last_error(), "--"));
    assert_int_equal(s.n[DFRCL_CAMPAIGN_OTHER_SETTINGS], 1);
    o.force = 1;
    assert_int_equal(dfrcl_campaign_run(bb, &o, &r), DFRCL_OK);
    assert_int_equal(r.ran, 1);
}

/* A merge with a missing shard, and one whose shards ran with other settings: refused, naming
 * them, and nothing written. */
static void test_merge_refused(void **state)
{
    (void)state;
    dfrcl_campaign_options o;
    dfrcl_campaign_result r;
    seen s = {0};
    char out[512], p[512];
    options(&o, "m", 1, 2, &s);
    path(out, sizeof out, "m", NULL);
    assert_int_equal(dfrcl_campaign_run(bb, &o, &r), DFRCL_OK);
    assert_int_equal(dfrcl_campaign_merge(out, on_event, &s, &r), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(r.reason, DFRCL_CAMPAIGN_MERGE_REFUSED);
    assert_int_equal(s.last_reason, DFRCL_CAMPAIGN_MISSING_SHARDS);
    assert_non_null(strstr(s.problems, "missing shard 2/2"));
    assert_non_null(strstr(dfrcl_last_error(), "missing shard 2/2"));
    assert_null(strstr(dfrcl_last_error(), "--"));
    path(p, sizeof p, "m", "summary.json");
    assert_false(exists(p));

    s = (seen){0};
    options(&o, "m", 2, 2, &s);
    o.train.epochs = 2;
    assert_int_equal(dfrcl_campaign_run(bb, &o, &r), DFRCL_OK);
    s = (seen){0};
    assert_int_equal(dfrcl_campaign_merge(out, on_event, &s, &r), DFRCL_ERR_INVALID_ARG);
    assert_non_null(strstr(s.problems, "shard 2/2 ran with other settings than shard 1/2: epochs 1 -> 2"));
    assert_false(exists(p));
    /* Another count into the same folder would overlap: refused. */
    options(&o, "m", 1, 3, &s);
    assert_int_equal(dfrcl_campaign_run(bb, &o, &r), DFRCL_ERR_INVALID_ARG);
    assert_int_equal(r.reason, DFRCL_CAMPAIGN_SHARD_COUNT);
    /* No shard records at all; no folder. */
    path(out, sizeof out, "u", NULL);
    assert_int_not_equal(dfrcl_campaign_merge(out, NULL, NULL, &r), DFRCL_OK);
    assert_int_equal(r.reason, DFRCL_CAMPAIGN_NO_SHARDS);
    path(out, sizeof out, "nothing-here", NULL);
    assert_int_not_equal(dfrcl_campaign_merge(out, NULL, NULL, NULL), DFRCL_OK);
    assert_false(exists(out));
}

static void expect_bad(int rc, const char *words)
{
    if (rc != DFRCL_ERR_INVALID_ARG || !strstr(dfrcl_last_error(), words)) {
        fprintf(stderr, "status %d, message \"%s\", want INVALID_ARG naming \"%s\"\n", rc,
                dfrcl_last_error(), words);
        fail();
    }
}

static int score_progress(void *user, int done, int total)
{
    (void)user, (void)done, (void)total;
    return 0;
}

static void test_bad_arguments(void **state)
{
    (void)state;
    dfrcl_campaign_options o;
    dfrcl_campaign_result r;
    seen s = {0};
    options(&o, "bad", 0, 0, &s);
    dfrcl_default_campaign_options(NULL);
    expect_bad(dfrcl_campaign_run(NULL, &o, &r), "bb is NULL");
    expect_bad(dfrcl_campaign_run(bb, NULL, NULL), "o is NULL");
    expect_bad(dfrcl_campaign_merge(NULL, NULL, NULL, &r), "no out");
    expect_bad(dfrcl_campaign_merge("", NULL, NULL, NULL), "no out");
    o.shard_index = 3, o.shard_count = 2;
    expect_bad(dfrcl_campaign_run(bb, &o, &r), "shard 3 is outside 1..2");
    o.shard_index = 0;
    expect_bad(dfrcl_campaign_run(bb, &o, &r), "shard 0 is outside 1..2");
    o.shard_index = 1, o.shard_count = 0;
    expect_bad(dfrcl_campaign_run(bb, &o, &r), "shard_index");
    o.shard_index = 0, o.shard_count = -1;
    expect_bad(dfrcl_campaign_run(bb, &o, &r), "shard_count");
    options(&o, "bad", 0, 0, &s);
    o.root = NULL;
    expect_bad(dfrcl_campaign_run(bb, &o, &r), "o->root");
    options(&o, "bad", 0, 0, &s);
    o.out = "";
    expect_bad(dfrcl_campaign_run(bb, &o, &r), "o->out");
    options(&o, "bad", 0, 0, &s);
    o.size = 30;
    expect_bad(dfrcl_campaign_run(bb, &o, &r), "o->size");
    options(&o, "bad", 0, 0, &s);
    o.train.checkpoint = "x";
    expect_bad(dfrcl_campaign_run(bb, &o, &r), "o->train");
    options(&o, "bad", 0, 0, &s);
    o.score.progress = score_progress;
    expect_bad(dfrcl_campaign_run(bb, &o, &r), "o->score.progress");
    options(&o, "bad", 0, 0, &s);
    o.reserved[3] = 1;
    expect_bad(dfrcl_campaign_run(bb, &o, &r), "reserved");
    options(&o, "bad", 0, 0, &s);
    o.categories = "carpet,nope";
    assert_int_not_equal(dfrcl_campaign_run(bb, &o, &r), DFRCL_OK);
    assert_int_equal(r.reason, DFRCL_CAMPAIGN_UNKNOWN_CATEGORY);
    assert_non_null(strstr(dfrcl_last_error(), "'nope' not found"));
    char p[512];
    path(p, sizeof p, "bad", NULL);
    assert_false(exists(p)); /* refused before anything was written */

    int i = -1, n = -1;
    const char *bad[] = {"0/2", "3/2", "1/0", "1/", "/2", "a/b", "1/2x", "-1/2", "", "1-2",
                         "99999999999/2"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        assert_int_equal(dfrcl_campaign_shard_parse(bad[k], &i, &n), DFRCL_ERR_INVALID_ARG);
        assert_int_equal(i, 0);
        assert_null(strstr(dfrcl_last_error(), "--"));
    }
    assert_int_equal(dfrcl_campaign_shard_parse("2/4", &i, &n), DFRCL_OK);
    assert_int_equal(i, 2);
    assert_int_equal(n, 4);
    expect_bad(dfrcl_campaign_shard_parse(NULL, &i, &n), "spec is NULL");
    expect_bad(dfrcl_campaign_shard_parse("1/2", NULL, &n), "index is NULL");
    expect_bad(dfrcl_campaign_shard_parse("1/2", &i, NULL), "count is NULL");
    unsetenv("SLURM_ARRAY_TASK_ID");
    setenv("JOB_COMPLETION_INDEX", "1", 1);
    setenv("DFRCL_SHARD_COUNT", "3", 1);
    assert_int_equal(dfrcl_campaign_shard_parse("auto", &i, &n), DFRCL_OK);
    assert_int_equal(i, 2);
    assert_int_equal(n, 3);
    setenv("SLURM_ARRAY_TASK_ID", "7", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "4", 1);
    setenv("SLURM_ARRAY_TASK_COUNT", "3", 1);
    expect_bad(dfrcl_campaign_shard_parse("auto", &i, &n), "shard 4 is outside 1..3");
    unsetenv("SLURM_ARRAY_TASK_ID");
    unsetenv("JOB_COMPLETION_INDEX");
    expect_bad(dfrcl_campaign_shard_parse("auto", &i, &n), "neither SLURM_ARRAY_TASK_ID");
}

static void test_struct_sizes(void **state)
{
    (void)state;
    dfrcl_campaign_options o;
    memset(&o, 0xab, sizeof o);
    dfrcl_default_campaign_options(&o);
    for (size_t k = 0; k < sizeof o.reserved / sizeof *o.reserved; k++) assert_int_equal(o.reserved[k], 0);
    assert_int_equal(o.size, 256);
    assert_int_equal(o.shard_count, 0);
    assert_int_equal(sizeof(dfrcl_campaign_result), 136);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_struct_sizes),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_sharded_equals_unsharded),
        cmocka_unit_test(test_merge_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
