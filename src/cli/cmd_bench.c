/* dfrcl bench: median device time per stage of the backbone and regional features, GFLOP/s,
 * share of the total; optionally side by side with the PyTorch reference run in the same
 * command. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/backbone_opts.h"
#include "cli/cli.h"
#include "cli/internal_backbone.h"
#include "cli/tune.h"
#include "util/error.h"
#include "model/cae.h"
#include "io/demo_data.h"
#include "io/image.h"
#include "io/npy.h"
#include "sched/scorer.h"
#include "util/fsutil.h"
#include "util/rand.h"

#define MAX_ROWS 64

typedef struct row {
    const char *stage, *tag;
    double flops;    /* per image */
    double *ms;      /* one per rep */
} row;

static void help(void)
{
    printf("usage: dfrcl bench [options]\n\n"
           "Times the backbone (VGG19 convolutions, pooling) and the regional-feature stage on\n"
           "one image: warm-up runs, then the median over --reps of each stage's device time\n"
           "(OpenCL profiling events), its GFLOP/s and its share of the total. Uses a random\n"
           "backbone unless --weights is given (timing does not depend on the values). When\n"
           "'dfrcl tune' has tuned the device, also times its kernels with the built-in\n"
           "defaults and with the tuned values.\n\n"
           "options:\n"
           "  -r, --reps N              timed repetitions (default 5)\n"
           "      --warmup N            untimed runs first (default 2)\n"
           "      --torch SCRIPT        also run the PyTorch reference (dfr_torch_ref.py) with\n"
           "                            /usr/bin/python3 and print the ratio (12 layers only)\n"
           "      --threads N           threads for the PyTorch reference (default 2)\n"
           "      --pipeline            instead, the whole scoring pipeline: images per second\n"
           "                            from PNG files on disk to .npy maps on disk (an untrained\n"
           "                            model), for batches of 1, 4 and 16; each stage's device\n"
           "                            busy time, the device's idle share, and the ideal rate\n"
           "                            1 / (sum of the stage times per image); with --torch\n"
           "                            SCRIPT (tools/torch_pipeline.py), PyTorch's evaluation\n"
           "                            loop on the same files and batches, side by side\n"
           "      --images N            images for --pipeline (default 32)\n"
           "      --latent N            also time the CAE and scoring with this latent size\n"
           "                            (default 197 for 12 layers as in the published bottle\n"
           "                            model, 25 for 8 layers; 0 skips them)\n" CLI_PRECISION_HELP CLI_BACKBONE_HELP
           "  -h, --help\n");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
    double *t = malloc((size_t)n * sizeof *t);
    if (!t) return 0;
    memcpy(t, v, (size_t)n * sizeof *t);
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    double m = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    free(t);
    return m;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* FLOPs per image of a stage instance, for GFLOP/s: convolutions (2 per multiply-add) and the
 * CAE's GEMMs. The other stages are memory-bound and show no GFLOP/s. */
static double stage_flops(const dfr_vgg19 *v, const dfr_cae *cae, const char *stage,
                          const char *tag, int size)
{
    for (int i = 0; i < v->layers; i++) {
        if (!tag || strcmp(tag, dfr_vgg19_layer_name(i)) != 0) continue;
        double hw = (double)(size >> dfr_vgg19_layer_block(i));
        hw *= hw;
        int cin = i ? dfr_vgg19_layer_channels(i - 1) : 3, cout = dfr_vgg19_layer_channels(i);
        if (!strcmp(stage, "conv")) return 2.0 * 9.0 * cin * cout * hw;
    }
    if (!strcmp(stage, "cae_gemm") && cae) return dfr_cae_gemm_flops(cae, 1, 0);
    return 0;
}

/* Runs the PyTorch reference and parses "vgg N ms  regional N ms". */
static int run_torch(const char *script, int size, int threads, int latent, double *vgg_ms,
                     double *reg_ms, double *cae_ms)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' --size %d --threads %d --latent %d --reps 3 2>&1",
             script, size, threads, latent > 0 ? latent : 197);
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    char line[1024];
    int ok = 0;
    while (fgets(line, sizeof line, p)) {
        const char *s = strstr(line, "vgg ");
        if (s && sscanf(s, "vgg %lf ms regional %lf ms cae+score %lf ms", vgg_ms, reg_ms, cae_ms) == 3)
            ok = 1;
        if (!ok) fputs(line, stderr);
    }
    pclose(p);
    return ok;
}


/* Runs tools/torch_pipeline.py (PyTorch's evaluation loop) on the same files and parses its
 * "images/s R" line. Returns 0 when it did not run. */
static double run_torch_pipeline(const char *script, char **paths, int n, int size, int layers,
                                 int latent, int batch, int threads)
{
    size_t cap = 4096 + strlen(script);
    for (int i = 0; i < n; i++) cap += strlen(paths[i]) + 3;
    char *cmd = malloc(cap);
    if (!cmd) return 0;
    int len = snprintf(cmd, cap, "/usr/bin/python3 '%s' --size %d --layers %d --latent %d "
                       "--batch %d --threads %d", script, size, layers, latent, batch, threads);
    for (int i = 0; i < n; i++) len += snprintf(cmd + len, cap - (size_t)len, " '%s'", paths[i]);
    snprintf(cmd + len, cap - (size_t)len, " 2>&1");
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p) return 0;
    char line[1024];
    double rate = 0;
    while (fgets(line, sizeof line, p)) {
        const char *s = strstr(line, "images/s ");
        if (!(s && sscanf(s, "images/s %lf", &rate) == 1)) fputs(line, stderr);
    }
    pclose(p);
    return rate;
}

typedef struct pipe_ctx {
    const char *dir;
    int S, written;
} pipe_ctx;

/* Each map goes to disk, as eval and infer write them. */
static int pipe_write(void *user, const dfr_sched_result *r)
{
    pipe_ctx *c = user;
    if (r->status) return dfr_error(r->status, "%s", r->message);
    char p[4200];
    snprintf(p, sizeof p, "%s/map%04d.npy", c->dir, r->index);
    int64_t shape[2] = {c->S, c->S};
    int rc = dfr_npy_write_f32(p, 2, shape, r->map);
    c->written += !rc;
    return rc;
}

/* dfrcl bench --pipeline: the scheduler end to end on generated PNG files. */
static int bench_pipeline(const cli_backbone_opts *bo, int n, int latent, const char *torch,
                          int threads)
{
    dfr_runtime *rt = NULL;
    dfr_vgg19 *vgg = NULL;
    dfr_model *m = NULL;
    int S = bo->size, rc = cli_backbone_open(bo, 1, &rt, &vgg);
    if (!rc && latent <= 0) latent = vgg->layers >= 12 ? 197 : 25;
    if (!rc) rc = dfr_model_untrained(&m, rt, vgg, S, latent);
    char dir[] = "/tmp/dfrcl-bench-XXXXXX";
    char **paths = calloc((size_t)n, sizeof *paths);
    if (!rc && (!paths || !mkdtemp(dir)))
        rc = dfr_error(DFRCL_ERR_IO, "cannot make a temporary folder for --pipeline");
    uint8_t *px = malloc((size_t)S * S * 3);
    for (int i = 0; i < n && !rc && px; i++) { /* textured images, a different one each */
        for (size_t j = 0; j < (size_t)S * S * 3; j++)
            px[j] = (uint8_t)(dfr_rand_u32((uint32_t)i + 11, (uint32_t)j) >> 24);
        char p[4200];
        snprintf(p, sizeof p, "%s/img%04d.png", dir, i);
        paths[i] = strdup(p);
        rc = dfr_png_write(p, S, S, 3, px);
    }
    free(px);
    if (!rc)
        printf("dfrcl bench --pipeline: %s, size %d, %d layers (C=%d), latent %d, %d PNG files "
               "-> .npy maps\n%6s %9s %9s %9s %8s %s %s\n", rt->info.name, S, vgg->layers,
               vgg->channels, latent, n, "batch", "img/s", "ideal", "ratio", "idle",
               torch ? " torch img/s  x torch " : "", "device ms/img by stage");
    static const int batches[] = {1, 4, 16};
    for (int bi = 0; bi < 3 && !rc; bi++) {
        dfr_scorer *sc = NULL;
        dfr_sched_opts o = {batches[bi], 0};
        pipe_ctx ctx = {dir, S, 0};
        rc = dfr_scorer_open(&sc, &m, 1, &o);
        /* A first run of one full batch (at least 2 images) warms the kernel cache and touches
         * every page of the buffers; the second is timed. */
        int warm = batches[bi] < 2 ? 2 : batches[bi];
        if (!rc) rc = dfr_scorer_run(sc, (const char *const *)paths, n < warm ? n : warm, pipe_write,
                                     &ctx, NULL);
        dfr_profile_clear(rt);
        double t0 = now_ms();
        if (!rc) rc = dfr_scorer_run(sc, (const char *const *)paths, n, pipe_write, &ctx, NULL);
        double wall = now_ms() - t0;
        dfr_scorer_close(&sc);
        dfr_prof_sum sums[MAX_ROWS];
        int ns = 0;
        if (!rc) rc = dfr_profile_collect(rt, sums, MAX_ROWS, &ns);
        if (rc) break;
        /* Per stage (label), summed over tags; transfers run on their own queues. */
        const char *labels[MAX_ROWS];
        double ms[MAX_ROWS], compute = 0;
        int nl = 0;
        for (int i = 0; i < ns; i++) {
            int j = 0;
            while (j < nl && strcmp(labels[j], sums[i].label)) j++;
            if (j == nl) labels[nl] = sums[i].label, ms[nl++] = 0;
            ms[j] += sums[i].ms;
            if (strcmp(sums[i].label, "upload") && strcmp(sums[i].label, "download"))
                compute += sums[i].ms;
        }
        double rate = n / (wall / 1e3), ideal = n / (compute / 1e3);
        printf("%6d %9.2f %9.2f %8.1f%% %7.1f%%  ", batches[bi], rate, ideal, 100 * rate / ideal,
               100 * (1 - compute / wall));
        if (torch) {
            fflush(stdout);
            double tr = run_torch_pipeline(torch, paths, n, S, vgg->layers, latent, batches[bi],
                                           threads);
            if (tr > 0) printf("%11.3f %8.2fx  ", tr, rate / tr);
            else printf("%11s %9s  ", "n/a", "n/a");
        }
        for (int j = 0; j < nl; j++) printf("%s%s %.2f", j ? ", " : "", labels[j], ms[j] / n);
        printf("\n");
        fflush(stdout);
    }
    if (!rc)
        printf("(img/s: files to maps on disk; ideal: 1 / the compute queue's busy time per image; "
               "idle: the compute queue's idle share of the wall time%s)\n",
               torch ? "; torch: PyTorch's evaluation loop on the same files, same batch" : "");
    for (int i = 0; paths && i < n; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/map%04d.npy", dir, i);
        remove(p);
        if (paths[i]) remove(paths[i]);
        free(paths[i]);
    }
    free(paths);
    rmdir(dir);
    dfr_model_free(&m);
    dfr_vgg19_free(&vgg);
    dfr_runtime_close(&rt);
    return rc ? cli_fail(NULL) : 0;
}

int cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {CLI_BACKBONE_LONGOPTS, CLI_PRECISION_LONGOPT,
                                         {"reps", required_argument, 0, 'r'},
                                         {"warmup", required_argument, 0, 1101},
                                         {"torch", required_argument, 0, 1102},
                                         {"threads", required_argument, 0, 1103},
                                         {"latent", required_argument, 0, 1104},
                                         {"pipeline", no_argument, 0, 1105},
                                         {"images", required_argument, 0, 1106},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    cli_backbone_opts bo;
    cli_backbone_defaults(&bo);
    bo.weights = NULL; /* timing needs no real weights unless asked */
    int reps = 5, warmup = 2, threads = 2, latent = -1, pipeline = 0, images = 32;
    const char *torch = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "d:w:l:s:vqr:h", opts, NULL)) != -1) {
        int r = cli_backbone_option(&bo, c, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (c == 'r') {
            if (!cli_int("--reps", optarg, 1, 1000, &reps)) return 2;
        } else if (c == 1101) {
            if (!cli_int("--warmup", optarg, 0, 1000, &warmup)) return 2;
        } else if (c == 1102) torch = optarg;
        else if (c == 1103) {
            if (!cli_int("--threads", optarg, 1, 1024, &threads)) return 2;
        } else if (c == 1104) {
            if (!cli_int("--latent", optarg, 0, 1 << 20, &latent)) return 2;
        } else if (c == 1105) pipeline = 1;
        else if (c == 1106) {
            if (!cli_int("--images", optarg, 1, 100000, &images)) return 2;
        } else if (c == 'h') {
            help();
            return 0;
        } else return 2;
    }
    if (optind != argc) {
        fprintf(stderr, "dfrcl bench: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (!bo.weights && bo.random_seed < 0) bo.random_seed = 0;
    if (pipeline) return bench_pipeline(&bo, images, latent, torch, threads);

    dfr_runtime *rt = NULL;
    dfr_vgg19 *vgg = NULL;
    cl_mem feat = NULL;
    uint8_t *img = NULL;
    row rows[MAX_ROWS];
    int nrows = 0, rc = cli_backbone_open(&bo, 1, &rt, &vgg);
    int S = bo.size, q = S / 4;
    double *wall = calloc((size_t)reps, sizeof *wall);
    if (!rc) rc = dfr_buffer_new(rt, (size_t)vgg->channels * q * q * sizeof(float),
                                 CL_MEM_READ_WRITE, "the regional feature", &feat);
    dfr_cae *cae = NULL;
    cl_mem recon = NULL, sc_small = NULL, sc_full = NULL;
    if (!rc && latent < 0) latent = vgg->layers >= 12 ? 197 : 25;
    if (latent > 0 && !rc) {
        rc = dfr_cae_new_scorer(&cae, rt, vgg->channels, latent, 1, q * q);
        if (!rc) rc = dfr_buffer_new(rt, (size_t)vgg->channels * q * q * sizeof(float),
                                     CL_MEM_READ_WRITE, "reconstruction", &recon);
        if (!rc) rc = dfr_buffer_new(rt, (size_t)q * q * sizeof(float), CL_MEM_READ_WRITE, "scores", &sc_small);
        if (!rc) rc = dfr_buffer_new(rt, (size_t)S * S * sizeof(float), CL_MEM_READ_WRITE, "scores", &sc_full);
    }
    if (!rc && (!(img = malloc((size_t)S * S * 3)) || !wall))
        rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    if (!rc)
        for (size_t i = 0; i < (size_t)S * S * 3; i++) img[i] = (uint8_t)(dfr_rand_u32(7, (uint32_t)i) >> 24);

    if (!rc) {
        printf("dfrcl bench: %s (%s), size %d, %d layers (C=%d), %s backbone, %d warm-up + %d "
               "reps\n",
               rt->info.name, rt->info.platform_name, S, vgg->layers, vgg->channels,
               bo.weights ? "file" : "random", warmup, reps);
        fflush(stdout);
    }
    for (int it = 0; it < warmup + reps && !rc; it++) {
        dfr_profile_clear(rt);
        double t0 = now_ms();
        rc = dfr_vgg19_features(vgg, img, 3, S, feat, 0);
        if (!rc && cae) rc = dfr_cae_infer(cae, feat, 0, 1, recon);
        if (!rc && cae) rc = dfr_op_sqerr_mean(rt, feat, recon, 1, vgg->channels, q * q, sc_small);
        if (!rc && cae) rc = dfr_op_upsample(rt, sc_small, 1, q, q, sc_full, S, S);
        if (!rc) rc = dfr_finish(rt);
        double t1 = now_ms();
        dfr_prof_sum sums[MAX_ROWS];
        int ns = 0;
        if (!rc) rc = dfr_profile_collect(rt, sums, MAX_ROWS, &ns);
        if (rc || it < warmup) continue;
        int r = it - warmup;
        wall[r] = t1 - t0;
        for (int s = 0; s < ns; s++) {
            if (!strncmp(sums[s].label, "cae", 3)) sums[s].tag = NULL; /* one row per CAE stage */
            int j = 0;
            while (j < nrows && !(rows[j].stage == sums[s].label && rows[j].tag == sums[s].tag)) j++;
            if (j == nrows) {
                if (nrows == MAX_ROWS) continue;
                rows[j].stage = sums[s].label;
                rows[j].tag = sums[s].tag;
                rows[j].flops = stage_flops(vgg, cae, sums[s].label, sums[s].tag, S);
                rows[j].ms = calloc((size_t)reps, sizeof(double));
                if (!rows[j].ms) {
                    rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
                    break;
                }
                nrows++;
            }
            rows[j].ms[r] += sums[s].ms;
        }
    }

    if (!rc) {
        double total = 0, conv_ms = 0, conv_flops = 0;
        double stage_ms[4] = {0}; /* backbone, regional, upload + copy + fill, CAE + scoring */
        double med[MAX_ROWS];
        for (int j = 0; j < nrows; j++) {
            med[j] = median(rows[j].ms, reps);
            total += med[j];
        }
        printf("\n%-10s %-9s %10s %10s %7s\n", "stage", "layer", "median ms", "GFLOP/s", "share");
        for (int j = 0; j < nrows; j++) {
            double gf = rows[j].flops > 0 && med[j] > 0 ? rows[j].flops / (med[j] * 1e6) : 0;
            char gfs[32] = "-";
            if (gf > 0) snprintf(gfs, sizeof gfs, "%.1f", gf);
            printf("%-10s %-9s %10.2f %10s %6.1f%%\n", rows[j].stage, rows[j].tag ? rows[j].tag : "",
                   med[j], gfs, total > 0 ? 100.0 * med[j] / total : 0);
            if (!strcmp(rows[j].stage, "conv")) {
                conv_ms += med[j];
                conv_flops += rows[j].flops;
            }
            if (!strcmp(rows[j].stage, "regional")) stage_ms[1] += med[j];
            else if (!strncmp(rows[j].stage, "cae", 3) || !strcmp(rows[j].stage, "score") ||
                     !strcmp(rows[j].stage, "upsample"))
                stage_ms[3] += med[j];
            else if (!strcmp(rows[j].stage, "upload") || !strcmp(rows[j].stage, "copy") ||
                     !strcmp(rows[j].stage, "fill"))
                stage_ms[2] += med[j]; /* transfers, device copies and fills */
            else stage_ms[0] += med[j];
        }
        printf("\nall 3x3 convolutions: %.1f ms, %.1f GFLOP, %.1f GFLOP/s\n", conv_ms,
               conv_flops * 1e-9, conv_ms > 0 ? conv_flops / (conv_ms * 1e6) : 0);
        printf("backbone (preprocess+conv+pool) %.1f ms, regional %.1f ms, CAE+score %.1f ms "
               "(latent %d), upload+copy %.1f ms; sum of stages %.1f ms, wall median %.1f ms per image\n",
               stage_ms[0], stage_ms[1], stage_ms[3], latent, stage_ms[2], total, median(wall, reps));
        if (torch) {
            double tv = 0, tr = 0, tc = 0;
            if (vgg->layers != 12)
                printf("(--torch skipped: the reference always runs 12 layers; use --layers 12)\n");
            else if (run_torch(torch, S, threads, latent, &tv, &tr, &tc)) {
                double ours = stage_ms[0] + stage_ms[1] + stage_ms[3];
                printf("PyTorch reference, same machine, same command (%d threads, latent %d): vgg %.1f "
                       "ms, regional %.1f ms, cae+score %.1f ms, total %.1f ms\n",
                       threads, latent > 0 ? latent : 197, tv, tr, tc, tv + tr + tc);
                printf("dfrcl speed-up over PyTorch: backbone %.2fx, regional %.2fx", tv / stage_ms[0],
                       tr / stage_ms[1]);
                if (latent > 0) printf(", CAE+score %.2fx, total %.2fx", tc / stage_ms[3], (tv + tr + tc) / ours);
                printf("\n");
            } else printf("(--torch: the reference did not run or printed no timing)\n");
        }
        /* The kernels `dfrcl tune` tuned for this device: built-in defaults versus tuned. */
        rc = cli_tune_compare(rt, vgg->layers, S, reps);
    }
    int ret = rc ? cli_fail(NULL) : 0;
    for (int j = 0; j < nrows; j++) free(rows[j].ms);
    free(wall);
    free(img);
    dfr_cae_free(&cae);
    dfr_buffer_release(&recon);
    dfr_buffer_release(&sc_small);
    dfr_buffer_release(&sc_full);
    dfr_buffer_release(&feat);
    dfr_vgg19_free(&vgg);
    dfr_runtime_close(&rt);
    return ret;
}
