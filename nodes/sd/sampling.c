/* The k-diffusion samplers of ComfyUI's KSampler on flat float32 states. Scalar
 * coefficients are computed in float32 with the operations ComfyUI applies to its 0-d
 * sigma tensors, and each per-element update in the order torch evaluates the expression,
 * so that replaying ComfyUI's denoised predictions and noise reproduces its states. */
#include "sampling.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/error.h"
#include "model_sampling.h"
#include "sd_err.h"

/* Each float operation must round once, as torch's separate tensor ops do. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define MAX_BUFS 5

/* One run: the callbacks and scratch buffers of n floats each. */
typedef struct sctx {
    sd_denoise_fn denoise;
    sd_noise_fn noise;
    sd_step_fn step;
    void *ud;              /* borrowed: the caller's */
    size_t n;
    int total;             /* steps: n_sigmas - 1 */
    float *buf[MAX_BUFS];  /* owned by sd_sample */
} sctx_t;

typedef int (*sampler_fn)(sctx_t *c, float *x, const float *s, size_t ns);

#define TRY(expr)                \
    do {                         \
        int rc_ = (expr);        \
        if (rc_ != 0)            \
            return rc_;          \
    } while (0)

static int cb_rc(int rc)
{
    return rc > 0 ? KILN_EINTERRUPTED : rc;
}

static int model(sctx_t *c, const float *x, float sigma, float *out)
{
    return cb_rc(c->denoise(c->ud, x, sigma, out, c->n));
}

static int draw(sctx_t *c, float *out)
{
    return cb_rc(c->noise(c->ud, out, c->n));
}

/* The model at the step's sigma, then the step callback with the state before the update. */
static int eval_step(sctx_t *c, size_t i, const float *x, float sigma, float *den)
{
    TRY(model(c, x, sigma, den));
    if (!c->step)
        return 0;
    return cb_rc(c->step(c->ud, (int)i, c->total, sigma, x, den, c->n));
}

void sd_ancestral_step(float sigma_from, float sigma_to, float *sigma_down, float *sigma_up)
{
    float to2 = sigma_to * sigma_to, from2 = sigma_from * sigma_from;
    float v = sqrtf(to2 * (from2 - to2) / from2);
    float up = v < sigma_to ? v : sigma_to;   /* Python's min keeps the first on ties */
    *sigma_up = up;
    *sigma_down = sqrtf(to2 - up * up);
}

/* x + noise * s_noise * sigma_up after a fresh draw into nz (s_noise is 1). */
static int add_noise(sctx_t *c, float *x, float *nz, float scale)
{
    TRY(draw(c, nz));
    for (size_t j = 0; j < c->n; j++)
        x[j] = x[j] + nz[j] * 1.0f * scale;
    return 0;
}

/* sample_euler (s_churn 0), also ComfyUI's ddim. */
static int s_euler(sctx_t *c, float *x, const float *s, size_t ns)
{
    float *den = c->buf[0];
    for (size_t i = 0; i + 1 < ns; i++) {
        TRY(eval_step(c, i, x, s[i], den));
        float dt = s[i + 1] - s[i];
        for (size_t j = 0; j < c->n; j++) {
            float d = (x[j] - den[j]) / s[i];
            x[j] = x[j] + d * dt;
        }
    }
    return 0;
}

/* sample_euler_ancestral (eta 1, s_noise 1); no draw on a step whose sigma_down is 0. */
static int s_euler_ancestral(sctx_t *c, float *x, const float *s, size_t ns)
{
    float *den = c->buf[0], *nz = c->buf[1];
    for (size_t i = 0; i + 1 < ns; i++) {
        TRY(eval_step(c, i, x, s[i], den));
        float sdn, sup;
        sd_ancestral_step(s[i], s[i + 1], &sdn, &sup);
        if (sdn == 0.0f) {
            memcpy(x, den, c->n * sizeof *x);
            continue;
        }
        TRY(draw(c, nz));
        float dt = sdn - s[i];
        for (size_t j = 0; j < c->n; j++) {
            float d = (x[j] - den[j]) / s[i];
            x[j] = (x[j] + d * dt) + nz[j] * 1.0f * sup;
        }
    }
    return 0;
}

/* sample_heun: Euler to sigma_{i+1}, then the trapezoid of the two slopes. */
static int s_heun(sctx_t *c, float *x, const float *s, size_t ns)
{
    float *den = c->buf[0], *d = c->buf[1], *x2 = c->buf[2];
    for (size_t i = 0; i + 1 < ns; i++) {
        TRY(eval_step(c, i, x, s[i], den));
        float dt = s[i + 1] - s[i];
        for (size_t j = 0; j < c->n; j++) {
            d[j] = (x[j] - den[j]) / s[i];
            x2[j] = x[j] + d[j] * dt;
        }
        if (s[i + 1] == 0.0f) {
            memcpy(x, x2, c->n * sizeof *x);
            continue;
        }
        TRY(model(c, x2, s[i + 1], den));
        for (size_t j = 0; j < c->n; j++) {
            float d2 = (x2[j] - den[j]) / s[i + 1];
            float dp = (d[j] + d2) / 2.0f;
            x[j] = x[j] + dp * dt;
        }
    }
    return 0;
}

/* torch.lerp(a, b, 0.5): a weight of 0.5 is not "small", so b - (b - a) * (1 - w). */
static float lerp_half(float a, float b)
{
    return b - (b - a) * (1.0f - 0.5f);
}

/* One DPM-Solver-2 move from sigma to target through their log-space midpoint. */
static int dpm2_move(sctx_t *c, float *x, float sigma, float target, const float *d)
{
    float *x2 = c->buf[2], *den2 = c->buf[3];
    float mid = expf(lerp_half(sd_logf(sigma), sd_logf(target)));
    float dt1 = mid - sigma, dt2 = target - sigma;
    for (size_t j = 0; j < c->n; j++)
        x2[j] = x[j] + d[j] * dt1;
    TRY(model(c, x2, mid, den2));
    for (size_t j = 0; j < c->n; j++) {
        float d2 = (x2[j] - den2[j]) / mid;
        x[j] = x[j] + d2 * dt2;
    }
    return 0;
}

/* sample_dpm_2 and sample_dpm_2_ancestral. */
static int dpm2_run(sctx_t *c, float *x, const float *s, size_t ns, int ancestral)
{
    float *den = c->buf[0], *d = c->buf[1], *nz = c->buf[4];
    for (size_t i = 0; i + 1 < ns; i++) {
        TRY(eval_step(c, i, x, s[i], den));
        float target = s[i + 1], sup = 0.0f;
        if (ancestral)
            sd_ancestral_step(s[i], s[i + 1], &target, &sup);
        for (size_t j = 0; j < c->n; j++)
            d[j] = (x[j] - den[j]) / s[i];
        if (target == 0.0f) {
            float dt = target - s[i];
            for (size_t j = 0; j < c->n; j++)
                x[j] = x[j] + d[j] * dt;
            continue;
        }
        TRY(dpm2_move(c, x, s[i], target, d));
        if (ancestral)
            TRY(add_noise(c, x, nz, sup));
    }
    return 0;
}

static int s_dpm_2(sctx_t *c, float *x, const float *s, size_t ns)
{
    return dpm2_run(c, x, s, ns, 0);
}

static int s_dpm_2_ancestral(sctx_t *c, float *x, const float *s, size_t ns)
{
    return dpm2_run(c, x, s, ns, 1);
}

/* The 21-point Gauss-Kronrod rule of QUADPACK's qk21: nodes (the odd entries are the
 * 10-point Gauss nodes) and Kronrod weights, centre last. */
static const double gk_x[11] = {
    0.995657163025808080735527280689003, 0.973906528517171720077964012084452,
    0.930157491355708226001207180059508, 0.865063366688984510732096688423493,
    0.780817726586416897063717578345042, 0.679409568299024406234327365114874,
    0.562757134668604683339000099272694, 0.433395394129247190799265943165784,
    0.294392862701460198131126603103866, 0.148874338981631210884826001129720, 0.0};
static const double gk_w[11] = {
    0.011694638867371874278064396062192, 0.032558162307964727478818972459390,
    0.054755896574351996031381300244580, 0.075039674810919952767043140916190,
    0.093125454583697605535065465083366, 0.109387158802297641899210590325805,
    0.123491976262065851077705544243520, 0.134709217311473325928054001771707,
    0.142775938577060080797094273138717, 0.147739104901338491374841515972068,
    0.149445554002916905664936468389821};

/* The Lagrange basis polynomial of node i - j through nodes i .. i-order+1, evaluated as
 * ComfyUI's integrand runs under NumPy 2: the sigmas are numpy float32, so each factor is
 * float32 arithmetic with tau rounded to float32. */
static double lms_basis(int order, const float *t, size_t i, int j, double tau)
{
    float prod = 1.0f;
    for (int k = 0; k < order; k++) {
        if (k != j)
            prod = prod * (((float)tau - t[i - k]) / (t[i - j] - t[i - k]));
    }
    return prod;
}

/* linear_multistep_coeff: scipy's quad of the basis polynomial over [t_i, t_i+1]. For a
 * polynomial quad accepts its first qk21 estimate, so this is that sum, in its order. */
static double lms_coeff(int order, const float *t, size_t i, int j)
{
    double centr = 0.5 * ((double)t[i] + t[i + 1]), hlgth = 0.5 * ((double)t[i + 1] - t[i]);
    double resk = gk_w[10] * lms_basis(order, t, i, j, centr);
    for (int pass = 0; pass < 2; pass++) {   /* Gauss nodes first, then the others */
        for (int q = 1 - pass; q < 10; q += 2) {
            double absc = hlgth * gk_x[q];
            double fsum = lms_basis(order, t, i, j, centr - absc) +
                          lms_basis(order, t, i, j, centr + absc);
            resk = resk + gk_w[q] * fsum;
        }
    }
    return resk * hlgth;
}

/* sample_lms, order 4: the last four slopes combined with Adams-type coefficients. */
static int s_lms(sctx_t *c, float *x, const float *s, size_t ns)
{
    float *den = c->buf[0], **ds = &c->buf[1];   /* ring of 4 slopes */
    for (size_t i = 0; i + 1 < ns; i++) {
        TRY(eval_step(c, i, x, s[i], den));
        float *d = ds[i % 4];
        for (size_t j = 0; j < c->n; j++)
            d[j] = (x[j] - den[j]) / s[i];
        if (s[i + 1] == 0.0f) {
            memcpy(x, den, c->n * sizeof *x);
            continue;
        }
        int order = i + 1 < 4 ? (int)i + 1 : 4;
        float co[4];
        for (int j = 0; j < order; j++)
            co[j] = (float)lms_coeff(order, s, i, j);
        for (size_t e = 0; e < c->n; e++) {
            float acc = 0.0f + co[0] * ds[i % 4][e];
            for (int j = 1; j < order; j++)
                acc = acc + co[j] * ds[(i - (size_t)j) % 4][e];
            x[e] = x[e] + acc;
        }
    }
    return 0;
}

/* sample_dpmpp_2s_ancestral (eta 1): a DPM-Solver++(2S) move to sigma_down, then noise. */
static int s_dpmpp_2s_ancestral(sctx_t *c, float *x, const float *s, size_t ns)
{
    float *den = c->buf[0], *x2 = c->buf[1], *nz = c->buf[2];
    for (size_t i = 0; i + 1 < ns; i++) {
        TRY(eval_step(c, i, x, s[i], den));
        float sdn, sup;
        sd_ancestral_step(s[i], s[i + 1], &sdn, &sup);
        if (sdn == 0.0f) {
            float dt = sdn - s[i];
            for (size_t j = 0; j < c->n; j++) {
                float d = (x[j] - den[j]) / s[i];
                x[j] = x[j] + d * dt;
            }
        } else {
            float t = -sd_logf(s[i]), tn = -sd_logf(sdn);
            float h = tn - t, sm = t + 0.5f * h;
            float sig_s = expf(-sm), sig_t = expf(-t);
            float a1 = sig_s / sig_t, b1 = sd_expm1f(-h * 0.5f);
            for (size_t j = 0; j < c->n; j++)
                x2[j] = a1 * x[j] - b1 * den[j];
            TRY(model(c, x2, sig_s, den));
            float a2 = expf(-tn) / sig_t, b2 = sd_expm1f(-h);
            for (size_t j = 0; j < c->n; j++)
                x[j] = a2 * x[j] - b2 * den[j];
        }
        if (s[i + 1] > 0.0f)
            TRY(add_noise(c, x, nz, sup));
    }
    return 0;
}

/* x = (alpha_to / alpha_s) exp(-h_) x - alpha_to expm1(-h_) den + alpha_to noise su, with
 * h_ from the ancestral split of exp(-l_s) -> exp(-l_to): one half of sample_dpmpp_sde. */
static int sde_half(sctx_t *c, const float *x, float *out, const float *den, float l_s,
                    float l_to, float alpha_s, float alpha_to, float *nz)
{
    float sdn, sup;
    sd_ancestral_step(expf(-l_s), expf(-l_to), &sdn, &sup);
    float h_ = -sd_logf(sdn) - l_s;
    float c1 = alpha_to / alpha_s * expf(-h_), c2 = alpha_to * sd_expm1f(-h_);
    for (size_t j = 0; j < c->n; j++)
        out[j] = c1 * x[j] - c2 * den[j];
    TRY(draw(c, nz));
    for (size_t j = 0; j < c->n; j++)
        out[j] = out[j] + alpha_to * nz[j] * 1.0f * sup;
    return 0;
}

/* sample_dpmpp_sde (eta 1, r 1/2) with callback noise in place of the BrownianTree. */
static int s_dpmpp_sde(sctx_t *c, float *x, const float *s, size_t ns)
{
    float *den = c->buf[0], *x2 = c->buf[1], *den2 = c->buf[2], *nz = c->buf[3];
    const float fac = 1.0f;   /* 1 / (2 r) */
    for (size_t i = 0; i + 1 < ns; i++) {
        TRY(eval_step(c, i, x, s[i], den));
        if (s[i + 1] == 0.0f) {
            memcpy(x, den, c->n * sizeof *x);
            continue;
        }
        float ls = -sd_logf(s[i]), lt = -sd_logf(s[i + 1]);
        float h = lt - ls, ls1 = ls + 0.5f * h;
        float sig_s1 = expf(-ls1);
        float alpha_s = s[i] * expf(ls), alpha_s1 = sig_s1 * expf(ls1);
        float alpha_t = s[i + 1] * expf(lt);
        TRY(sde_half(c, x, x2, den, ls, ls1, alpha_s, alpha_s1, nz));
        TRY(model(c, x2, sig_s1, den2));
        for (size_t j = 0; j < c->n; j++)
            den2[j] = (1.0f - fac) * den[j] + fac * den2[j];
        TRY(sde_half(c, x, x, den2, ls, lt, alpha_s, alpha_t, nz));
    }
    return 0;
}

/* sample_dpmpp_2m: DPM-Solver++(2M), second order from the second step on. */
static int s_dpmpp_2m(sctx_t *c, float *x, const float *s, size_t ns)
{
    float *den = c->buf[0], *old = c->buf[1];
    for (size_t i = 0; i + 1 < ns; i++) {
        TRY(eval_step(c, i, x, s[i], den));
        float t = -sd_logf(s[i]), tn = -sd_logf(s[i + 1]);
        float h = tn - t;
        float a = expf(-tn) / expf(-t), b = sd_expm1f(-h);
        if (i == 0 || s[i + 1] == 0.0f) {
            for (size_t j = 0; j < c->n; j++)
                x[j] = a * x[j] - b * den[j];
        } else {
            float h_last = t - -sd_logf(s[i - 1]);
            float r = h_last / h;
            float k = 1.0f / (2.0f * r) * 1.0f, w = 1.0f + k;
            for (size_t j = 0; j < c->n; j++) {
                float dd = w * den[j] - k * old[j];
                x[j] = a * x[j] - b * dd;
            }
        }
        float *tmp = old;   /* old_denoised = denoised */
        old = den;
        den = tmp;
    }
    return 0;
}

/* The shared first part of a 2M/3M SDE step: the exponential-integrator move and the
 * coefficients later terms need. */
typedef struct sde_step {
    float h, h_eta, alpha_t, neg_expm1;   /* neg_expm1 = -expm1(-h_eta) */
} sde_step_t;

static sde_step_t sde_first(float *x, const float *den, size_t n, float s0, float s1)
{
    sde_step_t st;
    float ls = -sd_logf(s0), lt = -sd_logf(s1);
    st.h = lt - ls;
    st.h_eta = st.h * 2.0f;   /* eta + 1 */
    st.alpha_t = s1 * expf(lt);
    st.neg_expm1 = -sd_expm1f(-st.h_eta);
    float c1 = s1 / s0 * expf(-st.h * 1.0f), c2 = st.alpha_t * st.neg_expm1;
    for (size_t j = 0; j < n; j++)
        x[j] = c1 * x[j] + c2 * den[j];
    return st;
}

/* The SDE noise term: x + noise * sigma_next * sqrt(-expm1(-2 h eta)) * s_noise. */
static int sde_noise(sctx_t *c, float *x, float *nz, float s1, float h)
{
    TRY(draw(c, nz));
    float q = sqrtf(-sd_expm1f(-2.0f * h * 1.0f));
    for (size_t j = 0; j < c->n; j++)
        x[j] = x[j] + nz[j] * s1 * q * 1.0f;
    return 0;
}

/* sample_dpmpp_2m_sde (eta 1) with the midpoint or heun correction. */
static int dpmpp_2m_sde_run(sctx_t *c, float *x, const float *s, size_t ns, int heun)
{
    float *den = c->buf[0], *old = c->buf[1], *nz = c->buf[2];
    float h_last = 0.0f;
    for (size_t i = 0; i + 1 < ns; i++) {
        TRY(eval_step(c, i, x, s[i], den));
        if (s[i + 1] == 0.0f) {
            memcpy(x, den, c->n * sizeof *x);
        } else {
            sde_step_t st = sde_first(x, den, c->n, s[i], s[i + 1]);
            if (i > 0) {
                float r = h_last / st.h, inv_r = 1.0f / r * 1.0f, k;
                if (heun)
                    k = st.alpha_t * (st.neg_expm1 / -st.h_eta + 1.0f) * inv_r;
                else
                    k = 0.5f * st.alpha_t * st.neg_expm1 * inv_r;
                for (size_t j = 0; j < c->n; j++)
                    x[j] = x[j] + k * (den[j] - old[j]);
            }
            TRY(sde_noise(c, x, nz, s[i + 1], st.h));
            h_last = st.h;
        }
        float *tmp = old;
        old = den;
        den = tmp;
    }
    return 0;
}

static int s_dpmpp_2m_sde(sctx_t *c, float *x, const float *s, size_t ns)
{
    return dpmpp_2m_sde_run(c, x, s, ns, 0);
}

static int s_dpmpp_2m_sde_heun(sctx_t *c, float *x, const float *s, size_t ns)
{
    return dpmpp_2m_sde_run(c, x, s, ns, 1);
}

/* The 3M correction with the two previous predictions d_1, d_2 and step sizes h_1, h_2. */
static void dpmpp_3m_correct(float *x, const float *den, const float *d_1, const float *d_2,
                             size_t n, sde_step_t st, float h_1, float h_2)
{
    float r0 = h_1 / st.h, r1 = h_2 / st.h, rs = r0 + r1;
    float phi_2 = sd_expm1f(-st.h_eta) / st.h_eta + 1.0f;
    float phi_3 = phi_2 / st.h_eta - 0.5f;
    float a2 = st.alpha_t * phi_2, a3 = st.alpha_t * phi_3;
    for (size_t j = 0; j < n; j++) {
        float d1_0 = (den[j] - d_1[j]) / r0, d1_1 = (d_1[j] - d_2[j]) / r1;
        float d1 = d1_0 + (d1_0 - d1_1) * r0 / rs;
        float d2 = (d1_0 - d1_1) / rs;
        x[j] = x[j] + a2 * d1 - a3 * d2;
    }
}

/* sample_dpmpp_3m_sde (eta 1): first, second, then third order. */
static int s_dpmpp_3m_sde(sctx_t *c, float *x, const float *s, size_t ns)
{
    float *den = c->buf[0], *d_1 = c->buf[1], *d_2 = c->buf[2], *nz = c->buf[3];
    float h_1 = 0.0f, h_2 = 0.0f, h = 0.0f;
    for (size_t i = 0; i + 1 < ns; i++) {
        TRY(eval_step(c, i, x, s[i], den));
        if (s[i + 1] == 0.0f) {
            memcpy(x, den, c->n * sizeof *x);
        } else {
            sde_step_t st = sde_first(x, den, c->n, s[i], s[i + 1]);
            h = st.h;
            if (i >= 2) {
                dpmpp_3m_correct(x, den, d_1, d_2, c->n, st, h_1, h_2);
            } else if (i == 1) {
                float r = h_1 / st.h;
                float phi_2 = sd_expm1f(-st.h_eta) / st.h_eta + 1.0f, a2 = st.alpha_t * phi_2;
                for (size_t j = 0; j < c->n; j++)
                    x[j] = x[j] + a2 * ((den[j] - d_1[j]) / r);
            }
            TRY(sde_noise(c, x, nz, s[i + 1], st.h));
        }
        float *tmp = d_2;   /* denoised_1, denoised_2 = denoised, denoised_1 */
        d_2 = d_1;
        d_1 = den;
        den = tmp;
        h_2 = h_1;
        h_1 = h;
    }
    return 0;
}

/* sample_ddpm: the DDPM posterior step in the variance-preserving space. */
static int s_ddpm(sctx_t *c, float *x, const float *s, size_t ns)
{
    float *den = c->buf[0], *nz = c->buf[1];
    for (size_t i = 0; i + 1 < ns; i++) {
        TRY(eval_step(c, i, x, s[i], den));
        float sg = s[i], sp = s[i + 1];
        float scale_in = sqrtf(1.0f + sg * sg);
        float acp = 1.0f / (sg * sg + 1.0f) * 1.0f, acp_prev = 1.0f / (sp * sp + 1.0f) * 1.0f;
        float alpha = acp / acp_prev;
        float c_mu = sqrtf(1.0f / alpha * 1.0f), one_m_alpha = 1.0f - alpha;
        float root = sqrtf(1.0f - acp);
        for (size_t j = 0; j < c->n; j++) {
            float x_in = x[j] / scale_in, eps = (x[j] - den[j]) / sg;
            x[j] = c_mu * (x_in - one_m_alpha * eps / root);
        }
        if (sp > 0.0f) {
            float k = sqrtf(one_m_alpha * (1.0f - acp_prev) / (1.0f - acp));
            TRY(draw(c, nz));
            for (size_t j = 0; j < c->n; j++)
                x[j] = x[j] + k * nz[j];
        }
        if (sp != 0.0f) {
            float scale_out = sqrtf(1.0f + sp * sp);
            for (size_t j = 0; j < c->n; j++)
                x[j] = x[j] * scale_out;
        }
    }
    return 0;
}

/* sample_lcm: jump to the prediction, then re-noise to the next sigma. */
static int s_lcm(sctx_t *c, float *x, const float *s, size_t ns)
{
    float *nz = c->buf[0];
    for (size_t i = 0; i + 1 < ns; i++) {
        /* The prediction lands in nz so that x stays intact for the step callback. */
        TRY(eval_step(c, i, x, s[i], nz));
        memcpy(x, nz, c->n * sizeof *x);
        if (s[i + 1] > 0.0f) {
            TRY(draw(c, nz));
            for (size_t j = 0; j < c->n; j++)
                x[j] = nz[j] * s[i + 1] + x[j];
        }
    }
    return 0;
}

typedef struct sampler_def {
    const char *name;
    sampler_fn fn;
    unsigned flags;
    int nbuf;   /* scratch buffers of n floats */
} sampler_def_t;

#define NZ SD_SAMPLER_NOISE
#define BT (SD_SAMPLER_NOISE | SD_SAMPLER_APPROX_NOISE)
#define TWO SD_SAMPLER_TWO_EVALS

/* In ComfyUI's combo order (KSAMPLER_NAMES, then ddim). */
static const sampler_def_t samplers[] = {
    {"euler", s_euler, 0, 1},
    {"euler_ancestral", s_euler_ancestral, NZ, 2},
    {"heun", s_heun, TWO, 3},
    {"dpm_2", s_dpm_2, TWO, 4},
    {"dpm_2_ancestral", s_dpm_2_ancestral, NZ | TWO, 5},
    {"lms", s_lms, 0, 5},
    {"dpmpp_2s_ancestral", s_dpmpp_2s_ancestral, NZ | TWO, 3},
    {"dpmpp_sde", s_dpmpp_sde, BT | TWO, 4},
    {"dpmpp_sde_gpu", s_dpmpp_sde, BT | TWO, 4},
    {"dpmpp_2m", s_dpmpp_2m, 0, 2},
    {"dpmpp_2m_sde", s_dpmpp_2m_sde, BT, 3},
    {"dpmpp_2m_sde_gpu", s_dpmpp_2m_sde, BT, 3},
    {"dpmpp_2m_sde_heun", s_dpmpp_2m_sde_heun, BT, 3},
    {"dpmpp_2m_sde_heun_gpu", s_dpmpp_2m_sde_heun, BT, 3},
    {"dpmpp_3m_sde", s_dpmpp_3m_sde, BT, 4},
    {"dpmpp_3m_sde_gpu", s_dpmpp_3m_sde, BT, 4},
    {"ddpm", s_ddpm, NZ, 2},
    {"lcm", s_lcm, NZ, 1},
    {"ddim", s_euler, 0, 1},
};

#define N_SAMPLERS (sizeof samplers / sizeof samplers[0])

const char *const sd_sampler_names[] = {
    "euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms",
    "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_sde",
    "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde",
    "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ddim", NULL,
};

static const sampler_def_t *find_sampler(const char *name)
{
    for (size_t i = 0; name && i < N_SAMPLERS; i++) {
        if (strcmp(samplers[i].name, name) == 0)
            return &samplers[i];
    }
    return NULL;
}

int sd_sampler_known(const char *name)
{
    return find_sampler(name) != NULL;
}

unsigned sd_sampler_flags(const char *name)
{
    const sampler_def_t *def = find_sampler(name);
    return def ? def->flags : 0u;
}

int sd_sample(const char *sampler_name, sd_denoise_fn denoise, sd_noise_fn noise,
              sd_step_fn step, void *ud, float *x, size_t n, const float *sigmas,
              size_t n_sigmas, char *err, size_t errlen)
{
    const sampler_def_t *def = find_sampler(sampler_name);
    if (!def)
        return sd_errf(err, errlen, KILN_EINVAL, "invalid sampler '%s'",
                    sampler_name ? sampler_name : "(null)");
    if (!denoise || !x || n == 0 || (!sigmas && n_sigmas > 0))
        return sd_errf(err, errlen, KILN_EINVAL, "sampler %s: missing model, state or sigmas",
                    def->name);
    if ((def->flags & SD_SAMPLER_NOISE) && !noise)
        return sd_errf(err, errlen, KILN_EINVAL, "sampler %s needs a noise source", def->name);
    if (n_sigmas > (size_t)INT_MAX)
        return sd_errf(err, errlen, KILN_EINVAL, "sampler %s: %zu sigmas", def->name, n_sigmas);
    if (n_sigmas < 2)
        return 0;
    if (n > ((size_t)-1) / sizeof(float) / MAX_BUFS)
        return sd_errf(err, errlen, KILN_ELIMIT, "sampler %s: state of %zu floats", def->name, n);
    sctx_t c = {denoise, noise, step, ud, n, (int)(n_sigmas - 1), {NULL}};
    float *block = malloc((size_t)def->nbuf * n * sizeof *block);
    if (!block)
        return sd_errf(err, errlen, KILN_ENOMEM, "sampler %s: out of memory", def->name);
    for (int b = 0; b < def->nbuf; b++)
        c.buf[b] = block + (size_t)b * n;
    int rc = def->fn(&c, x, sigmas, n_sigmas);
    free(block);
    if (rc != 0)
        sd_errf(err, errlen, rc, "sampler %s stopped at a callback (%d)", def->name, rc);
    return rc;
}
