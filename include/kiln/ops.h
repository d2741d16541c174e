/* The op library: tensor operations that model code (CLIP, UNet, VAE, samplers) is built
 * from. One API; each op runs on the device that holds its tensors (host memory only for
 * now, the CUDA implementations follow behind the same calls).
 *
 * Every op has the shape
 *
 *   int kiln_op_<name>(struct kiln_lane *lane, kiln_tensor_t *out, <inputs...>, <params>);
 *
 * and writes its result into `out`, a tensor the caller allocated with the right shape:
 *
 *   int64_t shape[3] = {2, 77, 768};
 *   kiln_tensor_t *h = kiln_tensor_new(KILN_DTYPE_F32, 3, shape);      // [B, L, C]
 *   int rc = kiln_op_layer_norm(lane, h, x, ln_w, ln_b, 1e-5f);      // h = LN(x)
 *   if (rc == 0)
 *       rc = kiln_op_linear(lane, q, h, wq, NULL);                    // [B, L, C']
 *
 * Common rules (each op's comment adds its own):
 *  - Return 0 or a negative KILN_E* code. Arguments are checked before anything runs, and
 *    a call refused for them has written nothing to `out`: KILN_EINVAL for a NULL tensor,
 *    a shape that does not fit, a bad parameter, a read-only `out`, or an `out` that
 *    overlaps an input where that is not allowed; KILN_ETYPE for a dtype the op does not
 *    take; KILN_EUNSUPPORTED for tensors on a device without an implementation, tensors
 *    on different devices, or a parameter value not implemented (conv groups > 1). Bad
 *    shapes never crash. KILN_ENOMEM (scratch memory ran out) may leave `out` partly
 *    written.
 *  - dtypes: computation is float32. `out` must be F32 unless the op says otherwise.
 *    Float inputs may be F32, F16, BF16 or F64: anything but F32 is converted to F32
 *    on entry (exactly for F16/BF16 weights, at the cost of a temporary copy). On a CUDA
 *    device `out` may also be F16 or BF16 (computation stays float32, rounded once on
 *    store), and GEMMs whose inputs are both F16 (or both BF16) run on tensor cores with
 *    float32 accumulation.
 *  - Layout: inputs may be strided views (permuted, sliced, transposed). `out` may be a
 *    strided view for the elementwise and data-movement ops; the others need a contiguous
 *    `out` (KILN_EINVAL otherwise), except that conv2d, group_norm and interpolate also
 *    accept a channels-last `out` (4-D [N, C, H, W] dense in N, H, W, C order, as
 *    torch.channels_last), the layout GPU convolutions prefer. The elementwise ops (add ... quick_gelu, not geglu),
 *    softmax and the norms may run in place: `out` may be the very same elements as an
 *    input (same address, shape and strides); any other overlap between `out` and an
 *    input is refused.
 *  - lane: NULL runs the op on the calling thread. A CPU lane also runs it synchronously
 *    on the calling thread (its worker); a device lane enqueues it on the lane's stream.
 *    The lane's device must be the tensors' device. NULL with device tensors enqueues on
 *    the calling CUDA lane worker's stream, or, from any other thread, runs on the
 *    device's lane-less stream and waits for the result.
 *  - Threads: an op may be called from any thread; calls that write the same `out` race.
 *
 * Node packs (compiled with KILN_PLUGIN) reach these functions through the host table:
 * KILN_OPS_API_MAP lists them for node.h, which generates the table entries and the
 * inline wrappers, so a pack calls kiln_op_add(...) exactly as the engine does. */
#ifndef KILN_OPS_H
#define KILN_OPS_H

#include <stdint.h>

#include "kiln/error.h"
#include "kiln/export.h"
#include "kiln/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The lane type of node.h (declared there as kiln_lane_t); repeated here as a plain
 * struct tag so that this header stands on its own. */
struct kiln_lane;

/* Parameters of kiln_op_conv2d. Zero means the default for every field, so an
 * initializer only names what differs from a plain 1-stride, unpadded convolution:
 *   kiln_conv2d_params_t p = {KILN_CONV2D_PARAMS_INIT, .stride_h = 2, .stride_w = 2}; */
typedef struct kiln_conv2d_params {
    uint32_t struct_size; /* sizeof(kiln_conv2d_params_t) as the caller saw it */
    int32_t stride_h;     /* output step in input rows; 0 = 1 */
    int32_t stride_w;     /* output step in input columns; 0 = 1 */
    int32_t pad_top;      /* zero rows added above the input */
    int32_t pad_bottom;   /* zero rows added below (torch padding=p sets top = bottom = p) */
    int32_t pad_left;     /* zero columns added left */
    int32_t pad_right;    /* zero columns added right */
    int32_t dilation_h;   /* spacing of kernel taps in rows; 0 = 1 */
    int32_t dilation_w;   /* spacing of kernel taps in columns; 0 = 1 */
    int32_t groups;       /* 0 = 1; only 1 is implemented (KILN_EUNSUPPORTED otherwise) */
} kiln_conv2d_params_t;

#define KILN_CONV2D_PARAMS_INIT .struct_size = sizeof(kiln_conv2d_params_t)

/* Resampling modes of kiln_op_interpolate, named after torch's F.interpolate modes. */
typedef enum kiln_interp_mode {
    KILN_INTERP_MODE_NEAREST = 0,       /* src = floor(dst * in / out), as mode="nearest" */
    KILN_INTERP_MODE_NEAREST_EXACT = 1, /* src = floor((dst + 0.5) * in / out) */
    KILN_INTERP_MODE_BILINEAR = 2       /* align_corners=False, no antialias */
} kiln_interp_mode_t;

/* ---- the op table ---------------------------------------------------------------------- *
 * XX(return type, name without the kiln_ prefix, (parameters), (arguments)). The 1.0 map
 * never changes; later ops get maps of their own, which node.h appends to the end of the
 * host table. Contracts are on the declarations below. */
/* clang-format off */
#define KILN_OPS_API_MAP(XX)                                                                \
    /* data movement: any dtype to the same dtype, or to a float out */                     \
    XX(int, op_contiguous, (struct kiln_lane *lane, kiln_tensor_t *out,                     \
       const kiln_tensor_t *x), (lane, out, x))                                             \
    XX(int, op_permute, (struct kiln_lane *lane, kiln_tensor_t *out,                        \
       const kiln_tensor_t *x, const int *perm), (lane, out, x, perm))                      \
    XX(int, op_transpose, (struct kiln_lane *lane, kiln_tensor_t *out,                      \
       const kiln_tensor_t *x, int d0, int d1), (lane, out, x, d0, d1))                     \
    XX(int, op_slice, (struct kiln_lane *lane, kiln_tensor_t *out,                          \
       const kiln_tensor_t *x, int dim, int64_t start), (lane, out, x, dim, start))         \
    XX(int, op_concat, (struct kiln_lane *lane, kiln_tensor_t *out,                         \
       const kiln_tensor_t *const *xs, int n, int dim), (lane, out, xs, n, dim))            \
    /* elementwise */                                                                       \
    XX(int, op_add, (struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *a,    \
       const kiln_tensor_t *b), (lane, out, a, b))                                          \
    XX(int, op_sub, (struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *a,    \
       const kiln_tensor_t *b), (lane, out, a, b))                                          \
    XX(int, op_mul, (struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *a,    \
       const kiln_tensor_t *b), (lane, out, a, b))                                          \
    XX(int, op_div, (struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *a,    \
       const kiln_tensor_t *b), (lane, out, a, b))                                          \
    XX(int, op_scale, (struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,  \
       float s), (lane, out, x, s))                                                         \
    XX(int, op_add_scalar, (struct kiln_lane *lane, kiln_tensor_t *out,                     \
       const kiln_tensor_t *x, float s), (lane, out, x, s))                                 \
    XX(int, op_clamp, (struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,  \
       float lo, float hi), (lane, out, x, lo, hi))                                         \
    XX(int, op_silu, (struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x),  \
       (lane, out, x))                                                                      \
    XX(int, op_gelu, (struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x),  \
       (lane, out, x))                                                                      \
    XX(int, op_quick_gelu, (struct kiln_lane *lane, kiln_tensor_t *out,                     \
       const kiln_tensor_t *x), (lane, out, x))                                             \
    XX(int, op_geglu, (struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x), \
       (lane, out, x))                                                                      \
    /* reductions and normalization */                                                      \
    XX(int, op_softmax, (struct kiln_lane *lane, kiln_tensor_t *out,                        \
       const kiln_tensor_t *x), (lane, out, x))                                             \
    XX(int, op_layer_norm, (struct kiln_lane *lane, kiln_tensor_t *out,                     \
       const kiln_tensor_t *x, const kiln_tensor_t *weight, const kiln_tensor_t *bias,      \
       float eps), (lane, out, x, weight, bias, eps))                                       \
    XX(int, op_group_norm, (struct kiln_lane *lane, kiln_tensor_t *out,                     \
       const kiln_tensor_t *x, const kiln_tensor_t *weight, const kiln_tensor_t *bias,      \
       int num_groups, float eps, int fuse_silu),                                           \
       (lane, out, x, weight, bias, num_groups, eps, fuse_silu))                            \
    /* products */                                                                          \
    XX(int, op_matmul, (struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *a, \
       const kiln_tensor_t *b, int transpose_b), (lane, out, a, b, transpose_b))            \
    XX(int, op_linear, (struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x, \
       const kiln_tensor_t *weight, const kiln_tensor_t *bias), (lane, out, x, weight, bias)) \
    XX(int, op_conv2d, (struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x, \
       const kiln_tensor_t *weight, const kiln_tensor_t *bias,                              \
       const kiln_conv2d_params_t *params), (lane, out, x, weight, bias, params))           \
    XX(int, op_attention, (struct kiln_lane *lane, kiln_tensor_t *out,                      \
       const kiln_tensor_t *q, const kiln_tensor_t *k, const kiln_tensor_t *v, int heads,   \
       float scale), (lane, out, q, k, v, heads, scale))                                    \
    /* resampling and embeddings */                                                         \
    XX(int, op_interpolate, (struct kiln_lane *lane, kiln_tensor_t *out,                    \
       const kiln_tensor_t *x, kiln_interp_mode_t mode), (lane, out, x, mode))              \
    XX(int, op_timestep_embedding, (struct kiln_lane *lane, kiln_tensor_t *out,             \
       const kiln_tensor_t *t, float max_period), (lane, out, t, max_period))               \
    XX(int, op_embedding, (struct kiln_lane *lane, kiln_tensor_t *out,                      \
       const kiln_tensor_t *weight, const kiln_tensor_t *ids), (lane, out, weight, ids))

/* Since ABI 1.2: products with a fused sum. node.h places these after every older entry
 * of the host table (so older offsets hold); a pack checks KILN_API_HAS first. */
#define KILN_OPS_API_FUSED_MAP(XX)                                                          \
    XX(int, op_linear_add, (struct kiln_lane *lane, kiln_tensor_t *out,                     \
       const kiln_tensor_t *x, const kiln_tensor_t *weight, const kiln_tensor_t *bias,      \
       const kiln_tensor_t *add), (lane, out, x, weight, bias, add))                        \
    XX(int, op_conv2d_add, (struct kiln_lane *lane, kiln_tensor_t *out,                     \
       const kiln_tensor_t *x, const kiln_tensor_t *weight, const kiln_tensor_t *bias,      \
       const kiln_tensor_t *add, const kiln_conv2d_params_t *params),                       \
       (lane, out, x, weight, bias, add, params))
/* clang-format on */

#ifndef KILN_PLUGIN
/* ---- data movement --------------------------------------------------------------------
 * These copy elements from a (possibly strided) view into `out`. `out` has x's dtype, or
 * any float dtype (the values are converted, rounding to nearest even); other dtype pairs
 * give KILN_ETYPE. `out` must not overlap the source. */

/* out = x, element by element in index order. x: any shape; out: the same shape (often a
 * fresh contiguous tensor, which makes this torch's .contiguous()). */
KILN_API int kiln_op_contiguous(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x);

/* out = x.permute(perm) made dense. perm: ndim(x) entries, a permutation of 0..ndim-1
 * (negative entries count from the end); out: [x.shape[perm[0]], ...]. */
KILN_API int kiln_op_permute(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                             const int *perm);

/* out = x.transpose(d0, d1) made dense (negative dims count from the end). */
KILN_API int kiln_op_transpose(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                               int d0, int d1);

/* out = x.narrow(dim, start, out.shape[dim]): out has x's shape except along dim, where
 * its size is the length taken; start + length must not pass x's size. */
KILN_API int kiln_op_slice(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                           int dim, int64_t start);

/* out = torch.cat(xs[0..n-1], dim). xs: n >= 1 tensors of one ndim whose shapes agree
 * except along dim (entries of size 0 along dim are fine); out: their shape with the sum
 * of the sizes along dim. The xs may have different dtypes when out is a float dtype. */
KILN_API int kiln_op_concat(struct kiln_lane *lane, kiln_tensor_t *out,
                            const kiln_tensor_t *const *xs, int n, int dim);

/* ---- elementwise -----------------------------------------------------------------------
 * Binary ops broadcast as numpy does: shapes align at the last dimension, and a dimension
 * of size 1 (or a missing leading one) stretches to the other operand's size. out has the
 * broadcast shape. All may run in place (out == a or out == b when that input has out's
 * shape and strides). */

/* out = a + b */
KILN_API int kiln_op_add(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *a,
                         const kiln_tensor_t *b);
/* out = a - b */
KILN_API int kiln_op_sub(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *a,
                         const kiln_tensor_t *b);
/* out = a * b */
KILN_API int kiln_op_mul(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *a,
                         const kiln_tensor_t *b);
/* out = a / b (IEEE: x / 0 is ±inf or NaN, as in torch) */
KILN_API int kiln_op_div(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *a,
                         const kiln_tensor_t *b);

/* out = x * s; x and out of one shape. */
KILN_API int kiln_op_scale(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                           float s);

/* out = x + s; x and out of one shape. */
KILN_API int kiln_op_add_scalar(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                                float s);

/* out = min(max(x, lo), hi), as torch.clamp: NaN stays NaN. lo may be -INFINITY and hi
 * INFINITY for a one-sided clamp; lo > hi or a NaN bound is KILN_EINVAL. */
KILN_API int kiln_op_clamp(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                           float lo, float hi);

/* out = x * sigmoid(x) (torch's F.silu). x and out of one shape. */
KILN_API int kiln_op_silu(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x);

/* out = 0.5 x (1 + erf(x / sqrt 2)), torch's default F.gelu (not the tanh form). */
KILN_API int kiln_op_gelu(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x);

/* out = x * sigmoid(1.702 x), CLIP's quick_gelu. */
KILN_API int kiln_op_quick_gelu(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x);

/* SD's GEGLU after its projection: x [..., 2N] is split in half along the last dimension,
 * the FIRST half the value and the SECOND the gate; out [..., N] = value * gelu(gate).
 * Not in place (out is half as wide). */
KILN_API int kiln_op_geglu(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x);

/* ---- reductions and normalization ------------------------------------------------------
 * Statistics accumulate in double; in place is allowed (out may be x). */

/* out = softmax(x) over the last dimension, numerically stable (the row maximum is
 * subtracted first). x and out of one shape, ndim >= 1. A row of -inf gives NaN, as in
 * torch. */
KILN_API int kiln_op_softmax(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x);

/* torch's F.layer_norm over the last dimension C: x [..., C]; weight [C] and bias [C] are
 * each optional (NULL: 1 and 0); out [..., C] = (x - mean) / sqrt(var + eps) * w + b with
 * the biased variance. eps >= 0. */
KILN_API int kiln_op_layer_norm(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                                const kiln_tensor_t *weight, const kiln_tensor_t *bias, float eps);

/* torch's F.group_norm: x [N, C, *] (ndim >= 2, any trailing spatial dims); the C
 * channels form num_groups groups of C / num_groups channels (C % num_groups == 0), each
 * normalized over its channels and all spatial positions with the biased variance, then
 * scaled per channel by weight [C] and shifted by bias [C] (each optional). fuse_silu
 * non-zero applies silu to the result (GroupNorm followed by SiLU, as SD's blocks do).
 * out: x's shape. */
KILN_API int kiln_op_group_norm(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                                const kiln_tensor_t *weight, const kiln_tensor_t *bias,
                                int num_groups, float eps, int fuse_silu);

/* ---- products --------------------------------------------------------------------------
 * GEMMs accumulate in float32 (BLAS when the build has it); out must not overlap inputs. */

/* torch.matmul for ndim >= 2: a [..., M, K], b [..., K, N] (or [..., N, K] when
 * transpose_b is non-zero, i.e. a @ b^T); the batch dimensions (all but the last two)
 * broadcast as numpy does. out [broadcast batch..., M, N]. */
KILN_API int kiln_op_matmul(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *a,
                            const kiln_tensor_t *b, int transpose_b);

/* torch's F.linear: x [..., IN] (ndim >= 1), weight [OUT, IN], bias [OUT] or NULL;
 * out [..., OUT] = x W^T + b. F16/BF16 weights are widened to F32 per call. */
KILN_API int kiln_op_linear(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                            const kiln_tensor_t *weight, const kiln_tensor_t *bias);

/* torch's F.conv2d with zero padding: x [N, C, H, W], weight [OC, C, KH, KW], bias [OC]
 * or NULL, params NULL for the defaults (see kiln_conv2d_params_t). out [N, OC, OH, OW]
 * with OH = (H + pad_top + pad_bottom - dilation_h (KH - 1) - 1) / stride_h + 1 (floor;
 * must be >= 1) and OW likewise. Only groups == 1 is implemented. Asymmetric padding
 * covers the VAE's F.pad(x, (0, 1, 0, 1)) before its stride-2 convolution. */
KILN_API int kiln_op_conv2d(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                            const kiln_tensor_t *weight, const kiln_tensor_t *bias,
                            const kiln_conv2d_params_t *params);

/* kiln_op_linear followed by out += add, where add broadcasts to out's shape (a residual
 * of out's shape, typically). On a GPU the sum happens in the GEMM's epilogue, which saves
 * the separate elementwise pass over out. add must not overlap out. */
KILN_API int kiln_op_linear_add(struct kiln_lane *lane, kiln_tensor_t *out,
                                const kiln_tensor_t *x, const kiln_tensor_t *weight,
                                const kiln_tensor_t *bias, const kiln_tensor_t *add);

/* kiln_op_conv2d followed by out += add, where add broadcasts to out's shape: a residual
 * [N, OC, OH, OW], or a per-sample channel shift [N, OC, 1, 1] such as a UNet block's time
 * embedding. On a GPU out starts as bias + add and the convolution accumulates onto it.
 * add must not overlap out. */
KILN_API int kiln_op_conv2d_add(struct kiln_lane *lane, kiln_tensor_t *out,
                                const kiln_tensor_t *x, const kiln_tensor_t *weight,
                                const kiln_tensor_t *bias, const kiln_tensor_t *add,
                                const kiln_conv2d_params_t *params);

/* Multi-head scaled dot-product attention without a mask (self attention when k, v come
 * from q's sequence, cross attention otherwise): q [B, LQ, H*D], k [B, LK, H*D],
 * v [B, LK, H*DV], heads = H >= 1 dividing both widths; out [B, LQ, H*DV] with head h
 * reading and writing columns h*D .. h*D+D-1 (as SD's "b n (h d)" layout).
 * out = softmax(scale * Q K^T) V per batch and head; scale 0 means 1 / sqrt(D). The scores
 * are computed a block of query rows at a time, so memory stays O(block * LK): an LQ x LK
 * score matrix is never allocated. */
KILN_API int kiln_op_attention(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *q,
                               const kiln_tensor_t *k, const kiln_tensor_t *v, int heads,
                               float scale);

/* ---- resampling and embeddings -------------------------------------------------------- */

/* torch's F.interpolate over the last two dimensions: x [..., H, W] (ndim >= 3, e.g.
 * [N, C, H, W]); out [..., OH, OW] with the same leading dimensions, the output size
 * given by out's shape (F.interpolate(size=(OH, OW)); an integer scale_factor gives the
 * same result as the size it implies). Scales are in/out computed in float, as torch. */
KILN_API int kiln_op_interpolate(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                                 kiln_interp_mode_t mode);

/* The sinusoidal timestep embedding of ComfyUI's openaimodel timestep_embedding (cos half
 * first): t [N] (float timesteps); out [N, DIM]; half = DIM / 2,
 * freq[i] = exp(-ln(max_period) * i / half), out[n] = [cos(t f_0..), sin(t f_0..)] and a
 * zero last column when DIM is odd. max_period 0 means 10000 (SD's value); else > 0. */
KILN_API int kiln_op_timestep_embedding(struct kiln_lane *lane, kiln_tensor_t *out,
                                        const kiln_tensor_t *t, float max_period);

/* Row lookup (torch's F.embedding): weight [V, D] (float), ids of any shape [...] with
 * dtype I32 or I64; out [..., D] with out[i..] = weight[ids[i..]]. An id outside 0..V-1
 * is KILN_ERANGE (checked before anything is written). */
KILN_API int kiln_op_embedding(struct kiln_lane *lane, kiln_tensor_t *out,
                               const kiln_tensor_t *weight, const kiln_tensor_t *ids);
#endif /* KILN_PLUGIN */

#ifdef __cplusplus
}
#endif
#endif
