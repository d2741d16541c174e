/* The op library's public entry points (include/kiln/ops.h): every kiln_op_* checks its
 * arguments here, once for all backends (NULLs, devices, dtypes, shapes, overlap), and
 * then dispatches on the tensors' device: host tensors to the CPU kernels, tensors on a
 * CUDA device (builds with KILN_HAVE_CUDA) to engine/cuda, which gets arguments that are
 * already valid. */
#include <kiln/ops.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cpu/cpu_ops.h"
#include "runtime/convert.h"
#include "runtime/tensor_int.h"
#include "sched/lane.h"
#ifdef KILN_HAVE_CUDA
#include "cuda/cuda_ops.h"
#include "cuda/cuda_rt.h"
#endif

/* check() flags. */
enum {
    OUT_F32 = 1u << 0,   /* out must be F32 */
    OUT_DENSE = 1u << 1, /* out must be contiguous */
    IN_PLACE = 1u << 2,  /* out may be exactly an input (same elements, same layout) */
    OUT_CL = 1u << 3     /* with OUT_DENSE: a channels-last out is accepted too */
};

/* Which backend runs an op: the device of its tensors. */
typedef enum backend { BACKEND_CPU = 0, BACKEND_CUDA = 1 } backend_t;

/* Runs the backend's implementation: the CPU call, or the CUDA one (whose text vanishes
 * in builds without the CUDA backend, where check() never picks it). */
#ifdef KILN_HAVE_CUDA
#define CUDA_CALL(call) (call)
#else
#define CUDA_CALL(call) KILN_EUNSUPPORTED
#endif
#define DISPATCH(be, cpu_call, cuda_call) ((be) == BACKEND_CPU ? (cpu_call) : CUDA_CALL(cuda_call))

/* For ops that accept a channels-last out (OUT_CL): the CPU kernels write dense tensors,
 * so on the host such an out is computed into a dense temporary `o` and copied over.
 * Sets rc; `call` names its output `o`. */
#define CPU_INTO(out, rc, call)                                                               \
    do {                                                                                      \
        kiln_tensor_t *o = (out);                                                             \
        if (!kiln_tensor_is_contiguous(out)) {                                                \
            o = kiln__tensor_new_uninit((out)->dtype, (out)->ndim, (out)->shape);             \
            if (!o) {                                                                         \
                (rc) = KILN_ENOMEM;                                                           \
                break;                                                                        \
            }                                                                                 \
        }                                                                                     \
        (rc) = (call);                                                                        \
        if (o != (out)) {                                                                     \
            if ((rc) == 0)                                                                    \
                (rc) = kiln_tensor_copy((out), o);                                            \
            kiln_tensor_release(o);                                                           \
        }                                                                                     \
    } while (0)

/* 1 when device is a CUDA device of this build. */
static int is_cuda_device(int device)
{
#ifdef KILN_HAVE_CUDA
    return device != KILN_DEVICE_CPU && kiln__cuda_device_valid(device);
#else
    (void)device;
    return 0;
#endif
}

/* ---- argument checks ---------------------------------------------------------------- */

static int is_float(const kiln_tensor_t *t)
{
    return kiln_dtype_is_float(t->dtype);
}

/* The byte range [*lo, *hi) that t's elements span; empty when t has no elements. */
static void extent(const kiln_tensor_t *t, uintptr_t *lo, uintptr_t *hi)
{
    *lo = *hi = (uintptr_t)kiln__tensor_ptr(t);
    if (t->numel == 0)
        return;
    int64_t last = 0;
    for (int i = 0; i < t->ndim; i++)
        last += (t->shape[i] - 1) * t->strides[i];
    *hi = *lo + (uintptr_t)((last + 1) * (int64_t)kiln_dtype_size(t->dtype));
}

static int overlap(const kiln_tensor_t *a, const kiln_tensor_t *b)
{
    uintptr_t alo, ahi, blo, bhi;
    extent(a, &alo, &ahi);
    extent(b, &blo, &bhi);
    return alo < bhi && blo < ahi && a->storage->device == b->storage->device;
}

/* 1 when a and b are the same elements in the same layout (an in-place call). */
static int same_view(const kiln_tensor_t *a, const kiln_tensor_t *b)
{
    if (kiln__tensor_ptr(a) != kiln__tensor_ptr(b) || a->dtype != b->dtype || a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i] || (a->shape[i] > 1 && a->strides[i] != b->strides[i]))
            return 0;
    return 1;
}

static int same_shape(const kiln_tensor_t *a, const kiln_tensor_t *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

/* 1 when t is a 4-D tensor [N, C, H, W] laid out channels-last: dense in N, H, W, C order
 * (strides H*W*C, 1, W*C, C, those of size-1 dimensions ignored), the layout of
 * torch.channels_last, which the GPU convolutions read and write without transposes. */
static int is_channels_last(const kiln_tensor_t *t)
{
    if (t->ndim != 4)
        return 0;
    static const int order[4] = {1, 3, 2, 0}; /* innermost first */
    int64_t expect = 1;
    for (int k = 0; k < 4; k++) {
        int d = order[k];
        if (t->shape[d] != 1 && t->strides[d] != expect)
            return 0;
        expect *= t->shape[d];
    }
    return 1;
}

/* Normalizes a dimension index (negative counts from the end); -1 when out of range. */
static int norm_dim(int d, int ndim)
{
    if (d < 0)
        d += ndim;
    return d >= 0 && d < ndim ? d : -1;
}

/* The checks every op shares. in[] holds the inputs present (optional ones left out).
 * Picks the backend from out's device, which every input must share. */
static int check(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *const *in,
                 int nin, unsigned flags, backend_t *be)
{
    if (!out)
        return KILN_EINVAL;
    for (int i = 0; i < nin; i++)
        if (!in[i])
            return KILN_EINVAL;
    int dev = out->storage->device;
    for (int i = 0; i < nin; i++)
        if (in[i]->storage->device != dev)
            return KILN_EUNSUPPORTED;
    if (lane && lane->device != dev)
        return KILN_EINVAL;
    int cuda = is_cuda_device(dev);
    /* On a CUDA device a float op may also write F16 or BF16 (half-precision inference). */
    if ((flags & OUT_F32) && out->dtype != KILN_DTYPE_F32 &&
        !(cuda && (out->dtype == KILN_DTYPE_F16 || out->dtype == KILN_DTYPE_BF16)))
        return KILN_ETYPE;
    if (kiln_tensor_is_readonly(out) ||
        ((flags & OUT_DENSE) && !kiln_tensor_is_contiguous(out) &&
         !((flags & OUT_CL) && is_channels_last(out))))
        return KILN_EINVAL;
    for (int i = 0; i < out->ndim; i++) /* out must not write one element twice */
        if (out->shape[i] > 1 && out->strides[i] == 0)
            return KILN_EINVAL;
    for (int i = 0; i < nin; i++)
        if (overlap(out, in[i]) && !((flags & IN_PLACE) && same_view(out, in[i])))
            return KILN_EINVAL;
    if (cuda) {
        *be = BACKEND_CUDA;
        return 0;
    }
    if (dev != KILN_DEVICE_CPU || !out->data)
        return KILN_EUNSUPPORTED;
    *be = BACKEND_CPU;
    return 0;
}

/* KILN_ETYPE unless every present tensor of t[0..n-1] holds floats. */
static int check_floats(const kiln_tensor_t *const *t, int n)
{
    for (int i = 0; i < n; i++)
        if (t[i] && !is_float(t[i]))
            return KILN_ETYPE;
    return 0;
}

/* An optional per-channel parameter: NULL, or a float tensor [c]. */
static int check_vec(const kiln_tensor_t *v, int64_t c)
{
    if (!v)
        return 0;
    if (!is_float(v))
        return KILN_ETYPE;
    return v->ndim == 1 && v->shape[0] == c ? 0 : KILN_EINVAL;
}

/* Reads a caller's conv params of any struct_size into a full, defaulted struct. */
static int conv_params(const kiln_conv2d_params_t *p, kiln_conv2d_params_t *r)
{
    memset(r, 0, sizeof *r);
    if (p) {
        if (p->struct_size < sizeof(uint32_t))
            return KILN_EINVAL;
        memcpy(r, p, p->struct_size < sizeof *r ? p->struct_size : sizeof *r);
    }
    int32_t *one[] = {&r->stride_h, &r->stride_w, &r->dilation_h, &r->dilation_w, &r->groups};
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++) {
        if (*one[i] < 0)
            return KILN_EINVAL;
        if (*one[i] == 0)
            *one[i] = 1;
    }
    if (r->pad_top < 0 || r->pad_bottom < 0 || r->pad_left < 0 || r->pad_right < 0)
        return KILN_EINVAL;
    return 0;
}

/* ---- data movement ------------------------------------------------------------------ */

/* out = src for equal shapes; src is x or a view of it. */
static int copy_from(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *src)
{
    backend_t be;
    int rc = check(lane, out, &src, 1, 0, &be);
    if (rc < 0)
        return rc;
    if (!same_shape(out, src))
        return KILN_EINVAL;
    if ((out->dtype != src->dtype && !kiln_dtype_is_float(out->dtype)) ||
        kiln__convert_check(out->dtype, src->dtype) < 0)
        return KILN_ETYPE;
    return DISPATCH(be, kiln__cpu_copy(out, src), kiln__cuda_op_copy(lane, out, src));
}

/* copy_from through a view of x; rc says how making the view went, and its errors other
 * than ENOMEM mean the arguments did not fit x. Releases the view. */
static int copy_view(struct kiln_lane *lane, kiln_tensor_t *out, int rc, kiln_tensor_t *view)
{
    if (rc < 0)
        return rc == KILN_ENOMEM ? rc : KILN_EINVAL;
    rc = copy_from(lane, out, view);
    kiln_tensor_release(view);
    return rc;
}

int kiln_op_contiguous(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x)
{
    return x ? copy_from(lane, out, x) : KILN_EINVAL;
}

int kiln_op_permute(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                    const int *perm)
{
    if (!x || !perm)
        return KILN_EINVAL;
    kiln_tensor_t *view = NULL;
    int rc = kiln_tensor_permute(x, perm, &view);
    return copy_view(lane, out, rc, view);
}

int kiln_op_transpose(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x, int d0,
                      int d1)
{
    if (!x)
        return KILN_EINVAL;
    kiln_tensor_t *view = NULL;
    int rc = kiln_tensor_transpose(x, d0, d1, &view);
    return copy_view(lane, out, rc, view);
}

int kiln_op_slice(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x, int dim,
                  int64_t start)
{
    if (!x || !out || out->ndim != x->ndim)
        return KILN_EINVAL;
    int d = norm_dim(dim, x->ndim);
    if (d < 0)
        return KILN_EINVAL;
    kiln_tensor_t *view = NULL;
    int rc = kiln_tensor_slice(x, d, start, out->shape[d], &view); // x[..., start:+len, ...]
    return copy_view(lane, out, rc, view);
}

/* Checks the concat inputs against out; every piece must fit before anything is copied. */
static int concat_check(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *const *xs,
                        int n, int d, backend_t *be)
{
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        const kiln_tensor_t *x = xs[i];
        int rc = check(lane, out, &x, 1, 0, be);
        if (rc < 0)
            return rc;
        if (x->ndim != out->ndim)
            return KILN_EINVAL;
        for (int j = 0; j < x->ndim; j++)
            if (j != d && x->shape[j] != out->shape[j])
                return KILN_EINVAL;
        if ((out->dtype != x->dtype && !kiln_dtype_is_float(out->dtype)) ||
            kiln__convert_check(out->dtype, x->dtype) < 0)
            return KILN_ETYPE;
        total += x->shape[d];
    }
    return total == out->shape[d] ? 0 : KILN_EINVAL;
}

int kiln_op_concat(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *const *xs,
                   int n, int dim)
{
    if (!out || !xs || n < 1)
        return KILN_EINVAL;
    int d = norm_dim(dim, out->ndim);
    if (d < 0)
        return KILN_EINVAL;
    backend_t be = BACKEND_CPU;
    int rc = concat_check(lane, out, xs, n, d, &be);
    int64_t at = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        int64_t len = xs[i]->shape[d];
        if (len == 0)
            continue;
        kiln_tensor_t *part = NULL; // out[..., at:at+len, ...]
        rc = kiln_tensor_slice(out, d, at, len, &part);
        if (rc == 0)
            rc = DISPATCH(be, kiln__cpu_copy(part, xs[i]), kiln__cuda_op_copy(lane, part, xs[i]));
        kiln_tensor_release(part);
        at += len;
    }
    return rc;
}

/* ---- elementwise -------------------------------------------------------------------- */

static int binary(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *a,
                  const kiln_tensor_t *b, kiln__op_binary_t op)
{
    const kiln_tensor_t *in[2] = {a, b};
    backend_t be;
    int rc = check(lane, out, in, 2, OUT_F32 | IN_PLACE, &be);
    if (rc == 0)
        rc = check_floats(in, 2);
    if (rc < 0)
        return rc;
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    if (out->ndim != nd)
        return KILN_EINVAL;
    for (int i = 0; i < nd; i++) { /* numpy broadcasting, aligned at the last dim */
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1)
            return KILN_EINVAL;
        if (out->shape[i] != (sa == 1 ? sb : sa))
            return KILN_EINVAL;
    }
    return DISPATCH(be, kiln__cpu_binary(out, a, b, op), kiln__cuda_op_binary(lane, out, a, b, op));
}

int kiln_op_add(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *a,
                const kiln_tensor_t *b)
{
    return binary(lane, out, a, b, KILN__OP_BINARY_ADD);
}

int kiln_op_sub(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *a,
                const kiln_tensor_t *b)
{
    return binary(lane, out, a, b, KILN__OP_BINARY_SUB);
}

int kiln_op_mul(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *a,
                const kiln_tensor_t *b)
{
    return binary(lane, out, a, b, KILN__OP_BINARY_MUL);
}

int kiln_op_div(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *a,
                const kiln_tensor_t *b)
{
    return binary(lane, out, a, b, KILN__OP_BINARY_DIV);
}

static int unary(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                 kiln__op_unary_t op, float p0, float p1)
{
    backend_t be;
    int rc = check(lane, out, &x, 1, OUT_F32 | IN_PLACE, &be);
    if (rc == 0)
        rc = check_floats(&x, 1);
    if (rc < 0)
        return rc;
    if (!same_shape(out, x))
        return KILN_EINVAL;
    return DISPATCH(be, kiln__cpu_unary(out, x, op, p0, p1),
                    kiln__cuda_op_unary(lane, out, x, op, p0, p1));
}

int kiln_op_scale(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x, float s)
{
    return unary(lane, out, x, KILN__OP_UNARY_SCALE, s, 0.0f);
}

int kiln_op_add_scalar(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x, float s)
{
    return unary(lane, out, x, KILN__OP_UNARY_ADD_SCALAR, s, 0.0f);
}

int kiln_op_clamp(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x, float lo,
                  float hi)
{
    if (isnan(lo) || isnan(hi) || lo > hi)
        return KILN_EINVAL;
    return unary(lane, out, x, KILN__OP_UNARY_CLAMP, lo, hi);
}

int kiln_op_silu(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x)
{
    return unary(lane, out, x, KILN__OP_UNARY_SILU, 0.0f, 0.0f);
}

int kiln_op_gelu(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x)
{
    return unary(lane, out, x, KILN__OP_UNARY_GELU, 0.0f, 0.0f);
}

int kiln_op_quick_gelu(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x)
{
    return unary(lane, out, x, KILN__OP_UNARY_QUICK_GELU, 0.0f, 0.0f);
}

int kiln_op_geglu(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x)
{
    backend_t be;
    int rc = check(lane, out, &x, 1, OUT_F32, &be);
    if (rc == 0)
        rc = check_floats(&x, 1);
    if (rc < 0)
        return rc;
    int nd = x->ndim;
    if (nd < 1 || out->ndim != nd || x->shape[nd - 1] != 2 * out->shape[nd - 1])
        return KILN_EINVAL;
    for (int i = 0; i < nd - 1; i++)
        if (x->shape[i] != out->shape[i])
            return KILN_EINVAL;
    // [..., 2N] -> [..., N]
    return DISPATCH(be, kiln__cpu_geglu(out, x), kiln__cuda_op_geglu(lane, out, x));
}

/* ---- reductions and normalization ---------------------------------------------------- */

int kiln_op_softmax(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x)
{
    backend_t be;
    int rc = check(lane, out, &x, 1, OUT_F32 | OUT_DENSE | IN_PLACE, &be);
    if (rc == 0)
        rc = check_floats(&x, 1);
    if (rc < 0)
        return rc;
    if (x->ndim < 1 || !same_shape(out, x))
        return KILN_EINVAL;
    return DISPATCH(be, kiln__cpu_softmax(out, x), kiln__cuda_op_softmax(lane, out, x));
}

int kiln_op_layer_norm(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                       const kiln_tensor_t *weight, const kiln_tensor_t *bias, float eps)
{
    const kiln_tensor_t *in[3] = {x, weight, bias};
    int nin = 1;
    if (weight)
        in[nin++] = weight;
    if (bias)
        in[nin++] = bias;
    backend_t be;
    int rc = check(lane, out, in, nin, OUT_F32 | OUT_DENSE | IN_PLACE, &be);
    if (rc == 0)
        rc = check_floats(&x, 1);
    if (rc < 0)
        return rc;
    if (x->ndim < 1 || !same_shape(out, x) || !(eps >= 0.0f) || isinf(eps))
        return KILN_EINVAL;
    int64_t c = x->shape[x->ndim - 1];
    if ((rc = check_vec(weight, c)) < 0 || (rc = check_vec(bias, c)) < 0)
        return rc;
    return DISPATCH(be, kiln__cpu_layer_norm(out, x, weight, bias, eps),
                    kiln__cuda_op_layer_norm(lane, out, x, weight, bias, eps));
}

int kiln_op_group_norm(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                       const kiln_tensor_t *weight, const kiln_tensor_t *bias, int num_groups,
                       float eps, int fuse_silu)
{
    const kiln_tensor_t *in[3] = {x, weight, bias};
    int nin = 1;
    if (weight)
        in[nin++] = weight;
    if (bias)
        in[nin++] = bias;
    backend_t be;
    int rc = check(lane, out, in, nin, OUT_F32 | OUT_DENSE | OUT_CL | IN_PLACE, &be);
    if (rc == 0)
        rc = check_floats(&x, 1);
    if (rc < 0)
        return rc;
    if (x->ndim < 2 || !same_shape(out, x) || !(eps >= 0.0f) || isinf(eps) || num_groups < 1 ||
        x->shape[1] % num_groups != 0)
        return KILN_EINVAL;
    int64_t c = x->shape[1];
    if ((rc = check_vec(weight, c)) < 0 || (rc = check_vec(bias, c)) < 0)
        return rc;
    if (be == BACKEND_CPU) {
        CPU_INTO(out, rc, kiln__cpu_group_norm(o, x, weight, bias, num_groups, eps, fuse_silu != 0));
        return rc;
    }
    return CUDA_CALL(
        kiln__cuda_op_group_norm(lane, out, x, weight, bias, num_groups, eps, fuse_silu != 0));
}

/* ---- products ------------------------------------------------------------------------ */

int kiln_op_matmul(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *a,
                   const kiln_tensor_t *b, int transpose_b)
{
    const kiln_tensor_t *in[2] = {a, b};
    backend_t be;
    int rc = check(lane, out, in, 2, OUT_F32 | OUT_DENSE, &be);
    if (rc == 0)
        rc = check_floats(in, 2);
    if (rc < 0)
        return rc;
    if (a->ndim < 2 || b->ndim < 2)
        return KILN_EINVAL;
    int64_t m = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1];
    int64_t bk = b->shape[b->ndim - (transpose_b ? 1 : 2)];
    int64_t n = b->shape[b->ndim - (transpose_b ? 2 : 1)];
    int na = a->ndim - 2, nb = b->ndim - 2, nd = na > nb ? na : nb;
    if (bk != k || out->ndim != nd + 2 || out->shape[nd] != m || out->shape[nd + 1] != n)
        return KILN_EINVAL;
    for (int i = 0; i < nd; i++) { /* batch dims broadcast like elementwise shapes */
        int ia = i - (nd - na), ib = i - (nd - nb);
        int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
        if ((sa != sb && sa != 1 && sb != 1) || out->shape[i] != (sa == 1 ? sb : sa))
            return KILN_EINVAL;
    }
    // [..., M, K] x [..., K, N]
    return DISPATCH(be, kiln__cpu_matmul(out, a, b, transpose_b != 0),
                    kiln__cuda_op_matmul(lane, out, a, b, transpose_b != 0));
}

/* 0 when t broadcasts to out's shape (numpy's rules, aligned at the last dimension). */
static int check_bcast_to(const kiln_tensor_t *t, const kiln_tensor_t *out)
{
    if (t->ndim > out->ndim)
        return KILN_EINVAL;
    for (int i = 0; i < t->ndim; i++) {
        int64_t st = t->shape[i], so = out->shape[i + out->ndim - t->ndim];
        if (st != so && st != 1)
            return KILN_EINVAL;
    }
    return 0;
}

/* The checks of a fused addend: a float tensor on out's device, not overlapping out,
 * broadcasting to out's shape. */
static int check_add(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *add)
{
    backend_t be;
    int rc = check(lane, out, &add, 1, OUT_F32, &be);
    if (rc == 0)
        rc = check_floats(&add, 1);
    return rc < 0 ? rc : check_bcast_to(add, out);
}

/* kiln_op_linear, plus add when it is not NULL. */
static int linear_impl(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                       const kiln_tensor_t *weight, const kiln_tensor_t *bias,
                       const kiln_tensor_t *add)
{
    const kiln_tensor_t *in[3] = {x, weight, bias};
    backend_t be;
    int rc = check(lane, out, in, bias ? 3 : 2, OUT_F32 | OUT_DENSE, &be);
    if (rc == 0)
        rc = check_floats(in, 3);
    if (rc == 0 && add)
        rc = check_add(lane, out, add);
    if (rc < 0)
        return rc;
    if (x->ndim < 1 || weight->ndim != 2 || out->ndim != x->ndim ||
        x->shape[x->ndim - 1] != weight->shape[1] || out->shape[out->ndim - 1] != weight->shape[0])
        return KILN_EINVAL;
    for (int i = 0; i < x->ndim - 1; i++)
        if (out->shape[i] != x->shape[i])
            return KILN_EINVAL;
    if ((rc = check_vec(bias, weight->shape[0])) < 0)
        return rc;
    // [..., IN] -> [..., OUT]
    if (be == BACKEND_CPU) {
        rc = kiln__cpu_linear(out, x, weight, bias);
        return rc == 0 && add ? kiln__cpu_binary(out, out, add, KILN__OP_BINARY_ADD) : rc;
    }
    return CUDA_CALL(kiln__cuda_op_linear(lane, out, x, weight, bias, add));
}

int kiln_op_linear(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                   const kiln_tensor_t *weight, const kiln_tensor_t *bias)
{
    return linear_impl(lane, out, x, weight, bias, NULL);
}

int kiln_op_linear_add(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                       const kiln_tensor_t *weight, const kiln_tensor_t *bias,
                       const kiln_tensor_t *add)
{
    return add ? linear_impl(lane, out, x, weight, bias, add) : KILN_EINVAL;
}

/* One output extent of a convolution, or -1 when the dilated kernel does not fit the
 * padded input (tested by division first, so huge parameters cannot overflow). */
static int64_t conv_out_size(int64_t in, int64_t pad, int64_t k, int64_t dil, int64_t stride)
{
    int64_t room = in + pad - 1; /* the kernel's reach beyond its first tap */
    if (room < 0 || (k > 1 && dil > room / (k - 1)))
        return -1;
    return (room - dil * (k - 1)) / stride + 1;
}

/* kiln_op_conv2d, plus add when it is not NULL. */
static int conv2d_impl(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                       const kiln_tensor_t *weight, const kiln_tensor_t *bias,
                       const kiln_tensor_t *add, const kiln_conv2d_params_t *params)
{
    const kiln_tensor_t *in[3] = {x, weight, bias};
    kiln_conv2d_params_t p;
    backend_t be;
    int rc = check(lane, out, in, bias ? 3 : 2, OUT_F32 | OUT_DENSE | OUT_CL, &be);
    if (rc == 0)
        rc = check_floats(in, 3);
    if (rc == 0 && add)
        rc = check_add(lane, out, add);
    if (rc == 0)
        rc = conv_params(params, &p);
    if (rc < 0)
        return rc;
    if (x->ndim != 4 || weight->ndim != 4 || out->ndim != 4 || weight->shape[2] < 1 ||
        weight->shape[3] < 1)
        return KILN_EINVAL;
    if (p.groups != 1)
        return KILN_EUNSUPPORTED;
    int64_t oh = conv_out_size(x->shape[2], (int64_t)p.pad_top + p.pad_bottom, weight->shape[2],
                               p.dilation_h, p.stride_h);
    int64_t ow = conv_out_size(x->shape[3], (int64_t)p.pad_left + p.pad_right, weight->shape[3],
                               p.dilation_w, p.stride_w);
    if (x->shape[1] != weight->shape[1] || oh < 1 || ow < 1 || out->shape[0] != x->shape[0] ||
        out->shape[1] != weight->shape[0] || out->shape[2] != oh || out->shape[3] != ow)
        return KILN_EINVAL;
    if ((rc = check_vec(bias, weight->shape[0])) < 0)
        return rc;
    kiln__conv2d_geom_t g = {p.stride_h, p.stride_w,   p.pad_top,
                             p.pad_left, p.dilation_h, p.dilation_w};
    // [N, C, H, W] -> [N, OC, OH, OW]
    if (be == BACKEND_CPU) {
        CPU_INTO(out, rc, kiln__cpu_conv2d(o, x, weight, bias, &g));
        return rc == 0 && add ? kiln__cpu_binary(out, out, add, KILN__OP_BINARY_ADD) : rc;
    }
    return CUDA_CALL(kiln__cuda_op_conv2d(lane, out, x, weight, bias, add, &g));
}

int kiln_op_conv2d(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                   const kiln_tensor_t *weight, const kiln_tensor_t *bias,
                   const kiln_conv2d_params_t *params)
{
    return conv2d_impl(lane, out, x, weight, bias, NULL, params);
}

int kiln_op_conv2d_add(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                       const kiln_tensor_t *weight, const kiln_tensor_t *bias,
                       const kiln_tensor_t *add, const kiln_conv2d_params_t *params)
{
    return add ? conv2d_impl(lane, out, x, weight, bias, add, params) : KILN_EINVAL;
}

int kiln_op_attention(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *q,
                      const kiln_tensor_t *k, const kiln_tensor_t *v, int heads, float scale)
{
    const kiln_tensor_t *in[3] = {q, k, v};
    backend_t be;
    int rc = check(lane, out, in, 3, OUT_F32 | OUT_DENSE, &be);
    if (rc == 0)
        rc = check_floats(in, 3);
    if (rc < 0)
        return rc;
    if (q->ndim != 3 || k->ndim != 3 || v->ndim != 3 || out->ndim != 3 || heads < 1 ||
        !isfinite(scale))
        return KILN_EINVAL;
    int64_t b = q->shape[0], lq = q->shape[1], lk = k->shape[1], w = q->shape[2];
    int64_t wv = v->shape[2];
    if (k->shape[0] != b || v->shape[0] != b || v->shape[1] != lk || k->shape[2] != w || lk < 1 ||
        w < heads || w % heads != 0 || wv % heads != 0)
        return KILN_EINVAL;
    if (out->shape[0] != b || out->shape[1] != lq || out->shape[2] != wv)
        return KILN_EINVAL;
    if (scale == 0.0f)
        scale = (float)(1.0 / sqrt((double)(w / heads)));
    // [B, LQ, H*DV]
    return DISPATCH(be, kiln__cpu_attention(out, q, k, v, heads, scale),
                    kiln__cuda_op_attention(lane, out, q, k, v, heads, scale));
}

/* ---- resampling and embeddings ------------------------------------------------------ */

int kiln_op_interpolate(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                        kiln_interp_mode_t mode)
{
    backend_t be;
    int rc = check(lane, out, &x, 1, OUT_F32 | OUT_DENSE | OUT_CL, &be);
    if (rc == 0)
        rc = check_floats(&x, 1);
    if (rc < 0)
        return rc;
    if (mode != KILN_INTERP_MODE_NEAREST && mode != KILN_INTERP_MODE_NEAREST_EXACT &&
        mode != KILN_INTERP_MODE_BILINEAR)
        return KILN_EINVAL;
    int nd = x->ndim;
    if (nd < 3 || out->ndim != nd)
        return KILN_EINVAL;
    for (int i = 0; i < nd - 2; i++)
        if (out->shape[i] != x->shape[i])
            return KILN_EINVAL;
    for (int i = nd - 2; i < nd; i++)
        if (x->shape[i] < 1 || out->shape[i] < 1)
            return KILN_EINVAL;
    // [..., H, W] -> [..., OH, OW]
    if (be == BACKEND_CPU) {
        CPU_INTO(out, rc, kiln__cpu_interpolate(o, x, mode));
        return rc;
    }
    return CUDA_CALL(kiln__cuda_op_interpolate(lane, out, x, mode));
}

int kiln_op_timestep_embedding(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *t,
                               float max_period)
{
    backend_t be;
    int rc = check(lane, out, &t, 1, OUT_F32 | OUT_DENSE, &be);
    if (rc == 0)
        rc = check_floats(&t, 1);
    if (rc < 0)
        return rc;
    if (max_period == 0.0f)
        max_period = 10000.0f;
    if (!(max_period > 0.0f) || isinf(max_period) || t->ndim != 1 || out->ndim != 2 ||
        out->shape[0] != t->shape[0])
        return KILN_EINVAL;
    // [N] -> [N, DIM]
    return DISPATCH(be, kiln__cpu_timestep_embedding(out, t, max_period),
                    kiln__cuda_op_timestep_embedding(lane, out, t, max_period));
}

int kiln_op_embedding(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *weight,
                      const kiln_tensor_t *ids)
{
    const kiln_tensor_t *in[2] = {weight, ids};
    backend_t be;
    int rc = check(lane, out, in, 2, OUT_F32 | OUT_DENSE, &be);
    if (rc < 0)
        return rc;
    if (!is_float(weight) || (ids->dtype != KILN_DTYPE_I32 && ids->dtype != KILN_DTYPE_I64))
        return KILN_ETYPE;
    if (weight->ndim != 2 || out->ndim != ids->ndim + 1 ||
        out->shape[ids->ndim] != weight->shape[1])
        return KILN_EINVAL;
    for (int i = 0; i < ids->ndim; i++)
        if (out->shape[i] != ids->shape[i])
            return KILN_EINVAL;
    // [...] -> [..., D]
    return DISPATCH(be, kiln__cpu_embedding(out, weight, ids),
                    kiln__cuda_op_embedding(lane, out, weight, ids));
}
