/* Tests for engine/graph/graph.c: API prompt -> graph. The shape errors ComfyUI reports
 * before per-node validation (invalid_prompt with its exact messages, details and
 * extra_info), size limits, link detection (string and numeric ids, slots), undeclared
 * inputs, lookups, and malformed prompts of every kind ending in a clean error. */
#include "runner.h"

#include <kiln/kiln.h>

#include "graph/graph.h"
#include "registry/registry.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/sbuf.h"

static int exec_ok(kiln_call_t *call)
{
    return 0;
}

static const kiln_input_def_t gen_in[] = {
    {KILN_INPUT_DEF_INIT, .name = "steps", .type = "INT", .min_int = 1, .max_int = 100},
    {KILN_INPUT_DEF_INIT, .name = "text", .type = "STRING", .section = KILN_INPUT_OPTIONAL},
    {0}};
static const kiln_output_def_t gen_out[] = {
    {KILN_OUTPUT_DEF_INIT, .type = "IMAGE"}, {KILN_OUTPUT_DEF_INIT, .type = "MASK"}, {0}};
static const kiln_input_def_t sink_in[] = {{KILN_INPUT_DEF_INIT, .name = "images", .type = "IMAGE"},
                                           {0}};
static const kiln_node_def_t gen = {KILN_NODE_DEF_INIT, .name = "Gen", .inputs = gen_in,
                                    .outputs = gen_out, .execute = exec_ok};
static const kiln_node_def_t sink = {KILN_NODE_DEF_INIT, .name = "Sink", .inputs = sink_in,
                                     .execute = exec_ok, .flags = KILN_NODE_OUTPUT};
static const kiln_node_def_t *const pack_nodes[] = {&gen, &sink, NULL};

static int pack_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    out->name = "test";
    out->nodes = pack_nodes;
    return 0;
}

static kiln__registry_t *g_reg;

static size_t g_blocks; /* kiln_malloc blocks live before setup */

static void setup(void)
{
    char err[256] = "";
    g_blocks = kiln__alloc_live_blocks();
    kiln__log_set_level(KILN_LOG_ERROR);
    g_reg = kiln__registry_new();
    ASSERT(g_reg != NULL);
    ASSERT_EQ_INT(kiln__registry_add_pack(g_reg, "test", pack_init, err, sizeof err), 0);
}

/* Frees the registry and checks that nothing allocated through kiln_malloc is left. */
static void teardown(void)
{
    kiln__registry_free(g_reg);
    g_reg = NULL;
    ASSERT_EQ_INT(kiln__alloc_live_blocks(), g_blocks);
}

/* Parses text and builds a graph; returns kiln__graph_new's code. */
static int build(const char *text, kiln__graph_t **g, kiln__json_t **err)
{
    kiln__json_t *prompt = NULL;
    char perr[256];
    if (kiln__json_parse(text, strlen(text), &prompt, perr, sizeof perr) != 0)
        kiln_test_fail(__FILE__, __LINE__, "bad test JSON: %s", perr);
    return kiln__graph_new(prompt, g_reg, g, err);
}

static const char *dump(const kiln__json_t *j)
{
    static char buf[2048];
    char *s = kiln__json_dump(j, KILN_JSON_COMPACT, NULL);
    ASSERT(s != NULL);
    snprintf(buf, sizeof buf, "%s", s);
    free(s);
    return buf;
}

/* Builds text expecting invalid_prompt; returns the error's compact JSON. */
static const char *invalid(const char *text)
{
    kiln__graph_t *g = (kiln__graph_t *)1;
    kiln__json_t *err = NULL;
    ASSERT_EQ_INT(build(text, &g, &err), KILN_EVALIDATION);
    ASSERT(g == NULL);
    ASSERT(err != NULL);
    ASSERT_STR_EQ(kiln__json_get_string(err, "type", NULL), "invalid_prompt");
    const char *s = dump(err);
    kiln__json_free(err);
    return s;
}

static void test_prompt_not_object(void)
{
    setup();
    const char *texts[] = {"[]", "\"x\"", "5", "null", "[{\"class_type\": \"Gen\"}]"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        ASSERT_STR_EQ(invalid(texts[i]),
                      "{\"type\":\"invalid_prompt\",\"message\":\"Cannot execute because the "
                      "prompt is not a JSON object.\",\"details\":\"\",\"extra_info\":{}}");
    kiln__graph_t *g;
    kiln__json_t *err;
    ASSERT_EQ_INT(kiln__graph_new(NULL, g_reg, &g, &err), KILN_EVALIDATION);
    ASSERT(g == NULL && err != NULL);
    kiln__json_free(err);
    teardown();
}

static void test_node_not_object(void)
{
    setup();
    ASSERT_STR_EQ(invalid("{\"3\": [1, 2]}"),
                  "{\"type\":\"invalid_prompt\",\"message\":\"Cannot execute because a node is "
                  "not a JSON object.\",\"details\":\"Node ID '#3'\",\"extra_info\":{\"node_id\":"
                  "\"3\",\"class_type\":null,\"node_title\":null}}");
    ASSERT_STR_CONTAINS(invalid("{\"1\": {\"class_type\": \"Sink\"}, \"2\": \"Sink\"}"),
                        "\"details\":\"Node ID '#2'\"");
    teardown();
}

static void test_missing_class_type(void)
{
    setup();
    ASSERT_STR_EQ(invalid("{\"7\": {\"inputs\": {}, \"_meta\": {\"title\": \"My node\"}}}"),
                  "{\"type\":\"invalid_prompt\",\"message\":\"Cannot execute because a node is "
                  "missing the class_type property.\",\"details\":\"Node ID '#7'\","
                  "\"extra_info\":{\"node_id\":\"7\",\"class_type\":null,\"node_title\":"
                  "\"My node\"}}");
    teardown();
}

static void test_unknown_class(void)
{
    setup();
    ASSERT_STR_EQ(invalid("{\"1\": {\"class_type\": \"Gen\", \"inputs\": {\"steps\": 1}},"
                          " \"12:5\": {\"class_type\": \"Nope\", \"inputs\": {}}}"),
                  "{\"type\":\"invalid_prompt\",\"message\":\"Cannot execute because node Nope "
                  "does not exist.\",\"details\":\"Node ID '#12:5'\",\"extra_info\":{\"node_id\":"
                  "\"12:5\",\"class_type\":\"Nope\",\"node_title\":\"Nope\"}}");
    /* A non-string class_type is printed with Python's str(). */
    ASSERT_STR_CONTAINS(invalid("{\"1\": {\"class_type\": 5, \"_meta\": {\"title\": \"T\"}}}"),
                        "\"message\":\"Cannot execute because node 5 does not exist.\"");
    ASSERT_STR_CONTAINS(invalid("{\"1\": {\"class_type\": null}}"),
                        "\"message\":\"Cannot execute because node None does not exist.\"");
    teardown();
}

static void test_inputs_not_object(void)
{
    setup();
    ASSERT_STR_CONTAINS(invalid("{\"4\": {\"class_type\": \"Gen\", \"inputs\": [1]}}"),
                        "\"message\":\"Cannot execute because the inputs of a node are not a "
                        "JSON object.\",\"details\":\"Node ID '#4'\"");
    ASSERT_STR_CONTAINS(invalid("{\"4\": {\"class_type\": \"Gen\", \"inputs\": \"x\"}}"),
                        "Node ID '#4'");
    teardown();
}

static void test_nul_in_node_id(void)
{
    setup();
    ASSERT_STR_CONTAINS(invalid("{\"a\\u0000b\": {\"class_type\": \"Gen\"}}"),
                        "a node id contains a NUL character");
    ASSERT_STR_CONTAINS(invalid("{\"1\": {\"class_type\": \"Gen\", \"inputs\": "
                                "{\"steps\\u0000x\": 1}}}"),
                        "an input name contains a NUL character");
    teardown();
}

static void test_size_limits(void)
{
    setup();
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_puts(&b, "{");
    for (int i = 0; i < 100001; i++)
        kiln__sbuf_printf(&b, "%s\"%d\": {}", i ? "," : "", i);
    kiln__sbuf_puts(&b, "}");
    ASSERT(!b.failed);
    ASSERT_STR_CONTAINS(invalid(b.data),
                        "Cannot execute because the prompt has 100001 nodes; the limit is "
                        "100000.");
    kiln__sbuf_free(&b);

    kiln__sbuf_puts(&b, "{\"1\": {\"class_type\": \"Gen\", \"inputs\": {");
    for (int i = 0; i < 10001; i++)
        kiln__sbuf_printf(&b, "%s\"i%d\": %d", i ? "," : "", i, i);
    kiln__sbuf_puts(&b, "}}}");
    ASSERT(!b.failed);
    ASSERT_STR_CONTAINS(invalid(b.data),
                        "Cannot execute because a node has 10001 inputs; the limit is 10000.");
    kiln__sbuf_free(&b);
    teardown();
}

static void test_links_and_constants(void)
{
    setup();
    kiln__graph_t *g = NULL;
    kiln__json_t *err = NULL;
    size_t blocks = kiln__alloc_live_blocks();
    ASSERT_EQ_INT(
        build("{\"1\": {\"class_type\": \"Gen\", \"inputs\": {\"steps\": 3},"
              " \"_meta\": {\"title\": \"Generator\"}},"
              " \"2\": {\"class_type\": \"Sink\", \"inputs\": {"
              "\"images\": [\"1\", 0], \"a\": [1, 1], \"b\": [\"1\", 1.0],"
              " \"c\": [\"1\", \"0\"], \"d\": [\"1\"], \"e\": [1, 2, 3],"
              " \"f\": [\"nope\", 0], \"g\": {\"__value__\": [1, 2]}, \"h\": [\"1\", -1]}}}",
              &g, &err),
        0);
    ASSERT(err == NULL);
    ASSERT_EQ_INT(g->n_nodes, 2);
    ASSERT_EQ_INT(kiln__graph_find(g, "1"), 0);
    ASSERT_EQ_INT(kiln__graph_find(g, "2"), 1);
    ASSERT_EQ_INT(kiln__graph_find(g, "3"), -1);
    ASSERT_EQ_INT(kiln__graph_find(g, NULL), -1);

    const kiln__graph_node_t *n1 = &g->nodes[0], *n2 = &g->nodes[1];
    ASSERT_STR_EQ(n1->id, "1");
    ASSERT_STR_EQ(n1->class_type, "Gen");
    ASSERT_STR_EQ(n1->title, "Generator");
    ASSERT(n1->cls == kiln__registry_find(g_reg, "Gen"));
    ASSERT(n2->title == NULL);
    ASSERT_EQ_INT(n2->n_inputs, 9);

    kiln__graph_input_t *steps = kiln__graph_node_input(n1, "steps");
    ASSERT(steps && !steps->is_link && steps->def && steps->value->i == 3);
    ASSERT_STR_EQ(steps->def->name, "steps");

    kiln__graph_input_t *in = kiln__graph_node_input(n2, "images");
    ASSERT(in && in->is_link && in->src == 0 && in->src_slot == 0);
    ASSERT_STR_EQ(in->src_id, "1");
    ASSERT(in->def == kiln__node_class_input(n2->cls, "images"));

    /* A numeric id is a link too, and the prompt now says "1" as every id should. */
    in = kiln__graph_node_input(n2, "a");
    ASSERT(in && in->is_link && in->src == 0 && in->src_slot == 1 && in->def == NULL);
    ASSERT_STR_EQ(dump(in->value), "[\"1\",1]");
    ASSERT_STR_EQ(dump(kiln__json_get(kiln__json_get(n2->json, "inputs"), "a")), "[\"1\",1]");

    in = kiln__graph_node_input(n2, "b");
    ASSERT(in->is_link && in->src_slot == 1);
    ASSERT(!kiln__graph_node_input(n2, "c")->is_link);
    ASSERT(!kiln__graph_node_input(n2, "d")->is_link);
    ASSERT(!kiln__graph_node_input(n2, "e")->is_link);
    in = kiln__graph_node_input(n2, "f");
    ASSERT(in->is_link && in->src == -1);
    ASSERT_STR_EQ(in->src_id, "nope");
    in = kiln__graph_node_input(n2, "g");
    ASSERT(!in->is_link && in->value->type == KILN_JSON_OBJECT);
    in = kiln__graph_node_input(n2, "h");
    ASSERT(in->is_link && in->src == 0 && in->src_slot == -1);
    ASSERT(kiln__graph_node_input(n2, "zzz") == NULL);
    /* Input order is the prompt's. */
    ASSERT_STR_EQ(n2->inputs[0].name, "images");
    ASSERT_STR_EQ(n2->inputs[8].name, "h");
    kiln__graph_free(g);
    ASSERT_EQ_INT(kiln__alloc_live_blocks(), blocks);
    teardown();
}

static void test_inputs_optional_and_empty(void)
{
    setup();
    kiln__graph_t *g = NULL;
    kiln__json_t *err = NULL;
    ASSERT_EQ_INT(build("{\"1\": {\"class_type\": \"Gen\"}, \"2\": {\"class_type\": \"Sink\","
                        " \"inputs\": {}}}",
                        &g, &err),
                  0);
    ASSERT_EQ_INT(g->nodes[0].n_inputs, 0);
    ASSERT_EQ_INT(g->nodes[1].n_inputs, 0);
    kiln__graph_free(g);
    ASSERT_EQ_INT(build("{}", &g, &err), 0);
    ASSERT_EQ_INT(g->n_nodes, 0);
    kiln__graph_free(g);
    kiln__graph_free(NULL);
    teardown();
}

static void test_graph_error_shape(void)
{
    kiln__json_t *e = kiln__graph_error("no_prompt", "No prompt provided", NULL);
    ASSERT_STR_EQ(dump(e), "{\"type\":\"no_prompt\",\"message\":\"No prompt provided\","
                           "\"details\":\"\",\"extra_info\":{}}");
    kiln__json_free(e);
}

/* Odd prompts through kiln__graph_new and kiln__graph_validate: each ends in 0 or a clean
 * KILN_EVALIDATION with an error object, never a crash (the runner's fork catches one). */
static void test_malformed_prompts_never_crash(void)
{
    setup();
    const char *texts[] = {
        "{\"1\": {\"class_type\": \"Sink\", \"inputs\": {\"images\": []}}}",
        "{\"1\": {\"class_type\": \"Sink\", \"inputs\": {\"images\": [null, null]}}}",
        "{\"1\": {\"class_type\": \"Sink\", \"inputs\": {\"images\": [\"1\", 0]}}}",
        "{\"1\": {\"class_type\": \"Sink\", \"inputs\": {\"images\": [\"1\", 1e300]}}}",
        "{\"1\": {\"class_type\": \"Sink\", \"inputs\": {\"images\": [\"2\", 0]}},"
        " \"2\": {\"class_type\": \"Gen\", \"inputs\": {\"steps\": [\"2\", 0]}}}",
        "{\"1\": {\"class_type\": \"Sink\", \"inputs\": {\"images\": [1e300, 0]}}}",
        "{\"1\": {\"class_type\": \"Sink\", \"inputs\": {\"images\": {\"__value__\": null}}}}",
        "{\"1\": {\"class_type\": \"Sink\", \"inputs\": {\"images\": [\"2\", 0]}},"
        " \"2\": {\"class_type\": \"Gen\", \"inputs\": {\"steps\": \"\\u0000\", \"text\": [1]}}}",
        "{\"1\": {\"class_type\": \"Sink\", \"_meta\": 5, \"inputs\": {\"images\": true}}}",
        "{\"1\": {\"class_type\": \"Sink\", \"inputs\": {\"images\": [\"\", 0]}}}",
        "{\"\": {\"class_type\": \"Sink\", \"inputs\": {\"images\": [\"\", 0]}}}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        kiln__graph_t *g = NULL;
        kiln__json_t *err = NULL, *ne = NULL, *body = NULL;
        int rc = build(texts[i], &g, &err);
        if (rc != 0) {
            ASSERT_EQ_INT(rc, KILN_EVALIDATION);
            ASSERT(err != NULL);
            kiln__json_free(err);
            continue;
        }
        rc = kiln__graph_validate(g, g_reg, NULL, NULL, 0, &ne, &body);
        ASSERT(rc == 0 || rc == KILN_EVALIDATION);
        ASSERT(rc == 0 ? ne != NULL : body != NULL);
        kiln__json_free(ne);
        kiln__json_free(body);
        kiln__graph_free(g);
    }
    teardown();
}

KILN_TEST_MAIN(TEST(test_prompt_not_object), TEST(test_node_not_object),
               TEST(test_missing_class_type), TEST(test_unknown_class),
               TEST(test_inputs_not_object), TEST(test_nul_in_node_id), TEST(test_size_limits),
               TEST(test_links_and_constants), TEST(test_inputs_optional_and_empty),
               TEST(test_graph_error_shape), TEST(test_malformed_prompts_never_crash))
