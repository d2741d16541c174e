/* The CUDA backend's entry points for the op library: kernels/ops.c checks every argument
 * and then calls these for tensors on a CUDA device. Each one picks the stream (the
 * lane's, the calling CUDA lane worker's, or the device's lane-less stream, where the
 * call then waits for its work), orders the stream after the inputs' last writers, and
 * hands descriptors to the kernels of kernels/cuda. Returns 0 or a negative KILN_E* code
 * (KILN_EDEVICE, KILN_EDEVICE_OOM, KILN_ERANGE for embedding ids). Any thread.
 * Only in builds with the CUDA backend. */
#ifndef KILN_CUDA_OPS_H
#define KILN_CUDA_OPS_H

#ifdef KILN_HAVE_CUDA

#include <kiln/ops.h>

#include "kernels/cpu/cpu_ops.h"

int kiln__cuda_op_copy(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x);
int kiln__cuda_op_binary(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *a,
                         const kiln_tensor_t *b, kiln__op_binary_t op);
int kiln__cuda_op_unary(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                        kiln__op_unary_t op, float p0, float p1);
int kiln__cuda_op_geglu(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x);
int kiln__cuda_op_softmax(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x);
int kiln__cuda_op_layer_norm(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                             const kiln_tensor_t *w, const kiln_tensor_t *b, float eps);
int kiln__cuda_op_group_norm(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                             const kiln_tensor_t *w, const kiln_tensor_t *b, int groups,
                             float eps, int fuse_silu);
int kiln__cuda_op_matmul(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *a,
                         const kiln_tensor_t *b, int transpose_b);
/* linear and conv2d: add (NULL, or broadcasting to out) is summed into out. */
int kiln__cuda_op_linear(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                         const kiln_tensor_t *w, const kiln_tensor_t *b, const kiln_tensor_t *add);
int kiln__cuda_op_conv2d(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *x,
                         const kiln_tensor_t *w, const kiln_tensor_t *b, const kiln_tensor_t *add,
                         const kiln__conv2d_geom_t *g);
int kiln__cuda_op_attention(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *q,
                            const kiln_tensor_t *k, const kiln_tensor_t *v, int heads,
                            float scale);
int kiln__cuda_op_interpolate(struct kiln_lane *lane, kiln_tensor_t *out,
                              const kiln_tensor_t *x, kiln_interp_mode_t mode);
int kiln__cuda_op_timestep_embedding(struct kiln_lane *lane, kiln_tensor_t *out,
                                     const kiln_tensor_t *t, float max_period);
int kiln__cuda_op_embedding(struct kiln_lane *lane, kiln_tensor_t *out, const kiln_tensor_t *w,
                            const kiln_tensor_t *ids);

#endif /* KILN_HAVE_CUDA */
#endif
