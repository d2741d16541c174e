/* The built-in "core" node pack: primitives and the image nodes (load, save, preview,
 * scale, invert, batch, empty). It binds the host function table and lists its nodes
 * through the same entry point an external plugin exports. */
#include "core_int.h"

KILN_PLUGIN_DEFINE_HOST;

/* Image nodes in the order of ComfyUI's NODE_CLASS_MAPPINGS, then the primitives. */
static const kiln_node_def_t *const core_nodes[] = {
    &kiln__core_save_image,
    &kiln__core_preview_image,
    &kiln__core_load_image,
    &kiln__core_image_scale,
    &kiln__core_image_scale_by,
    &kiln__core_image_invert,
    &kiln__core_image_batch,
    &kiln__core_empty_image,
    &kiln__core_primitive_string,
    &kiln__core_primitive_string_multiline,
    &kiln__core_primitive_int,
    &kiln__core_primitive_float,
    &kiln__core_primitive_boolean,
    NULL};

int KILN_PLUGIN_ENTRY(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    KILN_PLUGIN_BIND_HOST(api);
    out->name = "core";
    out->version = KILN_VERSION_STRING;
    out->nodes = core_nodes;
    return 0;
}
