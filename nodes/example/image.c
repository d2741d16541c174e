/* Image nodes of the example pack that run plain C loops on the CPU:
 *   ExampleGrayscale  IMAGE -> IMAGE          luma (BT.601) in every color channel
 *   ExampleVignette   IMAGE, strength -> IMAGE darker towards the corners; batchable
 *   ExampleSplitBatch IMAGE -> IMAGE (list)   one single-image batch per element
 * IMAGE is ComfyUI's layout: float32 [B, H, W, C], values in [0, 1], C = 3 (RGB) or 4. */
#include "example.h"

/* ---- ExampleGrayscale ----------------------------------------------------------------- */

static int grayscale_execute(kiln_call_t *call)
{
    example_image_t in;
    int rc = example_input_image(call, "image", &in);
    if (rc != 0)
        return rc;
    if (in.c < 3) {
        example_image_release(&in);
        return kiln_call_failf(call, "ExampleGrayscale needs RGB images, got %lld channel(s)",
                               (long long)in.c);
    }
    int64_t shape[4] = {in.b, in.h, in.w, in.c};
    kiln_tensor_t *out;
    float *dst;
    rc = example_new_image(call, shape, &out, &dst); // [B, H, W, C]
    if (rc == 0) {
        int64_t pixels = in.b * in.h * in.w;
        for (int64_t i = 0; i < pixels; i++) {
            const float *s = in.data + i * in.c;
            float *d = dst + i * in.c;
            float y = 0.299f * s[0] + 0.587f * s[1] + 0.114f * s[2];
            d[0] = d[1] = d[2] = y;
            for (int64_t k = 3; k < in.c; k++)
                d[k] = s[k]; /* alpha stays */
        }
        rc = example_set_image(call, 0, out);
    }
    example_image_release(&in);
    return rc;
}

static const kiln_input_def_t grayscale_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "image", .type = "IMAGE"},
    {0}};

static const kiln_output_def_t image_output[] = {
    {KILN_OUTPUT_DEF_INIT, .type = "IMAGE"},
    {0}};

const kiln_node_def_t example_grayscale = {
    KILN_NODE_DEF_INIT, .name = "ExampleGrayscale", .display_name = "Grayscale (example)",
    .category = "example/image", .description = "Replaces each color by its BT.601 luma.",
    .inputs = grayscale_inputs, .outputs = image_output, .execute = grayscale_execute};

/* ---- ExampleVignette ------------------------------------------------------------------ *
 * Batchable: each sample of the batch is processed on its own, so running the samples of
 * several prompts as one batch gives each prompt the result it would get alone. That is
 * the promise KILN_NODE_BATCHABLE makes to the scheduler. */

/* Multiplies the color channels of one [H, W, C] sample by 1 - strength * d, where d is
 * half the squared distance from the center in coordinates that span [-1, 1]. */
static void vignette_sample(const float *src, float *dst, int64_t h, int64_t w, int64_t c,
                            float strength)
{
    for (int64_t y = 0; y < h; y++) {
        float dy = (2.0f * (float)y + 1.0f) / (float)h - 1.0f;
        for (int64_t x = 0; x < w; x++) {
            float dx = (2.0f * (float)x + 1.0f) / (float)w - 1.0f;
            float f = 1.0f - strength * 0.5f * (dx * dx + dy * dy);
            const float *s = src + (y * w + x) * c;
            float *d = dst + (y * w + x) * c;
            for (int64_t k = 0; k < c; k++)
                d[k] = k < 3 ? s[k] * f : s[k];
        }
    }
}

static int vignette_execute(kiln_call_t *call)
{
    double strength;
    example_image_t in;
    int rc = example_input_float(call, "strength", &strength);
    if (rc == 0)
        rc = example_input_image(call, "image", &in);
    if (rc != 0)
        return rc;
    int64_t shape[4] = {in.b, in.h, in.w, in.c};
    kiln_tensor_t *out = NULL;
    float *dst;
    rc = example_new_image(call, shape, &out, &dst); // [B, H, W, C]
    int64_t sample = in.h * in.w * in.c;
    for (int64_t b = 0; rc == 0 && b < in.b; b++) {
        vignette_sample(in.data + b * sample, dst + b * sample, in.h, in.w, in.c,
                        (float)strength);
        /* Progress per sample; a non-zero return means the prompt was interrupted. */
        rc = kiln_call_progress(call, (uint64_t)(b + 1), (uint64_t)in.b);
    }
    if (rc == 0)
        rc = example_set_image(call, 0, out);
    else
        kiln_tensor_release(out); /* NULL-safe */
    example_image_release(&in);
    return rc;
}

static const kiln_input_def_t vignette_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "image", .type = "IMAGE"},
    {KILN_INPUT_DEF_INIT, .name = "strength", .type = "FLOAT", .has_default = 1,
     .default_float = 0.5, .min_float = 0.0, .max_float = 1.0, .step_float = 0.01,
     .tooltip = "How much darker the corners get (0: unchanged)."},
    {0}};

const kiln_node_def_t example_vignette = {
    KILN_NODE_DEF_INIT, .name = "ExampleVignette", .display_name = "Vignette (example)",
    .category = "example/image", .description = "Darkens an image towards its corners.",
    .inputs = vignette_inputs, .outputs = image_output, .flags = KILN_NODE_BATCHABLE,
    .execute = vignette_execute};

/* ---- ExampleSplitBatch ---------------------------------------------------------------- */

/* Emits each sample of the batch as its own element of a list output. The elements are
 * views of the input (no copy); consumers never write to their inputs, so sharing the
 * storage is safe. A node downstream that does not take whole lists runs once per
 * element. */
static int split_execute(kiln_call_t *call)
{
    kiln_tensor_t *t = kiln_value_get_tensor(kiln_call_input(call, "images"));
    if (!t || kiln_tensor_ndim(t) < 1)
        return kiln_call_fail(call, "input 'images' is missing or is not a tensor");
    int64_t n = kiln_tensor_dim(t, 0);
    for (int64_t i = 0; i < n; i++) {
        kiln_tensor_t *one = NULL;
        int rc = kiln_tensor_slice(t, 0, i, 1, &one); // [1, H, W, C]: a view of sample i
        if (rc != 0)
            return kiln_call_failf(call, "cannot slice sample %lld (error %d)", (long long)i,
                                   rc);
        rc = example_set_image(call, 0, one); /* a list output: each set appends */
        if (rc != 0)
            return rc;
    }
    return 0;
}

static const kiln_input_def_t split_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "images", .type = "IMAGE"},
    {0}};

static const kiln_output_def_t split_outputs[] = {
    {KILN_OUTPUT_DEF_INIT, .type = "IMAGE", .name = "images", .is_list = 1,
     .tooltip = "One element per sample of the input batch."},
    {0}};

const kiln_node_def_t example_split_batch = {
    KILN_NODE_DEF_INIT, .name = "ExampleSplitBatch", .display_name = "Split Batch (example)",
    .category = "example/image", .description = "Turns a batch into a list of single images.",
    .inputs = split_inputs, .outputs = split_outputs, .execute = split_execute};
