/* The building blocks of ComfyUI's ldm VAE (comfy/ldm/modules/diffusionmodules/model.py):
 * ResnetBlock, the single-head AttnBlock, Upsample and Downsample, each a short chain of
 * op-library calls on NCHW float32 tensors. Intermediate tensors are released as soon as
 * the next step has consumed them, so a block at 512x512 holds at most three activations. */
#include "vae_int.h"

#include <math.h>

/* A new [N, OC, OH, OW] tensor = conv2d(x) with the given parameters. */
static int conv_params(const vae_conv_t *cv, kiln_lane_t *lane, const kiln_tensor_t *x,
                       const kiln_conv2d_params_t *p, kiln_tensor_t **out)
{
    *out = NULL;
    int64_t kh = kiln_tensor_dim(cv->w, 2), kw = kiln_tensor_dim(cv->w, 3);
    int64_t sh = p->stride_h > 0 ? p->stride_h : 1, sw = p->stride_w > 0 ? p->stride_w : 1;
    int64_t h = kiln_tensor_dim(x, 2) + p->pad_top + p->pad_bottom;
    int64_t w = kiln_tensor_dim(x, 3) + p->pad_left + p->pad_right;
    if (kiln_tensor_ndim(x) != 4 || h < kh || w < kw)
        return KILN_EINVAL;
    int64_t shape[4] = {kiln_tensor_dim(x, 0), kiln_tensor_dim(cv->w, 0), (h - kh) / sh + 1,
                        (w - kw) / sw + 1};
    kiln_tensor_t *t = sd_tensor_new(KILN_DTYPE_F32, 4, shape); // [N, OC, OH, OW]
    if (!t)
        return KILN_ENOMEM;
    int rc = kiln_op_conv2d(lane, t, x, cv->w, cv->b, p);
    if (rc != 0) {
        kiln_tensor_release(t);
        return rc;
    }
    *out = t;
    return 0;
}

int sd_vae_blk_conv(const vae_conv_t *cv, kiln_lane_t *lane, const kiln_tensor_t *x, int pad,
                    kiln_tensor_t **out)
{
    kiln_conv2d_params_t p = {KILN_CONV2D_PARAMS_INIT, .pad_top = pad, .pad_bottom = pad,
                              .pad_left = pad, .pad_right = pad};
    return conv_params(cv, lane, x, &p, out);
}

int sd_vae_blk_norm(const vae_norm_t *n, kiln_lane_t *lane, const kiln_tensor_t *x, int silu,
                    kiln_tensor_t **out)
{
    int64_t shape[KILN_TENSOR_MAX_DIMS];
    int nd = kiln_tensor_ndim(x);
    for (int i = 0; i < nd; i++)
        shape[i] = kiln_tensor_dim(x, i);
    *out = sd_tensor_new(KILN_DTYPE_F32, nd, shape);
    if (!*out)
        return KILN_ENOMEM;
    int rc = kiln_op_group_norm(lane, *out, x, n->w, n->b, VAE_GROUPS, VAE_GN_EPS, silu);
    if (rc != 0) {
        kiln_tensor_release(*out);
        *out = NULL;
    }
    return rc;
}

int sd_vae_blk_resnet(const vae_resblock_t *rb, kiln_lane_t *lane, const kiln_tensor_t *x,
                      kiln_tensor_t **out)
{
    kiln_tensor_t *h = NULL, *h2 = NULL, *y = NULL, *skip = NULL;
    *out = NULL;
    int rc = sd_vae_blk_norm(&rb->norm1, lane, x, 1, &h);
    if (rc == 0)
        rc = sd_vae_blk_conv(&rb->conv1, lane, h, 1, &h2); // [B, C', H, W]
    kiln_tensor_release(h);
    if (rc == 0)
        rc = kiln_op_group_norm(lane, h2, h2, rb->norm2.w, rb->norm2.b, VAE_GROUPS, VAE_GN_EPS, 1);
    if (rc == 0) /* (dropout is the identity at inference) */
        rc = sd_vae_blk_conv(&rb->conv2, lane, h2, 1, &y);
    kiln_tensor_release(h2);
    if (rc == 0 && rb->nin.w)
        rc = sd_vae_blk_conv(&rb->nin, lane, x, 0, &skip); // [B, C', H, W]
    if (rc == 0)
        rc = kiln_op_add(lane, y, skip ? skip : x, y);
    kiln_tensor_release(skip);
    if (rc != 0) {
        kiln_tensor_release(y);
        return rc;
    }
    *out = y;
    return 0;
}

/* A new [B, L, C] tensor = linear(x, w, b) with x [B, L, C]. */
static int linear_new(const vae_conv_t *cv, kiln_lane_t *lane, const kiln_tensor_t *x,
                      kiln_tensor_t **out)
{
    int64_t shape[3] = {kiln_tensor_dim(x, 0), kiln_tensor_dim(x, 1), kiln_tensor_dim(x, 2)};
    *out = sd_tensor_new(KILN_DTYPE_F32, 3, shape);
    if (!*out)
        return KILN_ENOMEM;
    return kiln_op_linear(lane, *out, x, cv->w, cv->b);
}

/* Score rows held at once by attn_gemm: 64 Mi elements, 128 MiB in half precision. */
#define ATTN_GEMM_SCORES ((int64_t)1 << 26)

/* out = softmax(q k^T / sqrt(C)) v with one head, as GEMMs over blocks of query rows. The
 * GPU's fused attention kernels cover head widths up to 256, and the VAE's single head is
 * as wide as its channels (512 in SD), so on a device the VAE goes this way; ComfyUI's
 * own VAE attention is the same product. q is scaled in place first, so half-precision
 * scores stay in range. All of [B, L, C]. */
static int attn_gemm(kiln_lane_t *lane, kiln_tensor_t *out, kiln_tensor_t *q,
                     const kiln_tensor_t *k, const kiln_tensor_t *v)
{
    int64_t b = kiln_tensor_dim(q, 0), l = kiln_tensor_dim(q, 1), c = kiln_tensor_dim(q, 2);
    int64_t rows = ATTN_GEMM_SCORES / (b * l) > 0 ? ATTN_GEMM_SCORES / (b * l) : 1;
    rows = rows < l && b == 1 ? rows : l; /* with B > 1 a block of rows is not dense */
    int rc = kiln_op_scale(lane, q, q, (float)(1.0 / sqrt((double)c)));
    kiln_tensor_t *s = sd_tensor_new(KILN_DTYPE_F32, 3, (const int64_t[]){b, rows, l});
    if (rc == 0 && !s)
        rc = KILN_ENOMEM;
    for (int64_t r0 = 0; rc == 0 && r0 < l; r0 += rows) {
        int64_t n = l - r0 < rows ? l - r0 : rows;
        kiln_tensor_t *qr = NULL, *orow = NULL, *sr = NULL;
        rc = kiln_tensor_slice(q, 1, r0, n, &qr); // [B, n, C]
        if (rc == 0)
            rc = kiln_tensor_slice(out, 1, r0, n, &orow);
        if (rc == 0)
            rc = kiln_tensor_slice(s, 1, 0, n, &sr); // [B, n, L]
        if (rc == 0)
            rc = kiln_op_matmul(lane, sr, qr, k, 1);
        if (rc == 0)
            rc = kiln_op_softmax(lane, sr, sr);
        if (rc == 0)
            rc = kiln_op_matmul(lane, orow, sr, v, 0); // [B, n, C]
        kiln_tensor_release(qr);
        kiln_tensor_release(orow);
        kiln_tensor_release(sr);
    }
    kiln_tensor_release(s);
    return rc;
}

/* q, k, v of the normalized pixels as [B, L, C] rows (a 1x1 conv is a linear map per
 * pixel), attention over all L pixels with one head and scale 1/sqrt(C), proj_out. */
static int attn_core(const vae_attn_t *at, kiln_lane_t *lane, const kiln_tensor_t *hn,
                     kiln_tensor_t **proj)
{
    int64_t b = kiln_tensor_dim(hn, 0), c = kiln_tensor_dim(hn, 1);
    int64_t l = kiln_tensor_dim(hn, 2) * kiln_tensor_dim(hn, 3);
    kiln_tensor_t *flat = NULL, *rows = NULL, *q = NULL, *k = NULL, *v = NULL, *a = NULL;
    int rc = kiln_tensor_reshape(hn, 3, (const int64_t[]){b, c, l}, &flat); // [B, C, L]
    /* channels-last pixels already are dense rows: view them, else transpose them */
    if (rc == 0 && kiln_tensor_transpose(flat, 1, 2, &rows) == 0 &&
        !kiln_tensor_is_contiguous(rows)) {
        kiln_tensor_release(rows);
        rows = NULL;
    }
    if (rc == 0 && !rows) {
        rows = sd_tensor_new(KILN_DTYPE_F32, 3, (const int64_t[]){b, l, c});
        rc = rows ? kiln_op_transpose(lane, rows, flat, 1, 2) : KILN_ENOMEM; // [B, L, C]
    }
    if (rc == 0)
        rc = linear_new(&at->q, lane, rows, &q);
    if (rc == 0)
        rc = linear_new(&at->k, lane, rows, &k);
    if (rc == 0)
        rc = linear_new(&at->v, lane, rows, &v);
    if (rc == 0) {
        a = rows; /* rows is consumed: the attention output reuses it */
        rows = NULL;
        if (kiln_tensor_device(q) == KILN_DEVICE_CPU)
            rc = kiln_op_attention(lane, a, q, k, v, 1, 0.0f); // [B, L, C]
        else
            rc = attn_gemm(lane, a, q, k, v); // [B, L, C]
    }
    if (rc == 0)
        rc = kiln_op_linear(lane, q, a, at->proj.w, at->proj.b); // q <- proj_out(a)
    if (rc == 0) {
        *proj = q;
        q = NULL;
    }
    kiln_tensor_t *tmp[] = {flat, rows, q, k, v, a};
    for (size_t i = 0; i < sizeof tmp / sizeof tmp[0]; i++)
        kiln_tensor_release(tmp[i]);
    return rc;
}

int sd_vae_blk_attn(const vae_attn_t *at, kiln_lane_t *lane, const kiln_tensor_t *x,
                    kiln_tensor_t **out)
{
    int64_t b = kiln_tensor_dim(x, 0), c = kiln_tensor_dim(x, 1);
    int64_t h = kiln_tensor_dim(x, 2), w = kiln_tensor_dim(x, 3);
    kiln_tensor_t *hn = NULL, *proj = NULL, *p4 = NULL, *pv = NULL, *y = NULL;
    *out = NULL;
    int rc = sd_vae_blk_norm(&at->norm, lane, x, 0, &hn);
    if (rc == 0)
        rc = attn_core(at, lane, hn, &proj); // [B, L, C]
    if (rc == 0)
        rc = kiln_tensor_reshape(proj, 4, (const int64_t[]){b, h, w, c}, &p4);
    if (rc == 0)
        rc = kiln_tensor_permute(p4, (const int[]){0, 3, 1, 2}, &pv); // [B, C, H, W] view
    if (rc == 0) {
        y = sd_tensor_new(KILN_DTYPE_F32, 4, (const int64_t[]){b, c, h, w});
        rc = y ? kiln_op_add(lane, y, x, pv) : KILN_ENOMEM;
    }
    kiln_tensor_t *tmp[] = {hn, proj, p4, pv};
    for (size_t i = 0; i < sizeof tmp / sizeof tmp[0]; i++)
        kiln_tensor_release(tmp[i]);
    if (rc != 0) {
        kiln_tensor_release(y);
        return rc;
    }
    *out = y;
    return 0;
}

int sd_vae_blk_upsample(const vae_conv_t *cv, kiln_lane_t *lane, const kiln_tensor_t *x,
                        kiln_tensor_t **out)
{
    int64_t shape[4] = {kiln_tensor_dim(x, 0), kiln_tensor_dim(x, 1), 2 * kiln_tensor_dim(x, 2),
                        2 * kiln_tensor_dim(x, 3)};
    *out = NULL;
    kiln_tensor_t *up = sd_tensor_new(KILN_DTYPE_F32, 4, shape); // [B, C, 2H, 2W]
    if (!up)
        return KILN_ENOMEM;
    int rc = kiln_op_interpolate(lane, up, x, KILN_INTERP_MODE_NEAREST);
    if (rc == 0)
        rc = sd_vae_blk_conv(cv, lane, up, 1, out);
    kiln_tensor_release(up);
    return rc;
}

int sd_vae_blk_downsample(const vae_conv_t *cv, kiln_lane_t *lane, const kiln_tensor_t *x,
                          kiln_tensor_t **out)
{
    /* torch: F.pad(x, (0, 1, 0, 1)) then Conv2d(k=3, stride=2, padding=0). */
    kiln_conv2d_params_t p = {KILN_CONV2D_PARAMS_INIT, .stride_h = 2, .stride_w = 2,
                              .pad_bottom = 1, .pad_right = 1};
    return conv_params(cv, lane, x, &p, out);
}
