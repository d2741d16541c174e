/* torch's CPU random streams, bit for bit: at::mt19937, torch.rand and torch.randn. The
 * vectorised log/sincos of torch's AVX2 normal kernel (avx_mathfun's log256_ps and
 * sincos256_ps, Cephes polynomials) are redone lane by lane in scalar float arithmetic, with
 * fmaf exactly where the compiled kernel fuses a multiply into an add. */
#include "noise.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/error.h"

/* Every float operation below must round exactly once, as written: no contraction of a*b+c
 * into an FMA except through the explicit fmaf calls. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define MT_N 624
#define MT_M 397

void sd_rng_seed(sd_rng_t *rng, uint64_t seed)
{
    rng->mt[0] = (uint32_t)seed;
    for (uint32_t i = 1; i < MT_N; i++)
        rng->mt[i] = 1812433253u * (rng->mt[i - 1] ^ (rng->mt[i - 1] >> 30)) + i;
    rng->index = MT_N;
    rng->has_normal = 0;
    rng->next_normal = 0.0;
}

static void mt_twist(sd_rng_t *rng)
{
    uint32_t *mt = rng->mt;
    for (int i = 0; i < MT_N; i++) {
        uint32_t y = (mt[i] & 0x80000000u) | (mt[(i + 1) % MT_N] & 0x7FFFFFFFu);
        mt[i] = mt[(i + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908B0DFu : 0u);
    }
    rng->index = 0;
}

uint32_t sd_rng_u32(sd_rng_t *rng)
{
    if (rng->index >= MT_N)
        mt_twist(rng);
    uint32_t y = rng->mt[rng->index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9D2C5680u;
    y ^= (y << 15) & 0xEFC60000u;
    y ^= y >> 18;
    return y;
}

/* uniform_real_distribution<float>: the low 24 bits of one draw, scaled to [0, 1). */
static float uniform_float(sd_rng_t *rng)
{
    return (float)(sd_rng_u32(rng) & 0xFFFFFFu) * (1.0f / 16777216.0f);
}

/* uniform_real_distribution<double>: the low 53 bits of two draws (first = high word). */
static double uniform_double(sd_rng_t *rng)
{
    uint64_t hi = sd_rng_u32(rng);
    uint64_t lo = sd_rng_u32(rng);
    return (double)(((hi << 32) | lo) & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

void sd_rng_rand(sd_rng_t *rng, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = uniform_float(rng);
}

/* ---- the vectorised kernel, one lane at a time ------------------------------------------ */

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* log256_ps: frexp-style range reduction to [sqrt(1/2), sqrt(2)) and a degree-9 polynomial. */
static float vec_logf(float x)
{
    const float one = 1.0f;
    uint32_t invalid = x <= 0.0f ? 0xFFFFFFFFu : 0u; /* ordered: NaN is not invalid here */
    float min_norm = u2f(0x00800000u);
    x = x > min_norm ? x : min_norm; /* maxps: the second operand when unordered */
    int32_t expo = (int32_t)(f2u(x) >> 23) - 0x7F;
    x = u2f((f2u(x) & ~0x7F800000u) | f2u(0.5f));
    float e = (float)expo;
    e = e + one;
    uint32_t mask = x < 0.707106781186547524f ? 0xFFFFFFFFu : 0u;
    float tmp = u2f(f2u(x) & mask);
    x = x - one;
    e = e - u2f(f2u(one) & mask);
    x = x + tmp;
    float z = x * x;
    float y = 7.0376836292E-2f;
    y = fmaf(y, x, -1.1514610310E-1f);
    y = fmaf(y, x, 1.1676998740E-1f);
    y = fmaf(y, x, -1.2420140846E-1f);
    y = fmaf(y, x, 1.4249322787E-1f);
    y = fmaf(y, x, -1.6668057665E-1f);
    y = fmaf(y, x, 2.0000714765E-1f);
    y = fmaf(y, x, -2.4999993993E-1f);
    y = fmaf(y, x, 3.3333331174E-1f);
    y = y * x;
    y = fmaf(y, z, e * -2.12194440e-4f);
    y = fmaf(-z, 0.5f, y);
    x = x + y;
    x = fmaf(e, 0.693359375f, x);
    return u2f(f2u(x) | invalid);
}

/* sincos256_ps: reduction by multiples of pi/4 in three parts (Cody-Waite), then the sine or
 * cosine polynomial per octant, selected with bit masks exactly as the vector code does. */
static void vec_sincosf(float x, float *s, float *c)
{
    uint32_t sign_sin = f2u(x) & 0x80000000u;
    x = u2f(f2u(x) & 0x7FFFFFFFu);
    float y = x * 1.27323954473516f;
    int32_t j = (int32_t)y; /* cvttps: truncation */
    j = (j + 1) & ~1;
    y = (float)j;
    uint32_t swap_sin = ((uint32_t)j & 4u) << 29;
    uint32_t poly = ((uint32_t)j & 2u) == 0 ? 0xFFFFFFFFu : 0u;
    x = fmaf(y, -0.78515625f, x);
    x = fmaf(y, -2.4187564849853515625e-4f, x);
    x = fmaf(y, -3.77489497744594108e-8f, x);
    uint32_t sign_cos = (~(uint32_t)(j - 2) & 4u) << 29;
    sign_sin ^= swap_sin;

    float z = x * x;
    float yc = 2.443315711809948E-005f;
    yc = fmaf(yc, z, -1.388731625493765E-003f);
    yc = fmaf(yc, z, 4.166664568298827E-002f);
    yc = yc * z;
    yc = fmaf(yc, z, -(z * 0.5f));
    yc = yc + 1.0f;

    float ys = -1.9515295891E-4f;
    ys = fmaf(ys, z, 8.3321608736E-3f);
    ys = fmaf(ys, z, -1.6666654611E-1f);
    ys = ys * z;
    ys = fmaf(ys, x, x);

    float ysin2 = u2f(poly & f2u(ys));
    float ysin1 = u2f(~poly & f2u(yc));
    ys = ys - ysin2;
    yc = yc - ysin1;
    *s = u2f(f2u(ysin1 + ysin2) ^ sign_sin);
    *c = u2f(f2u(yc + ys) ^ sign_cos);
}

/* normal_fill_16_AVX2 on data[0..16): Box-Muller over the pairs (j, j + 8). */
static void normal16_vector(float *data, float mean, float std)
{
    const float two_pi = (float)(2.0 * 3.14159265358979323846);
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - data[j];
        float u2 = data[j + 8];
        float radius = sqrtf(-2.0f * vec_logf(u1));
        float theta = two_pi * u2, sn, cs;
        vec_sincosf(theta, &sn, &cs);
        data[j] = fmaf(radius * cs, std, mean);
        data[j + 8] = fmaf(radius * sn, std, mean);
    }
}

/* normal_fill_16, the scalar kernel: libm log/cos/sin; theta is computed in double. */
static void normal16_libm(float *data, float mean, float std)
{
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - data[j];
        float u2 = data[j + 8];
        float radius = sqrtf(-2.0f * logf(u1));
        float theta = (float)(2.0 * 3.14159265358979323846 * (double)u2);
        data[j] = radius * cosf(theta) * std + mean;
        data[j + 8] = radius * sinf(theta) * std + mean;
    }
}

/* normal_distribution<double>: Box-Muller in double; the sine half is cached for the next
 * call, the way torch caches it in the generator. */
static double normal_double(sd_rng_t *rng)
{
    if (rng->has_normal) {
        rng->has_normal = 0;
        return rng->next_normal * 1.0 + 0.0;
    }
    double u1 = uniform_double(rng);
    double u2 = uniform_double(rng);
    double r = sqrt(-2.0 * log1p(-u2));
    double theta = 2.0 * 3.14159265358979323846 * u1;
    rng->next_normal = r * sin(theta);
    rng->has_normal = 1;
    return r * cos(theta) * 1.0 + 0.0;
}

void sd_rng_randn(sd_rng_t *rng, float *out, size_t n, sd_noise_math_t math)
{
    if (n < 16) {
        for (size_t i = 0; i < n; i++)
            out[i] = (float)normal_double(rng);
        return;
    }
    void (*fill16)(float *, float, float) = math == SD_NOISE_LIBM ? normal16_libm : normal16_vector;
    for (size_t i = 0; i < n; i++)
        out[i] = uniform_float(rng);
    for (size_t i = 0; i + 16 <= n; i += 16)
        fill16(out + i, 0.0f, 1.0f);
    if (n % 16 != 0) {
        /* torch redraws the last 16 values (overlapping the last full block) afresh. */
        for (size_t i = n - 16; i < n; i++)
            out[i] = uniform_float(rng);
        fill16(out + n - 16, 0.0f, 1.0f);
    }
}

void sd_noise_fill(uint64_t seed, float *out, size_t n)
{
    sd_rng_t rng;
    sd_rng_seed(&rng, seed);
    sd_rng_randn(&rng, out, n, SD_NOISE_VECTOR);
}

int sd_noise_fill_batch_index(uint64_t seed, const int64_t *index, size_t n_index, size_t per_item,
                              float *out, sd_noise_math_t math)
{
    if (!index || !out || n_index == 0)
        return KILN_EINVAL;
    int64_t max = 0;
    for (size_t i = 0; i < n_index; i++) {
        if (index[i] < 0)
            return KILN_EINVAL;
        if (index[i] > max)
            max = index[i];
    }
    if (max >= (int64_t)1 << 24)
        return KILN_ELIMIT;
    float *draw = malloc((per_item ? per_item : 1) * sizeof *draw);
    if (!draw)
        return KILN_ENOMEM;
    sd_rng_t rng;
    sd_rng_seed(&rng, seed);
    /* Every index up to the largest is drawn, used or not, so later draws stay in step. */
    for (int64_t k = 0; k <= max; k++) {
        sd_rng_randn(&rng, draw, per_item, math);
        for (size_t i = 0; i < n_index; i++)
            if (index[i] == k)
                memcpy(out + i * per_item, draw, per_item * sizeof *draw);
    }
    free(draw);
    return 0;
}
