/* ComfyUI's ModelSamplingDiscrete for eps-prediction models (Stable Diffusion 1.x): the
 * 1000-entry sigma table built from "linear" betas, the sigma <-> timestep maps, the noise
 * scaling applied to the first sampler state and the SD1 latent scale.
 *
 *   sd_model_sampling_t ms;
 *   sd_model_sampling_init_sd1(&ms);                         // betas 0.00085 .. 0.012
 *   float t = sd_model_sampling_timestep(&ms, 14.6146f);     // 999
 *   sd_latent_process_in(latent, scaled, n);                 // latent * 0.18215
 *   sd_noise_scaling(&ms, sigmas[0], noise, scaled, x, n);   // the sampler's first x
 *
 * Every value is computed the way ComfyUI computes it on the CPU: the table in float64 and
 * then rounded to float32, the maps in float32, so that the tables match bit for bit.
 * Threads: an initialised table is read-only; any number of threads may share it. */
#ifndef KILN_SD_MODEL_SAMPLING_H
#define KILN_SD_MODEL_SAMPLING_H

#include <stddef.h>

#define SD_NUM_TIMESTEPS 1000

/* SD1.x's latent scale factor (latent_format.SD15.scale_factor). */
#define SD_SD1_LATENT_SCALE 0.18215f

/* The discrete schedule: sigmas ascending with the timestep (sigmas[0] is the smallest). */
typedef struct sd_model_sampling {
    float sigmas[SD_NUM_TIMESTEPS];     /* sqrt((1 - alphas_cumprod) / alphas_cumprod) */
    float log_sigmas[SD_NUM_TIMESTEPS]; /* log computed in float64, then rounded */
    float sigma_min;                    /* sigmas[0] */
    float sigma_max;                    /* sigmas[SD_NUM_TIMESTEPS - 1] */
} sd_model_sampling_t;

/* Fills *ms from betas = linspace(sqrt(linear_start), sqrt(linear_end), 1000)^2 (float64),
 * alphas_cumprod = cumprod(1 - betas). Returns 0, or KILN_EINVAL when ms is NULL or the
 * betas would not lie in (0, 1) (start and end must satisfy 0 < start <= end < 1). */
int sd_model_sampling_init(sd_model_sampling_t *ms, double linear_start, double linear_end);

/* sd_model_sampling_init with SD1.x's linear_start 0.00085 and linear_end 0.012. */
void sd_model_sampling_init_sd1(sd_model_sampling_t *ms);

/* ModelSamplingDiscrete.timestep: the index of the table entry whose log-sigma is nearest
 * to log(sigma) (the first one on a tie), as a float. */
float sd_model_sampling_timestep(const sd_model_sampling_t *ms, float sigma);

/* ModelSamplingDiscrete.sigma: t is clamped to [0, 999] and the log-sigma interpolated
 * linearly between floor(t) and ceil(t), all in float32. */
float sd_model_sampling_sigma(const sd_model_sampling_t *ms, float t);

/* ModelSamplingDiscrete.percent_to_sigma: 999999999.9 for percent <= 0, 0 for percent >= 1,
 * else sigma((1 - percent) * 999). */
double sd_model_sampling_percent_to_sigma(const sd_model_sampling_t *ms, double percent);

/* Whether a schedule starting at sigma0 counts as starting from pure noise: sigma0 within
 * a relative 1e-5 of sigma_max, or above it (KSampler's max_denoise). */
int sd_model_sampling_max_denoise(const sd_model_sampling_t *ms, float sigma0);

/* The sampler's first state: x[i] = noise[i] * s + latent_in[i], with
 * s = sqrt(1 + sigma0^2) when sd_model_sampling_max_denoise holds, else s = sigma0 (EPS
 * noise_scaling, in float32). latent_in is the already scaled latent
 * (sd_latent_process_in) or NULL for zeros. x may alias noise or latent_in. */
void sd_noise_scaling(const sd_model_sampling_t *ms, float sigma0, const float *noise,
                      const float *latent_in, float *x, size_t n);

/* torch.log on a float32 CPU tensor: rounded from a double-precision log. torch's x86 build
 * (MKL) is correctly rounded in nearly all cases, closer to this than glibc's logf. (Its exp
 * differs from every libm in the last bit for about 1.6% of arguments; expf is used as is.) */
float sd_logf(float x);

/* torch.expm1 on a float32 CPU tensor: SLEEF's expm1f (1-ulp, double-float arithmetic with
 * fused multiply-adds, as torch's vectorised kernel runs it), which is not always glibc's
 * expm1f; the DPM-Solver++ samplers need the same last bit as ComfyUI. */
float sd_expm1f(float a);

/* process_latent_in / process_latent_out for SD1.x: out[i] = latent[i] * 0.18215 and
 * out[i] = x[i] / 0.18215 in float32. out may alias the input. */
void sd_latent_process_in(const float *latent, float *out, size_t n);
void sd_latent_process_out(const float *x, float *out, size_t n);

#endif
