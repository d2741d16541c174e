/* matmul (batched, broadcast batch dimensions, transposed b) and linear (F16/BF16 and
 * transposed-view weights, optional bias) against double loops, for contiguous, permuted
 * and sliced operands of odd sizes; plus the shape errors. */
#include "test_ops_common.h"

/* Row-major offset of the broadcast batch index idx (nb dims) into t's batch dims. */
static int64_t batch_offset(const kiln_tensor_t *t, const int64_t *idx, int nb)
{
    int tb = kiln_tensor_ndim(t) - 2;
    int64_t off = 0;
    for (int d = 0; d < tb; d++) {
        int64_t s = kiln_tensor_dim(t, d);
        off = off * s + (s == 1 ? 0 : idx[d + nb - tb]);
    }
    return off;
}

static double *ref_matmul(const kiln_tensor_t *a, const kiln_tensor_t *b, const kiln_tensor_t *out,
                          int tb)
{
    double *da = to_doubles(a), *db = to_doubles(b);
    int nd = kiln_tensor_ndim(out), nb = nd - 2;
    int64_t m = kiln_tensor_dim(out, -2), n = kiln_tensor_dim(out, -1), k = kiln_tensor_dim(a, -1);
    int64_t idx[KILN_TENSOR_MAX_DIMS] = {0}, bshape[KILN_TENSOR_MAX_DIMS], batches = 1;
    for (int d = 0; d < nb; d++)
        batches *= bshape[d] = kiln_tensor_dim(out, d);
    double *r = malloc((size_t)(batches * m * n) * sizeof *r);
    for (int64_t bi = 0; bi < batches; bi++) {
        const double *ma = da + batch_offset(a, idx, nb) * m * k;
        const double *mb = db + batch_offset(b, idx, nb) * k * n;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double acc = 0;
                for (int64_t p = 0; p < k; p++)
                    acc += ma[i * k + p] * (tb ? mb[j * k + p] : mb[p * n + j]);
                r[(bi * m + i) * n + j] = acc;
            }
        index_next(idx, nb, bshape);
    }
    free(da);
    free(db);
    return r;
}

static void run_matmul(int na, const int64_t *sa, int nb, const int64_t *sb, int no,
                       const int64_t *so, int tb)
{
    for (int la = 0; la < 3; la++) {
        for (int lb = 0; lb < 3; lb++) {
            kiln_tensor_t *a = trand(KILN_DTYPE_F32, la, 1.0, na, sa);
            kiln_tensor_t *b = trand(lb == 2 ? KILN_DTYPE_F16 : KILN_DTYPE_F32, lb, 1.0, nb, sb);
            kiln_tensor_t *out = tnew(KILN_DTYPE_F32, no, so);
            ASSERT_EQ_INT(kiln_op_matmul(NULL, out, a, b, tb), 0);
            double *ref = ref_matmul(a, b, out, tb);
            CHECK_CLOSE(out, ref, F32_RTOL);
            free(ref);
            kiln_tensor_release(a);
            kiln_tensor_release(b);
            kiln_tensor_release(out);
        }
    }
}

static void test_matmul(void)
{
    rng_seed(30);
    run_matmul(SHAPE(17, 33), SHAPE(33, 9), SHAPE(17, 9), 0);
    run_matmul(SHAPE(2, 3, 4, 5), SHAPE(5, 6), SHAPE(2, 3, 4, 6), 0);
    run_matmul(SHAPE(3, 5), SHAPE(2, 7, 5), SHAPE(2, 3, 7), 1);
    run_matmul(SHAPE(2, 1, 4, 8), SHAPE(3, 8, 5), SHAPE(2, 3, 4, 5), 0);
    run_matmul(SHAPE(2, 1, 4, 8), SHAPE(1, 3, 5, 8), SHAPE(2, 3, 4, 5), 1);
    run_matmul(SHAPE(1, 1), SHAPE(1, 1), SHAPE(1, 1), 0);
    run_matmul(SHAPE(1, 64), SHAPE(64, 1), SHAPE(1, 1), 0);
}

static void test_matmul_known_values(void)
{
    /* [[1, 2], [3, 4]] @ [[5, 6], [7, 8]] = [[19, 22], [43, 50]]; with b^T: [[17, 23], [39, 53]] */
    kiln_tensor_t *a = tnew(KILN_DTYPE_F32, SHAPE(2, 2)), *b = tnew(KILN_DTYPE_F32, SHAPE(2, 2));
    float *pa = kiln_tensor_data(a), *pb = kiln_tensor_data(b);
    for (int i = 0; i < 4; i++) {
        pa[i] = (float)(i + 1);
        pb[i] = (float)(i + 5);
    }
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(2, 2));
    ASSERT_EQ_INT(kiln_op_matmul(NULL, out, a, b, 0), 0);
    CHECK_EXACT(out, 19, 22, 43, 50);
    ASSERT_EQ_INT(kiln_op_matmul(NULL, out, a, b, 1), 0);
    CHECK_EXACT(out, 17, 23, 39, 53);
    kiln_tensor_release(a);
    kiln_tensor_release(b);
    kiln_tensor_release(out);
}

static void run_linear(int nx, const int64_t *sx, int64_t in, int64_t nout, int lx, int lw,
                       kiln_dtype_t wdt, int bias)
{
    kiln_tensor_t *x = trand(KILN_DTYPE_F32, lx, 1.0, nx, sx);
    kiln_tensor_t *w = trand(wdt, lw, 0.5, SHAPE(nout, in));
    kiln_tensor_t *b = bias ? trand(KILN_DTYPE_F32, 0, 1.0, SHAPE(nout)) : NULL;
    int64_t so[KILN_TENSOR_MAX_DIMS];
    for (int d = 0; d < nx - 1; d++)
        so[d] = sx[d];
    so[nx - 1] = nout;
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, nx, so);
    ASSERT_EQ_INT(kiln_op_linear(NULL, out, x, w, b), 0);
    double *dx = to_doubles(x), *dw = to_doubles(w), *db = b ? to_doubles(b) : NULL;
    int64_t rows = kiln_tensor_numel(x) / in;
    double *ref = malloc((size_t)(rows * nout) * sizeof *ref);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t o = 0; o < nout; o++) {
            double acc = db ? db[o] : 0;
            for (int64_t i = 0; i < in; i++)
                acc += dx[r * in + i] * dw[o * in + i];
            ref[r * nout + o] = acc;
        }
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

static void test_linear(void)
{
    rng_seed(31);
    for (int lx = 0; lx < 3; lx++) {
        for (int lw = 0; lw < 3; lw++) {
            run_linear(SHAPE(2, 5, 33), 33, 17, lx, lw, KILN_DTYPE_F32, lw != 1);
            run_linear(SHAPE(7, 12), 12, 1, lx, lw, KILN_DTYPE_F16, 1);
        }
    }
    run_linear(SHAPE(40), 40, 9, 0, 0, KILN_DTYPE_BF16, 1);
    run_linear(SHAPE(2, 77, 320), 320, 320, 0, 0, KILN_DTYPE_F32, 1);
    run_linear(SHAPE(3, 1, 4, 16), 16, 24, 1, 1, KILN_DTYPE_F16, 0);
}

static void test_product_errors(void)
{
    kiln_tensor_t *a = tnew(KILN_DTYPE_F32, SHAPE(2, 3, 4)),
                  *b = tnew(KILN_DTYPE_F32, SHAPE(3, 4, 5));
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(2, 3, 5)), *v = tnew(KILN_DTYPE_F32, SHAPE(4));
    ASSERT_EQ_INT(kiln_op_add_scalar(NULL, out, out, 9.0f), 0);
    ASSERT_EQ_INT(kiln_op_matmul(NULL, out, a, b, 0), KILN_EINVAL); /* batch 2 vs 3 */
    ASSERT_EQ_INT(kiln_op_matmul(NULL, out, a, b, 1), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_matmul(NULL, out, a, v, 0), KILN_EINVAL); /* 1-D b */
    ASSERT_EQ_INT(kiln_op_matmul(NULL, out, a, a, 0), KILN_EINVAL); /* K 4 vs 3 */
    kiln_tensor_t *w = tnew(KILN_DTYPE_F32, SHAPE(5, 4)), *bias = tnew(KILN_DTYPE_F32, SHAPE(4));
    ASSERT_EQ_INT(kiln_op_linear(NULL, out, a, w, bias), KILN_EINVAL); /* bias [4] */
    ASSERT_EQ_INT(kiln_op_linear(NULL, out, a, b, NULL), KILN_EINVAL); /* 3-D weight */
    ASSERT_EQ_INT(kiln_op_linear(NULL, out, out, w, NULL), KILN_EINVAL);
    kiln_tensor_t *ids = tnew(KILN_DTYPE_I32, SHAPE(5, 4));
    ASSERT_EQ_INT(kiln_op_linear(NULL, out, a, ids, NULL), KILN_ETYPE);
    ASSERT(all_equal(out, 9.0));
    ASSERT_EQ_INT(kiln_op_linear(NULL, out, a, w, NULL), 0);
    ASSERT(all_equal(out, 0.0));
    kiln_tensor_release(ids);
    kiln_tensor_release(w);
    kiln_tensor_release(bias);
    kiln_tensor_release(a);
    kiln_tensor_release(b);
    kiln_tensor_release(v);
    kiln_tensor_release(out);
}

KILN_TEST_MAIN(TEST(test_matmul), TEST(test_matmul_known_values), TEST(test_linear),
               TEST(test_product_errors))
