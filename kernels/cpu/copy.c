/* Data movement on the CPU: one strided copy (with dtype conversion) that contiguous,
 * permute, transpose, slice and concat all reduce to once the dispatcher has expressed
 * them as views. */
#include "kernels/cpu/cpu_ops.h"
#include "runtime/convert.h"

typedef struct copy_ctx {
    kiln_dtype_t dst, src;
} copy_ctx_t;

static void copy_run(void *ctx, int64_t n, char *const *p, const int64_t *s)
{
    const copy_ctx_t *c = ctx;
    /* The dispatcher checked kiln__convert_check, and float targets never fail. */
    (void)kiln__convert(p[0], c->dst, s[0], p[1], c->src, s[1], n);
}

int kiln__cpu_copy(kiln_tensor_t *out, const kiln_tensor_t *x)
{
    copy_ctx_t c = {out->dtype, x->dtype};
    kiln__cpu_walk_t w;
    kiln__cpu_walk_init(&w, out->ndim, out->shape);
    kiln__cpu_walk_add(&w, out, NULL);
    kiln__cpu_walk_add(&w, x, NULL);
    kiln__cpu_walk_run(&w, copy_run, &c);
    return 0;
}
