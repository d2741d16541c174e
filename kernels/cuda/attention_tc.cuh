/* What attention.cu and attention_tc.cu share: the arguments of one attention call as the
 * kernels see them, and the entry point of the tensor-core (F16 / BF16) kernel. CUDA C++
 * only. */
#ifndef KILN_KERNELS_CUDA_ATTENTION_TC_CUH
#define KILN_KERNELS_CUDA_ATTENTION_TC_CUH

#include "kernels/cuda/common.cuh"

namespace kiln_cuda {

/* One attention call: q [B, LQ, H*D], k [B, LK, H*D], v [B, LK, H*DV] with unit column
 * stride, the given batch and row strides (elements), and a dense out [B, LQ, H*DV]. */
struct attn_args {
    const void *q, *k, *v;
    void *o;
    int qdt, kdt, vdt, odt;
    int64_t qbs, qrs, kbs, krs, vbs, vrs; /* batch and row strides (elements) */
    int64_t lq, lk, heads;
    int d, dv;
    float scale; /* already resolved: never 0 */
};

/* Enqueues the tensor-core kernel for a (nb batches) on stream s and returns 0, or
 * KILN_EDEVICE when the launch failed. Returns KILN_EUNSUPPORTED, enqueuing nothing, when
 * the call does not suit it: q, k, v not all F16 or all BF16, d != dv or a head width
 * without an instance (32, 40, 64, 80, 128, 160), a scale <= 0, or element pairs not
 * 4-byte aligned. Any thread; the launch is ordered on s only. */
int attention_tc(const attn_args &a, int64_t nb, cudaStream_t s);

} // namespace kiln_cuda

#endif
