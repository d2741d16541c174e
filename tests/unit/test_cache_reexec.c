/* Re-execution after a change: with one widget changed, exactly that node and its
 * descendants run again; identical subgraphs share one execution; NOT_IDEMPOTENT nodes
 * are not shared between ids; is_changed fingerprints and failing hooks force re-runs. */
#include "test_sched_pack.h"

/* 1 -> 3 <- 2, 3 -> 4 -> 5 (output). `b2` is node 2's value, `b4` node 4's constant. */
static char *five(int b2, int b4)
{
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"1\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 1}},"
             " \"2\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": %d}},"
             " \"3\": {\"class_type\": \"TAdd\","
             " \"inputs\": {\"a\": [\"1\", 0], \"b\": [\"2\", 0]}},"
             " \"4\": {\"class_type\": \"TAdd\", \"inputs\": {\"a\": [\"3\", 0], \"b\": %d}},"
             " \"5\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"4\", 0]}}}",
             b2, b4);
    return buf;
}

static void expect_runs(int a, int b, int c, int d, int e5)
{
    ASSERT_EQ_INT(tp_runs("1"), a);
    ASSERT_EQ_INT(tp_runs("2"), b);
    ASSERT_EQ_INT(tp_runs("3"), c);
    ASSERT_EQ_INT(tp_runs("4"), d);
    ASSERT_EQ_INT(tp_runs("5"), e5);
}

static void test_changed_widget_reruns_descendants_only(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    tp_events_t ev;
    tp_events_init(&ev);
    ASSERT_EQ_INT(tp_run(e, five(2, 10), NULL), 0);
    expect_runs(1, 1, 1, 1, 1);

    /* Node 2's widget changes: 2 and its descendants 3, 4, 5 run; 1 is cached. */
    ASSERT_EQ_INT(tp_run(e, five(3, 10), &ev), 0);
    expect_runs(1, 2, 2, 2, 2);
    ASSERT_STR_CONTAINS(tp_no_ts(ev.lines[1]), "execution_cached {\"nodes\":[\"1\"],");
    ASSERT_STR_CONTAINS(ev.lines[tp_find(&ev, "executed", 0)], "{\"values\":[14]}");
    tp_events_clear(&ev);

    /* Node 4's constant changes: only 4 and 5. */
    ASSERT_EQ_INT(tp_run(e, five(3, 20), &ev), 0);
    expect_runs(1, 2, 2, 3, 3);
    ASSERT_STR_CONTAINS(tp_no_ts(ev.lines[1]),
                        "execution_cached {\"nodes\":[\"1\",\"2\",\"3\"],");
    tp_events_clear(&ev);

    /* Back to an earlier value of node 4: classic mode kept only what the last prompt
     * could reuse, so 4 and 5 run again. */
    ASSERT_EQ_INT(tp_run(e, five(3, 10), NULL), 0);
    expect_runs(1, 2, 2, 4, 4);

    /* Unchanged: nothing runs. */
    ASSERT_EQ_INT(tp_run(e, five(3, 10), NULL), 0);
    expect_runs(1, 2, 2, 4, 4);
    tp_close(e);
}

static void test_node_ids_do_not_matter(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    ASSERT_EQ_INT(tp_run(e, five(2, 10), NULL), 0);
    /* The same graph under other ids is fully cached. */
    const char *renamed =
        "{\"a\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 1}},"
        " \"b\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 2}},"
        " \"c\": {\"class_type\": \"TAdd\", \"inputs\": {\"b\": [\"b\", 0], \"a\": [\"a\", 0]}},"
        " \"d\": {\"class_type\": \"TAdd\", \"inputs\": {\"a\": [\"c\", 0], \"b\": 10}},"
        " \"e\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"d\", 0]}}}";
    tp_events_t ev;
    tp_events_init(&ev);
    ASSERT_EQ_INT(tp_run(e, renamed, &ev), 0);
    ASSERT_EQ_INT(kiln_engine_stat(e, KILN_STAT_NODES_EXECUTED), 5);
    ASSERT_STR_CONTAINS(tp_no_ts(ev.lines[1]),
                        "execution_cached {\"nodes\":[\"a\",\"b\",\"c\",\"d\",\"e\"],");
    tp_events_clear(&ev);
    tp_close(e);
}

static void test_identical_branches_share_one_run(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    tp_events_t ev;
    tp_events_init(&ev);
    const char *twins =
        "{\"1\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 3}},"
        " \"2\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"1\", 0]}},"
        " \"3\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 3}},"
        " \"4\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"3\", 0]}}}";
    ASSERT_EQ_INT(tp_run(e, twins, &ev), 0);
    ASSERT_EQ_INT(tp_runs("1") + tp_runs("3"), 1);
    ASSERT_EQ_INT(tp_runs("2") + tp_runs("4"), 1);
    /* Both outputs still report their UI. */
    ASSERT(tp_find(&ev, "executed {\"node\":\"2\"", 0) > 0);
    ASSERT(tp_find(&ev, "executed {\"node\":\"4\"", 0) > 0);
    ASSERT_EQ_INT(tp_count_events(&ev, "executed"), 2);
    ASSERT_EQ_INT(kiln_engine_stat(e, KILN_STAT_NODES_CACHED), 2);
    tp_events_clear(&ev);
    tp_close(e);
}

static void test_not_idempotent_nodes_are_not_shared(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    const char *twins =
        "{\"1\": {\"class_type\": \"TNonce\", \"inputs\": {\"x\": 3}},"
        " \"2\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"1\", 0]}},"
        " \"3\": {\"class_type\": \"TNonce\", \"inputs\": {\"x\": 3}},"
        " \"4\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"3\", 0]}}}";
    ASSERT_EQ_INT(tp_run(e, twins, NULL), 0);
    ASSERT_EQ_INT(tp_runs("1"), 1);
    ASSERT_EQ_INT(tp_runs("3"), 1);
    ASSERT_EQ_INT(tp_runs("2") + tp_runs("4"), 2);
    /* Same ids, same inputs: cached across prompts like any node. */
    ASSERT_EQ_INT(tp_run(e, twins, NULL), 0);
    ASSERT_EQ_INT(tp_runs("1") + tp_runs("3"), 2);
    tp_close(e);
}

static char *changed(const char *fp)
{
    static char buf[512];
    snprintf(buf, sizeof buf,
             "{\"1\": {\"class_type\": \"TChanged\", \"inputs\": {\"x\": 1, \"fp\": \"%s\"}},"
             " \"2\": {\"class_type\": \"TAdd\", \"inputs\": {\"a\": [\"1\", 0], \"b\": 1}},"
             " \"3\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"2\", 0]}}}",
             fp);
    return buf;
}

static void test_is_changed_fingerprint(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    ASSERT_EQ_INT(tp_run(e, changed("v1"), NULL), 0);
    ASSERT_EQ_INT(tp_run(e, changed("v1"), NULL), 0);
    ASSERT_EQ_INT(tp_runs("1"), 1);
    ASSERT_EQ_INT(tp_runs("3"), 1);
    /* A failing hook: the node and its descendants run every time. */
    ASSERT_EQ_INT(tp_run(e, changed("fail"), NULL), 0);
    ASSERT_EQ_INT(tp_run(e, changed("fail"), NULL), 0);
    ASSERT_EQ_INT(tp_runs("1"), 3);
    ASSERT_EQ_INT(tp_runs("2"), 3);
    ASSERT_EQ_INT(tp_runs("3"), 3);
    tp_close(e);
}

/* is_changed sees constants only (links read as NULL) and the engine's directories. */
static int probe_hook(kiln_call_t *call, char *out, size_t out_size)
{
    int64_t a = -1;
    if (kiln_call_input(call, "a"))
        kiln_value_get_int(kiln_call_input(call, "a"), &a);
    /* short: the counters keep 15 characters of a key */
    snprintf(out, out_size, "a%lld/%s/%d", (long long)a,
             kiln_call_input(call, "b") ? "set" : "null",
             kiln_call_dir(call, KILN_DIR_OUTPUT) != NULL);
    tp_count(out);
    return 0;
}

static const kiln_node_def_t probe_def = {
    KILN_NODE_DEF_INIT, .name = "TProbeChanged", .inputs = tp_in_ab, .outputs = tp_out_int,
    .execute = tp_add, .is_changed = probe_hook};
static const kiln_node_def_t *const probe_nodes[] = {&probe_def, NULL};
static int probe_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    out->name = "probe";
    out->nodes = probe_nodes;
    return 0;
}

static void test_is_changed_sees_constants_only(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    ASSERT_EQ_INT(kiln_engine_add_pack(e, "probe", probe_init), 0);
    const char *prompt =
        "{\"1\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 1}},"
        " \"2\": {\"class_type\": \"TProbeChanged\", \"inputs\": {\"a\": 5, \"b\": [\"1\", 0]}},"
        " \"3\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"2\", 0]}},"
        " \"9\": {\"class_type\": \"TProbeChanged\", \"inputs\": {\"a\": 9}}}";
    ASSERT_EQ_INT(tp_run(e, prompt, NULL), 0);
    ASSERT_EQ_INT(tp_runs("a5/null/1"), 1);
    /* Hooks run for every node of the prompt, reachable or not. */
    ASSERT_EQ_INT(tp_runs("a9/null/1"), 1);
    ASSERT_EQ_INT(tp_runs("9"), 0);
    tp_close(e);
}

KILN_TEST_MAIN(TEST(test_changed_widget_reruns_descendants_only), TEST(test_node_ids_do_not_matter),
               TEST(test_identical_branches_share_one_run),
               TEST(test_not_idempotent_nodes_are_not_shared), TEST(test_is_changed_fingerprint),
               TEST(test_is_changed_sees_constants_only))
