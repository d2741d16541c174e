/* History routes (§4.1): GET /history (max_items, offset as ComfyUI applies them),
 * GET /history/{prompt_id} ({} when unknown or still running), POST /history (clear,
 * delete). Rendering a large history runs on the pool. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "server/server_int.h"

/* Parses an optional integer query argument; false (and a 400) when malformed. */
static bool int_arg(kiln__req_t *r, const char *name, long dflt, long *out)
{
    const char *s = kiln__req_arg(r, name);
    *out = dflt;
    if (!s)
        return true;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) {
        kiln__req_reply_error(r, 400, "invalid_argument", "%s must be an integer, got '%s'",
                              name, s);
        return false;
    }
    *out = v;
    return true;
}

static void history_get_work(kiln__req_t *r)
{
    size_t len = 0;
    if (!strncmp(r->path, "/history/", 9)) {
        kiln__req_reply_json(r, 200, kiln__history_render(r->srv->history, r->path + 9, -1, -1,
                                                          &len));
        return;
    }
    long max_items, offset;
    if (!int_arg(r, "max_items", -1, &max_items) || !int_arg(r, "offset", -1, &offset))
        return;
    if (max_items < -1)
        max_items = -1;
    kiln__req_reply_json(r, 200, kiln__history_render(r->srv->history, NULL, max_items, offset,
                                                      &len));
}

void kiln__route_history_get(kiln__req_t *r)
{
    kiln__req_defer(r, history_get_work);
}

static void history_post_work(kiln__req_t *r)
{
    kiln__json_t *doc = NULL;
    char err[256];
    if (kiln__json_parse(r->body.data ? r->body.data : "", r->body.len, &doc, err,
                         sizeof err) != 0) {
        kiln__req_reply_error(r, 400, "invalid_json", "request body is not valid JSON: %s", err);
        return;
    }
    const kiln__json_t *clear = kiln__json_get(doc, "clear");
    if (clear && clear->type == KILN_JSON_BOOL && clear->b)
        kiln__history_clear(r->srv->history);
    const kiln__json_t *del = kiln__json_get(doc, "delete");
    if (del && del->type == KILN_JSON_ARRAY)
        for (const kiln__json_t *e = del->child; e; e = e->next)
            if (e->type == KILN_JSON_STRING)
                kiln__history_delete(r->srv->history, e->str);
    kiln__json_free(doc);
    kiln__req_reply(r, 200, "text/plain", NULL, 0);
}

void kiln__route_history_post(kiln__req_t *r)
{
    kiln__req_defer(r, history_post_work);
}
