/* Helpers shared by the op tests (tests/unit/test_ops_*.c): seeded random tensors,
 * strided views to feed ops non-contiguous inputs, reading any tensor back as a dense
 * double array, and the closeness check against a double-precision reference.
 *
 * The closeness bound is relative: |got - ref| <= rtol * (|ref| + mean|ref|), so values
 * near zero (cancellations in a long dot product) are judged against the tensor's scale
 * instead of their own tiny magnitude. */
#ifndef KILN_TESTS_OPS_COMMON_H
#define KILN_TESTS_OPS_COMMON_H

#include <kiln/ops.h>
#include <kiln/tensor.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "runner.h"
#include "runtime/convert.h"

/* f32 results against double references (see the file comment for the metric). */
#define F32_RTOL 1e-5

#define NDIMS(...) ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
#define SHAPE(...)                                                                                 \
    NDIMS(__VA_ARGS__), (const int64_t[])                                                          \
    {                                                                                              \
        __VA_ARGS__                                                                                \
    }

static uint64_t ops_rng = 0x9e3779b97f4a7c15ull;

static inline void rng_seed(uint64_t s)
{
    ops_rng = s * 0x9e3779b97f4a7c15ull + 1;
}

/* Uniform in [-1, 1) from a xorshift64* generator. */
static inline double rng_uniform(void)
{
    ops_rng ^= ops_rng >> 12;
    ops_rng ^= ops_rng << 25;
    ops_rng ^= ops_rng >> 27;
    uint64_t v = ops_rng * 0x2545f4914f6cdd1dull;
    return (double)(v >> 11) / (double)(1ull << 52) - 1.0;
}

/* Advances a row-major index; returns 0 after the last element. */
static inline int index_next(int64_t *idx, int ndim, const int64_t *shape)
{
    for (int d = ndim - 1; d >= 0; d--) {
        if (++idx[d] < shape[d])
            return 1;
        idx[d] = 0;
    }
    return 0;
}

static inline void *elem_ptr(const kiln_tensor_t *t, const int64_t *idx)
{
    char *p = kiln_tensor_data(t);
    for (int d = 0; d < kiln_tensor_ndim(t); d++)
        p += idx[d] * kiln_tensor_stride(t, d) * (int64_t)kiln_dtype_size(kiln_tensor_dtype(t));
    return p;
}

static inline double elem_get(const kiln_tensor_t *t, const int64_t *idx)
{
    void *p = elem_ptr(t, idx);
    switch (kiln_tensor_dtype(t)) {
    case KILN_DTYPE_F32:
        return *(float *)p;
    case KILN_DTYPE_F64:
        return *(double *)p;
    case KILN_DTYPE_F16:
        return kiln__f16_to_f32(*(uint16_t *)p);
    case KILN_DTYPE_BF16:
        return kiln__bf16_to_f32(*(uint16_t *)p);
    case KILN_DTYPE_I32:
        return *(int32_t *)p;
    case KILN_DTYPE_I64:
        return (double)*(int64_t *)p;
    default:
        return NAN;
    }
}

static inline void elem_set(kiln_tensor_t *t, const int64_t *idx, double v)
{
    void *p = elem_ptr(t, idx);
    switch (kiln_tensor_dtype(t)) {
    case KILN_DTYPE_F32:
        *(float *)p = (float)v;
        break;
    case KILN_DTYPE_F64:
        *(double *)p = v;
        break;
    case KILN_DTYPE_F16:
        *(uint16_t *)p = kiln__f32_to_f16((float)v);
        break;
    case KILN_DTYPE_BF16:
        *(uint16_t *)p = kiln__f32_to_bf16((float)v);
        break;
    case KILN_DTYPE_I32:
        *(int32_t *)p = (int32_t)v;
        break;
    case KILN_DTYPE_I64:
        *(int64_t *)p = (int64_t)v;
        break;
    default:
        break;
    }
}

/* Every element of t in row-major index order, as doubles (free with free()). */
static inline double *to_doubles(const kiln_tensor_t *t)
{
    int64_t n = kiln_tensor_numel(t);
    double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    int64_t idx[KILN_TENSOR_MAX_DIMS] = {0}, shape[KILN_TENSOR_MAX_DIMS];
    int nd = kiln_tensor_ndim(t);
    for (int d = 0; d < nd; d++)
        shape[d] = kiln_tensor_dim(t, d);
    for (int64_t i = 0; i < n; i++) {
        v[i] = elem_get(t, idx);
        index_next(idx, nd, shape);
    }
    return v;
}

/* Fills t (any layout) with uniform values times `scale`, in row-major index order. */
static inline void fill_random(kiln_tensor_t *t, double scale)
{
    int64_t idx[KILN_TENSOR_MAX_DIMS] = {0}, shape[KILN_TENSOR_MAX_DIMS];
    int nd = kiln_tensor_ndim(t);
    for (int d = 0; d < nd; d++)
        shape[d] = kiln_tensor_dim(t, d);
    for (int64_t i = 0; i < kiln_tensor_numel(t); i++) {
        elem_set(t, idx, rng_uniform() * scale);
        index_next(idx, nd, shape);
    }
}

/* A new zero-filled tensor; fails the test when it cannot be made. */
static inline kiln_tensor_t *tnew(kiln_dtype_t dt, int ndim, const int64_t *shape)
{
    kiln_tensor_t *t = kiln_tensor_new(dt, ndim, shape);
    if (!t)
        kiln_test_fail(__FILE__, __LINE__, "kiln_tensor_new failed");
    return t;
}

/* A zero-filled F32 [n, c, h, w] tensor laid out channels-last (a view of [n, h, w, c]). */
static inline kiln_tensor_t *tnew_cl(int64_t n, int64_t c, int64_t h, int64_t w)
{
    kiln_tensor_t *nhwc = tnew(KILN_DTYPE_F32, 4, (const int64_t[]){n, h, w, c}), *v = NULL;
    if (kiln_tensor_permute(nhwc, (const int[]){0, 3, 1, 2}, &v) != 0)
        kiln_test_fail(__FILE__, __LINE__, "kiln_tensor_permute failed");
    kiln_tensor_release(nhwc);
    return v;
}

/* A random tensor of `shape` (scaled by `scale`). layout 0: contiguous; 1: a permuted
 * view (the storage holds the dimensions in reverse order); 2: a slice out of a larger
 * tensor (every dimension one longer, starting at 1), so rows have gaps. */
static inline kiln_tensor_t *trand(kiln_dtype_t dt, int layout, double scale, int ndim,
                                   const int64_t *shape)
{
    kiln_tensor_t *t = NULL;
    if (layout == 0) {
        t = tnew(dt, ndim, shape);
    } else if (layout == 1) {
        int64_t rev[KILN_TENSOR_MAX_DIMS] = {0};
        int perm[KILN_TENSOR_MAX_DIMS];
        for (int d = 0; d < ndim; d++) {
            rev[d] = shape[ndim - 1 - d];
            perm[d] = ndim - 1 - d;
        }
        kiln_tensor_t *base = tnew(dt, ndim, rev);
        ASSERT_EQ_INT(kiln_tensor_permute(base, perm, &t), 0);
        kiln_tensor_release(base);
    } else {
        int64_t big[KILN_TENSOR_MAX_DIMS] = {0};
        for (int d = 0; d < ndim; d++)
            big[d] = shape[d] + 1;
        kiln_tensor_t *cur = tnew(dt, ndim, big);
        for (int d = 0; d < ndim; d++) {
            kiln_tensor_t *next = NULL;
            ASSERT_EQ_INT(kiln_tensor_slice(cur, d, 1, shape[d], &next), 0);
            kiln_tensor_release(cur);
            cur = next;
        }
        t = cur;
    }
    fill_random(t, scale);
    return t;
}

/* Compares got (any layout) with ref (row-major doubles) under the relative bound. */
static inline void check_close_at(const char *file, int line, const kiln_tensor_t *got,
                                  const double *ref, double rtol)
{
    int64_t n = kiln_tensor_numel(got);
    double *g = to_doubles(got), mean = 0.0;
    for (int64_t i = 0; i < n; i++)
        mean += fabs(ref[i]) / (double)n;
    for (int64_t i = 0; i < n; i++) {
        double tol = rtol * (fabs(ref[i]) + mean) + 1e-30;
        if (!(fabs(g[i] - ref[i]) <= tol)) {
            double gi = g[i];
            free(g);
            kiln_test_fail(file, line, "element %lld: got %.9g, want %.9g (tol %.3g)", (long long)i,
                           gi, ref[i], tol);
        }
    }
    free(g);
}
#define CHECK_CLOSE(got, ref, rtol) check_close_at(__FILE__, __LINE__, (got), (ref), (rtol))

/* Exact comparison against a list of expected floats. */
static inline void check_exact_at(const char *file, int line, const kiln_tensor_t *got,
                                  const double *want, int64_t n)
{
    if (kiln_tensor_numel(got) != n)
        kiln_test_fail(file, line, "numel %lld, want %lld", (long long)kiln_tensor_numel(got),
                       (long long)n);
    double *g = to_doubles(got);
    for (int64_t i = 0; i < n; i++) {
        if (g[i] != want[i] && !(isnan(g[i]) && isnan(want[i]))) {
            double gi = g[i];
            free(g);
            kiln_test_fail(file, line, "element %lld: got %.9g, want %.9g", (long long)i, gi,
                           want[i]);
        }
    }
    free(g);
}
#define CHECK_EXACT(got, ...)                                                                      \
    check_exact_at(__FILE__, __LINE__, (got), (const double[]){__VA_ARGS__},                       \
                   (int64_t)(sizeof((double[]){__VA_ARGS__}) / sizeof(double)))

/* 1 when every element of t is exactly v (to check that a failed op wrote nothing). */
static inline int all_equal(const kiln_tensor_t *t, double v)
{
    double *g = to_doubles(t);
    int ok = 1;
    for (int64_t i = 0; i < kiln_tensor_numel(t); i++)
        ok &= g[i] == v;
    free(g);
    return ok;
}

#endif
