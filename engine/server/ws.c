/* WebSocket connections at /ws (and /api/ws): the handshake filter, the status message
 * on connect, reconnect replay, incoming messages and writing. Incoming text messages
 * are handled one at a time per connection on the libuv pool, in arrival order:
 *   {"type": "feature_flags", "data": {...}}  (only as the first message, as ComfyUI)
 *       -> {"type": "feature_flags", "data": <GET /features>}
 *   {"type": "prompt", "data": <POST /prompt body>}  (kiln's extension, any time)
 *       -> {"type": "prompt_queued", "data": {"prompt_id", "number", "node_errors"}}
 *          or {"type": "prompt_error", "data": <the 400 body>}, numbered like events.
 * Anything else is ignored, as ComfyUI does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "server/server_int.h"

#define INBOX_PAUSE 32     /* stop reading a socket with this many messages waiting */

typedef enum job_kind { JOB_IGNORE = 0, JOB_FLAGS, JOB_PROMPT } job_kind_t;

typedef struct wsjob {
    uv_work_t work;
    kiln__conn_t *conn;          /* a reference is held while the job runs */
    char *sid;                   /* owned: the connection's client id */
    char *text;                  /* owned: the message */
    bool first;                  /* the connection's first text message */
    job_kind_t kind;             /* result */
    bool preview_metadata;
} wsjob_t;

static void send_text(kiln__conn_t *c, const char *text, size_t len)
{
    kiln__wsbuf_t *b = kiln__wsbuf_new(text, len, false);
    kiln__ws_enqueue(c, b);
    kiln__wsbuf_unref(b);
}

/* ---- incoming messages ---------------------------------------------------------------- */

static void job_work(uv_work_t *w)
{
    wsjob_t *j = w->data;
    kiln__srv_t *srv = j->conn->srv;
    kiln__json_t *doc = NULL;
    char err[256];
    if (kiln__json_parse(j->text, strlen(j->text), &doc, err, sizeof err) != 0)
        return;
    const char *type = kiln__json_get_string(doc, "type", "");
    kiln__json_t *data = kiln__json_get(doc, "data");
    if (!strcmp(type, "feature_flags") && j->first && data && data->type == KILN_JSON_OBJECT) {
        kiln__json_t *f = kiln__json_get(data, "supports_preview_metadata");
        j->preview_metadata = f && f->type == KILN_JSON_BOOL && f->b;
        j->kind = JOB_FLAGS;
    } else if (!strcmp(type, "prompt")) {
        j->kind = JOB_PROMPT;
        size_t len = 0;
        char *body = data ? kiln__json_dump(data, KILN_JSON_COMPACT, &len) : strdup("null");
        int status = 0;
        char *reply = NULL;
        if (body)
            kiln__prompt_submit(srv, body, data ? len : strlen(body), j->sid, j->sid, &status,
                                &reply);
        free(body);
        free(reply);
    }
    kiln__json_free(doc);
}

static void pump(kiln__conn_t *c);

static void job_done(uv_work_t *w, int status)
{
    wsjob_t *j = w->data;
    kiln__conn_t *c = j->conn;
    c->in_work = false;
    if (j->kind == JOB_FLAGS && c->wsi && !c->closing) {
        c->preview_metadata = j->preview_metadata;
        char *features = kiln__features_json(c->srv);
        kiln__sbuf_t b = KILN_SBUF_INIT;
        kiln__sbuf_puts(&b, "{\"type\": \"feature_flags\", \"data\": ");
        kiln__sbuf_puts(&b, features ? features : "{}");
        kiln__sbuf_putc(&b, '}');
        if (!b.failed)
            send_text(c, b.data, b.len);
        kiln__sbuf_free(&b);
        free(features);
    }
    free(j->sid);
    free(j->text);
    free(j);
    pump(c);
    kiln__conn_unref(c);
}

/* Starts the pool job for the oldest waiting message, if none runs. */
static void pump(kiln__conn_t *c)
{
    if (c->in_work || c->in_count == 0 || !c->wsi || c->closing)
        return;
    wsjob_t *j = calloc(1, sizeof *j);
    const char *sid = c->session ? c->session->sid : NULL;
    if (!j || !sid || !(j->sid = strdup(sid))) {
        free(j);
        return;
    }
    j->text = c->inbox[0];
    memmove(c->inbox, c->inbox + 1, sizeof *c->inbox * --c->in_count);
    j->first = !c->first_text_seen;
    c->first_text_seen = true;
    j->conn = c;
    j->work.data = j;
    c->refs++;
    c->in_work = true;
    if (uv_queue_work(&c->srv->loop, &j->work, job_work, job_done) != 0) {
        c->in_work = false;
        c->refs--;
        free(j->sid);
        free(j->text);
        free(j);
        return;
    }
    if (c->in_count < INBOX_PAUSE / 2)
        lws_rx_flow_control(c->wsi, 1);
}

static int on_receive(struct lws *wsi, kiln__conn_t *c, const void *in, size_t len)
{
    if (!c || c->closing)
        return 0;
    bool final = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
    if (lws_frame_is_binary(wsi))
        return 0;   /* clients have nothing to send in binary */
    if (!c->rx_skip) {
        if (c->rx.len + len > c->srv->cfg.max_body) {
            kiln__sbuf_free(&c->rx);
            c->rx_skip = true;
            static const char msg[] = "{\"type\": \"error\", \"data\": {\"message\": "
                                      "\"message exceeds the size limit\"}}";
            send_text(c, msg, sizeof msg - 1);
        } else {
            kiln__sbuf_append(&c->rx, in, len);
        }
    }
    if (!final)
        return 0;
    char *text = c->rx_skip ? NULL : kiln__sbuf_take(&c->rx, NULL);
    c->rx_skip = false;
    if (!text)
        return 0;
    char **box = realloc(c->inbox, sizeof *box * (c->in_count + 1));
    if (!box) {
        free(text);
        return 0;
    }
    c->inbox = box;
    c->inbox[c->in_count++] = text;
    if (c->in_count >= INBOX_PAUSE)
        lws_rx_flow_control(wsi, 0);
    pump(c);
    return 0;
}

/* ---- connection lifecycle ------------------------------------------------------------- */

static bool ws_path(struct lws *wsi)
{
    char uri[64] = "";
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0)
        return false;
    return !strcmp(uri, "/ws") || !strcmp(uri, "/api/ws");
}

static void send_status(kiln__conn_t *c)
{
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_printf(&b,
                      "{\"type\": \"status\", \"data\": {\"status\": {\"exec_info\": "
                      "{\"queue_remaining\": %zu}}, \"sid\": ",
                      kiln__queue_remaining(c->srv->queue));
    kiln__srv_json_str(&b, c->session->sid);
    kiln__sbuf_puts(&b, "}}");
    if (!b.failed)
        send_text(c, b.data, b.len);
    kiln__sbuf_free(&b);
}

/* ComfyUI tells a reconnecting client of the running prompt which node executes. */
static void send_running_hint(kiln__conn_t *c)
{
    kiln__ws_t *ws = &c->srv->ws;
    if (!ws->run_client || !ws->run_node || strcmp(ws->run_client, c->session->sid))
        return;
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_puts(&b, "{\"type\": \"executing\", \"data\": {\"node\": ");
    kiln__srv_json_str(&b, ws->run_node);
    kiln__sbuf_puts(&b, "}}");
    if (!b.failed)
        send_text(c, b.data, b.len);
    kiln__sbuf_free(&b);
}

static int on_established(struct lws *wsi, kiln__pss_t *pss)
{
    kiln__srv_t *srv = lws_context_user(lws_get_context(wsi));
    char arg[1100];
    const char *id = lws_get_urlarg_by_name(wsi, "clientId=", arg, (int)sizeof arg);
    char sid[1100], fresh[33];
    if (id && *id && strlen(id) <= 1024) {
        snprintf(sid, sizeof sid, "%s", id);
    } else {
        kiln__srv_uuid_hex(fresh);
        snprintf(sid, sizeof sid, "%s", fresh);
    }
    const char *since_s = lws_get_urlarg_by_name(wsi, "since=", arg, (int)sizeof arg);
    bool replay = since_s && *since_s;
    uint64_t since = replay ? strtoull(since_s, NULL, 10) : 0;
    kiln__conn_t *c = calloc(1, sizeof *c);
    kiln__session_t *s = c ? kiln__ws_session(srv, sid, true) : NULL;
    if (!s) {
        free(c);
        return -1;
    }
    if (s->conn)
        kiln__ws_kick(s->conn, LWS_CLOSE_STATUS_NORMAL, "replaced by a new connection");
    c->wsi = wsi;
    c->srv = srv;
    c->refs = 1;
    c->session = s;
    s->conn = c;
    s->detached_ms = 0;
    c->next = srv->ws.conns;
    if (c->next)
        c->next->prev = c;
    srv->ws.conns = c;
    srv->ws.n_conns++;
    pss->conn = c;
    send_status(c);
    if (replay)
        kiln__ws_replay(c, since);
    else
        send_running_hint(c);
    return 0;
}

static void on_closed(kiln__srv_t *srv, kiln__pss_t *pss)
{
    kiln__conn_t *c = pss->conn;
    pss->conn = NULL;
    if (!c)
        return;
    if (c->session && c->session->conn == c) {
        c->session->conn = NULL;
        c->session->detached_ms = (uint64_t)kiln__srv_now_ms();
    }
    c->session = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->ws.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->ws.n_conns--;
    c->wsi = NULL;
    kiln__conn_unref(c);
}

int kiln__ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len)
{
    kiln__pss_t *pss = user;
    kiln__srv_t *srv = lws_context_user(lws_get_context(wsi));
    if (!pss && reason != LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* Non-zero refuses the upgrade. */
        return !ws_path(wsi) || kiln__origin_check(srv, wsi) != 0 ||
               atomic_load(&srv->stopping);
    case LWS_CALLBACK_ESTABLISHED:
        return on_established(wsi, pss);
    case LWS_CALLBACK_RECEIVE:
        return on_receive(wsi, pss->conn, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return pss->conn ? kiln__ws_write_one(pss->conn) : 0;
    case LWS_CALLBACK_CLOSED:
        on_closed(srv, pss);
        return 0;
    default:
        return 0;
    }
}
