/* ComfyUI's schedulers (simple, sgm_uniform, karras, exponential, ddim_uniform, beta, normal,
 * linear_quadratic, kl_optimal) and KSampler's denoise/start/end arithmetic. Float32 tensor
 * math is redone operation by operation in float; ComfyUI's Python-float math in double. */
#include "schedules.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/error.h"
#include "sd_err.h"

/* Each float operation must round once, as torch's separate tensor ops do. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* A KSampler step count beyond this (after int(steps / denoise)) is refused rather than
 * allocated: ComfyUI caps steps at 10000 and the UI's smallest denoise step is 0.01. */
#define MAX_SCHEDULE_STEPS (1 << 24)

const char *const sd_scheduler_names[] = {
    "simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
    "linear_quadratic", "kl_optimal", NULL,
};

/* torch.linspace(start, end, steps) in float32 on the CPU: start + step * i below the halfway
 * point, end - step * (steps - 1 - i) from there on, each a fused multiply-add as torch's
 * x86 kernel (built with FMA contraction) computes it. */
static void linspace_f32(float start, float end, int64_t steps, float *out)
{
    if (steps <= 0)
        return;
    if (steps == 1) {
        out[0] = start;
        return;
    }
    float step = (end - start) / (float)(steps - 1);
    int64_t half = steps / 2;
    for (int64_t i = 0; i < steps; i++)
        out[i] = i < half ? fmaf(step, (float)i, start) : fmaf(-step, (float)(steps - i - 1), end);
}

/* normal_scheduler (sgm = 0) and sgm_uniform (sgm = 1): timesteps evenly spaced between
 * timestep(sigma_max) and timestep(sigma_min), mapped back through sigma(t). */
static size_t sched_normal(const sd_model_sampling_t *ms, int steps, int sgm, float *out)
{
    float start = sd_model_sampling_timestep(ms, ms->sigma_max);
    float end = sd_model_sampling_timestep(ms, ms->sigma_min);
    int append_zero = 1;
    int64_t count;
    if (sgm) {
        count = (int64_t)steps + 1;   /* linspace(start, end, steps + 1)[:-1] */
        linspace_f32(start, end, count, out);
        count--;
    } else {
        if (fabs((double)sd_model_sampling_sigma(ms, end)) <= 1e-5) {
            steps++;
            append_zero = 0;
        }
        count = steps;
        linspace_f32(start, end, count, out);
    }
    for (int64_t i = 0; i < count; i++)
        out[i] = sd_model_sampling_sigma(ms, out[i]);
    if (append_zero)
        out[count++] = 0.0f;
    return (size_t)count;
}

/* simple_scheduler: every (1000 / steps)-th table entry from the top. */
static size_t sched_simple(const sd_model_sampling_t *ms, int steps, float *out)
{
    double ss = (double)SD_NUM_TIMESTEPS / (double)steps;
    for (int x = 0; x < steps; x++)
        out[x] = ms->sigmas[SD_NUM_TIMESTEPS - 1 - (int64_t)((double)x * ss)];
    out[steps] = 0.0f;
    return (size_t)steps + 1;
}

/* ddim_scheduler: table entries 1, 1 + ss, 1 + 2 ss, ... (ss = 1000 // steps), reversed,
 * with a final 0 unless sigmas[1] is itself (close to) 0. */
static size_t sched_ddim_uniform(const sd_model_sampling_t *ms, int steps, float *out)
{
    size_t n = 0;
    int x = 1;
    int zero_first = !(fabs((double)ms->sigmas[x]) <= 1e-5);
    if (!zero_first)
        steps++;
    int ss = SD_NUM_TIMESTEPS / steps;
    if (ss < 1)
        ss = 1;
    if (zero_first)
        out[n++] = 0.0f;
    for (; x < SD_NUM_TIMESTEPS; x += ss)
        out[n++] = ms->sigmas[x];
    for (size_t i = 0; i < n / 2; i++) {
        float t = out[i];
        out[i] = out[n - 1 - i];
        out[n - 1 - i] = t;
    }
    return n;
}

/* k-diffusion get_sigmas_karras, rho 7: (max^(1/rho) + ramp (min^(1/rho) - max^(1/rho)))^rho
 * with the ramp in float32 and the two roots as Python floats. */
static size_t sched_karras(const sd_model_sampling_t *ms, int steps, float *out)
{
    const double rho = 7.0;
    double min_inv_rho = pow((double)ms->sigma_min, 1.0 / rho);
    double max_inv_rho = pow((double)ms->sigma_max, 1.0 / rho);
    float diff = (float)(min_inv_rho - max_inv_rho);
    float base = (float)max_inv_rho;
    linspace_f32(0.0f, 1.0f, steps, out);
    for (int i = 0; i < steps; i++) {
        float ramp = out[i] * diff;
        float v = base + ramp;
        out[i] = (float)pow((double)v, rho);   /* std::pow(float, double) */
    }
    out[steps] = 0.0f;
    return (size_t)steps + 1;
}

/* k-diffusion get_sigmas_exponential: exp of a float32 linspace between the two logs. */
static size_t sched_exponential(const sd_model_sampling_t *ms, int steps, float *out)
{
    float a = (float)log((double)ms->sigma_max);
    float b = (float)log((double)ms->sigma_min);
    linspace_f32(a, b, steps, out);
    for (int i = 0; i < steps; i++)
        out[i] = expf(out[i]);
    out[steps] = 0.0f;
    return (size_t)steps + 1;
}

/* linear_quadratic_schedule (threshold_noise 0.025, linear_steps steps // 2), in Python
 * floats, then scaled by sigma_max in float32. */
static size_t sched_linear_quadratic(const sd_model_sampling_t *ms, int steps, float *out)
{
    if (steps == 1) {
        out[0] = 1.0f * ms->sigma_max;
        out[1] = 0.0f * ms->sigma_max;
        return 2;
    }
    const double threshold = 0.025;
    int linear_steps = steps / 2;
    int quadratic_steps = steps - linear_steps;
    double diff = (double)linear_steps - threshold * (double)steps;
    double q2 = (double)quadratic_steps * (double)quadratic_steps;
    double quad_coef = diff / ((double)linear_steps * q2);
    double lin_coef = threshold / (double)linear_steps - 2.0 * diff / q2;
    double konst = quad_coef * ((double)linear_steps * (double)linear_steps);
    for (int i = 0; i < steps; i++) {
        double s;
        if (i < linear_steps)
            s = (double)i * threshold / (double)linear_steps;
        else
            s = quad_coef * ((double)i * (double)i) + lin_coef * (double)i + konst;
        out[i] = (float)(1.0 - s) * ms->sigma_max;
    }
    out[steps] = (float)(1.0 - 1.0) * ms->sigma_max;
    return (size_t)steps + 1;
}

/* kl_optimal_scheduler: tan(w atan(sigma_min) + (1 - w) atan(sigma_max)), w = i / (n - 1)
 * in float32 (n = 1 divides 0 by 0, as ComfyUI does). torch's x86 tan (MKL) is
 * correctly rounded nearly always, so the double-precision tan rounded to float matches it
 * more often than tanf. */
static size_t sched_kl_optimal(const sd_model_sampling_t *ms, int steps, float *out)
{
    float at_min = (float)atan((double)ms->sigma_min);
    float at_max = (float)atan((double)ms->sigma_max);
    float div = (float)(steps - 1);
    for (int i = 0; i < steps; i++) {
        float w = (float)i / div;
        float a = w * at_min;
        float b = (1.0f - w) * at_max;
        out[i] = (float)tan((double)(a + b));
    }
    out[steps] = 0.0f;
    return (size_t)steps + 1;
}

/* The continued fraction of the incomplete beta function (modified Lentz), for
 * x < (a + 1) / (a + b + 2) where it converges fast. */
static double beta_cf(double a, double b, double x)
{
    const double tiny = 1e-300;
    double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
    if (fabs(d) < tiny)
        d = tiny;
    d = 1.0 / d;
    double f = d;
    for (int m = 1; m <= 1000; m++) {
        double m2 = 2.0 * m;
        double num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));   /* even term */
        for (int k = 0; k < 2; k++) {
            d = 1.0 + num * d;
            d = fabs(d) < tiny ? 1.0 / tiny : 1.0 / d;
            c = 1.0 + num / c;
            if (fabs(c) < tiny)
                c = tiny;
            double delta = c * d;
            f *= delta;
            if (k == 1 && fabs(delta - 1.0) < 4e-16)
                return f;
            num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));   /* odd term */
        }
    }
    return f;
}

/* The regularised incomplete beta function I_x(a, b). */
static double beta_inc(double a, double b, double x)
{
    if (x <= 0.0)
        return 0.0;
    if (x >= 1.0)
        return 1.0;
    double lfront = a * log(x) + b * log1p(-x) - (lgamma(a) + lgamma(b) - lgamma(a + b));
    if (x < (a + 1.0) / (a + b + 2.0))
        return exp(lfront) * beta_cf(a, b, x) / a;
    return 1.0 - exp(lfront) * beta_cf(b, a, 1.0 - x) / b;
}

double sd_beta_ppf(double q, double a, double b)
{
    if (!(a > 0.0) || !(b > 0.0) || isnan(q))
        return NAN;
    if (q <= 0.0)
        return 0.0;
    if (q >= 1.0)
        return 1.0;
    if (a == b && q == 0.5)
        return 0.5;
    double lo = 0.0, hi = 1.0;
    for (int i = 0; i < 200; i++) {
        double mid = 0.5 * (lo + hi);
        if (mid <= lo || mid >= hi)
            break;
        if (beta_inc(a, b, mid) < q)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* beta_scheduler (alpha = beta = 0.6): timesteps rint(ppf(1 - i / steps) * 999), repeated
 * timesteps dropped, each mapped to its table sigma. */
static size_t sched_beta(const sd_model_sampling_t *ms, int steps, float *out)
{
    const double alpha = 0.6, beta = 0.6;
    double step = 1.0 / (double)steps;   /* numpy.linspace(0, 1, steps, endpoint=False) */
    double last_t = -1.0;
    size_t n = 0;
    for (int i = 0; i < steps; i++) {
        double q = 1.0 - ((double)i * step + 0.0);
        double t = rint(sd_beta_ppf(q, alpha, beta) * (double)(SD_NUM_TIMESTEPS - 1));
        if (t != last_t)
            out[n++] = ms->sigmas[(int)t];
        last_t = t;
    }
    out[n++] = 0.0f;
    return n;
}

/* The most sigmas a scheduler can produce for `steps` steps. */
static size_t sched_len_bound(int steps)
{
    size_t s = (size_t)steps + 2;
    return s > SD_NUM_TIMESTEPS + 1 ? s : SD_NUM_TIMESTEPS + 1;
}

int sd_scheduler_known(const char *name)
{
    for (int i = 0; name && sd_scheduler_names[i]; i++) {
        if (strcmp(name, sd_scheduler_names[i]) == 0)
            return 1;
    }
    return 0;
}

/* Computes into buf, which has room for sched_len_bound(steps) floats. */
static size_t run_scheduler(const char *s, const sd_model_sampling_t *ms, int steps, float *buf)
{
    if (strcmp(s, "simple") == 0)
        return sched_simple(ms, steps, buf);
    if (strcmp(s, "sgm_uniform") == 0)
        return sched_normal(ms, steps, 1, buf);
    if (strcmp(s, "karras") == 0)
        return sched_karras(ms, steps, buf);
    if (strcmp(s, "exponential") == 0)
        return sched_exponential(ms, steps, buf);
    if (strcmp(s, "ddim_uniform") == 0)
        return sched_ddim_uniform(ms, steps, buf);
    if (strcmp(s, "beta") == 0)
        return sched_beta(ms, steps, buf);
    if (strcmp(s, "normal") == 0)
        return sched_normal(ms, steps, 0, buf);
    if (strcmp(s, "linear_quadratic") == 0)
        return sched_linear_quadratic(ms, steps, buf);
    return sched_kl_optimal(ms, steps, buf);
}

/* Checks the common arguments; 0 or KILN_EINVAL with a message. */
static int check_args(const char *scheduler, const sd_model_sampling_t *ms, int steps,
                      const float *out, const size_t *n_out, char *err, size_t errlen)
{
    if (!scheduler || !ms || !out || !n_out) {
        sd_errf(err, errlen, 0, "schedule: NULL argument");
        return KILN_EINVAL;
    }
    if (!sd_scheduler_known(scheduler)) {
        sd_errf(err, errlen, 0, "invalid scheduler '%s'", scheduler);
        return KILN_EINVAL;
    }
    if (steps < 1 || steps > MAX_SCHEDULE_STEPS) {
        sd_errf(err, errlen, 0, "schedule: steps %d out of range 1..%d", steps, MAX_SCHEDULE_STEPS);
        return KILN_EINVAL;
    }
    return 0;
}

/* Runs a scheduler into a scratch buffer; *buf is malloc'ed (free it). */
static int schedule_alloc(const char *scheduler, const sd_model_sampling_t *ms, int steps,
                          float **buf, size_t *n, char *err, size_t errlen)
{
    *buf = malloc(sched_len_bound(steps) * sizeof **buf);
    if (!*buf) {
        sd_errf(err, errlen, 0, "schedule: out of memory for %d steps", steps);
        return KILN_ENOMEM;
    }
    *n = run_scheduler(scheduler, ms, steps, *buf);
    return 0;
}

/* Copies src[0..n) to out when it fits in cap. */
static int deliver(const float *src, size_t n, float *out, size_t cap, size_t *n_out,
                   char *err, size_t errlen)
{
    if (n > cap) {
        sd_errf(err, errlen, 0, "schedule: %zu sigmas do not fit in %zu", n, cap);
        return KILN_ERANGE;
    }
    memcpy(out, src, n * sizeof *src);
    *n_out = n;
    return 0;
}

int sd_schedule_sigmas(const char *scheduler, const sd_model_sampling_t *ms, int steps,
                       float *out, size_t cap, size_t *n_out, char *err, size_t errlen)
{
    if (n_out)
        *n_out = 0;
    int rc = check_args(scheduler, ms, steps, out, n_out, err, errlen);
    if (rc != 0)
        return rc;
    float *buf = NULL;
    size_t n = 0;
    rc = schedule_alloc(scheduler, ms, steps, &buf, &n, err, errlen);
    if (rc == 0)
        rc = deliver(buf, n, out, cap, n_out, err, errlen);
    free(buf);
    return rc;
}

static int discards_penultimate(const char *sampler)
{
    static const char *const names[] = {"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"};
    for (size_t i = 0; sampler && i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(sampler, names[i]) == 0)
            return 1;
    }
    return 0;
}

int sd_ksampler_sigmas(const char *sampler, const char *scheduler,
                       const sd_model_sampling_t *ms, int steps, double denoise, float *out,
                       size_t cap, size_t *n_out, char *err, size_t errlen)
{
    if (n_out)
        *n_out = 0;
    int rc = check_args(scheduler, ms, steps, out, n_out, err, errlen);
    if (rc != 0)
        return rc;
    if (!(denoise > 0.0))   /* denoise <= 0 (or NaN): torch.FloatTensor([]) */
        return 0;
    int full = denoise > 0.9999;
    double total = full ? (double)steps : floor((double)steps / denoise);
    if (total > MAX_SCHEDULE_STEPS) {
        sd_errf(err, errlen, 0, "schedule: %d steps at denoise %g need %.0f steps, over %d", steps,
                denoise, total, MAX_SCHEDULE_STEPS);
        return KILN_ELIMIT;
    }
    int run_steps = (int)total;
    int discard = discards_penultimate(sampler);
    float *buf = NULL;
    size_t n = 0;
    rc = schedule_alloc(scheduler, ms, run_steps + discard, &buf, &n, err, errlen);
    if (rc != 0)
        return rc;
    if (discard && n >= 2) {   /* torch.cat([sigmas[:-2], sigmas[-1:]]) */
        buf[n - 2] = buf[n - 1];
        n--;
    }
    size_t first = 0;
    if (!full && n > (size_t)steps + 1)   /* sigmas[-(steps + 1):] */
        first = n - ((size_t)steps + 1);
    rc = deliver(buf + first, n - first, out, cap, n_out, err, errlen);
    free(buf);
    return rc;
}

void sd_sigmas_slice(float *sigmas, size_t *n, int start_step, int last_step,
                     int force_full_denoise)
{
    if (last_step >= 0 && *n > 0 && (size_t)last_step < *n - 1) {
        *n = (size_t)last_step + 1;
        if (force_full_denoise)
            sigmas[*n - 1] = 0.0f;
    }
    if (start_step >= 0) {
        if (*n > 0 && (size_t)start_step < *n - 1) {
            memmove(sigmas, sigmas + start_step, (*n - (size_t)start_step) * sizeof *sigmas);
            *n -= (size_t)start_step;
        } else {
            *n = 0;
        }
    }
}
