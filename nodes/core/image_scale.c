/* ImageScale ("Upscale Image") and ImageScaleBy ("Upscale Image By"), category
 * image/upscaling: resize a batch with one of ComfyUI's five methods (resize.h). A target
 * side of 0 keeps the aspect ratio; crop "center" first cuts the source to the target's
 * aspect ratio, as comfy.utils.common_upscale does. */
#include <math.h>
#include <string.h>

#include "core_int.h"
#include "resize.h"

static const char *const crop_methods[] = {"disabled", "center", NULL};

/* Resizes the "image" input to out_h x out_w (crop: center crop first) and sets output 0. */
static int scale_to(kiln_call_t *call, const kiln__core_image_t *img,
                    kiln__core_resize_method_t method, int64_t out_h, int64_t out_w, int crop)
{
    if (img->ndim != 4)
        return kiln_call_fail(call, "input 'image' must have shape [B, H, W, C]");
    /* Sizes are bounded by the element limit; this only keeps the arithmetic small. */
    if (out_h < 1 || out_w < 1 || out_h > (1 << 20) || out_w > (1 << 20))
        return kiln_call_failf(call, "cannot resize to %lld x %lld", (long long)out_w,
                               (long long)out_h);
    int64_t shape[4] = {img->b, out_h, out_w, img->c};
    kiln_tensor_t *out;
    float *dst;
    int err = kiln__core_new_f32(call, 4, shape, &out, &dst);   // [B, out_h, out_w, C]
    if (err)
        return err;
    kiln__core_rect_t r;
    if (crop)
        kiln__core_center_crop(img->h, img->w, out_h, out_w, &r);
    err = kiln__core_resize(img->data, img->b, img->h, img->w, img->c, crop ? &r : NULL, method,
                            dst, out_h, out_w);
    if (err) {
        kiln_tensor_release(out);
        return kiln_call_fail(call, err == KILN_ENOMEM ? "out of memory" : "cannot resize");
    }
    return kiln__core_set_tensor_output(call, 0, "IMAGE", out);
}

static int read_method(kiln_call_t *call, kiln__core_resize_method_t *method)
{
    char name[32];
    int err = kiln__core_input_cstr(call, "upscale_method", name, sizeof name);
    if (!err && kiln__core_resize_method_parse(name, method) != 0)
        err = kiln_call_failf(call, "unknown upscale_method '%s'", name);
    return err;
}

static int scale_execute(kiln_call_t *call)
{
    kiln__core_resize_method_t method;
    char crop[16];
    int64_t w, h;
    int err = read_method(call, &method);
    if (!err)
        err = kiln__core_input_int(call, "width", &w);
    if (!err)
        err = kiln__core_input_int(call, "height", &h);
    if (!err)
        err = kiln__core_input_cstr(call, "crop", crop, sizeof crop);
    if (err)
        return err;
    if (strcmp(crop, "disabled") != 0 && strcmp(crop, "center") != 0)
        return kiln_call_failf(call, "unknown crop method '%s'", crop);
    kiln__core_image_t img;
    err = kiln__core_input_image(call, "image", &img);
    if (err)
        return err;
    if (w == 0 && h == 0) {
        /* Unchanged: the input goes through as it is. */
        kiln__core_image_release(&img);
        kiln_tensor_t *t = kiln_value_get_tensor(kiln_call_input(call, "image"));
        kiln_value_t *v = kiln_value_new_tensor("IMAGE", t);
        return v ? kiln_call_set_output(call, 0, v) : kiln_call_fail(call, "out of memory");
    }
    /* Python: max(1, round(W * height / H)), true division, round half to even. */
    if (w == 0)
        w = (int64_t)fmax(1.0, rint((double)(img.w * h) / (double)img.h));
    else if (h == 0)
        h = (int64_t)fmax(1.0, rint((double)(img.h * w) / (double)img.w));
    err = scale_to(call, &img, method, h, w, strcmp(crop, "center") == 0);
    kiln__core_image_release(&img);
    return err;
}

static int scale_by_execute(kiln_call_t *call)
{
    kiln__core_resize_method_t method;
    double scale;
    int err = read_method(call, &method);
    if (!err)
        err = kiln__core_input_float(call, "scale_by", &scale);
    if (err)
        return err;
    if (!(scale > 0.0) || scale > 1e4)
        return kiln_call_failf(call, "scale_by must be positive, got %g", scale);
    kiln__core_image_t img;
    err = kiln__core_input_image(call, "image", &img);
    if (err)
        return err;
    int64_t w = (int64_t)rint((double)img.w * scale), h = (int64_t)rint((double)img.h * scale);
    err = scale_to(call, &img, method, h, w, 0);
    kiln__core_image_release(&img);
    return err;
}

static const kiln_input_def_t scale_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "image", .type = "IMAGE"},
    {KILN_INPUT_DEF_INIT, .name = "upscale_method", .type = "COMBO",
     .options = kiln__core_resize_method_names},
    {KILN_INPUT_DEF_INIT, .name = "width", .type = "INT", .has_default = 1, .default_int = 512,
     .min_int = 0, .max_int = KILN__CORE_MAX_RES, .step_int = 1},
    {KILN_INPUT_DEF_INIT, .name = "height", .type = "INT", .has_default = 1, .default_int = 512,
     .min_int = 0, .max_int = KILN__CORE_MAX_RES, .step_int = 1},
    {KILN_INPUT_DEF_INIT, .name = "crop", .type = "COMBO", .options = crop_methods},
    {0}};

static const kiln_input_def_t scale_by_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "image", .type = "IMAGE"},
    {KILN_INPUT_DEF_INIT, .name = "upscale_method", .type = "COMBO",
     .options = kiln__core_resize_method_names},
    {KILN_INPUT_DEF_INIT, .name = "scale_by", .type = "FLOAT", .has_default = 1,
     .default_float = 1.0, .min_float = 0.01, .max_float = 8.0, .step_float = 0.01},
    {0}};

static const kiln_output_def_t image_output[] = {{KILN_OUTPUT_DEF_INIT, .type = "IMAGE"}, {0}};

const kiln_node_def_t kiln__core_image_scale = {
    KILN_NODE_DEF_INIT, .name = "ImageScale", .display_name = "Upscale Image",
    .category = "image/upscaling", .inputs = scale_inputs, .outputs = image_output,
    .execute = scale_execute};

const kiln_node_def_t kiln__core_image_scale_by = {
    KILN_NODE_DEF_INIT, .name = "ImageScaleBy", .display_name = "Upscale Image By",
    .category = "image/upscaling", .inputs = scale_by_inputs, .outputs = image_output,
    .execute = scale_by_execute};
