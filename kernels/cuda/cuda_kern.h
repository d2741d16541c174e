/* The CUDA kernels' interface, in plain C so that both the C glue (engine/cuda) and the
 * CUDA C++ files include it. Tensors reach the kernels as descriptors (device address,
 * dtype, shape, strides in elements); an execution context carries the stream and the
 * handles of the lane the op runs on.
 *
 * The glue (engine/cuda/dispatch.c) has already checked every argument against the op's
 * contract in include/kiln/ops.h, made the stream wait for its inputs, and resolved
 * defaults (scale, max_period). Launchers only enqueue work on x->stream and return 0, or
 * KILN_EDEVICE (a launch or library failure), KILN_EDEVICE_OOM (scratch memory), or
 * KILN_EUNSUPPORTED (a case a kernel does not cover; nothing was enqueued then).
 * `out` may be F32, F16 or BF16 on the device: kernels compute in float32 and round once. */
#ifndef KILN_KERNELS_CUDA_KERN_H
#define KILN_KERNELS_CUDA_KERN_H

#include <stddef.h>
#include <stdint.h>

#include <kiln/ops.h>
#include <kiln/tensor.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln__cuda_desc {
    void *ptr;       /* device address of element [0, ...] */
    int dtype;       /* kiln_dtype_t */
    int ndim;
    int64_t numel;
    int64_t shape[KILN_TENSOR_MAX_DIMS];
    int64_t strides[KILN_TENSOR_MAX_DIMS]; /* in elements, >= 0 */
} kiln__cuda_desc_t;

#define KILN__CUDA_MAX_SCRATCH 8

/* Where an op runs: filled by the glue for each call. */
typedef struct kiln__cuda_exec {
    void *stream;          /* cudaStream_t */
    void *lt;              /* cublasLtHandle_t */
    void *workspace;       /* cuBLASLt workspace */
    size_t workspace_bytes;
    void **gemm_cache;     /* the stream's cache slot for gemm.cu (opaque there) */
    void **conv_cache;     /* the stream's cache slot for conv.cu (opaque there) */
    void *stream_ctx;      /* kiln__cuda_stream_t, for scratch memory */
    void *scratch[KILN__CUDA_MAX_SCRATCH]; /* blocks given back after the op */
    int n_scratch;
    int scratch_rc;        /* the first scratch failure (a KILN_E* code), else 0 */
    int tf32;              /* 1: float32 GEMMs may use TF32 tensor cores */
    int recording;         /* 1: the stream records a graph (kiln/graph.h): no host waits */
} kiln__cuda_exec_t;

/* Device scratch memory for the op being issued on x's stream, given back (stream
 * ordered) once the op has been enqueued. NULL on failure (x->scratch_rc says why). */
void *kiln__cuda_scratch(kiln__cuda_exec_t *x, size_t bytes);

/* Gives back every scratch block the op has taken so far (stream ordered, so work
 * already queued that uses them is unaffected); later kiln__cuda_scratch calls of the same
 * sizes reuse them from the cache. For kernels that run a path more than once in one op
 * (timing alternatives) without growing the allocation each time. */
void kiln__cuda_scratch_release(kiln__cuda_exec_t *x);

/* Elementwise op kinds (the same numbering as the CPU backend's kiln__op_*). */
enum {
    KILN__CUDA_ADD = 0, KILN__CUDA_SUB, KILN__CUDA_MUL, KILN__CUDA_DIV
};
enum {
    KILN__CUDA_SCALE = 0, KILN__CUDA_ADD_SCALAR, KILN__CUDA_CLAMP, KILN__CUDA_SILU,
    KILN__CUDA_GELU, KILN__CUDA_QUICK_GELU
};

/* Resolved convolution geometry. */
typedef struct kiln__cuda_conv_geom {
    int64_t stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w;
} kiln__cuda_conv_geom_t;

/* Reorders the dimensions of the n descriptors of an elementwise call (the same way for
 * all, which keeps every element paired with its partners) so that the first one's
 * strides decrease. The kernels merge dimensions that are adjacent in memory, so a
 * channels-last or otherwise permuted dense operand set becomes one flat range and the
 * accesses stay coalesced, instead of being walked in logical index order. */
static inline void kiln__cuda_order_dims(kiln__cuda_desc_t *const *d, int n)
{
    int nd = d[0]->ndim;
    for (int i = 1; i < nd; i++) { /* insertion sort: stable, few dimensions */
        for (int j = i; j > 0 && d[0]->strides[j] > d[0]->strides[j - 1]; j--) {
            for (int k = 0; k < n; k++) {
                int64_t sh = d[k]->shape[j], st = d[k]->strides[j];
                d[k]->shape[j] = d[k]->shape[j - 1];
                d[k]->strides[j] = d[k]->strides[j - 1];
                d[k]->shape[j - 1] = sh;
                d[k]->strides[j - 1] = st;
            }
        }
    }
}

/* copy.cu: out = in for equal shapes (any layouts); out's dtype equals in's or is a float
 * dtype (values converted, rounding to nearest even). */
int kiln__cudak_copy(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                     const kiln__cuda_desc_t *in);

/* eltwise.cu: a and b carry out's ndim and shape, with broadcast strides (0 where a
 * dimension stretches). */
int kiln__cudak_binary(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                       const kiln__cuda_desc_t *a, const kiln__cuda_desc_t *b, int op);

int kiln__cudak_unary(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                      const kiln__cuda_desc_t *in, int op, float p0, float p1);
int kiln__cudak_geglu(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                      const kiln__cuda_desc_t *in);

/* norm.cu: out is contiguous (group norm: or channels-last); w and b may be NULL. */
int kiln__cudak_softmax(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                        const kiln__cuda_desc_t *in);
int kiln__cudak_layer_norm(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                           const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                           const kiln__cuda_desc_t *b, float eps);
int kiln__cudak_group_norm(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                           const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                           const kiln__cuda_desc_t *b, int groups, float eps, int fuse_silu);

/* gemm.cu: out contiguous. */
int kiln__cudak_matmul(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                       const kiln__cuda_desc_t *a, const kiln__cuda_desc_t *b, int transpose_b);
/* add: NULL, or a descriptor of out's shape (broadcast strides allowed) summed into out,
 * through the GEMM's C operand when it is laid out like out. */
int kiln__cudak_linear(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                       const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                       const kiln__cuda_desc_t *b, const kiln__cuda_desc_t *add);

/* A row-major GEMM for the other kernels: C[m, n] (ldc) = A[m, k] op B, where B is stored
 * [k, n] (ldb) or, with trans_b, [n, k]; A is stored [m, k] (lda) or, with trans_a,
 * [k, m]. A and B have one dtype (dt_ab: F32, F16 or BF16), C has dt_c (F32, or dt_ab).
 * beta is 0 (C overwritten) or 1 (C accumulated). `batch` products at element strides
 * sa, sb, sc. */
int kiln__cudak_gemm(kiln__cuda_exec_t *x, int trans_a, int trans_b, int64_t m, int64_t n,
                     int64_t k, const void *a, int64_t lda, int64_t sa, const void *b,
                     int64_t ldb, int64_t sb, int dt_ab, void *c, int64_t ldc, int64_t sc,
                     int dt_c, float beta, int64_t batch);

/* conv.cu: out [N, OC, OH, OW] contiguous or channels-last; add as for linear (out
 * starts as bias + add and the convolution accumulates onto it). */
int kiln__cudak_conv2d(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                       const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                       const kiln__cuda_desc_t *b, const kiln__cuda_desc_t *add,
                       const kiln__cuda_conv_geom_t *g);

/* attention.cu: out [B, LQ, H*DV] contiguous; scale resolved. */
int kiln__cudak_attention(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                          const kiln__cuda_desc_t *q, const kiln__cuda_desc_t *k,
                          const kiln__cuda_desc_t *v, int heads, float scale);

/* interp.cu: out contiguous or (4-D) channels-last. */
int kiln__cudak_interpolate(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                            const kiln__cuda_desc_t *in, int mode);

/* embed.cu: max_period resolved. embedding returns KILN_ERANGE (having written nothing)
 * for an id outside the table; it waits on the host for that check. */
int kiln__cudak_timestep_embedding(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                                   const kiln__cuda_desc_t *t, float max_period);
int kiln__cudak_embedding(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                          const kiln__cuda_desc_t *w, const kiln__cuda_desc_t *ids);

#ifdef __cplusplus
}
#endif
#endif
