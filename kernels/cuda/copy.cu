/* Data movement on CUDA: one strided copy kernel with dtype conversion, which contiguous,
 * permute, transpose, slice and concat reduce to (the dispatcher expresses them as views),
 * and dense_as, the dense-scratch helper other kernels use for awkward layouts. */
#include "kernels/cuda/common.cuh"

namespace kiln_cuda {

/* Same dtype: moves elements of T (bits unchanged). */
template <typename T, typename I>
__global__ void copy_same(geo g, T *__restrict__ out, const T *__restrict__ in)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.numel; i += stride) {
        int64_t off[2];
        geo_offsets<2, I>(g, i, off);
        out[off[0]] = in[off[1]];
    }
}

/* Any source element as double (exact for every kiln dtype but the widest integers). */
__device__ __forceinline__ double ld_any(const void *p, int dt, int64_t i)
{
    switch (dt) {
    case KILN_DTYPE_F32:
        return ((const float *)p)[i];
    case KILN_DTYPE_F16:
        return __half2float(((const __half *)p)[i]);
    case KILN_DTYPE_BF16:
        return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    case KILN_DTYPE_F64:
        return ((const double *)p)[i];
    case KILN_DTYPE_I32:
        return ((const int32_t *)p)[i];
    case KILN_DTYPE_I64:
        return (double)((const long long *)p)[i];
    case KILN_DTYPE_I16:
        return ((const int16_t *)p)[i];
    case KILN_DTYPE_I8:
        return ((const int8_t *)p)[i];
    case KILN_DTYPE_U8:
    case KILN_DTYPE_BOOL:
        return ((const uint8_t *)p)[i];
    default:
        return 0.0;
    }
}

/* To a float dtype, rounded once to nearest even. */
__global__ void copy_convert(geo g, void *out, int dt_out, const void *in, int dt_in)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.numel; i += stride) {
        int64_t off[2];
        geo_offsets<2>(g, i, off);
        double v = ld_any(in, dt_in, off[1]);
        switch (dt_out) {
        case KILN_DTYPE_F32:
            ((float *)out)[off[0]] = __double2float_rn(v);
            break;
        case KILN_DTYPE_F16:
            ((__half *)out)[off[0]] = __double2half(v);
            break;
        case KILN_DTYPE_BF16:
            ((__nv_bfloat16 *)out)[off[0]] = __double2bfloat16(v);
            break;
        case KILN_DTYPE_F64:
            ((double *)out)[off[0]] = v;
            break;
        default:
            break;
        }
    }
}

template <typename T>
static void launch_same(const geo &g, const kiln__cuda_desc_t *out, const kiln__cuda_desc_t *in,
                        bool small, unsigned blocks, int threads, cudaStream_t s)
{
    if (small)
        copy_same<T, uint32_t><<<blocks, threads, 0, s>>>(g, (T *)out->ptr, (const T *)in->ptr);
    else
        copy_same<T, int64_t><<<blocks, threads, 0, s>>>(g, (T *)out->ptr, (const T *)in->ptr);
}

/* Bytes per element a same-dtype copy can move at once: 16, 8 or 4 when the innermost
 * merged dimension is contiguous in both operands and every row start, stride and pointer
 * is a multiple of it (a channel concat of channels-last tensors moves whole 16-byte
 * pieces of each pixel's channels); else the element size. */
static int wide_bytes(const geo &g, const kiln__cuda_desc_t *out, const kiln__cuda_desc_t *in,
                      int esz)
{
    int last = g.ndim - 1;
    if (g.ndim == 0 || g.st[0][last] != 1 || g.st[1][last] != 1)
        return esz;
    for (int w = 16; w > esz; w /= 2) {
        bool ok = ((uintptr_t)out->ptr | (uintptr_t)in->ptr) % w == 0 &&
                  g.shape[last] * esz % w == 0;
        for (int d = 0; ok && d < last; d++)
            ok = g.st[0][d] * esz % w == 0 && g.st[1][d] * esz % w == 0;
        if (ok)
            return w;
    }
    return esz;
}

/* g in units of `by` elements: the innermost extent and the outer strides divided. */
static void widen(geo &g, int by)
{
    int last = g.ndim - 1;
    g.shape[last] /= by;
    g.numel /= by;
    for (int d = 0; d < last; d++) {
        g.st[0][d] /= by;
        g.st[1][d] /= by;
    }
}

static int copy_run(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                    const kiln__cuda_desc_t *in)
{
    if (out->numel == 0)
        return 0;
    const int64_t *st[2] = {out->strides, in->strides};
    geo g = geo_make(out->ndim, out->shape, st, 2);
    const int threads = 256;
    cudaStream_t s = stream_of(x);
    if (out->dtype == in->dtype) {
        int esz = dtype_size(in->dtype), wb = wide_bytes(g, out, in, esz);
        if (wb > esz)
            widen(g, wb / esz);
        unsigned blocks = grid_for(g.numel, threads);
        bool small = geo_small(g, 2);
        switch (wb) {
        case 1:
            launch_same<uint8_t>(g, out, in, small, blocks, threads, s);
            break;
        case 2:
            launch_same<uint16_t>(g, out, in, small, blocks, threads, s);
            break;
        case 4:
            launch_same<uint32_t>(g, out, in, small, blocks, threads, s);
            break;
        case 8:
            launch_same<uint2>(g, out, in, small, blocks, threads, s);
            break;
        case 16:
            launch_same<uint4>(g, out, in, small, blocks, threads, s);
            break;
        default:
            return KILN_EUNSUPPORTED;
        }
    } else {
        copy_convert<<<grid_for(g.numel, threads), threads, 0, s>>>(g, out->ptr, out->dtype,
                                                                   in->ptr, in->dtype);
    }
    KILN_CUDA_LAUNCHED();
    return 0;
}

int dense_as(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *d, int dt, kiln__cuda_desc_t *res)
{
    *res = *d;
    if (d->dtype == dt && is_dense(d))
        return 0;
    res->dtype = dt;
    res->ptr = kiln__cuda_scratch(x, (size_t)(d->numel ? d->numel : 1) * dtype_size(dt));
    if (!res->ptr)
        return x->scratch_rc;
    int64_t stride = 1;
    for (int i = d->ndim - 1; i >= 0; i--) {
        res->strides[i] = stride;
        stride *= d->shape[i];
    }
    return copy_run(x, res, d);
}

} // namespace kiln_cuda

extern "C" int kiln__cudak_copy(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                                const kiln__cuda_desc_t *in)
{
    return kiln_cuda::copy_run(x, out, in);
}
