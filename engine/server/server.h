/* `kiln serve`: a ComfyUI-compatible HTTP + WebSocket server on one libuv loop running
 * libwebsockets. This header is what the CLI needs to start it; the parts live in
 * server_int.h. See docs/server.md for the routes and the WebSocket protocol. */
#ifndef KILN_SERVER_SERVER_H
#define KILN_SERVER_SERVER_H

#include <kiln/kiln.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct kiln__server_opts {
    const char *listen;         /* (optional) comma-separated addresses; default 127.0.0.1 */
    int port;                   /* 0 picks a free port (the chosen one is printed) */
    size_t max_upload_bytes;    /* request body limit; 0 = 100 MiB (ComfyUI's default) */
    const char *cors_origin;    /* (optional) --enable-cors-header value; replaces the
                                 * origin check with permissive CORS headers */
    const char *base_dir;       /* (optional) default "." */
    const char *output_dir;     /* (optional) default <base>/output */
    const char *input_dir;      /* (optional) default <base>/input */
    const char *temp_dir;       /* (optional) default <base>/temp */
    const char *user_dir;       /* (optional) default <base>/user: queue journal, history */
    const char *web_root;       /* (optional) --front-end-root; default ./web (web/dist
                                 * when it exists) */
    size_t history_max_items;   /* 0 = 10000 (ComfyUI's bound) */
    size_t history_max_bytes;   /* 0 = 256 MiB of stored history text */
    size_t ws_queue_bytes;      /* bytes queued per WebSocket before the client is
                                 * dropped as too slow; 0 = 16 MiB */
    bool verbose;               /* log every request */
    int argc;                   /* the command line, for /system_stats (borrowed) */
    char **argv;
} kiln__server_opts_t;

/* Serves on the options' address and port until SIGINT or SIGTERM, then shuts down
 * cleanly: interrupts the running prompt (it goes back to the queue), closes the
 * sockets, writes the queue journal and the history. The engine is borrowed and must
 * outlive the call. Prints "kiln: serving on http://ADDR:PORT" once listening. Returns 0
 * after a clean shutdown, or a KILN_E* code when the server could not start (the reason
 * is logged). Call from the main thread; it blocks SIGPIPE process-wide. */
int kiln__server_run(kiln_engine_t *e, const kiln__server_opts_t *o);

#endif
