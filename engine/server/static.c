/* Static files at / from the web root (web/dist when it exists, else web/, or
 * --front-end-root), read on the pool, confined to the root (no "..", no links out),
 * with the MIME type of the extension and no-cache for HTML, JavaScript and CSS so that a
 * rebuilt frontend is picked up at once. Without a web folder, / answers a short page
 * saying how to reach the API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "server/paths.h"
#include "server/server_int.h"

#define MAX_STATIC_BYTES ((size_t)256 << 20)

static const char placeholder[] =
    "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>kiln</title></head>\n"
    "<body style=\"font-family: sans-serif; max-width: 40em; margin: 3em auto\">\n"
    "<h1>kiln</h1>\n<p>The server is running, but no web frontend was found (it serves "
    "<code>web/dist</code> or <code>web/</code> of the working folder, or the folder given "
    "with <code>--front-end-root</code>).</p>\n"
    "<p>The ComfyUI-compatible API is available: <a href=\"/object_info\">/object_info</a>, "
    "<a href=\"/queue\">/queue</a>, <a href=\"/history\">/history</a>, "
    "<a href=\"/system_stats\">/system_stats</a>, POST /prompt, and the WebSocket at "
    "<code>/ws</code>.</p>\n</body></html>\n";

static void static_work(kiln__req_t *r)
{
    const char *root = r->srv->cfg.web_root;
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_puts(&b, r->path + 1);
    if (b.len == 0 || b.data[b.len - 1] == '/')
        kiln__sbuf_puts(&b, "index.html");
    char *rel = kiln__sbuf_take(&b, NULL);
    if (!rel) {
        kiln__req_reply_error(r, 500, "internal_error", "out of memory");
        return;
    }
    char *slash = strrchr(rel, '/');
    const char *name = slash ? slash + 1 : rel;
    if (slash)
        *slash = 0;
    char *path = NULL;
    int rc = kiln__path_resolve(root, slash ? rel : "", name, true, &path);
    struct stat st;
    if (rc == 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        char *index = kiln__srv_join(path, "index.html");
        free(path);
        path = index;
        rc = path ? 0 : KILN_ENOMEM;
    }
    char *data = NULL;
    size_t len = 0;
    if (rc == 0)
        rc = kiln__srv_read_file(path, MAX_STATIC_BYTES, &data, &len);
    if (rc == 0) {
        const char *type = kiln__srv_mime(path);
        if (strstr(type, "html") || strstr(type, "javascript") || strstr(type, "css"))
            kiln__req_add_header(r, "cache-control", "no-cache");
        kiln__req_reply(r, 200, type, data, len);
    } else {
        kiln__req_reply_error(r, rc == KILN_EINVAL ? 403 : 404, "not_found", "no file %s",
                              r->path);
    }
    free(path);
    free(rel);
}

void kiln__route_static(kiln__req_t *r)
{
    if (r->srv->cfg.web_root) {
        kiln__req_defer(r, static_work);
        return;
    }
    if (strcmp(r->path, "/") && strcmp(r->path, "/index.html")) {
        kiln__req_reply_error(r, 404, "not_found", "no file %s", r->path);
        return;
    }
    char *page = strdup(placeholder);
    kiln__req_reply(r, page ? 200 : 500, "text/html; charset=utf-8", page,
                    page ? sizeof placeholder - 1 : 0);
}
