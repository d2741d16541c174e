/* A broken pack for the loader tests: two nodes share one name. The registry checks a
 * pack all-or-nothing, so DupNamesFine, which is fine, must not register either. */
#ifndef KILN_PLUGIN
#define KILN_PLUGIN 1 /* also when built without -DKILN_PLUGIN=1 */
#endif
#include <kiln/node.h>

KILN_PLUGIN_DEFINE_HOST;

static int one(kiln_call_t *call)
{
    return kiln_call_set_output(call, 0, kiln_value_new_int(1));
}

static const kiln_output_def_t outs[] = {{KILN_OUTPUT_DEF_INIT, .type = "INT"}, {0}};
static const kiln_node_def_t fine = {
    KILN_NODE_DEF_INIT, .name = "DupNamesFine", .outputs = outs, .execute = one};
static const kiln_node_def_t twin_a = {
    KILN_NODE_DEF_INIT, .name = "BrokenTwin", .outputs = outs, .execute = one};
static const kiln_node_def_t twin_b = {
    KILN_NODE_DEF_INIT, .name = "BrokenTwin", .outputs = outs, .execute = one};
static const kiln_node_def_t *const nodes[] = {&fine, &twin_a, &twin_b, NULL};

int kiln_plugin_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    KILN_PLUGIN_BIND_HOST(api);
    out->name = "dup_names";
    out->nodes = nodes;
    return 0;
}
