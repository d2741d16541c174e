/* Bit-exact reproduction of the noise ComfyUI draws on the CPU: torch's CPU generator
 * (at::mt19937 seeded with the low 32 bits of the seed) and torch.rand / torch.randn as its
 * CPU kernels compute them, plus ComfyUI's prepare_noise (with and without batch_index).
 *
 *   float noise[4 * 64 * 64];                          // [1, 4, 64, 64] latent
 *   sd_noise_fill(seed, noise, 4 * 64 * 64);           // = comfy.sample.prepare_noise
 *
 *   sd_rng_t rng;                                      // ancestral samplers: one generator,
 *   sd_rng_seed(&rng, seed);                           // one torch.randn per step
 *   sd_rng_randn(&rng, eps, n, SD_NOISE_VECTOR);
 *
 * torch.randn of 16 or more floats fills the buffer with uniforms, then turns each block of
 * 16 into normals with Box-Muller; on x86 with AVX2 (and AVX-512) the log, sin and cos are
 * torch's vectorised Cephes polynomials, reproduced here operation by operation in scalar
 * code (SD_NOISE_VECTOR). With ATEN_CPU_CAPABILITY=default torch uses libm instead
 * (SD_NOISE_LIBM). Fewer than 16 floats use the double-precision sampler, whose second value
 * is cached in the generator as torch caches it.
 *
 * Threads: an sd_rng_t belongs to one thread at a time; the functions keep no global state. */
#ifndef KILN_SD_NOISE_H
#define KILN_SD_NOISE_H

#include <stddef.h>
#include <stdint.h>

/* Which math torch's CPU normal kernel uses for blocks of 16. */
typedef enum sd_noise_math {
    SD_NOISE_VECTOR = 0, /* AVX2/AVX-512 kernels: what ComfyUI gives on x86 CPUs */
    SD_NOISE_LIBM = 1    /* the scalar fallback (ATEN_CPU_CAPABILITY=default) */
} sd_noise_math_t;

/* torch's CPU generator state: the Mersenne Twister and the cached second normal of the
 * double-precision Box-Muller sampler. Plain data; copy it to fork a stream. */
typedef struct sd_rng {
    uint32_t mt[624];
    uint32_t index;     /* next word of mt to temper; 624 = twist first */
    int has_normal;     /* a cached normal is pending */
    double next_normal; /* the cached normal (torch's next_double_normal_sample) */
} sd_rng_t;

/* torch.manual_seed(seed): only the low 32 bits reach the Mersenne Twister, so seeds that
 * differ only above bit 31 give the same stream. Clears the cached normal. */
void sd_rng_seed(sd_rng_t *rng, uint64_t seed);

/* The next 32-bit output of the generator (torch's random()). */
uint32_t sd_rng_u32(sd_rng_t *rng);

/* torch.rand(n) in float32: each value is (u32 & 0xFFFFFF) * 2^-24. */
void sd_rng_rand(sd_rng_t *rng, float *out, size_t n);

/* torch.randn(n) in float32 (any shape: only the element count matters). */
void sd_rng_randn(sd_rng_t *rng, float *out, size_t n, sd_noise_math_t math);

/* comfy.sample.prepare_noise(latent, seed) for a latent of n floats: a fresh generator seeded
 * with seed, then one torch.randn, SD_NOISE_VECTOR math. */
void sd_noise_fill(uint64_t seed, float *out, size_t n);

/* prepare_noise with batch_index: one draw of `per_item` floats ([1, C, H, W]) for every
 * index 0..max(index) in order, then out[i] = the draw of index[i], for i < n_index
 * (out holds n_index * per_item floats). Returns 0, KILN_EINVAL (NULL pointers, n_index 0, a
 * negative index), KILN_ELIMIT (an index of 2^24 or more) or KILN_ENOMEM. */
int sd_noise_fill_batch_index(uint64_t seed, const int64_t *index, size_t n_index, size_t per_item,
                              float *out, sd_noise_math_t math);

#endif
