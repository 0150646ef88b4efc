/* Names (paths) in JSON: valid UTF-8 as is, anything else readable plus its bytes in hex. */
#include "util/jsonname.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at p (1..4), 0 if p starts no valid one (overlong forms,
 * surrogates and code points past U+10FFFF included). */
static int utf8_seq(const unsigned char *p)
{
    static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
    int len;
    unsigned cp;
    if (p[0] < 0x80) return 1;
    if ((p[0] & 0xE0) == 0xC0) len = 2, cp = p[0] & 0x1F;
    else if ((p[0] & 0xF0) == 0xE0) len = 3, cp = p[0] & 0x0F;
    else if ((p[0] & 0xF8) == 0xF0) len = 4, cp = p[0] & 0x07;
    else return 0;
    for (int i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0; /* the terminating NUL stops here too */
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

char *dfr_utf8(const char *s, int *lossy)
{
    char *out = malloc(3 * strlen(s) + 1), *w = out;
    if (!out) return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int len = utf8_seq(p);
        if (len) {
            memcpy(w, p, (size_t)len);
            w += len, p += len;
        } else {
            memcpy(w, "\xEF\xBF\xBD", 3); /* U+FFFD */
            w += 3, p++;
            if (lossy) *lossy = 1;
        }
    }
    *w = 0;
    return out;
}

void dfr_json_add_name(cJSON *o, const char *key, const char *name)
{
    int lossy = 0;
    char *u = dfr_utf8(name, &lossy);
    if (!u) return;
    cJSON_AddStringToObject(o, key, u);
    free(u);
    if (!lossy) return;
    size_t n = strlen(name);
    char *hex = malloc(2 * n + 1), k[128];
    if (!hex) return;
    for (size_t i = 0; i < n; i++) sprintf(hex + 2 * i, "%02x", (unsigned char)name[i]);
    hex[2 * n] = 0;
    snprintf(k, sizeof k, "%s_hex", key);
    cJSON_AddStringToObject(o, k, hex);
    free(hex);
}
