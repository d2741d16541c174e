/* ExampleBlend: a node built from the op library instead of its own loops.
 *   ExampleBlend image_a:IMAGE, image_b:IMAGE, factor:FLOAT -> IMAGE
 *   out = clamp(a + (b - a) * factor, 0, 1)
 * Every op is given the lane the node runs on (kiln_call_lane). On a CPU lane the ops run
 * right here on the worker thread; on a device lane they are queued on the lane's stream
 * and run where the tensors live, so the same node code serves both. Ops accept strided
 * inputs, so no contiguous copies are needed. */
#include "example.h"

/* Checks that both inputs are images of one shape; fails the call otherwise. */
static int same_images(kiln_call_t *call, const kiln_tensor_t *a, const kiln_tensor_t *b)
{
    if (!a || !b)
        return kiln_call_fail(call, "image_a and image_b must both be images");
    int same = kiln_tensor_ndim(a) == 4 && kiln_tensor_ndim(b) == 4;
    for (int i = 0; same && i < 4; i++)
        same = kiln_tensor_dim(a, i) == kiln_tensor_dim(b, i);
    if (same)
        return 0;
    return kiln_call_failf(call, "image_a [%lld, %lld, %lld, %lld] and image_b [%lld, %lld, "
                           "%lld, %lld] must have one shape [B, H, W, C]",
                           (long long)kiln_tensor_dim(a, 0), (long long)kiln_tensor_dim(a, 1),
                           (long long)kiln_tensor_dim(a, 2), (long long)kiln_tensor_dim(a, 3),
                           (long long)kiln_tensor_dim(b, 0), (long long)kiln_tensor_dim(b, 1),
                           (long long)kiln_tensor_dim(b, 2), (long long)kiln_tensor_dim(b, 3));
}

/* A new float32 tensor of t's shape. The 1.0 table allocates in host memory only; a pack
 * that wants device memory checks KILN_API_HAS for the allocation entry that comes with
 * the CUDA backend and falls back to this. */
static kiln_tensor_t *new_like(const kiln_tensor_t *t)
{
    int64_t shape[KILN_TENSOR_MAX_DIMS];
    int nd = kiln_tensor_ndim(t);
    for (int i = 0; i < nd; i++)
        shape[i] = kiln_tensor_dim(t, i);
    return kiln_tensor_new(KILN_DTYPE_F32, nd, shape);
}

static int blend_execute(kiln_call_t *call)
{
    const kiln_tensor_t *a = kiln_value_get_tensor(kiln_call_input(call, "image_a"));
    const kiln_tensor_t *b = kiln_value_get_tensor(kiln_call_input(call, "image_b"));
    double factor;
    int rc = example_input_float(call, "factor", &factor);
    if (rc == 0)
        rc = same_images(call, a, b);
    if (rc != 0)
        return rc;
    kiln_lane_t *lane = kiln_call_lane(call);
    kiln_tensor_t *diff = new_like(a), *out = new_like(a); // [B, H, W, C] each
    if (!diff || !out) {
        kiln_tensor_release(diff);
        kiln_tensor_release(out);
        return kiln_call_fail(call, "out of memory");
    }
    /* Each op checks its arguments before it runs; the first failure names itself. */
    const char *op = "sub";
    rc = kiln_op_sub(lane, diff, b, a); // diff = b - a
    if (rc == 0) {
        op = "scale";
        rc = kiln_op_scale(lane, diff, diff, (float)factor); // diff *= factor, in place
    }
    if (rc == 0) {
        op = "add";
        rc = kiln_op_add(lane, out, a, diff); // out = a + diff
    }
    if (rc == 0) {
        op = "clamp";
        rc = kiln_op_clamp(lane, out, out, 0.0f, 1.0f); // in place, into [0, 1]
    }
    kiln_tensor_release(diff);
    if (rc != 0) {
        kiln_tensor_release(out);
        return kiln_call_failf(call, "kiln_op_%s failed (error %d)", op, rc);
    }
    return example_set_image(call, 0, out);
}

static const kiln_input_def_t blend_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "image_a", .type = "IMAGE"},
    {KILN_INPUT_DEF_INIT, .name = "image_b", .type = "IMAGE"},
    {KILN_INPUT_DEF_INIT, .name = "factor", .type = "FLOAT", .has_default = 1,
     .default_float = 0.5, .min_float = 0.0, .max_float = 1.0, .step_float = 0.01,
     .tooltip = "0 gives image_a, 1 gives image_b."},
    {0}};

static const kiln_output_def_t blend_outputs[] = {
    {KILN_OUTPUT_DEF_INIT, .type = "IMAGE"},
    {0}};

const kiln_node_def_t example_blend = {
    KILN_NODE_DEF_INIT, .name = "ExampleBlend", .display_name = "Blend Images (example)",
    .category = "example/image", .description = "Mixes two images of one shape.",
    .inputs = blend_inputs, .outputs = blend_outputs, .execute = blend_execute};
