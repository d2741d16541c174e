/* The scheduler's private structures, shared by its files: the node call (call.c), the
 * run of one prompt with its event channel (exec.c, events.c), signatures (signature.c)
 * and the plan (plan.c). Nothing outside engine/sched and engine/core includes this. */
#ifndef KILN_SCHED_SCHED_INT_H
#define KILN_SCHED_SCHED_INT_H

#include <kiln/kiln.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "cache/cache.h"
#include "graph/graph.h"
#include "sched/call.h"
#include "sched/lane.h"
#include "util/env.h"

typedef struct kiln__exec kiln__exec_t;

/* ---- calls (call.c) ------------------------------------------------------------------ */

/* One input as a call sees it: a list of values. */
typedef struct kiln__call_input {
    const char *name;           /* borrowed: the graph's input name or the class's hidden input */
    const kiln__vlist_t *list;  /* borrowed: a source's output slot, or &own */
    kiln__vlist_t own;          /* owned: values made for this call (constants, hidden) */
    bool hidden;                /* a hidden input (PROMPT, EXTRA_PNGINFO, UNIQUE_ID) */
} kiln__call_input_t;

struct kiln_call {
    const kiln__graph_node_t *node;  /* borrowed: the prompt graph */
    const kiln__node_class_t *cls;   /* borrowed: registry */
    const kiln__env_t *env;          /* borrowed: engine */
    kiln__exec_t *exec;              /* borrowed: NULL outside execution (hooks) */
    kiln_lane_t *lane;               /* borrowed: NULL outside execution */
    kiln__call_input_t *inputs;      /* owned */
    size_t n_inputs, cap_inputs;
    bool whole_lists;                /* KILN_NODE_INPUT_IS_LIST: one call sees whole lists */
    size_t elem;                     /* element index of a per-element call */
    kiln_value_t **pending;          /* owned: this call's value per non-list output slot */
    kiln__outputs_t *out;            /* owned: the result being accumulated */
    kiln__json_t *ui;                /* owned: {key: [...]} appended by kiln_call_ui_append */
    char *error;                     /* owned: kiln_call_fail's message */
    int fail_code;                   /* the code execute returned (0 until it fails) */
};

/* A call for executing node during exec (inputs added next). NULL on OOM. */
kiln_call_t *kiln__call_new_exec(const kiln__graph_node_t *node, kiln__exec_t *exec,
                                 kiln_lane_t *lane);

/* Adds an input that reads a list owned elsewhere (a source's output slot). */
int kiln__call_add_list(kiln_call_t *call, const char *name, const kiln__vlist_t *list);

/* Adds an input holding one value (the call takes over v's reference, also on failure).
 * hidden marks engine-filled inputs, which current_inputs leaves out. */
int kiln__call_add_value(kiln_call_t *call, const char *name, kiln_value_t *v, bool hidden);

/* Runs the node's execute over its inputs (§6.3 list semantics): once with whole lists
 * for INPUT_IS_LIST classes, else once per element up to the longest input. Checks the
 * interrupt flag before every call. *n_calls receives the number of execute() calls made.
 * Returns 0 (the result is then in call->out), KILN_EINTERRUPTED or the node's error. */
int kiln__call_execute(kiln_call_t *call, uint64_t *n_calls);

/* Takes the finished result out of the call (with the UI moved into it). */
kiln__outputs_t *kiln__call_take_outputs(kiln_call_t *call);

/* The call's inputs as ComfyUI's current_inputs: {name: [values]} with non-primitive
 * values as strings. NULL on OOM. */
kiln__json_t *kiln__call_inputs_json(const kiln_call_t *call);

/* ---- signatures (signature.c) -------------------------------------------------------- */

/* Computes the signature of every node of g into sigs[g->n_nodes], calling each class's
 * is_changed hook (on this thread) with the node's constant inputs. A failing hook, a
 * cycle or a link to a missing node leaves that node's signature, and its descendants',
 * invalid. 0 or KILN_ENOMEM. */
int kiln__sig_compute(const kiln__graph_t *g, const kiln__env_t *env, kiln__sig_t *sigs);

/* True when both are valid and equal. */
bool kiln__sig_equal(const kiln__sig_t *a, const kiln__sig_t *b);

/* ---- plan (plan.c) ------------------------------------------------------------------- */

typedef enum kiln__pstate {
    KILN__PN_UNNEEDED = 0, /* not an ancestor of a requested output: never runs */
    KILN__PN_CACHED,       /* result came from the cache at prompt start */
    KILN__PN_WAITING,      /* needs sources first */
    KILN__PN_READY,        /* in the ready heap */
    KILN__PN_RUNNING,      /* submitted to a lane */
    KILN__PN_DONE,         /* result available */
    KILN__PN_FAILED        /* failed or interrupted */
} kiln__pstate_t;

/* One finished node, posted by a lane worker to the scheduler. Embedded in the node's
 * plan entry, so posting a completion never allocates. */
typedef struct kiln__completion {
    struct kiln__completion *next;
    int idx;
    int rc;                      /* 0, KILN_EINTERRUPTED or the node's error */
    kiln__outputs_t *result;     /* owned until the scheduler takes it: on success */
    char *message;               /* owned until taken: on failure */
    kiln__json_t *inputs;        /* owned until taken: current_inputs on failure */
} kiln__completion_t;

typedef struct kiln__pnode {
    kiln__lane_job_t job;       /* the lane job that runs this node (exec.c); first member */
    kiln__completion_t done;    /* what the worker reports */
    kiln__exec_t *exec;         /* borrowed: set at dispatch */
    int idx;                    /* graph node index */
    kiln__pstate_t state;
    int deps_left;              /* unfinished distinct sources (and alias target) */
    int *consumers;             /* owned: needed, not-cached nodes reading this one */
    int n_consumers;
    int consumers_left;         /* consumers not finished: the result is dropped at 0 */
    int prio;                   /* 0 output, 1 feeds an output, 2 two hops, 3 further */
    int alias_of;               /* -1, or an earlier node with an equal signature */
    bool is_output;
    kiln__outputs_t *result;    /* owned: one reference while needed */
    kiln_lane_t *lane;          /* borrowed: where it ran */
} kiln__pnode_t;

typedef struct kiln__plan {
    size_t n;                   /* graph nodes */
    kiln__pnode_t *nodes;       /* owned: one per graph node, same index */
    int *cached;                /* owned: prompt nodes found in the cache, prompt order */
    size_t n_cached;
    size_t n_todo;              /* needed nodes that must run (or alias) */
} kiln__plan_t;

/* Builds the plan: looks up every node's signature in the cache (all prompt nodes count
 * for execution_cached, as in ComfyUI), marks the needed set (the outputs and,
 * recursively, the sources of needed nodes that are not cached), links consumers, finds
 * in-prompt duplicates (equal signatures run once), and ranks nodes by their distance to
 * an output. 0 or KILN_ENOMEM. */
int kiln__plan_build(const kiln__graph_t *g, const kiln__sig_t *sigs, kiln__cache_t *cache,
                     kiln__plan_t **out);
void kiln__plan_free(kiln__plan_t *p);

/* The ready heap: needed nodes whose sources are done, best first (priority, then prompt
 * order). */
typedef struct kiln__ready {
    int *v;                     /* owned */
    size_t n, cap;
} kiln__ready_t;

int kiln__ready_push(kiln__ready_t *r, const kiln__plan_t *p, int idx);
int kiln__ready_pop(kiln__ready_t *r, const kiln__plan_t *p);  /* -1 when empty */
void kiln__ready_free(kiln__ready_t *r);

/* ---- one prompt's run (exec.c, events.c) --------------------------------------------- */

struct kiln__exec {
    kiln_engine_t *engine;       /* borrowed */
    const kiln__graph_t *g;      /* borrowed: the prompt's */
    kiln__plan_t *plan;          /* borrowed: the run's (workers read source results) */
    const char *prompt_id;       /* borrowed: the caller's */
    const kiln__env_t *env;      /* borrowed: engine */
    atomic_bool *interrupt;      /* borrowed: the engine's flag */
    atomic_uint_fast64_t *n_executed; /* borrowed: the engine's counter */
    /* events */
    kiln_event_cb cb;            /* (optional) */
    void *ud;
    pthread_mutex_t ev_mu;       /* serializes deliveries */
    /* hidden inputs and PNG metadata */
    const char *prompt_compact;  /* borrowed: the prompt's compact JSON (hidden PROMPT) */
    const char *prompt_python;   /* borrowed: json.dumps of the prompt (metadata 0) */
    char *pnginfo_compact;       /* owned: extra_pnginfo as compact JSON, or NULL */
    bool metadata;               /* false with disable_metadata: no entries at all */
    size_t n_pnginfo;
    char **pnginfo_keys;         /* owned: keys of extra_pnginfo (metadata 1..n) */
    char **pnginfo_texts;        /* owned: their values as json.dumps writes them */
    /* completions */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    kiln__completion_t *done_head, *done_tail;
};

/* Event emission (events.c). Each builds the message's data object, delivers it through
 * the callback under ev_mu and returns; OOM drops the event (logged). Any thread. */
void kiln__ev_start(kiln__exec_t *x, kiln_event_type_t type);  /* START or SUCCESS */
void kiln__ev_cached(kiln__exec_t *x, const kiln__plan_t *p);
void kiln__ev_executing(kiln__exec_t *x, const kiln__graph_node_t *n);
void kiln__ev_progress(kiln__exec_t *x, const kiln__graph_node_t *n, uint64_t value,
                       uint64_t max);
/* ui NULL sends "output": null. */
void kiln__ev_executed(kiln__exec_t *x, const kiln__graph_node_t *n, const kiln__json_t *ui);
/* EXECUTION_ERROR (with the final exception_message text, the exception type, the
 * current inputs and the ids cached at prompt start) or EXECUTION_INTERRUPTED. */
void kiln__ev_failed(kiln__exec_t *x, kiln_event_type_t type, const kiln__graph_node_t *n,
                     const kiln__plan_t *p, const int *executed, size_t n_executed,
                     const char *message, const char *exc_type, const kiln__json_t *inputs);

#endif
