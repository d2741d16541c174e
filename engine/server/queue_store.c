/* The queue journal, <user>/kiln_queue.jsonl: how a restart loses no accepted prompt.
 * One JSON object per line, appended with a single write(2) before the change is
 * acknowledged (the 200 of POST /prompt leaves after its "put" line is in the file):
 *   {"counter": N, "next_qid": Q}                     first line after a compaction
 *   {"put": {"q", "number", "prompt_id", "prompt", "extra_data", "outputs", "attempts"}}
 *   {"start": q}  {"done": q}  {"requeue": q}  {"del": q}
 * Replaying it gives the pending prompts; a prompt that was running when the process
 * died is pending again, unless it already died running twice (a crash loop): then it is
 * dropped with an error in the log. Compaction rewrites the file through a temporary
 * and rename. Lines are not fsync'd: the journal survives the process (kill -9), not a
 * power cut. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json/json.h"
#include "server/server_int.h"

#define MAX_ATTEMPTS 2     /* starts without a finish before a prompt is dropped */

void kiln__qitem_render(kiln__sbuf_t *b, const kiln__qitem_t *it)
{
    kiln__sbuf_printf(b, "[%s, ", it->number_text);
    kiln__srv_json_str(b, it->prompt_id);
    kiln__sbuf_puts(b, ", ");
    kiln__sbuf_puts(b, it->prompt_json);
    kiln__sbuf_puts(b, ", ");
    kiln__sbuf_puts(b, it->extra_json);
    kiln__sbuf_puts(b, ", ");
    kiln__sbuf_puts(b, it->outputs_json);
    kiln__sbuf_putc(b, ']');
}

static void put_line(kiln__sbuf_t *b, const kiln__qitem_t *it)
{
    kiln__sbuf_printf(b, "{\"put\": {\"q\": %llu, \"number\": %s, \"prompt_id\": ",
                      (unsigned long long)it->qid, it->number_text);
    kiln__srv_json_str(b, it->prompt_id);
    kiln__sbuf_printf(b, ", \"prompt\": %s, \"extra_data\": %s, \"outputs\": %s, "
                      "\"attempts\": %d}}\n",
                      it->prompt_json, it->extra_json, it->outputs_json, it->attempts);
}

static int append(kiln__journal_t *j, const char *data, size_t len)
{
    if (j->fd < 0)
        return KILN_EIO;
    while (len > 0) {
        ssize_t w = write(j->fd, data, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            kiln_logf(KILN_LOG_ERROR, "queue journal %s: %s", j->path, strerror(errno));
            return KILN_EIO;
        }
        data += w;
        len -= (size_t)w;
    }
    j->records++;
    return 0;
}

int kiln__journal_put(kiln__journal_t *j, const kiln__qitem_t *it)
{
    kiln__sbuf_t b = KILN_SBUF_INIT;
    put_line(&b, it);
    int rc = b.failed ? KILN_ENOMEM : append(j, b.data, b.len);
    kiln__sbuf_free(&b);
    return rc;
}

int kiln__journal_op(kiln__journal_t *j, const char *op, uint64_t qid)
{
    char line[96];
    int n = snprintf(line, sizeof line, "{\"%s\": %llu}\n", op, (unsigned long long)qid);
    return append(j, line, (size_t)n);
}

int kiln__journal_compact(kiln__journal_t *j, kiln__qitem_t *const *items, size_t n,
                          int64_t counter, uint64_t next_qid)
{
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_printf(&b, "{\"counter\": %lld, \"next_qid\": %llu}\n", (long long)counter,
                      (unsigned long long)next_qid);
    for (size_t i = 0; i < n; i++)
        put_line(&b, items[i]);
    int rc = b.failed ? KILN_ENOMEM : kiln__srv_write_atomic(j->path, b.data, b.len);
    kiln__sbuf_free(&b);
    if (rc != 0)
        return rc;
    if (j->fd >= 0)
        close(j->fd);
    j->fd = open(j->path, O_WRONLY | O_APPEND | O_CLOEXEC);
    j->records = 0;
    if (j->fd < 0) {
        kiln_logf(KILN_LOG_ERROR, "queue journal %s: %s", j->path, strerror(errno));
        return KILN_EIO;
    }
    return 0;
}

void kiln__journal_close(kiln__journal_t *j)
{
    if (j->fd >= 0)
        close(j->fd);
    j->fd = -1;
}

/* ---- replay --------------------------------------------------------------------------- */

typedef struct replay {
    kiln__qitem_t **items;       /* in journal order; NULL slots were removed */
    size_t n, cap;
    int64_t counter;
    uint64_t next_qid;
} replay_t;

static char *dump(const kiln__json_t *j)
{
    return j ? kiln__json_dump(j, KILN_JSON_COMPACT, NULL) : NULL;
}

/* An item from a "put" record; NULL when the record is malformed or on OOM. */
static kiln__qitem_t *item_from(const kiln__json_t *put)
{
    const kiln__json_t *num = kiln__json_get(put, "number");
    const kiln__json_t *id = kiln__json_get(put, "prompt_id");
    const kiln__json_t *q = kiln__json_get(put, "q");
    const kiln__json_t *extra = kiln__json_get(put, "extra_data");
    if (!num || !kiln__json_is_number(num) || !id || id->type != KILN_JSON_STRING || !q ||
        q->type != KILN_JSON_INT || !extra || extra->type != KILN_JSON_OBJECT)
        return NULL;
    kiln__qitem_t *it = calloc(1, sizeof *it);
    if (!it)
        return NULL;
    char *nt = dump(num);
    if (nt && strlen(nt) < sizeof it->number_text)
        strcpy(it->number_text, nt);
    free(nt);
    it->number = num->d;
    it->qid = (uint64_t)q->i;
    it->attempts = (int)kiln__json_get_int(put, "attempts", 0);
    it->prompt_id = strdup(id->str);
    const char *client = kiln__json_get_string(extra, "client_id", NULL);
    it->client_id = client ? strdup(client) : NULL;
    it->prompt_json = dump(kiln__json_get(put, "prompt"));
    it->extra_json = dump(extra);
    it->outputs_json = dump(kiln__json_get(put, "outputs"));
    if (!it->number_text[0] || !it->prompt_id || (client && !it->client_id) ||
        !it->prompt_json || !it->extra_json || !it->outputs_json) {
        kiln__qitem_free(it);
        return NULL;
    }
    return it;
}

static kiln__qitem_t **find(replay_t *r, uint64_t qid)
{
    for (size_t i = r->n; i-- > 0;)
        if (r->items[i] && r->items[i]->qid == qid)
            return &r->items[i];
    return NULL;
}

static int apply_put(replay_t *r, const kiln__json_t *put)
{
    kiln__qitem_t *it = item_from(put);
    if (!it)
        return KILN_EPARSE;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        kiln__qitem_t **v = realloc(r->items, sizeof *v * cap);
        if (!v) {
            kiln__qitem_free(it);
            return KILN_ENOMEM;
        }
        r->items = v;
        r->cap = cap;
    }
    r->items[r->n++] = it;
    if (it->qid >= r->next_qid)
        r->next_qid = it->qid + 1;
    /* A server-assigned number is an int; the counter continues past it. */
    const kiln__json_t *num = kiln__json_get(put, "number");
    if (num->type == KILN_JSON_INT && !num->is_u64) {
        int64_t a = num->i < 0 ? -num->i : num->i;
        if (a >= r->counter)
            r->counter = a + 1;
    }
    return 0;
}

static int apply(replay_t *r, const kiln__json_t *rec)
{
    const kiln__json_t *m = rec->type == KILN_JSON_OBJECT ? rec->child : NULL;
    if (!m)
        return KILN_EPARSE;
    if (!strcmp(m->key, "put"))
        return apply_put(r, m);
    if (!strcmp(m->key, "counter")) {
        if (m->i > r->counter)
            r->counter = m->i;
        uint64_t nq = (uint64_t)kiln__json_get_int(rec, "next_qid", 1);
        if (nq > r->next_qid)
            r->next_qid = nq;
        return 0;
    }
    if (m->type != KILN_JSON_INT)
        return KILN_EPARSE;
    kiln__qitem_t **slot = find(r, (uint64_t)m->i);
    if (!slot)
        return 0;   /* an op on an item compacted away */
    if (!strcmp(m->key, "start")) {
        (*slot)->attempts++;
    } else if (!strcmp(m->key, "requeue")) {
        (*slot)->attempts--;
    } else if (!strcmp(m->key, "done") || !strcmp(m->key, "del")) {
        kiln__qitem_free(*slot);
        *slot = NULL;
    }
    return 0;
}

/* Keeps the live items, dropping crash-looping ones. */
static void collect(replay_t *r, kiln__qitem_t ***items, size_t *n)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++) {
        kiln__qitem_t *it = r->items[i];
        if (!it)
            continue;
        if (it->attempts >= MAX_ATTEMPTS) {
            kiln_logf(KILN_LOG_ERROR,
                      "queue: prompt %s was running each of the last %d times the server "
                      "stopped unexpectedly; it is dropped",
                      it->prompt_id, it->attempts);
            kiln__qitem_free(it);
            continue;
        }
        r->items[k++] = it;
    }
    *items = r->items;
    *n = k;
}

int kiln__journal_load(const char *path, kiln__qitem_t ***items, size_t *n, int64_t *counter,
                       uint64_t *next_qid)
{
    *items = NULL;
    *n = 0;
    *counter = 0;
    *next_qid = 1;
    char *text = NULL;
    size_t len = 0;
    int rc = kiln__srv_read_file(path, (size_t)1 << 34, &text, &len);
    if (rc == KILN_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    replay_t r = {.next_qid = 1};
    size_t line_no = 0, bad = 0;
    for (char *p = text, *end = text + len; p < end && rc == 0;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line_no++;
        kiln__json_t *rec = NULL;
        char err[128];
        if (ll > 0 && kiln__json_parse(p, ll, &rec, err, sizeof err) == 0) {
            int arc = apply(&r, rec);
            if (arc == KILN_ENOMEM)
                rc = arc;
            else if (arc != 0)
                bad++;
        } else if (ll > 0) {
            bad++;   /* a torn last line from a crash mid-write, or damage */
        }
        kiln__json_free(rec);
        p += ll + 1;
    }
    free(text);
    if (bad)
        kiln_logf(KILN_LOG_WARN, "queue journal %s: %zu unreadable line(s) skipped", path, bad);
    collect(&r, items, n);
    *counter = r.counter;
    *next_qid = r.next_qid;
    if (rc != 0) {
        for (size_t i = 0; i < *n; i++)
            kiln__qitem_free((*items)[i]);
        free(*items);
        *items = NULL;
        *n = 0;
    }
    return rc;
}
