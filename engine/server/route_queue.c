/* Queue control (§4.1): GET/POST /queue (list, clear, delete pending items), POST
 * /interrupt (optionally only a given running prompt) and POST /free (drop cached
 * results, done by the executor between prompts as ComfyUI does). These touch the queue
 * lock or the journal, so they run on the pool. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "server/server_int.h"

/* Parses the body as a JSON object; an empty body reads as {} when lenient. Replies 400
 * and returns NULL otherwise. */
static kiln__json_t *body_object(kiln__req_t *r, bool lenient)
{
    kiln__json_t *doc = NULL;
    char err[256];
    if (lenient && r->body.len == 0)
        return kiln__json_new_object();
    if (kiln__json_parse(r->body.data ? r->body.data : "", r->body.len, &doc, err,
                         sizeof err) != 0) {
        kiln__req_reply_error(r, 400, "invalid_json", "request body is not valid JSON: %s", err);
        return NULL;
    }
    if (doc->type != KILN_JSON_OBJECT) {
        kiln__json_free(doc);
        kiln__req_reply_error(r, 400, "invalid_request", "request body must be a JSON object");
        return NULL;
    }
    return doc;
}

static void queue_get_work(kiln__req_t *r)
{
    size_t len = 0;
    char *body = kiln__queue_render(r->srv->queue, &len);
    kiln__req_reply_json(r, 200, body);
}

void kiln__route_queue_get(kiln__req_t *r)
{
    kiln__req_defer(r, queue_get_work);
}

static void queue_post_work(kiln__req_t *r)
{
    kiln__json_t *doc = body_object(r, false);
    if (!doc)
        return;
    const kiln__json_t *clear = kiln__json_get(doc, "clear");
    if (clear && ((clear->type == KILN_JSON_BOOL && clear->b) ||
                  (kiln__json_is_number(clear) && clear->d != 0)))
        kiln__queue_clear(r->srv->queue);
    const kiln__json_t *del = kiln__json_get(doc, "delete");
    if (del && del->type == KILN_JSON_ARRAY)
        for (const kiln__json_t *e = del->child; e; e = e->next)
            if (e->type == KILN_JSON_STRING)
                kiln__queue_delete(r->srv->queue, e->str);
    kiln__json_free(doc);
    kiln__req_reply(r, 200, "text/plain", NULL, 0);
}

void kiln__route_queue_post(kiln__req_t *r)
{
    kiln__req_defer(r, queue_post_work);
}

static void interrupt_work(kiln__req_t *r)
{
    /* ComfyUI reads an unparsable body as no prompt_id: a global interrupt. */
    kiln__json_t *doc = NULL;
    char err[64];
    if (r->body.len && kiln__json_parse(r->body.data, r->body.len, &doc, err, sizeof err) != 0)
        doc = NULL;
    const char *pid = kiln__json_get_string(doc, "prompt_id", NULL);
    if (pid && *pid) {
        if (kiln__queue_is_running(r->srv->queue, pid))
            kiln_engine_interrupt(r->srv->engine);
    } else {
        kiln_engine_interrupt(r->srv->engine);
    }
    kiln__json_free(doc);
    kiln__req_reply(r, 200, "text/plain", NULL, 0);
}

void kiln__route_interrupt(kiln__req_t *r)
{
    kiln__req_defer(r, interrupt_work);
}

static void free_work(kiln__req_t *r)
{
    kiln__json_t *doc = body_object(r, true);
    if (!doc)
        return;
    const kiln__json_t *u = kiln__json_get(doc, "unload_models");
    const kiln__json_t *f = kiln__json_get(doc, "free_memory");
    /* Models live in kiln's result cache, so unloading them means dropping the cache. */
    if ((u && u->type == KILN_JSON_BOOL && u->b) || (f && f->type == KILN_JSON_BOOL && f->b))
        kiln__queue_request_free(r->srv->queue);
    kiln__json_free(doc);
    kiln__req_reply(r, 200, "text/plain", NULL, 0);
}

void kiln__route_free(kiln__req_t *r)
{
    kiln__req_defer(r, free_work);
}
