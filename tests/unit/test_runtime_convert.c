/* dtype conversion: IEEE half and bfloat16 rounding (ties to even, subnormals, overflow to
 * infinity, NaN), single rounding from double, and the bulk converter's dtype pairs. The
 * midpoint sweeps check every pair of neighbouring 16-bit values, so each rounding
 * boundary of both formats is exercised once. */
#include <kiln/error.h>
#include <kiln/tensor.h>
#include <math.h>

#include "runner.h"
#include "runtime/convert.h"

static float fbits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_f16_fixed_values(void)
{
    ASSERT_EQ_INT(kiln__f32_to_f16(1.0f), 0x3c00);
    ASSERT_EQ_INT(kiln__f32_to_f16(-2.0f), 0xc000);
    ASSERT_EQ_INT(kiln__f32_to_f16(0.0f), 0x0000);
    ASSERT_EQ_INT(kiln__f32_to_f16(-0.0f), 0x8000);
    ASSERT_EQ_INT(kiln__f32_to_f16(65504.0f), 0x7bff);             /* largest finite */
    ASSERT_EQ_INT(kiln__f32_to_f16(65519.996f), 0x7bff);
    ASSERT_EQ_INT(kiln__f32_to_f16(65520.0f), 0x7c00);             /* the tie goes to inf */
    ASSERT_EQ_INT(kiln__f32_to_f16(1e10f), 0x7c00);
    ASSERT_EQ_INT(kiln__f32_to_f16(-INFINITY), 0xfc00);
    ASSERT_EQ_INT(kiln__f32_to_f16(0.1f), 0x2e66);
    /* Ties at 1.0 (f16 ulp 2^-10): to even. */
    ASSERT_EQ_INT(kiln__f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
    ASSERT_EQ_INT(kiln__f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
    ASSERT_EQ_INT(kiln__f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
    /* Subnormals. */
    ASSERT_EQ_INT(kiln__f32_to_f16(0x1p-24f), 0x0001);             /* least subnormal */
    ASSERT_EQ_INT(kiln__f32_to_f16(0x1p-25f), 0x0000);             /* tie to even 0 */
    ASSERT_EQ_INT(kiln__f32_to_f16(0x1.8p-25f), 0x0001);
    ASSERT_EQ_INT(kiln__f32_to_f16(3 * 0x1p-25f), 0x0002);         /* tie 1|2 -> 2 */
    ASSERT_EQ_INT(kiln__f32_to_f16(0x1p-14f - 0x1p-25f), 0x0400);  /* tie carries to normal */
    ASSERT_EQ_INT(kiln__f32_to_f16(0x1p-14f), 0x0400);
    ASSERT_EQ_INT(kiln__f32_to_f16(-1e-40f), 0x8000);              /* f32 subnormal: -0 */
    uint16_t n = kiln__f32_to_f16(NAN);
    ASSERT_EQ_INT(n & 0x7c00, 0x7c00);
    ASSERT_NE_INT(n & 0x3ff, 0);
    ASSERT_EQ_INT(kiln__f32_to_f16(fbits(0x7f800001)) & 0x7e00, 0x7e00);  /* sNaN -> qNaN */

    ASSERT(kiln__f16_to_f32(0x0001) == 0x1p-24f);
    ASSERT(kiln__f16_to_f32(0x03ff) == 1023 * 0x1p-24f);
    ASSERT(kiln__f16_to_f32(0x8001) == -0x1p-24f);
    ASSERT(kiln__f16_to_f32(0x7bff) == 65504.0f);
    ASSERT(kiln__f16_to_f32(0xfc00) == -INFINITY);
    ASSERT(isnan(kiln__f16_to_f32(0x7e00)));
    ASSERT(signbit(kiln__f16_to_f32(0x8000)));
}

static void test_f16_roundtrip_all(void)
{
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = kiln__f16_to_f32((uint16_t)h);
        uint16_t back = kiln__f32_to_f16(f);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
            ASSERT(isnan(f));
            ASSERT_EQ_INT(back & 0x7e00, 0x7e00);
            ASSERT_EQ_INT(back & 0x8000, h & 0x8000);
        } else if (back != h) {
            kiln_test_fail(__FILE__, __LINE__, "f16 %04x -> %g -> %04x", h, (double)f, back);
        }
    }
}

/* For every two neighbouring finite positive values a < b of a 16-bit format (decoded by
 * dec), the exact midpoint must round to the even one of the two, and the floats right
 * below and above it to a and b. The midpoint needs one bit more than the format, which
 * float has. Each is also checked negated. */
static void sweep_midpoints(uint16_t (*enc)(float), float (*dec)(uint16_t), uint32_t last)
{
    for (uint32_t a = 0; a < last; a++) {
        uint32_t b = a + 1;
        float fa = dec((uint16_t)a), fb = dec((uint16_t)b);
        float mid = fa + (fb - fa) / 2;
        ASSERT(mid > fa && mid < fb);
        uint32_t even = (a & 1) ? b : a;
        if (enc(mid) != even || enc(nextafterf(mid, 0)) != a ||
            enc(nextafterf(mid, INFINITY)) != b)
            kiln_test_fail(__FILE__, __LINE__, "midpoint %04x|%04x: got %04x %04x %04x", a, b,
                           enc(nextafterf(mid, 0)), enc(mid), enc(nextafterf(mid, INFINITY)));
        if (enc(-mid) != (even | 0x8000) || enc(-fa) != (a | 0x8000))
            kiln_test_fail(__FILE__, __LINE__, "negative midpoint %04x|%04x", a, b);
    }
}

static void test_f16_midpoints(void)
{
    /* 0x7bff|0x7c00 is the overflow boundary: 65504 and 65536 (infinity) in the sweep. */
    sweep_midpoints(kiln__f32_to_f16, kiln__f16_to_f32, 0x7bff);
    float mid = 65520.0f;
    ASSERT_EQ_INT(kiln__f32_to_f16(nextafterf(mid, 0)), 0x7bff);
    ASSERT_EQ_INT(kiln__f32_to_f16(mid), 0x7c00);
}

static void test_bf16(void)
{
    ASSERT_EQ_INT(kiln__f32_to_bf16(1.0f), 0x3f80);
    ASSERT_EQ_INT(kiln__f32_to_bf16(-0.0f), 0x8000);
    ASSERT_EQ_INT(kiln__f32_to_bf16(3.14159265f), 0x4049);
    ASSERT_EQ_INT(kiln__f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);               /* tie -> even */
    ASSERT_EQ_INT(kiln__f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
    ASSERT_EQ_INT(kiln__f32_to_bf16(fbits(0x7f7fffff)), 0x7f80);            /* FLT_MAX: inf */
    ASSERT_EQ_INT(kiln__f32_to_bf16(fbits(0x7f7f7fff)), 0x7f7f);
    ASSERT_EQ_INT(kiln__f32_to_bf16(fbits(0x00000001)), 0x0000);            /* tiny subnormal */
    ASSERT_EQ_INT(kiln__f32_to_bf16(fbits(0x00018000)), 0x0002);            /* subnormal tie */
    ASSERT_EQ_INT(kiln__f32_to_bf16(INFINITY), 0x7f80);
    ASSERT_EQ_INT(kiln__f32_to_bf16(fbits(0xff800001)) & 0xffc0, 0xffc0);   /* -sNaN -> -qNaN */
    ASSERT_EQ_INT(kiln__f32_to_bf16(fbits(0x7f800001)) & 0x7fff, 0x7fc0);   /* not infinity */
    ASSERT(kiln__bf16_to_f32(0x4049) == fbits(0x40490000));
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7f80) == 0x7f80 && (h & 0x7f))
            continue;                                                       /* NaNs */
        ASSERT_EQ_INT(kiln__f32_to_bf16(kiln__bf16_to_f32((uint16_t)h)), h);
    }
    /* Includes 0x7f7f|0x7f80: the largest finite bf16 and infinity. */
    sweep_midpoints(kiln__f32_to_bf16, kiln__bf16_to_f32, 0x7f7f);
}

static void test_from_double_rounds_once(void)
{
    /* Just above a tie: through float the tail is lost and the tie goes to even. */
    double d = 1.0 + 0x1p-11 + 0x1p-40;
    ASSERT_EQ_INT(kiln__f32_to_f16((float)d), 0x3c00);
    ASSERT_EQ_INT(kiln__f64_to_f16(d), 0x3c01);
    ASSERT_EQ_INT(kiln__f64_to_f16(-d), 0xbc01);
    ASSERT_EQ_INT(kiln__f64_to_f16(1.0 + 0x1p-11), 0x3c00);                 /* a real tie */
    double b = 1.0 + 0x1p-8 + 0x1p-40;
    ASSERT_EQ_INT(kiln__f32_to_bf16((float)b), 0x3f80);
    ASSERT_EQ_INT(kiln__f64_to_bf16(b), 0x3f81);
    ASSERT_EQ_INT(kiln__f64_to_f16(1e300), 0x7c00);
    ASSERT_EQ_INT(kiln__f64_to_bf16(-1e300), 0xff80);
    ASSERT_EQ_INT(kiln__f64_to_f16(0x1p-25 + 0x1p-60), 0x0001);             /* above the tie */
    ASSERT_EQ_INT(kiln__f64_to_f16(0x1p-25), 0x0000);                       /* the tie */
    ASSERT_EQ_INT(kiln__f64_to_f16(1e-300), 0x0000);
    ASSERT_EQ_INT(kiln__f64_to_bf16(0x1p-134 + 0x1p-170), 0x0001);          /* least bf16 */
    ASSERT_EQ_INT(kiln__f64_to_bf16(0x1p-134), 0x0000);
    ASSERT_EQ_INT(kiln__f64_to_f16(NAN) & 0x7e00, 0x7e00);
}

static void test_bulk_pairs(void)
{
    const int64_t src64[5] = {-3, 0, 1, 255, 1 << 20};
    float f32[5];
    ASSERT_EQ_INT(kiln__convert(f32, KILN_DTYPE_F32, 1, src64, KILN_DTYPE_I64, 1, 5), 0);
    ASSERT_NEAR(f32[0], -3, 0);
    ASSERT_NEAR(f32[4], 1048576, 0);
    uint16_t h[5];
    ASSERT_EQ_INT(kiln__convert(h, KILN_DTYPE_F16, 1, src64, KILN_DTYPE_I64, 1, 5), 0);
    ASSERT_EQ_INT(h[0], 0xc200);
    ASSERT_EQ_INT(h[4], 0x7c00);                                     /* 2^20 overflows f16 */
    uint8_t u8[5];
    ASSERT_EQ_INT(kiln__convert(u8, KILN_DTYPE_U8, 1, src64, KILN_DTYPE_I64, 1, 5), KILN_ERANGE);
    ASSERT_EQ_INT(kiln__convert(u8, KILN_DTYPE_U8, 1, src64 + 1, KILN_DTYPE_I64, 1, 3), 0);
    ASSERT_EQ_INT(u8[2], 255);
    uint8_t bools[5];
    ASSERT_EQ_INT(kiln__convert(bools, KILN_DTYPE_BOOL, 1, src64, KILN_DTYPE_I64, 1, 5), 0);
    ASSERT_EQ_INT(bools[0] + bools[1] * 10 + bools[3] * 100, 101);
    const uint8_t braw[3] = {0, 1, 7};
    double d[3];
    ASSERT_EQ_INT(kiln__convert(d, KILN_DTYPE_F64, 1, braw, KILN_DTYPE_BOOL, 1, 3), 0);
    ASSERT_NEAR(d[2], 1.0, 0);
    const int16_t i16[2] = {-32768, 32767};
    ASSERT_EQ_INT(kiln__convert(f32, KILN_DTYPE_F32, 1, i16, KILN_DTYPE_I16, 1, 2), 0);
    ASSERT_NEAR(f32[0], -32768, 0);
    /* Strided: every other source element into every third destination slot. */
    const float fs[6] = {0.5f, 9, 1.5f, 9, -2.25f, 9};
    uint16_t bf[9] = {0};
    ASSERT_EQ_INT(kiln__convert(bf, KILN_DTYPE_BF16, 3, fs, KILN_DTYPE_F32, 2, 3), 0);
    ASSERT_EQ_INT(bf[0], 0x3f00);
    ASSERT_EQ_INT(bf[3], 0x3fc0);
    ASSERT_EQ_INT(bf[6], 0xc010);
    ASSERT_EQ_INT(bf[1], 0);
    /* f16 -> bf16 and back through every pair that has its own loop. */
    uint16_t hx = 0x3555;                            /* 0.333251953125, f32 0x3eaaa000 */
    uint16_t bx;
    ASSERT_EQ_INT(kiln__convert(&bx, KILN_DTYPE_BF16, 1, &hx, KILN_DTYPE_F16, 1, 1), 0);
    ASSERT_EQ_INT(bx, 0x3eab);                                       /* 0xa000 rounds up */
    ASSERT_EQ_INT(kiln__convert(&hx, KILN_DTYPE_F16, 1, &bx, KILN_DTYPE_BF16, 1, 1), 0);
    ASSERT_EQ_INT(hx, 0x3558);                                       /* 0.333984375 */
    ASSERT_EQ_INT(kiln__convert(f32, KILN_DTYPE_I32, 1, fs, KILN_DTYPE_F32, 1, 1),
                  KILN_EUNSUPPORTED);
    ASSERT_EQ_INT(kiln__convert(f32, KILN_DTYPE_COUNT, 1, fs, KILN_DTYPE_F32, 1, 1), KILN_EINVAL);
    double dd[2] = {1.0 + 0x1p-11 + 0x1p-40, 1e-3};
    ASSERT_EQ_INT(kiln__convert(h, KILN_DTYPE_F16, 1, dd, KILN_DTYPE_F64, 1, 2), 0);
    ASSERT_EQ_INT(h[0], 0x3c01);
    ASSERT_EQ_INT(h[1], 0x1419);
}

KILN_TEST_MAIN(TEST(test_f16_fixed_values), TEST(test_f16_roundtrip_all), TEST(test_f16_midpoints),
               TEST(test_bf16), TEST(test_from_double_rounds_once), TEST(test_bulk_pairs))
