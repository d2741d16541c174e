/* Engine events to WebSocket messages: each event is forwarded as {"type": name, "data":
 * data} with ComfyUI's routing (§5.4), recorded for history where ComfyUI records it, and
 * accompanied by the progress_state messages newer ComfyUI frontends draw per-node
 * progress from. The engine reports a node's start (executing), its steps (progress)
 * and, for output nodes, its result (executed), but not the end of other nodes, so a
 * node is reported "finished" when it sends executed or when a node that consumes one of
 * its outputs starts: by then it has finished. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/exec_int.h"

void kiln__exec_send(kiln__run_t *r, kiln__send_t send, kiln__msg_kind_t kind,
                     const char *name, const char *data, const char *node)
{
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_puts(&b, "{\"type\": ");
    kiln__srv_json_str(&b, name);
    kiln__sbuf_puts(&b, ", \"data\": ");
    kiln__sbuf_puts(&b, data);
    kiln__sbuf_putc(&b, '}');
    size_t len = 0;
    char *text = kiln__sbuf_take(&b, &len);
    kiln__msg_t *m = kiln__msg_new(send, kind, r->it->client_id, text, len);
    if (m && node && !(m->node = strdup(node))) {
        kiln__msg_free(m);
        m = NULL;
    }
    kiln__outbox_push(r->srv, m);
}

void kiln__exec_record(kiln__run_t *r, const char *name, const char *data)
{
    if (r->any_message)
        kiln__sbuf_puts(&r->messages, ", ");
    r->any_message = true;
    kiln__sbuf_putc(&r->messages, '[');
    kiln__srv_json_str(&r->messages, name);
    kiln__sbuf_puts(&r->messages, ", ");
    kiln__sbuf_puts(&r->messages, data);
    kiln__sbuf_putc(&r->messages, ']');
}

/* ---- progress_state ------------------------------------------------------------------- */

void kiln__run_free_states(kiln__run_t *r)
{
    for (size_t i = 0; i < r->n_states; i++)
        free(r->states[i].id);
    free(r->states);
    r->states = NULL;
    r->n_states = r->cap_states = 0;
}

static kiln__node_state_t *state_of(kiln__run_t *r, const char *id, bool create)
{
    for (size_t i = 0; i < r->n_states; i++)
        if (!strcmp(r->states[i].id, id))
            return &r->states[i];
    if (!create)
        return NULL;
    if (r->n_states == r->cap_states) {
        size_t cap = r->cap_states ? r->cap_states * 2 : 16;
        kiln__node_state_t *s = realloc(r->states, sizeof *s * cap);
        if (!s)
            return NULL;
        r->states = s;
        r->cap_states = cap;
    }
    kiln__node_state_t *s = &r->states[r->n_states];
    if (!(s->id = strdup(id)))
        return NULL;
    r->n_states++;
    strcpy(s->value, "0.0");
    strcpy(s->max, "1.0");
    s->state = "running";
    return s;
}

static void finish_node(kiln__node_state_t *s)
{
    if (!s)
        return;
    s->state = "finished";
    memcpy(s->value, s->max, sizeof s->value);
}

/* Marks the nodes that feed `node` finished (they ran before it could start). */
static void finish_sources(kiln__run_t *r, const char *node)
{
    const kiln__json_t *inputs = kiln__json_get(kiln__json_get(r->prompt, node), "inputs");
    if (!inputs || inputs->type != KILN_JSON_OBJECT)
        return;
    for (const kiln__json_t *in = inputs->child; in; in = in->next) {
        const kiln__json_t *src = kiln__json_at(in, 0);
        if (in->type == KILN_JSON_ARRAY && in->count == 2 && src &&
            src->type == KILN_JSON_STRING)
            finish_node(state_of(r, src->str, false));
    }
}

static void send_progress_state(kiln__run_t *r)
{
    const char *pid = r->it->prompt_id;
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_puts(&b, "{\"prompt_id\": ");
    kiln__srv_json_str(&b, pid);
    kiln__sbuf_puts(&b, ", \"nodes\": {");
    for (size_t i = 0; i < r->n_states; i++) {
        const kiln__node_state_t *s = &r->states[i];
        if (i)
            kiln__sbuf_puts(&b, ", ");
        kiln__srv_json_str(&b, s->id);
        kiln__sbuf_printf(&b, ": {\"value\": %s, \"max\": %s, \"state\": \"%s\", \"node_id\": ",
                          s->value, s->max, s->state);
        kiln__srv_json_str(&b, s->id);
        kiln__sbuf_puts(&b, ", \"prompt_id\": ");
        kiln__srv_json_str(&b, pid);
        kiln__sbuf_puts(&b, ", \"display_node_id\": ");
        kiln__srv_json_str(&b, s->id);
        kiln__sbuf_puts(&b, ", \"parent_node_id\": null, \"real_node_id\": ");
        kiln__srv_json_str(&b, s->id);
        kiln__sbuf_putc(&b, '}');
    }
    kiln__sbuf_puts(&b, "}}");
    if (!b.failed)
        kiln__exec_send(r, KILN_SEND_CLIENT_OR_ALL, KILN_MSG_OTHER, "progress_state", b.data,
                        NULL);
    kiln__sbuf_free(&b);
}

/* ---- events --------------------------------------------------------------------------- */

/* Keeps an executed node's UI output for the history entry. */
static void keep_output(kiln__run_t *r, const kiln_event_t *ev)
{
    kiln__json_t *data = NULL;
    char err[128];
    if (kiln__json_parse(ev->data_json, strlen(ev->data_json), &data, err, sizeof err) != 0)
        return;
    kiln__json_t *out = kiln__json_take(data, "output");
    if (out && out->type != KILN_JSON_NULL && ev->node)
        kiln__json_set(r->outputs, ev->node, out);
    else
        kiln__json_free(out);
    kiln__json_free(data);
}

void kiln__exec_on_event(void *ud, const kiln_event_t *ev)
{
    kiln__run_t *r = ud;
    switch (ev->type) {
    case KILN_EVENT_EXECUTION_START:
    case KILN_EVENT_EXECUTION_CACHED:
    case KILN_EVENT_EXECUTION_SUCCESS:
    case KILN_EVENT_EXECUTION_ERROR:
        kiln__exec_record(r, ev->name, ev->data_json);
        kiln__exec_send(r, KILN_SEND_CLIENT, KILN_MSG_OTHER, ev->name, ev->data_json, NULL);
        break;
    case KILN_EVENT_EXECUTION_INTERRUPTED:
        kiln__exec_record(r, ev->name, ev->data_json);
        kiln__exec_send(r, KILN_SEND_CLIENT_OR_ALL, KILN_MSG_OTHER, ev->name, ev->data_json,
                        NULL);
        break;
    case KILN_EVENT_EXECUTING:
        if (ev->node) {
            finish_sources(r, ev->node);
            state_of(r, ev->node, true);
            send_progress_state(r);
        }
        kiln__exec_send(r, KILN_SEND_CLIENT, KILN_MSG_EXECUTING, ev->name, ev->data_json,
                        ev->node);
        break;
    case KILN_EVENT_PROGRESS: {
        kiln__node_state_t *s = ev->node ? state_of(r, ev->node, true) : NULL;
        if (s) {
            snprintf(s->value, sizeof s->value, "%llu", (unsigned long long)ev->value);
            snprintf(s->max, sizeof s->max, "%llu", (unsigned long long)ev->max);
            send_progress_state(r);
        }
        kiln__exec_send(r, KILN_SEND_CLIENT_OR_ALL, KILN_MSG_OTHER, ev->name, ev->data_json,
                        NULL);
        break;
    }
    case KILN_EVENT_EXECUTED:
        keep_output(r, ev);
        kiln__exec_send(r, KILN_SEND_CLIENT, KILN_MSG_OTHER, ev->name, ev->data_json, NULL);
        if (ev->node) {
            finish_node(state_of(r, ev->node, true));
            send_progress_state(r);
        }
        break;
    }
}
