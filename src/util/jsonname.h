/* File names in JSON files: JSON strings must be UTF-8, file names need not be. */
#ifndef DFRCL_UTIL_JSONNAME_H
#define DFRCL_UTIL_JSONNAME_H

#include <cjson/cJSON.h>

/* A malloc'd copy of s with each invalid UTF-8 byte replaced by U+FFFD; *lossy (may be NULL)
 * set to 1 when one was. */
char *dfr_utf8(const char *s, int *lossy);
/* Adds key: name (as dfr_utf8 gives it), and key_hex: its bytes in hex when it was not UTF-8. */
void dfr_json_add_name(cJSON *o, const char *key, const char *name);

#endif
