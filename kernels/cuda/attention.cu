/* Fused multi-head attention on CUDA, flash style: scores are never written to memory.
 * F16/BF16 inputs of the common head widths take the tensor-core kernel of
 * attention_tc.cu (unless KILN_CUDA_ATTN_SIMT is set); every other case the float32 SIMT
 * kernel here: a block takes ROWS query rows of one (batch, head); it walks the keys in
 * tiles of TK (K and V tiles in shared memory), and each warp keeps, for its RPW rows, the
 * running maximum, the running sum of exponentials and the output accumulator (online
 * softmax), rescaling them whenever the maximum grows. Lane j of a warp scores key j of the tile;
 * the accumulator is split across lanes by output column. Float32 arithmetic throughout
 * (inputs of any float dtype are widened on load), so it matches the CPU reference to
 * float rounding. Head widths up to MAX_HEAD_DIM. */
#include <stdlib.h>

#include "kernels/cuda/attention_tc.cuh"

namespace kiln_cuda {

#define TK 32
#define WARPS 4
#define RPW 4
#define ROWS (WARPS * RPW)
#define MAX_HEAD_DIM 256

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Loads rows [r0, r0 + n) of one head of a [B, L, H*W] operand into sm (row pitch
 * pitch floats), zero past the sequence end, times mul. */
__device__ __forceinline__ void load_rows(float *sm, int pitch, const void *p, int dt,
                                          int64_t base, int64_t rs, int64_t r0, int n, int w,
                                          int64_t len, float mul)
{
    for (int i = threadIdx.x; i < n * w; i += blockDim.x) {
        int r = i / w, c = i - r * w;
        int64_t row = r0 + r;
        sm[r * pitch + c] = row < len ? ld_f(p, dt, base + row * rs + c) * mul : 0.0f;
    }
}

template <int DVT> __global__ void __launch_bounds__(WARPS * 32) attn_k(attn_args a)
{
    extern __shared__ float sm[];
    const int d = a.d, dv = a.dv;
    float *ks = sm, *vs = ks + TK * (d + 1), *qs = vs + TK * (dv + 1);
    const int64_t b = blockIdx.z, h = blockIdx.y, q0 = (int64_t)blockIdx.x * ROWS;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    load_rows(qs, d, a.q, a.qdt, b * a.qbs + h * d, a.qrs, q0, ROWS, d, a.lq, a.scale);
    float m[RPW], l[RPW], acc[RPW][DVT];
#pragma unroll
    for (int r = 0; r < RPW; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int t = 0; t < DVT; t++)
            acc[r][t] = 0.0f;
    }
    const float *qw = qs + warp * RPW * d;
    for (int64_t k0 = 0; k0 < a.lk; k0 += TK) {
        __syncthreads(); /* the previous tiles are consumed */
        load_rows(ks, d + 1, a.k, a.kdt, b * a.kbs + h * d, a.krs, k0, TK, d, a.lk, 1.0f);
        load_rows(vs, dv + 1, a.v, a.vdt, b * a.vbs + h * dv, a.vrs, k0, TK, dv, a.lk, 1.0f);
        __syncthreads();
        bool valid = k0 + lane < a.lk;
        float s[RPW];
#pragma unroll
        for (int r = 0; r < RPW; r++)
            s[r] = 0.0f;
        const float *kr = ks + lane * (d + 1);
        for (int c = 0; c < d; c++) { /* lane scores key k0 + lane against each row */
            float kv = kr[c];
#pragma unroll
            for (int r = 0; r < RPW; r++)
                s[r] += qw[r * d + c] * kv;
        }
        float p[RPW];
#pragma unroll
        for (int r = 0; r < RPW; r++) {
            float mt = warp_max(valid ? s[r] : -INFINITY);
            float mn = fmaxf(m[r], mt);
            p[r] = valid ? expf(s[r] - mn) : 0.0f;
            float corr = expf(m[r] - mn); /* 0 on the first tile (m = -inf) */
            l[r] = l[r] * corr + warp_sum(p[r]);
            m[r] = mn;
#pragma unroll
            for (int t = 0; t < DVT; t++)
                acc[r][t] *= corr;
        }
        int jn = a.lk - k0 < TK ? (int)(a.lk - k0) : TK;
        for (int j = 0; j < jn; j++) { /* acc += p_j V_j, columns split across lanes */
            float vv[DVT];
#pragma unroll
            for (int t = 0; t < DVT; t++) {
                int c = lane + 32 * t;
                vv[t] = c < dv ? vs[j * (dv + 1) + c] : 0.0f;
            }
#pragma unroll
            for (int r = 0; r < RPW; r++) {
                float pj = __shfl_sync(0xffffffffu, p[r], j);
#pragma unroll
                for (int t = 0; t < DVT; t++)
                    acc[r][t] += pj * vv[t];
            }
        }
    }
#pragma unroll
    for (int r = 0; r < RPW; r++) {
        int64_t qi = q0 + warp * RPW + r;
        if (qi >= a.lq)
            continue;
        float inv = 1.0f / l[r];
        int64_t ob = (b * a.lq + qi) * a.heads * dv + h * dv;
#pragma unroll
        for (int t = 0; t < DVT; t++) {
            int c = lane + 32 * t;
            if (c < dv)
                st_f(a.o, a.odt, ob + c, acc[r][t] * inv);
        }
    }
}

template <int DVT> static int launch(const attn_args &a, int64_t nb, cudaStream_t s)
{
    size_t smem = (size_t)(TK * (a.d + 1) + TK * (a.dv + 1) + ROWS * a.d) * sizeof(float);
    if (smem > 48 * 1024 &&
        cudaFuncSetAttribute(attn_k<DVT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             (int)smem) != cudaSuccess)
        return KILN_EDEVICE;
    dim3 grid((unsigned)((a.lq + ROWS - 1) / ROWS), (unsigned)a.heads, (unsigned)nb);
    attn_k<DVT><<<grid, WARPS * 32, smem, s>>>(a);
    KILN_CUDA_LAUNCHED();
    return 0;
}

/* A q/k/v operand whose last dimension has unit stride (a dense scratch copy if not). */
static int unit_rows(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *d, kiln__cuda_desc_t *res)
{
    *res = *d;
    if (d->strides[2] == 1 || d->shape[2] == 1)
        return 0;
    return dense_as(x, d, d->dtype, res);
}

static int attention_run(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                         const kiln__cuda_desc_t *q, const kiln__cuda_desc_t *k,
                         const kiln__cuda_desc_t *v, int heads, float scale)
{
    if (out->numel == 0)
        return 0;
    attn_args a = {};
    a.d = (int)(q->shape[2] / heads);
    a.dv = (int)(v->shape[2] / heads);
    if (a.d > MAX_HEAD_DIM || a.dv > MAX_HEAD_DIM || q->shape[0] > 65535 || heads > 65535 ||
        (q->shape[1] + ROWS - 1) / ROWS > 0x7fffffff)
        return KILN_EUNSUPPORTED;
    kiln__cuda_desc_t fq, fk, fv;
    int rc = unit_rows(x, q, &fq);
    if (rc == 0)
        rc = unit_rows(x, k, &fk);
    if (rc == 0)
        rc = unit_rows(x, v, &fv);
    if (rc < 0)
        return rc;
    a.q = fq.ptr, a.k = fk.ptr, a.v = fv.ptr, a.o = out->ptr;
    a.qdt = fq.dtype, a.kdt = fk.dtype, a.vdt = fv.dtype, a.odt = out->dtype;
    a.qbs = fq.strides[0], a.qrs = fq.strides[1];
    a.kbs = fk.strides[0], a.krs = fk.strides[1];
    a.vbs = fv.strides[0], a.vrs = fv.strides[1];
    a.lq = q->shape[1], a.lk = k->shape[1], a.heads = heads, a.scale = scale;
    cudaStream_t s = stream_of(x);
    int64_t nb = q->shape[0];
    if (!getenv("KILN_CUDA_ATTN_SIMT")) { /* the tensor-core kernel where it applies */
        rc = attention_tc(a, nb, s);
        if (rc != KILN_EUNSUPPORTED)
            return rc;
    }
    switch ((a.dv + 31) / 32) {
    case 0:
    case 1:
        return launch<1>(a, nb, s);
    case 2:
        return launch<2>(a, nb, s);
    case 3:
        return launch<3>(a, nb, s);
    case 4:
        return launch<4>(a, nb, s);
    case 5:
        return launch<5>(a, nb, s);
    case 6:
        return launch<6>(a, nb, s);
    case 7:
        return launch<7>(a, nb, s);
    default:
        return launch<8>(a, nb, s);
    }
}

} // namespace kiln_cuda

extern "C" int kiln__cudak_attention(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                                     const kiln__cuda_desc_t *q, const kiln__cuda_desc_t *k,
                                     const kiln__cuda_desc_t *v, int heads, float scale)
{
    return kiln_cuda::attention_run(x, out, q, k, v, heads, scale);
}
