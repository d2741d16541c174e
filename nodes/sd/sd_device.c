/* The SD pack's device placement (see sd_device.h): a thread-local target set by the
 * model entry points, and the allocation, transfer and weight-loading helpers that read
 * it. Everything on the host goes straight to the 1.0 host calls. */
#include "sd_device.h"

#include <stdlib.h>
#include <string.h>

static _Thread_local sd_dev_t current = {KILN_DEVICE_CPU, KILN_DTYPE_F32};

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

sd_dev_t sd_dev_for_lane(kiln_lane_t *lane)
{
    sd_dev_t d = {KILN_DEVICE_CPU, KILN_DTYPE_F32};
    if (!has_device_api() || !lane)
        return d;
    d.device = kiln_lane_device(lane);
    if (d.device != KILN_DEVICE_CPU)
        d.act = env_dtype();
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

kiln_tensor_t *sd_tensor_new(kiln_dtype_t dtype, int ndim, const int64_t *shape)
{
    if (current.device == KILN_DEVICE_CPU)
        return kiln_tensor_new(dtype, ndim, shape);
    if (dtype == KILN_DTYPE_F32 || dtype == KILN_DTYPE_F16 || dtype == KILN_DTYPE_BF16)
        dtype = current.act;
    kiln_tensor_t *t = NULL;
    return kiln_tensor_new_on(current.device, dtype, ndim, shape, &t) == 0 ? t : NULL;
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
    int is_float = dt == KILN_DTYPE_F32 || dt == KILN_DTYPE_F16 || dt == KILN_DTYPE_BF16;
    if (rc == 0 && current.device != KILN_DEVICE_CPU && is_float && dt != current.act) {
        int64_t shape[KILN_TENSOR_MAX_DIMS];
        for (int i = 0; i < kiln_tensor_ndim(d); i++)
            shape[i] = kiln_tensor_dim(d, i);
        kiln_tensor_t *c = sd_tensor_new(current.act, kiln_tensor_ndim(d), shape);
        rc = c ? kiln_op_scale(sd_dev_lane(lane), c, d, 1.0f) : KILN_ENOMEM; /* x1 is exact */
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

int sd_weight_get(kiln_weights_t *w, const char *name, kiln_dtype_t dtype, kiln_tensor_t **out)
{
    if (current.device == KILN_DEVICE_CPU)
        return kiln_weights_get(w, name, dtype, out);
    *out = NULL;
    if (dtype == KILN_DTYPE_F32 || dtype == KILN_DTYPE_F16 || dtype == KILN_DTYPE_BF16)
        dtype = current.act;
    kiln_tensor_t *h = NULL;
    int rc = kiln_weights_get(w, name, dtype, &h);
    if (rc == 0)
        rc = kiln_tensor_to_device(h, current.device, out);
    kiln_tensor_release(h);
    return rc;
}
