/* kiln_lane_record_begin/end, kiln_graph_replay, kiln_graph_free (include/kiln/graph.h) on
 * CUDA stream capture. Recording captures the lane's stream in relaxed mode (the ops'
 * host-side bookkeeping, such as cuBLASLt descriptor caches, may call the runtime) and
 * points the stream's allocations at a pool the graph keeps (alloc.c), so the addresses
 * baked into the graph stay the graph's. Without the CUDA backend every entry reports
 * KILN_EUNSUPPORTED. */
#include <stdlib.h>

#include <kiln/error.h>
#include <kiln/graph.h>
#include <kiln/node.h>

#include "sched/lane.h"

#ifdef KILN_HAVE_CUDA
#include "cuda/cuda_rt.h"

struct kiln_graph {
    kiln__cuda_stream_t *s;
    cudaGraphExec_t exec;
    kiln__cuda_pool_t *pool;
};

/* The stream the ops issue to for lane (see dispatch.c's call_begin), or NULL. */
static kiln__cuda_stream_t *stream_of_lane(struct kiln_lane *lane)
{
    if (lane)
        return lane->device != KILN_DEVICE_CPU ? lane->ops_ctx : NULL;
    return kiln__cuda_current_stream();
}

int kiln_lane_record_begin(struct kiln_lane *lane)
{
    kiln__cuda_stream_t *s = stream_of_lane(lane);
    if (!s)
        return KILN_EUNSUPPORTED;
    if (s->pool)
        return KILN_EINVAL;
    kiln__cuda_pool_t *p = kiln__cuda_pool_new(s->device);
    if (!p)
        return KILN_ENOMEM;
    cudaError_t e = cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeRelaxed);
    if (e != cudaSuccess) {
        kiln__cuda_pool_release(p);
        return kiln__cuda_status(e, "cudaStreamBeginCapture", __FILE__, __LINE__);
    }
    s->pool = p;
    s->capture_broken = NULL;
    return 0;
}

int kiln_lane_record_end(struct kiln_lane *lane, kiln_graph_t **out)
{
    kiln__cuda_stream_t *s = stream_of_lane(lane);
    if (!s || !s->pool || !out)
        return s && s->pool ? KILN_EINVAL : KILN_EUNSUPPORTED;
    *out = NULL;
    kiln__cuda_pool_t *p = s->pool;
    s->pool = NULL;
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(s->stream, &graph);
    cudaGraphExec_t exec = NULL;
    if (e == cudaSuccess && graph)
        e = cudaGraphInstantiate(&exec, graph, 0);
    if (graph)
        cudaGraphDestroy(graph);
    kiln_graph_t *g = e == cudaSuccess && exec ? calloc(1, sizeof *g) : NULL;
    if (!g) { /* an op failed or waited on the host: nothing ran, nothing is kept */
        if (s->capture_broken)
            kiln_logf(KILN_LOG_ERROR, "CUDA: the recording broke %s op %s",
                      s->capture_broken_before ? "before the" : "in the", s->capture_broken);
        int rc = e != cudaSuccess ? kiln__cuda_status(e, "graph capture", __FILE__, __LINE__)
                                  : (exec ? KILN_ENOMEM : KILN_EDEVICE);
        (void)cudaGetLastError();
        if (exec)
            cudaGraphExecDestroy(exec);
        kiln__cuda_pool_release(p);
        return rc;
    }
    g->s = s;
    g->exec = exec;
    g->pool = p;
    *out = g;
    return 0;
}

int kiln_graph_replay(struct kiln_lane *lane, kiln_graph_t *g)
{
    kiln__cuda_stream_t *s = stream_of_lane(lane);
    if (!g || s != g->s)
        return KILN_EINVAL;
    cudaError_t e = cudaGraphLaunch(g->exec, s->stream);
    return e == cudaSuccess ? 0 : kiln__cuda_status(e, "cudaGraphLaunch", __FILE__, __LINE__);
}

void kiln_graph_free(kiln_graph_t *g)
{
    if (!g)
        return;
    (void)cudaStreamSynchronize(g->s->stream); /* no replay may still use the memory */
    cudaGraphExecDestroy(g->exec);
    kiln__cuda_pool_release(g->pool);
    free(g);
}

#else

int kiln_lane_record_begin(struct kiln_lane *lane)
{
    (void)lane;
    return KILN_EUNSUPPORTED;
}

int kiln_lane_record_end(struct kiln_lane *lane, kiln_graph_t **out)
{
    (void)lane;
    if (out)
        *out = NULL;
    return KILN_EUNSUPPORTED;
}

int kiln_graph_replay(struct kiln_lane *lane, kiln_graph_t *g)
{
    (void)lane;
    (void)g;
    return KILN_EUNSUPPORTED;
}

void kiln_graph_free(kiln_graph_t *g)
{
    (void)g;
}

#endif
