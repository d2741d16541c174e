/* Views (view, reshape, permute, transpose, slice) and copies (contiguous, to_dtype, copy).
 * A view is a new header on the same storage; a copy walks both tensors with their strides,
 * after merging dimensions that are dense in both, so a dense copy is one converter call. */
#include <kiln/error.h>
#include <kiln/tensor.h>

#include <string.h>

#include "runtime/convert.h"
#include "runtime/tensor_int.h"

static int dim_index(const kiln_tensor_t *t, int i)
{
    if (i < 0)
        i += t->ndim;
    return i >= 0 && i < t->ndim ? i : -1;
}

int kiln_tensor_view(const kiln_tensor_t *t, int ndim, const int64_t *shape,
                     const int64_t *strides, int64_t offset, kiln_tensor_t **out)
{
    if (!t || !out || offset < 0)
        return KILN_EINVAL;
    int64_t bytes;
    size_t start;
    if (__builtin_mul_overflow(offset, (int64_t)kiln_dtype_size(t->dtype), &bytes) ||
        __builtin_add_overflow(t->offset, (size_t)bytes, &start))
        return KILN_ERANGE;
    return kiln__tensor_wrap(t->storage, start, t->dtype, ndim, shape, strides, out);
}

/* Strides that let a tensor of shape/strides be seen with shape nshape without moving any
 * element (torch's rule: each run of dimensions that is dense within itself may be split
 * or merged freely). Returns 0 when no such strides exist. */
static int reshape_strides(const kiln_tensor_t *t, int nndim, const int64_t *nshape,
                           int64_t *nstrides)
{
    if (t->numel == 0 || t->ndim == 0 || kiln_tensor_is_contiguous(t)) {
        kiln__shape_contiguous_strides(nndim, nshape, nstrides);
        return 1;
    }
    int view_d = nndim - 1;
    int64_t chunk_stride = t->strides[t->ndim - 1];
    int64_t tensor_numel = 1, view_numel = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        tensor_numel *= t->shape[d];
        /* A chunk ends where the next-outer dimension does not continue it densely. */
        if (d == 0 ||
            (t->shape[d - 1] != 1 && t->strides[d - 1] != tensor_numel * chunk_stride)) {
            while (view_d >= 0 && (view_numel < tensor_numel || nshape[view_d] == 1)) {
                nstrides[view_d] = view_numel * chunk_stride;
                view_numel *= nshape[view_d];
                view_d--;
            }
            if (view_numel != tensor_numel)
                return 0;
            if (d > 0) {
                chunk_stride = t->strides[d - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    return view_d == -1;
}

/* Copies shape into resolved, inferring one -1 entry; KILN_EINVAL when impossible. */
static int resolve_shape(const kiln_tensor_t *t, int ndim, const int64_t *shape,
                         int64_t *resolved)
{
    if (ndim < 0 || ndim > KILN_TENSOR_MAX_DIMS || (ndim > 0 && !shape))
        return KILN_EINVAL;
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < ndim; i++) {
        resolved[i] = shape[i];
        if (shape[i] == -1 && infer < 0) {
            infer = i;
            continue;
        }
        if (shape[i] < 0 || __builtin_mul_overflow(known, shape[i], &known))
            return KILN_EINVAL;
    }
    if (infer >= 0) {
        if (known == 0 || t->numel % known)
            return KILN_EINVAL;
        resolved[infer] = t->numel / known;
        known = t->numel;
    }
    return known == t->numel ? 0 : KILN_EINVAL;
}

int kiln_tensor_reshape(const kiln_tensor_t *t, int ndim, const int64_t *shape,
                        kiln_tensor_t **out)
{
    if (!t || !out)
        return KILN_EINVAL;
    int64_t nshape[KILN_TENSOR_MAX_DIMS], nstrides[KILN_TENSOR_MAX_DIMS];
    int rc = resolve_shape(t, ndim, shape, nshape);
    if (rc < 0)
        return rc;
    if (reshape_strides(t, ndim, nshape, nstrides))
        return kiln__tensor_wrap(t->storage, t->offset, t->dtype, ndim, nshape, nstrides, out);
    kiln_tensor_t *dense = NULL;
    rc = kiln_tensor_contiguous(t, &dense);
    if (rc < 0)
        return rc;
    rc = kiln__tensor_wrap(dense->storage, dense->offset, t->dtype, ndim, nshape, NULL, out);
    kiln_tensor_release(dense);
    return rc;
}

int kiln_tensor_permute(const kiln_tensor_t *t, const int *perm, kiln_tensor_t **out)
{
    if (!t || !out || (t->ndim > 0 && !perm))
        return KILN_EINVAL;
    int64_t shape[KILN_TENSOR_MAX_DIMS], strides[KILN_TENSOR_MAX_DIMS];
    int seen[KILN_TENSOR_MAX_DIMS] = {0};
    for (int i = 0; i < t->ndim; i++) {
        int d = dim_index(t, perm[i]);
        if (d < 0 || seen[d]++)
            return KILN_EINVAL;
        shape[i] = t->shape[d];
        strides[i] = t->strides[d];
    }
    return kiln__tensor_wrap(t->storage, t->offset, t->dtype, t->ndim, shape, strides, out);
}

int kiln_tensor_transpose(const kiln_tensor_t *t, int d0, int d1, kiln_tensor_t **out)
{
    if (!t || !out)
        return KILN_EINVAL;
    int a = dim_index(t, d0), b = dim_index(t, d1);
    if (a < 0 || b < 0)
        return KILN_EINVAL;
    int perm[KILN_TENSOR_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++)
        perm[i] = i;
    perm[a] = b;
    perm[b] = a;
    return kiln_tensor_permute(t, perm, out);
}

int kiln_tensor_slice(const kiln_tensor_t *t, int dim, int64_t start, int64_t length,
                      kiln_tensor_t **out)
{
    if (!t || !out)
        return KILN_EINVAL;
    int d = dim_index(t, dim);
    if (d < 0 || start < 0 || length < 0)
        return KILN_EINVAL;
    if (start > t->shape[d] || length > t->shape[d] - start)
        return KILN_ERANGE;
    int64_t shape[KILN_TENSOR_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[d] = length;                                  /* [..., length, ...] */
    /* An empty slice keeps the old first element so it never points past the storage. */
    size_t offset = t->offset;
    if (length > 0)
        offset += (size_t)(start * t->strides[d]) * kiln_dtype_size(t->dtype);
    return kiln__tensor_wrap(t->storage, offset, t->dtype, t->ndim, shape, t->strides, out);
}

/* ---- copies --------------------------------------------------------------------------- */

/* Dimensions of a copy after dropping size-1 dimensions and merging neighbours that are
 * dense in both tensors. */
struct copy_plan {
    int ndim;
    int64_t size[KILN_TENSOR_MAX_DIMS];
    int64_t dstride[KILN_TENSOR_MAX_DIMS];
    int64_t sstride[KILN_TENSOR_MAX_DIMS];
};

static void plan_copy(const kiln_tensor_t *dst, const kiln_tensor_t *src, struct copy_plan *p)
{
    p->ndim = 0;
    for (int i = 0; i < dst->ndim; i++) {
        int64_t n = dst->shape[i], ds = dst->strides[i], ss = src->strides[i];
        if (n == 1)
            continue;
        int k = p->ndim - 1;
        if (k >= 0 && p->dstride[k] == ds * n && p->sstride[k] == ss * n) {
            p->size[k] *= n;
            p->dstride[k] = ds;
            p->sstride[k] = ss;
            continue;
        }
        p->size[p->ndim] = n;
        p->dstride[p->ndim] = ds;
        p->sstride[p->ndim] = ss;
        p->ndim++;
    }
    if (p->ndim == 0) {
        p->size[0] = 1;
        p->dstride[0] = p->sstride[0] = 1;
        p->ndim = 1;
    }
}

int kiln_tensor_copy(kiln_tensor_t *dst, const kiln_tensor_t *src)
{
    if (!dst || !src || dst->ndim != src->ndim || kiln_tensor_is_readonly(dst))
        return KILN_EINVAL;
    if (memcmp(dst->shape, src->shape, sizeof(int64_t) * (size_t)dst->ndim) != 0)
        return KILN_EINVAL;
    if (!dst->data || !src->data)
        return KILN_EUNSUPPORTED;
    int rc = kiln__convert_check(dst->dtype, src->dtype);
    if (rc < 0 || dst->numel == 0)
        return rc;
    struct copy_plan p;
    plan_copy(dst, src, &p);
    size_t des = kiln_dtype_size(dst->dtype), ses = kiln_dtype_size(src->dtype);
    int inner = p.ndim - 1;
    int64_t idx[KILN_TENSOR_MAX_DIMS] = {0};
    int64_t rows = dst->numel / p.size[inner];
    for (int64_t r = 0; r < rows; r++) {
        int64_t doff = 0, soff = 0;
        for (int k = 0; k < inner; k++) {
            doff += idx[k] * p.dstride[k];
            soff += idx[k] * p.sstride[k];
        }
        rc = kiln__convert((char *)dst->data + (size_t)doff * des, dst->dtype, p.dstride[inner],
                           (const char *)src->data + (size_t)soff * ses, src->dtype,
                           p.sstride[inner], p.size[inner]);
        if (rc < 0)
            return rc;
        for (int k = inner - 1; k >= 0 && ++idx[k] == p.size[k]; k--)
            idx[k] = 0;                                 /* odometer over the outer dims */
    }
    return 0;
}

/* A new contiguous host tensor of t's shape and `dtype` holding t's elements. */
static int copy_as(const kiln_tensor_t *t, kiln_dtype_t dtype, kiln_tensor_t **out)
{
    if (!t->data)
        return KILN_EUNSUPPORTED;
    int rc = kiln__convert_check(dtype, t->dtype);
    if (rc < 0)
        return rc;
    kiln_tensor_t *c = kiln__tensor_new_uninit(dtype, t->ndim, t->shape);
    if (!c)
        return KILN_ENOMEM;
    rc = kiln_tensor_copy(c, t);
    if (rc < 0) {
        kiln_tensor_release(c);
        return rc;
    }
    *out = c;
    return 0;
}

int kiln_tensor_contiguous(const kiln_tensor_t *t, kiln_tensor_t **out)
{
    if (!t || !out)
        return KILN_EINVAL;
    if (kiln_tensor_is_contiguous(t)) {
        /* The caller gets a reference of its own; the tensor is not modified. */
        kiln_tensor_retain((kiln_tensor_t *)t);
        *out = (kiln_tensor_t *)t;
        return 0;
    }
    return copy_as(t, t->dtype, out);
}

int kiln_tensor_to_dtype(const kiln_tensor_t *t, kiln_dtype_t dtype, kiln_tensor_t **out)
{
    if (!t || !out)
        return KILN_EINVAL;
    return copy_as(t, dtype, out);
}
