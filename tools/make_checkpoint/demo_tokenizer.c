/* The demo CLIP tokenizer: a vocab.json / merges.txt pair in the format of
 * openai/clip-vit-large-patch14's that needs no download. It holds only the byte-level
 * alphabet (no merges), so a prompt tokenizes to one token per UTF-8 byte: enough for the
 * random-weight demo model, useless for a real checkpoint, which needs the real files. */
#include <kiln/error.h>
#include <stdio.h>
#include <string.h>

#include "sd_layout.h"

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes
 * to 256, 257, ... in byte order. The table's order (printable bytes first) is the order of
 * the vocabulary's first 256 ids. */
static int printable(unsigned b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

static void byte_order(unsigned order[256], unsigned cp[256])
{
    unsigned n = 0, extra = 0;
    for (unsigned b = 0; b < 256; b++)
        if (printable(b))
            order[n++] = b, cp[b] = b;
    for (unsigned b = 0; b < 256; b++)
        if (!printable(b))
            order[n++] = b, cp[b] = 256 + extra++;
}

/* Writes code point cp (< 0x800) as a JSON string character in UTF-8. */
static void put_cp(FILE *f, unsigned cp)
{
    if (cp == '"' || cp == '\\')
        fprintf(f, "\\%c", (char)cp);
    else if (cp < 0x80)
        fputc((int)cp, f);
    else
        fprintf(f, "%c%c", (char)(0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F)));
}

static int write_vocab(const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return KILN_EIO;
    unsigned order[256], cp[256];
    byte_order(order, cp);
    fputc('{', f);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 256; i++) {
            fputc('"', f);
            put_cp(f, cp[order[i]]);
            fprintf(f, "%s\": %d, ", pass ? "</w>" : "", pass * 256 + i);
        }
    }
    fprintf(f, "\"<|startoftext|>\": 49406, \"<|endoftext|>\": 49407}");
    return fclose(f) == 0 ? 0 : KILN_EIO;
}

int kiln__ckpt_write_demo_tokenizer(const char *dir, char *err, size_t errlen)
{
    char vocab[4096], merges[4096];
    if ((size_t)snprintf(vocab, sizeof vocab, "%s/vocab.json", dir) >= sizeof vocab ||
        (size_t)snprintf(merges, sizeof merges, "%s/merges.txt", dir) >= sizeof merges) {
        snprintf(err, errlen, "directory name too long");
        return KILN_EINVAL;
    }
    if (write_vocab(vocab) != 0) {
        snprintf(err, errlen, "cannot write %s", vocab);
        return KILN_EIO;
    }
    FILE *f = fopen(merges, "wb");
    int bad = !f;
    if (f) {
        bad = fputs("#version: 0.2\n", f) < 0;
        bad |= fclose(f) != 0;
    }
    if (bad) {
        snprintf(err, errlen, "cannot write %s", merges);
        return KILN_EIO;
    }
    return 0;
}
