/* Input and output helpers shared by the core nodes (see core_int.h). Every failure
 * goes through kiln_call_fail so that execution_error carries a readable message. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core_int.h"

static float half_to_float(uint16_t h)
{
    int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float v;
    if (exp == 0)
        v = ldexpf((float)man, -24);
    else if (exp == 31)
        v = man ? NAN : INFINITY;
    else
        v = ldexpf((float)(man | 0x400), exp - 25);
    return (h & 0x8000) ? -v : v;
}

static float bf16_to_float(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* A float32 copy of a half, bfloat16 or double tensor's n elements. */
static float *convert_to_f32(const void *src, kiln_dtype_t dtype, int64_t n)
{
    float *out = kiln_malloc((size_t)n * sizeof *out);
    if (!out)
        return NULL;
    for (int64_t i = 0; i < n; i++) {
        if (dtype == KILN_DTYPE_F16)
            out[i] = half_to_float(((const uint16_t *)src)[i]);
        else if (dtype == KILN_DTYPE_BF16)
            out[i] = bf16_to_float(((const uint16_t *)src)[i]);
        else
            out[i] = (float)((const double *)src)[i];
    }
    return out;
}

/* An image on an accelerator: a float32 host copy in img->owned (the one place these
 * nodes read pixels, so they work unchanged after GPU nodes). */
static int device_image(kiln_call_t *call, const char *name, const kiln_tensor_t *t,
                        kiln__core_image_t *img)
{
    kiln_tensor_t *h = NULL;
    if (!KILN_API_HAS(KILN_HOST_SYMBOL, tensor_to_device) ||
        kiln_tensor_to_device(t, KILN_DEVICE_CPU, &h) != 0)
        return kiln_call_failf(call, "input '%s' cannot be copied to host memory", name);
    kiln_dtype_t dtype = kiln_tensor_dtype(h);
    int64_t n = kiln_tensor_numel(h);
    if (dtype == KILN_DTYPE_F32) {
        img->owned = kiln_malloc((size_t)n * sizeof *img->owned);
        if (img->owned)
            memcpy(img->owned, kiln_tensor_data(h), (size_t)n * sizeof *img->owned);
    } else if (dtype == KILN_DTYPE_F16 || dtype == KILN_DTYPE_BF16 || dtype == KILN_DTYPE_F64) {
        img->owned = convert_to_f32(kiln_tensor_data(h), dtype, n);
    } else {
        kiln_tensor_release(h);
        return kiln_call_failf(call, "input '%s' must be a float tensor", name);
    }
    kiln_tensor_release(h);
    if (!img->owned)
        return kiln_call_fail(call, "out of memory");
    img->data = img->owned;
    return 0;
}

int kiln__core_input_image(kiln_call_t *call, const char *name, kiln__core_image_t *img)
{
    memset(img, 0, sizeof *img);
    kiln_tensor_t *t = kiln_value_get_tensor(kiln_call_input(call, name));
    if (!t)
        return kiln_call_failf(call, "input '%s' is missing or is not an image tensor", name);
    int ndim = kiln_tensor_ndim(t);
    if (ndim != 3 && ndim != 4)
        return kiln_call_failf(call, "input '%s' must have shape [B, H, W, C], got %d dims",
                               name, ndim);
    img->ndim = ndim;
    img->b = kiln_tensor_dim(t, 0);
    img->h = kiln_tensor_dim(t, 1);
    img->w = kiln_tensor_dim(t, 2);
    img->c = ndim == 4 ? kiln_tensor_dim(t, 3) : 1;
    if (img->b < 1 || img->h < 1 || img->w < 1 || img->c < 1)
        return kiln_call_failf(call, "input '%s' is an empty image", name);
    const void *data = kiln_tensor_data(t);
    if (!data)
        return device_image(call, name, t, img);
    kiln_dtype_t dtype = kiln_tensor_dtype(t);
    if (dtype == KILN_DTYPE_F32) {
        img->data = data;
        return 0;
    }
    if (dtype != KILN_DTYPE_F16 && dtype != KILN_DTYPE_BF16 && dtype != KILN_DTYPE_F64)
        return kiln_call_failf(call, "input '%s' must be a float tensor", name);
    img->owned = convert_to_f32(data, dtype, kiln_tensor_numel(t));
    if (!img->owned)
        return kiln_call_fail(call, "out of memory");
    img->data = img->owned;
    return 0;
}

void kiln__core_image_release(kiln__core_image_t *img)
{
    if (img && img->owned) {
        kiln_free(img->owned);
        img->owned = NULL;
    }
}

int kiln__core_input_cstr(kiln_call_t *call, const char *name, char *buf, size_t size)
{
    const char *s = NULL;
    size_t len = 0;
    const kiln_value_t *v = kiln_call_input(call, name);
    if (!v || kiln_value_get_string(v, &s, &len) != 0)
        return kiln_call_failf(call, "input '%s' is missing or is not a string", name);
    if (memchr(s, 0, len))
        return kiln_call_failf(call, "input '%s' contains a NUL character", name);
    if (len >= size)
        return kiln_call_failf(call, "input '%s' is too long (%zu bytes)", name, len);
    memcpy(buf, s, len);
    buf[len] = 0;
    return 0;
}

int kiln__core_input_int(kiln_call_t *call, const char *name, int64_t *v)
{
    const kiln_value_t *val = kiln_call_input(call, name);
    if (!val || kiln_value_get_int(val, v) != 0)
        return kiln_call_failf(call, "input '%s' is missing or is not an integer", name);
    return 0;
}

int kiln__core_input_float(kiln_call_t *call, const char *name, double *v)
{
    const kiln_value_t *val = kiln_call_input(call, name);
    if (!val || kiln_value_get_float(val, v) != 0)
        return kiln_call_failf(call, "input '%s' is missing or is not a number", name);
    return 0;
}

int kiln__core_input_bool(kiln_call_t *call, const char *name, int *v)
{
    const kiln_value_t *val = kiln_call_input(call, name);
    if (!val || kiln_value_get_bool(val, v) != 0)
        return kiln_call_failf(call, "input '%s' is missing or is not a boolean", name);
    return 0;
}

int kiln__core_new_f32(kiln_call_t *call, int ndim, const int64_t *shape, kiln_tensor_t **out,
                       float **data)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1 || shape[i] > KILN__CORE_MAX_ELEMENTS || n > KILN__CORE_MAX_ELEMENTS)
            n = KILN__CORE_MAX_ELEMENTS + 1;
        else
            n *= shape[i];
    }
    if (n > KILN__CORE_MAX_ELEMENTS)
        return kiln_call_failf(call, "a tensor of %lld x %lld x %lld x %lld is too large "
                               "(limit %lld elements)", (long long)shape[0],
                               (long long)(ndim > 1 ? shape[1] : 1),
                               (long long)(ndim > 2 ? shape[2] : 1),
                               (long long)(ndim > 3 ? shape[3] : 1),
                               (long long)KILN__CORE_MAX_ELEMENTS);
    *out = kiln_tensor_new(KILN_DTYPE_F32, ndim, shape);
    if (!*out)
        return kiln_call_fail(call, "out of memory");
    *data = kiln_tensor_data(*out);
    return 0;
}

int kiln__core_set_tensor_output(kiln_call_t *call, int index, const char *type,
                                 kiln_tensor_t *t)
{
    kiln_value_t *v = kiln_value_new_tensor(type, t);
    kiln_tensor_release(t);
    if (!v)
        return kiln_call_fail(call, "out of memory");
    return kiln_call_set_output(call, index, v);
}

int kiln__core_json_string(const char *s, char *out, size_t out_size)
{
    size_t pos = 0;
    if (out_size < 3)
        return KILN_ERANGE;
    out[pos++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        int n;
        if (*p == '"' || *p == '\\')
            n = snprintf(esc, sizeof esc, "\\%c", *p);
        else if (*p < 0x20)
            n = snprintf(esc, sizeof esc, "\\u%04x", *p);
        else
            esc[0] = (char)*p, esc[1] = 0, n = 1;
        if (pos + (size_t)n + 2 > out_size)
            return KILN_ERANGE;
        memcpy(out + pos, esc, (size_t)n);
        pos += (size_t)n;
    }
    out[pos++] = '"';
    out[pos] = 0;
    return 0;
}
