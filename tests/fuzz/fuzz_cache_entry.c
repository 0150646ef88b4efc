/* libFuzzer target for the kernel cache's entry reader (cl/cache_entry.h): any input must be
 * either an entry stored under the expected key, whose payload is the rest of the input and
 * matches the header's SHA-256, or refused with a status that has words for it; never crash.
 * An entry written by dfr_cache_entry_header around any payload must parse back to it. */
#include "cl/cache_entry.h"
#include "fuzz_common.h"
#include "util/hash.h"

/* sha256("dfrcl fuzz"): the key the seed corpus's valid entries carry (make_corpus.py) */
#define KEY "06434f039785e13afc2fbe79badfa7cb70d334f99154fd83617ccc9d67af0872"

static void check(const unsigned char *buf, size_t len, const char *key, int want_ok)
{
    const unsigned char *payload = (const unsigned char *)"x";
    size_t plen = 1;
    int st = dfr_cache_entry_parse(buf, len, key, &payload, &plen);
    const char *why = dfr_cache_entry_reason(st);
    if (!why || !*why) abort();
    if (st != DFR_CACHE_ENTRY_OK) {
        if (payload || plen || want_ok) abort();
        return;
    }
    if (len < DFR_CACHE_ENTRY_HEADER || payload != buf + DFR_CACHE_ENTRY_HEADER || plen == 0 ||
        plen != len - DFR_CACHE_ENTRY_HEADER)
        abort();
    dfr_sha256 h;
    dfr_sha256_init(&h);
    dfr_sha256_update(&h, payload, plen);
    unsigned char digest[32];
    sha256_digest(&h, sizeof digest, digest);
    if (memcmp(digest, buf + 24, 32) != 0) abort();
    if (key && memcmp(buf + 56, key, 64) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check(data, size, KEY, 0);
    check(data, size, NULL, 0);
    /* the input as a payload: header + input must parse back */
    unsigned char *entry = malloc(DFR_CACHE_ENTRY_HEADER + size + 1);
    if (!entry) return 0;
    dfr_cache_entry_header(entry, KEY, data, size);
    memcpy(entry + DFR_CACHE_ENTRY_HEADER, data, size);
    check(entry, DFR_CACHE_ENTRY_HEADER + size, KEY, size > 0);
    free(entry);
    return 0;
}
