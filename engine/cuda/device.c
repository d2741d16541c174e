/* CUDA devices and streams: the device table (filled once), stream contexts with their
 * cuBLASLt handle and workspace, the calling thread's bound stream, error mapping, and
 * the CUDA lanes that the scheduler runs device nodes on. */
#ifdef KILN_HAVE_CUDA

#include <cublasLt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kiln/error.h>
#include <kiln/node.h>

#include "cuda/cuda_rt.h"
#include "util/log.h"

/* cuBLASLt workspace per stream: what its heuristics ask for at most on Hopper. */
#define LT_WORKSPACE_BYTES ((size_t)32 << 20)

typedef struct device_slot {
    pthread_mutex_t mu;
    kiln__cuda_stream_t *streams[KILN__CUDA_MAX_STREAMS]; /* owned, for the process */
    int n_streams;
    kiln__cuda_stream_t *lane_less; /* borrowed from streams[] */
} device_slot_t;

static pthread_once_t table_once = PTHREAD_ONCE_INIT;
static int n_devices;
static device_slot_t *slots;

static _Thread_local kiln__cuda_stream_t *current_stream;

int kiln__cuda_status(cudaError_t e, const char *what, const char *file, int line)
{
    if (e == cudaSuccess)
        return 0;
    kiln_logf(KILN_LOG_ERROR, "CUDA: %s failed: %s (%s:%d)", what, cudaGetErrorString(e), file,
              line);
    (void)cudaGetLastError(); /* clear a sticky launch error so the next call is judged alone */
    return e == cudaErrorMemoryAllocation ? KILN_EDEVICE_OOM : KILN_EDEVICE;
}

static void table_init(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n < 0)
        n = 0;
    (void)cudaGetLastError();
    if (n > 0) {
        slots = calloc((size_t)n, sizeof *slots);
        if (!slots)
            n = 0;
    }
    for (int i = 0; i < n; i++)
        pthread_mutex_init(&slots[i].mu, NULL);
    n_devices = n;
}

int kiln__cuda_device_count(void)
{
    pthread_once(&table_once, table_init);
    return n_devices;
}

int kiln__cuda_device_valid(int device)
{
    return device >= 1 && device <= kiln__cuda_device_count();
}

static void stream_destroy(kiln__cuda_stream_t *s)
{
    if (!s)
        return;
    if (s->lt)
        cublasLtDestroy((cublasLtHandle_t)s->lt);
    if (s->workspace)
        cudaFree(s->workspace);
    if (s->stream)
        cudaStreamDestroy(s->stream);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* A new stream context on device (its slot lock held by the caller). */
static int stream_create(int device, int index, kiln__cuda_stream_t **out)
{
    kiln__cuda_stream_t *s = calloc(1, sizeof *s);
    if (!s)
        return KILN_ENOMEM;
    pthread_mutex_init(&s->mu, NULL);
    s->device = device;
    s->index = index;
    int rc = kiln__cuda_status(cudaSetDevice(device - 1), "cudaSetDevice", __FILE__, __LINE__);
    if (rc == 0)
        rc = kiln__cuda_status(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking),
                               "cudaStreamCreate", __FILE__, __LINE__);
    if (rc == 0)
        rc = kiln__cuda_status(cudaMalloc(&s->workspace, LT_WORKSPACE_BYTES), "cudaMalloc",
                               __FILE__, __LINE__);
    if (rc == 0) {
        s->workspace_bytes = LT_WORKSPACE_BYTES;
        cublasLtHandle_t lt = NULL;
        if (cublasLtCreate(&lt) != CUBLAS_STATUS_SUCCESS) {
            kiln_logf(KILN_LOG_ERROR, "CUDA: cublasLtCreate failed");
            rc = KILN_EDEVICE;
        }
        s->lt = lt;
    }
    if (rc != 0) {
        stream_destroy(s);
        return rc;
    }
    *out = s;
    return 0;
}

int kiln__cuda_stream_new(int device, kiln__cuda_stream_t **out)
{
    if (!kiln__cuda_device_valid(device))
        return KILN_EINVAL;
    device_slot_t *d = &slots[device - 1];
    pthread_mutex_lock(&d->mu);
    int rc = KILN_EINVAL;
    if (d->n_streams < KILN__CUDA_MAX_STREAMS) {
        rc = stream_create(device, d->n_streams, out);
        if (rc == 0)
            d->streams[d->n_streams++] = *out;
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}

kiln__cuda_stream_t *kiln__cuda_default_stream(int device)
{
    if (!kiln__cuda_device_valid(device))
        return NULL;
    device_slot_t *d = &slots[device - 1];
    pthread_mutex_lock(&d->mu);
    if (!d->lane_less && d->n_streams < KILN__CUDA_MAX_STREAMS) {
        kiln__cuda_stream_t *s = NULL;
        if (stream_create(device, d->n_streams, &s) == 0) {
            d->streams[d->n_streams++] = s;
            d->lane_less = s;
        }
    }
    kiln__cuda_stream_t *s = d->lane_less;
    pthread_mutex_unlock(&d->mu);
    return s;
}

kiln__cuda_stream_t *kiln__cuda_stream_at(int device, int index)
{
    if (!kiln__cuda_device_valid(device) || index < 0 || index >= KILN__CUDA_MAX_STREAMS)
        return NULL;
    device_slot_t *d = &slots[device - 1];
    pthread_mutex_lock(&d->mu);
    kiln__cuda_stream_t *s = index < d->n_streams ? d->streams[index] : NULL;
    pthread_mutex_unlock(&d->mu);
    return s;
}

kiln__cuda_stream_t *kiln__cuda_current_stream(void)
{
    return current_stream;
}

void kiln__cuda_set_current_stream(kiln__cuda_stream_t *s)
{
    current_stream = s;
}

kiln__cuda_stream_t *kiln__cuda_stream_for(int device)
{
    if (current_stream && current_stream->device == device)
        return current_stream;
    return kiln__cuda_default_stream(device);
}

/* ---- lanes ------------------------------------------------------------------------------ */

static int lane_thread_init(void *ctx, kiln_lane_t *lane)
{
    kiln__cuda_stream_t *s = ctx;
    kiln__cuda_set_current_stream(s);
    KILN_CUDA_TRY(cudaSetDevice(s->device - 1));
    (void)lane;
    return 0;
}

/* Called after every node on the lane. Device work stays queued (readiness travels with
 * the storages), so this only surfaces launch errors; KILN_CUDA_SYNC_NODES=1 makes it
 * wait for the stream, which pins an asynchronous fault on the node that caused it. */
static int lane_synchronize(void *ctx, kiln_lane_t *lane)
{
    kiln__cuda_stream_t *s = ctx;
    static int sync_nodes = -1;
    if (sync_nodes < 0) {
        const char *v = getenv("KILN_CUDA_SYNC_NODES");
        sync_nodes = v && *v == '1';
    }
    if (sync_nodes)
        KILN_CUDA_TRY(cudaStreamSynchronize(s->stream));
    KILN_CUDA_TRY(cudaGetLastError());
    (void)lane;
    return 0;
}

static const kiln__lane_ops_t cuda_lane_ops = {lane_thread_init, lane_synchronize};

int kiln__cuda_lanes_add(kiln__lanes_t *ls, int per_device)
{
    if (!ls || per_device < 1 || per_device >= KILN__CUDA_MAX_STREAMS)
        return KILN_EINVAL;
    int added = 0;
    for (int dev = 1; dev <= kiln__cuda_device_count(); dev++) {
        for (int i = 0; i < per_device; i++) {
            kiln__cuda_stream_t *s = NULL;
            int rc = kiln__cuda_stream_new(dev, &s);
            char name[32];
            snprintf(name, sizeof name, "cuda:%d:%d", dev - 1, i);
            if (rc == 0)
                rc = kiln__lanes_add(ls, dev, i, name, s->stream, &cuda_lane_ops, s, NULL);
            if (rc < 0)
                return rc;
            added++;
        }
    }
    return added;
}

#endif /* KILN_HAVE_CUDA */
