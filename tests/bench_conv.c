/* Benchmark of the 3x3 convolutions of VGG19 at one image size (default 256): per layer the
 * median device time of `reps` runs after a warm-up, and GFLOP/s (2 * cout * cin * 9 * h * w
 * FLOPs); overall = all FLOPs / sum of the medians.
 *
 * usage: bench_conv [reps (5)] [layers: 8 or 12 (12)] [size (256)]
 * DFRCL_DEVICE picks the device; DFRCL_CONV_TUNE="tco,tx[,lx,ly,lz]" overrides the tile table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/ops.h"
#include "util/error.h"
#include "util/rand.h"

static const struct {
    const char *name;
    int cin, cout, div; /* map size = size / div */
} layers[12] = {
    {"conv1_1", 3, 64, 1},    {"conv1_2", 64, 64, 1},   {"conv2_1", 64, 128, 2},
    {"conv2_2", 128, 128, 2}, {"conv3_1", 128, 256, 4}, {"conv3_2", 256, 256, 4},
    {"conv3_3", 256, 256, 4}, {"conv3_4", 256, 256, 4}, {"conv4_1", 256, 512, 8},
    {"conv4_2", 512, 512, 8}, {"conv4_3", 512, 512, 8}, {"conv4_4", 512, 512, 8},
};

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

/* CPU time of the whole process: on a CPU device (PoCL) the kernels run in its threads, so
 * FLOPs per CPU-second tell the per-core speed even when other jobs share the cores. */
static double cpu_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int fail(const char *what)
{
    fprintf(stderr, "bench_conv: %s: %s\n", what, dfrcl_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    int nl = argc > 2 ? atoi(argv[2]) : 12;
    int size = argc > 3 ? atoi(argv[3]) : 256;
    if (reps < 1 || reps > 1000 || (nl != 8 && nl != 12) || size < 16 || size > 4096 ||
        size % 8 != 0) {
        fprintf(stderr, "usage: bench_conv [reps 1..1000] [layers 8|12] [size, multiple of 8]\n");
        return 2;
    }
    dfr_verbosity = 0;
    dfr_runtime *rt = NULL;
    int rc = dfr_runtime_open(&rt, NULL, NULL, 1);
    if (rc == DFRCL_ERR_NO_DEVICE) {
        fprintf(stderr, "skip: %s\n", dfrcl_last_error());
        return 77;
    }
    if (rc) return fail("opening the device");
    const char *tune = getenv("DFRCL_CONV_TUNE");
    printf("device: %s (%s)\nsize %d, %d layers, %d runs each after a warm-up%s%s\n",
           rt->info.name, rt->info.platform_version, size, nl, reps,
           tune && *tune ? ", DFRCL_CONV_TUNE=" : "", tune && *tune ? tune : "");

    /* Largest activation: 64 x size x size; weights up to 512 x 512 x 9. */
    size_t act = (size_t)512 * (size / 8) * (size / 8);
    if ((size_t)64 * size * size > act) act = (size_t)64 * size * size;
    float *host = malloc(act * sizeof(float));
    float *wh = malloc((size_t)512 * 512 * 9 * sizeof(float)), *bh = malloc(512 * sizeof(float));
    double *t = malloc((size_t)reps * sizeof(double));
    if (!host || !wh || !bh || !t) {
        fprintf(stderr, "bench_conv: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < act; i++) host[i] = dfr_rand_uniform(1, (uint32_t)i, 0.0f, 1.0f);
    cl_mem a = NULL, b = NULL;
    if (dfr_buffer_new(rt, act * sizeof(float), CL_MEM_READ_WRITE, "bench in", &a) ||
        dfr_buffer_new(rt, act * sizeof(float), CL_MEM_READ_WRITE, "bench out", &b) ||
        dfr_write(rt, a, 0, act * sizeof(float), host, "upload"))
        return fail("buffers");

    double total_ms = 0, total_min_ms = 0, total_gflop = 0, total_cpu_ms = 0;
    printf("%-8s %5s %5s %5s %10s %10s %9s\n", "layer", "cin", "cout", "hw", "GFLOP", "median ms",
           "GFLOP/s");
    for (int l = 0; l < nl; l++) {
        int cin = layers[l].cin, cout = layers[l].cout, hw = size / layers[l].div;
        for (size_t i = 0; i < (size_t)cout * cin * 9; i++)
            wh[i] = dfr_rand_uniform(2, (uint32_t)i, -0.05f, 0.05f);
        for (int i = 0; i < cout; i++) bh[i] = dfr_rand_uniform(3, (uint32_t)i, -0.1f, 0.1f);
        dfr_conv_weights cw;
        if (dfr_conv_upload(rt, wh, bh, cin, cout, &cw)) return fail("weights");
        /* warm-up (includes the kernel build on first use) */
        double t0 = now_ms();
        if (dfr_op_conv3x3_relu(rt, &cw, a, b, hw, hw) || dfr_finish(rt))
            return fail(layers[l].name);
        double warm = now_ms() - t0;
        dfr_profile_clear(rt);
        double c0 = cpu_ms();
        for (int r = 0; r < reps; r++) {
            if (dfr_op_conv3x3_relu(rt, &cw, a, b, hw, hw) || dfr_finish(rt))
                return fail(layers[l].name);
            dfr_prof_sum s[4];
            int ns = 0;
            if (dfr_profile_collect(rt, s, 4, &ns) || ns < 1) return fail("profiling");
            t[r] = 0;
            for (int i = 0; i < ns; i++) t[r] += s[i].ms;
        }
        double cpu = (cpu_ms() - c0) / reps;
        total_cpu_ms += cpu;
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
        double gflop = 2.0 * cout * cin * 9 * (double)hw * hw * 1e-9;
        printf("%-8s %5d %5d %5d %10.3f %10.2f %9.1f   (min %.2f, max %.2f, first %.0f ms; "
               "%.1f GFLOP per CPU-s)\n",
               layers[l].name, cin, cout, hw, gflop, med, gflop / med * 1e3, t[0], t[reps - 1],
               warm, gflop / cpu * 1e3);
        fflush(stdout);
        total_ms += med;
        total_min_ms += t[0];
        total_gflop += gflop;
        dfr_conv_release(&cw);
    }
    /* The fastest runs show what the kernels can do when the shared machine is quiet. */
    printf("overall: %.2f GFLOP in %.1f ms: %.1f GFLOP/s (medians); fastest runs: %.1f ms, "
           "%.1f GFLOP/s; %.1f GFLOP per CPU-s\n",
           total_gflop, total_ms, total_gflop / total_ms * 1e3, total_min_ms,
           total_gflop / total_min_ms * 1e3, total_gflop / total_cpu_ms * 1e3);
    dfr_buffer_release(&a);
    dfr_buffer_release(&b);
    dfr_runtime_close(&rt);
    free(host);
    free(wh);
    free(bh);
    free(t);
    return 0;
}
