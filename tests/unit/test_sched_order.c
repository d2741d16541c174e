/* Scheduling order: every node starts after all of its sources finished, the ready order
 * prefers output nodes and their feeders (ComfyUI §6.2), only the outputs' ancestors run,
 * and a random DAG computes the right values on several lanes. */
#include "test_sched_pack.h"

/* Position of node id in tp_order (start order), or -1. */
static int order_pos(const char *id)
{
    char key[32];
    snprintf(key, sizeof key, ",%s,", id);
    char padded[300];
    snprintf(padded, sizeof padded, ",%s,", tp_order);
    const char *at = strstr(padded, key);
    if (!at)
        return -1;
    int pos = 0;
    for (const char *s = padded + 1; s < at + 1; s++)
        pos += *s == ',';
    return pos;
}

static void test_single_lane_ready_order(void)
{
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.cpu_lanes = 1;
    kiln_engine_t *e = tp_engine(&o);
    /* 1 -> 2 -> 3(out); 4 -> 5(out). Node 4 feeds an output directly, 1 is two hops away,
     * so 4 goes first; then the output 5 beats 1; then the chain. */
    const char *prompt =
        "{\"1\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 1}},"
        " \"2\": {\"class_type\": \"TAdd\", \"inputs\": {\"a\": [\"1\", 0], \"b\": 1}},"
        " \"3\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"2\", 0]}},"
        " \"4\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 4}},"
        " \"5\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"4\", 0]}}}";
    tp_events_t ev;
    tp_events_init(&ev);
    ASSERT_EQ_INT(tp_run(e, prompt, &ev), 0);
    ASSERT_STR_EQ(tp_order, "4,5,1,2,3");
    /* executing events follow the same order */
    const char *want[] = {"4", "5", "1", "2", "3"};
    int at = 0;
    for (int i = 0; i < 5; i++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "executing {\"node\":\"%s\"", want[i]);
        int next = tp_find(&ev, prefix, at);
        ASSERT_CMP_INT(next, >, at);
        at = next;
    }
    tp_events_clear(&ev);
    tp_close(e);
}

static void test_only_needed_nodes_run(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    /* 9 is not an ancestor of any output: it never runs (but counts for signatures). */
    const char *prompt =
        "{\"1\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 1}},"
        " \"9\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 9}},"
        " \"2\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"1\", 0]}}}";
    ASSERT_EQ_INT(tp_run(e, prompt, NULL), 0);
    ASSERT_EQ_INT(tp_runs("1"), 1);
    ASSERT_EQ_INT(tp_runs("9"), 0);
    ASSERT_EQ_INT(tp_runs("2"), 1);
    tp_close(e);
}

static void test_partial_targets(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    const char *prompt =
        "{\"1\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 1}},"
        " \"2\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"1\", 0]}},"
        " \"3\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 3}},"
        " \"4\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"3\", 0]}}}";
    const char *targets[] = {"4"};
    kiln_prompt_t *p = NULL;
    char *errors = NULL;
    ASSERT_EQ_INT(kiln_prompt_new(e, prompt, strlen(prompt), targets, 1, &p, &errors), 0);
    kiln_free(errors);
    ASSERT_EQ_INT(kiln_prompt_output_count(p), 1);
    ASSERT_STR_EQ(kiln_prompt_output_id(p, 0), "4");
    ASSERT_EQ_INT(kiln_engine_execute(e, p, "p", NULL, NULL, NULL), 0);
    kiln_prompt_free(p);
    ASSERT_EQ_INT(tp_runs("3") + tp_runs("4"), 2);
    ASSERT_EQ_INT(tp_runs("1") + tp_runs("2"), 0);
    tp_close(e);
}

/* A deterministic pseudo-random DAG of TAdd nodes over several lanes: every edge is
 * respected in the start order and the output values are the sums the graph defines. */
static void test_random_dag(void)
{
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.cpu_lanes = 4;
    kiln_engine_t *e = tp_engine(&o);
    enum { N = 40 };
    int src_a[N], src_b[N];
    int64_t value[N];
    uint32_t seed = 12345;
    char *prompt = malloc(64 * 1024);
    size_t len = (size_t)snprintf(prompt, 64 * 1024, "{");
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        src_a[i] = i < 4 ? -1 : (int)((seed >> 8) % (uint32_t)i);
        seed = seed * 1103515245u + 12345u;
        src_b[i] = i < 4 ? -1 : (int)((seed >> 8) % (uint32_t)i);
        if (i < 4) {
            value[i] = i + 1;
            len += (size_t)snprintf(prompt + len, 64 * 1024 - len,
                                    "%s\"%d\": {\"class_type\": \"TConst\", \"inputs\": "
                                    "{\"value\": %d}}",
                                    i ? ", " : "", i, i + 1);
        } else {
            value[i] = value[src_a[i]] + value[src_b[i]];
            len += (size_t)snprintf(prompt + len, 64 * 1024 - len,
                                    ", \"%d\": {\"class_type\": \"TAdd\", \"inputs\": "
                                    "{\"a\": [\"%d\", 0], \"b\": [\"%d\", 0]}}",
                                    i, src_a[i], src_b[i]);
        }
    }
    /* Outputs on the last three nodes. */
    for (int k = 0; k < 3; k++)
        len += (size_t)snprintf(prompt + len, 64 * 1024 - len,
                                ", \"o%d\": {\"class_type\": \"TOut\", \"inputs\": "
                                "{\"value\": [\"%d\", 0]}}",
                                k, N - 1 - k);
    snprintf(prompt + len, 64 * 1024 - len, "}");
    tp_events_t ev;
    tp_events_init(&ev);
    ASSERT_EQ_INT(tp_run(e, prompt, &ev), 0);
    free(prompt);
    /* Nodes with equal inputs have equal signatures: only the first of each class runs
     * and the others take its result. canon[i] is that first node. */
    int canon[N];
    for (int i = 0; i < N; i++) {
        canon[i] = i;
        for (int j = 4; j < i && i >= 4 && canon[i] == i; j++)
            if (canon[src_a[j]] == canon[src_a[i]] && canon[src_b[j]] == canon[src_b[i]])
                canon[i] = canon[j];
    }
    int ran = 0;
    for (int i = 4; i < N; i++) {
        char id[16], a[16], b[16];
        snprintf(id, sizeof id, "%d", i);
        snprintf(a, sizeof a, "%d", canon[src_a[i]]);
        snprintf(b, sizeof b, "%d", canon[src_b[i]]);
        int pi = order_pos(id);
        if (canon[i] != i)
            ASSERT_EQ_INT(tp_runs(id), 0);
        if (pi < 0)
            continue; /* not an ancestor of the outputs, or a duplicate */
        ASSERT_CMP_INT(order_pos(a), >=, 0);
        ASSERT_CMP_INT(order_pos(a), <, pi);
        ASSERT_CMP_INT(order_pos(b), <, pi);
        ASSERT_EQ_INT(tp_runs(id), 1);
        ran++;
    }
    ASSERT_CMP_INT(ran, >=, 10);
    for (int k = 0; k < 3; k++) {
        char want[128];
        snprintf(want, sizeof want, "\"node\":\"o%d\",\"display_node\":\"o%d\",\"output\":"
                 "{\"values\":[%lld]}", k, k, (long long)value[N - 1 - k]);
        int found = 0;
        for (int i = 0; i < ev.n; i++)
            found += strstr(ev.lines[i], want) != NULL;
        ASSERT_EQ_INT(found, 1);
    }
    tp_events_clear(&ev);
    tp_close(e);
}

KILN_TEST_MAIN(TEST(test_single_lane_ready_order), TEST(test_only_needed_nodes_run),
               TEST(test_partial_targets), TEST(test_random_dag))
