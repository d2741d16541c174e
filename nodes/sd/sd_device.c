/* The SD pack's device placement (see sd_device.h): a thread-local target set by the
 * model entry points, and the allocation, transfer and weight-loading helpers that read
 * it. Everything on the host goes straight to the 1.0 host calls. */
#include "sd_device.h"

#include <stdlib.h>
#include <string.h>

/* channels_last -1: not chosen yet, which resolves through the environment (see
 * sd_dev_for_lane) when first read, so code that loads models without a lane (tests,
 * tools) follows KILN_SD_CHANNELS_LAST too. */
static _Thread_local sd_dev_t current = {KILN_DEVICE_CPU, KILN_DTYPE_F32, -1};

/* True when the host table has the 1.1 device entries. */
static int has_device_api(void)
{
    return KILN_API_HAS(KILN_HOST_SYMBOL, lane_device);
}

static kiln_dtype_t env_dtype(void)
{
    const char *v = getenv("KILN_CUDA_DTYPE");
    if (v && strcmp(v, "fp32") == 0)
        return KILN_DTYPE_F32;
    if (v && strcmp(v, "bf16") == 0)
        return KILN_DTYPE_BF16;
    return KILN_DTYPE_F16; /* ComfyUI's default for SD1.x on a GPU */
}

/* KILN_SD_CHANNELS_LAST=0/1, or dflt when unset. */
static int env_channels_last(int dflt)
{
    const char *v = getenv("KILN_SD_CHANNELS_LAST");
    return v && (*v == '0' || *v == '1') ? *v == '1' : dflt;
}

sd_dev_t sd_dev_for_lane(kiln_lane_t *lane)
{
    sd_dev_t d = {KILN_DEVICE_CPU, KILN_DTYPE_F32, 0};
    if (has_device_api() && lane)
        d.device = kiln_lane_device(lane);
    if (d.device != KILN_DEVICE_CPU)
        d.act = env_dtype();
    d.channels_last = env_channels_last(d.device != KILN_DEVICE_CPU);
    return d;
}

sd_dev_t sd_dev_enter(sd_dev_t d)
{
    sd_dev_t prev = current;
    current = d;
    return prev;
}

void sd_dev_leave(sd_dev_t prev)
{
    current = prev;
}

sd_dev_t sd_dev_current(void)
{
    if (current.channels_last < 0)
        current.channels_last = env_channels_last(current.device != KILN_DEVICE_CPU);
    return current;
}

kiln_lane_t *sd_dev_lane(kiln_lane_t *lane)
{
    if (!lane || !has_device_api())
        return lane;
    return kiln_lane_device(lane) == current.device ? lane : NULL;
}

kiln_lane_t *sd_host_lane(kiln_lane_t *lane)
{
    if (!lane || !has_device_api())
        return lane;
    return kiln_lane_device(lane) == KILN_DEVICE_CPU ? lane : NULL;
}

static int is_float(kiln_dtype_t dt)
{
    return dt == KILN_DTYPE_F32 || dt == KILN_DTYPE_F16 || dt == KILN_DTYPE_BF16;
}

/* A zero-filled tensor of exactly dtype on the current device, dense. */
static kiln_tensor_t *new_dense(kiln_dtype_t dtype, int ndim, const int64_t *shape)
{
    if (current.device == KILN_DEVICE_CPU)
        return kiln_tensor_new(dtype, ndim, shape);
    kiln_tensor_t *t = NULL;
    return kiln_tensor_new_on(current.device, dtype, ndim, shape, &t) == 0 ? t : NULL;
}

/* [A, B, H, W] as a view of dense [A, H, W, B] storage: channels-last. */
static kiln_tensor_t *new_channels_last(kiln_dtype_t dtype, const int64_t *shape)
{
    int64_t nhwc[4] = {shape[0], shape[2], shape[3], shape[1]};
    kiln_tensor_t *dense = new_dense(dtype, 4, nhwc), *view = NULL; // [A, H, W, B]
    if (dense && kiln_tensor_permute(dense, (const int[]){0, 3, 1, 2}, &view) != 0)
        view = NULL; // [A, B, H, W]
    kiln_tensor_release(dense);
    return view;
}

/* dtype as the current target stores it: float dtypes become act on a GPU. */
static kiln_dtype_t target_dtype(kiln_dtype_t dtype)
{
    return current.device != KILN_DEVICE_CPU && is_float(dtype) ? current.act : dtype;
}

kiln_tensor_t *sd_tensor_new(kiln_dtype_t dtype, int ndim, const int64_t *shape)
{
    if (sd_dev_current().channels_last && ndim == 4 && is_float(dtype))
        return new_channels_last(target_dtype(dtype), shape);
    return new_dense(target_dtype(dtype), ndim, shape);
}

kiln_tensor_t *sd_tensor_new_dense(kiln_dtype_t dtype, int ndim, const int64_t *shape)
{
    return new_dense(target_dtype(dtype), ndim, shape);
}

int sd_to_dev(kiln_lane_t *lane, const kiln_tensor_t *t, kiln_tensor_t **out)
{
    *out = NULL;
    if (!t)
        return KILN_EINVAL;
    if (kiln_tensor_device(t) == current.device) {
        kiln_tensor_retain((kiln_tensor_t *)t);
        *out = (kiln_tensor_t *)t;
        return 0;
    }
    kiln_tensor_t *d = NULL;
    int rc = kiln_tensor_to_device(t, current.device, &d);
    kiln_dtype_t dt = kiln_tensor_dtype(t);
    int relayout = sd_dev_current().channels_last && kiln_tensor_ndim(t) == 4 && is_float(dt);
    if (rc == 0 && is_float(dt) &&
        ((current.device != KILN_DEVICE_CPU && dt != current.act) || relayout)) {
        int64_t shape[KILN_TENSOR_MAX_DIMS];
        for (int i = 0; i < kiln_tensor_ndim(d); i++)
            shape[i] = kiln_tensor_dim(d, i);
        kiln_tensor_t *c = sd_tensor_new(current.act, kiln_tensor_ndim(d), shape);
        /* x1 is exact: a conversion to the act dtype and the layout in one pass */
        rc = c ? kiln_op_scale(sd_dev_lane(lane), c, d, 1.0f) : KILN_ENOMEM;
        kiln_tensor_release(d);
        d = c;
    }
    if (rc != 0) {
        kiln_tensor_release(d);
        return rc;
    }
    *out = d;
    return 0;
}

int sd_to_host_f32(const kiln_tensor_t *t, kiln_tensor_t **out)
{
    *out = NULL;
    if (!t)
        return KILN_EINVAL;
    kiln_tensor_t *h = NULL;
    int rc = 0;
    if (kiln_tensor_device(t) != KILN_DEVICE_CPU)
        rc = kiln_tensor_to_device(t, KILN_DEVICE_CPU, &h); /* complete on return */
    else {
        kiln_tensor_retain((kiln_tensor_t *)t);
        h = (kiln_tensor_t *)t;
    }
    if (rc == 0 && kiln_tensor_dtype(h) != KILN_DTYPE_F32) {
        kiln_tensor_t *f = NULL;
        rc = kiln_tensor_to_dtype(h, KILN_DTYPE_F32, &f);
        kiln_tensor_release(h);
        h = f;
    }
    if (rc != 0) {
        kiln_tensor_release(h);
        return rc;
    }
    *out = h;
    return 0;
}

/* w (4-D) copied into a channels-last tensor of its shape on w's device: *out, new. */
static int weight_channels_last(const kiln_tensor_t *w, kiln_tensor_t **out)
{
    int64_t shape[4];
    for (int d = 0; d < 4; d++)
        shape[d] = kiln_tensor_dim(w, d);
    kiln_tensor_t *c = new_channels_last(kiln_tensor_dtype(w), shape);
    /* on the host the copy is complete on return; on a device it is queued on the
     * thread's stream, which every later use of the weight orders after */
    int rc = !c ? KILN_ENOMEM : kiln_op_contiguous(NULL, c, w); // [OC, C, kh, kw] view
    if (rc != 0) {
        kiln_tensor_release(c);
        c = NULL;
    }
    *out = c;
    return rc;
}

int sd_weight_get(kiln_weights_t *w, const char *name, kiln_dtype_t dtype, kiln_tensor_t **out)
{
    *out = NULL;
    kiln_tensor_t *h = NULL, *d = NULL;
    int rc = kiln_weights_get(w, name, target_dtype(dtype), &h);
    if (rc == 0 && current.device != KILN_DEVICE_CPU)
        rc = kiln_tensor_to_device(h, current.device, &d);
    else if (rc == 0) {
        d = h;
        h = NULL;
    }
    kiln_tensor_release(h);
    if (rc == 0 && sd_dev_current().channels_last && kiln_tensor_ndim(d) == 4 &&
        is_float(kiln_tensor_dtype(d))) {
        rc = weight_channels_last(d, out);
        kiln_tensor_release(d);
        return rc;
    }
    if (rc != 0) {
        kiln_tensor_release(d);
        return rc;
    }
    *out = d;
    return 0;
}
