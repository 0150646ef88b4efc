/* The CLI helper over the library's internal structs, for the commands the issue lets keep
 * internals to time them (bench, features). train, infer, eval, run and demo must not include
 * this (tests/test_cli_api.sh). */
#ifndef DFRCL_CLI_INTERNAL_BACKBONE_H
#define DFRCL_CLI_INTERNAL_BACKBONE_H

#include "cl/runtime.h"
#include "cli/backbone_opts.h"
#include "model/vgg19.h"

/* Opens the runtime (with the precision asked for) and loads the backbone the options describe. */
int cli_backbone_open(const cli_backbone_opts *o, int profiling, dfr_runtime **rt,
                      dfr_vgg19 **vgg);
#endif
