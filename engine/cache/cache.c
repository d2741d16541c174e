/* The output cache: a map from signature to node result plus a recency list. Entries are
 * evicted least-recently-used first when the LRU count or the byte budget is exceeded,
 * and by the mode's prompt-boundary rules (classic keeps what the new prompt can reuse,
 * none keeps nothing). One mutex guards everything; results handed out are retained, so
 * an eviction never pulls a value from under a running node. */
#include "cache/cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/strmap.h"

typedef struct entry {
    kiln__sig_t sig;
    kiln__outputs_t *o;          /* owned: one reference */
    struct entry *prev, *next;   /* recency list: head is the most recently used */
    char key[33];                /* the signature in hex: the map key */
} entry_t;

struct kiln__cache {
    pthread_mutex_t mu;
    kiln_cache_mode_t mode;
    size_t lru_size;             /* KILN_CACHE_LRU: entries kept (0: unlimited) */
    size_t budget;               /* bytes (0: unlimited) */
    kiln__strmap_t *map;         /* owned: key -> entry_t * */
    entry_t *head, *tail;
    size_t entries;
    size_t bytes;
    uint64_t evictions;
};

static void sig_key(const kiln__sig_t *sig, char key[33])
{
    snprintf(key, 33, "%016llx%016llx", (unsigned long long)sig->h[0],
             (unsigned long long)sig->h[1]);
}

static void list_unlink(kiln__cache_t *c, entry_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_push_front(kiln__cache_t *c, entry_t *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

/* Removes e from the map and the list and drops the cache's reference. */
static void entry_remove(kiln__cache_t *c, entry_t *e, bool count_eviction)
{
    kiln__strmap_remove(c->map, e->key);
    list_unlink(c, e);
    c->entries--;
    c->bytes -= e->o->bytes;
    if (count_eviction)
        c->evictions++;
    kiln__outputs_release(e->o);
    free(e);
}

/* Evicts from the cold end until the count and byte limits hold. */
static void enforce_limits(kiln__cache_t *c)
{
    while (c->tail) {
        bool over_count = c->mode == KILN_CACHE_LRU && c->lru_size && c->entries > c->lru_size;
        bool over_bytes = c->budget && c->bytes > c->budget;
        if (!over_count && !over_bytes)
            break;
        entry_remove(c, c->tail, true);
    }
}

kiln__cache_t *kiln__cache_new(kiln_cache_mode_t mode, size_t lru_size, size_t byte_budget)
{
    kiln__cache_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->map = kiln__strmap_new();
    if (!c->map) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->mode = mode;
    c->lru_size = lru_size;
    c->budget = byte_budget;
    return c;
}

void kiln__cache_free(kiln__cache_t *c)
{
    if (!c)
        return;
    kiln__cache_clear(c);
    kiln__strmap_free(c->map);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

kiln_cache_mode_t kiln__cache_mode(const kiln__cache_t *c)
{
    return c->mode;
}

kiln__outputs_t *kiln__cache_get(kiln__cache_t *c, const kiln__sig_t *sig)
{
    if (!sig->valid)
        return NULL;
    char key[33];
    sig_key(sig, key);
    pthread_mutex_lock(&c->mu);
    entry_t *e = kiln__strmap_get(c->map, key);
    kiln__outputs_t *o = NULL;
    if (e) {
        list_unlink(c, e);
        list_push_front(c, e);
        o = e->o;
        kiln__outputs_retain(o);
    }
    pthread_mutex_unlock(&c->mu);
    return o;
}

bool kiln__cache_has(kiln__cache_t *c, const kiln__sig_t *sig)
{
    if (!sig->valid)
        return false;
    char key[33];
    sig_key(sig, key);
    pthread_mutex_lock(&c->mu);
    bool has = kiln__strmap_has(c->map, key);
    pthread_mutex_unlock(&c->mu);
    return has;
}

int kiln__cache_put(kiln__cache_t *c, const kiln__sig_t *sig, kiln__outputs_t *o)
{
    if (!sig->valid)
        return 0;
    if (c->budget && o->bytes > c->budget) {
        /* It could never fit: refuse it rather than empty the cache for nothing. */
        pthread_mutex_lock(&c->mu);
        c->evictions++;
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    entry_t *e = calloc(1, sizeof *e);
    if (!e)
        return KILN_ENOMEM;
    e->sig = *sig;
    sig_key(sig, e->key);
    pthread_mutex_lock(&c->mu);
    entry_t *old = kiln__strmap_get(c->map, e->key);
    if (old)
        entry_remove(c, old, false);
    if (kiln__strmap_put(c->map, e->key, e) != 0) {
        pthread_mutex_unlock(&c->mu);
        free(e);
        return KILN_ENOMEM;
    }
    kiln__outputs_retain(o);
    e->o = o;
    list_push_front(c, e);
    c->entries++;
    c->bytes += o->bytes;
    enforce_limits(c);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

void kiln__cache_drop(kiln__cache_t *c, const kiln__sig_t *sig)
{
    if (!sig->valid)
        return;
    char key[33];
    sig_key(sig, key);
    pthread_mutex_lock(&c->mu);
    entry_t *e = kiln__strmap_get(c->map, key);
    if (e)
        entry_remove(c, e, true);
    pthread_mutex_unlock(&c->mu);
}

/* Classic mode: keep only the entries this prompt's signatures name. */
static void evict_unused(kiln__cache_t *c, const kiln__sig_t *sigs, size_t n)
{
    kiln__strmap_t *keep = kiln__strmap_new();
    if (!keep)
        return; /* out of memory: keeping too much is harmless */
    char key[33];
    for (size_t i = 0; i < n; i++) {
        if (!sigs[i].valid)
            continue;
        sig_key(&sigs[i], key);
        if (kiln__strmap_put(keep, key, (void *)1) != 0) {
            kiln__strmap_free(keep);
            return;
        }
    }
    entry_t *e = c->head;
    while (e) {
        entry_t *next = e->next;
        if (!kiln__strmap_has(keep, e->key))
            entry_remove(c, e, true);
        e = next;
    }
    kiln__strmap_free(keep);
}

void kiln__cache_begin_prompt(kiln__cache_t *c, const kiln__sig_t *sigs, size_t n)
{
    pthread_mutex_lock(&c->mu);
    if (c->mode == KILN_CACHE_CLASSIC) {
        evict_unused(c, sigs, n);
    } else if (c->mode == KILN_CACHE_NONE) {
        while (c->head)
            entry_remove(c, c->head, true);
    }
    pthread_mutex_unlock(&c->mu);
}

void kiln__cache_end_prompt(kiln__cache_t *c)
{
    pthread_mutex_lock(&c->mu);
    if (c->mode == KILN_CACHE_NONE) {
        while (c->head)
            entry_remove(c, c->head, true);
    }
    pthread_mutex_unlock(&c->mu);
}

void kiln__cache_clear(kiln__cache_t *c)
{
    pthread_mutex_lock(&c->mu);
    while (c->head)
        entry_remove(c, c->head, false);
    pthread_mutex_unlock(&c->mu);
}

size_t kiln__cache_entries(kiln__cache_t *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->entries;
    pthread_mutex_unlock(&c->mu);
    return n;
}

size_t kiln__cache_bytes(kiln__cache_t *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->bytes;
    pthread_mutex_unlock(&c->mu);
    return n;
}

uint64_t kiln__cache_evictions(kiln__cache_t *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t n = c->evictions;
    pthread_mutex_unlock(&c->mu);
    return n;
}
