/* Tests of the core pack's PNG writer (nodes/core/png_write.h): pixels round-trip through
 * stb_image exactly; text chunks sit right after IHDR with valid CRCs and exact text; zlib
 * level, IDAT chunking and row filters are PIL's (files byte-identical to Pillow's for a
 * reference pattern); and the float -> byte conversion matches numpy's. */
#include <stdint.h>
#include <zlib.h>

#include "kiln/error.h"

#include "runner.h"

#include "../../nodes/core/png_write.h"

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb_image.h>
#pragma GCC diagnostic pop

/* ---- a minimal PNG chunk reader ------------------------------------------------------- */

typedef struct chunk {
    char type[5];
    const uint8_t *data;
    uint32_t len;
} chunk_t;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Splits a PNG into chunks, asserting the signature and every CRC. Returns the count. */
static int read_chunks(const uint8_t *png, size_t len, chunk_t *out, int max)
{
    ASSERT(len >= 8 && memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0);
    size_t p = 8;
    int n = 0;
    while (p < len) {
        ASSERT(p + 12 <= len);
        uint32_t clen = be32(png + p);
        ASSERT(p + 12 + clen <= len);
        ASSERT(n < max);
        memcpy(out[n].type, png + p + 4, 4);
        out[n].type[4] = 0;
        out[n].data = png + p + 8;
        out[n].len = clen;
        uLong crc = crc32(0L, png + p + 4, 4 + clen);
        ASSERT_EQ_INT(be32(png + p + 8 + clen), (uint32_t)crc);
        p += 12 + clen;
        n++;
    }
    ASSERT_EQ_INT(p, len);
    return n;
}

static uint8_t *random_pixels(size_t n, uint32_t seed)
{
    uint8_t *px = malloc(n);
    ASSERT(px);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        /* Mix smooth gradients with noise so that every filter type gets picked. */
        px[i] = (i % 7 < 3) ? (uint8_t)(seed >> 24) : (uint8_t)(i / 3);
    }
    return px;
}

static void roundtrip(uint32_t w, uint32_t h, int channels)
{
    size_t n = (size_t)w * h * channels;
    uint8_t *px = random_pixels(n, w * 31 + h + (uint32_t)channels);
    uint8_t *png = NULL;
    size_t len = 0;
    ASSERT_EQ_INT(kiln__core_png_encode(px, w, h, channels, NULL, 0, 4, &png, &len), 0);
    int dw, dh, dc;
    uint8_t *back = stbi_load_from_memory(png, (int)len, &dw, &dh, &dc, channels);
    ASSERT(back);
    ASSERT_EQ_INT(dw, w);
    ASSERT_EQ_INT(dh, h);
    ASSERT_EQ_INT(dc, channels);
    ASSERT(memcmp(back, px, n) == 0);
    stbi_image_free(back);
    free(png);
    free(px);
}

static void test_png_roundtrip_all_channel_counts(void)
{
    roundtrip(37, 23, 3);
    roundtrip(37, 23, 4);
    roundtrip(5, 9, 1);
    roundtrip(5, 9, 2);
    roundtrip(1, 1, 3);
    roundtrip(300, 2, 4);
}

static void test_png_ihdr_fields(void)
{
    uint8_t px[2 * 3 * 4] = {0};
    uint8_t *png = NULL;
    size_t len = 0;
    ASSERT_EQ_INT(kiln__core_png_encode(px, 3, 2, 4, NULL, 0, 4, &png, &len), 0);
    chunk_t c[8];
    int n = read_chunks(png, len, c, 8);
    ASSERT_STR_EQ(c[0].type, "IHDR");
    ASSERT_EQ_INT(c[0].len, 13);
    ASSERT_EQ_INT(be32(c[0].data), 3);
    ASSERT_EQ_INT(be32(c[0].data + 4), 2);
    ASSERT_EQ_INT(c[0].data[8], 8);     /* bit depth */
    ASSERT_EQ_INT(c[0].data[9], 6);     /* RGBA */
    ASSERT_EQ_INT(c[0].data[12], 0);    /* not interlaced */
    ASSERT_STR_EQ(c[n - 1].type, "IEND");
    ASSERT_EQ_INT(c[n - 1].len, 0);
    free(png);
    ASSERT_EQ_INT(kiln__core_png_encode(px, 3, 2, 3, NULL, 0, 4, &png, &len), 0);
    read_chunks(png, len, c, 8);
    ASSERT_EQ_INT(c[0].data[9], 2);     /* RGB */
    free(png);
}

static void test_png_text_chunks_follow_ihdr(void)
{
    const char *prompt = "{\"3\": {\"inputs\": {\"seed\": 5, \"text\": \"a \\u00e9\"}, "
                         "\"class_type\": \"KSampler\"}}";
    const char *workflow = "{\"nodes\": [], \"links\": NaN}";
    kiln__core_png_text_t texts[2] = {{"prompt", prompt}, {"workflow", workflow}};
    uint8_t *px = random_pixels(16 * 16 * 3, 7);
    uint8_t *png = NULL;
    size_t len = 0;
    ASSERT_EQ_INT(kiln__core_png_encode(px, 16, 16, 3, texts, 2, 4, &png, &len), 0);
    chunk_t c[16];
    int n = read_chunks(png, len, c, 16);
    ASSERT(n >= 5);
    ASSERT_STR_EQ(c[0].type, "IHDR");
    ASSERT_STR_EQ(c[1].type, "tEXt");
    ASSERT_STR_EQ(c[2].type, "tEXt");
    ASSERT_STR_EQ(c[3].type, "IDAT");
    ASSERT_STR_EQ(c[n - 1].type, "IEND");
    ASSERT_EQ_INT(c[1].len, strlen("prompt") + 1 + strlen(prompt));
    ASSERT(memcmp(c[1].data, "prompt\0", 7) == 0);
    ASSERT(memcmp(c[1].data + 7, prompt, strlen(prompt)) == 0);
    ASSERT_EQ_INT(c[2].len, strlen("workflow") + 1 + strlen(workflow));
    ASSERT(memcmp(c[2].data, "workflow\0", 9) == 0);
    ASSERT(memcmp(c[2].data + 9, workflow, strlen(workflow)) == 0);
    /* The pixels still decode. */
    int w, h, ch;
    uint8_t *back = stbi_load_from_memory(png, (int)len, &w, &h, &ch, 3);
    ASSERT(back && memcmp(back, px, 16 * 16 * 3) == 0);
    stbi_image_free(back);
    free(png);
    free(px);
}

static void test_png_utf8_text_becomes_itxt(void)
{
    kiln__core_png_text_t t = {"note", "caf\xc3\xa9"};
    uint8_t px[3] = {1, 2, 3};
    uint8_t *png = NULL;
    size_t len = 0;
    ASSERT_EQ_INT(kiln__core_png_encode(px, 1, 1, 3, &t, 1, 4, &png, &len), 0);
    chunk_t c[8];
    read_chunks(png, len, c, 8);
    ASSERT_STR_EQ(c[1].type, "iTXt");
    ASSERT_EQ_INT(c[1].len, 4 + 5 + 5);
    ASSERT(memcmp(c[1].data, "note\0\0\0\0\0caf\xc3\xa9", 14) == 0);
    free(png);
}

static void test_png_rejects_bad_arguments(void)
{
    uint8_t px[12] = {0};
    uint8_t *png = NULL;
    size_t len = 0;
    kiln__core_png_text_t empty_key = {"", "x"};
    char long_key[81];
    memset(long_key, 'k', 80);
    long_key[80] = 0;
    kiln__core_png_text_t too_long = {long_key, "x"};
    ASSERT_EQ_INT(kiln__core_png_encode(px, 0, 1, 3, NULL, 0, 4, &png, &len), KILN_EINVAL);
    ASSERT_EQ_INT(kiln__core_png_encode(px, 1, 1, 5, NULL, 0, 4, &png, &len), KILN_EINVAL);
    ASSERT_EQ_INT(kiln__core_png_encode(px, 1, 1, 3, NULL, 0, 10, &png, &len), KILN_EINVAL);
    ASSERT_EQ_INT(kiln__core_png_encode(px, 1, 1, 3, &empty_key, 1, 4, &png, &len), KILN_EINVAL);
    ASSERT_EQ_INT(kiln__core_png_encode(px, 1, 1, 3, &too_long, 1, 4, &png, &len), KILN_EINVAL);
    ASSERT(png == NULL);
}

/* The zlib header's FLEVEL bits record the level class: 0 for level 1, 1 for levels 2-5;
 * IDAT chunks are PIL's 65536-byte encoder buffers except the last. */
static void test_png_level_and_idat_chunking(void)
{
    uint32_t w = 300, h = 300;
    uint8_t *px = malloc(w * h * 3);
    uint32_t seed = 1;
    for (size_t i = 0; i < w * h * 3; i++) {
        seed = seed * 1664525u + 1013904223u;
        px[i] = (uint8_t)(seed >> 24);
    }
    const int levels[2] = {4, 1};
    const int flevel[2] = {1, 0};
    for (int k = 0; k < 2; k++) {
        uint8_t *png = NULL;
        size_t len = 0;
        ASSERT_EQ_INT(kiln__core_png_encode(px, w, h, 3, NULL, 0, levels[k], &png, &len), 0);
        chunk_t c[16];
        int n = read_chunks(png, len, c, 16);
        ASSERT_STR_EQ(c[1].type, "IDAT");
        ASSERT_EQ_INT(c[1].data[0], 0x78);
        ASSERT_EQ_INT(c[1].data[1] >> 6, flevel[k]);
        ASSERT_EQ_INT((c[1].data[0] * 256 + c[1].data[1]) % 31, 0);
        ASSERT(n >= 7);     /* incompressible: 270 kB of pixels need five chunks */
        for (int i = 1; i < n - 2; i++) {
            ASSERT_STR_EQ(c[i].type, "IDAT");
            ASSERT_EQ_INT(c[i].len, 65536);
        }
        ASSERT_STR_EQ(c[n - 2].type, "IDAT");
        ASSERT(c[n - 2].len > 0 && c[n - 2].len <= 65536);
        free(png);
    }
    free(px);
}

/* PIL 12.3's PNG files for a test pattern, byte k(y, x, c) = (xy / 4 + (31x + 17y + 7c)
 * mod 13) mod 256, with text chunks prompt = {"a": 1} and workflow = {"b": 2}: file length
 * and CRC-32, and the CRC-32 of the inflated IDAT stream (the filtered rows, which shows
 * that every row's filter choice matches PIL's whatever zlib build compresses them). */
static void test_png_matches_pil(void)
{
    static const struct {
        uint32_t h, w;
        int c, level;
        size_t len;
        uint32_t file_crc, rows_crc;
    } refs[4] = {{37, 23, 3, 4, 792, 0xa9f7eca3, 0x39954d50},
                 {37, 23, 3, 1, 827, 0x0d399c45, 0x39954d50},
                 {64, 48, 4, 4, 2184, 0x0173b994, 0xf4ae66c8},
                 {64, 48, 4, 1, 2411, 0xfe23004f, 0xf4ae66c8}};
    kiln__core_png_text_t texts[2] = {{"prompt", "{\"a\": 1}"}, {"workflow", "{\"b\": 2}"}};
    for (int k = 0; k < 4; k++) {
        uint32_t h = refs[k].h, w = refs[k].w;
        int c = refs[k].c;
        uint8_t *px = malloc((size_t)h * w * (size_t)c);
        for (uint32_t y = 0; y < h; y++)
            for (uint32_t x = 0; x < w; x++)
                for (int ch = 0; ch < c; ch++)
                    px[(y * w + x) * (uint32_t)c + (uint32_t)ch] =
                        (uint8_t)((x * y / 4 + (x * 31 + y * 17 + (uint32_t)ch * 7) % 13) % 256);
        uint8_t *png = NULL;
        size_t len = 0;
        ASSERT_EQ_INT(kiln__core_png_encode(px, w, h, c, texts, 2, refs[k].level, &png, &len), 0);
        chunk_t ch[16];
        int n = read_chunks(png, len, ch, 16);
        uint8_t *z = malloc(len), *rows = malloc((size_t)h * (w * (size_t)c + 1));
        size_t zlen = 0;
        for (int i = 0; i < n; i++)
            if (strcmp(ch[i].type, "IDAT") == 0) {
                memcpy(z + zlen, ch[i].data, ch[i].len);
                zlen += ch[i].len;
            }
        uLongf rlen = (uLongf)h * (w * (uLongf)c + 1);
        ASSERT_EQ_INT(uncompress(rows, &rlen, z, (uLong)zlen), Z_OK);
        ASSERT_EQ_INT((uint32_t)crc32(0, rows, (uInt)rlen), refs[k].rows_crc);
        /* zlib 1.2.13 (Debian 12) deflates these rows to PIL's very bytes. */
        if (strcmp(zlibVersion(), "1.2.13") == 0) {
            ASSERT_EQ_INT(len, refs[k].len);
            ASSERT_EQ_INT((uint32_t)crc32(0, png, (uInt)len), refs[k].file_crc);
        }
        free(z);
        free(rows);
        free(png);
        free(px);
    }
}

static void test_float_to_u8_matches_numpy(void)
{
    const float in[10] = {0.0f, 1.0f, 0.5f, -0.2f, 1.7f, 0.999f, 0.00392f, 0.003922f,
                          NAN, 100.0f / 255.0f};
    uint8_t out[10];
    kiln__core_float_to_u8(in, 10, out);
    ASSERT_EQ_INT(out[0], 0);
    ASSERT_EQ_INT(out[1], 255);
    ASSERT_EQ_INT(out[2], 127);     /* 127.5 truncates */
    ASSERT_EQ_INT(out[3], 0);
    ASSERT_EQ_INT(out[4], 255);
    ASSERT_EQ_INT(out[5], 254);     /* 254.745 */
    ASSERT_EQ_INT(out[6], 0);       /* 0.9996 */
    ASSERT_EQ_INT(out[7], 1);       /* 1.00011 */
    ASSERT_EQ_INT(out[8], 0);
    ASSERT_EQ_INT(out[9], 100);
}

KILN_TEST_MAIN(TEST(test_png_roundtrip_all_channel_counts), TEST(test_png_ihdr_fields),
               TEST(test_png_text_chunks_follow_ihdr), TEST(test_png_utf8_text_becomes_itxt),
               TEST(test_png_rejects_bad_arguments), TEST(test_png_level_and_idat_chunking),
               TEST(test_png_matches_pil),
               TEST(test_float_to_u8_matches_numpy))
