/* dfrcl tune, and the default-versus-tuned comparison `dfrcl bench` prints. */
#ifndef DFRCL_CLI_TUNE_H
#define DFRCL_CLI_TUNE_H

#include "cl/runtime.h"

int cmd_tune(int argc, char **argv);

/* For each kernel the device's tuning database holds: times the built-in defaults and the tuned
 * values at the tuner's shapes (`layers` VGG19 layers, `size` px), median of `reps`, and prints
 * a table on stdout. Prints one line and does nothing when there is no database. The kernels'
 * environment overrides are restored afterwards. */
int cli_tune_compare(dfr_runtime *rt, int layers, int size, int reps);

#endif
