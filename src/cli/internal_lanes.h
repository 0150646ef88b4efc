/* The CLI helpers over the library's internal structs, for the commands the issue lets keep
 * internals (bench, features, tune) and for cmd_run.c until i11-campaign puts it on the public
 * API (then the lanes, cli_eval_model and cli_train_option below go). train, infer, eval and demo
 * must not include this (tests/test_cli_api.sh). */
#ifndef DFRCL_CLI_INTERNAL_LANES_H
#define DFRCL_CLI_INTERNAL_LANES_H

#include "cl/runtime.h"
#include "cli/backbone_opts.h"
#include "eval/evaluate.h"
#include "model/dfr.h"
#include "model/vgg19.h"
#include "sched/scorer.h"

/* One backbone and model per device of --device's list (the scheduler's lanes). */
#define CLI_MAX_LANES 16
typedef struct cli_lanes {
    int k;
    dfr_runtime *rt[CLI_MAX_LANES];
    dfr_vgg19 *vgg[CLI_MAX_LANES];
    dfr_model *m[CLI_MAX_LANES];
    dfr_sched_opts so;
} cli_lanes;
/* Opens a runtime and backbone on each device the options name. */
int cli_lanes_open(const cli_backbone_opts *o, int profiling, cli_lanes *l);
/* Loads the model file on every lane (dfr_model_load); frees those loaded before. */
int cli_lanes_load_model(cli_lanes *l, const char *path);
void cli_lanes_free_models(cli_lanes *l);
void cli_lanes_close(cli_lanes *l);
/* "[0] name, [1] name" of the lanes' devices, for reports. */
void cli_lanes_names(const cli_lanes *l, char *buf, size_t n);

/* Opens the runtime (with the precision asked for) and loads the backbone the options describe. */
int cli_backbone_open(const cli_backbone_opts *o, int profiling, dfr_runtime **rt,
                      dfr_vgg19 **vgg);
/* Evaluates a loaded model (on every lane: its devices) on a dataset (outputs, report, JSON);
 * cmd_run's (eval and demo use cli_evaluate). */
int cli_eval_model(const cli_lanes *l, const char *data, const char *test_dir, const char *masks_dir,
                   const char *out_dir, const char *json_path, const char *title,
                   const char *model_path, int quiet, dfr_metrics *mt);
/* cli_train_parse (train_opts.h) on the internal training options. */
int cli_train_option(dfr_train_opts *o, int opt, const char *arg);
#endif
