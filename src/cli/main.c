/* dfrcl: DFR anomaly segmentation on any OpenCL device. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/tune.h"
#include "util/error.h"
#include "util/fsutil.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *help;
} commands[] = {
    {"demo", cmd_demo, "run the whole job on a synthetic dataset it makes: train, evaluate, report"},
    {"devices", cmd_devices, "list OpenCL platforms and devices, marking the default"},
    {"features", cmd_features, "compute the DFR regional feature of one image"},
    {"train", cmd_train, "learn normal images of a dataset folder into a model file"},
    {"infer", cmd_infer, "score images with a model: score, verdict, maps and overlays"},
    {"eval", cmd_eval, "evaluate a model on a test set: metrics, maps, HTML report"},
    {"run", cmd_run, "evaluation campaign: train and evaluate every category, summary table"},
    {"bench", cmd_bench, "time the backbone and regional stages on a device"},
    {"tune", cmd_tune, "time kernel variants on a device and keep the fastest for later runs"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: dfrcl <command> [options]\n\n"
               "DFR anomaly segmentation (Shi et al. 2021) on any OpenCL device.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n'dfrcl <command> --help' describes a command's options.\n"
               "environment: DFRCL_DEVICE (device index or name substring), DFRCL_CACHE_DIR\n"
               "(compiled-kernel cache and tuning database; empty disables them), DFRCL_TUNED=0\n"
               "(ignore the tuning database), DFRCL_WEIGHTS (backbone weights),\n"
               "DFRCL_MAX_DECODE_MB (memory limit for decoding one image, default 512).\n");
}

static volatile int stop_flag;
static volatile sig_atomic_t stop_signal;

/* Ends the process now, from a signal handler: only async-signal-safe calls. */
static void exit_on_signal(int sig)
{
    dfr_atomic_abort_all(); /* unlinks this process's temp files: nothing half-written stays */
    static const char msg[] = "\ndfrcl: interrupted; nothing half-written was left\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(128 + sig);
}

/* Commands that stop at safe points (cli_stop_on_signals): the first signal sets the flag they
 * poll, a second ends the process at once. */
static void on_signal(int sig)
{
    if (stop_flag) exit_on_signal(sig);
    stop_signal = sig;
    stop_flag = 1;
}

/* Every other command: a signal ends it at once, after removing its temp files. */
static void on_signal_immediate(int sig) { exit_on_signal(sig); }

static void handle_signals(void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

volatile int *cli_stop_on_signals(void)
{
    handle_signals(on_signal);
    return &stop_flag;
}

volatile int *cli_stop_flag(void) { return &stop_flag; }

int cli_stop_exit_code(void) { return 128 + (stop_signal ? (int)stop_signal : SIGINT); }

const char *cli_stop_signal_name(void) { return stop_signal == SIGTERM ? "SIGTERM" : "SIGINT"; }

/* API setting -> the option that sets it (the commands' options share these names). */
static const struct {
    const char *setting, *option;
} setting_options[] = {
    {"batch", "--batch"},   {"feature_dir", "--feature-dir"}, {"latent", "--latent"},
    {"layers", "--layers"}, {"lr", "--lr"},                   {"memory_mib", "--memory"},
    {"resume", "--resume"}, {"size", "--size"},               {"store", "--store"},
    {"test_dir", "--test"}, {"weights", "--weights"},
};

void cli_option_hint(const char *msg, char *out, size_t n)
{
    const size_t ns = sizeof setting_options / sizeof setting_options[0];
    int named[sizeof setting_options / sizeof setting_options[0]] = {0}, count = 0;
    for (const char *p = msg ? strchr(msg, '(') : NULL; p; p = strchr(p + 1, '(')) {
        size_t len = strcspn(p + 1, " ),");
        for (size_t i = 0; i < ns; i++)
            if (!named[i] && strlen(setting_options[i].setting) == len &&
                !strncmp(p + 1, setting_options[i].setting, len) && p[1 + len])
                named[i] = ++count; /* in the order the message names them */
    }
    size_t used = 0;
    out[0] = 0;
    for (int k = 1; k <= count; k++)
        for (size_t i = 0; i < ns; i++)
            if (named[i] == k && used < n)
                used += (size_t)snprintf(out + used, n - used, "%s%s",
                                         k == 1 ? (count > 1 ? " (command-line options: "
                                                             : " (command-line option: ")
                                                : ", ",
                                         setting_options[i].option);
    if (count && used < n) snprintf(out + used, n - used, ")");
}

int cli_fail(const char *context)
{
    const char *msg = dfrcl_last_error();
    char hint[160];
    cli_option_hint(msg, hint, sizeof hint);
    if (context) fprintf(stderr, "dfrcl: error: %s: %s%s\n", context, msg, hint);
    else fprintf(stderr, "dfrcl: error: %s%s\n", msg, hint);
    return 1;
}

int cli_int(const char *opt, const char *val, int lo, int hi, int *out)
{
    char *end = NULL;
    long v = strtol(val, &end, 10);
    if (!*val || *end || v < lo || v > hi) {
        fprintf(stderr, "dfrcl: error: %s expects an integer in %d..%d, not '%s'\n", opt, lo, hi,
                val);
        return 0;
    }
    *out = (int)v;
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    /* Past a file-size limit a write fails with EFBIG (reported, temp file removed) instead of
     * killing the process. */
    signal(SIGXFSZ, SIG_IGN);
    handle_signals(on_signal_immediate);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("dfrcl %s\n", dfrcl_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "dfrcl: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
