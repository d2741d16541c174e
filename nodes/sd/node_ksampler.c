/* KSampler and KSamplerAdvanced ("KSampler (Advanced)"), category sampling: ComfyUI's
 * common_ksampler. The initial noise is prepare_noise(latent, seed, batch_index) (zeros
 * when add_noise is disabled), the latent is scaled into sampler space (x 0.18215), the
 * sigmas come from the scheduler (sd_ksampler_sigmas, then KSamplerAdvanced's start/end
 * steps), the first state is latent + noise * (sqrt(1 + sigma0^2) or sigma0), the sampler
 * runs against the CFG denoiser (node_ksampler_cfg.c) with ancestral noise drawn from a
 * CPU generator seeded with the same seed (ComfyUI 0.3.64), and the result is scaled back.
 * Progress is reported per step (value = step + 1, max = steps sampled); an interrupt stops
 * at the next step. */
#include <math.h>
#include <string.h>

#include "sd_device.h"
#include "noise.h"
#include "sampling.h"
#include "schedules.h"
#include "sd_types.h"

/* Schedules longer than this are refused (denoise near 0 with many steps). */
#define MAX_SCHEDULE 1000000.0

static const char *const add_noise_options[] = {"enable", "disable", NULL};
static const char *const leftover_options[] = {"disable", "enable", NULL};

/* The inputs common_ksampler takes (sd_types.h shares the struct with HiresFix). */
typedef sd_ksampler_args_t ks_args_t;

/* One sampling run: what the sampler's callbacks see. */
typedef struct ks_run {
    kiln_call_t *call;
    sd_guider_t *guider;
    sd_rng_t rng;                   /* the ancestral noise generator */
} ks_run_t;

static int run_denoise(void *ud, const float *x, float sigma, float *denoised, size_t n)
{
    return sd_guider_denoise(((ks_run_t *)ud)->guider, x, sigma, denoised, n);
}

static int run_noise(void *ud, float *out, size_t n)
{
    sd_rng_randn(&((ks_run_t *)ud)->rng, out, n, SD_NOISE_VECTOR);
    return 0;
}

static int run_step(void *ud, int step, int total, float sigma, const float *x,
                    const float *denoised, size_t n)
{
    return kiln_call_progress(((ks_run_t *)ud)->call, (uint64_t)step + 1, (uint64_t)total);
}

/* The sigma schedule into a new array *sig of *n entries (*n may be 0: nothing to do). */
static int make_sigmas(kiln_call_t *call, const ks_args_t *a, float **sig, size_t *n)
{
    double total = a->denoise > 0.9999 || a->denoise <= 0.0 ? (double)a->steps
                                                             : floor(a->steps / a->denoise);
    if (total > MAX_SCHEDULE)
        return kiln_call_failf(call, "%lld steps at denoise %g need a schedule of %.0f steps, "
                               "more than kiln allows", (long long)a->steps, a->denoise, total);
    size_t cap = SD_SCHEDULE_CAP((size_t)total + 2);
    char err[256] = "";
    *sig = kiln_malloc(cap * sizeof **sig);
    if (!*sig)
        return kiln_call_fail(call, "out of memory");
    int rc = sd_ksampler_sigmas(a->sampler, a->scheduler, &a->model->sampling, (int)a->steps,
                                a->denoise, *sig, cap, n, err, sizeof err);
    if (rc) {
        kiln_free(*sig);
        *sig = NULL;
        return kiln_call_failf(call, "cannot compute the sigmas: %s", err);
    }
    sd_sigmas_slice(*sig, n, a->start_step, a->last_step, a->force_full_denoise);
    return 0;
}

/* The initial noise of prepare_noise (zeros when add_noise is off). */
static int make_noise(kiln_call_t *call, const ks_args_t *a, float *noise, size_t n)
{
    const sd_latent_t *l = a->latent;
    if (!a->add_noise) {
        memset(noise, 0, n * sizeof *noise);
        return 0;
    }
    if (!l->batch_index) {
        sd_noise_fill(a->seed, noise, n);
        return 0;
    }
    int64_t b = kiln_tensor_dim(l->samples, 0);
    if ((int64_t)l->n_batch_index != b)
        return kiln_call_failf(call, "the latent's batch_index has %zu entries for a batch of "
                               "%lld", l->n_batch_index, (long long)b);
    int rc = sd_noise_fill_batch_index(a->seed, l->batch_index, l->n_batch_index,
                                       n / (size_t)b, noise, SD_NOISE_VECTOR);
    if (rc)
        return kiln_call_failf(call, "cannot draw the noise for batch_index (error %d)", rc);
    return 0;
}

/* prepare_mask: the noise mask resized (bilinear) to the latent and repeated over
 * channels and batch, as a new array of the latent's element count. */
static int make_mask(kiln_call_t *call, const kiln_tensor_t *mask, const kiln_tensor_t *s,
                     float **out)
{
    int64_t b = kiln_tensor_dim(s, 0), c = kiln_tensor_dim(s, 1);
    int64_t h = kiln_tensor_dim(s, 2), w = kiln_tensor_dim(s, 3);
    int64_t bm = kiln_tensor_dim(mask, 0);
    kiln_tensor_t *small = sd_new_f32_4d(call, bm, 1, h, w);    // [Bm, 1, h, w]
    if (!small)
        return KILN_ENODE;
    int rc = kiln_op_interpolate(sd_dev_lane(kiln_call_lane(call)), small, mask, KILN_INTERP_MODE_BILINEAR);
    *out = rc ? NULL : kiln_malloc((size_t)(b * c * h * w) * sizeof **out);
    if (*out) {
        const float *src = kiln_tensor_data(small);
        for (int64_t i = 0; i < b; i++)
            for (int64_t k = 0; k < c; k++)
                memcpy(*out + (i * c + k) * h * w, src + (i % bm) * h * w,
                       (size_t)(h * w) * sizeof **out);
    }
    kiln_tensor_release(small);
    if (!*out)
        return kiln_call_failf(call, "cannot resize the noise mask (error %d)",
                               rc ? rc : KILN_ENOMEM);
    return 0;
}

/* Buffers of one run, freed together. */
typedef struct ks_bufs {
    float *sig, *noise, *latent_in, *x, *mask, *mask_noise;
} ks_bufs_t;

static void bufs_free(ks_bufs_t *b)
{
    kiln_free(b->sig);
    kiln_free(b->noise);
    kiln_free(b->latent_in);
    kiln_free(b->x);
    kiln_free(b->mask);
    kiln_free(b->mask_noise);
}

/* Prepares noise, the scaled latent, the first state and the mask. */
static int prepare(kiln_call_t *call, const ks_args_t *a, ks_bufs_t *b, size_t n)
{
    b->noise = kiln_malloc(n * sizeof(float));
    b->latent_in = kiln_malloc(n * sizeof(float));
    b->x = kiln_malloc(n * sizeof(float));
    if (!b->noise || !b->latent_in || !b->x)
        return kiln_call_fail(call, "out of memory");
    int rc = make_noise(call, a, b->noise, n);
    if (rc)
        return rc;
    sd_latent_process_in(kiln_tensor_data(a->latent->samples), b->latent_in, n);
    sd_noise_scaling(&a->model->sampling, b->sig[0], b->noise, b->latent_in, b->x, n);
    if (!a->latent->noise_mask)
        return 0;
    rc = make_mask(call, a->latent->noise_mask, a->latent->samples, &b->mask);
    if (rc)
        return rc;
    if (strcmp(a->sampler, "ddim") != 0)
        return 0;
    /* ComfyUI's ddim re-noises the known region with a fresh seed + 1 draw. */
    b->mask_noise = kiln_malloc(n * sizeof(float));
    if (!b->mask_noise)
        return kiln_call_fail(call, "out of memory");
    sd_noise_fill(a->seed + 1, b->mask_noise, n);
    return 0;
}

/* Runs the sampler over b->x in place. */
static int sample(kiln_call_t *call, const ks_args_t *a, ks_bufs_t *b, size_t n, size_t n_sig)
{
    const kiln_tensor_t *s = a->latent->samples;
    sd_guider_params_t gp = {
        .model = a->model, .lane = kiln_call_lane(call), .call = call,
        .positive = a->positive, .negative = a->negative, .cfg = a->cfg,
        .batch = kiln_tensor_dim(s, 0), .channels = kiln_tensor_dim(s, 1),
        .height = kiln_tensor_dim(s, 2), .width = kiln_tensor_dim(s, 3),
        .mask = b->mask, .latent_in = b->latent_in,
        .mask_noise = b->mask_noise ? b->mask_noise : b->noise};
    ks_run_t run = {.call = call};
    char err[256] = "";
    int rc = sd_guider_new(&gp, &run.guider, err, sizeof err);
    if (rc)
        return kiln_call_failf(call, "%s", err);
    sd_rng_seed(&run.rng, a->seed);
    rc = sd_sample(a->sampler, run_denoise, run_noise, run_step, &run, b->x, n, b->sig, n_sig,
                   err, sizeof err);
    if (rc > 0)
        rc = KILN_EINTERRUPTED;
    if (rc && rc != KILN_EINTERRUPTED) {
        const char *why = sd_guider_error(run.guider)[0] ? sd_guider_error(run.guider) : err;
        rc = kiln_call_failf(call, "sampling failed: %s", why[0] ? why : "unknown error");
    }
    sd_guider_free(run.guider);
    return rc;
}

int sd_ksampler_sample(kiln_call_t *call, const sd_ksampler_args_t *a, sd_latent_t **out)
{
    *out = NULL;
    const kiln_tensor_t *s = a->latent->samples;
    const sd_unet_config_t *uc = sd_unet_config(a->model->unet);
    if (kiln_tensor_dim(s, 1) != uc->in_channels)
        return kiln_call_failf(call, "the latent has %lld channels but the model takes %d",
                               (long long)kiln_tensor_dim(s, 1), uc->in_channels);
    if (kiln_tensor_numel(s) < 1)
        return kiln_call_fail(call, "the latent is empty");
    ks_bufs_t b = {0};
    size_t n_sig = 0, n = (size_t)kiln_tensor_numel(s);
    int rc = make_sigmas(call, a, &b.sig, &n_sig);
    if (rc || n_sig == 0) {
        /* n_sig 0: nothing to sample, the latent goes through unchanged. */
        bufs_free(&b);
        return rc;
    }
    rc = prepare(call, a, &b, n);
    if (!rc)
        rc = sample(call, a, &b, n, n_sig);
    kiln_tensor_t *t = NULL;
    if (!rc) {
        t = sd_new_f32_4d(call, kiln_tensor_dim(s, 0), kiln_tensor_dim(s, 1),
                          kiln_tensor_dim(s, 2), kiln_tensor_dim(s, 3));     // [B, C, h, w]
        rc = t ? 0 : KILN_ENODE;
    }
    if (!rc)
        sd_latent_process_out(b.x, kiln_tensor_data(t), n);
    bufs_free(&b);
    if (rc)
        return rc;
    *out = sd_latent_new(t, a->latent);
    kiln_tensor_release(t);
    return *out ? 0 : kiln_call_fail(call, "out of memory");
}

static int common_ksampler(kiln_call_t *call, const ks_args_t *a)
{
    sd_latent_t *l = NULL;
    int rc = sd_ksampler_sample(call, a, &l);
    if (rc)
        return rc;
    if (!l) {
        const kiln_value_t *v = kiln_call_input(call, "latent_image");
        kiln_value_retain(v);
        return kiln_call_set_output(call, 0, (kiln_value_t *)v);
    }
    return sd_set_output(call, 0, sd_value_latent(l));
}

/* Reads the inputs both nodes share; `seed_name` differs. */
static int read_common(kiln_call_t *call, const char *seed_name, ks_args_t *a)
{
    memset(a, 0, sizeof *a);
    a->add_noise = 1;
    a->start_step = a->last_step = -1;
    a->denoise = 1.0;
    int rc = sd_input_u64(call, seed_name, &a->seed);
    if (!rc)
        rc = sd_input_int(call, "steps", &a->steps);
    if (!rc)
        rc = sd_input_float(call, "cfg", &a->cfg);
    if (!rc)
        rc = sd_input_cstr(call, "sampler_name", a->sampler, sizeof a->sampler);
    if (!rc)
        rc = sd_input_cstr(call, "scheduler", a->scheduler, sizeof a->scheduler);
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
        !(a->negative = sd_input_cond(call, "negative")) ||
        !(a->latent = sd_input_latent(call, "latent_image")))
        return KILN_ENODE;
    return 0;
}

static int ksampler_execute(kiln_call_t *call)
{
    ks_args_t a;
    int rc = read_common(call, "seed", &a);
    if (!rc)
        rc = sd_input_float(call, "denoise", &a.denoise);
    if (rc)
        return rc;
    return common_ksampler(call, &a);
}

/* Reads a combo input and says whether it equals `yes`. */
static int combo_is(kiln_call_t *call, const char *name, const char *yes, int *out)
{
    char buf[32];
    int rc = sd_input_cstr(call, name, buf, sizeof buf);
    if (!rc)
        *out = strcmp(buf, yes) == 0;
    return rc;
}

static int ksampler_advanced_execute(kiln_call_t *call)
{
    ks_args_t a;
    int64_t start, end;
    int disable_noise = 0, leftover = 0;
    int rc = read_common(call, "noise_seed", &a);
    if (!rc)
        rc = combo_is(call, "add_noise", "disable", &disable_noise);
    if (!rc)
        rc = combo_is(call, "return_with_leftover_noise", "enable", &leftover);
    if (!rc)
        rc = sd_input_int(call, "start_at_step", &start);
    if (!rc)
        rc = sd_input_int(call, "end_at_step", &end);
    if (rc)
        return rc;
    if (start < 0 || end < 0 || start > 10000 || end > 10000)
        return kiln_call_fail(call, "start_at_step and end_at_step must be 0..10000");
    a.add_noise = !disable_noise;
    a.force_full_denoise = !leftover;
    a.start_step = (int)start;
    a.last_step = (int)end;
    return common_ksampler(call, &a);
}

/* ---- definitions ------------------------------------------------------------------------- */

#define SEED_INPUT(nm)                                                                      \
    {KILN_INPUT_DEF_INIT, .name = nm, .type = "INT",                                       \
     .flags = KILN_INPUT_CONTROL_AFTER_GENERATE | KILN_INPUT_MAX_U64, .has_default = 1,     \
     .default_int = 0, .min_int = 0,                                                      \
     .tooltip = "The random seed used for creating the noise."}
#define STEPS_INPUT                                                                         \
    {KILN_INPUT_DEF_INIT, .name = "steps", .type = "INT", .has_default = 1,               \
     .default_int = 20, .min_int = 1, .max_int = 10000,                                    \
     .tooltip = "The number of steps used in the denoising process."}
#define CFG_INPUT                                                                           \
    {KILN_INPUT_DEF_INIT, .name = "cfg", .type = "FLOAT", .has_default = 1,               \
     .default_float = 8.0, .min_float = 0.0, .max_float = 100.0, .step_float = 0.1,        \
     .round = 0.01,                                                                         \
     .tooltip = "The Classifier-Free Guidance scale balances creativity and adherence to "  \
                "the prompt. Higher values result in images more closely matching the "     \
                "prompt however too high values will negatively impact quality."}
#define SAMPLER_INPUTS                                                                      \
    {KILN_INPUT_DEF_INIT, .name = "sampler_name", .type = "COMBO",                        \
     .options = sd_sampler_names,                                                           \
     .tooltip = "The algorithm used when sampling, this can affect the quality, speed, "    \
                "and style of the generated output."},                                      \
    {KILN_INPUT_DEF_INIT, .name = "scheduler", .type = "COMBO",                           \
     .options = sd_scheduler_names,                                                         \
     .tooltip = "The scheduler controls how noise is gradually removed to form the image."}

static const kiln_input_def_t ksampler_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "model", .type = SD_TYPE_MODEL,
     .tooltip = "The model used for denoising the input latent."},
    SEED_INPUT("seed"),
    STEPS_INPUT,
    CFG_INPUT,
    SAMPLER_INPUTS,
    {KILN_INPUT_DEF_INIT, .name = "positive", .type = SD_TYPE_CONDITIONING,
     .tooltip = "The conditioning describing the attributes you want to include in the "
                "image."},
    {KILN_INPUT_DEF_INIT, .name = "negative", .type = SD_TYPE_CONDITIONING,
     .tooltip = "The conditioning describing the attributes you want to exclude from the "
                "image."},
    {KILN_INPUT_DEF_INIT, .name = "latent_image", .type = SD_TYPE_LATENT,
     .tooltip = "The latent image to denoise."},
    {KILN_INPUT_DEF_INIT, .name = "denoise", .type = "FLOAT", .has_default = 1,
     .default_float = 1.0, .min_float = 0.0, .max_float = 1.0, .step_float = 0.01,
     .tooltip = "The amount of denoising applied, lower values will maintain the structure "
                "of the initial image allowing for image to image sampling."},
    {0}};

static const kiln_output_def_t ksampler_output[] = {
    {KILN_OUTPUT_DEF_INIT, .type = SD_TYPE_LATENT, .tooltip = "The denoised latent."}, {0}};

const kiln_node_def_t sd_node_ksampler = {
    KILN_NODE_DEF_INIT, .name = "KSampler", .display_name = "KSampler", .category = "sampling",
    .flags = KILN_NODE_GPU, /* may run on a GPU lane (sd_device.h) */
    .description = "Uses the provided model, positive and negative conditioning to denoise "
                   "the latent image.",
    .inputs = ksampler_inputs, .outputs = ksampler_output, .execute = ksampler_execute};

static const kiln_input_def_t advanced_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "model", .type = SD_TYPE_MODEL},
    {KILN_INPUT_DEF_INIT, .name = "add_noise", .type = "COMBO", .options = add_noise_options},
    SEED_INPUT("noise_seed"),
    STEPS_INPUT,
    CFG_INPUT,
    SAMPLER_INPUTS,
    {KILN_INPUT_DEF_INIT, .name = "positive", .type = SD_TYPE_CONDITIONING},
    {KILN_INPUT_DEF_INIT, .name = "negative", .type = SD_TYPE_CONDITIONING},
    {KILN_INPUT_DEF_INIT, .name = "latent_image", .type = SD_TYPE_LATENT},
    {KILN_INPUT_DEF_INIT, .name = "start_at_step", .type = "INT", .has_default = 1,
     .default_int = 0, .min_int = 0, .max_int = 10000},
    {KILN_INPUT_DEF_INIT, .name = "end_at_step", .type = "INT", .has_default = 1,
     .default_int = 10000, .min_int = 0, .max_int = 10000},
    {KILN_INPUT_DEF_INIT, .name = "return_with_leftover_noise", .type = "COMBO",
     .options = leftover_options},
    {0}};

static const kiln_output_def_t advanced_output[] = {
    {KILN_OUTPUT_DEF_INIT, .type = SD_TYPE_LATENT}, {0}};

const kiln_node_def_t sd_node_ksampler_advanced = {
    KILN_NODE_DEF_INIT, .name = "KSamplerAdvanced", .display_name = "KSampler (Advanced)",
    .flags = KILN_NODE_GPU, /* may run on a GPU lane (sd_device.h) */
    .category = "sampling", .inputs = advanced_inputs, .outputs = advanced_output,
    .execute = ksampler_advanced_execute};
