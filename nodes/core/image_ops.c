/* Simple image nodes of ComfyUI's nodes.py (category image): ImageInvert (1 - x),
 * EmptyImage (a batch filled with one RGB color) and ImageBatch (concatenation, resizing
 * the second batch to the first one's size as ComfyUI does). */
#include <string.h>

#include "core_int.h"
#include "resize.h"

static int invert_execute(kiln_call_t *call)
{
    kiln__core_image_t img;
    int err = kiln__core_input_image(call, "image", &img);
    if (err)
        return err;
    int64_t shape[4] = {img.b, img.h, img.w, img.c};
    kiln_tensor_t *out = NULL;
    float *dst;
    err = kiln__core_new_f32(call, img.ndim, shape, &out, &dst);
    if (!err) {
        int64_t n = img.b * img.h * img.w * img.c;
        for (int64_t i = 0; i < n; i++)
            dst[i] = 1.0f - img.data[i];
        err = kiln__core_set_tensor_output(call, 0, "IMAGE", out);
    }
    kiln__core_image_release(&img);
    return err;
}

static int empty_execute(kiln_call_t *call)
{
    int64_t w, h, batch, color;
    int err = kiln__core_input_int(call, "width", &w);
    if (!err)
        err = kiln__core_input_int(call, "height", &h);
    if (!err)
        err = kiln__core_input_int(call, "batch_size", &batch);
    if (!err)
        err = kiln__core_input_int(call, "color", &color);
    if (err)
        return err;
    int64_t shape[4] = {batch, h, w, 3};
    kiln_tensor_t *out;
    float *dst;
    err = kiln__core_new_f32(call, 4, shape, &out, &dst);   // [B, H, W, 3]
    if (err)
        return err;
    /* ComfyUI divides in double precision and torch.full stores the float32 of it. */
    float rgb[3] = {(float)((double)((color >> 16) & 0xFF) / 255.0),
                    (float)((double)((color >> 8) & 0xFF) / 255.0),
                    (float)((double)(color & 0xFF) / 255.0)};
    for (int64_t i = 0; i < batch * h * w; i++)
        memcpy(dst + 3 * i, rgb, sizeof rgb);
    return kiln__core_set_tensor_output(call, 0, "IMAGE", out);
}

/* Copies src [b, h, w, c_src] into dst [b, h, w, c] and fills missing channels with 1
 * (ComfyUI pads the image with fewer channels with an opaque alpha). */
static void copy_padded(const float *src, int64_t pixels, int64_t c_src, float *dst, int64_t c)
{
    for (int64_t i = 0; i < pixels; i++) {
        memcpy(dst + i * c, src + i * c_src, (size_t)c_src * sizeof *dst);
        for (int64_t ch = c_src; ch < c; ch++)
            dst[i * c + ch] = 1.0f;
    }
}

/* image2 made [b2, h1, w1, c]: padded to c channels, then resized bilinearly with a
 * center crop when its size differs (comfy.utils.common_upscale). */
static int batch_second(const kiln__core_image_t *a, const kiln__core_image_t *b, int64_t c,
                        float *dst)
{
    int64_t pixels = b->b * b->h * b->w;
    if (b->h == a->h && b->w == a->w) {
        copy_padded(b->data, pixels, b->c, dst, c);
        return 0;
    }
    float *padded = kiln_malloc((size_t)(pixels * c) * sizeof *padded);
    if (!padded)
        return KILN_ENOMEM;
    copy_padded(b->data, pixels, b->c, padded, c);  // [b2, h2, w2, c]
    kiln__core_rect_t crop;
    kiln__core_center_crop(b->h, b->w, a->h, a->w, &crop);
    int err = kiln__core_resize(padded, b->b, b->h, b->w, c, &crop, KILN__CORE_RESIZE_BILINEAR,
                                dst, a->h, a->w);   // [b2, h1, w1, c]
    kiln_free(padded);
    return err;
}

static int batch_execute(kiln_call_t *call)
{
    kiln__core_image_t a, b;
    int err = kiln__core_input_image(call, "image1", &a);
    if (err)
        return err;
    err = kiln__core_input_image(call, "image2", &b);
    if (err) {
        kiln__core_image_release(&a);
        return err;
    }
    int64_t c = a.c > b.c ? a.c : b.c;
    int64_t shape[4] = {a.b + b.b, a.h, a.w, c};
    kiln_tensor_t *out = NULL;
    float *dst;
    if (a.ndim != 4 || b.ndim != 4)
        err = kiln_call_fail(call, "ImageBatch needs two images of shape [B, H, W, C]");
    else
        err = kiln__core_new_f32(call, 4, shape, &out, &dst);   // [B1 + B2, H1, W1, C]
    if (!err) {
        copy_padded(a.data, a.b * a.h * a.w, a.c, dst, c);
        err = batch_second(&a, &b, c, dst + a.b * a.h * a.w * c);
        if (err) {
            kiln_tensor_release(out);
            err = kiln_call_fail(call, "out of memory");
        } else {
            err = kiln__core_set_tensor_output(call, 0, "IMAGE", out);
        }
    }
    kiln__core_image_release(&a);
    kiln__core_image_release(&b);
    return err;
}

static const kiln_input_def_t image_only[] = {
    {KILN_INPUT_DEF_INIT, .name = "image", .type = "IMAGE"}, {0}};

static const kiln_input_def_t empty_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "width", .type = "INT", .has_default = 1, .default_int = 512,
     .min_int = 1, .max_int = KILN__CORE_MAX_RES, .step_int = 1},
    {KILN_INPUT_DEF_INIT, .name = "height", .type = "INT", .has_default = 1, .default_int = 512,
     .min_int = 1, .max_int = KILN__CORE_MAX_RES, .step_int = 1},
    {KILN_INPUT_DEF_INIT, .name = "batch_size", .type = "INT", .has_default = 1,
     .default_int = 1, .min_int = 1, .max_int = 4096},
    {KILN_INPUT_DEF_INIT, .name = "color", .type = "INT", .has_default = 1, .default_int = 0,
     .min_int = 0, .max_int = 0xFFFFFF, .step_int = 1, .extra_json = "{\"display\": \"color\"}"},
    {0}};

static const kiln_input_def_t batch_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "image1", .type = "IMAGE"},
    {KILN_INPUT_DEF_INIT, .name = "image2", .type = "IMAGE"},
    {0}};

static const kiln_output_def_t image_output[] = {{KILN_OUTPUT_DEF_INIT, .type = "IMAGE"}, {0}};

const kiln_node_def_t kiln__core_image_invert = {
    KILN_NODE_DEF_INIT, .name = "ImageInvert", .display_name = "Invert Image",
    .category = "image", .inputs = image_only, .outputs = image_output,
    .execute = invert_execute};

const kiln_node_def_t kiln__core_empty_image = {
    KILN_NODE_DEF_INIT, .name = "EmptyImage", .category = "image", .inputs = empty_inputs,
    .outputs = image_output, .execute = empty_execute};

const kiln_node_def_t kiln__core_image_batch = {
    KILN_NODE_DEF_INIT, .name = "ImageBatch", .display_name = "Batch Images",
    .category = "image", .inputs = batch_inputs, .outputs = image_output,
    .execute = batch_execute};
