/* The UNet's modules, forward only, float32: ResBlock, SpatialTransformer with its
 * BasicTransformerBlocks, and the Downsample/Upsample convolutions, computed in the order
 * and with the constants of ComfyUI's openaimodel.py and attention.py. Every function
 * releases its intermediate tensors as soon as they are consumed, so the peak memory stays
 * near a few activations of the current level. */
#include <kiln/node.h>
#include <kiln/ops.h>

#include "unet_int.h"

/* GroupNorm eps of ResBlock and the output head (torch's default) and of the
 * SpatialTransformer's Normalize; LayerNorm eps of the transformer blocks. */
#define EPS_RES 1e-5f
#define EPS_ST 1e-6f
#define EPS_LN 1e-5f

/* A new zero-filled F32 tensor [a, b, c, d] (ndim 3 or 4), or NULL when out of memory. */
static kiln_tensor_t *new_f32(int ndim, int64_t a, int64_t b, int64_t c, int64_t d)
{
    int64_t shape[4] = {a, b, c, d};
    return sd_tensor_new(KILN_DTYPE_F32, ndim, shape);
}

/* x [B, C, H, W] through the conv p (k x k, padding k / 2) with the given stride, plus add
 * (NULL, or broadcasting to the result) in the same op: *out [B, OC, OH, OW], new. */
static int conv_add(kiln_lane_t *lane, const sd_unet_wb_t *p, const kiln_tensor_t *x, int stride,
                    const kiln_tensor_t *add, kiln_tensor_t **out)
{
    int64_t k = kiln_tensor_dim(p->w, 2), pad = k / 2;
    int64_t oh = (kiln_tensor_dim(x, 2) + 2 * pad - k) / stride + 1;
    int64_t ow = (kiln_tensor_dim(x, 3) + 2 * pad - k) / stride + 1;
    kiln_conv2d_params_t cp = {KILN_CONV2D_PARAMS_INIT};
    cp.stride_h = cp.stride_w = stride;
    cp.pad_top = cp.pad_bottom = cp.pad_left = cp.pad_right = (int32_t)pad;
    *out = new_f32(4, kiln_tensor_dim(x, 0), kiln_tensor_dim(p->w, 0), oh, ow);
    if (!*out)
        return KILN_ENOMEM;
    int rc = add ? kiln_op_conv2d_add(lane, *out, x, p->w, p->b, add, &cp)
                 : kiln_op_conv2d(lane, *out, x, p->w, p->b, &cp); // [B, OC, OH, OW]
    if (rc != 0) {
        kiln_tensor_release(*out);
        *out = NULL;
    }
    return rc;
}

static int conv(kiln_lane_t *lane, const sd_unet_wb_t *p, const kiln_tensor_t *x, int stride,
                kiln_tensor_t **out)
{
    return conv_add(lane, p, x, stride, NULL, out);
}

/* x [..., IN] through the linear w, b (b may be NULL), plus add (NULL, or broadcasting to
 * the result) in the same op: *out [..., OUT], new (x of rank 2 or 3). */
static int linear_add(kiln_lane_t *lane, const kiln_tensor_t *w, const kiln_tensor_t *b,
                      const kiln_tensor_t *x, const kiln_tensor_t *add, kiln_tensor_t **out)
{
    int nd = kiln_tensor_ndim(x);
    int64_t shape[3] = {kiln_tensor_dim(x, 0), kiln_tensor_dim(x, 1), kiln_tensor_dim(x, 2)};
    shape[nd - 1] = kiln_tensor_dim(w, 0);
    *out = sd_tensor_new(KILN_DTYPE_F32, nd, shape);
    if (!*out)
        return KILN_ENOMEM;
    int rc = add ? kiln_op_linear_add(lane, *out, x, w, b, add)
                 : kiln_op_linear(lane, *out, x, w, b); // [..., OUT]
    if (rc != 0) {
        kiln_tensor_release(*out);
        *out = NULL;
    }
    return rc;
}

static int linear(kiln_lane_t *lane, const kiln_tensor_t *w, const kiln_tensor_t *b,
                  const kiln_tensor_t *x, kiln_tensor_t **out)
{
    return linear_add(lane, w, b, x, NULL, out);
}

/* ResBlock: skip(x) + out_layers(in_layers(x) + emb_layers(emb)), *out [B, C_out, H, W].
 * The time embedding rides in the first convolution and the skip sum in the second. */
static int res_forward(const sd_unet_res_t *r, kiln_lane_t *lane, const kiln_tensor_t *x,
                       const kiln_tensor_t *emb_silu, kiln_tensor_t **out)
{
    int64_t nb = kiln_tensor_dim(x, 0), co = r->c_out;
    kiln_tensor_t *n = NULL, *h = NULL, *e = NULL, *e4 = NULL, *s = NULL;
    *out = NULL;
    n = sd_tensor_new(KILN_DTYPE_F32, 4,
                        (int64_t[]){nb, r->c_in, kiln_tensor_dim(x, 2), kiln_tensor_dim(x, 3)});
    int rc = n ? 0 : KILN_ENOMEM;
    if (rc == 0)
        rc = kiln_op_group_norm(lane, n, x, r->in_norm.w, r->in_norm.b, SD_UNET_GROUPS, EPS_RES,
                                1); // [B, C_in, H, W]
    if (rc == 0)
        rc = linear(lane, r->emb.w, r->emb.b, emb_silu, &e); // [B, C_out]
    if (rc == 0)
        rc = kiln_tensor_reshape(e, 4, (int64_t[]){nb, co, 1, 1}, &e4); // [B, C_out, 1, 1]
    if (rc == 0)
        rc = conv_add(lane, &r->in_conv, n, 1, e4, &h); // [B, C_out, H, W]
    kiln_tensor_release(n);
    kiln_tensor_release(e4);
    kiln_tensor_release(e);
    if (rc == 0)
        rc = kiln_op_group_norm(lane, h, h, r->out_norm.w, r->out_norm.b, SD_UNET_GROUPS, EPS_RES,
                                1);
    if (rc == 0 && r->skip.w)
        rc = conv(lane, &r->skip, x, 1, &s); // [B, C_out, H, W]
    if (rc == 0)
        rc = conv_add(lane, &r->out_conv, h, 1, r->skip.w ? s : x, out); // [B, C_out, H, W]
    kiln_tensor_release(s);
    kiln_tensor_release(h);
    return rc;
}

/* One attention of a transformer block: n [B, L, C] (queries), ctx [B, LK, D] (keys and
 * values: n itself for self attention); *out [B, L, C] = res + to_out(attention(q, k, v)). */
static int attention(kiln_lane_t *lane, const kiln_tensor_t *n, const kiln_tensor_t *ctx,
                     const kiln_tensor_t *wq, const kiln_tensor_t *wk, const kiln_tensor_t *wv,
                     const sd_unet_wb_t *o, int heads, const kiln_tensor_t *res,
                     kiln_tensor_t **out)
{
    kiln_tensor_t *q = NULL, *k = NULL, *v = NULL, *a = NULL;
    int rc = linear(lane, wq, NULL, n, &q); // [B, L, inner]
    if (rc == 0)
        rc = linear(lane, wk, NULL, ctx, &k); // [B, LK, inner]
    if (rc == 0)
        rc = linear(lane, wv, NULL, ctx, &v); // [B, LK, inner]
    if (rc == 0) {
        a = sd_tensor_new(
            KILN_DTYPE_F32, 3,
            (int64_t[]){kiln_tensor_dim(q, 0), kiln_tensor_dim(q, 1), kiln_tensor_dim(q, 2)});
        rc = a ? 0 : KILN_ENOMEM;
    }
    if (rc == 0)
        rc = kiln_op_attention(lane, a, q, k, v, heads, 0.0f); // [B, L, inner], 1/sqrt(d)
    kiln_tensor_release(q);
    kiln_tensor_release(k);
    kiln_tensor_release(v);
    if (rc == 0)
        rc = linear_add(lane, o->w, o->b, a, res, out); // [B, L, C]
    kiln_tensor_release(a);
    return rc;
}

/* The GEGLU feed-forward: *out [B, L, C] = res + ff.net.2(geglu(ff.net.0.proj(n))). */
static int feed_forward(kiln_lane_t *lane, const sd_unet_tblock_t *t, const kiln_tensor_t *n,
                        const kiln_tensor_t *res, kiln_tensor_t **out)
{
    kiln_tensor_t *p = NULL, *g = NULL;
    int rc = linear(lane, t->ff_in.w, t->ff_in.b, n, &p); // [B, L, 2 * FF]
    if (rc == 0) {
        g = new_f32(3, kiln_tensor_dim(p, 0), kiln_tensor_dim(p, 1), kiln_tensor_dim(p, 2) / 2, 0);
        rc = g ? 0 : KILN_ENOMEM;
    }
    if (rc == 0)
        rc = kiln_op_geglu(lane, g, p); // [B, L, FF]
    kiln_tensor_release(p);
    if (rc == 0)
        rc = linear_add(lane, t->ff_out.w, t->ff_out.b, g, res, out); // [B, L, C]
    kiln_tensor_release(g);
    return rc;
}

/* BasicTransformerBlock on the tokens *x [B, L, C]: x += attn1(norm1(x)); x += attn2(norm2(x),
 * context); x += ff(norm3(x)). Each sum happens in its sublayer's last linear, which writes
 * a new tensor that replaces *x (the old one is released). */
static int tblock_forward(const sd_unet_tblock_t *t, kiln_lane_t *lane, int heads,
                          kiln_tensor_t **x, const kiln_tensor_t *context)
{
    const sd_unet_wb_t *norms[3] = {&t->norm1, &t->norm2, &t->norm3};
    kiln_tensor_t *n = new_f32(3, kiln_tensor_dim(*x, 0), kiln_tensor_dim(*x, 1),
                               kiln_tensor_dim(*x, 2), 0);
    int rc = n ? 0 : KILN_ENOMEM;
    for (int step = 0; rc == 0 && step < 3; step++) {
        kiln_tensor_t *d = NULL;
        rc = kiln_op_layer_norm(lane, n, *x, norms[step]->w, norms[step]->b, EPS_LN);
        if (rc == 0 && step == 0)
            rc = attention(lane, n, n, t->q1, t->k1, t->v1, &t->o1, heads, *x, &d);
        else if (rc == 0 && step == 1)
            rc = attention(lane, n, context, t->q2, t->k2, t->v2, &t->o2, heads, *x, &d);
        else if (rc == 0)
            rc = feed_forward(lane, t, n, *x, &d);
        if (rc == 0) {
            kiln_tensor_release(*x);
            *x = d;
        }
    }
    kiln_tensor_release(n);
    return rc;
}

/* proj_in on the normalised input n [B, C, H, W]: *tok [B, H*W, inner], dense tokens. */
static int st_tokens_in(const sd_unet_st_t *st, kiln_lane_t *lane, const kiln_tensor_t *n,
                        kiln_tensor_t **tok)
{
    int64_t nb = kiln_tensor_dim(n, 0), c = kiln_tensor_dim(n, 1);
    int64_t hw = kiln_tensor_dim(n, 2) * kiln_tensor_dim(n, 3);
    kiln_tensor_t *p = NULL, *flat = NULL, *t = NULL;
    *tok = NULL;
    int rc = st->use_linear ? 0 : conv(lane, &st->proj_in, n, 1, &p); // [B, inner, H, W]
    int64_t w = st->use_linear ? c : st->inner;
    if (rc == 0)
        rc = kiln_tensor_reshape(st->use_linear ? n : p, 3, (int64_t[]){nb, w, hw}, &flat);
    /* A channels-last source already holds the tokens densely: view them. Otherwise
     * transpose into a new tensor. */
    if (rc == 0 && kiln_tensor_transpose(flat, 1, 2, &t) == 0 && !kiln_tensor_is_contiguous(t)) {
        kiln_tensor_release(t);
        t = NULL;
    }
    if (rc == 0 && !t) {
        t = new_f32(3, nb, hw, w, 0);
        rc = t ? kiln_op_transpose(lane, t, flat, 1, 2) : KILN_ENOMEM; // [B, HW, w]
    }
    kiln_tensor_release(flat);
    kiln_tensor_release(p);
    if (rc == 0 && st->use_linear) {
        rc = linear(lane, st->proj_in.w, st->proj_in.b, t, tok); // [B, HW, inner]
        kiln_tensor_release(t);
    } else if (rc == 0) {
        *tok = t;
    } else {
        kiln_tensor_release(t);
    }
    return rc;
}

/* proj_out on the tokens tok [B, H*W, inner] back to x's layout, plus x: *out [B, C, H, W]. */
static int st_tokens_out(const sd_unet_st_t *st, kiln_lane_t *lane, const kiln_tensor_t *tok,
                         const kiln_tensor_t *x, kiln_tensor_t **out)
{
    int64_t nb = kiln_tensor_dim(x, 0), c = kiln_tensor_dim(x, 1);
    int64_t h = kiln_tensor_dim(x, 2), w = kiln_tensor_dim(x, 3);
    kiln_tensor_t *src = NULL, *grid = NULL, *chw = NULL;
    *out = NULL;
    int rc = 0;
    if (st->use_linear)
        rc = linear(lane, st->proj_out.w, st->proj_out.b, tok, &src); // [B, HW, C]
    int64_t wd = st->use_linear ? c : st->inner;
    if (rc == 0)
        rc = kiln_tensor_reshape(st->use_linear ? src : tok, 4, (int64_t[]){nb, h, w, wd},
                                 &grid); // [B, H, W, wd]
    if (rc == 0)
        rc = kiln_tensor_permute(grid, (const int[]){0, 3, 1, 2}, &chw); // [B, wd, H, W] view
    kiln_tensor_release(grid);
    kiln_tensor_release(src);
    if (rc == 0 && st->use_linear) {
        *out = new_f32(4, nb, c, h, w);
        rc = *out ? kiln_op_add(lane, *out, chw, x) : KILN_ENOMEM; // [B, C, H, W]
    } else if (rc == 0) {
        rc = conv_add(lane, &st->proj_out, chw, 1, x, out); // [B, C, H, W]
    }
    kiln_tensor_release(chw);
    if (rc != 0) {
        kiln_tensor_release(*out);
        *out = NULL;
    }
    return rc;
}

/* SpatialTransformer: x + proj_out(blocks(proj_in(norm(x)))), *out [B, C, H, W]. */
static int st_forward(const sd_unet_st_t *st, kiln_lane_t *lane, const kiln_tensor_t *x,
                      const kiln_tensor_t *context, kiln_tensor_t **out)
{
    kiln_tensor_t *n = NULL, *tok = NULL;
    *out = NULL;
    n = new_f32(4, kiln_tensor_dim(x, 0), kiln_tensor_dim(x, 1), kiln_tensor_dim(x, 2),
                kiln_tensor_dim(x, 3));
    int rc = n ? 0 : KILN_ENOMEM;
    if (rc == 0)
        rc = kiln_op_group_norm(lane, n, x, st->norm.w, st->norm.b, SD_UNET_GROUPS, EPS_ST, 0);
    if (rc == 0)
        rc = st_tokens_in(st, lane, n, &tok); // [B, HW, inner]
    kiln_tensor_release(n);
    for (int i = 0; rc == 0 && i < st->depth; i++)
        rc = tblock_forward(&st->blocks[i], lane, st->heads, &tok, context);
    if (rc == 0)
        rc = st_tokens_out(st, lane, tok, x, out); // [B, C, H, W]
    kiln_tensor_release(tok);
    return rc;
}

/* Upsample: nearest to the skip's size (ComfyUI passes the next skip's shape; without one
 * the size doubles), then the 3x3 conv. */
static int up_forward(const sd_unet_mod_t *m, kiln_lane_t *lane, const kiln_tensor_t *x,
                      const int64_t *skip_shape, kiln_tensor_t **out)
{
    int64_t oh = skip_shape ? skip_shape[2] : 2 * kiln_tensor_dim(x, 2);
    int64_t ow = skip_shape ? skip_shape[3] : 2 * kiln_tensor_dim(x, 3);
    kiln_tensor_t *u = new_f32(4, kiln_tensor_dim(x, 0), kiln_tensor_dim(x, 1), oh, ow);
    int rc = u ? 0 : KILN_ENOMEM;
    if (rc == 0)
        rc = kiln_op_interpolate(lane, u, x, KILN_INTERP_MODE_NEAREST); // [B, C, OH, OW]
    if (rc == 0)
        rc = conv(lane, &m->conv, u, 1, out);
    kiln_tensor_release(u);
    return rc;
}

void sd_unet_mod_clear(sd_unet_mod_t *m)
{
    sd_unet_wb_t *wbs[64];
    int n = 0;
    wbs[n++] = &m->conv;
    if (m->res) {
        sd_unet_res_t *r = m->res;
        sd_unet_wb_t *rw[] = {&r->in_norm,  &r->in_conv,  &r->emb,
                              &r->out_norm, &r->out_conv, &r->skip};
        for (int i = 0; i < 6; i++)
            wbs[n++] = rw[i];
    }
    if (m->st) {
        wbs[n++] = &m->st->norm;
        wbs[n++] = &m->st->proj_in;
        wbs[n++] = &m->st->proj_out;
    }
    for (int i = 0; i < n; i++) {
        kiln_tensor_release(wbs[i]->w);
        kiln_tensor_release(wbs[i]->b);
    }
    for (int i = 0; m->st && m->st->blocks && i < m->st->depth; i++) {
        sd_unet_tblock_t *t = &m->st->blocks[i];
        sd_unet_wb_t *tw[] = {&t->norm1, &t->norm2, &t->norm3, &t->o1,
                              &t->o2,    &t->ff_in, &t->ff_out};
        for (int j = 0; j < 7; j++) {
            kiln_tensor_release(tw[j]->w);
            kiln_tensor_release(tw[j]->b);
        }
        kiln_tensor_t *bare[] = {t->q1, t->k1, t->v1, t->q2, t->k2, t->v2};
        for (int j = 0; j < 6; j++)
            kiln_tensor_release(bare[j]);
    }
    if (m->st)
        kiln_free(m->st->blocks);
    kiln_free(m->st);
    kiln_free(m->res);
    m->st = NULL;
    m->res = NULL;
    m->conv.w = m->conv.b = NULL;
}

int sd_unet_mod_forward(const sd_unet_mod_t *m, kiln_lane_t *lane, const kiln_tensor_t *h,
                        const kiln_tensor_t *emb_silu, const kiln_tensor_t *context,
                        const int64_t *skip_shape, kiln_tensor_t **out)
{
    *out = NULL;
    switch (m->kind) {
    case SD_UNET_MOD_CONV:
        return conv(lane, &m->conv, h, 1, out); // [B, C', H, W]
    case SD_UNET_MOD_DOWN:
        return conv(lane, &m->conv, h, 2, out); // [B, C', ceil(H / 2), ceil(W / 2)]
    case SD_UNET_MOD_UP:
        return up_forward(m, lane, h, skip_shape, out); // [B, C', skip H, skip W]
    case SD_UNET_MOD_RES:
        return res_forward(m->res, lane, h, emb_silu, out);
    case SD_UNET_MOD_ST:
        return st_forward(m->st, lane, h, context, out);
    }
    return KILN_EINVAL;
}
