/* POST /prompt and GET /prompt (§1.2-§1.4), and the submission they share with the
 * WebSocket "prompt" message. The semantics are ComfyUI's: the counter is taken before
 * validation (rejected prompts use up a number too), `front` negates it, a client
 * `number` is a float and leaves the counter alone, a client `prompt_id` is kept, a
 * prompt whose outputs partly fail validation is queued with the valid ones and its
 * node_errors in the 200. Deliberate difference: a body that is not JSON answers 400
 * with an invalid_json error (ComfyUI answers a bare 500). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "server/server_int.h"

typedef struct submit {
    kiln__srv_t *srv;
    kiln__json_t *doc;           /* owned: the body */
    kiln__json_t *extra;         /* owned: extra_data */
    kiln__qitem_t *it;           /* owned until queued */
    const char **targets;        /* owned array of borrowed strings */
    size_t n_targets;
    bool has_targets;
} submit_t;

/* {"error": {type, message, details, extra_info: {}}, "node_errors": {}} */
static char *error_body(const char *type, const char *message, const char *details)
{
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_puts(&b, "{\"error\": {\"type\": ");
    kiln__srv_json_str(&b, type);
    kiln__sbuf_puts(&b, ", \"message\": ");
    kiln__srv_json_str(&b, message);
    kiln__sbuf_puts(&b, ", \"details\": ");
    kiln__srv_json_str(&b, details);
    kiln__sbuf_puts(&b, ", \"extra_info\": {}}, \"node_errors\": {}}");
    return kiln__sbuf_take(&b, NULL);
}

/* Python truthiness, for `front`. */
static bool truthy(const kiln__json_t *j)
{
    switch (j->type) {
    case KILN_JSON_BOOL: return j->b;
    case KILN_JSON_INT: return j->is_u64 ? j->u != 0 : j->i != 0;
    case KILN_JSON_NUMBER: return j->d != 0;
    case KILN_JSON_STRING: return j->len > 0;
    case KILN_JSON_ARRAY:
    case KILN_JSON_OBJECT: return j->count > 0;
    default: return false;
    }
}

/* ComfyUI's str(value) for a client prompt_id. */
static char *stringify(const kiln__json_t *j)
{
    if (j->type == KILN_JSON_STRING)
        return strdup(j->str);
    if (j->type == KILN_JSON_NULL)
        return strdup("None");
    if (j->type == KILN_JSON_BOOL)
        return strdup(j->b ? "True" : "False");
    return kiln__json_dump(j, KILN_JSON_PYTHON, NULL);
}

/* The queue number: a client's (float, Python's float()) or the counter's. */
static int take_number(submit_t *s, char **error)
{
    kiln__qitem_t *it = s->it;
    const kiln__json_t *num = kiln__json_get(s->doc, "number");
    if (!num) {
        int64_t n = kiln__queue_take_number(s->srv->queue);
        const kiln__json_t *front = kiln__json_get(s->doc, "front");
        if (front && truthy(front))
            n = -n;
        it->number = (double)n;
        snprintf(it->number_text, sizeof it->number_text, "%lld", (long long)n);
        return 0;
    }
    double d = NAN;
    if (kiln__json_is_number(num)) {
        d = num->d;
    } else if (num->type == KILN_JSON_STRING) {
        char *end;
        d = strtod(num->str, &end);
        while (*end == ' ' || *end == '\t' || *end == '\n')
            end++;
        if (*end || end == num->str)
            d = NAN;
    }
    kiln__json_t *f = isfinite(d) ? kiln__json_new_number(d) : NULL;
    char *text = f ? kiln__json_dump(f, KILN_JSON_PYTHON, NULL) : NULL;
    kiln__json_free(f);
    if (!text || strlen(text) >= sizeof it->number_text) {
        free(text);
        *error = error_body("invalid_number", "number must be a finite number",
                            "number must be a finite number");
        return KILN_EINVAL;
    }
    it->number = d;
    strcpy(it->number_text, text);
    free(text);
    return 0;
}

/* extra_data (copied), partial_execution_targets, prompt_id, client_id. */
static int read_fields(submit_t *s, const char *default_client, char **error)
{
    const kiln__json_t *extra = kiln__json_get(s->doc, "extra_data");
    if (extra && extra->type != KILN_JSON_OBJECT) {
        *error = error_body("invalid_extra_data", "extra_data must be an object",
                            "extra_data must be an object");
        return KILN_EINVAL;
    }
    s->extra = extra ? kiln__json_dup(extra) : kiln__json_new_object();
    const kiln__json_t *client = kiln__json_get(s->doc, "client_id");
    kiln__json_t *c = client ? kiln__json_dup(client)
                             : default_client ? kiln__json_new_string(default_client) : NULL;
    if (!s->extra || (c && kiln__json_set(s->extra, "client_id", c) != 0))
        return KILN_ENOMEM;
    /* Credentials the frontend may send are never stored (§9.25). */
    kiln__json_remove(s->extra, "auth_token_comfy_org");
    kiln__json_remove(s->extra, "api_key_comfy_org");
    const char *cid = kiln__json_get_string(s->extra, "client_id", NULL);
    if (cid && !(s->it->client_id = strdup(cid)))
        return KILN_ENOMEM;
    const kiln__json_t *pid = kiln__json_get(s->doc, "prompt_id");
    char uuid[37];
    if (!pid)
        kiln__srv_uuid4(uuid);
    s->it->prompt_id = pid ? stringify(pid) : strdup(uuid);
    const kiln__json_t *t = kiln__json_get(s->doc, "partial_execution_targets");
    if (t && t->type == KILN_JSON_ARRAY) {
        s->has_targets = true;
        s->targets = calloc(t->count + 1, sizeof *s->targets);
        if (!s->targets)
            return KILN_ENOMEM;
        for (const kiln__json_t *e = t->child; e; e = e->next)
            if (e->type == KILN_JSON_STRING)
                s->targets[s->n_targets++] = e->str;
    }
    return s->it->prompt_id ? 0 : KILN_ENOMEM;
}

static char *outputs_json(const kiln_prompt_t *p)
{
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_putc(&b, '[');
    for (size_t i = 0; i < kiln_prompt_output_count(p); i++) {
        if (i)
            kiln__sbuf_puts(&b, ", ");
        kiln__srv_json_str(&b, kiln_prompt_output_id(p, i));
    }
    kiln__sbuf_putc(&b, ']');
    return kiln__sbuf_take(&b, NULL);
}

/* Validates; on success fills the item and returns the 200 body in *reply. */
static int validate(submit_t *s, int *status, char **reply)
{
    kiln__qitem_t *it = s->it;
    size_t len = 0;
    char *text = kiln__json_dump(kiln__json_get(s->doc, "prompt"), KILN_JSON_COMPACT, &len);
    char *node_errors = NULL;
    kiln_prompt_t *p = NULL;
    int rc = text ? kiln_prompt_new(s->srv->engine, text, len, s->targets, s->n_targets, &p,
                                    &node_errors)
                  : KILN_ENOMEM;
    free(text);
    if (rc == KILN_EVALIDATION || rc == KILN_EPARSE) {
        *status = 400;
        *reply = node_errors ? strdup(node_errors) : NULL;
        kiln_free(node_errors);
        return rc;
    }
    if (rc != 0) {
        kiln_free(node_errors);
        return rc;
    }
    it->prompt = p;
    it->prompt_json = strdup(kiln_prompt_json(p));
    it->extra_json = kiln__json_dump(s->extra, KILN_JSON_COMPACT, NULL);
    it->outputs_json = outputs_json(p);
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_puts(&b, "{\"prompt_id\": ");
    kiln__srv_json_str(&b, it->prompt_id);
    kiln__sbuf_printf(&b, ", \"number\": %s, \"node_errors\": %s}", it->number_text,
                      node_errors ? node_errors : "{}");
    kiln_free(node_errors);
    *reply = kiln__sbuf_take(&b, NULL);
    *status = 200;
    if (!it->prompt_json || !it->extra_json || !it->outputs_json || !*reply)
        return KILN_ENOMEM;
    return 0;
}

/* Sends a WebSocket submitter its answer, numbered like the prompt's events. */
static void ws_answer(kiln__srv_t *srv, const char *sid, bool ok, const char *reply)
{
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_printf(&b, "{\"type\": \"%s\", \"data\": %s}", ok ? "prompt_queued" : "prompt_error",
                      reply ? reply : "{}");
    size_t len = 0;
    char *text = kiln__sbuf_take(&b, &len);
    kiln__outbox_push(srv, kiln__msg_new(KILN_SEND_CLIENT, KILN_MSG_OTHER, sid, text, len));
}

static int submit(submit_t *s, const char *body, size_t len, const char *default_client,
                  int *status, char **reply)
{
    char err[256];
    if (kiln__json_parse(body, len, &s->doc, err, sizeof err) != 0) {
        *status = 400;
        *reply = error_body("invalid_json", "Request body is not valid JSON", err);
        return KILN_EPARSE;
    }
    *status = 400;
    int rc = take_number(s, reply);
    if (rc == 0 && !kiln__json_get(s->doc, "prompt")) {
        *reply = error_body("no_prompt", "No prompt provided", "No prompt provided");
        return KILN_EINVAL;
    }
    if (rc == 0)
        rc = read_fields(s, default_client, reply);
    if (rc == 0)
        rc = validate(s, status, reply);
    return rc;
}

void kiln__prompt_submit(kiln__srv_t *srv, const char *body, size_t len,
                         const char *default_client_id, const char *ws_sid, int *status,
                         char **reply)
{
    *reply = NULL;
    *status = 503;
    submit_t s = {.srv = srv, .it = calloc(1, sizeof *s.it)};
    int rc = KILN_ENOMEM;
    if (atomic_load(&srv->stopping))
        *reply = error_body("server_shutting_down", "The server is shutting down", "");
    else if (s.it)
        rc = submit(&s, body, len, default_client_id, status, reply);
    if (rc != 0 && *status != 503 && (rc == KILN_ENOMEM || !*reply)) {
        free(*reply);
        *status = 500;
        *reply = error_body("internal_error", kiln_strerror(rc), "");
    }
    if (ws_sid)
        ws_answer(srv, ws_sid, rc == 0, *reply);
    if (rc == 0) {
        const char *pid = s.it->prompt_id;
        char id_copy[128];
        snprintf(id_copy, sizeof id_copy, "%s", pid);
        rc = kiln__queue_put(srv->queue, s.it);   /* takes the item */
        s.it = NULL;
        if (rc != 0) {
            free(*reply);
            *status = 500;
            *reply = error_body("queue_write_failed",
                                "The prompt could not be written to the queue journal", "");
            if (ws_sid)
                ws_answer(srv, ws_sid, false, *reply);
        } else if (srv->cfg.verbose) {
            kiln_logf(KILN_LOG_INFO, "queued prompt %s", id_copy);
        }
    } else if (srv->cfg.verbose && *status == 400) {
        kiln_logf(KILN_LOG_INFO, "invalid prompt: %s", *reply ? *reply : "");
    }
    kiln__qitem_free(s.it);
    kiln__json_free(s.doc);
    kiln__json_free(s.extra);
    free(s.targets);
}

/* ---- routes --------------------------------------------------------------------------- */

static void prompt_work(kiln__req_t *r)
{
    int status = 500;
    char *reply = NULL;
    kiln__prompt_submit(r->srv, r->body.data ? r->body.data : "", r->body.len, NULL, NULL,
                        &status, &reply);
    kiln__req_reply_json(r, status, reply);
}

void kiln__route_prompt_post(kiln__req_t *r)
{
    kiln__req_defer(r, prompt_work);
}

void kiln__route_prompt_get(kiln__req_t *r)
{
    char buf[96];
    snprintf(buf, sizeof buf, "{\"exec_info\": {\"queue_remaining\": %zu}}",
             kiln__queue_remaining(r->srv->queue));
    kiln__req_reply_json_copy(r, 200, buf);
}
