/* Attention against a naive softmax(scale Q K^T) V in double: self and cross attention
 * (LQ != LK), several heads, a value width different from the key width, strided
 * operands, query counts that split into uneven blocks, and a 4096 x 4096 case that must
 * run without a full score matrix (checked through the kernels' scratch high-water mark);
 * plus the shape errors. */
#include "kernels/cpu/cpu_ops.h"
#include "test_ops_common.h"

/* Reference output rows [r0, r1) of one batch entry b, all heads: dense doubles of
 * q [B, LQ, H*D], k [B, LK, H*D], v [B, LK, H*DV]. */
static void ref_rows(const double *q, const double *k, const double *v, int64_t lq, int64_t lk,
                     int64_t h, int64_t d, int64_t dv, double scale, int64_t b, int64_t r0,
                     int64_t r1, double *out)
{
    double *s = malloc((size_t)lk * sizeof *s);
    for (int64_t r = r0; r < r1; r++) {
        for (int64_t hh = 0; hh < h; hh++) {
            const double *qr = q + (b * lq + r) * h * d + hh * d;
            double m = -INFINITY, sum = 0;
            for (int64_t j = 0; j < lk; j++) {
                const double *kr = k + (b * lk + j) * h * d + hh * d;
                double acc = 0;
                for (int64_t i = 0; i < d; i++)
                    acc += qr[i] * kr[i];
                s[j] = acc * scale;
                m = fmax(m, s[j]);
            }
            for (int64_t j = 0; j < lk; j++)
                sum += s[j] = exp(s[j] - m);
            for (int64_t i = 0; i < dv; i++) {
                double acc = 0;
                for (int64_t j = 0; j < lk; j++)
                    acc += s[j] * v[(b * lk + j) * h * dv + hh * dv + i];
                out[(r - r0) * h * dv + hh * dv + i] = acc / sum;
            }
        }
    }
    free(s);
}

static void run_attention(int64_t nb, int64_t lq, int64_t lk, int64_t h, int64_t d, int64_t dv,
                          float scale, int layout)
{
    kiln_tensor_t *q = trand(KILN_DTYPE_F32, layout, 1.5, SHAPE(nb, lq, h * d));
    kiln_tensor_t *k = trand(KILN_DTYPE_F32, (layout + 1) % 3, 1.5, SHAPE(nb, lk, h * d));
    kiln_tensor_t *v = trand(layout == 2 ? KILN_DTYPE_F16 : KILN_DTYPE_F32, (layout + 2) % 3, 1.0,
                             SHAPE(nb, lk, h * dv));
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(nb, lq, h * dv));
    ASSERT_EQ_INT(kiln_op_attention(NULL, out, q, k, v, (int)h, scale), 0);
    double *dq = to_doubles(q), *dk = to_doubles(k), *dvv = to_doubles(v);
    double *ref = malloc((size_t)(nb * lq * h * dv) * sizeof *ref);
    double sc = scale == 0.0f ? 1.0 / sqrt((double)d) : scale;
    for (int64_t b = 0; b < nb; b++)
        ref_rows(dq, dk, dvv, lq, lk, h, d, dv, sc, b, 0, lq, ref + b * lq * h * dv);
    CHECK_CLOSE(out, ref, F32_RTOL);
    free(ref);
    free(dq);
    free(dk);
    free(dvv);
    kiln_tensor_release(q);
    kiln_tensor_release(k);
    kiln_tensor_release(v);
    kiln_tensor_release(out);
}

static void test_attention_small(void)
{
    rng_seed(50);
    for (int layout = 0; layout < 3; layout++) {
        run_attention(2, 7, 5, 3, 4, 4, 0.0f, layout);   /* cross attention */
        run_attention(1, 33, 33, 2, 8, 8, 0.0f, layout); /* self attention */
        run_attention(2, 5, 9, 2, 3, 6, 0.3f, layout);   /* DV != D, explicit scale */
        run_attention(1, 4, 1, 1, 5, 2, 0.0f, layout);   /* a single key */
    }
}

static void test_attention_blocks(void)
{
    /* 4100 keys: blocks of 127 query rows, so 300 rows split 127 + 127 + 46. */
    rng_seed(51);
    run_attention(1, 300, 4100, 2, 4, 4, 0.0f, 0);
}

static void test_attention_long(void)
{
    /* 4096 x 4096 scores per head would be 64 MiB; the kernel may only use a block. */
    rng_seed(52);
    int64_t l = 4096, h = 2, d = 4;
    kiln_tensor_t *q = trand(KILN_DTYPE_F32, 0, 2.0, SHAPE(1, l, h * d));
    kiln_tensor_t *k = trand(KILN_DTYPE_F32, 0, 2.0, SHAPE(1, l, h * d));
    kiln_tensor_t *v = trand(KILN_DTYPE_F32, 0, 1.0, SHAPE(1, l, h * d));
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(1, l, h * d));
    kiln__cpu_scratch_peak(1);
    ASSERT_EQ_INT(kiln_op_attention(NULL, out, q, k, v, (int)h, 0.0f), 0);
    size_t peak = kiln__cpu_scratch_peak(1);
    ASSERT_CMP_INT(peak, >, 0);
    ASSERT_CMP_INT(peak, <=, (size_t)4 << 20); /* at most a 4 MiB block */
    double *dq = to_doubles(q), *dk = to_doubles(k), *dv = to_doubles(v), *g = to_doubles(out);
    const int64_t rows[] = {0, 1, 1234, 2048, 4095};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        double ref[8];
        ref_rows(dq, dk, dv, l, l, h, d, d, 0.5, 0, rows[i], rows[i] + 1, ref);
        for (int j = 0; j < 8; j++)
            ASSERT_NEAR(g[rows[i] * 8 + j], ref[j], 1e-5 * (fabs(ref[j]) + 0.1));
    }
    free(dq);
    free(dk);
    free(dv);
    free(g);
    kiln_tensor_release(q);
    kiln_tensor_release(k);
    kiln_tensor_release(v);
    kiln_tensor_release(out);
}

static void test_attention_errors(void)
{
    kiln_tensor_t *q = tnew(KILN_DTYPE_F32, SHAPE(2, 5, 12)),
                  *k = tnew(KILN_DTYPE_F32, SHAPE(2, 7, 12));
    kiln_tensor_t *v = tnew(KILN_DTYPE_F32, SHAPE(2, 7, 12)),
                  *out = tnew(KILN_DTYPE_F32, SHAPE(2, 5, 12));
    kiln_tensor_t *k8 = tnew(KILN_DTYPE_F32, SHAPE(2, 7, 8)),
                  *v6 = tnew(KILN_DTYPE_F32, SHAPE(2, 6, 12));
    kiln_tensor_t *empty = tnew(KILN_DTYPE_F32, SHAPE(2, 0, 12));
    ASSERT_EQ_INT(kiln_op_add_scalar(NULL, out, out, 2.0f), 0);
    ASSERT_EQ_INT(kiln_op_attention(NULL, out, q, k, v, 5, 0.0f), KILN_EINVAL); /* 12 % 5 */
    ASSERT_EQ_INT(kiln_op_attention(NULL, out, q, k, v, 0, 0.0f), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_attention(NULL, out, q, k8, v, 4, 0.0f), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_attention(NULL, out, q, k, v6, 4, 0.0f), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_attention(NULL, out, q, empty, empty, 4, 0.0f), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_attention(NULL, out, q, k, v, 4, NAN), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_attention(NULL, out, k, k, v, 4, 0.0f), KILN_EINVAL);   /* out LQ */
    ASSERT_EQ_INT(kiln_op_attention(NULL, out, out, k, v, 4, 0.0f), KILN_EINVAL); /* alias */
    ASSERT(all_equal(out, 2.0));
    kiln_tensor_release(q);
    kiln_tensor_release(k);
    kiln_tensor_release(v);
    kiln_tensor_release(k8);
    kiln_tensor_release(v6);
    kiln_tensor_release(empty);
    kiln_tensor_release(out);
}

KILN_TEST_MAIN(TEST(test_attention_small), TEST(test_attention_blocks),
               TEST_TIMEOUT(test_attention_long, 120), TEST(test_attention_errors))
