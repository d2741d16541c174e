/* A broken pack for the loader tests: a malformed widget spec (an INT whose min is above
 * its max). The registry refuses the pack with a message naming node and input. */
#ifndef KILN_PLUGIN
#define KILN_PLUGIN 1 /* also when built without -DKILN_PLUGIN=1 */
#endif
#include <kiln/node.h>

KILN_PLUGIN_DEFINE_HOST;

static int one(kiln_call_t *call)
{
    return kiln_call_set_output(call, 0, kiln_value_new_int(1));
}

static const kiln_input_def_t ins[] = {
    {KILN_INPUT_DEF_INIT, .name = "steps", .type = "INT", .has_default = 1, .default_int = 5,
     .min_int = 10, .max_int = 1},
    {0}};
static const kiln_output_def_t outs[] = {{KILN_OUTPUT_DEF_INIT, .type = "INT"}, {0}};
static const kiln_node_def_t bad = {
    KILN_NODE_DEF_INIT, .name = "BrokenWidget", .inputs = ins, .outputs = outs, .execute = one};
static const kiln_node_def_t *const nodes[] = {&bad, NULL};

int kiln_plugin_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    KILN_PLUGIN_BIND_HOST(api);
    out->name = "bad_widget";
    out->nodes = nodes;
    return 0;
}
