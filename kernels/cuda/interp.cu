/* Resampling on CUDA with torch's F.interpolate index rules, computed per output element
 * in exactly the float (and, for nearest-exact, double) operations of the CPU kernel,
 * with explicitly rounded intrinsics so that no multiply-add is fused: the two backends
 * pick the same source pixels and weights, bit for bit. */
#include "kernels/cuda/common.cuh"

namespace kiln_cuda {

struct axis {
    int64_t in, out;
    float scale; /* in / out, in float as torch */
};

/* Source indices i0, i1 and weights of output position o along one axis. */
__device__ __forceinline__ void axis_at(const axis &a, int64_t o, int mode, int64_t *i0,
                                        int64_t *i1, float *l0, float *l1)
{
    if (mode != KILN_INTERP_MODE_BILINEAR) {
        int64_t src;
        if (mode == KILN_INTERP_MODE_NEAREST_EXACT)
            src = (int64_t)floorf(__double2float_rn(__dmul_rn((double)o + 0.5, (double)a.scale)));
        else if (a.out == a.in)
            src = o;
        else if (a.out == 2 * a.in)
            src = o >> 1;
        else
            src = (int64_t)floorf(__fmul_rn((float)o, a.scale));
        src = src < a.in - 1 ? src : a.in - 1;
        *i0 = *i1 = src;
        *l0 = 1.0f;
        *l1 = 0.0f;
        return;
    }
    if (a.out == a.in) {
        *i0 = *i1 = o;
        *l0 = 1.0f;
        *l1 = 0.0f;
        return;
    }
    float real = __fsub_rn(__fmul_rn(a.scale, __fadd_rn((float)o, 0.5f)), 0.5f);
    real = real < 0.0f ? 0.0f : real;
    int64_t j = (int64_t)floorf(real);
    j = j < a.in - 1 ? j : a.in - 1;
    float w1 = __fsub_rn(real, (float)j);
    w1 = w1 < 0.0f ? 0.0f : (w1 > 1.0f ? 1.0f : w1);
    *i0 = j;
    *i1 = j + (j < a.in - 1 ? 1 : 0);
    *l0 = __fsub_rn(1.0f, w1);
    *l1 = w1;
}

/* out [planes, OH, OW] dense; x planes at the offsets of geometry g (leading dims). */
__global__ void interp_k(geo g, const void *x, int xdt, int64_t xsh, int64_t xsw, void *o,
                         int odt, axis ah, axis aw, int mode, int64_t total)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    int64_t plane = ah.out * aw.out;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        int64_t pl = i / plane, rem = i - pl * plane, oy = rem / aw.out, ox = rem - oy * aw.out;
        int64_t off[1];
        geo_offsets<1>(g, pl, off);
        int64_t y0, y1, x0, x1;
        float h0, h1, w0, w1;
        axis_at(ah, oy, mode, &y0, &y1, &h0, &h1);
        axis_at(aw, ox, mode, &x0, &x1, &w0, &w1);
        int64_t r0 = off[0] + y0 * xsh, r1 = off[0] + y1 * xsh;
        float v;
        if (mode != KILN_INTERP_MODE_BILINEAR) { /* copy (weights would turn inf into NaN) */
            v = ld_f(x, xdt, r0 + x0 * xsw);
        } else {
            float a = ld_f(x, xdt, r0 + x0 * xsw), b = ld_f(x, xdt, r0 + x1 * xsw);
            float c = ld_f(x, xdt, r1 + x0 * xsw), d = ld_f(x, xdt, r1 + x1 * xsw);
            float top = __fadd_rn(__fmul_rn(w0, a), __fmul_rn(w1, b));
            float bot = __fadd_rn(__fmul_rn(w0, c), __fmul_rn(w1, d));
            v = __fadd_rn(__fmul_rn(h0, top), __fmul_rn(h1, bot));
        }
        st_f(o, odt, i, v);
    }
}

/* The same for a 4-D channels-last out, walked channel-fastest so that consecutive threads
 * write (and, for a channels-last x, read) consecutive elements. Strides of x and out are
 * given per dimension (N, C, H, W). */
struct nchw_strides {
    int64_t n, c, h, w;
};

__global__ void interp_cl_k(const void *x, int xdt, nchw_strides xs, void *o, int odt,
                            nchw_strides os, int64_t ch, axis ah, axis aw, int mode,
                            int64_t total)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        int64_t c = i % ch, r = i / ch, ox = r % aw.out;
        r /= aw.out;
        int64_t oy = r % ah.out, n = r / ah.out;
        int64_t y0, y1, x0, x1;
        float h0, h1, w0, w1;
        axis_at(ah, oy, mode, &y0, &y1, &h0, &h1);
        axis_at(aw, ox, mode, &x0, &x1, &w0, &w1);
        int64_t base = n * xs.n + c * xs.c, r0 = base + y0 * xs.h, r1 = base + y1 * xs.h;
        float v;
        if (mode != KILN_INTERP_MODE_BILINEAR) {
            v = ld_f(x, xdt, r0 + x0 * xs.w);
        } else {
            float a = ld_f(x, xdt, r0 + x0 * xs.w), b = ld_f(x, xdt, r0 + x1 * xs.w);
            float cc = ld_f(x, xdt, r1 + x0 * xs.w), d = ld_f(x, xdt, r1 + x1 * xs.w);
            float top = __fadd_rn(__fmul_rn(w0, a), __fmul_rn(w1, b));
            float bot = __fadd_rn(__fmul_rn(w0, cc), __fmul_rn(w1, d));
            v = __fadd_rn(__fmul_rn(h0, top), __fmul_rn(h1, bot));
        }
        st_f(o, odt, n * os.n + c * os.c + oy * os.h + ox * os.w, v);
    }
}

} // namespace kiln_cuda

extern "C" int kiln__cudak_interpolate(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                                       const kiln__cuda_desc_t *in, int mode)
{
    using namespace kiln_cuda;
    if (out->numel == 0)
        return 0;
    int nd = out->ndim;
    const int64_t *st[1] = {in->strides};
    geo g = geo_make(nd - 2, in->shape, st, 1); // one plane per leading index
    axis ah = {in->shape[nd - 2], out->shape[nd - 2],
               (float)in->shape[nd - 2] / (float)out->shape[nd - 2]};
    axis aw = {in->shape[nd - 1], out->shape[nd - 1],
               (float)in->shape[nd - 1] / (float)out->shape[nd - 1]};
    if (nd == 4 && !is_dense(out)) { /* channels-last out (the only other layout accepted) */
        nchw_strides xs = {in->strides[0], in->strides[1], in->strides[2], in->strides[3]};
        nchw_strides os = {out->strides[0], out->strides[1], out->strides[2], out->strides[3]};
        interp_cl_k<<<grid_for(out->numel, 256), 256, 0, stream_of(x)>>>(
            in->ptr, in->dtype, xs, out->ptr, out->dtype, os, out->shape[1], ah, aw, mode,
            out->numel);
        KILN_CUDA_LAUNCHED();
        return 0;
    }
    interp_k<<<grid_for(out->numel, 256), 256, 0, stream_of(x)>>>(
        g, in->ptr, in->dtype, in->strides[nd - 2], in->strides[nd - 1], out->ptr, out->dtype,
        ah, aw, mode, out->numel);
    KILN_CUDA_LAUNCHED();
    return 0;
}
