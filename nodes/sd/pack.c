/* The "sd" node pack: Stable Diffusion 1.x nodes. This file holds the pack's entry point and
 * its node list; the nodes themselves live in the node_*.c files of this folder and the
 * values they exchange in sd_types.c. */
#include "sd_types.h"

KILN_PLUGIN_DEFINE_HOST;

/* In the order of ComfyUI's NODE_CLASS_MAPPINGS. */
static const kiln_node_def_t *const nodes[] = {
    &sd_node_ksampler,
    &sd_node_checkpoint_loader_simple,
    &sd_node_clip_text_encode,
    &sd_node_clip_set_last_layer,
    &sd_node_vae_decode,
    &sd_node_vae_encode,
    &sd_node_empty_latent_image,
    &sd_node_latent_upscale,
    &sd_node_latent_upscale_by,
    &sd_node_conditioning_combine,
    &sd_node_ksampler_advanced,
    &sd_node_set_latent_noise_mask,
    &sd_node_vae_decode_tiled,
    &sd_node_conditioning_zero_out,
    &sd_node_hires_fix,          /* kiln's own: not in ComfyUI */
    NULL};

int KILN_PLUGIN_ENTRY(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    KILN_PLUGIN_BIND_HOST(api);
    out->name = "sd";
    out->version = KILN_VERSION_STRING;
    out->nodes = nodes;
    return 0;
}
