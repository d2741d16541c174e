/* Elementwise ops: broadcasting add/sub/mul/div over contiguous and strided operands,
 * in-place calls, F16 inputs, the scalar ops, clamp, the activations and GEGLU, each
 * against double-precision references; plus the argument errors, which must leave out
 * untouched. */
#include "sched/lane.h"
#include "test_ops_common.h"

/* Reference binary op with numpy broadcasting over dense double arrays. */
static double *ref_binary(const kiln_tensor_t *a, const kiln_tensor_t *b, const kiln_tensor_t *out,
                          int op)
{
    double *da = to_doubles(a), *db = to_doubles(b);
    int nd = kiln_tensor_ndim(out), na = kiln_tensor_ndim(a), nb = kiln_tensor_ndim(b);
    int64_t n = kiln_tensor_numel(out), idx[KILN_TENSOR_MAX_DIMS] = {0};
    int64_t shape[KILN_TENSOR_MAX_DIMS];
    for (int d = 0; d < nd; d++)
        shape[d] = kiln_tensor_dim(out, d);
    double *r = malloc((size_t)(n ? n : 1) * sizeof *r);
    for (int64_t i = 0; i < n; i++) {
        int64_t ia = 0, ib = 0;
        for (int d = 0; d < na; d++) {
            int64_t s = kiln_tensor_dim(a, d);
            ia = ia * s + (s == 1 ? 0 : idx[d + nd - na]);
        }
        for (int d = 0; d < nb; d++) {
            int64_t s = kiln_tensor_dim(b, d);
            ib = ib * s + (s == 1 ? 0 : idx[d + nd - nb]);
        }
        double x = da[ia], y = db[ib];
        r[i] = op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : x / y;
        index_next(idx, nd, shape);
    }
    free(da);
    free(db);
    return r;
}

typedef int (*binary_fn)(struct kiln_lane *, kiln_tensor_t *, const kiln_tensor_t *,
                         const kiln_tensor_t *);
static const binary_fn binary_ops[4] = {kiln_op_add, kiln_op_sub, kiln_op_mul, kiln_op_div};

static void run_binary_case(int na, const int64_t *sa, int nb, const int64_t *sb, int no,
                            const int64_t *so)
{
    for (int layout = 0; layout < 3; layout++) {
        for (int op = 0; op < 4; op++) {
            kiln_tensor_t *a = trand(KILN_DTYPE_F32, layout, 2.0, na, sa);
            kiln_tensor_t *b = trand(KILN_DTYPE_F32, (layout + 1) % 3, 2.0, nb, sb);
            if (op == 3) /* keep divisors away from zero */
                ASSERT_EQ_INT(kiln_op_add_scalar(NULL, b, b, 3.0f), 0);
            kiln_tensor_t *out = trand(KILN_DTYPE_F32, layout, 1.0, no, so);
            ASSERT_EQ_INT(binary_ops[op](NULL, out, a, b), 0);
            double *ref = ref_binary(a, b, out, op);
            CHECK_CLOSE(out, ref, F32_RTOL);
            free(ref);
            kiln_tensor_release(a);
            kiln_tensor_release(b);
            kiln_tensor_release(out);
        }
    }
}

static void test_binary_broadcast(void)
{
    rng_seed(1);
    run_binary_case(SHAPE(2, 3, 5), SHAPE(2, 3, 5), SHAPE(2, 3, 5));
    run_binary_case(SHAPE(2, 3, 5), SHAPE(5), SHAPE(2, 3, 5));
    run_binary_case(SHAPE(4, 1, 7), SHAPE(3, 1), SHAPE(4, 3, 7));
    run_binary_case(SHAPE(3, 1), SHAPE(1, 6), SHAPE(3, 6));
    run_binary_case(SHAPE(1), SHAPE(2, 2, 3, 1, 5), SHAPE(2, 2, 3, 1, 5));
    run_binary_case(SHAPE(2, 1, 4, 1), SHAPE(1, 3, 1, 2), SHAPE(2, 3, 4, 2));
}

static void test_binary_known_values(void)
{
    kiln_tensor_t *a = tnew(KILN_DTYPE_F32, SHAPE(2, 2)), *b = tnew(KILN_DTYPE_F32, SHAPE(2));
    float *pa = kiln_tensor_data(a), *pb = kiln_tensor_data(b);
    pa[0] = 1, pa[1] = 2, pa[2] = 3, pa[3] = 4;
    pb[0] = 10, pb[1] = -1;
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(2, 2));
    ASSERT_EQ_INT(kiln_op_add(NULL, out, a, b), 0);
    CHECK_EXACT(out, 11, 1, 13, 3);
    ASSERT_EQ_INT(kiln_op_div(NULL, out, b, a), 0);
    CHECK_EXACT(out, 10, -0.5, (double)(10.0f / 3.0f), -0.25);
    /* a 0-dim tensor broadcasts like a scalar */
    kiln_tensor_t *s = tnew(KILN_DTYPE_F32, 0, NULL);
    *(float *)kiln_tensor_data(s) = 0.5f;
    ASSERT_EQ_INT(kiln_op_mul(NULL, out, a, s), 0);
    CHECK_EXACT(out, 0.5, 1, 1.5, 2);
    kiln_tensor_release(s);
    kiln_tensor_release(a);
    kiln_tensor_release(b);
    kiln_tensor_release(out);
}

static void test_binary_in_place_and_f16(void)
{
    rng_seed(2);
    kiln_tensor_t *a = trand(KILN_DTYPE_F32, 1, 1.0, SHAPE(3, 4, 5));
    kiln_tensor_t *b = trand(KILN_DTYPE_F16, 0, 1.0, SHAPE(4, 1));
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(3, 4, 5));
    double *ref = ref_binary(a, b, out, 1);
    ASSERT_EQ_INT(kiln_op_sub(NULL, a, a, b), 0); /* in place on a permuted view */
    CHECK_CLOSE(a, ref, F32_RTOL);
    free(ref);
    kiln_tensor_release(a);
    kiln_tensor_release(b);
    kiln_tensor_release(out);
}

static void test_binary_errors(void)
{
    kiln_tensor_t *a = tnew(KILN_DTYPE_F32, SHAPE(2, 3)), *b = tnew(KILN_DTYPE_F32, SHAPE(4));
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(2, 3));
    kiln_tensor_t *i32 = tnew(KILN_DTYPE_I32, SHAPE(2, 3));
    ASSERT_EQ_INT(kiln_op_add_scalar(NULL, out, out, 7.0f), 0);
    ASSERT_EQ_INT(kiln_op_add(NULL, out, a, b), KILN_EINVAL); /* 3 vs 4 */
    ASSERT_EQ_INT(kiln_op_add(NULL, out, a, NULL), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_add(NULL, NULL, a, a), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_add(NULL, out, a, i32), KILN_ETYPE);
    ASSERT_EQ_INT(kiln_op_add(NULL, i32, a, a), KILN_ETYPE);
    kiln_tensor_t *wide = tnew(KILN_DTYPE_F32, SHAPE(3, 3));
    ASSERT_EQ_INT(kiln_op_mul(NULL, wide, a, a), KILN_EINVAL); /* out shape */
    /* b2 is a shifted view of out's own storage: a partial overlap, refused. */
    kiln_tensor_t *row = NULL, *shifted = NULL;
    ASSERT_EQ_INT(kiln_tensor_view(out, 1, (const int64_t[]){3}, NULL, 1, &shifted), 0);
    ASSERT_EQ_INT(kiln_tensor_slice(out, 0, 0, 1, &row), 0);
    ASSERT_EQ_INT(kiln_op_add(NULL, row, shifted, shifted), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_clamp(NULL, out, a, 1.0f, -1.0f), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_clamp(NULL, out, a, NAN, 1.0f), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_silu(NULL, out, b), KILN_EINVAL);
    ASSERT(all_equal(out, 7.0));
    kiln_tensor_release(row);
    kiln_tensor_release(shifted);
    kiln_tensor_release(wide);
    kiln_tensor_release(a);
    kiln_tensor_release(b);
    kiln_tensor_release(i32);
    kiln_tensor_release(out);
}

static void test_lane_device(void)
{
    /* A CPU lane runs the op where it is called; a lane of another device is refused. */
    struct kiln_lane cpu = {.device = KILN_DEVICE_CPU}, gpu = {.device = 1};
    kiln_tensor_t *x = tnew(KILN_DTYPE_F32, SHAPE(3));
    ASSERT_EQ_INT(kiln_op_add_scalar(&cpu, x, x, 2.0f), 0);
    CHECK_EXACT(x, 2, 2, 2);
    ASSERT_EQ_INT(kiln_op_add_scalar(&gpu, x, x, 2.0f), KILN_EINVAL);
    CHECK_EXACT(x, 2, 2, 2);
    kiln_tensor_release(x);
}

static void test_scalar_and_clamp(void)
{
    kiln_tensor_t *x = tnew(KILN_DTYPE_F32, SHAPE(5));
    float *p = kiln_tensor_data(x);
    p[0] = -2, p[1] = -0.5f, p[2] = 0.25f, p[3] = 3, p[4] = NAN;
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(5));
    ASSERT_EQ_INT(kiln_op_scale(NULL, out, x, -2.0f), 0);
    CHECK_EXACT(out, 4, 1, -0.5, -6, NAN);
    ASSERT_EQ_INT(kiln_op_add_scalar(NULL, out, x, 0.5f), 0);
    CHECK_EXACT(out, -1.5, 0, 0.75, 3.5, NAN);
    ASSERT_EQ_INT(kiln_op_clamp(NULL, out, x, -1.0f, 1.0f), 0);
    CHECK_EXACT(out, -1, -0.5, 0.25, 1, NAN);
    ASSERT_EQ_INT(kiln_op_clamp(NULL, out, x, 0.0f, INFINITY), 0);
    CHECK_EXACT(out, 0, 0, 0.25, 3, NAN);
    kiln_tensor_release(x);
    kiln_tensor_release(out);
}

static double gelu_ref(double x)
{
    return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
}

static void test_activations(void)
{
    /* Known values: silu(1) = 1 / (1 + e^-1), gelu(1) = Phi(1), quick_gelu(1). */
    kiln_tensor_t *one = tnew(KILN_DTYPE_F32, SHAPE(1)), *r = tnew(KILN_DTYPE_F32, SHAPE(1));
    *(float *)kiln_tensor_data(one) = 1.0f;
    ASSERT_EQ_INT(kiln_op_silu(NULL, r, one), 0);
    ASSERT_NEAR(*(float *)kiln_tensor_data(r), 0.7310585786300049, 1e-7);
    ASSERT_EQ_INT(kiln_op_gelu(NULL, r, one), 0);
    ASSERT_NEAR(*(float *)kiln_tensor_data(r), 0.8413447460685429, 1e-7);
    ASSERT_EQ_INT(kiln_op_quick_gelu(NULL, r, one), 0);
    ASSERT_NEAR(*(float *)kiln_tensor_data(r), 0.8457957659328212, 1e-7);
    kiln_tensor_release(one);
    kiln_tensor_release(r);

    rng_seed(3);
    for (int layout = 0; layout < 3; layout++) {
        kiln_tensor_t *x = trand(KILN_DTYPE_F32, layout, 6.0, SHAPE(3, 7, 9));
        kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(3, 7, 9));
        double *dx = to_doubles(x), *ref = malloc(189 * sizeof *ref);
        for (int which = 0; which < 3; which++) {
            for (int i = 0; i < 189; i++) {
                double v = dx[i];
                ref[i] = which == 0   ? v / (1 + exp(-v))
                         : which == 1 ? gelu_ref(v)
                                      : v / (1 + exp(-1.702 * v));
            }
            int rc = which == 0   ? kiln_op_silu(NULL, out, x)
                     : which == 1 ? kiln_op_gelu(NULL, out, x)
                                  : kiln_op_quick_gelu(NULL, out, x);
            ASSERT_EQ_INT(rc, 0);
            CHECK_CLOSE(out, ref, F32_RTOL);
        }
        free(dx);
        free(ref);
        kiln_tensor_release(x);
        kiln_tensor_release(out);
    }
}

static void test_geglu(void)
{
    /* x = [value | gate]: the FIRST half is the value, the SECOND the gate. */
    kiln_tensor_t *x = tnew(KILN_DTYPE_F32, SHAPE(1, 4));
    float *p = kiln_tensor_data(x);
    p[0] = 1, p[1] = 2, p[2] = 0.5f, p[3] = -1;
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(1, 2));
    ASSERT_EQ_INT(kiln_op_geglu(NULL, out, x), 0);
    double *g = to_doubles(out);
    ASSERT_NEAR(g[0], 1 * gelu_ref(0.5), 1e-7);
    ASSERT_NEAR(g[1], 2 * gelu_ref(-1.0), 1e-7);
    free(g);
    kiln_tensor_release(x);
    kiln_tensor_release(out);

    rng_seed(4);
    for (int layout = 0; layout < 3; layout++) {
        x = trand(KILN_DTYPE_F32, layout, 3.0, SHAPE(2, 5, 22));
        out = trand(KILN_DTYPE_F32, 2 - layout, 1.0, SHAPE(2, 5, 11));
        ASSERT_EQ_INT(kiln_op_geglu(NULL, out, x), 0);
        double *dx = to_doubles(x), ref[110];
        for (int r = 0; r < 10; r++)
            for (int j = 0; j < 11; j++)
                ref[r * 11 + j] = dx[r * 22 + j] * gelu_ref(dx[r * 22 + 11 + j]);
        CHECK_CLOSE(out, ref, F32_RTOL);
        free(dx);
        ASSERT_EQ_INT(kiln_op_geglu(NULL, out, out), KILN_EINVAL);
        kiln_tensor_t *bad = tnew(KILN_DTYPE_F32, SHAPE(2, 5, 21));
        ASSERT_EQ_INT(kiln_op_geglu(NULL, out, bad), KILN_EINVAL);
        kiln_tensor_release(bad);
        kiln_tensor_release(x);
        kiln_tensor_release(out);
    }
}

KILN_TEST_MAIN(TEST(test_binary_broadcast), TEST(test_binary_known_values),
               TEST(test_binary_in_place_and_f16), TEST(test_binary_errors), TEST(test_lane_device),
               TEST(test_scalar_and_clamp), TEST(test_activations), TEST(test_geglu))
