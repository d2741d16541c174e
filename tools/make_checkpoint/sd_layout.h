/* The tensor layout of an SD 1.x single-file checkpoint, as ComfyUI's loader expects it:
 * every tensor of the UNet (model.diffusion_model.*), the VAE (first_stage_model.*) and the
 * CLIP text encoder (cond_stage_model.transformer.text_model.*) for a given configuration,
 * with ComfyUI's key names and shapes and the random initialisation each one gets. */
#ifndef KILN_TOOLS_SD_LAYOUT_H
#define KILN_TOOLS_SD_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define KILN__CKPT_MAX_LEVELS 6

/* The shape-defining numbers of the three parts (ComfyUI's unet_config, ddconfig and the
 * CLIPTextModel config). */
typedef struct kiln__ckpt_config {
    int clip_width, clip_layers, clip_heads, clip_ff, clip_vocab, clip_positions;
    int unet_ch, unet_levels, unet_mult[KILN__CKPT_MAX_LEVELS];
    int unet_res;               /* res blocks per level (SD1.x: 2) */
    int unet_attn_levels;       /* levels with a SpatialTransformer, from the first (SD1.x: 3) */
    int unet_in, unet_out;      /* latent channels (4) */
    int vae_ch, vae_levels, vae_mult[KILN__CKPT_MAX_LEVELS];
    int vae_res;                /* res blocks per encoder level (decoder: one more) */
    int vae_z, vae_embed, vae_image;    /* 4, 4, 3 */
} kiln__ckpt_config_t;

/* How a tensor is filled: value = offset + U(-bound, bound), or the positions 0..n-1 as
 * int64 (position_ids). */
typedef struct kiln__ckpt_spec {
    char *name;                 /* owned */
    int ndim;
    int64_t shape[4];
    float offset, bound;
    int positions;              /* int64 position ids */
} kiln__ckpt_spec_t;

typedef struct kiln__ckpt_layout {
    kiln__ckpt_spec_t *specs;   /* owned */
    size_t n, cap;
    int64_t params[3];          /* parameter counts of UNet, VAE, CLIP */
} kiln__ckpt_layout_t;

/* The tiny fixture-like configuration (CLIP 32 wide, 2 layers, 4 heads; UNet 32 channels,
 * mult 1,2,2,2; VAE ch 32, mult 1,1,2,2) and SD1.5's (CLIP 768/12/12; UNet 320, mult
 * 1,2,4,4, context 768; VAE ch 128, mult 1,2,4,4). */
void kiln__ckpt_config_tiny(kiln__ckpt_config_t *c);
void kiln__ckpt_config_sd15(kiln__ckpt_config_t *c);

/* Checks that c describes a model the SD1.x code can run (GroupNorm's 32 groups divide
 * every UNet and VAE width, heads divide the CLIP width, ...). 0, or KILN_EINVAL with a
 * message in err. */
int kiln__ckpt_config_check(const kiln__ckpt_config_t *c, char *err, size_t errlen);

/* Fills out (zeroed by the caller) with every tensor of the checkpoint, in module order.
 * Weights of convolutions and linears, and their biases, get PyTorch's default bound
 * 1 / sqrt(fan_in); the CLIP embeddings and linears get uniform stand-ins for the normal
 * stds transformers' CLIPTextModel initialises with; norms get gamma 1 and beta 0. These
 * keep activations at healthy scales through a whole run at any width. 0, or KILN_ENOMEM
 * (out is freed then). */
int kiln__ckpt_layout_build(const kiln__ckpt_config_t *c, kiln__ckpt_layout_t *out);

void kiln__ckpt_layout_free(kiln__ckpt_layout_t *l);

/* Writes the demo byte-level CLIP tokenizer (vocab.json and merges.txt) into dir, which
 * must exist: the 256 byte symbols in GPT-2's byte-to-unicode order (ids 0..255), each
 * again with "</w>" (256..511), <|startoftext|> 49406 and <|endoftext|> 49407, and no
 * merges, so every prompt byte becomes one token. 0, or KILN_EIO with a message in err. */
int kiln__ckpt_write_demo_tokenizer(const char *dir, char *err, size_t errlen);

#endif
