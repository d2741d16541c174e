/* A pack for the loader tests that is fine: it proves that a folder of broken packs does
 * not keep the good one in it from loading.
 *   GoodDouble x:INT -> INT   2 * x */
#ifndef KILN_PLUGIN
#define KILN_PLUGIN 1 /* also when built without -DKILN_PLUGIN=1 */
#endif
#include <kiln/node.h>

KILN_PLUGIN_DEFINE_HOST;

static int twice(kiln_call_t *call)
{
    int64_t x = 0;
    const kiln_value_t *v = kiln_call_input(call, "x");
    if (!v || kiln_value_get_int(v, &x) != 0)
        return kiln_call_fail(call, "input 'x' is missing");
    return kiln_call_set_output(call, 0, kiln_value_new_int(2 * x));
}

static const kiln_input_def_t ins[] = {
    {KILN_INPUT_DEF_INIT, .name = "x", .type = "INT", .has_default = 1}, {0}};
static const kiln_output_def_t outs[] = {{KILN_OUTPUT_DEF_INIT, .type = "INT"}, {0}};
static const kiln_node_def_t twice_def = {
    KILN_NODE_DEF_INIT, .name = "GoodDouble", .inputs = ins, .outputs = outs, .execute = twice};
static const kiln_node_def_t *const nodes[] = {&twice_def, NULL};

int kiln_plugin_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    KILN_PLUGIN_BIND_HOST(api);
    out->name = "good";
    out->nodes = nodes;
    return 0;
}
