/* The pooling host allocator: size classes, reuse, zero-filling, the in-use / cached /
 * peak counters, the cache limit and trim, and many threads allocating at once. */
#include <pthread.h>

#include "runner.h"
#include "runtime/host_pool.h"

static void test_class_sizes(void)
{
    ASSERT_EQ_INT(kiln__host_pool_class_size(0), 64);
    ASSERT_EQ_INT(kiln__host_pool_class_size(1), 64);
    ASSERT_EQ_INT(kiln__host_pool_class_size(64), 64);
    ASSERT_EQ_INT(kiln__host_pool_class_size(65), 128);
    ASSERT_EQ_INT(kiln__host_pool_class_size(256), 256);
    ASSERT_EQ_INT(kiln__host_pool_class_size(257), 320);
    ASSERT_EQ_INT(kiln__host_pool_class_size(321), 384);
    ASSERT_EQ_INT(kiln__host_pool_class_size(1000), 1024);
    ASSERT_EQ_INT(kiln__host_pool_class_size(1025), 1280);
    ASSERT_EQ_INT(kiln__host_pool_class_size((size_t)1 << 20), (size_t)1 << 20);
    ASSERT_EQ_INT(kiln__host_pool_class_size(((size_t)1 << 20) + 1), 5 << 18);
    ASSERT_EQ_INT(kiln__host_pool_class_size(KILN__HOST_POOL_MAX_CLASS), KILN__HOST_POOL_MAX_CLASS);
    ASSERT_EQ_INT(kiln__host_pool_class_size(KILN__HOST_POOL_MAX_CLASS + 1),
                  KILN__HOST_POOL_MAX_CLASS + 64);
    ASSERT_EQ_INT(kiln__host_pool_class_size(SIZE_MAX - 10), 0);
    /* Every class fits the request, is a multiple of the alignment, and wastes at most a
     * quarter (or less than one 64-byte step for the small classes). */
    for (size_t n = 1; n < ((size_t)1 << 24); n = n * 9 / 8 + 1) {
        size_t c = kiln__host_pool_class_size(n);
        ASSERT(c >= n);
        ASSERT_EQ_INT(c % KILN__HOST_POOL_ALIGN, 0);
        ASSERT(c - n < 64 || c - n <= n / 4);
    }
}

static void test_reuse_and_counters(void)
{
    kiln__host_pool_t *pool = kiln__host_pool_new((size_t)1 << 20);
    kiln__host_pool_stats_t s;
    char *a = kiln__host_pool_alloc(pool, 1000, 0);
    ASSERT(a != NULL);
    ASSERT_EQ_INT((uintptr_t)a % KILN__HOST_POOL_ALIGN, 0);
    memset(a, 0xab, 1024);                       /* the whole class block is usable */
    char *b = kiln__host_pool_alloc(pool, 5000, 0);
    kiln__host_pool_stats(pool, &s);
    ASSERT_EQ_INT(s.in_use, 1024 + 5120);
    ASSERT_EQ_INT(s.cached, 0);
    ASSERT_EQ_INT(s.peak, 1024 + 5120);
    ASSERT_EQ_INT(s.allocs, 2);
    ASSERT_EQ_INT(s.hits, 0);
    kiln__host_pool_dealloc(pool, a, 1000);
    kiln__host_pool_stats(pool, &s);
    ASSERT_EQ_INT(s.in_use, 5120);
    ASSERT_EQ_INT(s.cached, 1024);
    ASSERT_EQ_INT(s.frees, 1);
    char *c = kiln__host_pool_alloc(pool, 900, 1);   /* same class, zero-filled */
    ASSERT(c == a);
    for (int i = 0; i < 1024; i++)
        ASSERT_EQ_INT(c[i], 0);
    kiln__host_pool_stats(pool, &s);
    ASSERT_EQ_INT(s.hits, 1);
    ASSERT_EQ_INT(s.cached, 0);
    ASSERT_EQ_INT(s.peak, 1024 + 5120);
    kiln__host_pool_dealloc(pool, b, 5000);
    kiln__host_pool_reset_peak(pool);
    kiln__host_pool_stats(pool, &s);
    ASSERT_EQ_INT(s.peak, 1024);
    kiln__host_pool_dealloc(pool, c, 900);
    kiln__host_pool_dealloc(pool, NULL, 10);        /* ignored */
    kiln__host_pool_stats(pool, &s);
    ASSERT_EQ_INT(s.in_use, 0);
    ASSERT_EQ_INT(s.cached, 1024 + 5120);
    ASSERT_EQ_INT(kiln__host_pool_trim(pool, 2000), 5120);   /* largest class first */
    kiln__host_pool_stats(pool, &s);
    ASSERT_EQ_INT(s.cached, 1024);
    ASSERT_EQ_INT(kiln__host_pool_trim(pool, 0), 1024);
    ASSERT_EQ_INT(kiln__host_pool_trim(pool, 0), 0);
    kiln__host_pool_free(pool);
}

static void test_limit(void)
{
    kiln__host_pool_t *pool = kiln__host_pool_new(4096);
    void *p[3];
    for (int i = 0; i < 3; i++)
        p[i] = kiln__host_pool_alloc(pool, 2048, 0);
    for (int i = 0; i < 3; i++)
        kiln__host_pool_dealloc(pool, p[i], 2048);
    kiln__host_pool_stats_t s;
    kiln__host_pool_stats(pool, &s);
    ASSERT_EQ_INT(s.cached, 4096);                /* the third block went to the system */
    ASSERT_EQ_INT(s.limit, 4096);
    kiln__host_pool_set_limit(pool, 2048);
    kiln__host_pool_stats(pool, &s);
    ASSERT_EQ_INT(s.cached, 2048);
    kiln__host_pool_set_limit(pool, 0);           /* caching off */
    void *q = kiln__host_pool_alloc(pool, 100, 0);
    kiln__host_pool_dealloc(pool, q, 100);
    kiln__host_pool_stats(pool, &s);
    ASSERT_EQ_INT(s.cached, 0);
    ASSERT_EQ_INT(s.in_use, 0);
    kiln__host_pool_free(pool);
}

static void test_large_blocks_not_cached(void)
{
    kiln__host_pool_t *pool = kiln__host_pool_new((size_t)1 << 40);
    /* A big request within the classes is cached; its size class is 5/4 of 2^24. */
    void *p = kiln__host_pool_alloc(pool, ((size_t)1 << 24) + 1, 0);
    ASSERT(p != NULL);
    kiln__host_pool_dealloc(pool, p, ((size_t)1 << 24) + 1);
    kiln__host_pool_stats_t s;
    kiln__host_pool_stats(pool, &s);
    ASSERT_EQ_INT(s.cached, 5 << 22);
    ASSERT(kiln__host_pool_alloc(pool, SIZE_MAX - 10, 0) == NULL);
    kiln__host_pool_free(pool);
}

/* Threads share one small pool; each writes its id into every block it holds and checks it
 * before giving the block back, so a block handed to two threads at once is caught. */
#define THREADS 8
#define ROUNDS 4000

struct worker {
    kiln__host_pool_t *pool;
    int id;
    int bad;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    unsigned seed = (unsigned)w->id * 2654435761u;
    unsigned char *held[8] = {0};
    size_t sizes[8] = {0};
    for (int r = 0; r < ROUNDS; r++) {
        seed = seed * 1103515245u + 12345u;
        int slot = (int)((seed >> 16) % 8);
        if (held[slot]) {
            for (size_t i = 0; i < sizes[slot]; i += 61)
                w->bad += held[slot][i] != (unsigned char)w->id;
            kiln__host_pool_dealloc(w->pool, held[slot], sizes[slot]);
            held[slot] = NULL;
            continue;
        }
        sizes[slot] = 1 + (seed >> 8) % 20000;
        held[slot] = kiln__host_pool_alloc(w->pool, sizes[slot], (r & 1));
        if (!held[slot]) {
            w->bad++;
            continue;
        }
        memset(held[slot], w->id, sizes[slot]);
    }
    for (int i = 0; i < 8; i++)
        kiln__host_pool_dealloc(w->pool, held[i], sizes[i]);
    return NULL;
}

static void test_threads(void)
{
    kiln__host_pool_t *pool = kiln__host_pool_new(256 * 1024);
    pthread_t th[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){pool, i + 1, 0};
        ASSERT_EQ_INT(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        ASSERT_EQ_INT(w[i].bad, 0);
    }
    kiln__host_pool_stats_t s;
    kiln__host_pool_stats(pool, &s);
    ASSERT_EQ_INT(s.in_use, 0);
    ASSERT_EQ_INT(s.allocs, s.frees);
    ASSERT(s.hits > 0);
    ASSERT(s.cached <= 256 * 1024);
    ASSERT(s.peak >= 20000);
    ASSERT_EQ_INT(kiln__host_pool_trim(pool, 0), s.cached);
    kiln__host_pool_free(pool);
}

static void test_default_pool(void)
{
    kiln__host_pool_t *p = kiln__host_pool_default();
    ASSERT(p != NULL);
    ASSERT(kiln__host_pool_default() == p);
    kiln__host_pool_stats_t s;
    kiln__host_pool_stats(p, &s);
    ASSERT_EQ_INT(s.limit, KILN__HOST_POOL_DEFAULT_LIMIT);
}

KILN_TEST_MAIN(TEST(test_class_sizes), TEST(test_reuse_and_counters), TEST(test_limit),
               TEST(test_large_blocks_not_cached), TEST_TIMEOUT(test_threads, 60),
               TEST(test_default_pool))
