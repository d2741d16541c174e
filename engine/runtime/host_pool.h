/* A pooling host allocator: freed blocks are kept in per-size-class free lists and handed
 * out again, so the same activation shapes of every sampling step cost no system calls.
 * Counters (in use, cached, peak) feed the host memory budget and the metrics. */
#ifndef KILN_RUNTIME_HOST_POOL_H
#define KILN_RUNTIME_HOST_POOL_H

#include <stddef.h>
#include <stdint.h>

/* Every block is aligned to this many bytes (a cache line, enough for any vector load). */
#define KILN__HOST_POOL_ALIGN 64

/* Blocks larger than this are not pooled: they come from and go to the system directly. */
#define KILN__HOST_POOL_MAX_CLASS ((size_t)1 << 32)

/* The default limit on cached bytes of kiln__host_pool_default(). */
#define KILN__HOST_POOL_DEFAULT_LIMIT ((size_t)1 << 30)

typedef struct kiln__host_pool kiln__host_pool_t;

typedef struct kiln__host_pool_stats {
    size_t in_use;      /* bytes handed out and not given back, in size-class units */
    size_t cached;      /* bytes kept in free lists, ready for reuse */
    size_t peak;        /* the highest in_use seen (since creation or the last reset) */
    size_t limit;       /* the most bytes the free lists may hold */
    uint64_t allocs;    /* successful kiln__host_pool_alloc calls */
    uint64_t hits;      /* allocations served from a free list */
    uint64_t frees;     /* kiln__host_pool_dealloc calls */
} kiln__host_pool_stats_t;

/* A new pool that caches at most cache_limit bytes of freed blocks. NULL when out of
 * memory. Any thread. */
kiln__host_pool_t *kiln__host_pool_new(size_t cache_limit);

/* Frees the pool and every cached block. Blocks still in use must have been given back
 * before (the pool must outlive its blocks). NULL is ignored. */
void kiln__host_pool_free(kiln__host_pool_t *pool);

/* The process-wide pool that host tensors use; created on first use, never freed. NULL
 * only when out of memory on the first call. Any thread. */
kiln__host_pool_t *kiln__host_pool_default(void);

/* A block of at least `bytes` bytes (0 is allowed), aligned to KILN__HOST_POOL_ALIGN,
 * zero-filled when `zero` is nonzero. NULL when out of memory or when bytes is too large
 * to round up. Thread-safe. */
void *kiln__host_pool_alloc(kiln__host_pool_t *pool, size_t bytes, int zero);

/* Gives back a block from kiln__host_pool_alloc of this pool; `bytes` must be the size
 * that was asked for (or any size in the same class). The block is cached when the limit
 * allows, else freed. NULL ptr is ignored. Thread-safe. */
void kiln__host_pool_dealloc(kiln__host_pool_t *pool, void *ptr, size_t bytes);

/* Frees cached blocks, largest classes first, until at most `keep` bytes stay cached.
 * Returns the number of bytes given back to the system. Thread-safe. */
size_t kiln__host_pool_trim(kiln__host_pool_t *pool, size_t keep);

/* Changes the cache limit; trims right away when the cache is over the new limit.
 * Thread-safe. */
void kiln__host_pool_set_limit(kiln__host_pool_t *pool, size_t cache_limit);

/* A snapshot of the counters (each read atomically; together they are approximate
 * while other threads allocate). Thread-safe. */
void kiln__host_pool_stats(kiln__host_pool_t *pool, kiln__host_pool_stats_t *out);

/* Sets peak to the current in_use. Thread-safe. */
void kiln__host_pool_reset_peak(kiln__host_pool_t *pool);

/* The block size that a request of `bytes` gets (its size class); 0 when bytes is too
 * large to round up. Requests above KILN__HOST_POOL_MAX_CLASS are only rounded to the
 * alignment. */
size_t kiln__host_pool_class_size(size_t bytes);

#endif
