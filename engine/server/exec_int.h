/* The state of the prompt the executor runs, shared by executor.c (the thread, history
 * entries) and exec_events.c (engine events -> WebSocket messages). Executor thread and
 * the engine threads that deliver events (one at a time), never the loop. */
#ifndef KILN_SERVER_EXEC_INT_H
#define KILN_SERVER_EXEC_INT_H

#include "json/json.h"
#include "server/server_int.h"

/* progress_state's view of one node. */
typedef struct kiln__node_state {
    char *id;                    /* owned */
    char value[24], max[24];     /* as printed: "0.0"/"1.0" at start, then ints */
    const char *state;           /* "running" or "finished" (static) */
} kiln__node_state_t;

typedef struct kiln__run {
    kiln__srv_t *srv;            /* borrowed */
    kiln__qitem_t *it;           /* borrowed: the running item */
    kiln__json_t *prompt;        /* owned: the parsed prompt (to find a node's sources) */
    kiln__json_t *outputs;       /* owned: node id -> UI output, for history */
    kiln__sbuf_t messages;       /* history status.messages items, comma-separated */
    bool any_message;
    kiln__node_state_t *states;  /* owned: non-pending nodes, in start order */
    size_t n_states, cap_states;
} kiln__run_t;

/* The kiln_event_cb passed to kiln_engine_execute with a kiln__run_t as ud. */
void kiln__exec_on_event(void *ud, const kiln_event_t *ev);

/* Pushes {"type": name, "data": data} (data is JSON text) to the outbox. */
void kiln__exec_send(kiln__run_t *r, kiln__send_t send, kiln__msg_kind_t kind,
                     const char *name, const char *data, const char *node);

/* Records [name, data] for history's status.messages. */
void kiln__exec_record(kiln__run_t *r, const char *name, const char *data);

void kiln__run_free_states(kiln__run_t *r);

#endif
