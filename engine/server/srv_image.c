/* Image work for /view previews and channels and for /upload/mask: stb_image decodes,
 * stb_image_write encodes PNG and JPEG (both compiled here with static linkage so they
 * never clash with another copy in the process), and a PNG chunk splicer carries text
 * metadata over. Runs on the pool only. There is no WebP encoder: see route_view.c. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO
#define STBI_NO_HDR
#define STBI_NO_LINEAR
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO

/* stb declares functions it defines under other names (or not at all with the options
 * above); with static linkage GCC reports them at the end of the file, so that warning
 * stays off for the whole file. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <stb_image.h>
/* stb_image_write's JPEG bit writer shifts a signed int into its sign bit; harmless on
 * every compiler kiln targets, but undefined, so UBSan builds would abort there. Its
 * functions are compiled without the shift check (the standard headers it includes are
 * already included above, so only stb's own `static`s are affected). */
#pragma GCC diagnostic ignored "-Wattributes"
#define static static __attribute__((no_sanitize("shift")))
#include <stb_image_write.h>
#undef static
#pragma GCC diagnostic pop

#include "server/paths.h"
#include "server/server_int.h"

/* Decoding a hostile file must not exhaust memory: 16k x 16k pixels at most. */
#define MAX_SIDE 16384

int kiln__img_decode(const void *data, size_t len, kiln__img_t *out)
{
    memset(out, 0, sizeof *out);
    if (len > (size_t)INT32_MAX)
        return KILN_ELIMIT;
    int w, h, comp;
    if (!stbi_info_from_memory(data, (int)len, &w, &h, &comp))
        return KILN_EPARSE;
    if (w <= 0 || h <= 0 || w > MAX_SIDE || h > MAX_SIDE)
        return KILN_ELIMIT;
    out->rgba = stbi_load_from_memory(data, (int)len, &w, &h, &comp, 4);
    if (!out->rgba)
        return KILN_EPARSE;
    out->w = w;
    out->h = h;
    out->has_alpha = comp == 2 || comp == 4;
    return 0;
}

void kiln__img_free(kiln__img_t *img)
{
    if (img->rgba)
        stbi_image_free(img->rgba);
    memset(img, 0, sizeof *img);
}

bool kiln__img_translucent(const kiln__img_t *img)
{
    size_t n = (size_t)img->w * (size_t)img->h;
    for (size_t i = 0; img->has_alpha && i < n; i++)
        if (img->rgba[i * 4 + 3] != 255)
            return true;
    return false;
}

/* RGB copy of the pixels (alpha dropped); malloc'd. */
static unsigned char *rgb_of(const kiln__img_t *img)
{
    size_t n = (size_t)img->w * (size_t)img->h;
    unsigned char *rgb = malloc(n * 3);
    for (size_t i = 0; rgb && i < n; i++)
        memcpy(rgb + i * 3, img->rgba + i * 4, 3);
    return rgb;
}

/* stb's compression level is a global: set once (ComfyUI saves masks at level 4). */
static void set_level(void)
{
    stbi_write_png_compression_level = 4;
}

unsigned char *kiln__img_png(const kiln__img_t *img, int channels, size_t *len)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, set_level);
    *len = 0;
    unsigned char *rgb = channels == 3 ? rgb_of(img) : NULL;
    if (channels == 3 && !rgb)
        return NULL;
    int n = 0;
    unsigned char *png = stbi_write_png_to_mem(rgb ? rgb : img->rgba, img->w * channels,
                                               img->w, img->h, channels, &n);
    free(rgb);
    if (!png)
        return NULL;
    /* stb allocates with STBIW_MALLOC (malloc), so the caller's free() matches. */
    *len = (size_t)n;
    return png;
}

typedef struct growbuf {
    unsigned char *data;
    size_t len, cap;
    bool failed;
} growbuf_t;

static void grow_write(void *ctx, void *data, int size)
{
    growbuf_t *g = ctx;
    if (g->failed || size <= 0)
        return;
    if (g->len + (size_t)size > g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64 * 1024;
        while (cap < g->len + (size_t)size)
            cap *= 2;
        unsigned char *d = realloc(g->data, cap);
        if (!d) {
            g->failed = true;
            return;
        }
        g->data = d;
        g->cap = cap;
    }
    memcpy(g->data + g->len, data, (size_t)size);
    g->len += (size_t)size;
}

unsigned char *kiln__img_jpeg(const kiln__img_t *img, int quality, size_t *len)
{
    *len = 0;
    unsigned char *rgb = rgb_of(img);
    if (!rgb)
        return NULL;
    growbuf_t g = {0};
    int ok = stbi_write_jpg_to_func(grow_write, &g, img->w, img->h, 3, rgb,
                                    quality < 1 ? 1 : quality > 100 ? 100 : quality);
    free(rgb);
    if (!ok || g.failed) {
        free(g.data);
        return NULL;
    }
    *len = g.len;
    return g.data;
}

/* ---- PNG chunks ----------------------------------------------------------------------- */

static const unsigned char png_sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Appends src's text chunks to g (whole chunks, CRC included). */
static void copy_text_chunks(growbuf_t *g, const unsigned char *src, size_t len)
{
    if (len < 8 || memcmp(src, png_sig, 8))
        return;
    for (size_t p = 8; p + 12 <= len;) {
        uint32_t n = be32(src + p);
        if (n > len - p - 12)
            break;
        const unsigned char *type = src + p + 4;
        if (!memcmp(type, "tEXt", 4) || !memcmp(type, "zTXt", 4) || !memcmp(type, "iTXt", 4))
            grow_write(g, (void *)(src + p), (int)(n + 12));
        if (!memcmp(type, "IEND", 4))
            break;
        p += 12 + (size_t)n;
    }
}

unsigned char *kiln__png_with_text(const unsigned char *png, size_t len, const void *src,
                                   size_t src_len, size_t *out_len)
{
    *out_len = 0;
    /* The signature and IHDR (8 + 25 bytes) come first in every PNG stb writes. */
    if (len < 33 || memcmp(png, png_sig, 8) || memcmp(png + 12, "IHDR", 4))
        return NULL;
    growbuf_t g = {0};
    grow_write(&g, (void *)png, 33);
    copy_text_chunks(&g, src, src_len);
    grow_write(&g, (void *)(png + 33), (int)(len - 33));
    if (g.failed) {
        free(g.data);
        return NULL;
    }
    *out_len = g.len;
    return g.data;
}
