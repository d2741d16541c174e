/* Element conversions between dtypes: scalar helpers for the 16-bit float formats and a
 * strided bulk converter that tensor copies, safetensors loading and the kernels share. */
#ifndef KILN_RUNTIME_CONVERT_H
#define KILN_RUNTIME_CONVERT_H

#include <kiln/tensor.h>
#include <stdint.h>

/* IEEE binary16 and bfloat16 from and to float. Narrowing rounds to nearest, ties to even;
 * values beyond the range become infinity, subnormals are kept (no flush to zero), NaN
 * stays NaN (quiet, sign and top payload bits kept). Widening is exact. */
uint16_t kiln__f32_to_f16(float f);
float kiln__f16_to_f32(uint16_t h);
uint16_t kiln__f32_to_bf16(float f);
float kiln__bf16_to_f32(uint16_t h);

/* The same from double, rounded once (no double rounding through float). */
uint16_t kiln__f64_to_f16(double d);
uint16_t kiln__f64_to_bf16(double d);

/* 0 when kiln__convert can convert src elements to dst elements (see there), else
 * KILN_EUNSUPPORTED (or KILN_EINVAL for an unknown dtype). */
int kiln__convert_check(kiln_dtype_t dst, kiln_dtype_t src);

/* Converts n elements from src (stride sstride, in src elements) to dst (stride dstride,
 * in dst elements). Equal dtypes copy bits. Any dtype converts to a float dtype (integers
 * round to nearest even when they do not fit); integer and BOOL sources convert to integer
 * targets with a range check (BOOL targets get v != 0). The memory areas must not overlap.
 * Returns 0, KILN_EUNSUPPORTED (float to integer), KILN_EINVAL (unknown dtype) or
 * KILN_ERANGE (a value does not fit; the elements before it are written). */
int kiln__convert(void *dst, kiln_dtype_t dst_dtype, int64_t dstride, const void *src,
                  kiln_dtype_t src_dtype, int64_t sstride, int64_t n);

#endif
