/* SHA-256 (nettle) for cache keys and file identities. */
#ifndef DFRCL_UTIL_HASH_H
#define DFRCL_UTIL_HASH_H
#include <stddef.h>
#include <nettle/sha2.h>

typedef struct sha256_ctx dfr_sha256;
void dfr_sha256_init(dfr_sha256 *h);
void dfr_sha256_update(dfr_sha256 *h, const void *data, size_t len);
/* Adds a string plus a separator byte, so that ("ab","c") and ("a","bc") differ. */
void dfr_sha256_update_str(dfr_sha256 *h, const char *s);
/* Writes 64 lowercase hex digits and a NUL into hex[65]. */
void dfr_sha256_hex(dfr_sha256 *h, char hex[65]);
#endif
