/* The values that the Stable Diffusion nodes pass between each other: MODEL, CLIP and VAE
 * objects (refcounted, sharing the open checkpoint file they were loaded from), CONDITIONING
 * (a list of cross-attention tensors with their options) and LATENT (samples plus the
 * optional noise_mask and batch_index), with the input and output helpers the node files use.
 * Only files of the sd pack include this header (and tests that read these layouts). */
#ifndef KILN_SD_TYPES_H
#define KILN_SD_TYPES_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <kiln/node.h>

#include "clip.h"
#include "model_sampling.h"
#include "tokenizer.h"
#include "unet.h"
#include "vae.h"

/* Socket type names, as ComfyUI spells them. */
#define SD_TYPE_MODEL "MODEL"
#define SD_TYPE_CLIP "CLIP"
#define SD_TYPE_VAE "VAE"
#define SD_TYPE_CONDITIONING "CONDITIONING"
#define SD_TYPE_LATENT "LATENT"

/* MAX_RESOLUTION of ComfyUI's nodes.py. */
#define SD_MAX_RES 16384

/* Latent tensors larger than this many elements are refused (a prompt mistake, not an
 * image: 2^31 floats are 8 GiB). */
#define SD_MAX_ELEMENTS ((int64_t)1 << 31)

/* ---- the checkpoint file ---------------------------------------------------------------- */

/* An open weights file shared by the MODEL, CLIP and VAE loaded from it; closed when the
 * last of them goes. */
typedef struct sd_file {
    atomic_int refs;
    kiln_weights_t *weights;
    char *path;                 /* kiln_malloc'd */
} sd_file_t;

/* Takes ownership of w (closed on failure too); path is copied. NULL when out of memory. */
sd_file_t *sd_file_new(kiln_weights_t *w, const char *path);
void sd_file_retain(sd_file_t *f);
/* Drops one reference; NULL is fine. */
void sd_file_release(sd_file_t *f);

/* ---- MODEL, CLIP, VAE ------------------------------------------------------------------- */

/* MODEL: the UNet with its sigma table. Owned by one value (freed with it). */
typedef struct sd_model_obj {
    sd_file_t *file;            /* one reference */
    sd_unet_t *unet;            /* owned */
    sd_model_sampling_t sampling;
} sd_model_obj_t;

/* The text encoder and its tokenizer: shared by every CLIP value made from one load
 * (CLIPSetLastLayer makes new CLIP values around the same encoder). */
typedef struct sd_clip_core {
    atomic_int refs;
    sd_file_t *file;            /* one reference */
    sd_clip_t *encoder;         /* owned */
    sd_tokenizer_t *tokenizer;  /* owned */
} sd_clip_core_t;

/* CLIP: a shared encoder and the layer to stop at (-1 = last, ComfyUI's clip_layer). */
typedef struct sd_clip_obj {
    sd_clip_core_t *core;       /* one reference */
    int stop_at_layer;
} sd_clip_obj_t;

/* VAE. Owned by one value. */
typedef struct sd_vae_obj {
    sd_file_t *file;            /* one reference */
    sd_vae_t *vae;              /* owned */
} sd_vae_obj_t;

/* Each constructor takes ownership of obj (freeing it when the value cannot be made) and
 * returns a new value, or NULL when out of memory. */
kiln_value_t *sd_value_model(sd_model_obj_t *obj);
kiln_value_t *sd_value_clip(sd_clip_obj_t *obj);
kiln_value_t *sd_value_vae(sd_vae_obj_t *obj);

/* Frees the objects (NULL is fine); they release what they hold. */
void sd_model_obj_free(sd_model_obj_t *obj);
void sd_clip_obj_free(sd_clip_obj_t *obj);
void sd_vae_obj_free(sd_vae_obj_t *obj);
void sd_clip_core_retain(sd_clip_core_t *core);
void sd_clip_core_release(sd_clip_core_t *core);

/* The object behind input `name` (borrowed for the call), or NULL after failing the call
 * with "<name> input is invalid: None"-style messages when it is missing or mistyped. */
sd_model_obj_t *sd_input_model(kiln_call_t *call, const char *name);
sd_clip_obj_t *sd_input_clip(kiln_call_t *call, const char *name);
sd_vae_obj_t *sd_input_vae(kiln_call_t *call, const char *name);

/* ---- CONDITIONING ----------------------------------------------------------------------- */

/* One entry of ComfyUI's conditioning list: [cond, {"pooled_output": pooled, ...}]. */
typedef struct sd_cond_entry {
    kiln_tensor_t *cond;        /* one reference: [B, L, C] float32 */
    kiln_tensor_t *pooled;      /* one reference or NULL: [B, C] */
    double strength;            /* 1.0 unless set */
} sd_cond_entry_t;

/* CONDITIONING: immutable once it is a value; nodes build new ones. */
typedef struct sd_cond {
    size_t n;
    sd_cond_entry_t *entries;   /* kiln_malloc'd, n entries */
} sd_cond_t;

/* A conditioning with room for n entries, all zeroed (NULL when out of memory). */
sd_cond_t *sd_cond_new(size_t n);
/* Releases the tensors and frees c; NULL is fine. */
void sd_cond_free(sd_cond_t *c);
/* Takes ownership of c; NULL when out of memory (c is freed then). */
kiln_value_t *sd_value_cond(sd_cond_t *c);
/* Borrowed, or NULL after failing the call. */
const sd_cond_t *sd_input_cond(kiln_call_t *call, const char *name);

/* ---- LATENT ------------------------------------------------------------------------------ */

/* LATENT: {"samples": [B, C, h, w], "noise_mask"?: [N, 1, H, W], "batch_index"?: [B ints]}.
 * samples is dense float32 in raw latent space (not multiplied by the 0.18215 scale). */
typedef struct sd_latent {
    kiln_tensor_t *samples;     /* one reference */
    kiln_tensor_t *noise_mask;  /* one reference or NULL */
    int64_t *batch_index;       /* kiln_malloc'd or NULL */
    size_t n_batch_index;
} sd_latent_t;

/* A LATENT around samples (one new reference taken) that carries over noise_mask and
 * batch_index from `like` (may be NULL), as ComfyUI's latent.copy() with new samples.
 * NULL when out of memory. */
sd_latent_t *sd_latent_new(kiln_tensor_t *samples, const sd_latent_t *like);
void sd_latent_free(sd_latent_t *l);
/* Takes ownership of l; NULL when out of memory (l is freed then). */
kiln_value_t *sd_value_latent(sd_latent_t *l);
/* Borrowed, or NULL after failing the call. Checks that samples is dense float32 of
 * rank 4. */
const sd_latent_t *sd_input_latent(kiln_call_t *call, const char *name);

/* ---- inputs and outputs ----------------------------------------------------------------- */

/* Reads INT / unsigned 64-bit INT / FLOAT input `name`; fails the call when missing or
 * mistyped (the error is returned). */
int sd_input_int(kiln_call_t *call, const char *name, int64_t *v);
int sd_input_u64(kiln_call_t *call, const char *name, uint64_t *v);
int sd_input_float(kiln_call_t *call, const char *name, double *v);

/* Copies STRING/COMBO input `name` into buf (NUL-terminated); fails the call when missing,
 * not a string, containing NUL or too long. */
int sd_input_cstr(kiln_call_t *call, const char *name, char *buf, size_t size);

/* Sets output `index` to v (consumed), failing the call with "out of memory" when v is
 * NULL. */
int sd_set_output(kiln_call_t *call, int index, kiln_value_t *v);

/* A new zero-filled float32 tensor [d0, d1, d2, d3]; fails the call (and returns NULL) when
 * it exceeds SD_MAX_ELEMENTS or memory runs out. */
kiln_tensor_t *sd_new_f32_4d(kiln_call_t *call, int64_t d0, int64_t d1, int64_t d2, int64_t d3);

/* A dense float32 host tensor with t's elements: t retained when it already is one, else a
 * converted copy. NULL when out of memory or t is not a float tensor in host memory. */
kiln_tensor_t *sd_dense_f32(const kiln_tensor_t *t);

/* ---- the CFG denoiser (node_ksampler_cfg.c) --------------------------------------------- */

/* What ComfyUI's CFGGuider + calc_cond_batch compute for an EPS model: the UNet run on
 * every conditioning entry (batched, shorter contexts repeated to the LCM length), each
 * entry's prediction denoised = x - sigma * eps, averaged per side by strength, then
 * uncond + cfg * (cond - uncond) (the uncond side skipped when cfg is 1). A noise mask
 * blends the known latent back in as KSamplerX0Inpaint does. */
typedef struct sd_guider sd_guider_t;

typedef struct sd_guider_params {
    const sd_model_obj_t *model;
    kiln_lane_t *lane;
    kiln_call_t *call;          /* for interruption checks; may be NULL */
    const sd_cond_t *positive;
    const sd_cond_t *negative;
    double cfg;
    int64_t batch, channels, height, width;   /* the latent's shape [B, C, h, w] */
    /* (optional) inpainting: mask [B, C, h, w] in 0..1 (1 = regenerate), latent_in the
     * scaled input latent and noise the noise it is re-noised with, all of the latent's
     * element count. Borrowed for the guider's life. */
    const float *mask;
    const float *latent_in;
    const float *mask_noise;
} sd_guider_params_t;

/* Prepares the batched contexts. Errors (with a message in err): KILN_EINVAL (empty
 * positive conditioning, a context width the UNet does not take, mismatched batch),
 * KILN_ENOMEM. */
int sd_guider_new(const sd_guider_params_t *p, sd_guider_t **out, char *err, size_t errlen);
void sd_guider_free(sd_guider_t *g);

/* sd_denoise_fn of sampling.h: ud is the guider. */
int sd_guider_denoise(void *ud, const float *x, float sigma, float *denoised, size_t n);

/* The message of the last failed UNet call ("" when none). Borrowed from g. */
const char *sd_guider_error(const sd_guider_t *g);

/* ---- shared node code paths (HiresFix reuses KSampler's and LatentUpscaleBy's) ----------- */

/* The inputs of ComfyUI's common_ksampler. Pointers are borrowed for the call. */
typedef struct sd_ksampler_args {
    sd_model_obj_t *model;
    uint64_t seed;
    int64_t steps;                  /* 1..10000 */
    double cfg, denoise;
    char sampler[64], scheduler[64]; /* known names (sd_sampler_known, sd_scheduler_known) */
    const sd_cond_t *positive, *negative;
    const sd_latent_t *latent;
    int add_noise;
    int start_step, last_step;      /* -1: not given */
    int force_full_denoise;
} sd_ksampler_args_t;

/* common_ksampler (node_ksampler.c): samples a->latent and sets *out to a new LATENT that
 * keeps the input's noise_mask and batch_index. When the schedule has no step to take
 * (denoise 0, a start past the end) it returns 0 with *out NULL: the latent is unchanged.
 * Reports progress on call for every step; an interrupt returns KILN_EINTERRUPTED between
 * steps. Other failures fail the call (KILN_ENODE with a message). */
int sd_ksampler_sample(kiln_call_t *call, const sd_ksampler_args_t *a, sd_latent_t **out);

/* comfy.utils.common_upscale on a LATENT (node_latent.c): *out is a new LATENT
 * [B, C, oh, ow] resized with method (nearest-exact, bilinear, area or bicubic) after an
 * optional centre crop, keeping in's noise_mask and batch_index. Fails the call on a bad
 * size or method. */
int sd_latent_upscale(kiln_call_t *call, const sd_latent_t *in, const char *method, int64_t ow,
                      int64_t oh, int center_crop, sd_latent_t **out);

/* LatentUpscaleBy's resize: both sides times scale, rounded half to even (Python round). */
int sd_latent_upscale_by(kiln_call_t *call, const sd_latent_t *in, const char *method,
                         double scale, sd_latent_t **out);

/* ---- the node definitions (pack.c lists them) ------------------------------------------- */

extern const kiln_node_def_t sd_node_checkpoint_loader_simple;
extern const kiln_node_def_t sd_node_clip_text_encode;
extern const kiln_node_def_t sd_node_clip_set_last_layer;
extern const kiln_node_def_t sd_node_conditioning_combine;
extern const kiln_node_def_t sd_node_empty_latent_image;
extern const kiln_node_def_t sd_node_latent_upscale;
extern const kiln_node_def_t sd_node_latent_upscale_by;
extern const kiln_node_def_t sd_node_set_latent_noise_mask;
extern const kiln_node_def_t sd_node_ksampler;
extern const kiln_node_def_t sd_node_ksampler_advanced;
extern const kiln_node_def_t sd_node_vae_decode;
extern const kiln_node_def_t sd_node_vae_encode;
extern const kiln_node_def_t sd_node_conditioning_zero_out;
extern const kiln_node_def_t sd_node_vae_decode_tiled;
extern const kiln_node_def_t sd_node_hires_fix;

#endif
