/* The CUDA runtime layer under the tensors and the op library: devices, streams (one per
 * lane, plus one per device for calls made without a lane), the caching stream-aware
 * device allocator, readiness tracking of device storages, and the per-op execution
 * context that the kernels in kernels/cuda run in.
 *
 * Device ids: kiln device id d >= 1 is CUDA ordinal d - 1 (KILN_DEVICE_CPU is 0).
 *
 * Ordering model. Every device storage remembers the stream that last wrote it and the
 * streams that read it. An op on stream S that reads a storage last written on another
 * stream W first makes S wait for an event recorded on W (recorded lazily, when such a
 * reader appears, so work on a single stream pays nothing). A freed block returns to the
 * cache; the stream that allocated it may reuse it at once (stream order keeps the old
 * work first), other streams only after events recorded on every stream that used it
 * have completed. Host code that needs the bytes synchronizes with the last writer.
 *
 * Only compiled into builds with the CUDA backend (KILN_HAVE_CUDA). */
#ifndef KILN_CUDA_RT_H
#define KILN_CUDA_RT_H

#ifdef KILN_HAVE_CUDA

#include <cuda_runtime_api.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "runtime/tensor_int.h"
#include "sched/lane.h"

/* Maps a CUDA status to a kiln error code: allocation failures to KILN_EDEVICE_OOM, every
 * other failure to KILN_EDEVICE (and logs it once with the call's text). */
int kiln__cuda_status(cudaError_t e, const char *what, const char *file, int line);

/* Evaluates a CUDA runtime call; on failure returns the mapped kiln error from the
 * enclosing function. */
#define KILN_CUDA_TRY(call)                                                                   \
    do {                                                                                      \
        cudaError_t kiln_cuda_e_ = (call);                                                    \
        if (kiln_cuda_e_ != cudaSuccess)                                                      \
            return kiln__cuda_status(kiln_cuda_e_, #call, __FILE__, __LINE__);               \
    } while (0)

/* Most streams one device serves (lanes plus the lane-less stream): they index the
 * 64-bit "used on" masks of blocks. */
#define KILN__CUDA_MAX_STREAMS 64

/* One stream with what the ops issued on it need: a cuBLASLt handle and its workspace. */
typedef struct kiln__cuda_stream {
    int device;             /* kiln device id */
    int index;              /* 0..KILN__CUDA_MAX_STREAMS-1 within the device */
    cudaStream_t stream;    /* owned */
    void *lt;               /* owned: cublasLtHandle_t */
    void *workspace;        /* owned: cuBLASLt workspace (device memory) */
    size_t workspace_bytes;
    pthread_mutex_t mu;     /* serializes lane-less calls on the device's default stream */
    void *gemm_cache;       /* owned: cached cuBLASLt algorithm choices (gemm.cu) */
    void *conv_cache;       /* owned: cuDNN handle and cached convolution plans (conv.cu) */
    struct kiln__cuda_pool *pool; /* while a graph records on this stream: its memory */
    const char *capture_broken; /* the op during which (or "before:" op) a recording broke */
    int capture_broken_before;
} kiln__cuda_stream_t;

/* A block of device memory handed out by the caching allocator. */
typedef struct kiln__cuda_block kiln__cuda_block_t;
struct kiln__cuda_block {
    void *ptr;                   /* device address */
    size_t size;                 /* rounded size (the cache's size class) */
    int device;                  /* kiln device id */
    kiln__cuda_stream_t *home;   /* the stream it was allocated on */
    kiln__cuda_stream_t *writer; /* the stream of the last write, NULL when idle */
    uint64_t used_mask;          /* streams (by index) other than home that touched it */
    uint64_t readers;            /* streams (by index) that read it since the last write */
    uint64_t synced;             /* streams (by index) already ordered after the last write */
    cudaEvent_t free_events[4];  /* pending uses when freed with foreign users */
    int n_free_events;
    int foreign;                 /* freed with uses on other streams: wait for the events */
    struct kiln__cuda_pool *pool; /* the recorded graph that keeps it, or NULL */
    int pool_idle;               /* in a pool and free for the pool's next allocation */
    kiln__cuda_block_t *next;    /* the cache's free list */
};

/* Number of usable CUDA devices (0 when there is no driver or GPU). Thread-safe; the
 * first call initializes the device table. */
int kiln__cuda_device_count(void);

/* 1 when id names a usable CUDA device. */
int kiln__cuda_device_valid(int device);

/* The lane-less stream of a device (created on first use), or NULL when the device is not
 * usable or creation failed. */
kiln__cuda_stream_t *kiln__cuda_default_stream(int device);

/* Creates a new stream context on a device (for a lane). 0, KILN_EINVAL (bad device or
 * too many streams), KILN_EDEVICE, KILN_EDEVICE_OOM. */
int kiln__cuda_stream_new(int device, kiln__cuda_stream_t **out);

/* The stream context with this index on a device (see kiln__cuda_stream_t.index), or
 * NULL. */
kiln__cuda_stream_t *kiln__cuda_stream_at(int device, int index);

/* The stream context the calling thread is bound to (set on CUDA lane workers), or NULL. */
kiln__cuda_stream_t *kiln__cuda_current_stream(void);
void kiln__cuda_set_current_stream(kiln__cuda_stream_t *s);

/* The stream context that work for `device` issued from this thread goes to: the thread's
 * own lane stream when it belongs to that device, else the device's lane-less stream. */
kiln__cuda_stream_t *kiln__cuda_stream_for(int device);

/* ---- allocator (alloc.c) -------------------------------------------------------------- */

/* A block of at least `bytes` bytes for use on stream s (never NULL on success). Reuses a
 * cached block when one fits; else cudaMalloc, and on failure empties the cache and tries
 * once more. 0, KILN_EDEVICE_OOM, KILN_EDEVICE, KILN_ENOMEM. Any thread. */
int kiln__cuda_alloc(kiln__cuda_stream_t *s, size_t bytes, kiln__cuda_block_t **out);

/* Gives a block back to the cache (NULL is fine). Work already queued that uses it may
 * still run: see the ordering model above. Any thread. */
void kiln__cuda_free(kiln__cuda_block_t *b);

/* Frees every cached block of the device that no queued work can still use (cudaFree).
 * Returns the bytes released. */
size_t kiln__cuda_empty_cache(int device);

/* Graph memory. While s->pool is set (a graph records on s), kiln__cuda_alloc on s takes
 * the pool's idle blocks or fresh ones, and kiln__cuda_free returns a pool block to its
 * pool, not to the cache: every address the recording used stays the graph's, for every
 * replay. pool_release hands the idle blocks back to the cache and cuts the others loose
 * (they go to the cache when their owners free them); the caller makes sure no replay is
 * still queued. */
typedef struct kiln__cuda_pool kiln__cuda_pool_t;
kiln__cuda_pool_t *kiln__cuda_pool_new(int device);
void kiln__cuda_pool_release(kiln__cuda_pool_t *p);

/* Bytes the device's cache holds: in use (handed out) and cached (free for reuse). */
void kiln__cuda_mem_stats(int device, size_t *in_use, size_t *cached);

/* Makes stream s ready to read block b (waits for its last writer when that is another
 * stream) and notes the use. `write` non-zero marks s as the new writer. Thread-safe. */
int kiln__cuda_block_use(kiln__cuda_block_t *b, kiln__cuda_stream_t *s, int write);

/* Waits on the host until the last write to b is complete (no-op when idle). */
int kiln__cuda_block_sync(kiln__cuda_block_t *b);

/* ---- storages (tensor_cuda.c) --------------------------------------------------------- */

/* The block behind a device storage, or NULL for storages not from the CUDA allocator. */
kiln__cuda_block_t *kiln__cuda_storage_block(const kiln__storage_t *s);

/* A new uninitialized contiguous device tensor allocated for stream s. 0, KILN_EINVAL,
 * KILN_ERANGE, KILN_EDEVICE_OOM, KILN_ENOMEM. */
int kiln__cuda_tensor_new(kiln__cuda_stream_t *s, kiln_dtype_t dtype, int ndim,
                          const int64_t *shape, kiln_tensor_t **out);

/* ---- op execution (dispatch.c) ------------------------------------------------------- */

struct kiln__cuda_exec;

/* Fills an execution context for work on stream s (and makes s's device current on the
 * calling thread). Pair with kiln__cuda_exec_end. */
int kiln__cuda_exec_begin(kiln__cuda_stream_t *s, struct kiln__cuda_exec *x);

/* Gives back the context's scratch blocks and folds launch errors into rc: returns rc
 * when it is an error, else 0 or the KILN_EDEVICE of a failed launch. */
int kiln__cuda_exec_end(struct kiln__cuda_exec *x, int rc);

/* Op profile, on when the environment sets KILN_CUDA_PROFILE=1 or after enable(1): GPU
 * time per op kind (events around each call). report waits for the recorded work and
 * prints a table to f; reset clears the totals. Any thread. */
void kiln__cuda_profile_enable(int on);
void kiln__cuda_profile_reset(void);
void kiln__cuda_profile_report(FILE *f);

/* ---- lanes (device.c) ------------------------------------------------------------------ */

/* Adds `per_device` lanes named "cuda:<ordinal>:<n>" for every CUDA device to ls, each
 * with its own stream, cuBLASLt handle and workspace. Returns the number of lanes added
 * (0 without devices) or a negative KILN_E* code. Call before the engine executes. */
int kiln__cuda_lanes_add(kiln__lanes_t *ls, int per_device);

#endif /* KILN_HAVE_CUDA */
#endif
