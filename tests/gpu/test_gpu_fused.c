/* GPU tests of the fused sums and the channels-last convolution paths, against the CPU
 * backend on the same random inputs (outputs poisoned first):
 * - kiln_op_linear_add with the addend as cuBLASLt's C operand (laid out like out) and
 *   through the start-then-accumulate path (broadcast, other dtype);
 * - kiln_op_conv2d_add on channels-last F16 tensors, with a residual and with a per-sample
 *   channel shift, through cuDNN and through conv_cl.cu's im2col + GEMM (cuDNN switched
 *   off), including 4-channel inputs and outputs, strides and asymmetric padding. */
#include <stdlib.h>

#include "gpu_common.h"

/* A random host tensor [n, c, h, w] (dense) and a device copy laid out channels-last. */
static void cl_pair(kiln_dtype_t dt, double scale, const int64_t *s, kiln_tensor_t **host,
                    kiln_tensor_t **dev)
{
    *host = tnew(dt, 4, s);
    fill_random(*host, scale);
    kiln_tensor_t *view = NULL, *nhwc = tnew(dt, SHAPE(s[0], s[2], s[3], s[1]));
    ASSERT_EQ_INT(kiln_tensor_permute(nhwc, (const int[]){0, 3, 1, 2}, &view), 0);
    ASSERT_EQ_INT(kiln_op_contiguous(NULL, view, *host), 0); /* the values, stored NHWC */
    kiln_tensor_t *d = to_gpu(nhwc);
    ASSERT_EQ_INT(kiln_tensor_permute(d, (const int[]){0, 3, 1, 2}, dev), 0);
    kiln_tensor_release(d);
    kiln_tensor_release(view);
    kiln_tensor_release(nhwc);
}

/* A poisoned device tensor [n, c, h, w] laid out channels-last. */
static kiln_tensor_t *cl_poisoned(kiln_dtype_t dt, const int64_t *s)
{
    kiln_tensor_t *d = gpu_poisoned(dt, SHAPE(s[0], s[2], s[3], s[1])), *v = NULL;
    ASSERT_EQ_INT(kiln_tensor_permute(d, (const int[]){0, 3, 1, 2}, &v), 0);
    kiln_tensor_release(d);
    return v;
}

static void release_all(kiln_tensor_t **ts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kiln_tensor_release(ts[i]);
}

/* One channels-last F16 convolution (x, weight and out channels-last, F32 bias) against
 * the CPU; add_kind 0: none, 1: a residual of out's shape (channels-last), 2: [N, OC, 1, 1]. */
static void conv_cl_case(const int64_t *xs, const int64_t *ws, const kiln_conv2d_params_t *p,
                         int add_kind)
{
    kiln_dtype_t f16 = KILN_DTYPE_F16;
    kiln_tensor_t *hx, *dx, *hw, *dw, *hb, *db, *ha = NULL, *da = NULL;
    cl_pair(f16, 1.0, xs, &hx, &dx);
    cl_pair(f16, 0.3, ws, &hw, &dw);
    pair_rand(KILN_DTYPE_F32, 0, 1.0, SHAPE(ws[0]), &hb, &db);
    int64_t oh = (xs[2] + p->pad_top + p->pad_bottom - ws[2]) / (p->stride_h ? p->stride_h : 1) + 1;
    int64_t ow = (xs[3] + p->pad_left + p->pad_right - ws[3]) / (p->stride_w ? p->stride_w : 1) + 1;
    const int64_t os[4] = {xs[0], ws[0], oh, ow};
    if (add_kind == 1)
        cl_pair(f16, 1.0, os, &ha, &da);
    else if (add_kind == 2)
        pair_rand(f16, 0, 1.0, SHAPE(xs[0], ws[0], 1, 1), &ha, &da);
    kiln_tensor_t *want = tnew(KILN_DTYPE_F32, 4, os), *got = cl_poisoned(f16, os);
    ASSERT_EQ_INT(kiln_op_conv2d(NULL, want, hx, hw, hb, p), 0);
    if (ha)
        ASSERT_EQ_INT(kiln_op_add(NULL, want, want, ha), 0);
    ASSERT_EQ_INT(da ? kiln_op_conv2d_add(NULL, got, dx, dw, db, da, p)
                     : kiln_op_conv2d(NULL, got, dx, dw, db, p),
                  0);
    CHECK_GPU(got, want, GPU_F16_RTOL);
    kiln_tensor_t *ts[] = {hx, dx, hw, dw, hb, db, ha, da, want, got};
    release_all(ts, sizeof ts / sizeof ts[0]);
}

static void conv_cl_cases(void)
{
    kiln_conv2d_params_t pad1 = {KILN_CONV2D_PARAMS_INIT, .pad_top = 1, .pad_bottom = 1,
                                 .pad_left = 1, .pad_right = 1};
    kiln_conv2d_params_t down = {KILN_CONV2D_PARAMS_INIT, .stride_h = 2, .stride_w = 2,
                                 .pad_bottom = 1, .pad_right = 1};
    kiln_conv2d_params_t none = {KILN_CONV2D_PARAMS_INIT};
    for (int add = 0; add < 3; add++) {
        rng_seed(1300 + add);
        conv_cl_case(ARR(2, 4, 12, 10), ARR(64, 4, 3, 3), &pad1, add);   /* SD's conv_in */
        conv_cl_case(ARR(2, 64, 9, 8), ARR(4, 64, 3, 3), &pad1, add);    /* its conv_out */
        conv_cl_case(ARR(2, 64, 8, 8), ARR(96, 64, 3, 3), &pad1, add);
        conv_cl_case(ARR(1, 32, 11, 13), ARR(40, 32, 3, 3), &down, add); /* stride 2 */
        conv_cl_case(ARR(3, 16, 5, 7), ARR(24, 16, 1, 1), &none, add);   /* one GEMM */
    }
}

/* Channels-last convolutions with their sums where cuDNN takes part in the choice. */
static void test_conv2d_add_channels_last(void)
{
    need_gpu();
    conv_cl_cases();
}

/* The same with cuDNN switched off: every 3x3 call goes through conv_cl.cu. The variable
 * is read once per process, and each test runs in its own process. */
static void test_conv2d_add_channels_last_im2col(void)
{
    need_gpu();
    setenv("KILN_CUDA_CUDNN", "0", 1);
    conv_cl_cases();
}

static void linear_add_case(kiln_dtype_t dt, kiln_dtype_t odt, kiln_dtype_t adt, int bcast,
                            int bias, double rtol)
{
    kiln_tensor_t *hx, *dx, *hw, *dw, *hb = NULL, *db = NULL, *ha, *da;
    pair_rand(dt, 0, 1.0, SHAPE(2, 37, 64), &hx, &dx);
    pair_rand(dt, 0, 0.3, SHAPE(48, 64), &hw, &dw);
    if (bias)
        pair_rand(odt, 0, 1.0, SHAPE(48), &hb, &db);
    if (bcast)
        pair_rand(adt, 0, 1.0, SHAPE(37, 48), &ha, &da); /* shared by the batch */
    else
        pair_rand(adt, 0, 1.0, SHAPE(2, 37, 48), &ha, &da);
    kiln_tensor_t *want = tnew(KILN_DTYPE_F32, SHAPE(2, 37, 48));
    kiln_tensor_t *got = gpu_poisoned(odt, SHAPE(2, 37, 48));
    ASSERT_EQ_INT(kiln_op_linear(NULL, want, hx, hw, hb), 0);
    ASSERT_EQ_INT(kiln_op_add(NULL, want, want, ha), 0);
    ASSERT_EQ_INT(kiln_op_linear_add(NULL, got, dx, dw, db, da), 0);
    CHECK_GPU(got, want, rtol);
    kiln_tensor_t *ts[] = {hx, dx, hw, dw, hb, db, ha, da, want, got};
    release_all(ts, sizeof ts / sizeof ts[0]);
}

static void test_linear_add(void)
{
    need_gpu();
    kiln_dtype_t f16 = KILN_DTYPE_F16, f32 = KILN_DTYPE_F32;
    rng_seed(1310);
    for (int bias = 0; bias < 2; bias++) {
        linear_add_case(f16, f16, f16, 0, bias, GPU_F16_RTOL); /* the C operand */
        linear_add_case(f16, f16, f16, 1, bias, GPU_F16_RTOL); /* broadcast: start + sum */
        linear_add_case(f16, f16, f32, 0, bias, GPU_F16_RTOL); /* another dtype */
        linear_add_case(f32, f32, f32, 0, bias, GPU_F32_RTOL);
        linear_add_case(KILN_DTYPE_BF16, KILN_DTYPE_BF16, KILN_DTYPE_BF16, 0, bias,
                        GPU_BF16_RTOL);
    }
}

KILN_TEST_MAIN(TEST(test_linear_add), TEST_TIMEOUT(test_conv2d_add_channels_last, 120),
               TEST_TIMEOUT(test_conv2d_add_channels_last_im2col, 120))
