/* The insides of the SD VAE, shared by vae.c (loading, encode/decode) and vae_blocks.c (the
 * building blocks of ComfyUI's ldm Encoder/Decoder: ResnetBlock, AttnBlock, Upsample,
 * Downsample). Nothing outside these files includes this. */
#ifndef SD_VAE_INT_H
#define SD_VAE_INT_H

#include "vae.h"
#include "sd_device.h"

/* Every GroupNorm of the SD VAE: 32 groups, eps 1e-6. */
#define VAE_GROUPS 32
#define VAE_GN_EPS 1e-6f
/* Levels of ch_mult a file may have (SD uses 4). */
#define VAE_MAX_LEVELS 8

typedef struct vae_conv {
    kiln_tensor_t *w; /* borrowed: the VAE's tensor list; [OC, C, KH, KW] */
    kiln_tensor_t *b; /* borrowed: [OC] */
} vae_conv_t;

typedef struct vae_norm {
    kiln_tensor_t *w, *b; /* borrowed: [C] */
} vae_norm_t;

/* norm1 -> silu -> conv1 -> norm2 -> silu -> conv2, plus x (through nin_shortcut, a 1x1
 * conv, when the channel count changes). */
typedef struct vae_resblock {
    vae_norm_t norm1, norm2;
    vae_conv_t conv1, conv2;
    vae_conv_t nin; /* w NULL when in == out channels */
} vae_resblock_t;

/* Single-head self-attention over the pixels; q, k, v and proj_out are 1x1 convs, held as
 * [C, C] matrices (views of the [C, C, 1, 1] weights). */
typedef struct vae_attn {
    vae_norm_t norm;
    vae_conv_t q, k, v, proj;
} vae_attn_t;

typedef struct vae_level {
    vae_resblock_t *blocks; /* borrowed: a slice of the VAE's block array */
    int n_blocks;
    vae_conv_t resample; /* up/downsample conv; w NULL at the level without one */
} vae_level_t;

/* One half of the autoencoder. The encoder's levels run 0..n-1 (downsampling after each but
 * the last); the decoder's levels are stored as up.0..up.n-1 and run n-1..0 (upsampling
 * after each but up.0). */
typedef struct vae_coder {
    vae_conv_t conv_in;
    vae_level_t levels[VAE_MAX_LEVELS];
    vae_resblock_t mid1, mid2;
    vae_attn_t attn;
    vae_norm_t norm_out;
    vae_conv_t conv_out;
} vae_coder_t;

struct sd_vae {
    sd_dev_t dev; /* where the weights live, and the compute dtype there */
    int ch, n_levels, n_res, z, embed; /* ch_mult etc. as in ComfyUI's ddconfig */
    int ch_mult[VAE_MAX_LEVELS];
    int in_channels, out_channels; /* image channels (3) */
    vae_coder_t enc, dec;
    vae_conv_t quant, post_quant; /* [2E, 2Z, 1, 1] and [Z, E, 1, 1] */
    vae_resblock_t *blocks;       /* owned: every ResnetBlock of both halves */
    int n_blocks;
    kiln_tensor_t **tensors; /* owned: one reference to every tensor above */
    int n_tensors, cap_tensors;
};

/* The blocks (vae_blocks.c). Each returns 0 or a KILN_E* code from the ops; on success *out
 * is a new tensor the caller releases, on failure *out is NULL. x is never modified. */

/* x [B, C, H, W] -> [B, C', H, W]. */
int sd_vae_blk_resnet(const vae_resblock_t *rb, kiln_lane_t *lane, const kiln_tensor_t *x,
                      kiln_tensor_t **out);
/* x [B, C, H, W] -> x + proj_out(attention(q, k, v)), same shape. The attention op works
 * a block of query rows at a time, so H*W x H*W scores are never held at once. */
int sd_vae_blk_attn(const vae_attn_t *at, kiln_lane_t *lane, const kiln_tensor_t *x,
                    kiln_tensor_t **out);
/* Nearest x2 then a 3x3 conv: [B, C, H, W] -> [B, C, 2H, 2W]. */
int sd_vae_blk_upsample(const vae_conv_t *cv, kiln_lane_t *lane, const kiln_tensor_t *x,
                        kiln_tensor_t **out);
/* Zero pad right and bottom by one, then a 3x3 stride-2 conv: -> [B, C, H/2, W/2]
 * (floor((H - 1) / 2) + 1 rows, as torch). */
int sd_vae_blk_downsample(const vae_conv_t *cv, kiln_lane_t *lane, const kiln_tensor_t *x,
                          kiln_tensor_t **out);
/* A conv with symmetric zero padding pad and stride 1: [B, C, H, W] -> [B, OC, OH, OW]. */
int sd_vae_blk_conv(const vae_conv_t *cv, kiln_lane_t *lane, const kiln_tensor_t *x, int pad,
                    kiln_tensor_t **out);
/* GroupNorm(32, eps 1e-6) with SiLU fused when silu is non-zero: a new tensor of x's shape. */
int sd_vae_blk_norm(const vae_norm_t *n, kiln_lane_t *lane, const kiln_tensor_t *x, int silu,
                    kiln_tensor_t **out);

#endif
