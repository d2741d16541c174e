/* interpolate: nearest, nearest-exact and bilinear (align_corners=False) against results
 * torch's F.interpolate gives on tiny inputs (worked out by hand from its index rules),
 * against a double reference on random strided inputs for up- and downsampling, and the
 * argument errors. */
#include "test_ops_common.h"

static kiln_tensor_t *grid(int64_t h, int64_t w, const double *v)
{
    kiln_tensor_t *t = tnew(KILN_DTYPE_F32, SHAPE(1, 1, h, w));
    for (int64_t i = 0; i < h * w; i++)
        ((float *)kiln_tensor_data(t))[i] = (float)v[i];
    return t;
}

static void test_interp_2x2_to_3x3(void)
{
    /* The UNet's odd-size path upsamples a 2x2 map to a 3x3 skip. "nearest" takes
     * floor(dst * 2/3) = 0, 0, 1 and "nearest-exact" floor((dst + .5) * 2/3) = 0, 1, 1. */
    kiln_tensor_t *x = grid(2, 2, (const double[]){1, 2, 3, 4});
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(1, 1, 3, 3));
    ASSERT_EQ_INT(kiln_op_interpolate(NULL, out, x, KILN_INTERP_MODE_NEAREST), 0);
    CHECK_EXACT(out, 1, 1, 2, 1, 1, 2, 3, 3, 4);
    ASSERT_EQ_INT(kiln_op_interpolate(NULL, out, x, KILN_INTERP_MODE_NEAREST_EXACT), 0);
    CHECK_EXACT(out, 1, 2, 2, 3, 4, 4, 3, 4, 4);
    /* bilinear: sources (dst + .5) * 2/3 - .5 = 0 (clamped), 0.5, 1 (clamped to the edge) */
    ASSERT_EQ_INT(kiln_op_interpolate(NULL, out, x, KILN_INTERP_MODE_BILINEAR), 0);
    CHECK_EXACT(out, 1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4);
    kiln_tensor_release(x);
    kiln_tensor_release(out);
}

static void test_interp_known_sizes(void)
{
    /* x2 nearest repeats each pixel; 1x4 -> 1x3 nearest picks 0, 1, 2, exact 0, 2, 3. */
    kiln_tensor_t *x = grid(2, 2, (const double[]){1, 2, 3, 4});
    kiln_tensor_t *up = tnew(KILN_DTYPE_F32, SHAPE(1, 1, 4, 4));
    ASSERT_EQ_INT(kiln_op_interpolate(NULL, up, x, KILN_INTERP_MODE_NEAREST), 0);
    CHECK_EXACT(up, 1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4);
    ASSERT_EQ_INT(kiln_op_interpolate(NULL, up, x, KILN_INTERP_MODE_NEAREST_EXACT), 0);
    CHECK_EXACT(up, 1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4);
    /* bilinear x2: sources -0.25 (0), 0.25, 0.75, 1.25 (edge) along each axis */
    ASSERT_EQ_INT(kiln_op_interpolate(NULL, up, x, KILN_INTERP_MODE_BILINEAR), 0);
    CHECK_EXACT(up, 1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4);
    kiln_tensor_release(x);
    kiln_tensor_release(up);

    kiln_tensor_t *row = grid(1, 4, (const double[]){10, 11, 12, 13});
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(1, 1, 1, 3));
    ASSERT_EQ_INT(kiln_op_interpolate(NULL, out, row, KILN_INTERP_MODE_NEAREST), 0);
    CHECK_EXACT(out, 10, 11, 12);
    ASSERT_EQ_INT(kiln_op_interpolate(NULL, out, row, KILN_INTERP_MODE_NEAREST_EXACT), 0);
    CHECK_EXACT(out, 10, 12, 13);
    /* bilinear 4 -> 3: sources (dst + .5) * 4/3 - .5 = 1/6, 3/2, 17/6 */
    ASSERT_EQ_INT(kiln_op_interpolate(NULL, out, row, KILN_INTERP_MODE_BILINEAR), 0);
    double *g = to_doubles(out);
    ASSERT_NEAR(g[0], 10 + 1.0 / 6, 1e-5);
    ASSERT_NEAR(g[1], 11.5, 1e-5);
    ASSERT_NEAR(g[2], 10 + 17.0 / 6, 1e-5);
    free(g);
    kiln_tensor_release(row);
    kiln_tensor_release(out);
}

/* Source index along one axis for the nearest modes (torch's float arithmetic). */
static int64_t near_src(int64_t o, int64_t in, int64_t out, int exact)
{
    float scale = (float)in / (float)out;
    int64_t s = exact ? (int64_t)floorf((float)((o + 0.5) * scale)) : (int64_t)floorf(o * scale);
    return s < in - 1 ? s : in - 1;
}

/* Bilinear source position along one axis: lower index and weight of the upper one. */
static void lin_src(int64_t o, int64_t in, int64_t out, int64_t *i0, int64_t *i1, double *l)
{
    double src = ((double)o + 0.5) * (double)in / (double)out - 0.5;
    src = src < 0 ? 0 : src;
    *i0 = (int64_t)floor(src) < in - 1 ? (int64_t)floor(src) : in - 1;
    *i1 = *i0 + 1 < in ? *i0 + 1 : *i0;
    *l = src - (double)*i0;
    *l = *l > 1 ? 1 : *l;
}

static void run_interp(const int64_t *xs, int64_t oh, int64_t ow, int layout,
                       kiln_interp_mode_t mode)
{
    kiln_tensor_t *x = trand(KILN_DTYPE_F32, layout, 1.0, 4, xs);
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(xs[0], xs[1], oh, ow));
    ASSERT_EQ_INT(kiln_op_interpolate(NULL, out, x, mode), 0);
    double *dx = to_doubles(x);
    int64_t planes = xs[0] * xs[1], h = xs[2], w = xs[3];
    double *ref = malloc((size_t)(planes * oh * ow) * sizeof *ref);
    for (int64_t p = 0; p < planes; p++)
        for (int64_t i = 0; i < oh; i++)
            for (int64_t j = 0; j < ow; j++) {
                const double *xp = dx + p * h * w;
                double v;
                if (mode == KILN_INTERP_MODE_BILINEAR) {
                    int64_t a0, a1, b0, b1;
                    double la, lb;
                    lin_src(i, h, oh, &a0, &a1, &la);
                    lin_src(j, w, ow, &b0, &b1, &lb);
                    v = (1 - la) * ((1 - lb) * xp[a0 * w + b0] + lb * xp[a0 * w + b1]) +
                        la * ((1 - lb) * xp[a1 * w + b0] + lb * xp[a1 * w + b1]);
                } else {
                    int ex = mode == KILN_INTERP_MODE_NEAREST_EXACT;
                    v = xp[near_src(i, h, oh, ex) * w + near_src(j, w, ow, ex)];
                }
                ref[(p * oh + i) * ow + j] = v;
            }
    CHECK_CLOSE(out, ref, F32_RTOL);
    free(ref);
    free(dx);
    kiln_tensor_release(x);
    kiln_tensor_release(out);
}

static void test_interp_random(void)
{
    rng_seed(60);
    for (int mode = 0; mode < 3; mode++) {
        for (int layout = 0; layout < 3; layout++) {
            run_interp((const int64_t[]){2, 3, 5, 7}, 10, 14, layout, mode); /* x2 */
            run_interp((const int64_t[]){1, 2, 6, 6}, 9, 4, layout, mode);   /* mixed */
            run_interp((const int64_t[]){2, 1, 12, 9}, 5, 3, layout, mode);  /* down */
            run_interp((const int64_t[]){1, 1, 3, 3}, 3, 3, layout, mode);   /* same */
        }
    }
}

static void test_interp_errors(void)
{
    kiln_tensor_t *x = tnew(KILN_DTYPE_F32, SHAPE(2, 3, 4, 4));
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(2, 3, 8, 8));
    kiln_tensor_t *bad = tnew(KILN_DTYPE_F32, SHAPE(2, 2, 8, 8));
    kiln_tensor_t *flat = tnew(KILN_DTYPE_F32, SHAPE(4, 4)),
                  *flat2 = tnew(KILN_DTYPE_F32, SHAPE(8, 8));
    kiln_tensor_t *empty = tnew(KILN_DTYPE_F32, SHAPE(2, 3, 0, 8));
    ASSERT_EQ_INT(kiln_op_add_scalar(NULL, out, out, 1.0f), 0);
    ASSERT_EQ_INT(kiln_op_interpolate(NULL, out, x, (kiln_interp_mode_t)7), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_interpolate(NULL, bad, x, KILN_INTERP_MODE_NEAREST), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_interpolate(NULL, flat2, flat, KILN_INTERP_MODE_NEAREST), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_interpolate(NULL, empty, x, KILN_INTERP_MODE_BILINEAR), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_interpolate(NULL, out, empty, KILN_INTERP_MODE_BILINEAR), KILN_EINVAL);
    ASSERT(all_equal(out, 1.0));
    kiln_tensor_release(x);
    kiln_tensor_release(out);
    kiln_tensor_release(bad);
    kiln_tensor_release(flat);
    kiln_tensor_release(flat2);
    kiln_tensor_release(empty);
}

KILN_TEST_MAIN(TEST(test_interp_2x2_to_3x3), TEST(test_interp_known_sizes),
               TEST(test_interp_random), TEST(test_interp_errors))
