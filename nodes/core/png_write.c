/* The PNG writer behind png_write.h: signature, IHDR, text chunks, IDAT chunks holding a
 * zlib stream of adaptively filtered rows, IEND. Filter choice, deflate parameters and
 * IDAT chunking follow PIL's PNG encoder so that files match ComfyUI's. */
#include "png_write.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "kiln/error.h"

/* PIL's ImageFile._save hands the encoder buffers of max(MAXBLOCK, 4 * width) bytes and
 * writes each one as its own IDAT chunk. */
#define PIL_MAXBLOCK 65536u

typedef struct outbuf {
    uint8_t *data;          /* owned */
    size_t len, cap;
} outbuf_t;

static int outbuf_reserve(outbuf_t *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len)
        return KILN_ENOMEM;
    if (b->len + extra <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra)
        cap = cap > SIZE_MAX / 2 ? b->len + extra : cap * 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return KILN_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Appends one chunk: length, type, data, CRC-32 of type and data. The data may come in
 * two pieces (a text chunk's header and its text) to avoid a copy. */
static int put_chunk2(outbuf_t *b, const char *type, const void *d1, size_t n1, const void *d2,
                      size_t n2)
{
    if (n1 + n2 > 0x7fffffffu || n2 > 0x7fffffffu)
        return KILN_EINVAL;
    int err = outbuf_reserve(b, 12 + n1 + n2);
    if (err)
        return err;
    uint8_t *p = b->data + b->len;
    put_u32(p, (uint32_t)(n1 + n2));
    memcpy(p + 4, type, 4);
    if (n1)
        memcpy(p + 8, d1, n1);
    if (n2)
        memcpy(p + 8 + n1, d2, n2);
    uLong crc = crc32(0L, p + 4, (uInt)(4 + n1 + n2));
    put_u32(p + 8 + n1 + n2, (uint32_t)crc);
    b->len += 12 + n1 + n2;
    return 0;
}

static int put_chunk(outbuf_t *b, const char *type, const void *data, size_t n)
{
    return put_chunk2(b, type, data, n, NULL, 0);
}

static int valid_keyword(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    if (n < 1 || n > 79)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c < 32 || (c > 126 && c < 161))
            return 0;
    }
    return 1;
}

static int put_text(outbuf_t *b, const kiln__core_png_text_t *t)
{
    if (!valid_keyword(t->key) || !t->text)
        return KILN_EINVAL;
    size_t klen = strlen(t->key), tlen = strlen(t->text);
    int ascii = 1;
    for (size_t i = 0; i < tlen && ascii; i++)
        ascii = (unsigned char)t->text[i] < 0x80;
    uint8_t head[79 + 5];
    memcpy(head, t->key, klen);
    if (ascii) {
        head[klen] = 0;     /* tEXt: keyword NUL text */
        return put_chunk2(b, "tEXt", head, klen + 1, t->text, tlen);
    }
    /* iTXt: keyword NUL, compression flag 0, method 0, empty language NUL, empty
     * translated keyword NUL, UTF-8 text. */
    memset(head + klen, 0, 5);
    return put_chunk2(b, "iTXt", head, klen + 5, t->text, tlen);
}

static unsigned row_cost(const uint8_t *row, size_t n)
{
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += row[i] < 128 ? row[i] : 256u - row[i];
    return sum;
}

/* Picks the row filter the way PIL does (libpng's heuristic: least sum of absolute signed
 * bytes), trying None, Up, Sub, Paeth in that order and keeping a later one only when it
 * is strictly better. Returns the filtered row including its leading filter byte. */
static const uint8_t *filter_row(const uint8_t *cur, const uint8_t *prev, size_t n, int bpp,
                                 uint8_t *scratch[3], uint8_t *none)
{
    none[0] = 0;
    memcpy(none + 1, cur, n);
    const uint8_t *best = none;
    unsigned sum = row_cost(cur, n);
    uint8_t *up = scratch[0], *sub = scratch[1], *paeth = scratch[2];
    if (sum > 0) {
        up[0] = 2;
        for (size_t i = 0; i < n; i++)
            up[i + 1] = (uint8_t)(cur[i] - prev[i]);
        unsigned s = row_cost(up + 1, n);
        if (s < sum)
            best = up, sum = s;
    }
    if (sum > 0) {
        sub[0] = 1;
        for (size_t i = 0; i < n; i++)
            sub[i + 1] = (uint8_t)(cur[i] - ((int)i >= bpp ? cur[i - (size_t)bpp] : 0));
        unsigned s = row_cost(sub + 1, n);
        if (s < sum)
            best = sub, sum = s;
    }
    if (sum > 0) {
        paeth[0] = 4;
        for (size_t i = 0; i < n; i++) {
            int a = (int)i >= bpp ? cur[i - (size_t)bpp] : 0;
            int b = prev[i];
            int c = (int)i >= bpp ? prev[i - (size_t)bpp] : 0;
            int pa = abs(b - c), pb = abs(a - c), pc = abs(a + b - 2 * c);
            int pred = (pa <= pb && pa <= pc) ? a : (pb <= pc) ? b : c;
            paeth[i + 1] = (uint8_t)(cur[i] - pred);
        }
        unsigned s = row_cost(paeth + 1, n);
        if (s < sum)
            best = paeth;
    }
    return best;
}

/* Runs deflate over `in`, emitting an IDAT chunk each time the staging buffer fills. */
static int deflate_into(z_stream *z, outbuf_t *b, const uint8_t *in, size_t n, int flush,
                        uint8_t *stage, size_t stage_size)
{
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)n;
    for (;;) {
        int rc = deflate(z, flush);
        if (rc == Z_STREAM_ERROR)
            return KILN_EIO;
        if (z->avail_out == 0) {
            int err = put_chunk(b, "IDAT", stage, stage_size);
            if (err)
                return err;
            z->next_out = stage;
            z->avail_out = (uInt)stage_size;
            continue;
        }
        if (flush == Z_FINISH ? rc == Z_STREAM_END : z->avail_in == 0)
            return 0;
    }
}

static int encode_idat(outbuf_t *b, const uint8_t *pixels, uint32_t width, uint32_t height,
                       int channels, int level)
{
    size_t n = (size_t)width * (size_t)channels;
    size_t stage_size = (size_t)width * 4 > PIL_MAXBLOCK ? (size_t)width * 4 : PIL_MAXBLOCK;
    uint8_t *mem = malloc(stage_size + 5 * (n + 1));
    if (!mem)
        return KILN_ENOMEM;
    uint8_t *stage = mem, *none = mem + stage_size, *zero = none + (n + 1);
    uint8_t *scratch[3] = {zero + (n + 1), zero + 2 * (n + 1), zero + 3 * (n + 1)};
    memset(zero, 0, n + 1);
    z_stream z;
    memset(&z, 0, sizeof z);
    /* PIL: deflateInit2(level, Z_DEFLATED, 15, 9, Z_FILTERED) for filtered PNG rows. */
    if (deflateInit2(&z, level, Z_DEFLATED, 15, 9, Z_FILTERED) != Z_OK) {
        free(mem);
        return KILN_ENOMEM;
    }
    z.next_out = stage;
    z.avail_out = (uInt)stage_size;
    int err = 0;
    const uint8_t *prev = zero;
    for (uint32_t y = 0; y < height && !err; y++) {
        const uint8_t *cur = pixels + (size_t)y * n;
        const uint8_t *row = filter_row(cur, prev, n, channels, scratch, none);
        err = deflate_into(&z, b, row, n + 1, Z_NO_FLUSH, stage, stage_size);
        prev = cur;
    }
    if (!err)
        err = deflate_into(&z, b, NULL, 0, Z_FINISH, stage, stage_size);
    if (!err && z.avail_out < stage_size)
        err = put_chunk(b, "IDAT", stage, stage_size - z.avail_out);
    deflateEnd(&z);
    free(mem);
    return err;
}

int kiln__core_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int channels,
                          const kiln__core_png_text_t *texts, size_t n_texts, int level,
                          uint8_t **out, size_t *out_len)
{
    static const uint8_t color_type[5] = {0, 0, 4, 2, 6};
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (!pixels || !out || !out_len || width < 1 || height < 1 || width > 0x7fffffffu ||
        height > 0x7fffffffu || channels < 1 || channels > 4 || level < 0 || level > 9 ||
        (size_t)width * (size_t)channels > 0x7ffffff0u || (n_texts && !texts))
        return KILN_EINVAL;
    for (size_t i = 0; i < n_texts; i++)
        if (!valid_keyword(texts[i].key) || !texts[i].text)
            return KILN_EINVAL;
    outbuf_t b = {0};
    int err = outbuf_reserve(&b, 8);
    if (err)
        return err;
    memcpy(b.data, signature, 8);
    b.len = 8;
    uint8_t ihdr[13];
    put_u32(ihdr, width);
    put_u32(ihdr + 4, height);
    ihdr[8] = 8;                    /* bit depth */
    ihdr[9] = color_type[channels];
    ihdr[10] = ihdr[11] = ihdr[12] = 0; /* deflate, adaptive filtering, no interlace */
    err = put_chunk(&b, "IHDR", ihdr, sizeof ihdr);
    for (size_t i = 0; i < n_texts && !err; i++)
        err = put_text(&b, &texts[i]);
    if (!err)
        err = encode_idat(&b, pixels, width, height, channels, level);
    if (!err)
        err = put_chunk(&b, "IEND", NULL, 0);
    if (err) {
        free(b.data);
        return err;
    }
    *out = b.data;
    *out_len = b.len;
    return 0;
}

void kiln__core_float_to_u8(const float *src, size_t n, uint8_t *dst)
{
    for (size_t i = 0; i < n; i++) {
        float v = 255.0f * src[i];
        /* !(v > 0) also catches NaN, which numpy's cast leaves undefined. */
        dst[i] = !(v > 0.0f) ? 0 : v >= 255.0f ? 255 : (uint8_t)v;
    }
}
