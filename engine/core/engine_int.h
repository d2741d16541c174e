/* The engine and prompt structs behind kiln.h's opaque handles, shared by engine.c (the
 * embedding API) and the scheduler (engine/sched), which executes prompts on the engine's
 * lanes and cache. */
#ifndef KILN_CORE_ENGINE_INT_H
#define KILN_CORE_ENGINE_INT_H

#include <kiln/kiln.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "cache/cache.h"
#include "graph/graph.h"
#include "plugin/loader.h"
#include "registry/registry.h"
#include "sched/affinity.h"
#include "sched/lane.h"
#include "util/env.h"

struct kiln_engine {
    kiln__env_t env;                  /* owned strings */
    kiln__registry_t *reg;            /* owned */
    kiln__plugins_t *plugins;         /* owned: plugin libraries, closed after reg */
    kiln__lanes_t *lanes;             /* owned */
    kiln__affinity_t *affinity;       /* owned */
    kiln__cache_t *cache;             /* owned */
    pthread_mutex_t exec_mu;          /* held by the prompt executing now */
    atomic_bool interrupt;            /* set by kiln_engine_interrupt, reset per prompt */
    atomic_int executing;             /* prompts inside kiln_engine_execute (waiting or running) */
    atomic_long live_prompts;         /* kiln_prompt_t not yet freed */
    atomic_uint_fast64_t n_executed;  /* execute() calls */
    atomic_uint_fast64_t n_cached;    /* nodes satisfied from the cache */
    void (*log)(void *ud, kiln_log_level_t level, const char *msg); /* (optional) */
    void *log_ud;
};

struct kiln_prompt {
    kiln_engine_t *engine;            /* borrowed */
    kiln__graph_t *graph;             /* owned: validated, constants coerced */
    char *json;                       /* owned: compact JSON of the validated prompt */
    char *python_json;                /* owned: the same as Python's json.dumps (metadata) */
};

/* Runs a validated prompt on the engine (engine/sched/exec.c); kiln_engine_execute's
 * contract. The caller holds nothing; this takes e->exec_mu itself. */
int kiln__exec_prompt(kiln_engine_t *e, kiln_prompt_t *p, const char *prompt_id,
                      const char *extra_data_json, kiln_event_cb cb, void *ud);

#endif
