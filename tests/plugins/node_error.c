/* A pack for the loader tests that loads fine but whose node fails when it runs:
 *   BrokenFails x:INT -> IMAGE   always fails with "BrokenFails refuses x=<x>"
 * The prompt must end in execution_error, and the next prompt must run. */
#ifndef KILN_PLUGIN
#define KILN_PLUGIN 1 /* also when built without -DKILN_PLUGIN=1 */
#endif
#include <kiln/node.h>

KILN_PLUGIN_DEFINE_HOST;

static int fails(kiln_call_t *call)
{
    int64_t x = 0;
    const kiln_value_t *v = kiln_call_input(call, "x");
    if (v)
        kiln_value_get_int(v, &x);
    return kiln_call_failf(call, "BrokenFails refuses x=%lld", (long long)x);
}

static const kiln_input_def_t ins[] = {
    {KILN_INPUT_DEF_INIT, .name = "x", .type = "INT", .has_default = 1}, {0}};
static const kiln_output_def_t outs[] = {{KILN_OUTPUT_DEF_INIT, .type = "IMAGE"}, {0}};
static const kiln_node_def_t fails_def = {
    KILN_NODE_DEF_INIT, .name = "BrokenFails", .category = "broken", .inputs = ins,
    .outputs = outs, .execute = fails};
static const kiln_node_def_t *const nodes[] = {&fails_def, NULL};

int kiln_plugin_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    KILN_PLUGIN_BIND_HOST(api);
    out->name = "node_error";
    out->nodes = nodes;
    return 0;
}
