/* ComfyUI's sigma schedules (comfy.samplers.calculate_sigmas) and KSampler's step
 * arithmetic around them: denoise < 1 (the tail of a longer schedule), the samplers that
 * discard the penultimate sigma, and KSamplerAdvanced's start/end steps.
 *
 *   float sig[SD_SCHEDULE_CAP(steps)];
 *   size_t n;
 *   char err[128];
 *   if (sd_ksampler_sigmas("euler", "normal", &ms, steps, denoise, sig,
 *                          SD_SCHEDULE_CAP(steps), &n, err, sizeof err) != 0) ...
 *   sd_sigmas_slice(sig, &n, start_step, last_step, force_full_denoise);
 *   if (n == 0) ... nothing to sample: the output is the input latent, unchanged
 *
 * Values are float32 computed as torch computes them on the CPU (linspace with its fused
 * multiply-adds, float32 timestep maps, float64 Python arithmetic where ComfyUI uses Python
 * floats). The sd15-tiny schedules match bit for bit. Against torch 2.11 (x86) over 2..120
 * steps, about 0.7% of normal, sgm_uniform, exponential and kl_optimal values (and of karras
 * values from 37 steps on) differ in the last bit: torch's exp/tan there come from MKL, and
 * its karras power from SLEEF's vector powf for the first 32 * floor(steps / 32) entries.
 * Threads: the functions keep no state. */
#ifndef KILN_SD_SCHEDULES_H
#define KILN_SD_SCHEDULES_H

#include <stddef.h>

#include "model_sampling.h"

/* Enough room for any schedule of `steps` steps: ddim_uniform may give up to 1000 sigmas
 * whatever the step count, every other scheduler at most steps + 1. */
#define SD_SCHEDULE_CAP(steps) ((size_t)(steps) + 1001u)

/* The scheduler names implemented here, in ComfyUI's combo order, NULL-terminated. */
extern const char *const sd_scheduler_names[];

/* Whether name is one of sd_scheduler_names. */
int sd_scheduler_known(const char *name);

/* calculate_sigmas(model_sampling, scheduler, steps): writes the schedule, ending in 0, to
 * out (room for cap floats) and its length to *n_out. Lengths: steps + 1 for most
 * schedulers; ddim_uniform gives ceil(999 / (1000 / steps)) + 1, which can be more (steps 6:
 * 8 sigmas). Errors: KILN_EINVAL for an unknown scheduler, steps outside 1..2^24, or NULL
 * pointers; KILN_ERANGE when cap is too small; KILN_ENOMEM. err (may be NULL) gets a
 * message; on error *n_out is 0. */
int sd_schedule_sigmas(const char *scheduler, const sd_model_sampling_t *ms, int steps,
                       float *out, size_t cap, size_t *n_out, char *err, size_t errlen);

/* KSampler.set_steps: the sigmas a KSampler node with this sampler, scheduler, step count and
 * denoise samples with. denoise > 0.9999: the full schedule; denoise <= 0: no sigmas
 * (*n_out = 0: the node returns its latent unchanged); otherwise the last steps + 1 sigmas of
 * an int(steps / denoise)-step schedule. Samplers dpm_2, dpm_2_ancestral, uni_pc and
 * uni_pc_bh2 compute one step more and drop the penultimate sigma, as ComfyUI does. sampler
 * may be any name (only those four change anything). The longer schedule is built in scratch
 * memory; out needs at most SD_SCHEDULE_CAP(steps) floats. Errors as sd_schedule_sigmas, plus
 * KILN_ELIMIT when int(steps / denoise) exceeds 2^24 steps and KILN_ENOMEM. */
int sd_ksampler_sigmas(const char *sampler, const char *scheduler,
                       const sd_model_sampling_t *ms, int steps, double denoise, float *out,
                       size_t cap, size_t *n_out, char *err, size_t errlen);

/* scipy.stats.beta.ppf(q, a, b): the x with I_x(a, b) = q (regularised incomplete beta), to
 * about 1e-16, by bisection; 0 for q <= 0, 1 for q >= 1, and 0.5 for a == b, q == 0.5 (the
 * beta scheduler's even step counts land there, and 0.5 * 999 must round to 500 as scipy's
 * 0.5000000000000001 does, not fall below 499.5). a and b must be positive (NaN otherwise).
 * Agrees with scipy 1.18 on every timestep of the beta scheduler for 1..200 steps. */
double sd_beta_ppf(double q, double a, double b);

/* KSampler.sample's start/end handling (KSamplerAdvanced), in place on sigmas[0..*n):
 * last_step >= 0 and last_step < *n - 1 keeps sigmas[0..last_step] and, with
 * force_full_denoise, sets the new last sigma to 0; then start_step >= 0 drops the first
 * start_step sigmas when start_step < *n - 1, else sets *n to 0 (nothing to sample: the
 * node outputs the input latent unchanged). A negative step means "not given". */
void sd_sigmas_slice(float *sigmas, size_t *n, int start_step, int last_step,
                     int force_full_denoise);

#endif
