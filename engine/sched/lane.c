/* Lane worker threads: each lane runs its FIFO of jobs on its own thread, so jobs on one
 * lane are serialized and jobs on different lanes overlap. */
#include "sched/lane.h"

#include <kiln/kiln.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *lane_main(void *arg)
{
    kiln_lane_t *lane = arg;
    if (lane->ops && lane->ops->thread_init)
        lane->ops->thread_init(lane->ops_ctx, lane);
    pthread_mutex_lock(&lane->mu);
    for (;;) {
        while (!lane->head && !lane->stop)
            pthread_cond_wait(&lane->cv, &lane->mu);
        if (!lane->head)
            break; /* stop requested and the queue is drained */
        kiln__lane_job_t *job = lane->head;
        lane->head = job->next;
        if (!lane->head)
            lane->tail = NULL;
        pthread_mutex_unlock(&lane->mu);
        job->next = NULL;
        job->run(job, lane);
        atomic_fetch_sub(&lane->load, 1);
        pthread_mutex_lock(&lane->mu);
    }
    pthread_mutex_unlock(&lane->mu);
    return NULL;
}

/* A lane struct with its thread running, or NULL. */
static kiln_lane_t *lane_start(int device, int stream, const char *name, void *stream_handle,
                               const kiln__lane_ops_t *ops, void *ops_ctx)
{
    kiln_lane_t *lane = calloc(1, sizeof *lane);
    if (!lane)
        return NULL;
    snprintf(lane->name, sizeof lane->name, "%s", name);
    lane->device = device;
    lane->stream = stream;
    lane->stream_handle = stream_handle;
    lane->ops = ops;
    lane->ops_ctx = ops_ctx;
    atomic_init(&lane->load, 0);
    pthread_mutex_init(&lane->mu, NULL);
    pthread_cond_init(&lane->cv, NULL);
    if (pthread_create(&lane->thread, NULL, lane_main, lane) != 0) {
        pthread_mutex_destroy(&lane->mu);
        pthread_cond_destroy(&lane->cv);
        free(lane);
        return NULL;
    }
    lane->started = true;
    return lane;
}

static void lane_stop(kiln_lane_t *lane)
{
    pthread_mutex_lock(&lane->mu);
    lane->stop = true;
    pthread_cond_signal(&lane->cv);
    pthread_mutex_unlock(&lane->mu);
    if (lane->started)
        pthread_join(lane->thread, NULL);
    pthread_mutex_destroy(&lane->mu);
    pthread_cond_destroy(&lane->cv);
    free(lane);
}

static int lanes_append(kiln__lanes_t *ls, kiln_lane_t *lane)
{
    kiln_lane_t **v = realloc(ls->lanes, (ls->n + 1) * sizeof *v);
    if (!v)
        return KILN_ENOMEM;
    ls->lanes = v;
    ls->lanes[ls->n++] = lane;
    return 0;
}

int kiln__lanes_new(int n_cpu, kiln__lanes_t **out)
{
    *out = NULL;
    if (n_cpu < 1 || n_cpu > 1024)
        return KILN_EINVAL;
    kiln__lanes_t *ls = calloc(1, sizeof *ls);
    if (!ls)
        return KILN_ENOMEM;
    for (int i = 0; i < n_cpu; i++) {
        char name[32];
        snprintf(name, sizeof name, "cpu:%d", i);
        kiln_lane_t *lane = lane_start(KILN_DEVICE_CPU, i, name, NULL, NULL, NULL);
        if (!lane || lanes_append(ls, lane) != 0) {
            if (lane)
                lane_stop(lane);
            kiln__lanes_free(ls);
            return KILN_ENOMEM;
        }
    }
    ls->n_cpu = (size_t)n_cpu;
    *out = ls;
    return 0;
}

int kiln__lanes_add(kiln__lanes_t *ls, int device, int stream, const char *name,
                    void *stream_handle, const kiln__lane_ops_t *ops, void *ops_ctx,
                    kiln_lane_t **out)
{
    if (!name || !*name || strlen(name) >= sizeof((kiln_lane_t *)0)->name)
        return KILN_EINVAL;
    if (kiln__lanes_find(ls, name))
        return KILN_EEXISTS;
    kiln_lane_t *lane = lane_start(device, stream, name, stream_handle, ops, ops_ctx);
    if (!lane)
        return KILN_ENOMEM;
    if (lanes_append(ls, lane) != 0) {
        lane_stop(lane);
        return KILN_ENOMEM;
    }
    if (out)
        *out = lane;
    return 0;
}

void kiln__lanes_free(kiln__lanes_t *ls)
{
    if (!ls)
        return;
    for (size_t i = 0; i < ls->n; i++)
        lane_stop(ls->lanes[i]);
    free(ls->lanes);
    free(ls);
}

kiln_lane_t *kiln__lanes_find(const kiln__lanes_t *ls, const char *name)
{
    for (size_t i = 0; i < ls->n; i++)
        if (strcmp(ls->lanes[i]->name, name) == 0)
            return ls->lanes[i];
    return NULL;
}

kiln_lane_t *kiln__lanes_least_loaded_cpu(const kiln__lanes_t *ls)
{
    kiln_lane_t *best = NULL;
    int best_load = 0;
    for (size_t i = 0; i < ls->n_cpu; i++) {
        int load = atomic_load(&ls->lanes[i]->load);
        if (!best || load < best_load) {
            best = ls->lanes[i];
            best_load = load;
        }
    }
    return best;
}

void kiln__lane_submit(kiln_lane_t *lane, kiln__lane_job_t *job)
{
    job->next = NULL;
    atomic_fetch_add(&lane->load, 1);
    pthread_mutex_lock(&lane->mu);
    if (lane->tail)
        lane->tail->next = job;
    else
        lane->head = job;
    lane->tail = job;
    pthread_cond_signal(&lane->cv);
    pthread_mutex_unlock(&lane->mu);
}

int kiln__lane_load(const kiln_lane_t *lane)
{
    return atomic_load(&lane->load);
}

int kiln_lane_device(const kiln_lane_t *lane)
{
    return lane ? lane->device : KILN_DEVICE_CPU;
}

kiln_lane_t *kiln__lanes_first_device(const kiln__lanes_t *ls)
{
    for (size_t i = ls ? ls->n_cpu : 0; ls && i < ls->n; i++)
        if (ls->lanes[i]->device != KILN_DEVICE_CPU)
            return ls->lanes[i];
    return NULL;
}
