/* Lanczos resizing as ComfyUI gets it from PIL: the image is quantized to 8 bits, then
 * resampled by PIL's two-pass fixed-point resampler (horizontal pass first, 22-bit
 * coefficients, support 3 widened by the downscale factor), with alpha premultiplied for
 * LA/RGBA images, and read back as byte / 255. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/error.h"
#include "png_write.h"
#include "resize.h"

#define PRECISION_BITS (32 - 8 - 2)

/* Per-axis coefficients: output i reads `bounds[2i+1]` inputs from `bounds[2i]` with
 * fixed-point weights k[i*ksize ...]. */
typedef struct coeffs {
    int64_t ksize;
    int64_t *bounds;        /* owned */
    int32_t *k;             /* owned */
} coeffs_t;

static double sinc(double x)
{
    if (x == 0.0)
        return 1.0;
    x *= M_PI;
    return sin(x) / x;
}

static double lanczos3(double x)
{
    return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3.0) : 0.0;
}

static int coeffs_build(coeffs_t *cf, int64_t in, int64_t out)
{
    double scale = (double)in / (double)out;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 3.0 * filterscale;
    cf->ksize = (int64_t)ceil(support) * 2 + 1;
    cf->bounds = malloc((size_t)out * 2 * sizeof *cf->bounds);
    cf->k = malloc((size_t)(out * cf->ksize) * sizeof *cf->k);
    double *pk = malloc((size_t)cf->ksize * sizeof *pk);
    if (!cf->bounds || !cf->k || !pk) {
        free(pk);
        return KILN_ENOMEM;
    }
    for (int64_t xx = 0; xx < out; xx++) {
        double center = ((double)xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        /* PIL rounds by adding 0.5 and truncating toward zero. */
        int64_t xmin = (int64_t)(center - support + 0.5);
        int64_t xmax = (int64_t)(center + support + 0.5);
        xmin = xmin < 0 ? 0 : xmin;
        xmax = (xmax > in ? in : xmax) - xmin;
        xmax = xmax > cf->ksize ? cf->ksize : xmax;
        for (int64_t x = 0; x < xmax; x++) {
            pk[x] = lanczos3(((double)(x + xmin) - center + 0.5) * ss);
            ww += pk[x];
        }
        int32_t *k = cf->k + xx * cf->ksize;
        for (int64_t x = 0; x < cf->ksize; x++) {
            double v = x < xmax ? (ww != 0.0 ? pk[x] / ww : pk[x]) : 0.0;
            v *= (double)(1 << PRECISION_BITS);
            k[x] = (int32_t)(v < 0 ? -0.5 + v : 0.5 + v);
        }
        cf->bounds[2 * xx] = xmin;
        cf->bounds[2 * xx + 1] = xmax;
    }
    free(pk);
    return 0;
}

static uint8_t clip8(int64_t acc)
{
    if (acc < 0)
        return 0;
    acc >>= PRECISION_BITS;
    return acc > 255 ? 255 : (uint8_t)acc;
}

/* Horizontal pass: in [h, w_in, c] -> out [h, w_out, c]. */
static void hpass(const uint8_t *in, uint8_t *out, int64_t h, int64_t w_in, int64_t w_out,
                  int64_t c, const coeffs_t *cf)
{
    for (int64_t y = 0; y < h; y++) {
        const uint8_t *row = in + y * w_in * c;
        for (int64_t i = 0; i < w_out; i++) {
            int64_t xmin = cf->bounds[2 * i], count = cf->bounds[2 * i + 1];
            const int32_t *k = cf->k + i * cf->ksize;
            for (int64_t ch = 0; ch < c; ch++) {
                int64_t acc = 1 << (PRECISION_BITS - 1);
                for (int64_t x = 0; x < count; x++)
                    acc += (int64_t)row[(xmin + x) * c + ch] * k[x];
                out[(y * w_out + i) * c + ch] = clip8(acc);
            }
        }
    }
}

/* Vertical pass: in [h_in, w, c] -> out [h_out, w, c]. */
static void vpass(const uint8_t *in, uint8_t *out, int64_t h_out, int64_t w, int64_t c,
                  const coeffs_t *cf)
{
    for (int64_t i = 0; i < h_out; i++) {
        int64_t ymin = cf->bounds[2 * i], count = cf->bounds[2 * i + 1];
        const int32_t *k = cf->k + i * cf->ksize;
        for (int64_t j = 0; j < w * c; j++) {
            int64_t acc = 1 << (PRECISION_BITS - 1);
            for (int64_t y = 0; y < count; y++)
                acc += (int64_t)in[(ymin + y) * w * c + j] * k[y];
            out[i * w * c + j] = clip8(acc);
        }
    }
}

/* PIL's RGBA -> RGBa (and LA -> La): color times alpha / 255, rounded. */
static void premultiply(uint8_t *px, int64_t n, int64_t c)
{
    for (int64_t i = 0; i < n; i++, px += c) {
        unsigned a = px[c - 1];
        for (int64_t ch = 0; ch < c - 1; ch++) {
            unsigned t = px[ch] * a + 128;
            px[ch] = (uint8_t)(((t >> 8) + t) >> 8);
        }
    }
}

/* PIL's RGBa -> RGBA: color * 255 / alpha, truncated; alpha 0 and 255 copy. */
static void unpremultiply(uint8_t *px, int64_t n, int64_t c)
{
    for (int64_t i = 0; i < n; i++, px += c) {
        unsigned a = px[c - 1];
        if (a == 0 || a == 255)
            continue;
        for (int64_t ch = 0; ch < c - 1; ch++) {
            unsigned v = 255u * px[ch] / a;
            px[ch] = (uint8_t)(v > 255 ? 255 : v);
        }
    }
}

int kiln__core_resize_lanczos(const float *src, int64_t w, int64_t c, const kiln__core_rect_t *r,
                              float *dst, int64_t out_h, int64_t out_w)
{
    int64_t h = r->h, rw = r->w;
    int need_h = out_w != rw, need_v = out_h != h, alpha = (c == 2 || c == 4);
    uint8_t *img = malloc((size_t)(h * rw * c));
    uint8_t *tmp = need_h ? malloc((size_t)(h * out_w * c)) : NULL;
    uint8_t *res = need_v ? malloc((size_t)(out_h * out_w * c)) : NULL;
    coeffs_t ch = {0}, cv = {0};
    int err = img && (tmp || !need_h) && (res || !need_v) ? 0 : KILN_ENOMEM;
    if (!err && need_h)
        err = coeffs_build(&ch, rw, out_w);
    if (!err && need_v)
        err = coeffs_build(&cv, h, out_h);
    if (!err) {
        for (int64_t y = 0; y < h; y++)    // [h, rw, c] bytes
            kiln__core_float_to_u8(src + ((r->y + y) * w + r->x) * c, (size_t)(rw * c),
                                   img + y * rw * c);
        /* PIL returns an unchanged copy when the size does not change. */
        if (alpha && (need_h || need_v))
            premultiply(img, h * rw, c);
        uint8_t *cur = img;
        if (need_h) {   // [h, out_w, c]
            hpass(cur, tmp, h, rw, out_w, c, &ch);
            cur = tmp;
        }
        if (need_v) {   // [out_h, out_w, c]
            vpass(cur, res, out_h, out_w, c, &cv);
            cur = res;
        }
        if (alpha && (need_h || need_v))
            unpremultiply(cur, out_h * out_w, c);
        for (int64_t i = 0; i < out_h * out_w * c; i++)
            dst[i] = (float)cur[i] / 255.0f;
    }
    free(ch.bounds);
    free(ch.k);
    free(cv.bounds);
    free(cv.k);
    free(img);
    free(tmp);
    free(res);
    return err;
}
