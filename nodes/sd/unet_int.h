/* The insides of the SD UNet, shared by unet_config.c (which reads the checkpoint into
 * them), unet_blocks.c (ResBlock, SpatialTransformer, resampling) and unet.c (the whole
 * forward). The model is kept as ComfyUI builds it: input_blocks, middle_block and
 * output_blocks are each a short sequence of modules (TimestepEmbedSequential). */
#ifndef SD_UNET_INT_H
#define SD_UNET_INT_H

#include "unet.h"
#include "sd_device.h"

/* GroupNorm groups of every UNet norm (ComfyUI's GroupNorm(32, ch) and Normalize). */
#define SD_UNET_GROUPS 32
/* Most modules one TimestepEmbedSequential holds (ResBlock, SpatialTransformer, Upsample). */
#define SD_UNET_SEQ_MAX 3

/* A weight and its bias, both owned (each may be NULL where the layer has none). */
typedef struct sd_unet_wb {
    kiln_tensor_t *w; /* owned */
    kiln_tensor_t *b; /* owned; NULL when the layer has no bias */
} sd_unet_wb_t;

/* ResBlock: in_layers (GroupNorm, SiLU, conv3x3), emb_layers (SiLU, linear), out_layers
 * (GroupNorm, SiLU, dropout, conv3x3), skip_connection (1x1 conv; w NULL for identity). */
typedef struct sd_unet_res {
    int c_in, c_out;
    sd_unet_wb_t in_norm, in_conv, emb, out_norm, out_conv, skip;
} sd_unet_res_t;

/* BasicTransformerBlock: self attention, cross attention, GEGLU feed-forward, each after
 * a LayerNorm and added back to the tokens. to_q/to_k/to_v have no bias. */
typedef struct sd_unet_tblock {
    sd_unet_wb_t norm1, norm2, norm3;
    kiln_tensor_t *q1, *k1, *v1; /* owned: attn1.to_{q,k,v}.weight */
    sd_unet_wb_t o1;             /* attn1.to_out.0 */
    kiln_tensor_t *q2, *k2, *v2; /* owned: attn2.to_{q,k,v}.weight (k, v read the context) */
    sd_unet_wb_t o2;             /* attn2.to_out.0 */
    sd_unet_wb_t ff_in, ff_out;  /* ff.net.0.proj ([2 * ff, inner]) and ff.net.2 */
} sd_unet_tblock_t;

/* SpatialTransformer: GroupNorm (eps 1e-6), proj_in, depth transformer blocks over the
 * h*w tokens, proj_out, plus the input. proj_in/proj_out are 1x1 convs (SD1.x) or linears
 * (use_linear, SD2.x). */
typedef struct sd_unet_st {
    int channels, inner, heads, depth, use_linear;
    sd_unet_wb_t norm, proj_in, proj_out;
    sd_unet_tblock_t *blocks; /* owned: [depth] */
} sd_unet_st_t;

typedef enum sd_unet_mod_kind {
    SD_UNET_MOD_CONV = 0, /* a 3x3 stride-1 conv (conv_in: input_blocks.0.0) */
    SD_UNET_MOD_DOWN,     /* Downsample: 3x3 conv, stride 2, padding 1 (".op") */
    SD_UNET_MOD_UP,       /* Upsample: nearest to the next skip's size, then 3x3 conv */
    SD_UNET_MOD_RES,      /* ResBlock */
    SD_UNET_MOD_ST        /* SpatialTransformer */
} sd_unet_mod_kind_t;

typedef struct sd_unet_mod {
    sd_unet_mod_kind_t kind;
    sd_unet_wb_t conv;  /* CONV, DOWN, UP */
    sd_unet_res_t *res; /* owned: RES */
    sd_unet_st_t *st;   /* owned: ST */
} sd_unet_mod_t;

/* One TimestepEmbedSequential. */
typedef struct sd_unet_seq {
    int n;
    sd_unet_mod_t mods[SD_UNET_SEQ_MAX];
} sd_unet_seq_t;

struct sd_unet {
    sd_dev_t dev; /* where the weights live, and the compute dtype there */
    sd_unet_config_t cfg;
    sd_unet_wb_t time1, time2;       /* time_embed.0 and time_embed.2 */
    sd_unet_wb_t out_norm, out_conv; /* out.0 and out.2 */
    int n_input, n_output;
    sd_unet_seq_t *input;  /* owned: [n_input] */
    sd_unet_seq_t *output; /* owned: [n_output] */
    sd_unet_seq_t middle;
    struct sd_unet_graphs *graphs; /* owned, made on first use: recorded bodies (unet_graph.c) */
};

/* Everything after the time embedding: x [B, in, H, W], emb_silu [B, E] (SiLU of the time
 * embedding), context [B, L, D] -> out [B, out, H, W], all on the current target. */
int sd_unet_body(const sd_unet_t *u, kiln_lane_t *lane, const kiln_tensor_t *x,
                 const kiln_tensor_t *emb_silu, const kiln_tensor_t *context, kiln_tensor_t *out);

/* sd_unet_body on a GPU through a recorded graph once the same lane and shapes have run
 * eagerly before (see unet_graph.c); eager on the host, with KILN_SD_GRAPHS=0, or when
 * recording fails. Calls on one lane are serial; different lanes may call at once. */
int sd_unet_body_graphed(const sd_unet_t *u, kiln_lane_t *lane, const kiln_tensor_t *x,
                         const kiln_tensor_t *emb_silu, const kiln_tensor_t *context,
                         kiln_tensor_t *out);

/* Frees the recorded graphs (waiting for their queued replays). */
void sd_unet_graphs_free(sd_unet_t *u);

/* Reads the UNet under prefix from w into u (zero-initialised by the caller): every
 * module, its tensors' shapes checked, the channel flow through the skips checked, and
 * u->cfg derived. heads > 0 overrides num_heads. On failure the message is in err and the
 * tensors read so far stay in u for sd_unet_free. Errors: KILN_ENOTFOUND (a tensor
 * missing), KILN_EPARSE (shapes or structure not a UNet this code runs, or heads that do
 * not split the channels), KILN_EUNSUPPORTED (a class-conditioned UNet: label_emb),
 * KILN_ENOMEM. */
int sd_unet_read(sd_unet_t *u, kiln_weights_t *w, const char *prefix, int heads, char *err,
                 size_t err_size);

/* Releases everything one module owns (the module itself is not freed). */
void sd_unet_mod_clear(sd_unet_mod_t *m);

/* Runs one module on h [B, C, H, W] (borrowed). emb_silu [B, E] is SiLU(time embedding),
 * context [B, L, context_dim]; skip_shape is the [B, C, H, W] of the next skip (used by
 * Upsample; NULL: twice the size). *out is a new tensor owned by the caller.
 * Errors: those of the ops (KILN_EINVAL for shapes the weights do not fit), KILN_ENOMEM. */
int sd_unet_mod_forward(const sd_unet_mod_t *m, kiln_lane_t *lane, const kiln_tensor_t *h,
                        const kiln_tensor_t *emb_silu, const kiln_tensor_t *context,
                        const int64_t *skip_shape, kiln_tensor_t **out);

/* time_embed(timestep_embedding(t, model_channels)) for n timesteps: *out [n, E], a new
 * tensor (E = 4 * model_channels). For tests and for the forward. Errors: KILN_EINVAL
 * (n < 1), KILN_ENOMEM, op errors. */
int sd_unet_time_embed(const sd_unet_t *u, kiln_lane_t *lane, const float *timesteps, int64_t n,
                       kiln_tensor_t **out);

#endif
