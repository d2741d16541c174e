/* The latent nodes: EmptyLatentImage, LatentUpscale ("Upscale Latent"), LatentUpscaleBy
 * ("Upscale Latent By") and SetLatentNoiseMask. The upscalers follow comfy.utils'
 * common_upscale: an optional centre crop to the target aspect ratio, then torch's
 * F.interpolate with mode nearest-exact, bilinear (align_corners=False), area
 * (adaptive average pooling) or bicubic (A = -0.75, align_corners=False). */
#include <math.h>
#include <string.h>

#include "sd_device.h"
#include "sd_types.h"

/* ---- EmptyLatentImage -------------------------------------------------------------------- */

static int empty_execute(kiln_call_t *call)
{
    int64_t w, h, b;
    int rc = sd_input_int(call, "width", &w);
    if (!rc)
        rc = sd_input_int(call, "height", &h);
    if (!rc)
        rc = sd_input_int(call, "batch_size", &b);
    if (rc)
        return rc;
    if (w < 8 || h < 8 || b < 1 || w > 8 * SD_MAX_RES || h > 8 * SD_MAX_RES || b > 1 << 20)
        return kiln_call_failf(call, "cannot make a %lld x %lld latent batch of %lld",
                               (long long)w, (long long)h, (long long)b);
    kiln_tensor_t *t = sd_new_f32_4d(call, b, 4, h / 8, w / 8);   // [B, 4, H/8, W/8] zeros
    if (!t)
        return KILN_ENODE;
    sd_latent_t *l = sd_latent_new(t, NULL);
    kiln_tensor_release(t);
    return sd_set_output(call, 0, sd_value_latent(l));
}

static const kiln_input_def_t empty_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "width", .type = "INT", .has_default = 1, .default_int = 512,
     .min_int = 16, .max_int = SD_MAX_RES, .step_int = 8,
     .tooltip = "The width of the latent images in pixels."},
    {KILN_INPUT_DEF_INIT, .name = "height", .type = "INT", .has_default = 1,
     .default_int = 512, .min_int = 16, .max_int = SD_MAX_RES, .step_int = 8,
     .tooltip = "The height of the latent images in pixels."},
    {KILN_INPUT_DEF_INIT, .name = "batch_size", .type = "INT", .has_default = 1,
     .default_int = 1, .min_int = 1, .max_int = 4096,
     .tooltip = "The number of latent images in the batch."},
    {0}};

static const kiln_output_def_t empty_output[] = {
    {KILN_OUTPUT_DEF_INIT, .type = SD_TYPE_LATENT, .tooltip = "The empty latent image batch."},
    {0}};

const kiln_node_def_t sd_node_empty_latent_image = {
    KILN_NODE_DEF_INIT, .name = "EmptyLatentImage", .display_name = "Empty Latent Image",
    .flags = KILN_NODE_GPU, /* may run on a GPU lane (sd_device.h) */
    .category = "latent",
    .description = "Create a new batch of empty latent images to be denoised via sampling.",
    .inputs = empty_inputs, .outputs = empty_output, .execute = empty_execute};

/* ---- resampling -------------------------------------------------------------------------- */

static const char *const upscale_methods[] = {"nearest-exact", "bilinear", "area", "bicubic",
                                              "bislerp", NULL};
static const char *const crop_methods[] = {"disabled", "center", NULL};

/* torch's adaptive_avg_pool2d on dense planes: planes x [h, w] -> [oh, ow]. */
static void area_resize(const float *src, int64_t planes, int64_t h, int64_t w, float *dst,
                        int64_t oh, int64_t ow)
{
    for (int64_t p = 0; p < planes; p++) {
        const float *s = src + p * h * w;
        for (int64_t oy = 0; oy < oh; oy++) {
            int64_t y0 = (oy / oh) * h + ((oy % oh) * h) / oh;
            int64_t y1 = 1 + ((oy + 1) * h - 1) / oh;
            for (int64_t ox = 0; ox < ow; ox++) {
                int64_t x0 = (ox / ow) * w + ((ox % ow) * w) / ow;
                int64_t x1 = 1 + ((ox + 1) * w - 1) / ow;
                float sum = 0.0f;
                for (int64_t y = y0; y < y1; y++)
                    for (int64_t x = x0; x < x1; x++)
                        sum += s[y * w + x];
                dst[(p * oh + oy) * ow + ox] = sum / (float)(y1 - y0) / (float)(x1 - x0);
            }
        }
    }
}

/* The four cubic convolution weights for fraction t (A = -0.75, as torch). */
static void cubic_weights(float t, float wts[4])
{
    const float a = -0.75f;
    float x1 = t + 1.0f, x2 = 1.0f - t, x3 = 2.0f - t;
    wts[0] = ((a * x1 - 5.0f * a) * x1 + 8.0f * a) * x1 - 4.0f * a;
    wts[1] = ((a + 2.0f) * t - (a + 3.0f)) * t * t + 1.0f;
    wts[2] = ((a + 2.0f) * x2 - (a + 3.0f)) * x2 * x2 + 1.0f;
    wts[3] = ((a * x3 - 5.0f * a) * x3 + 8.0f * a) * x3 - 4.0f * a;
}

/* Source index and weights of output position o for a resize in -> out (bicubic,
 * align_corners=False): taps idx[0..3] clamped to the border. */
static void cubic_taps(int64_t o, int64_t in, int64_t out, int64_t idx[4], float wts[4])
{
    float scale = (float)in / (float)out;
    float real = scale * ((float)o + 0.5f) - 0.5f;
    float fl = floorf(real);
    int64_t i0 = (int64_t)fl;
    cubic_weights(real - fl, wts);
    for (int k = 0; k < 4; k++) {
        int64_t i = i0 - 1 + k;
        idx[k] = i < 0 ? 0 : i >= in ? in - 1 : i;
    }
}

/* torch's bicubic F.interpolate (align_corners=False) on dense planes. */
static void bicubic_resize(const float *src, int64_t planes, int64_t h, int64_t w, float *dst,
                           int64_t oh, int64_t ow)
{
    for (int64_t oy = 0; oy < oh; oy++) {
        int64_t iy[4];
        float wy[4];
        cubic_taps(oy, h, oh, iy, wy);
        for (int64_t ox = 0; ox < ow; ox++) {
            int64_t ix[4];
            float wx[4];
            cubic_taps(ox, w, ow, ix, wx);
            for (int64_t p = 0; p < planes; p++) {
                const float *s = src + p * h * w;
                float acc = 0.0f;
                for (int j = 0; j < 4; j++) {
                    const float *r = s + iy[j] * w;
                    float t = r[ix[0]] * wx[0];
                    for (int i = 1; i < 4; i++)
                        t += r[ix[i]] * wx[i];
                    acc += t * wy[j];
                }
                dst[(p * oh + oy) * ow + ox] = acc;
            }
        }
    }
}

/* Resizes view src [B, C, h, w] into the new dense out [B, C, oh, ow]. */
static int resample(kiln_call_t *call, const char *method, const kiln_tensor_t *src,
                    kiln_tensor_t *out)
{
    if (strcmp(method, "nearest-exact") == 0 || strcmp(method, "bilinear") == 0) {
        kiln_interp_mode_t mode = method[0] == 'n' ? KILN_INTERP_MODE_NEAREST_EXACT
                                                   : KILN_INTERP_MODE_BILINEAR;
        int rc = kiln_op_interpolate(sd_dev_lane(kiln_call_lane(call)), out, src, mode);
        return rc ? kiln_call_failf(call, "latent resize failed (error %d)", rc) : 0;
    }
    if (strcmp(method, "area") != 0 && strcmp(method, "bicubic") != 0)
        return kiln_call_failf(call, "upscale_method '%s' is not supported yet", method);
    kiln_tensor_t *dense = NULL;
    if (kiln_tensor_contiguous(src, &dense) != 0)
        return kiln_call_fail(call, "out of memory");
    int64_t planes = kiln_tensor_dim(src, 0) * kiln_tensor_dim(src, 1);
    int64_t h = kiln_tensor_dim(src, 2), w = kiln_tensor_dim(src, 3);
    int64_t oh = kiln_tensor_dim(out, 2), ow = kiln_tensor_dim(out, 3);
    if (method[0] == 'a')
        area_resize(kiln_tensor_data(dense), planes, h, w, kiln_tensor_data(out), oh, ow);
    else
        bicubic_resize(kiln_tensor_data(dense), planes, h, w, kiln_tensor_data(out), oh, ow);
    kiln_tensor_release(dense);
    return 0;
}

int sd_latent_upscale(kiln_call_t *call, const sd_latent_t *in, const char *method, int64_t ow,
                      int64_t oh, int center_crop, sd_latent_t **out_latent)
{
    *out_latent = NULL;
    const kiln_tensor_t *s = in->samples;
    int64_t b = kiln_tensor_dim(s, 0), c = kiln_tensor_dim(s, 1);
    int64_t h = kiln_tensor_dim(s, 2), w = kiln_tensor_dim(s, 3);
    if (ow < 1 || oh < 1 || ow > SD_MAX_RES || oh > SD_MAX_RES)
        return kiln_call_failf(call, "cannot resize a latent to %lld x %lld", (long long)ow,
                               (long long)oh);
    int64_t x = 0, y = 0;
    if (center_crop && h > 0 && w > 0) {
        double old_aspect = (double)w / (double)h, new_aspect = (double)ow / (double)oh;
        if (old_aspect > new_aspect)
            x = (int64_t)nearbyint((w - w * (new_aspect / old_aspect)) / 2.0);
        else if (old_aspect < new_aspect)
            y = (int64_t)nearbyint((h - h * (old_aspect / new_aspect)) / 2.0);
    }
    kiln_tensor_t *rows = NULL, *view = NULL;
    if (kiln_tensor_slice(s, 2, y, h - 2 * y, &rows) != 0 ||
        kiln_tensor_slice(rows, 3, x, w - 2 * x, &view) != 0) {   // [B, C, h-2y, w-2x]
        kiln_tensor_release(rows);
        return kiln_call_fail(call, "cannot crop the latent");
    }
    kiln_tensor_release(rows);
    kiln_tensor_t *out = sd_new_f32_4d(call, b, c, oh, ow);           // [B, C, oh, ow]
    int rc = out ? resample(call, method, view, out) : KILN_ENODE;
    kiln_tensor_release(view);
    if (rc) {
        kiln_tensor_release(out);
        return rc;
    }
    *out_latent = sd_latent_new(out, in);
    kiln_tensor_release(out);
    return *out_latent ? 0 : kiln_call_fail(call, "out of memory");
}

int sd_latent_upscale_by(kiln_call_t *call, const sd_latent_t *in, const char *method,
                         double scale, sd_latent_t **out)
{
    *out = NULL;
    if (!(scale > 0.0) || scale > 1e4)
        return kiln_call_failf(call, "scale_by must be positive, got %g", scale);
    /* Python's round(): half to even. */
    int64_t w = (int64_t)nearbyint((double)kiln_tensor_dim(in->samples, 3) * scale);
    int64_t h = (int64_t)nearbyint((double)kiln_tensor_dim(in->samples, 2) * scale);
    return sd_latent_upscale(call, in, method, w, h, 0, out);
}

/* The new LATENT of sd_latent_upscale as output 0. */
static int upscale_latent(kiln_call_t *call, const sd_latent_t *in, const char *method,
                          int64_t ow, int64_t oh, int center_crop)
{
    sd_latent_t *l = NULL;
    int rc = sd_latent_upscale(call, in, method, ow, oh, center_crop, &l);
    return rc ? rc : sd_set_output(call, 0, sd_value_latent(l));
}

/* ---- LatentUpscale ----------------------------------------------------------------------- */

static int upscale_execute(kiln_call_t *call)
{
    char method[32], crop[16];
    int64_t w, h;
    int rc = sd_input_cstr(call, "upscale_method", method, sizeof method);
    if (!rc)
        rc = sd_input_int(call, "width", &w);
    if (!rc)
        rc = sd_input_int(call, "height", &h);
    if (!rc)
        rc = sd_input_cstr(call, "crop", crop, sizeof crop);
    if (rc)
        return rc;
    const sd_latent_t *in = sd_input_latent(call, "samples");
    if (!in)
        return KILN_ENODE;
    if (w == 0 && h == 0) {
        /* Unchanged: the same LATENT goes through. */
        const kiln_value_t *v = kiln_call_input(call, "samples");
        kiln_value_retain(v);
        return kiln_call_set_output(call, 0, (kiln_value_t *)v);
    }
    double lh = (double)kiln_tensor_dim(in->samples, 2);
    double lw = (double)kiln_tensor_dim(in->samples, 3);
    /* Python: max(64, round(W * height / H)), true division, round half to even. */
    if (w == 0) {
        h = h > 64 ? h : 64;
        w = (int64_t)fmax(64.0, nearbyint(lw * (double)h / lh));
    } else if (h == 0) {
        w = w > 64 ? w : 64;
        h = (int64_t)fmax(64.0, nearbyint(lh * (double)w / lw));
    } else {
        w = w > 64 ? w : 64;
        h = h > 64 ? h : 64;
    }
    return upscale_latent(call, in, method, w / 8, h / 8, strcmp(crop, "center") == 0);
}

static const kiln_input_def_t upscale_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "samples", .type = SD_TYPE_LATENT},
    {KILN_INPUT_DEF_INIT, .name = "upscale_method", .type = "COMBO", .options = upscale_methods},
    {KILN_INPUT_DEF_INIT, .name = "width", .type = "INT", .has_default = 1, .default_int = 512,
     .min_int = 0, .max_int = SD_MAX_RES, .step_int = 8},
    {KILN_INPUT_DEF_INIT, .name = "height", .type = "INT", .has_default = 1,
     .default_int = 512, .min_int = 0, .max_int = SD_MAX_RES, .step_int = 8},
    {KILN_INPUT_DEF_INIT, .name = "crop", .type = "COMBO", .options = crop_methods},
    {0}};

static const kiln_output_def_t latent_output[] = {
    {KILN_OUTPUT_DEF_INIT, .type = SD_TYPE_LATENT}, {0}};

const kiln_node_def_t sd_node_latent_upscale = {
    KILN_NODE_DEF_INIT, .name = "LatentUpscale", .display_name = "Upscale Latent",
    .flags = KILN_NODE_GPU, /* may run on a GPU lane (sd_device.h) */
    .category = "latent", .inputs = upscale_inputs, .outputs = latent_output,
    .execute = upscale_execute};

/* ---- LatentUpscaleBy --------------------------------------------------------------------- */

static int upscale_by_execute(kiln_call_t *call)
{
    char method[32];
    double scale;
    int rc = sd_input_cstr(call, "upscale_method", method, sizeof method);
    if (!rc)
        rc = sd_input_float(call, "scale_by", &scale);
    if (rc)
        return rc;
    const sd_latent_t *in = sd_input_latent(call, "samples");
    if (!in)
        return KILN_ENODE;
    sd_latent_t *l = NULL;
    rc = sd_latent_upscale_by(call, in, method, scale, &l);
    return rc ? rc : sd_set_output(call, 0, sd_value_latent(l));
}

static const kiln_input_def_t upscale_by_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "samples", .type = SD_TYPE_LATENT},
    {KILN_INPUT_DEF_INIT, .name = "upscale_method", .type = "COMBO", .options = upscale_methods},
    {KILN_INPUT_DEF_INIT, .name = "scale_by", .type = "FLOAT", .has_default = 1,
     .default_float = 1.5, .min_float = 0.01, .max_float = 8.0, .step_float = 0.01},
    {0}};

const kiln_node_def_t sd_node_latent_upscale_by = {
    KILN_NODE_DEF_INIT, .name = "LatentUpscaleBy", .display_name = "Upscale Latent By",
    .flags = KILN_NODE_GPU, /* may run on a GPU lane (sd_device.h) */
    .category = "latent", .inputs = upscale_by_inputs, .outputs = latent_output,
    .execute = upscale_by_execute};

/* ---- SetLatentNoiseMask ------------------------------------------------------------------ */

static int noise_mask_execute(kiln_call_t *call)
{
    const sd_latent_t *in = sd_input_latent(call, "samples");
    if (!in)
        return KILN_ENODE;
    kiln_tensor_t *mask = kiln_value_get_tensor(kiln_call_input(call, "mask"));
    int nd = mask ? kiln_tensor_ndim(mask) : 0;
    if (nd < 2 || nd > 4)
        return kiln_call_fail(call, "input 'mask' must be a MASK tensor [B, H, W] or [H, W]");
    int64_t mh = kiln_tensor_dim(mask, -2), mw = kiln_tensor_dim(mask, -1);
    if (mh < 1 || mw < 1)
        return kiln_call_fail(call, "input 'mask' is empty");
    kiln_tensor_t *dense = sd_dense_f32(mask), *shaped = NULL;
    int64_t shape[4] = {-1, 1, mh, mw};
    if (!dense || kiln_tensor_reshape(dense, 4, shape, &shaped) != 0) {   // [N, 1, H, W]
        kiln_tensor_release(dense);
        return kiln_call_fail(call, "input 'mask' must be a float tensor in host memory");
    }
    kiln_tensor_release(dense);
    sd_latent_t *l = sd_latent_new(in->samples, in);
    if (l) {
        kiln_tensor_release(l->noise_mask);
        l->noise_mask = shaped;
    } else {
        kiln_tensor_release(shaped);
    }
    return sd_set_output(call, 0, sd_value_latent(l));
}

static const kiln_input_def_t noise_mask_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "samples", .type = SD_TYPE_LATENT},
    {KILN_INPUT_DEF_INIT, .name = "mask", .type = "MASK"},
    {0}};

const kiln_node_def_t sd_node_set_latent_noise_mask = {
    KILN_NODE_DEF_INIT, .name = "SetLatentNoiseMask", .display_name = "Set Latent Noise Mask",
    .category = "latent/inpaint", .inputs = noise_mask_inputs, .outputs = latent_output,
    .execute = noise_mask_execute};
