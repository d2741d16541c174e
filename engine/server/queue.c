/* The prompt queue: ComfyUI's priority heap of (number, prompt_id) with its counter, the
 * running item, and the hooks that journal every change (queue_store.c) and broadcast
 * the status. The heap follows Python's heapq step for step, so GET /queue lists pending
 * items in the same unsorted heap order ComfyUI shows. One mutex guards everything; the
 * executor sleeps on the condition variable. The loop thread only reads `remaining`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_int.h"

struct kiln__queue {
    kiln__srv_t *srv;                /* borrowed */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    kiln__qitem_t **heap;            /* owned items */
    size_t n, cap;
    kiln__qitem_t *running;          /* borrowed: the executor owns it until finish */
    bool free_req, stop;
    _Atomic int64_t counter;         /* ComfyUI's server number */
    uint64_t next_qid;
    atomic_size_t remaining;         /* pending + running, readable without the lock */
    kiln__journal_t journal;
};

void kiln__qitem_free(kiln__qitem_t *it)
{
    if (!it)
        return;
    free(it->prompt_id);
    free(it->client_id);
    free(it->prompt_json);
    free(it->extra_json);
    free(it->outputs_json);
    kiln_prompt_free(it->prompt);
    free(it);
}

/* ---- heapq ---------------------------------------------------------------------------- */

static bool less(const kiln__qitem_t *a, const kiln__qitem_t *b)
{
    if (a->number != b->number)
        return a->number < b->number;
    int c = strcmp(a->prompt_id, b->prompt_id);
    return c ? c < 0 : a->qid < b->qid;
}

static void sift_down(kiln__qitem_t **h, size_t start, size_t pos)
{
    kiln__qitem_t *item = h[pos];
    while (pos > start) {
        size_t parent = (pos - 1) >> 1;
        if (!less(item, h[parent]))
            break;
        h[pos] = h[parent];
        pos = parent;
    }
    h[pos] = item;
}

static void sift_up(kiln__qitem_t **h, size_t n, size_t pos)
{
    size_t start = pos;
    kiln__qitem_t *item = h[pos];
    size_t child = 2 * pos + 1;
    while (child < n) {
        size_t right = child + 1;
        if (right < n && !less(h[child], h[right]))
            child = right;
        h[pos] = h[child];
        pos = child;
        child = 2 * pos + 1;
    }
    h[pos] = item;
    sift_down(h, start, pos);
}

static void heapify(kiln__qitem_t **h, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_up(h, n, i);
}

static int heap_push(kiln__queue_t *q, kiln__qitem_t *it)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        kiln__qitem_t **h = realloc(q->heap, sizeof *h * cap);
        if (!h)
            return KILN_ENOMEM;
        q->heap = h;
        q->cap = cap;
    }
    q->heap[q->n++] = it;
    sift_down(q->heap, 0, q->n - 1);
    return 0;
}

static kiln__qitem_t *heap_pop(kiln__queue_t *q)
{
    kiln__qitem_t *last = q->heap[--q->n];
    if (q->n == 0)
        return last;
    kiln__qitem_t *top = q->heap[0];
    q->heap[0] = last;
    sift_up(q->heap, q->n, 0);
    return top;
}

/* ---- changes (all under q->mu) -------------------------------------------------------- */

static void changed(kiln__queue_t *q)
{
    size_t n = q->n + (q->running ? 1 : 0);
    atomic_store(&q->remaining, n);
    kiln__outbox_status(q->srv, n);
}

/* Rewrites the journal when it holds many more records than live items. */
static void maybe_compact(kiln__queue_t *q)
{
    size_t live = q->n + (q->running ? 1 : 0);
    if (q->journal.records < 2 * live + 1024)
        return;
    kiln__qitem_t **all = malloc(sizeof *all * (live + 1));
    if (!all)
        return;
    size_t k = 0;
    if (q->running)
        all[k++] = q->running;
    if (q->n)
        memcpy(all + k, q->heap, sizeof *all * q->n);
    kiln__journal_compact(&q->journal, all, live, atomic_load(&q->counter), q->next_qid);
    free(all);
}

int kiln__queue_put(kiln__queue_t *q, kiln__qitem_t *it)
{
    pthread_mutex_lock(&q->mu);
    it->qid = q->next_qid++;
    int rc = kiln__journal_put(&q->journal, it);
    if (rc == 0)
        rc = heap_push(q, it);
    if (rc == 0) {
        changed(q);
        maybe_compact(q);
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    if (rc != 0)
        kiln__qitem_free(it);
    return rc;
}

kiln__qwait_t kiln__queue_wait(kiln__queue_t *q, kiln__qitem_t **out)
{
    *out = NULL;
    pthread_mutex_lock(&q->mu);
    while (!q->stop && !q->free_req && q->n == 0)
        pthread_cond_wait(&q->cv, &q->mu);
    kiln__qwait_t why = KILN_QWAIT_STOP;
    if (q->stop) {
        why = KILN_QWAIT_STOP;
    } else if (q->free_req) {
        q->free_req = false;
        why = KILN_QWAIT_FREE;
    } else {
        kiln__qitem_t *it = heap_pop(q);
        it->attempts++;
        kiln__journal_op(&q->journal, "start", it->qid);
        q->running = it;
        changed(q);
        *out = it;
        why = KILN_QWAIT_ITEM;
    }
    pthread_mutex_unlock(&q->mu);
    return why;
}

void kiln__queue_finish(kiln__queue_t *q, kiln__qitem_t *it, bool requeue)
{
    pthread_mutex_lock(&q->mu);
    if (q->running == it)
        q->running = NULL;
    if (requeue) {
        /* Shutdown interrupted it: it runs again after a restart, and that start does not
         * count towards the crash-loop guard. */
        it->attempts--;
        kiln__journal_op(&q->journal, "requeue", it->qid);
        if (heap_push(q, it) != 0)
            kiln__qitem_free(it);
    } else {
        kiln__journal_op(&q->journal, "done", it->qid);
        kiln__qitem_free(it);
    }
    changed(q);
    maybe_compact(q);
    pthread_mutex_unlock(&q->mu);
}

void kiln__queue_request_free(kiln__queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    q->free_req = true;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void kiln__queue_stop(kiln__queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

size_t kiln__queue_remaining(kiln__queue_t *q)
{
    return atomic_load(&q->remaining);
}

int64_t kiln__queue_take_number(kiln__queue_t *q)
{
    return atomic_fetch_add(&q->counter, 1);
}

bool kiln__queue_is_running(kiln__queue_t *q, const char *prompt_id)
{
    pthread_mutex_lock(&q->mu);
    bool yes = q->running && !strcmp(q->running->prompt_id, prompt_id);
    pthread_mutex_unlock(&q->mu);
    return yes;
}

char *kiln__queue_render(kiln__queue_t *q, size_t *len)
{
    kiln__sbuf_t b = KILN_SBUF_INIT;
    pthread_mutex_lock(&q->mu);
    kiln__sbuf_puts(&b, "{\"queue_running\": [");
    if (q->running)
        kiln__qitem_render(&b, q->running);
    kiln__sbuf_puts(&b, "], \"queue_pending\": [");
    for (size_t i = 0; i < q->n; i++) {
        if (i)
            kiln__sbuf_puts(&b, ", ");
        kiln__qitem_render(&b, q->heap[i]);
    }
    pthread_mutex_unlock(&q->mu);
    kiln__sbuf_puts(&b, "]}");
    return kiln__sbuf_take(&b, len);
}

void kiln__queue_clear(kiln__queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < q->n; i++) {
        kiln__journal_op(&q->journal, "del", q->heap[i]->qid);
        kiln__qitem_free(q->heap[i]);
    }
    q->n = 0;
    changed(q);
    maybe_compact(q);
    pthread_mutex_unlock(&q->mu);
}

void kiln__queue_delete(kiln__queue_t *q, const char *prompt_id)
{
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < q->n; i++) {
        if (strcmp(q->heap[i]->prompt_id, prompt_id))
            continue;
        kiln__journal_op(&q->journal, "del", q->heap[i]->qid);
        kiln__qitem_free(q->heap[i]);
        memmove(q->heap + i, q->heap + i + 1, sizeof *q->heap * (q->n - i - 1));
        q->n--;
        heapify(q->heap, q->n);
        changed(q);
        break;
    }
    maybe_compact(q);
    pthread_mutex_unlock(&q->mu);
}

/* ---- lifetime ------------------------------------------------------------------------- */

int kiln__queue_open(kiln__srv_t *srv, const char *journal_path, kiln__queue_t **out)
{
    *out = NULL;
    kiln__queue_t *q = calloc(1, sizeof *q);
    if (!q)
        return KILN_ENOMEM;
    q->srv = srv;
    q->journal.fd = -1;
    q->journal.path = strdup(journal_path);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    kiln__qitem_t **items = NULL;
    size_t n = 0;
    int64_t counter = 0;
    uint64_t next_qid = 1;
    int rc = q->journal.path ? kiln__journal_load(journal_path, &items, &n, &counter, &next_qid)
                             : KILN_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0)
            rc = heap_push(q, items[i]);
        else
            kiln__qitem_free(items[i]);
    }
    free(items);
    atomic_store(&q->counter, counter);
    q->next_qid = next_qid;
    if (rc == 0)
        rc = kiln__journal_compact(&q->journal, q->heap, q->n, counter, next_qid);
    if (rc != 0) {
        kiln__queue_close(q);
        return rc;
    }
    atomic_store(&q->remaining, q->n);
    if (q->n)
        kiln_logf(KILN_LOG_INFO, "queue: %zu prompt(s) restored from %s", q->n, journal_path);
    *out = q;
    return 0;
}

void kiln__queue_close(kiln__queue_t *q)
{
    if (!q)
        return;
    if (q->journal.fd >= 0)
        kiln__journal_compact(&q->journal, q->heap, q->n, atomic_load(&q->counter),
                              q->next_qid);
    kiln__journal_close(&q->journal);
    for (size_t i = 0; i < q->n; i++)
        kiln__qitem_free(q->heap[i]);
    free(q->heap);
    free(q->journal.path);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
}
