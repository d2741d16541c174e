/* Elementwise CUDA kernels: broadcasting binary arithmetic, the scalar ops, clamp, the
 * activations (silu, erf-gelu, quick_gelu) and SD's GEGLU gate, over strided operands of
 * any float dtype. A dense float32 operand set takes a vectorized path. */
#include "kernels/cuda/common.cuh"

namespace kiln_cuda {

__device__ __forceinline__ float binop(int op, float a, float b)
{
    switch (op) {
    case KILN__CUDA_ADD:
        return a + b;
    case KILN__CUDA_SUB:
        return a - b;
    case KILN__CUDA_MUL:
        return a * b;
    default:
        return a / b;
    }
}

/* 0.5 x (1 + erf(x / sqrt 2)) written with erfc, which keeps its accuracy where erf is
 * near -1 (large negative x). */
__device__ __forceinline__ float gelu_f(float x)
{
    return 0.5f * x * erfcf(-x * 0.70710678118654752f);
}

__device__ __forceinline__ float unop(int op, float x, float p0, float p1)
{
    switch (op) {
    case KILN__CUDA_SCALE:
        return x * p0;
    case KILN__CUDA_ADD_SCALAR:
        return x + p0;
    case KILN__CUDA_CLAMP: /* comparisons with NaN are false: NaN passes through */
        return x < p0 ? p0 : (x > p1 ? p1 : x);
    case KILN__CUDA_SILU:
        return x / (1.0f + expf(-x));
    case KILN__CUDA_GELU:
        return gelu_f(x);
    default: /* quick_gelu */
        return x / (1.0f + expf(-1.702f * x));
    }
}

struct operand {
    void *p;
    int dt;
};

template <typename I> __global__ void binary_k(geo g, operand o, operand a, operand b, int op)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.numel; i += stride) {
        int64_t off[3];
        geo_offsets<3, I>(g, i, off);
        st_f(o.p, o.dt, off[0], binop(op, ld_f(a.p, a.dt, off[1]), ld_f(b.p, b.dt, off[2])));
    }
}

/* Dense float32 a, b and out of n elements (n % 4 == 0, 16-byte aligned). */
__global__ void binary_dense4_k(float4 *o, const float4 *a, const float4 *b, int64_t n4, int op)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += stride) {
        float4 x = a[i], y = b[i];
        o[i] = make_float4(binop(op, x.x, y.x), binop(op, x.y, y.y), binop(op, x.z, y.z),
                           binop(op, x.w, y.w));
    }
}

template <typename I>
__global__ void unary_k(geo g, operand o, operand a, int op, float p0, float p1)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.numel; i += stride) {
        int64_t off[2];
        geo_offsets<2, I>(g, i, off);
        st_f(o.p, o.dt, off[0], unop(op, ld_f(a.p, a.dt, off[1]), p0, p1));
    }
}

/* out[..., j] = x[..., j] * gelu(x[..., half + j]): a is the value half, b the gate. */
template <typename I> __global__ void geglu_k(geo g, operand o, operand a, operand b)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.numel; i += stride) {
        int64_t off[3];
        geo_offsets<3, I>(g, i, off);
        st_f(o.p, o.dt, off[0], ld_f(a.p, a.dt, off[1]) * gelu_f(ld_f(b.p, b.dt, off[2])));
    }
}

/* GEGLU's vector path: N elements of T moved as one access of N * sizeof(T) bytes. */
template <typename T, int N> struct alignas(sizeof(T) * N) gvec {
    T v[N];
};

__device__ __forceinline__ float to_f(float v)
{
    return v;
}
__device__ __forceinline__ float to_f(__half v)
{
    return __half2float(v);
}
__device__ __forceinline__ float to_f(__nv_bfloat16 v)
{
    return __bfloat162float(v);
}
template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v)
{
    return v;
}
template <> __device__ __forceinline__ __half from_f<__half>(float v)
{
    return __float2half_rn(v);
}
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v)
{
    return __float2bfloat16_rn(v);
}

/* GEGLU over rows of one dtype T with unit stride along the row: row r of x starts at
 * r * sx, of out at r * so; item i is vector j = i % hv of row r = i / hv (hv = half / N).
 * half, so and sx are multiples of N and both bases aligned to a vector (the launcher
 * checks), total = rows * hv < 2^31. One read of each half, one write. */
template <typename T, int N>
__global__ void geglu_vec_k(T *out, const T *x, uint32_t total, uint32_t hv, int64_t half,
                            int64_t so, int64_t sx)
{
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += gridDim.x * blockDim.x) {
        uint32_t r = i / hv, j = i - r * hv;
        const T *a = x + r * sx + (int64_t)j * N;
        gvec<T, N> va = *reinterpret_cast<const gvec<T, N> *>(a);
        gvec<T, N> vg = *reinterpret_cast<const gvec<T, N> *>(a + half), vo;
#pragma unroll
        for (int e = 0; e < N; e++)
            vo.v[e] = from_f<T>(to_f(va.v[e]) * gelu_f(to_f(vg.v[e])));
        *reinterpret_cast<gvec<T, N> *>(out + r * so + (int64_t)j * N) = vo;
    }
}

/* Dense operands of one 16-bit dtype T, two elements per thread step (n even, 4-byte
 * aligned): the common case of the model's residual adds. */
template <typename T, typename T2>
__global__ void binary_dense2_k(T2 *o, const T2 *a, const T2 *b, int64_t n2, int op)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n2; i += stride) {
        T2 x = a[i], y = b[i];
        float2 fx = make_float2((float)x.x, (float)x.y), fy = make_float2((float)y.x, (float)y.y);
        T2 r;
        r.x = (T)binop(op, fx.x, fy.x);
        r.y = (T)binop(op, fx.y, fy.y);
        o[i] = r;
    }
}

static bool aligned16(const void *p)
{
    return ((uintptr_t)p & 15u) == 0;
}

static int binary_run(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                      const kiln__cuda_desc_t *a, const kiln__cuda_desc_t *b, int op)
{
    if (out->numel == 0)
        return 0;
    const int64_t *st[3] = {out->strides, a->strides, b->strides};
    geo g = geo_make(out->ndim, out->shape, st, 3);
    const int threads = 256;
    cudaStream_t s = stream_of(x);
    bool dense = g.ndim <= 1 && (g.ndim == 0 || (g.st[0][0] == 1 && g.st[1][0] == 1 &&
                                                 g.st[2][0] == 1));
    if (dense && out->dtype == KILN_DTYPE_F32 && a->dtype == KILN_DTYPE_F32 &&
        b->dtype == KILN_DTYPE_F32 && g.numel % 4 == 0 && aligned16(out->ptr) &&
        aligned16(a->ptr) && aligned16(b->ptr)) {
        int64_t n4 = g.numel / 4;
        binary_dense4_k<<<grid_for(n4, threads), threads, 0, s>>>(
            (float4 *)out->ptr, (const float4 *)a->ptr, (const float4 *)b->ptr, n4, op);
    } else if (dense && g.numel % 2 == 0 && out->dtype == a->dtype && a->dtype == b->dtype &&
               (out->dtype == KILN_DTYPE_F16 || out->dtype == KILN_DTYPE_BF16) &&
               ((uintptr_t)out->ptr | (uintptr_t)a->ptr | (uintptr_t)b->ptr) % 4 == 0) {
        int64_t n2 = g.numel / 2;
        if (out->dtype == KILN_DTYPE_F16)
            binary_dense2_k<__half, __half2><<<grid_for(n2, threads), threads, 0, s>>>(
                (__half2 *)out->ptr, (const __half2 *)a->ptr, (const __half2 *)b->ptr, n2, op);
        else
            binary_dense2_k<__nv_bfloat16, __nv_bfloat162><<<grid_for(n2, threads), threads, 0, s>>>(
                (__nv_bfloat162 *)out->ptr, (const __nv_bfloat162 *)a->ptr,
                (const __nv_bfloat162 *)b->ptr, n2, op);
    } else if (geo_small(g, 3)) {
        binary_k<uint32_t><<<grid_for(g.numel, threads), threads, 0, s>>>(
            g, {out->ptr, out->dtype}, {a->ptr, a->dtype}, {b->ptr, b->dtype}, op);
    } else {
        binary_k<int64_t><<<grid_for(g.numel, threads), threads, 0, s>>>(
            g, {out->ptr, out->dtype}, {a->ptr, a->dtype}, {b->ptr, b->dtype}, op);
    }
    KILN_CUDA_LAUNCHED();
    return 0;
}

template <typename T, int N>
static void geglu_vec_launch(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                             const kiln__cuda_desc_t *in, int64_t total, int64_t half,
                             int64_t so, int64_t sx)
{
    geglu_vec_k<T, N><<<grid_for(total, 256), 256, 0, stream_of(x)>>>(
        (T *)out->ptr, (const T *)in->ptr, (uint32_t)total, (uint32_t)(half / N), half, so, sx);
}

/* GEGLU's vector path, for x and out of one dtype (F32, F16 or BF16) with unit stride
 * along the row and evenly strided rows (the leading dimensions merge into one): 16-byte
 * vectors when the half width, both row strides and both bases allow, else 2-element
 * ones. Returns false, having launched nothing, when the call does not fit. */
static bool geglu_vec(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                      const kiln__cuda_desc_t *in, int64_t half)
{
    int last = out->ndim - 1, dt = in->dtype;
    if (out->dtype != dt || half < 2 || in->strides[last] != 1 || out->strides[last] != 1 ||
        (dt != KILN_DTYPE_F32 && dt != KILN_DTYPE_F16 && dt != KILN_DTYPE_BF16))
        return false;
    const int64_t *st[2] = {out->strides, in->strides};
    geo g = geo_make(last, out->shape, st, 2); // the rows: [...] without the last dimension
    if (g.ndim > 1)
        return false;
    int64_t so = g.ndim ? g.st[0][0] : 0, sx = g.ndim ? g.st[1][0] : 0;
    int64_t es = (int64_t)dtype_size(dt), n = 16 / es;
    uintptr_t bases = (uintptr_t)out->ptr | (uintptr_t)in->ptr;
    if (half % n || so % n || sx % n || bases % 16) {
        n = 2;
        if (half % 2 || so % 2 || sx % 2 || bases % (uintptr_t)(2 * es))
            return false;
    }
    int64_t total = g.numel * (half / n);
    if (total >= ((int64_t)1 << 31))
        return false;
    if (dt == KILN_DTYPE_F16 && n == 8)
        geglu_vec_launch<__half, 8>(x, out, in, total, half, so, sx);
    else if (dt == KILN_DTYPE_F16)
        geglu_vec_launch<__half, 2>(x, out, in, total, half, so, sx);
    else if (dt == KILN_DTYPE_BF16 && n == 8)
        geglu_vec_launch<__nv_bfloat16, 8>(x, out, in, total, half, so, sx);
    else if (dt == KILN_DTYPE_BF16)
        geglu_vec_launch<__nv_bfloat16, 2>(x, out, in, total, half, so, sx);
    else if (n == 4)
        geglu_vec_launch<float, 4>(x, out, in, total, half, so, sx);
    else
        geglu_vec_launch<float, 2>(x, out, in, total, half, so, sx);
    return true;
}

} // namespace kiln_cuda

using namespace kiln_cuda;

extern "C" int kiln__cudak_binary(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                                  const kiln__cuda_desc_t *a, const kiln__cuda_desc_t *b, int op)
{
    return binary_run(x, out, a, b, op);
}

extern "C" int kiln__cudak_unary(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                                 const kiln__cuda_desc_t *in, int op, float p0, float p1)
{
    if (out->numel == 0)
        return 0;
    const int64_t *st[2] = {out->strides, in->strides};
    geo g = geo_make(out->ndim, out->shape, st, 2);
    const int threads = 256;
    if (geo_small(g, 2))
        unary_k<uint32_t><<<grid_for(g.numel, threads), threads, 0, stream_of(x)>>>(
            g, {out->ptr, out->dtype}, {in->ptr, in->dtype}, op, p0, p1);
    else
        unary_k<int64_t><<<grid_for(g.numel, threads), threads, 0, stream_of(x)>>>(
            g, {out->ptr, out->dtype}, {in->ptr, in->dtype}, op, p0, p1);
    KILN_CUDA_LAUNCHED();
    return 0;
}

extern "C" int kiln__cudak_geglu(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                                 const kiln__cuda_desc_t *in)
{
    if (out->numel == 0)
        return 0;
    int last = out->ndim - 1;
    int64_t half = out->shape[last];
    if (geglu_vec(x, out, in, half)) {
        KILN_CUDA_LAUNCHED();
        return 0;
    }
    /* The gate is the value view moved half a row on: the same strides. */
    const void *gate = (const char *)in->ptr + half * in->strides[last] * dtype_size(in->dtype);
    const int64_t *st[3] = {out->strides, in->strides, in->strides};
    geo g = geo_make(out->ndim, out->shape, st, 3); // walk [..., half]
    const int threads = 256;
    if (geo_small(g, 3))
        geglu_k<uint32_t><<<grid_for(g.numel, threads), threads, 0, stream_of(x)>>>(
            g, {out->ptr, out->dtype}, {in->ptr, in->dtype}, {(void *)gate, in->dtype});
    else
        geglu_k<int64_t><<<grid_for(g.numel, threads), threads, 0, stream_of(x)>>>(
            g, {out->ptr, out->dtype}, {in->ptr, in->dtype}, {(void *)gate, in->dtype});
    KILN_CUDA_LAUNCHED();
    return 0;
}
