/* Data-movement ops: contiguous (with dtype conversion), permute, transpose, slice and
 * concat, from contiguous and strided sources, against index arithmetic done here; plus
 * their argument errors. */
#include "test_ops_common.h"

static void test_contiguous(void)
{
    rng_seed(10);
    for (int layout = 0; layout < 3; layout++) {
        kiln_tensor_t *x = trand(KILN_DTYPE_F32, layout, 1.0, SHAPE(3, 4, 5, 2));
        kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(3, 4, 5, 2));
        ASSERT_EQ_INT(kiln_op_contiguous(NULL, out, x), 0);
        double *want = to_doubles(x);
        CHECK_CLOSE(out, want, 0.0); /* bit-exact copy */
        /* F32 -> F16 rounds each element to nearest even */
        kiln_tensor_t *half = tnew(KILN_DTYPE_F16, SHAPE(3, 4, 5, 2));
        ASSERT_EQ_INT(kiln_op_contiguous(NULL, half, x), 0);
        double *h = to_doubles(half);
        for (int i = 0; i < 120; i++)
            ASSERT_NEAR(h[i], kiln__f16_to_f32(kiln__f32_to_f16((float)want[i])), 0.0);
        free(h);
        free(want);
        kiln_tensor_release(half);
        kiln_tensor_release(x);
        kiln_tensor_release(out);
    }
    /* integers copy as integers; integers also widen to float */
    kiln_tensor_t *ids = tnew(KILN_DTYPE_I64, SHAPE(2, 3)), *t = NULL;
    int64_t *pi = kiln_tensor_data(ids);
    for (int i = 0; i < 6; i++)
        pi[i] = (int64_t)1 << (40 + i);
    ASSERT_EQ_INT(kiln_tensor_transpose(ids, 0, 1, &t), 0);
    kiln_tensor_t *ids_t = tnew(KILN_DTYPE_I64, SHAPE(3, 2));
    ASSERT_EQ_INT(kiln_op_contiguous(NULL, ids_t, t), 0);
    const int64_t *po = kiln_tensor_data(ids_t);
    ASSERT(po[0] == pi[0] && po[1] == pi[3] && po[2] == pi[1] && po[5] == pi[5]);
    kiln_tensor_t *f = tnew(KILN_DTYPE_F32, SHAPE(3, 2));
    ASSERT_EQ_INT(kiln_op_contiguous(NULL, f, t), 0);
    ASSERT_NEAR(((float *)kiln_tensor_data(f))[1], 0x1p43, 0.0);
    kiln_tensor_t *i32 = tnew(KILN_DTYPE_I32, SHAPE(3, 2));
    ASSERT_EQ_INT(kiln_op_contiguous(NULL, i32, t), KILN_ETYPE);  /* no narrowing */
    ASSERT_EQ_INT(kiln_op_contiguous(NULL, i32, f), KILN_ETYPE);  /* no float -> int */
    ASSERT_EQ_INT(kiln_op_contiguous(NULL, f, ids), KILN_EINVAL); /* [2, 3] vs [3, 2] */
    ASSERT_EQ_INT(kiln_op_contiguous(NULL, ids_t, t), 0);
    kiln_tensor_t *alias = NULL; /* ids seen as [3, 2] */
    ASSERT_EQ_INT(kiln_tensor_view(ids, 2, (const int64_t[]){3, 2}, NULL, 0, &alias), 0);
    ASSERT_EQ_INT(kiln_op_contiguous(NULL, alias, t), KILN_EINVAL); /* out overlaps x */
    ASSERT(pi[1] == (int64_t)1 << 41);
    kiln_tensor_release(alias);
    kiln_tensor_release(i32);
    kiln_tensor_release(f);
    kiln_tensor_release(ids_t);
    kiln_tensor_release(t);
    kiln_tensor_release(ids);
}

static void test_permute_transpose(void)
{
    rng_seed(11);
    for (int layout = 0; layout < 3; layout++) {
        kiln_tensor_t *x = trand(KILN_DTYPE_F32, layout, 1.0, SHAPE(2, 3, 4, 5));
        double *dx = to_doubles(x);
        int perm[4] = {0, 2, 3, -3}; /* NCHW -> NHWC; -3 is dimension 1 */
        kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(2, 4, 5, 3));
        ASSERT_EQ_INT(kiln_op_permute(NULL, out, x, perm), 0);
        double ref[120];
        for (int n = 0; n < 2; n++)
            for (int c = 0; c < 3; c++)
                for (int h = 0; h < 4; h++)
                    for (int w = 0; w < 5; w++)
                        ref[((n * 4 + h) * 5 + w) * 3 + c] = dx[((n * 3 + c) * 4 + h) * 5 + w];
        CHECK_CLOSE(out, ref, 0.0);
        kiln_tensor_release(out);
        out = tnew(KILN_DTYPE_F32, SHAPE(2, 5, 4, 3));
        ASSERT_EQ_INT(kiln_op_transpose(NULL, out, x, 1, -1), 0);
        for (int n = 0; n < 2; n++)
            for (int c = 0; c < 3; c++)
                for (int h = 0; h < 4; h++)
                    for (int w = 0; w < 5; w++)
                        ref[((n * 5 + w) * 4 + h) * 3 + c] = dx[((n * 3 + c) * 4 + h) * 5 + w];
        CHECK_CLOSE(out, ref, 0.0);
        int bad[4] = {0, 1, 1, 2};
        ASSERT_EQ_INT(kiln_op_permute(NULL, out, x, bad), KILN_EINVAL);
        ASSERT_EQ_INT(kiln_op_permute(NULL, out, x, perm), KILN_EINVAL); /* wrong out */
        ASSERT_EQ_INT(kiln_op_transpose(NULL, out, x, 1, 4), KILN_EINVAL);
        free(dx);
        kiln_tensor_release(out);
        kiln_tensor_release(x);
    }
}

static void test_slice(void)
{
    rng_seed(12);
    kiln_tensor_t *x = trand(KILN_DTYPE_F32, 1, 1.0, SHAPE(4, 7, 3));
    double *dx = to_doubles(x);
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(4, 3, 3));
    ASSERT_EQ_INT(kiln_op_slice(NULL, out, x, -2, 2), 0); /* x[:, 2:5, :] */
    double ref[36];
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 3; c++)
                ref[(a * 3 + b) * 3 + c] = dx[(a * 7 + b + 2) * 3 + c];
    CHECK_CLOSE(out, ref, 0.0);
    ASSERT_EQ_INT(kiln_op_slice(NULL, out, x, 1, 5), KILN_EINVAL); /* 5 + 3 > 7 */
    ASSERT_EQ_INT(kiln_op_slice(NULL, out, x, 1, -1), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_slice(NULL, out, x, 0, 0), KILN_EINVAL); /* other dims differ */
    ASSERT_EQ_INT(kiln_op_slice(NULL, out, x, 3, 0), KILN_EINVAL);
    CHECK_CLOSE(out, ref, 0.0);
    free(dx);
    kiln_tensor_release(out);
    kiln_tensor_release(x);
}

/* concat of pieces with sizes len[] along dim d of a [2, *, 3]-like shape. */
static void run_concat(int d, const int64_t *len, int n)
{
    kiln_tensor_t *xs[4];
    double *dxs[4];
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        int64_t shape[3] = {2, 4, 3};
        shape[d] = len[i];
        xs[i] = trand(i == 1 ? KILN_DTYPE_BF16 : KILN_DTYPE_F32, i % 3, 1.0, 3, shape);
        dxs[i] = to_doubles(xs[i]);
        total += len[i];
    }
    int64_t oshape[3] = {2, 4, 3};
    oshape[d] = total;
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, 3, oshape);
    ASSERT_EQ_INT(kiln_op_concat(NULL, out, (const kiln_tensor_t *const *)xs, n, d - 3), 0);
    double *ref = malloc((size_t)kiln_tensor_numel(out) * sizeof *ref);
    int64_t idx[3] = {0, 0, 0};
    for (int64_t e = 0; e < kiln_tensor_numel(out); e++) {
        int64_t at = idx[d], piece = 0;
        while (at >= len[piece])
            at -= len[piece++];
        int64_t s[3] = {2, 4, 3};
        s[d] = len[piece];
        int64_t j[3] = {idx[0], idx[1], idx[2]};
        j[d] = at;
        ref[e] = dxs[piece][(j[0] * s[1] + j[1]) * s[2] + j[2]];
        index_next(idx, 3, oshape);
    }
    CHECK_CLOSE(out, ref, 0.0);
    free(ref);
    for (int i = 0; i < n; i++) {
        free(dxs[i]);
        kiln_tensor_release(xs[i]);
    }
    kiln_tensor_release(out);
}

static void test_concat(void)
{
    rng_seed(13);
    run_concat(0, (const int64_t[]){1, 2, 3}, 3);
    run_concat(1, (const int64_t[]){5, 0, 2}, 3);
    run_concat(2, (const int64_t[]){1, 1, 4, 2}, 4);
    run_concat(1, (const int64_t[]){3}, 1);
}

static void test_concat_errors(void)
{
    kiln_tensor_t *a = tnew(KILN_DTYPE_F32, SHAPE(2, 3)), *b = tnew(KILN_DTYPE_F32, SHAPE(2, 4));
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(2, 7));
    ASSERT_EQ_INT(kiln_op_add_scalar(NULL, out, out, 5.0f), 0);
    const kiln_tensor_t *ok[2] = {a, b}, *bad[2] = {a, a}, *null[2] = {a, NULL};
    ASSERT_EQ_INT(kiln_op_concat(NULL, out, ok, 2, 0), KILN_EINVAL);  /* rows differ */
    ASSERT_EQ_INT(kiln_op_concat(NULL, out, bad, 2, 1), KILN_EINVAL); /* 3 + 3 != 7 */
    ASSERT_EQ_INT(kiln_op_concat(NULL, out, null, 2, 1), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_concat(NULL, out, ok, 0, 1), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_concat(NULL, out, ok, 2, 2), KILN_EINVAL);
    kiln_tensor_t *part = NULL;
    ASSERT_EQ_INT(kiln_tensor_slice(out, 1, 0, 3, &part), 0);
    const kiln_tensor_t *self[2] = {part, b};
    ASSERT_EQ_INT(kiln_op_concat(NULL, out, self, 2, 1), KILN_EINVAL); /* overlap */
    ASSERT(all_equal(out, 5.0));
    ASSERT_EQ_INT(kiln_op_concat(NULL, out, ok, 2, -1), 0);
    ASSERT(all_equal(out, 0.0));
    kiln_tensor_release(part);
    kiln_tensor_release(a);
    kiln_tensor_release(b);
    kiln_tensor_release(out);
}

KILN_TEST_MAIN(TEST(test_contiguous), TEST(test_permute_transpose), TEST(test_slice),
               TEST(test_concat), TEST(test_concat_errors))
