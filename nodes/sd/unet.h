/* The SD 1.x UNet (ComfyUI's openaimodel UNetModel with SpatialTransformers), its
 * configuration inferred from the checkpoint's tensor shapes so that the tiny fixture
 * model and a full 860M SD1.5 load with the same code. */
#ifndef SD_UNET_H
#define SD_UNET_H

#include <kiln/node.h>
#include <kiln/weights.h>

typedef struct sd_unet sd_unet_t;

typedef struct sd_unet_config {
    int in_channels;          /* 4 */
    int out_channels;         /* 4 */
    int model_channels;       /* 320 (32 in the tiny fixture) */
    int num_res_blocks;       /* 2 */
    int n_levels;             /* len(channel_mult) */
    int channel_mult[8];      /* [1, 2, 4, 4] */
    int transformer_depth[8]; /* per level; 0 = no attention at that level */
    int transformer_depth_middle;
    int context_dim;          /* 768 */
    int num_heads;            /* 8, or -1 when num_head_channels is set */
    int num_head_channels;    /* -1, or the per-head width */
    int use_linear_in_transformer; /* 0 for SD1.x: conv proj_in/proj_out */
} sd_unet_config_t;

/* Loads the UNet whose tensors start with prefix ("model.diffusion_model."), inferring
 * the config as ComfyUI's model_detection does (num_heads 8 for SD1.x, overridable with
 * heads > 0). Errors as sd_clip_load. */
int sd_unet_load(kiln_weights_t *w, const char *prefix, int heads, sd_unet_t **out, char *err,
                 size_t err_size);
void sd_unet_free(sd_unet_t *u);
const sd_unet_config_t *sd_unet_config(const sd_unet_t *u);

/* eps = UNet(x, t, context): x [B, C, h, w] (any h, w: the up path resizes to each skip's
 * size with nearest interpolation as ComfyUI does), timesteps [B] as floats (the model's
 * discrete timestep for each sigma), context [B, L, context_dim]. out [B, out_channels, h, w]
 * is caller-allocated. */
int sd_unet_forward(const sd_unet_t *u, kiln_lane_t *lane, const kiln_tensor_t *x,
                    const float *timesteps, const kiln_tensor_t *context, kiln_tensor_t *out);

#endif
