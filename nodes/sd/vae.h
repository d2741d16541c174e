/* The SD 1.x VAE (AutoencoderKL): decode latents to images and encode images to latents,
 * as ComfyUI's VAEDecode and VAEEncode do. */
#ifndef SD_VAE_H
#define SD_VAE_H

#include <kiln/node.h>
#include <kiln/weights.h>

typedef struct sd_vae sd_vae_t;

/* Loads the VAE whose tensors start with prefix ("first_stage_model." in a single-file
 * checkpoint). ch, ch_mult, res blocks, z_channels, embed_dim and the image channels come
 * from the tensor shapes; both halves (encoder and decoder) must be present. Tensors are
 * held as F32 (zero-copy views of an F32 file, converted copies otherwise). Errors as
 * sd_clip_load (*out NULL, a message naming the tensor in err); the VAE keeps its own
 * references, so w may be closed afterwards. */
int sd_vae_load(kiln_weights_t *w, const char *prefix, sd_vae_t **out, char *err,
                size_t err_size);
void sd_vae_free(sd_vae_t *v);

/* Latent channels (4) and the spatial factor (8 = 2^(levels-1)); 0 for NULL.
 *
 * The functions below run one sample of the batch at a time (results do not depend on the
 * batch), leave their inputs untouched (any float dtype, strided views fine), and on failure
 * return KILN_EINVAL (NULL arguments or shapes that do not fit), an op's error, or
 * KILN_ENOMEM, with the output NULL. A loaded VAE is read-only here: any number of threads
 * may use one at once. */
int sd_vae_latent_channels(const sd_vae_t *v);
int sd_vae_downscale(const sd_vae_t *v);

/* decoder(post_quant_conv(latent)) without clamping: latent [B, C, h, w] in raw latent
 * space (no 0.18215 scaling) -> *out [B, 3, h·f, w·f] NCHW, a new tensor. */
int sd_vae_decode_raw(const sd_vae_t *v, kiln_lane_t *lane, const kiln_tensor_t *latent,
                      kiln_tensor_t **out);

/* VAEDecode: *image [B, H, W, 3] = clamp((decode_raw + 1) / 2, 0, 1), NHWC, new tensor. */
int sd_vae_decode(const sd_vae_t *v, kiln_lane_t *lane, const kiln_tensor_t *latent,
                  kiln_tensor_t **image);

/* VAEEncode: image [B, H, W, C>=3] in 0..1 (extra channels dropped; H and W cropped to
 * multiples of the downscale factor, centred at offset (dim % f) / 2; under f rows or
 * columns is KILN_EINVAL) -> 2x-1 -> encoder -> quant_conv -> posterior mean (no sampling,
 * no 0.18215 scaling): *latent [B, z, H/f, W/f], a new tensor. */
int sd_vae_encode(const sd_vae_t *v, kiln_lane_t *lane, const kiln_tensor_t *image,
                  kiln_tensor_t **latent);

#endif
