/* Embeddings: the sinusoidal timestep embedding against ComfyUI's own output in the
 * sd15-tiny fixture (t_emb for timesteps 999 and 354) and against the formula for an odd
 * width; token-id lookup from F32 and F16 tables with I64 and strided I32 ids; plus the
 * range and argument errors. */
#include "runtime/safetensors.h"
#include "test_ops_common.h"

#define UNET_FIXTURE KILN_SHARED_DIR "/fixtures/sd15-tiny/unet.safetensors"

static void test_timestep_embedding_fixture(void)
{
    kiln__safetensors_t *f = NULL;
    char err[256];
    ASSERT_EQ_INT(kiln__safetensors_open(UNET_FIXTURE, &f, err, sizeof err), 0);
    kiln_tensor_t *ts = NULL, *want = NULL;
    ASSERT_EQ_INT(kiln__safetensors_tensor(f, "timestep", &ts, err, sizeof err), 0);
    ASSERT_EQ_INT(kiln__safetensors_tensor(f, "t_emb", &want, err, sizeof err), 0);
    kiln__safetensors_close(f);
    ASSERT_EQ_INT(kiln_tensor_dim(want, 0), 2);
    ASSERT_EQ_INT(kiln_tensor_dim(want, 1), 32);
    double *t = to_doubles(ts);
    ASSERT_NEAR(t[0], 999.0, 0.0);
    ASSERT_NEAR(t[1], 354.0, 0.0);
    free(t);
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(2, 32));
    ASSERT_EQ_INT(kiln_op_timestep_embedding(NULL, out, ts, 0.0f), 0); /* 10000 */
    /* Both sides round t * freq to float the same way; what is left is the last bit of
     * torch's vectorized exp/cos/sin against libm's, a few 1e-8 at |value| <= 1. */
    double *g = to_doubles(out), *w = to_doubles(want);
    for (int i = 0; i < 64; i++)
        ASSERT_NEAR(g[i], w[i], 1e-6);
    ASSERT_NEAR(g[0], cos(999.0), 1e-6);  /* column 0: freq 1, cos first */
    ASSERT_NEAR(g[16], sin(999.0), 1e-6); /* column 16: its sin */
    free(g);
    free(w);
    kiln_tensor_release(ts);
    kiln_tensor_release(want);
    kiln_tensor_release(out);
}

static void test_timestep_embedding_odd(void)
{
    /* dim 5: half 2, freqs exp(-ln(100) * [0, 1] / 2) = [1, 0.1], and a zero last column */
    kiln_tensor_t *t = tnew(KILN_DTYPE_F64, SHAPE(2));
    ((double *)kiln_tensor_data(t))[0] = 3.0;
    ((double *)kiln_tensor_data(t))[1] = 0.0;
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(2, 5));
    ASSERT_EQ_INT(kiln_op_add_scalar(NULL, out, out, 7.0f), 0);
    ASSERT_EQ_INT(kiln_op_timestep_embedding(NULL, out, t, 100.0f), 0);
    double *g = to_doubles(out);
    const double want[10] = {cos(3.0), cos(0.3), sin(3.0), sin(0.3), 0, 1, 1, 0, 0, 0};
    for (int i = 0; i < 10; i++)
        ASSERT_NEAR(g[i], want[i], 1e-6);
    free(g);
    ASSERT_EQ_INT(kiln_op_timestep_embedding(NULL, out, t, -1.0f), KILN_EINVAL);
    kiln_tensor_t *t3 = tnew(KILN_DTYPE_F32, SHAPE(3)), *ti = tnew(KILN_DTYPE_I64, SHAPE(2));
    ASSERT_EQ_INT(kiln_op_timestep_embedding(NULL, out, t3, 0.0f), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_timestep_embedding(NULL, out, ti, 0.0f), KILN_ETYPE);
    kiln_tensor_release(t3);
    kiln_tensor_release(ti);
    kiln_tensor_release(t);
    kiln_tensor_release(out);
}

static void test_embedding_lookup(void)
{
    rng_seed(70);
    for (int half = 0; half < 2; half++) {
        kiln_tensor_t *w =
            trand(half ? KILN_DTYPE_F16 : KILN_DTYPE_F32, half ? 1 : 0, 1.0, SHAPE(10, 6));
        double *dw = to_doubles(w);
        /* I64 ids [2, 3] */
        kiln_tensor_t *ids = tnew(KILN_DTYPE_I64, SHAPE(2, 3));
        const int64_t id64[6] = {0, 9, 3, 3, 7, 1};
        for (int i = 0; i < 6; i++)
            ((int64_t *)kiln_tensor_data(ids))[i] = id64[i];
        kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(2, 3, 6));
        ASSERT_EQ_INT(kiln_op_embedding(NULL, out, w, ids), 0);
        double ref[36];
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 6; j++)
                ref[i * 6 + j] = dw[id64[i] * 6 + j];
        CHECK_CLOSE(out, ref, 0.0);
        /* I32 ids read through a transposed view: [3, 2] of a [2, 3] block */
        kiln_tensor_t *base = tnew(KILN_DTYPE_I32, SHAPE(2, 3)), *idt = NULL;
        for (int i = 0; i < 6; i++)
            ((int32_t *)kiln_tensor_data(base))[i] = (int32_t)id64[i];
        ASSERT_EQ_INT(kiln_tensor_transpose(base, 0, 1, &idt), 0);
        kiln_tensor_t *out2 = tnew(KILN_DTYPE_F32, SHAPE(3, 2, 6));
        ASSERT_EQ_INT(kiln_op_embedding(NULL, out2, w, idt), 0);
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 2; c++)
                for (int j = 0; j < 6; j++)
                    ref[(r * 2 + c) * 6 + j] = dw[id64[c * 3 + r] * 6 + j];
        CHECK_CLOSE(out2, ref, 0.0);
        free(dw);
        kiln_tensor_release(base);
        kiln_tensor_release(idt);
        kiln_tensor_release(out2);
        kiln_tensor_release(ids);
        kiln_tensor_release(out);
        kiln_tensor_release(w);
    }
}

static void test_embedding_errors(void)
{
    kiln_tensor_t *w = tnew(KILN_DTYPE_F32, SHAPE(4, 3)), *ids = tnew(KILN_DTYPE_I64, SHAPE(3));
    kiln_tensor_t *out = tnew(KILN_DTYPE_F32, SHAPE(3, 3));
    ASSERT_EQ_INT(kiln_op_add_scalar(NULL, out, out, 6.0f), 0);
    int64_t *p = kiln_tensor_data(ids);
    p[0] = 1, p[1] = 4, p[2] = 0;
    ASSERT_EQ_INT(kiln_op_embedding(NULL, out, w, ids), KILN_ERANGE); /* 4 >= vocab */
    p[1] = -1;
    ASSERT_EQ_INT(kiln_op_embedding(NULL, out, w, ids), KILN_ERANGE);
    ASSERT(all_equal(out, 6.0)); /* nothing written */
    p[1] = 3;
    kiln_tensor_t *fids = tnew(KILN_DTYPE_F32, SHAPE(3)), *out4 = tnew(KILN_DTYPE_F32, SHAPE(3, 4));
    ASSERT_EQ_INT(kiln_op_embedding(NULL, out, w, fids), KILN_ETYPE);
    ASSERT_EQ_INT(kiln_op_embedding(NULL, out4, w, ids), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_op_embedding(NULL, out, ids, ids), KILN_ETYPE);
    ASSERT_EQ_INT(kiln_op_embedding(NULL, out, w, ids), 0);
    ASSERT(all_equal(out, 0.0));
    kiln_tensor_release(fids);
    kiln_tensor_release(out4);
    kiln_tensor_release(w);
    kiln_tensor_release(ids);
    kiln_tensor_release(out);
}

KILN_TEST_MAIN(TEST(test_timestep_embedding_fixture), TEST(test_timestep_embedding_odd),
               TEST(test_embedding_lookup), TEST(test_embedding_errors))
