/* File helpers: reads refuse what is not a regular file (directory, FIFO, device) without
 * hanging; atomic writes cannot be redirected by a planted link, work with names near NAME_MAX,
 * leave no temp file; stale temp files of dead processes are removed, live ones kept;
 * dfr_atomic_abort_all removes this process's open temp files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "io/npy.h"
#include "io/safetensors.h"
#include "testfs.h"
#include "util/error.h"
#include "util/fsutil.h"

static char tmpdir[256];

static void path_in(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", tmpdir, name);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int file_equals(const char *path, const char *text)
{
    unsigned char *d = NULL;
    size_t n = 0;
    if (dfr_read_file(path, &d, &n) != DFRCL_OK) return 0;
    int eq = n == strlen(text) && memcmp(d, text, n) == 0;
    free(d);
    return eq;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Number of dfrcl temp files in dir. */
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

/* Each refusal names the path and what it is; alarm() turns a hang into a failure. */
static void expect_refused(int rc, const char *path, const char *what)
{
    assert_int_equal(rc, DFRCL_ERR_IO);
    assert_non_null(strstr(dfrcl_last_error(), path));
    assert_non_null(strstr(dfrcl_last_error(), what));
}

static void test_read_refuses_non_regular(void **state)
{
    (void)state;
    char dir[512], fifo[512], ok[512];
    path_in(dir, sizeof dir, "a_dir");
    path_in(fifo, sizeof fifo, "a_fifo");
    path_in(ok, sizeof ok, "ok.txt");
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    write_text(ok, "hello");
    alarm(20); /* a FIFO without a writer blocks a plain open() forever */
    unsigned char *d = NULL;
    size_t n = 0;
    expect_refused(dfr_read_file(dir, &d, &n), dir, "is a directory");
    assert_null(d);
    expect_refused(dfr_read_file(fifo, &d, &n), fifo, "a FIFO");
    expect_refused(dfr_read_file("/dev/null", &d, &n), "/dev/null", "a character device");
    assert_true(file_equals(ok, "hello"));

    dfr_safetensors *st = NULL;
    expect_refused(dfr_st_open(&st, fifo), fifo, "a FIFO");
    expect_refused(dfr_st_open(&st, dir), dir, "is a directory");
    assert_null(st);
    int nd = 0;
    int64_t shape[DFR_NPY_MAX_DIMS];
    float *data = NULL;
    expect_refused(dfr_npy_read_f32(fifo, &nd, shape, &data), fifo, "a FIFO");
    expect_refused(dfr_npy_read_f32(dir, &nd, shape, &data), dir, "is a directory");
    expect_refused(dfr_npy_read_f32("/dev/zero", &nd, shape, &data), "/dev/zero", "character");
    alarm(0);
}

static void test_planted_symlink(void **state)
{
    (void)state;
    char dest[512], victim[512], link[700];
    path_in(dest, sizeof dest, "model.safetensors");
    path_in(victim, sizeof victim, "victim.txt");
    write_text(victim, "precious");
    /* Links at every name the old scheme "<path>.tmp.<pid>.<n>" would have used. */
    for (int i = 0; i < 64; i++) {
        snprintf(link, sizeof link, "%s.tmp.%ld.%d", dest, (long)getpid(), i);
        assert_int_equal(symlink(victim, link), 0);
    }
    assert_int_equal(dfr_write_file_atomic(dest, "new model", 9), DFRCL_OK);
    assert_true(file_equals(victim, "precious"));
    assert_true(file_equals(dest, "new model"));
    struct stat st;
    assert_int_equal(lstat(dest, &st), 0);
    assert_true(S_ISREG(st.st_mode)); /* not a link renamed into place */
    assert_int_equal(count_temps(tmpdir), 0);

    /* The temp name is short, in the destination's folder, and unpredictable: two opens of the
     * same destination get different random tails. */
    dfr_atomic_file a, b;
    assert_int_equal(dfr_atomic_open(&a, dest), DFRCL_OK);
    assert_int_equal(dfr_atomic_open(&b, dest), DFRCL_OK);
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s/" DFR_TEMP_PREFIX "%ld.", tmpdir, (long)getpid());
    assert_memory_equal(a.tmp, prefix, strlen(prefix));
    assert_int_equal(strlen(a.tmp), strlen(prefix) + 12);
    assert_string_not_equal(a.tmp, b.tmp);
    assert_null(strstr(a.tmp, "model.safetensors"));
    dfr_atomic_abort(&a);
    dfr_atomic_abort(&b);
    assert_int_equal(count_temps(tmpdir), 0);
}

static void test_long_name_and_mode(void **state)
{
    (void)state;
    char name[256], dest[800];
    memset(name, 'n', 250);
    memcpy(name + 246, ".npy", 5); /* 250 characters: legal, and the old suffix overflowed it */
    path_in(dest, sizeof dest, name);
    mode_t old = umask(022);
    assert_int_equal(dfr_write_file_atomic(dest, "x", 1), DFRCL_OK);
    umask(old);
    assert_true(file_equals(dest, "x"));
    struct stat st;
    assert_int_equal(stat(dest, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644); /* 0666 less the umask, as fopen would give */
    assert_int_equal(count_temps(tmpdir), 0);
}

static void test_bad_destinations(void **state)
{
    (void)state;
    dfr_atomic_file af;
    assert_int_equal(dfr_atomic_open(&af, tmpdir), DFRCL_ERR_IO);
    assert_non_null(strstr(dfrcl_last_error(), "is a directory"));
    assert_int_equal(dfr_atomic_open(&af, ""), DFRCL_ERR_INVALID_ARG);
    char missing[512];
    path_in(missing, sizeof missing, "no_such_folder/out.bin");
    assert_int_equal(dfr_write_file_atomic(missing, "x", 1), DFRCL_ERR_IO);
    assert_non_null(strstr(dfrcl_last_error(), missing));

    char file[512], sub[600];
    path_in(file, sizeof file, "plain");
    write_text(file, "p");
    assert_int_equal(dfr_mkdir_p(file), DFRCL_ERR_IO); /* a file is not a folder */
    assert_non_null(strstr(dfrcl_last_error(), "not a directory"));
    snprintf(sub, sizeof sub, "%s/sub", file);
    assert_int_equal(dfr_mkdir_p(sub), DFRCL_ERR_IO);
}

/* The pid of a process that has exited. */
static pid_t dead_pid(void)
{
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0) _exit(0);
    assert_int_equal(waitpid(p, NULL, 0), p);
    return p;
}

static void fake_temp(char *buf, size_t n, const char *dir, long pid, const char *tail)
{
    snprintf(buf, n, "%s/" DFR_TEMP_PREFIX "%ld.%s", dir, pid, tail);
    write_text(buf, "partial");
}

static void test_stale_temps(void **state)
{
    (void)state;
    char dir[512], dead[700], live[700], locked[700], other[700], dest[600];
    path_in(dir, sizeof dir, "stale");
    assert_int_equal(mkdir(dir, 0755), 0);
    pid_t gone = dead_pid();
    fake_temp(dead, sizeof dead, dir, gone, "0123456789ab");
    fake_temp(live, sizeof live, dir, getppid(), "0123456789ab");
    /* Dead pid but locked: a writer in another pid namespace; it must stay. */
    fake_temp(locked, sizeof locked, dir, gone, "lockedlocked");
    int lfd = open(locked, O_RDONLY);
    assert_true(lfd >= 0);
    assert_int_equal(flock(lfd, LOCK_EX), 0);
    snprintf(other, sizeof other, "%s/notes.tmp.%ld.0", dir, (long)gone); /* not ours */
    write_text(other, "user file");

    snprintf(dest, sizeof dest, "%s/out.bin", dir);
    assert_int_equal(dfr_write_file_atomic(dest, "ok", 2), DFRCL_OK);
    assert_false(exists(dead));
    assert_true(exists(live));
    assert_true(exists(locked));
    assert_true(exists(other));
    close(lfd);

    /* A process killed in the middle of a write: the next run (here: dfr_clean_stale_temps, as
     * the runtime calls it on the cache folder) removes what it left. */
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0) {
        dfr_atomic_file af;
        if (dfr_atomic_open(&af, dest) != DFRCL_OK) _exit(3);
        fputs("half", af.f);
        fflush(af.f);
        raise(SIGKILL);
    }
    int status = 0;
    assert_int_equal(waitpid(p, &status, 0), p);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(count_temps(dir), 3); /* live, locked and the killed writer's */
    dfr_clean_stale_temps(dir);
    assert_int_equal(count_temps(dir), 1); /* the lock is released now, so that one went too */
    assert_true(exists(live));
    assert_true(file_equals(dest, "ok"));
}

static void test_abort_all(void **state)
{
    (void)state;
    char d1[512], d2[512];
    path_in(d1, sizeof d1, "one.bin");
    path_in(d2, sizeof d2, "two.bin");
    dfr_atomic_file a, b;
    assert_int_equal(dfr_atomic_open(&a, d1), DFRCL_OK);
    assert_int_equal(dfr_atomic_open(&b, d2), DFRCL_OK);
    assert_true(exists(a.tmp) && exists(b.tmp));
    dfr_atomic_abort_all();
    assert_false(exists(a.tmp));
    assert_false(exists(b.tmp));
    dfr_atomic_abort(&a);
    dfr_atomic_abort(&b);
    assert_false(exists(d1));
    /* Finished writes are no longer registered: abort_all leaves them and later temps alone. */
    assert_int_equal(dfr_write_file_atomic(d1, "1", 1), DFRCL_OK);
    dfr_atomic_abort_all();
    assert_true(file_equals(d1, "1"));
}

int main(void)
{
    dfr_verbosity = 0;
    if (dfr_test_mkdtemp(tmpdir, sizeof tmpdir, "fsutil")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_refuses_non_regular),
        cmocka_unit_test(test_planted_symlink),
        cmocka_unit_test(test_long_name_and_mode),
        cmocka_unit_test(test_bad_destinations),
        cmocka_unit_test(test_stale_temps),
        cmocka_unit_test(test_abort_all),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return failed;
}
