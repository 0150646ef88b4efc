/* Test helpers that need nothing of the project (the public-header test uses them too):
 * the skip status and flat temporary folders. */
#ifndef DFRCL_TESTFS_H
#define DFRCL_TESTFS_H
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define DFR_TEST_SKIP 77 /* meson reads exit status 77 as SKIP */

/* A fresh temporary folder /tmp/dfrcl-test-<tag>-XXXXXX in buf; 0 on success (cmocka setup). */
static inline int dfr_test_mkdtemp(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "/tmp/dfrcl-test-%s-XXXXXX", tag);
    return mkdtemp(buf) ? 0 : -1;
}

/* Removes the files directly in dir, then dir (tests keep their temporary folders flat). */
static inline void dfr_test_rmdir_flat(const char *dir)
{
    char p[4096];
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') {
                snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(dir);
}
#endif
