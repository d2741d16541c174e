/* Execution events: the exact sequence and data of ComfyUI's WebSocket messages for small
 * prompts (fresh, cached re-run, progress, node error, interrupt), and the hidden inputs
 * and PNG metadata that output nodes receive. */
#include "test_sched_pack.h"

static const char *const CHAIN =
    "{\"1\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 5}},"
    " \"2\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"1\", 0]}}}";

static void expect(const tp_events_t *ev, int i, const char *line)
{
    if (i >= ev->n)
        kiln_test_fail(__FILE__, __LINE__, "event %d missing; wanted %s", i, line);
    ASSERT_STR_EQ(tp_no_ts(ev->lines[i]), line);
}

static void test_events_fresh_then_cached(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    tp_events_t ev;
    tp_events_init(&ev);
    ASSERT_EQ_INT(tp_run(e, CHAIN, &ev), 0);
    ASSERT_EQ_INT(ev.n, 6);
    expect(&ev, 0, "execution_start {\"prompt_id\":\"p1\",\"timestamp\":T}");
    expect(&ev, 1, "execution_cached {\"nodes\":[],\"prompt_id\":\"p1\",\"timestamp\":T}");
    expect(&ev, 2, "executing {\"node\":\"1\",\"display_node\":\"1\",\"prompt_id\":\"p1\"}");
    expect(&ev, 3, "executing {\"node\":\"2\",\"display_node\":\"2\",\"prompt_id\":\"p1\"}");
    expect(&ev, 4, "executed {\"node\":\"2\",\"display_node\":\"2\",\"output\":{\"values\":[5]},"
                   "\"prompt_id\":\"p1\"}");
    expect(&ev, 5, "execution_success {\"prompt_id\":\"p1\",\"timestamp\":T}");
    tp_events_clear(&ev);

    /* Identical re-queue: nothing runs, the output node re-sends its cached UI. */
    ASSERT_EQ_INT(tp_run(e, CHAIN, &ev), 0);
    ASSERT_EQ_INT(ev.n, 4);
    expect(&ev, 1,
           "execution_cached {\"nodes\":[\"1\",\"2\"],\"prompt_id\":\"p1\",\"timestamp\":T}");
    expect(&ev, 2, "executed {\"node\":\"2\",\"display_node\":\"2\",\"output\":{\"values\":[5]},"
                   "\"prompt_id\":\"p1\"}");
    expect(&ev, 3, "execution_success {\"prompt_id\":\"p1\",\"timestamp\":T}");
    ASSERT_EQ_INT(tp_runs("1"), 1);
    ASSERT_EQ_INT(tp_runs("2"), 1);
    ASSERT_EQ_INT(kiln_engine_stat(e, KILN_STAT_NODES_EXECUTED), 2);
    ASSERT_EQ_INT(kiln_engine_stat(e, KILN_STAT_NODES_CACHED), 2);
    tp_events_clear(&ev);
    tp_close(e);
}

static void test_events_timestamp_is_ms(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    tp_events_t ev;
    tp_events_init(&ev);
    time_t before = time(NULL);
    ASSERT_EQ_INT(tp_run(e, CHAIN, &ev), 0);
    const char *ts = strstr(ev.lines[0], "\"timestamp\":");
    ASSERT(ts != NULL);
    long long ms = atoll(ts + strlen("\"timestamp\":"));
    ASSERT_CMP_INT(ms / 1000, >=, (long long)before - 1);
    ASSERT_CMP_INT(ms / 1000, <=, (long long)time(NULL) + 1);
    tp_events_clear(&ev);
    tp_close(e);
}

static void test_events_progress(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    tp_events_t ev;
    tp_events_init(&ev);
    const char *prompt =
        "{\"7\": {\"class_type\": \"TSleep\", \"inputs\": {\"x\": 3, \"ms\": 3, \"steps\": 3}},"
        " \"8\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"7\", 0]}}}";
    ASSERT_EQ_INT(tp_run(e, prompt, &ev), 0);
    int at = tp_find(&ev, "executing {\"node\":\"7\"", 0);
    ASSERT(at > 0);
    expect(&ev, at + 1, "progress {\"value\":1,\"max\":3,\"prompt_id\":\"p1\",\"node\":\"7\"}");
    expect(&ev, at + 2, "progress {\"value\":2,\"max\":3,\"prompt_id\":\"p1\",\"node\":\"7\"}");
    expect(&ev, at + 3, "progress {\"value\":3,\"max\":3,\"prompt_id\":\"p1\",\"node\":\"7\"}");
    expect(&ev, at + 4, "executing {\"node\":\"8\",\"display_node\":\"8\",\"prompt_id\":\"p1\"}");
    tp_events_clear(&ev);
    tp_close(e);
}

static void test_events_node_error(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    tp_events_t ev;
    tp_events_init(&ev);
    const char *prompt =
        "{\"1\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 4}},"
        " \"2\": {\"class_type\": \"TFail\", \"inputs\": {\"x\": [\"1\", 0]}},"
        " \"3\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"2\", 0]}}}";
    ASSERT_EQ_INT(tp_run(e, prompt, &ev), KILN_ENODE);
    ASSERT_EQ_INT(ev.n, 5);
    expect(&ev, 4,
           "execution_error {\"prompt_id\":\"p1\",\"node_id\":\"2\",\"node_type\":\"TFail\","
           "\"executed\":[\"1\"],\"exception_message\":\"boom 4\\n\","
           "\"exception_type\":\"kiln.NodeError\",\"traceback\":[],"
           "\"current_inputs\":{\"x\":[4]},\"current_outputs\":[],\"timestamp\":T}");
    ASSERT_EQ_INT(tp_count_events(&ev, "execution_success"), 0);
    tp_events_clear(&ev);

    /* The engine keeps serving; the completed node stayed cached and is reported in
     * current_outputs of a second failure. */
    ASSERT_EQ_INT(tp_run(e, prompt, &ev), KILN_ENODE);
    ASSERT_EQ_INT(tp_runs("1"), 1);
    ASSERT_EQ_INT(tp_runs("2"), 2);
    int at = tp_find(&ev, "execution_error", 0);
    ASSERT(at > 0);
    ASSERT_STR_CONTAINS(ev.lines[at], "\"executed\":[],");
    ASSERT_STR_CONTAINS(ev.lines[at], "\"current_outputs\":[\"1\"],");
    tp_events_clear(&ev);
    ASSERT_EQ_INT(tp_run(e, CHAIN, &ev), 0);
    ASSERT(tp_find(&ev, "execution_success", 0) > 0);
    tp_events_clear(&ev);
    tp_close(e);
}

/* Interrupts from the event callback once the slow node reported its first step. */
typedef struct irq {
    tp_events_t ev;
    kiln_engine_t *e;
} irq_t;

static void irq_on_event(void *ud, const kiln_event_t *event)
{
    irq_t *q = ud;
    tp_on_event(&q->ev, event);
    if (event->type == KILN_EVENT_PROGRESS && event->value == 1)
        kiln_engine_interrupt(q->e);
}

static void test_events_interrupt(void)
{
    irq_t q;
    tp_events_init(&q.ev);
    q.e = tp_engine(NULL);
    const char *prompt =
        "{\"1\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 1}},"
        " \"2\": {\"class_type\": \"TSleep\", \"inputs\": {\"x\": [\"1\", 0], \"ms\": 2000,"
        " \"steps\": 100}},"
        " \"3\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"2\", 0]}}}";
    kiln_prompt_t *p = tp_prompt(q.e, prompt);
    double t0 = tp_now_ms();
    ASSERT_EQ_INT(kiln_engine_execute(q.e, p, "p1", NULL, irq_on_event, &q), KILN_EINTERRUPTED);
    ASSERT_CMP_INT(tp_now_ms() - t0, <, 1500); /* stopped at a step, not after 2 s */
    kiln_prompt_free(p);
    int last = q.ev.n - 1;
    expect(&q.ev, last,
           "execution_interrupted {\"prompt_id\":\"p1\",\"node_id\":\"2\",\"node_type\":\"TSleep\","
           "\"executed\":[\"1\"],\"timestamp\":T}");
    ASSERT_EQ_INT(tp_count_events(&q.ev, "progress"), 1);
    ASSERT_EQ_INT(tp_runs("3"), 0);
    tp_events_clear(&q.ev);

    /* The next prompt runs normally: the flag was reset at its start. */
    ASSERT_EQ_INT(tp_run(q.e, CHAIN, &q.ev), 0);
    ASSERT(tp_find(&q.ev, "execution_success", 0) > 0);
    tp_events_clear(&q.ev);
    tp_close(q.e);
}

static const char *const META =
    "{\"1\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 2}},"
    " \"5\": {\"class_type\": \"TMeta\", \"inputs\": {\"value\": [\"1\", 0]},"
    " \"_meta\": {\"title\": \"M\u00e9ta\"}}}";
static const char *const EXTRA =
    "{\"client_id\": \"c\", \"extra_pnginfo\": {\"workflow\": {\"a\": [1, 2.5, \"\u00e9\"]},"
    " \"note\": \"x\"}}";

static void test_events_metadata(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    tp_events_t ev;
    tp_events_init(&ev);
    kiln_prompt_t *p = tp_prompt(e, META);
    ASSERT_EQ_INT(kiln_engine_execute(e, p, "p1", EXTRA, tp_on_event, &ev), 0);
    kiln_prompt_free(p);
    int at = tp_find(&ev, "executed", 0);
    ASSERT(at > 0);
    /* Keys: "prompt" then each extra_pnginfo key; texts as Python's json.dumps writes them
     * (", " and ": " separators, non-ASCII escaped), carried here as JSON strings. */
    ASSERT_STR_CONTAINS(ev.lines[at], "\"meta\":[\"prompt\",\"workflow\",\"note\"]");
    ASSERT_STR_CONTAINS(ev.lines[at], "\"texts\":[{\"1\":{\"class_type\":\"TConst\"");
    ASSERT_STR_CONTAINS(ev.lines[at], "{\"a\":[1,2.5,\"\u00e9\"]},\"x\"]");
    ASSERT_STR_CONTAINS(ev.lines[at], "\"hidden\":[{\"1\":");
    ASSERT_STR_CONTAINS(ev.lines[at],
                        "{\"workflow\":{\"a\":[1,2.5,\"\u00e9\"]},\"note\":\"x\"},\"5\"]");
    tp_events_clear(&ev);
    tp_close(e);
}

/* The Python-style texts themselves, read back through the node's UI before JSON parsing
 * would normalize them: check with a node that stores the raw text as a string. */
static int raw_meta(kiln_call_t *call)
{
    char buf[2048];
    for (size_t i = 0; i < kiln_call_metadata_count(call); i++) {
        const char *key, *text;
        kiln_call_metadata_get(call, i, &key, &text);
        size_t o = 0;
        buf[o++] = '"';
        for (const char *s = text; *s && o + 3 < sizeof buf; s++) {
            if (*s == '"' || *s == '\\')
                buf[o++] = '\\';
            buf[o++] = *s;
        }
        buf[o++] = '"';
        buf[o] = '\0';
        kiln_call_ui_append(call, key, buf);
    }
    return 0;
}

static const kiln_node_def_t raw_def = {
    KILN_NODE_DEF_INIT, .name = "TRawMeta", .inputs = tp_in_any, .outputs = tp_out_none,
    .execute = raw_meta, .flags = KILN_NODE_OUTPUT};
static const kiln_node_def_t *const raw_nodes[] = {&raw_def, NULL};
static int raw_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    out->name = "raw";
    out->nodes = raw_nodes;
    return 0;
}

static void test_events_metadata_python_text(void)
{
    for (int disabled = 0; disabled < 2; disabled++) {
        kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
        o.disable_metadata = disabled;
        kiln_engine_t *e = tp_engine(&o);
        ASSERT_EQ_INT(kiln_engine_add_pack(e, "raw", raw_init), 0);
        tp_events_t ev;
        tp_events_init(&ev);
        kiln_prompt_t *p = tp_prompt(e, "{\"3\": {\"class_type\": \"TRawMeta\", \"inputs\": "
                                        "{\"value\": \"h\u00e9\"}}}");
        ASSERT_EQ_INT(kiln_engine_execute(e, p, "p1", EXTRA, tp_on_event, &ev), 0);
        kiln_prompt_free(p);
        int at = tp_find(&ev, "executed", 0);
        if (disabled) {
            ASSERT_EQ_INT(at, -1); /* no metadata: no UI, and no UI means no `executed` */
        } else {
            ASSERT(at > 0);
            ASSERT_STR_CONTAINS(ev.lines[at],
                                "\"prompt\":[\"{\\\"3\\\": {\\\"class_type\\\": \\\"TRawMeta\\\", "
                                "\\\"inputs\\\": {\\\"value\\\": \\\"h\\\\u00e9\\\"}}}\"]");
            ASSERT_STR_CONTAINS(ev.lines[at], "\"workflow\":[\"{\\\"a\\\": [1, 2.5, "
                                              "\\\"\\\\u00e9\\\"]}\"]");
            ASSERT_STR_CONTAINS(ev.lines[at], "\"note\":[\"\\\"x\\\"\"]");
        }
        tp_events_clear(&ev);
        tp_close(e);
    }
}

static void test_execute_rejects_bad_extra_data(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    tp_events_t ev;
    tp_events_init(&ev);
    kiln_prompt_t *p = tp_prompt(e, CHAIN);
    ASSERT_EQ_INT(kiln_engine_execute(e, p, "p1", "{oops", tp_on_event, &ev), KILN_EPARSE);
    ASSERT_EQ_INT(kiln_engine_execute(e, p, "p1", "[1]", tp_on_event, &ev), KILN_EINVAL);
    ASSERT_EQ_INT(ev.n, 0); /* a call that fails never invokes its callback */
    ASSERT_EQ_INT(kiln_engine_execute(e, p, "p1", NULL, NULL, NULL), 0);
    kiln_prompt_free(p);
    tp_close(e);
}

KILN_TEST_MAIN(TEST(test_events_fresh_then_cached), TEST(test_events_timestamp_is_ms),
               TEST(test_events_progress), TEST(test_events_node_error),
               TEST(test_events_interrupt), TEST(test_events_metadata),
               TEST(test_events_metadata_python_text), TEST(test_execute_rejects_bad_extra_data))
