/* The CLIP ViT-L/14 text encoder of SD 1.x (and any width/depth read from the weights),
 * computing ComfyUI's CONDITIONING from tokenized prompt chunks. */
#ifndef SD_CLIP_H
#define SD_CLIP_H

#include <kiln/node.h>
#include <kiln/weights.h>

#include "tokenizer.h"

typedef struct sd_clip sd_clip_t;

/* Loads the text encoder whose tensors start with prefix (for a single-file SD1.x
 * checkpoint "cond_stage_model.transformer.text_model."). Width, depth, MLP width,
 * vocabulary and positions come from the tensor shapes; heads is the number of attention
 * heads when > 0 (tiny models, whose width says nothing about it), else width/64 rounded
 * to the nearest integer (at least 1); it must divide the width. Tensors are held as F32
 * (zero-copy views of an F32 file, converted copies otherwise). Errors (*out NULL, a
 * message in err): KILN_EINVAL (NULL w or out), KILN_ENOTFOUND (a tensor missing, named
 * in err), KILN_EPARSE (shapes inconsistent), KILN_ENOMEM. The encoder keeps its own
 * references to the tensors; w may be closed afterwards. */
int sd_clip_load(kiln_weights_t *w, const char *prefix, int heads, sd_clip_t **out, char *err,
                 size_t err_size);
void sd_clip_free(sd_clip_t *c);

/* Hidden width of the encoder (768 for SD1.x), its depth (12) and attention heads (12);
 * 0 for NULL. */
int sd_clip_width(const sd_clip_t *c);
int sd_clip_layers(const sd_clip_t *c);
int sd_clip_heads(const sd_clip_t *c);

/* ComfyUI's CLIPTextEncode on token chunks: each 77-token chunk is encoded on its own;
 * stop_at_layer is -1 for the last layer or -k for the output of layer n-k (CLIPSetLastLayer),
 * the final layer norm applied either way; token weights are applied as ComfyUI does
 * (z_empty + w·(z − z_empty) per token, encoding an all-empty chunk, only when some weight
 * differs from 1); chunks are concatenated along tokens. pooled is the final-layer-normed
 * last-layer hidden state at the first end token of the first chunk (no projection).
 * Outputs: *cond [1, 77·chunks, width], *pooled [1, width], new tensors owned by the caller.
 * stop_at_layer beyond the depth (|k| > n) keeps the last layer, as ComfyUI's clip_layer()
 * does; zero chunks encode the empty chunk alone (cond [1, 77, width]). Errors (both outputs
 * NULL then): KILN_EINVAL (NULL arguments, stop_at_layer >= 0), KILN_ERANGE (an id outside
 * the vocabulary), KILN_ELIMIT (over 65536 chunks), KILN_ENOMEM. Threads: the encoder is
 * read-only here, so any number of threads may encode with one at once. */
int sd_clip_encode(const sd_clip_t *c, kiln_lane_t *lane, const sd_token_chunks_t *chunks,
                   int stop_at_layer, kiln_tensor_t **cond, kiln_tensor_t **pooled);

#endif
