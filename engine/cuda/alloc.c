/* The caching device allocator: blocks are rounded up to quarter-power-of-two size
 * classes and kept on per-class free lists when freed, so steady-state work (the same
 * shapes every sampling step) never reaches cudaMalloc or cudaFree. Reuse is stream
 * aware: a block taken by a stream other than the one that last used it makes that
 * stream wait (on the device, through events) for the earlier uses. The same lock guards
 * the readiness bookkeeping of blocks (writer, readers) described in cuda_rt.h. */
#ifdef KILN_HAVE_CUDA

#include <stdlib.h>
#include <string.h>

#include <kiln/error.h>

#include "cuda/cuda_rt.h"

#define N_CLASSES 256
#define MIN_BLOCK ((size_t)512)

typedef struct dev_cache {
    pthread_mutex_t mu;
    kiln__cuda_block_t *free_list[N_CLASSES];
    cudaEvent_t *events; /* idle events for reuse */
    int n_events, cap_events;
    size_t in_use, cached;
} dev_cache_t;

static pthread_once_t caches_once = PTHREAD_ONCE_INIT;
static dev_cache_t *caches;
static int n_caches;

static void caches_init(void)
{
    int n = kiln__cuda_device_count();
    caches = n > 0 ? calloc((size_t)n, sizeof *caches) : NULL;
    n_caches = caches ? n : 0;
    for (int i = 0; i < n_caches; i++)
        pthread_mutex_init(&caches[i].mu, NULL);
}

static dev_cache_t *cache_of(int device)
{
    pthread_once(&caches_once, caches_init);
    return device >= 1 && device <= n_caches ? &caches[device - 1] : NULL;
}

/* The size class of `bytes`: sizes 2^k * (1 + q/4), index 4k + q. */
static int size_class(size_t bytes, size_t *rounded)
{
    if (bytes < MIN_BLOCK)
        bytes = MIN_BLOCK;
    int k = 63 - __builtin_clzll((unsigned long long)bytes);
    size_t base = (size_t)1 << k, step = base >> 2;
    size_t q = (bytes - base + step - 1) / step; /* 0..4 */
    if (q == 4) {
        k++;
        q = 0;
        base <<= 1;
        step <<= 1;
    }
    *rounded = base + q * step;
    return k * 4 + (int)q;
}

/* An idle event (c->mu held), or NULL when none could be made. */
static cudaEvent_t event_get(dev_cache_t *c)
{
    if (c->n_events > 0)
        return c->events[--c->n_events];
    cudaEvent_t e = NULL;
    if (cudaEventCreateWithFlags(&e, cudaEventDisableTiming) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    return e;
}

static void event_put(dev_cache_t *c, cudaEvent_t e)
{
    if (c->n_events == c->cap_events) {
        int cap = c->cap_events ? 2 * c->cap_events : 16;
        cudaEvent_t *v = realloc(c->events, (size_t)cap * sizeof *v);
        if (!v) {
            cudaEventDestroy(e);
            return;
        }
        c->events = v;
        c->cap_events = cap;
    }
    c->events[c->n_events++] = e;
}

/* Makes `waiter` wait on the device for everything queued so far on `on` (c->mu held).
 * Falls back to a host wait when no event can be made. */
static int stream_wait(dev_cache_t *c, kiln__cuda_stream_t *waiter, kiln__cuda_stream_t *on)
{
    if (!on || on == waiter)
        return 0;
    cudaEvent_t e = event_get(c);
    if (!e)
        KILN_CUDA_TRY(cudaStreamSynchronize(on->stream));
    else {
        cudaError_t err = cudaEventRecord(e, on->stream);
        if (err == cudaSuccess)
            err = cudaStreamWaitEvent(waiter->stream, e, 0);
        event_put(c, e); /* the wait took the event's state; the event may be reused */
        KILN_CUDA_TRY(err);
    }
    return 0;
}

/* Makes s wait for every use of a cached block b before it reuses it (c->mu held). */
static int reuse_wait(dev_cache_t *c, kiln__cuda_block_t *b, kiln__cuda_stream_t *s)
{
    int rc = 0;
    for (int i = 0; i < b->n_free_events; i++) {
        if (rc == 0 && cudaStreamWaitEvent(s->stream, b->free_events[i], 0) != cudaSuccess)
            rc = kiln__cuda_status(cudaGetLastError(), "cudaStreamWaitEvent", __FILE__, __LINE__);
        event_put(c, b->free_events[i]);
    }
    b->n_free_events = 0;
    b->foreign = 0;
    if (rc == 0 && b->home != s)
        rc = stream_wait(c, s, b->home);
    return rc;
}

/* Takes a cached block of class k for s, preferring one whose home is s. */
static kiln__cuda_block_t *take_cached(dev_cache_t *c, int k, kiln__cuda_stream_t *s)
{
    kiln__cuda_block_t **best = NULL;
    for (kiln__cuda_block_t **p = &c->free_list[k]; *p; p = &(*p)->next) {
        if ((*p)->home == s && !(*p)->foreign) {
            best = p;
            break;
        }
        if (!best)
            best = p;
    }
    if (!best)
        return NULL;
    kiln__cuda_block_t *b = *best;
    *best = b->next;
    b->next = NULL;
    return b;
}

static int fresh_block(dev_cache_t *c, kiln__cuda_stream_t *s, size_t size,
                       kiln__cuda_block_t **out)
{
    kiln__cuda_block_t *b = calloc(1, sizeof *b);
    if (!b)
        return KILN_ENOMEM;
    cudaError_t e = cudaSetDevice(s->device - 1);
    if (e == cudaSuccess)
        e = cudaMalloc(&b->ptr, size);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        kiln__cuda_empty_cache(s->device);
        e = cudaMalloc(&b->ptr, size);
    }
    if (e != cudaSuccess) {
        free(b);
        return kiln__cuda_status(e, "cudaMalloc", __FILE__, __LINE__);
    }
    b->size = size;
    b->device = s->device;
    pthread_mutex_lock(&c->mu);
    c->in_use += size;
    pthread_mutex_unlock(&c->mu);
    *out = b;
    return 0;
}

struct kiln__cuda_pool {
    int device;
    kiln__cuda_block_t **all; /* every block the pool has handed out */
    int n, cap;
};

kiln__cuda_pool_t *kiln__cuda_pool_new(int device)
{
    kiln__cuda_pool_t *p = calloc(1, sizeof *p);
    if (p)
        p->device = device;
    return p;
}

/* An idle block of the pool with this rounded size, or NULL (c->mu held). */
static kiln__cuda_block_t *pool_take(kiln__cuda_pool_t *p, size_t size)
{
    for (int i = 0; i < p->n; i++)
        if (p->all[i]->pool_idle && p->all[i]->size == size) {
            p->all[i]->pool_idle = 0;
            return p->all[i];
        }
    return NULL;
}

static int pool_add(dev_cache_t *c, kiln__cuda_pool_t *p, kiln__cuda_block_t *b)
{
    pthread_mutex_lock(&c->mu);
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        kiln__cuda_block_t **v = realloc(p->all, (size_t)cap * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&c->mu);
            return KILN_ENOMEM;
        }
        p->all = v;
        p->cap = cap;
    }
    p->all[p->n++] = b;
    b->pool = p;
    b->pool_idle = 0;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

void kiln__cuda_pool_release(kiln__cuda_pool_t *p)
{
    dev_cache_t *c = p ? cache_of(p->device) : NULL;
    if (!c) {
        free(p);
        return;
    }
    for (int i = 0; i < p->n; i++) {
        kiln__cuda_block_t *b = p->all[i];
        pthread_mutex_lock(&c->mu);
        int idle = b->pool_idle;
        b->pool = NULL;
        b->pool_idle = 0;
        pthread_mutex_unlock(&c->mu);
        if (idle) /* back to the cache (it counts as in use until then) */
            kiln__cuda_free(b);
    }
    free(p->all);
    free(p);
}

/* kiln__cuda_alloc while s records a graph: from its pool (c->mu not held). */
static int alloc_pooled(dev_cache_t *c, kiln__cuda_stream_t *s, size_t size,
                        kiln__cuda_block_t **out)
{
    pthread_mutex_lock(&c->mu);
    kiln__cuda_block_t *b = pool_take(s->pool, size);
    pthread_mutex_unlock(&c->mu);
    int rc = 0;
    if (!b) {
        rc = fresh_block(c, s, size, &b);
        if (rc == 0 && (rc = pool_add(c, s->pool, b)) < 0)
            kiln__cuda_free(b);
        if (rc < 0)
            return rc;
    }
    b->home = s;
    b->writer = NULL;
    b->used_mask = b->readers = b->synced = 0;
    *out = b;
    return 0;
}

int kiln__cuda_alloc(kiln__cuda_stream_t *s, size_t bytes, kiln__cuda_block_t **out)
{
    dev_cache_t *c = s ? cache_of(s->device) : NULL;
    if (!c || !out)
        return KILN_EINVAL;
    size_t size;
    int k = size_class(bytes, &size);
    if (s->pool)
        return alloc_pooled(c, s, size, out);
    pthread_mutex_lock(&c->mu);
    kiln__cuda_block_t *b = take_cached(c, k, s);
    int rc = 0;
    if (b) {
        c->cached -= b->size;
        c->in_use += b->size;
        rc = reuse_wait(c, b, s);
    }
    pthread_mutex_unlock(&c->mu);
    if (!b)
        rc = fresh_block(c, s, size, &b);
    if (rc < 0) {
        kiln__cuda_free(b);
        return rc;
    }
    b->home = s;
    b->writer = NULL;
    b->used_mask = b->readers = b->synced = 0;
    *out = b;
    return 0;
}

/* Records, on each stream other than home that used b, an event that the next user of
 * the block waits for (c->mu held). More streams than event slots: host wait instead. */
static void note_foreign_uses(dev_cache_t *c, kiln__cuda_block_t *b)
{
    uint64_t mask = b->used_mask;
    if (b->writer && b->writer != b->home)
        mask |= 1ull << b->writer->index;
    for (int i = 0; mask && i < KILN__CUDA_MAX_STREAMS; i++) {
        if (!(mask & (1ull << i)))
            continue;
        mask &= ~(1ull << i);
        kiln__cuda_stream_t *u = kiln__cuda_stream_at(b->device, i);
        if (!u || u == b->home)
            continue;
        cudaEvent_t e = b->n_free_events < 4 ? event_get(c) : NULL;
        if (e && cudaEventRecord(e, u->stream) == cudaSuccess) {
            b->free_events[b->n_free_events++] = e;
        } else {
            if (e)
                event_put(c, e);
            (void)cudaGetLastError();
            (void)cudaStreamSynchronize(u->stream);
        }
    }
    b->foreign = b->n_free_events > 0;
}

void kiln__cuda_free(kiln__cuda_block_t *b)
{
    if (!b)
        return;
    dev_cache_t *c = cache_of(b->device);
    if (!c || !b->ptr) {
        free(b);
        return;
    }
    size_t rounded;
    int k = size_class(b->size, &rounded);
    pthread_mutex_lock(&c->mu);
    if (b->pool) { /* the graph's: idle until the pool's next allocation */
        b->pool_idle = 1;
        b->writer = NULL;
        b->used_mask = b->readers = b->synced = 0;
        pthread_mutex_unlock(&c->mu);
        return;
    }
    note_foreign_uses(c, b);
    b->writer = NULL;
    b->used_mask = b->readers = b->synced = 0;
    c->in_use -= b->size;
    c->cached += b->size;
    b->next = c->free_list[k];
    c->free_list[k] = b;
    pthread_mutex_unlock(&c->mu);
}

size_t kiln__cuda_empty_cache(int device)
{
    dev_cache_t *c = cache_of(device);
    if (!c)
        return 0;
    pthread_mutex_lock(&c->mu);
    kiln__cuda_block_t *all = NULL;
    for (int k = 0; k < N_CLASSES; k++) {
        while (c->free_list[k]) {
            kiln__cuda_block_t *b = c->free_list[k];
            c->free_list[k] = b->next;
            b->next = all;
            all = b;
        }
    }
    size_t released = c->cached;
    c->cached = 0;
    pthread_mutex_unlock(&c->mu);
    (void)cudaSetDevice(device - 1);
    while (all) {
        kiln__cuda_block_t *b = all;
        all = b->next;
        for (int i = 0; i < b->n_free_events; i++) {
            (void)cudaEventSynchronize(b->free_events[i]);
            cudaEventDestroy(b->free_events[i]);
        }
        (void)cudaFree(b->ptr); /* waits for work still queued on the block */
        free(b);
    }
    (void)cudaGetLastError();
    return released;
}

void kiln__cuda_mem_stats(int device, size_t *in_use, size_t *cached)
{
    dev_cache_t *c = cache_of(device);
    *in_use = *cached = 0;
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    *in_use = c->in_use;
    *cached = c->cached;
    pthread_mutex_unlock(&c->mu);
}

int kiln__cuda_block_use(kiln__cuda_block_t *b, kiln__cuda_stream_t *s, int write)
{
    dev_cache_t *c = cache_of(b->device);
    if (!c || !s)
        return KILN_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    /* read after write on another stream: one wait per stream and write (weights written
     * once by an upload are then read by every op without further events) */
    uint64_t bit = 1ull << s->index;
    if (b->writer && b->writer != s && !(b->synced & bit)) {
        rc = stream_wait(c, s, b->writer);
        b->synced |= rc == 0 ? bit : 0;
    }
    if (write) { /* write after reads on other streams */
        uint64_t r = b->readers & ~(1ull << s->index);
        for (int i = 0; rc == 0 && r && i < KILN__CUDA_MAX_STREAMS; i++) {
            if (r & (1ull << i)) {
                r &= ~(1ull << i);
                rc = stream_wait(c, s, kiln__cuda_stream_at(b->device, i));
            }
        }
        b->readers = b->synced = 0;
        b->writer = s;
    } else {
        b->readers |= 1ull << s->index;
    }
    if (s != b->home)
        b->used_mask |= 1ull << s->index;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int kiln__cuda_block_sync(kiln__cuda_block_t *b)
{
    dev_cache_t *c = cache_of(b->device);
    if (!c)
        return KILN_EINVAL;
    pthread_mutex_lock(&c->mu);
    kiln__cuda_stream_t *w = b->writer;
    pthread_mutex_unlock(&c->mu);
    if (w)
        KILN_CUDA_TRY(cudaStreamSynchronize(w->stream));
    return 0;
}

#endif /* KILN_HAVE_CUDA */
