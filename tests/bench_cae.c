/* Benchmark of the CAE: wall time of one training step and of one inference of a batch, after a
 * warm-up on a small CAE (kernel builds), with the GEMM GFLOP/s (dfr_cae_gemm_flops) and the
 * device time of the GEMMs and of the other kernels. PoCL also compiles a kernel per new launch
 * shape, so the first repetition of a size can be slower: run reps >= 2.
 *
 * usage: bench_cae [reps (2)] [C d batch npos ...]   default: 1408 25 4 4096  3456 197 4 4096
 * DFRCL_DEVICE picks the device; DFRCL_GEMM (own | clblast) the GEMM; BENCH_VERBOSE=1 prints the
 * device time of each GEMM and kernel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/cae.h"
#include "ops/gemm.h"
#include "util/error.h"
#include "util/rand.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int verbose;

/* Device ms of the GEMMs and of the CAE's own kernels recorded since the last call; with
 * BENCH_VERBOSE set, each GEMM (tag: conv and fwd / dW / dA) too. */
static void prof_split(dfr_runtime *rt, double *gemm_ms, double *other_ms, int show)
{
    dfr_prof_sum sums[64];
    int n = 0;
    *gemm_ms = *other_ms = 0;
    if (dfr_profile_collect(rt, sums, 64, &n)) return;
    for (int i = 0; i < n; i++) {
        if (strcmp(sums[i].label, "cae_gemm") == 0) {
            *gemm_ms += sums[i].ms;
            if (verbose && show)
                printf("    %-16s %8.1f ms (%d launches)\n", sums[i].tag ? sums[i].tag : "?",
                       sums[i].ms, sums[i].count);
        } else if (strcmp(sums[i].label, "cae") == 0) {
            *other_ms += sums[i].ms;
            if (verbose && show)
                printf("    %-16s %8.1f ms (%d launches)\n", sums[i].tag ? sums[i].tag : "?",
                       sums[i].ms, sums[i].count);
        }
    }
}

static int run(dfr_runtime *rt, int C, int d, int B, int P, int reps, int quiet)
{
    dfr_cae *m = NULL;
    cl_mem x = NULL, r = NULL;
    size_t n = (size_t)B * C * P;
    float *h = malloc(n * sizeof *h);
    int rc = h ? dfr_cae_new(&m, rt, C, d, B, P, 1) : DFRCL_ERR_HOST_MEMORY;
    /* Nonnegative, skewed like ReLU features. */
    for (size_t i = 0; h && i < n; i++) {
        float u = dfr_rand_uniform(7, (uint32_t)i, 0.0f, 1.0f);
        h[i] = u * u * u * 2.0f;
    }
    if (!rc) rc = dfr_buffer_new(rt, n * sizeof *h, CL_MEM_READ_WRITE, "bench input", &x);
    if (!rc) rc = dfr_buffer_new(rt, n * sizeof *h, CL_MEM_READ_WRITE, "bench output", &r);
    if (!rc) rc = dfr_write(rt, x, 0, n * sizeof *h, h, "upload");
    float loss = 0;
    double g, o;
    if (!rc) rc = dfr_finish(rt);
    prof_split(rt, &g, &o, 0);
    double ft = dfr_cae_gemm_flops(m, B, 1), fi = dfr_cae_gemm_flops(m, B, 0);
    for (int i = 0; i < reps && !rc; i++) {
        double t0 = now_s();
        rc = dfr_cae_train_step(m, x, 0, B, 1e-4f, &loss);
        double t1 = now_s();
        double tg, to;
        prof_split(rt, &tg, &to, !quiet);
        if (!rc) rc = dfr_cae_infer(m, x, 0, B, r);
        if (!rc) rc = dfr_finish(rt);
        double t2 = now_s();
        prof_split(rt, &g, &o, !quiet);
        if (rc || quiet) break;
        printf("C=%d d=%d h=%d B=%d P=%d  train step %.3f s (%.1f GFLOP, %.1f GFLOP/s; device: "
               "GEMM %.3f s, other %.3f s) loss %.4f | inference %.3f s (%.1f GFLOP, %.1f "
               "GFLOP/s; device: GEMM %.3f s, other %.3f s)\n",
               C, d, dfr_cae_hidden(m), B, P, t1 - t0, ft * 1e-9, ft * 1e-9 / (t1 - t0),
               tg * 1e-3, to * 1e-3, (double)loss, t2 - t1, fi * 1e-9, fi * 1e-9 / (t2 - t1),
               g * 1e-3, o * 1e-3);
        fflush(stdout);
    }
    dfr_buffer_release(&x);
    dfr_buffer_release(&r);
    dfr_cae_free(&m);
    free(h);
    return rc;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 2;
    verbose = getenv("BENCH_VERBOSE") != NULL;
    static const int defaults[] = {1408, 25, 4, 4096, 3456, 197, 4, 4096};
    const int *cfg = defaults;
    int ncfg = 2;
    int *parsed = NULL;
    if (argc > 2) {
        if ((argc - 2) % 4 != 0 || reps < 1) {
            fprintf(stderr, "usage: bench_cae [reps] [C d batch npos ...]\n");
            return 2;
        }
        ncfg = (argc - 2) / 4;
        parsed = malloc(sizeof *parsed * 4 * ncfg);
        if (!parsed) return 1;
        for (int i = 0; i < 4 * ncfg; i++) parsed[i] = atoi(argv[2 + i]);
        cfg = parsed;
    }
    dfr_runtime *rt = NULL;
    int rc = dfr_runtime_open(&rt, NULL, NULL, 1);
    if (rc) {
        fprintf(stderr, "%s\n", dfrcl_last_error());
        free(parsed);
        return rc == DFRCL_ERR_NO_DEVICE ? 77 : 1;
    }
    printf("device: %s (%s); GEMM: %s\n", rt->info.name, rt->info.platform_name,
           dfr_gemm_backend_name(dfr_gemm_backend_in_use(rt)));
    /* Warm-up on a small CAE: builds the kernels (their options do not depend on the sizes). */
    rc = run(rt, 64, 4, 2, 64, 1, 1);
    for (int i = 0; i < ncfg && !rc; i++)
        rc = run(rt, cfg[4 * i], cfg[4 * i + 1], cfg[4 * i + 2], cfg[4 * i + 3], reps, 0);
    if (rc) fprintf(stderr, "bench_cae: %s\n", dfrcl_last_error());
    dfr_runtime_close(&rt);
    free(parsed);
    return rc ? 1 : 0;
}
