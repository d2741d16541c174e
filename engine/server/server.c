/* `kiln serve`'s lifetime: the configuration, one libuv loop that libwebsockets joins
 * through its libuv event-library plugin (Debian builds lws 4.1 with LWS_WITH_LIBUV as a
 * run-time loaded evlib plugin; lws takes our loop through foreign_loops; one lws
 * context per listen address), the queue, the history, the executor thread, and a
 * staged shutdown on SIGINT/SIGTERM:
 *   1. stop taking prompts, interrupt the running one (it goes back to the queue);
 *   2. once the executor has stopped, give sockets up to a second to flush;
 *   3. close the sockets, destroy the lws contexts, close our handles; the loop ends;
 * then the queue journal and the history journal are compacted. A second signal exits
 * at once (the journal is consistent at every moment, so nothing accepted is lost). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/server_int.h"

#define FLUSH_MS 1000      /* longest wait for sockets to drain at shutdown */
#define TICK_MS 50

/* ---- the protocol callback ------------------------------------------------------------ */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_HTTP:
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    case LWS_CALLBACK_HTTP_WRITEABLE:
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        return kiln__http_callback(wsi, reason, user, in, len);
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
    case LWS_CALLBACK_ESTABLISHED:
    case LWS_CALLBACK_RECEIVE:
    case LWS_CALLBACK_SERVER_WRITEABLE:
    case LWS_CALLBACK_CLOSED:
        return kiln__ws_callback(wsi, reason, user, in, len);
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    {"kiln", callback, sizeof(kiln__pss_t), 64 * 1024, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- shutdown ------------------------------------------------------------------------- */

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void final_close(kiln__srv_t *srv)
{
    srv->stop_phase = 3;
    /* With a foreign loop lws finishes destroying a context as its handles close;
     * info.pcontext makes it clear srv->lws[i] when done (finish() completes the rest). */
    for (size_t i = 0; i < srv->n_lws; i++)
        if (srv->lws[i])
            lws_context_destroy(srv->lws[i]);
    pthread_mutex_lock(&srv->outbox.mu);
    srv->outbox_closed = true;
    pthread_mutex_unlock(&srv->outbox.mu);
    close_handle((uv_handle_t *)&srv->outbox.async);
    close_handle((uv_handle_t *)&srv->exec_done);
    close_handle((uv_handle_t *)&srv->sig_int);
    close_handle((uv_handle_t *)&srv->sig_term);
    close_handle((uv_handle_t *)&srv->sweep);
    close_handle((uv_handle_t *)&srv->stop_timer);
}

static void stop_tick(uv_timer_t *t)
{
    kiln__srv_t *srv = t->data;
    if (srv->stop_phase == 1) {
        /* The executor may have started a prompt just before the flag was seen. */
        kiln_engine_interrupt(srv->engine);
        return;
    }
    if (srv->stop_phase == 2) {
        srv->stop_ticks++;
        if (kiln__ws_queued_bytes(srv) > 0 && srv->stop_ticks * TICK_MS < FLUSH_MS)
            return;
        kiln__ws_close_all(srv);
        srv->stop_phase = 3;
        srv->stop_ticks = 0;
        return;
    }
    if (srv->stop_phase == 3 && (srv->ws.n_conns == 0 || ++srv->stop_ticks * TICK_MS >= 500))
        final_close(srv);
}

static void on_exec_done(uv_async_t *a)
{
    kiln__srv_t *srv = a->data;
    kiln__ws_drain(srv);
    if (srv->stop_phase == 1) {
        srv->stop_phase = 2;
        srv->stop_ticks = 0;
    }
}

static void begin_stop(kiln__srv_t *srv, const char *why)
{
    kiln_logf(KILN_LOG_INFO, "%s: shutting down", why);
    atomic_store(&srv->stopping, true);
    srv->stop_phase = 1;
    kiln__queue_stop(srv->queue);
    kiln_engine_interrupt(srv->engine);
    uv_timer_start(&srv->stop_timer, stop_tick, TICK_MS, TICK_MS);
}

static void on_signal(uv_signal_t *s, int signum)
{
    kiln__srv_t *srv = s->data;
    if (srv->stop_phase > 0) {
        fprintf(stderr, "kiln: second signal, exiting now\n");
        _exit(130);
    }
    begin_stop(srv, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void on_outbox(uv_async_t *a)
{
    kiln__ws_drain(a->data);
}

static void on_sweep(uv_timer_t *t)
{
    kiln__ws_sweep(t->data);
}

/* ---- configuration -------------------------------------------------------------------- */

static bool is_dir(const char *p)
{
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *dir_or(const char *given, const char *base, const char *leaf)
{
    return given && *given ? strdup(given) : kiln__srv_join(base, leaf);
}

static char *argv_json(int argc, char **argv)
{
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_putc(&b, '[');
    for (int i = 0; i < argc; i++) {
        if (i)
            kiln__sbuf_puts(&b, ", ");
        kiln__srv_json_str(&b, argv[i]);
    }
    kiln__sbuf_putc(&b, ']');
    return kiln__sbuf_take(&b, NULL);
}

static int configure(kiln__srv_t *srv, const kiln__server_opts_t *o)
{
    kiln__srv_cfg_t *c = &srv->cfg;
    const char *base = o->base_dir && *o->base_dir ? o->base_dir : ".";
    c->output_dir = dir_or(o->output_dir, base, "output");
    c->input_dir = dir_or(o->input_dir, base, "input");
    c->temp_dir = dir_or(o->temp_dir, base, "temp");
    c->user_dir = dir_or(o->user_dir, base, "user");
    c->models_dir = kiln__srv_join(base, "models");
    c->max_body = o->max_upload_bytes ? o->max_upload_bytes : (size_t)100 << 20;
    c->ws_queue_bytes = o->ws_queue_bytes ? o->ws_queue_bytes : (size_t)16 << 20;
    c->cors_origin = o->cors_origin ? strdup(o->cors_origin) : NULL;
    c->argv_json = argv_json(o->argc, o->argv);
    c->verbose = o->verbose;
    const char *root = o->web_root && *o->web_root ? o->web_root : "web";
    char *dist = kiln__srv_join(root, "dist");
    c->web_root = is_dir(dist) ? dist : is_dir(root) ? strdup(root) : NULL;
    if (c->web_root != dist)
        free(dist);
    srv->history_path = c->user_dir ? kiln__srv_join(c->user_dir, "kiln_history.jsonl") : NULL;
    if (!c->output_dir || !c->input_dir || !c->temp_dir || !c->user_dir || !c->models_dir ||
        !c->argv_json || !srv->history_path || (o->cors_origin && !c->cors_origin))
        return KILN_ENOMEM;
    if (kiln__srv_mkdirs(c->user_dir) != 0) {
        kiln_logf(KILN_LOG_ERROR, "cannot create the user folder '%s'", c->user_dir);
        return KILN_EIO;
    }
    if (!c->web_root)
        kiln_logf(KILN_LOG_INFO, "no web folder at '%s': / serves a placeholder page", root);
    return 0;
}

static void config_free(kiln__srv_cfg_t *c)
{
    free(c->output_dir);
    free(c->input_dir);
    free(c->temp_dir);
    free(c->user_dir);
    free(c->models_dir);
    free(c->web_root);
    free(c->cors_origin);
    free(c->argv_json);
}

/* ---- libwebsockets -------------------------------------------------------------------- */

static void lws_log(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    kiln_logf(level == LLL_ERR ? KILN_LOG_ERROR : KILN_LOG_WARN, "lws: %.*s", (int)n, line);
}

/* One lws context per listen address, all on the same port and the same loop. (Several
 * vhosts on one port inside one context trip an assertion of lws 4.1 when the context is
 * destroyed; separate contexts never share their listen sockets.) */
static int listen_on(kiln__srv_t *srv, const char *addr, int port)
{
    void *loops[1] = {&srv->loop};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    /* The context itself listens nowhere: a vhost that cannot bind then fails alone and
     * the context is destroyed as usual (a context whose creation fails leaves handles
     * of lws's unloaded libuv plugin on our loop). */
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN |
                   LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.foreign_loops = loops;
    info.pcontext = &srv->lws[srv->n_lws];
    info.user = srv;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.max_http_header_data = 16 * 1024;
    info.max_http_header_pool = 1024;
    info.pt_serv_buf_size = 64 * 1024;
    info.timeout_secs = 30;
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx) {
        kiln_logf(KILN_LOG_ERROR, "libwebsockets: cannot create a context (is its libuv "
                                  "event-library plugin, libwebsockets-evlib_uv, installed?)");
        return KILN_EIO;
    }
    srv->lws[srv->n_lws++] = ctx;
    bool v6 = strchr(addr, ':') != NULL;
    struct lws_context_creation_info vi;
    memset(&vi, 0, sizeof vi);
    vi.vhost_name = addr;
    vi.iface = addr;
    vi.port = port;
    vi.protocols = protocols;
    vi.keepalive_timeout = 60;
    vi.options = v6 ? LWS_SERVER_OPTION_IPV6_V6ONLY_MODIFY | LWS_SERVER_OPTION_IPV6_V6ONLY_VALUE
                    : LWS_SERVER_OPTION_DISABLE_IPV6;
    struct lws_vhost *vh = lws_create_vhost(ctx, &vi);
    if (!vh) {
        kiln_logf(KILN_LOG_ERROR, "cannot listen on %s port %d", addr, port);
        return KILN_EIO;
    }
    /* Port 0 picks a free port; the other addresses then share it. */
    srv->port = lws_get_vhost_listen_port(vh);
    printf("kiln: serving on http://%s%s%s:%d\n", v6 ? "[" : "", addr, v6 ? "]" : "",
           srv->port);
    return 0;
}

static int start_lws(kiln__srv_t *srv, const kiln__server_opts_t *o)
{
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
    char list[1024];
    snprintf(list, sizeof list, "%s", o->listen && *o->listen ? o->listen : "127.0.0.1");
    srv->port = o->port;
    char *save = NULL;
    int rc = 0;
    for (char *addr = strtok_r(list, ",", &save); addr && rc == 0;
         addr = strtok_r(NULL, ",", &save)) {
        if (srv->n_lws == KILN_MAX_LISTEN) {
            kiln_logf(KILN_LOG_ERROR, "at most %d listen addresses", KILN_MAX_LISTEN);
            rc = KILN_EINVAL;
        } else {
            rc = listen_on(srv, addr, srv->port);
        }
    }
    fflush(stdout);
    return rc;
}

/* ---- run ------------------------------------------------------------------------------ */

static int start(kiln__srv_t *srv, const kiln__server_opts_t *o)
{
    int rc = configure(srv, o);
    if (rc != 0)
        return rc;
    srv->history = kiln__history_new(o->history_max_items, o->history_max_bytes);
    if (!srv->history)
        return KILN_ENOMEM;
    rc = kiln__history_open(srv->history, srv->history_path);
    if (rc != 0) {
        kiln_logf(KILN_LOG_ERROR, "cannot open the history %s", srv->history_path);
        return rc;
    }
    char *journal = kiln__srv_join(srv->cfg.user_dir, "kiln_queue.jsonl");
    rc = journal ? kiln__queue_open(srv, journal, &srv->queue) : KILN_ENOMEM;
    free(journal);
    if (rc == 0)
        rc = kiln__ws_init(srv);
    if (rc != 0)
        return rc;
    uv_signal_start(&srv->sig_int, on_signal, SIGINT);
    uv_signal_start(&srv->sig_term, on_signal, SIGTERM);
    uv_timer_start(&srv->sweep, on_sweep, 30000, 30000);
    rc = start_lws(srv, o);
    if (rc == 0)
        rc = kiln__executor_start(srv);
    return rc;
}

static void init_handles(kiln__srv_t *srv)
{
    uv_async_init(&srv->loop, &srv->outbox.async, on_outbox);
    uv_async_init(&srv->loop, &srv->exec_done, on_exec_done);
    uv_signal_init(&srv->loop, &srv->sig_int);
    uv_signal_init(&srv->loop, &srv->sig_term);
    uv_timer_init(&srv->loop, &srv->sweep);
    uv_timer_init(&srv->loop, &srv->stop_timer);
    srv->outbox.async.data = srv->exec_done.data = srv;
    srv->sig_int.data = srv->sig_term.data = srv;
    srv->sweep.data = srv->stop_timer.data = srv;
}

static void finish(kiln__srv_t *srv)
{
    /* The second call of lws's foreign-loop teardown, then the handles it closes. */
    bool again = false;
    for (size_t i = 0; i < srv->n_lws; i++)
        if (srv->lws[i]) {
            lws_context_destroy(srv->lws[i]);
            again = true;
        }
    if (again)
        uv_run(&srv->loop, UV_RUN_DEFAULT);
    kiln__executor_join(srv);
    if (srv->queue)
        kiln__queue_close(srv->queue);
    if (srv->history) {
        kiln__history_close(srv->history);
        kiln__history_free(srv->history);
    }
    for (kiln__msg_t *m = srv->outbox.head, *next; m; m = next) {
        next = m->next;
        kiln__msg_free(m);
    }
    kiln__ws_free(srv);
    if (uv_loop_close(&srv->loop) != 0)
        kiln_logf(KILN_LOG_WARN, "server: the event loop still had open handles at exit");
    pthread_mutex_destroy(&srv->outbox.mu);
    free(srv->history_path);
    config_free(&srv->cfg);
    free(srv);
}

int kiln__server_run(kiln_engine_t *e, const kiln__server_opts_t *o)
{
    signal(SIGPIPE, SIG_IGN);
    kiln__srv_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return KILN_ENOMEM;
    srv->engine = e;
    pthread_mutex_init(&srv->outbox.mu, NULL);
    if (uv_loop_init(&srv->loop) != 0) {
        pthread_mutex_destroy(&srv->outbox.mu);
        free(srv);
        return KILN_EIO;
    }
    init_handles(srv);
    int rc = start(srv, o);
    if (rc != 0) {
        /* Unwind through the normal shutdown so that every handle is closed. */
        atomic_store(&srv->stopping, true);
        if (srv->queue)
            kiln__queue_stop(srv->queue);
        if (!srv->exec_started)
            final_close(srv);
        else
            begin_stop(srv, "startup failed");
    }
    uv_run(&srv->loop, UV_RUN_DEFAULT);
    finish(srv);
    return rc;
}
