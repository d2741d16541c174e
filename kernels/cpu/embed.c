/* Embeddings on the CPU: the sinusoidal timestep embedding of SD's UNet (computed in the
 * same float steps as ComfyUI's timestep_embedding) and row lookup of token ids. */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"
#include "runtime/convert.h"

int kiln__cpu_timestep_embedding(kiln_tensor_t *out, const kiln_tensor_t *t, float max_period)
{
    kiln_tensor_t *ht = NULL;
    const kiln_tensor_t *ft;
    int rc = kiln__cpu_as_f32(t, 0, &ht, &ft);
    if (rc < 0)
        return rc;
    int64_t n = out->shape[0], dim = out->shape[1], half = dim / 2;
    /* torch: exp(-ln(max_period) * arange(half, float32) / half), each step in float. */
    float neg_log = (float)-log((double)max_period);
    float *o = out->data;
    for (int64_t r = 0; r < n; r++) {
        float tv = ((const float *)ft->data)[r * ft->strides[0]];
        float *row = o + r * dim; // [cos half | sin half | 0?]
        for (int64_t i = 0; i < half; i++) {
            float e = neg_log * (float)i / (float)half;
            float arg = tv * (float)exp((double)e);
            row[i] = (float)cos((double)arg);
            row[half + i] = (float)sin((double)arg);
        }
        if (dim % 2)
            row[dim - 1] = 0.0f;
    }
    kiln_tensor_release(ht);
    return 0;
}

static int64_t id_at(const kiln_tensor_t *ids, int64_t i)
{
    if (ids->dtype == KILN_DTYPE_I64)
        return ((const int64_t *)ids->data)[i];
    return ((const int32_t *)ids->data)[i];
}

int kiln__cpu_embedding(kiln_tensor_t *out, const kiln_tensor_t *w, const kiln_tensor_t *ids)
{
    kiln_tensor_t *dense = NULL;
    int rc = kiln_tensor_contiguous(ids, &dense); // ids as a flat [n] list
    if (rc < 0)
        return rc;
    int64_t n = dense->numel, vocab = w->shape[0], d = w->shape[1];
    for (int64_t i = 0; i < n; i++) {
        int64_t id = id_at(dense, i);
        if (id < 0 || id >= vocab) {
            kiln_tensor_release(dense);
            return KILN_ERANGE;
        }
    }
    /* Rows convert straight from the table's dtype, so an F16 table is never widened
     * whole. */
    size_t esize = kiln_dtype_size(w->dtype);
    const char *base = w->data;
    for (int64_t i = 0; i < n; i++) {
        const char *row = base + id_at(dense, i) * w->strides[0] * (int64_t)esize;
        (void)kiln__convert((float *)out->data + i * d, KILN_DTYPE_F32, 1, row, w->dtype,
                            w->strides[1], d);
    }
    kiln_tensor_release(dense);
    return 0;
}
