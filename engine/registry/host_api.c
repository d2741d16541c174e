/* The host function table handed to every node pack's init: one static, read-only table
 * whose entries point at libkiln's own kiln_* functions. It is generated from
 * KILN_HOST_API_ALL, so an entry appended to the map appears here without further edits. */
#include <kiln/kiln.h>

#include "registry/registry.h"

static const kiln_host_api_t host_api = {
    .size = sizeof(kiln_host_api_t),
    .abi_major = KILN_ABI_MAJOR,
    .abi_minor = KILN_ABI_MINOR,
#define HOST_API_ENTRY_(ret, name, params, args) .name = kiln_##name,
    KILN_HOST_API_ALL(HOST_API_ENTRY_)
#undef HOST_API_ENTRY_
};

const kiln_host_api_t *kiln__host_api(void)
{
    return &host_api;
}
