/* Row reductions on CUDA: softmax and layer norm over the last dimension (a block per
 * row; a warp per row for layer norm's usual widths), group norm with optional fused SiLU
 * (statistics from many blocks per group, then a block per sample and channel). Norm
 * statistics accumulate in double (two-pass for layer norm, sum and sum of squares for
 * group norm), so they agree with the CPU reference to float rounding. Every row or group
 * is read in full before any of it is written, which keeps in-place calls safe (group
 * norm's second phase reads each element before writing the same element). */
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

__device__ __forceinline__ double aff_w(const affine &a, int64_t c)
{
    return a.w ? (double)ld_f(a.w, a.wdt, c * a.ws) : 1.0;
}

__device__ __forceinline__ double aff_b(const affine &a, int64_t c)
{
    return a.b ? (double)ld_f(a.b, a.bdt, c * a.bs) : 0.0;
}

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

__device__ __forceinline__ double warp_sum_d(double v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
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
    double mean = warp_sum_d(s) / (double)len, ss = 0.0;
    for (int64_t j = lane; j < len; j += 32) {
        double d = ld_f(x.p, x.dt, off[1] + j * sx) - mean;
        ss += d * d;
    }
    double rstd = 1.0 / sqrt(warp_sum_d(ss) / (double)len + eps);
    for (int64_t j = lane; j < len; j += 32) {
        double y = ((double)ld_f(x.p, x.dt, off[1] + j * sx) - mean) * rstd;
        st_f(o.p, o.dt, off[0] + j, (float)(y * aff_w(af, j) + aff_b(af, j)));
    }
}

/* Group norm, phase 1: block (chunk, group) adds its chunk's sum and sum of squares (in
 * double) to stats[2 * group ..]. */
__global__ void gn_stats_k(operand x, int64_t count, int64_t chunk, double *stats)
{
    __shared__ double sh[32];
    int64_t gi = blockIdx.y, base = gi * count, j0 = (int64_t)blockIdx.x * chunk;
    int64_t j1 = j0 + chunk < count ? j0 + chunk : count;
    double s = 0.0, ss = 0.0;
    for (int64_t j = j0 + threadIdx.x; j < j1; j += blockDim.x) {
        double v = ld_f(x.p, x.dt, base + j);
        s += v;
        ss += v * v;
    }
    s = block_sum(s, sh);
    ss = block_sum(ss, sh);
    if (threadIdx.x == 0) {
        atomicAdd(&stats[2 * gi], s);
        atomicAdd(&stats[2 * gi + 1], ss);
    }
}

/* Group norm, phase 2: one block per (sample, channel) normalizes its sp positions. */
__global__ void gn_apply_k(operand o, operand x, int64_t ch, int64_t groups, int64_t cpg,
                           int64_t sp, const double *stats, affine af, double eps, int silu)
{
    int64_t nc = blockIdx.x, c = nc % ch, gi = (nc / ch) * groups + c / cpg;
    double count = (double)(cpg * sp), mean = stats[2 * gi] / count;
    double var = stats[2 * gi + 1] / count - mean * mean;
    double rstd = 1.0 / sqrt((var > 0.0 ? var : 0.0) + eps);
    float scale = (float)(rstd * aff_w(af, c));
    float shift = (float)(aff_b(af, c) - mean * rstd * aff_w(af, c));
    int64_t base = nc * sp;
    for (int64_t i = threadIdx.x; i < sp; i += blockDim.x) {
        float y = ld_f(x.p, x.dt, base + i) * scale + shift;
        if (silu)
            y = y / (1.0f + expf(-y));
        st_f(o.p, o.dt, base + i, y);
    }
}

/* One block per (sample, group): cpg channels of sp positions, dense in x and out. */
__global__ void group_norm_k(operand o, operand x, int64_t groups, int64_t cpg, int64_t sp,
                             affine af, double eps, int silu)
{
    __shared__ double sh[32];
    int64_t gi = blockIdx.x, c0 = (gi % groups) * cpg, base = gi * cpg * sp, count = cpg * sp;
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < count; j += blockDim.x)
        s += ld_f(x.p, x.dt, base + j);
    double mean = block_sum(s, sh) / (double)count;
    double ss = 0.0;
    for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
        double d = ld_f(x.p, x.dt, base + j) - mean;
        ss += d * d;
    }
    double rstd = 1.0 / sqrt(block_sum(ss, sh) / (double)count + eps);
    for (int64_t c = 0; c < cpg; c++) {
        double scale = rstd * aff_w(af, c0 + c), shift = aff_b(af, c0 + c);
        int64_t cb = base + c * sp;
        for (int64_t i = threadIdx.x; i < sp; i += blockDim.x) {
            float y = (float)(((double)ld_f(x.p, x.dt, cb + i) - mean) * scale + shift);
            if (silu)
                y = y / (1.0f + expf(-y));
            st_f(o.p, o.dt, cb + i, y);
        }
    }
}

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
    /* a warp per row when there are rows enough to fill the device, else a block per row */
    if (len <= 4096 && rows >= 2048 && rows <= ((int64_t)1 << 30) && geo_small(g, 2)) {
        int64_t threads = rows * 32;
        layer_norm_warp_k<<<(unsigned)((threads + 255) / 256), 256, 0, stream_of(x)>>>(
            g, {out->ptr, out->dtype}, {in->ptr, in->dtype}, rows, len,
            in->strides[in->ndim - 1], affine_of(w, b), (double)eps);
    } else {
        layer_norm_k<<<row_blocks(rows), row_threads(len), 0, stream_of(x)>>>(
            g, {out->ptr, out->dtype}, {in->ptr, in->dtype}, rows, len,
            in->strides[in->ndim - 1], affine_of(w, b), (double)eps);
    }
    KILN_CUDA_LAUNCHED();
    return 0;
}

extern "C" int kiln__cudak_group_norm(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                                      const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                                      const kiln__cuda_desc_t *b, int groups, float eps,
                                      int fuse_silu)
{
    if (out->numel == 0)
        return 0;
    kiln__cuda_desc_t dx;
    int rc = dense_as(x, in, in->dtype, &dx); // x as dense [N, C, S]
    if (rc < 0)
        return rc;
    int64_t n = out->shape[0], ch = out->shape[1], sp = out->numel / (n * ch);
    int64_t cpg = ch / groups, blocks = n * groups, count = cpg * sp;
    double *stats = (double *)kiln__cuda_scratch(x, (size_t)blocks * 2 * sizeof(double));
    if (stats && n * ch <= 0x7fffffff && blocks <= 65535) {
        /* two phases: statistics spread over enough blocks to fill the device, then one
         * block per (sample, channel) */
        int64_t chunks = (528 + blocks - 1) / blocks, min_chunk = 2048;
        if (chunks * min_chunk > count)
            chunks = (count + min_chunk - 1) / min_chunk;
        chunks = chunks < 1 ? 1 : chunks;
        int64_t chunk = (count + chunks - 1) / chunks;
        if (cudaMemsetAsync(stats, 0, (size_t)blocks * 2 * sizeof(double), stream_of(x)) !=
            cudaSuccess)
            return KILN_EDEVICE;
        gn_stats_k<<<dim3((unsigned)chunks, (unsigned)blocks), 256, 0, stream_of(x)>>>(
            {dx.ptr, dx.dtype}, count, chunk, stats);
        gn_apply_k<<<(unsigned)(n * ch), row_threads(sp), 0, stream_of(x)>>>(
            {out->ptr, out->dtype}, {dx.ptr, dx.dtype}, ch, groups, cpg, sp, stats,
            affine_of(w, b), (double)eps, fuse_silu);
        KILN_CUDA_LAUNCHED();
        return 0;
    }
    int threads = count >= 4096 ? 1024 : row_threads(count);
    group_norm_k<<<(unsigned)blocks, threads, 0, stream_of(x)>>>(
        {out->ptr, out->dtype}, {dx.ptr, dx.dtype}, groups, cpg, sp, affine_of(w, b),
        (double)eps, fuse_silu);
    KILN_CUDA_LAUNCHED();
    return 0;
}
