/* Resizing as torch's upsample kernels and PIL's resampler compute it (see resize.h).
 *
 * nearest-exact, bilinear and bicubic are separable: a per-axis table of source indices
 * and weights, applied along W first and then along H, which is the nesting torch's CPU
 * kernel uses (the inner sum runs over W), so float rounding matches it. area is
 * adaptive average pooling over each output pixel's window. lanczos follows ComfyUI,
 * which hands 8-bit copies of the image to PIL: PIL's fixed-point two-pass resampler
 * (horizontal, then vertical) with premultiplied alpha for 2 and 4 channels. */
#include "resize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/error.h"

const char *const kiln__core_resize_method_names[] = {"nearest-exact", "bilinear", "area",
                                                      "bicubic", "lanczos", NULL};

int kiln__core_resize_method_parse(const char *name, kiln__core_resize_method_t *out)
{
    for (int i = 0; kiln__core_resize_method_names[i]; i++) {
        if (strcmp(name, kiln__core_resize_method_names[i]) == 0) {
            *out = (kiln__core_resize_method_t)i;
            return 0;
        }
    }
    return KILN_EINVAL;
}

void kiln__core_center_crop(int64_t h, int64_t w, int64_t out_h, int64_t out_w,
                            kiln__core_rect_t *r)
{
    double old_aspect = (double)w / (double)h, new_aspect = (double)out_w / (double)out_h;
    int64_t x = 0, y = 0;
    /* rint rounds half to even in the default rounding mode, as Python's round does. */
    if (old_aspect > new_aspect)
        x = (int64_t)rint(((double)w - (double)w * (new_aspect / old_aspect)) / 2.0);
    else if (old_aspect < new_aspect)
        y = (int64_t)rint(((double)h - (double)h * (old_aspect / new_aspect)) / 2.0);
    r->y = y;
    r->x = x;
    r->h = h - 2 * y;
    r->w = w - 2 * x;
}

/* Per-axis resampling table: output i reads source idx[i*n + k] with weight w[i*n + k]. */
typedef struct taps {
    int n;
    int64_t *idx;           /* owned */
    float *w;               /* owned */
} taps_t;

static int taps_alloc(taps_t *t, int n, int64_t out)
{
    t->n = n;
    t->idx = malloc((size_t)out * (size_t)n * sizeof *t->idx);
    t->w = malloc((size_t)out * (size_t)n * sizeof *t->w);
    return t->idx && t->w ? 0 : KILN_ENOMEM;
}

static void taps_free(taps_t *t)
{
    free(t->idx);
    free(t->w);
}

/* torch's source index for align_corners=False: scale * (dst + 0.5) - 0.5, clamped at 0
 * except for cubic. */
static float source_index(float scale, int64_t dst, int cubic)
{
    float src = scale * ((float)dst + 0.5f) - 0.5f;
    return (!cubic && src < 0.0f) ? 0.0f : src;
}

/* torch's guard_index_and_lambda: the floor index (at most in - 1) and the fraction. */
static int64_t guard_index(float real, int64_t in, float *lambda)
{
    int64_t i = (int64_t)floorf(real);
    if (i > in - 1)
        i = in - 1;
    float l = real - (float)i;
    *lambda = l < 0.0f ? 0.0f : l > 1.0f ? 1.0f : l;
    return i;
}

static float cubic_inner(float x, float a)
{
    return ((a + 2) * x - (a + 3)) * x * x + 1;
}

static float cubic_outer(float x, float a)
{
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
}

static int taps_build(taps_t *t, kiln__core_resize_method_t m, int64_t in, int64_t out)
{
    static const int ntaps[] = {1, 2, 0, 4};
    if (taps_alloc(t, ntaps[m], out))
        return KILN_ENOMEM;
    float scale = (float)in / (float)out;
    for (int64_t i = 0; i < out; i++) {
        int64_t *idx = t->idx + i * t->n;
        float *w = t->w + i * t->n;
        if (m == KILN__CORE_RESIZE_NEAREST_EXACT) {
            /* (dst + 0.5) is a double in torch; floorf then takes it as float. */
            int64_t s = (int64_t)floorf((float)(((double)i + 0.5) * (double)scale));
            idx[0] = s < in - 1 ? s : in - 1;
            w[0] = 1.0f;
        } else if (m == KILN__CORE_RESIZE_BILINEAR) {
            float l1 = 0.0f;
            int64_t i0 = in == out ? i : guard_index(source_index(scale, i, 0), in, &l1);
            idx[0] = i0;
            idx[1] = i0 + (i0 < in - 1 ? 1 : 0);
            w[0] = 1.0f - l1;
            w[1] = l1;
        } else {
            const float a = -0.75f;
            float tf;
            int64_t i0 = guard_index(source_index(scale, i, 1), in, &tf);
            float x2 = 1.0f - tf;
            w[0] = cubic_outer(tf + 1.0f, a);
            w[1] = cubic_inner(tf, a);
            w[2] = cubic_inner(x2, a);
            w[3] = cubic_outer(x2 + 1.0f, a);
            for (int k = 0; k < 4; k++) {
                int64_t s = i0 - 1 + k;
                idx[k] = s < 0 ? 0 : s > in - 1 ? in - 1 : s;
            }
        }
    }
    return 0;
}

/* One image: W pass into tmp [r->h, out_w, c], then H pass into dst [out_h, out_w, c]. */
static void separable(const float *src, int64_t w, int64_t c, const kiln__core_rect_t *r,
                      const taps_t *ty, const taps_t *tx, float *tmp, float *dst,
                      int64_t out_h, int64_t out_w)
{
    for (int64_t y = 0; y < r->h; y++) {
        const float *row = src + ((r->y + y) * w + r->x) * c;
        float *trow = tmp + y * out_w * c;
        for (int64_t ox = 0; ox < out_w; ox++) {
            const int64_t *idx = tx->idx + ox * tx->n;
            const float *wt = tx->w + ox * tx->n;
            for (int64_t ch = 0; ch < c; ch++) {
                float acc = row[idx[0] * c + ch] * wt[0];
                for (int k = 1; k < tx->n; k++)
                    acc += row[idx[k] * c + ch] * wt[k];
                trow[ox * c + ch] = acc;
            }
        }
    }
    for (int64_t oy = 0; oy < out_h; oy++) {
        const int64_t *idx = ty->idx + oy * ty->n;
        const float *wt = ty->w + oy * ty->n;
        float *orow = dst + oy * out_w * c;
        for (int64_t i = 0; i < out_w * c; i++) {
            float acc = tmp[idx[0] * out_w * c + i] * wt[0];
            for (int k = 1; k < ty->n; k++)
                acc += tmp[idx[k] * out_w * c + i] * wt[k];
            orow[i] = acc;
        }
    }
}

/* torch's adaptive_avg_pool2d: window [floor(i*in/out), ceil((i+1)*in/out)), summed in
 * row-major order and divided by its height, then its width. */
static void area(const float *src, int64_t w, int64_t c, const kiln__core_rect_t *r,
                 float *dst, int64_t out_h, int64_t out_w)
{
    for (int64_t oy = 0; oy < out_h; oy++) {
        int64_t y0 = oy * r->h / out_h, y1 = ((oy + 1) * r->h + out_h - 1) / out_h;
        for (int64_t ox = 0; ox < out_w; ox++) {
            int64_t x0 = ox * r->w / out_w, x1 = ((ox + 1) * r->w + out_w - 1) / out_w;
            for (int64_t ch = 0; ch < c; ch++) {
                float sum = 0.0f;
                for (int64_t y = y0; y < y1; y++)
                    for (int64_t x = x0; x < x1; x++)
                        sum += src[((r->y + y) * w + r->x + x) * c + ch];
                dst[(oy * out_w + ox) * c + ch] = sum / (float)(y1 - y0) / (float)(x1 - x0);
            }
        }
    }
}

int kiln__core_resize(const float *src, int64_t batch, int64_t h, int64_t w, int64_t c,
                      const kiln__core_rect_t *crop, kiln__core_resize_method_t method,
                      float *dst, int64_t out_h, int64_t out_w)
{
    kiln__core_rect_t whole = {0, 0, h, w};
    const kiln__core_rect_t *r = crop ? crop : &whole;
    if (!src || !dst || batch < 0 || h < 1 || w < 1 || c < 1 || out_h < 1 || out_w < 1 ||
        r->y < 0 || r->x < 0 || r->h < 1 || r->w < 1 || r->y + r->h > h || r->x + r->w > w ||
        (unsigned)method > KILN__CORE_RESIZE_LANCZOS)
        return KILN_EINVAL;
    int64_t in_plane = h * w * c, out_plane = out_h * out_w * c;
    if (method == KILN__CORE_RESIZE_AREA) {
        for (int64_t b = 0; b < batch; b++)
            area(src + b * in_plane, w, c, r, dst + b * out_plane, out_h, out_w);
        return 0;
    }
    if (method == KILN__CORE_RESIZE_LANCZOS) {
        for (int64_t b = 0; b < batch; b++) {
            int err = kiln__core_resize_lanczos(src + b * in_plane, w, c, r, dst + b * out_plane,
                                                out_h, out_w);
            if (err)
                return err;
        }
        return 0;
    }
    taps_t ty = {0}, tx = {0};
    float *tmp = malloc((size_t)(r->h * out_w * c) * sizeof *tmp);
    int err = tmp ? 0 : KILN_ENOMEM;
    if (!err)
        err = taps_build(&ty, method, r->h, out_h);
    if (!err)
        err = taps_build(&tx, method, r->w, out_w);
    for (int64_t b = 0; b < batch && !err; b++)
        separable(src + b * in_plane, w, c, r, &ty, &tx, tmp, dst + b * out_plane, out_h, out_w);
    taps_free(&ty);
    taps_free(&tx);
    free(tmp);
    return err;
}
