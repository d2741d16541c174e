/* The route table: every ComfyUI route of comfyui-compat.md §4, each served at /x and
 * /api/x (the /api prefix is removed before routing). Paths that match no route are
 * static files of the web root for GET at the root, and 404 elsewhere; a known path with
 * the wrong method answers 405. */
#include <string.h>

#include "server/server_int.h"

typedef struct route {
    int method;                 /* LWSHUMETH_* */
    const char *path;           /* exact path, or a prefix when `prefix` */
    bool prefix;
    void (*handle)(kiln__req_t *r);
} route_t;

static void ws_without_upgrade(kiln__req_t *r)
{
    kiln__req_reply_error(r, 400, "bad_request",
                          "/ws is a WebSocket endpoint: connect with an Upgrade request");
}

static const route_t routes[] = {
    {LWSHUMETH_POST, "/prompt", false, kiln__route_prompt_post},
    {LWSHUMETH_GET, "/prompt", false, kiln__route_prompt_get},
    {LWSHUMETH_GET, "/queue", false, kiln__route_queue_get},
    {LWSHUMETH_POST, "/queue", false, kiln__route_queue_post},
    {LWSHUMETH_POST, "/interrupt", false, kiln__route_interrupt},
    {LWSHUMETH_POST, "/free", false, kiln__route_free},
    {LWSHUMETH_GET, "/history", false, kiln__route_history_get},
    {LWSHUMETH_GET, "/history/", true, kiln__route_history_get},
    {LWSHUMETH_POST, "/history", false, kiln__route_history_post},
    {LWSHUMETH_GET, "/view", false, kiln__route_view},
    {LWSHUMETH_POST, "/upload/image", false, kiln__route_upload_image},
    {LWSHUMETH_POST, "/upload/mask", false, kiln__route_upload_mask},
    {LWSHUMETH_GET, "/object_info", false, kiln__route_object_info},
    {LWSHUMETH_GET, "/object_info/", true, kiln__route_object_info},
    {LWSHUMETH_GET, "/system_stats", false, kiln__route_system_stats},
    {LWSHUMETH_GET, "/embeddings", false, kiln__route_embeddings},
    {LWSHUMETH_GET, "/models", false, kiln__route_models},
    {LWSHUMETH_GET, "/models/", true, kiln__route_models},
    {LWSHUMETH_GET, "/extensions", false, kiln__route_extensions},
    {LWSHUMETH_GET, "/features", false, kiln__route_features},
    {LWSHUMETH_GET, "/ws", false, ws_without_upgrade},
};

static bool path_matches(const route_t *rt, const char *path)
{
    if (!rt->prefix)
        return !strcmp(path, rt->path);
    size_t n = strlen(rt->path);
    return !strncmp(path, rt->path, n) && path[n] != 0;
}

void kiln__http_dispatch(kiln__req_t *r)
{
    /* HEAD is answered as GET without the body. */
    int method = r->method == LWSHUMETH_HEAD ? LWSHUMETH_GET : r->method;
    bool path_known = false;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!path_matches(&routes[i], r->path))
            continue;
        path_known = true;
        if (routes[i].method == method) {
            routes[i].handle(r);
            return;
        }
    }
    if (path_known) {
        kiln__req_reply_error(r, 405, "method_not_allowed", "method not allowed for %s",
                              r->path);
        return;
    }
    if (!r->api && method == LWSHUMETH_GET) {
        kiln__route_static(r);
        return;
    }
    kiln__req_reply_error(r, 404, "not_found", "no route for %s%s", r->api ? "/api" : "",
                          r->path);
}
