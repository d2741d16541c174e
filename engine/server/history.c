/* Prompt history: entries keyed by prompt_id in completion order, each kept as its JSON
 * text, bounded by a count (ComfyUI's 10000) and by bytes, oldest dropped first. Saved
 * to <user>/kiln_history.json at shutdown and loaded at start. Any thread (one mutex). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "server/server_int.h"

typedef struct hentry {
    struct hentry *prev, *next;
    char *id;                    /* owned */
    char *text;                  /* owned: the HistoryEntry JSON */
    size_t len;
} hentry_t;

struct kiln__history {
    pthread_mutex_t mu;
    hentry_t *head, *tail;       /* oldest first */
    size_t n, bytes;
    size_t max_items, max_bytes;
    kiln__strmap_t *by_id;       /* id -> hentry_t (borrowed from the list) */
};

kiln__history_t *kiln__history_new(size_t max_items, size_t max_bytes)
{
    kiln__history_t *h = calloc(1, sizeof *h);
    if (!h || !(h->by_id = kiln__strmap_new())) {
        free(h);
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    h->max_items = max_items ? max_items : 10000;
    h->max_bytes = max_bytes ? max_bytes : (size_t)256 << 20;
    return h;
}

static void unlink_entry(kiln__history_t *h, hentry_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        h->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        h->tail = e->prev;
    kiln__strmap_remove(h->by_id, e->id);
    h->n--;
    h->bytes -= e->len;
    free(e->id);
    free(e->text);
    free(e);
}

static void clear_locked(kiln__history_t *h)
{
    while (h->head)
        unlink_entry(h, h->head);
}

void kiln__history_free(kiln__history_t *h)
{
    if (!h)
        return;
    clear_locked(h);
    kiln__strmap_free(h->by_id);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

void kiln__history_add(kiln__history_t *h, const char *prompt_id, char *entry, size_t len)
{
    hentry_t *e = calloc(1, sizeof *e);
    if (!e || !entry || !(e->id = strdup(prompt_id))) {
        kiln_logf(KILN_LOG_ERROR, "out of memory: history entry of %s dropped", prompt_id);
        free(e);
        free(entry);
        return;
    }
    e->text = entry;
    e->len = len;
    pthread_mutex_lock(&h->mu);
    hentry_t *old = kiln__strmap_get(h->by_id, prompt_id);
    if (old)
        unlink_entry(h, old);
    while (h->head && (h->n >= h->max_items || h->bytes + len > h->max_bytes))
        unlink_entry(h, h->head);
    if (kiln__strmap_put(h->by_id, prompt_id, e) != 0) {
        pthread_mutex_unlock(&h->mu);
        free(e->id);
        free(e->text);
        free(e);
        return;
    }
    e->prev = h->tail;
    if (h->tail)
        h->tail->next = e;
    else
        h->head = e;
    h->tail = e;
    h->n++;
    h->bytes += len;
    pthread_mutex_unlock(&h->mu);
}

static void put_entry(kiln__sbuf_t *b, const hentry_t *e, bool first)
{
    if (!first)
        kiln__sbuf_puts(b, ", ");
    kiln__srv_json_str(b, e->id);
    kiln__sbuf_puts(b, ": ");
    kiln__sbuf_append(b, e->text, e->len);
}

char *kiln__history_render(kiln__history_t *h, const char *prompt_id, long max_items,
                           long offset, size_t *len)
{
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_putc(&b, '{');
    pthread_mutex_lock(&h->mu);
    if (prompt_id) {
        hentry_t *e = kiln__strmap_get(h->by_id, prompt_id);
        if (e)
            put_entry(&b, e, true);
    } else {
        /* ComfyUI: max_items alone means the newest N, oldest first. */
        if (offset < 0 && max_items >= 0)
            offset = (long)h->n - max_items;
        long i = 0, taken = 0;
        for (hentry_t *e = h->head; e; e = e->next, i++) {
            if (i < offset)
                continue;
            put_entry(&b, e, taken++ == 0);
            if (max_items >= 0 && taken >= max_items)
                break;
        }
    }
    pthread_mutex_unlock(&h->mu);
    kiln__sbuf_putc(&b, '}');
    return kiln__sbuf_take(&b, len);
}

void kiln__history_delete(kiln__history_t *h, const char *prompt_id)
{
    pthread_mutex_lock(&h->mu);
    hentry_t *e = kiln__strmap_get(h->by_id, prompt_id);
    if (e)
        unlink_entry(h, e);
    pthread_mutex_unlock(&h->mu);
}

void kiln__history_clear(kiln__history_t *h)
{
    pthread_mutex_lock(&h->mu);
    clear_locked(h);
    pthread_mutex_unlock(&h->mu);
}

size_t kiln__history_count(kiln__history_t *h)
{
    pthread_mutex_lock(&h->mu);
    size_t n = h->n;
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* ---- persistence ---------------------------------------------------------------------- */

/* The file: {"kiln_history": 1, "entries": [[prompt_id, entry], ...]}, oldest first. */
int kiln__history_save(kiln__history_t *h, const char *path)
{
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_puts(&b, "{\"kiln_history\": 1, \"entries\": [");
    pthread_mutex_lock(&h->mu);
    for (hentry_t *e = h->head; e; e = e->next) {
        kiln__sbuf_puts(&b, e == h->head ? "\n[" : ",\n[");
        kiln__srv_json_str(&b, e->id);
        kiln__sbuf_puts(&b, ", ");
        kiln__sbuf_append(&b, e->text, e->len);
        kiln__sbuf_putc(&b, ']');
    }
    pthread_mutex_unlock(&h->mu);
    kiln__sbuf_puts(&b, "]}\n");
    int rc = b.failed ? KILN_ENOMEM : kiln__srv_write_atomic(path, b.data, b.len);
    kiln__sbuf_free(&b);
    return rc;
}

int kiln__history_load(kiln__history_t *h, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    int rc = kiln__srv_read_file(path, (size_t)1 << 32, &text, &len);
    if (rc == KILN_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    kiln__json_t *doc = NULL;
    char err[256];
    rc = kiln__json_parse(text, len, &doc, err, sizeof err);
    free(text);
    const kiln__json_t *entries = rc == 0 ? kiln__json_get(doc, "entries") : NULL;
    if (!entries || entries->type != KILN_JSON_ARRAY) {
        kiln_logf(KILN_LOG_WARN, "history %s is unreadable (%s); starting empty", path,
                  rc ? err : "no entries");
        kiln__json_free(doc);
        return 0;
    }
    for (const kiln__json_t *e = entries->child; e; e = e->next) {
        const kiln__json_t *id = kiln__json_at(e, 0), *entry = kiln__json_at(e, 1);
        if (!id || id->type != KILN_JSON_STRING || !entry)
            continue;
        size_t n = 0;
        char *t = kiln__json_dump(entry, KILN_JSON_COMPACT, &n);
        kiln__history_add(h, id->str, t, n);
    }
    kiln__json_free(doc);
    return 0;
}
