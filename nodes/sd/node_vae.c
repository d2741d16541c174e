/* VAEDecode (LATENT -> IMAGE) and VAEEncode (IMAGE -> LATENT), category latent. Latents
 * are in raw latent space on both sides: the 0.18215 scale is the sampler's business. */
#include "sd_types.h"

static int decode_execute(kiln_call_t *call)
{
    const sd_latent_t *in = sd_input_latent(call, "samples");
    sd_vae_obj_t *vae = in ? sd_input_vae(call, "vae") : NULL;
    if (!vae)
        return KILN_ENODE;
    int64_t c = kiln_tensor_dim(in->samples, 1);
    if (c != sd_vae_latent_channels(vae->vae))
        return kiln_call_failf(call, "the latent has %lld channels but the VAE takes %d",
                               (long long)c, sd_vae_latent_channels(vae->vae));
    kiln_tensor_t *image = NULL;
    int rc = sd_vae_decode(vae->vae, kiln_call_lane(call), in->samples, &image);   // [B, H, W, 3]
    if (rc)
        return rc == KILN_EINTERRUPTED ? rc : kiln_call_failf(call, "VAE decode failed "
                                                              "(error %d)", rc);
    kiln_value_t *v = kiln_value_new_tensor("IMAGE", image);
    kiln_tensor_release(image);
    return sd_set_output(call, 0, v);
}

static const kiln_input_def_t decode_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "samples", .type = SD_TYPE_LATENT,
     .tooltip = "The latent to be decoded."},
    {KILN_INPUT_DEF_INIT, .name = "vae", .type = SD_TYPE_VAE,
     .tooltip = "The VAE model used for decoding the latent."},
    {0}};

static const kiln_output_def_t decode_output[] = {
    {KILN_OUTPUT_DEF_INIT, .type = "IMAGE", .tooltip = "The decoded image."}, {0}};

const kiln_node_def_t sd_node_vae_decode = {
    KILN_NODE_DEF_INIT, .name = "VAEDecode", .display_name = "VAE Decode", .category = "latent",
    .flags = KILN_NODE_GPU, /* may run on a GPU lane (sd_device.h) */
    .description = "Decodes latent images back into pixel space images.",
    .inputs = decode_inputs, .outputs = decode_output, .execute = decode_execute};

static int encode_execute(kiln_call_t *call)
{
    sd_vae_obj_t *vae = sd_input_vae(call, "vae");
    if (!vae)
        return KILN_ENODE;
    kiln_tensor_t *px = kiln_value_get_tensor(kiln_call_input(call, "pixels"));
    if (!px || kiln_tensor_ndim(px) != 4 || kiln_tensor_dim(px, 3) < 3)
        return kiln_call_fail(call, "input 'pixels' must be an IMAGE [B, H, W, C] with at "
                              "least 3 channels");
    int f = sd_vae_downscale(vae->vae);
    if (kiln_tensor_dim(px, 0) < 1 || kiln_tensor_dim(px, 1) < f || kiln_tensor_dim(px, 2) < f)
        return kiln_call_failf(call, "the image is smaller than the VAE's %d x %d cell", f, f);
    kiln_tensor_t *dense = sd_dense_f32(px);
    if (!dense)
        return kiln_call_fail(call, "input 'pixels' must be a float tensor in host memory");
    kiln_tensor_t *latent = NULL;
    int rc = sd_vae_encode(vae->vae, kiln_call_lane(call), dense, &latent);  // [B, 4, H/8, W/8]
    kiln_tensor_release(dense);
    if (rc)
        return rc == KILN_EINTERRUPTED ? rc : kiln_call_failf(call, "VAE encode failed "
                                                              "(error %d)", rc);
    sd_latent_t *l = sd_latent_new(latent, NULL);
    kiln_tensor_release(latent);
    return sd_set_output(call, 0, sd_value_latent(l));
}

static const kiln_input_def_t encode_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "pixels", .type = "IMAGE"},
    {KILN_INPUT_DEF_INIT, .name = "vae", .type = SD_TYPE_VAE},
    {0}};

static const kiln_output_def_t encode_output[] = {
    {KILN_OUTPUT_DEF_INIT, .type = SD_TYPE_LATENT}, {0}};

const kiln_node_def_t sd_node_vae_encode = {
    KILN_NODE_DEF_INIT, .name = "VAEEncode", .display_name = "VAE Encode", .category = "latent",
    .flags = KILN_NODE_GPU, /* may run on a GPU lane (sd_device.h) */
    .inputs = encode_inputs, .outputs = encode_output, .execute = encode_execute};
