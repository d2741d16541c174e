/* Channels-last outputs: conv2d, group_norm and interpolate accept an `out` laid out
 * channels-last (a [N, C, H, W] view of dense [N, H, W, C] storage), the layout the SD
 * models keep their activations in on a GPU. On the host such an out must receive exactly
 * the values a dense out gets; other strided outs stay refused, as does a channels-last
 * out for the ops that need a dense one. */
#include "test_ops_common.h"

/* Every element of a equals the one of b at the same index (any layouts). */
static void check_same(const kiln_tensor_t *a, const kiln_tensor_t *b)
{
    double *da = to_doubles(a), *db = to_doubles(b);
    int64_t n = kiln_tensor_numel(a), diff = 0;
    ASSERT_EQ_INT(n, kiln_tensor_numel(b));
    for (int64_t i = 0; i < n; i++)
        diff += da[i] != db[i];
    ASSERT_EQ_INT(diff, 0);
    free(da);
    free(db);
}

static void test_conv2d_channels_last_out(void)
{
    rng_seed(90);
    for (int k = 1; k <= 3; k += 2) { /* 1x1 and 3x3 */
        kiln_tensor_t *x = trand(KILN_DTYPE_F32, 0, 1.0, SHAPE(2, 6, 7, 5));
        kiln_tensor_t *w = trand(KILN_DTYPE_F32, 0, 0.5, SHAPE(4, 6, k, k));
        kiln_tensor_t *b = trand(KILN_DTYPE_F32, 0, 1.0, SHAPE(4));
        kiln_conv2d_params_t p = {KILN_CONV2D_PARAMS_INIT, .pad_top = k / 2,
                                  .pad_bottom = k / 2, .pad_left = k / 2, .pad_right = k / 2};
        kiln_tensor_t *dense = tnew(KILN_DTYPE_F32, SHAPE(2, 4, 7, 5)), *cl = tnew_cl(2, 4, 7, 5);
        ASSERT_EQ_INT(kiln_op_conv2d(NULL, dense, x, w, b, &p), 0);
        ASSERT_EQ_INT(kiln_op_conv2d(NULL, cl, x, w, b, &p), 0);
        check_same(cl, dense);
        ASSERT(!all_equal(dense, 0.0));
        /* a channels-last input and weight give the same values too */
        kiln_tensor_t *xcl = tnew_cl(2, 6, 7, 5), *wcl = tnew_cl(4, 6, k, k);
        kiln_tensor_t *cl2 = tnew_cl(2, 4, 7, 5);
        ASSERT_EQ_INT(kiln_op_contiguous(NULL, xcl, x), 0);
        ASSERT_EQ_INT(kiln_op_contiguous(NULL, wcl, w), 0);
        ASSERT_EQ_INT(kiln_op_conv2d(NULL, cl2, xcl, wcl, b, &p), 0);
        double *want = to_doubles(dense);
        CHECK_CLOSE(cl2, want, F32_RTOL);
        free(want);
        kiln_tensor_t *ts[] = {x, w, b, dense, cl, xcl, wcl, cl2};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
            kiln_tensor_release(ts[i]);
    }
}

static void test_group_norm_channels_last_out(void)
{
    rng_seed(91);
    kiln_tensor_t *x = trand(KILN_DTYPE_F32, 0, 2.0, SHAPE(2, 8, 5, 3));
    kiln_tensor_t *g = trand(KILN_DTYPE_F32, 0, 1.0, SHAPE(8));
    kiln_tensor_t *b = trand(KILN_DTYPE_F32, 0, 1.0, SHAPE(8));
    kiln_tensor_t *dense = tnew(KILN_DTYPE_F32, SHAPE(2, 8, 5, 3)), *cl = tnew_cl(2, 8, 5, 3);
    ASSERT_EQ_INT(kiln_op_group_norm(NULL, dense, x, g, b, 4, 1e-5f, 1), 0);
    ASSERT_EQ_INT(kiln_op_group_norm(NULL, cl, x, g, b, 4, 1e-5f, 1), 0);
    check_same(cl, dense);
    /* in place on a channels-last tensor */
    kiln_tensor_t *inplace = tnew_cl(2, 8, 5, 3);
    ASSERT_EQ_INT(kiln_op_contiguous(NULL, inplace, x), 0);
    ASSERT_EQ_INT(kiln_op_group_norm(NULL, inplace, inplace, g, b, 4, 1e-5f, 1), 0);
    check_same(inplace, dense);
    kiln_tensor_t *ts[] = {x, g, b, dense, cl, inplace};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        kiln_tensor_release(ts[i]);
}

static void test_interpolate_channels_last_out(void)
{
    rng_seed(92);
    kiln_tensor_t *x = trand(KILN_DTYPE_F32, 0, 1.0, SHAPE(1, 5, 4, 6));
    kiln_interp_mode_t modes[] = {KILN_INTERP_MODE_NEAREST, KILN_INTERP_MODE_BILINEAR};
    for (size_t m = 0; m < 2; m++) {
        kiln_tensor_t *dense = tnew(KILN_DTYPE_F32, SHAPE(1, 5, 8, 9)), *cl = tnew_cl(1, 5, 8, 9);
        ASSERT_EQ_INT(kiln_op_interpolate(NULL, dense, x, modes[m]), 0);
        ASSERT_EQ_INT(kiln_op_interpolate(NULL, cl, x, modes[m]), 0);
        check_same(cl, dense);
        kiln_tensor_release(dense);
        kiln_tensor_release(cl);
    }
    kiln_tensor_release(x);
}

static void test_other_layouts_refused(void)
{
    kiln_tensor_t *x = trand(KILN_DTYPE_F32, 0, 1.0, SHAPE(1, 4, 5, 5));
    kiln_tensor_t *w = trand(KILN_DTYPE_F32, 0, 1.0, SHAPE(2, 4, 1, 1));
    /* [1, 2, 5, 5] as a view of [1, 5, 2, 5]: neither dense nor channels-last */
    kiln_tensor_t *odd_store = tnew(KILN_DTYPE_F32, SHAPE(1, 5, 2, 5)), *odd = NULL;
    ASSERT_EQ_INT(kiln_tensor_permute(odd_store, (const int[]){0, 2, 1, 3}, &odd), 0);
    ASSERT_EQ_INT(kiln_op_conv2d(NULL, odd, x, w, NULL, NULL), KILN_EINVAL);
    ASSERT(all_equal(odd, 0.0));
    /* softmax and layer norm still need a dense out */
    kiln_tensor_t *cl = tnew_cl(1, 4, 5, 5);
    ASSERT_EQ_INT(kiln_op_softmax(NULL, cl, x), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_layer_norm(NULL, cl, x, NULL, NULL, 1e-5f), KILN_EINVAL);
    kiln_tensor_t *ts[] = {x, w, odd_store, odd, cl};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        kiln_tensor_release(ts[i]);
}

KILN_TEST_MAIN(TEST(test_conv2d_channels_last_out), TEST(test_group_norm_channels_last_out),
               TEST(test_interpolate_channels_last_out), TEST(test_other_layouts_refused))
