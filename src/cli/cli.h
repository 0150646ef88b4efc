/* The dfrcl command: one function per subcommand, and what they share. Like everything the
 * converted commands include, this header needs only the public dfrcl.h (tests/test_cli_api). */
#ifndef DFRCL_CLI_CLI_H
#define DFRCL_CLI_CLI_H

#include "backbone_opts.h"
#include "dfrcl.h"

int cmd_devices(int argc, char **argv);
int cmd_features(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_infer(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_run(int argc, char **argv);

/* The metrics table on stdout; n/a for undefined values. */
void cli_print_metrics(const dfrcl_metrics *mt);
/* The paper's figures beside a dataset's, when its folder is an MVTec AD category. */
void cli_print_published(const char *data, int layers);
/* Evaluates a loaded model (on every device of its context, with bo's --batch and --threads) on
 * a dataset: outputs, report, JSON, a progress bar unless -q; stopped by a signal
 * (cli_stop_on_signals). Shared by eval and demo. */
int cli_evaluate(dfrcl_model *m, const cli_backbone_opts *bo, const char *data,
                 const char *test_dir, const char *masks_dir, const char *out_dir,
                 const char *json_path, const char *title, const char *model_path,
                 dfrcl_metrics *mt);

/* Installs SIGINT and SIGTERM handlers that set the returned flag (training then writes its
 * checkpoint and stops); a second signal ends the process at once. */
volatile int *cli_stop_on_signals(void);
/* The same flag, without installing anything (0 until a handler sees a signal). */
volatile int *cli_stop_flag(void);
/* After a stop: the exit code, 128 + the signal (130 for SIGINT, 143 for SIGTERM), and its name. */
int cli_stop_exit_code(void);
const char *cli_stop_signal_name(void);

/* The command's own failures (bad files, outputs), kept apart from the library's: sets the
 * message cli_fail prints next and returns status. */
int cli_error(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Puts "<fmt>: " before the current message (the command's, else dfrcl_last_error()). */
int cli_error_prefix(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "dfrcl: error: <the command's message, else dfrcl_last_error()>" (with the given
 * context first) and returns exit code 1; the message ends with the options that set the
 * settings it names (cli_option_hint). */
int cli_fail(const char *context);
/* The library names a setting by its API name in parentheses ("the memory budget (memory_mib)",
 * "(lr 0.01)"), never by a command-line option: writes into out " (command-line option:
 * --memory)" for the settings msg names that a command has an option for, else "". */
void cli_option_hint(const char *msg, char *out, size_t n);
/* Parses a positive integer option value; prints an error naming the option when invalid. */
int cli_int(const char *opt, const char *val, int lo, int hi, int *out);

/* The command's messages: "dfrcl: <msg>" on stderr up to the verbosity (0 quiet, 1 info,
 * 2 debug), set by cli_set_verbosity; cli_log_sink is the same for dfrcl_settings.log. */
extern int cli_verbosity;
void cli_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_log_sink(void *user, int level, const char *msg);
#endif
