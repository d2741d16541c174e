/* The conditioning nodes: CLIPTextEncode (a prompt through the tokenizer and the text
 * encoder into CONDITIONING), CLIPSetLastLayer (a CLIP that stops at an earlier layer,
 * sharing the encoder) and ConditioningCombine (list concatenation). */
#include <string.h>

#include "sd_types.h"

/* ---- CLIPTextEncode ---------------------------------------------------------------------- */

static int encode_execute(kiln_call_t *call)
{
    sd_clip_obj_t *clip = sd_input_clip(call, "clip");
    if (!clip)
        return KILN_ENODE;
    const char *text = NULL;
    size_t len = 0;
    const kiln_value_t *tv = kiln_call_input(call, "text");
    if (!tv || kiln_value_get_string(tv, &text, &len) != 0)
        return kiln_call_fail(call, "input 'text' is missing or is not a string");

    sd_token_chunks_t chunks;
    int rc = sd_tokenize_weighted(clip->core->tokenizer, text, len, &chunks);
    if (rc)
        return kiln_call_failf(call, "cannot tokenize the prompt (%s)",
                               rc == KILN_ENOMEM ? "out of memory" : "prompt too long or "
                               "nested too deeply");
    if (chunks.n_missing_embeddings)
        kiln_logf(KILN_LOG_WARN, "CLIPTextEncode: %zu embedding reference(s) skipped: "
                  "textual inversion embeddings are not supported yet",
                  chunks.n_missing_embeddings);
    kiln_tensor_t *cond = NULL, *pooled = NULL;
    rc = sd_clip_encode(clip->core->encoder, kiln_call_lane(call), &chunks,
                        clip->stop_at_layer, &cond, &pooled);
    sd_token_chunks_free(&chunks);
    if (rc) {
        if (rc == KILN_EINTERRUPTED)
            return rc;
        return kiln_call_failf(call, "the text encoder failed (error %d)", rc);
    }
    sd_cond_t *c = sd_cond_new(1);
    if (!c) {
        kiln_tensor_release(cond);
        kiln_tensor_release(pooled);
        return kiln_call_fail(call, "out of memory");
    }
    c->entries[0].cond = cond;        // [1, 77 * chunks, width]
    c->entries[0].pooled = pooled;    // [1, width]
    c->entries[0].strength = 1.0;
    return sd_set_output(call, 0, sd_value_cond(c));
}

static const kiln_input_def_t encode_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "text", .type = "STRING",
     .flags = KILN_INPUT_MULTILINE | KILN_INPUT_DYNAMIC_PROMPTS,
     .tooltip = "The text to be encoded."},
    {KILN_INPUT_DEF_INIT, .name = "clip", .type = SD_TYPE_CLIP,
     .tooltip = "The CLIP model used for encoding the text."},
    {0}};

static const kiln_output_def_t cond_output[] = {
    {KILN_OUTPUT_DEF_INIT, .type = SD_TYPE_CONDITIONING}, {0}};

static const kiln_output_def_t encode_output[] = {
    {KILN_OUTPUT_DEF_INIT, .type = SD_TYPE_CONDITIONING,
     .tooltip = "A conditioning containing the embedded text used to guide the diffusion "
                "model."},
    {0}};

const kiln_node_def_t sd_node_clip_text_encode = {
    KILN_NODE_DEF_INIT, .name = "CLIPTextEncode", .display_name = "CLIP Text Encode (Prompt)",
    .flags = KILN_NODE_GPU, /* may run on a GPU lane (sd_device.h) */
    .category = "conditioning",
    .description = "Encodes a text prompt using a CLIP model into an embedding that can be "
                   "used to guide the diffusion model towards generating specific images.",
    .inputs = encode_inputs, .outputs = encode_output, .execute = encode_execute};

/* ---- CLIPSetLastLayer -------------------------------------------------------------------- */

static int last_layer_execute(kiln_call_t *call)
{
    sd_clip_obj_t *clip = sd_input_clip(call, "clip");
    if (!clip)
        return KILN_ENODE;
    int64_t layer;
    int rc = sd_input_int(call, "stop_at_clip_layer", &layer);
    if (rc)
        return rc;
    if (layer > -1 || layer < -1000)
        return kiln_call_failf(call, "stop_at_clip_layer must be negative, got %lld",
                               (long long)layer);
    sd_clip_obj_t *out = kiln_malloc(sizeof *out);
    if (!out)
        return kiln_call_fail(call, "out of memory");
    sd_clip_core_retain(clip->core);
    out->core = clip->core;
    out->stop_at_layer = (int)layer;
    return sd_set_output(call, 0, sd_value_clip(out));
}

static const kiln_input_def_t last_layer_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "clip", .type = SD_TYPE_CLIP},
    {KILN_INPUT_DEF_INIT, .name = "stop_at_clip_layer", .type = "INT", .has_default = 1,
     .default_int = -1, .min_int = -24, .max_int = -1, .step_int = 1},
    {0}};

static const kiln_output_def_t clip_output[] = {{KILN_OUTPUT_DEF_INIT, .type = SD_TYPE_CLIP},
                                                {0}};

const kiln_node_def_t sd_node_clip_set_last_layer = {
    KILN_NODE_DEF_INIT, .name = "CLIPSetLastLayer", .display_name = "CLIP Set Last Layer",
    .category = "conditioning", .inputs = last_layer_inputs, .outputs = clip_output,
    .execute = last_layer_execute};

/* ---- ConditioningCombine ----------------------------------------------------------------- */

/* Copies src's entries into dst from index at, retaining their tensors. */
static void copy_entries(sd_cond_t *dst, size_t at, const sd_cond_t *src)
{
    for (size_t i = 0; i < src->n; i++) {
        sd_cond_entry_t e = src->entries[i];
        kiln_tensor_retain(e.cond);
        if (e.pooled)
            kiln_tensor_retain(e.pooled);
        dst->entries[at + i] = e;
    }
}

static int combine_execute(kiln_call_t *call)
{
    const sd_cond_t *a = sd_input_cond(call, "conditioning_1");
    const sd_cond_t *b = a ? sd_input_cond(call, "conditioning_2") : NULL;
    if (!a || !b)
        return KILN_ENODE;
    sd_cond_t *c = sd_cond_new(a->n + b->n);
    if (!c)
        return kiln_call_fail(call, "out of memory");
    copy_entries(c, 0, a);
    copy_entries(c, a->n, b);
    return sd_set_output(call, 0, sd_value_cond(c));
}

static const kiln_input_def_t combine_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "conditioning_1", .type = SD_TYPE_CONDITIONING},
    {KILN_INPUT_DEF_INIT, .name = "conditioning_2", .type = SD_TYPE_CONDITIONING},
    {0}};

const kiln_node_def_t sd_node_conditioning_combine = {
    KILN_NODE_DEF_INIT, .name = "ConditioningCombine", .display_name = "Conditioning (Combine)",
    .category = "conditioning", .inputs = combine_inputs, .outputs = cond_output,
    .execute = combine_execute};
