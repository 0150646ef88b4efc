#include "util/hash.h"

#include <stdio.h>
#include <string.h>

void dfr_sha256_init(dfr_sha256 *h) { sha256_init(h); }

void dfr_sha256_update(dfr_sha256 *h, const void *data, size_t len)
{
    sha256_update(h, len, data);
}

void dfr_sha256_update_str(dfr_sha256 *h, const char *s)
{
    sha256_update(h, strlen(s) + 1, (const uint8_t *)s); /* the NUL separates fields */
}

void dfr_sha256_hex(dfr_sha256 *h, char hex[65])
{
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_digest(h, sizeof d, d);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}
