/* Tests for the UI-workflow converter (engine/graph/ui_*.c) and the dynamic-prompt
 * preprocessing (engine/graph/dynprompt.c): the editor's default graph against its known
 * API form, hand-written workflows in tests/data/ui covering every node kind and value
 * rule, malformed and hostile files, and random damage that must never crash. */
#include "runner.h"

#include "graph/dynprompt.h"
#include "graph/graph.h"
#include "json/json.h"
#include "registry/registry.h"

#include <kiln/error.h>
#include <kiln/node.h>

#define DATA_DIR KILN_SOURCE_DIR "/tests/data/ui/"

/* ---- a test pack shaped like the ComfyUI core nodes ------------------------------------ */

static int stub_execute(kiln_call_t *call)
{
    (void)call;
    return 0;
}

static const char *const samplers[] = {"euler", "euler_ancestral", "dpmpp_2m", NULL};
static const char *const schedulers[] = {"normal", "karras", "simple", NULL};
static const char *const upscale_methods[] = {"nearest-exact", "bilinear", NULL};
static const char *const images[] = {"example.png", "other.png", NULL};
static const char *const modes[] = {"a", "b", NULL};

static const kiln_input_def_t ksampler_in[] = {
    {KILN_INPUT_DEF_INIT, .name = "model", .type = "MODEL"},
    {KILN_INPUT_DEF_INIT, .name = "seed", .type = "INT", .has_default = 1,
     .flags = KILN_INPUT_CONTROL_AFTER_GENERATE | KILN_INPUT_MAX_U64},
    {KILN_INPUT_DEF_INIT, .name = "steps", .type = "INT", .has_default = 1, .default_int = 20,
     .min_int = 1, .max_int = 10000},
    {KILN_INPUT_DEF_INIT, .name = "cfg", .type = "FLOAT", .has_default = 1, .default_float = 8.0,
     .min_float = 0.0, .max_float = 100.0, .step_float = 0.1, .round = 0.01},
    {KILN_INPUT_DEF_INIT, .name = "sampler_name", .type = "COMBO", .options = samplers},
    {KILN_INPUT_DEF_INIT, .name = "scheduler", .type = "COMBO", .options = schedulers},
    {KILN_INPUT_DEF_INIT, .name = "positive", .type = "CONDITIONING"},
    {KILN_INPUT_DEF_INIT, .name = "negative", .type = "CONDITIONING"},
    {KILN_INPUT_DEF_INIT, .name = "latent_image", .type = "LATENT"},
    {KILN_INPUT_DEF_INIT, .name = "denoise", .type = "FLOAT", .has_default = 1,
     .default_float = 1.0, .min_float = 0.0, .max_float = 1.0, .step_float = 0.01},
    {0}};
static const kiln_output_def_t latent_out[] = {{KILN_OUTPUT_DEF_INIT, .type = "LATENT"}, {0}};
static const kiln_node_def_t ksampler = {KILN_NODE_DEF_INIT,     .name = "KSampler",
                                         .category = "sampling", .inputs = ksampler_in,
                                         .outputs = latent_out,  .execute = stub_execute};

static const kiln_input_def_t ckpt_in[] = {
    {KILN_INPUT_DEF_INIT, .name = "ckpt_name", .type = "COMBO", .options_folder = "checkpoints"},
    {0}};
static const kiln_output_def_t ckpt_out[] = {{KILN_OUTPUT_DEF_INIT, .type = "MODEL"},
                                             {KILN_OUTPUT_DEF_INIT, .type = "CLIP"},
                                             {KILN_OUTPUT_DEF_INIT, .type = "VAE"},
                                             {0}};
static const kiln_node_def_t ckpt = {KILN_NODE_DEF_INIT,
                                     .name = "CheckpointLoaderSimple",
                                     .display_name = "Load Checkpoint",
                                     .category = "loaders",
                                     .inputs = ckpt_in,
                                     .outputs = ckpt_out,
                                     .execute = stub_execute};

static const kiln_input_def_t clip_in[] = {
    {KILN_INPUT_DEF_INIT, .name = "text", .type = "STRING",
     .flags = KILN_INPUT_MULTILINE | KILN_INPUT_DYNAMIC_PROMPTS},
    {KILN_INPUT_DEF_INIT, .name = "clip", .type = "CLIP"},
    {0}};
static const kiln_output_def_t cond_out[] = {{KILN_OUTPUT_DEF_INIT, .type = "CONDITIONING"}, {0}};
static const kiln_node_def_t clip_encode = {KILN_NODE_DEF_INIT,         .name = "CLIPTextEncode",
                                            .category = "conditioning", .inputs = clip_in,
                                            .outputs = cond_out,        .execute = stub_execute};

static const kiln_input_def_t empty_latent_in[] = {
    {KILN_INPUT_DEF_INIT, .name = "width", .type = "INT", .has_default = 1, .default_int = 512,
     .min_int = 16, .max_int = 16384, .step_int = 8},
    {KILN_INPUT_DEF_INIT, .name = "height", .type = "INT", .has_default = 1, .default_int = 512,
     .min_int = 16, .max_int = 16384, .step_int = 8},
    {KILN_INPUT_DEF_INIT, .name = "batch_size", .type = "INT", .has_default = 1, .default_int = 1,
     .min_int = 1, .max_int = 4096},
    {0}};
static const kiln_node_def_t empty_latent = {KILN_NODE_DEF_INIT,    .name = "EmptyLatentImage",
                                             .category = "latent",  .inputs = empty_latent_in,
                                             .outputs = latent_out, .execute = stub_execute};

static const kiln_input_def_t upscale_in[] = {
    {KILN_INPUT_DEF_INIT, .name = "samples", .type = "LATENT"},
    {KILN_INPUT_DEF_INIT, .name = "upscale_method", .type = "COMBO", .options = upscale_methods},
    {KILN_INPUT_DEF_INIT, .name = "scale_by", .type = "FLOAT", .has_default = 1,
     .default_float = 1.5, .min_float = 0.01, .max_float = 8.0},
    {0}};
static const kiln_node_def_t upscale = {KILN_NODE_DEF_INIT,    .name = "LatentUpscaleBy",
                                        .category = "latent",  .inputs = upscale_in,
                                        .outputs = latent_out, .execute = stub_execute};

static const kiln_input_def_t vae_decode_in[] = {
    {KILN_INPUT_DEF_INIT, .name = "samples", .type = "LATENT"},
    {KILN_INPUT_DEF_INIT, .name = "vae", .type = "VAE"},
    {0}};
static const kiln_output_def_t image_out[] = {{KILN_OUTPUT_DEF_INIT, .type = "IMAGE"}, {0}};
static const kiln_node_def_t vae_decode = {KILN_NODE_DEF_INIT,           .name = "VAEDecode",
                                           .display_name = "VAE Decode", .category = "latent",
                                           .inputs = vae_decode_in,      .outputs = image_out,
                                           .execute = stub_execute};

static const kiln_input_def_t save_in[] = {
    {KILN_INPUT_DEF_INIT, .name = "images", .type = "IMAGE"},
    {KILN_INPUT_DEF_INIT, .name = "filename_prefix", .type = "STRING", .has_default = 1,
     .default_string = "ComfyUI"},
    {KILN_INPUT_DEF_INIT, .name = "prompt", .type = "PROMPT", .section = KILN_INPUT_HIDDEN},
    {KILN_INPUT_DEF_INIT, .name = "extra_pnginfo", .type = "EXTRA_PNGINFO",
     .section = KILN_INPUT_HIDDEN},
    {0}};
static const kiln_output_def_t no_out[] = {{0}};
static const kiln_node_def_t save_image = {
    KILN_NODE_DEF_INIT, .name = "SaveImage", .display_name = "Save Image", .category = "image",
    .inputs = save_in,  .outputs = no_out,   .flags = KILN_NODE_OUTPUT,    .execute = stub_execute};

static const kiln_input_def_t load_in[] = {{KILN_INPUT_DEF_INIT, .name = "image", .type = "COMBO",
                                            .options = images, .flags = KILN_INPUT_IMAGE_UPLOAD},
                                           {0}};
static const kiln_output_def_t load_out[] = {
    {KILN_OUTPUT_DEF_INIT, .type = "IMAGE"}, {KILN_OUTPUT_DEF_INIT, .type = "MASK"}, {0}};
static const kiln_node_def_t load_image = {
    KILN_NODE_DEF_INIT, .name = "LoadImage", .display_name = "Load Image", .category = "image",
    .inputs = load_in,  .outputs = load_out, .execute = stub_execute};

/* Two inputs of different types, for the bypass input-picking rule. */
static const kiln_input_def_t mix_in[] = {{KILN_INPUT_DEF_INIT, .name = "a", .type = "MASK"},
                                          {KILN_INPUT_DEF_INIT, .name = "b", .type = "IMAGE"},
                                          {0}};
static const kiln_node_def_t mix = {KILN_NODE_DEF_INIT,   .name = "MixNode",
                                    .category = "image",  .inputs = mix_in,
                                    .outputs = image_out, .execute = stub_execute};

static const kiln_input_def_t prim_int_in[] = {
    {KILN_INPUT_DEF_INIT, .name = "value", .type = "INT", .has_default = 1,
     .flags = KILN_INPUT_CONTROL_AFTER_GENERATE, .min_int = INT64_MIN + 1, .max_int = INT64_MAX},
    {0}};
static const kiln_output_def_t int_out[] = {{KILN_OUTPUT_DEF_INIT, .type = "INT"}, {0}};
static const kiln_node_def_t prim_int = {
    KILN_NODE_DEF_INIT,    .name = "PrimitiveInt", .display_name = "Int",  .category = "utils",
    .inputs = prim_int_in, .outputs = int_out,     .execute = stub_execute};

/* A forceInput INT (socket only), a widget, a combo with a control value and a string. */
static const kiln_input_def_t force_in[] = {
    {KILN_INPUT_DEF_INIT, .name = "amount", .type = "INT", .flags = KILN_INPUT_FORCE_INPUT},
    {KILN_INPUT_DEF_INIT, .name = "strength", .type = "FLOAT", .has_default = 1,
     .default_float = 1.0, .min_float = 0.0, .max_float = 10.0},
    {KILN_INPUT_DEF_INIT, .name = "mode", .type = "COMBO", .options = modes,
     .flags = KILN_INPUT_CONTROL_AFTER_GENERATE},
    {KILN_INPUT_DEF_INIT, .name = "label", .type = "STRING", .section = KILN_INPUT_OPTIONAL,
     .has_default = 1, .default_string = "{x|y}"},
    {0}};
static const kiln_node_def_t force = {KILN_NODE_DEF_INIT,   .name = "ForceNode",
                                      .category = "test",   .inputs = force_in,
                                      .outputs = image_out, .execute = stub_execute};

static const kiln_node_def_t *const test_nodes[] = {
    &ksampler,   &ckpt,       &clip_encode, &empty_latent, &upscale, &vae_decode,
    &save_image, &load_image, &mix,         &prim_int,     &force,   NULL};

static int test_pack_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    (void)api;
    out->name = "test";
    out->nodes = test_nodes;
    return 0;
}

static kiln__registry_t *make_registry(void)
{
    char err[256] = "";
    kiln__registry_t *reg = kiln__registry_new();
    ASSERT(reg != NULL);
    int rc = kiln__registry_add_pack(reg, "test", test_pack_init, err, sizeof err);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "test pack refused: %s", err);
    return reg;
}

/* ---- helpers ----------------------------------------------------------------------------- */

static kiln__json_t *parse_text(const char *text)
{
    char err[128];
    kiln__json_t *j = NULL;
    if (kiln__json_parse(text, strlen(text), &j, err, sizeof err) != 0)
        kiln_test_fail(__FILE__, __LINE__, "bad JSON in test: %s", err);
    return j;
}

static kiln__json_t *load(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, DATA_DIR "%s", name);
    size_t len = 0;
    char *text = kiln_test_read_file(path, &len);
    if (!text)
        kiln_test_fail(__FILE__, __LINE__, "cannot read %s", path);
    char err[128];
    kiln__json_t *j = NULL;
    if (kiln__json_parse(text, len, &j, err, sizeof err) != 0)
        kiln_test_fail(__FILE__, __LINE__, "%s: %s", path, err);
    free(text);
    return j;
}

/* Converts a workflow that must convert; the caller frees the prompt. */
static kiln__json_t *convert_ok(const kiln__registry_t *reg, const kiln__json_t *wf, uint64_t seed)
{
    char err[256] = "";
    kiln__json_t *prompt = NULL;
    int rc = kiln__workflow_to_prompt(wf, reg, NULL, seed, &prompt, err, sizeof err);
    if (rc != 0 || !prompt)
        kiln_test_fail(__FILE__, __LINE__, "conversion failed (%d): %s", rc, err);
    return prompt;
}

/* A copy of prompt without the _meta members, for comparison with API forms that omit
 * them. */
static kiln__json_t *strip_meta(const kiln__json_t *prompt)
{
    kiln__json_t *copy = kiln__json_dup(prompt);
    ASSERT(copy != NULL);
    for (kiln__json_t *n = copy->child; n; n = n->next)
        kiln__json_remove(n, "_meta");
    return copy;
}

/* Asserts that the converted file equals the expected API form (ignoring _meta). */
static void expect_api(const kiln__json_t *prompt, const char *expected_file)
{
    kiln__json_t *want = load(expected_file);
    kiln__json_t *got = strip_meta(prompt);
    if (!kiln__json_equal(got, want)) {
        char *g = kiln__json_dump(got, KILN_JSON_PRETTY, NULL);
        char *w = kiln__json_dump(want, KILN_JSON_PRETTY, NULL);
        kiln_test_fail(__FILE__, __LINE__, "%s differs:\n got  %s\n want %s", expected_file,
                       g ? g : "?", w ? w : "?");
    }
    kiln__json_free(got);
    kiln__json_free(want);
}

static const char *title_of(const kiln__json_t *prompt, const char *id)
{
    const kiln__json_t *n = kiln__json_get(prompt, id);
    const kiln__json_t *meta = n ? kiln__json_get(n, "_meta") : NULL;
    return meta ? kiln__json_get_string(meta, "title", NULL) : NULL;
}

/* The prompt's node ids in order, joined by spaces. */
static void key_order(const kiln__json_t *prompt, char *buf, size_t size)
{
    size_t off = 0;
    buf[0] = 0;
    for (const kiln__json_t *m = prompt->child; m && off < size; m = m->next)
        off += (size_t)snprintf(buf + off, size - off, "%s%s", off ? " " : "", m->key);
}

/* Converts a workflow given as text that must fail, and checks the message. */
static void expect_error(const kiln__registry_t *reg, const char *text, int want_rc,
                         const char *want_msg)
{
    kiln__json_t *wf = parse_text(text);
    char err[512] = "";
    kiln__json_t *prompt = (kiln__json_t *)1;
    int rc = kiln__workflow_to_prompt(wf, reg, NULL, 0, &prompt, err, sizeof err);
    if (rc != want_rc || prompt != NULL)
        kiln_test_fail(__FILE__, __LINE__, "%s: rc %d (want %d), err \"%s\"", text, rc, want_rc,
                       err);
    ASSERT_STR_CONTAINS(err, want_msg);
    kiln__json_free(wf);
}

/* Converts text that must convert; returns the prompt. */
static kiln__json_t *convert_text(const kiln__registry_t *reg, const char *text)
{
    kiln__json_t *wf = parse_text(text);
    kiln__json_t *prompt = convert_ok(reg, wf, 0);
    kiln__json_free(wf);
    return prompt;
}

/* ---- tests: dynamic prompts ----------------------------------------------------------- */

static char *expand(const char *text, uint64_t seed)
{
    char *out = NULL;
    size_t len = 0;
    ASSERT_EQ_INT(kiln__dynprompt_expand(text, strlen(text), seed, &out, &len), 0);
    ASSERT_EQ_INT(len, strlen(out));
    return out;
}

static void expect_expand(const char *text, const char *want)
{
    char *got = expand(text, 7);
    if (strcmp(got, want) != 0)
        kiln_test_fail(__FILE__, __LINE__, "expand(%s) = \"%s\", want \"%s\"", text, got, want);
    free(got);
}

static void test_dynprompt_comments(void)
{
    expect_expand("a /* gone */b // to the end\nc", "a b \nc");
    expect_expand("x // one\r\ny", "x \r\ny");
    expect_expand("a/* one */b/* two */c", "abc");
    expect_expand("/* unclosed comment", "/* unclosed comment");
    expect_expand("/* unclosed /* x */ y", " y");
    /* The editor's regular expression has no notion of URLs. */
    expect_expand("see http://example.com now", "see http:");
    expect_expand("no comments here", "no comments here");
    expect_expand("", "");
}

static void test_dynprompt_choices(void)
{
    expect_expand("a {red|red|red} cat", "a red cat");
    expect_expand("{only}", "only");
    expect_expand("{}", "");
    expect_expand("x{y|y", "xy");              /* unclosed group runs to the end */
    expect_expand("{a{b|b}c|a{b|b}c}", "abc"); /* nested */
    expect_expand("{{p|p}|{p|p}}q", "pq");
    expect_expand("\\{a|b\\}", "{a|b}"); /* escaped braces are literal */
    expect_expand("{a\\|b}", "a|b");     /* an escaped bar is not a separator */
    expect_expand("\\\\{x}", "\\\\x");   /* "\\" stays two backslashes */
    expect_expand("ends with \\", "ends with \\");
    expect_expand("{/* c */x|x}", "x");
    expect_expand("}|{", "}|");
}

static void test_dynprompt_seeded(void)
{
    /* The same seed always gives the same text; different seeds reach every option. */
    char *a = expand("{one|two|three} and {four|five}", 12345);
    char *b = expand("{one|two|three} and {four|five}", 12345);
    ASSERT_STR_EQ(a, b);
    free(a);
    free(b);
    int seen[3] = {0, 0, 0};
    for (uint64_t s = 0; s < 3000; s++) {
        char *t = expand("{0|1|2}", s);
        ASSERT_EQ_INT(strlen(t), 1);
        ASSERT(t[0] >= '0' && t[0] <= '2');
        seen[t[0] - '0']++;
        free(t);
    }
    for (int i = 0; i < 3; i++)
        ASSERT_CMP_INT(seen[i], >, 850);
    /* Choices inside a chosen option draw again. */
    int inner[2] = {0, 0};
    for (uint64_t s = 0; s < 400; s++) {
        char *t = expand("{{a|b}|{a|b}}", s);
        inner[t[0] == 'b']++;
        free(t);
    }
    ASSERT_CMP_INT(inner[0], >, 100);
    ASSERT_CMP_INT(inner[1], >, 100);
    ASSERT_NE_INT(kiln__dynprompt_seed(1, "6", "text"), kiln__dynprompt_seed(1, "7", "text"));
    ASSERT_NE_INT(kiln__dynprompt_seed(1, "6", "text"), kiln__dynprompt_seed(2, "6", "text"));
    ASSERT_NE_INT(kiln__dynprompt_seed(1, "6", "a"), kiln__dynprompt_seed(1, "6", "b"));
    ASSERT_EQ_INT(kiln__dynprompt_seed(9, "6", "a"), kiln__dynprompt_seed(9, "6", "a"));
}

static void test_dynprompt_hostile(void)
{
    /* Deep nesting is bounded, long texts of unclosed comments stay linear. */
    size_t n = 20000;
    char *deep = malloc(2 * n + 2);
    ASSERT(deep != NULL);
    memset(deep, '{', n);
    deep[n] = 'z';
    memset(deep + n + 1, '}', n);
    deep[2 * n + 1] = 0;
    char *out = expand(deep, 3);
    ASSERT_STR_CONTAINS(out, "z");
    free(out);
    for (size_t i = 0; i < 2 * n + 1; i++)
        deep[i] = "/*a"[i % 3];
    out = expand(deep, 3);
    ASSERT_EQ_INT(strlen(out), strlen(deep));
    free(out);
    free(deep);
    /* NUL bytes inside the text are kept. */
    char *bin = NULL;
    size_t len = 0;
    ASSERT_EQ_INT(kiln__dynprompt_expand("a\0{b|b}", 7, 1, &bin, &len), 0);
    ASSERT_EQ_INT(len, 3);
    ASSERT(memcmp(bin, "a\0b", 3) == 0);
    free(bin);
}

/* ---- tests: conversion ----------------------------------------------------------------- */

static void test_default_graph(void)
{
    kiln__registry_t *reg = make_registry();
    kiln__json_t *wf = load("default_graph.json");
    ASSERT(kiln__workflow_is_ui(wf));
    kiln__json_t *prompt = convert_ok(reg, wf, 0);
    expect_api(prompt, "default_graph_api.json");
    /* Titles default to the class's display name. */
    ASSERT_STR_EQ(title_of(prompt, "4"), "Load Checkpoint");
    ASSERT_STR_EQ(title_of(prompt, "3"), "KSampler");
    ASSERT_STR_EQ(title_of(prompt, "9"), "Save Image");
    /* Keys are ordered as the editor's JSON.stringify orders them (integer ids ascending);
     * the seed stays an exact integer. */
    char order[128];
    key_order(prompt, order, sizeof order);
    ASSERT_STR_EQ(order, "3 4 5 6 7 8 9");
    char *text = kiln__json_dump(kiln__json_get(prompt, "3"), KILN_JSON_COMPACT, NULL);
    ASSERT_STR_CONTAINS(text, "{\"inputs\":{\"seed\":156680208700286,\"steps\":20,\"cfg\":8,");
    ASSERT_STR_CONTAINS(text, "\"class_type\":\"KSampler\",\"_meta\":{\"title\":\"KSampler\"}}");
    free(text);
    kiln__json_free(prompt);
    kiln__json_free(wf);
    kiln__registry_free(reg);
}

static void test_bypass_and_mute(void)
{
    kiln__registry_t *reg = make_registry();
    kiln__json_t *wf = load("bypass_mute.json");
    kiln__json_t *prompt = convert_ok(reg, wf, 0);
    expect_api(prompt, "bypass_mute_api.json");
    ASSERT(kiln__json_get(prompt, "7") == NULL);
    ASSERT(kiln__json_get(prompt, "10") == NULL);
    ASSERT(kiln__json_get(prompt, "12") == NULL);
    kiln__json_free(prompt);
    kiln__json_free(wf);
    kiln__registry_free(reg);
}

static void test_reroutes_primitives_notes(void)
{
    kiln__registry_t *reg = make_registry();
    kiln__json_t *wf = load("reroute_primitive.json");
    kiln__json_t *prompt = convert_ok(reg, wf, 0);
    expect_api(prompt, "reroute_primitive_api.json");
    ASSERT_STR_EQ(title_of(prompt, "60"), "Int");
    char order[128];
    key_order(prompt, order, sizeof order);
    ASSERT_STR_EQ(order, "3 4 5 6 40 60");
    kiln__json_free(prompt);
    kiln__json_free(wf);
    kiln__registry_free(reg);
}

static void test_schema1_subgraphs(void)
{
    kiln__registry_t *reg = make_registry();
    kiln__json_t *wf = load("schema1_subgraph.json");
    ASSERT(kiln__workflow_is_ui(wf));
    kiln__json_t *prompt = convert_ok(reg, wf, 0);
    expect_api(prompt, "schema1_subgraph_api.json");
    ASSERT_STR_EQ(title_of(prompt, "12:5:1"), "CLIPTextEncode");
    ASSERT(kiln__json_get(prompt, "15:1") == NULL); /* a muted instance runs nothing */
    kiln__json_free(prompt);
    kiln__json_free(wf);
    kiln__registry_free(reg);
}

static void test_subgraph_edges(void)
{
    /* A definition whose output is wired straight to its input, a bypassed instance, the
     * legacy widgets_values layout of an instance (a control value after a promoted seed)
     * and a PrimitiveNode feeding an instance's promoted widget. */
    kiln__registry_t *reg = make_registry();
    kiln__json_t *wf = load("subgraph_edges.json");
    kiln__json_t *prompt = convert_ok(reg, wf, 0);
    expect_api(prompt, "subgraph_edges_api.json");
    kiln__json_free(prompt);
    kiln__json_free(wf);
    kiln__registry_free(reg);
}

static void test_linked_widget_from_muted_node(void)
{
    /* The editor emits the link into the muted node, then deletes it: the widget value is
     * gone too, and validation will report the input as missing. */
    kiln__registry_t *reg = make_registry();
    kiln__json_t *prompt = convert_text(
        reg, "{\"nodes\": [{\"id\": 1, \"type\": \"PrimitiveInt\", \"mode\": 2,"
             " \"widgets_values\": [3, \"fixed\"]},"
             " {\"id\": 2, \"type\": \"EmptyLatentImage\", \"inputs\": [{\"name\": \"width\","
             " \"type\": \"INT\", \"widget\": {\"name\": \"width\"}, \"link\": 1}],"
             " \"widgets_values\": [640, 480, 2]}],"
             " \"links\": [[1, 1, 0, 2, 0, \"INT\"]]}");
    kiln__json_t *want = parse_text("{\"2\": {\"class_type\": \"EmptyLatentImage\","
                                    " \"inputs\": {\"height\": 480, \"batch_size\": 2}}}");
    kiln__json_t *got = strip_meta(prompt);
    ASSERT(kiln__json_equal(got, want));
    kiln__json_free(got);
    kiln__json_free(want);
    kiln__json_free(prompt);
    kiln__registry_free(reg);
}

static void test_subgraph_expansion_bound(void)
{
    /* Six levels of ten instances each would be ten million nodes: refused, quickly. */
    kiln__registry_t *reg = make_registry();
    size_t cap = 16384, off = 0;
    char *t = malloc(cap);
    ASSERT(t != NULL);
    off += (size_t)snprintf(t, cap,
                            "{\"nodes\": [{\"id\": 1, \"type\": \"d6\"}],"
                            " \"links\": [], \"definitions\": {\"subgraphs\": [");
    for (int d = 0; d <= 6; d++) {
        off += (size_t)snprintf(t + off, cap - off, "%s{\"id\": \"d%d\", \"nodes\": [",
                                d ? ", " : "", d);
        char type[16];
        if (d == 0)
            snprintf(type, sizeof type, "VAEDecode");
        else
            snprintf(type, sizeof type, "d%d", d - 1);
        for (int i = 0; i < 10; i++)
            off += (size_t)snprintf(t + off, cap - off, "%s{\"id\": %d, \"type\": \"%s\"}",
                                    i ? ", " : "", i + 1, type);
        off += (size_t)snprintf(t + off, cap - off, "], \"links\": []}");
    }
    off += (size_t)snprintf(t + off, cap - off, "]}}");
    ASSERT_CMP_INT(off, <, cap);
    expect_error(reg, t, KILN_EINVAL, "expands to more than 20000 nodes");
    free(t);
    kiln__registry_free(reg);
}

static void test_old_and_missing_values(void)
{
    kiln__registry_t *reg = make_registry();
    kiln__json_t *wf = load("old_values.json");
    kiln__json_t *prompt = convert_ok(reg, wf, 0);
    expect_api(prompt, "old_values_api.json");
    ASSERT_STR_EQ(title_of(prompt, "11"), "My Save");
    ASSERT_STR_EQ(title_of(prompt, "9"), "UnknownThing");
    kiln__json_free(prompt);
    kiln__json_free(wf);
    kiln__registry_free(reg);
}

static void test_dynamic_prompt_defaults_and_seed(void)
{
    kiln__registry_t *reg = make_registry();
    /* A missing dynamic-prompt value: the default "{x|y}" of ForceNode.label is a plain
     * STRING (no dynamicPrompts), so it stays as written; CLIPTextEncode text expands. */
    const char *text =
        "{\"nodes\": [{\"id\": 1, \"type\": \"ForceNode\", \"widgets_values\": [0.5]},"
        " {\"id\": 2, \"type\": \"CLIPTextEncode\", \"widgets_values\": [\"{p|q|r|s|t|u}\"]}],"
        " \"links\": []}";
    kiln__json_t *wf = parse_text(text);
    kiln__json_t *p1 = convert_ok(reg, wf, 11);
    kiln__json_t *p2 = convert_ok(reg, wf, 11);
    const kiln__json_t *in1 = kiln__json_get(kiln__json_get(p1, "1"), "inputs");
    ASSERT_STR_EQ(kiln__json_get_string(in1, "label", NULL), "{x|y}");
    ASSERT_STR_EQ(kiln__json_get_string(in1, "mode", NULL), "a");
    const char *t1 =
        kiln__json_get_string(kiln__json_get(kiln__json_get(p1, "2"), "inputs"), "text", NULL);
    const char *t2 =
        kiln__json_get_string(kiln__json_get(kiln__json_get(p2, "2"), "inputs"), "text", NULL);
    ASSERT(t1 && strlen(t1) == 1 && strchr("pqrstu", t1[0]));
    ASSERT_STR_EQ(t1, t2);
    /* Over several seeds the choice changes. */
    int differs = 0;
    for (uint64_t s = 0; s < 16; s++) {
        kiln__json_t *p = convert_ok(reg, wf, s);
        const char *t =
            kiln__json_get_string(kiln__json_get(kiln__json_get(p, "2"), "inputs"), "text", NULL);
        differs += strcmp(t, t1) != 0;
        kiln__json_free(p);
    }
    ASSERT_CMP_INT(differs, >, 0);
    kiln__json_free(p1);
    kiln__json_free(p2);
    kiln__json_free(wf);
    kiln__registry_free(reg);
}

static void test_is_ui(void)
{
    kiln__json_t *api = load("default_graph_api.json");
    ASSERT(!kiln__workflow_is_ui(api));
    kiln__json_free(api);
    kiln__json_t *j = parse_text("{\"nodes\": [], \"links\": []}");
    ASSERT(kiln__workflow_is_ui(j));
    kiln__json_free(j);
    j = parse_text("{\"nodes\": [], \"links\": {}}");
    ASSERT(!kiln__workflow_is_ui(j));
    kiln__json_free(j);
    j = parse_text("[1, 2]");
    ASSERT(!kiln__workflow_is_ui(j));
    kiln__json_free(j);
    ASSERT(!kiln__workflow_is_ui(NULL));
}

static void test_malformed_errors(void)
{
    kiln__registry_t *reg = make_registry();
    expect_error(reg, "[]", KILN_EINVAL, "not a JSON object");
    expect_error(reg, "{\"nodes\": {}, \"links\": []}", KILN_EINVAL, "nodes is not an array");
    expect_error(reg, "{\"links\": []}", KILN_EINVAL, "nodes is not an array");
    expect_error(reg, "{\"nodes\": [], \"links\": 5}", KILN_EINVAL, "links is not an array");
    expect_error(reg, "{\"nodes\": [7], \"links\": []}", KILN_EINVAL, "node 0 is not an object");
    expect_error(reg, "{\"nodes\": [{\"type\": \"KSampler\"}], \"links\": []}", KILN_EINVAL,
                 "node 0 has no usable id");
    expect_error(reg, "{\"nodes\": [{\"id\": 1.5, \"type\": \"KSampler\"}], \"links\": []}",
                 KILN_EINVAL, "node 0 has no usable id");
    expect_error(reg, "{\"nodes\": [{\"id\": true, \"type\": \"KSampler\"}], \"links\": []}",
                 KILN_EINVAL, "node 0 has no usable id");
    expect_error(reg, "{\"nodes\": [{\"id\": \"\", \"type\": \"KSampler\"}], \"links\": []}",
                 KILN_EINVAL, "node 0 has no usable id");
    expect_error(reg, "{\"nodes\": [{\"id\": 3}], \"links\": []}", KILN_EINVAL,
                 "node 3 has no type");
    expect_error(reg,
                 "{\"nodes\": [{\"id\": 3, \"type\": \"VAEDecode\"},"
                 " {\"id\": \"3\", \"type\": \"VAEDecode\"}], \"links\": []}",
                 KILN_EINVAL, "duplicate node id 3");
    expect_error(reg,
                 "{\"nodes\": [{\"id\": 2, \"type\": \"workflow>My group\"}], \"links\": [],"
                 " \"extra\": {\"groupNodes\": {\"My group\": {}}}}",
                 KILN_EINVAL, "legacy group node");
    expect_error(reg,
                 "{\"nodes\": [{\"id\": 2, \"type\": \"workflow/Old\"}], \"links\": [],"
                 " \"extra\": {\"groupNodes\": {\"Old\": {}}}}",
                 KILN_EINVAL, "legacy group node");
    /* A subgraph that contains an instance of itself. */
    expect_error(reg,
                 "{\"nodes\": [{\"id\": 1, \"type\": \"loop\"}], \"links\": [],"
                 " \"definitions\": {\"subgraphs\": [{\"id\": \"loop\", \"nodes\":"
                 " [{\"id\": 1, \"type\": \"loop\"}], \"links\": []}]}}",
                 KILN_EINVAL, "nested deeper than 16 levels");
    /* A subgraph definition whose nodes are not an array. */
    expect_error(reg,
                 "{\"nodes\": [], \"links\": [], \"definitions\": {\"subgraphs\":"
                 " [{\"id\": \"s\", \"nodes\": 3}]}}",
                 KILN_EINVAL, "subgraph s: nodes is not an array");
    kiln__registry_free(reg);
}

static void test_malformed_links_dropped(void)
{
    kiln__registry_t *reg = make_registry();
    /* Links to missing nodes, unknown link ids, odd slot values, a Reroute cycle and a
     * bypass cycle: every such input is simply left unconnected. */
    const char *text =
        "{\"nodes\": ["
        " {\"id\": 1, \"type\": \"VAEDecode\", \"inputs\": ["
        "   {\"name\": \"samples\", \"type\": \"LATENT\", \"link\": 1},"
        "   {\"name\": \"vae\", \"type\": \"VAE\", \"link\": 99}]},"
        " {\"id\": 2, \"type\": \"VAEDecode\", \"inputs\": ["
        "   {\"name\": \"samples\", \"type\": \"LATENT\", \"link\": 2},"
        "   {\"name\": \"vae\", \"type\": \"VAE\", \"link\": 3}, 5, {\"link\": 4}]},"
        " {\"id\": 10, \"type\": \"Reroute\", \"inputs\": [{\"name\": \"\", \"link\": 6}],"
        "   \"outputs\": [{\"links\": [5]}]},"
        " {\"id\": 11, \"type\": \"Reroute\", \"inputs\": [{\"name\": \"\", \"link\": 5}],"
        "   \"outputs\": [{\"links\": [6, 7]}]},"
        " {\"id\": 3, \"type\": \"VAEDecode\", \"inputs\": ["
        "   {\"name\": \"samples\", \"type\": \"LATENT\", \"link\": 7},"
        "   {\"name\": \"vae\", \"type\": \"VAE\", \"link\": 8}]},"
        " {\"id\": 20, \"type\": \"LatentUpscaleBy\", \"mode\": 4, \"inputs\": ["
        "   {\"name\": \"samples\", \"type\": \"LATENT\", \"link\": 9}],"
        "   \"outputs\": [{\"name\": \"LATENT\", \"type\": \"LATENT\", \"links\": [9, 10]}]},"
        " {\"id\": 4, \"type\": \"VAEDecode\", \"inputs\": ["
        "   {\"name\": \"samples\", \"type\": \"LATENT\", \"link\": 10},"
        "   {\"name\": \"vae\", \"type\": \"VAE\", \"link\": 11}]},"
        " {\"id\": 5, \"type\": \"VAEDecode\", \"inputs\": ["
        "   {\"name\": \"samples\", \"type\": \"LATENT\", \"link\": 12}]},"
        " {\"id\": 21, \"type\": \"MixNode\", \"mode\": 4, \"inputs\": [],"
        "   \"outputs\": [{\"name\": \"IMAGE\", \"type\": \"IMAGE\", \"links\": [12]}]}"
        "],"
        " \"links\": ["
        "  [1, 77, 0, 1, 0, \"LATENT\"],"
        "  [2, 1, -1, 2, 0, \"LATENT\"],"
        "  [3, 1, 1e300, 2, 1, \"VAE\"],"
        "  [4, 1, 0],"
        "  \"junk\", null, {\"id\": \"x\"},"
        "  [5, 11, 0, 10, 0, \"*\"], [6, 10, 0, 11, 0, \"*\"], [7, 11, 0, 3, 0, \"*\"],"
        "  [8, 1, 0, 3, 1, \"VAE\"],"
        "  [9, 20, 0, 20, 0, \"LATENT\"], [10, 20, 0, 4, 0, \"LATENT\"],"
        "  [11, 1, 5000000000, 4, 1, \"VAE\"],"
        "  [12, 21, 0, 5, 0, \"IMAGE\"]"
        "]}";
    kiln__json_t *prompt = convert_text(reg, text);
    kiln__json_t *want =
        parse_text("{\"1\": {\"class_type\": \"VAEDecode\", \"inputs\": {}},"
                   " \"2\": {\"class_type\": \"VAEDecode\", \"inputs\": {}},"
                   " \"3\": {\"class_type\": \"VAEDecode\", \"inputs\": {\"vae\": [\"1\", 0]}},"
                   " \"4\": {\"class_type\": \"VAEDecode\", \"inputs\": {}},"
                   " \"5\": {\"class_type\": \"VAEDecode\", \"inputs\": {}}}");
    kiln__json_t *got = strip_meta(prompt);
    ASSERT(kiln__json_equal(got, want));
    kiln__json_free(got);
    kiln__json_free(want);
    kiln__json_free(prompt);
    kiln__registry_free(reg);
}

static void test_long_reroute_chain(void)
{
    /* A chain longer than the resolution bound is dropped; a shorter one resolves. */
    kiln__registry_t *reg = make_registry();
    for (int len = 100; len <= 1500; len += 1400) {
        size_t cap = (size_t)len * 160 + 1024, off = 0;
        char *t = malloc(cap);
        ASSERT(t != NULL);
        off += (size_t)snprintf(t + off, cap - off,
                                "{\"nodes\": [{\"id\": 1, \"type\": \"EmptyLatentImage\"},"
                                " {\"id\": 2, \"type\": \"VAEDecode\", \"inputs\": [{\"name\":"
                                " \"samples\", \"type\": \"LATENT\", \"link\": %d}]}",
                                len + 1);
        for (int i = 0; i < len; i++)
            off += (size_t)snprintf(t + off, cap - off,
                                    ", {\"id\": %d, \"type\": \"Reroute\", \"inputs\":"
                                    " [{\"name\": \"\", \"link\": %d}]}",
                                    100 + i, i + 1);
        off += (size_t)snprintf(t + off, cap - off, "], \"links\": [[1, 1, 0, 100, 0, \"*\"]");
        for (int i = 1; i < len; i++)
            off += (size_t)snprintf(t + off, cap - off, ", [%d, %d, 0, %d, 0, \"*\"]", i + 1,
                                    100 + i - 1, 100 + i);
        off += (size_t)snprintf(t + off, cap - off, ", [%d, %d, 0, 2, 0, \"*\"]]}", len + 1,
                                100 + len - 1);
        ASSERT_CMP_INT(off, <, cap);
        kiln__json_t *prompt = convert_text(reg, t);
        const kiln__json_t *in = kiln__json_get(kiln__json_get(prompt, "2"), "inputs");
        const kiln__json_t *samples = kiln__json_get(in, "samples");
        if (len == 100) {
            ASSERT(samples && samples->type == KILN_JSON_ARRAY);
            ASSERT_STR_EQ(samples->child->str, "1");
        } else {
            ASSERT(samples == NULL);
        }
        kiln__json_free(prompt);
        free(t);
    }
    kiln__registry_free(reg);
}

static void test_huge_arrays(void)
{
    kiln__registry_t *reg = make_registry();
    /* Too many nodes is refused before any work. */
    size_t n = 20001, cap = n * 2 + 64, off = 0;
    char *t = malloc(cap);
    ASSERT(t != NULL);
    off += (size_t)snprintf(t, cap, "{\"links\": [], \"nodes\": [");
    for (size_t i = 0; i < n; i++) {
        if (i)
            t[off++] = ',';
        t[off++] = '1';
    }
    off += (size_t)snprintf(t + off, cap - off, "]}");
    expect_error(reg, t, KILN_EINVAL, "has 20001 nodes");
    free(t);
    /* A huge widgets_values array only costs the widgets the class has. */
    cap = 300000 * 2 + 256;
    t = malloc(cap);
    ASSERT(t != NULL);
    off = (size_t)snprintf(t, cap,
                           "{\"links\": [], \"nodes\": [{\"id\": 1, \"type\":"
                           " \"EmptyLatentImage\", \"widgets_values\": [64");
    for (size_t i = 0; i < 300000; i++) {
        t[off++] = ',';
        t[off++] = '7';
    }
    off += (size_t)snprintf(t + off, cap - off, "]}]}");
    kiln__json_t *prompt = convert_text(reg, t);
    const kiln__json_t *in = kiln__json_get(kiln__json_get(prompt, "1"), "inputs");
    ASSERT_EQ_INT(kiln__json_get_int(in, "width", -1), 64);
    ASSERT_EQ_INT(kiln__json_get_int(in, "height", -1), 7);
    ASSERT_EQ_INT(kiln__json_get_int(in, "batch_size", -1), 7);
    kiln__json_free(prompt);
    free(t);
    /* A node with thousands of linked inputs converts; more than 4096 are refused. */
    for (size_t k = 4096; k <= 4097; k++) {
        cap = k * 100 + 512;
        t = malloc(cap);
        ASSERT(t != NULL);
        off = (size_t)snprintf(t, cap,
                               "{\"nodes\": [{\"id\": 1, \"type\": \"LoadImage\"},"
                               " {\"id\": 2, \"type\": \"Wide\", \"inputs\": [");
        for (size_t i = 0; i < k; i++)
            off += (size_t)snprintf(t + off, cap - off, "%s{\"name\": \"i%zu\", \"link\": %zu}",
                                    i ? "," : "", i, i + 1);
        off += (size_t)snprintf(t + off, cap - off, "]}], \"links\": [");
        for (size_t i = 0; i < k; i++)
            off += (size_t)snprintf(t + off, cap - off, "%s[%zu, 1, 0, 2, %zu, \"IMAGE\"]",
                                    i ? "," : "", i + 1, i);
        off += (size_t)snprintf(t + off, cap - off, "]}");
        ASSERT_CMP_INT(off, <, cap);
        if (k == 4097) {
            expect_error(reg, t, KILN_EINVAL, "node 2 has more than 4096 inputs or outputs");
        } else {
            prompt = convert_text(reg, t);
            in = kiln__json_get(kiln__json_get(prompt, "2"), "inputs");
            ASSERT_EQ_INT(in->count, k);
            ASSERT_STR_EQ(kiln__json_get(in, "i4095")->child->str, "1");
            kiln__json_free(prompt);
        }
        free(t);
    }
    kiln__registry_free(reg);
}

static void test_largest_workflow(void)
{
    /* The largest accepted graph, a chain of 20000 nodes listed in reverse, converts
     * quickly and in dependency order. */
    kiln__registry_t *reg = make_registry();
    size_t n = 20000, cap = n * 160 + 256, off = 0;
    char *t = malloc(cap);
    ASSERT(t != NULL);
    off += (size_t)snprintf(t, cap, "{\"nodes\": [");
    for (size_t i = n; i >= 1; i--) {
        char link[32] = "null";
        if (i > 1)
            snprintf(link, sizeof link, "%zu", i - 1);
        off += (size_t)snprintf(t + off, cap - off,
                                "%s{\"id\": %zu, \"type\": \"LatentUpscaleBy\", \"inputs\":"
                                " [{\"name\": \"samples\", \"link\": %s}],"
                                " \"outputs\": [{\"links\": [%zu]}]}",
                                i == n ? "" : ",", i, link, i);
    }
    off += (size_t)snprintf(t + off, cap - off, "], \"links\": [");
    for (size_t i = 1; i < n; i++)
        off += (size_t)snprintf(t + off, cap - off, "%s[%zu, %zu, 0, %zu, 0, \"LATENT\"]",
                                i == 1 ? "" : ",", i, i, i + 1);
    off += (size_t)snprintf(t + off, cap - off, "]}");
    ASSERT_CMP_INT(off, <, cap);
    kiln__json_t *prompt = convert_text(reg, t);
    ASSERT_EQ_INT(prompt->count, n);
    ASSERT_STR_EQ(prompt->child->key, "1");
    ASSERT_STR_EQ(prompt->last->key, "20000");
    const kiln__json_t *in = kiln__json_get(kiln__json_get(prompt, "20000"), "inputs");
    ASSERT_STR_EQ(kiln__json_get(in, "samples")->child->str, "19999");
    ASSERT_EQ_INT(kiln__json_get(in, "samples")->child->next->i, 0);
    kiln__json_free(prompt);
    free(t);
    kiln__registry_free(reg);
}

static void test_no_registry(void)
{
    /* Without a registry every class is unknown: only links are emitted. */
    kiln__json_t *wf = load("default_graph.json");
    kiln__json_t *prompt = convert_ok(NULL, wf, 0);
    const kiln__json_t *ks = kiln__json_get(prompt, "3");
    ASSERT_STR_EQ(kiln__json_get_string(ks, "class_type", NULL), "KSampler");
    const kiln__json_t *in = kiln__json_get(ks, "inputs");
    ASSERT_EQ_INT(in->count, 4);
    ASSERT(kiln__json_get(in, "seed") == NULL);
    ASSERT_EQ_INT(kiln__json_get(kiln__json_get(prompt, "4"), "inputs")->count, 0);
    kiln__json_free(prompt);
    kiln__json_free(wf);
}

/* ---- random damage ----------------------------------------------------------------------- */

static uint64_t fuzz_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Picks a random node of the tree (pre-order index). */
static kiln__json_t *pick(kiln__json_t *j, size_t *k)
{
    if ((*k)-- == 0)
        return j;
    for (kiln__json_t *c = j->child; c; c = c->next) {
        kiln__json_t *r = pick(c, k);
        if (r)
            return r;
    }
    return NULL;
}

static size_t count_nodes(const kiln__json_t *j)
{
    size_t n = 1;
    for (const kiln__json_t *c = j->child; c; c = c->next)
        n += count_nodes(c);
    return n;
}

/* Replaces the value of node j in place by a random small value, keeping its key. */
static void damage(kiln__json_t *j, uint64_t *s)
{
    static const char *const values[] = {"null",
                                         "true",
                                         "-1",
                                         "0",
                                         "1",
                                         "2",
                                         "3",
                                         "99999999999",
                                         "1.5",
                                         "\"\"",
                                         "\"*\"",
                                         "\"Reroute\"",
                                         "\"PrimitiveNode\"",
                                         "\"KSampler\"",
                                         "\"aaaaaaaa-0000-4000-8000-000000000001\"",
                                         "[]",
                                         "{}",
                                         "[1, 2]",
                                         "[\"3\", 0]",
                                         "{\"name\": \"seed\"}",
                                         "4",
                                         "\"-10\"",
                                         "-20"};
    const char *v = values[fuzz_next(s) % (sizeof values / sizeof values[0])];
    kiln__json_t *r = parse_text(v);
    /* Swap contents, keeping key and sibling links. */
    kiln__json_t tmp = *j;
    j->type = r->type;
    j->child = r->child;
    j->last = r->last;
    j->count = r->count;
    j->b = r->b;
    j->is_u64 = r->is_u64;
    j->i = r->i;
    j->u = r->u;
    j->d = r->d;
    j->str = r->str;
    j->len = r->len;
    r->type = tmp.type;
    r->child = tmp.child;
    r->last = tmp.last;
    r->count = tmp.count;
    r->str = tmp.str;
    r->len = tmp.len;
    kiln__json_free(r);
}

static void fuzz_file(const kiln__registry_t *reg, const char *name, uint64_t seed, int rounds)
{
    kiln__json_t *base = load(name);
    size_t total = count_nodes(base);
    for (int r = 0; r < rounds; r++) {
        kiln__json_t *wf = kiln__json_dup(base);
        ASSERT(wf != NULL);
        int edits = 1 + (int)(fuzz_next(&seed) % 4);
        for (int e = 0; e < edits; e++) {
            size_t k = 1 + (size_t)(fuzz_next(&seed) % (total - 1));
            kiln__json_t *victim = pick(wf, &k);
            if (victim)
                damage(victim, &seed);
        }
        char err[256];
        kiln__json_t *prompt = NULL;
        int rc = kiln__workflow_to_prompt(wf, reg, NULL, seed, &prompt, err, sizeof err);
        ASSERT(rc == 0 || rc == KILN_EINVAL);
        ASSERT((rc == 0) == (prompt != NULL));
        if (rc != 0)
            ASSERT(err[0] != 0);
        kiln__json_free(prompt);
        kiln__json_free(wf);
    }
    kiln__json_free(base);
}

static void test_random_damage(void)
{
    kiln__registry_t *reg = make_registry();
    fuzz_file(reg, "default_graph.json", 0x1234567ull, 400);
    fuzz_file(reg, "bypass_mute.json", 0x2345678ull, 400);
    fuzz_file(reg, "reroute_primitive.json", 0x3456789ull, 400);
    fuzz_file(reg, "schema1_subgraph.json", 0x456789aull, 600);
    fuzz_file(reg, "old_values.json", 0x56789abull, 300);
    fuzz_file(reg, "subgraph_edges.json", 0x6789abcull, 600);
    kiln__registry_free(reg);
}

KILN_TEST_MAIN(TEST(test_dynprompt_comments), TEST(test_dynprompt_choices),
               TEST(test_dynprompt_seeded), TEST(test_dynprompt_hostile), TEST(test_default_graph),
               TEST(test_bypass_and_mute), TEST(test_reroutes_primitives_notes),
               TEST(test_schema1_subgraphs), TEST(test_old_and_missing_values),
               TEST(test_subgraph_edges), TEST(test_linked_widget_from_muted_node),
               TEST(test_subgraph_expansion_bound), TEST(test_dynamic_prompt_defaults_and_seed),
               TEST(test_is_ui), TEST(test_malformed_errors), TEST(test_malformed_links_dropped),
               TEST(test_long_reroute_chain), TEST(test_huge_arrays), TEST(test_largest_workflow),
               TEST(test_no_registry), TEST_TIMEOUT(test_random_damage, 120))
