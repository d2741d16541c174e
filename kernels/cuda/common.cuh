/* Helpers shared by the CUDA kernels (CUDA C++ only): element loads and stores for every
 * float dtype, strided-offset geometry with dimension merging, block reductions, launch
 * sizing, and the internal entry points one kernel file offers another. */
#ifndef KILN_KERNELS_CUDA_COMMON_CUH
#define KILN_KERNELS_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include <kiln/error.h>

#include "kernels/cuda/cuda_kern.h"

namespace kiln_cuda {

/* Returns KILN_EDEVICE from the enclosing launcher when the last launch failed. */
#define KILN_CUDA_LAUNCHED()                                                                  \
    do {                                                                                      \
        if (cudaPeekAtLastError() != cudaSuccess)                                             \
            return KILN_EDEVICE;                                                              \
    } while (0)

static inline cudaStream_t stream_of(const kiln__cuda_exec_t *x)
{
    return (cudaStream_t)x->stream;
}

/* Element `i` (in elements) of an array of float dtype dt, as float. */
__device__ __forceinline__ float ld_f(const void *p, int dt, int64_t i)
{
    switch (dt) {
    case KILN_DTYPE_F32:
        return ((const float *)p)[i];
    case KILN_DTYPE_F16:
        return __half2float(((const __half *)p)[i]);
    case KILN_DTYPE_BF16:
        return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    case KILN_DTYPE_F64:
        return (float)((const double *)p)[i];
    default:
        return 0.0f;
    }
}

/* Stores v (rounded to nearest even) as element i of an F32/F16/BF16/F64 array. */
__device__ __forceinline__ void st_f(void *p, int dt, int64_t i, float v)
{
    switch (dt) {
    case KILN_DTYPE_F32:
        ((float *)p)[i] = v;
        break;
    case KILN_DTYPE_F16:
        ((__half *)p)[i] = __float2half_rn(v);
        break;
    case KILN_DTYPE_BF16:
        ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
        break;
    case KILN_DTYPE_F64:
        ((double *)p)[i] = (double)v;
        break;
    default:
        break;
    }
}

/* Strided geometry of up to 3 operands over one shape, dimensions merged where every
 * operand allows it (a dense tensor becomes one dimension). */
#define KILN_GEO_OPS 3
struct geo {
    int ndim;
    int64_t numel;
    int64_t shape[KILN_TENSOR_MAX_DIMS];
    int64_t st[KILN_GEO_OPS][KILN_TENSOR_MAX_DIMS];
};

/* Builds a geometry over `shape` for nops operands with the given strides. */
static inline geo geo_make(int ndim, const int64_t *shape, const int64_t *const *strides, int nops)
{
    geo g = {};
    g.numel = 1;
    for (int d = 0; d < ndim; d++)
        g.numel *= shape[d];
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 1)
            continue; /* a size-1 dimension never moves an offset */
        int n = g.ndim;
        bool merge = n > 0;
        for (int k = 0; merge && k < nops; k++) /* previous (outer) dim steps over this one */
            merge = g.st[k][n - 1] == strides[k][d] * shape[d];
        if (merge) {
            g.shape[n - 1] *= shape[d];
            for (int k = 0; k < nops; k++)
                g.st[k][n - 1] = strides[k][d];
        } else {
            g.shape[n] = shape[d];
            for (int k = 0; k < nops; k++)
                g.st[k][n] = strides[k][d];
            g.ndim++;
        }
    }
    return g;
}

/* Offsets (in elements) of linear index i in each of NOPS operands. I is the index type
 * of the divisions: uint32_t where geo_small says it fits (much cheaper), else int64_t. */
template <int NOPS, typename I = int64_t>
__device__ __forceinline__ void geo_offsets(const geo &g, int64_t i, int64_t *off)
{
    for (int k = 0; k < NOPS; k++)
        off[k] = 0;
    I v = (I)i;
    for (int d = g.ndim - 1; d >= 0; d--) {
        I s = (I)g.shape[d];
        I q = v / s, r = v - q * s;
        for (int k = 0; k < NOPS; k++)
            off[k] += (int64_t)r * g.st[k][d];
        v = q;
    }
}

/* 1 when every index and offset of g fits 32 bits (geo_offsets<N, uint32_t> is exact). */
static inline bool geo_small(const geo &g, int nops)
{
    if (g.numel >= ((int64_t)1 << 31))
        return false;
    for (int k = 0; k < nops; k++) {
        int64_t reach = 0;
        for (int d = 0; d < g.ndim; d++)
            reach += (g.shape[d] - 1) * g.st[k][d];
        if (reach >= ((int64_t)1 << 31))
            return false;
    }
    return true;
}

/* Blocks for a grid-stride loop over n items with `threads` per block. */
static inline unsigned grid_for(int64_t n, int threads)
{
    int64_t b = (n + threads - 1) / threads;
    if (b > 65535 * 8)
        b = 65535 * 8;
    return (unsigned)(b < 1 ? 1 : b);
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it. */
template <typename T> __device__ __forceinline__ T block_sum(T v, T *shared32)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads(); /* shared32 may still be read from a previous call */
    if (lane == 0)
        shared32[warp] = v;
    __syncthreads();
    T t = lane < nw ? shared32[lane] : (T)0;
    for (int o = 16; o > 0; o >>= 1)
        t += __shfl_xor_sync(0xffffffffu, t, o);
    return t;
}

template <typename T> __device__ __forceinline__ T block_max(T v, T *shared32)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0)
        shared32[warp] = v;
    __syncthreads();
    T t = lane < nw ? shared32[lane] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1)
        t = fmaxf(t, __shfl_xor_sync(0xffffffffu, t, o));
    return t;
}

/* 1 when the descriptor is dense row-major (size-1 dimensions ignored). */
static inline bool is_dense(const kiln__cuda_desc_t *d)
{
    int64_t expect = 1;
    for (int i = d->ndim - 1; i >= 0; i--) {
        if (d->shape[i] == 1)
            continue;
        if (d->strides[i] != expect)
            return false;
        expect *= d->shape[i];
    }
    return true;
}

/* 1 when d is a 4-D [N, C, H, W] descriptor laid out channels-last (dense in N, H, W, C
 * order; size-1 dimensions ignored). */
/* 1 when a (a descriptor of b's shape) is laid out exactly like b, with its dtype: the same
 * element at the same offset wherever a dimension has more than one entry. */
static inline bool same_layout(const kiln__cuda_desc_t *a, const kiln__cuda_desc_t *b)
{
    if (a->dtype != b->dtype || a->ndim != b->ndim)
        return false;
    for (int i = 0; i < b->ndim; i++)
        if (b->shape[i] > 1 && a->strides[i] != b->strides[i])
            return false;
    return true;
}

static inline bool is_cl(const kiln__cuda_desc_t *d)
{
    if (d->ndim != 4)
        return false;
    const int order[4] = {1, 3, 2, 0}; /* innermost first */
    int64_t expect = 1;
    for (int k = 0; k < 4; k++) {
        int i = order[k];
        if (d->shape[i] != 1 && d->strides[i] != expect)
            return false;
        expect *= d->shape[i];
    }
    return true;
}

static inline size_t dtype_size(int dt)
{
    return kiln_dtype_size((kiln_dtype_t)dt);
}

/* A dense copy of d in scratch memory with dtype dt (d itself when it already is dense
 * and of dtype dt). Returns 0 or an error; *res receives the result. */
int dense_as(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *d, int dt, kiln__cuda_desc_t *res);

/* out[o, c, i] = bias[c] for a dense out of [outer, C, inner] elements (dtype dt_out). */
int bias_fill(kiln__cuda_exec_t *x, void *out, int dt_out, int64_t outer, int64_t c,
              int64_t inner, const kiln__cuda_desc_t *bias);

/* out (any layout) = bias broadcast along out's dimension cdim + add (a descriptor of out's
 * shape, broadcast strides allowed); either may be NULL (both NULL: nothing is written).
 * The start of a product that then accumulates onto out (beta 1). */
int out_start(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out, int cdim,
              const kiln__cuda_desc_t *bias, const kiln__cuda_desc_t *add);

/* conv_dnn.cu: convolution plans through cuDNN. conv_dnn_plan gives the shape's cached
 * plan (made on first use, which measures cuDNN's algorithms on the call's buffers) or
 * NULL when cuDNN is absent or does not cover the call; choice is conv.cu's verdict for
 * the shape (0 undecided, 1 cuDNN, 2 im2col), ms cuDNN's measured time. */
struct dnn_plan;
dnn_plan *conv_dnn_plan(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                        const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                        const kiln__cuda_conv_geom_t *g);
int *conv_dnn_choice(dnn_plan *p);
float conv_dnn_ms(dnn_plan *p);
int conv_dnn_run(kiln__cuda_exec_t *x, dnn_plan *p, const kiln__cuda_desc_t *out,
                 const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                 const kiln__cuda_desc_t *bias, const kiln__cuda_desc_t *add);

/* conv_cl.cu: a convolution of channels-last F16/BF16 tensors as im2col + one GEMM per
 * chunk of samples, writing the channels-last out directly (add as kiln__cudak_conv2d).
 * conv_cl_ok says whether the operands suit it. */
bool conv_cl_ok(const kiln__cuda_desc_t *out, const kiln__cuda_desc_t *in,
                const kiln__cuda_desc_t *w);
int conv_cl_gemm(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                 const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                 const kiln__cuda_desc_t *bias, const kiln__cuda_desc_t *add,
                 const kiln__cuda_conv_geom_t *g);

} // namespace kiln_cuda

#endif
