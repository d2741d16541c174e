/* Row reductions on CUDA: softmax and layer norm over the last dimension (group norm is in
 * group_norm.cu). Layer norm keeps a row in registers (a warp per row, 16-byte vectors
 * where rows allow) for rows up to 2048 wide of one dtype; other rows take a block or warp
 * per row in double. Every row is read in full before any of it is written, which keeps
 * in-place calls safe. */
#include "kernels/cuda/norm.cuh"

namespace kiln_cuda {

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

/* ---- launch helpers ------------------------------------------------------------------------- */

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
