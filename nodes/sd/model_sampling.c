/* ModelSamplingDiscrete for SD1.x: the sigma table exactly as ComfyUI builds it (torch's
 * float64 linspace, squares, cumulative product, square root, then float32), the float32
 * timestep/sigma maps, noise scaling, the latent scale, and the two float32 functions whose
 * last bit torch computes differently from glibc (log, expm1). */
#include "model_sampling.h"

#include <math.h>
#include <stdint.h>

#include "kiln/error.h"

/* Each float operation must round once, as torch's separate tensor ops do. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* torch.linspace(start, end, steps, dtype=float64) on the CPU: start + step * i below the
 * halfway point, end - step * (steps - 1 - i) from there on, each one fused multiply-add (the
 * x86 kernel is built with FMA contraction; torch 2.x dropped its vectorised variant). */
static void linspace_f64(double start, double end, int64_t steps, double *out)
{
    if (steps == 1) {
        out[0] = start;
        return;
    }
    double step = (end - start) / (double)(steps - 1);
    int64_t half = steps / 2;
    for (int64_t i = 0; i < steps; i++)
        out[i] = i < half ? fma(step, (double)i, start) : fma(-step, (double)(steps - i - 1), end);
}

int sd_model_sampling_init(sd_model_sampling_t *ms, double linear_start, double linear_end)
{
    if (!ms || !(linear_start > 0.0) || !(linear_end >= linear_start) || !(linear_end < 1.0))
        return KILN_EINVAL;
    double betas[SD_NUM_TIMESTEPS];
    linspace_f64(pow(linear_start, 0.5), pow(linear_end, 0.5), SD_NUM_TIMESTEPS, betas);
    double cumprod = 1.0;
    for (int i = 0; i < SD_NUM_TIMESTEPS; i++) {
        double b = betas[i] * betas[i];   /* ** 2 is a plain square in torch */
        cumprod *= 1.0 - b;
        double sigma = sqrt((1.0 - cumprod) / cumprod);
        ms->sigmas[i] = (float)sigma;
        ms->log_sigmas[i] = (float)log(sigma);
    }
    ms->sigma_min = ms->sigmas[0];
    ms->sigma_max = ms->sigmas[SD_NUM_TIMESTEPS - 1];
    return 0;
}

void sd_model_sampling_init_sd1(sd_model_sampling_t *ms)
{
    (void)sd_model_sampling_init(ms, 0.00085, 0.012);
}

float sd_model_sampling_timestep(const sd_model_sampling_t *ms, float sigma)
{
    float ls = sd_logf(sigma);
    int best = 0;
    float best_d = fabsf(ls - ms->log_sigmas[0]);
    for (int i = 1; i < SD_NUM_TIMESTEPS; i++) {
        float d = fabsf(ls - ms->log_sigmas[i]);
        if (d < best_d) {   /* strict: argmin keeps the first of equal distances */
            best_d = d;
            best = i;
        }
    }
    return (float)best;
}

float sd_model_sampling_sigma(const sd_model_sampling_t *ms, float t)
{
    /* torch.clamp propagates NaN; a NaN timestep has no table entry, so answer NaN. */
    if (isnan(t))
        return t;
    if (t < 0.0f)
        t = 0.0f;
    if (t > (float)(SD_NUM_TIMESTEPS - 1))
        t = (float)(SD_NUM_TIMESTEPS - 1);
    int lo = (int)floorf(t), hi = (int)ceilf(t);
    float w = t - truncf(t);
    float one_minus_w = 1.0f - w;
    float a = one_minus_w * ms->log_sigmas[lo];
    float b = w * ms->log_sigmas[hi];
    return expf(a + b);
}

double sd_model_sampling_percent_to_sigma(const sd_model_sampling_t *ms, double percent)
{
    if (percent <= 0.0)
        return 999999999.9;
    if (percent >= 1.0)
        return 0.0;
    percent = 1.0 - percent;
    return (double)sd_model_sampling_sigma(ms, (float)(percent * 999.0));
}

int sd_model_sampling_max_denoise(const sd_model_sampling_t *ms, float sigma0)
{
    /* math.isclose(sigma_max, sigma0, rel_tol=1e-5) or sigma0 > sigma_max, in float64 */
    double a = ms->sigma_max, b = sigma0;
    double tol = 1e-5 * fmax(fabs(a), fabs(b));
    return a == b || fabs(a - b) <= tol || b > a;
}

void sd_noise_scaling(const sd_model_sampling_t *ms, float sigma0, const float *noise,
                      const float *latent_in, float *x, size_t n)
{
    float s = sigma0;
    if (sd_model_sampling_max_denoise(ms, sigma0)) {
        float sq = sigma0 * sigma0;
        s = sqrtf(1.0f + sq);
    }
    for (size_t i = 0; i < n; i++) {
        float v = noise[i] * s;
        x[i] = latent_in ? v + latent_in[i] : v + 0.0f;
    }
}

float sd_logf(float x)
{
    return (float)log((double)x);
}

/* A float-float value hi + lo, and the handful of exact operations SLEEF's expm1f uses. */
typedef struct ff {
    float hi, lo;
} ff_t;

static ff_t ff_add_f(ff_t x, float y)
{
    float s = x.hi + y, v = s - x.hi;
    float t = (x.hi - (s - v)) + (y - v);
    return (ff_t){s, t + x.lo};
}

static ff_t ff_add_ff(ff_t x, ff_t y)
{
    float s = x.hi + y.hi, v = s - x.hi;
    float t = (x.hi - (s - v)) + (y.hi - v);
    return (ff_t){s, t + (x.lo + y.lo)};
}

static ff_t ff_mul_f(ff_t x, float y)
{
    float s = x.hi * y;
    return (ff_t){s, fmaf(x.lo, y, fmaf(x.hi, y, -s))};
}

static ff_t ff_mul_ff(ff_t x, ff_t y)
{
    float s = x.hi * y.hi;
    return (ff_t){s, fmaf(x.hi, y.lo, fmaf(x.lo, y.hi, fmaf(x.hi, y.hi, -s)))};
}

static ff_t ff_sqr(ff_t x)
{
    float s = x.hi * x.hi;
    return (ff_t){s, fmaf(x.hi + x.hi, x.lo, fmaf(x.hi, x.hi, -s))};
}

/* d * 2^e in two exact halves, as SLEEF's ldexp2 does. */
static float ldexp2(float d, int e)
{
    int half = e < 0 ? -((1 - e) / 2) : e / 2;   /* e >> 1, rounding down */
    return d * ldexpf(1.0f, half) * ldexpf(1.0f, e - half);
}

float sd_expm1f(float a)
{
    if (isnan(a))
        return a;
    if (a > 88.72283172607421875f)
        return INFINITY;
    if (a < -16.635532333438687426013570f)
        return -1.0f;
    if (a == 0.0f)
        return a;   /* keeps the sign of zero */
    /* exp(a) as a float-float: a = q ln2 + s, then a degree-7 polynomial in s. */
    int q = (int)rintf(a * 1.442695040888963407359924681001892137426645954152985934135449406931f);
    ff_t s = ff_add_f((ff_t){a, 0.0f}, (float)q * -0.693145751953125f);
    s = ff_add_f(s, (float)q * -1.428606765330187045e-06f);
    float u = 0.1980960224e-3f;
    u = fmaf(u, s.hi, 0.1394256484e-2f);
    u = fmaf(u, s.hi, 0.8333456703e-2f);
    u = fmaf(u, s.hi, 0.4166637361e-1f);
    ff_t t = ff_add_f(ff_mul_f(s, u), 0.166666659414234244790680580464e+0f);
    t = ff_add_f(ff_mul_ff(s, t), 0.5f);
    t = ff_add_ff(s, ff_mul_ff(ff_sqr(s), t));
    float one = 1.0f + t.hi;   /* 1 + t, float-float */
    t = (ff_t){one, ((1.0f - one) + t.hi) + t.lo};
    t = (ff_t){ldexp2(t.hi, q), ldexp2(t.lo, q)};
    t = ff_add_f(t, -1.0f);
    return t.hi + t.lo;
}

void sd_latent_process_in(const float *latent, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = latent[i] * SD_SD1_LATENT_SCALE;
}

void sd_latent_process_out(const float *x, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = x[i] / SD_SD1_LATENT_SCALE;
}
