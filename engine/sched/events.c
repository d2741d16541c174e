/* Execution events in ComfyUI's WebSocket shapes (§5.2): each builds the message's data
 * object with the fields in ComfyUI's order, serializes it compactly and hands it to the
 * embedder's callback. One lock serializes deliveries, so the callback sees one event at a
 * time, in the order the engine produced them, whichever lane produced them. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched/sched_int.h"

static const char *const event_names[] = {
    [KILN_EVENT_EXECUTION_START] = "execution_start",
    [KILN_EVENT_EXECUTION_CACHED] = "execution_cached",
    [KILN_EVENT_EXECUTING] = "executing",
    [KILN_EVENT_PROGRESS] = "progress",
    [KILN_EVENT_EXECUTED] = "executed",
    [KILN_EVENT_EXECUTION_SUCCESS] = "execution_success",
    [KILN_EVENT_EXECUTION_ERROR] = "execution_error",
    [KILN_EVENT_EXECUTION_INTERRUPTED] = "execution_interrupted",
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sets object[key] = item; false on OOM (item is freed either way on failure). */
static bool put(kiln__json_t *obj, const char *key, kiln__json_t *item)
{
    return item && kiln__json_set(obj, key, item) == 0;
}

static bool put_str(kiln__json_t *obj, const char *key, const char *s)
{
    return put(obj, key, s ? kiln__json_new_string(s) : kiln__json_new_null());
}

static kiln__json_t *id_array(const kiln__graph_t *g, const int *idx, size_t n)
{
    kiln__json_t *arr = kiln__json_new_array();
    for (size_t i = 0; arr && i < n; i++) {
        kiln__json_t *s = kiln__json_new_string(g->nodes[idx[i]].id);
        if (!s || kiln__json_append(arr, s) != 0) {
            kiln__json_free(s);
            kiln__json_free(arr);
            return NULL;
        }
    }
    return arr;
}

/* Serializes data (consumed) and delivers it. ok false means building data failed. */
static void deliver(kiln__exec_t *x, kiln_event_t *ev, kiln__json_t *data, bool ok)
{
    char *text = ok && data ? kiln__json_dump(data, KILN_JSON_COMPACT, NULL) : NULL;
    kiln__json_free(data);
    if (!text) {
        kiln_logf(KILN_LOG_ERROR, "out of memory: %s event dropped", event_names[ev->type]);
        return;
    }
    ev->name = event_names[ev->type];
    ev->data_json = text;
    ev->prompt_id = x->prompt_id;
    pthread_mutex_lock(&x->ev_mu);
    if (x->cb)
        x->cb(x->ud, ev);
    pthread_mutex_unlock(&x->ev_mu);
    free(text);
}

void kiln__ev_start(kiln__exec_t *x, kiln_event_type_t type)
{
    kiln_event_t ev = {.type = type};
    kiln__json_t *d = kiln__json_new_object();
    bool ok = d && put_str(d, "prompt_id", x->prompt_id) &&
              put(d, "timestamp", kiln__json_new_int(now_ms()));
    deliver(x, &ev, d, ok);
}

void kiln__ev_cached(kiln__exec_t *x, const kiln__plan_t *p)
{
    kiln_event_t ev = {.type = KILN_EVENT_EXECUTION_CACHED, .n_cached = p->n_cached};
    kiln__json_t *d = kiln__json_new_object();
    bool ok = d && put(d, "nodes", id_array(x->g, p->cached, p->n_cached)) &&
              put_str(d, "prompt_id", x->prompt_id) &&
              put(d, "timestamp", kiln__json_new_int(now_ms()));
    deliver(x, &ev, d, ok);
}

void kiln__ev_executing(kiln__exec_t *x, const kiln__graph_node_t *n)
{
    kiln_event_t ev = {.type = KILN_EVENT_EXECUTING, .node = n->id, .node_type = n->class_type};
    kiln__json_t *d = kiln__json_new_object();
    bool ok = d && put_str(d, "node", n->id) && put_str(d, "display_node", n->id) &&
              put_str(d, "prompt_id", x->prompt_id);
    deliver(x, &ev, d, ok);
}

void kiln__ev_progress(kiln__exec_t *x, const kiln__graph_node_t *n, uint64_t value,
                       uint64_t max)
{
    kiln_event_t ev = {.type = KILN_EVENT_PROGRESS, .node = n->id, .node_type = n->class_type,
                       .value = value, .max = max};
    kiln__json_t *d = kiln__json_new_object();
    bool ok = d && put(d, "value", kiln__json_new_u64(value)) &&
              put(d, "max", kiln__json_new_u64(max)) && put_str(d, "prompt_id", x->prompt_id) &&
              put_str(d, "node", n->id);
    deliver(x, &ev, d, ok);
}

void kiln__ev_executed(kiln__exec_t *x, const kiln__graph_node_t *n, const kiln__json_t *ui)
{
    kiln_event_t ev = {.type = KILN_EVENT_EXECUTED, .node = n->id, .node_type = n->class_type};
    kiln__json_t *d = kiln__json_new_object();
    bool ok = d && put_str(d, "node", n->id) && put_str(d, "display_node", n->id) &&
              put(d, "output", ui ? kiln__json_dup(ui) : kiln__json_new_null()) &&
              put_str(d, "prompt_id", x->prompt_id);
    deliver(x, &ev, d, ok);
}

void kiln__ev_failed(kiln__exec_t *x, kiln_event_type_t type, const kiln__graph_node_t *n,
                     const kiln__plan_t *p, const int *executed, size_t n_executed,
                     const char *message, const char *exc_type, const kiln__json_t *inputs)
{
    kiln_event_t ev = {.type = type, .node = n ? n->id : NULL,
                       .node_type = n ? n->class_type : NULL};
    kiln__json_t *d = kiln__json_new_object();
    bool ok = d && put_str(d, "prompt_id", x->prompt_id) &&
              put_str(d, "node_id", n ? n->id : NULL) &&
              put_str(d, "node_type", n ? n->class_type : NULL) &&
              put(d, "executed", id_array(x->g, executed, n_executed));
    if (ok && type == KILN_EVENT_EXECUTION_ERROR) {
        ok = put_str(d, "exception_message", message ? message : "") &&
             put_str(d, "exception_type", exc_type) &&
             put(d, "traceback", kiln__json_new_array()) &&
             put(d, "current_inputs",
                 inputs ? kiln__json_dup(inputs) : kiln__json_new_object()) &&
             put(d, "current_outputs", id_array(x->g, p->cached, p->n_cached));
    }
    ok = ok && put(d, "timestamp", kiln__json_new_int(now_ms()));
    deliver(x, &ev, d, ok);
}
