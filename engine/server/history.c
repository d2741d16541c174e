/* Prompt history: entries keyed by prompt_id in completion order, each kept as its JSON
 * text, bounded by a count (ComfyUI's 10000) and by bytes, oldest dropped first. Every
 * change is appended to <user>/kiln_history.jsonl as it happens (history survives a
 * killed server like the queue does), one JSON object per line:
 *   {"add": [prompt_id, entry]}   {"del": prompt_id}   {"clear": true}
 * The file is rewritten with just the live entries at start, at shutdown and when it
 * grows to twice their size. Any thread but the loop (writes happen under the mutex). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    char *path;                  /* owned: the journal; NULL before kiln__history_open */
    int fd;                      /* append-only; -1 when closed */
    size_t file_bytes;           /* bytes in the journal */
};

static void journal(kiln__history_t *h, kiln__sbuf_t *line);
static void maybe_compact(kiln__history_t *h);

kiln__history_t *kiln__history_new(size_t max_items, size_t max_bytes)
{
    kiln__history_t *h = calloc(1, sizeof *h);
    if (!h || !(h->by_id = kiln__strmap_new())) {
        free(h);
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    h->fd = -1;
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
    if (h->fd >= 0)
        close(h->fd);
    free(h->path);
    kiln__strmap_free(h->by_id);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

/* Inserts an entry (taken) under the lock, evicting the oldest beyond the bounds. */
static void insert_locked(kiln__history_t *h, const char *prompt_id, char *entry, size_t len)
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
    hentry_t *old = kiln__strmap_get(h->by_id, prompt_id);
    if (old)
        unlink_entry(h, old);
    while (h->head && (h->n >= h->max_items || h->bytes + len > h->max_bytes))
        unlink_entry(h, h->head);
    if (kiln__strmap_put(h->by_id, prompt_id, e) != 0) {
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
}

/* {"add": [prompt_id, entry]} */
static void add_line(kiln__sbuf_t *b, const char *id, const char *text, size_t len)
{
    kiln__sbuf_puts(b, "{\"add\": [");
    kiln__srv_json_str(b, id);
    kiln__sbuf_puts(b, ", ");
    kiln__sbuf_append(b, text, len);
    kiln__sbuf_puts(b, "]}\n");
}

void kiln__history_add(kiln__history_t *h, const char *prompt_id, char *entry, size_t len)
{
    pthread_mutex_lock(&h->mu);
    if (entry) {
        kiln__sbuf_t line = KILN_SBUF_INIT;
        add_line(&line, prompt_id, entry, len);
        journal(h, &line);
    }
    insert_locked(h, prompt_id, entry, len);
    maybe_compact(h);
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
    if (e) {
        kiln__sbuf_t line = KILN_SBUF_INIT;
        kiln__sbuf_puts(&line, "{\"del\": ");
        kiln__srv_json_str(&line, prompt_id);
        kiln__sbuf_puts(&line, "}\n");
        journal(h, &line);
        unlink_entry(h, e);
    }
    pthread_mutex_unlock(&h->mu);
}

void kiln__history_clear(kiln__history_t *h)
{
    pthread_mutex_lock(&h->mu);
    kiln__sbuf_t line = KILN_SBUF_INIT;
    kiln__sbuf_puts(&line, "{\"clear\": true}\n");
    journal(h, &line);
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

/* ---- the journal (under h->mu) -------------------------------------------------------- */

/* Appends line (freed) with one write. A failed write is logged; the history in memory
 * stays right, only a restart would miss the change. */
static void journal(kiln__history_t *h, kiln__sbuf_t *line)
{
    const char *p = line->data;
    size_t left = line->failed ? 0 : line->len;
    while (h->fd >= 0 && left > 0) {
        ssize_t w = write(h->fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            kiln_logf(KILN_LOG_ERROR, "history journal %s: %s", h->path, strerror(errno));
            break;
        }
        p += w;
        left -= (size_t)w;
        h->file_bytes += (size_t)w;
    }
    kiln__sbuf_free(line);
}

/* Rewrites the journal with the live entries and reopens it for appending. */
static int compact(kiln__history_t *h)
{
    kiln__sbuf_t b = KILN_SBUF_INIT;
    for (hentry_t *e = h->head; e; e = e->next)
        add_line(&b, e->id, e->text, e->len);
    int rc = b.failed ? KILN_ENOMEM : kiln__srv_write_atomic(h->path, b.data ? b.data : "",
                                                            b.len);
    size_t size = b.len;
    kiln__sbuf_free(&b);
    if (rc != 0)
        return rc;
    if (h->fd >= 0)
        close(h->fd);
    h->fd = open(h->path, O_WRONLY | O_APPEND | O_CLOEXEC);
    h->file_bytes = size;
    if (h->fd < 0) {
        kiln_logf(KILN_LOG_ERROR, "history journal %s: %s", h->path, strerror(errno));
        return KILN_EIO;
    }
    return 0;
}

static void maybe_compact(kiln__history_t *h)
{
    if (h->fd >= 0 && h->file_bytes > 2 * h->bytes + ((size_t)1 << 20))
        compact(h);
}

/* Applies one journal line; false when it is unreadable. */
static bool replay(kiln__history_t *h, const char *line, size_t len)
{
    kiln__json_t *rec = NULL;
    char err[64];
    if (kiln__json_parse(line, len, &rec, err, sizeof err) != 0)
        return false;
    const kiln__json_t *add = kiln__json_get(rec, "add");
    const kiln__json_t *id = kiln__json_at(add, 0), *entry = kiln__json_at(add, 1);
    const char *del = kiln__json_get_string(rec, "del", NULL);
    bool ok = true;
    if (id && id->type == KILN_JSON_STRING && entry) {
        size_t n = 0;
        char *text = kiln__json_dump(entry, KILN_JSON_COMPACT, &n);
        insert_locked(h, id->str, text, n);
    } else if (del) {
        hentry_t *e = kiln__strmap_get(h->by_id, del);
        if (e)
            unlink_entry(h, e);
    } else if (kiln__json_get(rec, "clear")) {
        clear_locked(h);
    } else {
        ok = false;
    }
    kiln__json_free(rec);
    return ok;
}

int kiln__history_open(kiln__history_t *h, const char *path)
{
    if (!(h->path = strdup(path)))
        return KILN_ENOMEM;
    char *text = NULL;
    size_t len = 0;
    int rc = kiln__srv_read_file(path, (size_t)1 << 34, &text, &len);
    if (rc != 0 && rc != KILN_ENOTFOUND)
        return rc;
    size_t bad = 0;
    pthread_mutex_lock(&h->mu);
    for (char *p = text, *end = text + len; p && p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n > 0 && !replay(h, p, n))
            bad++;
        p += n + 1;
    }
    free(text);
    rc = compact(h);
    pthread_mutex_unlock(&h->mu);
    if (bad)
        kiln_logf(KILN_LOG_WARN, "history %s: %zu unreadable line(s) skipped", path, bad);
    return rc;
}

void kiln__history_close(kiln__history_t *h)
{
    pthread_mutex_lock(&h->mu);
    if (h->fd >= 0) {
        compact(h);
        close(h->fd);
        h->fd = -1;
    }
    pthread_mutex_unlock(&h->mu);
}
