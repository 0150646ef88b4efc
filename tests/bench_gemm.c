/* GFLOP/s of each GEMM implementation on the shapes of DFR's autoencoder (one image, S = 256:
 * P = 4096 positions). Median (and best) of several timed runs after a warm-up run (which also
 * builds the kernels). Wall-clock time around each call, finished with clFinish; also GFLOP per
 * CPU-second of this process (all threads), which a machine shared with other jobs disturbs less
 * than wall-clock time (on an idle machine with N cores, wall GFLOP/s ~ N x that).
 *
 * Usage: bench_gemm [-r REPS] [-b own-reg|own-lds|clblast|all] [-s SUBSTRING] [--big]
 *   -b all (default): own-reg and clblast, and own-lds on GPUs; -s runs only the shapes whose
 *   name contains SUBSTRING; --big adds the C = 3456 shapes.
 * Tunables of the own kernels: DFRCL_GEMM_TUNE (see src/ops/gemm.c). Exit 77 without a device. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/gemm.h"
#include "util/error.h"

typedef struct shape {
    const char *name;
    int ta, tb, m, n, k, batch, sum, big;
} shape;

/* C = 1408 (8 layers, d ~ 20: hidden 729), C = 3456 (12 layers, d ~ 200: hidden 1928). */
static const shape shapes[] = {
    {"enc1 NN W[729x1408]*X[1408x4096]", 0, 0, 729, 4096, 1408, 1, 0, 0},
    {"dec3 NN W[1408x729]*H[729x4096]", 0, 0, 1408, 4096, 729, 1, 0, 0},
    {"enc2 NN W[42x729]*H[729x4096]", 0, 0, 42, 4096, 729, 1, 0, 0},
    {"bwd-data TN W^T[1408x729]*dY[729x4096]", 1, 0, 1408, 4096, 729, 1, 0, 0},
    {"bwd-weight NT dY[729x4096]*X^T, sum of 2", 0, 1, 729, 1408, 4096, 2, 1, 0},
    {"pca NT F[1408x4096]*F^T, sum of 4 (k=16384)", 0, 1, 1408, 1408, 4096, 4, 1, 0},
    {"big enc1 NN W[1928x3456]*X[3456x4096]", 0, 0, 1928, 4096, 3456, 1, 0, 1},
    {"big bwd-weight NT dY[1928x4096]*X^T", 0, 1, 1928, 3456, 4096, 1, 0, 1},
};

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int fill(dfr_runtime *rt, cl_mem m, size_t n, unsigned seed)
{
    float *p = malloc(n * sizeof *p);
    if (!p) return dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u + seed) % 1000) / 1000.0f - 0.5f;
    int rc = dfr_write(rt, m, 0, n * sizeof *p, p, "bench");
    free(p);
    return rc;
}

/* Median seconds of one call (*best: the fastest; *cpu: the median CPU time of this process,
 * all threads, per call), or a negative value on error (message printed). */
static double bench_one(dfr_runtime *rt, const shape *s, dfr_gemm_backend be, int reps,
                        double *best, double *cpu)
{
    size_t m = (size_t)s->m, n = (size_t)s->n, k = (size_t)s->k, nb = (size_t)s->batch;
    size_t na = m * k * nb, nbf = k * n * nb, nc = m * n * (s->sum ? 1 : nb);
    cl_mem a = NULL, b = NULL, c = NULL;
    double med = -1;
    int rc = dfr_buffer_new(rt, na * 4, CL_MEM_READ_WRITE, "A", &a);
    if (!rc) rc = dfr_buffer_new(rt, nbf * 4, CL_MEM_READ_WRITE, "B", &b);
    if (!rc) rc = dfr_buffer_new(rt, nc * 4, CL_MEM_READ_WRITE, "C", &c);
    if (!rc) rc = fill(rt, a, na, 1);
    if (!rc) rc = fill(rt, b, nbf, 2);
    dfr_gemm_desc g = {
        .trans_a = s->ta, .trans_b = s->tb, .m = s->m, .n = s->n, .k = s->k,
        .alpha = 1, .beta = 0,
        .a = a, .lda = s->ta ? m : k, .a_stride = m * k,
        .b = b, .ldb = s->tb ? k : n, .b_stride = k * n,
        .c = c, .ldc = n, .c_stride = s->sum ? 0 : m * n,
        .batch = s->batch,
    };
    dfr_gemm_set_backend(rt, be);
    double t[64], tc[64];
    if (reps > 64) reps = 64;
    for (int r = -1; !rc && r < reps; r++) { /* r = -1: warm-up */
        double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        rc = dfr_gemm(rt, &g, "gemm");
        if (!rc) rc = dfr_finish(rt);
        if (r >= 0) {
            t[r] = clock_s(CLOCK_MONOTONIC) - t0;
            tc[r] = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
        }
    }
    if (rc) fprintf(stderr, "%s: %s\n", dfr_gemm_backend_name(be), dfrcl_last_error());
    else {
        qsort(t, (size_t)reps, sizeof t[0], cmp_double);
        med = t[reps / 2];
        *best = t[0];
        qsort(tc, (size_t)reps, sizeof tc[0], cmp_double);
        *cpu = tc[reps / 2];
    }
    dfr_buffer_release(&a);
    dfr_buffer_release(&b);
    dfr_buffer_release(&c);
    return med;
}

int main(int argc, char **argv)
{
    int reps = 5, big = 0;
    const char *which = "all", *filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "-b") == 0 && i + 1 < argc) which = argv[++i];
        else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) filter = argv[++i];
        else if (strcmp(argv[i], "--big") == 0) big = 1;
        else {
            fprintf(stderr, "usage: %s [-r REPS] [-b own-reg|own-lds|clblast|all] [-s SUBSTRING] "
                            "[--big]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    dfr_runtime *rt;
    int rc = dfr_runtime_open(&rt, NULL, NULL, 0);
    if (rc == DFRCL_ERR_NO_DEVICE) {
        fprintf(stderr, "skip: %s\n", dfrcl_last_error());
        return 77;
    }
    if (rc) {
        fprintf(stderr, "%s\n", dfrcl_last_error());
        return 1;
    }
    printf("device: %s (%s)\nauto picks: %s; median of %d runs after a warm-up\n", rt->info.name,
           rt->info.platform_name, dfr_gemm_backend_name(dfr_gemm_backend_in_use(rt)), reps);
    const dfr_gemm_backend all[] = {DFR_GEMM_OWN_REG, DFR_GEMM_OWN_LDS, DFR_GEMM_CLBLAST};
    int failed = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const shape *s = &shapes[si];
        if ((s->big && !big) || (filter && !strstr(s->name, filter))) continue;
        double gflop = 2.0 * s->m * s->n * (double)s->k * s->batch * 1e-9;
        printf("%-46s %6.1f GFLOP\n", s->name, gflop);
        for (size_t bi = 0; bi < sizeof all / sizeof all[0]; bi++) {
            /* "all" leaves out the GPU kernel on CPUs (two orders of magnitude slower there). */
            if (strcmp(which, "all") == 0 ? all[bi] == DFR_GEMM_OWN_LDS && rt->info.is_cpu
                                          : strcmp(which, dfr_gemm_backend_name(all[bi])) != 0)
                continue;
            double best = 0, cpu = 0, sec = bench_one(rt, s, all[bi], reps, &best, &cpu);
            if (sec < 0) failed = 1;
            else printf("    %-8s %9.1f ms %7.1f GFLOP/s  best %7.1f  per CPU-second %6.1f\n",
                        dfr_gemm_backend_name(all[bi]), sec * 1e3, gflop / sec, gflop / best,
                        gflop / cpu);
            fflush(stdout);
        }
    }
    dfr_gemm_release(rt);
    dfr_runtime_close(&rt);
    return failed;
}
