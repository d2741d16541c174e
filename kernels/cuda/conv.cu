/* 2-D convolution on CUDA: half-precision calls go to cuDNN when it is there
 * (conv_dnn.cu) or to im2col + GEMM, whichever the first call of a shape measures faster;
 * channels-last tensors take conv_cl.cu's im2col, the rest the one below (into dense
 * scratch memory when out is channels-last). A channels-last 1x1 convolution
 * is one GEMM over the pixels. The column matrix of as many
 * samples as fit COLS_BUDGET bytes is built at once (or a band of output rows of one
 * sample when a single sample is larger), and one strided-batched GEMM per chunk writes
 * straight into out. A 1x1, stride-1, unpadded convolution over dense samples skips
 * im2col. F16 (or BF16) input and weight run the GEMM on tensor cores; other mixes in
 * float32. The bias is broadcast into out first and accumulated. */
#include <stdio.h>
#include <stdlib.h>

#include "kernels/cuda/common.cuh"

namespace kiln_cuda {

#define COLS_BUDGET ((int64_t)256 << 20)

struct conv_shape {
    int64_t c, h, w, kh, kw, oh, ow;
    int64_t xs_n, xs_c, xs_h, xs_w; /* x strides */
    int64_t sh, sw, pt, pl, dh, dw;
};

/* cols [ns][K][rows * OW] for samples s0.. and output rows oh0.. (dense, dtype cdt). */
__global__ void im2col_k(conv_shape g, const void *x, int xdt, int64_t s0, int64_t oh0,
                         uint32_t rows, uint32_t ns, void *cols, int cdt)
{
    uint32_t kk_n = (uint32_t)(g.c * g.kh * g.kw), ow = (uint32_t)g.ow, p_n = rows * ow;
    uint32_t khw = (uint32_t)(g.kh * g.kw), kw = (uint32_t)g.kw;
    uint32_t total = ns * kk_n * p_n;
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += gridDim.x * blockDim.x) {
        uint32_t p = i % p_n, r = i / p_n, kk = r % kk_n, s = r / kk_n;
        uint32_t c = kk / khw, kr = kk - c * khw, ki = kr / kw, kj = kr - ki * kw;
        int64_t oh = oh0 + p / ow, owi = p % ow;
        int64_t ih = oh * g.sh - g.pt + (int64_t)ki * g.dh;
        int64_t iw = owi * g.sw - g.pl + (int64_t)kj * g.dw;
        float v = 0.0f;
        if (ih >= 0 && ih < g.h && iw >= 0 && iw < g.w)
            v = ld_f(x, xdt, (s0 + s) * g.xs_n + c * g.xs_c + ih * g.xs_h + iw * g.xs_w);
        st_f(cols, cdt, i, v);
    }
}

static int conv_im2col(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                       const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                       const kiln__cuda_desc_t *bias, const kiln__cuda_desc_t *add,
                       const kiln__cuda_conv_geom_t *geo_)
{
    int rc;
    int dt = in->dtype == w->dtype && (in->dtype == KILN_DTYPE_F16 ||
                                       in->dtype == KILN_DTYPE_BF16)
                 ? in->dtype
                 : KILN_DTYPE_F32;
    conv_shape g = {in->shape[1], in->shape[2], in->shape[3], w->shape[2], w->shape[3],
                    out->shape[2], out->shape[3], in->strides[0], in->strides[1],
                    in->strides[2], in->strides[3], geo_->stride_h, geo_->stride_w,
                    geo_->pad_top, geo_->pad_left, geo_->dilation_h, geo_->dilation_w};
    int64_t n = in->shape[0], oc = out->shape[1], k = g.c * g.kh * g.kw, p = g.oh * g.ow;
    kiln__cuda_desc_t fw, c = *out;
    rc = dense_as(x, w, dt, &fw); // W as [OC, K]
    if (rc == 0 && out->dtype != KILN_DTYPE_F32 && out->dtype != dt) {
        c.dtype = KILN_DTYPE_F32; /* cuBLASLt cannot write this dtype from dt: go via F32 */
        c.ptr = kiln__cuda_scratch(x, (size_t)out->numel * sizeof(float));
        rc = c.ptr ? 0 : x->scratch_rc;
    }
    if (rc == 0 && add) /* c starts as bias + add (c: out's shape, dense) */
        rc = out_start(x, &c, 1, bias, add);
    else if (rc == 0 && bias)
        rc = bias_fill(x, c.ptr, c.dtype, n, oc, p, bias);
    if (rc < 0)
        return rc;
    float beta = bias || add ? 1.0f : 0.0f;
    size_t es = dtype_size(dt), ec = dtype_size(c.dtype);
    bool pointwise = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 &&
                     g.pl == 0 && g.oh == g.h && g.ow == g.w && in->dtype == dt &&
                     g.xs_w == 1 && g.xs_h == g.w && g.xs_c == g.h * g.w;
    if (pointwise) /* out[s] = W [OC, C] x[s] [C, HW] */
        rc = kiln__cudak_gemm(x, 0, 0, oc, p, k, fw.ptr, k, 0, in->ptr, p, g.xs_n, dt, c.ptr, p,
                              oc * p, c.dtype, beta, n);
    int64_t per_sample = k * p * (int64_t)es;
    int64_t ns = per_sample > 0 ? COLS_BUDGET / per_sample : n;
    ns = ns < 1 ? 1 : (ns > n ? n : ns);
    int64_t rows = ns > 1 || per_sample <= COLS_BUDGET ? g.oh
                                                        : COLS_BUDGET / (k * g.ow * (int64_t)es);
    rows = rows < 1 ? 1 : (rows > g.oh ? g.oh : rows);
    void *cols = pointwise ? NULL : kiln__cuda_scratch(x, (size_t)(ns * k * rows * g.ow) * es);
    if (!pointwise && !cols)
        return x->scratch_rc;
    for (int64_t s0 = 0; !pointwise && rc == 0 && s0 < n; s0 += ns) {
        int64_t cnt = s0 + ns <= n ? ns : n - s0;
        for (int64_t oh0 = 0; rc == 0 && oh0 < g.oh; oh0 += rows) {
            int64_t r = oh0 + rows <= g.oh ? rows : g.oh - oh0, pb = r * g.ow;
            int64_t total = cnt * k * pb;
            im2col_k<<<grid_for(total, 256), 256, 0, stream_of(x)>>>(
                g, in->ptr, in->dtype, s0, oh0, (uint32_t)r, (uint32_t)cnt, cols, dt);
            KILN_CUDA_LAUNCHED();
            // out[s][:, oh0*OW .. +pb] = W [OC, K] cols[s] [K, pb]
            rc = kiln__cudak_gemm(x, 0, 0, oc, pb, k, fw.ptr, k, 0, cols, pb, k * pb, dt,
                                  (char *)c.ptr + (s0 * oc * p + oh0 * g.ow) * ec, p, oc * p,
                                  c.dtype, beta, cnt);
        }
    }
    if (rc == 0 && c.ptr != out->ptr)
        rc = kiln__cudak_copy(x, out, &c);
    return rc;
}

/* GPU milliseconds of one run of a convolution path on this call. */
template <typename F> static int time_path(kiln__cuda_exec_t *x, F run, float *ms)
{
    cudaEvent_t a, b;
    if (cudaEventCreate(&a) != cudaSuccess)
        return KILN_EDEVICE;
    if (cudaEventCreate(&b) != cudaSuccess) {
        cudaEventDestroy(a);
        return KILN_EDEVICE;
    }
    cudaEventRecord(a, stream_of(x));
    int rc = run();
    cudaEventRecord(b, stream_of(x));
    if (rc == 0 && (cudaEventSynchronize(b) != cudaSuccess ||
                    cudaEventElapsedTime(ms, a, b) != cudaSuccess))
        rc = KILN_EDEVICE;
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return rc;
}

/* conv_im2col for any out layout: a channels-last out is computed densely in scratch
 * memory and copied over. */
static int conv_fallback(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                         const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                         const kiln__cuda_desc_t *bias, const kiln__cuda_desc_t *add,
                         const kiln__cuda_conv_geom_t *g)
{
    if (conv_cl_ok(out, in, w)) /* channels-last: straight into out */
        return conv_cl_gemm(x, out, in, w, bias, add, g);
    if (is_dense(out))
        return conv_im2col(x, out, in, w, bias, add, g);
    kiln__cuda_desc_t t = *out;
    int64_t st = 1;
    for (int i = 3; i >= 0; i--) {
        t.strides[i] = st;
        st *= t.shape[i];
    }
    t.ptr = kiln__cuda_scratch(x, (size_t)out->numel * dtype_size(out->dtype));
    if (!t.ptr)
        return x->scratch_rc;
    int rc = conv_im2col(x, &t, in, w, bias, add, g);
    return rc == 0 ? kiln__cudak_copy(x, out, &t) : rc;
}

/* A 1x1, stride-1, unpadded convolution from and to channels-last tensors is a linear map
 * of every pixel's channels: out [N*H*W, OC] = in [N*H*W, C] W^T + bias, one GEMM with
 * the bias in its epilogue. */
static bool pointwise_cl(const kiln__cuda_desc_t *out, const kiln__cuda_desc_t *in,
                         const kiln__cuda_desc_t *w, const kiln__cuda_conv_geom_t *g)
{
    return w->shape[2] == 1 && w->shape[3] == 1 && g->stride_h == 1 && g->stride_w == 1 &&
           g->pad_top == 0 && g->pad_left == 0 && out->shape[2] == in->shape[2] &&
           out->shape[3] == in->shape[3] && is_cl(in) && is_cl(out) && !is_dense(out);
}

static int conv_pointwise_cl(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                             const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                             const kiln__cuda_desc_t *bias, const kiln__cuda_desc_t *add)
{
    int64_t pixels = in->shape[0] * in->shape[2] * in->shape[3];
    kiln__cuda_desc_t a = {}, o = {}, wm = {};
    a.ptr = in->ptr, a.dtype = in->dtype, a.ndim = 2, a.numel = in->numel;
    a.shape[0] = pixels, a.shape[1] = in->shape[1], a.strides[0] = in->shape[1], a.strides[1] = 1;
    o.ptr = out->ptr, o.dtype = out->dtype, o.ndim = 2, o.numel = out->numel;
    o.shape[0] = pixels, o.shape[1] = out->shape[1], o.strides[0] = out->shape[1];
    o.strides[1] = 1;
    wm.ptr = w->ptr, wm.dtype = w->dtype, wm.ndim = 2, wm.numel = w->numel;
    wm.shape[0] = w->shape[0], wm.shape[1] = w->shape[1];
    wm.strides[0] = w->strides[0], wm.strides[1] = w->strides[1];
    /* an addend laid out like out is the same [N*H*W, OC] matrix; else summed after */
    bool same = add && same_layout(add, out);
    kiln__cuda_desc_t ad = o;
    ad.ptr = same ? add->ptr : NULL;
    int rc = kiln__cudak_linear(x, &o, &a, &wm, bias, same ? &ad : NULL); // [N*H*W, OC]
    if (rc == 0 && add && !same)
        rc = kiln__cudak_binary(x, out, out, add, KILN__CUDA_ADD);
    return rc;
}

static int conv_run(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                    const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                    const kiln__cuda_desc_t *bias, const kiln__cuda_desc_t *add,
                    const kiln__cuda_conv_geom_t *g)
{
    if (out->numel == 0)
        return 0;
    if (pointwise_cl(out, in, w, g))
        return conv_pointwise_cl(x, out, in, w, bias, add);
    dnn_plan *p = conv_dnn_plan(x, out, in, w, g);
    if (!p)
        return conv_fallback(x, out, in, w, bias, add, g);
    int *choice = conv_dnn_choice(p);
    if (*choice == 0 && x->recording) /* timing waits on the host: not while recording */
        return conv_fallback(x, out, in, w, bias, add, g);
    if (*choice == 0) { /* first call of this shape: time both paths, keep the faster */
        float t_dnn = 1e30f, t_col = 1e30f, t;
        int rc = 0;
        /* each path four times, the fastest counting: the first run pays one-time costs
         * (lazy kernel loading, cuBLASLt's heuristic, its scratch memory's first
         * cudaMalloc) that later calls do not, and single timings of short kernels are
         * noisy; scratch goes back to the cache between runs */
        for (int rep = 0; rc == 0 && rep < 4; rep++) {
            kiln__cuda_scratch_release(x);
            rc = time_path(x, [&] { return conv_dnn_run(x, p, out, in, w, bias, add); }, &t);
            t_dnn = rep > 0 && t < t_dnn ? t : t_dnn;
            kiln__cuda_scratch_release(x);
            if (rc == 0) /* im2col last: its output is the call's result */
                rc = time_path(x, [&] { return conv_fallback(x, out, in, w, bias, add, g); },
                               &t);
            t_col = rep > 0 && t < t_col ? t : t_col;
        }
        if (rc < 0)
            return rc;
        *choice = t_dnn < t_col ? 1 : 2;
        const char *v = getenv("KILN_CUDA_CONV_LOG");
        if (v && *v == '1')
            fprintf(stderr, "conv %lldx%lldx%lldx%lld -> %lld k%lld s%lld: cuDNN %.4f ms, "
                    "im2col %.4f ms\n", (long long)in->shape[0], (long long)in->shape[1],
                    (long long)in->shape[2], (long long)in->shape[3], (long long)out->shape[1],
                    (long long)w->shape[2], (long long)g->stride_h, t_dnn, t_col);
        return 0;
    }
    return *choice == 1 ? conv_dnn_run(x, p, out, in, w, bias, add)
                        : conv_fallback(x, out, in, w, bias, add, g);
}

} // namespace kiln_cuda

extern "C" int kiln__cudak_conv2d(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                                  const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                                  const kiln__cuda_desc_t *b, const kiln__cuda_desc_t *add,
                                  const kiln__cuda_conv_geom_t *g)
{
    return kiln_cuda::conv_run(x, out, in, w, b, add, g);
}
