/* Row reductions on the CPU: softmax and layer norm over the last dimension, group norm
 * over channel groups. Statistics accumulate in double with a two-pass variance, so the
 * results are the correctly rounded ones up to the final float operations. Every kernel
 * reads a whole row or group before it writes it, which makes in-place calls safe. */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"

/* A walk over every row of the last dimension: the walk covers the leading dimensions,
 * and the run function handles `n` consecutive rows of `len` elements. */
typedef struct row_ctx {
    int64_t len;        /* elements per row */
    int64_t so, sx;     /* strides along the row of out and x */
    const float *w, *b; /* layer norm affine parameters (NULL: none) */
    float eps;
} row_ctx_t;

static void walk_rows(kiln_tensor_t *out, const kiln_tensor_t *x, kiln__cpu_run_fn fn, row_ctx_t *c)
{
    int last = out->ndim - 1;
    c->len = out->shape[last];
    c->so = out->strides[last];
    c->sx = x->strides[last];
    kiln__cpu_walk_t w;
    kiln__cpu_walk_init(&w, last, out->shape); // [...] without the row dimension
    kiln__cpu_walk_add(&w, out, NULL);
    kiln__cpu_walk_add(&w, x, NULL);
    if (c->len > 0)
        kiln__cpu_walk_run(&w, fn, c);
}

static void softmax_row(const row_ctx_t *c, float *o, const float *x)
{
    int64_t n = c->len, so = c->so, sx = c->sx;
    float m = -INFINITY; /* NaN entries are skipped here but poison the sum */
    for (int64_t i = 0; i < n; i++)
        m = x[i * sx] > m ? x[i * sx] : m;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float e = (float)exp((double)(x[i * sx] - m));
        o[i * so] = e;
        sum += e;
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++)
        o[i * so] *= inv;
}

static void softmax_run(void *ctx, int64_t n, char *const *p, const int64_t *s)
{
    for (int64_t r = 0; r < n; r++)
        softmax_row(ctx, (float *)p[0] + r * s[0], (const float *)p[1] + r * s[1]);
}

int kiln__cpu_softmax(kiln_tensor_t *out, const kiln_tensor_t *x)
{
    kiln_tensor_t *hx = NULL;
    const kiln_tensor_t *fx;
    int rc = kiln__cpu_as_f32(x, 0, &hx, &fx);
    if (rc == 0) {
        row_ctx_t c = {0};
        walk_rows(out, fx, softmax_run, &c);
    }
    kiln_tensor_release(hx);
    return rc;
}

/* Mean and 1/sqrt(var + eps) of n values at stride s (two passes, double). */
static void moments(const float *x, int64_t n, int64_t s, double eps, double *mean, double *rstd)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += x[i * s];
    double mu = sum / (double)n, ss = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = x[i * s] - mu;
        ss += d * d;
    }
    *mean = mu;
    *rstd = 1.0 / sqrt(ss / (double)n + eps);
}

static void layer_norm_run(void *ctx, int64_t n, char *const *p, const int64_t *s)
{
    const row_ctx_t *c = ctx;
    for (int64_t r = 0; r < n; r++) {
        float *o = (float *)p[0] + r * s[0];
        const float *x = (const float *)p[1] + r * s[1];
        double mean, rstd;
        moments(x, c->len, c->sx, c->eps, &mean, &rstd);
        for (int64_t i = 0; i < c->len; i++) {
            double y = ((double)x[i * c->sx] - mean) * rstd;
            if (c->w)
                y *= c->w[i];
            if (c->b)
                y += c->b[i];
            o[i * c->so] = (float)y;
        }
    }
}

int kiln__cpu_layer_norm(kiln_tensor_t *out, const kiln_tensor_t *x, const kiln_tensor_t *w,
                         const kiln_tensor_t *b, float eps)
{
    kiln_tensor_t *hx = NULL, *hw = NULL, *hb = NULL;
    const kiln_tensor_t *fx, *fw = NULL, *fb = NULL;
    int rc = kiln__cpu_as_f32(x, 0, &hx, &fx);
    if (rc == 0 && w)
        rc = kiln__cpu_as_f32(w, 1, &hw, &fw);
    if (rc == 0 && b)
        rc = kiln__cpu_as_f32(b, 1, &hb, &fb);
    if (rc == 0) {
        row_ctx_t c = {.w = fw ? fw->data : NULL, .b = fb ? fb->data : NULL, .eps = eps};
        walk_rows(out, fx, layer_norm_run, &c);
    }
    kiln_tensor_release(hx);
    kiln_tensor_release(hw);
    kiln_tensor_release(hb);
    return rc;
}

/* Normalizes one group: cpg channels of `sp` spatial positions, contiguous in x and o. */
static void group_norm_one(float *o, const float *x, int64_t c0, int64_t cpg, int64_t sp,
                           const float *w, const float *b, float eps, int fuse_silu)
{
    double mean, rstd;
    moments(x, cpg * sp, 1, eps, &mean, &rstd);
    for (int64_t c = 0; c < cpg; c++) {
        double scale = rstd * (w ? w[c0 + c] : 1.0f);
        double shift = b ? b[c0 + c] : 0.0f;
        const float *xc = x + c * sp;
        float *oc = o + c * sp;
        for (int64_t i = 0; i < sp; i++) {
            float y = (float)(((double)xc[i] - mean) * scale + shift);
            oc[i] = fuse_silu ? (float)((double)y / (1.0 + exp(-(double)y))) : y;
        }
    }
}

int kiln__cpu_group_norm(kiln_tensor_t *out, const kiln_tensor_t *x, const kiln_tensor_t *w,
                         const kiln_tensor_t *b, int groups, float eps, int fuse_silu)
{
    kiln_tensor_t *hx = NULL, *hw = NULL, *hb = NULL;
    const kiln_tensor_t *fx, *fw = NULL, *fb = NULL;
    int rc = kiln__cpu_as_f32(x, 1, &hx, &fx);
    if (rc == 0 && w)
        rc = kiln__cpu_as_f32(w, 1, &hw, &fw);
    if (rc == 0 && b)
        rc = kiln__cpu_as_f32(b, 1, &hb, &fb);
    if (rc == 0) {
        int64_t n = fx->shape[0], ch = fx->shape[1], sp = 1;
        for (int i = 2; i < fx->ndim; i++)
            sp *= fx->shape[i]; // x as [N, C, S]
        int64_t cpg = ch / groups;
        const float *xd = fx->data;
        float *od = out->data;
        for (int64_t i = 0; i < n * groups; i++) { // one (sample, group) at a time
            int64_t c0 = (i % groups) * cpg;
            group_norm_one(od + i * cpg * sp, xd + i * cpg * sp, c0, cpg, sp, fw ? fw->data : NULL,
                           fb ? fb->data : NULL, eps, fuse_silu);
        }
    }
    kiln_tensor_release(hx);
    kiln_tensor_release(hw);
    kiln_tensor_release(hb);
    return rc;
}
