/* The kernel cache heals itself: an entry truncated, bit-flipped, copied under another key,
 * holding another program's binary under a valid header, or replaced by a FIFO or a directory is
 * removed with a log line naming it and the reason, the run succeeds from source and the entry is
 * rewritten valid. Two processes filling an empty cache at once both succeed. A cache folder that
 * is a regular file (or not writable) warns and runs uncached.
 *
 * Every OpenCL run happens in a forked child of a parent that never touches OpenCL (so fork is
 * safe): a driver crash on a bad binary shows as a signal and a hang as SIGALRM, not as a dead or
 * stuck test. The entry format's own checks run without a device. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "cl/cache_entry.h"
#include "cl/runtime.h"
#include "ops/ops.h"
#include "testutil.h"
#include "util/error.h"
#include "util/fsutil.h"

enum { DO_POOL = 1, DO_SCORE = 2, EXPECT_UNCACHED = 4 };

static char tmpdir[256], cache[512], logpath[512];
static char pool_entry[1024], score_entry[1024];
static unsigned char *pool_bytes, *score_bytes;
static size_t pool_len, score_len;

/* ---- the entry format, no device needed ---------------------------------------------------- */

static const char key_a[65] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char key_b[65] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static size_t make_entry(unsigned char *buf, const char *key, const char *payload)
{
    size_t n = strlen(payload);
    dfr_cache_entry_header(buf, key, (const unsigned char *)payload, n);
    memcpy(buf + DFR_CACHE_ENTRY_HEADER, payload, n);
    return DFR_CACHE_ENTRY_HEADER + n;
}

static void test_entry_format(void **state)
{
    (void)state;
    unsigned char buf[1024];
    const unsigned char *p = NULL;
    size_t n = 0;
    size_t len = make_entry(buf, key_a, "a program binary of some length");
    assert_int_equal(dfr_cache_entry_parse(buf, len, key_a, &p, &n), DFR_CACHE_ENTRY_OK);
    assert_ptr_equal(p, buf + DFR_CACHE_ENTRY_HEADER);
    assert_int_equal(n, len - DFR_CACHE_ENTRY_HEADER);
    assert_int_equal(dfr_cache_entry_parse(buf, len, NULL, &p, &n), DFR_CACHE_ENTRY_OK);

    assert_int_equal(dfr_cache_entry_parse(buf, len, key_b, &p, &n), DFR_CACHE_ENTRY_KEY);
    assert_null(p);
    for (size_t cut = 0; cut < len; cut++) /* every truncation */
        assert_int_not_equal(dfr_cache_entry_parse(buf, cut, key_a, &p, &n), DFR_CACHE_ENTRY_OK);
    for (size_t i = 0; i < len; i++) { /* every single-byte flip */
        buf[i] ^= 0x40;
        assert_int_not_equal(dfr_cache_entry_parse(buf, len, key_a, &p, &n), DFR_CACHE_ENTRY_OK);
        buf[i] ^= 0x40;
    }
    buf[len - 1] ^= 1;
    assert_int_equal(dfr_cache_entry_parse(buf, len, key_a, &p, &n), DFR_CACHE_ENTRY_DIGEST);
    assert_non_null(strstr(dfr_cache_entry_reason(DFR_CACHE_ENTRY_DIGEST), "checksum"));
    assert_int_equal(dfr_cache_entry_parse(buf, len - 5, key_a, &p, &n), DFR_CACHE_ENTRY_LENGTH);
    len = make_entry(buf, key_a, "");
    assert_int_equal(dfr_cache_entry_parse(buf, len, key_a, &p, &n), DFR_CACHE_ENTRY_EMPTY);
}

/* ---- runs in a child ------------------------------------------------------------------------ */

static int child_pool(dfr_runtime *rt)
{
    float in[4] = {1, 5, -2, 3}, out = DFR_POISON;
    cl_mem a = NULL, b = NULL;
    int ok = !dfr_buffer_new(rt, sizeof in, CL_MEM_READ_WRITE, "t", &a) &&
             !dfr_buffer_new(rt, sizeof out, CL_MEM_READ_WRITE, "t", &b) &&
             !dfr_write(rt, a, 0, sizeof in, in, "t") && !dfr_op_maxpool2(rt, a, b, 1, 2, 2) &&
             !dfr_read(rt, b, 0, sizeof out, &out, "t") && out == 5.0f;
    if (a) dfr_buffer_release(&a);
    if (b) dfr_buffer_release(&b);
    return ok;
}

static void child_main(const char *dir, int what)
{
    alarm(240); /* a hang (a FIFO read) ends as SIGALRM */
    int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) dup2(fd, 2);
    dfr_verbosity = 2;
    dfr_runtime *rt = NULL;
    int rc = dfr_runtime_open(&rt, NULL, dir, 0);
    if (rc) {
        fprintf(stderr, "runtime: %s\n", dfrcl_last_error());
        _exit(rc == DFRCL_ERR_NO_DEVICE ? DFR_TEST_SKIP : 10);
    }
    if ((what & EXPECT_UNCACHED) && rt->cache_dir[0]) _exit(13);
    if ((what & DO_POOL) && !child_pool(rt)) {
        fprintf(stderr, "maxpool: %s\n", dfrcl_last_error());
        _exit(11);
    }
    cl_kernel k = NULL;
    if ((what & DO_SCORE) && dfr_kernel_get(rt, "score.cl", "", "sqerr_mean", &k)) {
        fprintf(stderr, "score: %s\n", dfrcl_last_error());
        _exit(12);
    }
    dfr_runtime_close(&rt);
    _exit(0);
}

static pid_t spawn(const char *dir, int what)
{
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0) child_main(dir, what);
    return p;
}

/* 0 when the child succeeded; says how it failed otherwise. */
static int reap(pid_t p)
{
    int status = 0;
    assert_int_equal(waitpid(p, &status, 0), p);
    if (WIFSIGNALED(status)) {
        print_error("child died of signal %d (%s)\n", WTERMSIG(status), strsignal(WTERMSIG(status)));
        return 128 + WTERMSIG(status);
    }
    if (WEXITSTATUS(status)) print_error("child exited %d\n", WEXITSTATUS(status));
    return WEXITSTATUS(status);
}

static int run(const char *dir, int what)
{
    unlink(logpath);
    return reap(spawn(dir, what));
}

/* ---- helpers on entries --------------------------------------------------------------------- */

/* The one *.clbin in dir that is not `except`; "" if none. */
static void find_entry(const char *dir, const char *except, char *out, size_t n)
{
    out[0] = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 6, ".clbin") != 0) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (!except || strcmp(p, except) != 0) snprintf(out, n, "%s", p);
    }
    closedir(d);
}

static int count_temps(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int c = 0;
    struct dirent *e;
    while ((e = readdir(d))) c += strncmp(e->d_name, DFR_TEMP_PREFIX, strlen(DFR_TEMP_PREFIX)) == 0;
    closedir(d);
    return c;
}

/* The key is the entry's file name without ".clbin". */
static void key_of(const char *path, char key[65])
{
    const char *base = strrchr(path, '/') + 1;
    snprintf(key, 65, "%.64s", base);
}

static int entry_valid(const char *path)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    if (dfr_read_file(path, &buf, &len)) return 0;
    char key[65];
    key_of(path, key);
    const unsigned char *p;
    size_t n;
    int ok = dfr_cache_entry_parse(buf, len, key, &p, &n) == DFR_CACHE_ENTRY_OK;
    free(buf);
    return ok;
}

static void put_bytes(const char *path, const void *data, size_t len)
{
    unlink(path);
    rmdir(path);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static int quiet_log; /* for an expected absence */
static int log_has(const char *a, const char *b)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    if (dfr_read_file(logpath, &buf, &len)) return 0;
    int ok = strstr((char *)buf, a) && (!b || strstr((char *)buf, b));
    if (!ok && !quiet_log) print_error("log lacks '%s' / '%s':\n%s\n", a, b ? b : "", (char *)buf);
    free(buf);
    return ok;
}

/* The run succeeds, says which entry was bad and why, and leaves it valid again. */
static void check_healed(const char *entry, int what, const char *reason)
{
    assert_int_equal(run(cache, what), 0);
    assert_true(log_has(entry, reason));
    assert_true(entry_valid(entry));
    assert_int_equal(count_temps(cache), 0);
}

/* ---- cases ---------------------------------------------------------------------------------- */

static int setup_entries(void **state)
{
    (void)state;
    snprintf(cache, sizeof cache, "%s/cache", tmpdir);
    if (run(cache, DO_POOL)) return -1;
    find_entry(cache, NULL, pool_entry, sizeof pool_entry);
    if (run(cache, DO_SCORE)) return -1;
    find_entry(cache, pool_entry, score_entry, sizeof score_entry);
    if (!pool_entry[0] || !score_entry[0] || !entry_valid(pool_entry) || !entry_valid(score_entry))
        return -1;
    if (dfr_read_file(pool_entry, &pool_bytes, &pool_len) ||
        dfr_read_file(score_entry, &score_bytes, &score_len))
        return -1;
    return 0;
}

static void test_valid_entries_reused(void **state)
{
    (void)state;
    /* A temp file of a writer killed earlier: the next run removes it. */
    pid_t gone = fork();
    assert_true(gone >= 0);
    if (gone == 0) _exit(0);
    assert_int_equal(waitpid(gone, NULL, 0), gone);
    char stale[700];
    snprintf(stale, sizeof stale, "%s/" DFR_TEMP_PREFIX "%ld.0123456789ab", cache, (long)gone);
    put_bytes(stale, "half an entry", 13);
    assert_int_equal(run(cache, DO_POOL | DO_SCORE), 0);
    assert_int_equal(count_temps(cache), 0);
    assert_true(log_has("removed", stale));
    assert_true(log_has("cache: loaded", pool_entry));
    assert_true(log_has("cache: loaded", score_entry));
    quiet_log = 1;
    assert_false(log_has("building", NULL));
    quiet_log = 0;
}

static void test_truncated(void **state)
{
    (void)state;
    put_bytes(pool_entry, pool_bytes, pool_len / 2);
    check_healed(pool_entry, DO_POOL, "truncated");
}

static void test_flipped(void **state)
{
    (void)state;
    unsigned char *bad = malloc(pool_len);
    memcpy(bad, pool_bytes, pool_len);
    size_t mid = DFR_CACHE_ENTRY_HEADER + (pool_len - DFR_CACHE_ENTRY_HEADER) / 2;
    for (size_t i = 0; i < 64 && mid + i < pool_len; i++) bad[mid + i] ^= 0xa5;
    put_bytes(pool_entry, bad, pool_len);
    free(bad);
    check_healed(pool_entry, DO_POOL, "checksum");
}

static void test_other_key(void **state)
{
    (void)state;
    put_bytes(score_entry, pool_bytes, pool_len); /* a copied cache, a renamed file */
    check_healed(score_entry, DO_SCORE, "another key");
}

static void test_other_program_valid_header(void **state)
{
    (void)state;
    /* pool.cl's binary under score.cl's key with a correct header: only the missing kernel
     * (CL_INVALID_KERNEL_NAME) shows that it is wrong. */
    char key[65];
    key_of(score_entry, key);
    size_t n = pool_len - DFR_CACHE_ENTRY_HEADER;
    unsigned char *bad = malloc(pool_len);
    dfr_cache_entry_header(bad, key, pool_bytes + DFR_CACHE_ENTRY_HEADER, n);
    memcpy(bad + DFR_CACHE_ENTRY_HEADER, pool_bytes + DFR_CACHE_ENTRY_HEADER, n);
    put_bytes(score_entry, bad, pool_len);
    free(bad);
    check_healed(score_entry, DO_SCORE, "lacks kernel sqerr_mean");
}

static void test_fifo_entry(void **state)
{
    (void)state;
    unlink(score_entry);
    assert_int_equal(mkfifo(score_entry, 0644), 0);
    check_healed(score_entry, DO_SCORE, "FIFO");
}

static void test_directory_entry(void **state)
{
    (void)state;
    unlink(score_entry);
    assert_int_equal(mkdir(score_entry, 0755), 0);
    check_healed(score_entry, DO_SCORE, "directory");
}

static void test_two_processes_fill_empty_cache(void **state)
{
    (void)state;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/concurrent", tmpdir);
    unlink(logpath);
    pid_t a = spawn(dir, DO_POOL | DO_SCORE), b = spawn(dir, DO_POOL | DO_SCORE);
    assert_int_equal(reap(a), 0);
    assert_int_equal(reap(b), 0);
    char e1[1024], e2[1024];
    find_entry(dir, NULL, e1, sizeof e1);
    find_entry(dir, e1, e2, sizeof e2);
    assert_true(entry_valid(e1) && entry_valid(e2));
    assert_int_equal(count_temps(dir), 0);
    /* And a third process uses what they left. */
    assert_int_equal(run(dir, DO_POOL | DO_SCORE), 0);
}

static void test_cache_dir_is_a_file(void **state)
{
    (void)state;
    char file[600];
    snprintf(file, sizeof file, "%s/not_a_folder", tmpdir);
    put_bytes(file, "keep me", 7);
    setenv("DFRCL_CACHE_DIR", file, 1);
    assert_int_equal(run(NULL, EXPECT_UNCACHED | DO_POOL), 0);
    unsetenv("DFRCL_CACHE_DIR");
    assert_true(log_has(file, "running without the kernel cache"));
    assert_true(log_has("DFRCL_CACHE_DIR", "regular file"));
    unsigned char *d = NULL;
    size_t n = 0;
    assert_int_equal(dfr_read_file(file, &d, &n), DFRCL_OK);
    assert_true(n == 7 && !memcmp(d, "keep me", 7));
    free(d);

    if (geteuid() == 0) return; /* root writes anywhere */
    char ro[600];
    snprintf(ro, sizeof ro, "%s/read_only", tmpdir);
    assert_int_equal(mkdir(ro, 0555), 0);
    assert_int_equal(run(ro, EXPECT_UNCACHED), 0);
    assert_true(log_has(ro, "not writable"));
    chmod(ro, 0755);
}

int main(void)
{
    dfr_verbosity = 0;
    if (dfr_test_mkdtemp(tmpdir, sizeof tmpdir, "cache")) return 1;
    snprintf(logpath, sizeof logpath, "%s/child.log", tmpdir);
    const struct CMUnitTest pure[] = {cmocka_unit_test(test_entry_format)};
    int failed = cmocka_run_group_tests_name("entry format", pure, NULL, NULL);
    /* Is there a device? Asked in a child, so that this process stays free of OpenCL. */
    int rc = run("", 0);
    if (rc == DFR_TEST_SKIP) {
        fprintf(stderr, "skip: no OpenCL device\n");
        return failed ? failed : DFR_TEST_SKIP;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_entries_reused),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_flipped),
        cmocka_unit_test(test_other_key),
        cmocka_unit_test(test_other_program_valid_header),
        cmocka_unit_test(test_fifo_entry),
        cmocka_unit_test(test_directory_entry),
        cmocka_unit_test(test_two_processes_fill_empty_cache),
        cmocka_unit_test(test_cache_dir_is_a_file),
    };
    failed += cmocka_run_group_tests_name("self-healing cache", tests, setup_entries, NULL);
    free(pool_bytes);
    free(score_bytes);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "chmod -R u+w '%s'; rm -rf '%s'", tmpdir, tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return failed;
}
