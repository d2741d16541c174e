/* HiresFix (category sampling), a kiln node: the second pass of a "hires fix" in one node.
 * It upscales the LATENT it is given (LatentUpscaleBy's resize) and samples the result again
 * at a partial denoise (KSampler's common_ksampler), through the very functions those two
 * nodes run, so its output equals the LatentUpscaleBy -> KSampler chain bit for bit.
 * Progress is reported for every sampling step; an interrupt stops between steps. */
#include <string.h>

#include "sampling.h"
#include "schedules.h"
#include "sd_types.h"

/* LatentUpscaleBy's methods without bislerp, which kiln does not implement yet. */
static const char *const hires_methods[] = {"nearest-exact", "bilinear", "area", "bicubic",
                                            NULL};

/* Reads and checks the sampling inputs into a (the latent is set by the caller). */
static int read_args(kiln_call_t *call, sd_ksampler_args_t *a)
{
    memset(a, 0, sizeof *a);
    a->add_noise = 1;
    a->start_step = a->last_step = -1;
    int rc = sd_input_u64(call, "seed", &a->seed);
    if (!rc)
        rc = sd_input_int(call, "steps", &a->steps);
    if (!rc)
        rc = sd_input_float(call, "cfg", &a->cfg);
    if (!rc)
        rc = sd_input_cstr(call, "sampler_name", a->sampler, sizeof a->sampler);
    if (!rc)
        rc = sd_input_cstr(call, "scheduler", a->scheduler, sizeof a->scheduler);
    if (!rc)
        rc = sd_input_float(call, "denoise", &a->denoise);
    if (rc)
        return rc;
    if (a->steps < 1 || a->steps > 10000)
        return kiln_call_failf(call, "steps must be 1..10000, got %lld", (long long)a->steps);
    if (!sd_sampler_known(a->sampler))
        return kiln_call_failf(call, "sampler '%s' is not supported", a->sampler);
    if (!sd_scheduler_known(a->scheduler))
        return kiln_call_failf(call, "scheduler '%s' is not supported", a->scheduler);
    if (!(a->model = sd_input_model(call, "model")) ||
        !(a->positive = sd_input_cond(call, "positive")) ||
        !(a->negative = sd_input_cond(call, "negative")))
        return KILN_ENODE;
    return 0;
}

static int hires_execute(kiln_call_t *call)
{
    sd_ksampler_args_t a;
    char method[32];
    double scale;
    int rc = read_args(call, &a);
    if (!rc)
        rc = sd_input_cstr(call, "upscale_method", method, sizeof method);
    if (!rc)
        rc = sd_input_float(call, "scale_by", &scale);
    if (rc)
        return rc;
    const sd_latent_t *in = sd_input_latent(call, "samples");
    if (!in)
        return KILN_ENODE;
    sd_latent_t *up = NULL, *out = NULL;
    rc = sd_latent_upscale_by(call, in, method, scale, &up);          // [B, C, h*s, w*s]
    if (rc)
        return rc;
    a.latent = up;
    rc = sd_ksampler_sample(call, &a, &out);
    if (rc) {
        sd_latent_free(up);
        return rc;
    }
    /* No step to take (denoise 0): the upscaled latent is the result, as the chain's
     * KSampler passes its input through. */
    if (!out)
        return sd_set_output(call, 0, sd_value_latent(up));
    sd_latent_free(up);
    return sd_set_output(call, 0, sd_value_latent(out));
}

static const kiln_input_def_t hires_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "model", .type = SD_TYPE_MODEL,
     .tooltip = "The model used for the second sampling pass."},
    {KILN_INPUT_DEF_INIT, .name = "positive", .type = SD_TYPE_CONDITIONING},
    {KILN_INPUT_DEF_INIT, .name = "negative", .type = SD_TYPE_CONDITIONING},
    {KILN_INPUT_DEF_INIT, .name = "samples", .type = SD_TYPE_LATENT,
     .tooltip = "The sampled latent to upscale and refine."},
    {KILN_INPUT_DEF_INIT, .name = "upscale_method", .type = "COMBO", .options = hires_methods},
    {KILN_INPUT_DEF_INIT, .name = "scale_by", .type = "FLOAT", .has_default = 1,
     .default_float = 1.5, .min_float = 0.01, .max_float = 8.0, .step_float = 0.01},
    {KILN_INPUT_DEF_INIT, .name = "seed", .type = "INT",
     .flags = KILN_INPUT_CONTROL_AFTER_GENERATE | KILN_INPUT_MAX_U64, .has_default = 1,
     .default_int = 0, .min_int = 0,
     .tooltip = "The random seed used for creating the noise of the second pass."},
    {KILN_INPUT_DEF_INIT, .name = "steps", .type = "INT", .has_default = 1, .default_int = 14,
     .min_int = 1, .max_int = 10000},
    {KILN_INPUT_DEF_INIT, .name = "cfg", .type = "FLOAT", .has_default = 1,
     .default_float = 8.0, .min_float = 0.0, .max_float = 100.0, .step_float = 0.1,
     .round = 0.01},
    {KILN_INPUT_DEF_INIT, .name = "sampler_name", .type = "COMBO", .options = sd_sampler_names},
    {KILN_INPUT_DEF_INIT, .name = "scheduler", .type = "COMBO",
     .options = sd_scheduler_names},
    {KILN_INPUT_DEF_INIT, .name = "denoise", .type = "FLOAT", .has_default = 1,
     .default_float = 0.5, .min_float = 0.0, .max_float = 1.0, .step_float = 0.01,
     .tooltip = "How much of the upscaled latent is re-noised and sampled again."},
    {0}};

static const kiln_output_def_t hires_output[] = {
    {KILN_OUTPUT_DEF_INIT, .type = SD_TYPE_LATENT, .tooltip = "The refined, larger latent."},
    {0}};

const kiln_node_def_t sd_node_hires_fix = {
    KILN_NODE_DEF_INIT, .name = "HiresFix", .display_name = "Hires Fix", .category = "sampling",
    .description = "Upscales a latent (as Upscale Latent By) and samples it again at a partial "
                   "denoise (as KSampler): the second pass of a high-resolution fix.",
    .inputs = hires_inputs, .outputs = hires_output, .execute = hires_execute,
    .flags = KILN_NODE_GPU, /* may run on a GPU lane (sd_device.h) */};
