/* The pooling host allocator (see host_pool.h). Sizes are rounded up to classes with four
 * steps per power of two (at most 25% slack); each class keeps a stack of freed blocks
 * under its own mutex, so threads working on different shapes do not contend. Under
 * AddressSanitizer cached blocks are poisoned, so a use after release is still caught. */
#include "runtime/host_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define KILN_POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KILN_POOL_ASAN 1
#endif
#endif
#ifdef KILN_POOL_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Classes 0..3 are 64..256 bytes in steps of 64; then four per power of two up to
 * KILN__HOST_POOL_MAX_CLASS (2^32 = 2^31 * 8/4, the last class of level 31). */
#define SMALL_CLASSES 4
#define NUM_CLASSES (SMALL_CLASSES + (31 - 8 + 1) * 4)

struct pool_class {
    pthread_mutex_t lock;
    void **blocks;     /* owned: a stack of cached blocks (each owned) */
    size_t count;
    size_t cap;
};

struct kiln__host_pool {
    struct pool_class classes[NUM_CLASSES];
    atomic_size_t in_use;
    atomic_size_t cached;
    atomic_size_t peak;
    atomic_size_t limit;
    atomic_uint_least64_t allocs;
    atomic_uint_least64_t hits;
    atomic_uint_least64_t frees;
};

/* Class index of a request and its rounded size; -1 when it is not pooled (too large). */
static int class_of(size_t bytes, size_t *size)
{
    if (bytes <= 256) {
        int idx = bytes ? (int)((bytes + 63) / 64) - 1 : 0;
        *size = (size_t)(idx + 1) * 64;
        return idx;
    }
    if (bytes > KILN__HOST_POOL_MAX_CLASS)
        return -1;
    int k = 63 - __builtin_clzll((unsigned long long)(bytes - 1)); /* 2^k < bytes <= 2^(k+1) */
    int shift = k - 2;
    size_t m = (bytes + ((size_t)1 << shift) - 1) >> shift;        /* 5..8 */
    *size = m << shift;
    return SMALL_CLASSES + (k - 8) * 4 + (int)(m - 5);
}

size_t kiln__host_pool_class_size(size_t bytes)
{
    size_t size = 0;
    if (class_of(bytes, &size) >= 0)
        return size;
    if (bytes > SIZE_MAX - (KILN__HOST_POOL_ALIGN - 1))
        return 0;
    return (bytes + KILN__HOST_POOL_ALIGN - 1) & ~(size_t)(KILN__HOST_POOL_ALIGN - 1);
}

kiln__host_pool_t *kiln__host_pool_new(size_t cache_limit)
{
    kiln__host_pool_t *pool = calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    for (int i = 0; i < NUM_CLASSES; i++)
        pthread_mutex_init(&pool->classes[i].lock, NULL);
    atomic_init(&pool->limit, cache_limit);
    return pool;
}

void kiln__host_pool_free(kiln__host_pool_t *pool)
{
    if (!pool)
        return;
    for (int i = 0; i < NUM_CLASSES; i++) {
        struct pool_class *c = &pool->classes[i];
        for (size_t j = 0; j < c->count; j++)
            free(c->blocks[j]);   /* free() of a poisoned block is fine under ASan */
        free(c->blocks);
        pthread_mutex_destroy(&c->lock);
    }
    free(pool);
}

static kiln__host_pool_t *default_pool;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_init(void)
{
    default_pool = kiln__host_pool_new(KILN__HOST_POOL_DEFAULT_LIMIT);
}

kiln__host_pool_t *kiln__host_pool_default(void)
{
    pthread_once(&default_once, default_init);
    return default_pool;
}

static void note_in_use(kiln__host_pool_t *pool, size_t size)
{
    size_t now = atomic_fetch_add(&pool->in_use, size) + size;
    size_t peak = atomic_load(&pool->peak);
    while (now > peak && !atomic_compare_exchange_weak(&pool->peak, &peak, now)) {
    }
}

/* Pops a cached block of class idx, or NULL. */
static void *pop_cached(kiln__host_pool_t *pool, int idx, size_t size)
{
    struct pool_class *c = &pool->classes[idx];
    void *p = NULL;
    pthread_mutex_lock(&c->lock);
    if (c->count > 0)
        p = c->blocks[--c->count];
    pthread_mutex_unlock(&c->lock);
    if (p) {
        atomic_fetch_sub(&pool->cached, size);
        UNPOISON(p, size);
    }
    return p;
}

void *kiln__host_pool_alloc(kiln__host_pool_t *pool, size_t bytes, int zero)
{
    size_t size = 0;
    int idx = class_of(bytes, &size);
    void *p = NULL;
    if (idx >= 0) {
        p = pop_cached(pool, idx, size);
        if (p)
            atomic_fetch_add(&pool->hits, 1);
    } else {
        size = kiln__host_pool_class_size(bytes);
        if (!size)
            return NULL;
    }
    if (!p) {
        p = aligned_alloc(KILN__HOST_POOL_ALIGN, size);
        /* The system may hold memory for cached blocks of other classes: give those back
         * and try once more before reporting out of memory. */
        if (!p && kiln__host_pool_trim(pool, 0) > 0)
            p = aligned_alloc(KILN__HOST_POOL_ALIGN, size);
        if (!p)
            return NULL;
    }
    if (zero)
        memset(p, 0, size);
    note_in_use(pool, size);
    atomic_fetch_add(&pool->allocs, 1);
    return p;
}

/* Pushes a block onto its class stack; 0 when there was no room (limit or memory). */
static int push_cached(kiln__host_pool_t *pool, int idx, void *p, size_t size)
{
    size_t before = atomic_fetch_add(&pool->cached, size);
    if (before + size > atomic_load(&pool->limit)) {
        atomic_fetch_sub(&pool->cached, size);
        return 0;
    }
    struct pool_class *c = &pool->classes[idx];
    int ok = 1;
    pthread_mutex_lock(&c->lock);
    if (c->count == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        void **blocks = realloc(c->blocks, cap * sizeof *blocks);
        if (blocks) {
            c->blocks = blocks;
            c->cap = cap;
        } else {
            ok = 0;
        }
    }
    if (ok) {
        POISON(p, size);
        c->blocks[c->count++] = p;
    }
    pthread_mutex_unlock(&c->lock);
    if (!ok)
        atomic_fetch_sub(&pool->cached, size);
    return ok;
}

void kiln__host_pool_dealloc(kiln__host_pool_t *pool, void *ptr, size_t bytes)
{
    if (!ptr)
        return;
    size_t size = 0;
    int idx = class_of(bytes, &size);
    if (idx < 0)
        size = kiln__host_pool_class_size(bytes);
    atomic_fetch_sub(&pool->in_use, size);
    atomic_fetch_add(&pool->frees, 1);
    if (idx < 0 || !push_cached(pool, idx, ptr, size))
        free(ptr);
}

/* Size of the blocks of class idx. */
static size_t class_bytes(int idx)
{
    if (idx < SMALL_CLASSES)
        return (size_t)(idx + 1) * 64;
    int k = 8 + (idx - SMALL_CLASSES) / 4;
    size_t m = 5 + (size_t)((idx - SMALL_CLASSES) % 4);
    return m << (k - 2);
}

size_t kiln__host_pool_trim(kiln__host_pool_t *pool, size_t keep)
{
    size_t released = 0;
    for (int idx = NUM_CLASSES - 1; idx >= 0; idx--) {
        struct pool_class *c = &pool->classes[idx];
        size_t size = class_bytes(idx);
        pthread_mutex_lock(&c->lock);
        while (c->count > 0 && atomic_load(&pool->cached) > keep) {
            free(c->blocks[--c->count]);
            atomic_fetch_sub(&pool->cached, size);
            released += size;
        }
        if (c->count == 0) {
            /* Also give back the stack itself so an idle pool holds nothing. */
            free(c->blocks);
            c->blocks = NULL;
            c->cap = 0;
        }
        pthread_mutex_unlock(&c->lock);
    }
    return released;
}

void kiln__host_pool_set_limit(kiln__host_pool_t *pool, size_t cache_limit)
{
    atomic_store(&pool->limit, cache_limit);
    if (atomic_load(&pool->cached) > cache_limit)
        kiln__host_pool_trim(pool, cache_limit);
}

void kiln__host_pool_stats(kiln__host_pool_t *pool, kiln__host_pool_stats_t *out)
{
    out->in_use = atomic_load(&pool->in_use);
    out->cached = atomic_load(&pool->cached);
    out->peak = atomic_load(&pool->peak);
    out->limit = atomic_load(&pool->limit);
    out->allocs = atomic_load(&pool->allocs);
    out->hits = atomic_load(&pool->hits);
    out->frees = atomic_load(&pool->frees);
}

void kiln__host_pool_reset_peak(kiln__host_pool_t *pool)
{
    atomic_store(&pool->peak, atomic_load(&pool->in_use));
}
