/* The tunables table (src/ops/tunables.c) and the per-device tuning database: every default and
 * test variant is legal; the kernels' own #ifndef defaults equal the CPU defaults; environment
 * strings parse (positional and key=value) or are refused; the database round trip (write, read,
 * used by an op, the environment still winning) and corrupt, foreign or illegal databases giving
 * a warning and the defaults. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <sys/stat.h>

#include "ops/ops.h"
#include "ops/tunables.h"
#include "testfs.h"
#include "testutil.h"
#include "util/error.h"
#include "util/fsutil.h"

static dfr_runtime *rt;
static char cache[4096];

static void test_table_legal(void **state)
{
    (void)state;
    char why[160];
    for (int k = 0; k < DFR_NTK; k++) {
        const dfr_tune_kernel *tk = &dfr_tune_kernels[k];
        assert_ptr_equal(dfr_tune_find(tk->name), tk);
        for (int c = 0; c < DFR_NCLASS; c++) {
            int v[DFR_TUNE_MAX_PARAMS];
            dfr_tune_class_defaults(tk, (dfr_dev_class)c, v);
            /* 256 work-items: what small GPUs allow */
            if (!dfr_tune_legal(tk, v, 256, why, sizeof why))
                fail_msg("%s %s defaults: %s", tk->name, dfr_class_name((dfr_dev_class)c), why);
        }
        for (int i = 0; i < 6 && tk->test_variants[i]; i++) {
            int v[DFR_TUNE_MAX_PARAMS];
            dfr_tune_class_defaults(tk, DFR_CLASS_CPU, v);
            assert_true(dfr_tune_parse(tk, tk->test_variants[i], v, why, sizeof why));
            if (!dfr_tune_legal(tk, v, 256, why, sizeof why))
                fail_msg("%s test variant %s: %s", tk->name, tk->test_variants[i], why);
        }
        for (int p = 0; p < tk->nparams; p++)
            for (int i = 0; i < tk->p[p].nsearch; i++) {
                assert_true(tk->p[p].search[i] >= tk->p[p].lo);
                assert_true(tk->p[p].search[i] <= tk->p[p].hi);
            }
    }
}

/* The value after "#ifndef NAME\n#define NAME" in a kernel file, or -1. */
static int kernel_default(const char *file, const char *name)
{
    char path[4096], pat[128];
    snprintf(path, sizeof path, "%s/kernels/%s", DFRCL_SOURCE_DIR, file);
    unsigned char *src = NULL;
    size_t len = 0;
    if (dfr_read_file(path, &src, &len)) return -1;
    snprintf(pat, sizeof pat, "#ifndef %s\n#define %s ", name, name);
    const char *at = strstr((const char *)src, pat);
    int v = at ? atoi(at + strlen(pat)) : -1;
    free(src);
    return v;
}

static void test_kernel_defaults_are_cpu_defaults(void **state)
{
    (void)state;
    for (int k = 0; k < DFR_NTK; k++) {
        const dfr_tune_kernel *tk = &dfr_tune_kernels[k];
        for (int p = 0; p < tk->nparams; p++) {
            if (!tk->p[p].define) continue;
            int kv = kernel_default(tk->file, tk->p[p].define);
            if (kv != tk->p[p].def[DFR_CLASS_CPU])
                fail_msg("%s: #define %s %d in kernels/%s, CPU default %d in tunables.c",
                         tk->name, tk->p[p].define, kv, tk->file, tk->p[p].def[DFR_CLASS_CPU]);
        }
    }
}

static void test_parse(void **state)
{
    (void)state;
    const dfr_tune_kernel *conv = &dfr_tune_kernels[DFR_TK_CONV];
    char why[160], s[256];
    int v[DFR_TUNE_MAX_PARAMS];
    dfr_tune_class_defaults(conv, DFR_CLASS_GPU, v);
    assert_true(dfr_tune_parse(conv, "8,12,16", v, why, sizeof why));
    assert_int_equal(v[CONV_TCO], 8);
    assert_int_equal(v[CONV_LX], 8); /* untouched */
    assert_true(dfr_tune_parse(conv, "4,4,0,2,2,1", v, why, sizeof why));
    assert_int_equal(v[CONV_LX], 2);
    assert_true(dfr_tune_parse(conv, "tx=7, cb=3", v, why, sizeof why));
    assert_int_equal(v[CONV_TX], 7);
    assert_int_equal(v[CONV_CB], 3);
    dfr_tune_format(conv, v, s, sizeof s);
    assert_string_equal(s, "tco=4,tx=7,cb=3,lx=2,ly=2,lz=1");
    dfr_tune_defines(conv, v, s, sizeof s);
    assert_string_equal(s, "-DCONV_TCO=4 -DCONV_TX=7 -DCONV_CB=3");
    /* refused, v unchanged */
    assert_false(dfr_tune_parse(conv, "8,12", v, why, sizeof why));
    assert_false(dfr_tune_parse(conv, "8,12,1,1", v, why, sizeof why));
    assert_false(dfr_tune_parse(conv, "tco=8,bogus=1", v, why, sizeof why));
    assert_non_null(strstr(why, "bogus"));
    assert_false(dfr_tune_parse(conv, "tco=x", v, why, sizeof why));
    assert_false(dfr_tune_parse(conv, "", v, why, sizeof why));
    assert_int_equal(v[CONV_TX], 7);
    /* illegal values and constraints */
    v[CONV_TCO] = 3;
    assert_false(dfr_tune_legal(conv, v, 1024, why, sizeof why));
    v[CONV_TCO] = 4, v[CONV_LX] = 0;
    assert_false(dfr_tune_legal(conv, v, 1024, why, sizeof why)); /* 0,2,1: all or none */
    v[CONV_LX] = 64, v[CONV_LY] = 64;
    assert_false(dfr_tune_legal(conv, v, 1024, why, sizeof why)); /* 4096 work-items */
    const dfr_tune_kernel *gemm = &dfr_tune_kernels[DFR_TK_GEMM];
    dfr_tune_class_defaults(gemm, DFR_CLASS_GPU, v);
    assert_true(dfr_tune_parse(gemm, "tm=48,wm=5", v, why, sizeof why));
    assert_false(dfr_tune_legal(gemm, v, 1024, why, sizeof why)); /* 48 % 5 */
}

/* The database for rt: written, read back, used (the score kernel with vec = 2 must still give
 * right values), overridden by the environment, disabled by dfr_tune_use_db. */
static void test_db_round_trip(void **state)
{
    (void)state;
    dfr_tune_db db, back;
    memset(&db, 0, sizeof db);
    dfr_tune_entry *e = &db.e[DFR_TK_SCORE];
    e->have = 1;
    e->v[SQ_VEC_] = 2, e->v[SQ_LX_] = 16;
    e->default_ms = 2.5, e->tuned_ms = 1.25;
    snprintf(e->shape, sizeof e->shape, "test");
    dfr_tune_entry *c = &db.e[DFR_TK_CONV];
    c->have = 1;
    dfr_tune_class_defaults(&dfr_tune_kernels[DFR_TK_CONV], DFR_CLASS_CPU, c->v);
    c->v[CONV_TX] = 5;
    assert_int_equal(dfr_tune_db_write(rt, &db), DFRCL_OK);
    int warned = 0;
    assert_int_equal(dfr_tune_db_read(rt, &back, &warned), DFRCL_OK);
    assert_int_equal(warned, 0);
    assert_true(back.e[DFR_TK_SCORE].have);
    assert_int_equal(back.e[DFR_TK_SCORE].v[SQ_VEC_], 2);
    assert_int_equal(back.e[DFR_TK_SCORE].v[SQ_LX_], 16);
    assert_true(back.e[DFR_TK_SCORE].tuned_ms == 1.25);
    assert_string_equal(back.e[DFR_TK_SCORE].shape, "test");
    assert_int_equal(back.e[DFR_TK_CONV].v[CONV_TX], 5);
    assert_false(back.e[DFR_TK_GEMM].have);

    dfr_tune_db_reload(rt);
    int v[DFR_TUNE_MAX_PARAMS];
    dfr_tune_source from;
    assert_int_equal(dfr_tune_resolve(rt, DFR_TK_SCORE, v, &from), DFRCL_OK);
    assert_int_equal(from, DFR_TUNE_FROM_DB);
    assert_int_equal(v[SQ_VEC_], 2);
    assert_int_equal(dfr_tune_resolve(rt, DFR_TK_GEMM, v, &from), DFRCL_OK);
    assert_int_equal(from, DFR_TUNE_FROM_DEFAULT);
    dfr_test_setenv(rt, "DFRCL_SCORE_TUNE", "4");
    assert_int_equal(dfr_tune_resolve(rt, DFR_TK_SCORE, v, &from), DFRCL_OK);
    assert_int_equal(from, DFR_TUNE_FROM_ENV);
    assert_int_equal(v[SQ_VEC_], 4);
    assert_int_equal(v[SQ_LX_], 16); /* the database's, under the environment's */
    dfr_test_setenv(rt, "DFRCL_SCORE_TUNE", "3");
    assert_int_equal(dfr_tune_resolve(rt, DFR_TK_SCORE, v, &from), DFRCL_ERR_INVALID_ARG);
    assert_non_null(strstr(dfrcl_last_error(), "DFRCL_SCORE_TUNE"));
    dfr_test_setenv(rt, "DFRCL_SCORE_TUNE", NULL);
    dfr_tune_use_db(rt, 0);
    assert_int_equal(dfr_tune_resolve(rt, DFR_TK_SCORE, v, &from), DFRCL_OK);
    assert_int_equal(from, DFR_TUNE_FROM_DEFAULT);
    dfr_tune_use_db(rt, 1);

    /* The op runs with the database's values (vec 2, work-groups of 16; npos 37 leaves a tail),
     * poisoned output, against a plain C mean. */
    int C = 5, np = 37;
    float a[5 * 37], r[5 * 37], out[37], ref[37];
    for (int i = 0; i < C * np; i++) a[i] = (float)(i % 7) * 0.5f, r[i] = (float)(i % 3);
    for (int p = 0; p < np; p++) {
        double s = 0;
        for (int k = 0; k < C; k++) s += (double)(a[k * np + p] - r[k * np + p]) * (a[k * np + p] - r[k * np + p]);
        ref[p] = (float)(s / C);
    }
    dfr_test_poison(out, np);
    cl_mem da, dr, ds;
    assert_int_equal(dfr_buffer_new(rt, sizeof a, CL_MEM_READ_WRITE, "t", &da), 0);
    assert_int_equal(dfr_buffer_new(rt, sizeof r, CL_MEM_READ_WRITE, "t", &dr), 0);
    assert_int_equal(dfr_buffer_new(rt, sizeof out, CL_MEM_READ_WRITE, "t", &ds), 0);
    assert_int_equal(dfr_write(rt, da, 0, sizeof a, a, "t"), 0);
    assert_int_equal(dfr_write(rt, dr, 0, sizeof r, r, "t"), 0);
    assert_int_equal(dfr_write(rt, ds, 0, sizeof out, out, "t"), 0);
    assert_int_equal(dfr_op_sqerr_mean(rt, da, dr, 1, C, np, ds), DFRCL_OK);
    assert_int_equal(dfr_read(rt, ds, 0, sizeof out, out, "t"), 0);
    assert_int_equal(dfr_test_compare("score (tuned)", out, ref, (size_t)np, 1e-6f, 1e-6f), 0);
    dfr_buffer_release(&da);
    dfr_buffer_release(&dr);
    dfr_buffer_release(&ds);
}

/* Writes text as rt's database, reloads, and checks the warnings and that the score kernel
 * falls back to its defaults (want_db: whether its entry survives). */
static void check_bad_db(const char *text, int want_warned, int want_db)
{
    char path[4200];
    assert_true(dfr_tune_db_path(rt, path, sizeof path));
    assert_int_equal(dfr_write_file_atomic(path, text, strlen(text)), DFRCL_OK);
    dfr_tune_db db;
    int warned = 0;
    assert_int_equal(dfr_tune_db_read(rt, &db, &warned), DFRCL_OK);
    if (warned != want_warned) fail_msg("%d warnings for %s", warned, text);
    dfr_tune_db_reload(rt);
    int v[DFR_TUNE_MAX_PARAMS];
    dfr_tune_source from;
    assert_int_equal(dfr_tune_resolve(rt, DFR_TK_SCORE, v, &from), DFRCL_OK);
    assert_int_equal(from, want_db ? DFR_TUNE_FROM_DB : DFR_TUNE_FROM_DEFAULT);
}

static void test_db_bad(void **state)
{
    (void)state;
    char good[2048];
    snprintf(good, sizeof good,
             "{\"format\": \"dfrcl-tune 1\", \"device\": \"%s\", \"driver_version\": \"%s\", "
             "\"platform_version\": \"%s\", \"kernels\": {\"score\": {\"values\": {\"vec\": 4, "
             "\"lx\": 0}}, \"conv\": {\"values\": {\"tco\": 3}}}}",
             rt->info.name, rt->info.driver_version, rt->info.platform_version);
    check_bad_db(good, 1, 1); /* conv's entry is incomplete: left out with a warning */
    check_bad_db("{\"format\": \"dfrcl-tune 1\", \"kern", 1, 0);
    check_bad_db("", 1, 0);
    check_bad_db("[1, 2, 3]", 1, 0);
    check_bad_db("{\"format\": \"dfrcl-tune 1\", \"device\": \"Another GPU\", \"driver_version\": "
                 "\"1\", \"platform_version\": \"1\", \"kernels\": {\"score\": {\"values\": "
                 "{\"vec\": 4, \"lx\": 0}}}}",
                 1, 0);
    char illegal[2048];
    snprintf(illegal, sizeof illegal,
             "{\"format\": \"dfrcl-tune 1\", \"device\": \"%s\", \"driver_version\": \"%s\", "
             "\"platform_version\": \"%s\", \"kernels\": {\"score\": {\"values\": {\"vec\": 3, "
             "\"lx\": 0.5}}}}",
             rt->info.name, rt->info.driver_version, rt->info.platform_version);
    check_bad_db(illegal, 1, 0);
    /* a folder where the file should be */
    char path[4200];
    assert_true(dfr_tune_db_path(rt, path, sizeof path));
    unlink(path);
    assert_int_equal(mkdir(path, 0700), 0);
    dfr_tune_db db;
    int warned = 0;
    assert_int_equal(dfr_tune_db_read(rt, &db, &warned), DFRCL_OK);
    assert_int_equal(warned, 1);
    rmdir(path);
    /* no file: no warning */
    warned = 0;
    assert_int_equal(dfr_tune_db_read(rt, &db, &warned), DFRCL_OK);
    assert_int_equal(warned, 0);
    dfr_tune_db_reload(rt);
}

int main(void)
{
    if (dfr_test_mkdtemp(cache, sizeof cache, "tunables")) return 1;
    dfr_test_setenv(rt, "DFRCL_SCORE_TUNE", NULL);
    dfr_test_setenv(rt, "DFRCL_TUNED", NULL);
    dfr_verbosity = 0;
    int rc = dfr_runtime_open(&rt, NULL, cache, 0);
    if (rc == DFRCL_ERR_NO_DEVICE) return DFR_TEST_SKIP;
    if (rc) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_legal),
        cmocka_unit_test(test_kernel_defaults_are_cpu_defaults),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_db_round_trip),
        cmocka_unit_test(test_db_bad),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    dfr_runtime_close(&rt);
    dfr_test_rmdir_flat(cache); /* the database and compiled kernels: all flat */
    return failed;
}
