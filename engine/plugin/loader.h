/* The plugin loader: finds node packs built as shared libraries (*.so) in the plugin
 * folders, opens each one, and registers it through the same kiln_plugin_init contract
 * the built-in packs use. A pack that cannot be loaded is logged in one line and skipped;
 * nothing a plugin folder holds can stop the engine from starting. */
#ifndef KILN_PLUGIN_LOADER_H
#define KILN_PLUGIN_LOADER_H

#include <kiln/node.h>
#include <stdbool.h>

#include "registry/registry.h"

/* The optional data symbol a pack may export next to kiln_plugin_init to state the ABI it
 * was built for, as (major << 16) | minor (a const uint32_t). When present, the loader
 * checks it before it calls into the pack at all; when absent, the pack's own
 * KILN_PLUGIN_BIND_HOST check refuses an incompatible host. */
#define KILN__PLUGIN_ABI_SYMBOL "kiln_plugin_abi"

/* The shared libraries a loader opened; they stay mapped until kiln__plugins_close. */
typedef struct kiln__plugins kiln__plugins_t;

/* Loads the plugin folders into reg: first <base_dir>/plugins (unless no_default), then
 * each folder of the NULL-terminated extra_dirs (may be NULL), in order. Within a folder,
 * files ending in ".so" load in name order; a file reached twice (the same real path)
 * loads once. Each file is opened with dlopen(RTLD_NOW | RTLD_LOCAL), its
 * kiln_plugin_init is registered with kiln__registry_add_pack, and one line is logged:
 * "plugin '<path>': loaded pack 'x' with N nodes" (info), or "plugin '<path>': refused:
 * <why>" (error) for a library that does not open, lacks the entry point, was built for
 * another ABI major, declares a bad node, or whose init fails. A missing default folder
 * is silent; a missing extra folder is a warning.
 *
 * Bad plugins never fail this call: it returns 0, or KILN_ENOMEM when memory ran out
 * (KILN_EINVAL for a NULL reg or out). *out is set in both cases, because packs that
 * registered before a failure point into its libraries: close it after the registry.
 * Libraries whose init ran stay open in *out whatever the registry said; the others are
 * closed at once. Not thread-safe: call while the engine starts, before it serves. */
int kiln__plugins_load(kiln__registry_t *reg, const char *base_dir,
                       const char *const *extra_dirs, bool no_default, kiln__plugins_t **out);

/* Number of packs registered from plugins (tests). */
size_t kiln__plugins_count(const kiln__plugins_t *p);

/* dlcloses every library and frees p (NULL is a no-op). Call only after everything that
 * can point into a pack's code or static data is gone: the lanes' workers, cached values
 * (their free functions), and the registry (its classes borrow the packs' strings and
 * execute pointers). */
void kiln__plugins_close(kiln__plugins_t *p);

#endif
