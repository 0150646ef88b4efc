#include <cjson/cJSON.h>
#include <getopt.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backbone_opts.h"
#include "cli.h"
#include "outputs.h"
#include "progress.h"

static void help(void)
{
    printf("usage: dfrcl infer --model MODEL [options] IMAGE...\n\n"
           "Scores images with a trained model: prints each image's score (the maximum of its\n"
           "pixel score map) and verdict (anomalous when the score exceeds the model's\n"
           "threshold). Images are resized to the model's size.\n\noptions:\n"
           "  -m, --model FILE          model from 'dfrcl train' (required)\n"
           "      --out DIR             also write, per image, under DIR/<image's folder name>/:\n"
           "                            <stem>.npy (raw S x S float32 score map),\n"
           "                            <stem>_overlay.png (heatmap over the image, defect\n"
           "                            outlines in cyan), <stem>_mask.png (pixels above the\n"
           "                            threshold). A folder name '.', '..' or '/' becomes '_'\n"
           "                            (outputs never leave DIR); an image whose folder name\n"
           "                            and stem repeat an earlier one's gets <stem>-2 (-3,\n"
           "                            ...), with a note on stderr\n"
           "      --json                print JSON instead of a table (names that are not\n"
           "                            valid UTF-8 get U+FFFD, and their bytes in hex beside)\n"
           "  -w, --weights FILE / --random-backbone SEED\n"
           "                            the backbone the model was trained with\n"
           "  -d, --device D, -v, -q    as for the other commands\n"
           CLI_SCHED_HELP CLI_PRECISION_HELP
           "  -h, --help\n\n"
           "An image that cannot be read is skipped with an error naming it; the others are\n"
           "scored, the skipped ones are listed at the end, and the exit code is 1.\n"
           "Ctrl-C or SIGTERM stops before the next image, removes the files this run wrote\n"
           "under --out, and exits 130 (SIGINT) or 143 (SIGTERM).\n");
}

/* A path component that stays inside the output folder. */
static const char *safe_component(const char *c)
{
    return !*c || !strcmp(c, ".") || !strcmp(c, "..") || strchr(c, '/') ? "_" : c;
}

/* A set of output names (open addressing), each with the next suffix to try when it repeats. */
typedef struct name_set {
    char **keys;
    int *next;
    size_t cap;
} name_set;

static size_t name_slot(const name_set *t, const char *k)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)k; *p; p++) h = (h ^ *p) * 1099511628211ull;
    size_t i = (size_t)h & (t->cap - 1);
    while (t->keys[i] && strcmp(t->keys[i], k) != 0) i = (i + 1) & (t->cap - 1);
    return i;
}

/* Each image's output name under --out: "<parent folder>/<stem>" (the parent keeps
 * test/<defect>/000.png apart), made unique with -2, -3, ... where two images would share one. */
static int plan_names(char *const *imgs, int n, char ***out)
{
    name_set t = {0};
    for (t.cap = 16; t.cap < 4 * (size_t)n; t.cap *= 2) {}
    t.keys = calloc(t.cap, sizeof *t.keys);
    t.next = calloc(t.cap, sizeof *t.next);
    char **names = calloc((size_t)n, sizeof *names);
    *out = names;
    int rc = t.keys && t.next && names ? DFRCL_OK : cli_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    for (int i = 0; i < n && !rc; i++) { /* n names and at most n renames: under half full */
        char a[4096], b[4096], key[8300];
        snprintf(a, sizeof a, "%s", imgs[i]);
        snprintf(b, sizeof b, "%s", imgs[i]);
        const char *parent = safe_component(basename(dirname(a)));
        char *stem = basename(b), *dot = strrchr(stem, '.');
        if (dot && dot != stem) *dot = 0;
        stem = (char *)safe_component(stem);
        snprintf(key, sizeof key, "%s/%s", parent, stem);
        size_t slot = name_slot(&t, key), first = slot;
        while (t.keys[slot]) { /* taken: the next free <stem>-<k> */
            snprintf(key, sizeof key, "%s/%s-%d", parent, stem, t.next[first]++);
            slot = name_slot(&t, key);
        }
        if (slot != first)
            cli_log(1, "note: %s would share its outputs under --out with an earlier image: they "
                       "are named %s", imgs[i], key);
        t.keys[slot] = names[i] = strdup(key);
        t.next[slot] = 2;
        if (!names[i]) rc = cli_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    }
    free(t.keys); /* the strings belong to names */
    free(t.next);
    return rc;
}

/* DIR/<name><suffix>, recording what it creates. */
static int out_path(char *buf, size_t n, const char *dir, const char *name, const char *suffix,
                    cli_written *w)
{
    if ((size_t)snprintf(buf, n, "%s/%s", dir, name) >= n)
        return cli_error(DFRCL_ERR_INVALID_ARG, "output path too long for %s", name);
    char *slash = strrchr(buf, '/');
    *slash = 0;
    struct stat st;
    int rc = DFRCL_OK;
    if (stat(buf, &st) != 0) {
        rc = cli_mkdir_p(buf);
        if (!rc) rc = cli_written_add(w, buf, 1);
    }
    *slash = '/';
    if (!rc && (size_t)snprintf(buf, n, "%s/%s%s", dir, name, suffix) >= n)
        return cli_error(DFRCL_ERR_INVALID_ARG, "output path too long for %s", name);
    if (!rc) rc = cli_written_add(w, buf, 0);
    return rc;
}

static int write_outputs(const char *dir, const char *name, const dfrcl_image *img,
                         const float *map, int S, double threshold, cJSON *item, cli_written *w)
{
    char p[8400];
    int rc = out_path(p, sizeof p, dir, name, ".npy", w);
    if (!rc) rc = dfrcl_save_npy(map, S, S, p);
    if (!rc && item) cli_json_add_name(item, "score_map", p);
    dfrcl_image overlay = {0}, mask = {0};
    if (!rc) rc = dfrcl_overlay(img, map, (float)threshold, &overlay, &mask);
    if (!rc) rc = out_path(p, sizeof p, dir, name, "_overlay.png", w);
    if (!rc) rc = dfrcl_image_save_png(&overlay, p);
    if (!rc && item) cli_json_add_name(item, "overlay", p);
    if (!rc) rc = out_path(p, sizeof p, dir, name, "_mask.png", w);
    if (!rc) rc = dfrcl_image_save_png(&mask, p);
    if (!rc && item) cli_json_add_name(item, "mask", p);
    dfrcl_image_free(&overlay);
    dfrcl_image_free(&mask);
    return rc;
}

/* A float as its 9 significant digits say (as the model file stores it): JSON shows 0.5456177,
 * not the double nearest the float, 0.545617699623108. */
static double json_float(float f)
{
    char b[32];
    snprintf(b, sizeof b, "%.9g", f);
    return strtod(b, NULL);
}

/* The run's state for the per-image callback. */
typedef struct infer_ctx {
    char **argv_img, **names;
    const char *out_dir;
    const dfrcl_model_info *info;
    int json, anomalous, failed, done, *skipped_idx;
    cJSON *arr, *skipped;
    cli_written *written;
} infer_ctx;

/* One image, in input order: a row or JSON item, and the outputs. An unreadable image is
 * reported and skipped; any other failure stops the run. */
static int infer_one(void *user, const dfrcl_result *r)
{
    infer_ctx *c = user;
    const dfrcl_model_info *info = c->info;
    const char *path = c->argv_img[r->index];
    cJSON *item = cJSON_CreateObject();
    cli_json_add_name(item, "path", path);
    int rc = DFRCL_OK;
    if (r->status == DFRCL_ERR_FORMAT || r->status == DFRCL_ERR_IO) {
        fprintf(stderr, "dfrcl: error: %s (skipped)\n", r->message);
        cli_json_add_name(item, "error", r->message);
        char *u = dfrcl_utf8(path, NULL);
        if (u) cJSON_AddItemToArray(c->skipped, cJSON_CreateString(u));
        dfrcl_free(u);
        c->skipped_idx[c->failed++] = r->index;
    } else if (r->status) {
        rc = cli_error(r->status, "%s", r->message);
    } else {
        float score = r->score;
        int bad = r->anomalous;
        if (c->out_dir)
            rc = write_outputs(c->out_dir, c->names[r->index], r->image, r->map, info->size,
                               r->threshold, item, c->written);
        if (!rc) {
            c->anomalous += bad;
            cJSON_AddNumberToObject(item, "score", score);
            cJSON_AddBoolToObject(item, "anomalous", bad);
            cJSON_AddNumberToObject(item, "anomalous_pixel_fraction", r->anomalous_fraction);
            if (!c->json) printf("%-50s %12.6g  %s\n", path, score, bad ? "ANOMALOUS" : "normal");
            fflush(stdout);
            c->done++;
        }
    }
    cJSON_AddItemToArray(c->arr, item);
    return rc;
}

int cmd_infer(int argc, char **argv)
{
    static const struct option opts[] = {CLI_BACKBONE_LONGOPTS, CLI_SCHED_LONGOPTS,
                                          CLI_PRECISION_LONGOPT,
                                         {"model", required_argument, 0, 'm'},
                                         {"out", required_argument, 0, 1301},
                                         {"json", no_argument, 0, 1302},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    cli_backbone_opts bo;
    cli_backbone_defaults(&bo);
    const char *model_path = NULL, *out_dir = NULL;
    int json = 0, c;
    while ((c = getopt_long(argc, argv, "d:w:l:s:vqm:h", opts, NULL)) != -1) {
        int r = cli_backbone_option(&bo, c, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (c == 'm') model_path = optarg;
        else if (c == 1301) out_dir = optarg;
        else if (c == 1302) json = 1;
        else if (c == 'h') {
            help();
            return 0;
        } else return 2;
    }
    if (!model_path || optind >= argc) {
        fprintf(stderr, "dfrcl infer: need --model MODEL and at least one IMAGE (see --help)\n");
        return 2;
    }
    dfrcl_model_info info;
    if (dfrcl_model_peek(&info, model_path) != DFRCL_OK) return cli_fail(NULL);
    if (bo.layers && bo.layers != info.layers) {
        fprintf(stderr, "dfrcl: error: --layers %d, but the model was trained with %d\n", bo.layers,
                info.layers);
        return 2;
    }
    bo.layers = info.layers;
    bo.size = info.size;
    int n = argc - optind, anomalous = 0, failed = 0, created = 0, done = 0;
    char **names = NULL;
    cli_written written = {0};
    if (out_dir && (plan_names(argv + optind, n, &names) || cli_prepare_dir(out_dir, &created))) {
        for (int i = 0; names && i < n; i++) free(names[i]);
        free(names);
        return cli_fail("--out");
    }
    cli_stop_on_signals(); /* the score progress callback stops the run */

    dfrcl_context *ctx = NULL;
    dfrcl_backbone *bb = NULL;
    dfrcl_model *m = NULL;
    int *skipped_idx = malloc((size_t)n * sizeof *skipped_idx);
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "images");
    int rc = skipped_idx ? cli_open(&bo, &ctx, &bb) : cli_error(DFRCL_ERR_HOST_MEMORY, "out of memory");
    if (!rc) rc = dfrcl_model_load(&m, bb, model_path);
    cli_progress prog;
    cli_progress_start(&prog, "infer", n, "img", bo.verbosity == 0 || !out_dir);
    prog.images_per_unit = 1;
    if (!rc && !json) printf("%-50s %12s  %s\n", "image", "score", "verdict");
    cJSON *skipped = cJSON_AddArrayToObject(root, "skipped");
    /* Decoded on a pool of threads, scored in batches on every device of --device. */
    dfrcl_score_options so;
    cli_score_options(&bo, &so, &prog);
    infer_ctx ctx_ = {argv + optind, names, out_dir, &info, json, 0, 0, 0, skipped_idx, arr,
                      skipped, &written};
    if (!rc)
        rc = dfrcl_model_score_files(m, (const char *const *)argv + optind, n, &so, infer_one,
                                     &ctx_);
    anomalous = ctx_.anomalous;
    failed = ctx_.failed;
    done = ctx_.done;
    cli_progress_end(&prog);
    if (!rc) {
        if (json) {
            cli_json_add_name(root, "model", model_path);
            cJSON_AddNumberToObject(root, "threshold", json_float(info.threshold));
            cJSON_AddNumberToObject(root, "size", info.size);
            cJSON_AddNumberToObject(root, "anomalous", anomalous);
            cJSON_AddNumberToObject(root, "failed", failed);
            char *s = cJSON_Print(root);
            if (s) puts(s);
            free(s);
        } else {
            printf("%d image(s): %d anomalous, %d normal (threshold %.6g)\n", n - failed, anomalous,
                   n - failed - anomalous, info.threshold);
            if (out_dir) printf("score maps, overlays and masks in %s/\n", out_dir);
        }
        if (failed) { /* by name, on stderr: stdout may be JSON */
            fprintf(stderr, "dfrcl: skipped %d unreadable image(s):", failed);
            for (int k = 0; k < failed; k++) fprintf(stderr, " %s", argv[optind + skipped_idx[k]]);
            fputc('\n', stderr);
        }
    }
    int ret = rc ? cli_fail(NULL) : failed ? 1 : 0;
    if (rc == DFRCL_ERR_INTERRUPTED) { /* nothing half done stays: remove this run's outputs */
        int removed = cli_written_remove(&written);
        if (created) cli_remove_tree(out_dir);
        fprintf(stderr, "dfrcl: infer stopped by %s after %d image(s); ", cli_stop_signal_name(), done);
        if (out_dir) fprintf(stderr, "removed the %d output file(s) it wrote\n", removed);
        else fprintf(stderr, "the scores above are complete\n");
        ret = cli_stop_exit_code();
    } else if (rc && created) cli_remove_tree(out_dir);
    for (int i = 0; names && i < n; i++) free(names[i]);
    free(names);
    cli_written_free(&written);
    free(skipped_idx);
    cJSON_Delete(root);
    dfrcl_model_close(&m);
    dfrcl_backbone_close(&bb);
    dfrcl_close(&ctx);
    return ret;
}
