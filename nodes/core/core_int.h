/* Shared declarations of the core node pack: the node definitions each file provides
 * (listed by pack.c) and helpers for reading inputs and producing outputs through the
 * host table. Only files of this pack include it. */
#ifndef KILN_NODES_CORE_CORE_INT_H
#define KILN_NODES_CORE_CORE_INT_H

#include <kiln/node.h>

/* Outputs larger than this many elements are refused (ComfyUI has no limit, but a
 * tensor this size is a mistake in a prompt, not an image). */
#define KILN__CORE_MAX_ELEMENTS ((int64_t)1 << 31)

/* MAX_RESOLUTION of ComfyUI's nodes.py. */
#define KILN__CORE_MAX_RES 16384

extern const kiln_node_def_t kiln__core_primitive_int;
extern const kiln_node_def_t kiln__core_primitive_float;
extern const kiln_node_def_t kiln__core_primitive_string;
extern const kiln_node_def_t kiln__core_primitive_string_multiline;
extern const kiln_node_def_t kiln__core_primitive_boolean;
extern const kiln_node_def_t kiln__core_save_image;
extern const kiln_node_def_t kiln__core_preview_image;
extern const kiln_node_def_t kiln__core_load_image;
extern const kiln_node_def_t kiln__core_image_scale;
extern const kiln_node_def_t kiln__core_image_scale_by;
extern const kiln_node_def_t kiln__core_image_invert;
extern const kiln_node_def_t kiln__core_image_batch;
extern const kiln_node_def_t kiln__core_empty_image;

/* An IMAGE (or MASK) input viewed as dense float32 host memory. */
typedef struct kiln__core_image {
    const float *data;      /* borrowed from the input tensor, or equal to owned */
    float *owned;           /* owned (kiln_malloc): a float32 copy of an F16/BF16/F64 input */
    int ndim;               /* 3 ([B, H, W]) or 4 ([B, H, W, C]) */
    int64_t b, h, w, c;     /* c is 1 for ndim 3 */
} kiln__core_image_t;

/* Reads input `name` as an image tensor of 3 or 4 dimensions with every size >= 1 (a
 * batch of 0 is allowed only when allow_empty). F16, BF16 and F64 inputs are converted.
 * On failure the call has failed with a message and the error is returned (release is
 * then unnecessary). Tensors are assumed dense: the 1.0 host table has no strides. */
int kiln__core_input_image(kiln_call_t *call, const char *name, kiln__core_image_t *img);

/* Frees a converted copy; NULL-safe. */
void kiln__core_image_release(kiln__core_image_t *img);

/* Copies STRING input `name` into buf (NUL-terminated). Fails the call when the input is
 * missing, not a string, holds a NUL byte or does not fit. */
int kiln__core_input_cstr(kiln_call_t *call, const char *name, char *buf, size_t size);

/* Reads INT / FLOAT / BOOLEAN input `name`; fails the call when missing or mistyped. */
int kiln__core_input_int(kiln_call_t *call, const char *name, int64_t *v);
int kiln__core_input_float(kiln_call_t *call, const char *name, double *v);
int kiln__core_input_bool(kiln_call_t *call, const char *name, int *v);

/* A new zero-filled float32 tensor of ndim (1..4) sizes; *data points at its elements.
 * Past KILN__CORE_MAX_ELEMENTS elements, or out of memory, the call fails. */
int kiln__core_new_f32(kiln_call_t *call, int ndim, const int64_t *shape, kiln_tensor_t **out,
                       float **data);

/* Sets output `index` to tensor t with socket type `type` and releases the caller's
 * reference to t in every case. */
int kiln__core_set_tensor_output(kiln_call_t *call, int index, const char *type,
                                 kiln_tensor_t *t);

/* Writes s as a JSON string literal (quotes included) into out. 0 or KILN_ERANGE. */
int kiln__core_json_string(const char *s, char *out, size_t out_size);

#endif
