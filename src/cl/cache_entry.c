#include "cl/cache_entry.h"

#include <stdint.h>
#include <string.h>

#include "util/hash.h"

static const char magic[8] = {'D', 'F', 'R', 'C', 'L', 'B', 'I', 'N'};

static uint64_t get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++, v >>= 8) p[i] = (unsigned char)(v & 0xff);
}

static void digest(const unsigned char *data, size_t len, unsigned char out[32])
{
    dfr_sha256 h;
    dfr_sha256_init(&h);
    dfr_sha256_update(&h, data, len);
    sha256_digest(&h, 32, out);
}

int dfr_cache_entry_parse(const unsigned char *buf, size_t len, const char *key_hex,
                          const unsigned char **payload, size_t *payload_len)
{
    *payload = NULL;
    *payload_len = 0;
    if (!buf || len < DFR_CACHE_ENTRY_HEADER) return DFR_CACHE_ENTRY_SHORT;
    if (memcmp(buf, magic, sizeof magic) != 0) return DFR_CACHE_ENTRY_MAGIC;
    if (get_le(buf + 8, 4) != DFR_CACHE_ENTRY_VERSION || get_le(buf + 12, 4) != DFR_CACHE_ENTRY_HEADER)
        return DFR_CACHE_ENTRY_VERSION_MISMATCH;
    uint64_t n = get_le(buf + 16, 8);
    if (n != (uint64_t)(len - DFR_CACHE_ENTRY_HEADER)) return DFR_CACHE_ENTRY_LENGTH;
    if (n == 0) return DFR_CACHE_ENTRY_EMPTY;
    if (key_hex && (strlen(key_hex) != 64 || memcmp(buf + 56, key_hex, 64) != 0))
        return DFR_CACHE_ENTRY_KEY;
    unsigned char d[32];
    digest(buf + DFR_CACHE_ENTRY_HEADER, (size_t)n, d);
    if (memcmp(d, buf + 24, 32) != 0) return DFR_CACHE_ENTRY_DIGEST;
    *payload = buf + DFR_CACHE_ENTRY_HEADER;
    *payload_len = (size_t)n;
    return DFR_CACHE_ENTRY_OK;
}

const char *dfr_cache_entry_reason(int status)
{
    switch (status) {
    case DFR_CACHE_ENTRY_OK: return "valid";
    case DFR_CACHE_ENTRY_SHORT: return "shorter than its header";
    case DFR_CACHE_ENTRY_MAGIC: return "not a dfrcl cache entry (bad magic)";
    case DFR_CACHE_ENTRY_VERSION_MISMATCH: return "unknown cache entry format version";
    case DFR_CACHE_ENTRY_LENGTH: return "length does not match its header (truncated or grown)";
    case DFR_CACHE_ENTRY_EMPTY: return "holds no program binary";
    case DFR_CACHE_ENTRY_KEY: return "stored under another key (copied or renamed)";
    case DFR_CACHE_ENTRY_DIGEST: return "checksum mismatch (corrupt)";
    default: return "invalid";
    }
}

void dfr_cache_entry_header(unsigned char hdr[DFR_CACHE_ENTRY_HEADER], const char *key_hex,
                            const unsigned char *payload, size_t payload_len)
{
    memset(hdr, 0, DFR_CACHE_ENTRY_HEADER);
    memcpy(hdr, magic, sizeof magic);
    put_le(hdr + 8, DFR_CACHE_ENTRY_VERSION, 4);
    put_le(hdr + 12, DFR_CACHE_ENTRY_HEADER, 4);
    put_le(hdr + 16, payload_len, 8);
    digest(payload, payload_len, hdr + 24);
    size_t k = strlen(key_hex);
    memcpy(hdr + 56, key_hex, k < 64 ? k : 64);
}
