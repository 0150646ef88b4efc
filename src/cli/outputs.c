#include "cli/outputs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/hash.h"
#include "util/fsutil.h"

/* Creates and removes a temp file beside `path` (fsutil's: exclusive, registered for removal on
 * a signal, cleaned up if the process dies), first reserving `bytes` in it. */
static int probe_in(const char *folder, double bytes, const char *path)
{
    char name[4200];
    if ((size_t)snprintf(name, sizeof name, "%s/probe", folder) >= sizeof name)
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: path too long", path);
    dfr_atomic_file af;
    int rc = dfr_atomic_open(&af, name);
    if (rc) return dfr_error_prefix(rc, "%s: cannot create files in %s", path, folder);
    int e = bytes > 0 ? posix_fallocate(fileno(af.f), 0, (off_t)bytes) : 0;
    dfr_atomic_abort(&af);
    if (e)
        return dfr_error(DFRCL_ERR_IO, "%s: no room for %.1f MB in %s: %s; free some space or "
                         "choose another place", path, bytes / 1e6, folder, strerror(e));
    return DFRCL_OK;
}

int cli_probe_file(const char *path, double bytes)
{
    size_t n = strlen(path);
    if (n == 0) return dfr_error(DFRCL_ERR_INVALID_ARG, "the output file name is empty");
    struct stat st;
    if (path[n - 1] == '/' || (stat(path, &st) == 0 && S_ISDIR(st.st_mode)))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: is a folder; give a file name in it", path);
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: exists and is not a regular file", path);
    char folder[4096];
    if (n >= sizeof folder) return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: path too long", path);
    dfr_folder_of(path, folder, sizeof folder);
    if (stat(folder, &st) != 0 || !S_ISDIR(st.st_mode))
        return dfr_error(DFRCL_ERR_IO, "%s: folder %s does not exist; create it first", path,
                         folder);
    return probe_in(folder, bytes, path);
}

int cli_prepare_dir(const char *dir, int *created)
{
    struct stat st;
    int existed = stat(dir, &st) == 0;
    if (created) *created = 0;
    if (!*dir) return dfr_error(DFRCL_ERR_INVALID_ARG, "the output folder name is empty");
    if (existed && !S_ISDIR(st.st_mode))
        return dfr_error(DFRCL_ERR_INVALID_ARG, "%s: exists and is not a folder", dir);
    int rc = dfr_mkdir_p(dir);
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

int cli_written_add(cli_written *w, const char *path, int is_dir)
{
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        char **np = realloc(w->paths, (size_t)cap * sizeof *np);
        if (np) w->paths = np;
        int *nd = np ? realloc(w->is_dir, (size_t)cap * sizeof *nd) : NULL;
        if (nd) w->is_dir = nd;
        if (!np || !nd) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
        w->cap = cap;
    }
    if (!(w->paths[w->n] = strdup(path))) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
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
    dfr_sha256 h;
    char hex[65];
    dfr_sha256_init(&h);
    dfr_sha256_update_str(&h, path);
    dfr_sha256_hex(&h, hex);
    int keep = NAME_MAX - (int)strlen(suffix) - 10; /* "~" + 8 hex digits + margin */
    snprintf(out, size, "%.*s%.*s~%.8s%s", (int)dir, path, keep, path + dir, hex, suffix);
}
