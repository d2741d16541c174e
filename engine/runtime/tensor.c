/* Host tensors: contiguous storage with an atomic refcount. */
#include <kiln/tensor.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/tensor_int.h"

size_t kiln_dtype_size(kiln_dtype_t dtype)
{
    switch (dtype) {
    case KILN_DTYPE_F32: case KILN_DTYPE_I32: return 4;
    case KILN_DTYPE_F16: case KILN_DTYPE_BF16: return 2;
    case KILN_DTYPE_I64: case KILN_DTYPE_F64: return 8;
    case KILN_DTYPE_U8: case KILN_DTYPE_I8: return 1;
    default: return 0;
    }
}

const char *kiln_dtype_name(kiln_dtype_t dtype)
{
    static const char *const names[KILN_DTYPE_COUNT] = {
        [KILN_DTYPE_F32] = "F32", [KILN_DTYPE_F16] = "F16", [KILN_DTYPE_BF16] = "BF16",
        [KILN_DTYPE_I32] = "I32", [KILN_DTYPE_I64] = "I64", [KILN_DTYPE_U8] = "U8",
        [KILN_DTYPE_I8] = "I8",   [KILN_DTYPE_F64] = "F64"};
    return (unsigned)dtype < KILN_DTYPE_COUNT ? names[dtype] : "?";
}

kiln_tensor_t *kiln_tensor_new(kiln_dtype_t dtype, int ndim, const int64_t *shape)
{
    size_t esize = kiln_dtype_size(dtype);
    if (!esize || ndim < 0 || ndim > KILN_TENSOR_MAX_DIMS || (ndim > 0 && !shape))
        return NULL;
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return NULL;
        if (shape[i] && numel > (UINT64_MAX / 2) / esize / (uint64_t)shape[i])
            return NULL;
        numel *= (uint64_t)shape[i];
    }
    kiln_tensor_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    size_t bytes = (size_t)(numel * esize);
    t->data = calloc(1, bytes ? bytes : 1);
    if (!t->data) {
        free(t);
        return NULL;
    }
    atomic_init(&t->refcount, 1);
    t->dtype = dtype;
    t->ndim = ndim;
    int64_t stride = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t->shape[i] = shape[i];
        t->strides[i] = stride;
        stride *= shape[i];
    }
    t->numel = (int64_t)numel;
    return t;
}

int kiln_tensor_retain(kiln_tensor_t *t)
{
    if (t)
        atomic_fetch_add(&t->refcount, 1);
    return 0;
}

int kiln_tensor_release(kiln_tensor_t *t)
{
    if (t && atomic_fetch_sub(&t->refcount, 1) == 1) {
        free(t->data);
        free(t);
    }
    return 0;
}

void *kiln_tensor_data(const kiln_tensor_t *t) { return t ? t->data : NULL; }
kiln_dtype_t kiln_tensor_dtype(const kiln_tensor_t *t) { return t->dtype; }
int kiln_tensor_ndim(const kiln_tensor_t *t) { return t ? t->ndim : 0; }
int64_t kiln_tensor_numel(const kiln_tensor_t *t) { return t ? t->numel : 0; }

int64_t kiln_tensor_dim(const kiln_tensor_t *t, int i)
{
    if (!t)
        return 0;
    if (i < 0)
        i += t->ndim;
    return i >= 0 && i < t->ndim ? t->shape[i] : 0;
}

size_t kiln_tensor_nbytes(const kiln_tensor_t *t)
{
    return t ? (size_t)t->numel * kiln_dtype_size(t->dtype) : 0;
}
