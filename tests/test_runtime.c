/* The runtime: device listing and choice, the program binary cache (write, reuse, corrupt file,
 * disabled, unwritable), build failures with their log, memory errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <sys/stat.h>

#include "cl/runtime.h"
#include "ops/ops.h"
#include "testutil.h"
#include "util/error.h"

static char tmpdir[256];

/* Number of *.clbin files in dir (and the path of the last one). */
static int count_bins(const char *dir, char *last, size_t n)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int c = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".clbin") && !strstr(e->d_name, ".tmp.")) {
            c++;
            if (last) snprintf(last, n, "%s/%s", dir, e->d_name);
        }
    closedir(d);
    return c;
}

/* Runs maxpool on a 2x2 map to prove a program works. */
static void check_maxpool_works(dfr_runtime *rt)
{
    float in[4] = {1, 5, -2, 3}, out = DFR_POISON;
    cl_mem a, b;
    assert_int_equal(dfr_buffer_new(rt, sizeof in, CL_MEM_READ_WRITE, "t", &a), DFRCL_OK);
    assert_int_equal(dfr_buffer_new(rt, sizeof out, CL_MEM_READ_WRITE, "t", &b), DFRCL_OK);
    assert_int_equal(dfr_write(rt, a, 0, sizeof in, in, "t"), DFRCL_OK);
    assert_int_equal(dfr_op_maxpool2(rt, a, b, 1, 2, 2), DFRCL_OK);
    assert_int_equal(dfr_read(rt, b, 0, sizeof out, &out, "t"), DFRCL_OK);
    assert_true(out == 5.0f);
    dfr_buffer_release(&a);
    dfr_buffer_release(&b);
}

static void test_list_and_default(void **state)
{
    (void)state;
    dfrcl_device_info *d = NULL;
    int n = 0;
    assert_int_equal(dfr_list_devices(&d, &n, NULL, NULL), DFRCL_OK);
    assert_true(n >= 1);
    int defaults = 0, first_gpu = -1;
    for (int i = 0; i < n; i++) {
        assert_int_equal(d[i].index, i);
        assert_true(d[i].name[0] != 0);
        assert_true(d[i].max_work_group_size >= 1);
        defaults += d[i].is_default;
        if (first_gpu < 0 && d[i].is_gpu) first_gpu = i;
    }
    assert_int_equal(defaults, 1);
    assert_int_equal(d[first_gpu >= 0 ? first_gpu : 0].is_default, 1);
    free(d);
}

static void test_select(void **state)
{
    (void)state;
    dfr_runtime *rt = NULL;
    assert_int_equal(dfr_runtime_open(&rt, "0", "", 0), DFRCL_OK);
    char name[256];
    snprintf(name, sizeof name, "%s", rt->info.name);
    assert_int_equal(rt->info.index, 0);
    dfr_runtime_close(&rt);
    assert_null(rt);

    /* A name substring, in another case. */
    char sub[8] = {0};
    for (int i = 0; i < 4 && name[i]; i++) sub[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
    assert_int_equal(dfr_runtime_open(&rt, sub, "", 0), DFRCL_OK);
    dfr_runtime_close(&rt);

    assert_int_equal(dfr_runtime_open(&rt, "999", "", 0), DFRCL_ERR_NO_DEVICE);
    assert_non_null(strstr(dfrcl_last_error(), "out of range"));
    assert_int_equal(dfr_runtime_open(&rt, "no-such-device-xyz", "", 0), DFRCL_ERR_NO_DEVICE);
    assert_non_null(strstr(dfrcl_last_error(), "no-such-device-xyz"));
    assert_non_null(strstr(dfrcl_last_error(), name)); /* it lists the devices there are */
    assert_null(rt);

    /* DFRCL_DEVICE applies when no selector is given. */
    setenv("DFRCL_DEVICE", "no-such-device-xyz", 1);
    assert_int_equal(dfr_runtime_open(&rt, NULL, "", 0), DFRCL_ERR_NO_DEVICE);
    unsetenv("DFRCL_DEVICE");
}

static void test_cache(void **state)
{
    (void)state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/cache", tmpdir);
    dfr_runtime *rt = NULL;
    assert_int_equal(dfr_runtime_open(&rt, NULL, dir, 0), DFRCL_OK);
    check_maxpool_works(rt);
    dfr_runtime_close(&rt);
    char bin[1024];
    assert_int_equal(count_bins(dir, bin, sizeof bin), 1);
    struct stat st1;
    assert_int_equal(stat(bin, &st1), 0);
    assert_true(st1.st_size > 0);

    /* Reuse: a second process-like open loads it and writes nothing new. */
    assert_int_equal(dfr_runtime_open(&rt, NULL, dir, 0), DFRCL_OK);
    check_maxpool_works(rt);
    dfr_runtime_close(&rt);
    assert_int_equal(count_bins(dir, NULL, 0), 1);

    /* A corrupt cache file falls back to a source build and is replaced. */
    FILE *f = fopen(bin, "wb");
    assert_non_null(f);
    fputs("this is not a program binary", f);
    fclose(f);
    assert_int_equal(dfr_runtime_open(&rt, NULL, dir, 0), DFRCL_OK);
    check_maxpool_works(rt);
    dfr_runtime_close(&rt);
    /* Replaced by a real binary (PoCL's binaries vary in size with what they have compiled, so
     * only "no longer the garbage" is checked). */
    char head[32] = {0};
    f = fopen(bin, "rb");
    assert_non_null(f);
    assert_true(fread(head, 1, sizeof head - 1, f) > 0);
    fclose(f);
    assert_null(strstr(head, "this is not"));

    /* An empty file, too. */
    f = fopen(bin, "wb");
    fclose(f);
    assert_int_equal(dfr_runtime_open(&rt, NULL, dir, 0), DFRCL_OK);
    check_maxpool_works(rt);
    dfr_runtime_close(&rt);
}

static void test_cache_disabled_and_unwritable(void **state)
{
    (void)state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/nocache", tmpdir);
    setenv("DFRCL_CACHE_DIR", "", 1);
    dfr_runtime *rt = NULL;
    assert_int_equal(dfr_runtime_open(&rt, NULL, NULL, 0), DFRCL_OK);
    assert_string_equal(rt->cache_dir, "");
    check_maxpool_works(rt);
    dfr_runtime_close(&rt);
    setenv("DFRCL_CACHE_DIR", dir, 1);
    assert_int_equal(dfr_runtime_open(&rt, NULL, NULL, 0), DFRCL_OK);
    assert_string_equal(rt->cache_dir, dir);
    dfr_runtime_close(&rt);
    unsetenv("DFRCL_CACHE_DIR");

    /* A cache directory that cannot be created: still works, from source. */
    char file[512], bad[600];
    snprintf(file, sizeof file, "%s/plainfile", tmpdir);
    FILE *f = fopen(file, "w");
    fclose(f);
    snprintf(bad, sizeof bad, "%s/sub", file);
    assert_int_equal(dfr_runtime_open(&rt, NULL, bad, 0), DFRCL_OK);
    check_maxpool_works(rt);
    dfr_runtime_close(&rt);
}

static void test_build_failure(void **state)
{
    (void)state;
    dfr_runtime *rt = NULL;
    assert_int_equal(dfr_runtime_open(&rt, NULL, "", 0), DFRCL_OK);
    const char *texts[1] = {"__kernel void broken(__global float *x) { x[0] = undefined_name; }\n"};
    cl_program p = NULL;
    assert_int_equal(dfr_program_build(rt, "broken.cl", 1, texts, "-DMARKER_OPTION=1", &p),
                     DFRCL_ERR_BUILD);
    assert_null(p);
    const char *msg = dfrcl_last_error();
    assert_non_null(strstr(msg, "broken.cl"));
    assert_non_null(strstr(msg, "MARKER_OPTION")); /* the options */
    assert_non_null(strstr(msg, "undefined_name")); /* the compiler's log */

    cl_kernel k = NULL;
    assert_int_equal(dfr_kernel_get(rt, "pool.cl", "", "no_such_kernel", &k), CL_INVALID_KERNEL_NAME);
    assert_int_equal(dfr_kernel_get(rt, "nonexistent.cl", "", "x", &k), DFRCL_ERR_INTERNAL);
    dfr_runtime_close(&rt);
}

static void test_memory_errors(void **state)
{
    (void)state;
    assert_int_equal(dfr_cl_error(CL_MEM_OBJECT_ALLOCATION_FAILURE, "doing x"), DFRCL_ERR_DEVICE_MEMORY);
    assert_non_null(strstr(dfrcl_last_error(), "doing x"));
    assert_int_equal(dfr_cl_error(CL_OUT_OF_RESOURCES, "y"), DFRCL_ERR_DEVICE_MEMORY);
    assert_int_equal(dfr_cl_error(CL_INVALID_VALUE, "z"), CL_INVALID_VALUE);
    assert_non_null(strstr(dfrcl_last_error(), "CL_INVALID_VALUE"));
    assert_int_equal(dfr_cl_error(CL_SUCCESS, "ok"), DFRCL_OK);

    dfr_runtime *rt = NULL;
    assert_int_equal(dfr_runtime_open(&rt, NULL, "", 0), DFRCL_OK);
    cl_mem m = NULL;
    size_t too_big = (size_t)rt->info.max_alloc_bytes + 4096;
    assert_int_equal(dfr_buffer_new(rt, too_big, CL_MEM_READ_WRITE, "a huge test buffer", &m),
                     DFRCL_ERR_DEVICE_MEMORY);
    assert_null(m);
    assert_non_null(strstr(dfrcl_last_error(), "a huge test buffer"));
    dfr_runtime_close(&rt);
}

static void test_profiling(void **state)
{
    (void)state;
    dfr_runtime *rt = NULL;
    assert_int_equal(dfr_runtime_open(&rt, NULL, "", 1), DFRCL_OK);
    rt->prof_tag = "tagA";
    check_maxpool_works(rt);
    rt->prof_tag = NULL;
    dfr_prof_sum sums[8];
    int n = 0;
    assert_int_equal(dfr_profile_collect(rt, sums, 8, &n), DFRCL_OK);
    int found = 0;
    for (int i = 0; i < n; i++)
        if (!strcmp(sums[i].label, "maxpool")) {
            found = 1;
            assert_string_equal(sums[i].tag, "tagA");
            assert_int_equal(sums[i].count, 1);
            assert_true(sums[i].ms >= 0);
        }
    assert_true(found);
    dfr_runtime_close(&rt);
}

static int find_sum(const dfr_prof_sum *sums, int n, const char *label, const char *tag)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(sums[i].label, label) && (!tag || (sums[i].tag && !strcmp(sums[i].tag, tag))))
            return sums[i].count;
    return 0;
}

/* Copies, fills and the scheduler's transfers: right bytes at the right offsets (the rest of a
 * poisoned buffer untouched), events handed back with or without profiling, and each one in the
 * profile under its stage, as kernels are. */
static void test_transfers_profiled(void **state)
{
    (void)state;
    for (int prof = 0; prof < 2; prof++) {
        dfr_runtime *rt = NULL;
        assert_int_equal(dfr_runtime_open(&rt, NULL, "", prof), DFRCL_OK);
        enum { N = 64 };
        float a[N], b[N], want[N];
        for (int i = 0; i < N; i++) a[i] = (float)i + 0.5f;
        dfr_test_poison(b, N);
        cl_mem da, db;
        assert_int_equal(dfr_buffer_new(rt, sizeof a, CL_MEM_READ_WRITE, "a", &da), DFRCL_OK);
        assert_int_equal(dfr_buffer_new(rt, sizeof b, CL_MEM_READ_WRITE, "b", &db), DFRCL_OK);
        /* Non-blocking upload on the upload queue; the compute queue waits for its event. */
        cl_event up = NULL;
        dfr_xfer w = {.queue = rt->up_queue, .ev = &up};
        assert_int_equal(dfr_write_x(rt, &w, da, 0, sizeof a, a, "upload"), DFRCL_OK);
        assert_non_null(up);
        assert_int_equal(clWaitForEvents(1, &up), CL_SUCCESS);
        clReleaseEvent(up);
        assert_int_equal(dfr_write(rt, db, 0, sizeof b, b, "upload"), DFRCL_OK);
        float seven = 7.0f;
        assert_int_equal(dfr_fill(rt, db, 4 * 4, 10 * 4, &seven, 4, "test fill"), DFRCL_OK);
        assert_int_equal(dfr_copy(rt, da, 3 * 4, db, 30 * 4, 20 * 4, "test copy"), DFRCL_OK);
        assert_int_equal(dfr_copy(rt, da, 0, db, 0, 0, "nothing"), DFRCL_OK); /* no-op */
        for (int i = 0; i < N; i++)
            want[i] = i >= 4 && i < 14 ? 7.0f : i >= 30 && i < 50 ? a[i - 27] : DFR_POISON;
        /* Read back through the download queue after the compute queue's work. */
        cl_event done = NULL, down = NULL;
        assert_int_equal(clEnqueueMarkerWithWaitList(rt->queue, 0, NULL, &done), CL_SUCCESS);
        dfr_xfer r = {.queue = rt->down_queue, .n_wait = 1, .wait = &done, .ev = &down};
        assert_int_equal(dfr_read_x(rt, &r, db, 0, sizeof b, b, "download"), DFRCL_OK);
        assert_int_equal(clWaitForEvents(1, &down), CL_SUCCESS);
        clReleaseEvent(down);
        clReleaseEvent(done);
        assert_int_equal(dfr_test_compare("transfers", b, want, N, 0, 0), 0);
        /* Mapping shows the same bytes. */
        void *p = NULL;
        dfr_xfer m = {.queue = rt->down_queue, .blocking = 1};
        assert_int_equal(dfr_map_x(rt, &m, db, CL_MAP_READ, 0, sizeof b, &p, "download"),
                         DFRCL_OK);
        assert_non_null(p);
        assert_int_equal(dfr_test_compare("mapped", p, want, N, 0, 0), 0);
        cl_event un = NULL;
        dfr_xfer u = {.queue = rt->down_queue, .ev = &un};
        assert_int_equal(dfr_unmap_x(rt, &u, db, p, "download"), DFRCL_OK);
        assert_int_equal(clWaitForEvents(1, &un), CL_SUCCESS);
        clReleaseEvent(un);
        if (prof) {
            dfr_prof_sum sums[16];
            int n = 0;
            assert_int_equal(dfr_profile_collect(rt, sums, 16, &n), DFRCL_OK);
            assert_int_equal(find_sum(sums, n, "fill", "test fill"), 1);
            assert_int_equal(find_sum(sums, n, "copy", "test copy"), 1);
            assert_int_equal(find_sum(sums, n, "upload", NULL), 2);
            assert_int_equal(find_sum(sums, n, "download", NULL), 3); /* read, map, unmap */
        } else {
            assert_int_equal(rt->n_prof, 0);
        }
        /* A failing copy names what it copied. */
        assert_int_not_equal(dfr_copy(rt, da, 0, db, 60 * 4, 20 * 4, "too much"), DFRCL_OK);
        assert_non_null(strstr(dfrcl_last_error(), "copying too much"));
        dfr_buffer_release(&da);
        dfr_buffer_release(&db);
        dfr_runtime_close(&rt);
    }
}

int main(void)
{
    dfr_verbosity = 0;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dfrcl-test-runtime-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    dfr_runtime *probe = NULL;
    int rc = dfr_runtime_open(&probe, NULL, "", 0);
    if (rc == DFRCL_ERR_NO_DEVICE) {
        fprintf(stderr, "skip: %s\n", dfrcl_last_error());
        return DFR_TEST_SKIP;
    }
    dfr_runtime_close(&probe);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_and_default),
        cmocka_unit_test(test_select),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_cache_disabled_and_unwritable),
        cmocka_unit_test(test_build_failure),
        cmocka_unit_test(test_memory_errors),
        cmocka_unit_test(test_profiling),
        cmocka_unit_test(test_transfers_profiled),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return failed;
}
