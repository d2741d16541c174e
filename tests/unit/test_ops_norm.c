/* Softmax, layer norm and group norm (with and without fused SiLU) against double
 * references on strided inputs, in place, with F16 parameters; plus hand-checked values
 * and the argument errors. */
#include "test_ops_common.h"

static void test_softmax(void)
{
    /* softmax([1, 2, 3]) and a row that would overflow without the max subtraction */
    kiln_tensor_t *x = tnew(KILN_DTYPE_F32, SHAPE(2, 3)), *out = tnew(KILN_DTYPE_F32, SHAPE(2, 3));
    float *p = kiln_tensor_data(x);
    p[0] = 1, p[1] = 2, p[2] = 3, p[3] = 1000, p[4] = 1000, p[5] = -INFINITY;
    ASSERT_EQ_INT(kiln_op_softmax(NULL, out, x), 0);
    double *g = to_doubles(out);
    double e = exp(1.0), s = 1 + e + e * e;
    ASSERT_NEAR(g[0], 1 / s, 1e-7);
    ASSERT_NEAR(g[1], e / s, 1e-7);
    ASSERT_NEAR(g[2], e * e / s, 1e-7);
    ASSERT_NEAR(g[3], 0.5, 0.0);
    ASSERT_NEAR(g[4], 0.5, 0.0);
    ASSERT_NEAR(g[5], 0.0, 0.0);
    free(g);
    kiln_tensor_release(x);
    kiln_tensor_release(out);

    rng_seed(20);
    for (int layout = 0; layout < 3; layout++) {
        x = trand(KILN_DTYPE_F32, layout, 8.0, SHAPE(3, 5, 37));
        out = tnew(KILN_DTYPE_F32, SHAPE(3, 5, 37));
        double *dx = to_doubles(x), ref[555];
        for (int r = 0; r < 15; r++) {
            double m = -INFINITY, sum = 0;
            for (int j = 0; j < 37; j++)
                m = fmax(m, dx[r * 37 + j]);
            for (int j = 0; j < 37; j++)
                sum += exp(dx[r * 37 + j] - m);
            for (int j = 0; j < 37; j++)
                ref[r * 37 + j] = exp(dx[r * 37 + j] - m) / sum;
        }
        ASSERT_EQ_INT(kiln_op_softmax(NULL, out, x), 0);
        CHECK_CLOSE(out, ref, F32_RTOL);
        if (layout == 0) { /* in place */
            ASSERT_EQ_INT(kiln_op_softmax(NULL, x, x), 0);
            CHECK_CLOSE(x, ref, F32_RTOL);
        }
        free(dx);
        kiln_tensor_release(x);
        kiln_tensor_release(out);
    }
}

/* Reference layer norm over rows of length c. */
static void ref_layer_norm(const double *x, int64_t rows, int64_t c, const double *w,
                           const double *b, double eps, double *out)
{
    for (int64_t r = 0; r < rows; r++) {
        const double *xr = x + r * c;
        double mean = 0, var = 0;
        for (int64_t j = 0; j < c; j++)
            mean += xr[j] / (double)c;
        for (int64_t j = 0; j < c; j++)
            var += (xr[j] - mean) * (xr[j] - mean) / (double)c;
        for (int64_t j = 0; j < c; j++)
            out[r * c + j] = (xr[j] - mean) / sqrt(var + eps) * (w ? w[j] : 1) + (b ? b[j] : 0);
    }
}

static void test_layer_norm(void)
{
    /* [1, 2, 3, 4]: mean 2.5, variance 1.25 */
    kiln_tensor_t *x = tnew(KILN_DTYPE_F32, SHAPE(4)), *out = tnew(KILN_DTYPE_F32, SHAPE(4));
    float *p = kiln_tensor_data(x);
    p[0] = 1, p[1] = 2, p[2] = 3, p[3] = 4;
    ASSERT_EQ_INT(kiln_op_layer_norm(NULL, out, x, NULL, NULL, 0.0f), 0);
    double *g = to_doubles(out);
    ASSERT_NEAR(g[0], -1.5 / sqrt(1.25), 1e-6);
    ASSERT_NEAR(g[3], 1.5 / sqrt(1.25), 1e-6);
    free(g);
    kiln_tensor_release(x);
    kiln_tensor_release(out);

    rng_seed(21);
    for (int layout = 0; layout < 3; layout++) {
        x = trand(KILN_DTYPE_F32, layout, 3.0, SHAPE(2, 7, 33));
        ASSERT_EQ_INT(kiln_op_add_scalar(NULL, x, x, 5.0f), 0); /* a non-zero mean */
        kiln_tensor_t *w = trand(layout == 1 ? KILN_DTYPE_F16 : KILN_DTYPE_F32, 0, 1.0, SHAPE(33));
        kiln_tensor_t *b = trand(KILN_DTYPE_F32, 2, 1.0, SHAPE(33));
        out = tnew(KILN_DTYPE_F32, SHAPE(2, 7, 33));
        double *dx = to_doubles(x), *dw = to_doubles(w), *db = to_doubles(b), ref[462];
        ref_layer_norm(dx, 14, 33, dw, db, 1e-5, ref);
        ASSERT_EQ_INT(kiln_op_layer_norm(NULL, out, x, w, b, 1e-5f), 0);
        CHECK_CLOSE(out, ref, F32_RTOL);
        ref_layer_norm(dx, 14, 33, NULL, db, 1e-5, ref);
        ASSERT_EQ_INT(kiln_op_layer_norm(NULL, out, x, NULL, b, 1e-5f), 0);
        CHECK_CLOSE(out, ref, F32_RTOL);
        kiln_tensor_t *bad = tnew(KILN_DTYPE_F32, SHAPE(32));
        ASSERT_EQ_INT(kiln_op_layer_norm(NULL, out, x, bad, b, 1e-5f), KILN_EINVAL);
        ASSERT_EQ_INT(kiln_op_layer_norm(NULL, out, x, w, b, -1.0f), KILN_EINVAL);
        CHECK_CLOSE(out, ref, F32_RTOL);
        kiln_tensor_release(bad);
        free(dx);
        free(dw);
        free(db);
        kiln_tensor_release(x);
        kiln_tensor_release(w);
        kiln_tensor_release(b);
        kiln_tensor_release(out);
    }
}

/* Reference group norm of x [n, c, sp]. */
static void ref_group_norm(const double *x, int64_t n, int64_t c, int64_t sp, int64_t groups,
                           const double *w, const double *b, double eps, int silu, double *out)
{
    int64_t cpg = c / groups, len = cpg * sp;
    for (int64_t g = 0; g < n * groups; g++) {
        const double *xg = x + g * len;
        double mean = 0, var = 0;
        for (int64_t i = 0; i < len; i++)
            mean += xg[i] / (double)len;
        for (int64_t i = 0; i < len; i++)
            var += (xg[i] - mean) * (xg[i] - mean) / (double)len;
        for (int64_t i = 0; i < len; i++) {
            int64_t ch = (g % groups) * cpg + i / sp;
            double y = (xg[i] - mean) / sqrt(var + eps) * (w ? w[ch] : 1) + (b ? b[ch] : 0);
            out[g * len + i] = silu ? y / (1 + exp(-y)) : y;
        }
    }
}

static void test_group_norm(void)
{
    rng_seed(22);
    struct {
        int64_t n, c, h, w;
        int groups, layout, silu;
    } cases[] = {
        {2, 12, 5, 7, 4, 0, 0},
        {1, 32, 8, 8, 32, 1, 1},
        {3, 6, 3, 1, 2, 2, 1},
        {2, 8, 4, 6, 1, 1, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int64_t shape[4] = {cases[k].n, cases[k].c, cases[k].h, cases[k].w};
        int64_t sp = shape[2] * shape[3], total = shape[0] * shape[1] * sp;
        kiln_tensor_t *x = trand(KILN_DTYPE_F32, cases[k].layout, 2.0, 4, shape);
        ASSERT_EQ_INT(kiln_op_add_scalar(NULL, x, x, -1.5f), 0);
        kiln_tensor_t *w = trand(KILN_DTYPE_BF16, 0, 1.5, 1, &shape[1]);
        kiln_tensor_t *b = trand(KILN_DTYPE_F32, 0, 1.0, 1, &shape[1]);
        kiln_tensor_t *out = tnew(KILN_DTYPE_F32, 4, shape);
        double *dx = to_doubles(x), *dw = to_doubles(w), *db = to_doubles(b);
        double *ref = malloc((size_t)total * sizeof *ref);
        ref_group_norm(dx, shape[0], shape[1], sp, cases[k].groups, dw, db, 1e-6, cases[k].silu,
                       ref);
        ASSERT_EQ_INT(kiln_op_group_norm(NULL, out, x, w, b, cases[k].groups, 1e-6f, cases[k].silu),
                      0);
        CHECK_CLOSE(out, ref, F32_RTOL);
        double *ref2 = malloc((size_t)total * sizeof *ref2);
        ref_group_norm(dx, shape[0], shape[1], sp, cases[k].groups, NULL, NULL, 1e-6, 0, ref2);
        ASSERT_EQ_INT(kiln_op_group_norm(NULL, out, x, NULL, NULL, cases[k].groups, 1e-6f, 0), 0);
        CHECK_CLOSE(out, ref2, F32_RTOL);
        free(ref2);
        if (cases[k].layout == 0) { /* in place */
            ASSERT_EQ_INT(
                kiln_op_group_norm(NULL, x, x, w, b, cases[k].groups, 1e-6f, cases[k].silu), 0);
            CHECK_CLOSE(x, ref, F32_RTOL);
        }
        free(ref);
        free(dx);
        free(dw);
        free(db);
        kiln_tensor_release(x);
        kiln_tensor_release(w);
        kiln_tensor_release(b);
        kiln_tensor_release(out);
    }
}

static void test_norm_errors(void)
{
    kiln_tensor_t *x = tnew(KILN_DTYPE_F32, SHAPE(2, 6, 3, 3));
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(2, 6, 3, 3));
    kiln_tensor_t *w5 = tnew(KILN_DTYPE_F32, SHAPE(5)), *i6 = tnew(KILN_DTYPE_I32, SHAPE(6));
    ASSERT_EQ_INT(kiln_op_add_scalar(NULL, out, out, 3.0f), 0);
    ASSERT_EQ_INT(kiln_op_group_norm(NULL, out, x, NULL, NULL, 4, 1e-5f, 0), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_group_norm(NULL, out, x, NULL, NULL, 0, 1e-5f, 0), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_group_norm(NULL, out, x, w5, NULL, 2, 1e-5f, 0), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_group_norm(NULL, out, x, i6, NULL, 2, 1e-5f, 0), KILN_ETYPE);
    ASSERT_EQ_INT(kiln_op_group_norm(NULL, out, x, NULL, NULL, 2, NAN, 0), KILN_EINVAL);
    kiln_tensor_t *view = NULL; /* a non-contiguous out is refused for norms */
    ASSERT_EQ_INT(kiln_tensor_transpose(out, 2, 3, &view), 0);
    ASSERT_EQ_INT(kiln_op_softmax(NULL, view, x), KILN_EINVAL);
    kiln_tensor_t *small = tnew(KILN_DTYPE_F32, SHAPE(2, 6, 3));
    ASSERT_EQ_INT(kiln_op_softmax(NULL, out, small), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_layer_norm(NULL, out, small, NULL, NULL, 1e-5f), KILN_EINVAL);
    ASSERT(all_equal(out, 3.0));
    kiln_tensor_release(small);
    kiln_tensor_release(view);
    kiln_tensor_release(w5);
    kiln_tensor_release(i6);
    kiln_tensor_release(x);
    kiln_tensor_release(out);
}

KILN_TEST_MAIN(TEST(test_softmax), TEST(test_layer_norm), TEST(test_group_norm),
               TEST(test_norm_errors))
