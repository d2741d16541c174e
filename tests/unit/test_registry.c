/* Tests for engine/registry: registering packs (test packs are defined here and handed to
 * kiln__registry_add_pack as init functions), lookup, normalization of older and newer
 * struct sizes, every rejection rule with its message, the host function table, and the
 * log sink and counted allocator the registry relies on. */
#include "runner.h"

#include <kiln/kiln.h>
#include <stdalign.h>

#include "registry/builtin_packs.h"
#include "registry/registry.h"
#include "util/alloc.h"
#include "util/log.h"

static int exec_ok(kiln_call_t *call)
{
    return 0;
}

/* The node list the next init call hands out (tests set it before add_pack). */
static const kiln_node_def_t *const *g_nodes;
static const char *g_pack_name = "testpack";

static int test_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    if (!api || api->abi_major != KILN_ABI_MAJOR)
        return KILN_EABI;
    out->name = g_pack_name;
    out->nodes = g_nodes;
    return 0;
}

static int register_nodes(kiln__registry_t *r, const char *pack,
                          const kiln_node_def_t *const *nodes, char *err, size_t n)
{
    g_pack_name = pack;
    g_nodes = nodes;
    err[0] = '\0';
    return kiln__registry_add_pack(r, pack, test_init, err, n);
}

/* ---- a good pack ---------------------------------------------------------------------- */

static const char *const sampler_names[] = {"euler", "heun", NULL};
static const char *const validated[] = {"steps", NULL};

static const kiln_input_def_t sampler_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "model", .type = "MODEL"},
    {KILN_INPUT_DEF_INIT, .name = "prompt", .type = "PROMPT", .section = KILN_INPUT_HIDDEN},
    {KILN_INPUT_DEF_INIT, .name = "denoise", .type = "FLOAT", .section = KILN_INPUT_OPTIONAL,
     .has_default = 1, .default_float = 1.0, .min_float = 0, .max_float = 1},
    {KILN_INPUT_DEF_INIT, .name = "steps", .type = "INT", .has_default = 1,
     .default_int = 20, .min_int = 1, .max_int = 10000},
    {KILN_INPUT_DEF_INIT, .name = "sampler", .type = "COMBO", .options = sampler_names},
    {KILN_INPUT_DEF_INIT, .name = "text", .type = "STRING", .flags = KILN_INPUT_FORCE_INPUT},
    {0}};
static const kiln_output_def_t sampler_outputs[] = {
    {KILN_OUTPUT_DEF_INIT, .type = "LATENT"},
    {KILN_OUTPUT_DEF_INIT, .type = "INT", .name = "count", .is_list = 1},
    {0}};
static const kiln_node_def_t sampler_node = {
    KILN_NODE_DEF_INIT, .name = "TestSampler", .inputs = sampler_inputs,
    .outputs = sampler_outputs, .execute = exec_ok, .validates = validated};
static const kiln_node_def_t plain_node = {
    KILN_NODE_DEF_INIT, .name = "TestPlain", .display_name = "Plain", .category = "test/x",
    .description = "does nothing", .execute = exec_ok, .flags = KILN_NODE_OUTPUT};
static const kiln_node_def_t *const good_nodes[] = {&sampler_node, &plain_node, NULL};

static void test_add_find_at(void)
{
    kiln__registry_t *r = kiln__registry_new();
    char err[512];
    ASSERT(r != NULL);
    ASSERT_EQ_INT(kiln__registry_count(r), 0);
    ASSERT_EQ_INT(register_nodes(r, "good", good_nodes, err, sizeof err), 0);
    ASSERT_STR_EQ(err, "");
    ASSERT_EQ_INT(kiln__registry_count(r), 2);
    const kiln__node_class_t *s = kiln__registry_find(r, "TestSampler");
    const kiln__node_class_t *p = kiln__registry_find(r, "TestPlain");
    ASSERT(s != NULL && p != NULL);
    ASSERT(kiln__registry_at(r, 0) == s);
    ASSERT(kiln__registry_at(r, 1) == p);
    ASSERT(kiln__registry_at(r, 2) == NULL);
    ASSERT(kiln__registry_find(r, "Nope") == NULL);
    ASSERT(kiln__registry_find(r, NULL) == NULL);
    ASSERT_STR_EQ(s->pack, "good");
    /* Optional strings are normalized to their /object_info defaults. */
    ASSERT_STR_EQ(s->def.display_name, "TestSampler");
    ASSERT_STR_EQ(s->def.category, "sd");
    ASSERT_STR_EQ(s->def.description, "");
    ASSERT_STR_EQ(p->def.display_name, "Plain");
    ASSERT_STR_EQ(p->def.category, "test/x");
    ASSERT_EQ_INT(p->def.flags, KILN_NODE_OUTPUT);
    /* Inputs: required in declaration order, then optional, then hidden. */
    ASSERT_EQ_INT(s->n_inputs, 6);
    const char *order[] = {"model", "steps", "sampler", "text", "denoise", "prompt"};
    for (int i = 0; i < 6; i++)
        ASSERT_STR_EQ(s->inputs[i].name, order[i]);
    ASSERT(s->inputs[6].name == NULL); /* terminated */
    ASSERT(s->def.inputs == s->inputs && s->def.outputs == s->outputs);
    ASSERT_EQ_INT(s->inputs[0].struct_size, sizeof(kiln_input_def_t));
    /* Outputs: a missing name reads as the type. */
    ASSERT_EQ_INT(s->n_outputs, 2);
    ASSERT_STR_EQ(s->outputs[0].name, "LATENT");
    ASSERT_STR_EQ(s->outputs[1].name, "count");
    ASSERT_EQ_INT(s->outputs[1].is_list, 1);
    ASSERT(s->outputs[2].type == NULL);
    ASSERT_EQ_INT(p->n_inputs, 0);
    ASSERT_EQ_INT(p->n_outputs, 0);
    ASSERT(p->inputs != NULL && p->inputs[0].name == NULL);
    /* Copies, not the pack's tables. */
    ASSERT(s->inputs != sampler_inputs);
    const kiln_input_def_t *steps = kiln__node_class_input(s, "steps");
    ASSERT(steps != NULL);
    ASSERT_EQ_INT(steps->default_int, 20);
    ASSERT(kiln__node_class_input(s, "prompt") != NULL);
    ASSERT(kiln__node_class_input(s, "missing") == NULL);
    ASSERT(kiln__input_is_widget(steps));
    ASSERT(kiln__input_is_widget(kiln__node_class_input(s, "sampler")));
    ASSERT(kiln__input_is_widget(kiln__node_class_input(s, "denoise")));
    ASSERT(!kiln__input_is_widget(kiln__node_class_input(s, "model")));
    ASSERT(!kiln__input_is_widget(kiln__node_class_input(s, "text"))); /* forceInput */
    kiln__registry_free(r);
}

static void test_many_classes_lookup(void)
{
    /* 300 classes over 3 packs: lookup finds each by name. */
    enum { N = 300 };
    static kiln_node_def_t defs[N];
    static char names[N][16];
    static const kiln_node_def_t *lists[3][N / 3 + 1];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "Node%03d", i);
        defs[i] = (kiln_node_def_t){KILN_NODE_DEF_INIT, .name = names[i], .execute = exec_ok};
        lists[i % 3][i / 3] = &defs[i];
    }
    kiln__registry_t *r = kiln__registry_new();
    char err[256];
    const char *packs[3] = {"p0", "p1", "p2"};
    for (int k = 0; k < 3; k++)
        ASSERT_EQ_INT(register_nodes(r, packs[k], lists[k], err, sizeof err), 0);
    ASSERT_EQ_INT(kiln__registry_count(r), N);
    for (int i = 0; i < N; i++) {
        const kiln__node_class_t *c = kiln__registry_find(r, names[i]);
        ASSERT(c != NULL);
        ASSERT_STR_EQ(c->def.name, names[i]);
        ASSERT_STR_EQ(c->pack, packs[i % 3]);
    }
    kiln__registry_free(r);
}

/* ---- struct sizes from other minors ---------------------------------------------------- */

/* An input struct as a pack built against an older minor would have it: the 1.0 layout
 * without the trailing extra_json field. */
typedef struct old_input_def {
    uint32_t struct_size;
    const char *name;
    const char *type;
    kiln_input_section_t section;
    uint32_t flags;
    int has_default;
    int64_t default_int;
    double default_float;
    const char *default_string;
    int64_t min_int, max_int, step_int;
    double min_float, max_float, step_float;
    double round;
    const char *const *options;
    const char *options_folder;
    const char *tooltip;
} old_input_def_t;

/* An input struct from a newer minor: one more field at the end. */
typedef struct new_input_def {
    kiln_input_def_t base;
    const char *future_field;
} new_input_def_t;

static const old_input_def_t old_inputs[] = {
    {.struct_size = sizeof(old_input_def_t), .name = "a", .type = "INT", .has_default = 1,
     .default_int = 5, .max_int = 10, .step_int = 1},
    {.struct_size = sizeof(old_input_def_t), .name = "b", .type = "FLOAT",
     .section = KILN_INPUT_OPTIONAL, .has_default = 1, .default_float = 0.5, .max_float = 1.0,
     .step_float = 0.1, .round = 0.01, .tooltip = "tip b"},
    {0}};
static const new_input_def_t new_inputs[] = {
    {{.struct_size = sizeof(new_input_def_t), .name = "x", .type = "IMAGE", .tooltip = "tip x"},
     "future"},
    {{.struct_size = sizeof(new_input_def_t), .name = "y", .type = "STRING", .has_default = 1,
      .default_string = "hi"}, "future"},
    {{0}, NULL}};

static int userdata_target;
static const kiln_node_def_t older_node = {
    .struct_size = offsetof(kiln_node_def_t, userdata), .name = "OlderNode",
    .inputs = (const kiln_input_def_t *)old_inputs, .execute = exec_ok,
    .userdata = &userdata_target /* past struct_size: the host must not see it */};
static const kiln_node_def_t newer_node = {
    KILN_NODE_DEF_INIT, .name = "NewerNode", .inputs = (const kiln_input_def_t *)new_inputs,
    .execute = exec_ok, .userdata = &userdata_target};
static const kiln_node_def_t *const minor_nodes[] = {&older_node, &newer_node, NULL};

static void test_struct_size_minors(void)
{
    kiln__registry_t *r = kiln__registry_new();
    char err[256];
    int rc = register_nodes(r, "minors", minor_nodes, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "  %s\n", err);
    ASSERT_EQ_INT(rc, 0);
    const kiln__node_class_t *o = kiln__registry_find(r, "OlderNode");
    ASSERT(o != NULL);
    ASSERT(o->def.userdata == NULL);
    ASSERT_EQ_INT(o->def.struct_size, sizeof(kiln_node_def_t));
    ASSERT_EQ_INT(o->n_inputs, 2);
    /* The table was walked with the pack's stride, and the missing field reads as zero. */
    ASSERT_STR_EQ(o->inputs[0].name, "a");
    ASSERT_EQ_INT(o->inputs[0].default_int, 5);
    ASSERT_EQ_INT(o->inputs[0].max_int, 10);
    ASSERT_STR_EQ(o->inputs[1].name, "b");
    ASSERT_NEAR(o->inputs[1].default_float, 0.5, 0);
    ASSERT_NEAR(o->inputs[1].round, 0.01, 0);
    ASSERT_STR_EQ(o->inputs[1].tooltip, "tip b");
    ASSERT(o->inputs[1].extra_json == NULL);
    ASSERT_EQ_INT(o->inputs[1].struct_size, sizeof(kiln_input_def_t));
    const kiln__node_class_t *n = kiln__registry_find(r, "NewerNode");
    ASSERT(n != NULL);
    ASSERT(n->def.userdata == &userdata_target);
    ASSERT_EQ_INT(n->n_inputs, 2);
    ASSERT_STR_EQ(n->inputs[0].tooltip, "tip x");
    ASSERT_STR_EQ(n->inputs[1].name, "y");
    ASSERT_STR_EQ(n->inputs[1].default_string, "hi");
    kiln__registry_free(r);
}

/* ---- rejections ------------------------------------------------------------------------ */

/* Node definitions that must each be refused, with the message that names the problem. */
static const kiln_input_def_t in_null_type[] = {{KILN_INPUT_DEF_INIT, .name = "x"}, {0}};
static const kiln_input_def_t in_empty_name[] = {
    {KILN_INPUT_DEF_INIT, .name = "", .type = "INT"}, {0}};
static const kiln_input_def_t in_dup[] = {
    {KILN_INPUT_DEF_INIT, .name = "x", .type = "INT"},
    {KILN_INPUT_DEF_INIT, .name = "x", .type = "FLOAT", .section = KILN_INPUT_OPTIONAL}, {0}};
static const kiln_input_def_t in_section[] = {
    {KILN_INPUT_DEF_INIT, .name = "x", .type = "INT", .section = (kiln_input_section_t)7},
    {0}};
static const kiln_input_def_t in_hidden[] = {
    {KILN_INPUT_DEF_INIT, .name = "h", .type = "IMAGE", .section = KILN_INPUT_HIDDEN}, {0}};
static const kiln_input_def_t in_int_range[] = {
    {KILN_INPUT_DEF_INIT, .name = "n", .type = "INT", .min_int = 5, .max_int = 1}, {0}};
static const kiln_input_def_t in_float_range[] = {
    {KILN_INPUT_DEF_INIT, .name = "f", .type = "FLOAT", .min_float = 2, .max_float = 1},
    {0}};
static const kiln_input_def_t in_int_default[] = {
    {KILN_INPUT_DEF_INIT, .name = "n", .type = "INT", .has_default = 1, .default_int = 11,
     .min_int = 0, .max_int = 10}, {0}};
static const kiln_input_def_t in_u64_default[] = {
    {KILN_INPUT_DEF_INIT, .name = "seed", .type = "INT", .has_default = 1,
     .default_int = -1, .flags = KILN_INPUT_MAX_U64}, {0}};
static const kiln_input_def_t in_float_default[] = {
    {KILN_INPUT_DEF_INIT, .name = "f", .type = "FLOAT", .has_default = 1,
     .default_float = -0.5, .min_float = 0, .max_float = 1}, {0}};
static const kiln_input_def_t in_combo[] = {
    {KILN_INPUT_DEF_INIT, .name = "c", .type = "COMBO"}, {0}};
static const kiln_input_def_t in_folder[] = {
    {KILN_INPUT_DEF_INIT, .name = "c", .type = "COMBO", .options_folder = "../etc"}, {0}};
static const kiln_input_def_t in_extra[] = {
    {KILN_INPUT_DEF_INIT, .name = "x", .type = "INT", .extra_json = "[1, 2]"}, {0}};
static const kiln_input_def_t in_size0[] = {{.name = "x", .type = "INT"}, {0}};
static const kiln_input_def_t in_size_small[] = {
    {.struct_size = 8, .name = "x", .type = "INT"}, {0}};
static const kiln_input_def_t in_bool[] = {
    {KILN_INPUT_DEF_INIT, .name = "b", .type = "BOOLEAN", .has_default = 1,
     .default_int = 2}, {0}};
static const kiln_output_def_t out_empty[] = {
    {KILN_OUTPUT_DEF_INIT, .type = "IMAGE"}, {KILN_OUTPUT_DEF_INIT, .type = ""}, {0}};
static const kiln_output_def_t out_size0[] = {{.type = "IMAGE"}, {0}};
static const char *const validates_bad[] = {"nope", NULL};

#define BAD_NODE(var, ...) \
    static const kiln_node_def_t var = {KILN_NODE_DEF_INIT, .execute = exec_ok, __VA_ARGS__}
BAD_NODE(bad_null_type, .name = "N1", .inputs = in_null_type);
BAD_NODE(bad_empty_input, .name = "N2", .inputs = in_empty_name);
BAD_NODE(bad_dup_input, .name = "N3", .inputs = in_dup);
BAD_NODE(bad_section, .name = "N4", .inputs = in_section);
BAD_NODE(bad_hidden, .name = "N5", .inputs = in_hidden);
BAD_NODE(bad_int_range, .name = "N6", .inputs = in_int_range);
BAD_NODE(bad_float_range, .name = "N7", .inputs = in_float_range);
BAD_NODE(bad_int_default, .name = "N8", .inputs = in_int_default);
BAD_NODE(bad_u64_default, .name = "N9", .inputs = in_u64_default);
BAD_NODE(bad_float_default, .name = "N10", .inputs = in_float_default);
BAD_NODE(bad_combo, .name = "N11", .inputs = in_combo);
BAD_NODE(bad_folder, .name = "N12", .inputs = in_folder);
BAD_NODE(bad_extra, .name = "N13", .inputs = in_extra);
BAD_NODE(bad_in_size0, .name = "N14", .inputs = in_size0);
BAD_NODE(bad_in_small, .name = "N15", .inputs = in_size_small);
BAD_NODE(bad_bool, .name = "N16", .inputs = in_bool);
BAD_NODE(bad_out_empty, .name = "N17", .outputs = out_empty);
BAD_NODE(bad_out_size0, .name = "N18", .outputs = out_size0);
BAD_NODE(bad_validates, .name = "N19", .validates = validates_bad);
BAD_NODE(bad_null_name, .name = NULL);
BAD_NODE(bad_empty_name, .name = "");
static const kiln_node_def_t bad_no_execute = {KILN_NODE_DEF_INIT, .name = "N20"};
static const kiln_node_def_t bad_size0 = {.name = "N21", .execute = exec_ok};
static const kiln_node_def_t bad_size_small = {
    .struct_size = offsetof(kiln_node_def_t, outputs), .name = "N22", .execute = exec_ok};

typedef struct reject_case {
    const kiln_node_def_t *def;
    int rc;
    const char *msg;
} reject_case_t;

static const reject_case_t reject_cases[] = {
    {&bad_null_type, KILN_EINVAL, "pack 'bad': node 'N1': input 'x': missing type"},
    {&bad_empty_input, KILN_EINVAL, "pack 'bad': node 'N2': input '': empty input name"},
    {&bad_dup_input, KILN_EINVAL, "pack 'bad': node 'N3': input 'x': duplicate input name"},
    {&bad_section, KILN_EINVAL, "pack 'bad': node 'N4': input 'x': bad section 7"},
    {&bad_hidden, KILN_EINVAL, "pack 'bad': node 'N5': input 'h': hidden input type 'IMAGE' "
                               "is not PROMPT, EXTRA_PNGINFO, UNIQUE_ID or DYNPROMPT"},
    {&bad_int_range, KILN_EINVAL, "pack 'bad': node 'N6': input 'n': min 5 > max 1"},
    {&bad_float_range, KILN_EINVAL, "pack 'bad': node 'N7': input 'f': min 2 > max 1"},
    {&bad_int_default, KILN_EINVAL, "pack 'bad': node 'N8': input 'n': default 11 outside "
                                    "min..max"},
    {&bad_u64_default, KILN_EINVAL, "pack 'bad': node 'N9': input 'seed': default -1 outside "
                                    "min..max"},
    {&bad_float_default, KILN_EINVAL, "pack 'bad': node 'N10': input 'f': default -0.5 "
                                      "outside min..max"},
    {&bad_combo, KILN_EINVAL, "pack 'bad': node 'N11': input 'c': COMBO has neither options "
                              "nor options_folder"},
    {&bad_folder, KILN_EINVAL, "pack 'bad': node 'N12': input 'c': options_folder must be a "
                               "plain folder name"},
    {&bad_extra, KILN_EINVAL, "pack 'bad': node 'N13': input 'x': extra_json is not a JSON "
                              "object"},
    {&bad_in_size0, KILN_EINVAL, "pack 'bad': node 'N14': input #0: struct_size is 0"},
    {&bad_in_small, KILN_EINVAL, "pack 'bad': node 'N15': input #0: struct_size 8 is smaller "
                                 "than the ABI 1.0 minimum"},
    {&bad_bool, KILN_EINVAL, "pack 'bad': node 'N16': input 'b': BOOLEAN default must be 0 "
                             "or 1"},
    {&bad_out_empty, KILN_EINVAL, "pack 'bad': node 'N17': output #1: empty type"},
    {&bad_out_size0, KILN_EINVAL, "pack 'bad': node 'N18': output #0: struct_size is 0"},
    {&bad_validates, KILN_EINVAL, "pack 'bad': node 'N19': validates names unknown input "
                                  "'nope'"},
    {&bad_null_name, KILN_EINVAL, "pack 'bad': node #1: missing name"},
    {&bad_empty_name, KILN_EINVAL, "pack 'bad': node #1: missing name"},
    {&bad_no_execute, KILN_EINVAL, "pack 'bad': node 'N20': missing execute"},
    {&bad_size0, KILN_EINVAL, "pack 'bad': node #1: struct_size is 0"},
    {&bad_size_small, KILN_EINVAL, "pack 'bad': node #1: struct_size 48 is smaller than the "
                                   "ABI 1.0 minimum"},
};

/* Each bad node follows a good one in its pack: the pack must register nothing. */
static void test_rejections(void)
{
    static const kiln_node_def_t good = {KILN_NODE_DEF_INIT, .name = "Fine",
                                         .execute = exec_ok};
    for (size_t i = 0; i < sizeof reject_cases / sizeof reject_cases[0]; i++) {
        const reject_case_t *c = &reject_cases[i];
        const kiln_node_def_t *nodes[] = {&good, c->def, NULL};
        kiln__registry_t *r = kiln__registry_new();
        char err[512];
        int rc = register_nodes(r, "bad", nodes, err, sizeof err);
        if (rc != c->rc || !strstr(err, c->msg))
            fprintf(stderr, "  case %zu: rc %d, message \"%s\"\n", i, rc, err);
        ASSERT_EQ_INT(rc, c->rc);
        ASSERT_STR_CONTAINS(err, c->msg);
        ASSERT_EQ_INT(kiln__registry_count(r), 0);
        ASSERT(kiln__registry_find(r, "Fine") == NULL);
        /* The registry stays usable: the same good node registers afterwards. */
        const kiln_node_def_t *only_good[] = {&good, NULL};
        ASSERT_EQ_INT(register_nodes(r, "bad", only_good, err, sizeof err), 0);
        ASSERT_EQ_INT(kiln__registry_count(r), 1);
        kiln__registry_free(r);
    }
}

static void test_duplicates(void)
{
    static const kiln_node_def_t a = {KILN_NODE_DEF_INIT, .name = "A", .execute = exec_ok};
    static const kiln_node_def_t b = {KILN_NODE_DEF_INIT, .name = "B", .execute = exec_ok};
    static const kiln_node_def_t a2 = {KILN_NODE_DEF_INIT, .name = "A", .execute = exec_ok};
    kiln__registry_t *r = kiln__registry_new();
    char err[512];
    const kiln_node_def_t *within[] = {&a, &b, &a2, NULL};
    ASSERT_EQ_INT(register_nodes(r, "p1", within, err, sizeof err), KILN_EEXISTS);
    ASSERT_STR_EQ(err, "pack 'p1': node 'A': duplicate node name");
    ASSERT_EQ_INT(kiln__registry_count(r), 0);
    const kiln_node_def_t *first[] = {&a, NULL};
    ASSERT_EQ_INT(register_nodes(r, "p1", first, err, sizeof err), 0);
    const kiln_node_def_t *second[] = {&b, &a2, NULL};
    ASSERT_EQ_INT(register_nodes(r, "p2", second, err, sizeof err), KILN_EEXISTS);
    ASSERT_STR_EQ(err, "pack 'p2': node 'A': duplicate node name (already registered by "
                       "pack 'p1')");
    ASSERT(kiln__registry_find(r, "B") == NULL);
    ASSERT_EQ_INT(kiln__registry_count(r), 1);
    /* A second pack of the same name is refused as a whole. */
    const kiln_node_def_t *third[] = {&b, NULL};
    ASSERT_EQ_INT(register_nodes(r, "p1", third, err, sizeof err), KILN_EEXISTS);
    ASSERT_STR_EQ(err, "pack 'p1': a pack with this name is already registered");
    ASSERT_EQ_INT(register_nodes(r, "p3", third, err, sizeof err), 0);
    ASSERT_EQ_INT(kiln__registry_count(r), 2);
    kiln__registry_free(r);
}

static int init_fails(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    return KILN_EIO;
}

static int init_abi(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    return KILN_EABI;
}

static int init_no_name(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    out->nodes = NULL;
    return 0;
}

static void test_init_failures(void)
{
    kiln__registry_t *r = kiln__registry_new();
    char err[512];
    ASSERT_EQ_INT(kiln__registry_add_pack(r, "io", init_fails, err, sizeof err), KILN_EINVAL);
    ASSERT_STR_EQ(err, "pack 'io': init failed: input/output error (-6)");
    ASSERT_EQ_INT(kiln__registry_add_pack(r, "old", init_abi, err, sizeof err), KILN_EABI);
    char want[128];
    snprintf(want, sizeof want, "pack 'old': incompatible plugin ABI (this host has ABI %d.%d)",
             KILN_ABI_MAJOR, KILN_ABI_MINOR);
    ASSERT_STR_EQ(err, want);
    ASSERT_EQ_INT(kiln__registry_add_pack(r, "x", NULL, err, sizeof err), KILN_EINVAL);
    ASSERT_STR_EQ(err, "pack 'x': no init function");
    ASSERT_EQ_INT(kiln__registry_add_pack(r, NULL, init_no_name, err, sizeof err),
                  KILN_EINVAL);
    ASSERT_STR_EQ(err, "pack '?': missing pack name");
    /* A pack with a name but no nodes is a valid, empty pack. */
    ASSERT_EQ_INT(kiln__registry_add_pack(r, "empty", init_no_name, err, sizeof err), 0);
    ASSERT_EQ_INT(kiln__registry_count(r), 0);
    kiln__registry_free(r);
}

/* ---- host table, built-ins, log, allocator --------------------------------------------- */

static const kiln_host_api_t *g_seen_api;

static int init_capture_api(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    g_seen_api = api;
    if (out->struct_size != sizeof(kiln_plugin_t))
        return KILN_EINVAL;
    out->name = "capture";
    return 0;
}

static void test_host_api(void)
{
    const kiln_host_api_t *api = kiln__host_api();
    ASSERT(api != NULL);
    ASSERT_EQ_INT(api->size, sizeof(kiln_host_api_t));
    ASSERT_EQ_INT(api->abi_major, KILN_ABI_MAJOR);
    ASSERT_EQ_INT(api->abi_minor, KILN_ABI_MINOR);
    /* Every entry is filled, and the entries are the library's own functions. */
#define CHECK_ENTRY_(ret, name, params, args) \
    ASSERT(api->name != NULL);                \
    ASSERT(api->name == kiln_##name);
    KILN_HOST_API_MAP(CHECK_ENTRY_)
#undef CHECK_ENTRY_
    ASSERT(KILN_API_HAS(api, tensor_nbytes));
    /* Calls through the table work like direct calls. */
    kiln_value_t *v = api->value_new_int(42);
    int64_t i = 0;
    ASSERT_EQ_INT(api->value_get_int(v, &i), 0);
    ASSERT_EQ_INT(i, 42);
    ASSERT_EQ_INT(api->value_release(v), 0);
    /* add_pack hands this very table to init, with out->struct_size set. */
    kiln__registry_t *r = kiln__registry_new();
    char err[256];
    ASSERT_EQ_INT(kiln__registry_add_pack(r, "capture", init_capture_api, err, sizeof err), 0);
    ASSERT(g_seen_api == api);
    kiln__registry_free(r);
}

typedef struct log_capture {
    int calls;
    kiln_log_level_t level;
    char msg[256];
} log_capture_t;

static void capture_sink(void *ud, kiln_log_level_t level, const char *msg)
{
    log_capture_t *c = ud;
    c->calls++;
    c->level = level;
    snprintf(c->msg, sizeof c->msg, "%s", msg);
}

static void test_builtins(void)
{
    kiln__registry_t *r = kiln__registry_new();
    char err[512] = "x";
    ASSERT_EQ_INT(kiln__registry_add_builtins(r, err, sizeof err), 0);
    if (err[0])
        fprintf(stderr, "  %s\n", err);
    ASSERT_STR_EQ(err, "");
    size_t n_packs = 0;
    for (const kiln__builtin_pack_t *b = kiln__builtin_packs; b->name; b++)
        n_packs++;
    size_t n = kiln__registry_count(r);
    if (n_packs > 0)
        ASSERT_CMP_INT(n, >, 0);
    /* Every class of a built-in pack reports the pack it came from. */
    for (size_t i = 0; i < n; i++)
        ASSERT(kiln__registry_at(r, i)->pack != NULL);
    if (n_packs > 0) {
        /* A second round fails pack by pack: each is logged and skipped, the first
         * reason is returned in err, and the registry is unchanged. */
        log_capture_t cap = {0};
        kiln__log_set_sink(capture_sink, &cap);
        ASSERT_EQ_INT(kiln__registry_add_builtins(r, err, sizeof err), 0);
        kiln__log_set_sink(NULL, NULL);
        ASSERT_STR_CONTAINS(err, "a pack with this name is already registered");
        ASSERT_EQ_INT(cap.calls, n_packs);
        ASSERT_EQ_INT(cap.level, KILN_LOG_ERROR);
        ASSERT_STR_CONTAINS(cap.msg, "; the pack is skipped");
        ASSERT_EQ_INT(kiln__registry_count(r), n);
    }
    kiln__registry_free(r);
}

static void test_log_sink(void)
{
    log_capture_t cap = {0};
    kiln__log_set_sink(capture_sink, &cap);
    ASSERT_EQ_INT(kiln_log(KILN_LOG_WARN, "disk is full"), 0);
    ASSERT_EQ_INT(cap.calls, 1);
    ASSERT_EQ_INT(cap.level, KILN_LOG_WARN);
    ASSERT_STR_EQ(cap.msg, "disk is full");
    ASSERT_EQ_INT(kiln_logf(KILN_LOG_ERROR, "node %s failed with %d", "X", 3), 0);
    ASSERT_STR_EQ(cap.msg, "node X failed with 3");
    /* DEBUG is below the default level. */
    ASSERT_EQ_INT(kiln_log(KILN_LOG_DEBUG, "noise"), 0);
    ASSERT_EQ_INT(cap.calls, 2);
    kiln__log_set_level(KILN_LOG_DEBUG);
    kiln_log(KILN_LOG_DEBUG, "detail");
    ASSERT_EQ_INT(cap.calls, 3);
    ASSERT_STR_EQ(cap.msg, "detail");
    kiln__log_set_level(KILN_LOG_ERROR);
    kiln_log(KILN_LOG_WARN, "dropped");
    ASSERT_EQ_INT(cap.calls, 3);
    ASSERT_EQ_INT(kiln_log(KILN_LOG_ERROR, NULL), KILN_EINVAL);
    kiln__log_set_level(KILN_LOG_INFO);
    ASSERT_STR_EQ(kiln__log_level_name(KILN_LOG_WARN), "warn");
    kiln__log_set_sink(NULL, NULL);
    kiln_log(KILN_LOG_INFO, "to stderr");
    ASSERT_EQ_INT(cap.calls, 3);
}

static void test_alloc_counts(void)
{
    size_t bytes0 = kiln__alloc_live_bytes(), blocks0 = kiln__alloc_live_blocks();
    char *a = kiln_malloc(100);
    double *b = kiln_malloc(3 * sizeof(double));
    ASSERT(a != NULL && b != NULL);
    ASSERT_EQ_INT((uintptr_t)a % alignof(max_align_t), 0);
    ASSERT_EQ_INT((uintptr_t)b % alignof(max_align_t), 0);
    memset(a, 'x', 100);
    b[2] = 1.5;
    ASSERT_EQ_INT(kiln__alloc_live_bytes() - bytes0, 100 + 3 * sizeof(double));
    ASSERT_EQ_INT(kiln__alloc_live_blocks() - blocks0, 2);
    ASSERT_EQ_INT(kiln_free(a), 0);
    ASSERT_EQ_INT(kiln__alloc_live_bytes() - bytes0, 3 * sizeof(double));
    ASSERT_EQ_INT(kiln_free(b), 0);
    ASSERT_EQ_INT(kiln_free(NULL), 0);
    void *z = kiln_malloc(0);
    ASSERT(z != NULL);
    kiln_free(z);
    ASSERT(kiln_malloc(SIZE_MAX - 4) == NULL);
    char *d = kiln__alloc_memdup("ab\0c", 4);
    ASSERT(d != NULL && memcmp(d, "ab\0c", 5) == 0);
    char *s = kiln__alloc_strdup("hello");
    ASSERT_STR_EQ(s, "hello");
    ASSERT(kiln__alloc_strdup(NULL) == NULL);
    kiln_free(d);
    kiln_free(s);
    ASSERT_EQ_INT(kiln__alloc_live_bytes(), bytes0);
    ASSERT_EQ_INT(kiln__alloc_live_blocks(), blocks0);
}

KILN_TEST_MAIN(TEST(test_add_find_at), TEST(test_many_classes_lookup),
               TEST(test_struct_size_minors), TEST(test_rejections), TEST(test_duplicates),
               TEST(test_init_failures), TEST(test_host_api), TEST(test_builtins),
               TEST(test_log_sink), TEST(test_alloc_counts))
