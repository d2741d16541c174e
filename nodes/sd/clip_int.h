/* The insides of the CLIP text encoder, shared by clip.c (loading) and clip_encode.c (the
 * forward pass). Nothing outside these two files includes this. */
#ifndef SD_CLIP_INT_H
#define SD_CLIP_INT_H

#include "clip.h"
#include "sd_device.h"

/* SD1ClipModel's special tokens: start, end, and padding (which repeats the end token). */
#define CLIP_START_ID 49406
#define CLIP_END_ID 49407
#define CLIP_PAD_ID 49407
#define CLIP_LN_EPS 1e-5f

typedef struct clip_layer {
    kiln_tensor_t *ln1_w, *ln1_b; /* owned: [C] */
    kiln_tensor_t *q_w, *q_b;     /* owned: [C, C], [C] */
    kiln_tensor_t *k_w, *k_b;
    kiln_tensor_t *v_w, *v_b;
    kiln_tensor_t *o_w, *o_b;
    kiln_tensor_t *ln2_w, *ln2_b;
    kiln_tensor_t *fc1_w, *fc1_b; /* owned: [I, C], [I] */
    kiln_tensor_t *fc2_w, *fc2_b; /* owned: [C, I], [C] */
} clip_layer_t;

#define CLIP_LAYER_TENSORS ((int)(sizeof(clip_layer_t) / sizeof(kiln_tensor_t *)))

struct sd_clip {
    sd_dev_t dev; /* where the weights live, and the compute dtype there */
    int width, heads, n_layers, n_pos, inner;
    kiln_tensor_t *tok_emb;           /* owned: [V, C] */
    kiln_tensor_t *pos_emb;           /* owned: [P, C] */
    kiln_tensor_t *final_w, *final_b; /* owned: [C] */
    clip_layer_t *layers;             /* owned: n_layers entries */
};

#endif
