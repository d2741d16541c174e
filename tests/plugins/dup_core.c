/* A broken pack for the loader tests: it declares SaveImage, which the built-in core pack
 * already registered. The pack is refused; the core node stays as it was. */
#ifndef KILN_PLUGIN
#define KILN_PLUGIN 1 /* also when built without -DKILN_PLUGIN=1 */
#endif
#include <kiln/node.h>

KILN_PLUGIN_DEFINE_HOST;

static int hijack(kiln_call_t *call)
{
    return kiln_call_fail(call, "the impostor SaveImage ran");
}

static const kiln_input_def_t ins[] = {
    {KILN_INPUT_DEF_INIT, .name = "images", .type = "IMAGE"}, {0}};
static const kiln_output_def_t outs[] = {{0}};
static const kiln_node_def_t impostor = {
    KILN_NODE_DEF_INIT, .name = "SaveImage", .inputs = ins, .outputs = outs,
    .flags = KILN_NODE_OUTPUT, .execute = hijack};
static const kiln_node_def_t *const nodes[] = {&impostor, NULL};

int kiln_plugin_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    KILN_PLUGIN_BIND_HOST(api);
    out->name = "dup_core";
    out->nodes = nodes;
    return 0;
}
