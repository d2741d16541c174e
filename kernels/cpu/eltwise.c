/* Elementwise CPU kernels: broadcasting binary arithmetic, scalar ops, clamp, the
 * activations (silu, erf-gelu, quick_gelu) and SD's GEGLU gate. Each runs over strided
 * operands with the element walk of common.c; activations evaluate in double and round
 * once, so they sit within half an ulp of the exact value. */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"

typedef struct elt_ctx {
    int op;
    float p0, p1;
} elt_ctx_t;

static void binary_run(void *ctx, int64_t n, char *const *p, const int64_t *s)
{
    const elt_ctx_t *c = ctx;
    float *o = (float *)p[0];
    const float *a = (const float *)p[1], *b = (const float *)p[2];
    int64_t so = s[0], sa = s[1], sb = s[2];
    switch ((kiln__op_binary_t)c->op) {
    case KILN__OP_BINARY_ADD:
        for (int64_t i = 0; i < n; i++)
            o[i * so] = a[i * sa] + b[i * sb];
        break;
    case KILN__OP_BINARY_SUB:
        for (int64_t i = 0; i < n; i++)
            o[i * so] = a[i * sa] - b[i * sb];
        break;
    case KILN__OP_BINARY_MUL:
        for (int64_t i = 0; i < n; i++)
            o[i * so] = a[i * sa] * b[i * sb];
        break;
    case KILN__OP_BINARY_DIV:
        for (int64_t i = 0; i < n; i++)
            o[i * so] = a[i * sa] / b[i * sb];
        break;
    }
}

int kiln__cpu_binary(kiln_tensor_t *out, const kiln_tensor_t *a, const kiln_tensor_t *b,
                     kiln__op_binary_t op)
{
    kiln_tensor_t *ha = NULL, *hb = NULL;
    const kiln_tensor_t *fa, *fb;
    int rc = kiln__cpu_as_f32(a, 0, &ha, &fa);
    if (rc == 0)
        rc = kiln__cpu_as_f32(b, 0, &hb, &fb);
    if (rc == 0) {
        int64_t sa[KILN_TENSOR_MAX_DIMS], sb[KILN_TENSOR_MAX_DIMS];
        kiln__cpu_bcast_strides(fa, out->ndim, out->shape, sa);
        kiln__cpu_bcast_strides(fb, out->ndim, out->shape, sb);
        elt_ctx_t c = {(int)op, 0.0f, 0.0f};
        kiln__cpu_walk_t w;
        kiln__cpu_walk_init(&w, out->ndim, out->shape);
        kiln__cpu_walk_add(&w, out, NULL);
        kiln__cpu_walk_add(&w, fa, sa);
        kiln__cpu_walk_add(&w, fb, sb);
        kiln__cpu_walk_run(&w, binary_run, &c);
    }
    kiln_tensor_release(ha);
    kiln_tensor_release(hb);
    return rc;
}

static inline float gelu1(float x)
{
    return (float)(0.5 * (double)x * (1.0 + erf((double)x * M_SQRT1_2)));
}

static inline float sigmoid_mul(float x, double k)
{
    return (float)((double)x / (1.0 + exp(-k * (double)x)));
}

static void unary_run(void *ctx, int64_t n, char *const *p, const int64_t *s)
{
    const elt_ctx_t *c = ctx;
    float *o = (float *)p[0];
    const float *x = (const float *)p[1];
    int64_t so = s[0], sx = s[1];
    float lo = c->p0, hi = c->p1;
    switch ((kiln__op_unary_t)c->op) {
    case KILN__OP_UNARY_SCALE:
        for (int64_t i = 0; i < n; i++)
            o[i * so] = x[i * sx] * c->p0;
        break;
    case KILN__OP_UNARY_ADD_SCALAR:
        for (int64_t i = 0; i < n; i++)
            o[i * so] = x[i * sx] + c->p0;
        break;
    case KILN__OP_UNARY_CLAMP:
        /* Comparisons with NaN are false, so a NaN input passes through as torch's. */
        for (int64_t i = 0; i < n; i++) {
            float v = x[i * sx];
            o[i * so] = v < lo ? lo : (v > hi ? hi : v);
        }
        break;
    case KILN__OP_UNARY_SILU:
        for (int64_t i = 0; i < n; i++)
            o[i * so] = sigmoid_mul(x[i * sx], 1.0);
        break;
    case KILN__OP_UNARY_GELU:
        for (int64_t i = 0; i < n; i++)
            o[i * so] = gelu1(x[i * sx]);
        break;
    case KILN__OP_UNARY_QUICK_GELU:
        /* torch computes 1.702 * x in float first; the double product differs from it
         * by far less than the tolerance the model tests use. */
        for (int64_t i = 0; i < n; i++)
            o[i * so] = sigmoid_mul(x[i * sx], 1.702);
        break;
    }
}

int kiln__cpu_unary(kiln_tensor_t *out, const kiln_tensor_t *x, kiln__op_unary_t op, float p0,
                    float p1)
{
    kiln_tensor_t *hx = NULL;
    const kiln_tensor_t *fx;
    int rc = kiln__cpu_as_f32(x, 0, &hx, &fx);
    if (rc == 0) {
        elt_ctx_t c = {(int)op, p0, p1};
        kiln__cpu_walk_t w;
        kiln__cpu_walk_init(&w, out->ndim, out->shape);
        kiln__cpu_walk_add(&w, out, NULL);
        kiln__cpu_walk_add(&w, fx, NULL);
        kiln__cpu_walk_run(&w, unary_run, &c);
    }
    kiln_tensor_release(hx);
    return rc;
}

static void geglu_run(void *ctx, int64_t n, char *const *p, const int64_t *s)
{
    float *o = (float *)p[0];
    const float *val = (const float *)p[1], *gate = (const float *)p[2];
    for (int64_t i = 0; i < n; i++)
        o[i * s[0]] = val[i * s[1]] * gelu1(gate[i * s[2]]);
    (void)ctx;
}

int kiln__cpu_geglu(kiln_tensor_t *out, const kiln_tensor_t *x)
{
    kiln_tensor_t *hx = NULL;
    const kiln_tensor_t *fx;
    int rc = kiln__cpu_as_f32(x, 0, &hx, &fx);
    if (rc == 0) {
        int last = out->ndim - 1;
        int64_t half = out->shape[last];
        /* The value is x[..., :half] and the gate x[..., half:]: the same strides, with
         * the gate's first element half a row further on. */
        kiln__cpu_walk_t w;
        kiln__cpu_walk_init(&w, out->ndim, out->shape); // walk [..., half]
        kiln__cpu_walk_add(&w, out, NULL);
        kiln__cpu_walk_add(&w, fx, fx->strides);
        kiln__cpu_walk_add(&w, fx, fx->strides);
        w.base[2] += half * fx->strides[last] * (int64_t)sizeof(float);
        kiln__cpu_walk_run(&w, geglu_run, NULL);
    }
    kiln_tensor_release(hx);
    return rc;
}
