/* Device tensors: storages backed by the caching allocator, the public device API of
 * tensor.h (device count, new tensors on a device, copies between host and devices,
 * waiting for a tensor's writes), and the pinned staging buffers that host<->device
 * copies go through. In a build without the CUDA backend the public functions report
 * no devices. */
#include <kiln/error.h>
#include <kiln/ops.h>
#include <kiln/tensor.h>

#include <stdlib.h>
#include <string.h>

#include "runtime/tensor_int.h"

#ifdef KILN_HAVE_CUDA

#include "cuda/cuda_rt.h"
#include "kernels/cuda/cuda_kern.h"

/* Pinned staging: two buffers per device, so that one fills while the other copies. */
#define STAGE_BYTES ((size_t)16 << 20)

typedef struct stage {
    pthread_mutex_t mu;
    void *buf[2];      /* pinned host memory, owned */
    cudaEvent_t ev[2]; /* the last copy that used each buffer */
    int ready;
} stage_t;

static pthread_once_t stages_once = PTHREAD_ONCE_INIT;
static stage_t *stages;

static void stages_init(void)
{
    int n = kiln__cuda_device_count();
    stages = n > 0 ? calloc((size_t)n, sizeof *stages) : NULL;
    for (int i = 0; stages && i < n; i++)
        pthread_mutex_init(&stages[i].mu, NULL);
}

/* The device's staging buffers, locked; NULL when they cannot be made. */
static stage_t *stage_lock(int device)
{
    pthread_once(&stages_once, stages_init);
    if (!stages)
        return NULL;
    stage_t *st = &stages[device - 1];
    pthread_mutex_lock(&st->mu);
    for (int i = 0; !st->ready && i < 2; i++) {
        if (cudaHostAlloc(&st->buf[i], STAGE_BYTES, cudaHostAllocPortable) != cudaSuccess ||
            cudaEventCreateWithFlags(&st->ev[i], cudaEventDisableTiming) != cudaSuccess) {
            (void)cudaGetLastError();
            pthread_mutex_unlock(&st->mu);
            return NULL;
        }
        if (i == 1)
            st->ready = 1;
    }
    return st;
}

/* Copies n bytes from host memory to device memory on s. The host bytes may be reused as
 * soon as this returns. */
static int upload(kiln__cuda_stream_t *s, void *dst, const void *src, size_t n)
{
    stage_t *st = stage_lock(s->device);
    if (!st)
        return KILN_EDEVICE_OOM;
    int rc = 0;
    for (size_t off = 0, i = 0; rc == 0 && off < n; off += STAGE_BYTES, i ^= 1) {
        size_t len = n - off < STAGE_BYTES ? n - off : STAGE_BYTES;
        cudaError_t e = cudaEventSynchronize(st->ev[i]); /* the buffer's last copy is done */
        if (e == cudaSuccess) {
            memcpy(st->buf[i], (const char *)src + off, len);
            e = cudaMemcpyAsync((char *)dst + off, st->buf[i], len, cudaMemcpyHostToDevice,
                                s->stream);
        }
        if (e == cudaSuccess)
            e = cudaEventRecord(st->ev[i], s->stream);
        rc = kiln__cuda_status(e, "upload", __FILE__, __LINE__);
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

/* Copies n bytes from device memory to host memory, ordered after the work queued on s;
 * the host bytes are complete when this returns. */
static int download(kiln__cuda_stream_t *s, void *dst, const void *src, size_t n)
{
    stage_t *st = stage_lock(s->device);
    if (!st)
        return KILN_EDEVICE_OOM;
    size_t chunks = (n + STAGE_BYTES - 1) / STAGE_BYTES;
    cudaError_t e = cudaSuccess;
    for (size_t c = 0; e == cudaSuccess && c <= chunks; c++) {
        if (c < chunks) { /* queue chunk c while the host drains chunk c - 1 */
            size_t off = c * STAGE_BYTES, len = n - off < STAGE_BYTES ? n - off : STAGE_BYTES;
            e = cudaMemcpyAsync(st->buf[c & 1], (const char *)src + off, len,
                                cudaMemcpyDeviceToHost, s->stream);
            if (e == cudaSuccess)
                e = cudaEventRecord(st->ev[c & 1], s->stream);
        }
        if (e == cudaSuccess && c > 0) {
            size_t p = c - 1, off = p * STAGE_BYTES;
            size_t len = n - off < STAGE_BYTES ? n - off : STAGE_BYTES;
            e = cudaEventSynchronize(st->ev[p & 1]);
            if (e == cudaSuccess)
                memcpy((char *)dst + off, st->buf[p & 1], len);
        }
    }
    pthread_mutex_unlock(&st->mu);
    return kiln__cuda_status(e, "download", __FILE__, __LINE__);
}

/* ---- storages ------------------------------------------------------------------------ */

static void block_release(void *owner, void *data, size_t bytes)
{
    kiln__cuda_free(owner);
    (void)data;
    (void)bytes;
}

kiln__cuda_block_t *kiln__cuda_storage_block(const kiln__storage_t *s)
{
    return s && s->release_fn == block_release ? s->owner : NULL;
}

int kiln__cuda_tensor_new(kiln__cuda_stream_t *s, kiln_dtype_t dtype, int ndim,
                          const int64_t *shape, kiln_tensor_t **out)
{
    *out = NULL;
    if (!s)
        return KILN_EINVAL;
    int64_t numel = kiln__shape_numel(dtype, ndim, shape);
    if (numel < 0)
        return KILN_EINVAL;
    size_t bytes = (size_t)numel * kiln_dtype_size(dtype);
    kiln__cuda_block_t *b = NULL;
    int rc = kiln__cuda_alloc(s, bytes, &b);
    if (rc < 0)
        return rc;
    kiln__storage_t *st = kiln__storage_new(s->device, b->ptr, bytes, 0, block_release, b);
    if (!st) {
        kiln__cuda_free(b);
        return KILN_ENOMEM;
    }
    rc = kiln__tensor_wrap(st, 0, dtype, ndim, shape, NULL, out);
    kiln__storage_release(st); /* the tensor holds the only reference (or none) */
    return rc;
}

static void desc_of(const kiln_tensor_t *t, kiln__cuda_desc_t *d)
{
    memset(d, 0, sizeof *d);
    d->ptr = kiln__tensor_ptr(t);
    d->dtype = t->dtype;
    d->ndim = t->ndim;
    d->numel = t->numel;
    memcpy(d->shape, t->shape, sizeof d->shape);
    memcpy(d->strides, t->strides, sizeof d->strides);
}

/* A dense copy of device tensor t on stream s: t itself (retained) when contiguous. */
static int dense_on_device(kiln__cuda_stream_t *s, const kiln_tensor_t *t, kiln_tensor_t **out)
{
    if (kiln_tensor_is_contiguous(t)) {
        kiln_tensor_retain((kiln_tensor_t *)t);
        *out = (kiln_tensor_t *)t;
        return 0;
    }
    int rc = kiln__cuda_tensor_new(s, t->dtype, t->ndim, t->shape, out);
    kiln__cuda_exec_t x;
    if (rc == 0)
        rc = kiln__cuda_exec_begin(s, &x);
    if (rc < 0) {
        kiln_tensor_release(*out);
        *out = NULL;
        return rc;
    }
    kiln__cuda_desc_t d_out, d_in;
    desc_of(*out, &d_out);
    desc_of(t, &d_in);
    rc = kiln__cuda_block_use(kiln__cuda_storage_block(t->storage), s, 0);
    if (rc == 0)
        rc = kiln__cuda_block_use(kiln__cuda_storage_block((*out)->storage), s, 1);
    if (rc == 0)
        rc = kiln__cudak_copy(&x, &d_out, &d_in);
    rc = kiln__cuda_exec_end(&x, rc);
    if (rc < 0) {
        kiln_tensor_release(*out);
        *out = NULL;
    }
    return rc;
}

/* ---- public API ---------------------------------------------------------------------- */

int kiln_device_count(void)
{
    return kiln__cuda_device_count();
}

int kiln_tensor_new_on(int device, kiln_dtype_t dtype, int ndim, const int64_t *shape,
                       kiln_tensor_t **out)
{
    if (!out)
        return KILN_EINVAL;
    *out = NULL;
    if (device == KILN_DEVICE_CPU) {
        *out = kiln_tensor_new(dtype, ndim, shape);
        return *out ? 0 : (kiln__shape_numel(dtype, ndim, shape) < 0 ? KILN_EINVAL : KILN_ENOMEM);
    }
    if (!kiln__cuda_device_valid(device))
        return KILN_EINVAL;
    kiln__cuda_stream_t *s = kiln__cuda_stream_for(device);
    int rc = kiln__cuda_tensor_new(s, dtype, ndim, shape, out);
    if (rc < 0)
        return rc;
    kiln__cuda_block_t *b = kiln__cuda_storage_block((*out)->storage);
    rc = kiln__cuda_block_use(b, s, 1);
    if (rc == 0)
        rc = kiln__cuda_status(cudaSetDevice(device - 1), "cudaSetDevice", __FILE__, __LINE__);
    if (rc == 0)
        rc = kiln__cuda_status(cudaMemsetAsync(b->ptr, 0, (*out)->storage->bytes, s->stream),
                               "cudaMemsetAsync", __FILE__, __LINE__);
    if (rc < 0) {
        kiln_tensor_release(*out);
        *out = NULL;
    }
    return rc;
}

/* Host tensor -> new device tensor. */
static int host_to_device(const kiln_tensor_t *t, int device, kiln_tensor_t **out)
{
    kiln_tensor_t *dense = NULL;
    int rc = kiln_tensor_contiguous(t, &dense);
    if (rc < 0)
        return rc;
    kiln__cuda_stream_t *s = kiln__cuda_stream_for(device);
    rc = kiln__cuda_tensor_new(s, t->dtype, t->ndim, t->shape, out);
    if (rc == 0)
        rc = kiln__cuda_block_use(kiln__cuda_storage_block((*out)->storage), s, 1);
    if (rc == 0)
        rc = upload(s, kiln__tensor_ptr(*out), dense->data, kiln_tensor_nbytes(t));
    kiln_tensor_release(dense);
    return rc;
}

/* Device tensor -> new host tensor (complete on return). */
static int device_to_host(const kiln_tensor_t *t, kiln_tensor_t **out)
{
    kiln__cuda_stream_t *s = kiln__cuda_stream_for(t->storage->device);
    kiln_tensor_t *dense = NULL;
    int rc = dense_on_device(s, t, &dense);
    if (rc == 0)
        rc = kiln__cuda_block_use(kiln__cuda_storage_block(dense->storage), s, 0);
    if (rc == 0) {
        *out = kiln__tensor_new_uninit(t->dtype, t->ndim, t->shape);
        rc = *out ? 0 : KILN_ENOMEM;
    }
    if (rc == 0)
        rc = download(s, (*out)->data, kiln__tensor_ptr(dense), kiln_tensor_nbytes(t));
    kiln_tensor_release(dense);
    return rc;
}

/* Device tensor -> new tensor on a device (the same one or another). */
static int device_to_device(const kiln_tensor_t *t, int device, kiln_tensor_t **out)
{
    int src_dev = t->storage->device;
    kiln__cuda_stream_t *s = kiln__cuda_stream_for(src_dev);
    if (device == src_dev) {
        int rc = kiln__cuda_tensor_new(s, t->dtype, t->ndim, t->shape, out);
        if (rc == 0) /* copy through a strided kernel into the fresh dense tensor */
            rc = kiln_op_contiguous(NULL, *out, t);
        return rc;
    }
    kiln_tensor_t *dense = NULL;
    kiln__cuda_stream_t *d = kiln__cuda_stream_for(device);
    int rc = dense_on_device(s, t, &dense);
    if (rc == 0)
        rc = kiln__cuda_block_sync(kiln__cuda_storage_block(dense->storage));
    if (rc == 0)
        rc = kiln__cuda_tensor_new(d, t->dtype, t->ndim, t->shape, out);
    if (rc == 0)
        rc = kiln__cuda_status(cudaMemcpyPeerAsync(kiln__tensor_ptr(*out), device - 1,
                                                   kiln__tensor_ptr(dense), src_dev - 1,
                                                   kiln_tensor_nbytes(t), d->stream),
                               "cudaMemcpyPeerAsync", __FILE__, __LINE__);
    if (rc == 0) /* dense may go back to its own stream's cache once the copy is done */
        rc = kiln__cuda_status(cudaStreamSynchronize(d->stream), "cudaStreamSynchronize",
                               __FILE__, __LINE__);
    kiln_tensor_release(dense);
    return rc;
}

int kiln_tensor_to_device(const kiln_tensor_t *t, int device, kiln_tensor_t **out)
{
    if (!t || !out)
        return KILN_EINVAL;
    *out = NULL;
    int src_dev = t->storage->device;
    if ((device != KILN_DEVICE_CPU && !kiln__cuda_device_valid(device)) ||
        (src_dev != KILN_DEVICE_CPU && !kiln__cuda_storage_block(t->storage)))
        return KILN_EINVAL;
    int rc;
    if (src_dev == KILN_DEVICE_CPU && device == KILN_DEVICE_CPU) {
        *out = kiln__tensor_new_uninit(t->dtype, t->ndim, t->shape);
        rc = *out ? kiln_tensor_copy(*out, t) : KILN_ENOMEM;
    } else if (src_dev == KILN_DEVICE_CPU) {
        rc = host_to_device(t, device, out);
    } else if (device == KILN_DEVICE_CPU) {
        rc = device_to_host(t, out);
    } else {
        rc = device_to_device(t, device, out);
    }
    if (rc < 0) {
        kiln_tensor_release(*out);
        *out = NULL;
    }
    return rc;
}

int kiln_tensor_sync(const kiln_tensor_t *t)
{
    if (!t)
        return KILN_EINVAL;
    kiln__cuda_block_t *b = kiln__cuda_storage_block(t->storage);
    return b ? kiln__cuda_block_sync(b) : 0;
}

#else /* no CUDA backend: no devices */

int kiln_device_count(void)
{
    return 0;
}

int kiln_tensor_new_on(int device, kiln_dtype_t dtype, int ndim, const int64_t *shape,
                       kiln_tensor_t **out)
{
    if (!out)
        return KILN_EINVAL;
    *out = NULL;
    if (device != KILN_DEVICE_CPU)
        return KILN_EINVAL;
    *out = kiln_tensor_new(dtype, ndim, shape);
    return *out ? 0 : (kiln__shape_numel(dtype, ndim, shape) < 0 ? KILN_EINVAL : KILN_ENOMEM);
}

int kiln_tensor_to_device(const kiln_tensor_t *t, int device, kiln_tensor_t **out)
{
    if (!t || !out)
        return KILN_EINVAL;
    *out = NULL;
    if (device != KILN_DEVICE_CPU || t->storage->device != KILN_DEVICE_CPU)
        return KILN_EINVAL;
    *out = kiln__tensor_new_uninit(t->dtype, t->ndim, t->shape);
    int rc = *out ? kiln_tensor_copy(*out, t) : KILN_ENOMEM;
    if (rc < 0) {
        kiln_tensor_release(*out);
        *out = NULL;
    }
    return rc;
}

int kiln_tensor_sync(const kiln_tensor_t *t)
{
    return t ? 0 : KILN_EINVAL;
}

#endif /* KILN_HAVE_CUDA */
