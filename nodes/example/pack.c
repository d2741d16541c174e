/* The example pack's entry point: the one symbol a plugin exports. kiln calls it once
 * when it loads the library, with the host function table; the pack binds the table
 * (refusing a host of another ABI major) and lists its nodes. The lists are static, so
 * nothing here allocates, and a pack whose init does no more than this cannot fail. */
#include "example.h"

/* The host table every kiln_* call of this pack goes through; set by the bind below. */
KILN_PLUGIN_DEFINE_HOST;
KILN_PLUGIN_DEFINE_ABI;

static const kiln_node_def_t *const example_nodes[] = {
    &example_grayscale,
    &example_vignette,
    &example_split_batch,
    &example_make_palette,
    &example_apply_palette,
    &example_blend,
    NULL};

int kiln_plugin_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    KILN_PLUGIN_BIND_HOST(api); /* returns KILN_EABI for a host of another major */
    out->name = "example";      /* /object_info shows python_module "custom_nodes.example" */
    out->version = "1.0.0";
    out->nodes = example_nodes;
    return 0;
}
