/* Embeddings on CUDA: the sinusoidal timestep embedding of SD's UNet, in the same float
 * steps as the CPU kernel (and ComfyUI), and row lookup of token ids, whose ids are all
 * checked (one small host round trip) before any row is written. */
#include "kernels/cuda/common.cuh"

namespace kiln_cuda {

__global__ void timestep_k(const void *t, int tdt, int64_t ts, void *o, int odt, int64_t n,
                           int64_t dim, float neg_log)
{
    int64_t half = dim / 2, total = n * dim, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        int64_t r = i / dim, c = i - r * dim;
        float v = 0.0f; /* the zero last column of an odd width */
        if (c < 2 * half) {
            int64_t f = c < half ? c : c - half;
            float e = __fdiv_rn(__fmul_rn(neg_log, (float)f), (float)half);
            float arg = __fmul_rn(ld_f(t, tdt, r * ts), (float)exp((double)e));
            v = c < half ? (float)cos((double)arg) : (float)sin((double)arg);
        }
        st_f(o, odt, i, v);
    }
}

__device__ __forceinline__ int64_t id_at(const void *ids, int dt, int64_t off)
{
    return dt == KILN_DTYPE_I64 ? (int64_t)((const long long *)ids)[off]
                                : (int64_t)((const int32_t *)ids)[off];
}

/* Sets *bad when any id lies outside 0..vocab-1. */
__global__ void ids_check_k(geo g, const void *ids, int dt, int64_t vocab, int *bad)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < g.numel; i += stride) {
        int64_t off[1];
        geo_offsets<1>(g, i, off);
        int64_t id = id_at(ids, dt, off[0]);
        if (id < 0 || id >= vocab)
            *bad = 1;
    }
}

/* out [n, D] dense: row i is weight row ids[i]. */
__global__ void gather_k(geo g, const void *ids, int idt, const void *w, int wdt, int64_t ws0,
                         int64_t ws1, void *o, int odt, int64_t d)
{
    int64_t total = g.numel * d, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        int64_t r = i / d, c = i - r * d;
        int64_t off[1];
        geo_offsets<1>(g, r, off);
        int64_t id = id_at(ids, idt, off[0]);
        st_f(o, odt, i, ld_f(w, wdt, id * ws0 + c * ws1));
    }
}

} // namespace kiln_cuda

using namespace kiln_cuda;

extern "C" int kiln__cudak_timestep_embedding(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                                              const kiln__cuda_desc_t *t, float max_period)
{
    if (out->numel == 0)
        return 0;
    float neg_log = (float)-log((double)max_period); /* as the CPU kernel: in double, once */
    timestep_k<<<grid_for(out->numel, 256), 256, 0, stream_of(x)>>>(
        t->ptr, t->dtype, t->strides[0], out->ptr, out->dtype, out->shape[0], out->shape[1],
        neg_log);
    KILN_CUDA_LAUNCHED();
    return 0;
}

extern "C" int kiln__cudak_embedding(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                                     const kiln__cuda_desc_t *w, const kiln__cuda_desc_t *ids)
{
    const int64_t *st[1] = {ids->strides};
    geo g = geo_make(ids->ndim, ids->shape, st, 1);
    if (g.numel == 0)
        return 0;
    int *bad = (int *)kiln__cuda_scratch(x, sizeof(int));
    if (!bad)
        return x->scratch_rc;
    cudaStream_t s = stream_of(x);
    int host_bad = 0;
    if (cudaMemsetAsync(bad, 0, sizeof(int), s) != cudaSuccess)
        return KILN_EDEVICE;
    ids_check_k<<<grid_for(g.numel, 256), 256, 0, s>>>(g, ids->ptr, ids->dtype, w->shape[0], bad);
    KILN_CUDA_LAUNCHED();
    if (cudaMemcpyAsync(&host_bad, bad, sizeof(int), cudaMemcpyDeviceToHost, s) != cudaSuccess ||
        cudaStreamSynchronize(s) != cudaSuccess)
        return KILN_EDEVICE;
    if (host_bad)
        return KILN_ERANGE;
    int64_t d = w->shape[1];
    if (d == 0)
        return 0;
    gather_k<<<grid_for(g.numel * d, 256), 256, 0, s>>>(g, ids->ptr, ids->dtype, w->ptr, w->dtype,
                                                        w->strides[0], w->strides[1], out->ptr,
                                                        out->dtype, d);
    KILN_CUDA_LAUNCHED();
    return 0;
}
