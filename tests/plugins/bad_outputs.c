/* A pack for the loader tests that loads fine but whose nodes break the output contract:
 *   BrokenWrongType     -> IMAGE          sets an INT
 *   BrokenMissingOutput -> IMAGE          sets nothing and returns success
 *   BrokenWrongList     -> IMAGE (list)   appends a STRING, ignoring the error
 * Each must fail its prompt with execution_error naming the problem, never crash. */
#ifndef KILN_PLUGIN
#define KILN_PLUGIN 1 /* also when built without -DKILN_PLUGIN=1 */
#endif
#include <kiln/node.h>

KILN_PLUGIN_DEFINE_HOST;

static int wrong_type(kiln_call_t *call)
{
    return kiln_call_set_output(call, 0, kiln_value_new_int(7));
}

static int missing(kiln_call_t *call)
{
    return 0;
}

static int wrong_list(kiln_call_t *call)
{
    kiln_call_set_output(call, 0, kiln_value_new_string("no", 2)); /* return code ignored */
    return 0;
}

static const kiln_input_def_t ins[] = {
    {KILN_INPUT_DEF_INIT, .name = "x", .type = "INT", .has_default = 1}, {0}};
static const kiln_output_def_t image_out[] = {{KILN_OUTPUT_DEF_INIT, .type = "IMAGE"}, {0}};
static const kiln_output_def_t image_list[] = {
    {KILN_OUTPUT_DEF_INIT, .type = "IMAGE", .is_list = 1}, {0}};

static const kiln_node_def_t wrong_type_def = {
    KILN_NODE_DEF_INIT, .name = "BrokenWrongType", .inputs = ins, .outputs = image_out,
    .execute = wrong_type};
static const kiln_node_def_t missing_def = {
    KILN_NODE_DEF_INIT, .name = "BrokenMissingOutput", .inputs = ins, .outputs = image_out,
    .execute = missing};
static const kiln_node_def_t wrong_list_def = {
    KILN_NODE_DEF_INIT, .name = "BrokenWrongList", .inputs = ins, .outputs = image_list,
    .execute = wrong_list};
static const kiln_node_def_t *const nodes[] = {&wrong_type_def, &missing_def, &wrong_list_def,
                                               NULL};

int kiln_plugin_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    KILN_PLUGIN_BIND_HOST(api);
    out->name = "bad_outputs";
    out->nodes = nodes;
    return 0;
}
