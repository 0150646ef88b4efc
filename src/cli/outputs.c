#include "outputs.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* The folder part of path ("." for none). */
static void folder_of(const char *path, char *dir, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, n, ".");
    else if (slash == path) snprintf(dir, n, "/");
    else snprintf(dir, n, "%.*s", (int)(slash - path), path);
}

/* Creates a temp file in `folder` and reserves `bytes` in it. It is unlinked as soon as it
 * exists, so neither a signal nor a crash can leave it behind. */
static int probe_in(const char *folder, double bytes, const char *path)
{
    char name[4200];
    if ((size_t)snprintf(name, sizeof name, "%s/.dfrcl-probe-XXXXXX", folder) >= sizeof name)
        return cli_error(DFRCL_ERR_INVALID_ARG, "%s: path too long", path);
    int fd = mkstemp(name);
    if (fd < 0)
        return cli_error(DFRCL_ERR_IO, "%s: cannot create files in %s: %s", path, folder,
                         strerror(errno));
    unlink(name);
    int e = bytes > 0 ? posix_fallocate(fd, 0, (off_t)bytes) : 0;
    close(fd);
    if (e)
        return cli_error(DFRCL_ERR_IO, "%s: no room for %.1f MB in %s: %s; free some space or "
                         "choose another place", path, bytes / 1e6, folder, strerror(e));
    return DFRCL_OK;
}

int cli_probe_file(const char *path, double bytes)
{
    size_t n = strlen(path);
    if (n == 0) return cli_error(DFRCL_ERR_INVALID_ARG, "the output file name is empty");
    struct stat st;
    if (path[n - 1] == '/' || (stat(path, &st) == 0 && S_ISDIR(st.st_mode)))
        return cli_error(DFRCL_ERR_INVALID_ARG, "%s: is a folder; give a file name in it", path);
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
        return cli_error(DFRCL_ERR_INVALID_ARG, "%s: exists and is not a regular file", path);
    char folder[4096];
    if (n >= sizeof folder) return cli_error(DFRCL_ERR_INVALID_ARG, "%s: path too long", path);
    folder_of(path, folder, sizeof folder);
    if (stat(folder, &st) != 0 || !S_ISDIR(st.st_mode))
        return cli_error(DFRCL_ERR_IO, "%s: folder %s does not exist; create it first", path,
                         folder);
    return probe_in(folder, bytes, path);
}

static const char *file_kind(mode_t m)
{
    return S_ISREG(m) ? "a regular file" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device"
           : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a file";
}

int cli_mkdir_p(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return cli_error(DFRCL_ERR_INVALID_ARG, "bad directory '%s'", path);
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return cli_error(DFRCL_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    struct stat st;
    if ((mkdir(buf, 0755) != 0 && errno != EEXIST) || stat(buf, &st) != 0)
        return cli_error(DFRCL_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return cli_error(DFRCL_ERR_IO, "%s: exists and is not a directory (it is %s)", buf,
                         file_kind(st.st_mode));
    return DFRCL_OK;
}

int cli_prepare_dir(const char *dir, int *created)
{
    struct stat st;
    int existed = stat(dir, &st) == 0;
    if (created) *created = 0;
    if (!*dir) return cli_error(DFRCL_ERR_INVALID_ARG, "the output folder name is empty");
    if (existed && !S_ISDIR(st.st_mode))
        return cli_error(DFRCL_ERR_INVALID_ARG, "%s: exists and is not a folder", dir);
    int rc = cli_mkdir_p(dir);
    if (rc) return rc;
    if (created) *created = !existed;
    rc = probe_in(dir, 0, dir);
    if (rc && !existed) rmdir(dir);
    return rc;
}

static int remove_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)f;
    if (flag == FTW_DP) rmdir(p);
    else unlink(p);
    return 0;
}

void cli_remove_tree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void cli_json_add_name(cJSON *o, const char *key, const char *name)
{
    int lossy = 0;
    char *u = dfrcl_utf8(name, &lossy);
    if (!u) return;
    cJSON_AddStringToObject(o, key, u);
    dfrcl_free(u);
    if (!lossy) return;
    size_t n = strlen(name);
    char *hex = malloc(2 * n + 1), k[128];
    if (!hex) return;
    for (size_t i = 0; i < n; i++) sprintf(hex + 2 * i, "%02x", (unsigned char)name[i]);
    hex[2 * n] = 0;
    snprintf(k, sizeof k, "%s_hex", key);
    cJSON_AddStringToObject(o, k, hex);
    free(hex);
}

int cli_written_add(cli_written *w, const char *path, int is_dir)
{
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        char **np = realloc(w->paths, (size_t)cap * sizeof *np);
        if (np) w->paths = np;
        int *nd = np ? realloc(w->is_dir, (size_t)cap * sizeof *nd) : NULL;
        if (nd) w->is_dir = nd;
        if (!np || !nd) return cli_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
        w->cap = cap;
    }
    if (!(w->paths[w->n] = strdup(path))) return cli_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    w->is_dir[w->n++] = is_dir;
    return DFRCL_OK;
}

int cli_written_remove(cli_written *w)
{
    int files = 0;
    for (int i = w->n - 1; i >= 0; i--) {
        if (w->is_dir[i]) rmdir(w->paths[i]);
        else files += unlink(w->paths[i]) == 0;
    }
    return files;
}

void cli_written_free(cli_written *w)
{
    for (int i = 0; i < w->n; i++) free(w->paths[i]);
    free(w->paths);
    free(w->is_dir);
    memset(w, 0, sizeof *w);
}

void cli_sibling_path(char *out, size_t size, const char *path, const char *suffix)
{
    const char *slash = strrchr(path, '/');
    size_t base = strlen(slash ? slash + 1 : path), dir = strlen(path) - base;
    if (base + strlen(suffix) <= NAME_MAX) {
        snprintf(out, size, "%s%s", path, suffix);
        return;
    }
    uint64_t h = 1469598103934665603ull; /* FNV-1a of the whole path */
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) h = (h ^ *p) * 1099511628211ull;
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
    int keep = NAME_MAX - (int)strlen(suffix) - 10; /* "~" + 8 hex digits + margin */
    snprintf(out, size, "%.*s%.*s~%.8s%s", (int)dir, path, keep, path + dir, hex, suffix);
}
