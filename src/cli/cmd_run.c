/* dfrcl run: an evaluation campaign over the categories of a dataset root (dfrcl_campaign_run),
 * resumable and optionally one shard of a job array, and the merge of the shards
 * (dfrcl_campaign_merge). This file parses options, prints, turns signals into a stop, and adds
 * the command's flags to the library's messages. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone_opts.h"
#include "cli.h"
#include "progress.h"
#include "train_opts.h"

static void help(void)
{
    printf("usage: dfrcl run --data ROOT --out DIR [--categories a,b] [--shard I/N] [options]\n"
           "       dfrcl run --merge DIR\n\n"
           "Trains and evaluates every category of a dataset root (folders holding train/good,\n"
           "as in MVTec AD; ROOT itself if it holds train/good). Per category it writes\n"
           "DIR/<category>/model.safetensors, metrics.json and eval/ (maps, overlays,\n"
           "report.html). Resumable: a category with a model and metrics is skipped, and one\n"
           "stopped while training (Ctrl-C, SIGTERM) continues from its checkpoint,\n"
           "DIR/<category>/train.checkpoint. Ends with a summary table (per category and\n"
           "mean), DIR/summary.html, .json and .csv, beside the published DFR figures for\n"
           "MVTec AD categories (by folder name).\n\n"
           "Each category's settings (size, layers, backbone, recipe, epochs, lr, batch,\n"
           "positions, patience, latent, fpr, seed, precision) are kept in\n"
           "DIR/<category>/settings.json: a rerun with other settings refuses, naming what\n"
           "changed, unless --force, which redoes those categories. One run at a time per\n"
           "DIR: a second one is refused (lock file DIR/dfrcl-run.lock). Ctrl-C or SIGTERM\n"
           "stops at a safe point (a training checkpoint, or before the next test image),\n"
           "removes the stopped category's partial eval/ and exits 130 (SIGINT) or 143\n"
           "(SIGTERM); the same command continues.\n\n"
           "On a cluster, a job array splits the campaign: --shard I/N runs categories I, I+N,\n"
           "I+2N.. (in sorted order, from 1) and records them in DIR/shards/I-of-N.json\n"
           "instead of writing the summary; shards run at once into one shared DIR (each\n"
           "locks DIR/shards/I-of-N.lock and shares DIR/dfrcl-run.lock). --shard auto takes\n"
           "I and N from a Slurm array (SLURM_ARRAY_TASK_ID, _MIN, _COUNT) or a Kubernetes\n"
           "Indexed Job (JOB_COMPLETION_INDEX, from 0, and DFRCL_SHARD_COUNT). Once every\n"
           "shard is done, --merge DIR writes the summary, as one unsharded run would; it\n"
           "refuses missing shards or categories and shards run with other settings.\n\n"
           "options:\n"
           "      --data ROOT           dataset root (required)\n"
           "      --out DIR             campaign folder (required)\n"
           "      --categories a,b      only these categories\n"
           "      --force               redo categories done with other settings\n"
           "      --shard I/N|auto      run only shard I of N (see above)\n"
           "      --merge DIR           write the summary of DIR's finished shards\n"
           CLI_TRAIN_HELP
           "                            (fp16 also stores evaluation's activations and features\n"
           "                            as fp16, as --precision fp16 does for eval)\n"
           CLI_BACKBONE_HELP
           "  -d, --device LIST         also 'all' or '0,2': each category trains on the first\n"
           "                            device, and its evaluation spreads the test images over\n"
           "                            all of them\n"
           "      --score-batch N       images per launch when evaluating (default: from the\n"
           "                            device's memory)\n"
           "      --threads N           image decoding threads (default: one per core)\n"
           "  -h, --help\n");
}

/* What the command shows of a campaign: per-category lines, progress bars, problems. */
typedef struct run_view {
    const char *out;
    int force, quiet;
    cli_train_progress train; /* training's bars */
    cli_progress eval;        /* evaluation's bar */
} run_view;

static void end_bars(run_view *v)
{
    if (v->train.bar.phase) cli_progress_end(&v->train.bar);
    v->train.bar.phase = NULL;
    if (v->eval.phase) cli_progress_end(&v->eval);
    v->eval.phase = NULL;
}

static void on_progress(run_view *v, const dfrcl_campaign_event *e)
{
    if (strcmp(e->phase, "eval")) {
        if (!strcmp(e->phase, "features")) v->train.train_images = e->total; /* for img/s */
        cli_train_progress_cb(&v->train, e->phase, e->done, e->total, e->loss);
        return;
    }
    if (!v->eval.phase) {
        if (v->train.bar.phase) cli_progress_end(&v->train.bar), v->train.bar.phase = NULL;
        cli_progress_start(&v->eval, "eval", e->total, "img", v->quiet);
        v->eval.images_per_unit = 1;
    }
    cli_progress_update(&v->eval, e->done, 1, NULL);
}

/* A merge problem, with the command that would fix it where there is one. */
static void print_problem(const run_view *v, const dfrcl_campaign_event *e)
{
    fprintf(stderr, "dfrcl: error: %s", e->message);
    if (e->reason == DFRCL_CAMPAIGN_MISSING_SHARDS || e->reason == DFRCL_CAMPAIGN_UNFINISHED)
        fprintf(stderr, " ('dfrcl run --shard I/%d --out %s')", e->shard_count, v->out);
    fputc('\n', stderr);
}

static int on_event(void *user, const dfrcl_campaign_event *e)
{
    run_view *v = user;
    volatile int *stop = cli_stop_flag();
    switch (e->kind) {
    case DFRCL_CAMPAIGN_START:
        if (e->shard_count)
            printf("shard %d/%d: %d of %d categories\n", e->shard_index, e->shard_count,
                   e->total_own, e->count);
        break;
    case DFRCL_CAMPAIGN_OTHER_SETTINGS:
        if (v->force) printf("%s: run with other settings (%s): redoing it\n", e->category, e->message);
        else fprintf(stderr, "dfrcl: error: %s was run with other settings: %s\n", e->dir, e->message);
        break;
    case DFRCL_CAMPAIGN_SKIPPED:
        printf("[%d/%d] %s: done before, skipped\n", e->index, e->count, e->category);
        break;
    case DFRCL_CAMPAIGN_TRAINING:
    case DFRCL_CAMPAIGN_EVALUATING:
        if (*stop) return 1; /* between categories: a safe point */
        printf("[%d/%d] %s: %s\n", e->index, e->count, e->category,
               e->kind == DFRCL_CAMPAIGN_TRAINING ? "training" : "evaluating its model");
        fflush(stdout);
        break;
    case DFRCL_CAMPAIGN_PROGRESS: on_progress(v, e); break;
    case DFRCL_CAMPAIGN_DONE:
        end_bars(v);
        printf("[%d/%d] %s: pixel AUROC %.4f, image AUROC %.4f, AUPRO %.4f (%.0f s)\n", e->index,
               e->count, e->category, e->metrics->pixel_auroc, e->metrics->image_auroc,
               e->metrics->aupro, e->seconds);
        break;
    case DFRCL_CAMPAIGN_FAILED:
        end_bars(v);
        fprintf(stderr, "dfrcl: error: %s: %s\n", e->category, e->message);
        break;
    case DFRCL_CAMPAIGN_MERGING:
        printf("merging %d shard%s of %s: %d categor%s\n", e->shard_count,
               e->shard_count == 1 ? "" : "s", v->out, e->count, e->count == 1 ? "y" : "ies");
        break;
    case DFRCL_CAMPAIGN_PROBLEM: print_problem(v, e); break;
    case DFRCL_CAMPAIGN_SUMMARY:
        fputs(e->message, stdout);
        printf("summary: %s/summary.html, summary.json, summary.csv\n", v->out);
        break;
    case DFRCL_CAMPAIGN_WARNING: fprintf(stderr, "dfrcl: warning: %s\n", e->message); break;
    }
    return *stop;
}

/* The library's refusal, in the command's terms: its flags added where they are the way out. */
static int fail(const run_view *v, int rc, const dfrcl_campaign_result *res)
{
    const char *msg = dfrcl_last_error();
    switch (res->reason) {
    case DFRCL_CAMPAIGN_BUSY_SHARDS:
        cli_error(rc, "%s is in use by shards of a 'dfrcl run --shard' (locks %s/shards/*.lock); "
                      "wait for them to end or choose another --out", v->out, v->out);
        break;
    case DFRCL_CAMPAIGN_BUSY:
        cli_error(rc, "%s (--out)", msg);
        break;
    case DFRCL_CAMPAIGN_SETTINGS_DIFFER:
        cli_error(rc, "%s; use another --out, or add --force to redo %s", msg,
                  strncmp(msg, "1 category", 10) ? "them" : "it");
        break;
    case DFRCL_CAMPAIGN_NO_SHARDS:
        cli_error(rc, "%s with 'dfrcl run --shard I/N --out %s'", msg, v->out);
        break;
    default: break;
    }
    return cli_fail(NULL);
}

/* --merge DIR: the summary of the shards' results; nothing to train, no dataset needed. */
static int run_merge(const char *out)
{
    run_view v = {.out = out};
    dfrcl_campaign_result res;
    int rc = dfrcl_campaign_merge(out, on_event, &v, &res);
    if (rc) return fail(&v, rc, &res);
    return res.failed ? 1 : 0;
}

static int run_campaign(cli_backbone_opts *bo, dfrcl_campaign_options *co)
{
    run_view v = {.out = co->out, .force = co->force, .quiet = bo->verbosity == 0};
    v.train.bar.quiet = v.quiet;
    co->on_event = on_event;
    co->user = &v;
    co->size = bo->size;
    co->score.batch = bo->batch;
    co->score.threads = bo->threads;
    cli_stop_on_signals(); /* a signal stops the campaign at a safe point (on_event's return) */
    dfrcl_context *ctx = NULL;
    dfrcl_backbone *bb = NULL;
    dfrcl_campaign_result res = {0};
    int rc = cli_open(bo, &ctx, &bb);
    if (!rc) rc = dfrcl_campaign_run(bb, co, &res);
    end_bars(&v);
    if (!rc && co->shard_count)
        printf("shard %d/%d done; once all %d are, 'dfrcl run --merge %s' writes the summary\n",
               co->shard_index, co->shard_count, co->shard_count, co->out);
    int ret = rc == DFRCL_ERR_INTERRUPTED ? cli_stop_exit_code() : rc ? fail(&v, rc, &res)
              : res.failed ? 1 : 0;
    if (rc == DFRCL_ERR_INTERRUPTED)
        fprintf(stderr, "dfrcl: run stopped by %s; the same command continues the campaign where "
                        "it stopped\n", cli_stop_signal_name());
    dfrcl_backbone_close(&bb);
    dfrcl_close(&ctx);
    return ret;
}

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {CLI_BACKBONE_LONGOPTS, CLI_SCHED_LONGOPTS_RUN,
                                         {"data", required_argument, 0, 1601},
                                         {"out", required_argument, 0, 1602},
                                         {"categories", required_argument, 0, 1603},
                                         {"force", no_argument, 0, 1604},
                                         {"shard", required_argument, 0, 1605},
                                         {"merge", required_argument, 0, 1606},
                                         CLI_TRAIN_LONGOPTS,
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    cli_backbone_opts bo;
    cli_backbone_defaults(&bo);
    dfrcl_campaign_options co;
    dfrcl_default_campaign_options(&co);
    const char *merge = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "d:w:l:s:vqh" CLI_TRAIN_SHORTOPTS, opts, NULL)) != -1) {
        int r = cli_backbone_option(&bo, c, optarg);
        if (!r) r = cli_train_parse(&co.train, c, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        switch (c) {
        case 1601: co.root = optarg; break;
        case 1602: co.out = optarg; break;
        case 1603: co.categories = optarg; break;
        case 1604: co.force = 1; break;
        case 1605:
            if (dfrcl_campaign_shard_parse(optarg, &co.shard_index, &co.shard_count)) {
                fprintf(stderr, "dfrcl run: --shard%s: %s%s\n", strcmp(optarg, "auto") ? "" : " auto",
                        dfrcl_last_error(),
                        strcmp(optarg, "auto") ? "" : "; or give --shard I/N");
                return 2;
            }
            break;
        case 1606: merge = optarg; break;
        case 'h': help(); return 0;
        default: return 2;
        }
    }
    /* --precision fp16/fp32: evaluation's activations too (auto: by the device, as for eval) */
    bo.half = co.train.store_precision == 16 ? 1 : co.train.store_precision == 32 ? 0 : -1;
    if (merge) {
        if (co.root || co.shard_count || co.categories || co.force || optind != argc ||
            (co.out && strcmp(co.out, merge))) {
            fprintf(stderr, "dfrcl run: --merge DIR takes no --data, --shard, --categories, --force "
                            "or other --out: it reads what the shards wrote into DIR\n");
            return 2;
        }
        return run_merge(merge);
    }
    if (!co.root || !co.out || optind != argc) {
        fprintf(stderr, "dfrcl run: need --data ROOT and --out DIR (see --help)\n");
        return 2;
    }
    return run_campaign(&bo, &co);
}
