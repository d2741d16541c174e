/* Where the SD model code places its tensors: the host, or a GPU chosen by the lane that
 * loaded the checkpoint. A model (UNet, CLIP, VAE) remembers the device and compute dtype
 * of its weights; its entry points make that the calling thread's allocation target for
 * their duration, move host inputs there and hand results back as host float32 tensors,
 * so node sockets (LATENT, CONDITIONING, IMAGE) always carry host tensors. On the host
 * every helper below is the plain host call, so CPU behaviour does not change. */
#ifndef SD_DEVICE_H
#define SD_DEVICE_H

#include <kiln/node.h>

/* A placement: device 0 is the host (act then means nothing); on a GPU, float weights and
 * the activations the model code creates get dtype `act`. With channels_last, the 4-D
 * float tensors the model code creates (activations [B, C, H, W]) and its 4-D weights
 * (convolution kernels [OC, C, kh, kw]) are laid out channels-last, as torch's
 * channels_last format: the same logical shapes, with the channel dimension innermost in
 * memory. The GPU convolutions then run as implicit GEMMs on tensor cores without layout
 * transforms, and the transformers' token views need no transposes. The model code is
 * written against logical shapes and views, so results do not depend on it. */
typedef struct sd_dev {
    int device;
    kiln_dtype_t act;
    int channels_last;
} sd_dev_t;

/* The placement for models loaded by a node running on lane: the lane's device (host for
 * CPU lanes, NULL, or a host without the 1.1 device entries) and, on a GPU, the dtype
 * KILN_CUDA_DTYPE names (fp16, the default; bf16; fp32). Channels-last is on for GPUs and
 * off on the host; KILN_SD_CHANNELS_LAST=0 or 1 overrides both (1 on the host is for
 * testing the layout's view logic, where the CPU kernels gain nothing). Any thread. */
sd_dev_t sd_dev_for_lane(kiln_lane_t *lane);

/* Makes d the calling thread's target and returns the previous one, to be handed back to
 * sd_dev_leave. Thread-local: nodes on other threads are not affected. */
sd_dev_t sd_dev_enter(sd_dev_t d);
void sd_dev_leave(sd_dev_t prev);
sd_dev_t sd_dev_current(void);

/* lane when it issues work to the current target's device, otherwise NULL (the ops then
 * use the thread's own stream), so a model works from a node on any lane. */
kiln_lane_t *sd_dev_lane(kiln_lane_t *lane);

/* lane when it issues work to the host, otherwise NULL: for ops on host tensors (results
 * already handed back) in a node that may run on a GPU lane. The ops reject a lane whose
 * device differs from their tensors'. */
kiln_lane_t *sd_host_lane(kiln_lane_t *lane);

/* A new zero-filled tensor on the current target: kiln_tensor_new on the host; on a GPU
 * float dtypes become the target's act dtype. 4-D float tensors are channels-last views
 * when the target says so. NULL on failure. Caller owns it. */
kiln_tensor_t *sd_tensor_new(kiln_dtype_t dtype, int ndim, const int64_t *shape);

/* sd_tensor_new, always dense (row-major): for results handed to callers, which may read
 * a host result's elements directly. */
kiln_tensor_t *sd_tensor_new_dense(kiln_dtype_t dtype, int ndim, const int64_t *shape);

/* t on the current target device (*out: a new reference; t itself when it is already
 * there). Host float tensors moved to a GPU are converted to the act dtype. 0 or KILN_E*. */
int sd_to_dev(kiln_lane_t *lane, const kiln_tensor_t *t, kiln_tensor_t **out);

/* t as a host float32 tensor (*out: a new reference; t itself when it is one already).
 * Device results are complete when this returns. 0 or KILN_E*. */
int sd_to_host_f32(const kiln_tensor_t *t, kiln_tensor_t **out);

/* kiln_weights_get, placed on the current target: on a GPU a float weight is converted to
 * the act dtype and uploaded once (the caller keeps it resident); a 4-D float weight is
 * laid out channels-last when the target says so. 0 or KILN_E*. */
int sd_weight_get(kiln_weights_t *w, const char *name, kiln_dtype_t dtype, kiln_tensor_t **out);

#endif
