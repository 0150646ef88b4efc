#include "io/dataset.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "util/error.h"

static int is_image_name(const char *n)
{
    const char *dot = strrchr(n, '.');
    return dot && n[0] != '.' &&
           (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Says why an entry with an image's name is left out of a listing: stat failed with `err`, or
 * (stat_failed 0) it is not a regular file. */
static void skip_warning(const char *p, int stat_failed, int err)
{
    struct stat l;
    int link = lstat(p, &l) == 0 && S_ISLNK(l.st_mode);
    const char *why = !stat_failed                ? "not a regular file"
                      : err == ELOOP              ? "symbolic link loop"
                      : link && err == ENOENT     ? "dangling symbolic link (its target is missing)"
                                                  : strerror(err);
    dfr_log(1, "warning: %s: skipped: %s", p, why);
}

void dfr_file_list_free(dfr_file_list *l)
{
    for (int i = 0; i < l->count; i++) free(l->paths[i]);
    free(l->paths);
    l->paths = NULL;
    l->count = 0;
}

int dfr_list_images(const char *dir, dfr_file_list *out)
{
    out->paths = NULL;
    out->count = 0;
    DIR *d = opendir(dir);
    if (!d) return dfr_error(DFRCL_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    int cap = 0, rc = DFRCL_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_image_name(e->d_name)) continue;
        char *p = malloc(strlen(dir) + strlen(e->d_name) + 2);
        if (!p) {
            rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory listing %s", dir);
            break;
        }
        sprintf(p, "%s/%s", dir, e->d_name);
        struct stat st;
        int failed = stat(p, &st) != 0, err = errno;
        if (failed || !S_ISREG(st.st_mode)) { /* skipped, with a word why */
            skip_warning(p, failed, err);
            free(p);
            continue;
        }
        if (out->count == cap) {
            cap = cap ? cap * 2 : 64;
            char **np = realloc(out->paths, (size_t)cap * sizeof *np);
            if (!np) {
                free(p);
                rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory listing %s", dir);
                break;
            }
            out->paths = np;
        }
        out->paths[out->count++] = p;
    }
    closedir(d);
    if (rc) {
        dfr_file_list_free(out);
        return rc;
    }
    if (out->count) qsort(out->paths, (size_t)out->count, sizeof(char *), cmp_str);
    return DFRCL_OK;
}

int dfr_list_train_images(const char *root, dfr_file_list *out)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/train/good", root);
    struct stat st;
    if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode))
        return dfr_error(DFRCL_ERR_IO, "%s: no such folder", root);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return dfr_error(DFRCL_ERR_FORMAT,
                         "%s: no train/good folder; a dataset folder holds its normal training "
                         "images in train/good (MVTec AD layout)",
                         root);
    int rc = dfr_list_images(dir, out);
    if (rc) return rc;
    if (out->count == 0)
        return dfr_error(DFRCL_ERR_FORMAT, "%s: no images (.png, .jpg, .jpeg) in it", dir);
    return DFRCL_OK;
}
