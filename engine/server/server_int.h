/* The parts of `kiln serve` and how they meet. Threads: the loop thread runs libuv and
 * libwebsockets (HTTP parsing, routing, sockets) and never blocks; the libuv pool runs
 * request work (JSON parsing, validation, big encodes, file I/O); the executor thread
 * pops the queue and runs kiln_engine_execute. Everything that crosses into the loop
 * goes through the outbox (a locked list plus a uv_async). Each struct says which
 * thread may touch which fields. */
#ifndef KILN_SERVER_SERVER_INT_H
#define KILN_SERVER_SERVER_INT_H

#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "server/server.h"
#include "util/sbuf.h"
#include "util/strmap.h"

#define KILN_MAX_LISTEN 8             /* listen addresses */

typedef struct kiln__srv kiln__srv_t;
typedef struct kiln__req kiln__req_t;
typedef struct kiln__conn kiln__conn_t;
typedef struct kiln__session kiln__session_t;
typedef struct kiln__queue kiln__queue_t;
typedef struct kiln__history kiln__history_t;

/* ---- outbox: messages for WebSocket clients, from any thread to the loop ------------- */

typedef enum kiln__send {
    KILN_SEND_ALL = 0,       /* every connected socket (status) */
    KILN_SEND_CLIENT,        /* the client's session only; dropped without a client id */
    KILN_SEND_CLIENT_OR_ALL  /* the client's session, or every socket without a client id */
} kiln__send_t;

typedef enum kiln__msg_kind {
    KILN_MSG_OTHER = 0,
    KILN_MSG_STATUS,         /* coalesced in send queues, never numbered or replayed */
    KILN_MSG_EXECUTING,      /* executing {node: N}: the loop remembers the running node */
    KILN_MSG_DONE            /* executing {node: null}: the client's prompt ended */
} kiln__msg_kind_t;

typedef struct kiln__msg {
    struct kiln__msg *next;
    kiln__send_t send;
    kiln__msg_kind_t kind;
    char *client_id;         /* owned; NULL when the prompt has none */
    char *node;              /* owned: KILN_MSG_EXECUTING's node id */
    char *text;              /* owned: the complete JSON text {"type": .., "data": ..} */
    size_t len;
} kiln__msg_t;

typedef struct kiln__outbox {
    pthread_mutex_t mu;
    kiln__msg_t *head, *tail;   /* guarded by mu */
    uv_async_t async;           /* wakes the loop, which drains */
} kiln__outbox_t;

/* A message for the outbox: text (taken) routed as `send` to client_id (copied; may be
 * NULL). NULL when out of memory (text is freed then). Any thread. */
kiln__msg_t *kiln__msg_new(kiln__send_t send, kiln__msg_kind_t kind, const char *client_id,
                           char *text, size_t len);
void kiln__msg_free(kiln__msg_t *m);

/* Appends m (taken) and wakes the loop. Any thread. */
void kiln__outbox_push(kiln__srv_t *srv, kiln__msg_t *m);

/* Pushes the status broadcast {"type": "status", "data": {"status": {"exec_info":
 * {"queue_remaining": n}}}}. Any thread; the queue calls it under its lock so that the
 * broadcasts leave in the order of the queue changes. */
void kiln__outbox_status(kiln__srv_t *srv, size_t remaining);

/* ---- HTTP requests ------------------------------------------------------------------ */

typedef void (*kiln__work_fn)(kiln__req_t *r);

typedef struct kiln__kv {
    char *key;               /* owned */
    char *value;             /* owned */
} kiln__kv_t;

#define KILN_REQ_MAX_HEADERS 6

/* One HTTP request and its response. The loop owns it; while work runs on the pool the
 * pool owns the body and response fields (the loop only clears wsi if the client goes). */
struct kiln__req {
    kiln__srv_t *srv;            /* borrowed */
    struct lws *wsi;             /* borrowed; NULL once the connection closed */
    int method;                  /* LWSHUMETH_* */
    char *path;                  /* owned: the path, without an /api prefix */
    bool api;                    /* the request came under /api/ */
    kiln__kv_t *args;            /* owned: decoded query arguments, in order */
    size_t n_args;
    char *content_type;          /* owned; "" when absent */
    kiln__sbuf_t body;           /* the request body so far */
    uint64_t body_expected;      /* Content-Length */
    bool body_too_big;           /* answered 413; the rest of the body is ignored */
    uv_work_t work;
    kiln__work_fn work_fn;
    bool in_work;                /* loop-only flags: the pool never writes these */
    bool dispatched;             /* handed to the router: the body is complete */
    uint64_t t0;                 /* uv_hrtime at the request line (logging) */
    /* the response */
    int status;
    const char *ctype;           /* static string */
    char *resp;                  /* owned body */
    size_t resp_len, resp_off;
    kiln__kv_t hdrs[KILN_REQ_MAX_HEADERS];
    size_t n_hdrs;
    bool responded, headers_sent, close_after, head_only;
};

/* The decoded value of query argument `name`, or NULL (borrowed). */
const char *kiln__req_arg(const kiln__req_t *r, const char *name);

/* Sets the response: status, content type (static string) and body (taken; malloc'd,
 * may be NULL when len is 0). Safe on the pool inside work; the framework sends it. */
void kiln__req_reply(kiln__req_t *r, int status, const char *ctype, char *body, size_t len);
/* The same with a JSON body (taken); a NULL json answers 500 "out of memory". */
void kiln__req_reply_json(kiln__req_t *r, int status, char *json);
/* The same with a copy of a static or borrowed JSON text. */
void kiln__req_reply_json_copy(kiln__req_t *r, int status, const char *json);
/* An error as {"error": {"type", "message", "details": "", "extra_info": {}}}. */
void kiln__req_reply_error(kiln__req_t *r, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Adds a response header (both strings copied); ignored beyond KILN_REQ_MAX_HEADERS. */
void kiln__req_add_header(kiln__req_t *r, const char *name, const char *value);
/* Runs fn(r) on the libuv pool; fn must reply. Call from a route handler (loop thread);
 * the response is sent when fn returns. */
void kiln__req_defer(kiln__req_t *r, kiln__work_fn fn);

/* The per-connection user data lws allocates for our protocol (zeroed). */
typedef struct kiln__pss {
    kiln__req_t *req;            /* owned: the HTTP request in progress */
    kiln__conn_t *conn;          /* the WebSocket connection (ws.c) */
} kiln__pss_t;

/* The HTTP side of the protocol callback (http_conn.c). */
int kiln__http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *pss,
                        void *in, size_t len);

/* Routes a complete request to its handler (http_routes.c); loop thread. */
void kiln__http_dispatch(kiln__req_t *r);

/* 0 when the request may proceed, else the HTTP status to answer (403) (origin.c).
 * Without --enable-cors-header: ComfyUI's origin-vs-host check for loopback hosts. */
int kiln__origin_check(kiln__srv_t *srv, struct lws *wsi);

/* Route handlers (loop thread). */
void kiln__route_prompt_post(kiln__req_t *r);
void kiln__route_prompt_get(kiln__req_t *r);
void kiln__route_queue_get(kiln__req_t *r);
void kiln__route_queue_post(kiln__req_t *r);
void kiln__route_interrupt(kiln__req_t *r);
void kiln__route_free(kiln__req_t *r);
void kiln__route_history_get(kiln__req_t *r);
void kiln__route_history_post(kiln__req_t *r);
void kiln__route_view(kiln__req_t *r);
void kiln__route_upload_image(kiln__req_t *r);
void kiln__route_upload_mask(kiln__req_t *r);
void kiln__route_object_info(kiln__req_t *r);
void kiln__route_system_stats(kiln__req_t *r);
void kiln__route_embeddings(kiln__req_t *r);
void kiln__route_models(kiln__req_t *r);
void kiln__route_extensions(kiln__req_t *r);
void kiln__route_features(kiln__req_t *r);
void kiln__route_static(kiln__req_t *r);

/* The /features object (also the reply to a client's feature_flags message). */
char *kiln__features_json(const kiln__srv_t *srv);

/* ---- prompt submission (route_prompt.c), shared by POST /prompt and the WebSocket --- */

/* Accepts or rejects a POST /prompt body: parses it, takes a queue number (before
 * validation, as ComfyUI does), validates, queues. *status is 200, 400 or 503 and *reply
 * the response JSON (malloc'd; NULL on OOM). default_client_id (may be NULL) stands in
 * for a missing client_id. ws_sid non-NULL (a WebSocket submission): the reply also goes
 * to that session as prompt_queued / prompt_error, pushed before the prompt is queued so
 * that it precedes the prompt's execution events. Pool thread: it may block on disk. */
void kiln__prompt_submit(kiln__srv_t *srv, const char *body, size_t len,
                         const char *default_client_id, const char *ws_sid, int *status,
                         char **reply);

/* ---- WebSocket (ws.c, ws_session.c) --------------------------------------------------- */

/* A buffer ready for lws_write: LWS_PRE bytes of headroom, then the payload. Shared by
 * the send queues that hold it (refs). Loop thread. */
typedef struct kiln__wsbuf {
    int refs;
    bool binary;
    bool status;             /* a status message: the next status replaces it unsent */
    uint64_t seq;            /* 0 when not numbered */
    size_t len;
    unsigned char data[];    /* LWS_PRE + len bytes */
} kiln__wsbuf_t;

/* One WebSocket connection. Loop thread only. */
struct kiln__conn {
    struct lws *wsi;             /* borrowed; NULL once lws closed it */
    kiln__srv_t *srv;            /* borrowed */
    kiln__session_t *session;    /* borrowed: the srv's session of this socket's sid */
    kiln__conn_t *prev, *next;   /* every open connection */
    kiln__wsbuf_t **outq;        /* owned ring of references */
    size_t out_head, out_count, out_cap;
    size_t out_bytes;
    kiln__sbuf_t rx;             /* the text message being reassembled */
    bool rx_skip;                /* the current message is too big: ignore its rest */
    char **inbox;                /* owned: complete messages waiting for the pool */
    size_t in_count;
    bool in_work;                /* one message at a time is handled on the pool */
    bool first_text_seen;        /* only the first text message may be feature_flags */
    bool preview_metadata;       /* negotiated supports_preview_metadata */
    uint64_t replay_seq;         /* next seq to replay from the session's ring; 0: live */
    bool closing;                /* a close frame goes out on the next writeable */
    int close_code;              /* LWS_CLOSE_STATUS_* for that frame */
    int refs;                    /* lws's reference plus one per work in flight */
};

/* A client id's state, kept after a disconnect so a reconnect can replay. Loop only. */
struct kiln__session {
    char *sid;                   /* owned */
    kiln__conn_t *conn;          /* borrowed; NULL while disconnected */
    uint64_t next_seq;           /* the seq of the next numbered message (from 1) */
    kiln__wsbuf_t **ring;        /* owned references: the latest numbered messages */
    size_t ring_head, ring_count, ring_bytes;
    uint64_t detached_ms;        /* when the last connection went (0 while connected) */
};

typedef struct kiln__ws {
    kiln__strmap_t *sessions;    /* sid -> kiln__session_t (owned) */
    kiln__conn_t *conns;         /* open connections */
    size_t n_conns;
    char *run_client;            /* owned: client of the running prompt (reconnect hint) */
    char *run_node;              /* owned: its executing node, NULL between nodes */
    uint64_t dropped_slow;       /* connections closed for overflowing their queue */
    size_t ring_bytes;           /* bytes held by all sessions' rings */
} kiln__ws_t;

/* Sets up srv->ws (0 or KILN_ENOMEM) / frees every session (after the loop ended). */
int kiln__ws_init(kiln__srv_t *srv);
void kiln__ws_free(kiln__srv_t *srv);
/* The WebSocket side of the protocol callback. */
int kiln__ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *pss,
                      void *in, size_t len);
/* Delivers every message waiting in the outbox; loop thread. */
void kiln__ws_drain(kiln__srv_t *srv);
/* Queues one message on a connection (a reference is taken). Closes a connection whose
 * queue overflows. Loop thread. */
void kiln__ws_enqueue(kiln__conn_t *c, kiln__wsbuf_t *b);
/* Writes the head of c's queue; from the writeable callback. -1: close the connection. */
int kiln__ws_write_one(kiln__conn_t *c);
/* Closes c with a close frame carrying code (LWS_CLOSE_STATUS_*); why NULL: no log. */
void kiln__ws_kick(kiln__conn_t *c, int code, const char *why);
/* Routes one numbered message to a session (created when missing): seq, ring, send. */
void kiln__ws_to_session(kiln__srv_t *srv, const char *sid, const char *text, size_t len);
/* The session of sid (borrowed; owned by srv->ws), created when missing and create is
 * set (evicting the longest-detached one past the limit); NULL when absent or on OOM. */
kiln__session_t *kiln__ws_session(kiln__srv_t *srv, const char *sid, bool create);
/* Replays the session's buffered messages with seq > since to c, paced by its queue. */
void kiln__ws_replay(kiln__conn_t *c, uint64_t since);
/* Drops sessions detached for longer than the idle limit; loop thread. */
void kiln__ws_sweep(kiln__srv_t *srv);
/* Closes every connection (shutdown); loop thread. */
void kiln__ws_close_all(kiln__srv_t *srv);
/* Bytes still queued on all connections. */
size_t kiln__ws_queued_bytes(const kiln__srv_t *srv);
/* A buffer holding a copy of data with one reference (NULL on OOM); unref frees it with
 * its last reference. Loop thread. */
kiln__wsbuf_t *kiln__wsbuf_new(const void *data, size_t len, bool binary);
void kiln__wsbuf_unref(kiln__wsbuf_t *b);
/* Drops a reference to c (lws's, or a pool job's); the last one frees it. Loop thread. */
void kiln__conn_unref(kiln__conn_t *c);

/* ---- queue (queue.c, queue_store.c) ----------------------------------------------- */

/* One accepted prompt. Immutable once queued, except `prompt`, which only the executor
 * touches. */
typedef struct kiln__qitem {
    double number;               /* priority: smallest first, ties by prompt_id */
    char number_text[32];        /* as /queue and history print it ("3" or "3.0") */
    char *prompt_id;             /* owned */
    char *client_id;             /* owned; NULL when absent or not a string */
    char *prompt_json;           /* owned: the validated prompt */
    char *extra_json;            /* owned: extra_data with client_id, secrets removed */
    char *outputs_json;          /* owned: JSON array of the output ids to execute */
    struct kiln_prompt *prompt;  /* owned; NULL after a reload until the executor builds it */
    uint64_t qid;                /* the journal's key, unique across restarts */
    int attempts;                /* starts that never finished (crash-loop guard) */
} kiln__qitem_t;

/* Frees an item and everything it owns (NULL is accepted). Any thread. */
void kiln__qitem_free(kiln__qitem_t *it);

/* Opens the queue and replays its journal (startup, main thread). 0 or KILN_E*. */
int kiln__queue_open(kiln__srv_t *srv, const char *journal_path, kiln__queue_t **out);
/* Compacts the journal to the pending items and frees the queue. */
void kiln__queue_close(kiln__queue_t *q);
/* The next server-assigned number (ComfyUI's counter). Any thread. */
int64_t kiln__queue_take_number(kiln__queue_t *q);
/* Queues it (taken), journals it and broadcasts the status. 0 or KILN_EIO/ENOMEM (it is
 * freed then). Any thread but the loop (it writes the journal). */
int kiln__queue_put(kiln__queue_t *q, kiln__qitem_t *it);

typedef enum kiln__qwait {
    KILN_QWAIT_ITEM = 0,         /* *out is the next prompt, now running */
    KILN_QWAIT_FREE,             /* POST /free asked to drop the caches */
    KILN_QWAIT_STOP              /* the server is shutting down */
} kiln__qwait_t;

/* Blocks until there is something to do; executor thread. */
kiln__qwait_t kiln__queue_wait(kiln__queue_t *q, kiln__qitem_t **out);
/* Ends the running item: requeue puts it back (shutdown), else it is journaled as done
 * and freed. Broadcasts the status. Executor thread. */
void kiln__queue_finish(kiln__queue_t *q, kiln__qitem_t *it, bool requeue);
/* Wakes the executor to drop the caches (POST /free) / to stop (shutdown). Any thread. */
void kiln__queue_request_free(kiln__queue_t *q);
void kiln__queue_stop(kiln__queue_t *q);
/* Pending + running, without taking the lock (the loop thread reads it). Any thread. */
size_t kiln__queue_remaining(kiln__queue_t *q);
/* True when prompt_id is the running prompt. */
bool kiln__queue_is_running(kiln__queue_t *q, const char *prompt_id);
/* GET /queue's body (malloc'd; NULL on OOM). */
char *kiln__queue_render(kiln__queue_t *q, size_t *len);
/* Removes pending items: every one (clear), or the first whose prompt_id matches
 * (delete, as ComfyUI). Journaled, status broadcast. Any thread but the loop. */
void kiln__queue_clear(kiln__queue_t *q);
void kiln__queue_delete(kiln__queue_t *q, const char *prompt_id);

/* The journal (queue_store.c): one JSON object per line; see docs/server.md. */
typedef struct kiln__journal {
    char *path;                  /* owned */
    int fd;                      /* append-only; -1 when unavailable */
    size_t records;              /* lines written since the last compaction */
} kiln__journal_t;

/* Replays path: returns the pending items (owned array of owned items, in journal order)
 * and the counter to continue from. A missing file is an empty queue. */
int kiln__journal_load(const char *path, kiln__qitem_t ***items, size_t *n,
                       int64_t *counter, uint64_t *next_qid);
/* Rewrites the journal with exactly these items (atomically) and reopens it for append. */
int kiln__journal_compact(kiln__journal_t *j, kiln__qitem_t *const *items, size_t n,
                          int64_t counter, uint64_t next_qid);
int kiln__journal_put(kiln__journal_t *j, const kiln__qitem_t *it);
/* op is "start", "done", "requeue" or "del". */
int kiln__journal_op(kiln__journal_t *j, const char *op, uint64_t qid);
void kiln__journal_close(kiln__journal_t *j);
/* The item as /queue and history print it: [number, id, prompt, extra, outputs]. */
void kiln__qitem_render(kiln__sbuf_t *b, const kiln__qitem_t *it);

/* ---- history (history.c) ---------------------------------------------------------- */

/* An empty history bounded by max_items entries and max_bytes of text (0: 10000 and
 * 256 MiB); NULL on OOM. free releases it (after kiln__history_close). */
kiln__history_t *kiln__history_new(size_t max_items, size_t max_bytes);
void kiln__history_free(kiln__history_t *h);
/* Replays the journal at path (a missing file is an empty history), compacts it and
 * keeps it open: from now on every change is appended. Startup, main thread. */
int kiln__history_open(kiln__history_t *h, const char *path);
/* Compacts and closes the journal (shutdown). */
void kiln__history_close(kiln__history_t *h);
/* Adds (or replaces) prompt_id's entry: entry is its JSON text (taken). Any thread but
 * the loop (it writes the journal). */
void kiln__history_add(kiln__history_t *h, const char *prompt_id, char *entry, size_t len);
/* GET /history's body: every entry (prompt_id NULL) with max_items/offset (negative =
 * absent) as ComfyUI applies them, or one entry ({} when unknown). Any thread. */
char *kiln__history_render(kiln__history_t *h, const char *prompt_id, long max_items,
                           long offset, size_t *len);
/* Removes one entry / every entry (journaled). Any thread but the loop. */
void kiln__history_delete(kiln__history_t *h, const char *prompt_id);
void kiln__history_clear(kiln__history_t *h);
/* Entries kept now. Any thread. */
size_t kiln__history_count(kiln__history_t *h);

/* ---- executor (executor.c, exec_events.c) --------------------------------------------- */

/* Starts the executor thread (0 or KILN_ENOMEM); it runs until kiln__queue_stop, then
 * signals srv->exec_done. Main thread. */
int kiln__executor_start(kiln__srv_t *srv);
/* Joins the thread after kiln__queue_stop; main thread. */
void kiln__executor_join(kiln__srv_t *srv);

/* ---- utilities (srv_util.c) ------------------------------------------------------- */

/* A random UUID v4, hyphenated lowercase / as 32 hex digits (ComfyUI's sids). */
void kiln__srv_uuid4(char out[37]);
void kiln__srv_uuid_hex(char out[33]);
/* Wall-clock milliseconds since the epoch. */
int64_t kiln__srv_now_ms(void);
/* Appends s as a JSON string literal (quotes and escapes added). */
void kiln__srv_json_str(kiln__sbuf_t *b, const char *s);
void kiln__srv_json_strn(kiln__sbuf_t *b, const char *s, size_t n);
/* Writes data to path through a temporary file and rename (never a torn file). */
int kiln__srv_write_atomic(const char *path, const void *data, size_t len);
/* Reads a whole regular file of at most max bytes into *data (malloc'd, NUL-terminated).
 * KILN_ENOTFOUND, KILN_ELIMIT, KILN_EIO. */
int kiln__srv_read_file(const char *path, size_t max, char **data, size_t *len);
/* mkdir -p; 0 or KILN_EIO. */
int kiln__srv_mkdirs(const char *path);
/* a + "/" + b, malloc'd (NULL on OOM). */
char *kiln__srv_join(const char *a, const char *b);
/* A static MIME type for a file name's extension ("application/octet-stream" else). */
const char *kiln__srv_mime(const char *name);

/* ---- the server ------------------------------------------------------------------- */

typedef struct kiln__srv_cfg {
    char *output_dir, *input_dir, *temp_dir, *user_dir, *models_dir;   /* owned */
    char *web_root;              /* owned: the folder served at /; NULL = placeholder */
    char *cors_origin;           /* owned; NULL = origin check */
    size_t max_body;             /* bytes */
    size_t ws_queue_bytes;       /* bytes a WebSocket send queue may hold */
    char *argv_json;             /* owned: the command line as a JSON array */
    bool verbose;
} kiln__srv_cfg_t;

struct kiln__srv {
    kiln_engine_t *engine;       /* borrowed */
    kiln__srv_cfg_t cfg;
    uv_loop_t loop;
    struct lws_context *lws[KILN_MAX_LISTEN]; /* one per listen address; NULL once
                                               * destroyed */
    size_t n_lws;
    kiln__queue_t *queue;        /* owned; any thread (locked inside) */
    kiln__history_t *history;    /* owned; any thread (locked inside) */
    kiln__outbox_t outbox;
    kiln__ws_t ws;               /* loop thread only */
    pthread_t exec_thread;
    bool exec_started;
    uv_async_t exec_done;        /* the executor thread ended */
    uv_signal_t sig_int, sig_term;
    uv_timer_t sweep;            /* session expiry */
    uv_timer_t stop_timer;       /* shutdown: bounded wait for queues to flush */
    atomic_bool stopping;        /* shutting down: no new prompts */
    int stop_phase;              /* loop thread: 0 serving, 1 stopping the executor,
                                  * 2 flushing sockets, 3 closing */
    int stop_ticks;              /* stop_timer ticks spent in the current phase */
    bool outbox_closed;          /* guarded by outbox.mu: the async handle is gone */
    char *history_path;          /* owned */
    int port;                    /* the port actually bound */
};

#endif
