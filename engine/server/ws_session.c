/* WebSocket delivery: sessions (one per client id, kept for a while after a disconnect),
 * sequence numbers and the replay ring, per-connection send queues with a bound, and
 * the drain of the outbox on the loop thread.
 *
 * Every message routed to one client (execution events of its prompts, the replies to
 * WebSocket prompt submissions) gets the next sequence number of that client's session
 * as a top-level "seq" member and is kept in the session's ring: while a socket is
 * connected, the messages not yet written to it plus the last RING_LIVE; while none is,
 * up to RING_MAX messages and RING_BYTES. A client that reconnects with
 * /ws?clientId=ID&since=N receives every ringed message with seq > N. Broadcasts
 * (status) carry no seq: the status sent on connect supersedes them. All rings together
 * stay under RING_BUDGET: past it, the sessions detached longest are dropped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_int.h"

#define RING_LIVE 64                       /* messages kept after a connected send */
#define RING_MAX 1024                      /* numbered messages kept per session */
#define RING_BYTES (1u << 20)              /* and at most this many bytes of them */
#define RING_BUDGET ((size_t)64 << 20)     /* bytes held by all rings together */
#define OUTQ_MAX 65536                     /* queued messages per connection */
#define MAX_SESSIONS 4096                  /* sessions kept (detached ones are evicted) */
#define SESSION_IDLE_MS (15 * 60 * 1000)   /* a detached session lives this long */

kiln__wsbuf_t *kiln__wsbuf_new(const void *data, size_t len, bool binary)
{
    kiln__wsbuf_t *b = malloc(sizeof *b + LWS_PRE + len);
    if (!b)
        return NULL;
    b->refs = 1;
    b->binary = binary;
    b->status = false;
    b->seq = 0;
    b->len = len;
    memcpy(b->data + LWS_PRE, data, len);
    return b;
}

void kiln__wsbuf_unref(kiln__wsbuf_t *b)
{
    if (b && --b->refs == 0)
        free(b);
}

/* ---- connections ---------------------------------------------------------------------- */

static void outq_clear(kiln__conn_t *c)
{
    for (size_t i = 0; i < c->out_count; i++)
        kiln__wsbuf_unref(c->outq[(c->out_head + i) % c->out_cap]);
    c->out_head = c->out_count = c->out_bytes = 0;
}

/* Closes a connection from outside its callbacks: its next writeable callback sends a
 * close frame with `code`; a peer that never reads is killed after two seconds. Its
 * session keeps collecting messages for a reconnect. why NULL: no log line. */
static void kick(kiln__conn_t *c, int code, const char *why)
{
    if (c->closing || !c->wsi)
        return;
    c->closing = true;
    c->close_code = code;
    if (why)
        kiln_logf(KILN_LOG_WARN, "closing WebSocket of client %s: %s",
                  c->session ? c->session->sid : "?", why);
    outq_clear(c);
    if (c->session && c->session->conn == c) {
        c->session->conn = NULL;
        c->session->detached_ms = (uint64_t)kiln__srv_now_ms();
    }
    c->session = NULL;
    lws_callback_on_writable(c->wsi);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, 2);
}

void kiln__ws_kick(kiln__conn_t *c, int code, const char *why)
{
    kick(c, code, why);
}

static bool outq_grow(kiln__conn_t *c)
{
    size_t cap = c->out_cap ? c->out_cap * 2 : 16;
    kiln__wsbuf_t **q = malloc(sizeof *q * cap);
    if (!q)
        return false;
    for (size_t i = 0; i < c->out_count; i++)
        q[i] = c->outq[(c->out_head + i) % c->out_cap];
    free(c->outq);
    c->outq = q;
    c->out_cap = cap;
    c->out_head = 0;
    return true;
}

void kiln__ws_enqueue(kiln__conn_t *c, kiln__wsbuf_t *b)
{
    if (!b || c->closing || !c->wsi)
        return;
    if (b->status && c->out_count > 0) {
        /* A newer status supersedes one still waiting at the tail. */
        size_t tail = (c->out_head + c->out_count - 1) % c->out_cap;
        if (c->outq[tail]->status) {
            c->out_bytes -= c->outq[tail]->len;
            kiln__wsbuf_unref(c->outq[tail]);
            b->refs++;
            c->outq[tail] = b;
            c->out_bytes += b->len;
            return;
        }
    }
    if (c->out_count >= OUTQ_MAX || c->out_bytes + b->len > c->srv->cfg.ws_queue_bytes) {
        c->srv->ws.dropped_slow++;
        kick(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "send queue overflow (client too slow)");
        return;
    }
    if (c->out_count == c->out_cap && !outq_grow(c)) {
        kick(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return;
    }
    b->refs++;
    c->outq[(c->out_head + c->out_count) % c->out_cap] = b;
    c->out_count++;
    c->out_bytes += b->len;
    lws_callback_on_writable(c->wsi);
}

static void refill(kiln__conn_t *c);

/* Writes the head of the queue (one lws_write per writeable callback). */
int kiln__ws_write_one(kiln__conn_t *c)
{
    if (c->closing) {
        static const char reason[] = "closing";
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
                         (unsigned char *)reason, sizeof reason - 1);
        return -1;
    }
    if (c->out_count == 0)
        return 0;
    kiln__wsbuf_t *b = c->outq[c->out_head];
    c->out_head = (c->out_head + 1) % c->out_cap;
    c->out_count--;
    c->out_bytes -= b->len;
    int n = lws_write(c->wsi, b->data + LWS_PRE, b->len,
                      b->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    bool ok = n >= (int)b->len;
    kiln__wsbuf_unref(b);
    if (!ok)
        return -1;
    if (c->replay_seq)
        refill(c);
    if (c->out_count > 0)
        lws_callback_on_writable(c->wsi);
    return 0;
}

void kiln__conn_unref(kiln__conn_t *c)
{
    if (!c || --c->refs > 0)
        return;
    outq_clear(c);
    free(c->outq);
    kiln__sbuf_free(&c->rx);
    for (size_t i = 0; i < c->in_count; i++)
        free(c->inbox[i]);
    free(c->inbox);
    free(c);
}

/* ---- sessions ------------------------------------------------------------------------- */

static void session_free(kiln__srv_t *srv, kiln__session_t *s)
{
    for (size_t i = 0; i < s->ring_count; i++)
        kiln__wsbuf_unref(s->ring[(s->ring_head + i) % RING_MAX]);
    srv->ws.ring_bytes -= s->ring_bytes;
    free(s->ring);
    free(s->sid);
    free(s);
}

static void remove_session(kiln__srv_t *srv, kiln__session_t *s)
{
    kiln__strmap_remove(srv->ws.sessions, s->sid);
    session_free(srv, s);
}

typedef struct oldest {
    kiln__session_t *s;
} oldest_t;

static int find_oldest(const char *key, void *value, void *ud)
{
    kiln__session_t *s = value;
    oldest_t *o = ud;
    if (!s->conn && (!o->s || s->detached_ms < o->s->detached_ms))
        o->s = s;
    return 0;
}

kiln__session_t *kiln__ws_session(kiln__srv_t *srv, const char *sid, bool create)
{
    kiln__session_t *s = kiln__strmap_get(srv->ws.sessions, sid);
    if (s || !create)
        return s;
    if (kiln__strmap_count(srv->ws.sessions) >= MAX_SESSIONS) {
        oldest_t o = {NULL};
        kiln__strmap_foreach(srv->ws.sessions, find_oldest, &o);
        if (o.s)
            remove_session(srv, o.s);
    }
    s = calloc(1, sizeof *s);
    if (!s || !(s->sid = strdup(sid)) || !(s->ring = malloc(sizeof *s->ring * RING_MAX)) ||
        kiln__strmap_put(srv->ws.sessions, sid, s) != 0) {
        if (s) {
            free(s->ring);
            free(s->sid);
        }
        free(s);
        return NULL;
    }
    s->next_seq = 1;
    s->detached_ms = (uint64_t)kiln__srv_now_ms();
    return s;
}

static void ring_push(kiln__srv_t *srv, kiln__session_t *s, kiln__wsbuf_t *b)
{
    kiln__conn_t *c = s->conn;
    size_t keep = c && !c->replay_seq ? RING_LIVE + c->out_count : RING_MAX;
    if (keep > RING_MAX)
        keep = RING_MAX;
    while (s->ring_count > 0 && (s->ring_count >= keep || s->ring_bytes + b->len > RING_BYTES)) {
        kiln__wsbuf_t *old = s->ring[s->ring_head];
        s->ring_head = (s->ring_head + 1) % RING_MAX;
        s->ring_count--;
        s->ring_bytes -= old->len;
        srv->ws.ring_bytes -= old->len;
        kiln__wsbuf_unref(old);
    }
    b->refs++;
    s->ring[(s->ring_head + s->ring_count) % RING_MAX] = b;
    s->ring_count++;
    s->ring_bytes += b->len;
    srv->ws.ring_bytes += b->len;
    while (srv->ws.ring_bytes > RING_BUDGET) {
        oldest_t o = {NULL};
        kiln__strmap_foreach(srv->ws.sessions, find_oldest, &o);
        if (!o.s || o.s == s)
            break;
        remove_session(srv, o.s);
    }
}

void kiln__ws_to_session(kiln__srv_t *srv, const char *sid, const char *text, size_t len)
{
    kiln__session_t *s = kiln__ws_session(srv, sid, true);
    if (!s || len < 2)
        return;
    /* {"type": .., "data": ..} becomes {"type": .., "data": .., "seq": N}. */
    char tail[40];
    uint64_t seq = s->next_seq++;
    int n = snprintf(tail, sizeof tail, ", \"seq\": %llu}", (unsigned long long)seq);
    kiln__wsbuf_t *b = malloc(sizeof *b + LWS_PRE + len - 1 + (size_t)n);
    if (!b)
        return;
    b->refs = 1;
    b->binary = b->status = false;
    b->seq = seq;
    b->len = len - 1 + (size_t)n;
    memcpy(b->data + LWS_PRE, text, len - 1);
    memcpy(b->data + LWS_PRE + len - 1, tail, (size_t)n);
    ring_push(srv, s, b);
    /* A connection still replaying gets this message from the ring, in order. */
    if (s->conn && !s->conn->replay_seq)
        kiln__ws_enqueue(s->conn, b);
    kiln__wsbuf_unref(b);
}

/* Feeds ringed messages from c->replay_seq on into the send queue, a little at a time
 * (a replay must not overflow the queue it refills), until it catches up with the live
 * stream. Messages the ring dropped meanwhile are announced with a replay_gap. */
static void send_gap(kiln__conn_t *c, uint64_t since, uint64_t first);

static void refill(kiln__conn_t *c)
{
    kiln__session_t *s = c->session;
    while (s && c->replay_seq && !c->closing && c->out_count < 64 &&
           c->out_bytes < c->srv->cfg.ws_queue_bytes / 2) {
        uint64_t first = s->ring_count ? s->ring[s->ring_head]->seq : s->next_seq;
        if (c->replay_seq < first) {
            send_gap(c, c->replay_seq - 1, first);
            c->replay_seq = first;
        }
        if (c->replay_seq >= s->next_seq) {
            c->replay_seq = 0;   /* caught up: live messages flow directly again */
            break;
        }
        kiln__ws_enqueue(c, s->ring[(s->ring_head + (c->replay_seq - first)) % RING_MAX]);
        c->replay_seq++;
    }
}

static void send_gap(kiln__conn_t *c, uint64_t since, uint64_t first)
{
    char buf[160];
    int n = snprintf(buf, sizeof buf,
                     "{\"type\": \"replay_gap\", \"data\": {\"since\": %llu, "
                     "\"first_seq\": %llu}}",
                     (unsigned long long)since, (unsigned long long)first);
    kiln__wsbuf_t *b = kiln__wsbuf_new(buf, (size_t)n, false);
    kiln__ws_enqueue(c, b);
    kiln__wsbuf_unref(b);
}

void kiln__ws_replay(kiln__conn_t *c, uint64_t since)
{
    kiln__session_t *s = c->session;
    if (!s)
        return;
    if (since >= s->next_seq) {
        /* The client knows more than this server sent: the server restarted (sequence
         * numbers live as long as the process). first_seq <= since tells it so. */
        send_gap(c, since, s->next_seq);
        return;
    }
    c->replay_seq = since + 1;
    refill(c);
}

/* ---- routing the outbox --------------------------------------------------------------- */

static void broadcast(kiln__srv_t *srv, const kiln__msg_t *m)
{
    if (!srv->ws.conns)
        return;
    kiln__wsbuf_t *b = kiln__wsbuf_new(m->text, m->len, false);
    if (!b)
        return;
    b->status = m->kind == KILN_MSG_STATUS;
    for (kiln__conn_t *c = srv->ws.conns, *next; c; c = next) {
        next = c->next;   /* enqueue may kick c, never unlink it */
        kiln__ws_enqueue(c, b);
    }
    kiln__wsbuf_unref(b);
}

static void track_running(kiln__srv_t *srv, const kiln__msg_t *m)
{
    kiln__ws_t *ws = &srv->ws;
    if (m->kind == KILN_MSG_EXECUTING) {
        free(ws->run_client);
        free(ws->run_node);
        ws->run_client = m->client_id ? strdup(m->client_id) : NULL;
        ws->run_node = m->node ? strdup(m->node) : NULL;
    } else if (m->kind == KILN_MSG_DONE) {
        free(ws->run_client);
        free(ws->run_node);
        ws->run_client = ws->run_node = NULL;
    }
}

void kiln__ws_drain(kiln__srv_t *srv)
{
    kiln__outbox_t *ob = &srv->outbox;
    pthread_mutex_lock(&ob->mu);
    kiln__msg_t *m = ob->head;
    ob->head = ob->tail = NULL;
    pthread_mutex_unlock(&ob->mu);
    while (m) {
        kiln__msg_t *next = m->next;
        track_running(srv, m);
        if (m->client_id && m->send != KILN_SEND_ALL)
            kiln__ws_to_session(srv, m->client_id, m->text, m->len);
        else if (m->send != KILN_SEND_CLIENT)
            broadcast(srv, m);
        kiln__msg_free(m);
        m = next;
    }
}

/* ---- housekeeping --------------------------------------------------------------------- */

typedef struct sweep {
    kiln__session_t **dead;
    size_t n, cap;
    uint64_t now;
} sweep_t;

static int collect_idle(const char *key, void *value, void *ud)
{
    kiln__session_t *s = value;
    sweep_t *sw = ud;
    if (s->conn || sw->now - s->detached_ms < SESSION_IDLE_MS)
        return 0;
    if (sw->n == sw->cap) {
        size_t cap = sw->cap ? sw->cap * 2 : 16;
        kiln__session_t **d = realloc(sw->dead, sizeof *d * cap);
        if (!d)
            return 1;
        sw->dead = d;
        sw->cap = cap;
    }
    sw->dead[sw->n++] = s;
    return 0;
}

void kiln__ws_sweep(kiln__srv_t *srv)
{
    sweep_t sw = {.now = (uint64_t)kiln__srv_now_ms()};
    kiln__strmap_foreach(srv->ws.sessions, collect_idle, &sw);
    for (size_t i = 0; i < sw.n; i++)
        remove_session(srv, sw.dead[i]);
    free(sw.dead);
}

int kiln__ws_init(kiln__srv_t *srv)
{
    memset(&srv->ws, 0, sizeof srv->ws);
    srv->ws.sessions = kiln__strmap_new();
    return srv->ws.sessions ? 0 : KILN_ENOMEM;
}

static int free_session(const char *key, void *value, void *ud)
{
    session_free(ud, value);
    return 0;
}

void kiln__ws_free(kiln__srv_t *srv)
{
    if (srv->ws.sessions) {
        kiln__strmap_foreach(srv->ws.sessions, free_session, srv);
        kiln__strmap_free(srv->ws.sessions);
    }
    free(srv->ws.run_client);
    free(srv->ws.run_node);
    memset(&srv->ws, 0, sizeof srv->ws);
}

void kiln__ws_close_all(kiln__srv_t *srv)
{
    for (kiln__conn_t *c = srv->ws.conns; c; c = c->next)
        kick(c, LWS_CLOSE_STATUS_GOINGAWAY, NULL);
}

size_t kiln__ws_queued_bytes(const kiln__srv_t *srv)
{
    size_t n = 0;
    for (const kiln__conn_t *c = srv->ws.conns; c; c = c->next)
        n += c->out_bytes + (c->out_count ? 1 : 0);
    return n;
}
