/* SD sampling against ComfyUI's own numbers (sd15-tiny fixtures): the sigma table and
 * timestep map, every recorded schedule, and a step-by-step replay of euler, ddim,
 * dpmpp_2m, euler_ancestral and the hires pass (the recorded denoised predictions and
 * ancestral noise fed back through the callbacks, every recorded state checked), the first
 * states; every sampler against torch runs of the same expressions (test_sd_sampling_ref.h);
 * closed forms on synthetic denoisers, convergence orders, and the error paths. */
#include <kiln/error.h>
#include <kiln/tensor.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../nodes/sd/model_sampling.h"
#include "../../nodes/sd/sampling.h"
#include "../../nodes/sd/schedules.h"
#include "runner.h"
#include "runtime/safetensors.h"
#include "test_sd_sampling_ref.h"

#define UNET KILN_SHARED_DIR "/fixtures/sd15-tiny/unet.safetensors"
#define SAMPLES KILN_SHARED_DIR "/fixtures/sd15-tiny/samples.safetensors"

/* A copy of a float32 fixture tensor (free() it); *n gets its element count. */
static float *load_f32(const char *file, const char *name, size_t *n)
{
    kiln__safetensors_t *f = NULL;
    kiln_tensor_t *t = NULL;
    char err[256] = "";
    if (kiln__safetensors_open(file, &f, err, sizeof err) < 0 ||
        kiln__safetensors_tensor(f, name, &t, err, sizeof err) < 0)
        kiln_test_fail(__FILE__, __LINE__, "%s: %s: %s", file, name, err);
    ASSERT_EQ_INT(kiln_tensor_dtype(t), KILN_DTYPE_F32);
    ASSERT(kiln_tensor_is_contiguous(t));
    *n = (size_t)kiln_tensor_numel(t);
    float *v = malloc(*n * sizeof *v);
    ASSERT(v != NULL);
    memcpy(v, kiln_tensor_data(t), *n * sizeof *v);
    kiln_tensor_release(t);
    kiln__safetensors_close(f);
    return v;
}

/* max|got - want| / max|want|, the README's per-tensor measure. */
static double rel_err(const float *got, const float *want, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        num = d > num || isnan(d) ? d : num;
        den = fabs((double)want[i]) > den ? fabs((double)want[i]) : den;
    }
    return den > 0.0 ? num / den : num;
}

#define ASSERT_REL(got, want, n, tol, what)                                             \
    do {                                                                                \
        double r_ = rel_err((got), (want), (n));                                        \
        if (!(r_ <= (tol)))                                                             \
            kiln_test_fail(__FILE__, __LINE__, "%s: rel %.3g > %.3g", (what), r_, (double)(tol)); \
    } while (0)

/* Fails unless the two arrays hold the same bits. */
static void assert_bits(const char *what, const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&got[i], &want[i], sizeof got[i]) != 0)
            kiln_test_fail(__FILE__, __LINE__, "%s[%zu]: %.9g vs %.9g", what, i, got[i], want[i]);
    }
}

static sd_model_sampling_t ms_sd1(void)
{
    sd_model_sampling_t ms;
    sd_model_sampling_init_sd1(&ms);
    return ms;
}

/* --- model sampling ------------------------------------------------------------------ */

static void test_sigma_table_matches_comfy(void)
{
    sd_model_sampling_t ms = ms_sd1();
    size_t n = 0;
    float *ref = load_f32(UNET, "model_sampling_sigmas", &n);
    ASSERT_EQ_INT(n, SD_NUM_TIMESTEPS);
    assert_bits("model_sampling_sigmas", ms.sigmas, ref, n);
    ASSERT(ms.sigma_min == ref[0] && ms.sigma_max == ref[999]);
    ASSERT_NEAR(ms.sigma_max, 14.614641189575195, 1e-6);
    ASSERT_NEAR(ms.sigma_min, 0.029167, 1e-6);
    free(ref);
    ASSERT_EQ_INT(sd_model_sampling_init(&ms, 0.0, 0.012), KILN_EINVAL);
    ASSERT_EQ_INT(sd_model_sampling_init(&ms, 0.5, 1.0), KILN_EINVAL);
    ASSERT_EQ_INT(sd_model_sampling_init(NULL, 0.00085, 0.012), KILN_EINVAL);
}

static void test_timestep_and_sigma_maps(void)
{
    sd_model_sampling_t ms = ms_sd1();
    size_t n = 0, m = 0;
    float *sig = load_f32(UNET, "sigma", &n);
    float *ts = load_f32(UNET, "timestep", &m);
    ASSERT_EQ_INT(n, 2);
    ASSERT_EQ_INT(m, 2);
    ASSERT(sd_model_sampling_timestep(&ms, sig[0]) == 999.0f && ts[0] == 999.0f);
    ASSERT(sd_model_sampling_timestep(&ms, sig[1]) == 354.0f && ts[1] == 354.0f);
    free(sig);
    free(ts);
    sig = load_f32(UNET, "odd_sigma", &n);
    ts = load_f32(UNET, "odd_timestep", &m);
    ASSERT(sd_model_sampling_timestep(&ms, sig[0]) == 673.0f && ts[0] == 673.0f);
    free(sig);
    free(ts);
    /* sigma(t) hits the table at integers and interpolates log-sigma in between. */
    ASSERT(sd_model_sampling_sigma(&ms, 999.0f) == expf(ms.log_sigmas[999]));
    ASSERT(sd_model_sampling_sigma(&ms, 0.0f) == expf(ms.log_sigmas[0]));
    ASSERT(sd_model_sampling_sigma(&ms, 5000.0f) == expf(ms.log_sigmas[999]));
    ASSERT(sd_model_sampling_sigma(&ms, -3.0f) == expf(ms.log_sigmas[0]));
    ASSERT_NEAR(sd_model_sampling_sigma(&ms, 999.0f), ms.sigma_max, 2e-6);
    ASSERT_NEAR(sd_model_sampling_sigma(&ms, 400.5f),
                sqrt((double)ms.sigmas[400] * ms.sigmas[401]), 1e-6);
    ASSERT(sd_model_sampling_percent_to_sigma(&ms, 0.0) == 999999999.9);
    ASSERT(sd_model_sampling_percent_to_sigma(&ms, 1.0) == 0.0);
    ASSERT(sd_model_sampling_percent_to_sigma(&ms, 0.5) ==
           (double)sd_model_sampling_sigma(&ms, 499.5f));
}

/* torch's float32 expm1 (SLEEF) where glibc's expm1f rounds the other way, values taken from
 * torch 2.11 on x86; the first is the dpmpp_2m_karras fixture's last-but-one step. */
static void test_torch_expm1(void)
{
    static const float cases[][2] = {
        {-0x1.c2e5fap+0f, -0x1.a80786p-1f},
        {0x1.05e4cp+0f, 0x1.c8161ap+0f},   {-0x1.44de1p+0f, -0x1.701282p-1f},
        {-0x1.5d5aap+1f, -0x1.de95d6p-1f}, {-0x1.0cc07ap+4f, -0x1p+0f},
        {0x1.d469p-2f, 0x1.28f732p-1f},    {0x1.64e14p-2f, 0x1.aaf83ap-2f},
        {-0x1.237bc8p-1f, -0x1.bc7fa6p-2f}, {-0x1.8e7798p+0f, -0x1.9408d2p-1f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float got = sd_expm1f(cases[i][0]);
        if (memcmp(&got, &cases[i][1], sizeof got) != 0)
            kiln_test_fail(__FILE__, __LINE__, "expm1(%a) = %a, want %a", cases[i][0], got,
                           cases[i][1]);
    }
    ASSERT(sd_expm1f(-INFINITY) == -1.0f && sd_expm1f(INFINITY) == INFINITY);
    ASSERT(isnan(sd_expm1f(NAN)));
    ASSERT(sd_expm1f(-0.0f) == 0.0f && signbit(sd_expm1f(-0.0f)));
    ASSERT(sd_logf(1.0f) == 0.0f);
    ASSERT(sd_logf(0.0f) == -INFINITY);
}

/* --- schedules ---------------------------------------------------------------------- */

/* The KSampler schedule for (sampler, scheduler, steps, denoise) against the fixture. */
static void check_fixture_schedule(const char *tensor, const char *sampler,
                                   const char *scheduler, int steps, double denoise)
{
    sd_model_sampling_t ms = ms_sd1();
    size_t n_ref = 0, n = 0;
    float *ref = load_f32(SAMPLES, tensor, &n_ref);
    float out[SD_SCHEDULE_CAP(16)];
    char err[128] = "";
    int rc = sd_ksampler_sigmas(sampler, scheduler, &ms, steps, denoise, out,
                                SD_SCHEDULE_CAP(16), &n, err, sizeof err);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "%s: %d %s", tensor, rc, err);
    ASSERT_EQ_INT(n, n_ref);
    assert_bits(tensor, out, ref, n);
    free(ref);
}

static void test_fixture_schedules(void)
{
    check_fixture_schedule("euler_normal_sigmas", "euler", "normal", 6, 1.0);
    check_fixture_schedule("euler_ancestral_normal_sigmas", "euler_ancestral", "normal", 6, 1.0);
    check_fixture_schedule("dpmpp_2m_karras_sigmas", "dpmpp_2m", "karras", 6, 1.0);
    check_fixture_schedule("ddim_ddim_uniform_sigmas", "ddim", "ddim_uniform", 6, 1.0);
    check_fixture_schedule("hires_sigmas", "euler", "normal", 4, 0.5);
}

/* One schedule through sd_schedule_sigmas; returns its length. */
static size_t sched(const char *name, int steps, float *out, size_t cap)
{
    sd_model_sampling_t ms = ms_sd1();
    size_t n = 0;
    char err[128] = "";
    int rc = sd_schedule_sigmas(name, &ms, steps, out, cap, &n, err, sizeof err);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "%s: %d %s", name, rc, err);
    ASSERT(out[n - 1] == 0.0f);
    for (size_t i = 0; i + 1 < n; i++)
        ASSERT(out[i] > out[i + 1]);
    return n;
}

static void test_schedules_closed_forms(void)
{
    sd_model_sampling_t ms = ms_sd1();
    float s[SD_SCHEDULE_CAP(1000)];
    size_t cap = SD_SCHEDULE_CAP(1000);
    ASSERT_EQ_INT(sched("simple", 10, s, cap), 11);   /* every 100th entry from the top */
    for (int i = 0; i < 10; i++)
        ASSERT(s[i] == ms.sigmas[999 - 100 * i]);
    ASSERT_EQ_INT(sched("sgm_uniform", 6, s, cap), 7);   /* linspace(999, 0, 7)[:-1] */
    const float sgm_t[6] = {999.0f, 832.5f, 666.0f, 499.5f, 333.0f, 166.5f};
    for (int i = 0; i < 6; i++)
        ASSERT(s[i] == sd_model_sampling_sigma(&ms, sgm_t[i]));
    ASSERT_EQ_INT(sched("karras", 6, s, cap), 7);
    ASSERT_NEAR(s[0], 14.614643, 1e-6);
    ASSERT_NEAR(s[5], ms.sigma_min, 1e-7);
    ASSERT_EQ_INT(sched("exponential", 5, s, cap), 6);   /* geometric */
    ASSERT_NEAR(s[0], ms.sigma_max, 1e-5);
    ASSERT_NEAR(s[4], ms.sigma_min, 1e-7);
    for (int i = 0; i < 3; i++)
        ASSERT_NEAR(s[i + 1] / s[i], s[i + 2] / s[i + 1], 1e-5);
    ASSERT_EQ_INT(sched("linear_quadratic", 4, s, cap), 5);   /* worked by hand */
    const double lq[4] = {1.0, 0.9875, 0.975, 0.725};
    for (int i = 0; i < 4; i++)
        ASSERT_NEAR(s[i], lq[i] * ms.sigma_max, 1e-5);
    ASSERT_EQ_INT(sched("linear_quadratic", 1, s, cap), 2);
    ASSERT(s[0] == ms.sigma_max);
    ASSERT_EQ_INT(sched("kl_optimal", 3, s, cap), 4);
    ASSERT_NEAR(s[0], ms.sigma_max, 1e-5);
    ASSERT_NEAR(s[1], tan((atan(ms.sigma_min) + atan(ms.sigma_max)) / 2), 1e-5);
    ASSERT_NEAR(s[2], ms.sigma_min, 1e-7);
    ASSERT_EQ_INT(sched("ddim_uniform", 1000, s, cap), 1000);   /* entries 999..1, then 0 */
    ASSERT(s[0] == ms.sigmas[999] && s[998] == ms.sigmas[1]);
    ASSERT_EQ_INT(sched("ddim_uniform", 3000, s, SD_SCHEDULE_CAP(3000)), 1000);
    ASSERT_EQ_INT(sched("normal", 1, s, cap), 2);
    ASSERT(s[0] == sd_model_sampling_sigma(&ms, 999.0f));
}

static void test_beta_scheduler(void)
{
    sd_model_sampling_t ms = ms_sd1();
    float s[SD_SCHEDULE_CAP(64)];
    /* Timesteps scipy 1.18 gives ComfyUI's beta_scheduler for 10 steps. */
    static const int t10[10] = {999, 959, 876, 765, 637, 500, 362, 234, 123, 40};
    ASSERT_EQ_INT(sched("beta", 10, s, SD_SCHEDULE_CAP(64)), 11);
    for (int i = 0; i < 10; i++)
        ASSERT(s[i] == ms.sigmas[t10[i]]);
    ASSERT_EQ_INT(sched("beta", 2, s, SD_SCHEDULE_CAP(64)), 3);   /* rint(0.5 * 999) = 500 */
    ASSERT(s[0] == ms.sigmas[999] && s[1] == ms.sigmas[500]);
    size_t n = sched("beta", 64, s, SD_SCHEDULE_CAP(64));
    ASSERT(n <= 65 && n > 40);   /* repeated timesteps near the ends are dropped */
    /* scipy.stats.beta.ppf(q, 0.6, 0.6) */
    ASSERT_NEAR(sd_beta_ppf(0.05, 0.6, 0.6), 0.012554456873611399, 1e-15);
    ASSERT_NEAR(sd_beta_ppf(0.25, 0.6, 0.6), 0.17568037865269498, 1e-15);
    ASSERT_NEAR(sd_beta_ppf(0.999, 0.6, 0.6), 0.99998144126148258, 1e-15);
    /* Closed forms of the beta CDF. */
    for (double q = 0.05; q < 1.0; q += 0.1) {
        double arcsine = sin(M_PI * q / 2) * sin(M_PI * q / 2);
        ASSERT_NEAR(sd_beta_ppf(q, 0.5, 0.5), arcsine, 1e-13);
        ASSERT_NEAR(sd_beta_ppf(q, 2.0, 1.0), sqrt(q), 1e-13);
        ASSERT_NEAR(sd_beta_ppf(q, 1.0, 1.0), q, 1e-13);
        ASSERT_NEAR(sd_beta_ppf(q, 0.6, 0.6) + sd_beta_ppf(1.0 - q, 0.6, 0.6), 1.0, 1e-13);
    }
    ASSERT(sd_beta_ppf(1.0, 0.6, 0.6) == 1.0 && sd_beta_ppf(0.0, 0.6, 0.6) == 0.0);
    ASSERT(isnan(sd_beta_ppf(0.5, -1.0, 0.6)));
}

static void test_ksampler_sigmas_rules(void)
{
    sd_model_sampling_t ms = ms_sd1();
    float s[SD_SCHEDULE_CAP(40)], full[SD_SCHEDULE_CAP(40)];
    size_t n = 0, nf = 0;
    char err[128] = "";
    /* denoise <= 0: nothing to sample. */
    ASSERT_EQ_INT(sd_ksampler_sigmas("euler", "normal", &ms, 6, 0.0, s, 40, &n, err, 128), 0);
    ASSERT_EQ_INT(n, 0);
    /* dpm_2 runs one step more and drops the penultimate sigma. */
    ASSERT_EQ_INT(sd_schedule_sigmas("normal", &ms, 7, full, 40, &nf, err, 128), 0);
    ASSERT_EQ_INT(sd_ksampler_sigmas("dpm_2", "normal", &ms, 6, 1.0, s, 40, &n, err, 128), 0);
    ASSERT_EQ_INT(n, 7);
    assert_bits("dpm_2 head", s, full, 6);
    ASSERT(s[6] == 0.0f);
    /* denoise 0.3 on 6 steps: the last 7 of a 20-step schedule. */
    ASSERT_EQ_INT(sd_schedule_sigmas("karras", &ms, 20, full, 40, &nf, err, 128), 0);
    ASSERT_EQ_INT(sd_ksampler_sigmas("euler", "karras", &ms, 6, 0.3, s, 40, &n, err, 128), 0);
    ASSERT_EQ_INT(n, 7);
    assert_bits("denoise tail", s, full + 14, 7);
    /* Errors. */
    ASSERT_EQ_INT(sd_schedule_sigmas("warp", &ms, 6, s, 40, &n, err, 128), KILN_EINVAL);
    ASSERT_STR_CONTAINS(err, "warp");
    ASSERT_EQ_INT(sd_schedule_sigmas("normal", &ms, 0, s, 40, &n, err, 128), KILN_EINVAL);
    ASSERT_EQ_INT(sd_schedule_sigmas("normal", &ms, 6, s, 6, &n, err, 128), KILN_ERANGE);
    ASSERT_EQ_INT(n, 0);
    ASSERT_EQ_INT(sd_ksampler_sigmas("euler", "normal", &ms, 10000, 1e-6, s, 40, &n, err, 128),
                  KILN_ELIMIT);
    ASSERT(sd_scheduler_known("kl_optimal") && !sd_scheduler_known("Normal"));
    ASSERT_STR_EQ(sd_scheduler_names[0], "simple");
    ASSERT_STR_EQ(sd_scheduler_names[6], "normal");
    ASSERT(sd_scheduler_names[9] == NULL);
}

static void test_sigmas_slice(void)
{
    float base[7] = {7, 6, 5, 4, 3, 2, 0}, s[7];
    size_t n;
    memcpy(s, base, sizeof s), n = 7;
    sd_sigmas_slice(s, &n, 2, 4, 0);   /* [:5] then [2:] */
    ASSERT_EQ_INT(n, 3);
    ASSERT(s[0] == 5 && s[1] == 4 && s[2] == 3);
    memcpy(s, base, sizeof s), n = 7;
    sd_sigmas_slice(s, &n, -1, 4, 1);   /* leftover noise off: the new end is 0 */
    ASSERT_EQ_INT(n, 5);
    ASSERT(s[4] == 0.0f && s[3] == 4);
    memcpy(s, base, sizeof s), n = 7;
    sd_sigmas_slice(s, &n, 0, 10000, 1);   /* KSamplerAdvanced defaults: unchanged */
    ASSERT_EQ_INT(n, 7);
    ASSERT(s[5] == 2);
    memcpy(s, base, sizeof s), n = 7;
    sd_sigmas_slice(s, &n, 6, -1, 0);   /* start at the end: nothing to sample */
    ASSERT_EQ_INT(n, 0);
}

/* --- fixture replay ------------------------------------------------------------------ */

/* Feeds the recorded denoised predictions and ancestral noise back, checking each state the
 * sampler hands the model against the recorded one. */
typedef struct replay {
    const float *step_x, *step_den, *sigmas, *noise;
    size_t per, steps;    /* floats per state; recorded steps */
    size_t calls, draws, reports;
    double worst;         /* the worst relative state error seen */
} replay_t;

static int replay_denoise(void *ud, const float *x, float sigma, float *den, size_t n)
{
    replay_t *r = ud;
    ASSERT_EQ_INT(n, r->per);
    ASSERT(r->calls < r->steps);
    ASSERT(sigma == r->sigmas[r->calls]);
    double e = rel_err(x, r->step_x + r->calls * n, n);
    r->worst = e > r->worst ? e : r->worst;
    memcpy(den, r->step_den + r->calls * n, n * sizeof *den);
    r->calls++;
    return 0;
}

static int replay_noise(void *ud, float *out, size_t n)
{
    replay_t *r = ud;
    ASSERT(r->noise != NULL && r->draws + 1 < r->steps);
    memcpy(out, r->noise + r->draws * n, n * sizeof *out);
    r->draws++;
    return 0;
}

static int replay_step(void *ud, int step, int total, float sigma, const float *x,
                       const float *den, size_t n)
{
    replay_t *r = ud;
    ASSERT_EQ_INT(step, r->reports);
    ASSERT_EQ_INT(total, r->steps);
    ASSERT(sigma == r->sigmas[step]);
    ASSERT(den == NULL || memcmp(den, r->step_den + (size_t)step * n, n * sizeof *den) == 0);
    (void)x;
    r->reports++;
    return 0;
}

/* Replays run `run` with `sampler` from its recorded first state and checks every state and
 * the final latent within rel 1e-5. */
static void replay_run(const char *run, const char *sampler, int ancestral)
{
    char name[128];
    size_t n_sig, n_x, n_den, n_lat, n_nz = 0;
    snprintf(name, sizeof name, "%s_sigmas", run);
    float *sig = load_f32(SAMPLES, name, &n_sig);
    snprintf(name, sizeof name, "%s_step_x", run);
    float *sx = load_f32(SAMPLES, name, &n_x);
    snprintf(name, sizeof name, "%s_step_denoised", run);
    float *sd = load_f32(SAMPLES, name, &n_den);
    snprintf(name, sizeof name, "%s_latent", run);
    float *lat = load_f32(SAMPLES, name, &n_lat);
    float *nz = NULL;
    if (ancestral) {
        snprintf(name, sizeof name, "%s_ancestral_noise", run);
        nz = load_f32(SAMPLES, name, &n_nz);
    }
    replay_t r = {sx, sd, sig, nz, n_lat, n_sig - 1, 0, 0, 0, 0.0};
    ASSERT_EQ_INT(n_x, r.steps * r.per);
    ASSERT_EQ_INT(n_den, r.steps * r.per);
    float *x = malloc(r.per * sizeof *x), *out = malloc(r.per * sizeof *out);
    memcpy(x, sx, r.per * sizeof *x);
    char err[128] = "";
    int rc = sd_sample(sampler, replay_denoise, replay_noise, replay_step, &r, x, r.per, sig,
                       n_sig, err, sizeof err);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "%s: %d %s", run, rc, err);
    ASSERT_EQ_INT(r.calls, r.steps);
    ASSERT_EQ_INT(r.reports, r.steps);
    ASSERT_EQ_INT(r.draws, ancestral ? r.steps - 1 : 0);
    ASSERT_EQ_INT(n_nz, r.draws * r.per);
    if (!(r.worst <= 1e-5))
        kiln_test_fail(__FILE__, __LINE__, "%s: a state is off by rel %.3g", run, r.worst);
    sd_latent_process_out(x, out, r.per);
    ASSERT_REL(out, lat, r.per, 1e-5, run);
    free(sig), free(sx), free(sd), free(lat), free(nz), free(x), free(out);
}

static void test_replay_euler(void)
{
    replay_run("euler_normal", "euler", 0);
}

static void test_replay_ddim(void)
{
    replay_run("ddim_ddim_uniform", "ddim", 0);
}

static void test_replay_dpmpp_2m(void)
{
    replay_run("dpmpp_2m_karras", "dpmpp_2m", 0);
}

static void test_replay_euler_ancestral(void)
{
    replay_run("euler_ancestral_normal", "euler_ancestral", 1);
}

static void test_replay_hires(void)
{
    replay_run("hires", "euler", 0);
}

/* The first states: pure noise scaled by sqrt(1 + sigma0^2) at sigma_max (within 1e-5),
 * by sigma0 below it (ddim_uniform, the hires pass), plus the scaled latent. */
static void test_first_states(void)
{
    sd_model_sampling_t ms = ms_sd1();
    size_t n, m, k;
    float *noise = load_f32(SAMPLES, "noise_seed42", &n);
    float *empty = load_f32(SAMPLES, "empty_latent", &m);
    ASSERT_EQ_INT(m, n);
    float *x = malloc(n * sizeof *x);
    const char *runs[4] = {"euler_normal", "dpmpp_2m_karras", "ddim_ddim_uniform",
                           "euler_ancestral_normal"};
    for (int r = 0; r < 4; r++) {
        char name[96];
        snprintf(name, sizeof name, "%s_sigmas", runs[r]);
        float *sig = load_f32(SAMPLES, name, &k);
        snprintf(name, sizeof name, "%s_step_x", runs[r]);
        float *sx = load_f32(SAMPLES, name, &k);
        ASSERT_EQ_INT(sd_model_sampling_max_denoise(&ms, sig[0]), r != 2);
        sd_latent_process_in(empty, x, n);
        sd_noise_scaling(&ms, sig[0], noise, x, x, n);
        assert_bits(name, x, sx, n);
        free(sig), free(sx);
    }
    free(noise), free(empty), free(x);
    /* The hires pass: upscaled latent * 0.18215 + seed-43 noise * sigma0. */
    float *up = load_f32(SAMPLES, "hires_upscaled_latent", &n);
    float *nz = load_f32(SAMPLES, "hires_noise_seed43", &m);
    float *sig = load_f32(SAMPLES, "hires_sigmas", &k);
    float *sx = load_f32(SAMPLES, "hires_step_x", &k);
    ASSERT_EQ_INT(m, n);
    x = malloc(n * sizeof *x);
    ASSERT(!sd_model_sampling_max_denoise(&ms, sig[0]));
    sd_latent_process_in(up, x, n);
    sd_noise_scaling(&ms, sig[0], nz, x, x, n);
    assert_bits("hires_step_x[0]", x, sx, n);
    free(up), free(nz), free(sig), free(sx), free(x);
}

/* --- synthetic denoisers ------------------------------------------------------------- */

#define NS 48   /* state size for the synthetic runs */

/* denoised = c x + (1 - c) mu; noise = amp * sin(j + 7 draws); optional failures. */
typedef struct synth {
    float c, mu, amp;
    size_t calls, draws, reports;
    size_t fail_call;   /* the denoise call that returns fail_rc (SIZE_MAX: none) */
    int fail_rc;
    int stop_step;      /* the step whose report returns stop_rc (-1: none) */
    int stop_rc;
} synth_t;

static synth_t synth(float c, float mu, float amp)
{
    synth_t s = {c, mu, amp, 0, 0, 0, (size_t)-1, 0, -1, 0};
    return s;
}

static int synth_denoise(void *ud, const float *x, float sigma, float *den, size_t n)
{
    synth_t *s = ud;
    (void)sigma;
    if (s->calls++ == s->fail_call)
        return s->fail_rc;
    for (size_t j = 0; j < n; j++)
        den[j] = s->c * x[j] + (1.0f - s->c) * s->mu;
    return 0;
}

static int synth_noise(void *ud, float *out, size_t n)
{
    synth_t *s = ud;
    for (size_t j = 0; j < n; j++)
        out[j] = s->amp * (float)sin((double)j + 7.0 * (double)s->draws);
    s->draws++;
    return 0;
}

static int synth_step(void *ud, int step, int total, float sigma, const float *x,
                      const float *den, size_t n)
{
    synth_t *s = ud;
    (void)total, (void)sigma, (void)x, (void)den, (void)n;
    s->reports++;
    return step == s->stop_step ? s->stop_rc : 0;
}

static void init_state(float *x)
{
    for (int j = 0; j < NS; j++)
        x[j] = 3.0f * (float)cos(0.7 * j) + 0.25f;
}

/* Runs sampler on x (NS floats) with s; fails on a non-zero return. */
static void run_synth(const char *sampler, synth_t *s, float *x, const float *sig, size_t ns)
{
    char err[128] = "";
    int rc = sd_sample(sampler, synth_denoise, synth_noise, synth_step, s, x, NS, sig, ns,
                       err, sizeof err);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "%s: %d %s", sampler, rc, err);
}

/* A karras schedule of `steps` steps; with keep_zero 0 it ends at sigma_min instead of 0. */
static size_t karras(int steps, int keep_zero, float *out)
{
    sd_model_sampling_t ms = ms_sd1();
    size_t n = 0;
    ASSERT_EQ_INT(sd_schedule_sigmas("karras", &ms, steps, out, SD_SCHEDULE_CAP(steps), &n,
                                     NULL, 0), 0);
    return keep_zero ? n : n - 1;
}

/* With a constant prediction mu and no noise every sampler has a closed form: the ODE
 * samplers give mu + (x0 - mu) s_end / s0, the ancestral and SDE ones (which move to
 * sigma_down = s_next^2 / s, or decay by exp(-2h)) mu + (x0 - mu) (s_end / s0)^2. */
static void test_constant_denoiser_closed_forms(void)
{
    float sig[SD_SCHEDULE_CAP(12)];
    size_t ns = karras(12, 0, sig);
    double ratio = (double)sig[ns - 1] / sig[0];
    for (int k = 0; sd_sampler_names[k]; k++) {
        const char *name = sd_sampler_names[k];
        if (!strcmp(name, "ddpm") || !strcmp(name, "lcm"))
            continue;   /* checked against their own references below */
        unsigned fl = sd_sampler_flags(name);
        double p = (fl & SD_SAMPLER_NOISE) ? 2.0 : 1.0;
        float x[NS], want[NS];
        init_state(x);
        synth_t s = synth(0.0f, 0.3f, 0.0f);
        for (int j = 0; j < NS; j++)
            want[j] = (float)(0.3 + (x[j] - 0.3) * pow(ratio, p));
        run_synth(name, &s, x, sig, ns);
        ASSERT_EQ_INT(s.reports, ns - 1);
        double e = rel_err(x, want, NS);
        if (!(e <= 2e-5))
            kiln_test_fail(__FILE__, __LINE__, "%s: rel %.3g", name, e);
    }
}

/* Relative error of sampler over a karras schedule of `steps` steps down to sigma_min with
 * denoised = x / 2, against the exact solution x0 sqrt(s / s0) of dx/ds = x / (2 s). */
static double ode_error(const char *sampler, int steps)
{
    float sig[SD_SCHEDULE_CAP(80)], x0[NS], want[NS], x[NS];
    size_t ns = karras(steps, 0, sig);
    double exact = sqrt((double)sig[ns - 1] / sig[0]);
    init_state(x0);
    for (int j = 0; j < NS; j++)
        want[j] = (float)(x0[j] * exact);
    memcpy(x, x0, sizeof x);
    synth_t s = synth(0.5f, 0.0f, 0.0f);
    run_synth(sampler, &s, x, sig, ns);
    return rel_err(x, want, NS);
}

/* Doubling the steps must cut euler's error by about 2 (first order) and the others' by
 * about 4 or more (second order; lms gets higher). */
static void test_ode_convergence_order(void)
{
    const char *second[] = {"heun", "dpm_2", "lms", "dpmpp_2m"};
    for (int k = 0; k < 4; k++) {
        double e20 = ode_error(second[k], 20), e40 = ode_error(second[k], 40);
        if (!(e40 < 0.015 && e20 / e40 > 3.5))
            kiln_test_fail(__FILE__, __LINE__, "%s: error %.3g at 20 steps, %.3g at 40",
                           second[k], e20, e40);
    }
    double e20 = ode_error("euler", 20), e40 = ode_error("euler", 40);
    ASSERT(e40 > 0.1 && e40 < 0.2);
    ASSERT(e20 / e40 > 1.7 && e20 / e40 < 2.6);
    ASSERT(ode_error("ddim", 40) == e40);
}

/* heun's two stages, per step, in double: with d = x / (2 s) the step multiplies x by
 * 1 + dt/2 (1 / (2 s) + (1 + dt / (2 s)) / (2 s')). */
static void test_heun_closed_form(void)
{
    float sig[SD_SCHEDULE_CAP(8)];
    size_t ns = karras(8, 1, sig);   /* the last step, to 0, is a plain Euler step */
    float x[NS];
    double ref[NS];
    init_state(x);
    for (int j = 0; j < NS; j++)
        ref[j] = x[j];
    for (size_t i = 0; i + 1 < ns; i++) {
        double sg = sig[i], sn = sig[i + 1], dt = sn - sg, m;
        if (sn == 0.0)
            m = 1.0 + dt / (2.0 * sg);
        else
            m = 1.0 + dt / 2.0 * (1.0 / (2.0 * sg) + (1.0 + dt / (2.0 * sg)) / (2.0 * sn));
        for (int j = 0; j < NS; j++)
            ref[j] *= m;
    }
    synth_t s = synth(0.5f, 0.0f, 0.0f);
    run_synth("heun", &s, x, sig, ns);
    ASSERT_EQ_INT(s.calls, 2 * (ns - 1) - 1);
    for (int j = 0; j < NS; j++)
        ASSERT_NEAR(x[j], ref[j], 1e-5 * fabs(ref[j]) + 1e-6);
}

/* lcm: x <- denoised, re-noised to the next sigma: x' = x / 2 + s' noise; last: x / 2. */
static void test_lcm_closed_form(void)
{
    float sig[SD_SCHEDULE_CAP(5)];
    size_t ns = karras(5, 1, sig);
    float x[NS];
    double ref[NS];
    init_state(x);
    for (int j = 0; j < NS; j++)
        ref[j] = x[j];
    for (size_t i = 0; i + 1 < ns; i++) {
        for (int j = 0; j < NS; j++) {
            ref[j] = 0.5 * ref[j];
            if (sig[i + 1] > 0.0f)
                ref[j] += (double)sig[i + 1] * 0.8 * sin(j + 7.0 * (double)i);
        }
    }
    synth_t s = synth(0.5f, 0.0f, 0.8f);
    run_synth("lcm", &s, x, sig, ns);
    ASSERT_EQ_INT(s.draws, ns - 2);
    for (int j = 0; j < NS; j++)
        ASSERT_NEAR(x[j], ref[j], 1e-5 * fabs(ref[j]) + 1e-6);
}

/* euler_ancestral with noise, per step in double: Euler to sigma_down, plus noise sigma_up. */
static void test_euler_ancestral_closed_form(void)
{
    float sig[SD_SCHEDULE_CAP(6)];
    size_t ns = karras(6, 1, sig);
    float x[NS];
    double ref[NS];
    init_state(x);
    for (int j = 0; j < NS; j++)
        ref[j] = x[j];
    for (size_t i = 0; i + 1 < ns; i++) {
        double sg = sig[i], sn = sig[i + 1];
        double up = fmin(sn, sqrt(sn * sn * (sg * sg - sn * sn) / (sg * sg)));
        double down = sqrt(sn * sn - up * up);
        for (int j = 0; j < NS; j++) {
            if (down == 0.0)
                ref[j] = 0.5 * ref[j];
            else
                ref[j] += ref[j] / (2.0 * sg) * (down - sg) + 0.8 * sin(j + 7.0 * (double)i) * up;
        }
    }
    synth_t s = synth(0.5f, 0.0f, 0.8f);
    run_synth("euler_ancestral", &s, x, sig, ns);
    ASSERT_EQ_INT(s.draws, ns - 2);
    for (int j = 0; j < NS; j++)
        ASSERT_NEAR(x[j], ref[j], 1e-5 * fabs(ref[j]) + 1e-6);
}

/* ddpm, per step in double: the DDPM posterior mean in variance-preserving space plus the
 * posterior noise, mapped back by sqrt(1 + s'^2). */
static void test_ddpm_closed_form(void)
{
    float sig[SD_SCHEDULE_CAP(6)];
    size_t ns = karras(6, 1, sig);
    float x[NS];
    double ref[NS];
    init_state(x);
    for (int j = 0; j < NS; j++)
        ref[j] = x[j];
    for (size_t i = 0; i + 1 < ns; i++) {
        double sg = sig[i], sp = sig[i + 1];
        double acp = 1.0 / (sg * sg + 1.0), acp_prev = 1.0 / (sp * sp + 1.0);
        double alpha = acp / acp_prev;
        for (int j = 0; j < NS; j++) {
            double eps = (ref[j] - 0.5 * ref[j]) / sg, x_in = ref[j] / sqrt(1.0 + sg * sg);
            double mu = sqrt(1.0 / alpha) * (x_in - (1.0 - alpha) * eps / sqrt(1.0 - acp));
            if (sp > 0.0) {
                double k = sqrt((1.0 - alpha) * (1.0 - acp_prev) / (1.0 - acp));
                mu = (mu + k * 0.8 * sin(j + 7.0 * (double)i)) * sqrt(1.0 + sp * sp);
            }
            ref[j] = mu;
        }
    }
    synth_t s = synth(0.5f, 0.0f, 0.8f);
    run_synth("ddpm", &s, x, sig, ns);
    ASSERT_EQ_INT(s.draws, ns - 2);
    /* 1 - alphas_cumprod ~ sigma^2 cancels in float32 (ComfyUI's too) near sigma_min, so
     * float32 and double part by a few 1e-5 there. */
    float want[NS];
    for (int j = 0; j < NS; j++)
        want[j] = (float)ref[j];
    ASSERT_REL(x, want, NS, 1e-4, "ddpm");
}

/* Model calls and noise draws per sampler over 6 steps ending at 0, with live noise. */
static void test_call_and_draw_counts(void)
{
    static const struct {
        const char *name;
        size_t calls, draws;
    } want[] = {
        {"euler", 6, 0}, {"euler_ancestral", 6, 5}, {"heun", 11, 0}, {"dpm_2", 11, 0},
        {"dpm_2_ancestral", 11, 5}, {"lms", 6, 0}, {"dpmpp_2s_ancestral", 11, 5},
        {"dpmpp_sde", 11, 10}, {"dpmpp_sde_gpu", 11, 10}, {"dpmpp_2m", 6, 0},
        {"dpmpp_2m_sde", 6, 5}, {"dpmpp_2m_sde_gpu", 6, 5}, {"dpmpp_2m_sde_heun", 6, 5},
        {"dpmpp_2m_sde_heun_gpu", 6, 5}, {"dpmpp_3m_sde", 6, 5}, {"dpmpp_3m_sde_gpu", 6, 5},
        {"ddpm", 6, 5}, {"lcm", 6, 5}, {"ddim", 6, 0},
    };
    float sig[SD_SCHEDULE_CAP(6)];
    size_t ns = karras(6, 1, sig);
    size_t k = 0;
    for (; sd_sampler_names[k]; k++) {
        ASSERT(k < sizeof want / sizeof want[0]);
        ASSERT_STR_EQ(sd_sampler_names[k], want[k].name);
        float x[NS];
        init_state(x);
        synth_t s = synth(0.5f, 0.1f, 1.0f);
        run_synth(want[k].name, &s, x, sig, ns);
        if (s.calls != want[k].calls || s.draws != want[k].draws || s.reports != 6)
            kiln_test_fail(__FILE__, __LINE__, "%s: %zu calls, %zu draws, %zu reports",
                           want[k].name, s.calls, s.draws, s.reports);
        for (int j = 0; j < NS; j++)
            ASSERT(isfinite(x[j]));
        ASSERT_EQ_INT(!!(sd_sampler_flags(want[k].name) & SD_SAMPLER_NOISE), want[k].draws > 0);
    }
    ASSERT_EQ_INT(k, sizeof want / sizeof want[0]);
    ASSERT(sd_sampler_flags("dpmpp_2m_sde") & SD_SAMPLER_APPROX_NOISE);
    ASSERT(!(sd_sampler_flags("euler_ancestral") & SD_SAMPLER_APPROX_NOISE));
}

/* Feeds ref_noise in order. */
static int ref_denoise(void *ud, const float *x, float sigma, float *den, size_t n)
{
    (void)ud, (void)sigma;
    for (size_t j = 0; j < n; j++)
        den[j] = x[j] * 0.5f + 0.1f;
    return 0;
}

static int ref_draw(void *ud, float *out, size_t n)
{
    size_t *k = ud;
    ASSERT(*k < 16);
    memcpy(out, ref_noise[(*k)++], n * sizeof *out);
    return 0;
}

/* Every sampler against the same expressions run by torch (test_sd_sampling_ref.h): bit for
 * bit, except where torch's MKL sqrt rounds a ddpm coefficient the other way (checked by
 * value there). */
static void test_torch_reference_runs(void)
{
    for (size_t r = 0; r < sizeof ref_runs / sizeof ref_runs[0]; r++) {
        float x[8];
        size_t k = 0;
        memcpy(x, ref_x0, sizeof x);
        char err[128] = "";
        int rc = sd_sample(ref_runs[r].name, ref_denoise, ref_draw, NULL, &k, x, 8, ref_sigmas,
                           9, err, sizeof err);
        if (rc != 0)
            kiln_test_fail(__FILE__, __LINE__, "%s: %d %s", ref_runs[r].name, rc, err);
        if (strcmp(ref_runs[r].name, "ddpm") == 0)
            ASSERT_REL(x, ref_runs[r].x, 8, 1e-6, "ddpm");
        else
            assert_bits(ref_runs[r].name, x, ref_runs[r].x, 8);
    }
}

static void test_errors_and_interrupts(void)
{
    float sig[SD_SCHEDULE_CAP(6)], x[NS], x0[NS];
    size_t ns = karras(6, 1, sig);
    char err[128] = "";
    init_state(x0);
    memcpy(x, x0, sizeof x);
    synth_t s = synth(0.5f, 0.0f, 1.0f);
    ASSERT_EQ_INT(sd_sample("uni_pc", synth_denoise, synth_noise, NULL, &s, x, NS, sig, ns, err,
                            sizeof err), KILN_EINVAL);
    ASSERT_STR_CONTAINS(err, "uni_pc");
    ASSERT_EQ_INT(sd_sample("euler_ancestral", synth_denoise, NULL, NULL, &s, x, NS, sig, ns,
                            err, sizeof err), KILN_EINVAL);
    ASSERT_STR_CONTAINS(err, "noise");
    ASSERT_EQ_INT(sd_sample("euler", NULL, NULL, NULL, &s, x, NS, sig, ns, NULL, 0), KILN_EINVAL);
    ASSERT_EQ_INT(s.calls, 0);
    /* One sigma: nothing to do. */
    ASSERT_EQ_INT(sd_sample("heun", synth_denoise, NULL, NULL, &s, x, NS, sig, 1, NULL, 0), 0);
    ASSERT_EQ_INT(s.calls, 0);
    ASSERT(memcmp(x, x0, sizeof x) == 0);
    /* A model failure at the third call comes back as is. */
    s.fail_call = 2;
    s.fail_rc = KILN_EDEVICE;
    ASSERT_EQ_INT(sd_sample("dpmpp_2m", synth_denoise, NULL, synth_step, &s, x, NS, sig, ns, err,
                            sizeof err), KILN_EDEVICE);
    ASSERT_EQ_INT(s.calls, 3);
    ASSERT_EQ_INT(s.reports, 2);
    /* The step callback stops the run: positive means interrupted, negative is kept. */
    s = synth(0.5f, 0.0f, 1.0f);
    s.stop_step = 2;
    s.stop_rc = 1;
    ASSERT_EQ_INT(sd_sample("euler_ancestral", synth_denoise, synth_noise, synth_step, &s, x, NS,
                            sig, ns, NULL, 0), KILN_EINTERRUPTED);
    ASSERT_EQ_INT(s.calls, 3);
    ASSERT_EQ_INT(s.draws, 2);
    s = synth(0.5f, 0.0f, 1.0f);
    s.stop_step = 0;
    s.stop_rc = KILN_ENODE;
    ASSERT_EQ_INT(sd_sample("lcm", synth_denoise, synth_noise, synth_step, &s, x, NS, sig, ns,
                            NULL, 0), KILN_ENODE);
    ASSERT(sd_sampler_known("ddim") && !sd_sampler_known("DDIM") && !sd_sampler_known(NULL));
    ASSERT_EQ_INT(sd_sampler_flags("nope"), 0);
}

KILN_TEST_MAIN(TEST(test_sigma_table_matches_comfy), TEST(test_timestep_and_sigma_maps),
               TEST(test_torch_expm1),
               TEST(test_fixture_schedules), TEST(test_schedules_closed_forms),
               TEST(test_beta_scheduler), TEST(test_ksampler_sigmas_rules),
               TEST(test_sigmas_slice), TEST(test_replay_euler), TEST(test_replay_ddim),
               TEST(test_replay_dpmpp_2m), TEST(test_replay_euler_ancestral),
               TEST(test_replay_hires), TEST(test_first_states),
               TEST(test_constant_denoiser_closed_forms), TEST(test_ode_convergence_order),
               TEST(test_heun_closed_form), TEST(test_lcm_closed_form),
               TEST(test_euler_ancestral_closed_form), TEST(test_ddpm_closed_form),
               TEST(test_call_and_draw_counts), TEST(test_torch_reference_runs),
               TEST(test_errors_and_interrupts))
