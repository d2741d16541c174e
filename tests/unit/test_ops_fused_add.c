/* linear_add and conv2d_add: a product plus a broadcast addend in one op. Each must give
 * exactly what the product followed by kiln_op_add gives (residuals of out's shape, a
 * [N, OC, 1, 1] channel shift, a channels-last out), and refuse an addend that does not
 * broadcast, overlaps out or is missing. */
#include "test_ops_common.h"

/* out = op(...) then out += add, the unfused reference, compared element for element. */
static void check_equal(const kiln_tensor_t *got, const kiln_tensor_t *want)
{
    double *g = to_doubles(got), *w = to_doubles(want);
    int64_t n = kiln_tensor_numel(want), diff = 0;
    ASSERT_EQ_INT(kiln_tensor_numel(got), n);
    for (int64_t i = 0; i < n; i++)
        diff += g[i] != w[i];
    ASSERT_EQ_INT(diff, 0);
    free(g);
    free(w);
}

static void test_linear_add_matches_linear_then_add(void)
{
    rng_seed(120);
    kiln_tensor_t *x = trand(KILN_DTYPE_F32, 0, 1.0, SHAPE(2, 5, 7));
    kiln_tensor_t *w = trand(KILN_DTYPE_F32, 0, 0.5, SHAPE(3, 7));
    kiln_tensor_t *b = trand(KILN_DTYPE_F32, 0, 1.0, SHAPE(3));
    kiln_tensor_t *res = trand(KILN_DTYPE_F32, 0, 1.0, SHAPE(2, 5, 3));
    kiln_tensor_t *row = trand(KILN_DTYPE_F32, 0, 1.0, SHAPE(3)); /* broadcast over rows */
    const kiln_tensor_t *adds[] = {res, row};
    for (int i = 0; i < 2; i++) {
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            kiln_tensor_t *want = tnew(KILN_DTYPE_F32, SHAPE(2, 5, 3));
            kiln_tensor_t *got = tnew(KILN_DTYPE_F32, SHAPE(2, 5, 3));
            const kiln_tensor_t *bias = with_bias ? b : NULL;
            ASSERT_EQ_INT(kiln_op_linear(NULL, want, x, w, bias), 0);
            ASSERT_EQ_INT(kiln_op_add(NULL, want, want, adds[i]), 0);
            ASSERT_EQ_INT(kiln_op_linear_add(NULL, got, x, w, bias, adds[i]), 0);
            check_equal(got, want);
            ASSERT(!all_equal(got, 0.0));
            kiln_tensor_release(want);
            kiln_tensor_release(got);
        }
    }
    kiln_tensor_t *ts[] = {x, w, b, res, row};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        kiln_tensor_release(ts[i]);
}

static void test_conv2d_add_matches_conv_then_add(void)
{
    rng_seed(121);
    kiln_tensor_t *x = trand(KILN_DTYPE_F32, 0, 1.0, SHAPE(2, 6, 7, 5));
    kiln_tensor_t *w = trand(KILN_DTYPE_F32, 0, 0.5, SHAPE(4, 6, 3, 3));
    kiln_tensor_t *b = trand(KILN_DTYPE_F32, 0, 1.0, SHAPE(4));
    kiln_tensor_t *res = trand(KILN_DTYPE_F32, 0, 1.0, SHAPE(2, 4, 7, 5));
    kiln_tensor_t *emb = trand(KILN_DTYPE_F32, 0, 1.0, SHAPE(2, 4, 1, 1)); /* per sample */
    kiln_conv2d_params_t p = {KILN_CONV2D_PARAMS_INIT, .pad_top = 1, .pad_bottom = 1,
                              .pad_left = 1, .pad_right = 1};
    const kiln_tensor_t *adds[] = {res, emb};
    for (int i = 0; i < 2; i++) {
        for (int cl = 0; cl < 2; cl++) {
            kiln_tensor_t *want = tnew(KILN_DTYPE_F32, SHAPE(2, 4, 7, 5));
            kiln_tensor_t *got = cl ? tnew_cl(2, 4, 7, 5) : tnew(KILN_DTYPE_F32, SHAPE(2, 4, 7, 5));
            ASSERT_EQ_INT(kiln_op_conv2d(NULL, want, x, w, b, &p), 0);
            ASSERT_EQ_INT(kiln_op_add(NULL, want, want, adds[i]), 0);
            ASSERT_EQ_INT(kiln_op_conv2d_add(NULL, got, x, w, b, adds[i], &p), 0);
            check_equal(got, want);
            kiln_tensor_release(want);
            kiln_tensor_release(got);
        }
    }
    kiln_tensor_t *ts[] = {x, w, b, res, emb};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        kiln_tensor_release(ts[i]);
}

static void test_bad_addends_refused(void)
{
    rng_seed(122);
    kiln_tensor_t *x = trand(KILN_DTYPE_F32, 0, 1.0, SHAPE(2, 7));
    kiln_tensor_t *w = trand(KILN_DTYPE_F32, 0, 0.5, SHAPE(3, 7));
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(2, 3));
    kiln_tensor_t *wide = tnew(KILN_DTYPE_F32, SHAPE(2, 4)); /* does not broadcast */
    kiln_tensor_t *big = tnew(KILN_DTYPE_F32, SHAPE(2, 2, 3)); /* more dims than out */
    kiln_tensor_t *ints = tnew(KILN_DTYPE_I32, SHAPE(2, 3));
    ASSERT_EQ_INT(kiln_op_linear_add(NULL, out, x, w, NULL, NULL), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_linear_add(NULL, out, x, w, NULL, wide), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_linear_add(NULL, out, x, w, NULL, big), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_linear_add(NULL, out, x, w, NULL, out), KILN_EINVAL); /* overlap */
    ASSERT_EQ_INT(kiln_op_linear_add(NULL, out, x, w, NULL, ints), KILN_ETYPE);
    kiln_tensor_t *img = trand(KILN_DTYPE_F32, 0, 1.0, SHAPE(1, 2, 4, 4));
    kiln_tensor_t *k = trand(KILN_DTYPE_F32, 0, 1.0, SHAPE(3, 2, 1, 1));
    kiln_tensor_t *o4 = tnew(KILN_DTYPE_F32, SHAPE(1, 3, 4, 4));
    kiln_tensor_t *half = tnew(KILN_DTYPE_F32, SHAPE(1, 3, 2, 4));
    ASSERT_EQ_INT(kiln_op_conv2d_add(NULL, o4, img, k, NULL, NULL, NULL), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_conv2d_add(NULL, o4, img, k, NULL, half, NULL), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_conv2d_add(NULL, o4, img, k, NULL, o4, NULL), KILN_EINVAL);
    ASSERT(all_equal(o4, 0.0)); /* nothing written by a refused call */
    kiln_tensor_t *ts[] = {x, w, out, wide, big, ints, img, k, o4, half};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        kiln_tensor_release(ts[i]);
}

KILN_TEST_MAIN(TEST(test_linear_add_matches_linear_then_add),
               TEST(test_conv2d_add_matches_conv_then_add), TEST(test_bad_addends_refused))
