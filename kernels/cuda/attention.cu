/* Fused multi-head attention on CUDA, flash style: scores are never written to memory.
 * F16/BF16 inputs of the common head widths take the tensor-core kernel below; every
 * other case the float32 SIMT kernel: a block takes ROWS query rows of one (batch, head); it walks the keys in tiles of TK
 * (K and V tiles in shared memory), and each warp keeps, for its RPW rows, the running
 * maximum, the running sum of exponentials and the output accumulator (online softmax),
 * rescaling them whenever the maximum grows. Lane j of a warp scores key j of the tile;
 * the accumulator is split across lanes by output column. Float32 arithmetic throughout
 * (inputs of any float dtype are widened on load), so it matches the CPU reference to
 * float rounding. Head widths up to MAX_HEAD_DIM. */
#include <stdlib.h>

#include "kernels/cuda/common.cuh"

namespace kiln_cuda {

#define TK 32
#define WARPS 4
#define RPW 4
#define ROWS (WARPS * RPW)
#define MAX_HEAD_DIM 256

struct attn_args {
    const void *q, *k, *v;
    void *o;
    int qdt, kdt, vdt, odt;
    int64_t qbs, qrs, kbs, krs, vbs, vrs; /* batch and row strides (elements) */
    int64_t lq, lk, heads;
    int d, dv;
    float scale;
};

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

/* ---- tensor-core path (F16 / BF16 q, k, v) -------------------------------------------------
 * FlashAttention-2 style with mma.sync m16n8k16 (float32 accumulation): a block of 4 warps
 * takes 64 query rows; each warp owns 16 rows and keeps its scores, softmax state and output
 * accumulator in registers (the m16n8 accumulator layout puts rows g and g + 8 of the tile
 * in each lane, g = lane / 4), so the probabilities feed the P V product without a trip
 * through shared memory. K and V tiles of 64 keys are staged row-major in shared memory,
 * two stages deep (cp.async: the next tile loads while this one computes); V's B
 * fragments come out transposed by ldmatrix. Head width D is padded to a multiple of 16
 * with zeros. */

#define TC_BQ 64
#define TC_BK 64

template <typename T> struct tc_type;
template <> struct tc_type<__half> {
    static __device__ __forceinline__ uint32_t pack(float a, float b)
    {
        __half2 h = __floats2half2_rn(a, b);
        return *(uint32_t *)&h;
    }
    static __device__ __forceinline__ void mma(float *c, const uint32_t *a, uint32_t b0,
                                               uint32_t b1)
    {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
                     "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};
template <> struct tc_type<__nv_bfloat16> {
    static __device__ __forceinline__ uint32_t pack(float a, float b)
    {
        __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
        return *(uint32_t *)&h;
    }
    static __device__ __forceinline__ void mma(float *c, const uint32_t *a, uint32_t b0,
                                               uint32_t b1)
    {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                     "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

/* Loads rows [r0, r0 + n) of one head (w columns, even) into sm (row pitch `pitch`
 * elements, zero past the sequence end and in columns w..wp-1). With vec16 (rows and
 * columns 16-byte aligned, w % 8 == 0) the copies are asynchronous 16-byte cp.async that
 * the caller waits for; else plain 4-byte copies. */
template <typename T>
__device__ __forceinline__ void tc_load(T *sm, int pitch, const T *g, int64_t rs, int64_t r0,
                                        int n, int w, int wp, int64_t len, bool vec16)
{
    if (vec16) {
        int chunks = wp / 8;
        for (int i = threadIdx.x; i < n * chunks; i += blockDim.x) {
            int r = i / chunks, c = 8 * (i - r * chunks);
            bool in = c < w && r0 + r < len;
            const T *src = in ? g + (r0 + r) * rs + c : g;
            uint32_t dst = (uint32_t)__cvta_generic_to_shared(sm + r * pitch + c);
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                         "r"(in ? 16 : 0));
        }
        return;
    }
    int pairs = wp / 2;
    for (int i = threadIdx.x; i < n * pairs; i += blockDim.x) {
        int r = i / pairs, c = 2 * (i - r * pairs);
        uint32_t v = 0;
        if (c < w && r0 + r < len)
            v = *(const uint32_t *)(g + (r0 + r) * rs + c);
        *(uint32_t *)(sm + r * pitch + c) = v;
    }
}

__device__ __forceinline__ void cp_async_commit()
{
    asm volatile("cp.async.commit_group;\n" ::);
}

template <int N> __device__ __forceinline__ void cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/* B fragments of an m16n8k16 product for 16 keys x 8 columns of row-major V in shared
 * memory (ldmatrix with transpose): lanes 0-15 name the 16 key rows. */
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t &b0, uint32_t &b1, const void *row)
{
    uint32_t a = (uint32_t)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(b0), "=r"(b1)
                 : "r"(a));
}

/* Row pitch (elements) of a shared tile of width w (a multiple of 8): 16-byte rows, an odd
 * number of 16-byte units so that ldmatrix's 8 rows fall in different banks. */
__host__ __device__ constexpr int tc_pitch(int w)
{
    return ((w + 8) / 8) % 2 ? w + 8 : w + 16;
}

template <typename T, int DK, int NV>
__global__ void __launch_bounds__(128) attn_tc_k(attn_args a, int vec16)
{
    constexpr int DP = DK * 16, DV = NV * 8, PQ = tc_pitch(DP), PV = tc_pitch(DV);
    constexpr int KV_STAGE = TC_BK * PQ + TC_BK * PV;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T *qs = (T *)smem_raw, *kv = qs + TC_BQ * PQ; /* two K/V stages follow Q */
    const int64_t b = blockIdx.z, h = blockIdx.y, q0 = (int64_t)blockIdx.x * TC_BQ;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const T *qg = (const T *)a.q + b * a.qbs + h * a.d;
    const T *kg = (const T *)a.k + b * a.kbs + h * a.d;
    const T *vg = (const T *)a.v + b * a.vbs + h * a.dv;
    const int ntiles = (int)((a.lk + TC_BK - 1) / TC_BK);
    tc_load(qs, PQ, qg, a.qrs, q0, TC_BQ, a.d, DP, a.lq, vec16);
    tc_load(kv, PQ, kg, a.krs, 0, TC_BK, a.d, DP, a.lk, vec16);
    tc_load(kv + TC_BK * PQ, PV, vg, a.vrs, 0, TC_BK, DV, DV, a.lk, vec16);
    cp_async_commit();
    const float sl2 = a.scale * 1.4426950408889634f; /* scores in log2 units: exp2 below */
    float o[NV][4], m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
#pragma unroll
    for (int n = 0; n < NV; n++)
        o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    uint32_t qf[DK][4];
    for (int it = 0; it < ntiles; it++) {
        const int64_t k0 = (int64_t)it * TC_BK;
        if (it + 1 < ntiles) { /* the next tile loads while this one computes */
            T *nx = kv + ((it + 1) & 1) * KV_STAGE;
            tc_load(nx, PQ, kg, a.krs, k0 + TC_BK, TC_BK, a.d, DP, a.lk, vec16);
            tc_load(nx + TC_BK * PQ, PV, vg, a.vrs, k0 + TC_BK, TC_BK, DV, DV, a.lk, vec16);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if (it == 0) { /* this warp's 16 query rows as A fragments, kept in registers */
            const T *qw = qs + warp * 16 * PQ;
#pragma unroll
            for (int kk = 0; kk < DK; kk++) {
                qf[kk][0] = *(const uint32_t *)(qw + g * PQ + kk * 16 + 2 * t);
                qf[kk][1] = *(const uint32_t *)(qw + (g + 8) * PQ + kk * 16 + 2 * t);
                qf[kk][2] = *(const uint32_t *)(qw + g * PQ + kk * 16 + 2 * t + 8);
                qf[kk][3] = *(const uint32_t *)(qw + (g + 8) * PQ + kk * 16 + 2 * t + 8);
            }
        }
        const T *ks = kv + (it & 1) * KV_STAGE, *vs = ks + TC_BK * PQ;
        float s[8][4];
#pragma unroll
        for (int n = 0; n < 8; n++)
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < DK; kk++) { // S [16, 64] += Q [16, 16] K^T [16, 64]
#pragma unroll
            for (int n = 0; n < 8; n++) {
                const T *kr = ks + (n * 8 + g) * PQ + kk * 16 + 2 * t;
                tc_type<T>::mma(s[n], qf[kk], *(const uint32_t *)kr, *(const uint32_t *)(kr + 8));
            }
        }
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int n = 0; n < 8; n++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                bool ok = k0 + n * 8 + 2 * t + (e & 1) < a.lk;
                s[n][e] = ok ? s[n][e] * sl2 : -INFINITY;
            }
            mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
            mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        float c0 = exp2f(m0 - mn0), c1 = exp2f(m1 - mn1), ls0 = 0.0f, ls1 = 0.0f;
#pragma unroll
        for (int n = 0; n < 8; n++) {
            s[n][0] = exp2f(s[n][0] - mn0);
            s[n][1] = exp2f(s[n][1] - mn0);
            s[n][2] = exp2f(s[n][2] - mn1);
            s[n][3] = exp2f(s[n][3] - mn1);
            ls0 += s[n][0] + s[n][1];
            ls1 += s[n][2] + s[n][3];
        }
        ls0 += __shfl_xor_sync(0xffffffffu, ls0, 1);
        ls0 += __shfl_xor_sync(0xffffffffu, ls0, 2);
        ls1 += __shfl_xor_sync(0xffffffffu, ls1, 1);
        ls1 += __shfl_xor_sync(0xffffffffu, ls1, 2);
        l0 = l0 * c0 + ls0;
        l1 = l1 * c1 + ls1;
        m0 = mn0;
        m1 = mn1;
#pragma unroll
        for (int n = 0; n < NV; n++) {
            o[n][0] *= c0;
            o[n][1] *= c0;
            o[n][2] *= c1;
            o[n][3] *= c1;
        }
#pragma unroll
        for (int kc = 0; kc < TC_BK / 16; kc++) { // O [16, DV] += P [16, 16] V [16, DV]
            uint32_t pf[4] = {tc_type<T>::pack(s[2 * kc][0], s[2 * kc][1]),
                              tc_type<T>::pack(s[2 * kc][2], s[2 * kc][3]),
                              tc_type<T>::pack(s[2 * kc + 1][0], s[2 * kc + 1][1]),
                              tc_type<T>::pack(s[2 * kc + 1][2], s[2 * kc + 1][3])};
            const T *vrow = vs + (kc * 16 + (lane & 15)) * PV;
#pragma unroll
            for (int n = 0; n < NV; n++) {
                uint32_t b0, b1;
                ldmatrix_x2_trans(b0, b1, vrow + n * 8);
                tc_type<T>::mma(o[n], pf, b0, b1);
            }
        }
        __syncthreads(); /* this stage is reloaded two tiles on */
    }
    int64_t r0 = q0 + warp * 16 + g, r1 = r0 + 8;
    float i0 = 1.0f / l0, i1 = 1.0f / l1;
#pragma unroll
    for (int n = 0; n < NV; n++) {
        int c = n * 8 + 2 * t;
        if (r0 < a.lq) {
            int64_t ob = (b * a.lq + r0) * a.heads * DV + h * DV + c;
            st_f(a.o, a.odt, ob, o[n][0] * i0);
            st_f(a.o, a.odt, ob + 1, o[n][1] * i0);
        }
        if (r1 < a.lq) {
            int64_t ob = (b * a.lq + r1) * a.heads * DV + h * DV + c;
            st_f(a.o, a.odt, ob, o[n][2] * i1);
            st_f(a.o, a.odt, ob + 1, o[n][3] * i1);
        }
    }
}

template <typename T, int DK, int NV>
static int launch_tc(const attn_args &a, int64_t nb, cudaStream_t s)
{
    constexpr int PQ = tc_pitch(DK * 16), PV = tc_pitch(NV * 8);
    size_t smem = (size_t)(TC_BQ * PQ + 2 * TC_BK * (PQ + PV)) * 2;
    /* 16-byte asynchronous copies when every row and head starts 16-byte aligned */
    const int64_t st[] = {a.qbs, a.qrs, a.kbs, a.krs, a.vbs, a.vrs, (int64_t)a.d};
    int vec16 = ((uintptr_t)a.q | (uintptr_t)a.k | (uintptr_t)a.v) % 16 == 0;
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++)
        vec16 &= st[i] % 8 == 0;
    if (smem > 48 * 1024 &&
        cudaFuncSetAttribute(attn_tc_k<T, DK, NV>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             (int)smem) != cudaSuccess)
        return KILN_EDEVICE;
    dim3 grid((unsigned)((a.lq + TC_BQ - 1) / TC_BQ), (unsigned)a.heads, (unsigned)nb);
    attn_tc_k<T, DK, NV><<<grid, 128, smem, s>>>(a, vec16);
    KILN_CUDA_LAUNCHED();
    return 0;
}

/* The tensor-core kernel for head width d (= dv), or KILN_EUNSUPPORTED for widths it has
 * no instance for. */
template <typename T> static int dispatch_tc(const attn_args &a, int64_t nb, cudaStream_t s)
{
    switch (a.d) {
    case 32:
        return launch_tc<T, 2, 4>(a, nb, s);
    case 40:
        return launch_tc<T, 3, 5>(a, nb, s);
    case 64:
        return launch_tc<T, 4, 8>(a, nb, s);
    case 80:
        return launch_tc<T, 5, 10>(a, nb, s);
    case 128:
        return launch_tc<T, 8, 16>(a, nb, s);
    case 160:
        return launch_tc<T, 10, 20>(a, nb, s);
    default:
        return KILN_EUNSUPPORTED;
    }
}

/* 1 when q, k, v suit the tensor-core kernel: one 16-bit float dtype, equal head widths
 * with an instance, and 4-byte aligned element pairs everywhere. */
static bool tc_ok(const attn_args &a, int dt)
{
    if (a.qdt != dt || a.kdt != dt || a.vdt != dt || a.d != a.dv ||
        (dt != KILN_DTYPE_F16 && dt != KILN_DTYPE_BF16) || getenv("KILN_CUDA_ATTN_SIMT"))
        return false;
    const int64_t st[] = {a.qbs, a.qrs, a.kbs, a.krs, a.vbs, a.vrs, (int64_t)a.d};
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++)
        if (st[i] % 2)
            return false;
    return ((uintptr_t)a.q | (uintptr_t)a.k | (uintptr_t)a.v) % 4 == 0;
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
    if (tc_ok(a, a.qdt)) {
        rc = a.qdt == KILN_DTYPE_F16 ? dispatch_tc<__half>(a, nb, s)
                                     : dispatch_tc<__nv_bfloat16>(a, nb, s);
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
