/* Element conversions between dtypes. The 16-bit float codecs work on bit patterns so the
 * result does not depend on the compiler's float16 support or on the FPU's flush-to-zero
 * mode; narrowing from double goes through a round-to-odd float so that it rounds once. */
#include "runtime/convert.h"

#include <float.h>
#include <kiln/error.h>
#include <math.h>
#include <string.h>

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t kiln__f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u)                       /* NaN: quiet, keep the top payload bits */
        return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));
    if (ax >= 0x477ff000u)                      /* >= 65520 rounds past 65504: infinity */
        return (uint16_t)(sign | 0x7c00);
    if (ax <= 0x33000000u)                      /* <= 2^-25: half the least subnormal or less */
        return sign;
    if (ax < 0x38800000u) {                     /* below 2^-14: an f16 subnormal */
        uint32_t e = ax >> 23;                  /* 102..112 */
        uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e;               /* value * 2^24 = m >> shift */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1)))
            r++;                                /* may carry into the least normal: fine */
        return (uint16_t)(sign | r);
    }
    uint32_t r = ax - 0x38000000u;              /* rebias the exponent from 127 to 15 */
    r = (r + 0xfffu + ((r >> 13) & 1)) >> 13;   /* round the 13 dropped bits, ties to even */
    return (uint16_t)(sign | r);
}

float kiln__f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ffu;
    if (e == 0x1f)
        return bits_f32(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
        float v = (float)m * 0x1p-24f;          /* exact: m < 2^10 */
        return sign ? -v : v;
    }
    return bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

uint16_t kiln__f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40);    /* NaN: force the quiet bit */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

float kiln__bf16_to_f32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

/* double -> float rounding to odd: truncate, then set the last bit when inexact. A float
 * rounded this way keeps enough information for one correct second rounding to any format
 * at least two bits narrower (f16 and bf16 are 13 and 16 bits narrower). */
static float f64_to_f32_odd(double d)
{
    float f = (float)d;
    if (isnan(d) || (double)f == d)
        return f;
    if (isinf(f))
        f = d > 0 ? FLT_MAX : -FLT_MAX;
    else if (fabs((double)f) > fabs(d))
        f = nextafterf(f, 0.0f);
    return bits_f32(f32_bits(f) | 1u);
}

uint16_t kiln__f64_to_f16(double d)
{
    return kiln__f32_to_f16(f64_to_f32_odd(d));
}

uint16_t kiln__f64_to_bf16(double d)
{
    return kiln__f32_to_bf16(f64_to_f32_odd(d));
}

static int is_float(kiln_dtype_t t)
{
    return t == KILN_DTYPE_F32 || t == KILN_DTYPE_F16 || t == KILN_DTYPE_BF16 ||
           t == KILN_DTYPE_F64;
}

int kiln__convert_check(kiln_dtype_t dst, kiln_dtype_t src)
{
    if (kiln_dtype_size(dst) == 0 || kiln_dtype_size(src) == 0)
        return KILN_EINVAL;
    if (dst == src || is_float(dst) || !is_float(src))
        return 0;
    return KILN_EUNSUPPORTED;
}

/* Reads element i of an integer or BOOL array. */
static int64_t load_int(const void *p, kiln_dtype_t t, int64_t i)
{
    switch (t) {
    case KILN_DTYPE_I64: return ((const int64_t *)p)[i];
    case KILN_DTYPE_I32: return ((const int32_t *)p)[i];
    case KILN_DTYPE_I16: return ((const int16_t *)p)[i];
    case KILN_DTYPE_I8: return ((const int8_t *)p)[i];
    case KILN_DTYPE_U8: return ((const uint8_t *)p)[i];
    default: return ((const uint8_t *)p)[i] != 0;   /* BOOL */
    }
}

/* Reads element i of a float array as double (exact for every float dtype). */
static double load_float(const void *p, kiln_dtype_t t, int64_t i)
{
    switch (t) {
    case KILN_DTYPE_F32: return ((const float *)p)[i];
    case KILN_DTYPE_F64: return ((const double *)p)[i];
    case KILN_DTYPE_F16: return kiln__f16_to_f32(((const uint16_t *)p)[i]);
    default: return kiln__bf16_to_f32(((const uint16_t *)p)[i]);
    }
}

/* Writes v to element i of a float array, rounding once. */
static void store_float(void *p, kiln_dtype_t t, int64_t i, double v)
{
    switch (t) {
    case KILN_DTYPE_F32: ((float *)p)[i] = (float)v; break;
    case KILN_DTYPE_F64: ((double *)p)[i] = v; break;
    case KILN_DTYPE_F16: ((uint16_t *)p)[i] = kiln__f64_to_f16(v); break;
    default: ((uint16_t *)p)[i] = kiln__f64_to_bf16(v); break;
    }
}

/* Writes v to element i of an integer array; KILN_ERANGE when it does not fit. */
static int store_int(void *p, kiln_dtype_t t, int64_t i, int64_t v)
{
    switch (t) {
    case KILN_DTYPE_I64: ((int64_t *)p)[i] = v; return 0;
    case KILN_DTYPE_I32:
        if (v < INT32_MIN || v > INT32_MAX)
            return KILN_ERANGE;
        ((int32_t *)p)[i] = (int32_t)v;
        return 0;
    case KILN_DTYPE_I16:
        if (v < INT16_MIN || v > INT16_MAX)
            return KILN_ERANGE;
        ((int16_t *)p)[i] = (int16_t)v;
        return 0;
    case KILN_DTYPE_I8:
        if (v < INT8_MIN || v > INT8_MAX)
            return KILN_ERANGE;
        ((int8_t *)p)[i] = (int8_t)v;
        return 0;
    case KILN_DTYPE_U8:
        if (v < 0 || v > UINT8_MAX)
            return KILN_ERANGE;
        ((uint8_t *)p)[i] = (uint8_t)v;
        return 0;
    default: ((uint8_t *)p)[i] = v != 0; return 0;   /* BOOL */
    }
}

/* Same dtype: a byte copy per element, or one memcpy when both sides are dense. */
static void copy_same(void *dst, int64_t dstride, const void *src, int64_t sstride, int64_t n,
                      size_t es)
{
    if (dstride == 1 && sstride == 1) {
        memcpy(dst, src, (size_t)n * es);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        memcpy((char *)dst + (size_t)(i * dstride) * es,
               (const char *)src + (size_t)(i * sstride) * es, es);
}

#define CONVERT_LOOP(DT, ST, EXPR)                                           \
    do {                                                                     \
        DT *d_ = dst;                                                        \
        const ST *s_ = src;                                                  \
        for (int64_t i = 0; i < n; i++) {                                    \
            ST x = s_[i * sstride];                                          \
            d_[i * dstride] = (EXPR);                                        \
        }                                                                    \
    } while (0)

/* The common pairs get their own loops; returns 1 when it handled the pair. */
static int convert_fast(void *dst, kiln_dtype_t dt, int64_t dstride, const void *src,
                        kiln_dtype_t st, int64_t sstride, int64_t n)
{
    if (dt == KILN_DTYPE_F32 && st == KILN_DTYPE_F16)
        CONVERT_LOOP(float, uint16_t, kiln__f16_to_f32(x));
    else if (dt == KILN_DTYPE_F32 && st == KILN_DTYPE_BF16)
        CONVERT_LOOP(float, uint16_t, kiln__bf16_to_f32(x));
    else if (dt == KILN_DTYPE_F16 && st == KILN_DTYPE_F32)
        CONVERT_LOOP(uint16_t, float, kiln__f32_to_f16(x));
    else if (dt == KILN_DTYPE_BF16 && st == KILN_DTYPE_F32)
        CONVERT_LOOP(uint16_t, float, kiln__f32_to_bf16(x));
    else if (dt == KILN_DTYPE_F16 && st == KILN_DTYPE_BF16)
        CONVERT_LOOP(uint16_t, uint16_t, kiln__f32_to_f16(kiln__bf16_to_f32(x)));
    else if (dt == KILN_DTYPE_BF16 && st == KILN_DTYPE_F16)
        CONVERT_LOOP(uint16_t, uint16_t, kiln__f32_to_bf16(kiln__f16_to_f32(x)));
    else if (dt == KILN_DTYPE_F32 && st == KILN_DTYPE_F64)
        CONVERT_LOOP(float, double, (float)x);
    else if (dt == KILN_DTYPE_F64 && st == KILN_DTYPE_F32)
        CONVERT_LOOP(double, float, (double)x);
    else
        return 0;
    return 1;
}

int kiln__convert(void *dst, kiln_dtype_t dst_dtype, int64_t dstride, const void *src,
                  kiln_dtype_t src_dtype, int64_t sstride, int64_t n)
{
    int rc = kiln__convert_check(dst_dtype, src_dtype);
    if (rc < 0)
        return rc;
    if (dst_dtype == src_dtype) {
        copy_same(dst, dstride, src, sstride, n, kiln_dtype_size(src_dtype));
        return 0;
    }
    if (convert_fast(dst, dst_dtype, dstride, src, src_dtype, sstride, n))
        return 0;
    if (is_float(src_dtype)) {          /* float -> another float */
        for (int64_t i = 0; i < n; i++)
            store_float(dst, dst_dtype, i * dstride, load_float(src, src_dtype, i * sstride));
        return 0;
    }
    if (dst_dtype == KILN_DTYPE_F32) {  /* integer -> F32 in one rounding */
        for (int64_t i = 0; i < n; i++)
            ((float *)dst)[i * dstride] = (float)load_int(src, src_dtype, i * sstride);
        return 0;
    }
    if (is_float(dst_dtype)) {          /* integer -> F64/F16/BF16 through double */
        for (int64_t i = 0; i < n; i++)
            store_float(dst, dst_dtype, i * dstride,
                        (double)load_int(src, src_dtype, i * sstride));
        return 0;
    }
    for (int64_t i = 0; i < n; i++) {   /* integer -> integer with a range check */
        rc = store_int(dst, dst_dtype, i * dstride, load_int(src, src_dtype, i * sstride));
        if (rc < 0)
            return rc;
    }
    return 0;
}
