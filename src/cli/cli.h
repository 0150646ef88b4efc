/* The dfrcl command: one function per subcommand, and what they share. */
#ifndef DFRCL_CLI_CLI_H
#define DFRCL_CLI_CLI_H

#include "cl/runtime.h"

int cmd_devices(int argc, char **argv);
int cmd_features(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_infer(int argc, char **argv);

/* Prints "dfrcl: error: <dfrcl_last_error()>" (or the given context) and returns exit code 1. */
int cli_fail(const char *context);
/* Parses a positive integer option value; prints an error naming the option when invalid. */
int cli_int(const char *opt, const char *val, int lo, int hi, int *out);
#endif
