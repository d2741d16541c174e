/* The output cache: its own LRU and byte-budget mechanics (kiln__cache_*), and the cache
 * modes as a prompt sees them: classic keeps only what the newest prompt can reuse, lru N
 * keeps N entries across prompts, none drops results as soon as their consumers ran, and
 * a byte budget evicts least-recently-used results. */
#include "cache/cache.h"
#include "test_sched_pack.h"
#include "value/value.h"

/* ---- kiln__cache_* directly ---------------------------------------------------------- */

static kiln__sig_t sig(uint64_t k)
{
    return (kiln__sig_t){{k, ~k}, true};
}

/* A one-slot result holding a string of n bytes. */
static kiln__outputs_t *result(size_t n)
{
    kiln__outputs_t *o = kiln__outputs_new(1);
    char *s = malloc(n + 1);
    memset(s, 'x', n);
    ASSERT_EQ_INT(kiln__vlist_push(&o->slots[0], kiln_value_new_string(s, n)), 0);
    free(s);
    kiln__outputs_measure(o);
    return o;
}

static void put(kiln__cache_t *c, uint64_t k, size_t n)
{
    kiln__outputs_t *o = result(n);
    kiln__sig_t s = sig(k);
    ASSERT_EQ_INT(kiln__cache_put(c, &s, o), 0);
    kiln__outputs_release(o);
}

static bool has(kiln__cache_t *c, uint64_t k)
{
    kiln__sig_t s = sig(k);
    return kiln__cache_has(c, &s);
}

static void touch(kiln__cache_t *c, uint64_t k)
{
    kiln__sig_t s = sig(k);
    kiln__outputs_release(kiln__cache_get(c, &s));
}

static void test_unit_byte_budget_lru(void)
{
    kiln__outputs_t *probe = result(1000);
    size_t one = probe->bytes;
    kiln__outputs_release(probe);
    ASSERT_CMP_INT(one, >=, 1000);
    kiln__cache_t *c = kiln__cache_new(KILN_CACHE_CLASSIC, 0, 3 * one);
    put(c, 1, 1000);
    put(c, 2, 1000);
    put(c, 3, 1000);
    ASSERT_EQ_INT(kiln__cache_bytes(c), 3 * one);
    touch(c, 1); /* 2 is now the least recently used */
    put(c, 4, 1000);
    ASSERT(has(c, 1) && !has(c, 2) && has(c, 3) && has(c, 4));
    ASSERT_EQ_INT(kiln__cache_evictions(c), 1);
    /* An entry larger than the whole budget is not kept, and pushes nothing else out. */
    put(c, 5, 5000);
    ASSERT(!has(c, 5));
    ASSERT(has(c, 1) && has(c, 3) && has(c, 4));
    ASSERT_EQ_INT(kiln__cache_evictions(c), 2);
    kiln__cache_free(c);
    ASSERT_EQ_INT(kiln__value_live_count(), 0);
}

static void test_unit_lru_count(void)
{
    kiln__cache_t *c = kiln__cache_new(KILN_CACHE_LRU, 2, 0);
    put(c, 1, 10);
    put(c, 2, 10);
    touch(c, 1);
    put(c, 3, 10);
    ASSERT(has(c, 1) && !has(c, 2) && has(c, 3));
    ASSERT_EQ_INT(kiln__cache_entries(c), 2);
    /* Prompt boundaries do not evict in LRU mode. */
    kiln__sig_t none = sig(99);
    kiln__cache_begin_prompt(c, &none, 1);
    kiln__cache_end_prompt(c);
    ASSERT_EQ_INT(kiln__cache_entries(c), 2);
    kiln__cache_free(c);
}

static void test_unit_classic_and_none_boundaries(void)
{
    kiln__cache_t *c = kiln__cache_new(KILN_CACHE_CLASSIC, 0, 0);
    put(c, 1, 10);
    put(c, 2, 10);
    put(c, 3, 10);
    kiln__sig_t keep[] = {sig(2), sig(7), {{3, ~3ull}, false}};
    kiln__cache_begin_prompt(c, keep, 3);
    ASSERT(!has(c, 1) && has(c, 2) && !has(c, 3));
    ASSERT_EQ_INT(kiln__cache_evictions(c), 2);
    kiln__cache_clear(c);
    ASSERT_EQ_INT(kiln__cache_entries(c), 0);
    ASSERT_EQ_INT(kiln__cache_evictions(c), 2); /* clearing is not evicting */
    kiln__cache_free(c);

    c = kiln__cache_new(KILN_CACHE_NONE, 0, 0);
    put(c, 1, 10);
    put(c, 2, 10);
    kiln__sig_t s1 = sig(1);
    kiln__cache_drop(c, &s1);
    ASSERT(!has(c, 1) && has(c, 2));
    kiln__cache_end_prompt(c);
    ASSERT_EQ_INT(kiln__cache_entries(c), 0);
    kiln__cache_free(c);
}

static void test_unit_invalid_signature_never_stored(void)
{
    kiln__cache_t *c = kiln__cache_new(KILN_CACHE_CLASSIC, 0, 0);
    kiln__outputs_t *o = result(4);
    kiln__sig_t bad = {{1, 2}, false};
    ASSERT_EQ_INT(kiln__cache_put(c, &bad, o), 0);
    ASSERT_EQ_INT(kiln__cache_entries(c), 0);
    ASSERT(kiln__cache_get(c, &bad) == NULL);
    /* A result handed out stays valid after its entry is evicted. */
    kiln__sig_t good = sig(5);
    ASSERT_EQ_INT(kiln__cache_put(c, &good, o), 0);
    kiln__outputs_release(o);
    kiln__outputs_t *got = kiln__cache_get(c, &good);
    ASSERT(got != NULL);
    kiln__cache_clear(c);
    const char *s;
    size_t len;
    ASSERT_EQ_INT(kiln_value_get_string(got->slots[0].items[0], &s, &len), 0);
    ASSERT_EQ_INT(len, 4);
    kiln__outputs_release(got);
    kiln__cache_free(c);
    ASSERT_EQ_INT(kiln__value_live_count(), 0);
}

/* ---- modes through the engine -------------------------------------------------------- */

/* 1 -> 2 -> 3 -> 4 -> 5 (output); v is node 1's value. */
static char *chain(int v)
{
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"1\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": %d}},"
             " \"2\": {\"class_type\": \"TAdd\", \"inputs\": {\"a\": [\"1\", 0], \"b\": 1}},"
             " \"3\": {\"class_type\": \"TAdd\", \"inputs\": {\"a\": [\"2\", 0], \"b\": 1}},"
             " \"4\": {\"class_type\": \"TAdd\", \"inputs\": {\"a\": [\"3\", 0], \"b\": 1}},"
             " \"5\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"4\", 0]}}}",
             v);
    return buf;
}

static uint64_t executed(kiln_engine_t *e)
{
    return kiln_engine_stat(e, KILN_STAT_NODES_EXECUTED);
}

static void test_classic_alternating_prompts_recompute(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    ASSERT_EQ_INT(tp_run(e, chain(1), NULL), 0);
    ASSERT_EQ_INT(kiln_engine_stat(e, KILN_STAT_CACHE_ENTRIES), 5);
    ASSERT_EQ_INT(tp_run(e, chain(2), NULL), 0);
    ASSERT_EQ_INT(tp_run(e, chain(1), NULL), 0);
    ASSERT_EQ_INT(executed(e), 15);
    ASSERT_EQ_INT(kiln_engine_stat(e, KILN_STAT_CACHE_EVICTIONS), 10);
    tp_close(e);
}

static void test_lru_keeps_both_prompts(void)
{
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.cache_mode = KILN_CACHE_LRU;
    o.cache_lru_size = 10;
    kiln_engine_t *e = tp_engine(&o);
    ASSERT_EQ_INT(tp_run(e, chain(1), NULL), 0);
    ASSERT_EQ_INT(tp_run(e, chain(2), NULL), 0);
    ASSERT_EQ_INT(tp_run(e, chain(1), NULL), 0);
    ASSERT_EQ_INT(tp_run(e, chain(2), NULL), 0);
    ASSERT_EQ_INT(executed(e), 10);
    ASSERT_EQ_INT(kiln_engine_stat(e, KILN_STAT_CACHE_ENTRIES), 10);
    ASSERT_EQ_INT(kiln_engine_stat(e, KILN_STAT_CACHE_EVICTIONS), 0);
    tp_close(e);
}

static void test_lru_small_evicts_oldest(void)
{
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.cache_mode = KILN_CACHE_LRU;
    o.cache_lru_size = 2;
    o.cpu_lanes = 1;
    kiln_engine_t *e = tp_engine(&o);
    ASSERT_EQ_INT(tp_run(e, chain(1), NULL), 0);
    ASSERT_EQ_INT(kiln_engine_stat(e, KILN_STAT_CACHE_ENTRIES), 2);
    ASSERT_EQ_INT(kiln_engine_stat(e, KILN_STAT_CACHE_EVICTIONS), 3);
    /* The two newest entries are 4 and 5: the output is cached, nothing runs. */
    ASSERT_EQ_INT(tp_run(e, chain(1), NULL), 0);
    ASSERT_EQ_INT(executed(e), 5);
    /* Swap the output for another class: it needs node 4, which is still cached. */
    const char *other =
        "{\"1\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 1}},"
        " \"2\": {\"class_type\": \"TAdd\", \"inputs\": {\"a\": [\"1\", 0], \"b\": 1}},"
        " \"3\": {\"class_type\": \"TAdd\", \"inputs\": {\"a\": [\"2\", 0], \"b\": 1}},"
        " \"4\": {\"class_type\": \"TAdd\", \"inputs\": {\"a\": [\"3\", 0], \"b\": 1}},"
        " \"6\": {\"class_type\": \"TMeta\", \"inputs\": {\"value\": [\"4\", 0]}}}";
    ASSERT_EQ_INT(tp_run(e, other, NULL), 0);
    ASSERT_EQ_INT(executed(e), 6);
    ASSERT_EQ_INT(tp_runs("6"), 1);
    ASSERT_EQ_INT(tp_runs("3"), 1);
    tp_close(e);
}

/* TProbe records how many cache entries exist while it runs. */
static kiln_engine_t *probe_engine;
static int probe_entries = -1;

static int probe_execute(kiln_call_t *call)
{
    probe_entries = (int)kiln_engine_stat(probe_engine, KILN_STAT_CACHE_ENTRIES);
    return tp_out(call);
}

static const kiln_node_def_t probe_def = {
    KILN_NODE_DEF_INIT, .name = "TProbe", .inputs = tp_in_any, .outputs = tp_out_none,
    .execute = probe_execute, .flags = KILN_NODE_OUTPUT};
static const kiln_node_def_t *const probe_nodes[] = {&probe_def, NULL};
static int probe_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    out->name = "probe";
    out->nodes = probe_nodes;
    return 0;
}

static void test_none_drops_after_consumers(void)
{
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.cache_mode = KILN_CACHE_NONE;
    kiln_engine_t *e = tp_engine(&o);
    probe_engine = e;
    ASSERT_EQ_INT(kiln_engine_add_pack(e, "probe", probe_init), 0);
    const char *prompt =
        "{\"1\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 1}},"
        " \"2\": {\"class_type\": \"TAdd\", \"inputs\": {\"a\": [\"1\", 0], \"b\": 1}},"
        " \"3\": {\"class_type\": \"TAdd\", \"inputs\": {\"a\": [\"2\", 0], \"b\": 1}},"
        " \"4\": {\"class_type\": \"TAdd\", \"inputs\": {\"a\": [\"3\", 0], \"b\": 1}},"
        " \"5\": {\"class_type\": \"TProbe\", \"inputs\": {\"value\": [\"4\", 0]}}}";
    ASSERT_EQ_INT(tp_run(e, prompt, NULL), 0);
    /* When the output ran, 1, 2 and 3 had been dropped: only 4 (being read) was held. */
    ASSERT_EQ_INT(probe_entries, 1);
    ASSERT_EQ_INT(kiln_engine_stat(e, KILN_STAT_CACHE_ENTRIES), 0);
    ASSERT_EQ_INT(tp_run(e, prompt, NULL), 0);
    ASSERT_EQ_INT(executed(e), 10);
    ASSERT_EQ_INT(kiln_engine_stat(e, KILN_STAT_NODES_CACHED), 0);
    tp_close(e);
}

static void test_classic_keeps_everything_of_the_prompt(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    probe_engine = e;
    ASSERT_EQ_INT(kiln_engine_add_pack(e, "probe", probe_init), 0);
    const char *prompt =
        "{\"1\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 1}},"
        " \"2\": {\"class_type\": \"TAdd\", \"inputs\": {\"a\": [\"1\", 0], \"b\": 1}},"
        " \"5\": {\"class_type\": \"TProbe\", \"inputs\": {\"value\": [\"2\", 0]}}}";
    ASSERT_EQ_INT(tp_run(e, prompt, NULL), 0);
    ASSERT_EQ_INT(probe_entries, 2);
    ASSERT_EQ_INT(kiln_engine_stat(e, KILN_STAT_CACHE_ENTRIES), 3);
    ASSERT_EQ_INT(kiln_engine_clear_cache(e), 0);
    ASSERT_EQ_INT(kiln_engine_stat(e, KILN_STAT_CACHE_ENTRIES), 0);
    ASSERT_EQ_INT(tp_run(e, prompt, NULL), 0);
    ASSERT_EQ_INT(executed(e), 6);
    tp_close(e);
}

/* Three 1000-byte results under a budget that holds two: the least recently used one is
 * evicted and runs again when a later prompt needs it. */
static void test_byte_budget_evicts_lru(void)
{
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.cache_ram_budget = 2500;
    o.cpu_lanes = 1;
    kiln_engine_t *e = tp_engine(&o);
    const char *a =
        "{\"1\": {\"class_type\": \"TBytes\", \"inputs\": {\"n\": 1000, \"tag\": 1}},"
        " \"2\": {\"class_type\": \"TBytes\", \"inputs\": {\"n\": 1000, \"tag\": 2}},"
        " \"3\": {\"class_type\": \"TBytes\", \"inputs\": {\"n\": 1000, \"tag\": 3}},"
        " \"11\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"1\", 0]}},"
        " \"12\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"2\", 0]}},"
        " \"13\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"3\", 0]}}}";
    ASSERT_EQ_INT(tp_run(e, a, NULL), 0);
    ASSERT_CMP_INT(kiln_engine_stat(e, KILN_STAT_CACHE_BYTES), <=, 2500);
    ASSERT_CMP_INT(kiln_engine_stat(e, KILN_STAT_CACHE_BYTES), >=, 2000);
    ASSERT_EQ_INT(kiln_engine_stat(e, KILN_STAT_CACHE_EVICTIONS), 1);
    const char *b =
        "{\"1\": {\"class_type\": \"TBytes\", \"inputs\": {\"n\": 1000, \"tag\": 1}},"
        " \"2\": {\"class_type\": \"TBytes\", \"inputs\": {\"n\": 1000, \"tag\": 2}},"
        " \"3\": {\"class_type\": \"TBytes\", \"inputs\": {\"n\": 1000, \"tag\": 3}},"
        " \"21\": {\"class_type\": \"TMeta\", \"inputs\": {\"value\": [\"1\", 0]}},"
        " \"22\": {\"class_type\": \"TMeta\", \"inputs\": {\"value\": [\"2\", 0]}},"
        " \"23\": {\"class_type\": \"TMeta\", \"inputs\": {\"value\": [\"3\", 0]}}}";
    ASSERT_EQ_INT(tp_run(e, b, NULL), 0);
    /* Node 1 ran first, so it was the least recently used when 3 arrived. */
    ASSERT_EQ_INT(tp_runs("1"), 2);
    ASSERT_EQ_INT(tp_runs("2"), 1);
    ASSERT_EQ_INT(tp_runs("3"), 1);
    ASSERT_CMP_INT(kiln_engine_stat(e, KILN_STAT_CACHE_BYTES), <=, 2500);
    tp_close(e);
    ASSERT_EQ_INT(kiln__value_live_count(), 0);
}

KILN_TEST_MAIN(TEST(test_unit_byte_budget_lru), TEST(test_unit_lru_count),
               TEST(test_unit_classic_and_none_boundaries),
               TEST(test_unit_invalid_signature_never_stored),
               TEST(test_classic_alternating_prompts_recompute), TEST(test_lru_keeps_both_prompts),
               TEST(test_lru_small_evicts_oldest), TEST(test_none_drops_after_consumers),
               TEST(test_classic_keeps_everything_of_the_prompt),
               TEST(test_byte_budget_evicts_lru))
