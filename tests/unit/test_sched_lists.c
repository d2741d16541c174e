/* Lists (ComfyUI §6.3): an is_list output feeds a consumer that runs once per element,
 * shorter lists repeat their last element, INPUT_IS_LIST nodes see whole lists in one
 * call, UI payloads of several calls concatenate, and an empty list runs nothing. */
#include "test_sched_pack.h"

static int executed_line(const tp_events_t *ev, const char *node)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "executed {\"node\":\"%s\"", node);
    return tp_find(ev, prefix, 0);
}

static void test_consumer_runs_per_element(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    tp_events_t ev;
    tp_events_init(&ev);
    const char *prompt =
        "{\"1\": {\"class_type\": \"TRange\", \"inputs\": {\"n\": 3}},"
        " \"2\": {\"class_type\": \"TAdd\", \"inputs\": {\"a\": [\"1\", 0], \"b\": 10}},"
        " \"3\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"2\", 0]}}}";
    ASSERT_EQ_INT(tp_run(e, prompt, &ev), 0);
    ASSERT_EQ_INT(tp_runs("1"), 1);
    ASSERT_EQ_INT(tp_runs("2"), 3);
    ASSERT_EQ_INT(tp_runs("3"), 3);
    int at = executed_line(&ev, "3");
    ASSERT(at > 0);
    ASSERT_STR_CONTAINS(ev.lines[at], "\"output\":{\"values\":[10,11,12]}");
    /* one `executing` per node, however many calls it makes */
    ASSERT_EQ_INT(tp_count_events(&ev, "executing {\"node\":\"2\""), 1);
    ASSERT_EQ_INT(kiln_engine_stat(e, KILN_STAT_NODES_EXECUTED), 7);
    tp_events_clear(&ev);
    tp_close(e);
}

static void test_shorter_list_repeats_last(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    tp_events_t ev;
    tp_events_init(&ev);
    const char *prompt =
        "{\"1\": {\"class_type\": \"TRange\", \"inputs\": {\"n\": 3}},"
        " \"2\": {\"class_type\": \"TRange\", \"inputs\": {\"n\": 2}},"
        " \"3\": {\"class_type\": \"TAdd\", \"inputs\": {\"a\": [\"1\", 0], \"b\": [\"2\", 0]}},"
        " \"4\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"3\", 0]}}}";
    ASSERT_EQ_INT(tp_run(e, prompt, &ev), 0);
    ASSERT_EQ_INT(tp_runs("3"), 3);
    int at = executed_line(&ev, "4");
    ASSERT(at > 0);
    ASSERT_STR_CONTAINS(ev.lines[at], "\"output\":{\"values\":[0,2,3]}");
    tp_events_clear(&ev);
    tp_close(e);
}

static void test_input_is_list_sees_whole_list(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    tp_events_t ev;
    tp_events_init(&ev);
    const char *prompt =
        "{\"1\": {\"class_type\": \"TRange\", \"inputs\": {\"n\": 5}},"
        " \"2\": {\"class_type\": \"TSumList\", \"inputs\": {\"x\": [\"1\", 0]}},"
        " \"3\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"2\", 0]}},"
        " \"4\": {\"class_type\": \"TSumList\", \"inputs\": {\"x\": 7}},"
        " \"5\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"4\", 0]}}}";
    ASSERT_EQ_INT(tp_run(e, prompt, &ev), 0);
    ASSERT_EQ_INT(tp_runs("2"), 1);
    ASSERT_EQ_INT(tp_runs("3"), 1);
    ASSERT_STR_CONTAINS(ev.lines[executed_line(&ev, "3")], "{\"values\":[10]}");
    /* a constant is a one-element list */
    ASSERT_STR_CONTAINS(ev.lines[executed_line(&ev, "5")], "{\"values\":[7]}");
    tp_events_clear(&ev);
    tp_close(e);
}

/* An empty list reads as an absent input; a node whose lists are all empty is still
 * called once, as ComfyUI calls it once without arguments. */
static void test_empty_list_reads_absent(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    tp_events_t ev;
    tp_events_init(&ev);
    const char *prompt =
        "{\"1\": {\"class_type\": \"TRange\", \"inputs\": {\"n\": 0}},"
        " \"2\": {\"class_type\": \"TAdd\", \"inputs\": {\"a\": [\"1\", 0], \"b\": 1}},"
        " \"3\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"1\", 0]}},"
        " \"4\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"2\", 0]}}}";
    ASSERT_EQ_INT(tp_run(e, prompt, &ev), 0);
    ASSERT_EQ_INT(tp_runs("1"), 1);
    ASSERT_EQ_INT(tp_runs("2"), 1);
    ASSERT_EQ_INT(tp_runs("3"), 1);
    ASSERT_STR_CONTAINS(ev.lines[executed_line(&ev, "3")], "{\"values\":[null]}");
    ASSERT_STR_CONTAINS(ev.lines[executed_line(&ev, "4")], "{\"values\":[1]}");
    ASSERT_STR_CONTAINS(ev.lines[ev.n - 1], "execution_success");
    tp_events_clear(&ev);
    tp_close(e);
}

/* A list result is cached whole: a re-run with a changed consumer reuses it. */
static void test_list_result_cached(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    tp_events_t ev;
    tp_events_init(&ev);
    const char *a =
        "{\"1\": {\"class_type\": \"TRange\", \"inputs\": {\"n\": 4}},"
        " \"2\": {\"class_type\": \"TAdd\", \"inputs\": {\"a\": [\"1\", 0], \"b\": 0}},"
        " \"3\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"2\", 0]}}}";
    const char *b =
        "{\"1\": {\"class_type\": \"TRange\", \"inputs\": {\"n\": 4}},"
        " \"2\": {\"class_type\": \"TAdd\", \"inputs\": {\"a\": [\"1\", 0], \"b\": 100}},"
        " \"3\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"2\", 0]}}}";
    ASSERT_EQ_INT(tp_run(e, a, NULL), 0);
    ASSERT_EQ_INT(tp_run(e, b, &ev), 0);
    ASSERT_EQ_INT(tp_runs("1"), 1);
    ASSERT_EQ_INT(tp_runs("2"), 8);
    ASSERT_STR_CONTAINS(ev.lines[executed_line(&ev, "3")], "{\"values\":[100,101,102,103]}");
    tp_events_clear(&ev);
    tp_close(e);
}

KILN_TEST_MAIN(TEST(test_consumer_runs_per_element), TEST(test_shorter_list_repeats_last),
               TEST(test_input_is_list_sees_whole_list), TEST(test_empty_list_reads_absent),
               TEST(test_list_result_cached))
