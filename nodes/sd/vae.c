/* The SD VAE's forward passes (ComfyUI's ldm AutoencoderKL): the Encoder and Decoder stacks
 * built from vae_blocks.c, and the VAEDecode / VAEEncode conventions around them
 * (clamp((x + 1) / 2) to NHWC, the centred crop to the downscale factor, 2x - 1, the
 * posterior mean). Samples run one at a time, so a batch costs no more peak memory than a
 * single image. */
#include "vae_int.h"

/* After a step that made *next from *h: on success *h becomes *next (the old one is
 * released); on failure nothing changes (a failed step leaves *next NULL). */
static int advance(int rc, kiln_tensor_t **h, kiln_tensor_t **next)
{
    if (rc == 0) {
        kiln_tensor_release(*h);
        *h = *next;
        *next = NULL;
    }
    return rc;
}

/* mid.block_1 -> mid.attn_1 -> mid.block_2 on *h in place. */
static int run_mid(const vae_coder_t *cd, kiln_lane_t *lane, kiln_tensor_t **h)
{
    kiln_tensor_t *nx = NULL;
    int rc = advance(sd_vae_blk_resnet(&cd->mid1, lane, *h, &nx), h, &nx);
    if (rc == 0)
        rc = advance(sd_vae_blk_attn(&cd->attn, lane, *h, &nx), h, &nx);
    if (rc == 0)
        rc = advance(sd_vae_blk_resnet(&cd->mid2, lane, *h, &nx), h, &nx);
    return rc;
}

/* The ResnetBlocks of one level, then its resample conv (down when down is non-zero). */
static int run_level(const vae_level_t *lv, kiln_lane_t *lane, int down, kiln_tensor_t **h)
{
    kiln_tensor_t *nx = NULL;
    int rc = 0;
    for (int j = 0; rc == 0 && j < lv->n_blocks; j++)
        rc = advance(sd_vae_blk_resnet(&lv->blocks[j], lane, *h, &nx), h, &nx);
    if (rc == 0 && lv->resample.w && down)
        rc = advance(sd_vae_blk_downsample(&lv->resample, lane, *h, &nx), h, &nx);
    else if (rc == 0 && lv->resample.w)
        rc = advance(sd_vae_blk_upsample(&lv->resample, lane, *h, &nx), h, &nx);
    return rc;
}

/* norm_out -> SiLU -> conv_out (3x3, padding 1) on *h in place. */
static int run_out(const vae_coder_t *cd, kiln_lane_t *lane, kiln_tensor_t **h)
{
    kiln_tensor_t *nx = NULL;
    int rc = advance(sd_vae_blk_norm(&cd->norm_out, lane, *h, 1, &nx), h, &nx);
    if (rc == 0)
        rc = advance(sd_vae_blk_conv(&cd->conv_out, lane, *h, 1, &nx), h, &nx);
    return rc;
}

/* decoder(post_quant_conv(z)) for one sample: z [1, E, h, w] -> *out [1, 3, h*f, w*f]. */
static int decode_one(const sd_vae_t *v, kiln_lane_t *lane, const kiln_tensor_t *z,
                      kiln_tensor_t **out)
{
    kiln_tensor_t *h = NULL, *nx = NULL;
    int rc = sd_vae_blk_conv(&v->post_quant, lane, z, 0, &h); // [1, Z, h, w]
    if (rc == 0)
        rc = advance(sd_vae_blk_conv(&v->dec.conv_in, lane, h, 1, &nx), &h, &nx);
    if (rc == 0)
        rc = run_mid(&v->dec, lane, &h);
    for (int i = v->n_levels - 1; rc == 0 && i >= 0; i--)
        rc = run_level(&v->dec.levels[i], lane, 0, &h);
    if (rc == 0)
        rc = run_out(&v->dec, lane, &h); // [1, 3, H, W]
    if (rc != 0) {
        kiln_tensor_release(h);
        h = NULL;
    }
    *out = h;
    return rc;
}

/* quant_conv(encoder(x)) for one sample: x [1, 3, H, W] in -1..1 -> *out [1, 2E, H/f, W/f]
 * (the posterior's mean and log-variance). */
static int encode_one(const sd_vae_t *v, kiln_lane_t *lane, const kiln_tensor_t *x,
                      kiln_tensor_t **out)
{
    kiln_tensor_t *h = NULL, *nx = NULL;
    int rc = sd_vae_blk_conv(&v->enc.conv_in, lane, x, 1, &h); // [1, ch, H, W]
    for (int i = 0; rc == 0 && i < v->n_levels; i++)
        rc = run_level(&v->enc.levels[i], lane, 1, &h);
    if (rc == 0)
        rc = run_mid(&v->enc, lane, &h);
    if (rc == 0)
        rc = run_out(&v->enc, lane, &h); // [1, 2Z, h, w]
    if (rc == 0)
        rc = advance(sd_vae_blk_conv(&v->quant, lane, h, 0, &nx), &h, &nx);
    if (rc != 0) {
        kiln_tensor_release(h);
        h = NULL;
    }
    *out = h;
    return rc;
}

/* Copies src into sample b of dst, channels [0, dst's channels) of src. */
static int store_sample(kiln_lane_t *lane, kiln_tensor_t *dst, int64_t b, const kiln_tensor_t *src)
{
    kiln_tensor_t *d = NULL, *s = NULL;
    int rc = kiln_tensor_slice(dst, 0, b, 1, &d); // [1, C, H, W]
    if (rc == 0)
        rc = kiln_tensor_slice(src, 1, 0, kiln_tensor_dim(dst, 1), &s);
    if (rc == 0)
        rc = kiln_op_contiguous(lane, d, s);
    kiln_tensor_release(d);
    kiln_tensor_release(s);
    return rc;
}

/* sd_vae_decode_raw on the current target device; the result stays there. */
static int decode_raw_here(const sd_vae_t *v, kiln_lane_t *lane, const kiln_tensor_t *latent,
                           kiln_tensor_t **out)
{
    int64_t f = sd_vae_downscale(v), nb = kiln_tensor_dim(latent, 0);
    int64_t shape[4] = {nb, v->out_channels, kiln_tensor_dim(latent, 2) * f,
                        kiln_tensor_dim(latent, 3) * f};
    kiln_tensor_t *img = sd_tensor_new_dense(KILN_DTYPE_F32, 4, shape); // [B, 3, H, W]
    int rc = img ? 0 : KILN_ENOMEM;
    for (int64_t b = 0; rc == 0 && b < nb; b++) {
        kiln_tensor_t *z = NULL, *y = NULL;
        rc = kiln_tensor_slice(latent, 0, b, 1, &z); // [1, E, h, w]
        if (rc == 0)
            rc = decode_one(v, lane, z, &y);
        if (rc == 0)
            rc = store_sample(lane, img, b, y);
        kiln_tensor_release(z);
        kiln_tensor_release(y);
    }
    if (rc != 0) {
        kiln_tensor_release(img);
        return rc;
    }
    *out = img;
    return 0;
}

int sd_vae_decode_raw(const sd_vae_t *v, kiln_lane_t *lane, const kiln_tensor_t *latent,
                      kiln_tensor_t **out)
{
    if (!out)
        return KILN_EINVAL;
    *out = NULL;
    if (!v || !latent || kiln_tensor_ndim(latent) != 4 || kiln_tensor_dim(latent, 1) != v->embed ||
        kiln_tensor_numel(latent) == 0)
        return KILN_EINVAL;
    if (v->dev.device == KILN_DEVICE_CPU)
        return decode_raw_here(v, sd_host_lane(lane), latent, out);
    /* On a GPU: the latent moves there, the image comes back as host float32. */
    sd_dev_t prev = sd_dev_enter(v->dev);
    lane = sd_dev_lane(lane);
    kiln_tensor_t *zd = NULL, *img = NULL;
    int rc = sd_to_dev(lane, latent, &zd);
    if (rc == 0)
        rc = decode_raw_here(v, lane, zd, &img); // [B, 3, H, W]
    if (rc == 0)
        rc = sd_to_host_f32(img, out);
    kiln_tensor_release(zd);
    kiln_tensor_release(img);
    sd_dev_leave(prev);
    return rc;
}

int sd_vae_decode(const sd_vae_t *v, kiln_lane_t *lane, const kiln_tensor_t *latent,
                  kiln_tensor_t **image)
{
    if (!image)
        return KILN_EINVAL;
    *image = NULL;
    kiln_tensor_t *raw = NULL, *nhwc = NULL, *img = NULL;
    int rc = sd_vae_decode_raw(v, lane, latent, &raw);
    /* raw is a host tensor whichever device decoded it: the arithmetic below runs on the
     * host, so a GPU lane must not be named (the ops reject a lane of another device). */
    lane = sd_host_lane(lane);
    if (rc == 0)
        rc = kiln_tensor_permute(raw, (const int[]){0, 2, 3, 1}, &nhwc); // [B, H, W, 3]
    if (rc == 0) {
        int64_t shape[4] = {kiln_tensor_dim(nhwc, 0), kiln_tensor_dim(nhwc, 1),
                            kiln_tensor_dim(nhwc, 2), kiln_tensor_dim(nhwc, 3)};
        img = kiln_tensor_new(KILN_DTYPE_F32, 4, shape);
        rc = img ? kiln_op_add_scalar(lane, img, nhwc, 1.0f) : KILN_ENOMEM;
    }
    if (rc == 0) /* (x + 1) / 2: halving is exact, so a multiply by 0.5 rounds the same */
        rc = kiln_op_scale(lane, img, img, 0.5f);
    if (rc == 0)
        rc = kiln_op_clamp(lane, img, img, 0.0f, 1.0f);
    kiln_tensor_release(raw);
    kiln_tensor_release(nhwc);
    if (rc != 0) {
        kiln_tensor_release(img);
        return rc;
    }
    *image = img;
    return 0;
}

/* The VAEEncode input of sample b: image[b, oy:oy+H', ox:ox+W', :3] as NCHW, times 2 minus
 * 1, in a new [1, 3, H', W'] tensor. */
static int encoder_input(const sd_vae_t *v, kiln_lane_t *lane, const kiln_tensor_t *image,
                         int64_t b, int64_t hc, int64_t wc, kiln_tensor_t **out)
{
    int64_t oy = (kiln_tensor_dim(image, 1) % sd_vae_downscale(v)) / 2;
    int64_t ox = (kiln_tensor_dim(image, 2) % sd_vae_downscale(v)) / 2;
    kiln_tensor_t *s0 = NULL, *s1 = NULL, *s2 = NULL, *s3 = NULL, *chw = NULL, *x = NULL;
    int rc = kiln_tensor_slice(image, 0, b, 1, &s0);
    if (rc == 0)
        rc = kiln_tensor_slice(s0, 1, oy, hc, &s1);
    if (rc == 0)
        rc = kiln_tensor_slice(s1, 2, ox, wc, &s2);
    if (rc == 0)
        rc = kiln_tensor_slice(s2, 3, 0, v->in_channels, &s3); // [1, H', W', 3]
    if (rc == 0)
        rc = kiln_tensor_permute(s3, (const int[]){0, 3, 1, 2}, &chw); // [1, 3, H', W']
    if (rc == 0) {
        x = sd_tensor_new(KILN_DTYPE_F32, 4, (const int64_t[]){1, v->in_channels, hc, wc});
        rc = x ? kiln_op_scale(lane, x, chw, 2.0f) : KILN_ENOMEM;
    }
    if (rc == 0)
        rc = kiln_op_add_scalar(lane, x, x, -1.0f);
    kiln_tensor_t *tmp[] = {s0, s1, s2, s3, chw};
    for (size_t i = 0; i < sizeof tmp / sizeof tmp[0]; i++)
        kiln_tensor_release(tmp[i]);
    if (rc != 0) {
        kiln_tensor_release(x);
        x = NULL;
    }
    *out = x;
    return rc;
}

/* sd_vae_encode on the current target device (image already there). */
static int encode_here(const sd_vae_t *v, kiln_lane_t *lane, const kiln_tensor_t *image,
                       kiln_tensor_t **latent)
{
    int64_t f = sd_vae_downscale(v), nb = kiln_tensor_dim(image, 0);
    int64_t hc = kiln_tensor_dim(image, 1) / f * f, wc = kiln_tensor_dim(image, 2) / f * f;
    if (nb < 1 || hc < 1 || wc < 1)
        return KILN_EINVAL;
    kiln_tensor_t *lat =
        sd_tensor_new_dense(KILN_DTYPE_F32, 4, (const int64_t[]){nb, v->embed, hc / f, wc / f});
    int rc = lat ? 0 : KILN_ENOMEM;
    for (int64_t b = 0; rc == 0 && b < nb; b++) {
        kiln_tensor_t *x = NULL, *moments = NULL;
        rc = encoder_input(v, lane, image, b, hc, wc, &x);
        if (rc == 0)
            rc = encode_one(v, lane, x, &moments); // [1, 2E, h, w]
        if (rc == 0)                               /* the posterior mean: the first E channels */
            rc = store_sample(lane, lat, b, moments);
        kiln_tensor_release(x);
        kiln_tensor_release(moments);
    }
    if (rc != 0) {
        kiln_tensor_release(lat);
        return rc;
    }
    *latent = lat;
    return 0;
}

int sd_vae_encode(const sd_vae_t *v, kiln_lane_t *lane, const kiln_tensor_t *image,
                  kiln_tensor_t **latent)
{
    if (!latent)
        return KILN_EINVAL;
    *latent = NULL;
    if (!v || !image || kiln_tensor_ndim(image) != 4 || kiln_tensor_dim(image, 3) < v->in_channels)
        return KILN_EINVAL;
    if (v->dev.device == KILN_DEVICE_CPU)
        return encode_here(v, sd_host_lane(lane), image, latent);
    /* On a GPU: the image moves there, the latent comes back as host float32. */
    sd_dev_t prev = sd_dev_enter(v->dev);
    lane = sd_dev_lane(lane);
    kiln_tensor_t *xd = NULL, *lat = NULL;
    int rc = sd_to_dev(lane, image, &xd);
    if (rc == 0)
        rc = encode_here(v, lane, xd, &lat); // [B, E, H/8, W/8]
    if (rc == 0)
        rc = sd_to_host_f32(lat, latent);
    kiln_tensor_release(xd);
    kiln_tensor_release(lat);
    sd_dev_leave(prev);
    return rc;
}
