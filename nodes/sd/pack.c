/* The "sd" node pack: Stable Diffusion 1.x nodes. This file holds the pack's entry point and
 * its node list; the nodes themselves live in the other files of this folder. */
#include "kiln/node.h"

KILN_PLUGIN_DEFINE_HOST;

static const kiln_node_def_t *const nodes[] = {NULL};

int KILN_PLUGIN_ENTRY(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    KILN_PLUGIN_BIND_HOST(api);
    out->name = "sd";
    out->nodes = nodes;
    return 0;
}
