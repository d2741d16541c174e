/* The CPU backend of the op library: reference kernels (plain loops, float32 arithmetic,
 * BLAS for GEMMs when the build has it) and the helpers they share.
 *
 * kernels/ops.c validates every argument (shapes, dtypes, devices, overlap) before it
 * calls a kiln__cpu_* kernel, so the kernels trust their inputs: all tensors are host
 * tensors, `out` is F32 (except for kiln__cpu_copy) and writable, and shapes agree as the
 * public contract in include/kiln/ops.h says. Kernels return 0 or KILN_ENOMEM (scratch
 * memory; `out` may then be partly written), and embedding also KILN_ERANGE.
 * Non-F32 float inputs are converted to F32 temporaries on entry (kiln__cpu_as_f32).
 * All functions may run on any thread; they keep no shared state. */
#ifndef KILN_KERNELS_CPU_OPS_H
#define KILN_KERNELS_CPU_OPS_H

#include <kiln/ops.h>
#include <kiln/tensor.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/tensor_int.h"

/* Elementwise op kinds, shared with the dispatcher (and later the device backends). */
typedef enum kiln__op_binary {
    KILN__OP_BINARY_ADD = 0,
    KILN__OP_BINARY_SUB,
    KILN__OP_BINARY_MUL,
    KILN__OP_BINARY_DIV
} kiln__op_binary_t;

typedef enum kiln__op_unary {
    KILN__OP_UNARY_SCALE = 0,  /* x * p0 */
    KILN__OP_UNARY_ADD_SCALAR, /* x + p0 */
    KILN__OP_UNARY_CLAMP,      /* min(max(x, p0), p1) */
    KILN__OP_UNARY_SILU,
    KILN__OP_UNARY_GELU, /* erf form */
    KILN__OP_UNARY_QUICK_GELU
} kiln__op_unary_t;

/* Resolved convolution geometry (every field already defaulted and checked). */
typedef struct kiln__conv2d_geom {
    int64_t stride_h, stride_w;
    int64_t pad_top, pad_left; /* bottom/right padding only shows in out's size */
    int64_t dilation_h, dilation_w;
} kiln__conv2d_geom_t;

/* ---- helpers (common.c) ---------------------------------------------------------------- */

/* Scratch memory for kernels, from kiln_malloc. NULL when out of memory (or bytes is 0,
 * which callers never ask for). Free with kiln__cpu_scratch_free (NULL is fine). */
void *kiln__cpu_scratch_alloc(size_t bytes);
void kiln__cpu_scratch_free(void *p);

/* The largest single scratch block this thread has asked for since the last reset; reset
 * non-zero starts a new count. For tests that check that a kernel stays within its memory
 * promise (attention never allocating a full score matrix). */
size_t kiln__cpu_scratch_peak(int reset);

/* An F32 version of t in *res: t itself when it is F32 (and contiguous, if `dense`), else
 * a new contiguous F32 copy whose reference lands in *hold (release it when done; *hold
 * is NULL when nothing was made). Returns 0 or KILN_ENOMEM. */
int kiln__cpu_as_f32(const kiln_tensor_t *t, int dense, kiln_tensor_t **hold,
                     const kiln_tensor_t **res);

/* Strides (in elements) that make t read as a tensor of the given broadcast shape: t's
 * dimensions align at the end, and size-1 or missing ones get stride 0. */
void kiln__cpu_bcast_strides(const kiln_tensor_t *t, int ndim, const int64_t *shape,
                             int64_t *strides);

/* A walk over the elements of up to KILN__CPU_WALK_MAX_OPS operands of one shape, one
 * innermost run at a time. Dimensions that are contiguous across each other in every
 * operand are merged first, so a dense tensor is walked as a single run. */
#define KILN__CPU_WALK_MAX_OPS 4
typedef struct kiln__cpu_walk {
    int ndim;
    int nops;
    int64_t shape[KILN_TENSOR_MAX_DIMS];
    char *base[KILN__CPU_WALK_MAX_OPS];                            /* borrowed: element [0, ...] */
    size_t esize[KILN__CPU_WALK_MAX_OPS];                          /* bytes per element */
    int64_t strides[KILN__CPU_WALK_MAX_OPS][KILN_TENSOR_MAX_DIMS]; /* in elements */
} kiln__cpu_walk_t;

/* Called once per innermost run of n elements: p[i] is operand i's first element of the
 * run and s[i] its stride in elements along the run. */
typedef void (*kiln__cpu_run_fn)(void *ctx, int64_t n, char *const *p, const int64_t *s);

/* Starts a walk over `shape`; operands are added in order with kiln__cpu_walk_add
 * (strides NULL: the tensor's own, which must then have `shape`). */
void kiln__cpu_walk_init(kiln__cpu_walk_t *w, int ndim, const int64_t *shape);
void kiln__cpu_walk_add(kiln__cpu_walk_t *w, const kiln_tensor_t *t, const int64_t *strides);

/* Merges dimensions and calls fn for every run (nothing for an empty shape). */
void kiln__cpu_walk_run(kiln__cpu_walk_t *w, kiln__cpu_run_fn fn, void *ctx);

/* ---- GEMM (gemm.c) ---------------------------------------------------------------------- */

/* C = alpha * op(A) op(B) + beta * C, row-major, with op(A) [M, K], op(B) [K, N] and C
 * [M, N]; trans_a means A is stored [K, M] (and likewise B as [N, K]). Leading dimensions
 * are row strides in elements. beta == 0 ignores C's old contents (NaN included). Uses
 * cblas_sgemm when the build has BLAS, else float loops. */
void kiln__cpu_gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                    int64_t ldc);

/* ---- kernels ------------------------------------------------------------------------- */

/* copy.c: out = x for equal shapes, converting dtypes (see kiln_op_contiguous). */
int kiln__cpu_copy(kiln_tensor_t *out, const kiln_tensor_t *x);

/* eltwise.c */
int kiln__cpu_binary(kiln_tensor_t *out, const kiln_tensor_t *a, const kiln_tensor_t *b,
                     kiln__op_binary_t op);
int kiln__cpu_unary(kiln_tensor_t *out, const kiln_tensor_t *x, kiln__op_unary_t op, float p0,
                    float p1);
int kiln__cpu_geglu(kiln_tensor_t *out, const kiln_tensor_t *x);

/* norm.c */
int kiln__cpu_softmax(kiln_tensor_t *out, const kiln_tensor_t *x);
int kiln__cpu_layer_norm(kiln_tensor_t *out, const kiln_tensor_t *x, const kiln_tensor_t *w,
                         const kiln_tensor_t *b, float eps);
int kiln__cpu_group_norm(kiln_tensor_t *out, const kiln_tensor_t *x, const kiln_tensor_t *w,
                         const kiln_tensor_t *b, int groups, float eps, int fuse_silu);

/* matmul.c: out is contiguous; the shapes are already checked (broadcast included). */
int kiln__cpu_matmul(kiln_tensor_t *out, const kiln_tensor_t *a, const kiln_tensor_t *b,
                     int transpose_b);
int kiln__cpu_linear(kiln_tensor_t *out, const kiln_tensor_t *x, const kiln_tensor_t *w,
                     const kiln_tensor_t *b);

/* conv2d.c */
int kiln__cpu_conv2d(kiln_tensor_t *out, const kiln_tensor_t *x, const kiln_tensor_t *w,
                     const kiln_tensor_t *b, const kiln__conv2d_geom_t *g);

/* attention.c: scale already resolved (never 0). */
int kiln__cpu_attention(kiln_tensor_t *out, const kiln_tensor_t *q, const kiln_tensor_t *k,
                        const kiln_tensor_t *v, int heads, float scale);

/* interpolate.c */
int kiln__cpu_interpolate(kiln_tensor_t *out, const kiln_tensor_t *x, kiln_interp_mode_t mode);

/* embed.c: max_period already resolved (> 0). kiln__cpu_embedding checks every id against
 * the vocabulary before it writes and returns KILN_ERANGE for one outside it. */
int kiln__cpu_timestep_embedding(kiln_tensor_t *out, const kiln_tensor_t *t, float max_period);
int kiln__cpu_embedding(kiln_tensor_t *out, const kiln_tensor_t *w, const kiln_tensor_t *ids);

#endif
