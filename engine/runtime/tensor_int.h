/* The tensor and storage structs, private to the engine and the op library.
 *
 * A storage is a refcounted block of bytes on one device; a tensor is a refcounted header
 * (dtype, shape, strides, byte offset) that holds one reference to its storage. Views are
 * new headers on the same storage. Kernels read the fields directly. */
#ifndef KILN_RUNTIME_TENSOR_INT_H
#define KILN_RUNTIME_TENSOR_INT_H

#include <kiln/tensor.h>
#include <stdatomic.h>
#include <stdint.h>

/* Storage flags. */
enum {
    KILN__STORAGE_IMMORTAL = 1u << 0, /* retain/release never count it nor free it */
    KILN__STORAGE_READONLY = 1u << 1  /* a read-only mapping: writes would fault */
};

/* Called once when the last reference to a storage goes, to give back its bytes. */
typedef void (*kiln__storage_release_fn)(void *owner, void *data, size_t bytes);

typedef struct kiln__storage {
    atomic_int refcount;
    uint32_t flags;                     /* KILN__STORAGE_* */
    int device;                         /* KILN_DEVICE_CPU or an accelerator id */
    void *data;                         /* base address (a device address off the host);
                                           given back through release_fn */
    size_t bytes;                       /* usable bytes from data */
    kiln__storage_release_fn release_fn; /* (optional) default: the bytes are not freed */
    void *owner;                        /* borrowed: passed to release_fn (a pool, a mapping) */
    void *ready;                        /* borrowed: device event that completes the last
                                           write; NULL means the bytes are ready now. Unused:
                                           CUDA storages track readiness in their owner (a
                                           kiln__cuda_block_t, engine/cuda/cuda_rt.h). */
} kiln__storage_t;

struct kiln_tensor {
    atomic_int refcount;
    kiln_dtype_t dtype;
    int ndim;
    int64_t shape[KILN_TENSOR_MAX_DIMS];   /* outermost first; unused entries are 0 */
    int64_t strides[KILN_TENSOR_MAX_DIMS]; /* in elements, never negative */
    int64_t numel;                         /* product of shape (1 for ndim 0) */
    size_t offset;                         /* bytes from storage->data to element [0, ...] */
    kiln__storage_t *storage;              /* owned: one reference */
    void *data;                            /* borrowed: storage->data + offset when the
                                              storage is host memory, else NULL */
};

/* A new storage with one reference over `bytes` bytes at `data` on `device`. When the last
 * reference goes, release_fn(owner, data, bytes) runs (unless release_fn is NULL). Returns
 * NULL when out of memory; the caller then still owns data. Any thread. */
kiln__storage_t *kiln__storage_new(int device, void *data, size_t bytes, uint32_t flags,
                                   kiln__storage_release_fn release_fn, void *owner);

/* A new host storage of `bytes` bytes from the default host pool, zero-filled when `zero`.
 * NULL when out of memory. */
kiln__storage_t *kiln__storage_new_host(size_t bytes, int zero);

/* Refcounting of storages (immortal ones are not counted). Any thread. */
void kiln__storage_retain(kiln__storage_t *s);
void kiln__storage_release(kiln__storage_t *s);

/* A new tensor header over storage s (retained on success): the first element sits `offset`
 * bytes into the storage, `strides` NULL means contiguous. Checks that every reachable
 * element lies inside the storage and that offset is aligned to the element size.
 * Errors: KILN_EINVAL (bad dtype, ndim, negative size or stride, misaligned offset),
 * KILN_ERANGE (outside the storage, overflow), KILN_ENOMEM. */
int kiln__tensor_wrap(kiln__storage_t *s, size_t offset, kiln_dtype_t dtype, int ndim,
                      const int64_t *shape, const int64_t *strides, kiln_tensor_t **out);

/* Like kiln_tensor_new, but the elements are left uninitialized (for results that are
 * written in full right away). NULL when out of memory or when the shape is invalid. */
kiln_tensor_t *kiln__tensor_new_uninit(kiln_dtype_t dtype, int ndim, const int64_t *shape);

/* Number of elements of a shape, or -1 when ndim/shape are invalid or the byte size of
 * dtype elements would overflow (also -1 for an unknown dtype). */
int64_t kiln__shape_numel(kiln_dtype_t dtype, int ndim, const int64_t *shape);

/* Writes row-major contiguous strides (in elements) for shape. */
void kiln__shape_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides);

/* The address of element [0, ...] (a device address for device storage). */
static inline void *kiln__tensor_ptr(const kiln_tensor_t *t)
{
    return (char *)t->storage->data + t->offset;
}

#endif
