/* Helpers for the GPU tests (tests/gpu, ctest label `gpu`, run on a machine with a CUDA
 * device only): random host tensors mirrored on the device with the same view layout,
 * output poisoning (NaN bytes, so an element the kernel never wrote fails the
 * comparison), downloads, and checks of a device result against the CPU backend's
 * result for the same inputs. Built on the op tests' helpers (tests/unit). */
#ifndef KILN_TESTS_GPU_COMMON_H
#define KILN_TESTS_GPU_COMMON_H

#include <cuda_runtime_api.h>
#include <kiln/ops.h>
#include <kiln/tensor.h>

#include "../unit/test_ops_common.h"
#include "runtime/tensor_int.h"

/* A shape as a plain array (SHAPE gives "ndim, array"). */
#define ARR(...) ((const int64_t[]){__VA_ARGS__})

/* The device every test runs on: the first CUDA device (kiln id 1). */
#define GPU 1

/* Fails the test unless a CUDA device is present. */
static inline void need_gpu(void)
{
    if (kiln_device_count() < 1)
        kiln_test_fail(__FILE__, __LINE__, "no CUDA device (these tests need a GPU)");
}

/* A device copy of host tensor h (contiguous). */
static inline kiln_tensor_t *to_gpu(const kiln_tensor_t *h)
{
    kiln_tensor_t *d = NULL;
    ASSERT_EQ_INT(kiln_tensor_to_device(h, GPU, &d), 0);
    return d;
}

/* A host copy of device tensor d. */
static inline kiln_tensor_t *to_host(const kiln_tensor_t *d)
{
    kiln_tensor_t *h = NULL;
    ASSERT_EQ_INT(kiln_tensor_to_device(d, KILN_DEVICE_CPU, &h), 0);
    return h;
}

/* A random tensor pair: *host (a host view with trand's layouts: 0 contiguous, 1 permuted,
 * 2 sliced) and *dev, the same view over a device copy of the same storage. */
static inline void pair_rand(kiln_dtype_t dt, int layout, double scale, int ndim,
                             const int64_t *shape, kiln_tensor_t **host, kiln_tensor_t **dev)
{
    int64_t base_shape[KILN_TENSOR_MAX_DIMS] = {0};
    int perm[KILN_TENSOR_MAX_DIMS];
    for (int d = 0; d < ndim; d++) {
        base_shape[d] = layout == 1 ? shape[ndim - 1 - d] : shape[d] + (layout == 2);
        perm[d] = ndim - 1 - d;
    }
    kiln_tensor_t *hb = tnew(dt, ndim, base_shape);
    fill_random(hb, scale);
    kiln_tensor_t *db = to_gpu(hb);
    if (layout == 0) {
        *host = hb;
        *dev = db;
        return;
    }
    if (layout == 1) {
        ASSERT_EQ_INT(kiln_tensor_permute(hb, perm, host), 0);
        ASSERT_EQ_INT(kiln_tensor_permute(db, perm, dev), 0);
    } else {
        kiln_tensor_t *hc = hb, *dc = db;
        kiln_tensor_retain(hc);
        kiln_tensor_retain(dc);
        for (int d = 0; d < ndim; d++) {
            kiln_tensor_t *hn = NULL, *dn = NULL;
            ASSERT_EQ_INT(kiln_tensor_slice(hc, d, 1, shape[d], &hn), 0);
            ASSERT_EQ_INT(kiln_tensor_slice(dc, d, 1, shape[d], &dn), 0);
            kiln_tensor_release(hc);
            kiln_tensor_release(dc);
            hc = hn;
            dc = dn;
        }
        *host = hc;
        *dev = dc;
    }
    kiln_tensor_release(hb);
    kiln_tensor_release(db);
}

/* A fresh device tensor whose bytes are all 0xff: NaN in every float dtype. */
static inline kiln_tensor_t *gpu_poisoned(kiln_dtype_t dt, int ndim, const int64_t *shape)
{
    kiln_tensor_t *t = NULL;
    ASSERT_EQ_INT(kiln_tensor_new_on(GPU, dt, ndim, shape, &t), 0);
    ASSERT_EQ_INT(kiln_tensor_sync(t), 0);
    ASSERT_EQ_INT(cudaMemset(kiln__tensor_ptr(t), 0xff, t->storage->bytes), cudaSuccess);
    ASSERT_EQ_INT(cudaDeviceSynchronize(), cudaSuccess);
    return t;
}

/* Compares device tensor got with host tensor want (the CPU backend's result) under the
 * relative bound of CHECK_CLOSE. */
static inline void check_gpu_at(const char *file, int line, const kiln_tensor_t *got,
                                const kiln_tensor_t *want, double rtol)
{
    kiln_tensor_t *h = NULL;
    if (kiln_tensor_to_device(got, KILN_DEVICE_CPU, &h) != 0)
        kiln_test_fail(file, line, "download failed");
    if (kiln_tensor_numel(h) != kiln_tensor_numel(want))
        kiln_test_fail(file, line, "numel %lld vs %lld", (long long)kiln_tensor_numel(h),
                       (long long)kiln_tensor_numel(want));
    double *ref = to_doubles(want);
    check_close_at(file, line, h, ref, rtol);
    free(ref);
    kiln_tensor_release(h);
}
#define CHECK_GPU(got, want, rtol) check_gpu_at(__FILE__, __LINE__, (got), (want), (rtol))

/* Relative bounds: float32 kernels against the float32 CPU reference; results stored as
 * F16 / BF16 carry that format's rounding on top. */
#define GPU_F32_RTOL 1e-5
#define GPU_F16_RTOL 1e-3
#define GPU_BF16_RTOL 8e-3

#endif
