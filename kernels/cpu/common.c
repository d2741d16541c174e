/* Helpers shared by the CPU kernels: scratch memory, F32 conversion of inputs, broadcast
 * strides, and the strided element walk that the elementwise and copy kernels run on. */
#include <kiln/kiln.h>
#include <string.h>

#include "kernels/cpu/cpu_ops.h"

/* The largest scratch block asked for on this thread (see kiln__cpu_scratch_peak). */
static _Thread_local size_t scratch_peak;

void *kiln__cpu_scratch_alloc(size_t bytes)
{
    if (bytes > scratch_peak)
        scratch_peak = bytes;
    return bytes ? kiln_malloc(bytes) : NULL;
}

void kiln__cpu_scratch_free(void *p)
{
    kiln_free(p);
}

size_t kiln__cpu_scratch_peak(int reset)
{
    size_t v = scratch_peak;
    if (reset)
        scratch_peak = 0;
    return v;
}

int kiln__cpu_as_f32(const kiln_tensor_t *t, int dense, kiln_tensor_t **hold,
                     const kiln_tensor_t **res)
{
    *hold = NULL;
    *res = t;
    if (t->dtype == KILN_DTYPE_F32) {
        if (!dense || kiln_tensor_is_contiguous(t))
            return 0;
        int rc = kiln_tensor_contiguous(t, hold);
        if (rc == 0)
            *res = *hold;
        return rc;
    }
    int rc = kiln_tensor_to_dtype(t, KILN_DTYPE_F32, hold);
    if (rc == 0)
        *res = *hold;
    return rc;
}

void kiln__cpu_bcast_strides(const kiln_tensor_t *t, int ndim, const int64_t *shape,
                             int64_t *strides)
{
    int lead = ndim - t->ndim;
    for (int i = 0; i < ndim; i++) {
        int j = i - lead;
        strides[i] = (j < 0 || t->shape[j] == 1) ? 0 : t->strides[j];
    }
    (void)shape; /* implied by the dispatcher's broadcast check */
}

void kiln__cpu_walk_init(kiln__cpu_walk_t *w, int ndim, const int64_t *shape)
{
    memset(w, 0, sizeof *w);
    w->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        w->shape[i] = shape[i];
}

void kiln__cpu_walk_add(kiln__cpu_walk_t *w, const kiln_tensor_t *t, const int64_t *strides)
{
    int k = w->nops++;
    w->base[k] = t->data;
    w->esize[k] = kiln_dtype_size(t->dtype);
    for (int i = 0; i < w->ndim; i++)
        w->strides[k][i] = strides ? strides[i] : t->strides[i];
}

/* Drops size-1 dimensions and merges an outer dimension into the next inner one when
 * every operand steps over the inner one exactly once per outer step. */
static void walk_coalesce(kiln__cpu_walk_t *w)
{
    int nd = 0;
    for (int i = 0; i < w->ndim; i++) {
        if (w->shape[i] == 1)
            continue;
        if (nd > 0) {
            int merge = 1;
            for (int k = 0; k < w->nops; k++)
                if (w->strides[k][nd - 1] != w->strides[k][i] * w->shape[i])
                    merge = 0;
            if (merge) {
                w->shape[nd - 1] *= w->shape[i];
                for (int k = 0; k < w->nops; k++)
                    w->strides[k][nd - 1] = w->strides[k][i];
                continue;
            }
        }
        w->shape[nd] = w->shape[i];
        for (int k = 0; k < w->nops; k++)
            w->strides[k][nd] = w->strides[k][i];
        nd++;
    }
    if (nd == 0) { /* a scalar or all-ones shape: one run of one element */
        w->shape[0] = 1;
        for (int k = 0; k < w->nops; k++)
            w->strides[k][0] = 1;
        nd = 1;
    }
    w->ndim = nd;
}

void kiln__cpu_walk_run(kiln__cpu_walk_t *w, kiln__cpu_run_fn fn, void *ctx)
{
    for (int i = 0; i < w->ndim; i++)
        if (w->shape[i] == 0)
            return;
    walk_coalesce(w);
    int inner = w->ndim - 1;
    int64_t idx[KILN_TENSOR_MAX_DIMS] = {0};
    int64_t s[KILN__CPU_WALK_MAX_OPS];
    char *p[KILN__CPU_WALK_MAX_OPS];
    for (int k = 0; k < w->nops; k++) {
        s[k] = w->strides[k][inner];
        p[k] = w->base[k];
    }
    for (;;) {
        fn(ctx, w->shape[inner], p, s);
        /* Advance the outer index like an odometer, moving the pointers along. */
        int d = inner - 1;
        while (d >= 0) {
            idx[d]++;
            for (int k = 0; k < w->nops; k++)
                p[k] += w->strides[k][d] * (int64_t)w->esize[k];
            if (idx[d] < w->shape[d])
                break;
            for (int k = 0; k < w->nops; k++)
                p[k] -= w->strides[k][d] * w->shape[d] * (int64_t)w->esize[k];
            idx[d] = 0;
            d--;
        }
        if (d < 0)
            return;
    }
}
