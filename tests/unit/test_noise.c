/* Noise: torch's CPU generator and randn reproduced bit for bit against the sd15-tiny fixtures
 * (every seed and shape of noise.safetensors, the libm variant, batch_index draws, the five
 * ancestral draws of euler_ancestral, the hires noise), plus the Mersenne Twister's published
 * outputs, the tail redraw rule and torch's well-known small-tensor values. */
#include <kiln/error.h>
#include <kiln/tensor.h>
#include <stdlib.h>
#include <string.h>

#include "../../nodes/sd/noise.h"
#include "runner.h"
#include "runtime/safetensors.h"

#define NOISE KILN_SHARED_DIR "/fixtures/sd15-tiny/noise.safetensors"
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

/* Fails unless got and want hold the same bits; names the first differing element. */
static void assert_bits(const char *what, const float *got, const float *want, size_t n)
{
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&got[i], &want[i], sizeof got[i]) != 0 && bad++ == 0)
            first = i;
    }
    if (bad)
        kiln_test_fail(__FILE__, __LINE__, "%s: %zu of %zu differ, first at %zu: %.9g vs %.9g",
                       what, bad, n, first, got[first], want[first]);
}

static const uint64_t seeds[] = {0, 42, 123456789, 1099511627783ull};
static const char *const shapes[] = {"1x4x8x8", "3x4x16x16"};

/* The reference generator's published values: seed 5489 gives 3499211612 first and
 * 4123659995 as the 10000th output. */
static void test_mt19937_reference(void)
{
    sd_rng_t rng;
    sd_rng_seed(&rng, 5489);
    ASSERT_EQ_INT(sd_rng_u32(&rng), 3499211612u);
    uint32_t v = 0;
    for (int i = 1; i < 10000; i++)
        v = sd_rng_u32(&rng);
    ASSERT_EQ_INT(v, 4123659995u);
}

static void check_fixture(const char *prefix, uint64_t seed, const char *shape, const char *suffix,
                          int mode)
{
    char name[128];
    snprintf(name, sizeof name, "%s_seed%llu_%s%s", prefix, (unsigned long long)seed, shape,
             suffix);
    size_t n;
    float *want = load_f32(NOISE, name, &n);
    float *got = malloc(n * sizeof *got);
    ASSERT(got != NULL);
    sd_rng_t rng;
    sd_rng_seed(&rng, seed);
    if (mode == 0)
        sd_noise_fill(seed, got, n);
    else if (mode == 1)
        sd_rng_randn(&rng, got, n, SD_NOISE_LIBM);
    else
        sd_rng_rand(&rng, got, n);
    assert_bits(name, got, want, n);
    free(got);
    free(want);
}

static void test_uniform_fixtures(void)
{
    for (size_t s = 0; s < 4; s++)
        for (size_t k = 0; k < 2; k++)
            check_fixture("uniform", seeds[s], shapes[k], "", 2);
}

static void test_noise_fixtures(void)
{
    for (size_t s = 0; s < 4; s++)
        for (size_t k = 0; k < 2; k++)
            check_fixture("noise", seeds[s], shapes[k], "", 0);
}

static void test_noise_libm_fixtures(void)
{
    for (size_t s = 0; s < 4; s++)
        for (size_t k = 0; k < 2; k++)
            check_fixture("noise", seeds[s], shapes[k], "_capDEFAULT", 1);
}

/* torch keeps only the low 32 bits of a seed: 1099511627783 = 2^40 + 7. */
static void test_seed_low_32_bits(void)
{
    float a[256], b[256];
    sd_noise_fill(1099511627783ull, a, 256);
    sd_noise_fill(7, b, 256);
    assert_bits("seed 2^40+7 vs 7", a, b, 256);
    sd_noise_fill(8, b, 256);
    ASSERT(memcmp(a, b, sizeof a) != 0);
}

static void test_batch_index(void)
{
    static const int64_t idx_a[] = {1, 3}, idx_b[] = {2, 0, 2};
    size_t n;
    float *want = load_f32(NOISE, "noise_seed42_2x4x8x8_batchidx_1-3", &n);
    ASSERT_EQ_INT(n, 2 * 256);
    float got[3 * 256];
    ASSERT_EQ_INT(sd_noise_fill_batch_index(42, idx_a, 2, 256, got, SD_NOISE_VECTOR), 0);
    assert_bits("batch_index 1,3", got, want, n);
    free(want);

    want = load_f32(NOISE, "noise_seed42_3x4x8x8_batchidx_2-0-2", &n);
    ASSERT_EQ_INT(n, 3 * 256);
    ASSERT_EQ_INT(sd_noise_fill_batch_index(42, idx_b, 3, 256, got, SD_NOISE_VECTOR), 0);
    assert_bits("batch_index 2,0,2", got, want, n);
    /* Index 0 of a batch_index draw is the plain first draw. */
    float first[256];
    sd_noise_fill(42, first, 256);
    assert_bits("index 0", got + 256, first, 256);
    free(want);

    static const int64_t negative[] = {0, -1};
    ASSERT_EQ_INT(sd_noise_fill_batch_index(42, negative, 2, 256, got, SD_NOISE_VECTOR),
                  KILN_EINVAL);
    ASSERT_EQ_INT(sd_noise_fill_batch_index(42, idx_a, 0, 256, got, SD_NOISE_VECTOR), KILN_EINVAL);
}

/* euler_ancestral: a generator seeded with the KSampler seed, one randn per step; the first
 * draw is the initial noise itself. */
static void test_ancestral_draws(void)
{
    size_t n, n_init, n_hires;
    float *want = load_f32(SAMPLES, "euler_ancestral_normal_ancestral_noise", &n);
    ASSERT_EQ_INT(n, 5 * 256);
    float *init = load_f32(SAMPLES, "noise_seed42", &n_init);
    ASSERT_EQ_INT(n_init, 256);
    sd_rng_t rng;
    sd_rng_seed(&rng, 42);
    for (int k = 0; k < 5; k++) {
        float got[256];
        char what[32];
        snprintf(what, sizeof what, "ancestral draw %d", k);
        sd_rng_randn(&rng, got, 256, SD_NOISE_VECTOR);
        assert_bits(what, got, want + k * 256, 256);
        if (k == 0)
            assert_bits("initial noise", got, init, 256);
    }
    float *hires = load_f32(SAMPLES, "hires_noise_seed43", &n_hires);
    ASSERT_EQ_INT(n_hires, 4 * 12 * 12);
    float got[4 * 12 * 12];
    sd_noise_fill(43, got, n_hires);
    assert_bits("hires seed 43", got, hires, n_hires);
    free(hires);
    free(init);
    free(want);
}

/* A size that is not a multiple of 16: the full blocks come from the first n uniforms, then
 * the last 16 values are redrawn from 16 fresh uniforms. */
static void test_tail_redraw(void)
{
    float a[40], b[32], c[16];
    sd_rng_t rng;
    sd_noise_fill(123, a, 40);
    sd_noise_fill(123, b, 32);
    assert_bits("full blocks", a, b, 24);
    sd_rng_seed(&rng, 123);
    sd_rng_rand(&rng, b, 32);
    sd_rng_rand(&rng, b, 8); /* the 40 uniforms of the first pass */
    sd_rng_randn(&rng, c, 16, SD_NOISE_VECTOR);
    assert_bits("redrawn tail", a + 24, c, 16);
}

/* Under 16 values torch uses double-precision Box-Muller and caches the sine half:
 * torch.manual_seed(0); torch.randn(6) and torch.manual_seed(42); torch.randn(6). */
static void test_small_tensors(void)
{
    static const float seed0[6] = {1.540996f, -0.293429f, -2.178789f,
                                   0.568431f, -1.084522f, -1.398595f};
    static const float seed42[6] = {0.336690f, 0.128809f,  0.234462f,
                                    0.230333f, -1.122856f, -0.186328f};
    float v[6];
    sd_rng_t rng;
    sd_rng_seed(&rng, 0);
    sd_rng_randn(&rng, v, 6, SD_NOISE_VECTOR);
    for (int i = 0; i < 6; i++)
        ASSERT_NEAR(v[i], seed0[i], 1e-6);
    sd_rng_seed(&rng, 42);
    sd_rng_randn(&rng, v, 6, SD_NOISE_VECTOR);
    for (int i = 0; i < 6; i++)
        ASSERT_NEAR(v[i], seed42[i], 1e-6);
    /* The cached half carries over between calls: 1 + 2 + 3 values equal one call of 6. */
    float w[6];
    sd_rng_seed(&rng, 42);
    sd_rng_randn(&rng, w, 1, SD_NOISE_VECTOR);
    sd_rng_randn(&rng, w + 1, 2, SD_NOISE_VECTOR);
    sd_rng_randn(&rng, w + 3, 3, SD_NOISE_VECTOR);
    assert_bits("split small draws", w, v, 6);
    /* Re-seeding drops the cached value. */
    sd_rng_seed(&rng, 42);
    sd_rng_randn(&rng, w, 1, SD_NOISE_VECTOR);
    sd_rng_seed(&rng, 42);
    sd_rng_randn(&rng, w + 1, 1, SD_NOISE_VECTOR);
    assert_bits("reseeded", w, w + 1, 1);
}

KILN_TEST_MAIN(TEST(test_mt19937_reference), TEST(test_uniform_fixtures), TEST(test_noise_fixtures),
               TEST(test_noise_libm_fixtures), TEST(test_seed_low_32_bits), TEST(test_batch_index),
               TEST(test_ancestral_draws), TEST(test_tail_redraw), TEST(test_small_tensors))
