/* Helpers shared by the normalization kernels (norm.cu: softmax, layer norm; group_norm.cu):
 * operands and optional affine parameters, vector loads and stores of N elements as floats
 * for each float dtype, the statistics' accumulator type, and the host-side dispatch from
 * a run-time dtype and vector width to a kernel template instance. CUDA C++ only. */
#ifndef KILN_KERNELS_CUDA_NORM_CUH
#define KILN_KERNELS_CUDA_NORM_CUH

#include "kernels/cuda/common.cuh"

namespace kiln_cuda {

struct operand {
    void *p;
    int dt;
};

struct affine {
    const void *w, *b; /* NULL: 1 and 0 */
    int wdt, bdt;
    int64_t ws, bs; /* element strides */
};

__device__ __forceinline__ float aff_wf(const affine &a, int64_t c)
{
    return a.w ? ld_f(a.w, a.wdt, c * a.ws) : 1.0f;
}

__device__ __forceinline__ float aff_bf(const affine &a, int64_t c)
{
    return a.b ? ld_f(a.b, a.bdt, c * a.bs) : 0.0f;
}

__device__ __forceinline__ double aff_w(const affine &a, int64_t c)
{
    return (double)aff_wf(a, c);
}

__device__ __forceinline__ double aff_b(const affine &a, int64_t c)
{
    return (double)aff_bf(a, c);
}

/* The affine parameters of w and b (each may be NULL), as 1-D descriptors. */
static inline affine affine_of(const kiln__cuda_desc_t *w, const kiln__cuda_desc_t *b)
{
    affine a = {};
    if (w) {
        a.w = w->ptr;
        a.wdt = w->dtype;
        a.ws = w->strides[0];
    }
    if (b) {
        a.b = b->ptr;
        a.bdt = b->dtype;
        a.bs = b->strides[0];
    }
    return a;
}

template <typename A> __device__ __forceinline__ A warp_sum(A v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* ---- vector access ----------------------------------------------------------------------
 * Element types of the templated kernels: float, __half, __nv_bfloat16, or dyn (the dtype
 * is known at run time only: every element goes through ld_f / st_f; mixed dtypes and
 * F64 input). */
struct dyn {
};

template <typename T> struct num;
template <> struct num<float> {
    static __device__ __forceinline__ float to(float v) { return v; }
    static __device__ __forceinline__ float from(float v) { return v; }
};
template <> struct num<__half> {
    static __device__ __forceinline__ float to(__half v) { return __half2float(v); }
    static __device__ __forceinline__ __half from(float v) { return __float2half_rn(v); }
};
template <> struct num<__nv_bfloat16> {
    static __device__ __forceinline__ float to(__nv_bfloat16 v) { return __bfloat162float(v); }
    static __device__ __forceinline__ __nv_bfloat16 from(float v)
    {
        return __float2bfloat16_rn(v);
    }
};

/* N elements moved as one access of N * sizeof(T) bytes (two accesses for 8 floats). */
template <typename T, int N> struct alignas(sizeof(T) * N < 16 ? sizeof(T) * N : 16) pack {
    T v[N];
};

/* N consecutive elements from element i on, as floats. For a typed T the address must be a
 * multiple of the pack's alignment (the launchers check pointers and strides). */
template <typename T> struct io {
    template <int N>
    static __device__ __forceinline__ void load(const void *p, int, int64_t i, float *f)
    {
        pack<T, N> q = *reinterpret_cast<const pack<T, N> *>((const T *)p + i);
#pragma unroll
        for (int e = 0; e < N; e++)
            f[e] = num<T>::to(q.v[e]);
    }
    template <int N>
    static __device__ __forceinline__ void store(void *p, int, int64_t i, const float *f)
    {
        pack<T, N> q;
#pragma unroll
        for (int e = 0; e < N; e++)
            q.v[e] = num<T>::from(f[e]);
        *reinterpret_cast<pack<T, N> *>((T *)p + i) = q;
    }
};
template <> struct io<dyn> {
    template <int N>
    static __device__ __forceinline__ void load(const void *p, int dt, int64_t i, float *f)
    {
        for (int e = 0; e < N; e++)
            f[e] = ld_f(p, dt, i + e);
    }
    template <int N>
    static __device__ __forceinline__ void store(void *p, int dt, int64_t i, const float *f)
    {
        for (int e = 0; e < N; e++)
            st_f(p, dt, i + e, f[e]);
    }
};

/* The statistics' accumulator: double for float32 (and run-time typed) input, as on the
 * CPU; float for 16-bit input, far more precise than its 11 or 8 significant bits. */
template <typename T> struct acc {
    typedef float type;
};
template <> struct acc<float> {
    typedef double type;
};
template <> struct acc<dyn> {
    typedef double type;
};

/* ---- host-side dispatch ------------------------------------------------------------------ */

static inline bool typed_dt(int dt)
{
    return dt == KILN_DTYPE_F32 || dt == KILN_DTYPE_F16 || dt == KILN_DTYPE_BF16;
}

/* The widest vector (8, 2 or 1 elements of dtype dt) that divides `mult` and to whose size
 * (at most 16 bytes) both a and b (NULL: no constraint) are aligned. */
static inline int vec_width(int64_t mult, int dt, const void *a, const void *b)
{
    const int cand[2] = {8, 2};
    for (int i = 0; i < 2; i++) {
        uintptr_t al = (uintptr_t)cand[i] * dtype_size(dt);
        al = al < 16 ? al : 16;
        if (mult % cand[i] == 0 && (uintptr_t)a % al == 0 && (uintptr_t)b % al == 0)
            return cand[i];
    }
    return 1;
}

template <typename T> struct tag {
    typedef T type;
};
template <int V> struct width {
    static constexpr int value = V;
};

template <typename T, typename F> static inline void by_width(int n, F f)
{
    if (n == 8)
        f(tag<T>(), width<8>());
    else if (n == 2)
        f(tag<T>(), width<2>());
    else
        f(tag<T>(), width<1>());
}

/* Calls f(tag<T>(), width<N>()) with T the element type of dtype dt and N = n (8, 2 or 1),
 * or with T = dyn and N = 1 when typed is false. */
template <typename F> static inline void by_type(int dt, bool typed, int n, F f)
{
    if (!typed)
        f(tag<dyn>(), width<1>());
    else if (dt == KILN_DTYPE_F32)
        by_width<float>(n, f);
    else if (dt == KILN_DTYPE_F16)
        by_width<__half>(n, f);
    else
        by_width<__nv_bfloat16>(n, f);
}

} // namespace kiln_cuda

#endif
