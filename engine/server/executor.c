/* The executor thread: pops the queue, runs each prompt with kiln_engine_execute (which
 * blocks until the prompt ends), then writes the history entry, ends the queue item
 * (status broadcast) and sends executing {node: null} to the client, in that order, so
 * that a client told "done" finds the entry in GET /history. POST /free requests are
 * served between prompts. At shutdown the running prompt is interrupted and goes back to
 * the queue (and to the journal) to run after a restart. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/exec_int.h"

/* The output ids of a queued item as a C array (for kiln_prompt_new's targets). */
static int read_targets(const char *outputs_json, kiln__json_t **doc, const char ***ids,
                        size_t *n)
{
    char err[128];
    *ids = NULL;
    *n = 0;
    if (kiln__json_parse(outputs_json, strlen(outputs_json), doc, err, sizeof err) != 0)
        return KILN_EPARSE;
    if ((*doc)->type != KILN_JSON_ARRAY)
        return KILN_EPARSE;
    *ids = calloc((*doc)->count + 1, sizeof **ids);
    if (!*ids)
        return KILN_ENOMEM;
    for (const kiln__json_t *e = (*doc)->child; e; e = e->next)
        if (e->type == KILN_JSON_STRING)
            (*ids)[(*n)++] = e->str;
    return 0;
}

/* A prompt restored from the journal is validated again before it runs: the files and
 * nodes it names may have changed while the server was down. */
static int build_prompt(kiln__srv_t *srv, kiln__qitem_t *it, char **error)
{
    kiln__json_t *doc = NULL;
    const char **ids = NULL;
    size_t n = 0;
    int rc = read_targets(it->outputs_json, &doc, &ids, &n);
    char *body = NULL;
    if (rc == 0)
        rc = kiln_prompt_new(srv->engine, it->prompt_json, strlen(it->prompt_json), ids, n,
                             &it->prompt, &body);
    *error = body && rc != 0 ? strdup(body) : NULL;
    kiln_free(body);
    free(ids);
    kiln__json_free(doc);
    return rc;
}

/* ComfyUI reports a prompt that cannot start as an execution_error; kiln does so too for
 * a restored prompt that no longer validates. */
static void fail_unbuilt(kiln__run_t *r, const char *error)
{
    char ts[32];
    snprintf(ts, sizeof ts, "%lld", (long long)kiln__srv_now_ms());
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_puts(&b, "{\"prompt_id\": ");
    kiln__srv_json_str(&b, r->it->prompt_id);
    kiln__sbuf_printf(&b, ", \"timestamp\": %s}", ts);
    if (!b.failed) {
        kiln__exec_record(r, "execution_start", b.data);
        kiln__exec_send(r, KILN_SEND_CLIENT, KILN_MSG_OTHER, "execution_start", b.data, NULL);
    }
    kiln__sbuf_free(&b);
    kiln__sbuf_puts(&b, "{\"prompt_id\": ");
    kiln__srv_json_str(&b, r->it->prompt_id);
    kiln__sbuf_puts(&b, ", \"node_id\": null, \"node_type\": null, \"executed\": [], "
                        "\"exception_message\": ");
    kiln__sbuf_t msg = KILN_SBUF_INIT;
    kiln__sbuf_printf(&msg, "the restored prompt no longer validates: %s\n",
                      error ? error : "out of memory");
    kiln__srv_json_str(&b, kiln__sbuf_cstr(&msg));
    kiln__sbuf_free(&msg);
    kiln__sbuf_printf(&b, ", \"exception_type\": \"kiln.ValidationError\", \"traceback\": [], "
                          "\"current_inputs\": {}, \"current_outputs\": [], "
                          "\"timestamp\": %s}", ts);
    if (!b.failed) {
        kiln__exec_record(r, "execution_error", b.data);
        kiln__exec_send(r, KILN_SEND_CLIENT, KILN_MSG_OTHER, "execution_error", b.data, NULL);
    }
    kiln__sbuf_free(&b);
}

/* The HistoryEntry of §4.1 as JSON text (malloc'd). */
static char *history_entry(kiln__run_t *r, bool success, size_t *len)
{
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_puts(&b, "{\"prompt\": ");
    kiln__qitem_render(&b, r->it);
    char *outputs = kiln__json_dump(r->outputs, KILN_JSON_COMPACT, NULL);
    kiln__sbuf_puts(&b, ", \"outputs\": ");
    kiln__sbuf_puts(&b, outputs ? outputs : "{}");
    free(outputs);
    kiln__sbuf_printf(&b, ", \"status\": {\"status_str\": \"%s\", \"completed\": %s, "
                          "\"messages\": [",
                      success ? "success" : "error", success ? "true" : "false");
    kiln__sbuf_append(&b, r->messages.data ? r->messages.data : "", r->messages.len);
    kiln__sbuf_puts(&b, "]}, \"meta\": {");
    bool first = true;
    for (const kiln__json_t *o = r->outputs->child; o; o = o->next, first = false) {
        if (!first)
            kiln__sbuf_puts(&b, ", ");
        kiln__srv_json_str(&b, o->key);
        kiln__sbuf_puts(&b, ": {\"node_id\": ");
        kiln__srv_json_str(&b, o->key);
        kiln__sbuf_puts(&b, ", \"display_node\": ");
        kiln__srv_json_str(&b, o->key);
        kiln__sbuf_puts(&b, ", \"parent_node\": null, \"real_node_id\": ");
        kiln__srv_json_str(&b, o->key);
        kiln__sbuf_putc(&b, '}');
    }
    kiln__sbuf_puts(&b, "}}");
    return kiln__sbuf_take(&b, len);
}

static void end_prompt(kiln__run_t *r, bool success)
{
    kiln__srv_t *srv = r->srv;
    kiln__qitem_t *it = r->it;
    size_t len = 0;
    char *entry = history_entry(r, success, &len);
    kiln__history_add(srv->history, it->prompt_id, entry, len);
    /* executing {node: null} follows the status broadcast, which finish pushes. */
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_puts(&b, "{\"node\": null, \"prompt_id\": ");
    kiln__srv_json_str(&b, it->prompt_id);
    kiln__sbuf_putc(&b, '}');
    char *done = kiln__sbuf_take(&b, NULL);
    char *client = it->client_id ? strdup(it->client_id) : NULL;
    kiln__queue_finish(srv->queue, it, false);   /* frees it */
    r->it = NULL;
    if (done && client) {
        kiln__sbuf_t m = KILN_SBUF_INIT;
        kiln__sbuf_puts(&m, "{\"type\": \"executing\", \"data\": ");
        kiln__sbuf_puts(&m, done);
        kiln__sbuf_putc(&m, '}');
        size_t mlen = 0;
        char *text = kiln__sbuf_take(&m, &mlen);
        kiln__outbox_push(srv, kiln__msg_new(KILN_SEND_CLIENT, KILN_MSG_DONE, client, text,
                                             mlen));
    }
    free(done);
    free(client);
}

static void run_item(kiln__srv_t *srv, kiln__qitem_t *it)
{
    kiln__run_t r = {.srv = srv, .it = it, .outputs = kiln__json_new_object()};
    char err[128];
    if (kiln__json_parse(it->prompt_json, strlen(it->prompt_json), &r.prompt, err,
                         sizeof err) != 0)
        r.prompt = NULL;
    int rc = KILN_ENOMEM;
    char *error = NULL;
    if (r.outputs && !it->prompt)
        rc = build_prompt(srv, it, &error);
    if (r.outputs && it->prompt) {
        rc = kiln_engine_execute(srv->engine, it->prompt, it->prompt_id, it->extra_json,
                                 kiln__exec_on_event, &r);
    } else if (r.outputs) {
        fail_unbuilt(&r, error);
    }
    free(error);
    if (rc == KILN_EINTERRUPTED && atomic_load(&srv->stopping)) {
        kiln_logf(KILN_LOG_INFO, "prompt %s interrupted by shutdown; it stays queued",
                  it->prompt_id);
        kiln__queue_finish(srv->queue, it, true);
    } else if (r.outputs) {
        end_prompt(&r, rc == 0);
    } else {
        kiln__queue_finish(srv->queue, it, false);
    }
    kiln__json_free(r.prompt);
    kiln__json_free(r.outputs);
    kiln__sbuf_free(&r.messages);
    kiln__run_free_states(&r);
}

static void *executor_main(void *arg)
{
    kiln__srv_t *srv = arg;
    for (;;) {
        kiln__qitem_t *it = NULL;
        kiln__qwait_t why = kiln__queue_wait(srv->queue, &it);
        if (why == KILN_QWAIT_STOP)
            break;
        if (why == KILN_QWAIT_FREE) {
            kiln_engine_clear_cache(srv->engine);
            continue;
        }
        run_item(srv, it);
    }
    uv_async_send(&srv->exec_done);
    return NULL;
}

int kiln__executor_start(kiln__srv_t *srv)
{
    if (pthread_create(&srv->exec_thread, NULL, executor_main, srv) != 0)
        return KILN_ENOMEM;
    srv->exec_started = true;
    return 0;
}

void kiln__executor_join(kiln__srv_t *srv)
{
    if (!srv->exec_started)
        return;
    pthread_join(srv->exec_thread, NULL);
    srv->exec_started = false;
}
