/* PNG text chunk reader: walks the chunk list without decoding any image data. */
#include "cli/png_text.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static char *copy_text(const unsigned char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

/* iTXt: keyword\0 flag method lang\0 translated\0 text; only uncompressed text is read. */
static char *itxt_text(const unsigned char *d, size_t n, size_t klen)
{
    size_t i = klen + 1;
    if (i + 2 > n || d[i] != 0)
        return NULL;
    i += 2;
    for (int field = 0; field < 2; field++) {
        const unsigned char *z = memchr(d + i, 0, n - i);
        if (!z)
            return NULL;
        i = (size_t)(z - d) + 1;
    }
    return copy_text(d + i, n - i);
}

char *kiln_cli_png_text(const unsigned char *png, size_t len, const char *keyword)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t klen = strlen(keyword);
    if (len < 8 || memcmp(png, sig, 8) != 0)
        return NULL;
    size_t pos = 8;
    while (pos + 12 <= len) {
        uint32_t n = be32(png + pos);
        const unsigned char *type = png + pos + 4, *data = png + pos + 8;
        if (n > len - pos - 12)
            return NULL; /* truncated or corrupt length */
        if (n > klen && data[klen] == 0 && !memcmp(data, keyword, klen)) {
            if (!memcmp(type, "tEXt", 4))
                return copy_text(data + klen + 1, n - klen - 1);
            if (!memcmp(type, "iTXt", 4))
                return itxt_text(data, n, klen);
        }
        if (!memcmp(type, "IEND", 4))
            break;
        pos += 12 + (size_t)n;
    }
    return NULL;
}
