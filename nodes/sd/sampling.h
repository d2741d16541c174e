/* k-diffusion samplers as ComfyUI's KSampler runs them (comfy/k_diffusion/sampling.py), on a
 * flat float32 state with the model behind a callback. The caller owns everything
 * model-shaped: the denoise callback wraps the UNet and CFG (it returns the CFG-combined
 * denoised prediction for a state x at noise level sigma), the noise callback draws the next
 * torch.randn tensor from the seeded CPU generator, and the step callback reports progress
 * and can stop the run.
 *
 *   sd_ksampler_sigmas(sampler, scheduler, &ms, steps, denoise, sig, cap, &ns, err, el);
 *   sd_latent_process_in(latent, x, n);                   // sampler space
 *   sd_noise_scaling(&ms, sig[0], noise, x, x, n);        // first state
 *   rc = sd_sample(sampler, unet_cfg, randn, progress, &ctx, x, n, sig, ns, err, el);
 *   sd_latent_process_out(x, latent_out, n);
 *
 * Exactness: every per-element update and every scalar coefficient is computed in float32 in
 * the order torch evaluates ComfyUI's tensor expressions (expm1 as torch's SLEEF kernel, the
 * lms coefficients as scipy's quad integrates NumPy-2 float32 polynomials), so with the same
 * denoised values and noise draws the states match ComfyUI's bit for bit: checked against
 * torch 2.11 (x86, AVX-512) for every sampler here, and against the sd15-tiny fixtures. The
 * remaining gap is torch's x86 exp, log and sqrt of the scalar coefficients (MKL), which can
 * round the last bit differently from libm now and then (one ddpm step in 64 elements x 8
 * steps in that check; about 1e-7 relative).
 *
 * Not reproducible: dpmpp_sde, dpmpp_2m_sde, dpmpp_2m_sde_heun, dpmpp_3m_sde and their _gpu
 * twins (SD_SAMPLER_APPROX_NOISE) draw their noise in ComfyUI from a torchsde BrownianTree;
 * here they take plain N(0, 1) draws from the noise callback instead, one per noise term (the
 * same distribution at each step, different numbers), so their images differ from ComfyUI's
 * for the same seed while the deterministic part of each step is exact.
 *
 * Ancestral noise: ComfyUI 0.3.64 draws it (default_noise_sampler) from a CPU generator
 * seeded with the KSampler seed, i.e. the first draw equals the initial noise; one draw of
 * the whole state per noise callback call. (Later ComfyUI versions seed it with seed + 1.)
 *
 * Threads: sd_sample keeps no global state; concurrent calls with separate buffers are safe.
 * The callbacks run on the calling thread. */
#ifndef KILN_SD_SAMPLING_H
#define KILN_SD_SAMPLING_H

#include <stddef.h>

/* The model: writes to denoised[0..n) the denoised prediction for state x at noise level
 * sigma (ComfyUI's model(x, sigma * s_in), i.e. UNet + CFG). x is read-only and must not be
 * kept. Returns 0, or a negative KILN_E* code that stops sampling and is returned by
 * sd_sample (a positive value counts as KILN_EINTERRUPTED). */
typedef int (*sd_denoise_fn)(void *ud, const float *x, float sigma, float *denoised, size_t n);

/* The next standard-normal draw of n floats (torch.randn of the state's shape on the
 * sampling generator). Same return convention. */
typedef int (*sd_noise_fn)(void *ud, float *out, size_t n);

/* Called once per step after that step's first model evaluation, as k-diffusion's callback:
 * step counts from 0, total = n_sigmas - 1, sigma = sigmas[step], x = the state at the start
 * of the step, denoised = the model's prediction there (both read-only, valid during the
 * call). Returns 0 to go on; non-zero stops sampling: a negative code is returned as is, a
 * positive value as KILN_EINTERRUPTED. */
typedef int (*sd_step_fn)(void *ud, int step, int total, float sigma, const float *x,
                          const float *denoised, size_t n);

/* Sampler properties (sd_sampler_flags). */
enum {
    SD_SAMPLER_NOISE = 1 << 0,        /* calls the noise callback */
    SD_SAMPLER_APPROX_NOISE = 1 << 1, /* ComfyUI uses BrownianTree noise here (see above) */
    SD_SAMPLER_TWO_EVALS = 1 << 2     /* may call the model twice per step */
};

/* The sampler names implemented here, in ComfyUI's combo order, NULL-terminated:
 * euler, euler_ancestral, heun, dpm_2, dpm_2_ancestral, lms, dpmpp_2s_ancestral, dpmpp_sde,
 * dpmpp_sde_gpu, dpmpp_2m, dpmpp_2m_sde, dpmpp_2m_sde_gpu, dpmpp_2m_sde_heun,
 * dpmpp_2m_sde_heun_gpu, dpmpp_3m_sde, dpmpp_3m_sde_gpu, ddpm, lcm, ddim.
 * ddim is ComfyUI's: the euler step (whatever the scheduler); its only other difference, a
 * fresh seed + 1 noise for inpainting masks, is the caller's business. */
extern const char *const sd_sampler_names[];

/* Whether name is one of sd_sampler_names. */
int sd_sampler_known(const char *name);

/* SD_SAMPLER_* flags of a known sampler, 0 for an unknown name. */
unsigned sd_sampler_flags(const char *name);

/* Runs sampler sampler_name over sigmas[0..n_sigmas) on the state x[0..n) in place: on entry
 * x is the first state (sd_noise_scaling's output), on success it holds the final sample in
 * sampler space (apply sd_latent_process_out). With n_sigmas < 2 nothing runs and x is
 * unchanged. noise may be NULL for samplers without SD_SAMPLER_NOISE; step may be NULL.
 * Allocates scratch of up to 5 n floats (freed before returning).
 * Returns 0; KILN_EINVAL (unknown sampler, NULL x/denoise/sigmas, n == 0, missing noise
 * callback; err says which); KILN_ENOMEM; or a callback's code (see above), in which case
 * x holds a partly updated state. err (may be NULL) gets a message on failure. */
int sd_sample(const char *sampler_name, sd_denoise_fn denoise, sd_noise_fn noise,
              sd_step_fn step, void *ud, float *x, size_t n, const float *sigmas,
              size_t n_sigmas, char *err, size_t errlen);

/* The ancestral split of a step from sigma_from to sigma_to (k-diffusion get_ancestral_step,
 * eta 1, float32): *sigma_up = min(sigma_to, sqrt(to^2 (from^2 - to^2) / from^2)),
 * *sigma_down = sqrt(to^2 - up^2). */
void sd_ancestral_step(float sigma_from, float sigma_to, float *sigma_down, float *sigma_up);

#endif
