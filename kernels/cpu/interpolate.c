/* Resampling on the CPU with torch's F.interpolate index rules (aten UpSample.h), float
 * scale in/out: "nearest" takes src = floor(dst * scale) (with torch's shortcuts for equal
 * and doubled sizes), "nearest-exact" floor((dst + 0.5) * scale), and "bilinear"
 * (align_corners=False) blends the two neighbours of (dst + 0.5) * scale - 0.5. The
 * per-axis source indices and weights are tabulated once, then every plane is mapped. */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"

/* For one axis: source indices i0, i1 and weights l0, l1 of every output position. */
typedef struct axis_map {
    int64_t *i0, *i1;
    float *l0, *l1;
} axis_map_t;

static void axis_nearest(axis_map_t *m, int64_t in, int64_t out, int exact)
{
    float scale = (float)in / (float)out;
    for (int64_t o = 0; o < out; o++) {
        int64_t src;
        if (exact)
            src = (int64_t)floorf((float)(((double)o + 0.5) * scale));
        else if (out == in)
            src = o;
        else if (out == 2 * in)
            src = o >> 1;
        else
            src = (int64_t)floorf((float)o * scale);
        src = src < in - 1 ? src : in - 1;
        m->i0[o] = m->i1[o] = src;
        m->l0[o] = 1.0f;
        m->l1[o] = 0.0f;
    }
}

static void axis_bilinear(axis_map_t *m, int64_t in, int64_t out)
{
    float scale = (float)in / (float)out;
    for (int64_t o = 0; o < out; o++) {
        if (out == in) {
            m->i0[o] = m->i1[o] = o;
            m->l0[o] = 1.0f;
            m->l1[o] = 0.0f;
            continue;
        }
        float real = scale * ((float)o + 0.5f) - 0.5f;
        real = real < 0.0f ? 0.0f : real;
        int64_t i0 = (int64_t)floorf(real);
        i0 = i0 < in - 1 ? i0 : in - 1;
        float l1 = real - (float)i0;
        l1 = l1 < 0.0f ? 0.0f : (l1 > 1.0f ? 1.0f : l1);
        m->i0[o] = i0;
        m->i1[o] = i0 + (i0 < in - 1 ? 1 : 0);
        m->l0[o] = 1.0f - l1;
        m->l1[o] = l1;
    }
}

typedef struct interp_ctx {
    axis_map_t mh, mw;
    int64_t oh, ow;
    int64_t xsh, xsw; /* x strides along H and W */
    int64_t osh, osw; /* out strides along H and W */
    int nearest;      /* copy the i0 sample (weights would turn inf into NaN) */
} interp_ctx_t;

/* Maps one [H, W] plane of x into one [OH, OW] plane of out. */
static void interp_plane(const interp_ctx_t *c, float *o, const float *x)
{
    for (int64_t i = 0; i < c->oh; i++) {
        const float *r0 = x + c->mh.i0[i] * c->xsh, *r1 = x + c->mh.i1[i] * c->xsh;
        float h0 = c->mh.l0[i], h1 = c->mh.l1[i];
        float *orow = o + i * c->osh;
        if (c->nearest) {
            for (int64_t j = 0; j < c->ow; j++)
                orow[j * c->osw] = r0[c->mw.i0[j] * c->xsw];
            continue;
        }
        for (int64_t j = 0; j < c->ow; j++) {
            int64_t a = c->mw.i0[j] * c->xsw, b = c->mw.i1[j] * c->xsw;
            float w0 = c->mw.l0[j], w1 = c->mw.l1[j];
            orow[j * c->osw] = h0 * (w0 * r0[a] + w1 * r0[b]) + h1 * (w0 * r1[a] + w1 * r1[b]);
        }
    }
}

static void interp_run(void *ctx, int64_t n, char *const *p, const int64_t *s)
{
    for (int64_t r = 0; r < n; r++)
        interp_plane(ctx, (float *)p[0] + r * s[0], (const float *)p[1] + r * s[1]);
}

int kiln__cpu_interpolate(kiln_tensor_t *out, const kiln_tensor_t *x, kiln_interp_mode_t mode)
{
    if (out->numel == 0)
        return 0;
    int nd = out->ndim;
    int64_t h = x->shape[nd - 2], w = x->shape[nd - 1];
    int64_t oh = out->shape[nd - 2], ow = out->shape[nd - 1];
    kiln_tensor_t *hx = NULL;
    const kiln_tensor_t *fx;
    /* One block holds both axes' tables: indices first, then weights. */
    int64_t *idx = kiln__cpu_scratch_alloc((size_t)(oh + ow) * 2 * sizeof(int64_t));
    float *lam = kiln__cpu_scratch_alloc((size_t)(oh + ow) * 2 * sizeof(float));
    int rc = idx && lam ? 0 : KILN_ENOMEM;
    if (rc == 0)
        rc = kiln__cpu_as_f32(x, 0, &hx, &fx);
    if (rc == 0) {
        interp_ctx_t c = {.mh = {idx, idx + oh, lam, lam + oh},
                          .mw = {idx + 2 * oh, idx + 2 * oh + ow, lam + 2 * oh, lam + 2 * oh + ow},
                          .oh = oh,
                          .ow = ow,
                          .xsh = fx->strides[nd - 2],
                          .xsw = fx->strides[nd - 1],
                          .osh = out->strides[nd - 2],
                          .osw = out->strides[nd - 1],
                          .nearest = mode != KILN_INTERP_MODE_BILINEAR};
        if (mode == KILN_INTERP_MODE_BILINEAR) {
            axis_bilinear(&c.mh, h, oh);
            axis_bilinear(&c.mw, w, ow);
        } else {
            axis_nearest(&c.mh, h, oh, mode == KILN_INTERP_MODE_NEAREST_EXACT);
            axis_nearest(&c.mw, w, ow, mode == KILN_INTERP_MODE_NEAREST_EXACT);
        }
        kiln__cpu_walk_t wk;
        kiln__cpu_walk_init(&wk, nd - 2, out->shape); // the leading dims: one plane each
        kiln__cpu_walk_add(&wk, out, NULL);
        kiln__cpu_walk_add(&wk, fx, NULL);
        kiln__cpu_walk_run(&wk, interp_run, &c);
    }
    kiln__cpu_scratch_free(idx);
    kiln__cpu_scratch_free(lam);
    kiln_tensor_release(hx);
    return rc;
}
