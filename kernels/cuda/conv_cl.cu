/* Convolution of channels-last tensors as one GEMM over pixels: im2col gathers, for every
 * output pixel, the KH x KW input pixels its window covers, each a run of C contiguous
 * channels (moved 16 bytes at a time when C allows), into a row of cols [P, KH*KW*C]; with
 * the weight in its channels-last order [OC][KH][KW][C] that row times W^T is the pixel's
 * OC outputs, which is exactly a row of the channels-last out. So there is no layout
 * transform on either side, the bias rides in cuBLASLt's epilogue, and a fused addend laid
 * out like out is the GEMM's C operand. This serves the shapes cuDNN has no NHWC kernel
 * for (C or OC not a multiple of 8, such as SD's 4-channel latents) and those where a
 * plain GEMM beats it (small images with many channels, where it picks split-K). */
#include "kernels/cuda/common.cuh"

namespace kiln_cuda {

#define CL_COLS_BUDGET ((int64_t)256 << 20)

struct cl_geom {
    uint32_t cv, kw, kh, w, h, ow, oh; /* cv: channels in units of V */
    int32_t sh, sw, pt, pl, dh, dw;
    uint32_t xs_n, xs_h, xs_w; /* input strides in units of V */
};

/* cols[p][(ki*KW + kj)*CV + c] = x[n, ih, iw, c], zero outside the image; V is the unit
 * moved (16 bytes or one element). */
template <typename V>
__global__ void im2col_cl_k(cl_geom g, const V *__restrict__ x, V *__restrict__ cols,
                            uint32_t total)
{
    const uint32_t kv = g.kh * g.kw * g.cv;
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += gridDim.x * blockDim.x) {
        uint32_t p = i / kv, r = i - p * kv;
        uint32_t c = r % g.cv, t = r / g.cv, kj = t % g.kw, ki = t / g.kw;
        uint32_t ow = p % g.ow, q = p / g.ow, oh = q % g.oh, n = q / g.oh;
        int ih = (int)oh * g.sh - g.pt + (int)ki * g.dh;
        int iw = (int)ow * g.sw - g.pl + (int)kj * g.dw;
        V v = {};
        if (ih >= 0 && ih < (int)g.h && iw >= 0 && iw < (int)g.w)
            v = x[n * g.xs_n + (uint32_t)ih * g.xs_h + (uint32_t)iw * g.xs_w + c];
        cols[i] = v;
    }
}

/* The weight [OC, C, KH, KW] stored as [OC][KH][KW][C] with no gaps. */
static bool w_cl_dense(const kiln__cuda_desc_t *w)
{
    int64_t c = w->shape[1], kh = w->shape[2], kw = w->shape[3];
    return w->strides[1] == 1 && (kw == 1 || w->strides[3] == c) &&
           (kh == 1 || w->strides[2] == kw * c) && w->strides[0] == kh * kw * c;
}

bool conv_cl_ok(const kiln__cuda_desc_t *out, const kiln__cuda_desc_t *in,
                const kiln__cuda_desc_t *w)
{
    bool half = in->dtype == KILN_DTYPE_F16 || in->dtype == KILN_DTYPE_BF16;
    return half && w->dtype == in->dtype && out->dtype == in->dtype && is_cl(in) &&
           is_cl(out) && w_cl_dense(w) && in->numel < ((int64_t)1 << 31);
}

int conv_cl_gemm(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                 const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                 const kiln__cuda_desc_t *bias, const kiln__cuda_desc_t *add,
                 const kiln__cuda_conv_geom_t *cg)
{
    int64_t n = in->shape[0], c = in->shape[1], oc = out->shape[1];
    int64_t kh = w->shape[2], kw = w->shape[3], p1 = out->shape[2] * out->shape[3];
    int64_t k = kh * kw * c, es = dtype_size(in->dtype);
    /* 16-byte units when every channel run starts 16-byte aligned */
    int vec = c % 8 == 0 && (uintptr_t)in->ptr % 16 == 0 ? 8 : 1;
    cl_geom g = {(uint32_t)(c / vec), (uint32_t)kw, (uint32_t)kh, (uint32_t)in->shape[3],
                 (uint32_t)in->shape[2], (uint32_t)out->shape[3], (uint32_t)out->shape[2],
                 (int32_t)cg->stride_h, (int32_t)cg->stride_w, (int32_t)cg->pad_top,
                 (int32_t)cg->pad_left, (int32_t)cg->dilation_h, (int32_t)cg->dilation_w,
                 (uint32_t)(in->strides[0] / vec), (uint32_t)(in->strides[2] / vec),
                 (uint32_t)(in->strides[3] / vec)};
    /* samples per chunk: the column matrix within budget and 32-bit indices */
    int64_t per = p1 * k * es, ns = per > 0 ? CL_COLS_BUDGET / per : n;
    ns = ns < 1 ? 1 : (ns > n ? n : ns);
    while (ns > 1 && ns * p1 * k >= ((int64_t)1 << 31))
        ns /= 2;
    if (p1 * k >= ((int64_t)1 << 31))
        return KILN_EUNSUPPORTED;
    void *cols = kiln__cuda_scratch(x, (size_t)(ns * p1 * k * es));
    if (!cols)
        return x->scratch_rc;
    bool add_c = add && same_layout(add, out);
    kiln__cuda_desc_t a = {}, o = {}, wm = {}, ad = {};
    a.ptr = cols, a.dtype = in->dtype, a.ndim = 2, a.shape[1] = k, a.strides[0] = k;
    a.strides[1] = 1;
    o.dtype = out->dtype, o.ndim = 2, o.shape[1] = oc, o.strides[0] = oc, o.strides[1] = 1;
    wm.ptr = w->ptr, wm.dtype = w->dtype, wm.ndim = 2, wm.numel = oc * k;
    wm.shape[0] = oc, wm.shape[1] = k, wm.strides[0] = k, wm.strides[1] = 1;
    int rc = 0;
    for (int64_t s0 = 0; rc == 0 && s0 < n; s0 += ns) {
        int64_t cnt = s0 + ns <= n ? ns : n - s0;
        uint32_t total = (uint32_t)(cnt * p1 * k / vec);
        const char *src = (const char *)in->ptr + s0 * in->strides[0] * es;
        if (vec == 8)
            im2col_cl_k<uint4><<<grid_for(total, 256), 256, 0, stream_of(x)>>>(
                g, (const uint4 *)src, (uint4 *)cols, total);
        else
            im2col_cl_k<uint16_t><<<grid_for(total, 256), 256, 0, stream_of(x)>>>(
                g, (const uint16_t *)src, (uint16_t *)cols, total);
        KILN_CUDA_LAUNCHED();
        a.shape[0] = o.shape[0] = cnt * p1, a.numel = cnt * p1 * k, o.numel = cnt * p1 * oc;
        o.ptr = (char *)out->ptr + s0 * p1 * oc * es; // out rows [s0 * P, +cnt * P)
        ad = o;
        if (add_c)
            ad.ptr = (char *)add->ptr + s0 * p1 * oc * es;
        rc = kiln__cudak_linear(x, &o, &a, &wm, bias, add_c ? &ad : NULL); // [cnt*P, OC]
    }
    /* an addend in another layout or dtype: summed afterwards */
    if (rc == 0 && add && !add_c)
        rc = kiln__cudak_binary(x, out, out, add, KILN__CUDA_ADD);
    return rc;
}

} // namespace kiln_cuda
