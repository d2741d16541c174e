/* The glue between the op library and the CUDA kernels: per call it picks the stream,
 * orders it after the inputs' writers (and the output's readers), turns tensors into
 * kernel descriptors, runs the launcher, gives scratch memory back, and for calls made
 * without a lane from a thread that is not a CUDA lane waits for the result. */
#ifdef KILN_HAVE_CUDA

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kiln/error.h>

#include "cuda/cuda_ops.h"
#include "cuda/cuda_rt.h"
#include "kernels/cuda/cuda_kern.h"

/* ---- execution contexts --------------------------------------------------------------- */

static int tf32_allowed(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("KILN_CUDA_TF32");
        v = e && *e == '1';
    }
    return v;
}

int kiln__cuda_exec_begin(kiln__cuda_stream_t *s, kiln__cuda_exec_t *x)
{
    memset(x, 0, sizeof *x);
    if (!s)
        return KILN_EINVAL;
    x->stream = s->stream;
    x->lt = s->lt;
    x->workspace = s->workspace;
    x->workspace_bytes = s->workspace_bytes;
    x->gemm_cache = &s->gemm_cache;
    x->conv_cache = &s->conv_cache;
    x->stream_ctx = s;
    x->tf32 = tf32_allowed();
    x->recording = s->pool != NULL;
    KILN_CUDA_TRY(cudaSetDevice(s->device - 1));
    return 0;
}

void kiln__cuda_scratch_release(kiln__cuda_exec_t *x)
{
    for (int i = 0; i < x->n_scratch; i++)
        kiln__cuda_free(x->scratch[i]);
    x->n_scratch = 0;
}

int kiln__cuda_exec_end(kiln__cuda_exec_t *x, int rc)
{
    kiln__cuda_scratch_release(x);
    cudaError_t e = cudaGetLastError();
    if (rc == 0 && e != cudaSuccess)
        rc = kiln__cuda_status(e, "kernel launch", __FILE__, __LINE__);
    return rc;
}

void *kiln__cuda_scratch(kiln__cuda_exec_t *x, size_t bytes)
{
    if (x->n_scratch == KILN__CUDA_MAX_SCRATCH) {
        x->scratch_rc = KILN_ENOMEM;
        return NULL;
    }
    kiln__cuda_block_t *b = NULL;
    int rc = kiln__cuda_alloc(x->stream_ctx, bytes, &b);
    if (rc < 0) {
        if (!x->scratch_rc)
            x->scratch_rc = rc;
        return NULL;
    }
    b->writer = x->stream_ctx; /* only this op's stream ever touches it */
    x->scratch[x->n_scratch++] = b;
    return b->ptr;
}

/* ---- op profile (KILN_CUDA_PROFILE=1) ---------------------------------------------------
 * Events around every op call, resolved into per-op totals by kiln__cuda_profile_report.
 * Costs an event pair per call, so it is off unless asked for. */

#define PROF_MAX_PENDING 65536
#define PROF_MAX_OPS 32

typedef struct prof_rec {
    const char *op;
    cudaEvent_t a, b;
} prof_rec_t;

static struct {
    int on; /* -1 unknown */
    pthread_mutex_t mu;
    prof_rec_t *pending;
    int n_pending;
    const char *ops[PROF_MAX_OPS];
    double ms[PROF_MAX_OPS];
    long calls[PROF_MAX_OPS];
} prof = {.on = -1, .mu = PTHREAD_MUTEX_INITIALIZER};

static int prof_enabled(void)
{
    if (prof.on < 0) {
        const char *e = getenv("KILN_CUDA_PROFILE");
        prof.on = e && *e == '1';
    }
    return prof.on;
}

static void prof_resolve_locked(void)
{
    for (int i = 0; i < prof.n_pending; i++) {
        prof_rec_t *r = &prof.pending[i];
        float ms = 0.0f;
        cudaEventSynchronize(r->b);
        cudaEventElapsedTime(&ms, r->a, r->b);
        int k = 0;
        while (k < PROF_MAX_OPS && prof.ops[k] && prof.ops[k] != r->op)
            k++;
        if (k < PROF_MAX_OPS) {
            prof.ops[k] = r->op;
            prof.ms[k] += ms;
            prof.calls[k]++;
        }
        cudaEventDestroy(r->a);
        cudaEventDestroy(r->b);
    }
    prof.n_pending = 0;
}

void kiln__cuda_profile_enable(int on)
{
    prof.on = on != 0;
}

void kiln__cuda_profile_reset(void)
{
    pthread_mutex_lock(&prof.mu);
    prof_resolve_locked();
    memset(prof.ops, 0, sizeof prof.ops);
    memset(prof.ms, 0, sizeof prof.ms);
    memset(prof.calls, 0, sizeof prof.calls);
    pthread_mutex_unlock(&prof.mu);
}

void kiln__cuda_profile_report(FILE *f)
{
    pthread_mutex_lock(&prof.mu);
    prof_resolve_locked();
    double total = 0.0;
    for (int k = 0; k < PROF_MAX_OPS && prof.ops[k]; k++)
        total += prof.ms[k];
    fprintf(f, "%-18s %8s %10s %7s\n", "op", "calls", "GPU ms", "share");
    for (int k = 0; k < PROF_MAX_OPS && prof.ops[k]; k++)
        fprintf(f, "%-18s %8ld %10.3f %6.1f%%\n", prof.ops[k], prof.calls[k], prof.ms[k],
                total > 0 ? 100.0 * prof.ms[k] / total : 0.0);
    fprintf(f, "%-18s %8s %10.3f\n", "total", "", total);
    pthread_mutex_unlock(&prof.mu);
}

/* One op call in flight. */
typedef struct call {
    kiln__cuda_stream_t *s;
    int sync;                /* lane-less call from a non-lane thread: wait at the end */
    kiln__cuda_exec_t x;
    const char *op;          /* for the profile */
    cudaEvent_t pa;          /* profile start event, or NULL */
} call_t;

/* While a graph records on the call's stream: notes the first op after which the capture
 * is broken (an op that waited on the host, or one that was refused), for the error that
 * kiln_lane_record_end reports. */
static void capture_check(call_t *c, int before)
{
    enum cudaStreamCaptureStatus st = cudaStreamCaptureStatusActive;
    if (!c->s->pool || c->s->capture_broken)
        return;
    if (cudaStreamIsCapturing(c->s->stream, &st) != cudaSuccess ||
        st != cudaStreamCaptureStatusActive) {
        c->s->capture_broken = c->op;
        c->s->capture_broken_before = before;
    }
}

/* Picks the stream for an op on out's device. */
static int call_begin(struct kiln_lane *lane, const kiln_tensor_t *out, call_t *c)
{
    int dev = out->storage->device;
    c->sync = 0;
    if (lane) {
        c->s = lane->ops_ctx; /* ops.c checked that the lane serves this device */
    } else {
        c->s = kiln__cuda_stream_for(dev);
        c->sync = c->s && c->s != kiln__cuda_current_stream();
    }
    if (!c->s)
        return KILN_EDEVICE;
    if (c->sync)
        pthread_mutex_lock(&c->s->mu);
    int rc = kiln__cuda_exec_begin(c->s, &c->x);
    if (rc < 0 && c->sync)
        pthread_mutex_unlock(&c->s->mu);
    c->pa = NULL;
    if (rc == 0)
        capture_check(c, 1);
    if (rc == 0 && prof_enabled() && cudaEventCreate(&c->pa) == cudaSuccess)
        cudaEventRecord(c->pa, c->s->stream);
    return rc;
}

static int call_end(call_t *c, int rc)
{
    rc = kiln__cuda_exec_end(&c->x, rc);
    capture_check(c, 0);
    cudaEvent_t pb = NULL;
    if (c->pa && cudaEventCreate(&pb) == cudaSuccess) {
        cudaEventRecord(pb, c->s->stream);
        pthread_mutex_lock(&prof.mu);
        if (!prof.pending)
            prof.pending = malloc(PROF_MAX_PENDING * sizeof *prof.pending);
        if (prof.pending && prof.n_pending == PROF_MAX_PENDING)
            prof_resolve_locked();
        if (prof.pending)
            prof.pending[prof.n_pending++] = (prof_rec_t){c->op, c->pa, pb};
        pthread_mutex_unlock(&prof.mu);
    }
    if (c->sync) {
        cudaError_t e = cudaStreamSynchronize(c->s->stream);
        if (rc == 0 && e != cudaSuccess)
            rc = kiln__cuda_status(e, "cudaStreamSynchronize", __FILE__, __LINE__);
        pthread_mutex_unlock(&c->s->mu);
    }
    return rc;
}

/* Orders the call's stream for reading t (NULL is skipped). */
static int use_in(call_t *c, const kiln_tensor_t *t)
{
    kiln__cuda_block_t *b = t ? kiln__cuda_storage_block(t->storage) : NULL;
    return b ? kiln__cuda_block_use(b, c->s, 0) : 0;
}

static int use_out(call_t *c, const kiln_tensor_t *t)
{
    kiln__cuda_block_t *b = kiln__cuda_storage_block(t->storage);
    return b ? kiln__cuda_block_use(b, c->s, 1) : 0;
}

/* Orders the stream for inputs in[0..n-1] (NULLs skipped) and the output. */
static int call_uses(call_t *c, kiln_tensor_t *out, const kiln_tensor_t *const *in, int n)
{
    int rc = 0;
    for (int i = 0; rc == 0 && i < n; i++)
        rc = use_in(c, in[i]);
    return rc == 0 ? use_out(c, out) : rc;
}

static void desc_of(const kiln_tensor_t *t, kiln__cuda_desc_t *d)
{
    memset(d, 0, sizeof *d);
    if (!t)
        return;
    d->ptr = kiln__tensor_ptr(t);
    d->dtype = t->dtype;
    d->ndim = t->ndim;
    d->numel = t->numel;
    for (int i = 0; i < t->ndim; i++) {
        d->shape[i] = t->shape[i];
        d->strides[i] = t->strides[i];
    }
}

/* t as an operand of out's broadcast shape: aligned at the end, stride 0 where t has
 * size 1 or no dimension. */
static void desc_bcast(const kiln_tensor_t *t, const kiln_tensor_t *out, kiln__cuda_desc_t *d)
{
    desc_of(t, d);
    int lead = out->ndim - t->ndim;
    d->ndim = out->ndim;
    d->numel = out->numel;
    for (int i = 0; i < out->ndim; i++) {
        int j = i - lead;
        d->shape[i] = out->shape[i];
        d->strides[i] = (j < 0 || t->shape[j] == 1) ? 0 : t->strides[j];
    }
}

/* The common shape of an op call: begin, order, run, end. RUN is an expression using
 * `c.x` and the descriptors set up before it. */
#define CALL(lane, out, ins, nin, RUN)                                                        \
    do {                                                                                      \
        call_t c;                                                                             \
        c.op = __func__ + sizeof "kiln__cuda_op_" - 1;                                        \
        int rc_ = call_begin((lane), (out), &c);                                              \
        if (rc_ < 0)                                                                          \
            return rc_;                                                                       \
        rc_ = call_uses(&c, (out), (ins), (nin));                                             \
        if (rc_ == 0)                                                                         \
            rc_ = (RUN);                                                                      \
        return call_end(&c, rc_);                                                             \
    } while (0)

/* ---- ops ------------------------------------------------------------------------------ */

int kiln__cuda_op_copy(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x)
{
    kiln__cuda_desc_t d_out, d_x;
    desc_of(out, &d_out);
    desc_of(x, &d_x);
    kiln__cuda_order_dims((kiln__cuda_desc_t *const[]){&d_out, &d_x}, 2);
    const kiln_tensor_t *in[1] = {x};
    CALL(lane, out, in, 1, kiln__cudak_copy(&c.x, &d_out, &d_x));
}

int kiln__cuda_op_binary(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *a,
                         const kiln_tensor_t *b, kiln__op_binary_t op)
{
    kiln__cuda_desc_t d_out, d_a, d_b;
    desc_of(out, &d_out);
    desc_bcast(a, out, &d_a);
    desc_bcast(b, out, &d_b);
    kiln__cuda_order_dims((kiln__cuda_desc_t *const[]){&d_out, &d_a, &d_b}, 3);
    const kiln_tensor_t *in[2] = {a, b};
    CALL(lane, out, in, 2, kiln__cudak_binary(&c.x, &d_out, &d_a, &d_b, (int)op));
}

int kiln__cuda_op_unary(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                        kiln__op_unary_t op, float p0, float p1)
{
    kiln__cuda_desc_t d_out, d_x;
    desc_of(out, &d_out);
    desc_of(x, &d_x);
    kiln__cuda_order_dims((kiln__cuda_desc_t *const[]){&d_out, &d_x}, 2);
    const kiln_tensor_t *in[1] = {x};
    CALL(lane, out, in, 1, kiln__cudak_unary(&c.x, &d_out, &d_x, (int)op, p0, p1));
}

int kiln__cuda_op_geglu(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x)
{
    kiln__cuda_desc_t d_out, d_x;
    desc_of(out, &d_out);
    desc_of(x, &d_x);
    const kiln_tensor_t *in[1] = {x};
    CALL(lane, out, in, 1, kiln__cudak_geglu(&c.x, &d_out, &d_x));
}

int kiln__cuda_op_softmax(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x)
{
    kiln__cuda_desc_t d_out, d_x;
    desc_of(out, &d_out);
    desc_of(x, &d_x);
    const kiln_tensor_t *in[1] = {x};
    CALL(lane, out, in, 1, kiln__cudak_softmax(&c.x, &d_out, &d_x));
}

int kiln__cuda_op_layer_norm(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                             const kiln_tensor_t *w, const kiln_tensor_t *b, float eps)
{
    kiln__cuda_desc_t d_out, d_x, d_w, d_b;
    desc_of(out, &d_out);
    desc_of(x, &d_x);
    desc_of(w, &d_w);
    desc_of(b, &d_b);
    const kiln_tensor_t *in[3] = {x, w, b};
    CALL(lane, out, in, 3,
         kiln__cudak_layer_norm(&c.x, &d_out, &d_x, w ? &d_w : NULL, b ? &d_b : NULL, eps));
}

int kiln__cuda_op_group_norm(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                             const kiln_tensor_t *w, const kiln_tensor_t *b, int groups,
                             float eps, int fuse_silu)
{
    kiln__cuda_desc_t d_out, d_x, d_w, d_b;
    desc_of(out, &d_out);
    desc_of(x, &d_x);
    desc_of(w, &d_w);
    desc_of(b, &d_b);
    const kiln_tensor_t *in[3] = {x, w, b};
    CALL(lane, out, in, 3,
         kiln__cudak_group_norm(&c.x, &d_out, &d_x, w ? &d_w : NULL, b ? &d_b : NULL, groups,
                                eps, fuse_silu));
}

int kiln__cuda_op_matmul(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *a,
                         const kiln_tensor_t *b, int transpose_b)
{
    kiln__cuda_desc_t d_out, d_a, d_b;
    desc_of(out, &d_out);
    desc_of(a, &d_a);
    desc_of(b, &d_b);
    const kiln_tensor_t *in[2] = {a, b};
    CALL(lane, out, in, 2, kiln__cudak_matmul(&c.x, &d_out, &d_a, &d_b, transpose_b));
}

int kiln__cuda_op_linear(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                         const kiln_tensor_t *w, const kiln_tensor_t *b, const kiln_tensor_t *add)
{
    kiln__cuda_desc_t d_out, d_x, d_w, d_b, d_add;
    desc_of(out, &d_out);
    desc_of(x, &d_x);
    desc_of(w, &d_w);
    desc_of(b, &d_b);
    if (add)
        desc_bcast(add, out, &d_add);
    const kiln_tensor_t *in[4] = {x, w, b, add};
    CALL(lane, out, in, 4,
         kiln__cudak_linear(&c.x, &d_out, &d_x, &d_w, b ? &d_b : NULL, add ? &d_add : NULL));
}

int kiln__cuda_op_conv2d(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                         const kiln_tensor_t *w, const kiln_tensor_t *b, const kiln_tensor_t *add,
                         const kiln__conv2d_geom_t *g)
{
    kiln__cuda_desc_t d_out, d_x, d_w, d_b, d_add;
    desc_of(out, &d_out);
    desc_of(x, &d_x);
    desc_of(w, &d_w);
    desc_of(b, &d_b);
    if (add)
        desc_bcast(add, out, &d_add);
    kiln__cuda_conv_geom_t cg = {g->stride_h, g->stride_w,   g->pad_top,
                                 g->pad_left, g->dilation_h, g->dilation_w};
    const kiln_tensor_t *in[4] = {x, w, b, add};
    CALL(lane, out, in, 4,
         kiln__cudak_conv2d(&c.x, &d_out, &d_x, &d_w, b ? &d_b : NULL, add ? &d_add : NULL, &cg));
}

int kiln__cuda_op_attention(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *q,
                            const kiln_tensor_t *k, const kiln_tensor_t *v, int heads,
                            float scale)
{
    kiln__cuda_desc_t d_out, d_q, d_k, d_v;
    desc_of(out, &d_out);
    desc_of(q, &d_q);
    desc_of(k, &d_k);
    desc_of(v, &d_v);
    const kiln_tensor_t *in[3] = {q, k, v};
    CALL(lane, out, in, 3, kiln__cudak_attention(&c.x, &d_out, &d_q, &d_k, &d_v, heads, scale));
}

int kiln__cuda_op_interpolate(struct kiln_lane *lane, kiln_tensor_t *out,
                              const kiln_tensor_t *x, kiln_interp_mode_t mode)
{
    kiln__cuda_desc_t d_out, d_x;
    desc_of(out, &d_out);
    desc_of(x, &d_x);
    const kiln_tensor_t *in[1] = {x};
    CALL(lane, out, in, 1, kiln__cudak_interpolate(&c.x, &d_out, &d_x, (int)mode));
}

int kiln__cuda_op_timestep_embedding(struct kiln_lane *lane, kiln_tensor_t *out,
                                     const kiln_tensor_t *t, float max_period)
{
    kiln__cuda_desc_t d_out, d_t;
    desc_of(out, &d_out);
    desc_of(t, &d_t);
    const kiln_tensor_t *in[1] = {t};
    CALL(lane, out, in, 1, kiln__cudak_timestep_embedding(&c.x, &d_out, &d_t, max_period));
}

int kiln__cuda_op_embedding(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *w,
                            const kiln_tensor_t *ids)
{
    kiln__cuda_desc_t d_out, d_w, d_ids;
    desc_of(out, &d_out);
    desc_of(w, &d_w);
    desc_of(ids, &d_ids);
    const kiln_tensor_t *in[2] = {w, ids};
    CALL(lane, out, in, 2, kiln__cudak_embedding(&c.x, &d_out, &d_w, &d_ids));
}

#endif /* KILN_HAVE_CUDA */
