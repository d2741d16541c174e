/* Tensors: typed n-dimensional arrays with refcounted storage.
 *
 * A tensor has a dtype, a shape (outermost first, e.g. IMAGE is [B, H, W, C]), strides in
 * elements, a device, and a storage that may be shared by views. Tensors are refcounted: a
 * function that returns a new tensor hands the caller one reference, which the caller gives
 * back with kiln_tensor_release().
 *
 *   int64_t shape[4] = {1, 64, 64, 3};
 *   kiln_tensor_t *img = kiln_tensor_new(KILN_DTYPE_F32, 4, shape);   // zero-filled
 *   float *px = kiln_tensor_data(img);
 *   ...
 *   kiln_tensor_t *chw = NULL;
 *   int perm[4] = {0, 3, 1, 2};
 *   if (kiln_tensor_permute(img, perm, &chw) == 0) {    // a view: [1, 3, 64, 64], no copy
 *       ...
 *       kiln_tensor_release(chw);
 *   }
 *   kiln_tensor_release(img);
 *
 * Views (view, reshape, permute, transpose, slice) share the storage of their source: a
 * write through one is visible through the other, and the storage lives until the last
 * tensor that uses it is released. kiln_tensor_data() always points at the first element
 * (index [0, ..., 0]); walk a non-contiguous tensor with kiln_tensor_stride(), or make it
 * dense with kiln_tensor_contiguous() first.
 *
 * Tensors read from model files may be read-only (they view a read-only file mapping);
 * kiln_tensor_is_readonly() says so. Copy or convert one before writing to it.
 *
 * Threads: every function may be called from any thread. Reference counts are atomic; the
 * elements themselves are not synchronized, so two threads writing one tensor race.
 *
 * Node packs reach the ABI 1.0 functions through the host table (see node.h); the names are
 * the same in both cases. The functions below the second marker are engine-side for now. */
#ifndef KILN_TENSOR_H
#define KILN_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_TENSOR_MAX_DIMS 6

/* Device ids: 0 is host memory; accelerators get ids from 1 up, assigned by the device
 * registry. */
#define KILN_DEVICE_CPU 0

typedef enum kiln_dtype {
    KILN_DTYPE_F32 = 0,
    KILN_DTYPE_F16 = 1,
    KILN_DTYPE_BF16 = 2,
    KILN_DTYPE_I32 = 3,
    KILN_DTYPE_I64 = 4,
    KILN_DTYPE_U8 = 5,
    KILN_DTYPE_I8 = 6,
    KILN_DTYPE_F64 = 7,
    KILN_DTYPE_I16 = 8,
    KILN_DTYPE_BOOL = 9,   /* one byte per element, 0 or 1 */
    KILN_DTYPE_COUNT
} kiln_dtype_t;

typedef struct kiln_tensor kiln_tensor_t;

#ifndef KILN_PLUGIN
/* ---- ABI 1.0: also in the host table of node.h ------------------------------------------ */

/* Size in bytes of one element of dtype; 0 for an unknown dtype. */
KILN_API size_t kiln_dtype_size(kiln_dtype_t dtype);

/* Name of a dtype as safetensors spells it ("F32", "F16", "BF16", ...); "?" when unknown. */
KILN_API const char *kiln_dtype_name(kiln_dtype_t dtype);

/* A new contiguous, zero-filled host tensor. Returns NULL when out of memory or when
 * ndim/shape are invalid (ndim outside 0..KILN_TENSOR_MAX_DIMS, a negative dimension,
 * or a byte size that overflows). The caller owns the one reference. Any thread. */
KILN_API kiln_tensor_t *kiln_tensor_new(kiln_dtype_t dtype, int ndim, const int64_t *shape);

/* Reference counting; release frees storage when the last reference goes. Any thread.
 * Both return 0 (int so that the host table never needs a void entry). Releasing NULL
 * does nothing; releasing a tensor more often than it was retained is a bug (it aborts
 * in debug builds). */
KILN_API int kiln_tensor_retain(kiln_tensor_t *t);
KILN_API int kiln_tensor_release(kiln_tensor_t *t);

/* Host pointer to the first element (borrowed: valid while the caller holds a
 * reference). NULL for a tensor whose storage is not host-visible. */
KILN_API void *kiln_tensor_data(const kiln_tensor_t *t);

KILN_API kiln_dtype_t kiln_tensor_dtype(const kiln_tensor_t *t);
KILN_API int kiln_tensor_ndim(const kiln_tensor_t *t);
/* Size of dimension i; negative i counts from the end (-1 is the last). 0 when out of range. */
KILN_API int64_t kiln_tensor_dim(const kiln_tensor_t *t, int i);
KILN_API int64_t kiln_tensor_numel(const kiln_tensor_t *t);
/* Total bytes of the elements (numel * dtype size). */
KILN_API size_t kiln_tensor_nbytes(const kiln_tensor_t *t);

/* ---- engine side only for now: not yet in the host table (appending them there is an
 * ABI minor bump) ----------------------------------------------------------------------- */

/* Parses a safetensors dtype name ("F32", "BF16", "BOOL", ...) into *out. 0, or
 * KILN_ENOTFOUND for a name kiln has no dtype for (F8_E4M3, U16, ...). */
KILN_API int kiln_dtype_from_name(const char *name, kiln_dtype_t *out);

/* 1 for F32, F16, BF16 and F64; 0 otherwise. */
KILN_API int kiln_dtype_is_float(kiln_dtype_t dtype);

/* Stride of dimension i in elements (negative i counts from the end); 0 when out of range. */
KILN_API int64_t kiln_tensor_stride(const kiln_tensor_t *t, int i);

/* The device the storage lives on: KILN_DEVICE_CPU or an accelerator id. */
KILN_API int kiln_tensor_device(const kiln_tensor_t *t);

/* 1 when the elements are dense in row-major order (strides of size-1 dimensions are
 * ignored, as in torch), else 0. */
KILN_API int kiln_tensor_is_contiguous(const kiln_tensor_t *t);

/* 1 when the storage must not be written (a view of a read-only file mapping). */
KILN_API int kiln_tensor_is_readonly(const kiln_tensor_t *t);

/* A view of t's storage with any shape and strides (like torch.as_strided). `offset` is
 * the position of the view's first element in elements, counted from t's first element;
 * `strides` NULL means row-major contiguous. Every element the view can reach must lie in
 * t's storage. On success *out holds a new reference (the caller releases it).
 * Errors: KILN_EINVAL (bad ndim, negative size, stride or offset, NULL argument),
 * KILN_ERANGE (the view reaches outside the storage, or sizes overflow), KILN_ENOMEM. */
KILN_API int kiln_tensor_view(const kiln_tensor_t *t, int ndim, const int64_t *shape,
                              const int64_t *strides, int64_t offset, kiln_tensor_t **out);

/* t with a new shape and the same elements in row-major order. One entry of shape may be
 * -1 and is inferred. The result is a view when t's strides allow it, else a contiguous
 * copy (as torch.reshape). Errors: KILN_EINVAL (element counts differ, several -1, bad
 * ndim), KILN_ENOMEM. */
KILN_API int kiln_tensor_reshape(const kiln_tensor_t *t, int ndim, const int64_t *shape,
                                 kiln_tensor_t **out);

/* A view whose dimension i is t's dimension perm[i] (perm has kiln_tensor_ndim(t)
 * entries, a permutation of 0..ndim-1; negative entries count from the end).
 * Errors: KILN_EINVAL (not a permutation), KILN_ENOMEM. */
KILN_API int kiln_tensor_permute(const kiln_tensor_t *t, const int *perm, kiln_tensor_t **out);

/* A view with dimensions d0 and d1 swapped (negative values count from the end).
 * Errors: KILN_EINVAL, KILN_ENOMEM. */
KILN_API int kiln_tensor_transpose(const kiln_tensor_t *t, int d0, int d1, kiln_tensor_t **out);

/* A view of `length` entries of dimension `dim` starting at `start` (torch.narrow).
 * Negative dim counts from the end. Errors: KILN_EINVAL (bad dim, negative start or
 * length), KILN_ERANGE (start + length beyond the dimension), KILN_ENOMEM. */
KILN_API int kiln_tensor_slice(const kiln_tensor_t *t, int dim, int64_t start, int64_t length,
                               kiln_tensor_t **out);

/* A contiguous tensor with t's elements: t itself (retained) when it already is
 * contiguous, else a new host copy. Errors: KILN_EUNSUPPORTED (not host memory),
 * KILN_ENOMEM. */
KILN_API int kiln_tensor_contiguous(const kiln_tensor_t *t, kiln_tensor_t **out);

/* A new contiguous host tensor holding t's elements converted to dtype. Float targets
 * round to nearest, ties to even (F32 -> F16/BF16 overflow gives infinity, NaN stays
 * NaN); integer and BOOL sources convert to any float dtype. Integer targets accept
 * integer sources only (KILN_ERANGE when a value does not fit; BOOL gets v != 0). Always
 * a copy, also for an equal dtype. Errors: KILN_EUNSUPPORTED (a float to an integer, or
 * not host memory), KILN_ERANGE, KILN_ENOMEM. */
KILN_API int kiln_tensor_to_dtype(const kiln_tensor_t *t, kiln_dtype_t dtype,
                                  kiln_tensor_t **out);

/* Copies src's elements into dst, element by element in index order, converting the dtype
 * as kiln_tensor_to_dtype does. Both may be strided views; their shapes must be equal and
 * their elements must not overlap. Errors: KILN_EINVAL (shapes differ, dst read-only),
 * KILN_EUNSUPPORTED, KILN_ERANGE (dst then holds a partial copy). */
KILN_API int kiln_tensor_copy(kiln_tensor_t *dst, const kiln_tensor_t *src);

/* ---- devices ----------------------------------------------------------------------------
 * CUDA devices get ids 1..kiln_device_count() (id d is CUDA device d - 1). A device
 * tensor's kiln_tensor_data() is NULL; its elements are reached through the ops (which
 * run on the device holding their tensors) and the copies below. Device work is queued
 * on the calling thread's stream: a CUDA lane's own, or else the device's lane-less
 * stream; work on different streams that shares a tensor is ordered by the runtime. */

/* Number of usable CUDA devices: 0 without the CUDA backend or without a GPU. */
KILN_API int kiln_device_count(void);

/* A new contiguous, zero-filled tensor on `device` (KILN_DEVICE_CPU: kiln_tensor_new).
 * On success *out holds the caller's reference. Errors: KILN_EINVAL (bad shape, unknown
 * device), KILN_EDEVICE_OOM, KILN_EDEVICE, KILN_ENOMEM. */
KILN_API int kiln_tensor_new_on(int device, kiln_dtype_t dtype, int ndim, const int64_t *shape,
                                kiln_tensor_t **out);

/* A new contiguous tensor on `device` with t's dtype, shape and elements; t may be any
 * view on any device (host to host makes a plain copy). A host result is complete when
 * this returns; a device result is ordered before later work of the calling thread on
 * that device (host bytes go through pinned staging buffers, so t may change or go as
 * soon as this returns). Errors: as kiln_tensor_new_on. */
KILN_API int kiln_tensor_to_device(const kiln_tensor_t *t, int device, kiln_tensor_t **out);

/* Waits on the host until every write queued to t's storage is done (0 at once for host
 * tensors). KILN_EDEVICE when the device reported a fault. */
KILN_API int kiln_tensor_sync(const kiln_tensor_t *t);
#endif

#ifdef __cplusplus
}
#endif
#endif
