/* A broken pack for the loader tests: built for a future ABI major (2) and saying so in the
 * optional kiln_plugin_abi symbol. The loader must refuse it before calling any of its
 * code, naming both majors; init would crash the test if it ever ran. */
#ifndef KILN_PLUGIN
#define KILN_PLUGIN 1 /* also when built without -DKILN_PLUGIN=1 */
#endif
#include <kiln/node.h>

#include <stdlib.h>

KILN_PLUGIN_DEFINE_HOST;

KILN_API extern const uint32_t kiln_plugin_abi;
const uint32_t kiln_plugin_abi = (2u << 16) | 3u; /* ABI 2.3 */

int kiln_plugin_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    (void)api;
    (void)out;
    abort(); /* the tag must stop the loader first */
}
