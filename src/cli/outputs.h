/* What the commands share about their outputs: probing destinations before long work, removing
 * what an interrupted run wrote, and file names as valid UTF-8 for JSON. */
#ifndef DFRCL_CLI_OUTPUTS_H
#define DFRCL_CLI_OUTPUTS_H

#include <cjson/cJSON.h>

/* Refuses, before any long work, a destination file that cannot be written: an empty name, a
 * folder, something other than a regular file, a missing or read-only folder, and (bytes > 0) a
 * disk or file-size limit without room for `bytes` (reserved in a temporary file, then freed).
 * Errors name the path and say what to do. */
int cli_probe_file(const char *path, double bytes);

/* mkdir -p; an error naming the part that failed. */
int cli_mkdir_p(const char *dir);

/* Makes an output folder (mkdir -p) and checks that files can be created in it; refuses a path
 * naming a file. *created (may be NULL) says whether the folder is new. */
int cli_prepare_dir(const char *dir, int *created);

/* Removes a folder and everything in it, without following symbolic links (for the partial
 * output of an interrupted run, in a folder this run created). */
void cli_remove_tree(const char *dir);

/* Adds a file name to a JSON object as valid UTF-8 under `key`; a name that is not valid UTF-8
 * also gets its exact bytes, in hexadecimal, under "<key>_hex". */
void cli_json_add_name(cJSON *o, const char *key, const char *name);

/* PATH with SUFFIX appended (a model's ".checkpoint" or ".curve.json" beside it), into out[size].
 * A file name that would pass NAME_MAX keeps the start of its name and a short hash of the whole
 * instead, so a legal long model name still gets its companions. */
void cli_sibling_path(char *out, size_t size, const char *path, const char *suffix);

/* Files and folders a command wrote, to be removed if it is interrupted. */
typedef struct cli_written {
    char **paths;
    int *is_dir;
    int n, cap;
} cli_written;
int cli_written_add(cli_written *w, const char *path, int is_dir);
/* Unlinks the files and removes the (then empty) folders, newest first; returns how many files. */
int cli_written_remove(cli_written *w);
void cli_written_free(cli_written *w);
#endif
