/* A broken pack for the loader tests: a shared library without kiln_plugin_init (its
 * author renamed the function). The loader must refuse it with "missing entry point". */
#ifndef KILN_PLUGIN
#define KILN_PLUGIN 1 /* also when built without -DKILN_PLUGIN=1 */
#endif
#include <kiln/node.h>

KILN_API int kiln_plugin_start(void);

KILN_API int kiln_plugin_start(void)
{
    return 0;
}
