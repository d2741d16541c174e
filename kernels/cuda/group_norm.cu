/* Group norm on CUDA, with optional fused SiLU, over dense NCHW or channels-last tensors.
 * Small groups take one kernel: a block per (sample, group) sums its group, then reads it
 * again (from cache) to normalize it. Larger groups take three: partial sums per chunk
 * of a group from enough blocks to fill the device, per-channel coefficients from them,
 * and a vectorized normalize pass. Statistics accumulate in double (float within one
 * short step for 16-bit input) over x minus the group's first element k, so the one-pass
 * variance does not cancel when the mean is large. In place is safe: a group is read in
 * full before any of it is written, and each element is read before it is written by the
 * thread that writes it. */
#include "kernels/cuda/norm.cuh"

/* The one-kernel path takes groups of up to KILN_GN_FUSED_SMALL elements, and of up to
 * KILN_GN_FUSED_MAX when a group's elements lie in runs of 64 bytes or more (dense NCHW,
 * or channels-last with wide groups). Beyond that, a block per group leaves too much of
 * the device idle, and three launches cost less. Measured on an H100 with SD1.5's F16
 * channels-last shapes at batch 2: one kernel took 4.6 us against 9.7 for [2, 1280, 8, 8],
 * 8.9 against 10.2 for [2, 1280, 16, 16] (10240 elements in runs of 80 bytes), but 12.4
 * against 10.8 for [2, 1920, 16, 16] (15360) and 13.0 against 10.6 for [2, 320, 32, 32]
 * (10240 in runs of 20 bytes). */
#ifndef KILN_GN_FUSED_SMALL
#define KILN_GN_FUSED_SMALL 8192
#endif
#ifndef KILN_GN_FUSED_MAX
#define KILN_GN_FUSED_MAX 12288
#endif

namespace kiln_cuda {

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

/* ---- one kernel: a block per group -----------------------------------------------------------
 * Block gi = n * groups + g reads its group's count = cpg * sp elements as vectors of N
 * (N divides sp when dense, cpg when channels-last), sums them, then reads them again
 * (from cache) to normalize. The channels' scale and shift wait in shared memory (dynamic,
 * 2 * cpg floats). */
template <int N, bool CL> struct gn_group {
    int64_t base; /* element [n, g * cpg, 0...] */
    int sp, ch, vpg;

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
    const gn_group<N, CL> gr = {CL ? n * sp * ch + g * cpg : gi * count, sp, ch, cpg / N};
    const A k = (A)ld_f(x.p, x.dt, gr.base);
    double s = 0.0, ss = 0.0;
    for (int v = t; v < nv; v += 4 * nt) { /* 4 vectors in flight a thread */
        float f[4][N];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            if (v + u * nt < nv) {
                io<T>::template load<N>(x.p, x.dt, gr.at(v + u * nt), f[u]);
            } else {
#pragma unroll
                for (int e = 0; e < N; e++)
                    f[u][e] = (float)k;
            }
        }
        gn_acc4<A, N>(f, k, s, ss);
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
    for (int v = t; v < nv; v += 4 * nt) {
        float f[4][N];
#pragma unroll
        for (int u = 0; u < 4; u++)
            if (v + u * nt < nv)
                io<T>::template load<N>(x.p, x.dt, gr.at(v + u * nt), f[u]);
#pragma unroll
        for (int u = 0; u < 4; u++) {
            const int vu = v + u * nt;
            if (vu >= nv)
                break;
            const int c = gr.chan(vu);
            float y[N];
#pragma unroll
            for (int e = 0; e < N; e++) {
                int ce = CL ? c + e : c;
                y[e] = gn_y(f[u][e], mean, fsm[ce], fsm[cpg + ce], silu);
            }
            io<T>::template store<N>(o.p, o.dt, gr.at(vu), y);
        }
    }
}

/* ---- three kernels ---------------------------------------------------------------------------
 * part[(g, chunk), 2] holds a chunk's sums of d = x - k and d^2 for group g = n * groups +
 * group, where k is the group's first element (x[n, group * cpg, 0...]). Inside a thread
 * the sums stay in A for one step of 4 vectors (at most 32 elements), then go to double. */

/* Dense [N, C, S]: block (g, chunk) covers elements [chunk * len, ...) of group g's count
 * contiguous ones; count and len are multiples of N. */
template <typename T, int N>
__global__ void __launch_bounds__(256)
    gn_stats_nchw_k(operand x, int64_t count, int64_t len, int chunks, double *part)
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
#pragma unroll
        for (int u = 0; u < 4; u++) {
            if (v + u * nt < v1) {
                io<T>::template load<N>(x.p, x.dt, base + (v + u * nt) * N, f[u]);
            } else {
#pragma unroll
                for (int e = 0; e < N; e++)
                    f[u][e] = (float)k; /* adds nothing */
            }
        }
        gn_acc4<A, N>(f, k, s, ss);
    }
    s = block_sum(s, sh);
    ss = block_sum(ss, sh);
    if (threadIdx.x == 0) {
        part[2 * (int64_t)blockIdx.x] = s;
        part[2 * (int64_t)blockIdx.x + 1] = ss;
    }
}

/* Channels-last [N, S, C]: block (n, chunk of pchunk positions) of cvn * P threads; thread
 * t owns channel vector t % cvn (N channels, inside one group since N divides cpg) at
 * positions t / cvn, + P, ... The block's sums per group are gathered from shared memory
 * (dynamic, 2 * blockDim.x doubles). */
template <typename T, int N>
__global__ void __launch_bounds__(1024)
    gn_stats_nhwc_k(operand x, int64_t sp, int ch, int cpg, int groups, int64_t pchunk,
                    int pchunks, double *part)
{
    typedef typename acc<T>::type A;
    extern __shared__ double shd[];
    const int cvn = ch / N, nt = blockDim.x, np = nt / cvn, vpg = cpg / N;
    const int t = threadIdx.x, pp = t / cvn, cv = t - pp * cvn;
    const int64_t n = blockIdx.x / pchunks, ck = blockIdx.x % pchunks, base = n * sp * ch;
    const int64_t p0 = ck * pchunk, p1 = p0 + pchunk < sp ? p0 + pchunk : sp;
    const A k = (A)ld_f(x.p, x.dt, base + (int64_t)(cv / vpg) * cpg);
    double s = 0.0, ss = 0.0;
    for (int64_t p = p0 + pp; p < p1; p += 4 * (int64_t)np) {
        float f[4][N];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int64_t pu = p + (int64_t)u * np;
            if (pu < p1) {
                io<T>::template load<N>(x.p, x.dt, base + pu * ch + (int64_t)cv * N, f[u]);
            } else {
#pragma unroll
                for (int e = 0; e < N; e++)
                    f[u][e] = (float)k;
            }
        }
        gn_acc4<A, N>(f, k, s, ss);
    }
    shd[t] = s;
    shd[nt + t] = ss;
    __syncthreads();
    for (int g = t; g < groups; g += nt) {
        double a = 0.0, b = 0.0;
        for (int q = 0; q < np; q++) {
            for (int c = g * vpg; c < (g + 1) * vpg; c++) {
                a += shd[q * cvn + c];
                b += shd[nt + q * cvn + c];
            }
        }
        int64_t i = ((n * groups + g) * pchunks + ck) * 2;
        part[i] = a;
        part[i + 1] = b;
    }
}

/* Block g = (n, group) adds the group's `chunks` partial sums and writes, for each of its
 * channels c, coef[n C + c] = mean, coef[nc + ...] = rstd * w[c], coef[2 nc + ...] = b[c].
 * k is read where the statistics read it: x[n * sn + group * sg]. */
__global__ void gn_finalize_k(operand x, const double *part, int chunks, int64_t count,
                              int64_t sn, int64_t sg, int groups, int64_t cpg, int64_t ch,
                              affine af, double eps, float *coef, int64_t nc)
{
    __shared__ double sh[32];
    const int64_t gi = blockIdx.x, n = gi / groups, g = gi % groups;
    double s = 0.0, ss = 0.0;
    for (int q = threadIdx.x; q < chunks; q += blockDim.x) {
        s += part[(gi * chunks + q) * 2];
        ss += part[(gi * chunks + q) * 2 + 1];
    }
    s = block_sum(s, sh) / (double)count;
    ss = block_sum(ss, sh) / (double)count;
    double var = ss - s * s, rstd = 1.0 / sqrt((var > 0.0 ? var : 0.0) + eps);
    float mean = (float)((double)ld_f(x.p, x.dt, n * sn + g * sg) + s);
    for (int64_t c = g * cpg + threadIdx.x; c < (g + 1) * cpg; c += blockDim.x) {
        coef[n * ch + c] = mean;
        coef[nc + n * ch + c] = (float)(rstd * aff_w(af, c));
        coef[2 * nc + n * ch + c] = aff_bf(af, c);
    }
}

/* Dense [N, C, S]: tv vectors of N elements (S % N == 0, so a vector lies in one row
 * n C + c = vector / sv), 4 per thread step. */
template <typename T, int N>
__global__ void __launch_bounds__(256)
    gn_apply_nchw_k(operand o, operand x, int64_t tv, int64_t sv, const float *coef,
                    int64_t nc, int silu)
{
    const int64_t nt = blockDim.x, step = 4 * nt * gridDim.x;
    const bool narrow = tv <= (int64_t)UINT32_MAX;
    for (int64_t v = (int64_t)blockIdx.x * 4 * nt + threadIdx.x; v < tv; v += step) {
        float f[4][N];
#pragma unroll
        for (int u = 0; u < 4; u++)
            if (v + u * nt < tv)
                io<T>::template load<N>(x.p, x.dt, (v + u * nt) * N, f[u]);
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int64_t vu = v + u * nt;
            if (vu >= tv)
                break;
            int64_t r = narrow ? (int64_t)((uint32_t)vu / (uint32_t)sv) : vu / sv;
            float mean = coef[r], scale = coef[nc + r], shift = coef[2 * nc + r], y[N];
#pragma unroll
            for (int e = 0; e < N; e++)
                y[e] = gn_y(f[u][e], mean, scale, shift, silu);
            io<T>::template store<N>(o.p, o.dt, vu * N, y);
        }
    }
}

/* Channels-last [N, S, C]: block (n, chunk of pchunk positions) of cvn * P threads, as in
 * gn_stats_nhwc_k; each thread keeps its N channels' coefficients in registers. */
template <typename T, int N>
__global__ void __launch_bounds__(512)
    gn_apply_nhwc_k(operand o, operand x, int64_t sp, int ch, int64_t pchunk, int pchunks,
                    const float *coef, int64_t nc, int silu)
{
    const int cvn = ch / N, np = blockDim.x / cvn, pp = threadIdx.x / cvn;
    const int cv = threadIdx.x - pp * cvn;
    const int64_t n = blockIdx.x / pchunks, p0 = (blockIdx.x % pchunks) * pchunk;
    const int64_t p1 = p0 + pchunk < sp ? p0 + pchunk : sp, base = n * sp * ch + cv * N;
    float mean[N], scale[N], shift[N];
#pragma unroll
    for (int e = 0; e < N; e++) {
        int64_t i = n * ch + cv * N + e;
        mean[e] = coef[i];
        scale[e] = coef[nc + i];
        shift[e] = coef[2 * nc + i];
    }
    for (int64_t p = p0 + pp; p < p1; p += 4 * (int64_t)np) {
        float f[4][N];
#pragma unroll
        for (int u = 0; u < 4; u++)
            if (p + (int64_t)u * np < p1)
                io<T>::template load<N>(x.p, x.dt, base + (p + (int64_t)u * np) * ch, f[u]);
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

/* ---- launch -------------------------------------------------------------------------------- */

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
 * one-kernel path (fused) takes the normalize pass's, dividing cpg when channels-last. */
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

/* ---- one kernel, launch ------------------------------------------------------------------- */

/* Whether dx's groups suit it (see KILN_GN_FUSED_MAX; their channels' scale and shift
 * must also fit 32 KiB of shared memory). */
static bool gn_fused_ok(const gn_args &a, const kiln__cuda_desc_t *dx, bool cl)
{
    int64_t count = a.cpg * a.sp, run = (cl ? a.cpg : count) * (int64_t)dtype_size(dx->dtype);
    return (count <= KILN_GN_FUSED_SMALL || (count <= KILN_GN_FUSED_MAX && run >= 64)) &&
           a.cpg <= 4096 && a.ch <= 0x7fffffff && a.n * a.groups <= 0x7fffffff;
}

/* A thread for each vector of a group, 1024 at most (then steps of 4 vectors a thread). */
static int gn_fused(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                    const kiln__cuda_desc_t *dx, const gn_args &a, bool cl)
{
    int nv = apply_width(out, dx, a, cl, true);
    bool typed = out->dtype == dx->dtype && typed_dt(dx->dtype);
    int64_t threads = (a.cpg * a.sp / nv + 31) / 32 * 32;
    unsigned blocks = (unsigned)(a.n * a.groups), nt = (unsigned)(threads > 1024 ? 1024 : threads);
    size_t smem = 2 * (size_t)a.cpg * sizeof(float);
    operand oo = {out->ptr, out->dtype}, ox = {dx->ptr, dx->dtype};
    cudaStream_t s = stream_of(x);
    by_type(dx->dtype, typed, nv, [&](auto t, auto w) {
        using T = typename decltype(t)::type;
        constexpr int N = decltype(w)::value;
        if (cl)
            gn_fused_k<T, N, true><<<blocks, nt, smem, s>>>(oo, ox, (int)a.sp, (int)a.ch,
                                                            (int)a.cpg, a.groups, a.af, a.eps,
                                                            a.silu);
        else
            gn_fused_k<T, N, false><<<blocks, nt, smem, s>>>(oo, ox, (int)a.sp, (int)a.ch,
                                                             (int)a.cpg, a.groups, a.af, a.eps,
                                                             a.silu);
    });
    KILN_CUDA_LAUNCHED();
    return 0;
}

/* ---- three kernels, launch --------------------------------------------------------------- */

/* Statistics of dx (dense NCHW, or channels-last when cl) into part, then coef. */
static int gn_coefs(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *dx, const gn_args &a,
                    bool cl, float *coef)
{
    int nv = stats_width(dx, a, cl), threads = 256;
    int64_t ng = a.n * a.groups, count = a.cpg * a.sp, chunks, len = 0;
    if (!cl) { /* enough blocks to fill the device, each at least 2048 elements */
        chunks = (528 + ng - 1) / ng;
        if (chunks * 2048 > count)
            chunks = (count + 2047) / 2048;
        len = ((count + chunks - 1) / chunks + nv - 1) / nv * nv;
        chunks = (count + len - 1) / len;
    } else {
        threads = cl_threads(a.ch / nv, 512, 1024);
        len = cl_chunk(a, threads / (int)(a.ch / nv), 528);
        chunks = (a.sp + len - 1) / len;
    }
    if (ng * chunks > 0x7fffffff || ng > 0x7fffffff)
        return KILN_EUNSUPPORTED;
    double *part = (double *)kiln__cuda_scratch(x, (size_t)(ng * chunks * 2) * sizeof(double));
    if (!part)
        return x->scratch_rc;
    cudaStream_t s = stream_of(x);
    operand ox = {dx->ptr, dx->dtype};
    by_type(dx->dtype, typed_dt(dx->dtype), nv, [&](auto t, auto w) {
        using T = typename decltype(t)::type;
        constexpr int N = decltype(w)::value;
        if (!cl)
            gn_stats_nchw_k<T, N><<<(unsigned)(ng * chunks), 256, 0, s>>>(ox, count, len,
                                                                         (int)chunks, part);
        else
            gn_stats_nhwc_k<T, N><<<(unsigned)(a.n * chunks), threads,
                                    2 * threads * sizeof(double), s>>>(
                ox, a.sp, (int)a.ch, (int)a.cpg, a.groups, len, (int)chunks, part);
    });
    gn_finalize_k<<<(unsigned)ng, 128, 0, s>>>(ox, part, (int)chunks, count, a.ch * a.sp,
                                               cl ? a.cpg : a.cpg * a.sp, a.groups, a.cpg,
                                               a.ch, a.af, a.eps, coef, a.n * a.ch);
    KILN_CUDA_LAUNCHED();
    return 0;
}

/* Group norm of dx into out, both dense NCHW or both channels-last (cl): one kernel for
 * small groups, else statistics, coefficients and the normalize pass. */
static int gn_run(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                  const kiln__cuda_desc_t *dx, const gn_args &a, bool cl)
{
    if (gn_fused_ok(a, dx, cl))
        return gn_fused(x, out, dx, a, cl);
    int64_t nc = a.n * a.ch;
    float *coef = (float *)kiln__cuda_scratch(x, (size_t)(3 * nc) * sizeof(float));
    if (!coef)
        return x->scratch_rc;
    int rc = gn_coefs(x, dx, a, cl, coef);
    if (rc < 0)
        return rc;
    int nv = apply_width(out, dx, a, cl, false);
    bool typed = out->dtype == dx->dtype && typed_dt(dx->dtype);
    operand oo = {out->ptr, out->dtype}, ox = {dx->ptr, dx->dtype};
    cudaStream_t s = stream_of(x);
    by_type(dx->dtype, typed, nv, [&](auto t, auto w) {
        using T = typename decltype(t)::type;
        constexpr int N = decltype(w)::value;
        if (!cl) {
            int64_t tv = out->numel / N;
            gn_apply_nchw_k<T, N><<<grid_for((tv + 3) / 4, 256), 256, 0, s>>>(
                oo, ox, tv, a.sp / N, coef, nc, a.silu);
        } else {
            int cvn = (int)(a.ch / N), threads = cl_threads(cvn, 256, 512);
            int64_t len = cl_chunk(a, threads / cvn, 1056), chunks = (a.sp + len - 1) / len;
            gn_apply_nhwc_k<T, N><<<(unsigned)(a.n * chunks), threads, 0, s>>>(
                oo, ox, a.sp, (int)a.ch, len, (int)chunks, coef, nc, a.silu);
        }
    });
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
        if (gn_fused_ok(a, &dx, true) ||
            (cl_threads(a.ch / stats_width(&dx, a, true), 512, 1024) > 0 &&
             cl_threads(a.ch / apply_width(out, &dx, a, true, false), 256, 512) > 0))
            return gn_run(x, out, &dx, a, true);
    }
    return gn_via_dense(x, out, in, a);
}
