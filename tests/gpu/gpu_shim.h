/* Runs the SD model code (nodes/sd, a built-in pack) on a CUDA device without changing
 * it: the pack reaches tensors and weight files only through its host table
 * (kiln_host_sd), so a copy of that table whose tensor_new allocates on the device and
 * whose weights_get uploads each weight places the whole model there; the ops then
 * dispatch to the CUDA kernels. For the GPU tests and tools/bench/bench_gpu_unet.
 *
 * Limits, by design of this stand-in for device-aware model code: float tensors the pack
 * creates get the shim's activation dtype (F32 for checks, F16 for inference); small 1-D
 * float tensors (the UNet's timestep list, which the pack fills through
 * kiln_tensor_data) live in pinned, mapped host memory that the kernels read directly.
 * Calls made with lane NULL queue on the calling thread's CUDA stream, which gpu_shim_on
 * creates and binds. One shim per process; not thread-safe. */
#ifndef KILN_TESTS_GPU_SHIM_H
#define KILN_TESTS_GPU_SHIM_H

#include <cuda_runtime_api.h>
#include <kiln/node.h>
#include <kiln/tensor.h>
#include <kiln/weights.h>
#include <string.h>

#include "../../nodes/sd/sd_device.h"
#include "cuda/cuda_rt.h"
#include "runtime/tensor_int.h"

/* The sd pack's host table, bound when an engine registers the built-in packs. */
extern const kiln_host_api_t *kiln_host_sd;

/* A weights source the shim serves itself (random weights of a given key list), or NULL
 * to pass calls to the real file. */
typedef struct gpu_shim_weights {
    size_t (*count)(void *ctx);
    const char *(*name)(void *ctx, size_t i);
    int (*info)(void *ctx, const char *name, kiln_dtype_t *dt, int *ndim, int64_t *shape);
    int (*get)(void *ctx, const char *name, kiln_dtype_t dt, kiln_tensor_t **out); /* host */
    void *ctx;
} gpu_shim_weights_t;

#define GPU_SHIM_PINNED_SLOTS 256
#define GPU_SHIM_PINNED_BYTES 4096

static struct gpu_shim {
    kiln_host_api_t api;
    const kiln_host_api_t *orig;
    int device;
    kiln_dtype_t weight_dt; /* float weights are loaded as this dtype */
    kiln_dtype_t act_dt;    /* float tensors the pack creates get this dtype */
    kiln__cuda_stream_t *stream;
    gpu_shim_weights_t *syn; /* NULL: real files */
    void *pinned;            /* GPU_SHIM_PINNED_SLOTS slots, mapped host memory */
    cudaEvent_t slot_ev[GPU_SHIM_PINNED_SLOTS];
    int next_slot;
    size_t uploaded; /* weight bytes placed on the device */
    sd_dev_t prev_dev; /* the calling thread's sd placement before gpu_shim_on */
    int entered;
} gpu_shim;

static void gpu_shim_pinned_release(void *owner, void *data, size_t bytes)
{
    int slot = (int)(intptr_t)owner;
    /* the slot is reused once the work queued so far (which may read it) is done */
    cudaEventRecord(gpu_shim.slot_ev[slot], gpu_shim.stream->stream);
    (void)data;
    (void)bytes;
}

/* A small float tensor in mapped host memory, visible to both sides. */
static kiln_tensor_t *gpu_shim_pinned_tensor(kiln_dtype_t dt, int ndim, const int64_t *shape)
{
    int slot = gpu_shim.next_slot;
    gpu_shim.next_slot = (slot + 1) % GPU_SHIM_PINNED_SLOTS;
    cudaEventSynchronize(gpu_shim.slot_ev[slot]);
    char *p = (char *)gpu_shim.pinned + (size_t)slot * GPU_SHIM_PINNED_BYTES;
    int64_t n = kiln__shape_numel(dt, ndim, shape);
    memset(p, 0, (size_t)n * kiln_dtype_size(dt));
    kiln__storage_t *s = kiln__storage_new(gpu_shim.device, p, GPU_SHIM_PINNED_BYTES, 0,
                                           gpu_shim_pinned_release, (void *)(intptr_t)slot);
    kiln_tensor_t *t = NULL;
    if (s && kiln__tensor_wrap(s, 0, dt, ndim, shape, NULL, &t) == 0)
        t->data = p; /* host-visible: the pack writes it through kiln_tensor_data */
    kiln__storage_release(s);
    return t;
}

static kiln_tensor_t *gpu_shim_tensor_new(kiln_dtype_t dt, int ndim, const int64_t *shape)
{
    int64_t n = kiln__shape_numel(dt, ndim, shape);
    if (n < 0)
        return NULL;
    if (ndim == 1 && dt == KILN_DTYPE_F32 &&
        (size_t)n * sizeof(float) <= GPU_SHIM_PINNED_BYTES)
        return gpu_shim_pinned_tensor(dt, ndim, shape);
    if (kiln_dtype_is_float(dt))
        dt = gpu_shim.act_dt;
    kiln_tensor_t *t = NULL;
    return kiln_tensor_new_on(gpu_shim.device, dt, ndim, shape, &t) == 0 ? t : NULL;
}

static int gpu_shim_weights_get(kiln_weights_t *w, const char *name, kiln_dtype_t dt,
                                kiln_tensor_t **out)
{
    *out = NULL;
    if (kiln_dtype_is_float(dt) && gpu_shim.weight_dt != KILN_DTYPE_COUNT)
        dt = gpu_shim.weight_dt;
    kiln_tensor_t *h = NULL;
    int rc = gpu_shim.syn ? gpu_shim.syn->get(gpu_shim.syn->ctx, name, dt, &h)
                          : gpu_shim.orig->weights_get(w, name, dt, &h);
    if (rc == 0) {
        rc = kiln_tensor_to_device(h, gpu_shim.device, out);
        gpu_shim.uploaded += kiln_tensor_nbytes(h);
    }
    kiln_tensor_release(h);
    return rc;
}

static size_t gpu_shim_weights_count(const kiln_weights_t *w)
{
    return gpu_shim.syn ? gpu_shim.syn->count(gpu_shim.syn->ctx) : gpu_shim.orig->weights_count(w);
}

static const char *gpu_shim_weights_name(const kiln_weights_t *w, size_t i)
{
    return gpu_shim.syn ? gpu_shim.syn->name(gpu_shim.syn->ctx, i)
                        : gpu_shim.orig->weights_name(w, i);
}

static int gpu_shim_weights_info(const kiln_weights_t *w, const char *name, kiln_dtype_t *dt,
                                 int *ndim, int64_t *shape)
{
    return gpu_shim.syn ? gpu_shim.syn->info(gpu_shim.syn->ctx, name, dt, ndim, shape)
                        : gpu_shim.orig->weights_info(w, name, dt, ndim, shape);
}

/* Points the sd pack at the device: weights as weight_dt (KILN_DTYPE_COUNT keeps what the
 * pack asks for), new float tensors as act_dt, weights from syn (NULL: real files).
 * Binds a new stream to the calling thread. 0 or a KILN_E* code. */
static int gpu_shim_on(int device, kiln_dtype_t weight_dt, kiln_dtype_t act_dt,
                       gpu_shim_weights_t *syn)
{
    if (!kiln_host_sd)
        return KILN_EINVAL;
    if (kiln_host_sd != &gpu_shim.api)
        gpu_shim.orig = kiln_host_sd; /* the table of the engine now bound */
    if (!gpu_shim.stream) {
        int rc = kiln__cuda_stream_new(device, &gpu_shim.stream);
        if (rc < 0)
            return rc;
        if (cudaHostAlloc(&gpu_shim.pinned,
                          (size_t)GPU_SHIM_PINNED_SLOTS * GPU_SHIM_PINNED_BYTES,
                          cudaHostAllocMapped | cudaHostAllocPortable) != cudaSuccess)
            return KILN_EDEVICE_OOM;
        for (int i = 0; i < GPU_SHIM_PINNED_SLOTS; i++)
            cudaEventCreateWithFlags(&gpu_shim.slot_ev[i], cudaEventDisableTiming);
    }
    gpu_shim.api = *gpu_shim.orig;
    gpu_shim.api.tensor_new = gpu_shim_tensor_new;
    gpu_shim.api.weights_get = gpu_shim_weights_get;
    gpu_shim.api.weights_count = gpu_shim_weights_count;
    gpu_shim.api.weights_name = gpu_shim_weights_name;
    gpu_shim.api.weights_info = gpu_shim_weights_info;
    gpu_shim.device = device;
    gpu_shim.weight_dt = weight_dt;
    gpu_shim.act_dt = act_dt;
    gpu_shim.syn = syn;
    kiln__cuda_set_current_stream(gpu_shim.stream);
    kiln_host_sd = &gpu_shim.api;
    /* The pack's own placement on the device too (sd_device.h): models loaded now record
     * the device, and their entry points take tensors already there as they are; their
     * activations are channels-last unless KILN_SD_CHANNELS_LAST=0, as in the engine. */
    const char *cl = getenv("KILN_SD_CHANNELS_LAST");
    if (!gpu_shim.entered)
        gpu_shim.prev_dev = sd_dev_enter((sd_dev_t){device, act_dt, !(cl && *cl == '0')});
    gpu_shim.entered = 1;
    return 0;
}

/* Back to the host table the engine bound (the model code runs on the CPU again). */
static void gpu_shim_off(void)
{
    if (gpu_shim.orig)
        kiln_host_sd = gpu_shim.orig;
    kiln__cuda_set_current_stream(NULL);
    if (gpu_shim.entered)
        sd_dev_leave(gpu_shim.prev_dev);
    gpu_shim.entered = 0;
}

#endif
