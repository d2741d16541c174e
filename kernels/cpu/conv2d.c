/* 2-D convolution on the CPU as im2col + GEMM. The column matrix is built for a band of
 * output rows at a time, so its size stays near COLS_BUDGET floats whatever the image
 * size (a VAE layer at 512x512 would need over a gigabyte in one piece). A 1x1, stride-1,
 * unpadded convolution over a foldable input skips im2col and is one GEMM per sample. */
#include <string.h>

#include "kernels/cpu/cpu_ops.h"

/* Floats in one band of the column matrix (8 MiB); at least one output row is always
 * taken, however wide. */
#define COLS_BUDGET ((int64_t)2 << 20)

typedef struct conv_dims {
    int64_t c, h, w; /* input channels and size */
    int64_t kh, kw;  /* kernel size */
    int64_t oh, ow;  /* output size */
    int64_t xs[3];   /* x strides of one sample along C, H, W (elements) */
} conv_dims_t;

/* Output columns [lo, hi) whose input column ow*stride + off lies inside 0..w-1. */
static void valid_cols(int64_t off, int64_t stride, int64_t w, int64_t ow, int64_t *lo, int64_t *hi)
{
    *lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
    *hi = (w - 1 - off) < 0 ? 0 : (w - 1 - off) / stride + 1;
    if (*hi > ow)
        *hi = ow;
    if (*lo > *hi)
        *lo = *hi;
}

/* Fills one row of the column matrix: tap (ki, kj) of channel c for output rows
 * oh0..oh1-1, zero where the tap falls into the padding. */
static void im2col_row(const float *xc, const conv_dims_t *d, const kiln__conv2d_geom_t *g,
                       int64_t ki, int64_t kj, int64_t oh0, int64_t oh1, float *row)
{
    int64_t off = kj * g->dilation_w - g->pad_left, lo, hi;
    valid_cols(off, g->stride_w, d->w, d->ow, &lo, &hi);
    for (int64_t oh = oh0; oh < oh1; oh++) {
        float *dst = row + (oh - oh0) * d->ow;
        int64_t ih = oh * g->stride_h - g->pad_top + ki * g->dilation_h;
        if (ih < 0 || ih >= d->h) {
            memset(dst, 0, (size_t)d->ow * sizeof *dst);
            continue;
        }
        const float *src = xc + ih * d->xs[1];
        memset(dst, 0, (size_t)lo * sizeof *dst);
        for (int64_t ow = lo; ow < hi; ow++)
            dst[ow] = src[(ow * g->stride_w + off) * d->xs[2]];
        memset(dst + hi, 0, (size_t)(d->ow - hi) * sizeof *dst);
    }
}

/* Fills cols [C*KH*KW, (oh1-oh0)*OW] from one sample x for output rows oh0..oh1-1. */
static void im2col(const float *x, const conv_dims_t *d, const kiln__conv2d_geom_t *g, int64_t oh0,
                   int64_t oh1, float *cols)
{
    int64_t p = (oh1 - oh0) * d->ow;
    for (int64_t c = 0; c < d->c; c++)
        for (int64_t ki = 0; ki < d->kh; ki++)
            for (int64_t kj = 0; kj < d->kw; kj++)
                im2col_row(x + c * d->xs[0], d, g, ki, kj, oh0, oh1,
                           cols + ((c * d->kh + ki) * d->kw + kj) * p);
}

/* 1 for a 1x1, stride-1, unpadded convolution whose sample reads as a [C, H*W] matrix
 * (*trans 0, row stride *ld) or its transpose (channels-last views: *trans 1). */
static int pointwise(const conv_dims_t *d, const kiln__conv2d_geom_t *g, int *trans, int64_t *ld)
{
    if (d->kh != 1 || d->kw != 1 || g->stride_h != 1 || g->stride_w != 1 || g->pad_top ||
        g->pad_left || d->oh != d->h || d->ow != d->w)
        return 0;
    int64_t ps; /* stride between consecutive pixels in H*W order */
    if (d->w == 1)
        ps = d->xs[1];
    else if (d->h == 1 || d->xs[1] == d->xs[2] * d->w)
        ps = d->xs[2];
    else
        return 0;
    int64_t hw = d->h * d->w;
    if (ps == 1 || hw == 1) {
        *trans = 0;
        *ld = d->c == 1 ? hw : d->xs[0];
        return 1;
    }
    if (d->xs[0] == 1 || d->c == 1) {
        *trans = 1;
        *ld = ps;
        return 1;
    }
    return 0;
}

/* out[n] = W x[n] + b for every sample; w is dense [OC, K], bias already in out. */
static int conv_samples(float *out, int64_t n, int64_t oc, const float *x, int64_t xn,
                        const float *w, const conv_dims_t *d, const kiln__conv2d_geom_t *g)
{
    int64_t k = d->c * d->kh * d->kw, ohw = d->oh * d->ow;
    int trans;
    int64_t ld;
    if (pointwise(d, g, &trans, &ld)) {
        for (int64_t i = 0; i < n; i++) // [OC, C] x [C, HW] -> [OC, HW]
            kiln__cpu_gemm(0, trans, oc, ohw, k, 1.0f, w, k, x + i * xn, ld, 1.0f,
                           out + i * oc * ohw, ohw);
        return 0;
    }
    int64_t band = COLS_BUDGET / (k * d->ow);
    band = band < 1 ? 1 : (band > d->oh ? d->oh : band);
    float *cols = kiln__cpu_scratch_alloc((size_t)(k * band * d->ow) * sizeof(float));
    if (!cols)
        return KILN_ENOMEM;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t oh0 = 0; oh0 < d->oh; oh0 += band) {
            int64_t oh1 = oh0 + band < d->oh ? oh0 + band : d->oh;
            im2col(x + i * xn, d, g, oh0, oh1, cols); // [K, rows*OW]
            kiln__cpu_gemm(0, 0, oc, (oh1 - oh0) * d->ow, k, 1.0f, w, k, cols, (oh1 - oh0) * d->ow,
                           1.0f, out + i * oc * ohw + oh0 * d->ow, ohw);
        }
    }
    kiln__cpu_scratch_free(cols);
    return 0;
}

int kiln__cpu_conv2d(kiln_tensor_t *out, const kiln_tensor_t *x, const kiln_tensor_t *w,
                     const kiln_tensor_t *b, const kiln__conv2d_geom_t *g)
{
    if (out->numel == 0)
        return 0;
    kiln_tensor_t *hx = NULL, *hw = NULL, *hb = NULL;
    const kiln_tensor_t *fx = NULL, *fw = NULL, *fb = NULL;
    int rc = kiln__cpu_as_f32(x, 0, &hx, &fx);
    if (rc == 0)
        rc = kiln__cpu_as_f32(w, 1, &hw, &fw);
    if (rc == 0 && b)
        rc = kiln__cpu_as_f32(b, 1, &hb, &fb);
    if (rc == 0) {
        conv_dims_t d = {.c = fx->shape[1],
                         .h = fx->shape[2],
                         .w = fx->shape[3],
                         .kh = fw->shape[2],
                         .kw = fw->shape[3],
                         .oh = out->shape[2],
                         .ow = out->shape[3],
                         .xs = {fx->strides[1], fx->strides[2], fx->strides[3]}};
        int64_t n = out->shape[0], oc = out->shape[1], ohw = d.oh * d.ow;
        float *o = out->data;
        for (int64_t i = 0; i < n * oc; i++) { // bias first; the GEMMs accumulate onto it
            float v = fb ? ((const float *)fb->data)[i % oc] : 0.0f;
            for (int64_t j = 0; j < ohw; j++)
                o[i * ohw + j] = v;
        }
        if (d.c * d.kh * d.kw > 0)
            rc = conv_samples(o, n, oc, fx->data, fx->strides[0], fw->data, &d, g);
    }
    kiln_tensor_release(hx);
    kiln_tensor_release(hw);
    kiln_tensor_release(hb);
    return rc;
}
