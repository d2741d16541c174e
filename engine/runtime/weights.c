/* The public weight-file API (include/kiln/weights.h) over the safetensors reader. */
#include <kiln/error.h>
#include <kiln/weights.h>

#include <stdlib.h>
#include <string.h>

#include "runtime/safetensors.h"

struct kiln_weights {
    kiln__safetensors_t *file; /* owned */
};

int kiln_weights_open(const char *path, kiln_weights_t **out, char *err, size_t err_size)
{
    if (!path || !out)
        return KILN_EINVAL;
    kiln_weights_t *w = calloc(1, sizeof *w);
    if (!w)
        return KILN_ENOMEM;
    int rc = kiln__safetensors_open(path, &w->file, err, err_size);
    if (rc != 0) {
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

int kiln_weights_close(kiln_weights_t *w)
{
    if (w) {
        kiln__safetensors_close(w->file);
        free(w);
    }
    return 0;
}

size_t kiln_weights_count(const kiln_weights_t *w)
{
    return w ? kiln__safetensors_count(w->file) : 0;
}

const char *kiln_weights_name(const kiln_weights_t *w, size_t i)
{
    const kiln__safetensors_info_t *info =
        w && i < kiln__safetensors_count(w->file) ? kiln__safetensors_info_at(w->file, i) : NULL;
    return info ? info->name : NULL;
}

int kiln_weights_info(const kiln_weights_t *w, const char *name, kiln_dtype_t *dtype, int *ndim,
                      int64_t *shape)
{
    const kiln__safetensors_info_t *info = w && name ? kiln__safetensors_find(w->file, name) : NULL;
    if (!info)
        return KILN_ENOTFOUND;
    if (dtype)
        *dtype = info->dtype;
    if (ndim)
        *ndim = info->ndim;
    if (shape)
        memcpy(shape, info->shape, sizeof(int64_t) * (size_t)info->ndim);
    return 0;
}

int kiln_weights_get(kiln_weights_t *w, const char *name, kiln_dtype_t dtype, kiln_tensor_t **out)
{
    if (!w || !name || !out)
        return KILN_EINVAL;
    return kiln__safetensors_tensor_as(w->file, name, dtype, out, NULL, 0);
}
