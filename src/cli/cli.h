/* The dfrcl command: one function per subcommand, and what they share. */
#ifndef DFRCL_CLI_CLI_H
#define DFRCL_CLI_CLI_H

#include "cl/runtime.h"

int cmd_devices(int argc, char **argv);
int cmd_features(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_infer(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_run(int argc, char **argv);

#include "cli/backbone_opts.h"
#include "eval/evaluate.h"
/* The metrics table on stdout; n/a for undefined values. */
void cli_print_metrics(const dfr_metrics *mt);
/* Evaluates a loaded model (on every lane: its devices) on a dataset (outputs, report, JSON);
 * shared by eval, run and demo. */
int cli_eval_model(const cli_lanes *l, const char *data, const char *test_dir, const char *masks_dir,
                   const char *out_dir, const char *json_path, const char *title,
                   const char *model_path, int quiet, dfr_metrics *mt);

/* Installs SIGINT and SIGTERM handlers that set the returned flag (training then writes its
 * checkpoint and stops); a second signal ends the process at once. */
volatile int *cli_stop_on_signals(void);
/* The same flag, without installing anything (0 until a handler sees a signal). */
volatile int *cli_stop_flag(void);
/* After a stop: the exit code, 128 + the signal (130 for SIGINT, 143 for SIGTERM), and its name. */
int cli_stop_exit_code(void);
const char *cli_stop_signal_name(void);

/* Prints "dfrcl: error: <dfrcl_last_error()>" (or the given context) and returns exit code 1;
 * the message ends with the options that set the settings it names (cli_option_hint). */
int cli_fail(const char *context);
/* The library names a setting by its API name in parentheses ("the memory budget (memory_mib)",
 * "(lr 0.01)"), never by a command-line option: writes into out " (command-line option:
 * --memory)" for the settings msg names that a command has an option for, else "". */
void cli_option_hint(const char *msg, char *out, size_t n);
/* Parses a positive integer option value; prints an error naming the option when invalid. */
int cli_int(const char *opt, const char *val, int lo, int hi, int *out);
#endif
