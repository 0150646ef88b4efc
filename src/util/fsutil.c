#include "util/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/error.h"

/* ---- reading ------------------------------------------------------------------------------ */

const char *dfr_file_kind(mode_t mode)
{
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISLNK(mode)) return "a symbolic link";
    return "not a file";
}

int dfr_open_regular(const char *path, int *fd_out, off_t *size)
{
    *fd_out = -1;
    /* O_NONBLOCK: opening a FIFO without a writer would otherwise wait forever. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return dfr_error(DFRCL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return dfr_error(DFRCL_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        if (S_ISDIR(st.st_mode))
            return dfr_error(DFRCL_ERR_IO, "%s: is a directory, not a file", path);
        return dfr_error(DFRCL_ERR_IO, "%s: is not a regular file (%s)", path,
                         dfr_file_kind(st.st_mode));
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl == -1 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == -1) {
        int e = errno;
        close(fd);
        return dfr_error(DFRCL_ERR_IO, "%s: cannot set blocking mode: %s", path, strerror(e));
    }
    *fd_out = fd;
    if (size) *size = st.st_size;
    return DFRCL_OK;
}

int dfr_read_file(const char *path, unsigned char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd;
    off_t size;
    int rc = dfr_open_regular(path, &fd, &size);
    if (rc) return rc;
    if (size < 0 || (unsigned long long)size > DFR_READ_FILE_MAX) {
        close(fd);
        return dfr_error(DFRCL_ERR_IO, "%s: %lld bytes, over the %llu GiB that dfrcl reads whole",
                         path, (long long)size, DFR_READ_FILE_MAX >> 30);
    }
    size_t n = (size_t)size;
    unsigned char *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = r < 0 ? errno : 0;
            free(buf);
            close(fd);
            if (!e) return dfr_error(DFRCL_ERR_IO, "%s: file shrank while being read", path);
            return dfr_error(DFRCL_ERR_IO, "%s: read failed: %s", path, strerror(e));
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *data = buf;
    *len = n;
    return DFRCL_OK;
}

/* ---- registry of this process's open temp files -------------------------------------------- */

#define TEMP_SLOTS 32
enum { SLOT_FREE, SLOT_FILLING, SLOT_LIVE };
static char temp_paths[TEMP_SLOTS][4096 + 64];
static atomic_int temp_state[TEMP_SLOTS];

static int temp_register(const char *tmp)
{
    for (int i = 0; i < TEMP_SLOTS; i++) {
        int expected = SLOT_FREE;
        if (!atomic_compare_exchange_strong(&temp_state[i], &expected, SLOT_FILLING)) continue;
        snprintf(temp_paths[i], sizeof temp_paths[i], "%s", tmp);
        atomic_store(&temp_state[i], SLOT_LIVE);
        return i;
    }
    return -1; /* full: the file is still written safely, just not removed on a signal */
}

static void temp_unregister(int slot)
{
    if (slot >= 0) atomic_store(&temp_state[slot], SLOT_FREE);
}

void dfr_atomic_abort_all(void)
{
    for (int i = 0; i < TEMP_SLOTS; i++)
        if (atomic_load(&temp_state[i]) == SLOT_LIVE) unlink(temp_paths[i]);
}

/* ---- stale temp files --------------------------------------------------------------------- */

/* The pid embedded in a temp file's name, or 0 when the name is not one of ours. */
static long temp_pid(const char *name)
{
    size_t n = strlen(DFR_TEMP_PREFIX);
    if (strncmp(name, DFR_TEMP_PREFIX, n) != 0) return 0;
    char *end = NULL;
    long pid = strtol(name + n, &end, 10);
    return end != name + n && *end == '.' && pid > 0 ? pid : 0;
}

/* True when nobody holds the file's lock: its writer (which locks it while open) is gone, even
 * if it ran in another pid namespace where its pid means nothing here. */
static int temp_unlocked(const char *path)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return 0;
    struct stat st;
    int ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0;
    close(fd);
    return ok;
}

void dfr_clean_stale_temps(const char *dir)
{
    DIR *d = opendir(dir && *dir ? dir : ".");
    if (!d) return;
    long self = (long)getpid();
    struct dirent *e;
    char path[4096 + 300];
    while ((e = readdir(d))) {
        long pid = temp_pid(e->d_name);
        if (!pid || pid == self || (pid_t)pid != pid) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : ".", e->d_name);
        if (!temp_unlocked(path) || unlink(path) != 0) continue;
        dfr_log(1, "removed %s, a temp file left by process %ld, which no longer runs", path, pid);
    }
    closedir(d);
}

/* Cleans each folder once per process: atomic writes into a folder of thousands of outputs must
 * not read that folder thousands of times. */
static void clean_stale_once(const char *dir)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static uint64_t seen[256];
    static int nseen;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *p = dir; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    pthread_mutex_lock(&lock);
    int found = 0;
    for (int i = 0; i < nseen && !found; i++) found = seen[i] == h;
    if (!found && nseen < 256) seen[nseen++] = h;
    pthread_mutex_unlock(&lock);
    if (!found) dfr_clean_stale_temps(dir);
}

/* ---- atomic writes ------------------------------------------------------------------------ */

void dfr_folder_of(const char *path, char *dir, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, n, ".");
    else if (slash == path) snprintf(dir, n, "/");
    else snprintf(dir, n, "%.*s", (int)(slash - path), path);
}

/* 12 hex digits nobody can predict (the kernel's random pool, or a mix of clock and counter where
 * that is unavailable; O_EXCL keeps even a guessed name safe). */
static void random_tag(char out[13])
{
    static atomic_uint counter;
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        r = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
            ((uint64_t)atomic_fetch_add(&counter, 1) << 40) ^ (uint64_t)(uintptr_t)&r;
    }
    snprintf(out, 13, "%012llx", (unsigned long long)(r & 0xffffffffffffull));
}

static int create_temp(dfr_atomic_file *af, const char *dir)
{
    for (int attempt = 0; attempt < 32; attempt++) {
        char tag[13];
        random_tag(tag);
        snprintf(af->tmp, sizeof af->tmp, "%s/" DFR_TEMP_PREFIX "%ld.%s", dir, (long)getpid(), tag);
        int fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
                      0666);
        if (fd < 0 && errno == EEXIST) continue;
        if (fd < 0) return -errno;
        flock(fd, LOCK_EX | LOCK_NB); /* marks it live for dfr_clean_stale_temps */
        return fd;
    }
    return -EEXIST;
}

int dfr_atomic_open(dfr_atomic_file *af, const char *path)
{
    af->f = NULL;
    af->slot = -1;
    af->tmp[0] = 0;
    if (!path || !*path) return dfr_error(DFRCL_ERR_INVALID_ARG, "empty output file name");
    if (strlen(path) >= sizeof af->path)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: path too long", path);
    snprintf(af->path, sizeof af->path, "%s", path);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return dfr_error(DFRCL_ERR_IO, "%s: is a directory; give a file name to write", path);
    char dir[4096];
    dfr_folder_of(path, dir, sizeof dir);
    clean_stale_once(dir);
    int fd = create_temp(af, dir);
    if (fd < 0)
        return dfr_error(DFRCL_ERR_IO, "%s: cannot write there: creating a temp file in %s: %s",
                         path, dir, strerror(-fd));
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        int e = errno;
        close(fd);
        unlink(af->tmp);
        return dfr_error(DFRCL_ERR_IO, "%s: cannot open a stream: %s", af->tmp, strerror(e));
    }
    af->slot = temp_register(af->tmp);
    return DFRCL_OK;
}

/* Makes the rename durable; best effort, as some file systems cannot fsync a folder. */
static void fsync_folder_of(const char *path)
{
    char dir[4096];
    dfr_folder_of(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    fsync(fd);
    close(fd);
}

int dfr_atomic_commit(dfr_atomic_file *af)
{
    if (!af->f) return dfr_error(DFRCL_ERR_INTERNAL, "%s: file not open", af->path);
    int bad = ferror(af->f), e = 0;
    if (fflush(af->f) != 0) bad = 1;
    if (!bad && fsync(fileno(af->f)) != 0 && errno != EINVAL) bad = 1;
    if (bad) e = errno ? errno : EIO;
    /* Renamed while still open (and locked): no cleaner ever sees it unlocked under its temp
     * name. A close error after fsync and rename loses nothing. */
    if (!bad && rename(af->tmp, af->path) != 0) {
        bad = 2;
        e = errno;
    }
    (void)fclose(af->f);
    af->f = NULL;
    if (bad) unlink(af->tmp);
    temp_unregister(af->slot);
    af->slot = -1;
    if (bad == 2)
        return dfr_error(DFRCL_ERR_IO, "%s: cannot rename into place: %s", af->path, strerror(e));
    if (bad) return dfr_error(DFRCL_ERR_IO, "%s: write failed: %s", af->path, strerror(e));
    fsync_folder_of(af->path);
    return DFRCL_OK;
}

void dfr_atomic_abort(dfr_atomic_file *af)
{
    if (af->f) {
        fclose(af->f);
        af->f = NULL;
        unlink(af->tmp);
        temp_unregister(af->slot);
        af->slot = -1;
    }
}

int dfr_write_file_atomic(const char *path, const void *data, size_t len)
{
    dfr_atomic_file af;
    int rc = dfr_atomic_open(&af, path);
    if (rc) return rc;
    if (len && fwrite(data, 1, len, af.f) != len) {
        int e = errno;
        dfr_atomic_abort(&af);
        return dfr_error(DFRCL_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return dfr_atomic_commit(&af);
}

int dfr_mkdir_p(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return dfr_error(DFRCL_ERR_INVALID_ARG, "bad directory '%s'", path);
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return dfr_error(DFRCL_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return dfr_error(DFRCL_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0)
        return dfr_error(DFRCL_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return dfr_error(DFRCL_ERR_IO, "%s: exists and is not a directory (it is %s)", buf,
                         dfr_file_kind(st.st_mode));
    return DFRCL_OK;
}
