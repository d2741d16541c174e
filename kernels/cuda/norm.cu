/* Row reductions on CUDA: softmax and layer norm over the last dimension, group norm with
 * optional fused SiLU over dense NCHW or channels-last tensors. Layer norm keeps a row in
 * registers (a warp per row, 16-byte vectors where rows allow) for rows up to 2048 wide
 * of one dtype; other rows take a block or warp per row in double. Group norm runs in
 * three kernels: partial sums per (group, chunk) from enough blocks to fill the device,
 * per-channel coefficients from them, and a vectorized normalize pass. Statistics
 * accumulate in double (float within one short step for 16-bit input); group norm sums
 * x minus the group's first element, so the one-pass variance does not cancel when the
 * mean is large. Every row or group is read in full before any of it is written, which
 * keeps in-place calls safe (the normalize pass reads each element before writing it). */
#include "kernels/cuda/common.cuh"

namespace kiln_cuda {

struct operand {
    void *p;
    int dt;
};

/* Threads for rows of `len` elements: a multiple of 32, at most 256. */
static int row_threads(int64_t len)
{
    int64_t t = (len + 31) / 32 * 32;
    return (int)(t < 32 ? 32 : (t > 256 ? 256 : t));
}

__global__ void softmax_k(geo g, operand o, operand x, int64_t rows, int64_t len, int64_t sx)
{
    __shared__ float sh[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        int64_t off[2];
        geo_offsets<2>(g, r, off);
        float m = -INFINITY;
        for (int64_t j = threadIdx.x; j < len; j += blockDim.x)
            m = fmaxf(m, ld_f(x.p, x.dt, off[1] + j * sx)); /* NaN skipped, as on the CPU */
        m = block_max(m, sh);
        float sum = 0.0f;
        for (int64_t j = threadIdx.x; j < len; j += blockDim.x)
            sum += expf(ld_f(x.p, x.dt, off[1] + j * sx) - m);
        sum = block_sum(sum, sh);
        float inv = 1.0f / sum;
        for (int64_t j = threadIdx.x; j < len; j += blockDim.x)
            st_f(o.p, o.dt, off[0] + j, expf(ld_f(x.p, x.dt, off[1] + j * sx) - m) * inv);
    }
}

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

template <typename A> __device__ __forceinline__ A warp_sum(A v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float inv_sqrt(float v)
{
    return 1.0f / sqrtf(v);
}

__device__ __forceinline__ double inv_sqrt(double v)
{
    return 1.0 / sqrt(v);
}

/* ---- layer norm, general rows: any dtypes and lengths, in double ---------------------- */

__global__ void layer_norm_k(geo g, operand o, operand x, int64_t rows, int64_t len, int64_t sx,
                             affine af, double eps)
{
    __shared__ double sh[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        int64_t off[2];
        geo_offsets<2>(g, r, off);
        double s = 0.0;
        for (int64_t j = threadIdx.x; j < len; j += blockDim.x)
            s += ld_f(x.p, x.dt, off[1] + j * sx);
        double mean = block_sum(s, sh) / (double)len;
        double ss = 0.0;
        for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
            double d = ld_f(x.p, x.dt, off[1] + j * sx) - mean;
            ss += d * d;
        }
        double rstd = 1.0 / sqrt(block_sum(ss, sh) / (double)len + eps);
        for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
            double y = ((double)ld_f(x.p, x.dt, off[1] + j * sx) - mean) * rstd;
            y = y * aff_w(af, j) + aff_b(af, j);
            st_f(o.p, o.dt, off[0] + j, (float)y);
        }
    }
}

/* Layer norm with one warp per row (rows up to a few thousand elements): no block
 * barriers, and enough rows in flight to fill the device. */
__global__ void layer_norm_warp_k(geo g, operand o, operand x, int64_t rows, int64_t len,
                                  int64_t sx, affine af, double eps)
{
    int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (r >= rows)
        return;
    int64_t off[2];
    geo_offsets<2, uint32_t>(g, r, off);
    double s = 0.0;
    for (int64_t j = lane; j < len; j += 32)
        s += ld_f(x.p, x.dt, off[1] + j * sx);
    double mean = warp_sum(s) / (double)len, ss = 0.0;
    for (int64_t j = lane; j < len; j += 32) {
        double d = ld_f(x.p, x.dt, off[1] + j * sx) - mean;
        ss += d * d;
    }
    double rstd = 1.0 / sqrt(warp_sum(ss) / (double)len + eps);
    for (int64_t j = lane; j < len; j += 32) {
        double y = ((double)ld_f(x.p, x.dt, off[1] + j * sx) - mean) * rstd;
        st_f(o.p, o.dt, off[0] + j, (float)(y * aff_w(af, j) + aff_b(af, j)));
    }
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

/* N floats from shared memory at p (16-byte aligned when N is a multiple of 4). */
template <int N> __device__ __forceinline__ void smem_n(const float *p, float *f)
{
    if (N % 4 == 0) {
#pragma unroll
        for (int e = 0; e < N; e += 4) {
            float4 q = *reinterpret_cast<const float4 *>(p + e);
            f[e] = q.x;
            f[e + 1] = q.y;
            f[e + 2] = q.z;
            f[e + 3] = q.w;
        }
    } else {
#pragma unroll
        for (int e = 0; e < N; e++)
            f[e] = p[e];
    }
}

/* ---- layer norm, a row in registers ------------------------------------------------------ */

/* A warp per row: lane l holds vectors l, l + 32, ... (at most K of N elements), so x is
 * read once and both statistics passes run over registers. N > 1 needs unit stride along
 * the row and aligned rows in x and out (the launcher checks); N == 1 takes any stride sx.
 * out is dense. The block first puts w and b, as floats, in shared memory (dynamic,
 * 2 * len floats), so the unrolled row code reads them without dtype dispatch. */
template <typename T, int N, int K>
__global__ void __launch_bounds__(256)
    layer_norm_reg_k(geo g, void *out, const void *x, int64_t rows, int len, int64_t sx,
                     affine af, float eps)
{
    typedef typename acc<T>::type A;
    extern __shared__ float4 wb4[];
    float *wb = (float *)wb4;
    for (int c = threadIdx.x; c < len; c += blockDim.x) {
        wb[c] = aff_wf(af, c);
        wb[len + c] = aff_bf(af, c);
    }
    __syncthreads();
    int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31, nv = len / N;
    if (r >= rows)
        return; /* the whole warp: r is the same on its lanes */
    int64_t off[2];
    geo_offsets<2, uint32_t>(g, r, off);
    float v[K][N];
    A s = 0;
#pragma unroll
    for (int k = 0; k < K; k++) {
        int j = lane + 32 * k;
        if (j < nv) {
            io<T>::template load<N>(x, 0, off[1] + (int64_t)j * N * sx, v[k]);
        } else {
#pragma unroll
            for (int e = 0; e < N; e++)
                v[k][e] = 0.0f;
        }
#pragma unroll
        for (int e = 0; e < N; e++)
            s += (A)v[k][e];
    }
    A mean = warp_sum(s) / (A)len, ss = 0;
#pragma unroll
    for (int k = 0; k < K; k++) {
        if (lane + 32 * k < nv) {
#pragma unroll
            for (int e = 0; e < N; e++) {
                A d = (A)v[k][e] - mean;
                ss += d * d;
            }
        }
    }
    A rstd = inv_sqrt(warp_sum(ss) / (A)len + (A)eps);
#pragma unroll
    for (int k = 0; k < K; k++) {
        int j = lane + 32 * k;
        if (j < nv) {
            float w[N], b[N], y[N];
            smem_n<N>(wb + j * N, w);
            smem_n<N>(wb + len + j * N, b);
#pragma unroll
            for (int e = 0; e < N; e++)
                y[e] = (float)(((A)v[k][e] - mean) * rstd * (A)w[e] + (A)b[e]);
            io<T>::template store<N>(out, 0, off[0] + (int64_t)j * N, y);
        }
    }
}

/* ---- group norm -----------------------------------------------------------------------------
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

__device__ __forceinline__ float gn_y(float x, float mean, float scale, float shift, int silu)
{
    float y = (x - mean) * scale + shift;
    return silu ? y / (1.0f + expf(-y)) : y;
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

/* ---- launch helpers ------------------------------------------------------------------------- */

static affine affine_of(const kiln__cuda_desc_t *w, const kiln__cuda_desc_t *b)
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

/* Geometry over the leading dimensions (all but the last) of out (dense) and x. */
static geo rows_geo(const kiln__cuda_desc_t *out, const kiln__cuda_desc_t *x, int64_t *rows)
{
    const int64_t *st[2] = {out->strides, x->strides};
    geo g = geo_make(out->ndim - 1, out->shape, st, 2);
    *rows = g.numel;
    return g;
}

static unsigned row_blocks(int64_t rows)
{
    return (unsigned)(rows < 1 ? 1 : (rows > (1 << 30) ? (1 << 30) : rows));
}

static bool typed_dt(int dt)
{
    return dt == KILN_DTYPE_F32 || dt == KILN_DTYPE_F16 || dt == KILN_DTYPE_BF16;
}

/* The widest vector (8, 2 or 1 elements of dtype dt) that divides `mult` and to whose size
 * (at most 16 bytes) both a and b (NULL: no constraint) are aligned. */
static int vec_width(int64_t mult, int dt, const void *a, const void *b)
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

template <typename T, typename F> static void by_width(int n, F f)
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
template <typename F> static void by_type(int dt, bool typed, int n, F f)
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

/* ---- layer norm launch ------------------------------------------------------------------- */

template <typename T, int N, int K>
static void ln_reg_launch(kiln__cuda_exec_t *x, const geo &g, const kiln__cuda_desc_t *out,
                          const kiln__cuda_desc_t *in, int64_t rows, int64_t len,
                          const affine &af, float eps)
{
    size_t smem = 2 * (size_t)len * sizeof(float);
    layer_norm_reg_k<T, N, K><<<(unsigned)((rows + 7) / 8), 256, smem, stream_of(x)>>>(
        g, out->ptr, in->ptr, rows, (int)len, in->strides[in->ndim - 1], af, eps);
}

/* The register kernel for T when a row fits (at most 64 elements per lane, 32 without
 * vectors: rows up to 2048 or 1024); false otherwise. Rows move as 8-element vectors when
 * they have unit stride, a length that is a multiple of 8 and 16-byte aligned starts in x
 * and out. */
template <typename T>
static bool ln_reg(kiln__cuda_exec_t *x, const geo &g, const kiln__cuda_desc_t *out,
                   const kiln__cuda_desc_t *in, int64_t rows, int64_t len, const affine &af,
                   float eps)
{
    bool v8 = in->strides[in->ndim - 1] == 1 && vec_width(len, in->dtype, in->ptr, out->ptr) == 8;
    for (int d = 0; v8 && d < g.ndim; d++)
        v8 = g.st[0][d] % 8 == 0 && g.st[1][d] % 8 == 0;
    int64_t n = v8 ? 8 : 1, epl = (len + 32 * n - 1) / (32 * n) * n; /* elements per lane */
    if (epl > (v8 ? 64 : 32))
        return false;
    if (v8 && epl <= 16)
        ln_reg_launch<T, 8, 2>(x, g, out, in, rows, len, af, eps);
    else if (v8 && epl <= 32)
        ln_reg_launch<T, 8, 4>(x, g, out, in, rows, len, af, eps);
    else if (v8)
        ln_reg_launch<T, 8, 8>(x, g, out, in, rows, len, af, eps);
    else if (epl <= 16)
        ln_reg_launch<T, 1, 16>(x, g, out, in, rows, len, af, eps);
    else
        ln_reg_launch<T, 1, 32>(x, g, out, in, rows, len, af, eps);
    return true;
}

/* ---- group norm launch ------------------------------------------------------------------- */

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
 * the normalize pass (x and out of one dtype; it divides S, or C when channels-last). */
static int stats_width(const kiln__cuda_desc_t *dx, const gn_args &a, bool cl)
{
    if (!typed_dt(dx->dtype))
        return 1;
    return vec_width(cl ? a.cpg : a.cpg * a.sp, dx->dtype, dx->ptr, NULL);
}

static int apply_width(const kiln__cuda_desc_t *out, const kiln__cuda_desc_t *dx,
                       const gn_args &a, bool cl)
{
    if (out->dtype != dx->dtype || !typed_dt(dx->dtype))
        return 1;
    return vec_width(cl ? a.ch : a.sp, dx->dtype, dx->ptr, out->ptr);
}

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

/* Group norm of dx into out, both dense NCHW or both channels-last (cl). */
static int gn_run(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                  const kiln__cuda_desc_t *dx, const gn_args &a, bool cl)
{
    int64_t nc = a.n * a.ch;
    float *coef = (float *)kiln__cuda_scratch(x, (size_t)(3 * nc) * sizeof(float));
    if (!coef)
        return x->scratch_rc;
    int rc = gn_coefs(x, dx, a, cl, coef);
    if (rc < 0)
        return rc;
    int nv = apply_width(out, dx, a, cl);
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

extern "C" int kiln__cudak_softmax(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                                   const kiln__cuda_desc_t *in)
{
    int64_t rows, len = out->shape[out->ndim - 1];
    geo g = rows_geo(out, in, &rows);
    if (out->numel == 0)
        return 0;
    softmax_k<<<row_blocks(rows), row_threads(len), 0, stream_of(x)>>>(
        g, {out->ptr, out->dtype}, {in->ptr, in->dtype}, rows, len, in->strides[in->ndim - 1]);
    KILN_CUDA_LAUNCHED();
    return 0;
}

extern "C" int kiln__cudak_layer_norm(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                                      const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                                      const kiln__cuda_desc_t *b, float eps)
{
    int64_t rows, len = out->shape[out->ndim - 1];
    geo g = rows_geo(out, in, &rows);
    if (out->numel == 0)
        return 0;
    affine af = affine_of(w, b);
    bool small = rows <= ((int64_t)1 << 30) && geo_small(g, 2);
    /* the row in registers when x and out share a dtype and the row fits */
    if (small && len <= 2048 && out->dtype == in->dtype) {
        bool done = false;
        if (in->dtype == KILN_DTYPE_F32)
            done = ln_reg<float>(x, g, out, in, rows, len, af, eps);
        else if (in->dtype == KILN_DTYPE_F16)
            done = ln_reg<__half>(x, g, out, in, rows, len, af, eps);
        else if (in->dtype == KILN_DTYPE_BF16)
            done = ln_reg<__nv_bfloat16>(x, g, out, in, rows, len, af, eps);
        if (done) {
            KILN_CUDA_LAUNCHED();
            return 0;
        }
    }
    /* else a warp per row when there are rows enough to fill the device, or a block */
    if (len <= 4096 && rows >= 2048 && small) {
        int64_t threads = rows * 32;
        layer_norm_warp_k<<<(unsigned)((threads + 255) / 256), 256, 0, stream_of(x)>>>(
            g, {out->ptr, out->dtype}, {in->ptr, in->dtype}, rows, len,
            in->strides[in->ndim - 1], af, (double)eps);
    } else {
        layer_norm_k<<<row_blocks(rows), row_threads(len), 0, stream_of(x)>>>(
            g, {out->ptr, out->dtype}, {in->ptr, in->dtype}, rows, len,
            in->strides[in->ndim - 1], af, (double)eps);
    }
    KILN_CUDA_LAUNCHED();
    return 0;
}

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
        if (cl_threads(a.ch / stats_width(&dx, a, true), 512, 1024) > 0 &&
            cl_threads(a.ch / apply_width(out, &dx, a, true), 256, 512) > 0)
            return gn_run(x, out, &dx, a, true);
    }
    return gn_via_dense(x, out, in, a);
}
