/* 2-D convolution through cuDNN for half-precision tensors (F16 or BF16 input, weight and
 * output, float32 accumulation on tensor cores). cuDNN is optional: the library is
 * opened at run time (dlopen of libcudnn.so.9) and the header is only needed to build,
 * so a machine without it, or KILN_CUDA_CUDNN=0, falls back to conv.cu's im2col + GEMM.
 * The fastest algorithm for each shape is measured once (cudnnFind...) and cached per
 * stream with its descriptors; conv.cu then times both paths once on the same call and
 * keeps whichever is faster for that shape (cuDNN loses at small spatial sizes).
 * Symmetric padding only (cuDNN's limit). x, weight and out are all dense NCHW or all
 * channels-last (NHWC); channels-last is what the tensor-core implicit-GEMM kernels read
 * without transforms. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/common.cuh"

#if __has_include(<cudnn.h>)
#include <cudnn.h>
#include <dlfcn.h>
#define KILN_WITH_CUDNN 1
#endif

namespace kiln_cuda {

#ifdef KILN_WITH_CUDNN

/* The cuDNN entry points used here, resolved from the shared library. */
static struct dnn_api {
    bool ok;
    decltype(&cudnnCreate) create;
    decltype(&cudnnSetStream) set_stream;
    decltype(&cudnnCreateTensorDescriptor) tensor_new;
    decltype(&cudnnSetTensor4dDescriptor) tensor_set;
    decltype(&cudnnCreateFilterDescriptor) filter_new;
    decltype(&cudnnSetFilter4dDescriptor) filter_set;
    decltype(&cudnnCreateConvolutionDescriptor) conv_new;
    decltype(&cudnnSetConvolution2dDescriptor) conv_set;
    decltype(&cudnnSetConvolutionMathType) conv_math;
    decltype(&cudnnFindConvolutionForwardAlgorithmEx) find;
    decltype(&cudnnConvolutionForward) forward;
} dnn;

static pthread_once_t dnn_once = PTHREAD_ONCE_INIT;

static void dnn_load(void)
{
    const char *off = getenv("KILN_CUDA_CUDNN");
    if (off && *off == '0')
        return;
    void *lib = dlopen("libcudnn.so.9", RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        return;
#define DNN_SYM(field, name)                                                                  \
    dnn.field = (decltype(dnn.field))dlsym(lib, #name);                                       \
    if (!dnn.field)                                                                           \
        return;
    DNN_SYM(create, cudnnCreate)
    DNN_SYM(set_stream, cudnnSetStream)
    DNN_SYM(tensor_new, cudnnCreateTensorDescriptor)
    DNN_SYM(tensor_set, cudnnSetTensor4dDescriptor)
    DNN_SYM(filter_new, cudnnCreateFilterDescriptor)
    DNN_SYM(filter_set, cudnnSetFilter4dDescriptor)
    DNN_SYM(conv_new, cudnnCreateConvolutionDescriptor)
    DNN_SYM(conv_set, cudnnSetConvolution2dDescriptor)
    DNN_SYM(conv_math, cudnnSetConvolutionMathType)
    DNN_SYM(find, cudnnFindConvolutionForwardAlgorithmEx)
    DNN_SYM(forward, cudnnConvolutionForward)
#undef DNN_SYM
    dnn.ok = true;
}

struct plan_key {
    int64_t n, c, h, w, oc, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw;
    int dt;
    int x_cl, w_cl, y_cl; /* 1: that operand is channels-last (cuDNN's NHWC) */
};

struct plan {
    plan_key key;
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t f;
    cudnnConvolutionDescriptor_t conv;
    cudnnConvolutionFwdAlgo_t algo;
    size_t ws_bytes;
    bool usable; /* false: cuDNN refused this shape; use im2col */
    float ms;    /* the chosen algorithm's time in the search */
    int choice;  /* 0 undecided, 1 cuDNN, 2 im2col (set by conv.cu after timing both) */
};

#define PLAN_SLOTS 256

struct dnn_cache {
    cudnnHandle_t handle;
    cudaStream_t stream; /* the handle's stream, once set */
    plan plans[PLAN_SLOTS];
    int n;
};

static bool st_ok(cudnnStatus_t s)
{
    return s == CUDNN_STATUS_SUCCESS;
}

/* The best of three timed runs (after one untimed) of algo on the call's buffers, in
 * milliseconds; a huge value when a run fails. */
static float time_algo(dnn_cache *c, plan *p, cudnnConvolutionFwdAlgo_t algo, void *ws,
                       size_t ws_bytes, const void *xp, const void *wp, void *yp, cudaStream_t s)
{
    cudaEvent_t a, b;
    float best = 1e30f, alpha = 1.0f, beta = 0.0f;
    if (cudaEventCreate(&a) != cudaSuccess)
        return best;
    if (cudaEventCreate(&b) != cudaSuccess) {
        cudaEventDestroy(a);
        return best;
    }
    for (int rep = 0; rep < 4; rep++) {
        float ms = 0.0f;
        cudaEventRecord(a, s);
        bool ok = st_ok(dnn.forward(c->handle, &alpha, p->x, xp, p->f, wp, p->conv, algo, ws,
                                    ws_bytes, &beta, p->y, yp));
        cudaEventRecord(b, s);
        if (!ok || cudaEventSynchronize(b) != cudaSuccess ||
            cudaEventElapsedTime(&ms, a, b) != cudaSuccess) {
            best = 1e30f;
            break;
        }
        if (rep > 0 && ms < best)
            best = ms;
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return best;
}

/* Builds descriptors and measures the algorithms on the call's own buffers. */
static bool plan_build(kiln__cuda_exec_t *x, dnn_cache *c, plan *p, const void *xp,
                       const void *wp, void *yp)
{
    const plan_key &k = p->key;
    cudnnDataType_t dt = k.dt == KILN_DTYPE_F16 ? CUDNN_DATA_HALF : CUDNN_DATA_BFLOAT16;
    bool ok = st_ok(dnn.tensor_new(&p->x)) && st_ok(dnn.tensor_new(&p->y)) &&
              st_ok(dnn.filter_new(&p->f)) && st_ok(dnn.conv_new(&p->conv));
    cudnnTensorFormat_t xf = k.x_cl ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    cudnnTensorFormat_t yf = k.y_cl ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    cudnnTensorFormat_t wf = k.w_cl ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    ok = ok && st_ok(dnn.tensor_set(p->x, xf, dt, (int)k.n, (int)k.c, (int)k.h, (int)k.w));
    ok = ok && st_ok(dnn.tensor_set(p->y, yf, dt, (int)k.n, (int)k.oc, (int)k.oh, (int)k.ow));
    ok = ok && st_ok(dnn.filter_set(p->f, dt, wf, (int)k.oc, (int)k.c, (int)k.kh, (int)k.kw));
    ok = ok && st_ok(dnn.conv_set(p->conv, (int)k.ph, (int)k.pw, (int)k.sh, (int)k.sw, (int)k.dh,
                                  (int)k.dw, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    ok = ok && st_ok(dnn.conv_math(p->conv, CUDNN_TENSOR_OP_MATH));
    const size_t search_ws = (size_t)256 << 20;
    void *ws = ok ? kiln__cuda_scratch(x, search_ws) : NULL;
    cudnnConvolutionFwdAlgoPerf_t perf[8];
    int found = 0;
    ok = ok && ws && st_ok(dnn.find(c->handle, p->x, xp, p->f, wp, p->conv, p->y, yp, 8, &found,
                                    perf, ws, search_ws));
    /* cudnnFind times each algorithm once, and short convolutions time noisily: its order
     * changed from run to run by up to 3.5x in the chosen algorithm's speed. So the
     * candidates it found are timed again here, best of several runs each. */
    p->usable = false;
    p->ms = 1e30f;
    for (int i = 0, tried = 0; ok && i < found && tried < 4; i++) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > search_ws)
            continue;
        tried++;
        float ms = time_algo(c, p, perf[i].algo, ws, perf[i].memory, xp, wp, yp,
                             stream_of(x));
        if (ms < p->ms) {
            p->algo = perf[i].algo;
            p->ws_bytes = perf[i].memory;
            p->ms = ms;
            p->usable = true;
        }
    }
    return ok;
}

static dnn_cache *cache_of(kiln__cuda_exec_t *x)
{
    dnn_cache *c = (dnn_cache *)*x->conv_cache;
    if (c)
        return c;
    c = (dnn_cache *)calloc(1, sizeof *c);
    if (!c || !st_ok(dnn.create(&c->handle))) {
        free(c);
        return NULL;
    }
    *x->conv_cache = c;
    return c;
}

dnn_plan *conv_dnn_plan(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                        const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                        const kiln__cuda_conv_geom_t *g)
{
    pthread_once(&dnn_once, dnn_load);
    int dt = in->dtype;
    /* cuDNN pads symmetrically: usable when that gives out's size (the windows then sit
     * where the caller's padding puts them) */
    int64_t oh = (in->shape[2] + 2 * g->pad_top - g->dilation_h * (w->shape[2] - 1) - 1) /
                     g->stride_h + 1;
    int64_t ow = (in->shape[3] + 2 * g->pad_left - g->dilation_w * (w->shape[3] - 1) - 1) /
                     g->stride_w + 1;
    /* all three operands in one of cuDNN's packed formats, dense NCHW or channels-last
     * (mixed formats fail in cuDNN's forward call on some algorithms); a tensor that reads
     * as both (one channel, or one pixel) takes out's */
    bool cl = !is_dense(out);
    if (!dnn.ok || (dt != KILN_DTYPE_F16 && dt != KILN_DTYPE_BF16) || w->dtype != dt ||
        out->dtype != dt || oh != out->shape[2] || ow != out->shape[3] ||
        (cl ? !(is_cl(out) && is_cl(in) && is_cl(w)) : !(is_dense(in) && is_dense(w))) ||
        in->numel > INT32_MAX || out->numel > INT32_MAX)
        return NULL;
    dnn_cache *c = cache_of(x);
    /* the handle belongs to this stream: set it once (cudnnSetStream on every call would
     * also break a graph recording) */
    if (!c || (c->stream != stream_of(x) && !st_ok(dnn.set_stream(c->handle, stream_of(x)))))
        return NULL;
    c->stream = stream_of(x);
    plan_key k;
    memset(&k, 0, sizeof k);
    k.n = in->shape[0], k.c = in->shape[1], k.h = in->shape[2], k.w = in->shape[3];
    k.oc = w->shape[0], k.kh = w->shape[2], k.kw = w->shape[3];
    k.oh = out->shape[2], k.ow = out->shape[3];
    k.sh = g->stride_h, k.sw = g->stride_w, k.ph = g->pad_top, k.pw = g->pad_left;
    k.dh = g->dilation_h, k.dw = g->dilation_w, k.dt = dt; /* memcmp'd: padding stays 0 */
    k.x_cl = k.w_cl = k.y_cl = cl;
    plan *p = NULL;
    for (int i = 0; i < c->n && !p; i++)
        if (memcmp(&c->plans[i].key, &k, sizeof k) == 0)
            p = &c->plans[i];
    if (!p) {
        /* a new plan measures algorithms (host waits): not while a graph records */
        if (c->n == PLAN_SLOTS || x->recording)
            return NULL;
        p = &c->plans[c->n++];
        p->key = k;
        if (!plan_build(x, c, p, in->ptr, w->ptr, out->ptr))
            p->usable = false;
    }
    return p->usable ? (dnn_plan *)p : NULL;
}

int *conv_dnn_choice(dnn_plan *dp)
{
    return &((plan *)dp)->choice;
}

float conv_dnn_ms(dnn_plan *dp)
{
    return ((plan *)dp)->ms;
}

int conv_dnn_run(kiln__cuda_exec_t *x, dnn_plan *dp, const kiln__cuda_desc_t *out,
                 const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                 const kiln__cuda_desc_t *bias, const kiln__cuda_desc_t *add)
{
    plan *p = (plan *)dp;
    const plan_key &k = p->key;
    dnn_cache *c = cache_of(x);
    float alpha = 1.0f, beta = 0.0f;
    if (add) { /* out starts as bias + add; the convolution accumulates onto it */
        int rc = out_start(x, out, 1, bias, add);
        if (rc < 0)
            return rc;
        beta = 1.0f;
    } else if (bias) { /* out starts as the bias */
        int rc = k.y_cl ? bias_fill(x, out->ptr, out->dtype, k.n * k.oh * k.ow, k.oc, 1, bias)
                        : bias_fill(x, out->ptr, out->dtype, k.n, k.oc, k.oh * k.ow, bias);
        if (rc < 0)
            return rc;
        beta = 1.0f;
    }
    void *ws = p->ws_bytes ? kiln__cuda_scratch(x, p->ws_bytes) : NULL;
    if (p->ws_bytes && !ws)
        return x->scratch_rc;
    return st_ok(dnn.forward(c->handle, &alpha, p->x, in->ptr, p->f, w->ptr, p->conv, p->algo, ws,
                             p->ws_bytes, &beta, p->y, out->ptr))
               ? 0
               : KILN_EDEVICE;
}

#else

dnn_plan *conv_dnn_plan(kiln__cuda_exec_t *x, const kiln__cuda_desc_t *out,
                        const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                        const kiln__cuda_conv_geom_t *g)
{
    return NULL;
}

int *conv_dnn_choice(dnn_plan *dp)
{
    return NULL;
}

float conv_dnn_ms(dnn_plan *dp)
{
    return 0.0f;
}

int conv_dnn_run(kiln__cuda_exec_t *x, dnn_plan *dp, const kiln__cuda_desc_t *out,
                 const kiln__cuda_desc_t *in, const kiln__cuda_desc_t *w,
                 const kiln__cuda_desc_t *bias, const kiln__cuda_desc_t *add)
{
    return KILN_EUNSUPPORTED;
}

#endif

} // namespace kiln_cuda
