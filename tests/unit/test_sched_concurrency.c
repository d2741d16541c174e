/* Concurrency: independent nodes overlap on separate CPU lanes, and the affinity policy
 * (a rules file, or a prompt's _meta.lane) serializes them when it pins them to one lane. */
#include "test_sched_pack.h"

/* Two independent 300 ms nodes, each feeding its own output. */
static const char *const TWO_SLOW =
    "{\"1\": {\"class_type\": \"TSleep\", \"inputs\": {\"x\": 1, \"ms\": 300, \"steps\": 1}},"
    " \"2\": {\"class_type\": \"TSleep\", \"inputs\": {\"x\": 2, \"ms\": 300, \"steps\": 1}},"
    " \"3\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"1\", 0]}},"
    " \"4\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"2\", 0]}}}";

static double timed_run(kiln_engine_t *e, const char *prompt, tp_events_t *ev)
{
    double t0 = tp_now_ms();
    ASSERT_EQ_INT(tp_run(e, prompt, ev), 0);
    return tp_now_ms() - t0;
}

static void test_independent_nodes_overlap(void)
{
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.cpu_lanes = 2;
    kiln_engine_t *e = tp_engine(&o);
    tp_events_t ev;
    tp_events_init(&ev);
    double ms = timed_run(e, TWO_SLOW, &ev);
    ASSERT_CMP_INT(ms, <, 500);
    ASSERT_CMP_INT(ms, >=, 300);
    ASSERT_EQ_INT(tp_max_running, 2);
    ASSERT_EQ_INT(tp_count_events(&ev, "executed"), 2);
    ASSERT_STR_CONTAINS(ev.lines[ev.n - 1], "execution_success");
    tp_events_clear(&ev);
    tp_close(e);
}

static void test_default_lanes_overlap(void)
{
    /* cpu_lanes 0 means one lane per core, but never fewer than two. */
    kiln_engine_t *e = tp_engine(NULL);
    ASSERT_CMP_INT(timed_run(e, TWO_SLOW, NULL), <, 500);
    tp_close(e);
}

static void test_rules_pin_to_one_lane(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/lanes.conf", kiln_test_tmpdir());
    const char *rules = "# both sleepers on the first CPU lane\n"
                        "\n"
                        "class TSleep lane cpu:0   # pinned\n";
    ASSERT_EQ_INT(kiln_test_write_file(path, rules, strlen(rules)), 0);
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.cpu_lanes = 2;
    o.affinity = path;
    kiln_engine_t *e = tp_engine(&o);
    double ms = timed_run(e, TWO_SLOW, NULL);
    ASSERT_CMP_INT(ms, >=, 600);
    ASSERT_EQ_INT(tp_max_running, 1);
    tp_close(e);
}

static void test_rules_node_rule_splits_again(void)
{
    /* A node rule beats the class rule: node 2 goes to cpu:1, so they overlap again. */
    char path[512];
    snprintf(path, sizeof path, "%s/lanes.conf", kiln_test_tmpdir());
    const char *rules = "class TSleep lane cpu:0\nnode 2 lane cpu:1\n";
    ASSERT_EQ_INT(kiln_test_write_file(path, rules, strlen(rules)), 0);
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.cpu_lanes = 2;
    o.affinity = path;
    kiln_engine_t *e = tp_engine(&o);
    ASSERT_CMP_INT(timed_run(e, TWO_SLOW, NULL), <, 500);
    ASSERT_EQ_INT(tp_max_running, 2);
    tp_close(e);
}

static void test_prompt_meta_lane_override(void)
{
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.cpu_lanes = 3;
    kiln_engine_t *e = tp_engine(&o);
    const char *pinned =
        "{\"1\": {\"class_type\": \"TSleep\", \"inputs\": {\"x\": 1, \"ms\": 300, \"steps\": 1},"
        " \"_meta\": {\"lane\": \"cpu:1\"}},"
        " \"2\": {\"class_type\": \"TSleep\", \"inputs\": {\"x\": 2, \"ms\": 300, \"steps\": 1},"
        " \"_meta\": {\"title\": \"t\", \"lane\": \"cpu:1\"}},"
        " \"3\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"1\", 0]}},"
        " \"4\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"2\", 0]}}}";
    ASSERT_CMP_INT(timed_run(e, pinned, NULL), >=, 600);
    ASSERT_EQ_INT(tp_max_running, 1);
    tp_close(e);
}

static void test_prompt_unknown_lane_fails_node(void)
{
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.cpu_lanes = 2;
    kiln_engine_t *e = tp_engine(&o);
    tp_events_t ev;
    tp_events_init(&ev);
    const char *bad =
        "{\"1\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 1},"
        " \"_meta\": {\"lane\": \"cpu:9\"}},"
        " \"2\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"1\", 0]}}}";
    ASSERT_EQ_INT(tp_run(e, bad, &ev), KILN_ENODE);
    int at = tp_find(&ev, "execution_error", 0);
    ASSERT(at > 0);
    ASSERT_STR_CONTAINS(ev.lines[at], "\"node_id\":\"1\"");
    ASSERT_STR_CONTAINS(ev.lines[at], "\"exception_type\":\"kiln.AffinityError\"");
    ASSERT_STR_CONTAINS(ev.lines[at], "'cpu:9' names no lane (lanes: cpu, cpu:0, cpu:1)");
    ASSERT_EQ_INT(tp_runs("1"), 0);
    tp_events_clear(&ev);
    tp_close(e);
}

static void test_bad_rules_file_refuses_engine(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/bad.conf", kiln_test_tmpdir());
    const char *rules = "class A lane cpu:0\nclass B lane gpu:7\n";
    ASSERT_EQ_INT(kiln_test_write_file(path, rules, strlen(rules)), 0);
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.base_directory = kiln_test_tmpdir();
    o.cpu_lanes = 2;
    o.affinity = path;
    kiln_engine_t *e = NULL;
    ASSERT_EQ_INT(kiln_engine_new(&o, &e), KILN_EPARSE);
    ASSERT(e == NULL);
    o.affinity = "/nonexistent/rules.conf";
    ASSERT_EQ_INT(kiln_engine_new(&o, &e), KILN_EIO);
    o.affinity = "single";
    ASSERT_EQ_INT(kiln_engine_new(&o, &e), 0);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* Wide fan-out: 8 sleepers over 4 lanes take about two rounds, never all at once. */
static void test_pool_bounded_by_lanes(void)
{
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.cpu_lanes = 4;
    kiln_engine_t *e = tp_engine(&o);
    char prompt[4096];
    size_t n = (size_t)snprintf(prompt, sizeof prompt, "{");
    for (int i = 1; i <= 8; i++)
        n += (size_t)snprintf(prompt + n, sizeof prompt - n,
                              "%s\"%d\": {\"class_type\": \"TSleep\", \"inputs\": {\"x\": %d, "
                              "\"ms\": 150, \"steps\": 1}}, \"%d\": {\"class_type\": \"TOut\", "
                              "\"inputs\": {\"value\": [\"%d\", 0]}}",
                              i > 1 ? ", " : "", i, i, 100 + i, i);
    snprintf(prompt + n, sizeof prompt - n, "}");
    double ms = timed_run(e, prompt, NULL);
    ASSERT_CMP_INT(ms, >=, 300);
    ASSERT_CMP_INT(ms, <, 550);
    ASSERT_EQ_INT(tp_max_running, 4);
    tp_close(e);
}

KILN_TEST_MAIN(TEST(test_independent_nodes_overlap), TEST(test_default_lanes_overlap),
               TEST(test_rules_pin_to_one_lane), TEST(test_rules_node_rule_splits_again),
               TEST(test_prompt_meta_lane_override), TEST(test_prompt_unknown_lane_fails_node),
               TEST(test_bad_rules_file_refuses_engine), TEST(test_pool_bounded_by_lanes))
