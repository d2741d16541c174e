/* HTTP requests on libwebsockets: reads the request line, query and headers into a
 * kiln__req_t, applies the origin check and the body limit, collects the body, hands the
 * complete request to the router, runs deferred work on the libuv pool and writes the
 * response in chunks from the writeable callback (one lws_write per callback, as lws
 * requires). A request outlives its connection while its work runs: the connection's
 * close only clears req->wsi, and the work's completion frees it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_int.h"

/* Bytes of body written per writeable callback. */
#define CHUNK (64 * 1024)

static void req_free(kiln__req_t *r)
{
    if (!r)
        return;
    free(r->path);
    for (size_t i = 0; i < r->n_args; i++) {
        free(r->args[i].key);
        free(r->args[i].value);
    }
    free(r->args);
    free(r->content_type);
    kiln__sbuf_free(&r->body);
    free(r->resp);
    for (size_t i = 0; i < r->n_hdrs; i++) {
        free(r->hdrs[i].key);
        free(r->hdrs[i].value);
    }
    free(r);
}

const char *kiln__req_arg(const kiln__req_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_args; i++)
        if (!strcmp(r->args[i].key, name))
            return r->args[i].value;
    return NULL;
}

void kiln__req_reply(kiln__req_t *r, int status, const char *ctype, char *body, size_t len)
{
    free(r->resp);
    r->status = status;
    r->ctype = ctype ? ctype : "application/octet-stream";
    r->resp = body;
    r->resp_len = body ? len : 0;
    r->resp_off = 0;
    r->responded = true;
}

void kiln__req_reply_json(kiln__req_t *r, int status, char *json)
{
    if (!json) {
        kiln__req_reply_json_copy(r, 500, "{\"error\": {\"type\": \"out_of_memory\", "
                                          "\"message\": \"out of memory\", \"details\": \"\", "
                                          "\"extra_info\": {}}}");
        return;
    }
    kiln__req_reply(r, status, "application/json; charset=utf-8", json, strlen(json));
}

void kiln__req_reply_json_copy(kiln__req_t *r, int status, const char *json)
{
    char *copy = strdup(json);
    if (!copy) {
        kiln__req_reply(r, 500, "text/plain", NULL, 0);
        return;
    }
    kiln__req_reply(r, status, "application/json; charset=utf-8", copy, strlen(copy));
}

void kiln__req_reply_error(kiln__req_t *r, int status, const char *type, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_puts(&b, "{\"error\": {\"type\": ");
    kiln__srv_json_str(&b, type);
    kiln__sbuf_puts(&b, ", \"message\": ");
    kiln__srv_json_str(&b, msg);
    kiln__sbuf_puts(&b, ", \"details\": \"\", \"extra_info\": {}}}");
    kiln__req_reply_json(r, status, kiln__sbuf_take(&b, NULL));
}

void kiln__req_add_header(kiln__req_t *r, const char *name, const char *value)
{
    if (r->n_hdrs >= KILN_REQ_MAX_HEADERS)
        return;
    char *k = strdup(name), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return;
    }
    r->hdrs[r->n_hdrs].key = k;
    r->hdrs[r->n_hdrs].value = v;
    r->n_hdrs++;
}

/* ---- sending -------------------------------------------------------------------------- */

static void log_request(const kiln__req_t *r)
{
    static const char *const names[] = {"GET", "POST", "OPTIONS", "PUT", "PATCH", "DELETE",
                                        "CONNECT", "HEAD"};
    if (!r->srv->cfg.verbose)
        return;
    const char *m = r->method >= 0 && r->method < 8 ? names[r->method] : "?";
    kiln_logf(KILN_LOG_INFO, "%s %s%s -> %d (%.2f ms)", m, r->api ? "/api" : "", r->path,
              r->status, (double)(uv_hrtime() - r->t0) / 1e6);
}

/* Asks lws for a writeable callback, or frees a request whose client went away. */
static void start_send(kiln__req_t *r)
{
    if (!r->wsi) {
        req_free(r);
        return;
    }
    log_request(r);
    lws_callback_on_writable(r->wsi);
}

static int write_headers(struct lws *wsi, kiln__req_t *r)
{
    unsigned char buf[LWS_PRE + 8192];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
    if (lws_add_http_common_headers(wsi, (unsigned int)r->status, r->ctype, r->resp_len, &p,
                                    end))
        return -1;
    for (size_t i = 0; i < r->n_hdrs; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s:", r->hdrs[i].key);
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                        (const unsigned char *)r->hdrs[i].value,
                                        (int)strlen(r->hdrs[i].value), &p, end))
            return -1;
    }
    const char *cors = r->srv->cfg.cors_origin;
    if (cors) {
        static const char *const h[][2] = {
            {"access-control-allow-methods:", "POST, GET, DELETE, PUT, OPTIONS"},
            {"access-control-allow-headers:", "Content-Type, Authorization"},
            {"access-control-allow-credentials:", "true"}};
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-origin:",
                                        (const unsigned char *)cors, (int)strlen(cors), &p, end))
            return -1;
        for (size_t i = 0; i < 3; i++)
            if (lws_add_http_header_by_name(wsi, (const unsigned char *)h[i][0],
                                            (const unsigned char *)h[i][1],
                                            (int)strlen(h[i][1]), &p, end))
                return -1;
    }
    if (r->close_after &&
        lws_add_http_header_by_name(wsi, (const unsigned char *)"connection:",
                                    (const unsigned char *)"close", 5, &p, end))
        return -1;
    return lws_finalize_write_http_header(wsi, start, &p, end) ? -1 : 0;
}

/* Ends the transaction; returns what the lws callback should return. */
static int finish(struct lws *wsi, kiln__pss_t *pss)
{
    kiln__req_t *r = pss->req;
    bool close = r->close_after;
    pss->req = NULL;
    req_free(r);
    if (close)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int on_writeable(struct lws *wsi, kiln__pss_t *pss)
{
    kiln__req_t *r = pss->req;
    if (!r || !r->responded || r->in_work)
        return 0;
    if (!r->headers_sent) {
        if (write_headers(wsi, r) != 0)
            return -1;
        r->headers_sent = true;
        if (r->resp_len == 0 || r->head_only)
            return finish(wsi, pss);
        lws_callback_on_writable(wsi);
        return 0;
    }
    /* The loop thread is the only writer, so one static staging buffer serves all. */
    static unsigned char buf[LWS_PRE + CHUNK];
    size_t n = r->resp_len - r->resp_off;
    if (n > CHUNK)
        n = CHUNK;
    memcpy(buf + LWS_PRE, r->resp + r->resp_off, n);
    r->resp_off += n;
    bool last = r->resp_off == r->resp_len;
    if (lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n)
        return -1;
    if (last)
        return finish(wsi, pss);
    lws_callback_on_writable(wsi);
    return 0;
}

/* ---- deferred work -------------------------------------------------------------------- */

static void work_cb(uv_work_t *w)
{
    kiln__req_t *r = w->data;
    r->work_fn(r);
}

static void after_work_cb(uv_work_t *w, int status)
{
    kiln__req_t *r = w->data;
    r->in_work = false;
    if (!r->responded)
        kiln__req_reply_error(r, 500, "internal_error", "the request was not answered");
    start_send(r);
}

void kiln__req_defer(kiln__req_t *r, kiln__work_fn fn)
{
    r->work_fn = fn;
    r->work.data = r;
    r->in_work = true;
    if (uv_queue_work(&r->srv->loop, &r->work, work_cb, after_work_cb) != 0) {
        r->in_work = false;
        kiln__req_reply_error(r, 503, "unavailable", "cannot schedule the request");
        return;
    }
}

/* ---- receiving ------------------------------------------------------------------------ */

static void dispatch(kiln__req_t *r)
{
    r->dispatched = true;
    kiln__http_dispatch(r);
    if (r->in_work)
        return;
    if (!r->responded)
        kiln__req_reply_error(r, 500, "internal_error", "the request was not answered");
    start_send(r);
}

static char *header(struct lws *wsi, enum lws_token_indexes h)
{
    int n = lws_hdr_total_length(wsi, h);
    char *s = malloc(n > 0 ? (size_t)n + 1 : 1);
    if (!s)
        return NULL;
    s[0] = 0;
    if (n > 0 && lws_hdr_copy(wsi, s, n + 1, h) < 0)
        s[0] = 0;
    return s;
}

/* Splits the decoded query fragments ("k=v") into r->args. lws also splits at ';', which
 * ComfyUI clients use inside values (preview=webp;90): a fragment without '=' is glued
 * back onto the previous value. */
static int read_args(struct lws *wsi, kiln__req_t *r)
{
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    if (total <= 0)
        return 0;
    char *frag = malloc((size_t)total + 1);
    if (!frag)
        return KILN_ENOMEM;
    for (int i = 0; lws_hdr_copy_fragment(wsi, frag, total + 1, WSI_TOKEN_HTTP_URI_ARGS, i) >= 0;
         i++) {
        char *eq = strchr(frag, '=');
        if (!eq && r->n_args > 0) {
            kiln__kv_t *prev = &r->args[r->n_args - 1];
            size_t n = strlen(prev->value) + strlen(frag) + 2;
            char *v = malloc(n);
            if (!v) {
                free(frag);
                return KILN_ENOMEM;
            }
            snprintf(v, n, "%s;%s", prev->value, frag);
            free(prev->value);
            prev->value = v;
            continue;
        }
        kiln__kv_t *a = realloc(r->args, sizeof *a * (r->n_args + 1));
        if (!a) {
            free(frag);
            return KILN_ENOMEM;
        }
        r->args = a;
        a = &r->args[r->n_args];
        a->key = eq ? strndup(frag, (size_t)(eq - frag)) : strdup(frag);
        a->value = strdup(eq ? eq + 1 : "");
        r->n_args++;
        if (!a->key || !a->value) {
            free(frag);
            return KILN_ENOMEM;
        }
    }
    free(frag);
    return 0;
}

static bool has_body(struct lws *wsi, kiln__req_t *r)
{
    char cl[32] = "";
    if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
        char *end;
        unsigned long long v = strtoull(cl, &end, 10);
        r->body_expected = *end == 0 ? v : 0;
    }
    return r->body_expected > 0;
}

static kiln__req_t *req_new(struct lws *wsi, const char *uri)
{
    kiln__srv_t *srv = lws_context_user(lws_get_context(wsi));
    kiln__req_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->srv = srv;
    r->wsi = wsi;
    r->t0 = uv_hrtime();
    char *u = NULL;
    int ulen = 0;
    r->method = lws_http_get_uri_and_method(wsi, &u, &ulen);
    if (!strncmp(uri, "/api/", 5) || !strcmp(uri, "/api")) {
        r->api = true;
        uri += 4;
    }
    r->path = strdup(*uri ? uri : "/");
    r->content_type = header(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE);
    if (!r->path || !r->content_type || read_args(wsi, r) != 0) {
        req_free(r);
        return NULL;
    }
    return r;
}

static int on_http(struct lws *wsi, kiln__pss_t *pss, const char *uri)
{
    kiln__req_t *r = req_new(wsi, uri);
    if (!r)
        return -1;   /* out of memory: drop the connection rather than answer wrongly */
    req_free(pss->req);
    pss->req = r;
    int denied = kiln__origin_check(r->srv, wsi);
    bool body = has_body(wsi, r);
    if (denied) {
        kiln__req_reply(r, denied, "text/plain", NULL, 0);
        r->close_after = body;
    } else if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        kiln__req_reply_error(r, 411, "length_required",
                              "request bodies need a Content-Length (chunked is not supported)");
        r->close_after = true;
    } else if (r->body_expected > r->srv->cfg.max_body) {
        kiln__req_reply_error(r, 413, "request_too_large",
                              "request body of %llu bytes exceeds the limit of %zu bytes",
                              (unsigned long long)r->body_expected, r->srv->cfg.max_body);
        r->body_too_big = r->close_after = true;
    } else if (r->method == LWSHUMETH_OPTIONS) {
        kiln__req_reply(r, 200, "text/plain", NULL, 0);
    } else if (body) {
        return 0;   /* wait for LWS_CALLBACK_HTTP_BODY_COMPLETION */
    } else {
        r->head_only = r->method == LWSHUMETH_HEAD;
        dispatch(r);
        return 0;
    }
    start_send(r);
    return 0;
}

static int on_body(kiln__pss_t *pss, const void *in, size_t len)
{
    kiln__req_t *r = pss->req;
    /* lws may report an empty body after a request without one was dispatched (and its
     * work may be running): nothing may touch the request then. */
    if (!r || r->dispatched)
        return 0;
    if (r->responded || r->body_too_big || len == 0)
        return 0;
    if (r->body.len + len > r->srv->cfg.max_body || r->body.len + len > r->body_expected) {
        kiln__req_reply_error(r, 413, "request_too_large",
                              "request body exceeds the limit of %zu bytes",
                              r->srv->cfg.max_body);
        r->body_too_big = r->close_after = true;
        start_send(r);
        return 0;
    }
    kiln__sbuf_append(&r->body, in, len);
    if (r->body.failed) {
        kiln__req_reply_error(r, 413, "request_too_large", "out of memory for the body");
        r->body_too_big = r->close_after = true;
        start_send(r);
    }
    return 0;
}

/* The connection is going: a request with work in flight is freed by the work's end. */
static void detach(kiln__pss_t *pss)
{
    kiln__req_t *r = pss->req;
    pss->req = NULL;
    if (!r)
        return;
    if (r->in_work)
        r->wsi = NULL;
    else
        req_free(r);
}

int kiln__http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                        void *in, size_t len)
{
    kiln__pss_t *pss = user;
    if (!pss)   /* lws calls some reasons before (or without) allocating session data */
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return on_http(wsi, pss, in ? (const char *)in : "/");
    case LWS_CALLBACK_HTTP_BODY:
        return on_body(pss, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (pss->req && !pss->req->dispatched && !pss->req->responded)
            dispatch(pss->req);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return on_writeable(wsi, pss);
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        detach(pss);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}
