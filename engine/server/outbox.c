/* The outbox: how WebSocket messages produced on other threads (executor events, queue
 * status changes, pool work) reach the loop. A locked singly linked list in production
 * order plus a uv_async that wakes the loop, which drains it (ws_session.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_int.h"

kiln__msg_t *kiln__msg_new(kiln__send_t send, kiln__msg_kind_t kind, const char *client_id,
                           char *text, size_t len)
{
    kiln__msg_t *m = text ? calloc(1, sizeof *m) : NULL;
    if (!m) {
        free(text);
        return NULL;
    }
    m->send = send;
    m->kind = kind;
    m->text = text;
    m->len = len;
    if (client_id && !(m->client_id = strdup(client_id))) {
        kiln__msg_free(m);
        return NULL;
    }
    return m;
}

void kiln__msg_free(kiln__msg_t *m)
{
    if (!m)
        return;
    free(m->client_id);
    free(m->node);
    free(m->text);
    free(m);
}

void kiln__outbox_push(kiln__srv_t *srv, kiln__msg_t *m)
{
    if (!m) {
        kiln_logf(KILN_LOG_ERROR, "out of memory: a WebSocket message was dropped");
        return;
    }
    kiln__outbox_t *ob = &srv->outbox;
    pthread_mutex_lock(&ob->mu);
    if (srv->outbox_closed) {
        /* Shutdown closed the sockets: nobody is left to receive it. */
        pthread_mutex_unlock(&ob->mu);
        kiln__msg_free(m);
        return;
    }
    if (ob->tail)
        ob->tail->next = m;
    else
        ob->head = m;
    ob->tail = m;
    uv_async_send(&ob->async);
    pthread_mutex_unlock(&ob->mu);
}

void kiln__outbox_status(kiln__srv_t *srv, size_t remaining)
{
    char buf[128];
    int n = snprintf(buf, sizeof buf,
                     "{\"type\": \"status\", \"data\": {\"status\": {\"exec_info\": "
                     "{\"queue_remaining\": %zu}}}}",
                     remaining);
    kiln__outbox_push(srv, kiln__msg_new(KILN_SEND_ALL, KILN_MSG_STATUS, NULL,
                                         strndup(buf, (size_t)n), (size_t)n));
}
