/* The start value of an accumulating product: out = bias (along one dimension) + add,
 * before a GEMM or convolution adds onto it with beta 1 (the fused residual and time
 * embedding sums of linear_add and conv2d_add). The common case in the models, a
 * channels-last or dense half-precision out with the bias along its innermost dimension
 * and an addend that is either laid out like out or one row per sample, runs a
 * dedicated two-elements-per-thread kernel; anything else goes through the general
 * elementwise kernels. */
#include "kernels/cuda/common.cuh"

namespace kiln_cuda {

template <typename T> struct pair_of;
template <> struct pair_of<__half> {
    typedef __half2 type;
    static __device__ __forceinline__ float2 load(__half2 v) { return __half22float2(v); }
    static __device__ __forceinline__ __half2 make(float a, float b)
    {
        return __floats2half2_rn(a, b);
    }
};
template <> struct pair_of<__nv_bfloat16> {
    typedef __nv_bfloat162 type;
    static __device__ __forceinline__ float2 load(__nv_bfloat162 v)
    {
        return __bfloat1622float2(v);
    }
    static __device__ __forceinline__ __nv_bfloat162 make(float a, float b)
    {
        return __floats2bfloat162_rn(a, b);
    }
};

/* out [rows, c] (c even) = bias[col] + add[(row / per) * c + col], two columns at a time;
 * per is 1 for an addend like out, rows-per-sample for one row per sample. */
template <typename T>
__global__ void start_rows_k(typename pair_of<T>::type *out, const typename pair_of<T>::type *add,
                             const void *bias, int bdt, int64_t bs, uint32_t rows, uint32_t c2,
                             uint32_t per)
{
    uint32_t total = rows * c2;
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += gridDim.x * blockDim.x) {
        uint32_t r = i / c2, k = i - r * c2;
        float2 a = pair_of<T>::load(add[(r / per) * c2 + k]);
        if (bias) {
            a.x += ld_f(bias, bdt, (int64_t)(2 * k) * bs);
            a.y += ld_f(bias, bdt, (int64_t)(2 * k + 1) * bs);
        }
        out[i] = pair_of<T>::make(a.x, a.y);
    }
}

/* The dedicated kernel when it applies (o, a sorted; the bias along o's last dim): returns
 * 1 when it ran (*rc set), 0 to take the general path. */
static int start_rows(kiln__cuda_exec_t *x, const kiln__cuda_desc_t &o, const kiln__cuda_desc_t &a,
                      const kiln__cuda_desc_t *bias, int *rc)
{
    int nd = o.ndim;
    int64_t c = o.shape[nd - 1], rows = c ? o.numel / c : 0;
    bool half = o.dtype == KILN_DTYPE_F16 || o.dtype == KILN_DTYPE_BF16;
    if (!half || a.dtype != o.dtype || !is_dense(&o) || c % 2 || a.strides[nd - 1] != 1 ||
        o.numel >= ((int64_t)1 << 31) || ((uintptr_t)o.ptr | (uintptr_t)a.ptr) % 4)
        return 0;
    /* the addend: like out, or one row of c per leading index (the rest broadcast) */
    bool like = same_layout(&a, &o), per_row = a.strides[0] == c || o.shape[0] == 1;
    for (int i = 1; i < nd - 1; i++)
        per_row &= o.shape[i] == 1 || a.strides[i] == 0;
    if (!like && !per_row)
        return 0;
    uint32_t per = like ? 1 : (uint32_t)(rows / o.shape[0]);
    uint32_t c2 = (uint32_t)(c / 2), total = (uint32_t)rows * c2;
    const void *bp = bias ? bias->ptr : NULL;
    int bdt = bias ? bias->dtype : 0;
    int64_t bs = bias ? bias->strides[0] : 0;
    if (o.dtype == KILN_DTYPE_F16)
        start_rows_k<__half><<<grid_for(total, 256), 256, 0, stream_of(x)>>>(
            (__half2 *)o.ptr, (const __half2 *)a.ptr, bp, bdt, bs, (uint32_t)rows, c2, per);
    else
        start_rows_k<__nv_bfloat16><<<grid_for(total, 256), 256, 0, stream_of(x)>>>(
            (__nv_bfloat162 *)o.ptr, (const __nv_bfloat162 *)a.ptr, bp, bdt, bs,
            (uint32_t)rows, c2, per);
    KILN_CUDA_LAUNCHED();
    *rc = 0;
    return 1;
}

int out_start(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out, int cdim,
              const kiln__cuda_desc_t *bias, const kiln__cuda_desc_t *add)
{
    kiln__cuda_desc_t o = *out, bv = {}, a = {};
    if (bias) { /* the bias as an operand of out's shape: it moves along cdim only */
        bv = *out;
        bv.ptr = bias->ptr, bv.dtype = bias->dtype;
        for (int i = 0; i < out->ndim; i++)
            bv.strides[i] = i == cdim ? bias->strides[0] : 0;
    }
    if (add)
        a = *add;
    /* dims in out's memory order, so the kernels merge and coalesce them */
    kiln__cuda_desc_t *const ds[3] = {&o, &bv, &a};
    kiln__cuda_order_dims(ds, 3);
    int rc = 0;
    int last = o.ndim - 1;
    bool bias_last = !bias || (bv.strides[last] == bias->strides[0] && o.shape[last] > 1);
    for (int i = 0; bias && i < o.ndim - 1; i++)
        bias_last &= bv.strides[i] == 0 || o.shape[i] == 1;
    if (add && bias_last && start_rows(x, o, a, bias, &rc))
        return rc;
    if (bias && add)
        return kiln__cudak_binary(x, &o, &bv, &a, KILN__CUDA_ADD);
    if (add || bias)
        return kiln__cudak_copy(x, &o, add ? &a : &bv);
    return 0;
}

} // namespace kiln_cuda
