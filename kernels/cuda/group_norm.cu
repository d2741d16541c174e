/* Group norm on CUDA, with optional fused SiLU, over dense NCHW or channels-last tensors.
 * A group of few elements takes one kernel: a block per (sample, group) sums the group,
 * then normalizes it. Larger groups take two: partial sums per chunk of a group from
 * enough blocks to fill the device, then a normalize pass whose blocks first reduce the
 * partial sums of the groups they touch (so no launch sits between the two). Channels-
 * last blocks span every group of a sample; there, thread block clusters of GN_CLUSTER
 * blocks add up their partial sums in shared memory, which keeps the sums to reduce per
 * normalize block few. Statistics accumulate in double (float within one short step for
 * 16-bit input), over x minus the group's first element k, so the one-pass variance does
 * not cancel when the mean is large. In place is safe: a group is read in full before any
 * of it is written, every element is read before it is written, and k reaches the
 * normalize pass through scratch memory, not x. */
#include <cooperative_groups.h>

#include "kernels/cuda/norm.cuh"

namespace cg = cooperative_groups;

/* Elements a group may have for the one-kernel path (a block per group). */
#ifndef KILN_GN_FUSED_MAX
#define KILN_GN_FUSED_MAX 16384
#endif

namespace kiln_cuda {

/* Blocks per cluster of the channels-last kernels (the portable maximum). */
#define GN_CLUSTER 8

__device__ __forceinline__ float gn_y(float x, float mean, float scale, float shift, int silu)
{
    float y = (x - mean) * scale + shift;
    return silu ? y / (1.0f + expf(-y)) : y;
}

/* A group's mean and 1 / sqrt(var + eps) from its sums s and ss of d = x - k and d^2 over
 * count elements (biased variance, as torch). */
__device__ __forceinline__ void gn_moments(double s, double ss, int64_t count, float k,
                                           double eps, float *mean, double *rstd)
{
    s /= (double)count;
    ss /= (double)count;
    double var = ss - s * s;
    *rstd = 1.0 / sqrt((var > 0.0 ? var : 0.0) + eps);
    *mean = (float)((double)k + s);
}

/* Sums of d = f - k and d^2 over a thread's step of 4 vectors, in A, added to s and ss in
 * double. Vectors that are not there hold k and add nothing. */
template <typename A, int N>
__device__ __forceinline__ void gn_acc4(const float (&f)[4][N], A k, double &s, double &ss)
{
    A ps = 0, pss = 0;
#pragma unroll
    for (int u = 0; u < 4; u++) {
#pragma unroll
        for (int e = 0; e < N; e++) {
            A d = (A)f[u][e] - k;
            ps += d;
            pss += d * d;
        }
    }
    s += (double)ps;
    ss += (double)pss;
}

/* The 4 N-vectors of a dense step: vectors v, v + nt, ... below v1, at base + vector * N.
 * Missing ones are set to fill. */
template <typename T, int N>
__device__ __forceinline__ void nchw_load4(operand x, int64_t base, int64_t v, int64_t nt,
                                           int64_t v1, float fill, float (&f)[4][N])
{
#pragma unroll
    for (int u = 0; u < 4; u++) {
        if (v + u * nt < v1) {
            io<T>::template load<N>(x.p, x.dt, base + (v + u * nt) * N, f[u]);
        } else {
#pragma unroll
            for (int e = 0; e < N; e++)
                f[u][e] = fill;
        }
    }
}

/* The 4 N-vectors of a channels-last step: positions p, p + np, ... below p1, at base +
 * position * ch. Missing ones are set to fill. */
template <typename T, int N>
__device__ __forceinline__ void cl_load4(operand x, int64_t base, int64_t p, int np, int64_t p1,
                                         int ch, float fill, float (&f)[4][N])
{
#pragma unroll
    for (int u = 0; u < 4; u++) {
        int64_t pu = p + (int64_t)u * np;
        if (pu < p1) {
            io<T>::template load<N>(x.p, x.dt, base + pu * ch, f[u]);
        } else {
#pragma unroll
            for (int e = 0; e < N; e++)
                f[u][e] = fill;
        }
    }
}

/* ---- one kernel: a block per group ---------------------------------------------------------
 * Block gi = n * groups + g reads its group's count = cpg * sp elements as vectors of N
 * (N divides sp when dense, cpg when channels-last), sums them, then reads them again
 * (from cache) to normalize. The channels' scale and shift wait in shared memory (dynamic,
 * 2 * cpg floats). */
template <typename T, int N, bool CL> struct gn_group {
    int64_t base; /* element [n, g * cpg, 0...] */
    int sp, ch, cpg, vpg;

    __device__ __forceinline__ int64_t at(int v) const /* element offset of vector v */
    {
        if (!CL)
            return base + (int64_t)v * N;
        int p = v / vpg;
        return base + (int64_t)p * ch + (int64_t)(v - p * vpg) * N;
    }
    __device__ __forceinline__ int chan(int v) const /* channel in the group of vector v */
    {
        return CL ? (v % vpg) * N : (int)((int64_t)v * N / sp);
    }
};

template <typename T, int N, bool CL>
__global__ void __launch_bounds__(1024)
    gn_fused_k(operand o, operand x, int sp, int ch, int cpg, int groups, affine af, double eps,
               int silu)
{
    typedef typename acc<T>::type A;
    extern __shared__ float fsm[];
    __shared__ double sh[32];
    const int64_t gi = blockIdx.x, n = gi / groups, g = gi % groups;
    const int count = cpg * sp, nv = count / N, t = threadIdx.x, nt = blockDim.x;
    gn_group<T, N, CL> gr;
    gr.base = CL ? n * sp * ch + g * cpg : gi * count;
    gr.sp = sp;
    gr.ch = ch;
    gr.cpg = cpg;
    gr.vpg = cpg / N;
    const A k = (A)ld_f(x.p, x.dt, gr.base);
    double s = 0.0, ss = 0.0;
#pragma unroll 4
    for (int v = t; v < nv; v += nt) {
        float f[1][N];
        io<T>::template load<N>(x.p, x.dt, gr.at(v), f[0]);
        A ps = 0, pss = 0;
#pragma unroll
        for (int e = 0; e < N; e++) {
            A d = (A)f[0][e] - k;
            ps += d;
            pss += d * d;
        }
        s += (double)ps;
        ss += (double)pss;
    }
    float mean;
    double rstd;
    s = block_sum(s, sh);
    ss = block_sum(ss, sh);
    gn_moments(s, ss, count, (float)k, eps, &mean, &rstd);
    for (int c = t; c < cpg; c += nt) {
        fsm[c] = (float)(rstd * aff_w(af, g * cpg + c));
        fsm[cpg + c] = aff_bf(af, g * cpg + c);
    }
    __syncthreads();
#pragma unroll 4
    for (int v = t; v < nv; v += nt) {
        float f[N], y[N];
        const int64_t i = gr.at(v);
        const int c = gr.chan(v);
        io<T>::template load<N>(x.p, x.dt, i, f);
#pragma unroll
        for (int e = 0; e < N; e++) {
            int ce = CL ? c + e : c;
            y[e] = gn_y(f[e], mean, fsm[ce], fsm[cpg + ce], silu);
        }
        io<T>::template store<N>(o.p, o.dt, i, y);
    }
}

/* ---- two kernels, dense [N, C, S] ------------------------------------------------------------
 * part[(gi, chunk), 2] holds a chunk's sums of d and d^2 for group gi = n * groups + g;
 * kd[gi] is the group's k. Block (gi, chunk) covers elements [chunk * len, ...) of the
 * group's count contiguous ones; count and len are multiples of N. */
template <typename T, int N>
__global__ void __launch_bounds__(256)
    gn_stats_nchw_k(operand x, int64_t count, int64_t len, int chunks, double *part, float *kd)
{
    typedef typename acc<T>::type A;
    __shared__ double sh[32];
    const int64_t gi = blockIdx.x / chunks, base = gi * count, nt = blockDim.x;
    const int64_t j0 = (int64_t)(blockIdx.x % chunks) * len;
    const int64_t v1 = (j0 + len < count ? j0 + len : count) / N;
    const A k = (A)ld_f(x.p, x.dt, base);
    double s = 0.0, ss = 0.0;
    for (int64_t v = j0 / N + threadIdx.x; v < v1; v += 4 * nt) {
        float f[4][N];
        nchw_load4<T, N>(x, base, v, nt, v1, (float)k, f);
        gn_acc4<A, N>(f, k, s, ss);
    }
    s = block_sum(s, sh);
    ss = block_sum(ss, sh);
    if (threadIdx.x == 0) {
        part[2 * (int64_t)blockIdx.x] = s;
        part[2 * (int64_t)blockIdx.x + 1] = ss;
        if (j0 == 0)
            kd[gi] = (float)k;
    }
}

/* Block (gi, achunk) normalizes elements [achunk * alen, ...) of group gi (alen a multiple
 * of N, N divides S) after reducing the group's `chunks` partial sums. Its first step of
 * x is loaded before that, so the two latencies overlap. */
template <typename T, int N>
__global__ void __launch_bounds__(256)
    gn_apply_nchw_k(operand o, operand x, int64_t sp, int groups, int64_t cpg, int64_t alen,
                    int achunks, const double *part, const float *kd, int chunks, affine af,
                    double eps, int silu)
{
    __shared__ double sh[32];
    const int64_t count = cpg * sp, gi = blockIdx.x / achunks, nt = blockDim.x;
    const int64_t j0 = (int64_t)(blockIdx.x % achunks) * alen, base = gi * count;
    const int64_t v1 = (j0 + alen < count ? j0 + alen : count) / N;
    const int64_t c0 = (gi % groups) * cpg;
    const bool narrow = count <= (int64_t)UINT32_MAX;
    int64_t v = j0 / N + threadIdx.x;
    float f[4][N];
    nchw_load4<T, N>(x, base, v, nt, v1, 0.0f, f);
    double s = 0.0, ss = 0.0;
    for (int q = threadIdx.x; q < chunks; q += nt) {
        double2 pq = reinterpret_cast<const double2 *>(part)[gi * chunks + q];
        s += pq.x;
        ss += pq.y;
    }
    float mean;
    double rstd;
    s = block_sum(s, sh);
    ss = block_sum(ss, sh);
    gn_moments(s, ss, count, kd[gi], eps, &mean, &rstd);
    for (bool first = true; v < v1; v += 4 * nt, first = false) {
        if (!first)
            nchw_load4<T, N>(x, base, v, nt, v1, 0.0f, f);
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int64_t vu = v + u * nt;
            if (vu >= v1)
                break;
            int64_t j = vu * N; /* in the group */
            int64_t c = c0 + (narrow ? (int64_t)((uint32_t)j / (uint32_t)sp) : j / sp);
            float scale = (float)(rstd * aff_w(af, c)), shift = aff_bf(af, c), y[N];
#pragma unroll
            for (int e = 0; e < N; e++)
                y[e] = gn_y(f[u][e], mean, scale, shift, silu);
            io<T>::template store<N>(o.p, o.dt, base + j, y);
        }
    }
}

/* ---- two kernels, channels-last [N, S, C] -----------------------------------------------------
 * Blocks of cvn * P threads: thread t owns channel vector t % cvn at positions t / cvn,
 * + P, ... of its block's chunk of positions. The grid is n * pcs clusters of GN_CLUSTER
 * blocks; block r of cluster (n, q) takes chunk q * GN_CLUSTER + r (possibly past the end,
 * then empty). part[(n, g, q), 2] holds cluster q's sums for group g of sample n. */

/* Statistics: N channels a vector (N divides cpg, so a vector lies in one group). Shared
 * memory (dynamic): 2 * blockDim.x doubles of per-thread sums, then 2 * groups of the
 * block's sums, which block r of the cluster adds up for groups r, r + GN_CLUSTER, ... */
template <typename T, int N>
__global__ void __cluster_dims__(GN_CLUSTER, 1, 1) __launch_bounds__(1024)
    gn_stats_nhwc_k(operand x, int64_t sp, int ch, int cpg, int groups, int64_t pchunk,
                    int pcs, double *part, float *kd)
{
    typedef typename acc<T>::type A;
    extern __shared__ double shd[];
    cg::cluster_group cl = cg::this_cluster();
    const int cvn = ch / N, nt = blockDim.x, np = nt / cvn, vpg = cpg / N;
    const int t = threadIdx.x, pp = t / cvn, cv = t - pp * cvn, r = blockIdx.x % GN_CLUSTER;
    const int64_t cq = blockIdx.x / GN_CLUSTER, n = cq / pcs, q = cq % pcs, base = n * sp * ch;
    const int64_t p0 = (q * GN_CLUSTER + r) * pchunk, p1 = p0 + pchunk < sp ? p0 + pchunk : sp;
    const A k = (A)ld_f(x.p, x.dt, base + (int64_t)(cv / vpg) * cpg);
    double s = 0.0, ss = 0.0;
    for (int64_t p = p0 + pp; p < p1; p += 4 * (int64_t)np) {
        float f[4][N];
        cl_load4<T, N>(x, base + (int64_t)cv * N, p, np, p1, ch, (float)k, f);
        gn_acc4<A, N>(f, k, s, ss);
    }
    double *bs = shd + 2 * nt;
    shd[t] = s;
    shd[nt + t] = ss;
    __syncthreads();
    for (int g = t; g < groups; g += nt) {
        double a = 0.0, b = 0.0;
        for (int pq = 0; pq < np; pq++) {
            for (int c = g * vpg; c < (g + 1) * vpg; c++) {
                a += shd[pq * cvn + c];
                b += shd[nt + pq * cvn + c];
            }
        }
        bs[2 * g] = a;
        bs[2 * g + 1] = b;
    }
    cl.sync(); /* every block's sums are in its shared memory, visible to the cluster */
    for (int g = r + GN_CLUSTER * t; g < groups; g += GN_CLUSTER * nt) {
        double a = 0.0, b = 0.0;
        for (int j = 0; j < GN_CLUSTER; j++) {
            const double *rb = cl.map_shared_rank(bs, j);
            a += rb[2 * g];
            b += rb[2 * g + 1];
        }
        int64_t i = ((n * groups + g) * pcs + q) * 2;
        part[i] = a;
        part[i + 1] = b;
    }
    if (q == 0 && r == 0) {
        for (int g = t; g < groups; g += nt)
            kd[n * groups + g] = ld_f(x.p, x.dt, base + (int64_t)g * cpg);
    }
    cl.sync(); /* no block leaves while another still reads its shared memory */
}

/* Normalize: N channels a vector (N divides C; a vector may span groups). Block r of a
 * cluster first reduces the pcs partial sums of groups r, r + GN_CLUSTER, ... of its
 * sample into shared memory (dynamic: ceil(groups / GN_CLUSTER) floats of mean, then as
 * many doubles of rstd, at slot g / GN_CLUSTER), then each thread reads its channels'
 * statistics from the block that holds them. */
template <typename T, int N>
__global__ void __cluster_dims__(GN_CLUSTER, 1, 1) __launch_bounds__(512)
    gn_apply_nhwc_k(operand o, operand x, int64_t sp, int ch, int cpg, int groups,
                    int64_t pchunk, int acs, const double *part, const float *kd, int pcs,
                    affine af, double eps, int silu)
{
    extern __shared__ double gsm[];
    cg::cluster_group cl = cg::this_cluster();
    const int slots = (groups + GN_CLUSTER - 1) / GN_CLUSTER, nt = blockDim.x;
    double *grstd = gsm;
    float *gmean = (float *)(gsm + slots);
    const int cvn = ch / N, np = nt / cvn, pp = threadIdx.x / cvn, r = blockIdx.x % GN_CLUSTER;
    const int cv = threadIdx.x - pp * cvn;
    const int64_t cq = blockIdx.x / GN_CLUSTER, n = cq / acs;
    const int64_t p0 = ((cq % acs) * GN_CLUSTER + r) * pchunk;
    const int64_t p1 = p0 + pchunk < sp ? p0 + pchunk : sp, base = n * sp * ch + cv * N;
    int64_t p = p0 + pp;
    float f[4][N];
    cl_load4<T, N>(x, base, p, np, p1, ch, 0.0f, f);
    for (int g = r + GN_CLUSTER * threadIdx.x; g < groups; g += GN_CLUSTER * nt) {
        const double2 *pg = reinterpret_cast<const double2 *>(part) + (n * groups + g) * pcs;
        double s = 0.0, ss = 0.0;
        for (int q = 0; q < pcs; q++) {
            double2 pq = pg[q];
            s += pq.x;
            ss += pq.y;
        }
        gn_moments(s, ss, (int64_t)cpg * sp, kd[n * groups + g], eps,
                   &gmean[g / GN_CLUSTER], &grstd[g / GN_CLUSTER]);
    }
    cl.sync(); /* the cluster's statistics are in place */
    float mean[N], scale[N], shift[N];
#pragma unroll
    for (int e = 0; e < N; e++) {
        int c = cv * N + e, g = c / cpg, slot = g / GN_CLUSTER;
        mean[e] = cl.map_shared_rank(gmean, g % GN_CLUSTER)[slot];
        scale[e] = (float)(cl.map_shared_rank(grstd, g % GN_CLUSTER)[slot] * aff_w(af, c));
        shift[e] = aff_bf(af, c);
    }
    cl.sync(); /* read: every block may now leave */
    for (bool first = true; p < p1; p += 4 * (int64_t)np, first = false) {
        if (!first)
            cl_load4<T, N>(x, base, p, np, p1, ch, 0.0f, f);
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int64_t pu = p + (int64_t)u * np;
            if (pu >= p1)
                break;
            float y[N];
#pragma unroll
            for (int e = 0; e < N; e++)
                y[e] = gn_y(f[u][e], mean[e], scale[e], shift[e], silu);
            io<T>::template store<N>(o.p, o.dt, base + pu * ch, y);
        }
    }
}

/* ---- launch --------------------------------------------------------------------------------- */

struct gn_args {
    int64_t n, ch, sp, cpg; /* x as [n, ch, sp]; cpg channels per group */
    int groups, silu;
    double eps;
    affine af;
};

/* Strides of a dense channels-last [N, C, *] tensor: memory order [N, *, C] (for 4-D
 * descriptors exactly what is_cl accepts). */
static void set_cl(kiln__cuda_desc_t *d)
{
    int64_t st = d->shape[1];
    d->strides[1] = 1;
    for (int i = d->ndim - 1; i >= 2; i--) {
        d->strides[i] = st;
        st *= d->shape[i];
    }
    d->strides[0] = st;
}

/* Threads of a channels-last block: P whole rows of cvn vectors, about `want` in all; 0
 * when one row needs more than `most`. The statistics take 512 (1024 at most); the
 * normalize pass, whose registers hold its channels' coefficients, 256 (512 at most), so
 * that a few blocks share an SM and the last wave of blocks is short. */
static int cl_threads(int64_t cvn, int64_t want, int64_t most)
{
    if (cvn > most)
        return 0;
    int64_t p = want / cvn;
    return (int)(cvn * (p < 1 ? 1 : p));
}

/* Positions per channels-last block: 4 per thread row step, times what keeps the grid
 * near `target` blocks. */
static int64_t cl_chunk(const gn_args &a, int np, int64_t target)
{
    int64_t per = 4 * (int64_t)np, blocks = a.n * ((a.sp + per - 1) / per);
    int64_t mult = (blocks + target - 1) / target;
    return per * (mult < 1 ? 1 : mult);
}

/* Vector widths: of the statistics (x alone; channels-last needs it to divide cpg) and of
 * the normalize pass (x and out of one dtype; it divides S, or C when channels-last). The
 * one-kernel path takes the normalize pass's width, which must also divide cpg there. */
static int stats_width(const kiln__cuda_desc_t *dx, const gn_args &a, bool cl)
{
    if (!typed_dt(dx->dtype))
        return 1;
    return vec_width(cl ? a.cpg : a.cpg * a.sp, dx->dtype, dx->ptr, NULL);
}

static int apply_width(const kiln__cuda_desc_t *out, const kiln__cuda_desc_t *dx,
                       const gn_args &a, bool cl, bool fused)
{
    if (out->dtype != dx->dtype || !typed_dt(dx->dtype))
        return 1;
    return vec_width(cl ? (fused ? a.cpg : a.ch) : a.sp, dx->dtype, dx->ptr, out->ptr);
}

/* Whether groups are small enough for the one-kernel path. */
static bool gn_fused_ok(const gn_args &a)
{
    return a.cpg * a.sp <= KILN_GN_FUSED_MAX && a.cpg <= 4096 && a.ch <= 0x7fffffff &&
           a.n * a.groups <= 0x7fffffff;
}

/* Whether the channels-last kernels take C channels in G groups: a row of vectors fits a
 * block, and the statistics' shared memory (per-thread and per-group sums) fits 48 KiB. */
static bool gn_cl_ok(const kiln__cuda_desc_t *out, const kiln__cuda_desc_t *dx, const gn_args &a)
{
    int threads = cl_threads(a.ch / stats_width(dx, a, true), 512, 1024);
    return threads > 0 && cl_threads(a.ch / apply_width(out, dx, a, true, false), 256, 512) > 0 &&
           (2 * (size_t)threads + 2 * (size_t)a.groups) * sizeof(double) <= 48 * 1024;
}

static int gn_fused(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                    const kiln__cuda_desc_t *dx, const gn_args &a, bool cl)
{
    int nv = apply_width(out, dx, a, cl, true);
    bool typed = out->dtype == dx->dtype && typed_dt(dx->dtype);
    int64_t vecs = a.cpg * a.sp / nv, threads = (vecs + 31) / 32 * 32;
    threads = threads > 1024 ? 1024 : threads;
    operand oo = {out->ptr, out->dtype}, ox = {dx->ptr, dx->dtype};
    size_t smem = 2 * (size_t)a.cpg * sizeof(float);
    cudaStream_t s = stream_of(x);
    by_type(dx->dtype, typed, nv, [&](auto t, auto w) {
        using T = typename decltype(t)::type;
        constexpr int N = decltype(w)::value;
        if (cl)
            gn_fused_k<T, N, true><<<(unsigned)(a.n * a.groups), (unsigned)threads, smem, s>>>(
                oo, ox, (int)a.sp, (int)a.ch, (int)a.cpg, a.groups, a.af, a.eps, a.silu);
        else
            gn_fused_k<T, N, false><<<(unsigned)(a.n * a.groups), (unsigned)threads, smem, s>>>(
                oo, ox, (int)a.sp, (int)a.ch, (int)a.cpg, a.groups, a.af, a.eps, a.silu);
    });
    KILN_CUDA_LAUNCHED();
    return 0;
}

/* The statistics' scratch: 2 * ng * per doubles of partial sums (per a group), then ng
 * floats of k. */
struct gn_sums {
    double *part;
    float *kd;
    int per;
};

static int gn_sums_alloc(kiln__cuda_exec_t *x, int64_t ng, int64_t per, gn_sums *b)
{
    if (ng * per > 0x3fffffff)
        return KILN_EUNSUPPORTED;
    size_t np = (size_t)(ng * per) * 2;
    b->part = (double *)kiln__cuda_scratch(x, np * sizeof(double) + (size_t)ng * sizeof(float));
    if (!b->part)
        return x->scratch_rc;
    b->kd = (float *)(b->part + np);
    b->per = (int)per;
    return 0;
}

/* Statistics of dx (dense NCHW) into b: (528 + ng - 1) / ng chunks a group, enough blocks
 * to fill the device, each at least 2048 elements. */
static int gn_stats_nchw(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *dx, const gn_args &a,
                         gn_sums *b)
{
    int nv = stats_width(dx, a, false);
    int64_t ng = a.n * a.groups, count = a.cpg * a.sp, chunks = (528 + ng - 1) / ng;
    if (chunks * 2048 > count)
        chunks = (count + 2047) / 2048;
    int64_t len = ((count + chunks - 1) / chunks + nv - 1) / nv * nv;
    chunks = (count + len - 1) / len;
    int rc = gn_sums_alloc(x, ng, chunks, b);
    if (rc < 0)
        return rc;
    operand ox = {dx->ptr, dx->dtype};
    cudaStream_t s = stream_of(x);
    by_type(dx->dtype, typed_dt(dx->dtype), nv, [&](auto t, auto w) {
        using T = typename decltype(t)::type;
        constexpr int N = decltype(w)::value;
        gn_stats_nchw_k<T, N><<<(unsigned)(ng * chunks), 256, 0, s>>>(ox, count, len, (int)chunks,
                                                                      b->part, b->kd);
    });
    KILN_CUDA_LAUNCHED();
    return 0;
}

/* Statistics of dx (channels-last) into b: about 528 blocks, GN_CLUSTER to a cluster. */
static int gn_stats_nhwc(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *dx, const gn_args &a,
                         gn_sums *b)
{
    int nv = stats_width(dx, a, true), threads = cl_threads(a.ch / nv, 512, 1024);
    int64_t len = cl_chunk(a, threads / (int)(a.ch / nv), 528), chunks = (a.sp + len - 1) / len;
    int64_t pcs = (chunks + GN_CLUSTER - 1) / GN_CLUSTER;
    if (a.n * pcs * GN_CLUSTER > 0x7fffffff)
        return KILN_EUNSUPPORTED;
    int rc = gn_sums_alloc(x, a.n * a.groups, pcs, b);
    if (rc < 0)
        return rc;
    operand ox = {dx->ptr, dx->dtype};
    cudaStream_t s = stream_of(x);
    size_t smem = (2 * (size_t)threads + 2 * (size_t)a.groups) * sizeof(double);
    by_type(dx->dtype, typed_dt(dx->dtype), nv, [&](auto t, auto w) {
        using T = typename decltype(t)::type;
        constexpr int N = decltype(w)::value;
        gn_stats_nhwc_k<T, N><<<(unsigned)(a.n * pcs * GN_CLUSTER), threads, smem, s>>>(
            ox, a.sp, (int)a.ch, (int)a.cpg, a.groups, len, (int)pcs, b->part, b->kd);
    });
    KILN_CUDA_LAUNCHED();
    return 0;
}

/* Group norm of dx into out, both dense NCHW or both channels-last (cl): one kernel for
 * small groups, else statistics and the normalize pass. */
static int gn_run(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                  const kiln__cuda_desc_t *dx, const gn_args &a, bool cl)
{
    if (gn_fused_ok(a))
        return gn_fused(x, out, dx, a, cl);
    gn_sums b;
    int rc = cl ? gn_stats_nhwc(x, dx, a, &b) : gn_stats_nchw(x, dx, a, &b);
    if (rc < 0)
        return rc;
    int nv = apply_width(out, dx, a, cl, false);
    bool typed = out->dtype == dx->dtype && typed_dt(dx->dtype);
    operand oo = {out->ptr, out->dtype}, ox = {dx->ptr, dx->dtype};
    cudaStream_t s = stream_of(x);
    by_type(dx->dtype, typed, nv, [&](auto t, auto w) {
        using T = typename decltype(t)::type;
        constexpr int N = decltype(w)::value;
        if (!cl) { /* a step of 4 vectors a thread, more where that keeps <= ~2112 blocks */
            int64_t count = a.cpg * a.sp, ng = a.n * a.groups, step = 4 * 256 * N;
            int64_t steps = (count + step - 1) / step, mult = (ng * steps + 2111) / 2112;
            int64_t alen = step * (mult < 1 ? 1 : mult), achunks = (count + alen - 1) / alen;
            if (ng * achunks > 0x7fffffff) {
                rc = KILN_EUNSUPPORTED;
                return;
            }
            gn_apply_nchw_k<T, N><<<(unsigned)(ng * achunks), 256, 0, s>>>(
                oo, ox, a.sp, a.groups, a.cpg, alen, (int)achunks, b.part, b.kd, b.per, a.af,
                a.eps, a.silu);
        } else {
            int cvn = (int)(a.ch / N), threads = cl_threads(cvn, 256, 512);
            int64_t len = cl_chunk(a, threads / cvn, 1056), chunks = (a.sp + len - 1) / len;
            int64_t acs = (chunks + GN_CLUSTER - 1) / GN_CLUSTER;
            int64_t slots = (a.groups + GN_CLUSTER - 1) / GN_CLUSTER;
            if (a.n * acs * GN_CLUSTER > 0x7fffffff) {
                rc = KILN_EUNSUPPORTED;
                return;
            }
            gn_apply_nhwc_k<T, N><<<(unsigned)(a.n * acs * GN_CLUSTER), threads,
                                    slots * (sizeof(double) + sizeof(float)), s>>>(
                oo, ox, a.sp, (int)a.ch, (int)a.cpg, a.groups, len, (int)acs, b.part, b.kd,
                b.per, a.af, a.eps, a.silu);
        }
    });
    if (rc < 0)
        return rc;
    KILN_CUDA_LAUNCHED();
    return 0;
}

/* Through a dense NCHW scratch result copied into out: for an out layout no kernel
 * covers, and channels-last rows too wide for one block. */
static int gn_via_dense(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                        const kiln__cuda_desc_t *in, const gn_args &a)
{
    kiln__cuda_desc_t tmp = *out, dx;
    int64_t st = 1;
    for (int i = out->ndim - 1; i >= 0; i--) {
        tmp.strides[i] = st;
        st *= out->shape[i];
    }
    tmp.ptr = kiln__cuda_scratch(x, (size_t)out->numel * dtype_size(out->dtype));
    if (!tmp.ptr)
        return x->scratch_rc;
    int rc = dense_as(x, in, in->dtype, &dx); // x as dense [N, C, S]
    if (rc == 0)
        rc = gn_run(x, &tmp, &dx, a, false);
    return rc < 0 ? rc : kiln__cudak_copy(x, out, &tmp);
}

} // namespace kiln_cuda

using namespace kiln_cuda;

/* out and x each dense NCHW or channels-last (other layouts go through scratch copies):
 * both NCHW, or both channels-last, run directly; a mixed pair converts x to out's
 * layout first. */
extern "C" int kiln__cudak_group_norm(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                                      const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                                      const kiln__cuda_desc_t *b, int groups, float eps,
                                      int fuse_silu)
{
    if (out->numel == 0)
        return 0;
    gn_args a;
    a.n = out->shape[0];
    a.ch = out->shape[1];
    a.sp = out->numel / (a.n * a.ch);
    a.cpg = a.ch / groups;
    a.groups = groups;
    a.silu = fuse_silu;
    a.eps = (double)eps;
    a.af = affine_of(w, b);
    bool nchw = is_dense(out), cl = !nchw && is_cl(out);
    kiln__cuda_desc_t dx;
    if (nchw) {
        int rc = dense_as(x, in, in->dtype, &dx); // x as dense [N, C, S]
        return rc < 0 ? rc : gn_run(x, out, &dx, a, false);
    }
    if (cl) {
        dx = *in; // x as channels-last [N, S, C]
        if (!is_cl(in)) {
            set_cl(&dx);
            dx.ptr = kiln__cuda_scratch(x, (size_t)in->numel * dtype_size(in->dtype));
            int rc = dx.ptr ? kiln__cudak_copy(x, &dx, in) : x->scratch_rc;
            if (rc < 0)
                return rc;
        }
        if (gn_fused_ok(a) || gn_cl_ok(out, &dx, a))
            return gn_run(x, out, &dx, a, true);
    }
    return gn_via_dense(x, out, in, a);
}
