/* conv2d against a direct double-precision convolution: 1x1 and 3x3 kernels, strides 1
 * and 2, padding 0/1 and asymmetric (the VAE's downsample), dilation, non-square kernels,
 * strided and channels-last inputs, F16 weights, an image large enough to be processed
 * in several im2col bands; plus the parameter and shape errors. */
#include "test_ops_common.h"

typedef struct conv_case {
    int64_t n, c, h, w, oc, kh, kw;
    int sh, sw, pt, pb, pl, pr, dh, dw;
    int layout; /* trand layout of x; 3 = a channels-last (NHWC) view */
    int bias;
    kiln_dtype_t wdt;
} conv_case_t;

static double *ref_conv(const double *x, const double *w, const double *b, const conv_case_t *k,
                        int64_t oh, int64_t ow)
{
    double *r = malloc((size_t)(k->n * k->oc * oh * ow) * sizeof *r);
    for (int64_t n = 0; n < k->n; n++)
        for (int64_t o = 0; o < k->oc; o++)
            for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++) {
                    double acc = b ? b[o] : 0;
                    for (int64_t c = 0; c < k->c; c++)
                        for (int64_t u = 0; u < k->kh; u++)
                            for (int64_t v = 0; v < k->kw; v++) {
                                int64_t y = i * k->sh - k->pt + u * k->dh;
                                int64_t z = j * k->sw - k->pl + v * k->dw;
                                if (y < 0 || y >= k->h || z < 0 || z >= k->w)
                                    continue;
                                acc += x[((n * k->c + c) * k->h + y) * k->w + z] *
                                       w[((o * k->c + c) * k->kh + u) * k->kw + v];
                            }
                    r[((n * k->oc + o) * oh + i) * ow + j] = acc;
                }
    return r;
}

static kiln_tensor_t *make_x(const conv_case_t *k)
{
    if (k->layout < 3)
        return trand(KILN_DTYPE_F32, k->layout, 1.0, SHAPE(k->n, k->c, k->h, k->w));
    kiln_tensor_t *nhwc = tnew(KILN_DTYPE_F32, SHAPE(k->n, k->h, k->w, k->c)), *x = NULL;
    ASSERT_EQ_INT(kiln_tensor_permute(nhwc, (const int[]){0, 3, 1, 2}, &x), 0);
    kiln_tensor_release(nhwc);
    fill_random(x, 1.0);
    return x;
}

static void run_conv(const conv_case_t *k)
{
    int64_t oh = (k->h + k->pt + k->pb - k->dh * (k->kh - 1) - 1) / k->sh + 1;
    int64_t ow = (k->w + k->pl + k->pr - k->dw * (k->kw - 1) - 1) / k->sw + 1;
    kiln_tensor_t *x = make_x(k);
    kiln_tensor_t *w = trand(k->wdt, 0, 0.5, SHAPE(k->oc, k->c, k->kh, k->kw));
    kiln_tensor_t *b = k->bias ? trand(KILN_DTYPE_F32, 0, 1.0, SHAPE(k->oc)) : NULL;
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(k->n, k->oc, oh, ow));
    kiln_conv2d_params_t p = {KILN_CONV2D_PARAMS_INIT, .stride_h = k->sh,   .stride_w = k->sw,
                              .pad_top = k->pt,        .pad_bottom = k->pb, .pad_left = k->pl,
                              .pad_right = k->pr,      .dilation_h = k->dh, .dilation_w = k->dw};
    ASSERT_EQ_INT(kiln_op_conv2d(NULL, out, x, w, b, &p), 0);
    double *dx = to_doubles(x), *dw = to_doubles(w), *db = b ? to_doubles(b) : NULL;
    double *ref = ref_conv(dx, dw, db, k, oh, ow);
    CHECK_CLOSE(out, ref, F32_RTOL);
    free(ref);
    free(dx);
    free(dw);
    free(db);
    kiln_tensor_release(x);
    kiln_tensor_release(w);
    kiln_tensor_release(b);
    kiln_tensor_release(out);
}

static void test_conv_cases(void)
{
    /* clang-format off */
    static const conv_case_t cases[] = {
        /* n  c  h   w  oc kh kw sh sw pt pb pl pr dh dw layout bias wdt */
        {2, 3, 9, 7, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, KILN_DTYPE_F32},   /* 3x3 s1 p1 */
        {1, 4, 9, 10, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, KILN_DTYPE_F32},  /* 3x3 s2 p1 */
        {2, 4, 8, 9, 3, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1, 2, 0, KILN_DTYPE_F32},   /* 3x3 s2 p0 */
        {2, 5, 6, 7, 4, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 1, KILN_DTYPE_F32},   /* 1x1 */
        {2, 5, 6, 7, 4, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, KILN_DTYPE_F32},   /* 1x1 permuted */
        {2, 5, 6, 7, 4, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 2, 0, KILN_DTYPE_F32},   /* 1x1 sliced */
        {2, 6, 5, 4, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 3, 1, KILN_DTYPE_F32},   /* 1x1 NHWC */
        {1, 3, 7, 7, 2, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 0, 1, KILN_DTYPE_F32},   /* 1x1 s2 */
        {1, 3, 7, 7, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, KILN_DTYPE_F32},   /* 1x1 p1 */
        {2, 4, 8, 8, 4, 3, 3, 2, 2, 0, 1, 0, 1, 1, 1, 0, 1, KILN_DTYPE_F32},   /* VAE down */
        {1, 2, 9, 11, 3, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1, 1, KILN_DTYPE_F32},  /* dilation 2 */
        {1, 3, 10, 6, 2, 5, 3, 2, 1, 1, 2, 0, 1, 1, 1, 2, 1, KILN_DTYPE_F32},  /* 5x3 */
        {2, 3, 6, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3, 1, KILN_DTYPE_F16},   /* F16 W */
        {1, 2, 3, 3, 2, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, KILN_DTYPE_BF16},  /* 1x1 out */
    };
    /* clang-format on */
    rng_seed(40);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_conv(&cases[i]);
}

static void test_conv_large_banded(void)
{
    /* K = 64 * 9 = 576 and OW = 64: the column budget covers about 56 output rows, so the
     * 64 rows are processed in two bands. */
    rng_seed(41);
    conv_case_t k = {1, 64, 64, 64, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, KILN_DTYPE_F32};
    run_conv(&k);
}

static void test_conv_known_values(void)
{
    /* x = 1..9 in a 3x3 grid, an all-ones 2x2 kernel, bias 0.5, padding 0:
     * out = [[1+2+4+5, 2+3+5+6], [4+5+7+8, 5+6+8+9]] + 0.5 */
    kiln_tensor_t *x = tnew(KILN_DTYPE_F32, SHAPE(1, 1, 3, 3));
    kiln_tensor_t *w = tnew(KILN_DTYPE_F32, SHAPE(1, 1, 2, 2)), *b = tnew(KILN_DTYPE_F32, SHAPE(1));
    for (int i = 0; i < 9; i++)
        ((float *)kiln_tensor_data(x))[i] = (float)(i + 1);
    for (int i = 0; i < 4; i++)
        ((float *)kiln_tensor_data(w))[i] = 1.0f;
    *(float *)kiln_tensor_data(b) = 0.5f;
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(1, 1, 2, 2));
    ASSERT_EQ_INT(kiln_op_conv2d(NULL, out, x, w, b, NULL), 0);
    CHECK_EXACT(out, 12.5, 16.5, 24.5, 28.5);
    /* stride 2, padding 1 on every side: windows at (-1,-1), (-1,1), (1,-1), (1,1) */
    kiln_conv2d_params_t p = {KILN_CONV2D_PARAMS_INIT, .stride_h = 2, .stride_w = 2, .pad_top = 1,
                              .pad_bottom = 1,         .pad_left = 1, .pad_right = 1};
    ASSERT_EQ_INT(kiln_op_conv2d(NULL, out, x, w, NULL, &p), 0);
    CHECK_EXACT(out, 1, 2 + 3, 4 + 7, 5 + 6 + 8 + 9);
    kiln_tensor_release(x);
    kiln_tensor_release(w);
    kiln_tensor_release(b);
    kiln_tensor_release(out);
}

static void test_conv_errors(void)
{
    kiln_tensor_t *x = tnew(KILN_DTYPE_F32, SHAPE(1, 4, 5, 5));
    kiln_tensor_t *w = tnew(KILN_DTYPE_F32, SHAPE(2, 4, 3, 3));
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(1, 2, 3, 3));
    ASSERT_EQ_INT(kiln_op_add_scalar(NULL, out, out, 4.0f), 0);
    kiln_conv2d_params_t p = {KILN_CONV2D_PARAMS_INIT, .groups = 2};
    ASSERT_EQ_INT(kiln_op_conv2d(NULL, out, x, w, NULL, &p), KILN_EUNSUPPORTED);
    p = (kiln_conv2d_params_t){KILN_CONV2D_PARAMS_INIT, .stride_h = -1};
    ASSERT_EQ_INT(kiln_op_conv2d(NULL, out, x, w, NULL, &p), KILN_EINVAL);
    p = (kiln_conv2d_params_t){KILN_CONV2D_PARAMS_INIT, .pad_left = -2};
    ASSERT_EQ_INT(kiln_op_conv2d(NULL, out, x, w, NULL, &p), KILN_EINVAL);
    p = (kiln_conv2d_params_t){.struct_size = 0};
    ASSERT_EQ_INT(kiln_op_conv2d(NULL, out, x, w, NULL, &p), KILN_EINVAL);
    p = (kiln_conv2d_params_t){KILN_CONV2D_PARAMS_INIT, .pad_top = 1}; /* OH 4, not 3 */
    ASSERT_EQ_INT(kiln_op_conv2d(NULL, out, x, w, NULL, &p), KILN_EINVAL);
    p = (kiln_conv2d_params_t){KILN_CONV2D_PARAMS_INIT, .dilation_h = 3}; /* span 7 > 5 */
    ASSERT_EQ_INT(kiln_op_conv2d(NULL, out, x, w, NULL, &p), KILN_EINVAL);
    p = (kiln_conv2d_params_t){KILN_CONV2D_PARAMS_INIT, .dilation_w = INT32_MAX,
                               .pad_left = INT32_MAX, .pad_right = INT32_MAX};
    ASSERT_EQ_INT(kiln_op_conv2d(NULL, out, x, w, NULL, &p), KILN_EINVAL); /* no overflow */
    kiln_tensor_t *w3 = tnew(KILN_DTYPE_F32, SHAPE(2, 3, 3, 3)),
                  *b = tnew(KILN_DTYPE_F32, SHAPE(3));
    ASSERT_EQ_INT(kiln_op_conv2d(NULL, out, x, w3, NULL, NULL), KILN_EINVAL); /* channels */
    ASSERT_EQ_INT(kiln_op_conv2d(NULL, out, x, w, b, NULL), KILN_EINVAL);     /* bias [3] */
    ASSERT_EQ_INT(kiln_op_conv2d(NULL, out, w, w, NULL, NULL), KILN_EINVAL);
    ASSERT(all_equal(out, 4.0));
    /* A caller built against an older, shorter params struct reads as zero-filled. */
    p = (kiln_conv2d_params_t){
        .struct_size = 2 * sizeof(int32_t) + sizeof(uint32_t), .stride_h = 1, .pad_top = 1};
    ASSERT_EQ_INT(kiln_op_conv2d(NULL, out, x, w, NULL, &p), 0);
    ASSERT(!all_equal(out, 4.0));
    kiln_tensor_release(w3);
    kiln_tensor_release(b);
    kiln_tensor_release(x);
    kiln_tensor_release(w);
    kiln_tensor_release(out);
}

KILN_TEST_MAIN(TEST(test_conv_cases), TEST(test_conv_large_banded), TEST(test_conv_known_values),
               TEST(test_conv_errors))
