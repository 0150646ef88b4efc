/* dfrcl tune: times variants of each tunable kernel (src/ops/tunables.c) on the device at the
 * real shapes and keeps the fastest in the device's tuning database.
 *
 * Search: the device's defaults, the other classes' defaults, the database's current values,
 * then coordinate descent (one value at a time over the table's search list, keeping a change
 * that saves more than 2%) until the kernel's share of the time budget is spent. A variant is
 * forced through the kernel's environment variable, so the timed code is the real op. Each time
 * is the median of --reps runs after one warm-up run (which also builds the program), in device
 * time (profiling events). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/tune.h"
#include "model/vgg19.h"
#include "ops/gemm.h"
#include "ops/ops.h"
#include "ops/tunables.h"
#include "util/error.h"
#include "util/rand.h"

/* Kernels the tuner times, with their share of the budget. */
static const struct {
    dfr_tk k;
    double share;
} tuned[] = {{DFR_TK_CONV, 0.45}, {DFR_TK_GEMM, 0.30}, {DFR_TK_REGIONAL, 0.15}, {DFR_TK_SCORE, 0.10}};
#define NTUNED ((int)(sizeof tuned / sizeof tuned[0]))

/* The shapes and buffers of one tuning run. */
typedef struct bench {
    dfr_runtime *rt;
    int layers, size, q, channels, latent, reps;
    cl_mem in, out, w, feat, recon; /* scratch big enough for every shape */
} bench;

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int fill_random(dfr_runtime *rt, cl_mem m, size_t n, uint32_t seed)
{
    float *h = malloc(n * sizeof *h);
    if (!h) return dfr_error(DFRCL_ERR_HOST_MEMORY, "tune: out of memory");
    for (size_t i = 0; i < n; i++) h[i] = dfr_rand_uniform(seed, (uint32_t)i, -1.0f, 1.0f);
    int rc = dfr_write(rt, m, 0, n * sizeof *h, h, "tune");
    free(h);
    return rc;
}

/* The CAE's 1x1 convolutions: channels C -> h -> 2L -> L -> 2L -> h -> C (cae.c). */
static void cae_dims(const bench *b, int d[7])
{
    int h = (b->channels + 2 * b->latent) / 2;
    int dims[7] = {b->channels, h, 2 * b->latent, b->latent, 2 * b->latent, h, b->channels};
    memcpy(d, dims, sizeof dims);
}

static int bench_open(bench *b)
{
    b->q = b->size / 4;
    b->channels = dfr_vgg19_channels(b->layers);
    b->latent = b->layers >= 12 ? 197 : 25; /* as dfrcl bench */
    size_t map = 0, act = 0, wts = 0, P = (size_t)b->q * b->q;
    for (int i = 0; i < b->layers; i++) {
        size_t hw = (size_t)(b->size >> dfr_vgg19_layer_block(i));
        size_t cin = i ? (size_t)dfr_vgg19_layer_channels(i - 1) : 3;
        size_t cout = (size_t)dfr_vgg19_layer_channels(i);
        if (cin * hw * hw > map) map = cin * hw * hw;
        if (cout * hw * hw > map) map = cout * hw * hw;
    }
    int d[7];
    cae_dims(b, d);
    for (int i = 0; i < 6; i++) {
        if ((size_t)d[i] * d[i + 1] > wts) wts = (size_t)d[i] * d[i + 1];
        if ((size_t)d[i] * P > act) act = (size_t)d[i] * P;
    }
    if (act > map) map = act;
    dfr_runtime *rt = b->rt;
    size_t fs = (size_t)b->channels * P;
    int rc = dfr_buffer_new(rt, map * 4, CL_MEM_READ_WRITE, "tuning input", &b->in);
    if (!rc) rc = dfr_buffer_new(rt, map * 4, CL_MEM_READ_WRITE, "tuning output", &b->out);
    if (!rc) rc = dfr_buffer_new(rt, wts * 4, CL_MEM_READ_WRITE, "tuning weights", &b->w);
    if (!rc) rc = dfr_buffer_new(rt, fs * 4, CL_MEM_READ_WRITE, "tuning feature", &b->feat);
    if (!rc) rc = dfr_buffer_new(rt, fs * 4, CL_MEM_READ_WRITE, "tuning feature", &b->recon);
    if (!rc) rc = fill_random(rt, b->in, map, 1);
    if (!rc) rc = fill_random(rt, b->w, wts, 2);
    if (!rc) rc = fill_random(rt, b->feat, fs, 3);
    if (!rc) rc = fill_random(rt, b->recon, fs, 4);
    return rc;
}

static void bench_close(bench *b)
{
    dfr_buffer_release(&b->in);
    dfr_buffer_release(&b->out);
    dfr_buffer_release(&b->w);
    dfr_buffer_release(&b->feat);
    dfr_buffer_release(&b->recon);
}

/* Conv layer i's shape (cin, cout, resolution) occurs in earlier layer first_of(i) too: it runs
 * once per pass and counts as often as it occurs. */
static int same_shape(int i, int j)
{
    return dfr_vgg19_layer_block(i) == dfr_vgg19_layer_block(j) &&
           dfr_vgg19_layer_channels(i) == dfr_vgg19_layer_channels(j) &&
           (i ? dfr_vgg19_layer_channels(i - 1) : 3) == (j ? dfr_vgg19_layer_channels(j - 1) : 3);
}

static int first_of(int i)
{
    int j = 0;
    while (!same_shape(i, j)) j++;
    return j;
}

static int occurrences(int i, int layers)
{
    int n = 0;
    for (int j = 0; j < layers; j++) n += same_shape(i, j);
    return n;
}

/* Enqueues one pass of kernel k over the shapes (conv launches tagged with their layer). */
static int run_once(bench *b, dfr_tk k, dfr_conv_weights *cw)
{
    dfr_runtime *rt = b->rt;
    int rc = DFRCL_OK, P = b->q * b->q;
    if (k == DFR_TK_CONV) {
        for (int i = 0; i < b->layers && !rc; i++) {
            if (first_of(i) != i) continue;
            int hw = b->size >> dfr_vgg19_layer_block(i);
            rt->prof_tag = dfr_vgg19_layer_name(i);
            rc = dfr_op_conv3x3_relu(rt, &cw[i], b->in, b->out, hw, hw);
            rt->prof_tag = NULL;
        }
    } else if (k == DFR_TK_GEMM) {
        int d[7];
        cae_dims(b, d);
        for (int i = 0; i < 6 && !rc; i++) {
            dfr_gemm_desc g = {.m = d[i + 1], .n = P, .k = d[i], .alpha = 1, .a = b->w,
                               .lda = (size_t)d[i], .b = b->in, .ldb = (size_t)P, .c = b->out,
                               .ldc = (size_t)P, .batch = 1};
            rc = dfr_gemm(rt, &g, "gemm");
        }
    } else if (k == DFR_TK_REGIONAL) {
        int off = 0;
        for (int i = 0; i < b->layers && !rc; i++) {
            int hw = b->size >> dfr_vgg19_layer_block(i), c = dfr_vgg19_layer_channels(i);
            rc = dfr_op_regional(rt, b->in, c, hw, hw, b->size, b->feat, off, b->channels);
            off += c;
        }
    } else if (k == DFR_TK_SCORE) {
        rc = dfr_op_sqerr_mean(rt, b->feat, b->recon, 1, b->channels, P, b->out);
    }
    return rc;
}

/* Device time of one pass, repeated conv shapes counted as often as they occur. */
static int pass_ms(bench *b, dfr_tk k, dfr_conv_weights *cw, double *ms)
{
    dfr_profile_clear(b->rt);
    int rc = run_once(b, k, cw);
    if (!rc) rc = dfr_finish(b->rt);
    dfr_prof_sum sums[64];
    int n = 0;
    if (!rc) rc = dfr_profile_collect(b->rt, sums, 64, &n);
    *ms = 0;
    for (int i = 0; i < n; i++) {
        int times = 1;
        for (int l = 0; l < b->layers && k == DFR_TK_CONV; l++)
            if (sums[i].tag == dfr_vgg19_layer_name(l)) times = occurrences(l, b->layers);
        *ms += sums[i].ms * times;
    }
    return rc;
}

/* Times kernel k with values v forced: median of reps after a warm-up. rc != 0 when the
 * variant cannot run here (left out of the search). */
static int measure(bench *b, dfr_tk k, const int *v, double *ms)
{
    const dfr_tune_kernel *tk = &dfr_tune_kernels[k];
    char s[256];
    dfr_tune_format(tk, v, s, sizeof s);
    setenv(tk->env, s, 1);
    int rc = dfr_runtime_reload_env(b->rt); /* a runtime reads the environment at open */
    if (rc) return rc;
    dfr_conv_weights cw[16];
    memset(cw, 0, sizeof cw);
    if (k == DFR_TK_CONV) {
        /* Weights are laid out for the channel tile: upload them for this variant. */
        size_t most = 512 * 512 * 9;
        float *w = calloc(most, sizeof *w), *bias = calloc(512, sizeof *bias);
        if (!w || !bias) rc = dfr_error(DFRCL_ERR_HOST_MEMORY, "tune: out of memory");
        for (size_t i = 0; !rc && i < most; i++) w[i] = dfr_rand_uniform(5, (uint32_t)i, -0.02f, 0.02f);
        for (int i = 0; i < b->layers && !rc; i++) {
            int cin = i ? dfr_vgg19_layer_channels(i - 1) : 3, cout = dfr_vgg19_layer_channels(i);
            rc = dfr_conv_upload(b->rt, w, bias, cin, cout, &cw[i]);
        }
        free(w);
        free(bias);
    }
    double t[64];
    int reps = b->reps < 64 ? b->reps : 64;
    if (!rc) rc = pass_ms(b, k, cw, &t[0]); /* warm-up: builds the program */
    for (int r = 0; r < reps && !rc; r++) rc = pass_ms(b, k, cw, &t[r]);
    if (!rc) *ms = median(t, reps);
    for (int i = 0; i < 16; i++) dfr_conv_release(&cw[i]);
    if (k == DFR_TK_GEMM) dfr_gemm_release(b->rt);
    return rc;
}

/* ---- the search ---- */

#define MAX_TRIED 256

typedef struct search {
    bench *b;
    dfr_tk k;
    const char *only; /* the GEMM variant this device runs ("reg" or "lds") */
    double deadline;
    int quiet;
    char tried[MAX_TRIED][128];
    int ntried;
    int best[DFR_TUNE_MAX_PARAMS];
    double best_ms, default_ms;
} search;

static void progress(const search *s, const char *what)
{
    if (s->quiet) return;
    const dfr_tune_kernel *tk = &dfr_tune_kernels[s->k];
    char v[160];
    dfr_tune_format(tk, s->best, v, sizeof v);
    double left = s->deadline - cli_now();
    fprintf(stderr, "%s[%s] %d variants, best %.2f ms (default %.2f ms) %s; %s, %.0f s left%s",
            isatty(2) ? "\r\033[K" : "", tk->name, s->ntried, s->best_ms, s->default_ms, v, what,
            left > 0 ? left : 0, isatty(2) ? "" : "\n");
    fflush(stderr);
}

/* Tries v (once): legal on this device, not yet tried, within the time. Returns 1 when it is the
 * new best. */
static int try_variant(search *s, const int *v)
{
    const dfr_tune_kernel *tk = &dfr_tune_kernels[s->k];
    char why[160], key[128];
    if (!dfr_tune_legal(tk, v, s->b->rt->info.max_work_group_size, why, sizeof why)) return 0;
    dfr_tune_format(tk, v, key, sizeof key);
    for (int i = 0; i < s->ntried; i++)
        if (!strcmp(s->tried[i], key)) return 0;
    if (s->ntried == MAX_TRIED || cli_now() > s->deadline) return 0;
    snprintf(s->tried[s->ntried++], sizeof s->tried[0], "%s", key);
    double ms = 0;
    int rc = measure(s->b, s->k, v, &ms);
    if (rc) {
        if (!s->quiet) fprintf(stderr, "%s[%s] %s cannot run here: %s\n", isatty(2) ? "\r\033[K" : "",
                               tk->name, key, dfrcl_last_error());
        return 0;
    }
    if (s->default_ms <= 0) s->default_ms = ms; /* the first variant tried is the default */
    int better = s->best_ms <= 0 || ms < s->best_ms * 0.98;
    if (better) {
        memcpy(s->best, v, sizeof s->best);
        s->best_ms = ms;
    }
    progress(s, key);
    return better;
}

static void run_search(search *s, const dfr_tune_entry *current)
{
    const dfr_tune_kernel *tk = &dfr_tune_kernels[s->k];
    int v[DFR_TUNE_MAX_PARAMS];
    dfr_tune_device_defaults(s->b->rt, tk, v);
    try_variant(s, v);
    if (s->best_ms <= 0) return; /* the defaults do not run: nothing to compare with */
    for (int c = 0; c < DFR_NCLASS; c++) {
        dfr_tune_class_defaults(tk, (dfr_dev_class)c, v);
        try_variant(s, v);
    }
    if (current->have) try_variant(s, current->v);
    for (int pass = 0; pass < 2 && cli_now() < s->deadline; pass++) {
        int changed = 0;
        for (int p = 0; p < tk->nparams; p++) {
            const dfr_tune_param *pp = &tk->p[p];
            if (pp->only && strcmp(pp->only, s->only)) continue;
            for (int i = 0; i < pp->nsearch; i++) {
                memcpy(v, s->best, sizeof v);
                v[p] = pp->search[i];
                changed += try_variant(s, v);
            }
        }
        if (!changed) break;
    }
    /* Confirm against the defaults once more (a busy machine makes single timings noisy): a
     * winner that is not still 2% faster gives way to the defaults. */
    dfr_tune_device_defaults(s->b->rt, tk, v);
    double d2 = 0, b2 = 0;
    if (memcmp(v, s->best, sizeof v) && !measure(s->b, s->k, v, &d2) &&
        !measure(s->b, s->k, s->best, &b2) && !(b2 < d2 * 0.98)) {
        memcpy(s->best, v, sizeof v);
        s->best_ms = s->default_ms = d2;
        progress(s, "the winner did not hold up: defaults kept");
    }
}

/* ---- printing the table ---- */

static void print_table(void)
{
    for (int k = 0; k < DFR_NTK; k++) {
        const dfr_tune_kernel *tk = &dfr_tune_kernels[k];
        printf("%s (%s, %s):\n  %-5s %-10s %-16s %5s %5s %5s  %s\n", tk->name, tk->file, tk->env,
               "value", "define", "legal", "cpu", "gpu", "igpu", "searched");
        for (int i = 0; i < tk->nparams; i++) {
            const dfr_tune_param *p = &tk->p[i];
            char legal[32], srch[64];
            snprintf(legal, sizeof legal, "%s%d..%d", p->pow2 ? "2^n " : "", p->lo, p->hi);
            size_t used = 0;
            srch[0] = 0;
            for (int j = 0; j < p->nsearch; j++)
                used += (size_t)snprintf(srch + used, sizeof srch - used, "%s%d", j ? "," : "",
                                         p->search[j]);
            printf("  %-5s %-10s %-16s %5d %5d %5d  %s%s%s%s\n", p->key,
                   p->define ? p->define : "-", legal, p->def[0], p->def[1], p->def[2], srch,
                   p->only ? "  (" : "", p->only ? p->only : "", p->only ? " only)" : "");
        }
    }
}

/* The default variants of a class (or all) as "class kernel.cl -D...", one per line, for
 * tools/gpu_report.sh; the regional kernel once per distinct (REG_KY, REG_L) of the pipeline's
 * maps at 256 px. */
static int print_variants(const char *cls)
{
    int c0 = 0, c1 = DFR_NCLASS - 1;
    if (strcmp(cls, "all")) {
        int c = dfr_class_from_name(cls);
        if (c < 0) {
            fprintf(stderr, "dfrcl tune: --print-variants expects cpu, gpu, igpu or all, not '%s'\n",
                    cls);
            return 2;
        }
        c0 = c1 = c;
    }
    for (int c = c0; c <= c1; c++)
        for (int k = 0; k < DFR_NTK; k++) {
            const dfr_tune_kernel *tk = &dfr_tune_kernels[k];
            int v[DFR_TUNE_MAX_PARAMS];
            dfr_tune_class_defaults(tk, (dfr_dev_class)c, v);
            char d[256];
            dfr_tune_defines(tk, v, d, sizeof d);
            if (k == DFR_TK_GEMM) {
                printf("%s %s %s -DGEMM_FMA=1\n", dfr_class_name((dfr_dev_class)c), tk->file, d);
            } else if (k == DFR_TK_REGIONAL) {
                int seen[8][2], ns = 0;
                for (int hw = 256; hw >= 32; hw /= 2) {
                    int ky = 0, l = 0;
                    if (dfr_regional_taps(hw, hw, 256, v[REG_VW_], &ky, &l)) return cli_fail(NULL);
                    int dup = 0;
                    for (int i = 0; i < ns; i++) dup |= seen[i][0] == ky && seen[i][1] == l;
                    if (dup) continue;
                    seen[ns][0] = ky, seen[ns][1] = l, ns++;
                    printf("%s %s %s -DREG_KY=%d -DREG_L=%d\n", dfr_class_name((dfr_dev_class)c),
                           tk->file, d, ky, l);
                }
            } else {
                printf("%s %s %s\n", dfr_class_name((dfr_dev_class)c), tk->file, d);
            }
        }
    return 0;
}

/* ---- the command ---- */

static void help(void)
{
    printf("usage: dfrcl tune [options]\n\n"
           "Times variants of the tunable kernels (3x3 convolution tiles, GEMM tiles and\n"
           "work-groups, regional and score kernels) on one device at the real shapes, and keeps\n"
           "the fastest in the device's tuning database in the cache folder (keyed by device,\n"
           "driver and platform version). Every later run on that device uses it; the built-in\n"
           "defaults per device class (CPU, GPU, integrated GPU) serve devices without one.\n"
           "DFRCL_TUNED=0 ignores the database; the kernels' variables (DFRCL_CONV_TUNE, ...)\n"
           "override both.\n\n"
           "options:\n"
           "  -d, --device D            OpenCL device index or name substring\n"
           "  -l, --layers N            VGG19 layers of the shapes: 8 or 12 (default 12)\n"
           "  -s, --size S              image side (default 256)\n"
           "      --budget-s N          time budget in seconds (default 240)\n"
           "      --reps N              timed runs per variant, after one warm-up (default 3)\n"
           "      --kernels LIST        comma-separated subset of conv,gemm,regional,score\n"
           "      --show                print the device's database and exit\n"
           "      --print-table         print every kernel's tunables, legal values, defaults\n"
           "      --print-variants CLASS  the -D options of the default variants of cpu, gpu,\n"
           "                            igpu or all (for tools/gpu_report.sh); needs no device\n"
           "  -q, --quiet               no progress line\n"
           "  -h, --help\n");
}

static int show_db(dfr_runtime *rt)
{
    char path[4200];
    if (!dfr_tune_db_path(rt, path, sizeof path)) {
        printf("no cache folder: no tuning database\n");
        return 0;
    }
    dfr_tune_db db;
    dfr_tune_db_read(rt, &db, NULL);
    printf("%s (%s, %s): %s\n", rt->info.name, dfr_class_name(dfr_class_of(rt)),
           rt->info.driver_version, path);
    int any = 0;
    for (int k = 0; k < DFR_NTK; k++) {
        if (!db.e[k].have) continue;
        char v[256];
        dfr_tune_format(&dfr_tune_kernels[k], db.e[k].v, v, sizeof v);
        printf("  %-9s %s  (%.2f ms -> %.2f ms, %s)\n", dfr_tune_kernels[k].name, v,
               db.e[k].default_ms, db.e[k].tuned_ms, db.e[k].shape);
        any = 1;
    }
    if (!any) printf("  (no tuned kernels: the built-in defaults)\n");
    return 0;
}

static int parse_kernels(const char *list, int *want)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    memset(want, 0, sizeof(int) * DFR_NTK);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int found = 0;
        for (int i = 0; i < NTUNED; i++)
            if (!strcmp(t, dfr_tune_kernels[tuned[i].k].name)) want[tuned[i].k] = found = 1;
        if (!found) {
            fprintf(stderr, "dfrcl tune: --kernels: '%s' is not one of conv, gemm, regional, score\n", t);
            return 0;
        }
    }
    return 1;
}

int cmd_tune(int argc, char **argv)
{
    static const struct option opts[] = {
        {"device", required_argument, 0, 'd'},  {"layers", required_argument, 0, 'l'},
        {"size", required_argument, 0, 's'},    {"budget-s", required_argument, 0, 1201},
        {"reps", required_argument, 0, 1202},   {"kernels", required_argument, 0, 1203},
        {"show", no_argument, 0, 1204},         {"print-table", no_argument, 0, 1205},
        {"print-variants", required_argument, 0, 1206},
        {"quiet", no_argument, 0, 'q'},         {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *device = NULL;
    int layers = 12, size = 256, budget = 240, reps = 3, quiet = 0, show = 0;
    int want[DFR_NTK] = {1, 1, 1, 1, 0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:l:s:qh", opts, NULL)) != -1) {
        if (c == 'd') device = optarg;
        else if (c == 'l') {
            if (!cli_int("--layers", optarg, 1, 12, &layers)) return 2;
        } else if (c == 's') {
            if (!cli_int("--size", optarg, 32, 1024, &size)) return 2;
            if (size % 32) {
                fprintf(stderr, "dfrcl tune: --size must be a multiple of 32, not %d\n", size);
                return 2;
            }
        } else if (c == 1201) {
            if (!cli_int("--budget-s", optarg, 1, 86400, &budget)) return 2;
        } else if (c == 1202) {
            if (!cli_int("--reps", optarg, 1, 63, &reps)) return 2;
        } else if (c == 1203) {
            if (!parse_kernels(optarg, want)) return 2;
        } else if (c == 1204) show = 1;
        else if (c == 1205) {
            print_table();
            return 0;
        } else if (c == 1206) return print_variants(optarg);
        else if (c == 'q') quiet = 1;
        else if (c == 'h') {
            help();
            return 0;
        } else return 2;
    }
    if (optind != argc) {
        fprintf(stderr, "dfrcl tune: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    dfr_verbosity = quiet ? 0 : 1;
    dfr_runtime *rt = NULL;
    if (dfr_runtime_open(&rt, device, NULL, 1)) return cli_fail("opening the device");
    if (show) {
        int r = show_db(rt);
        dfr_runtime_close(&rt);
        return r;
    }
    char path[4200];
    if (!dfr_tune_db_path(rt, path, sizeof path)) {
        dfr_runtime_close(&rt);
        fprintf(stderr, "dfrcl tune: the kernel cache is disabled (DFRCL_CACHE_DIR is empty); the "
                        "tuning database lives there: set DFRCL_CACHE_DIR to a folder\n");
        return 2;
    }
    for (int i = 0; i < NTUNED; i++)
        if (want[tuned[i].k] && getenv(dfr_tune_kernels[tuned[i].k].env))
            fprintf(stderr, "dfrcl tune: note: %s is set; it is ignored while tuning and still "
                            "overrides the database afterwards\n", dfr_tune_kernels[tuned[i].k].env);
    dfr_tune_use_db(rt, 0); /* the defaults are the class's */
    dfr_gemm_set_backend(rt, DFR_GEMM_OWN);
    const char *only = dfr_gemm_backend_in_use(rt) == DFR_GEMM_OWN_REG ? "reg" : "lds";
    bench b = {.rt = rt, .layers = layers, .size = size, .reps = reps};
    dfr_tune_db db;
    int warned = 0;
    dfr_tune_db_read(rt, &db, &warned);
    int rc = bench_open(&b);
    if (!rc && !quiet)
        fprintf(stderr, "dfrcl tune: %s (%s, class %s), %d layers, %d px, budget %d s, database %s\n",
                rt->info.name, rt->info.platform_name, dfr_class_name(dfr_class_of(rt)), layers,
                size, budget, path);
    double start = cli_now(), share_left = 0;
    for (int i = 0; i < NTUNED; i++) share_left += want[tuned[i].k] ? tuned[i].share : 0;
    static search s; /* large: the tried list */
    int results = 0;
    printf("%-9s %12s %12s %8s  %s\n", "kernel", "default ms", "tuned ms", "speed-up", "values");
    for (int i = 0; i < NTUNED && !rc; i++) {
        dfr_tk k = tuned[i].k;
        if (!want[k]) continue;
        double now = cli_now(), left = start + budget - now;
        memset(&s, 0, sizeof s);
        s.b = &b, s.k = k, s.only = only, s.quiet = quiet;
        s.deadline = now + (left > 0 ? left : 0) * tuned[i].share / share_left;
        share_left -= tuned[i].share;
        run_search(&s, &db.e[k]);
        unsetenv(dfr_tune_kernels[k].env);
        rc = dfr_runtime_reload_env(rt);
        if (!quiet && isatty(2)) fprintf(stderr, "\r\033[K");
        char v[256];
        dfr_tune_format(&dfr_tune_kernels[k], s.best, v, sizeof v);
        if (s.best_ms <= 0) {
            printf("%-9s %12s %12s %8s  (the defaults did not run: %s)\n", dfr_tune_kernels[k].name,
                   "-", "-", "-", dfrcl_last_error());
            continue;
        }
        printf("%-9s %12.2f %12.2f %7.2fx  %s  (%d variants)\n", dfr_tune_kernels[k].name,
               s.default_ms, s.best_ms, s.default_ms / s.best_ms, v, s.ntried);
        fflush(stdout);
        dfr_tune_entry *e = &db.e[k];
        e->have = 1;
        memcpy(e->v, s.best, sizeof e->v);
        e->default_ms = s.default_ms;
        e->tuned_ms = s.best_ms;
        snprintf(e->shape, sizeof e->shape, "%d layers, %d px", layers, size);
        results++;
    }
    bench_close(&b);
    dfr_gemm_set_backend(rt, DFR_GEMM_AUTO);
    if (!rc && results) rc = dfr_tune_db_write(rt, &db);
    if (!rc && !quiet) fprintf(stderr, "dfrcl tune: wrote %s in %.0f s\n", path, cli_now() - start);
    dfr_runtime_close(&rt);
    return rc ? cli_fail("tune") : 0;
}

/* ---- default versus tuned, for dfrcl bench ---- */

int cli_tune_compare(dfr_runtime *rt, int layers, int size, int reps)
{
    dfr_tune_db db;
    dfr_tune_db_read(rt, &db, NULL);
    int any = 0;
    for (int i = 0; i < NTUNED; i++) any |= db.e[tuned[i].k].have;
    if (!any) {
        printf("\ntuning: no database for this device (built-in %s defaults); 'dfrcl tune' makes "
               "one\n", dfr_class_name(dfr_class_of(rt)));
        return DFRCL_OK;
    }
    bench b = {.rt = rt, .layers = layers, .size = size, .reps = reps};
    int rc = bench_open(&b);
    printf("\ndefault versus tuned (%d layers, %d px, median of %d):\n%-9s %12s %12s %8s  %s\n",
           layers, size, reps, "kernel", "default ms", "tuned ms", "speed-up", "tuned values");
    dfr_gemm_backend was = dfr_gemm_backend_in_use(rt);
    dfr_gemm_set_backend(rt, DFR_GEMM_OWN);
    for (int i = 0; i < NTUNED && !rc; i++) {
        dfr_tk k = tuned[i].k;
        const dfr_tune_kernel *tk = &dfr_tune_kernels[k];
        if (!db.e[k].have) continue;
        const char *env = getenv(tk->env);
        char *saved = env ? strdup(env) : NULL;
        int d[DFR_TUNE_MAX_PARAMS];
        dfr_tune_device_defaults(rt, tk, d);
        double dm = 0, tm = 0;
        rc = measure(&b, k, d, &dm);
        if (!rc) rc = measure(&b, k, db.e[k].v, &tm);
        if (saved) setenv(tk->env, saved, 1);
        else unsetenv(tk->env);
        free(saved);
        if (!rc) rc = dfr_runtime_reload_env(rt);
        char v[256];
        dfr_tune_format(tk, db.e[k].v, v, sizeof v);
        if (!rc) printf("%-9s %12.2f %12.2f %7.2fx  %s\n", tk->name, dm, tm, tm > 0 ? dm / tm : 0, v);
    }
    dfr_gemm_set_backend(rt, was == DFR_GEMM_CLBLAST ? DFR_GEMM_AUTO : was);
    bench_close(&b);
    return rc;
}
