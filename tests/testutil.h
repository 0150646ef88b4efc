/* Helpers shared by the cmocka tests. Tests are compiled with -DDFRCL_SOURCE_DIR="<repo root>". */
#ifndef DFRCL_TESTUTIL_H
#define DFRCL_TESTUTIL_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include "testfs.h"

/* The shared data folder (DFRCL_SHARED, else <repo>/../shared), or NULL when absent. */
static inline const char *dfr_test_shared_dir(void)
{
    static char buf[4096];
    const char *env = getenv("DFRCL_SHARED");
    if (env && *env) snprintf(buf, sizeof buf, "%s", env);
    else snprintf(buf, sizeof buf, "%s/../shared", DFRCL_SOURCE_DIR);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

/* Path of a committed fixture: <repo>/tests/fixtures/<name>. */
static inline const char *dfr_test_fixture(const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/tests/fixtures/%s", DFRCL_SOURCE_DIR, name);
    return buf;
}

/* Deterministic pseudo-random numbers, shared with the library and tools/make_fixtures.py. */
#include "util/rand.h"
#define dfr_test_hash dfr_rand_u32
#define dfr_test_uniform dfr_rand_uniform

/* A value no kernel produces, written into outputs before a run so unwritten elements fail. */
#define DFR_POISON (-12345.678f)
static inline void dfr_test_poison(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = DFR_POISON;
}

/* Reference 3x3 convolution with reflection padding of 1, bias and ReLU, summed in double:
 * in [cin, h, w], wt [cout, cin, 3, 3], out [cout, h, w]. */
static inline int dfr_test_reflect(int i, int n)
{
    return i < 0 ? -i : i >= n ? 2 * n - 2 - i : i;
}
static inline void dfr_test_ref_conv3x3_relu(const float *in, const float *wt, const float *b,
                                             float *out, int cin, int cout, int h, int w)
{
    for (int co = 0; co < cout; co++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double s = b[co];
                for (int ci = 0; ci < cin; ci++)
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++)
                            s += (double)wt[(((size_t)co * cin + ci) * 3 + ky) * 3 + kx] *
                                 in[((size_t)ci * h + dfr_test_reflect(y + ky - 1, h)) * w +
                                    dfr_test_reflect(x + kx - 1, w)];
                out[((size_t)co * h + y) * w + x] = s > 0 ? (float)s : 0.0f;
            }
}

/* Normalised MSE: sum((a-b)^2) / sum(b^2); NaN anywhere gives INFINITY. */
static inline double dfr_test_nmse(const float *a, const float *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(ref[i])) return INFINITY;
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? num / den : num;
}

/* Elementwise |a-b| <= atol + rtol*|ref|; prints and counts the first mismatches. NaN fails. */
static inline size_t dfr_test_compare(const char *what, const float *a, const float *ref, size_t n,
                                      float atol, float rtol)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - ref[i]);
        if (!(d <= atol + rtol * fabsf(ref[i]))) {
            if (bad < 5) fprintf(stderr, "%s[%zu]: got %.7g want %.7g\n", what, i, a[i], ref[i]);
            bad++;
        }
    }
    return bad;
}

/* Sets (value non-NULL) or unsets environment variable `name`, and has runtime rt (when not
 * NULL) read dfrcl's variables again: a runtime reads them once, at open. 0 on success. */
struct dfr_runtime;
int dfr_runtime_reload_env(struct dfr_runtime *rt);
static inline int dfr_test_setenv(struct dfr_runtime *rt, const char *name, const char *value)
{
    if (value ? setenv(name, value, 1) : unsetenv(name)) return -1;
    return rt ? dfr_runtime_reload_env(rt) : 0;
}

/* In main(): opens the default OpenCL device quietly into *rtp, or returns from main with 77
 * (skip: no device) or 1 (any other failure), saying why. Needs cl/runtime.h and util/error.h. */
#define DFR_TEST_OPEN_RUNTIME(rtp)                                                             \
    do {                                                                                       \
        dfr_verbosity = 0;                                                                     \
        int rc_ = dfr_runtime_open((rtp), NULL, NULL, 0);                                      \
        if (rc_ == DFRCL_ERR_NO_DEVICE) {                                                      \
            fprintf(stderr, "skip: %s\n", dfrcl_last_error());                                 \
            return DFR_TEST_SKIP;                                                              \
        }                                                                                      \
        if (rc_) {                                                                             \
            fprintf(stderr, "%s\n", dfrcl_last_error());                                       \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

#endif
