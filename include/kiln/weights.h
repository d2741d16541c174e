/* Weight files: model tensors read from safetensors files by mmap, for node packs that
 * load models. A tensor taken from an open file views the mapped bytes without a copy
 * when no dtype conversion is asked for; the mapping lives until the file is closed and
 * every such tensor is released.
 *
 *   kiln_weights_t *w; char err[256];
 *   if (kiln_weights_open(path, &w, err, sizeof err) != 0) return kiln_call_fail(call, err);
 *   kiln_tensor_t *t;
 *   if (kiln_weights_get(w, "model.diffusion_model.out.2.weight", KILN_DTYPE_F32, &t) == 0)
 *       ...
 *   kiln_weights_close(w);
 *
 * Reached by node packs through the host table (node.h). */
#ifndef KILN_WEIGHTS_H
#define KILN_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/export.h"
#include "kiln/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_weights kiln_weights_t;

/* XX(return type, name without the kiln_ prefix, (parameters), (arguments)), appended to
 * the host table by node.h. */
#define KILN_WEIGHTS_API_MAP(XX)                                                            \
    /* Opens and validates a safetensors file. Errors: KILN_ENOTFOUND (no file),            \
     * KILN_EPARSE (malformed, with the reason in err), KILN_EIO, KILN_ENOMEM. */           \
    XX(int, weights_open, (const char *path, kiln_weights_t **out, char *err,              \
       size_t err_size), (path, out, err, err_size))                                        \
    XX(int, weights_close, (kiln_weights_t *w), (w))                                        \
    XX(size_t, weights_count, (const kiln_weights_t *w), (w))                               \
    /* name of tensor i (borrowed: lives with w), NULL when out of range */                 \
    XX(const char *, weights_name, (const kiln_weights_t *w, size_t i), (w, i))             \
    /* stored dtype, rank and shape of a tensor without loading it; KILN_ENOTFOUND */       \
    XX(int, weights_info, (const kiln_weights_t *w, const char *name, kiln_dtype_t *dtype,  \
       int *ndim, int64_t *shape), (w, name, dtype, ndim, shape))                           \
    /* the tensor converted to dtype (zero-copy and read-only when dtype is the stored      \
     * one); the caller owns the reference. KILN_ENOTFOUND, KILN_EUNSUPPORTED, ENOMEM */    \
    XX(int, weights_get, (kiln_weights_t *w, const char *name, kiln_dtype_t dtype,          \
       kiln_tensor_t **out), (w, name, dtype, out))

#ifndef KILN_PLUGIN
#define KILN_WEIGHTS_DECL_(ret, name, params, args) KILN_API ret kiln_##name params;
KILN_WEIGHTS_API_MAP(KILN_WEIGHTS_DECL_)
#undef KILN_WEIGHTS_DECL_
#endif

#ifdef __cplusplus
}
#endif
#endif
