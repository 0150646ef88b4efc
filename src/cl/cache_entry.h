/* The kernel cache's entry format, in plain C (no OpenCL) so that it can be fuzzed alone.
 *
 * An entry is a 120-byte header followed by the driver's program binary (the payload):
 *   0   8  magic "DFRCLBIN"
 *   8   4  format version (little-endian), DFR_CACHE_ENTRY_VERSION
 *   12  4  header size (little-endian), DFR_CACHE_ENTRY_HEADER
 *   16  8  payload length (little-endian); the file holds exactly header + payload
 *   24 32  SHA-256 of the payload
 *   56 64  the cache key (64 lowercase hex digits) the entry was stored under
 * The driver sees a payload only after all of these check out, so a truncated, bit-rotted or
 * copied entry is never handed to its binary loader. */
#ifndef DFRCL_CL_CACHE_ENTRY_H
#define DFRCL_CL_CACHE_ENTRY_H
#include <stddef.h>

#define DFR_CACHE_ENTRY_HEADER 120
#define DFR_CACHE_ENTRY_VERSION 1

enum {
    DFR_CACHE_ENTRY_OK = 0,
    DFR_CACHE_ENTRY_SHORT,   /* shorter than the header */
    DFR_CACHE_ENTRY_MAGIC,   /* not a dfrcl cache entry */
    DFR_CACHE_ENTRY_VERSION_MISMATCH,
    DFR_CACHE_ENTRY_LENGTH,  /* payload length disagrees with the file's size (truncated?) */
    DFR_CACHE_ENTRY_EMPTY,   /* no payload */
    DFR_CACHE_ENTRY_KEY,     /* stored under another key (copied or renamed) */
    DFR_CACHE_ENTRY_DIGEST,  /* payload checksum mismatch (corrupt) */
};

/* Checks an entry read whole into buf[0..len). key_hex: the key it must carry (NULL skips that
 * check). On DFR_CACHE_ENTRY_OK, *payload and *payload_len point at the binary inside buf;
 * otherwise they are NULL and 0. */
int dfr_cache_entry_parse(const unsigned char *buf, size_t len, const char *key_hex,
                          const unsigned char **payload, size_t *payload_len);

/* What a status of dfr_cache_entry_parse means, in words. */
const char *dfr_cache_entry_reason(int status);

/* Fills the header for a payload stored under key_hex (64 hex digits). */
void dfr_cache_entry_header(unsigned char hdr[DFR_CACHE_ENTRY_HEADER], const char *key_hex,
                            const unsigned char *payload, size_t payload_len);
#endif
