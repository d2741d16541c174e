/* Fused multi-head attention on tensor cores for F16 / BF16 q, k, v: FlashAttention-2
 * style with mma.sync (float32 accumulation). A block of 4 warps takes 64 * MT query rows
 * of one (batch, head); each warp owns 16 * MT of them (MT m16 tiles, so that every K and V
 * fragment it reads from shared memory feeds MT products) and keeps their scores, softmax
 * state and output accumulator in registers: the m16n8 accumulator layout puts rows g and
 * g + 8 of a tile in each lane (g = lane / 4), so the probabilities become the A fragments
 * of the P V product without a trip through shared memory. K and V tiles of BKL keys stream
 * through shared memory STAGES deep (cp.async: later tiles load while this one computes);
 * K's B fragments come out of ldmatrix, V's out of ldmatrix.trans; Q is read once, straight
 * into registers. A head width of 16 k + 8 (40) takes its last 8 columns with m16n8k8.
 *
 * The softmax is what limits small head widths (one MUFU exponential a score against 4 D
 * tensor-core flops), so the rest of it is kept small. p = 2^(s c - m c) (c = scale log2 e)
 * is one FFMA feeding the exponential, with m a per-row reference maximum that is not kept
 * exact: P is computed with the current m straight away and only if some p reached 256 (a
 * packed 16-bit integer maximum over the rounded P, one vote a warp) are the scores
 * recomputed, m moved to the row maximum and l, o rescaled. That happens on the first
 * sub-tile and then rarely, so the row-maximum shuffles and the rescaling are off the common
 * path; p <= 256 is far inside F16's range and the rounding of P is relative to each value,
 * so the result is the same up to that rounding. The row sums l are float32 sums of the
 * unrounded p, and the key-length mask applies to the last, partial tile only. */
#include <atomic>

#include "kernels/cuda/attention_tc.cuh"

namespace kiln_cuda {
namespace {

constexpr int TC_THREADS = 128; /* 4 warps */

__device__ __forceinline__ uint32_t smem_u32(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}

__device__ __forceinline__ float ex2f(float x)
{
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(r) : "f"(x));
    return r;
}

/* The m16n8k16 and m16n8k8 products (float32 accumulators) of one 16-bit input format
 * (PTX its name there), its pair packing (x in the low half) and P_LIM, 256.0 in it. */
template <typename T> struct tc_ops;
#define KILN_TC_OPS(T, PTX, LIM, T2, CVT)                                                     \
    template <> struct tc_ops<T> {                                                            \
        static constexpr uint32_t P_LIM = LIM;                                                \
        static __device__ __forceinline__ void mma(float *c, const uint32_t *a, uint32_t b0,  \
                                                   uint32_t b1)                               \
        {                                                                                     \
            asm("mma.sync.aligned.m16n8k16.row.col.f32." PTX "." PTX ".f32 {%0,%1,%2,%3}, "   \
                "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"                                    \
                : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])                              \
                : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));              \
        }                                                                                     \
        static __device__ __forceinline__ void mma8(float *c, const uint32_t *a, uint32_t b0) \
        {                                                                                     \
            asm("mma.sync.aligned.m16n8k8.row.col.f32." PTX "." PTX ".f32 {%0,%1,%2,%3}, "    \
                "{%4,%5}, {%6}, {%0,%1,%2,%3};\n"                                             \
                : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])                              \
                : "r"(a[0]), "r"(a[1]), "r"(b0));                                             \
        }                                                                                     \
        static __device__ __forceinline__ uint32_t pack(float x, float y)                     \
        {                                                                                     \
            T2 h = CVT(x, y);                                                                 \
            return *(uint32_t *)&h;                                                           \
        }                                                                                     \
    }
KILN_TC_OPS(__half, "f16", 0x5c00u, __half2, __floats2half2_rn);
KILN_TC_OPS(__nv_bfloat16, "bf16", 0x4380u, __nv_bfloat162, __floats2bfloat162_rn);
#undef KILN_TC_OPS

/* Four 8x8 matrices of 16-bit elements from shared memory; lanes 8i..8i+7 name the rows of
 * matrix i. With trans, each comes out transposed. */
__device__ __forceinline__ void ldsm_x4(uint32_t *r, uint32_t addr)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}

__device__ __forceinline__ void ldsm_x4_t(uint32_t *r, uint32_t addr)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}

/* Two matrices (lanes 0-15 name the rows), transposed. */
__device__ __forceinline__ void ldsm_x2_t(uint32_t *r, uint32_t addr)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(addr)
                 : "memory");
}

__device__ __forceinline__ void cp_async_commit()
{
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

template <int N> __device__ __forceinline__ void cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/* Row pitch (elements) of a shared tile of width w (a multiple of 8): whole 16-byte units,
 * an odd number of them so that the 8 rows of an ldmatrix fall in different banks. */
__host__ __device__ constexpr int tc_pitch(int w)
{
    return (w / 8) % 2 ? w : w + 8;
}

__device__ __forceinline__ void cp_async16(uint32_t dst, const void *src, uint32_t bytes)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(bytes)
                 : "memory");
}

/* Byte steps of the vec16 copies, computed on the host (kernel parameters, so they take no
 * registers): between one thread's rows of a tile (pass) and between tiles (tile). */
struct tc_steps {
    int64_t kpass, vpass, ktile, vtile;
};

/* Loads a block's K and V tiles (BKL keys of one head, D columns) into a shared stage: K at
 * row pitch P, then V at the same pitch; rows at or past lk become zeros. With vec16 (rows
 * and columns 16-byte aligned), 16-byte cp.async copies that the caller commits and waits
 * for: LPR lanes to a row (the power of two at or above D / 8 chunks), each thread keeping
 * one column chunk and walking down its rows, its global addresses (kp, vp) advanced a tile
 * at a time; else plain 4-byte copies. */
template <typename T, int D, int BKL> struct kv_loader {
    static constexpr int CH = D / 8, LPR = CH <= 4 ? 4 : CH <= 8 ? 8 : CH <= 16 ? 16 : 32;
    static constexpr int RPP = TC_THREADS / LPR, P = tc_pitch(D); /* rows a pass */
    static_assert(CH <= 32 && BKL % RPP == 0, "tile shape");
    const char *kp, *vp;   /* this thread's chunk in the next tile */
    uint32_t dst;          /* its shared byte offset in a K tile */
    int row;               /* its first row in a tile */
    bool on;               /* this lane has a chunk */

    __device__ __forceinline__ kv_loader(const T *k, const T *v, const attn_args &a)
    {
        const int c = threadIdx.x % LPR;
        row = threadIdx.x / LPR;
        on = c < CH;
        kp = (const char *)(k + row * a.krs + c * 8);
        vp = (const char *)(v + row * a.vrs + c * 8);
        dst = (uint32_t)(row * P + c * 8) * 2;
    }

    /* Tile k0 (the next one in order) into the stage at sm. */
    __device__ __forceinline__ void load(T *sm, int64_t k0, int64_t lk, bool vec16,
                                         const tc_steps &st, const attn_args &a)
    {
        if (!vec16) {
            const int64_t b = blockIdx.z, h = blockIdx.y;
            slow(sm, (const T *)a.k + b * a.kbs + h * D, a.krs, k0, lk);
            slow(sm + BKL * P, (const T *)a.v + b * a.vbs + h * D, a.vrs, k0, lk);
            return;
        }
        if (on) {
            const uint32_t kd = smem_u32(sm) + dst, vd = kd + BKL * P * 2;
            const char *ks = kp, *vs = vp;
            const bool full = k0 + BKL <= lk;
#pragma unroll
            for (int j = 0; j < BKL / RPP; j++) {
                const bool in = full || k0 + row + j * RPP < lk;
                /* past lk: no bytes read (from a valid address all the same), zeros stored */
                cp_async16(kd + j * RPP * P * 2, in ? (const void *)ks : a.k, in ? 16 : 0);
                cp_async16(vd + j * RPP * P * 2, in ? (const void *)vs : a.v, in ? 16 : 0);
                ks += st.kpass;
                vs += st.vpass;
            }
        }
        kp += st.ktile;
        vp += st.vtile;
    }

    static __device__ __forceinline__ void slow(T *sm, const T *g, int64_t rs, int64_t k0,
                                                int64_t lk)
    {
        for (int i = threadIdx.x; i < BKL * D / 2; i += TC_THREADS) {
            int r = i / (D / 2), c = (i - r * (D / 2)) * 2;
            uint32_t v = 0;
            if (k0 + r < lk)
                v = *(const uint32_t *)(g + (k0 + r) * rs + c);
            *(uint32_t *)(sm + r * P + c) = v;
        }
    }
};

/* The A fragments of this warp's 16 * MT query rows from r0 on (zero past lq), read once
 * from global memory: qf for the DK = D / 16 steps of 16 columns, q8 for the last 8 columns
 * when D % 16 == 8 (an m16n8k8 step instead of 8 columns of zeros). */
template <typename T, int D, int MT, int DK>
__device__ __forceinline__ void load_q(uint32_t (&qf)[MT][DK][4], uint32_t (&q8)[MT][2],
                                       const T *qg, int64_t rs, int64_t r0, int64_t lq, int g,
                                       int t)
{
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int j = 0; j < 4 * DK + 2; j++) {
            int kk = j / 4, e = j % 4;
            int64_t row = r0 + mt * 16 + g + (e & 1) * 8;
            int col = kk * 16 + 2 * t + (e >> 1) * 8;
            uint32_t v = row < lq && col < D ? *(const uint32_t *)(qg + row * rs + col) : 0u;
            if (kk < DK)
                qf[mt][kk][e] = v;
            else
                q8[mt][e] = v;
        }
}

/* S [16 MT, BKC] = Q K^T for one sub-tile of keys. kaddr: the shared address of its first
 * K row plus this lane's ldmatrix offset for the 16-column steps (keys 0-7, 0-7, 8-15, 8-15;
 * columns +0, +8, +0, +8); k8addr: the same for the 8-column step (keys 0-31, column 16 DK). */
template <typename T, int MT, int DK, bool K8, int NB, int PK>
__device__ __forceinline__ void tile_scores(float (&s)[MT][NB][4],
                                            const uint32_t (&qf)[MT][DK][4],
                                            const uint32_t (&q8)[MT][2], uint32_t kaddr,
                                            uint32_t k8addr)
{
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int n = 0; n < NB; n++)
            s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < DK; kk++)
#pragma unroll
        for (int np = 0; np < NB / 2; np++) { /* keys 16 np .. 16 np + 15 */
            uint32_t b[4];
            ldsm_x4(b, kaddr + (uint32_t)(np * 16 * PK + kk * 16) * 2);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                tc_ops<T>::mma(s[mt][2 * np], qf[mt][kk], b[0], b[1]);
                tc_ops<T>::mma(s[mt][2 * np + 1], qf[mt][kk], b[2], b[3]);
            }
        }
    if (K8) {
        static_assert(NB % 4 == 0, "the 8-column step takes keys 32 at a time");
#pragma unroll
        for (int nq = 0; nq < NB / 4; nq++) { /* keys 32 nq .. 32 nq + 31 */
            uint32_t b[4];
            ldsm_x4(b, k8addr + (uint32_t)(nq * 32 * PK) * 2);
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int j = 0; j < 4; j++)
                    tc_ops<T>::mma8(s[mt][4 * nq + j], q8[mt], b[j]);
        }
    }
}

/* Largest of the 2 NB scores of row half r (0: row g, 1: row g + 8) of m-tile s that this
 * lane holds, as a tree (short dependency chains). */
template <int NB> __device__ __forceinline__ float lane_max(const float (&s)[NB][4], int r)
{
    float v[NB];
#pragma unroll
    for (int n = 0; n < NB; n++)
        v[n] = fmaxf(s[n][2 * r], s[n][2 * r + 1]);
#pragma unroll
    for (int w = 1; w < NB; w *= 2)
#pragma unroll
        for (int n = 0; n + w < NB; n += 2 * w)
            v[n] = fmaxf(v[n], v[n + w]);
    return v[0];
}

/* P = 2^(s c + nm) of one sub-tile as A fragments (nm = -m c per row), and ps the sums of
 * this lane's p of each row (before rounding, float32). */
template <typename T, int MT, int NB>
__device__ __forceinline__ void tile_exp(const float (&s)[MT][NB][4], uint32_t (&p)[MT][NB][2],
                                         const float (&nm)[MT][2], float sl2, float (&ps)[MT][2])
{
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        ps[mt][0] = ps[mt][1] = 0.0f;
#pragma unroll
        for (int n = 0; n < NB; n++) {
            float e0 = ex2f(fmaf(s[mt][n][0], sl2, nm[mt][0]));
            float e1 = ex2f(fmaf(s[mt][n][1], sl2, nm[mt][0]));
            float e2 = ex2f(fmaf(s[mt][n][2], sl2, nm[mt][1]));
            float e3 = ex2f(fmaf(s[mt][n][3], sl2, nm[mt][1]));
            p[mt][n][0] = tc_ops<T>::pack(e0, e1);
            p[mt][n][1] = tc_ops<T>::pack(e2, e3);
            ps[mt][0] += e0 + e1;
            ps[mt][1] += e2 + e3;
        }
    }
}

/* Whether any p of the sub-tile reached P_LIM (or is infinite or NaN): non-negative 16-bit
 * floats order as their bit patterns, so a packed integer maximum finds it. */
template <typename T, int MT, int NB>
__device__ __forceinline__ bool p_large(const uint32_t (&p)[MT][NB][2])
{
    uint32_t v[MT * NB * 2];
#pragma unroll
    for (int i = 0; i < MT * NB * 2; i++)
        v[i] = p[i / (NB * 2)][(i / 2) % NB][i % 2];
#pragma unroll
    for (int w = 1; w < MT * NB * 2; w *= 2)
#pragma unroll
        for (int i = 0; i + w < MT * NB * 2; i += 2 * w)
            v[i] = __vmaxu2(v[i], v[i + w]); /* max.u16x2 */
    return (v[0] & 0xffffu) >= tc_ops<T>::P_LIM || v[0] >= (tc_ops<T>::P_LIM << 16);
}

/* Moves each row's reference maximum m to its largest score so far (nm = -m c), rescaling
 * the row's l and o by 2^(m_old c - m_new c) (0 on the first sub-tile, where nm = inf). */
template <int MT, int NB, int NV>
__device__ __forceinline__ void tile_rescale(const float (&s)[MT][NB][4], float (&nm)[MT][2],
                                             float (&l)[MT][2], float (&o)[MT][NV][4],
                                             float sl2)
{
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float v = lane_max<NB>(s[mt], r);
            v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1)); /* the quad holds the row */
            v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
            float nn = fminf(nm[mt][r], -v * sl2);
            float c = ex2f(nn - nm[mt][r]);
            nm[mt][r] = nn;
            l[mt][r] *= c;
#pragma unroll
            for (int n = 0; n < NV; n++) {
                o[mt][n][2 * r] *= c;
                o[mt][n][2 * r + 1] *= c;
            }
        }
}

/* O [16 MT, D] += P V for one sub-tile; vaddr: the shared address of its
 * first V row plus this lane's ldmatrix offset. */
template <typename T, int MT, int NB, int NV, int PV>
__device__ __forceinline__ void tile_pv(float (&o)[MT][NV][4], const uint32_t (&p)[MT][NB][2],
                                        uint32_t vaddr)
{
#pragma unroll
    for (int kc = 0; kc < NB / 2; kc++) { /* keys 16 kc .. 16 kc + 15 */
        uint32_t pa[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            pa[mt][0] = p[mt][2 * kc][0];
            pa[mt][1] = p[mt][2 * kc][1];
            pa[mt][2] = p[mt][2 * kc + 1][0];
            pa[mt][3] = p[mt][2 * kc + 1][1];
        }
        const uint32_t va = vaddr + (uint32_t)(kc * 16 * PV) * 2;
#pragma unroll
        for (int np = 0; np < NV / 2; np++) {
            uint32_t b[4];
            ldsm_x4_t(b, va + (uint32_t)(np * 16) * 2);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                tc_ops<T>::mma(o[mt][2 * np], pa[mt], b[0], b[1]);
                tc_ops<T>::mma(o[mt][2 * np + 1], pa[mt], b[2], b[3]);
            }
        }
        if (NV % 2) {
            uint32_t b[2];
            ldsm_x2_t(b, va + (uint32_t)((NV - 1) * 8) * 2);
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
                tc_ops<T>::mma(o[mt][NV - 1], pa[mt], b[0], b[1]);
        }
    }
}

/* Two adjacent elements i, i + 1 (i even) of out; al: out's base is 8-byte aligned. */
__device__ __forceinline__ void st_pair(void *p, int dt, int64_t i, float x, float y, bool al)
{
    if (al && dt == KILN_DTYPE_F16) {
        *(__half2 *)((__half *)p + i) = __floats2half2_rn(x, y);
    } else if (al && dt == KILN_DTYPE_BF16) {
        *(__nv_bfloat162 *)((__nv_bfloat16 *)p + i) = __floats2bfloat162_rn(x, y);
    } else if (al && dt == KILN_DTYPE_F32) {
        *(float2 *)((float *)p + i) = make_float2(x, y);
    } else {
        st_f(p, dt, i, x);
        st_f(p, dt, i + 1, y);
    }
}

/* One warp's state: softmax maxima m of its 2 MT rows as nm = -m c (c = scale log2 e), this
 * lane's parts of their sums l (rows g and g + 8 of each m-tile; the quad's four parts make
 * a row's sum), output accumulator o, and its query rows' A fragments. */
template <int MT, int DK, int NV> struct warp_state {
    uint32_t qf[MT][DK][4], q8[MT][2];
    float o[MT][NV][4], l[MT][2], nm[MT][2];
};

/* Scores of keys at or past lk (this sub-tile's first key is kb) to -inf. */
template <int MT, int NB>
__device__ __forceinline__ void mask_keys(float (&s)[MT][NB][4], int64_t kb, int64_t lk, int t)
{
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int n = 0; n < NB; n++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                if (kb + n * 8 + 2 * t + (e & 1) >= lk)
                    s[mt][n][e] = -INFINITY;
}

/* Folds one tile of BKL keys from k0 on (K at shared address kbase, V at vbase, this lane's
 * ldmatrix offsets not yet added) into the warp's state, a sub-tile of BKC keys at a time.
 * FULL: all BKL keys exist; else keys at or past lk are masked off. */
template <typename T, int D, int MT, int BKL, int BKC, bool FULL>
__device__ __forceinline__ void tile_step(warp_state<MT, D / 16, D / 8> &w, uint32_t kbase,
                                          uint32_t vbase, int64_t k0, int64_t lk, float sl2)
{
    constexpr int DK = D / 16, NV = D / 8, NB = BKC / 8, PK = tc_pitch(D), PV = PK;
    const int lane = threadIdx.x & 31, t = lane & 3;
    const uint32_t koff =
        (uint32_t)(((lane & 7) + ((lane >> 4) << 3)) * PK + ((lane >> 3) & 1) * 8) * 2;
    const uint32_t k8off = (uint32_t)(lane * PK + DK * 16) * 2;
    const uint32_t voff = (uint32_t)((lane & 15) * PV + (lane >> 4) * 8) * 2;
#pragma unroll
    for (int sub = 0; sub < BKL / BKC; sub++) {
        const int64_t kb = k0 + sub * BKC;
        if (!FULL && kb >= lk)
            break;
        const uint32_t ks = kbase + (uint32_t)(sub * BKC * PK) * 2;
        const bool part = !FULL && kb + BKC > lk; /* keys past lk get p = 0 */
        float s[MT][NB][4];
        uint32_t p[MT][NB][2];
        tile_scores<T, MT, DK, D % 16 == 8, NB, PK>(s, w.qf, w.q8, ks + koff, ks + k8off);
        if (part)
            mask_keys<MT, NB>(s, kb, lk, t);
        float ps[MT][2];
        tile_exp<T, MT, NB>(s, p, w.nm, sl2, ps);
        if (__any_sync(0xffffffffu, p_large<T, MT, NB>(p))) {
            /* rare (the first sub-tile, or scores that outgrew m): the scores again, m moved
             * to their maximum, P anew */
            tile_scores<T, MT, DK, D % 16 == 8, NB, PK>(s, w.qf, w.q8, ks + koff, ks + k8off);
            if (part)
                mask_keys<MT, NB>(s, kb, lk, t);
            tile_rescale<MT, NB, NV>(s, w.nm, w.l, w.o, sl2);
            tile_exp<T, MT, NB>(s, p, w.nm, sl2, ps);
        }
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            w.l[mt][0] += ps[mt][0];
            w.l[mt][1] += ps[mt][1];
        }
        tile_pv<T, MT, NB, NV, PV>(w.o, p, vbase + (uint32_t)(sub * BKC * PV) * 2 + voff);
    }
}

/* The kernel: grid (query blocks of 64 MT rows, heads, batches), 128 threads. Keys come in
 * tiles of BKL (STAGES deep in shared memory, K and V tiles of row pitch tc_pitch(D)) and
 * are scored in sub-tiles of BKC, which bounds the registers the scores take. pair_st:
 * out's base is 8-byte aligned. */
template <typename T, int D, int MT, int BKL, int BKC, int STAGES, int MINB>
__global__ void __launch_bounds__(TC_THREADS, MINB)
    attn_tc_k(attn_args a, tc_steps st, int vec16, int pair_st)
{
    constexpr int DK = D / 16, NV = D / 8, P = tc_pitch(D), STAGE = 2 * BKL * P;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T *kv = (T *)smem_raw; /* STAGES x (K tile [BKL, P], V tile [BKL, P]) */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int64_t b = blockIdx.z, h = blockIdx.y, lk = a.lk;
    const int64_t r0 = (int64_t)blockIdx.x * (64 * MT) + warp * 16 * MT; /* this warp's rows */
    kv_loader<T, D, BKL> ld((const T *)a.k + b * a.kbs + h * D,
                            (const T *)a.v + b * a.vbs + h * D, a);
    const int ntiles = (int)((lk + BKL - 1) / BKL);
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) { /* the first tiles start loading */
        if (s < ntiles)
            ld.load(kv + s * STAGE, (int64_t)s * BKL, lk, vec16, st, a);
        cp_async_commit();
    }
    warp_state<MT, DK, NV> w;
    load_q<T, D, MT, DK>(w.qf, w.q8, (const T *)a.q + b * a.qbs + h * D, a.qrs, r0, a.lq, g, t);
    const float sl2 = a.scale * 1.4426950408889634f; /* scores to log2 units */
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        w.nm[mt][0] = w.nm[mt][1] = INFINITY;
        w.l[mt][0] = w.l[mt][1] = 0.0f;
#pragma unroll
        for (int n = 0; n < NV; n++)
            w.o[mt][n][0] = w.o[mt][n][1] = w.o[mt][n][2] = w.o[mt][n][3] = 0.0f;
    }
    int cur = 0, nxt = STAGES - 1;
    for (int it = 0; it < ntiles; it++) {
        cp_async_wait<STAGES - 2>(); /* tile it has landed (this thread's copies) */
        __syncthreads(); /* ... everyone's; and the stage of tile it - 1 is free */
        if (it + STAGES - 1 < ntiles)
            ld.load(kv + nxt * STAGE, (int64_t)(it + STAGES - 1) * BKL, lk, vec16, st, a);
        cp_async_commit();
        const uint32_t kbase = smem_u32(kv + cur * STAGE), vbase = kbase + BKL * P * 2;
        const int64_t k0 = (int64_t)it * BKL;
        if (k0 + BKL <= lk)
            tile_step<T, D, MT, BKL, BKC, true>(w, kbase, vbase, k0, lk, sl2);
        else
            tile_step<T, D, MT, BKL, BKC, false>(w, kbase, vbase, k0, lk, sl2);
        cur = cur + 1 == STAGES ? 0 : cur + 1;
        nxt = nxt + 1 == STAGES ? 0 : nxt + 1;
    }
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int64_t row = r0 + mt * 16 + g + 8 * r;
            float lsum = w.l[mt][r]; /* the quad's parts of the row's sum */
            lsum += __shfl_xor_sync(0xffffffffu, lsum, 1);
            lsum += __shfl_xor_sync(0xffffffffu, lsum, 2);
            const float inv = 1.0f / lsum;
            if (row >= a.lq)
                continue;
            const int64_t ob = (b * a.lq + row) * a.heads * D + h * D + 2 * t;
#pragma unroll
            for (int n = 0; n < NV; n++)
                st_pair(a.o, a.odt, ob + n * 8, w.o[mt][n][2 * r] * inv,
                        w.o[mt][n][2 * r + 1] * inv, pair_st);
        }
}

template <typename T, int D, int MT, int BKL, int BKC, int STAGES, int MINB>
int launch_tc(const attn_args &a, int64_t nb, cudaStream_t s, int vec16, int dev)
{
    const size_t smem = (size_t)STAGES * 2 * BKL * tc_pitch(D) * sizeof(T);
    auto kern = attn_tc_k<T, D, MT, BKL, BKC, STAGES, MINB>;
    /* the shared-memory size, and all of the SM's shared memory for the carveout so that
     * MINB blocks fit: set once per device (bit dev of set_on) */
    static std::atomic<uint64_t> set_on{0};
    if (dev >= 64 || !(set_on.load(std::memory_order_relaxed) >> dev & 1)) {
        if ((smem > 48 * 1024 &&
             cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  (int)smem) != cudaSuccess) ||
            cudaFuncSetAttribute(kern, cudaFuncAttributePreferredSharedMemoryCarveout,
                                 cudaSharedmemCarveoutMaxShared) != cudaSuccess)
            return KILN_EDEVICE;
        if (dev < 64)
            set_on.fetch_or((uint64_t)1 << dev, std::memory_order_relaxed);
    }
    dim3 grid((unsigned)((a.lq + 64 * MT - 1) / (64 * MT)), (unsigned)a.heads, (unsigned)nb);
    typedef kv_loader<T, D, BKL> ldr;
    tc_steps st = {ldr::RPP * a.krs * 2, ldr::RPP * a.vrs * 2, BKL * a.krs * 2, BKL * a.vrs * 2};
    int pair_st = (uintptr_t)a.o % 8 == 0;
    kern<<<grid, TC_THREADS, smem, s>>>(a, st, vec16, pair_st);
    KILN_CUDA_LAUNCHED();
    return 0;
}

/* 32 query rows a warp (MT 2) halve the shared-memory traffic per product but take more
 * registers and make half as many blocks: worth it unless the grid would leave most SMs
 * idle. */
bool two_tiles(const attn_args &a, int64_t nb, int dev)
{
    static std::atomic<int> sm_count[64]; /* per device, 0 until asked */
    int sms = dev < 64 ? sm_count[dev].load(std::memory_order_relaxed) : 0;
    if (sms <= 0) {
        if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
            sms <= 0)
            sms = 132;
        else if (dev < 64)
            sm_count[dev].store(sms, std::memory_order_relaxed);
    }
    int64_t blocks = nb * a.heads * ((a.lq + 127) / 128);
    return 2 * blocks >= (int64_t)sms;
}

/* The instance for head width a.d (= a.dv): tile shapes and the blocks an SM should hold
 * (register budget) chosen per width. */
template <typename T> int dispatch_tc(const attn_args &a, int64_t nb, cudaStream_t s, int vec16)
{
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0)
        return KILN_EDEVICE;
    const bool mt2 = two_tiles(a, nb, dev);
    switch (a.d) {
    case 32:
        return mt2 ? launch_tc<T, 32, 2, 64, 32, 2, 4>(a, nb, s, vec16, dev)
                   : launch_tc<T, 32, 1, 64, 64, 3, 4>(a, nb, s, vec16, dev);
    case 40:
        return mt2 ? launch_tc<T, 40, 2, 64, 32, 2, 4>(a, nb, s, vec16, dev)
                   : launch_tc<T, 40, 1, 64, 64, 3, 4>(a, nb, s, vec16, dev);
    case 64:
        return mt2 ? launch_tc<T, 64, 2, 64, 32, 3, 2>(a, nb, s, vec16, dev)
                   : launch_tc<T, 64, 1, 64, 32, 3, 4>(a, nb, s, vec16, dev);
    case 80:
        return mt2 ? launch_tc<T, 80, 2, 64, 32, 2, 2>(a, nb, s, vec16, dev)
                   : launch_tc<T, 80, 1, 128, 64, 2, 3>(a, nb, s, vec16, dev);
    case 128:
        return launch_tc<T, 128, 1, 32, 32, 3, 2>(a, nb, s, vec16, dev);
    case 160:
        return launch_tc<T, 160, 1, 64, 32, 2, 2>(a, nb, s, vec16, dev);
    default:
        return KILN_EUNSUPPORTED;
    }
}

} // namespace

int attention_tc(const attn_args &a, int64_t nb, cudaStream_t s)
{
    const int dt = a.qdt;
    if (a.kdt != dt || a.vdt != dt || a.d != a.dv ||
        (dt != KILN_DTYPE_F16 && dt != KILN_DTYPE_BF16) || !(a.scale > 0.0f))
        return KILN_EUNSUPPORTED;
    /* 4-byte element pairs everywhere; 16-byte asynchronous copies when every row and
     * head starts 16-byte aligned */
    const int64_t st[] = {a.qbs, a.qrs, a.kbs, a.krs, a.vbs, a.vrs, (int64_t)a.d};
    int vec16 = ((uintptr_t)a.k | (uintptr_t)a.v) % 16 == 0;
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
        if (st[i] % 2)
            return KILN_EUNSUPPORTED;
        if (i >= 2) /* Q is read straight into registers */
            vec16 &= st[i] % 8 == 0;
    }
    if (((uintptr_t)a.q | (uintptr_t)a.k | (uintptr_t)a.v) % 4)
        return KILN_EUNSUPPORTED;
    return dt == KILN_DTYPE_F16 ? dispatch_tc<__half>(a, nb, s, vec16)
                                : dispatch_tc<__nv_bfloat16>(a, nb, s, vec16);
}

} // namespace kiln_cuda
