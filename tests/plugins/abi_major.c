/* A broken pack for the loader tests: built against headers of a future ABI major (2)
 * without the optional kiln_plugin_abi tag, so the refusal comes from the pack's own
 * KILN_PLUGIN_BIND_HOST check, which returns KILN_EABI for a host of another major. */
#ifndef KILN_PLUGIN
#define KILN_PLUGIN 1 /* also when built without -DKILN_PLUGIN=1 */
#endif
#include <kiln/node.h>

#undef KILN_ABI_MAJOR
#define KILN_ABI_MAJOR 2 /* what a pack built against the ABI 2 headers sees */

KILN_PLUGIN_DEFINE_HOST;

static int never(kiln_call_t *call)
{
    return kiln_call_fail(call, "unreachable");
}

static const kiln_output_def_t outs[] = {{KILN_OUTPUT_DEF_INIT, .type = "INT"}, {0}};
static const kiln_node_def_t future = {
    KILN_NODE_DEF_INIT, .name = "BrokenFutureNode", .outputs = outs, .execute = never};
static const kiln_node_def_t *const nodes[] = {&future, NULL};

int kiln_plugin_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    KILN_PLUGIN_BIND_HOST(api);
    out->name = "abi_major";
    out->nodes = nodes;
    return 0;
}
