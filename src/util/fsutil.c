#include "util/fsutil.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"

int dfr_read_file(const char *path, unsigned char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return dfr_error(DFRCL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) goto io_error;
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) goto io_error;
    unsigned char *buf = malloc((size_t)n + 1);
    if (!buf) {
        fclose(f);
        return dfr_error(DFRCL_ERR_HOST_MEMORY, "%s: out of memory reading %ld bytes", path, n);
    }
    if (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        goto io_error;
    }
    buf[n] = 0;
    fclose(f);
    *data = buf;
    *len = (size_t)n;
    return DFRCL_OK;
io_error:;
    int e = errno;
    fclose(f);
    return dfr_error(DFRCL_ERR_IO, "%s: read failed: %s", path, e ? strerror(e) : "short read");
}

int dfr_atomic_open(dfr_atomic_file *af, const char *path)
{
    static atomic_uint counter;
    af->f = NULL;
    if (strlen(path) >= sizeof af->path)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: path too long", path);
    strcpy(af->path, path);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld.%u", path, (long)getpid(),
             atomic_fetch_add(&counter, 1));
    af->f = fopen(af->tmp, "wb");
    if (!af->f)
        return dfr_error(DFRCL_ERR_IO, "%s: cannot create: %s", af->tmp, strerror(errno));
    return DFRCL_OK;
}

int dfr_atomic_commit(dfr_atomic_file *af)
{
    if (!af->f) return dfr_error(DFRCL_ERR_INTERNAL, "%s: file not open", af->path);
    int bad = ferror(af->f);
    if (fflush(af->f) != 0) bad = 1;
    if (!bad && fsync(fileno(af->f)) != 0 && errno != EINVAL) bad = 1;
    int e = errno;
    if (fclose(af->f) != 0) bad = 1;
    af->f = NULL;
    if (bad) {
        unlink(af->tmp);
        return dfr_error(DFRCL_ERR_IO, "%s: write failed: %s", af->path, strerror(e ? e : EIO));
    }
    if (rename(af->tmp, af->path) != 0) {
        e = errno;
        unlink(af->tmp);
        return dfr_error(DFRCL_ERR_IO, "%s: cannot rename into place: %s", af->path, strerror(e));
    }
    return DFRCL_OK;
}

void dfr_atomic_abort(dfr_atomic_file *af)
{
    if (af->f) {
        fclose(af->f);
        af->f = NULL;
        unlink(af->tmp);
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
    return DFRCL_OK;
}
