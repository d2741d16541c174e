/* Tensors and storages: refcounted headers over refcounted byte blocks. Host storage comes
 * from the pooling allocator; other storages (file mappings, device memory) bring their own
 * release function. Views live in tensor_view.c. */
#include <kiln/error.h>
#include <kiln/tensor.h>

#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/host_pool.h"
#include "runtime/tensor_int.h"

/* ---- dtypes --------------------------------------------------------------------------- */

static const char *const dtype_names[KILN_DTYPE_COUNT] = {
    [KILN_DTYPE_F32] = "F32", [KILN_DTYPE_F16] = "F16", [KILN_DTYPE_BF16] = "BF16",
    [KILN_DTYPE_I32] = "I32", [KILN_DTYPE_I64] = "I64", [KILN_DTYPE_U8] = "U8",
    [KILN_DTYPE_I8] = "I8",   [KILN_DTYPE_F64] = "F64", [KILN_DTYPE_I16] = "I16",
    [KILN_DTYPE_BOOL] = "BOOL"};

size_t kiln_dtype_size(kiln_dtype_t dtype)
{
    switch (dtype) {
    case KILN_DTYPE_F32: case KILN_DTYPE_I32: return 4;
    case KILN_DTYPE_F16: case KILN_DTYPE_BF16: case KILN_DTYPE_I16: return 2;
    case KILN_DTYPE_I64: case KILN_DTYPE_F64: return 8;
    case KILN_DTYPE_U8: case KILN_DTYPE_I8: case KILN_DTYPE_BOOL: return 1;
    default: return 0;
    }
}

const char *kiln_dtype_name(kiln_dtype_t dtype)
{
    return (unsigned)dtype < KILN_DTYPE_COUNT ? dtype_names[dtype] : "?";
}

int kiln_dtype_from_name(const char *name, kiln_dtype_t *out)
{
    for (int i = 0; name && i < KILN_DTYPE_COUNT; i++) {
        if (strcmp(name, dtype_names[i]) == 0) {
            *out = (kiln_dtype_t)i;
            return 0;
        }
    }
    return KILN_ENOTFOUND;
}

int kiln_dtype_is_float(kiln_dtype_t dtype)
{
    return dtype == KILN_DTYPE_F32 || dtype == KILN_DTYPE_F16 || dtype == KILN_DTYPE_BF16 ||
           dtype == KILN_DTYPE_F64;
}

int64_t kiln__shape_numel(kiln_dtype_t dtype, int ndim, const int64_t *shape)
{
    size_t esize = kiln_dtype_size(dtype);
    if (!esize || ndim < 0 || ndim > KILN_TENSOR_MAX_DIMS || (ndim > 0 && !shape))
        return -1;
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || __builtin_mul_overflow(numel, shape[i], &numel))
            return -1;
    }
    /* The byte size must fit too (and leave room for rounding up to a pool class). */
    int64_t bytes;
    if (__builtin_mul_overflow(numel, (int64_t)esize, &bytes) || (uint64_t)bytes > SIZE_MAX / 2)
        return -1;
    return numel;
}

void kiln__shape_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides)
{
    int64_t stride = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = stride;
        stride *= shape[i] > 0 ? shape[i] : 1;
    }
}

/* ---- storage -------------------------------------------------------------------------- */

kiln__storage_t *kiln__storage_new(int device, void *data, size_t bytes, uint32_t flags,
                                   kiln__storage_release_fn release_fn, void *owner)
{
    kiln__storage_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    atomic_init(&s->refcount, 1);
    s->flags = flags;
    s->device = device;
    s->data = data;
    s->bytes = bytes;
    s->release_fn = release_fn;
    s->owner = owner;
    return s;
}

static void pool_release(void *owner, void *data, size_t bytes)
{
    kiln__host_pool_dealloc(owner, data, bytes);
}

kiln__storage_t *kiln__storage_new_host(size_t bytes, int zero)
{
    kiln__host_pool_t *pool = kiln__host_pool_default();
    if (!pool)
        return NULL;
    void *data = kiln__host_pool_alloc(pool, bytes, zero);
    if (!data)
        return NULL;
    kiln__storage_t *s = kiln__storage_new(KILN_DEVICE_CPU, data, bytes, 0, pool_release, pool);
    if (!s)
        kiln__host_pool_dealloc(pool, data, bytes);
    return s;
}

void kiln__storage_retain(kiln__storage_t *s)
{
    if (s && !(s->flags & KILN__STORAGE_IMMORTAL))
        atomic_fetch_add(&s->refcount, 1);
}

void kiln__storage_release(kiln__storage_t *s)
{
    if (!s || (s->flags & KILN__STORAGE_IMMORTAL))
        return;
    int before = atomic_fetch_sub(&s->refcount, 1);
    assert(before > 0 && "storage released more often than retained");
    if (before != 1)
        return;
    if (s->release_fn)
        s->release_fn(s->owner, s->data, s->bytes);
    free(s);
}

/* ---- tensors -------------------------------------------------------------------------- */

/* The byte span [0, end) from the first element that the tensor can reach; -1 on overflow. */
static int64_t reach_bytes(int ndim, const int64_t *shape, const int64_t *strides, size_t esize,
                           int64_t numel)
{
    if (numel == 0)
        return 0;
    int64_t last = 0;   /* offset in elements of the last reachable element */
    for (int i = 0; i < ndim; i++) {
        int64_t step;
        if (__builtin_mul_overflow(shape[i] - 1, strides[i], &step) ||
            __builtin_add_overflow(last, step, &last))
            return -1;
    }
    int64_t end;
    if (__builtin_add_overflow(last, 1, &end) ||
        __builtin_mul_overflow(end, (int64_t)esize, &end))
        return -1;
    return end;
}

int kiln__tensor_wrap(kiln__storage_t *s, size_t offset, kiln_dtype_t dtype, int ndim,
                      const int64_t *shape, const int64_t *strides, kiln_tensor_t **out)
{
    if (!s || !out || !kiln_dtype_size(dtype) || ndim < 0 || ndim > KILN_TENSOR_MAX_DIMS ||
        (ndim > 0 && !shape))
        return KILN_EINVAL;
    size_t esize = kiln_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return KILN_EINVAL;
    }
    int64_t numel = kiln__shape_numel(dtype, ndim, shape);
    if (numel < 0)
        return KILN_ERANGE;
    int64_t st[KILN_TENSOR_MAX_DIMS] = {0};
    if (strides)
        memcpy(st, strides, sizeof(int64_t) * (size_t)ndim);
    else
        kiln__shape_contiguous_strides(ndim, shape, st);
    for (int i = 0; i < ndim; i++) {
        if (st[i] < 0)
            return KILN_EINVAL;
    }
    if (((uintptr_t)s->data + offset) % esize)
        return KILN_EINVAL;
    int64_t reach = reach_bytes(ndim, shape, st, esize, numel);
    if (reach < 0 || offset > s->bytes || (uint64_t)reach > s->bytes - offset)
        return KILN_ERANGE;
    kiln_tensor_t *t = calloc(1, sizeof *t);
    if (!t)
        return KILN_ENOMEM;
    atomic_init(&t->refcount, 1);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->strides[i] = st[i];
    }
    t->numel = numel;
    t->offset = offset;
    t->storage = s;
    t->data = s->device == KILN_DEVICE_CPU ? (char *)s->data + offset : NULL;
    kiln__storage_retain(s);
    *out = t;
    return 0;
}

static kiln_tensor_t *tensor_alloc(kiln_dtype_t dtype, int ndim, const int64_t *shape, int zero)
{
    int64_t numel = kiln__shape_numel(dtype, ndim, shape);
    if (numel < 0)
        return NULL;
    size_t bytes = (size_t)numel * kiln_dtype_size(dtype);
    kiln__storage_t *s = kiln__storage_new_host(bytes, zero);
    if (!s)
        return NULL;
    kiln_tensor_t *t = NULL;
    kiln__tensor_wrap(s, 0, dtype, ndim, shape, NULL, &t);
    kiln__storage_release(s);   /* t holds the only reference now (or none on failure) */
    return t;
}

kiln_tensor_t *kiln_tensor_new(kiln_dtype_t dtype, int ndim, const int64_t *shape)
{
    return tensor_alloc(dtype, ndim, shape, 1);
}

kiln_tensor_t *kiln__tensor_new_uninit(kiln_dtype_t dtype, int ndim, const int64_t *shape)
{
    return tensor_alloc(dtype, ndim, shape, 0);
}

int kiln_tensor_retain(kiln_tensor_t *t)
{
    if (t)
        atomic_fetch_add(&t->refcount, 1);
    return 0;
}

int kiln_tensor_release(kiln_tensor_t *t)
{
    if (!t)
        return 0;
    int before = atomic_fetch_sub(&t->refcount, 1);
    assert(before > 0 && "tensor released more often than retained");
    if (before == 1) {
        kiln__storage_release(t->storage);
        free(t);
    }
    return 0;
}

/* ---- accessors ------------------------------------------------------------------------ */

void *kiln_tensor_data(const kiln_tensor_t *t) { return t ? t->data : NULL; }
kiln_dtype_t kiln_tensor_dtype(const kiln_tensor_t *t) { return t->dtype; }
int kiln_tensor_ndim(const kiln_tensor_t *t) { return t ? t->ndim : 0; }
int64_t kiln_tensor_numel(const kiln_tensor_t *t) { return t ? t->numel : 0; }
int kiln_tensor_device(const kiln_tensor_t *t) { return t ? t->storage->device : 0; }

int kiln_tensor_is_readonly(const kiln_tensor_t *t)
{
    return t && (t->storage->flags & KILN__STORAGE_READONLY) ? 1 : 0;
}

static int dim_index(const kiln_tensor_t *t, int i)
{
    if (i < 0)
        i += t->ndim;
    return i >= 0 && i < t->ndim ? i : -1;
}

int64_t kiln_tensor_dim(const kiln_tensor_t *t, int i)
{
    int d = t ? dim_index(t, i) : -1;
    return d >= 0 ? t->shape[d] : 0;
}

int64_t kiln_tensor_stride(const kiln_tensor_t *t, int i)
{
    int d = t ? dim_index(t, i) : -1;
    return d >= 0 ? t->strides[d] : 0;
}

size_t kiln_tensor_nbytes(const kiln_tensor_t *t)
{
    return t ? (size_t)t->numel * kiln_dtype_size(t->dtype) : 0;
}

int kiln_tensor_is_contiguous(const kiln_tensor_t *t)
{
    if (!t)
        return 0;
    int64_t expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] == 1)
            continue;
        if (t->shape[i] == 0)
            return 1;
        if (t->strides[i] != expect)
            return 0;
        expect *= t->shape[i];
    }
    return 1;
}
