/* Lanes: where nodes execute. A lane is one (device, stream) pair served by one host
 * worker thread that runs the lane's jobs strictly in submission order. CPU lanes are
 * plain worker threads ("cpu:0", "cpu:1", ...), and together they form the CPU worker pool.
 * A device backend (CUDA) adds its own lanes with kiln__lanes_add: the worker thread then
 * issues the node's device work on the lane's stream, and `ops` lets the backend bind the
 * thread to its device and synchronize the stream. */
#ifndef KILN_SCHED_LANE_H
#define KILN_SCHED_LANE_H

#include <kiln/node.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* A unit of work for a lane. The submitter owns the storage (usually embedded in a larger
 * struct) and keeps it alive until run() has returned; run() may free it. */
typedef struct kiln__lane_job kiln__lane_job_t;
struct kiln__lane_job {
    void (*run)(kiln__lane_job_t *job, kiln_lane_t *lane);
    kiln__lane_job_t *next;      /* queue link (the lane's) */
};

/* Backend hooks of a lane; every slot is optional. */
typedef struct kiln__lane_ops {
    /* (optional) default: nothing. Runs first on the lane's worker thread (cudaSetDevice). */
    int (*thread_init)(void *ctx, kiln_lane_t *lane);
    /* (optional) default: nothing. Waits until the lane's device work is complete. */
    int (*synchronize)(void *ctx, kiln_lane_t *lane);
} kiln__lane_ops_t;

struct kiln_lane {
    char name[32];               /* "cpu:0", "cuda:0:1" (device:stream) */
    int device;                  /* KILN_DEVICE_CPU or an accelerator id */
    int stream;                  /* lane number on its device */
    void *stream_handle;         /* borrowed: the backend's stream, NULL for CPU lanes */
    const kiln__lane_ops_t *ops; /* borrowed: static backend table, NULL for CPU lanes */
    void *ops_ctx;               /* borrowed: passed to ops */
    atomic_int load;             /* jobs queued or running (for least-loaded picks) */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    kiln__lane_job_t *head, *tail; /* borrowed: the submitters' jobs, FIFO */
    bool stop;                   /* the worker exits once the queue is empty */
    bool started;
};

/* The engine's set of lanes. */
typedef struct kiln__lanes {
    kiln_lane_t **lanes;         /* owned */
    size_t n;
    size_t n_cpu;                /* the first n_cpu lanes are the CPU pool */
} kiln__lanes_t;

/* Creates n_cpu CPU lanes (n_cpu >= 1) and starts their worker threads. Returns 0,
 * KILN_EINVAL or KILN_ENOMEM (nothing is left running on failure). */
int kiln__lanes_new(int n_cpu, kiln__lanes_t **out);

/* Adds a device lane named name (at most 31 bytes, unique) and starts its worker. For
 * backends; call before the engine executes anything. 0, KILN_EEXISTS, KILN_EINVAL or
 * KILN_ENOMEM. */
int kiln__lanes_add(kiln__lanes_t *ls, int device, int stream, const char *name,
                    void *stream_handle, const kiln__lane_ops_t *ops, void *ops_ctx,
                    kiln_lane_t **out);

/* Lets every worker finish its queue, joins the threads and frees the set. NULL is
 * accepted. */
void kiln__lanes_free(kiln__lanes_t *ls);

/* The lane with this name, or NULL. */
kiln_lane_t *kiln__lanes_find(const kiln__lanes_t *ls, const char *name);

/* The CPU lane with the fewest queued or running jobs (the lowest index on ties). */
kiln_lane_t *kiln__lanes_least_loaded_cpu(const kiln__lanes_t *ls);

/* Queues job on lane; the worker calls job->run(job, lane) after everything queued
 * before it. Any thread. */
void kiln__lane_submit(kiln_lane_t *lane, kiln__lane_job_t *job);

/* The first lane on an accelerator (in the order added), or NULL when there is none. */
kiln_lane_t *kiln__lanes_first_device(const kiln__lanes_t *ls);

/* Jobs queued or running on the lane now. Any thread. */
int kiln__lane_load(const kiln_lane_t *lane);

#endif
