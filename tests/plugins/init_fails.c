/* A broken pack for the loader tests: its init reports an error. It says "out of memory",
 * the code that could be mistaken for the engine's own failure: the loader must still log
 * "init failed" and start the engine without the pack. */
#ifndef KILN_PLUGIN
#define KILN_PLUGIN 1 /* also when built without -DKILN_PLUGIN=1 */
#endif
#include <kiln/node.h>

KILN_PLUGIN_DEFINE_HOST;

int kiln_plugin_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    KILN_PLUGIN_BIND_HOST(api);
    kiln_log(KILN_LOG_WARN, "init_fails: refusing to start, on purpose");
    out->name = "init_fails";
    return KILN_ENOMEM;
}
