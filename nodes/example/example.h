/* The example node pack: what a plugin author's pack looks like. This header is shared by
 * the pack's files; it declares the node definitions each file provides (pack.c lists
 * them) and a few helpers for IMAGE inputs and outputs, all written against the public
 * headers only. Nothing here is part of kiln's API. */
#ifndef EXAMPLE_PACK_EXAMPLE_H
#define EXAMPLE_PACK_EXAMPLE_H

/* A pack sees kiln through the host function table: node.h turns every kiln_* call into
 * a call through that table when KILN_PLUGIN is set. Defining it here lets the README's
 * one-line cc command build the pack without -D flags. */
#ifndef KILN_PLUGIN
#define KILN_PLUGIN 1
#endif
#include <kiln/node.h>

/* Socket type of the palette object passed from ExampleMakePalette to ExampleApplyPalette.
 * A pack-specific type name carries a prefix so that it cannot clash with another pack's. */
#define EXAMPLE_PALETTE_TYPE "EXAMPLE_PALETTE"

/* Most colors one palette may hold. */
#define EXAMPLE_PALETTE_MAX 256

extern const kiln_node_def_t example_grayscale;     /* pure CPU loops over pixels */
extern const kiln_node_def_t example_vignette;      /* batchable: samples are independent */
extern const kiln_node_def_t example_split_batch;   /* list output: one image per element */
extern const kiln_node_def_t example_make_palette;  /* produces the custom palette type */
extern const kiln_node_def_t example_apply_palette; /* consumes it */
extern const kiln_node_def_t example_blend;         /* op library, runs on the node's lane */

/* An IMAGE input as dense float32 host memory: [B, H, W, C]. */
typedef struct example_image {
    kiln_tensor_t *t;       /* owned reference: the input itself or a dense copy of it */
    const float *data;      /* borrowed from t: B * H * W * C elements */
    int64_t b, h, w, c;
} example_image_t;

/* Reads IMAGE input `name` (a float32 tensor [B, H, W, C]) into img. On failure the call
 * has failed with a message, img holds nothing and the error code is returned. */
int example_input_image(kiln_call_t *call, const char *name, example_image_t *img);

/* Gives back the reference example_input_image took; safe on a zeroed img. */
void example_image_release(example_image_t *img);

/* Reads FLOAT input `name`; fails the call when it is missing or not a number. */
int example_input_float(kiln_call_t *call, const char *name, double *v);

/* A new zero-filled float32 image of shape [B, H, W, C]; *data points at its elements.
 * Fails the call when memory runs out. */
int example_new_image(kiln_call_t *call, const int64_t shape[4], kiln_tensor_t **out,
                      float **data);

/* Sets output `index` to t as an IMAGE value. Takes over the caller's reference to t in
 * every case (the value holds its own). */
int example_set_image(kiln_call_t *call, int index, kiln_tensor_t *t);

#endif
