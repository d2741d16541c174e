/* The embedding API around execution: engine options and folders, prompt creation with
 * ComfyUI's 400 bodies, prompt accessors, /object_info, UI-to-API conversion pass-through,
 * the close contract, node directories, and that nothing leaks across a full cycle. */
#include <sys/stat.h>

#include "test_sched_pack.h"
#include "util/alloc.h"
#include "value/value.h"

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void test_engine_creates_folders(void)
{
    char base[512], path[600];
    snprintf(base, sizeof base, "%s/deep/base", kiln_test_tmpdir());
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.base_directory = base;
    kiln_engine_t *e = NULL;
    ASSERT_EQ_INT(kiln_engine_new(&o, &e), 0);
    const char *leaves[] = {"output", "input", "temp", "models"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", base, leaves[i]);
        ASSERT(is_dir(path));
    }
    ASSERT_EQ_INT(kiln_engine_close(e), 0);

    /* Explicit folders win over the base. */
    char out[512];
    snprintf(out, sizeof out, "%s/elsewhere/out", kiln_test_tmpdir());
    o.output_directory = out;
    ASSERT_EQ_INT(kiln_engine_new(&o, &e), 0);
    ASSERT(is_dir(out));
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* A node that reports its directories and lane through the UI. */
static int dirs_execute(kiln_call_t *call)
{
    char buf[1200];
    const kiln_dir_t which[] = {KILN_DIR_OUTPUT, KILN_DIR_INPUT, KILN_DIR_TEMP, KILN_DIR_MODELS};
    for (int i = 0; i < 4; i++) {
        snprintf(buf, sizeof buf, "\"%s\"", kiln_call_dir(call, which[i]));
        kiln_call_ui_append(call, "dirs", buf);
    }
    snprintf(buf, sizeof buf, "%d", kiln_call_lane(call) != NULL);
    kiln_call_ui_append(call, "lane", buf);
    snprintf(buf, sizeof buf, "\"%s\"", (const char *)kiln_call_userdata(call));
    kiln_call_ui_append(call, "userdata", buf);
    /* malformed UI JSON is refused, not stored */
    ASSERT_EQ_INT(kiln_call_ui_append(call, "bad", "{nope"), KILN_EPARSE);
    return 0;
}

static const kiln_node_def_t dirs_def = {
    KILN_NODE_DEF_INIT, .name = "TDirs", .inputs = tp_in_value, .outputs = tp_out_none,
    .execute = dirs_execute, .flags = KILN_NODE_OUTPUT, .userdata = (void *)"ud"};
static const kiln_node_def_t *const dirs_nodes[] = {&dirs_def, NULL};
static int dirs_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    out->name = "dirs";
    out->nodes = dirs_nodes;
    return 0;
}

static void test_call_dirs_lane_userdata(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    ASSERT_EQ_INT(kiln_engine_add_pack(e, "dirs", dirs_init), 0);
    tp_events_t ev;
    tp_events_init(&ev);
    ASSERT_EQ_INT(tp_run(e, "{\"1\": {\"class_type\": \"TDirs\", \"inputs\": {\"value\": 1}}}",
                         &ev),
                  0);
    int at = tp_find(&ev, "executed", 0);
    ASSERT(at > 0);
    char want[2048];
    const char *b = kiln_test_tmpdir();
    snprintf(want, sizeof want,
             "\"output\":{\"dirs\":[\"%s/output\",\"%s/input\",\"%s/temp\",\"%s/models\"],"
             "\"lane\":[1],\"userdata\":[\"ud\"]}",
             b, b, b, b);
    ASSERT_STR_CONTAINS(ev.lines[at], want);
    tp_events_clear(&ev);
    tp_close(e);
}

static void test_prompt_malformed_json(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    kiln_prompt_t *p = NULL;
    char *body = NULL;
    const char *bad = "{\"1\": {\"class_type\": ";
    ASSERT_EQ_INT(kiln_prompt_new(e, bad, strlen(bad), NULL, 0, &p, &body), KILN_EPARSE);
    ASSERT(p == NULL);
    ASSERT_STR_CONTAINS(body, "{\"error\":{\"type\":\"invalid_prompt\",\"message\":\"Invalid "
                              "prompt: malformed JSON\",\"details\":\"line 1 column");
    ASSERT_STR_CONTAINS(body, "\"node_errors\":{}}");
    kiln_free(body);
    /* without a body pointer */
    ASSERT_EQ_INT(kiln_prompt_new(e, bad, strlen(bad), NULL, 0, &p, NULL), KILN_EPARSE);
    tp_close(e);
}

static void test_prompt_unknown_class(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    kiln_prompt_t *p = NULL;
    char *body = NULL;
    const char *bad = "{\"1\": {\"class_type\": \"NoSuchNode\", \"inputs\": {}}}";
    ASSERT_EQ_INT(kiln_prompt_new(e, bad, strlen(bad), NULL, 0, &p, &body), KILN_EVALIDATION);
    ASSERT(p == NULL);
    ASSERT_STR_CONTAINS(body, "\"type\":\"invalid_prompt\"");
    ASSERT_STR_CONTAINS(body, "NoSuchNode");
    ASSERT_STR_CONTAINS(body, "\"node_errors\":{}");
    kiln_free(body);
    tp_close(e);
}

static void test_prompt_without_outputs(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    kiln_prompt_t *p = NULL;
    char *body = NULL;
    const char *none = "{\"1\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 1}}}";
    ASSERT_EQ_INT(kiln_prompt_new(e, none, strlen(none), NULL, 0, &p, &body), KILN_EVALIDATION);
    ASSERT_STR_CONTAINS(body, "prompt_no_outputs");
    kiln_free(body);
    tp_close(e);
}

static void test_prompt_accessors(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    const char *json =
        "{\"1\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": \"12\"}},"
        " \"2\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"1\", 0]}},"
        " \"3\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"1\", 0]}}}";
    kiln_prompt_t *p = NULL;
    char *ne = NULL;
    ASSERT_EQ_INT(kiln_prompt_new(e, json, strlen(json), NULL, 0, &p, &ne), 0);
    ASSERT_STR_EQ(ne, "{}");
    kiln_free(ne);
    /* validation coerced "12" to 12 */
    ASSERT_STR_CONTAINS(kiln_prompt_json(p), "{\"1\":{\"class_type\":\"TConst\",\"inputs\":"
                                             "{\"value\":12}}");
    ASSERT_EQ_INT(kiln_prompt_output_count(p), 2);
    ASSERT_STR_EQ(kiln_prompt_output_id(p, 0), "2");
    ASSERT_STR_EQ(kiln_prompt_output_id(p, 1), "3");
    ASSERT(kiln_prompt_output_id(p, 2) == NULL);
    /* close refuses while a prompt is alive */
    ASSERT_EQ_INT(kiln_engine_close(e), KILN_EBUSY);
    ASSERT_EQ_INT(kiln_prompt_free(p), 0);
    tp_close(e);
}

static void test_object_info(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    char *json = NULL;
    ASSERT_EQ_INT(kiln_engine_object_info(e, "TConst", &json), 0);
    ASSERT_STR_CONTAINS(json, "\"TConst\"");
    ASSERT_STR_CONTAINS(json, "\"output\":[\"INT\"]");
    kiln_free(json);
    ASSERT_EQ_INT(kiln_engine_object_info(e, "Nope", &json), 0);
    ASSERT_STR_EQ(json, "{}");
    kiln_free(json);
    ASSERT_EQ_INT(kiln_engine_object_info(e, NULL, &json), 0);
    ASSERT_STR_CONTAINS(json, "\"TSumList\"");
    kiln_free(json);
    tp_close(e);
}

static void test_to_prompt_passthrough_and_errors(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    char *out = NULL, *err = NULL;
    const char *api = "{\"1\": {\"class_type\": \"TConst\", \"inputs\": {\"value\": 3}}}";
    ASSERT_EQ_INT(kiln_engine_to_prompt(e, api, strlen(api), &out, &err), 0);
    ASSERT_STR_EQ(out, "{\"1\":{\"class_type\":\"TConst\",\"inputs\":{\"value\":3}}}");
    ASSERT(err == NULL);
    kiln_free(out);
    ASSERT_EQ_INT(kiln_engine_to_prompt(e, "{x", 2, &out, &err), KILN_EPARSE);
    ASSERT(out == NULL);
    ASSERT_STR_CONTAINS(err, "line 1 column");
    kiln_free(err);
    ASSERT_EQ_INT(kiln_engine_to_prompt(e, "[1]", 3, &out, &err), KILN_EINVAL);
    ASSERT_STR_CONTAINS(err, "JSON object");
    kiln_free(err);
    tp_close(e);
}

static void test_options_from_an_older_struct(void)
{
    /* A caller compiled against a shorter struct: fields past struct_size read as 0. */
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.base_directory = kiln_test_tmpdir();
    o.cache_mode = KILN_CACHE_NONE;
    o.struct_size = (uint32_t)offsetof(kiln_engine_options_t, cache_mode);
    kiln_engine_t *e = NULL;
    ASSERT_EQ_INT(kiln_engine_new(&o, &e), 0);
    ASSERT_EQ_INT(kiln_engine_add_pack(e, "test", test_pack_init), 0);
    ASSERT_EQ_INT(tp_run(e, "{\"1\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": 1}}}",
                         NULL),
                  0);
    /* classic mode (0), not the NONE that lay beyond struct_size */
    ASSERT_EQ_INT(kiln_engine_stat(e, KILN_STAT_CACHE_ENTRIES), 1);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
    o.struct_size = sizeof o;
    o.cache_mode = (kiln_cache_mode_t)7;
    ASSERT_EQ_INT(kiln_engine_new(&o, &e), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_engine_new(NULL, NULL), KILN_EINVAL);
}

static void test_add_pack_errors(void)
{
    kiln_engine_t *e = tp_engine(NULL);
    /* the same node names again: refused, the engine keeps working */
    ASSERT_NE_INT(kiln_engine_add_pack(e, "test2", test_pack_init), 0);
    ASSERT_EQ_INT(kiln_engine_add_pack(e, "x", NULL), KILN_EINVAL);
    ASSERT_EQ_INT(tp_run(e, "{\"1\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": 1}}}",
                         NULL),
                  0);
    tp_close(e);
}

/* A whole cycle (engine, prompts, runs with cache hits and errors, close) gives back every
 * value and every kiln_malloc block. */
static void test_no_leaks_across_a_cycle(void)
{
    size_t blocks = kiln__alloc_live_blocks();
    kiln_engine_t *e = tp_engine(NULL);
    tp_events_t ev;
    tp_events_init(&ev);
    const char *ok =
        "{\"1\": {\"class_type\": \"TRange\", \"inputs\": {\"n\": 3}},"
        " \"2\": {\"class_type\": \"TBytes\", \"inputs\": {\"n\": [\"1\", 0], \"tag\": 1}},"
        " \"3\": {\"class_type\": \"TMeta\", \"inputs\": {\"value\": [\"2\", 0]}}}";
    const char *bad =
        "{\"1\": {\"class_type\": \"TRange\", \"inputs\": {\"n\": 3}},"
        " \"2\": {\"class_type\": \"TFail\", \"inputs\": {\"x\": [\"1\", 0]}},"
        " \"3\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"2\", 0]}}}";
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ_INT(tp_run(e, ok, &ev), 0);
        ASSERT_EQ_INT(tp_run(e, bad, &ev), KILN_ENODE);
    }
    tp_events_clear(&ev);
    tp_close(e);
    ASSERT_EQ_INT(kiln__value_live_count(), 0);
    ASSERT_EQ_INT(kiln__alloc_live_blocks(), blocks);
}

KILN_TEST_MAIN(TEST(test_engine_creates_folders), TEST(test_call_dirs_lane_userdata),
               TEST(test_prompt_malformed_json), TEST(test_prompt_unknown_class),
               TEST(test_prompt_without_outputs), TEST(test_prompt_accessors),
               TEST(test_object_info), TEST(test_to_prompt_passthrough_and_errors),
               TEST(test_options_from_an_older_struct), TEST(test_add_pack_errors),
               TEST(test_no_leaks_across_a_cycle))
