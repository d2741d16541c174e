/* LoadImage's decoder (see image_decode.h): stb_image compiled privately into this file,
 * a small EXIF reader for the orientation tag, and the float conversion. */
#include "image_decode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/error.h"

/* stb_image is compiled here with static linkage so that it can never clash with another
 * copy in the host or in another pack; only decoding from memory is needed. */
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO
/* stb declares stbi_set_unpremultiply_on_load_thread but defines it under another name;
 * with static linkage GCC reports that at the end of the file, so the warning stays off
 * for the whole file. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <stb_image.h>
#pragma GCC diagnostic pop

static void set_err(char *err, size_t err_size, const char *msg)
{
    if (err && err_size)
        snprintf(err, err_size, "%s", msg);
}

static int is_gif(const uint8_t *data, size_t len)
{
    return len >= 6 && memcmp(data, "GIF8", 4) == 0;
}

/* GIF frames always come back with an alpha channel; the file has transparency only
 * when some pixel of some frame is not opaque. */
static int any_transparent(const uint8_t *rgba, size_t pixels)
{
    for (size_t i = 0; i < pixels; i++)
        if (rgba[4 * i + 3] != 255)
            return 1;
    return 0;
}

static int decode_pixels(const uint8_t *data, int len, kiln__core_decoded_t *out, int *comp)
{
    int w = 0, h = 0;
    if (is_gif(data, (size_t)len)) {
        int *delays = NULL, frames = 0;
        out->pixels = stbi_load_gif_from_memory(data, len, &delays, &w, &h, &frames, comp, 4);
        free(delays);
        out->frames = frames;
    } else if (stbi_is_16_bit_from_memory(data, len)) {
        out->pixels = stbi_load_16_from_memory(data, len, &w, &h, comp, 4);
        out->is16 = 1;
        out->frames = 1;
    } else {
        out->pixels = stbi_load_from_memory(data, len, &w, &h, comp, 4);
        out->frames = 1;
    }
    out->width = w;
    out->height = h;
    return out->pixels ? 0 : KILN_EPARSE;
}

int kiln__core_image_decode(const uint8_t *data, size_t len, int64_t max_elements,
                            kiln__core_decoded_t *out, char *err, size_t err_size)
{
    memset(out, 0, sizeof *out);
    int w = 0, h = 0, comp = 0;
    if (!data || len == 0 || len > 0x7fffffff ||
        !stbi_info_from_memory(data, (int)len, &w, &h, &comp)) {
        set_err(err, err_size, "not a supported image format");
        return KILN_EPARSE;
    }
    if (w < 1 || h < 1 || (int64_t)w * h * 3 > max_elements) {
        set_err(err, err_size, "image is too large");
        return KILN_ELIMIT;
    }
    if (decode_pixels(data, (int)len, out, &comp)) {
        const char *why = stbi_failure_reason();
        set_err(err, err_size, why ? why : "corrupt image");
        kiln__core_decoded_free(out);
        return strcmp(why ? why : "", "outofmem") == 0 ? KILN_ENOMEM : KILN_EPARSE;
    }
    size_t pixels = (size_t)out->frames * (size_t)out->width * (size_t)out->height;
    if (out->frames < 1 || (int64_t)pixels * 3 > max_elements) {
        set_err(err, err_size, "image is too large");
        kiln__core_decoded_free(out);
        return KILN_ELIMIT;
    }
    if (is_gif(data, len))
        out->has_alpha = any_transparent(out->pixels, pixels);
    else
        out->has_alpha = comp == 2 || comp == 4;
    if (kiln__core_decoded_orient(out, kiln__core_exif_orientation(data, len))) {
        kiln__core_decoded_free(out);
        set_err(err, err_size, "out of memory");
        return KILN_ENOMEM;
    }
    return 0;
}

void kiln__core_decoded_free(kiln__core_decoded_t *d)
{
    free(d->pixels);
    memset(d, 0, sizeof *d);
}

void kiln__core_decoded_to_float(const kiln__core_decoded_t *d, float *image, float *mask)
{
    size_t n = (size_t)d->frames * (size_t)d->width * (size_t)d->height;
    const float scale = d->is16 ? 65535.0f : 255.0f;
    for (size_t i = 0; i < n; i++) {
        float px[4];
        for (int c = 0; c < 4; c++)
            px[c] = d->is16 ? (float)((const uint16_t *)d->pixels)[4 * i + c]
                            : (float)((const uint8_t *)d->pixels)[4 * i + c];
        image[3 * i] = px[0] / scale;
        image[3 * i + 1] = px[1] / scale;
        image[3 * i + 2] = px[2] / scale;
        if (mask && d->has_alpha)
            mask[i] = 1.0f - px[3] / scale;
    }
}

/* ---- EXIF orientation ------------------------------------------------------------------ */

static unsigned rd16(const uint8_t *p, int le)
{
    return le ? (unsigned)p[0] | (unsigned)p[1] << 8 : (unsigned)p[0] << 8 | p[1];
}

static uint32_t rd32(const uint8_t *p, int le)
{
    return le ? (uint32_t)rd16(p, 1) | (uint32_t)rd16(p + 2, 1) << 16
              : (uint32_t)rd16(p, 0) << 16 | (uint32_t)rd16(p + 2, 0);
}

/* Reads tag 0x0112 (Orientation, SHORT) from IFD0 of a TIFF structure. */
static int tiff_orientation(const uint8_t *t, size_t len)
{
    if (len < 8 || !(memcmp(t, "II", 2) == 0 || memcmp(t, "MM", 2) == 0))
        return 1;
    int le = t[0] == 'I';
    if (rd16(t + 2, le) != 42)
        return 1;
    uint32_t ifd = rd32(t + 4, le);
    if (ifd > len - 2)
        return 1;
    unsigned count = rd16(t + ifd, le);
    for (unsigned i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + 12 * (size_t)i;
        if (e + 12 > len)
            return 1;
        if (rd16(t + e, le) == 0x0112 && rd16(t + e + 2, le) == 3) {
            unsigned v = rd16(t + e + 8, le);
            return v >= 1 && v <= 8 ? (int)v : 1;
        }
    }
    return 1;
}

static int jpeg_orientation(const uint8_t *d, size_t len)
{
    size_t p = 2;
    while (p + 4 <= len) {
        if (d[p] != 0xFF)
            return 1;
        uint8_t marker = d[p + 1];
        if (marker == 0xFF) {       /* fill byte */
            p++;
            continue;
        }
        if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {
            p += 2;
            continue;
        }
        if (marker == 0xDA || marker == 0xD9)   /* image data or end: no EXIF before */
            return 1;
        size_t seg = (size_t)d[p + 2] << 8 | d[p + 3];
        if (seg < 2 || p + 2 + seg > len)
            return 1;
        if (marker == 0xE1 && seg >= 8 && memcmp(d + p + 4, "Exif\0\0", 6) == 0)
            return tiff_orientation(d + p + 10, seg - 8);
        p += 2 + seg;
    }
    return 1;
}

static int png_orientation(const uint8_t *d, size_t len)
{
    size_t p = 8;
    while (p + 12 <= len) {
        uint32_t n = rd32(d + p, 0);
        if (n > len - p - 12)
            return 1;
        if (memcmp(d + p + 4, "eXIf", 4) == 0)
            return tiff_orientation(d + p + 8, n);
        if (memcmp(d + p + 4, "IDAT", 4) == 0 || memcmp(d + p + 4, "IEND", 4) == 0)
            return 1;
        p += 12 + (size_t)n;
    }
    return 1;
}

int kiln__core_exif_orientation(const uint8_t *data, size_t len)
{
    if (len >= 4 && data[0] == 0xFF && data[1] == 0xD8)
        return jpeg_orientation(data, len);
    if (len >= 8 && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0)
        return png_orientation(data, len);
    return 1;
}

/* Source pixel of output (ox, oy) for an orientation, in a w x h source. */
static void orient_source(int o, int w, int h, int ox, int oy, int *sx, int *sy)
{
    switch (o) {
    case 2: *sx = w - 1 - ox, *sy = oy; break;
    case 3: *sx = w - 1 - ox, *sy = h - 1 - oy; break;
    case 4: *sx = ox, *sy = h - 1 - oy; break;
    case 5: *sx = oy, *sy = ox; break;
    case 6: *sx = oy, *sy = h - 1 - ox; break;
    case 7: *sx = w - 1 - oy, *sy = h - 1 - ox; break;
    case 8: *sx = w - 1 - oy, *sy = ox; break;
    default: *sx = ox, *sy = oy; break;
    }
}

int kiln__core_decoded_orient(kiln__core_decoded_t *d, int orientation)
{
    if (orientation < 2 || orientation > 8)
        return 0;
    int w = d->width, h = d->height, swap = orientation >= 5;
    int ow = swap ? h : w, oh = swap ? w : h;
    size_t px = d->is16 ? 8 : 4, plane = (size_t)w * (size_t)h * px;
    uint8_t *out = malloc(plane * (size_t)d->frames);
    if (!out)
        return KILN_ENOMEM;
    for (int f = 0; f < d->frames; f++) {
        const uint8_t *src = (const uint8_t *)d->pixels + (size_t)f * plane;
        uint8_t *dst = out + (size_t)f * plane;
        for (int oy = 0; oy < oh; oy++) {
            for (int ox = 0; ox < ow; ox++) {
                int sx, sy;
                orient_source(orientation, w, h, ox, oy, &sx, &sy);
                memcpy(dst + ((size_t)oy * ow + ox) * px, src + ((size_t)sy * w + sx) * px, px);
            }
        }
    }
    free(d->pixels);
    d->pixels = out;
    d->width = ow;
    d->height = oh;
    return 0;
}
