/* Tests for engine/graph validation (validate.c, validate_input.c, validate_coerce.c): every
 * ComfyUI error type with its message, details and extra_info, Python coercion written back
 * into the prompt, big seeds, combos, the validate hook, cycles, multi-error reports,
 * dependent_outputs, partial targets, the 200-with-node_errors case and a 100000-node
 * chain. The node classes are a test pack declared here and registered directly. */
#include "runner.h"

#include <kiln/kiln.h>

#include "graph/graph.h"
#include "graph/validate_int.h"
#include "registry/registry.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/sbuf.h"

/* ---- the test pack ---------------------------------------------------------------------- */

static int exec_ok(kiln_call_t *call)
{
    return 0;
}

/* Fails for path "bad" the way LoadImage's VALIDATE_INPUTS does for a missing file. */
static int checked_validate(kiln_call_t *call, char *msg, size_t n)
{
    const kiln_value_t *p = kiln_call_input(call, "path");
    const char *s;
    size_t len;
    if (!p || kiln_value_get_string(p, &s, &len) != 0) {
        snprintf(msg, n, "no path");
        return 1;
    }
    if (strcmp(s, "bad") == 0) {
        snprintf(msg, n, "Invalid image file: %s", s);
        return 1;
    }
    return 0;
}

/* Rejects without a reason (ComfyUI's `return False`). */
static int silent_validate(kiln_call_t *call, char *msg, size_t n)
{
    return 1;
}

static const char *const ckpts[] = {"a.safetensors", "b.safetensors", NULL};
static const char *const samplers[] = {"euler", "heun", NULL};
static const char *const many[] = {"o00", "o01", "o02", "o03", "o04", "o05", "o06", "o07", "o08",
                                   "o09", "o10", "o11", "o12", "o13", "o14", "o15", "o16", "o17",
                                   "o18", "o19", "o20", "o21", "o22", "o23", "o24", NULL};
static const char *const checked_names[] = {"path", "mode", NULL};

#define IN(...)                                                                                    \
    {                                                                                              \
        KILN_INPUT_DEF_INIT, __VA_ARGS__                                                           \
    }
#define OUT(t)                                                                                     \
    {                                                                                              \
        KILN_OUTPUT_DEF_INIT, .type = t                                                            \
    }

static const kiln_input_def_t loader_in[] = {
    IN(.name = "ckpt_name", .type = "COMBO", .options = ckpts), {0}};
static const kiln_output_def_t loader_out[] = {OUT("MODEL"), OUT("CLIP"), {0}};
static const kiln_input_def_t sampler_in[] = {
    IN(.name = "model", .type = "MODEL"),
    IN(.name = "seed", .type = "INT", .flags = KILN_INPUT_MAX_U64),
    IN(.name = "steps", .type = "INT", .min_int = 1, .max_int = 10000),
    IN(.name = "cfg", .type = "FLOAT", .min_float = 0, .max_float = 100),
    IN(.name = "sampler_name", .type = "COMBO", .options = samplers),
    IN(.name = "denoise", .type = "FLOAT", .section = KILN_INPUT_OPTIONAL, .min_float = 0,
       .max_float = 1),
    IN(.name = "text", .type = "STRING", .section = KILN_INPUT_OPTIONAL),
    IN(.name = "flag", .type = "BOOLEAN", .section = KILN_INPUT_OPTIONAL),
    IN(.name = "wide", .type = "INT", .section = KILN_INPUT_OPTIONAL),
    IN(.name = "uid", .type = "UNIQUE_ID", .section = KILN_INPUT_HIDDEN),
    {0}};
static const kiln_output_def_t latent_out[] = {OUT("LATENT"), {0}};
static const kiln_input_def_t save_in[] = {
    IN(.name = "latent", .type = "LATENT"),
    IN(.name = "prefix", .type = "STRING", .section = KILN_INPUT_OPTIONAL),
    {0}};
static const kiln_input_def_t chain_in[] = {IN(.name = "x", .type = "LATENT"), {0}};
static const kiln_input_def_t big_in[] = {IN(.name = "choice", .type = "COMBO", .options = many),
                                          {0}};
static const kiln_input_def_t checked_in[] = {
    IN(.name = "path", .type = "STRING"),
    IN(.name = "mode", .type = "COMBO", .options = samplers),
    IN(.name = "strength", .type = "INT", .min_int = 0, .max_int = 10),
    {0}};
static const kiln_input_def_t any_in[] = {
    IN(.name = "any", .type = "*"),
    IN(.name = "union", .type = "IMAGE,LATENT", .section = KILN_INPUT_OPTIONAL),
    {0}};
static const kiln_input_def_t silent_in[] = {IN(.name = "x", .type = "LATENT"), {0}};

#define NODE(n, ...)                                                                               \
    {                                                                                              \
        KILN_NODE_DEF_INIT, .name = n, .execute = exec_ok, __VA_ARGS__                             \
    }
static const kiln_node_def_t loader = NODE("Loader", .inputs = loader_in, .outputs = loader_out);
static const kiln_node_def_t sampler = NODE("Sampler", .inputs = sampler_in, .outputs = latent_out);
static const kiln_node_def_t save = NODE("Save", .inputs = save_in, .flags = KILN_NODE_OUTPUT);
static const kiln_node_def_t start = NODE("Start", .outputs = latent_out);
static const kiln_node_def_t chain = NODE("Chain", .inputs = chain_in, .outputs = latent_out);
static const kiln_node_def_t big = NODE("Big", .inputs = big_in, .outputs = latent_out);
static const kiln_node_def_t checked =
    NODE("Checked", .inputs = checked_in, .outputs = latent_out, .validate = checked_validate,
         .validates = checked_names);
static const kiln_node_def_t any_sink =
    NODE("AnySink", .inputs = any_in, .flags = KILN_NODE_OUTPUT);
static const kiln_node_def_t silent =
    NODE("Silent", .inputs = silent_in, .flags = KILN_NODE_OUTPUT, .validate = silent_validate);
static const kiln_node_def_t *const pack_nodes[] = {&loader, &sampler, &save,     &start,  &chain,
                                                    &big,    &checked, &any_sink, &silent, NULL};

static int pack_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    out->name = "test";
    out->nodes = pack_nodes;
    return 0;
}

/* ---- harness ---------------------------------------------------------------------------- */

static kiln__registry_t *g_reg;
static kiln__env_t g_env;

static size_t g_blocks; /* kiln_malloc blocks live before setup */

static void setup(void)
{
    char err[256] = "";
    g_blocks = kiln__alloc_live_blocks();
    kiln__log_set_level(KILN_LOG_ERROR); /* validation failures log warnings */
    g_reg = kiln__registry_new();
    ASSERT(g_reg != NULL);
    int rc = kiln__registry_add_pack(g_reg, "test", pack_init, err, sizeof err);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "add_pack: %d %s", rc, err);
    char *dir = (char *)kiln_test_tmpdir();
    g_env = (kiln__env_t){dir, dir, dir, dir, dir, false};
}

/* Frees the registry and checks that nothing allocated through kiln_malloc is left. */
static void teardown(void)
{
    kiln__registry_free(g_reg);
    g_reg = NULL;
    ASSERT_EQ_INT(kiln__alloc_live_blocks(), g_blocks);
}

typedef struct result {
    int rc;
    kiln__graph_t *g;
    kiln__json_t *ne; /* node_errors (success) or body.node_errors (failure), borrowed */
    kiln__json_t *own_ne;
    kiln__json_t *body; /* the 400 body on failure */
} result_t;

static result_t validate_text(const char *text, const char *const *targets, size_t n_targets)
{
    result_t r = {0};
    kiln__json_t *prompt = NULL, *err = NULL;
    char perr[256];
    if (kiln__json_parse(text, strlen(text), &prompt, perr, sizeof perr) != 0)
        kiln_test_fail(__FILE__, __LINE__, "bad test JSON: %s", perr);
    ASSERT_EQ_INT(kiln__graph_new(prompt, g_reg, &r.g, &err), 0);
    ASSERT(err == NULL);
    r.rc = kiln__graph_validate(r.g, g_reg, &g_env, targets, n_targets, &r.own_ne, &r.body);
    if (r.rc == 0) {
        ASSERT(r.own_ne != NULL && r.body == NULL);
        r.ne = r.own_ne;
    } else if (r.rc == KILN_EVALIDATION) {
        ASSERT(r.own_ne == NULL && r.body != NULL);
        r.ne = kiln__json_get(r.body, "node_errors");
        ASSERT(r.ne != NULL && r.ne->type == KILN_JSON_OBJECT);
    }
    return r;
}

static result_t validate(const char *text)
{
    return validate_text(text, NULL, 0);
}

static void result_free(result_t *r)
{
    kiln__graph_free(r->g);
    kiln__json_free(r->own_ne);
    kiln__json_free(r->body);
}

/* The error number i of node id in node_errors (must exist). */
static const kiln__json_t *node_error(const result_t *r, const char *id, size_t i)
{
    const kiln__json_t *e = kiln__json_at(kiln__json_get(kiln__json_get(r->ne, id), "errors"), i);
    if (!e)
        kiln_test_fail(__FILE__, __LINE__, "node %s has no error #%zu", id, i);
    return e;
}

static const char *str_of(const kiln__json_t *obj, const char *key)
{
    return kiln__json_get_string(obj, key, NULL);
}

static const kiln__json_t *extra(const kiln__json_t *err)
{
    return kiln__json_get(err, "extra_info");
}

/* The prompt's current value of node id's input (after write-back). */
static const kiln__json_t *input_of(const result_t *r, const char *id, const char *name)
{
    return kiln__json_get(kiln__json_get(kiln__json_get(r->g->prompt, id), "inputs"), name);
}

/* Compact JSON of j (static buffer, for comparisons). */
static const char *dump(const kiln__json_t *j)
{
    static char buf[4096];
    char *s = kiln__json_dump(j, KILN_JSON_COMPACT, NULL);
    ASSERT(s != NULL);
    snprintf(buf, sizeof buf, "%s", s);
    free(s);
    return buf;
}

/* A Loader -> Sampler -> Save prompt; `over` is appended to the sampler's inputs, and a
 * later duplicate key replaces the default (the last one wins, as in Python). */
static char *sampler_prompt(const char *over)
{
    static char buf[2048];
    snprintf(buf, sizeof buf,
             "{\"1\": {\"class_type\": \"Loader\", \"inputs\": {\"ckpt_name\": \"a.safetensors\"}},"
             " \"3\": {\"class_type\": \"Sampler\", \"inputs\": {\"model\": [\"1\", 0], "
             "\"seed\": 5, \"steps\": 20, \"cfg\": 8, \"sampler_name\": \"euler\"%s%s}},"
             " \"9\": {\"class_type\": \"Save\", \"inputs\": {\"latent\": [\"3\", 0]}}}",
             over[0] ? ", " : "", over);
    return buf;
}

/* Validates a sampler prompt that must fail with exactly one error on node 3. */
static result_t sampler_error(const char *over, const char *type)
{
    result_t r = validate(sampler_prompt(over));
    ASSERT_EQ_INT(r.rc, KILN_EVALIDATION);
    ASSERT_EQ_INT(r.ne->count, 1);
    const kiln__json_t *entry = kiln__json_get(r.ne, "3");
    ASSERT(entry != NULL);
    ASSERT_EQ_INT(kiln__json_get(entry, "errors")->count, 1);
    ASSERT_STR_EQ(str_of(node_error(&r, "3", 0), "type"), type);
    return r;
}

/* ---- a valid prompt --------------------------------------------------------------------- */

static void test_valid_prompt(void)
{
    setup();
    size_t blocks = kiln__alloc_live_blocks();
    result_t r = validate(sampler_prompt(""));
    ASSERT_EQ_INT(r.rc, 0);
    ASSERT_EQ_INT(r.ne->count, 0);
    ASSERT_EQ_INT(r.g->n_outputs, 1);
    ASSERT_STR_EQ(r.g->nodes[r.g->outputs[0]].id, "9");
    /* FLOAT 8 became 8.0 in the prompt, as Python's float() writes it back. */
    ASSERT_EQ_INT(input_of(&r, "3", "cfg")->type, KILN_JSON_NUMBER);
    ASSERT_STR_EQ(dump(input_of(&r, "3", "cfg")), "8.0");
    result_free(&r);
    ASSERT_EQ_INT(kiln__alloc_live_blocks(), blocks);
    teardown();
}

/* ---- link errors ------------------------------------------------------------------------ */

static void test_required_input_missing(void)
{
    setup();
    result_t r = validate(
        "{\"1\": {\"class_type\": \"Loader\", \"inputs\": {\"ckpt_name\": \"a.safetensors\"}},"
        " \"3\": {\"class_type\": \"Sampler\", \"inputs\": {\"model\": [\"1\", 0], \"seed\": 5,"
        " \"cfg\": 8, \"sampler_name\": \"euler\"}},"
        " \"9\": {\"class_type\": \"Save\", \"inputs\": {\"latent\": [\"3\", 0]}}}");
    ASSERT_EQ_INT(r.rc, KILN_EVALIDATION);
    const kiln__json_t *e = node_error(&r, "3", 0);
    ASSERT_STR_EQ(str_of(e, "type"), "required_input_missing");
    ASSERT_STR_EQ(str_of(e, "message"), "Required input is missing");
    ASSERT_STR_EQ(str_of(e, "details"), "steps");
    ASSERT_STR_EQ(dump(extra(e)), "{\"input_name\":\"steps\"}");
    const kiln__json_t *entry = kiln__json_get(r.ne, "3");
    ASSERT_STR_EQ(dump(kiln__json_get(entry, "dependent_outputs")), "[\"9\"]");
    ASSERT_STR_EQ(str_of(entry, "class_type"), "Sampler");
    /* The output failed only because of node 3: it has no entry and the top details are
     * empty (ComfyUI's quirk), and the top error has the fixed shape. */
    ASSERT(kiln__json_get(r.ne, "9") == NULL);
    const kiln__json_t *top = kiln__json_get(r.body, "error");
    ASSERT_STR_EQ(str_of(top, "type"), "prompt_outputs_failed_validation");
    ASSERT_STR_EQ(str_of(top, "message"), "Prompt outputs failed validation");
    ASSERT_STR_EQ(str_of(top, "details"), "");
    ASSERT_STR_EQ(dump(extra(top)), "{}");
    result_free(&r);
    teardown();
}

static void test_bad_linked_input(void)
{
    setup();
    result_t r = sampler_error("\"model\": [\"1\", 0, 1]", "bad_linked_input");
    const kiln__json_t *e = node_error(&r, "3", 0);
    ASSERT_STR_EQ(str_of(e, "message"),
                  "Bad linked input, must be a length-2 list of [node_id, slot_index]");
    ASSERT_STR_EQ(str_of(e, "details"), "model");
    ASSERT_STR_EQ(str_of(extra(e), "input_name"), "model");
    ASSERT_STR_EQ(dump(kiln__json_get(extra(e), "received_value")), "[\"1\",0,1]");
    const kiln__json_t *cfg = kiln__json_get(extra(e), "input_config");
    ASSERT(cfg && cfg->type == KILN_JSON_ARRAY);
    ASSERT_STR_EQ(kiln__json_at(cfg, 0)->str, "MODEL");
    result_free(&r);
    /* Two elements that are not [id, index] are no link either. */
    r = sampler_error("\"model\": [true, \"x\"]", "bad_linked_input");
    result_free(&r);
    teardown();
}

static void test_return_type_mismatch(void)
{
    setup();
    result_t r = sampler_error("\"model\": [\"1\", 1]", "return_type_mismatch");
    const kiln__json_t *e = node_error(&r, "3", 0);
    ASSERT_STR_EQ(str_of(e, "message"), "Return type mismatch between linked nodes");
    ASSERT_STR_EQ(str_of(e, "details"), "model, received_type(CLIP) mismatch input_type(MODEL)");
    ASSERT_STR_EQ(str_of(extra(e), "received_type"), "CLIP");
    ASSERT_STR_EQ(dump(kiln__json_get(extra(e), "linked_node")), "[\"1\",1]");
    ASSERT_STR_EQ(kiln__json_at(kiln__json_get(extra(e), "input_config"), 0)->str, "MODEL");
    result_free(&r);
    teardown();
}

static void test_link_to_missing_node(void)
{
    setup();
    result_t r = sampler_error("\"model\": [\"77\", 0]", "exception_during_validation");
    const kiln__json_t *e = node_error(&r, "3", 0);
    ASSERT_STR_EQ(str_of(e, "message"), "Exception when validating node");
    ASSERT_STR_EQ(str_of(e, "details"), "'77'");
    ASSERT_STR_EQ(str_of(extra(e), "exception_type"), "KeyError");
    ASSERT_STR_EQ(str_of(extra(e), "input_name"), "model");
    ASSERT_STR_EQ(dump(kiln__json_get(extra(e), "traceback")), "[]");
    result_free(&r);
    teardown();
}

static void test_link_slot_out_of_range(void)
{
    setup();
    result_t r = sampler_error("\"model\": [\"1\", 2]", "exception_during_inner_validation");
    const kiln__json_t *e = node_error(&r, "3", 0);
    ASSERT_STR_EQ(str_of(e, "message"), "Exception when validating inner node");
    ASSERT_STR_EQ(str_of(e, "details"), "tuple index out of range");
    ASSERT_STR_EQ(str_of(extra(e), "exception_message"), "tuple index out of range");
    ASSERT_STR_EQ(str_of(extra(e), "exception_type"), "IndexError");
    ASSERT_STR_EQ(dump(kiln__json_get(extra(e), "linked_node")), "[\"1\",2]");
    result_free(&r);
    r = sampler_error("\"model\": [\"1\", 0.5]", "exception_during_inner_validation");
    ASSERT_STR_EQ(str_of(node_error(&r, "3", 0), "details"),
                  "tuple indices must be integers or slices, not float");
    result_free(&r);
    /* An integral float slot and a numeric node id are accepted as links. */
    r = validate(sampler_prompt("\"model\": [1, 0.0]"));
    ASSERT_EQ_INT(r.rc, 0);
    ASSERT_STR_EQ(dump(input_of(&r, "3", "model")), "[\"1\",0.0]");
    result_free(&r);
    teardown();
}

static void test_types_match(void)
{
    ASSERT(kiln__validate_types_match("MODEL", "MODEL"));
    ASSERT(!kiln__validate_types_match("CLIP", "MODEL"));
    ASSERT(kiln__validate_types_match("FLOAT", "INT,FLOAT"));
    ASSERT(kiln__validate_types_match("INT, FLOAT", " FLOAT "));
    ASSERT(!kiln__validate_types_match("INT,STRING", "FLOAT,IMAGE"));
    ASSERT(kiln__validate_types_match("*", "MODEL"));
    ASSERT(kiln__validate_types_match("LATENT", "*"));
    ASSERT(kiln__validate_types_match("IMAGE,*", "MASK"));
    ASSERT(!kiln__validate_types_match(NULL, "MASK"));

    setup();
    result_t r = validate(
        "{\"1\": {\"class_type\": \"Loader\", \"inputs\": {\"ckpt_name\": \"a.safetensors\"}},"
        " \"2\": {\"class_type\": \"Start\", \"inputs\": {}},"
        " \"5\": {\"class_type\": \"AnySink\", \"inputs\": {\"any\": [\"1\", 1], "
        "\"union\": [\"2\", 0]}},"
        " \"6\": {\"class_type\": \"AnySink\", \"inputs\": {\"any\": 3, \"union\": [\"1\", 0]}}}");
    ASSERT_EQ_INT(r.rc, 0);
    ASSERT_EQ_INT(r.g->n_outputs, 1);
    ASSERT_STR_EQ(str_of(node_error(&r, "6", 0), "details"),
                  "union, received_type(MODEL) mismatch input_type(IMAGE,LATENT)");
    result_free(&r);
    teardown();
}

/* ---- coercion --------------------------------------------------------------------------- */

static void test_coerce_int(void)
{
    setup();
    result_t r = validate(sampler_prompt("\"steps\": \"20\", \"seed\": 8.7, \"wide\": true"));
    ASSERT_EQ_INT(r.rc, 0);
    ASSERT_STR_EQ(dump(input_of(&r, "3", "steps")), "20");
    ASSERT_STR_EQ(dump(input_of(&r, "3", "seed")), "8");
    ASSERT_STR_EQ(dump(input_of(&r, "3", "wide")), "1");
    result_free(&r);
    r = validate(sampler_prompt("\"steps\": \" +1_000 \", \"seed\": -0.9"));
    ASSERT_EQ_INT(r.rc, 0);
    ASSERT_STR_EQ(dump(input_of(&r, "3", "steps")), "1000");
    ASSERT_STR_EQ(dump(input_of(&r, "3", "seed")), "0");
    result_free(&r);

    r = sampler_error("\"steps\": \"8.5\"", "invalid_input_type");
    const kiln__json_t *e = node_error(&r, "3", 0);
    ASSERT_STR_EQ(str_of(e, "message"), "Failed to convert an input value to a INT value");
    ASSERT_STR_EQ(str_of(e, "details"),
                  "steps, 8.5, invalid literal for int() with base 10: '8.5'");
    ASSERT_STR_EQ(str_of(extra(e), "exception_message"),
                  "invalid literal for int() with base 10: '8.5'");
    ASSERT_STR_EQ(dump(kiln__json_get(extra(e), "received_value")), "\"8.5\"");
    ASSERT_STR_EQ(kiln__json_at(kiln__json_get(extra(e), "input_config"), 0)->str, "INT");
    /* A value that failed conversion stays as the client sent it. */
    ASSERT_STR_EQ(dump(input_of(&r, "3", "steps")), "\"8.5\"");
    result_free(&r);

    r = sampler_error("\"steps\": null", "invalid_input_type");
    ASSERT_STR_EQ(str_of(node_error(&r, "3", 0), "details"),
                  "steps, None, int() argument must be a string, a bytes-like object or a real "
                  "number, not 'NoneType'");
    result_free(&r);
    r = sampler_error("\"steps\": {\"a\": [1, \"x\"]}", "invalid_input_type");
    ASSERT_STR_EQ(str_of(node_error(&r, "3", 0), "details"),
                  "steps, {'a': [1, 'x']}, int() argument must be a string, a bytes-like "
                  "object or a real number, not 'dict'");
    result_free(&r);
    r = sampler_error("\"steps\": NaN", "invalid_input_type");
    ASSERT_STR_EQ(str_of(node_error(&r, "3", 0), "details"),
                  "steps, nan, cannot convert float NaN to integer");
    result_free(&r);
    teardown();
}

static void test_coerce_float(void)
{
    setup();
    result_t r = validate(sampler_prompt("\"cfg\": \" 7.5 \", \"denoise\": true"));
    ASSERT_EQ_INT(r.rc, 0);
    ASSERT_STR_EQ(dump(input_of(&r, "3", "cfg")), "7.5");
    ASSERT_STR_EQ(dump(input_of(&r, "3", "denoise")), "1.0");
    result_free(&r);

    r = sampler_error("\"cfg\": \"abc\"", "invalid_input_type");
    const kiln__json_t *e = node_error(&r, "3", 0);
    ASSERT_STR_EQ(str_of(e, "message"), "Failed to convert an input value to a FLOAT value");
    ASSERT_STR_EQ(str_of(e, "details"), "cfg, abc, could not convert string to float: 'abc'");
    result_free(&r);
    r = sampler_error("\"cfg\": [1]", "bad_linked_input");
    result_free(&r);
    r = sampler_error("\"cfg\": {}", "invalid_input_type");
    ASSERT_STR_EQ(str_of(node_error(&r, "3", 0), "details"),
                  "cfg, {}, float() argument must be a string or a real number, not 'dict'");
    result_free(&r);
    /* "inf" parses (float() accepts it) and then fails the range check. */
    r = sampler_error("\"cfg\": \"-inf\"", "value_smaller_than_min");
    ASSERT_STR_EQ(str_of(node_error(&r, "3", 0), "message"), "Value -inf smaller than min of 0.0");
    result_free(&r);
    teardown();
}

static void test_coerce_string_bool(void)
{
    setup();
    result_t r = validate(sampler_prompt("\"text\": 12, \"flag\": \"false\""));
    ASSERT_EQ_INT(r.rc, 0);
    ASSERT_STR_EQ(dump(input_of(&r, "3", "text")), "\"12\"");
    ASSERT_STR_EQ(dump(input_of(&r, "3", "flag")), "true"); /* bool("false") is True */
    result_free(&r);
    r = validate(sampler_prompt("\"text\": 1.5e-7, \"flag\": 0"));
    ASSERT_EQ_INT(r.rc, 0);
    ASSERT_STR_EQ(dump(input_of(&r, "3", "text")), "\"1.5e-07\"");
    ASSERT_STR_EQ(dump(input_of(&r, "3", "flag")), "false");
    result_free(&r);
    r = validate(sampler_prompt("\"text\": {\"k\": null, \"b\": true}, \"flag\": \"\""));
    ASSERT_EQ_INT(r.rc, 0);
    ASSERT_STR_EQ(dump(input_of(&r, "3", "text")), "\"{'k': None, 'b': True}\"");
    ASSERT_STR_EQ(dump(input_of(&r, "3", "flag")), "false");
    result_free(&r);
    teardown();
}

static void test_value_unwrap(void)
{
    setup();
    result_t r = validate(sampler_prompt(
        "\"text\": {\"__value__\": [1, \"it's\"]}, \"steps\": {\"__value__\": \"30\"}"));
    ASSERT_EQ_INT(r.rc, 0);
    ASSERT_STR_EQ(dump(input_of(&r, "3", "text")), "\"[1, \\\"it's\\\"]\"");
    ASSERT_STR_EQ(dump(input_of(&r, "3", "steps")), "30");
    result_free(&r);
    /* An unwrapped list for an INT is a conversion error, not a link. */
    r = sampler_error("\"steps\": {\"__value__\": [1, 2]}", "invalid_input_type");
    ASSERT_STR_EQ(str_of(node_error(&r, "3", 0), "details"),
                  "steps, [1, 2], int() argument must be a string, a bytes-like object or a "
                  "real number, not 'list'");
    ASSERT_STR_EQ(dump(input_of(&r, "3", "steps")), "[1,2]");
    result_free(&r);
    teardown();
}

/* ---- ranges and seeds ------------------------------------------------------------------- */

static void test_range_errors(void)
{
    setup();
    result_t r = sampler_error("\"steps\": 0", "value_smaller_than_min");
    const kiln__json_t *e = node_error(&r, "3", 0);
    ASSERT_STR_EQ(str_of(e, "message"), "Value 0 smaller than min of 1");
    ASSERT_STR_EQ(str_of(e, "details"), "steps");
    ASSERT_STR_EQ(dump(kiln__json_get(extra(e), "received_value")), "0");
    /* input_config is the input exactly as /object_info shows it. */
    const kiln__json_t *cfg = kiln__json_get(extra(e), "input_config");
    kiln__json_t *info = kiln__registry_object_info(g_reg, &g_env, "Sampler");
    const kiln__json_t *spec = kiln__json_get(
        kiln__json_get(kiln__json_get(kiln__json_get(info, "Sampler"), "input"), "required"),
        "steps");
    ASSERT(spec != NULL && kiln__json_equal(cfg, spec));
    ASSERT_EQ_INT(kiln__json_get_int(kiln__json_at(cfg, 1), "max", 0), 10000);
    kiln__json_free(info);
    result_free(&r);
    r = sampler_error("\"steps\": \"10001\"", "value_bigger_than_max");
    ASSERT_STR_EQ(str_of(node_error(&r, "3", 0), "message"),
                  "Value 10001 bigger than max of 10000");
    ASSERT_STR_EQ(dump(input_of(&r, "3", "steps")), "10001"); /* written back before the check */
    result_free(&r);
    r = sampler_error("\"cfg\": -1", "value_smaller_than_min");
    ASSERT_STR_EQ(str_of(node_error(&r, "3", 0), "message"), "Value -1.0 smaller than min of 0.0");
    result_free(&r);
    r = sampler_error("\"denoise\": 1.5", "value_bigger_than_max");
    ASSERT_STR_EQ(str_of(node_error(&r, "3", 0), "message"), "Value 1.5 bigger than max of 1.0");
    result_free(&r);
    r = sampler_error("\"cfg\": 1e300", "value_bigger_than_max");
    ASSERT_STR_EQ(str_of(node_error(&r, "3", 0), "message"),
                  "Value 1e+300 bigger than max of 100.0");
    result_free(&r);
    /* An INT without bounds still has to fit 64 bits. */
    r = sampler_error("\"wide\": 9223372036854775808", "value_bigger_than_max");
    ASSERT_STR_EQ(str_of(node_error(&r, "3", 0), "message"),
                  "Value 9223372036854775808 bigger than max of 9223372036854775807");
    result_free(&r);
    r = validate(sampler_prompt("\"wide\": -9223372036854775808"));
    ASSERT_EQ_INT(r.rc, 0);
    result_free(&r);
    teardown();
}

static void test_seed_u64(void)
{
    setup();
    result_t r = validate(sampler_prompt("\"seed\": 18446744073709551615"));
    ASSERT_EQ_INT(r.rc, 0);
    ASSERT_STR_EQ(dump(input_of(&r, "3", "seed")), "18446744073709551615");
    result_free(&r);
    r = validate(sampler_prompt("\"seed\": \"18446744073709551615\""));
    ASSERT_EQ_INT(r.rc, 0);
    ASSERT_STR_EQ(dump(input_of(&r, "3", "seed")), "18446744073709551615");
    result_free(&r);
    r = sampler_error("\"seed\": \"18446744073709551616\"", "value_bigger_than_max");
    ASSERT_STR_EQ(str_of(node_error(&r, "3", 0), "message"),
                  "Value 18446744073709551616 bigger than max of 18446744073709551615");
    result_free(&r);
    r = sampler_error("\"seed\": 18446744073709551616", "value_bigger_than_max");
    ASSERT_STR_EQ(str_of(node_error(&r, "3", 0), "message"),
                  "Value 18446744073709551616 bigger than max of 18446744073709551615");
    result_free(&r);
    r = sampler_error("\"seed\": -1", "value_smaller_than_min");
    ASSERT_STR_EQ(str_of(node_error(&r, "3", 0), "message"), "Value -1 smaller than min of 0");
    result_free(&r);
    r = sampler_error("\"seed\": \"-99999999999999999999999\"", "value_smaller_than_min");
    ASSERT_STR_EQ(str_of(node_error(&r, "3", 0), "message"),
                  "Value -99999999999999999999999 smaller than min of 0");
    result_free(&r);
    teardown();
}

/* ---- combos and the validate hook -------------------------------------------------------- */

static void test_value_not_in_list(void)
{
    setup();
    result_t r = sampler_error("\"sampler_name\": \"dpm\"", "value_not_in_list");
    const kiln__json_t *e = node_error(&r, "3", 0);
    ASSERT_STR_EQ(str_of(e, "message"), "Value not in list");
    ASSERT_STR_EQ(str_of(e, "details"), "sampler_name: 'dpm' not in ['euler', 'heun']");
    ASSERT_STR_EQ(str_of(extra(e), "received_value"), "dpm");
    const kiln__json_t *cfg = kiln__json_get(extra(e), "input_config");
    ASSERT(cfg && cfg->type == KILN_JSON_ARRAY);
    ASSERT_STR_EQ(dump(kiln__json_at(cfg, 0)), "[\"euler\",\"heun\"]");
    result_free(&r);
    /* A number never equals a string choice. */
    r = sampler_error("\"sampler_name\": 1", "value_not_in_list");
    ASSERT_STR_EQ(str_of(node_error(&r, "3", 0), "details"),
                  "sampler_name: '1' not in ['euler', 'heun']");
    result_free(&r);

    r = validate("{\"2\": {\"class_type\": \"Big\", \"inputs\": {\"choice\": \"zzz\"}},"
                 " \"9\": {\"class_type\": \"Save\", \"inputs\": {\"latent\": [\"2\", 0]}}}");
    ASSERT_EQ_INT(r.rc, KILN_EVALIDATION);
    e = node_error(&r, "2", 0);
    ASSERT_STR_EQ(str_of(e, "type"), "value_not_in_list");
    ASSERT_STR_EQ(str_of(e, "details"), "choice: 'zzz' not in (list of length 25)");
    ASSERT_EQ_INT(kiln__json_get(extra(e), "input_config")->type, KILN_JSON_NULL);
    result_free(&r);
    teardown();
}

static const char *checked_prompt(const char *path, const char *mode, int strength)
{
    static char buf[512];
    snprintf(buf, sizeof buf,
             "{\"2\": {\"class_type\": \"Checked\", \"inputs\": {\"path\": \"%s\", \"mode\": "
             "\"%s\", \"strength\": %d}},"
             " \"9\": {\"class_type\": \"Save\", \"inputs\": {\"latent\": [\"2\", 0]}}}",
             path, mode, strength);
    return buf;
}

static void test_validate_hook(void)
{
    setup();
    /* "mode" is named by the hook, so its combo check is skipped. */
    result_t r = validate(checked_prompt("sub/x.png", "not-a-choice", 3));
    ASSERT_EQ_INT(r.rc, 0);
    result_free(&r);
    /* "strength" is not named: its range still applies. */
    r = validate(checked_prompt("ok", "euler", 11));
    ASSERT_EQ_INT(r.rc, KILN_EVALIDATION);
    ASSERT_STR_EQ(str_of(node_error(&r, "2", 0), "type"), "value_bigger_than_max");
    result_free(&r);
    /* One error per named input the hook received ("path" and "mode"), in prompt order. */
    r = validate(checked_prompt("bad", "euler", 1));
    ASSERT_EQ_INT(r.rc, KILN_EVALIDATION);
    const kiln__json_t *errs = kiln__json_get(kiln__json_get(r.ne, "2"), "errors");
    ASSERT_EQ_INT(errs->count, 2);
    const kiln__json_t *e = node_error(&r, "2", 0);
    ASSERT_STR_EQ(str_of(e, "type"), "custom_validation_failed");
    ASSERT_STR_EQ(str_of(e, "message"), "Custom validation failed for node");
    ASSERT_STR_EQ(str_of(e, "details"), "path - Invalid image file: bad");
    ASSERT_STR_EQ(dump(extra(e)), "{\"input_name\":\"path\"}");
    ASSERT_STR_EQ(str_of(node_error(&r, "2", 1), "details"), "mode - Invalid image file: bad");
    result_free(&r);
    /* A hook without named inputs and without a reason: one error, empty details. */
    r = validate("{\"2\": {\"class_type\": \"Start\", \"inputs\": {}},"
                 " \"9\": {\"class_type\": \"Silent\", \"inputs\": {\"x\": [\"2\", 0]}}}");
    ASSERT_EQ_INT(r.rc, KILN_EVALIDATION);
    e = node_error(&r, "9", 0);
    ASSERT_STR_EQ(str_of(e, "type"), "custom_validation_failed");
    ASSERT_STR_EQ(str_of(e, "details"), "");
    ASSERT_STR_EQ(dump(extra(e)), "{}");
    ASSERT_STR_EQ(str_of(kiln__json_get(r.body, "error"), "details"),
                  "Custom validation failed for node: ");
    result_free(&r);
    teardown();
}

/* ---- whole-prompt behaviour -------------------------------------------------------------- */

static void test_multi_error_report(void)
{
    setup();
    result_t r =
        validate("{\"1\": {\"class_type\": \"Loader\", \"inputs\": {\"ckpt_name\": \"zz\"}},"
                 " \"2\": {\"class_type\": \"Big\", \"inputs\": {\"choice\": 5}},"
                 " \"3\": {\"class_type\": \"Sampler\", \"inputs\": {\"model\": [\"1\", 0], "
                 "\"seed\": -4, \"steps\": \"x\", \"cfg\": 8, \"sampler_name\": \"euler\"}},"
                 " \"8\": {\"class_type\": \"Save\", \"inputs\": {\"latent\": [\"2\", 0]}},"
                 " \"9\": {\"class_type\": \"Save\", \"inputs\": {\"latent\": [\"3\", 0]}}}");
    ASSERT_EQ_INT(r.rc, KILN_EVALIDATION);
    ASSERT_EQ_INT(r.ne->count, 3);
    ASSERT_STR_EQ(str_of(node_error(&r, "1", 0), "type"), "value_not_in_list");
    ASSERT_STR_EQ(str_of(node_error(&r, "2", 0), "type"), "value_not_in_list");
    /* Every problem of node 3 is reported, in declaration order. */
    ASSERT_EQ_INT(kiln__json_get(kiln__json_get(r.ne, "3"), "errors")->count, 2);
    ASSERT_STR_EQ(str_of(node_error(&r, "3", 0), "type"), "value_smaller_than_min");
    ASSERT_STR_EQ(str_of(node_error(&r, "3", 1), "type"), "invalid_input_type");
    ASSERT_STR_EQ(dump(kiln__json_get(kiln__json_get(r.ne, "1"), "dependent_outputs")), "[\"9\"]");
    ASSERT_STR_EQ(dump(kiln__json_get(kiln__json_get(r.ne, "2"), "dependent_outputs")), "[\"8\"]");
    result_free(&r);
    teardown();
}

static const char *two_outputs =
    "{\"1\": {\"class_type\": \"Loader\", \"inputs\": {\"ckpt_name\": \"%s\"}},"
    " \"2\": {\"class_type\": \"Start\", \"inputs\": {}},"
    " \"3\": {\"class_type\": \"Sampler\", \"inputs\": {\"model\": [\"1\", 0], \"seed\": 1,"
    " \"steps\": 2, \"cfg\": 3, \"sampler_name\": \"heun\"}},"
    " \"8\": {\"class_type\": \"Save\", \"inputs\": {\"latent\": [\"3\", 0]}},"
    " \"9\": {\"class_type\": \"Save\", \"inputs\": {\"latent\": [\"%s\", 0]}}}";

static void test_dependent_outputs_shared(void)
{
    setup();
    char text[1024];
    snprintf(text, sizeof text, two_outputs, "missing.ckpt", "3");
    result_t r = validate(text);
    ASSERT_EQ_INT(r.rc, KILN_EVALIDATION);
    ASSERT_EQ_INT(r.ne->count, 1);
    ASSERT_STR_EQ(dump(kiln__json_get(kiln__json_get(r.ne, "1"), "dependent_outputs")),
                  "[\"8\",\"9\"]");
    ASSERT_STR_EQ(str_of(kiln__json_get(kiln__json_get(r.ne, "1"), "errors")->child, "details"),
                  "ckpt_name: 'missing.ckpt' not in ['a.safetensors', 'b.safetensors']");
    result_free(&r);
    teardown();
}

static void test_partial_success_200(void)
{
    setup();
    char text[1024];
    snprintf(text, sizeof text, two_outputs, "missing.ckpt", "2");
    result_t r = validate(text);
    ASSERT_EQ_INT(r.rc, 0);
    ASSERT_EQ_INT(r.g->n_outputs, 1);
    ASSERT_STR_EQ(r.g->nodes[r.g->outputs[0]].id, "9");
    ASSERT_EQ_INT(r.ne->count, 1);
    ASSERT_STR_EQ(dump(kiln__json_get(kiln__json_get(r.ne, "1"), "dependent_outputs")), "[\"8\"]");
    result_free(&r);
    /* Both valid: both outputs in prompt order. */
    snprintf(text, sizeof text, two_outputs, "b.safetensors", "2");
    r = validate(text);
    ASSERT_EQ_INT(r.rc, 0);
    ASSERT_EQ_INT(r.g->n_outputs, 2);
    ASSERT_STR_EQ(r.g->nodes[r.g->outputs[0]].id, "8");
    ASSERT_STR_EQ(r.g->nodes[r.g->outputs[1]].id, "9");
    result_free(&r);
    teardown();
}

static void test_partial_targets(void)
{
    setup();
    char text[1024];
    snprintf(text, sizeof text, two_outputs, "missing.ckpt", "2");
    const char *only9[] = {"9"};
    result_t r = validate_text(text, only9, 1);
    ASSERT_EQ_INT(r.rc, 0);
    ASSERT_EQ_INT(r.ne->count, 0); /* output 8 was never validated */
    ASSERT_EQ_INT(r.g->n_outputs, 1);
    result_free(&r);
    const char *only8[] = {"8", "3"}; /* "3" is not an output: ignored */
    r = validate_text(text, only8, 2);
    ASSERT_EQ_INT(r.rc, KILN_EVALIDATION);
    ASSERT_EQ_INT(r.ne->count, 1);
    result_free(&r);
    const char *none[] = {"3", "nope"};
    r = validate_text(text, none, 2);
    ASSERT_EQ_INT(r.rc, KILN_EVALIDATION);
    ASSERT_STR_EQ(dump(r.body), "{\"error\":{\"type\":\"prompt_no_outputs\",\"message\":\"Prompt "
                                "has no outputs\",\"details\":\"\",\"extra_info\":{}},"
                                "\"node_errors\":{}}");
    result_free(&r);
    teardown();
}

static void test_no_outputs(void)
{
    setup();
    result_t r = validate("{\"2\": {\"class_type\": \"Start\", \"inputs\": {}}}");
    ASSERT_EQ_INT(r.rc, KILN_EVALIDATION);
    ASSERT_STR_EQ(str_of(kiln__json_get(r.body, "error"), "type"), "prompt_no_outputs");
    ASSERT_EQ_INT(r.ne->count, 0);
    result_free(&r);
    r = validate("{}");
    ASSERT_EQ_INT(r.rc, KILN_EVALIDATION);
    result_free(&r);
    teardown();
}

static void test_output_own_errors_in_details(void)
{
    setup();
    result_t r = validate(
        "{\"1\": {\"class_type\": \"Loader\", \"inputs\": {\"ckpt_name\": \"a.safetensors\"}},"
        " \"9\": {\"class_type\": \"Save\", \"inputs\": {\"prefix\": 5}},"
        " \"8\": {\"class_type\": \"Save\", \"inputs\": {\"latent\": [\"1\", 1]}}}");
    ASSERT_EQ_INT(r.rc, KILN_EVALIDATION);
    ASSERT_STR_EQ(str_of(kiln__json_get(r.body, "error"), "details"),
                  "Required input is missing: latent\n"
                  "Return type mismatch between linked nodes: latent, received_type(CLIP) "
                  "mismatch input_type(LATENT)");
    /* The constant prefix was coerced by str() even though the node failed. */
    ASSERT_STR_EQ(dump(input_of(&r, "9", "prefix")), "\"5\"");
    result_free(&r);
    teardown();
}

/* ---- cycles ------------------------------------------------------------------------------ */

static void test_dependency_cycle(void)
{
    setup();
    result_t r =
        validate("{\"1\": {\"class_type\": \"Chain\", \"inputs\": {\"x\": [\"2\", 0]}},"
                 " \"2\": {\"class_type\": \"Chain\", \"inputs\": {\"x\": [\"1\", 0]}},"
                 " \"9\": {\"class_type\": \"Save\", \"inputs\": {\"latent\": [\"1\", 0]}}}");
    ASSERT_EQ_INT(r.rc, KILN_EVALIDATION);
    ASSERT_EQ_INT(r.ne->count, 2);
    const kiln__json_t *e = node_error(&r, "1", 0);
    ASSERT_STR_EQ(str_of(e, "type"), "dependency_cycle");
    ASSERT_STR_EQ(str_of(e, "message"), "Dependency cycle detected");
    ASSERT_STR_EQ(str_of(e, "details"), "1 (Chain) -> 2 (Chain) -> 1 (Chain)");
    ASSERT_STR_EQ(dump(extra(e)), "{\"node_id\":\"1\",\"cycle_nodes\":[\"1\",\"2\"]}");
    ASSERT_STR_EQ(str_of(extra(node_error(&r, "2", 0)), "node_id"), "2");
    ASSERT_STR_EQ(dump(kiln__json_get(kiln__json_get(r.ne, "2"), "dependent_outputs")), "[\"9\"]");
    ASSERT(kiln__json_get(r.ne, "9") == NULL);
    result_free(&r);
    /* A node feeding itself. */
    r = validate("{\"5\": {\"class_type\": \"Chain\", \"inputs\": {\"x\": [\"5\", 0]}},"
                 " \"9\": {\"class_type\": \"Save\", \"inputs\": {\"latent\": [\"5\", 0]}}}");
    ASSERT_EQ_INT(r.rc, KILN_EVALIDATION);
    ASSERT_STR_EQ(str_of(node_error(&r, "5", 0), "details"), "5 (Chain) -> 5 (Chain)");
    result_free(&r);
    teardown();
}

static void test_long_cycle_is_bounded(void)
{
    setup();
    enum { N = 20000 };
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_puts(&b, "{");
    for (int i = 0; i < N; i++)
        kiln__sbuf_printf(&b,
                          "\"%d\": {\"class_type\": \"Chain\", \"inputs\": {\"x\": [\"%d\", 0]}},",
                          i, (i + 1) % N);
    kiln__sbuf_puts(&b,
                    "\"out\": {\"class_type\": \"Save\", \"inputs\": {\"latent\": [\"0\", 0]}}}");
    ASSERT(!b.failed);
    result_t r = validate(b.data);
    kiln__sbuf_free(&b);
    ASSERT_EQ_INT(r.rc, KILN_EVALIDATION);
    ASSERT_EQ_INT(r.ne->count, 32);
    const char *d = str_of(node_error(&r, "0", 0), "details");
    ASSERT_STR_CONTAINS(d, "0 (Chain) -> 1 (Chain) -> ");
    ASSERT_STR_CONTAINS(d, "... (19968 more) -> ");
    ASSERT_STR_CONTAINS(d, "19999 (Chain) -> 0 (Chain)");
    result_free(&r);
    teardown();
}

/* ---- scale ------------------------------------------------------------------------------- */

/* Start -> Chain x (N-1) -> Save, built as text; `broken` cuts the chain's first link. */
static char *chain_prompt(int n, bool broken)
{
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_puts(&b, "{\"0\": {\"class_type\": \"Start\", \"inputs\": {}}");
    for (int i = 1; i < n; i++) {
        if (i == 1 && broken)
            kiln__sbuf_puts(&b, ", \"1\": {\"class_type\": \"Chain\", \"inputs\": {}}");
        else
            kiln__sbuf_printf(&b,
                              ", \"%d\": {\"class_type\": \"Chain\", \"inputs\": "
                              "{\"x\": [\"%d\", 0]}}",
                              i, i - 1);
    }
    kiln__sbuf_printf(&b,
                      ", \"out\": {\"class_type\": \"Save\", \"inputs\": {\"latent\": "
                      "[\"%d\", 0]}}}",
                      n - 1);
    ASSERT(!b.failed);
    return kiln__sbuf_take(&b, NULL);
}

static void test_chain_100k(void)
{
    setup();
    char *text = chain_prompt(99999, false);
    result_t r = validate(text);
    free(text);
    ASSERT_EQ_INT(r.rc, 0);
    ASSERT_EQ_INT(r.g->n_nodes, 100000);
    ASSERT_EQ_INT(r.ne->count, 0);
    result_free(&r);

    text = chain_prompt(99999, true);
    r = validate(text);
    free(text);
    ASSERT_EQ_INT(r.rc, KILN_EVALIDATION);
    ASSERT_EQ_INT(r.ne->count, 1);
    ASSERT_STR_EQ(str_of(node_error(&r, "1", 0), "type"), "required_input_missing");
    ASSERT_STR_EQ(dump(kiln__json_get(kiln__json_get(r.ne, "1"), "dependent_outputs")),
                  "[\"out\"]");
    result_free(&r);
    teardown();
}

/* ---- misc -------------------------------------------------------------------------------- */

static void test_undeclared_inputs_ignored(void)
{
    setup();
    result_t r = validate(sampler_prompt("\"extra\": \"x\", \"uid\": 5, \"ghost\": [\"404\", 0]"));
    ASSERT_EQ_INT(r.rc, 0);
    ASSERT_STR_EQ(dump(input_of(&r, "3", "extra")), "\"x\"");
    result_free(&r);
    teardown();
}

static char g_log[4096];

static void capture(void *ud, kiln_log_level_t level, const char *msg)
{
    size_t len = strlen(g_log);
    snprintf(g_log + len, sizeof g_log - len, "%s\n", msg);
}

static void test_failure_is_logged(void)
{
    setup();
    kiln__log_set_level(KILN_LOG_DEBUG);
    kiln__log_set_sink(capture, NULL);
    result_t r = sampler_error("\"steps\": 0", "value_smaller_than_min");
    kiln__log_set_sink(NULL, NULL);
    ASSERT_STR_CONTAINS(g_log, "Failed to validate prompt for output 9:");
    ASSERT_STR_CONTAINS(g_log, "* Sampler 3:\n  - Value 0 smaller than min of 1: steps\n");
    result_free(&r);
    teardown();
}

KILN_TEST_MAIN(TEST(test_valid_prompt), TEST(test_required_input_missing),
               TEST(test_bad_linked_input), TEST(test_return_type_mismatch),
               TEST(test_link_to_missing_node), TEST(test_link_slot_out_of_range),
               TEST(test_types_match), TEST(test_coerce_int), TEST(test_coerce_float),
               TEST(test_coerce_string_bool), TEST(test_value_unwrap), TEST(test_range_errors),
               TEST(test_seed_u64), TEST(test_value_not_in_list), TEST(test_validate_hook),
               TEST(test_multi_error_report), TEST(test_dependent_outputs_shared),
               TEST(test_partial_success_200), TEST(test_partial_targets), TEST(test_no_outputs),
               TEST(test_output_own_errors_in_details), TEST(test_dependency_cycle),
               TEST(test_long_cycle_is_bounded), TEST_TIMEOUT(test_chain_100k, 120),
               TEST(test_undeclared_inputs_ignored), TEST(test_failure_is_logged))
