/* Tests for engine/util/strmap: put/get/replace/remove semantics, iteration, and a long
 * random sequence of operations checked against a plain array (exercising growth and
 * backward-shift deletion across wrapped probe runs). */
#include "runner.h"

#include "util/strmap.h"

#include <kiln/error.h>

static void test_basic(void)
{
    kiln__strmap_t *m = kiln__strmap_new();
    ASSERT(m != NULL);
    int a = 1, b = 2, c = 3;
    ASSERT_EQ_INT(kiln__strmap_count(m), 0);
    ASSERT(kiln__strmap_get(m, "a") == NULL);
    ASSERT_EQ_INT(kiln__strmap_put(m, "a", &a), 0);
    ASSERT_EQ_INT(kiln__strmap_put(m, "b", &b), 0);
    ASSERT_EQ_INT(kiln__strmap_put(m, "", &c), 0); /* the empty key is a key */
    ASSERT_EQ_INT(kiln__strmap_count(m), 3);
    ASSERT(kiln__strmap_get(m, "a") == &a);
    ASSERT(kiln__strmap_get(m, "") == &c);
    ASSERT(kiln__strmap_get(m, "ab") == NULL);
    /* Replacing keeps the count; NULL values are stored and seen through _has. */
    ASSERT_EQ_INT(kiln__strmap_put(m, "a", &c), 0);
    ASSERT(kiln__strmap_get(m, "a") == &c);
    ASSERT_EQ_INT(kiln__strmap_put(m, "nil", NULL), 0);
    ASSERT_EQ_INT(kiln__strmap_has(m, "nil"), 1);
    ASSERT_EQ_INT(kiln__strmap_has(m, "nope"), 0);
    ASSERT_EQ_INT(kiln__strmap_count(m), 4);
    /* Keys are copied. */
    char key[8] = "tmp";
    ASSERT_EQ_INT(kiln__strmap_put(m, key, &b), 0);
    key[0] = 'x';
    ASSERT(kiln__strmap_get(m, "tmp") == &b);
    ASSERT(kiln__strmap_get(m, "xmp") == NULL);
    void *v = NULL;
    ASSERT_EQ_INT(kiln__strmap_take(m, "tmp", &v), 0);
    ASSERT(v == &b);
    ASSERT_EQ_INT(kiln__strmap_remove(m, "b"), 0);
    ASSERT_EQ_INT(kiln__strmap_remove(m, "b"), KILN_ENOTFOUND);
    ASSERT_EQ_INT(kiln__strmap_take(m, "b", &v), KILN_ENOTFOUND);
    ASSERT_EQ_INT(kiln__strmap_count(m), 3);
    ASSERT_EQ_INT(kiln__strmap_put(m, NULL, &a), KILN_EINVAL);
    ASSERT_EQ_INT(kiln__strmap_put(NULL, "a", &a), KILN_EINVAL);
    ASSERT(kiln__strmap_get(NULL, "a") == NULL);
    ASSERT_EQ_INT(kiln__strmap_count(NULL), 0);
    kiln__strmap_clear(m);
    ASSERT_EQ_INT(kiln__strmap_count(m), 0);
    ASSERT_EQ_INT(kiln__strmap_has(m, "a"), 0);
    ASSERT_EQ_INT(kiln__strmap_put(m, "a", &a), 0);
    ASSERT(kiln__strmap_get(m, "a") == &a);
    kiln__strmap_free(m);
    kiln__strmap_free(NULL);
}

typedef struct visit {
    int seen;
    long sum;
    int stop_at;
} visit_t;

static int visit_fn(const char *key, void *value, void *ud)
{
    visit_t *v = ud;
    v->seen++;
    v->sum += (long)(intptr_t)value;
    ASSERT_EQ_INT(atoi(key + 1), (long)(intptr_t)value);
    return v->seen == v->stop_at ? 42 : 0;
}

static void test_foreach(void)
{
    kiln__strmap_t *m = kiln__strmap_new();
    char key[16];
    for (int i = 1; i <= 100; i++) {
        snprintf(key, sizeof key, "k%d", i);
        ASSERT_EQ_INT(kiln__strmap_put(m, key, (void *)(intptr_t)i), 0);
    }
    visit_t v = {0, 0, 0};
    ASSERT_EQ_INT(kiln__strmap_foreach(m, visit_fn, &v), 0);
    ASSERT_EQ_INT(v.seen, 100);
    ASSERT_EQ_INT(v.sum, 5050);
    visit_t w = {0, 0, 10};
    ASSERT_EQ_INT(kiln__strmap_foreach(m, visit_fn, &w), 42);
    ASSERT_EQ_INT(w.seen, 10);
    kiln__strmap_free(m);
}

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32) % n;
}

/* Random puts and removes over a small key space (so keys come and go many times),
 * checked after every step against an array; then a full scan of every key. */
static void test_random_against_model(void)
{
    enum { KEYS = 5000, OPS = 300000 };
    static int present[KEYS];
    static intptr_t model[KEYS];
    size_t count = 0;
    kiln__strmap_t *m = kiln__strmap_new();
    char key[32];
    for (int op = 0; op < OPS; op++) {
        int k = (int)rnd(KEYS);
        snprintf(key, sizeof key, "key-%d", k);
        switch (rnd(3)) {
        case 0:
        case 1: {
            intptr_t val = (intptr_t)rnd(1000000) + 1;
            ASSERT_EQ_INT(kiln__strmap_put(m, key, (void *)val), 0);
            count += !present[k];
            present[k] = 1;
            model[k] = val;
            break;
        }
        default:
            ASSERT_EQ_INT(kiln__strmap_remove(m, key), present[k] ? 0 : KILN_ENOTFOUND);
            count -= present[k];
            present[k] = 0;
        }
        ASSERT_EQ_INT(kiln__strmap_count(m), count);
        ASSERT(kiln__strmap_get(m, key) == (present[k] ? (void *)model[k] : NULL));
    }
    for (int k = 0; k < KEYS; k++) {
        snprintf(key, sizeof key, "key-%d", k);
        ASSERT_EQ_INT(kiln__strmap_has(m, key), present[k]);
        if (present[k])
            ASSERT(kiln__strmap_get(m, key) == (void *)model[k]);
    }
    kiln__strmap_free(m);
}

/* Growth from 16 slots to well over 100k entries keeps every key reachable. */
static void test_many_keys(void)
{
    enum { N = 200000 };
    kiln__strmap_t *m = kiln__strmap_new();
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "node/%d/output", i);
        ASSERT_EQ_INT(kiln__strmap_put(m, key, (void *)(intptr_t)(i + 1)), 0);
    }
    ASSERT_EQ_INT(kiln__strmap_count(m), N);
    for (int i = 0; i < N; i += 2) {
        snprintf(key, sizeof key, "node/%d/output", i);
        ASSERT_EQ_INT(kiln__strmap_remove(m, key), 0);
    }
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "node/%d/output", i);
        ASSERT(kiln__strmap_get(m, key) == (i % 2 ? (void *)(intptr_t)(i + 1) : NULL));
    }
    ASSERT_EQ_INT(kiln__strmap_count(m), N / 2);
    kiln__strmap_free(m);
}

KILN_TEST_MAIN(TEST(test_basic), TEST(test_foreach), TEST(test_random_against_model),
               TEST(test_many_keys))
