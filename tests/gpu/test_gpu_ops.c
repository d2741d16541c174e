/* Every CUDA op against the CPU backend on fresh random inputs: several shapes, strided
 * (permuted and sliced) device views, broadcasting, in-place calls, F16/BF16 inputs and
 * outputs, and outputs poisoned with NaN beforehand so that an element a kernel skipped
 * fails. float32 results must agree within 1e-5 relative (TF32 stays off); F16/BF16
 * storage within its rounding. */
#include "gpu_common.h"

#include <stdarg.h>
#include <stdio.h>

/* ---- helpers for the norm and GEGLU cases ---------------------------------------------------- */

static const char *dt_name(kiln_dtype_t dt)
{
    return dt == KILN_DTYPE_F32 ? "f32" : dt == KILN_DTYPE_F16 ? "f16" : "bf16";
}

static double dt_rtol(kiln_dtype_t dt)
{
    if (dt == KILN_DTYPE_F32)
        return GPU_F32_RTOL;
    return dt == KILN_DTYPE_F16 ? GPU_F16_RTOL : GPU_BF16_RTOL;
}

/* CHECK_GPU's comparison, with the case named in the failure message. */
static void check_named(const kiln_tensor_t *got, const kiln_tensor_t *want, double rtol,
                        const char *fmt, ...)
{
    char name[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    kiln_tensor_t *h = to_host(got);
    ASSERT_EQ_INT(kiln_tensor_numel(h), kiln_tensor_numel(want));
    int64_t n = kiln_tensor_numel(h);
    double *g = to_doubles(h), *ref = to_doubles(want), mean = 0.0;
    for (int64_t i = 0; i < n; i++)
        mean += fabs(ref[i]) / (double)n;
    for (int64_t i = 0; i < n; i++) {
        double tol = rtol * (fabs(ref[i]) + mean) + 1e-30;
        if (!(fabs(g[i] - ref[i]) <= tol))
            kiln_test_fail(__FILE__, __LINE__, "%s: element %lld: got %.9g, want %.9g (tol %.3g)",
                           name, (long long)i, g[i], ref[i], tol);
    }
    free(g);
    free(ref);
    kiln_tensor_release(h);
}

/* Base shape of a view made by pair_at (xl 1 is 4-D only). */
static void pair_base_shape(int xl, int ndim, const int64_t *shape, int64_t *bs)
{
    for (int d = 0; d < ndim; d++)
        bs[d] = shape[d] + (xl == 2);
    if (xl == 1) { /* [N, H, W, C] */
        bs[1] = shape[2];
        bs[2] = shape[3];
        bs[3] = shape[1];
    }
}

/* A host tensor of `shape` holding ofs + uniform(-scale, scale) and the same view over a
 * device copy of its storage. xl 0: contiguous; 1: channels-last (a [N, H, W, C] tensor
 * permuted to [N, C, H, W]); 2: a slice of a tensor one longer in every dimension. */
static void pair_at(kiln_dtype_t dt, int xl, double scale, double ofs, int ndim,
                    const int64_t *shape, kiln_tensor_t **host, kiln_tensor_t **dev)
{
    int64_t bs[KILN_TENSOR_MAX_DIMS], idx[KILN_TENSOR_MAX_DIMS] = {0};
    pair_base_shape(xl, ndim, shape, bs);
    kiln_tensor_t *hb = tnew(dt, ndim, bs);
    do
        elem_set(hb, idx, ofs + rng_uniform() * scale);
    while (index_next(idx, ndim, bs));
    kiln_tensor_t *db = to_gpu(hb);
    if (xl == 1) {
        static const int to_cl[4] = {0, 3, 1, 2};
        ASSERT_EQ_INT(kiln_tensor_permute(hb, to_cl, host), 0);
        ASSERT_EQ_INT(kiln_tensor_permute(db, to_cl, dev), 0);
    } else {
        kiln_tensor_t *hc = hb, *dc = db;
        kiln_tensor_retain(hc);
        kiln_tensor_retain(dc);
        for (int d = 0; xl == 2 && d < ndim; d++) {
            kiln_tensor_t *hn = NULL, *dn = NULL;
            ASSERT_EQ_INT(kiln_tensor_slice(hc, d, 1, shape[d], &hn), 0);
            ASSERT_EQ_INT(kiln_tensor_slice(dc, d, 1, shape[d], &dn), 0);
            kiln_tensor_release(hc);
            kiln_tensor_release(dc);
            hc = hn;
            dc = dn;
        }
        *host = hc;
        *dev = dc;
    }
    kiln_tensor_release(hb);
    kiln_tensor_release(db);
}

/* A poisoned device tensor of `shape`: contiguous (cl 0) or channels-last (cl 1). */
static kiln_tensor_t *poisoned_at(kiln_dtype_t dt, int cl, int ndim, const int64_t *shape)
{
    int64_t bs[KILN_TENSOR_MAX_DIMS];
    pair_base_shape(cl ? 1 : 0, ndim, shape, bs);
    kiln_tensor_t *b = gpu_poisoned(dt, ndim, bs), *v = NULL;
    if (!cl)
        return b;
    static const int to_cl[4] = {0, 3, 1, 2};
    ASSERT_EQ_INT(kiln_tensor_permute(b, to_cl, &v), 0);
    kiln_tensor_release(b);
    return v;
}

/* ---- elementwise ------------------------------------------------------------------------ */

typedef int (*un_fn)(struct kiln_lane *, kiln_tensor_t *, const kiln_tensor_t *);

static int op_scale(struct kiln_lane *l, kiln_tensor_t *o, const kiln_tensor_t *x)
{
    return kiln_op_scale(l, o, x, -1.75f);
}
static int op_add_s(struct kiln_lane *l, kiln_tensor_t *o, const kiln_tensor_t *x)
{
    return kiln_op_add_scalar(l, o, x, 0.625f);
}
static int op_clamp(struct kiln_lane *l, kiln_tensor_t *o, const kiln_tensor_t *x)
{
    return kiln_op_clamp(l, o, x, -0.3f, 0.45f);
}

static void test_unary(void)
{
    need_gpu();
    un_fn ops[] = {op_scale, op_add_s, op_clamp, kiln_op_silu, kiln_op_gelu, kiln_op_quick_gelu};
    for (int layout = 0; layout < 3; layout++) {
        for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
            rng_seed(100 + layout * 10 + i);
            kiln_tensor_t *h, *d;
            pair_rand(layout == 2 ? KILN_DTYPE_F16 : KILN_DTYPE_F32, layout, 6.0,
                      SHAPE(3, 5, 67), &h, &d);
            kiln_tensor_t *want = tnew(KILN_DTYPE_F32, SHAPE(3, 5, 67));
            kiln_tensor_t *got = gpu_poisoned(KILN_DTYPE_F32, SHAPE(3, 5, 67));
            kiln_tensor_t *got16 = gpu_poisoned(KILN_DTYPE_F16, SHAPE(3, 5, 67));
            ASSERT_EQ_INT(ops[i](NULL, want, h), 0);
            ASSERT_EQ_INT(ops[i](NULL, got, d), 0);
            ASSERT_EQ_INT(ops[i](NULL, got16, d), 0);
            CHECK_GPU(got, want, GPU_F32_RTOL);
            CHECK_GPU(got16, want, GPU_F16_RTOL);
            kiln_tensor_release(h);
            kiln_tensor_release(d);
            kiln_tensor_release(want);
            kiln_tensor_release(got);
            kiln_tensor_release(got16);
        }
    }
}

typedef int (*bin_fn)(struct kiln_lane *, kiln_tensor_t *, const kiln_tensor_t *,
                      const kiln_tensor_t *);

static void binary_case(bin_fn op, int layout, int ndim_b, const int64_t *shape_b)
{
    kiln_tensor_t *ha, *da, *hb, *db;
    pair_rand(KILN_DTYPE_F32, layout, 2.0, SHAPE(2, 3, 4, 33), &ha, &da);
    /* b in [1, 3), away from zero for the divisions; BF16 for one layout */
    kiln_tensor_t *h32 = tnew(KILN_DTYPE_F32, ndim_b, shape_b);
    fill_random(h32, 1.0);
    ASSERT_EQ_INT(kiln_op_add_scalar(NULL, h32, h32, 2.0f), 0);
    ASSERT_EQ_INT(kiln_tensor_to_dtype(h32, layout == 1 ? KILN_DTYPE_BF16 : KILN_DTYPE_F32, &hb),
                  0);
    db = to_gpu(hb);
    kiln_tensor_release(h32);
    kiln_tensor_t *want = tnew(KILN_DTYPE_F32, SHAPE(2, 3, 4, 33));
    kiln_tensor_t *got = gpu_poisoned(KILN_DTYPE_F32, SHAPE(2, 3, 4, 33));
    ASSERT_EQ_INT(op(NULL, want, ha, hb), 0);
    ASSERT_EQ_INT(op(NULL, got, da, db), 0);
    CHECK_GPU(got, want, GPU_F32_RTOL);
    kiln_tensor_release(ha);
    kiln_tensor_release(da);
    kiln_tensor_release(hb);
    kiln_tensor_release(db);
    kiln_tensor_release(want);
    kiln_tensor_release(got);
}

static void test_binary_broadcast(void)
{
    need_gpu();
    bin_fn ops[] = {kiln_op_add, kiln_op_sub, kiln_op_mul, kiln_op_div};
    for (size_t i = 0; i < 4; i++) {
        for (int layout = 0; layout < 3; layout++) {
            rng_seed(200 + i * 10 + layout);
            binary_case(ops[i], layout, SHAPE(2, 3, 4, 33));
            binary_case(ops[i], layout, SHAPE(33));
            binary_case(ops[i], layout, SHAPE(3, 1, 1));
            binary_case(ops[i], layout, SHAPE(2, 1, 4, 1));
        }
    }
}

/* out = a + out in place on the device, and a dense float32 set (the vector path). */
static void test_binary_in_place(void)
{
    need_gpu();
    rng_seed(250);
    kiln_tensor_t *ha, *da, *hb, *db;
    pair_rand(KILN_DTYPE_F32, 0, 1.0, SHAPE(64, 1000), &ha, &da);
    pair_rand(KILN_DTYPE_F32, 0, 1.0, SHAPE(64, 1000), &hb, &db);
    ASSERT_EQ_INT(kiln_op_mul(NULL, hb, ha, hb), 0);
    ASSERT_EQ_INT(kiln_op_mul(NULL, db, da, db), 0);
    CHECK_GPU(db, hb, GPU_F32_RTOL);
    kiln_tensor_release(ha);
    kiln_tensor_release(da);
    kiln_tensor_release(hb);
    kiln_tensor_release(db);
}

static void test_geglu(void)
{
    need_gpu();
    for (int layout = 0; layout < 3; layout++) {
        rng_seed(300 + layout);
        kiln_tensor_t *h, *d;
        pair_rand(KILN_DTYPE_F32, layout, 3.0, SHAPE(3, 7, 2 * 40), &h, &d);
        kiln_tensor_t *want = tnew(KILN_DTYPE_F32, SHAPE(3, 7, 40));
        kiln_tensor_t *got = gpu_poisoned(KILN_DTYPE_F32, SHAPE(3, 7, 40));
        ASSERT_EQ_INT(kiln_op_geglu(NULL, want, h), 0);
        ASSERT_EQ_INT(kiln_op_geglu(NULL, got, d), 0);
        CHECK_GPU(got, want, GPU_F32_RTOL);
        kiln_tensor_release(h);
        kiln_tensor_release(d);
        kiln_tensor_release(want);
        kiln_tensor_release(got);
    }
}

/* GEGLU of x, a view [rows, 2h] of a base [rows, 2h + xpad] from column xstart, into out,
 * a view [rows, h] of a poisoned base [rows, h + opad] from column opad, whose first opad
 * columns must stay untouched. Covers the vector path (16-byte and 2-element vectors,
 * strided rows) and the cases it leaves to the general kernel. */
static void geglu_view_case(kiln_dtype_t dt, kiln_dtype_t odt, int64_t rows, int64_t h,
                            int64_t xpad, int64_t xstart, int64_t opad)
{
    kiln_tensor_t *hb, *db, *hx = NULL, *dx = NULL, *got = NULL;
    pair_at(dt, 0, 3.0, 0.0, SHAPE(rows, 2 * h + xpad), &hb, &db);
    ASSERT_EQ_INT(kiln_tensor_slice(hb, 1, xstart, 2 * h, &hx), 0);
    ASSERT_EQ_INT(kiln_tensor_slice(db, 1, xstart, 2 * h, &dx), 0);
    kiln_tensor_t *want = tnew(KILN_DTYPE_F32, SHAPE(rows, h));
    kiln_tensor_t *ob = gpu_poisoned(odt, SHAPE(rows, h + opad));
    ASSERT_EQ_INT(kiln_tensor_slice(ob, 1, opad, h, &got), 0);
    ASSERT_EQ_INT(kiln_op_geglu(NULL, want, hx), 0);
    ASSERT_EQ_INT(kiln_op_geglu(NULL, got, dx), 0);
    check_named(got, want, dt_rtol(odt), "geglu %s->%s rows %lld h %lld xpad %lld xstart %lld "
                "opad %lld", dt_name(dt), dt_name(odt), (long long)rows, (long long)h,
                (long long)xpad, (long long)xstart, (long long)opad);
    kiln_tensor_t *hob = to_host(ob);
    for (int64_t r = 0; r < rows; r++) /* the columns before the view: still NaN */
        for (int64_t j = 0; j < opad; j++)
            ASSERT(isnan(elem_get(hob, (const int64_t[]){r, j})));
    kiln_tensor_t *all[] = {hb, db, hx, dx, want, ob, got, hob};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        kiln_tensor_release(all[i]);
}

static void test_geglu_vector(void)
{
    need_gpu();
    kiln_dtype_t f32 = KILN_DTYPE_F32, f16 = KILN_DTYPE_F16, bf16 = KILN_DTYPE_BF16;
    rng_seed(310);
    geglu_view_case(f16, f16, 128, 1280, 0, 0, 0); /* SD's shape: 16-byte vectors */
    geglu_view_case(f16, f16, 21, 40, 0, 0, 0);
    geglu_view_case(bf16, bf16, 37, 320, 0, 0, 0);
    geglu_view_case(f16, f16, 9, 50, 0, 0, 0);   /* half % 8 != 0: 2-element vectors */
    geglu_view_case(f16, f16, 9, 45, 0, 0, 0);   /* odd half: general kernel */
    geglu_view_case(f16, f16, 11, 40, 2, 2, 0);  /* rows 82 apart, base +4 bytes: 2-element */
    geglu_view_case(bf16, bf16, 11, 40, 1, 1, 0); /* base +2 bytes: general kernel */
    geglu_view_case(f16, f16, 13, 40, 8, 8, 8);  /* strided rows in x and out, 16-byte */
    geglu_view_case(f16, f16, 13, 64, 8, 4, 2);  /* out base +4 bytes: 2-element */
    geglu_view_case(f32, f32, 17, 40, 0, 0, 0);  /* float4 */
    geglu_view_case(f32, f32, 17, 40, 2, 2, 2);  /* 8-byte aligned rows: float2 */
    geglu_view_case(f16, f32, 10, 40, 0, 0, 0);  /* mixed dtypes: general kernel */
    geglu_view_case(bf16, f16, 10, 48, 0, 0, 0);
    for (int layout = 0; layout < 3; layout++) { /* 3-D views: merged rows, or not */
        rng_seed(320 + layout);
        kiln_tensor_t *h, *d;
        pair_rand(f16, layout, 3.0, SHAPE(3, 7, 2 * 40), &h, &d);
        kiln_tensor_t *want = tnew(f32, SHAPE(3, 7, 40));
        kiln_tensor_t *got = gpu_poisoned(f16, SHAPE(3, 7, 40));
        ASSERT_EQ_INT(kiln_op_geglu(NULL, want, h), 0);
        ASSERT_EQ_INT(kiln_op_geglu(NULL, got, d), 0);
        check_named(got, want, GPU_F16_RTOL, "geglu f16 3-D layout %d", layout);
        kiln_tensor_release(h);
        kiln_tensor_release(d);
        kiln_tensor_release(want);
        kiln_tensor_release(got);
    }
}

/* ---- norms -------------------------------------------------------------------------------- */

static void softmax_case(int layout, int ndim, const int64_t *shape)
{
    kiln_tensor_t *h, *d;
    pair_rand(KILN_DTYPE_F32, layout, 8.0, ndim, shape, &h, &d);
    kiln_tensor_t *want = tnew(KILN_DTYPE_F32, ndim, shape);
    kiln_tensor_t *got = gpu_poisoned(KILN_DTYPE_F32, ndim, shape);
    ASSERT_EQ_INT(kiln_op_softmax(NULL, want, h), 0);
    ASSERT_EQ_INT(kiln_op_softmax(NULL, got, d), 0);
    CHECK_GPU(got, want, GPU_F32_RTOL);
    kiln_tensor_release(h);
    kiln_tensor_release(d);
    kiln_tensor_release(want);
    kiln_tensor_release(got);
}

static void test_softmax(void)
{
    need_gpu();
    for (int layout = 0; layout < 3; layout++) {
        rng_seed(400 + layout);
        softmax_case(layout, SHAPE(4, 9, 100));
        softmax_case(layout, SHAPE(3, 4096));
        softmax_case(layout, SHAPE(5, 7));
    }
}

static void layer_norm_case(int layout, kiln_dtype_t wdt, int with_affine, int64_t c)
{
    kiln_tensor_t *h, *d, *hw = NULL, *dw = NULL, *hb = NULL, *db = NULL;
    pair_rand(KILN_DTYPE_F32, layout, 3.0, SHAPE(2, 37, c), &h, &d);
    ASSERT_EQ_INT(kiln_op_add_scalar(NULL, h, h, 0.5f), 0); /* a non-zero mean */
    ASSERT_EQ_INT(kiln_op_add_scalar(NULL, d, d, 0.5f), 0);
    if (with_affine) {
        pair_rand(wdt, 0, 1.0, SHAPE(c), &hw, &dw);
        pair_rand(wdt, 0, 1.0, SHAPE(c), &hb, &db);
    }
    kiln_tensor_t *want = tnew(KILN_DTYPE_F32, SHAPE(2, 37, c));
    kiln_tensor_t *got = gpu_poisoned(KILN_DTYPE_F32, SHAPE(2, 37, c));
    ASSERT_EQ_INT(kiln_op_layer_norm(NULL, want, h, hw, hb, 1e-5f), 0);
    ASSERT_EQ_INT(kiln_op_layer_norm(NULL, got, d, dw, db, 1e-5f), 0);
    CHECK_GPU(got, want, GPU_F32_RTOL);
    kiln_tensor_release(h);
    kiln_tensor_release(d);
    kiln_tensor_release(hw);
    kiln_tensor_release(dw);
    kiln_tensor_release(hb);
    kiln_tensor_release(db);
    kiln_tensor_release(want);
    kiln_tensor_release(got);
}

static void test_layer_norm(void)
{
    need_gpu();
    for (int layout = 0; layout < 3; layout++) {
        rng_seed(500 + layout);
        layer_norm_case(layout, KILN_DTYPE_F32, 1, 768);
        layer_norm_case(layout, KILN_DTYPE_F16, 1, 320);
        layer_norm_case(layout, KILN_DTYPE_F32, 0, 45);
    }
}

/* Layer norm of x [b, r, c] (dtype dt, layout: 0 contiguous, 1 permuted, 2 sliced; mean
 * about 0.5 for layouts 0 and 2) into out of dtype odt, or in place (out is x). Weights F16,
 * biases F32, or none. Covers the register kernel (16-byte vectors, or single elements at
 * any stride; float accumulation for 16-bit input, double for F32) and the general ones
 * (mixed dtypes, rows over 2048, or over 1024 without vectors). */
static void ln_case(kiln_dtype_t dt, kiln_dtype_t odt, int layout, int affine, int in_place,
                    int64_t b, int64_t r, int64_t c)
{
    kiln_tensor_t *h, *d, *hw = NULL, *dw = NULL, *hb = NULL, *db = NULL;
    if (layout == 1)
        pair_rand(dt, 1, 3.0, SHAPE(b, r, c), &h, &d);
    else
        pair_at(dt, layout, 3.0, 0.5, SHAPE(b, r, c), &h, &d);
    if (affine) {
        pair_rand(KILN_DTYPE_F16, 0, 1.0, SHAPE(c), &hw, &dw);
        pair_rand(KILN_DTYPE_F32, 0, 1.0, SHAPE(c), &hb, &db);
    }
    kiln_tensor_t *want = tnew(KILN_DTYPE_F32, SHAPE(b, r, c));
    kiln_tensor_t *got = in_place ? d : gpu_poisoned(odt, SHAPE(b, r, c));
    if (in_place)
        kiln_tensor_retain(got);
    ASSERT_EQ_INT(kiln_op_layer_norm(NULL, want, h, hw, hb, 1e-5f), 0);
    ASSERT_EQ_INT(kiln_op_layer_norm(NULL, got, d, dw, db, 1e-5f), 0);
    check_named(got, want, dt_rtol(in_place ? dt : odt),
                "layer_norm %s->%s layout %d affine %d in_place %d [%lld, %lld, %lld]",
                dt_name(dt), dt_name(odt), layout, affine, in_place, (long long)b, (long long)r,
                (long long)c);
    kiln_tensor_t *all[] = {h, d, hw, dw, hb, db, want, got};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        kiln_tensor_release(all[i]);
}

static void test_layer_norm_fast(void)
{
    need_gpu();
    kiln_dtype_t f32 = KILN_DTYPE_F32, f16 = KILN_DTYPE_F16, bf16 = KILN_DTYPE_BF16;
    const int64_t widths[] = {320, 640, 768, 1280, 2048, 77, 1000, 1030, 2500, 8};
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++) {
        rng_seed(550 + i);
        ln_case(f16, f16, 0, 1, 0, 2, 37, widths[i]);
        ln_case(bf16, bf16, 0, 1, 0, 2, 37, widths[i]);
        ln_case(f32, f32, 0, i % 2, 0, 2, 37, widths[i]);
    }
    for (int layout = 1; layout < 3; layout++) { /* strided or unaligned rows */
        rng_seed(570 + layout);
        ln_case(f16, f16, layout, 1, 0, 2, 37, 320);
        ln_case(bf16, bf16, layout, 0, 0, 3, 5, 768);
        ln_case(f32, f32, layout, 1, 0, 2, 37, 640);
        ln_case(f16, f16, layout, 1, 0, 2, 9, 1030);
    }
    rng_seed(580);
    ln_case(f16, f16, 0, 1, 1, 2, 37, 320); /* in place */
    ln_case(bf16, bf16, 0, 1, 1, 2, 37, 768);
    ln_case(f32, f32, 0, 1, 1, 2, 37, 1280);
    ln_case(f16, f32, 0, 1, 0, 2, 37, 320); /* mixed dtypes: the general kernels */
    ln_case(f32, f16, 0, 1, 0, 2, 37, 768);
    ln_case(f16, f16, 0, 1, 0, 2, 1024, 320); /* many rows */
    ln_case(f16, f16, 0, 1, 0, 1, 1, 640);    /* one row */
}

static void group_norm_case(int layout, int64_t n, int64_t c, int64_t hgt, int64_t wid, int g,
                            int silu)
{
    kiln_tensor_t *h, *d, *hw, *dw, *hb, *db;
    pair_rand(KILN_DTYPE_F32, layout, 2.0, SHAPE(n, c, hgt, wid), &h, &d);
    pair_rand(KILN_DTYPE_F32, 0, 1.0, SHAPE(c), &hw, &dw);
    pair_rand(KILN_DTYPE_F16, 0, 1.0, SHAPE(c), &hb, &db);
    kiln_tensor_t *want = tnew(KILN_DTYPE_F32, SHAPE(n, c, hgt, wid));
    kiln_tensor_t *got = gpu_poisoned(KILN_DTYPE_F32, SHAPE(n, c, hgt, wid));
    ASSERT_EQ_INT(kiln_op_group_norm(NULL, want, h, hw, hb, g, 1e-6f, silu), 0);
    ASSERT_EQ_INT(kiln_op_group_norm(NULL, got, d, dw, db, g, 1e-6f, silu), 0);
    CHECK_GPU(got, want, GPU_F32_RTOL);
    kiln_tensor_release(h);
    kiln_tensor_release(d);
    kiln_tensor_release(hw);
    kiln_tensor_release(dw);
    kiln_tensor_release(hb);
    kiln_tensor_release(db);
    kiln_tensor_release(want);
    kiln_tensor_release(got);
}

static void test_group_norm(void)
{
    need_gpu();
    for (int layout = 0; layout < 3; layout++) {
        rng_seed(600 + layout);
        group_norm_case(layout, 2, 64, 9, 11, 32, 1);
        group_norm_case(layout, 1, 96, 32, 32, 32, 0);
        group_norm_case(layout, 3, 6, 5, 4, 3, 1);
    }
}

/* Group norm of x [n, c, hh, ww] into out. xl: 0 dense NCHW, 1 channels-last, 2 sliced
 * (strided, neither); ol: 0 dense, 1 channels-last; in_place: out is x (ol ignored).
 * Values have mean 1.5, so the statistics' shift matters. */
typedef struct gn_combo {
    kiln_dtype_t xdt, odt;
    int xl, ol, in_place, silu, affine;
} gn_combo_t;

static void gn_layout_case(const gn_combo_t *k, int64_t n, int64_t c, int64_t hh, int64_t ww,
                           int g)
{
    kiln_tensor_t *h, *d, *hw = NULL, *dw = NULL, *hb = NULL, *db = NULL;
    pair_at(k->xdt, k->xl, 2.0, 1.5, SHAPE(n, c, hh, ww), &h, &d);
    if (k->affine) {
        pair_rand(KILN_DTYPE_F32, 0, 1.0, SHAPE(c), &hw, &dw);
        pair_rand(KILN_DTYPE_F16, 2, 1.0, SHAPE(c), &hb, &db); /* a strided bias */
    }
    kiln_tensor_t *want = tnew(KILN_DTYPE_F32, SHAPE(n, c, hh, ww));
    kiln_tensor_t *got = k->in_place ? d : poisoned_at(k->odt, k->ol, SHAPE(n, c, hh, ww));
    if (k->in_place)
        kiln_tensor_retain(got);
    ASSERT_EQ_INT(kiln_op_group_norm(NULL, want, h, hw, hb, g, 1e-5f, k->silu), 0);
    ASSERT_EQ_INT(kiln_op_group_norm(NULL, got, d, dw, db, g, 1e-5f, k->silu), 0);
    check_named(got, want, dt_rtol(k->in_place ? k->xdt : k->odt),
                "group_norm %s->%s xl %d ol %d in_place %d silu %d affine %d [%lld, %lld, %lld, "
                "%lld] groups %d", dt_name(k->xdt), dt_name(k->odt), k->xl, k->ol, k->in_place,
                k->silu, k->affine, (long long)n, (long long)c, (long long)hh, (long long)ww, g);
    kiln_tensor_t *all[] = {h, d, hw, dw, hb, db, want, got};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        kiln_tensor_release(all[i]);
}

static void test_group_norm_layouts(void)
{
    need_gpu();
    kiln_dtype_t f32 = KILN_DTYPE_F32, f16 = KILN_DTYPE_F16, bf16 = KILN_DTYPE_BF16;
    const gn_combo_t combos[] = {
        {f32, f32, 1, 1, 0, 1, 1},   {f16, f16, 1, 1, 0, 0, 1},  {bf16, bf16, 1, 1, 0, 1, 1},
        {f16, f16, 1, 1, 0, 1, 0},   {f16, f16, 0, 0, 0, 1, 1},  {bf16, bf16, 0, 0, 0, 0, 1},
        {f32, f32, 0, 0, 0, 1, 1},   {f32, f32, 0, 1, 0, 1, 1},  {f16, f16, 1, 0, 0, 0, 1},
        {f16, f16, 2, 1, 0, 1, 1},   {f32, f32, 2, 0, 0, 0, 1},  {f16, f32, 1, 1, 0, 1, 1},
        {f32, f16, 1, 1, 0, 0, 1},   {bf16, f32, 0, 0, 0, 1, 1}, {f16, f16, 1, 1, 1, 1, 1},
        {f32, f32, 1, 1, 1, 0, 1},   {bf16, bf16, 0, 0, 1, 1, 1}, {f16, f16, 0, 0, 1, 0, 0},
    };
    const struct {
        int64_t n, c, hh, ww;
        int g;
    } shapes[] = {
        {2, 320, 16, 16, 32}, /* SD: 10 channels a group */
        {1, 64, 7, 5, 32},    /* odd spatial size, 2 channels a group */
        {2, 128, 9, 9, 32},   /* 4 a group */
        {1, 256, 8, 8, 32},   /* 8 a group: 16-byte statistics */
        {2, 96, 5, 6, 3},     /* 32 a group */
        {1, 6, 5, 4, 3},      /* 6 channels: 2-element vectors at most */
        {1, 9, 4, 3, 3},      /* odd group width and channel count: single elements */
        {1, 1920, 4, 4, 32},  /* 60 a group: 960 threads of statistics */
        {1, 2560, 3, 3, 32},  /* SD's widest */
        {1, 1026, 3, 2, 2},   /* 513 a group: too wide for a channels-last block */
        {3, 32, 1, 1, 8},     /* one position */
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (size_t i = 0; i < sizeof combos / sizeof combos[0]; i++) {
            rng_seed(650 + s * 40 + i);
            gn_layout_case(&combos[i], shapes[s].n, shapes[s].c, shapes[s].hh, shapes[s].ww,
                           shapes[s].g);
        }
    }
    rng_seed(640); /* larger: several statistics chunks per group and apply blocks */
    gn_layout_case(&combos[1], 2, 320, 64, 64, 32);
    gn_layout_case(&combos[4], 2, 320, 64, 64, 32);
    gn_layout_case(&combos[0], 1, 640, 32, 32, 32);
}

/* ---- products ------------------------------------------------------------------------------ */

static void matmul_case(kiln_dtype_t dt, kiln_dtype_t odt, int la, int lb, int tb,
                        int nda, const int64_t *sa, int ndb, const int64_t *sb, int ndo,
                        const int64_t *so, double rtol)
{
    kiln_tensor_t *ha, *da, *hb, *db;
    pair_rand(dt, la, 1.0, nda, sa, &ha, &da);
    pair_rand(dt, lb, 1.0, ndb, sb, &hb, &db);
    kiln_tensor_t *want = tnew(KILN_DTYPE_F32, ndo, so);
    kiln_tensor_t *got = gpu_poisoned(odt, ndo, so);
    ASSERT_EQ_INT(kiln_op_matmul(NULL, want, ha, hb, tb), 0);
    ASSERT_EQ_INT(kiln_op_matmul(NULL, got, da, db, tb), 0);
    CHECK_GPU(got, want, rtol);
    kiln_tensor_release(ha);
    kiln_tensor_release(da);
    kiln_tensor_release(hb);
    kiln_tensor_release(db);
    kiln_tensor_release(want);
    kiln_tensor_release(got);
}

static void test_matmul(void)
{
    need_gpu();
    kiln_dtype_t f32 = KILN_DTYPE_F32, f16 = KILN_DTYPE_F16, bf16 = KILN_DTYPE_BF16;
    for (int la = 0; la < 3; la++) {
        for (int lb = 0; lb < 3; lb++) {
            rng_seed(700 + la * 3 + lb);
            matmul_case(f32, f32, la, lb, 0, SHAPE(3, 17, 300), SHAPE(300, 20), SHAPE(3, 17, 20),
                        GPU_F32_RTOL);
            matmul_case(f32, f32, la, lb, 1, SHAPE(2, 1, 5, 64), SHAPE(3, 9, 64),
                        SHAPE(2, 3, 5, 9), GPU_F32_RTOL);
            matmul_case(f16, f32, la, lb, 0, SHAPE(4, 33, 128), SHAPE(4, 128, 40),
                        SHAPE(4, 33, 40), 1e-4);
            matmul_case(f16, f16, la, lb, 1, SHAPE(2, 64, 256), SHAPE(2, 48, 256),
                        SHAPE(2, 64, 48), GPU_F16_RTOL);
            matmul_case(bf16, bf16, la, lb, 0, SHAPE(31, 96), SHAPE(96, 70), SHAPE(31, 70),
                        GPU_BF16_RTOL);
        }
    }
}

static void linear_case(kiln_dtype_t xdt, kiln_dtype_t wdt, kiln_dtype_t odt, int lx, int lw,
                        int bias, int64_t m, int64_t in, int64_t outc, double rtol)
{
    kiln_tensor_t *hx, *dx, *hw, *dw, *hb = NULL, *db = NULL;
    pair_rand(xdt, lx, 1.0, SHAPE(2, m, in), &hx, &dx);
    pair_rand(wdt, lw, 0.2, SHAPE(outc, in), &hw, &dw);
    if (bias)
        pair_rand(wdt, 0, 1.0, SHAPE(outc), &hb, &db);
    kiln_tensor_t *want = tnew(KILN_DTYPE_F32, SHAPE(2, m, outc));
    kiln_tensor_t *got = gpu_poisoned(odt, SHAPE(2, m, outc));
    ASSERT_EQ_INT(kiln_op_linear(NULL, want, hx, hw, hb), 0);
    ASSERT_EQ_INT(kiln_op_linear(NULL, got, dx, dw, db), 0);
    CHECK_GPU(got, want, rtol);
    kiln_tensor_release(hx);
    kiln_tensor_release(dx);
    kiln_tensor_release(hw);
    kiln_tensor_release(dw);
    kiln_tensor_release(hb);
    kiln_tensor_release(db);
    kiln_tensor_release(want);
    kiln_tensor_release(got);
}

static void test_linear(void)
{
    need_gpu();
    kiln_dtype_t f32 = KILN_DTYPE_F32, f16 = KILN_DTYPE_F16, bf16 = KILN_DTYPE_BF16;
    for (int lx = 0; lx < 3; lx++) {
        for (int lw = 0; lw < 3; lw++) {
            rng_seed(800 + lx * 3 + lw);
            linear_case(f32, f32, f32, lx, lw, 1, 77, 768, 320, GPU_F32_RTOL);
            linear_case(f32, f16, f32, lx, lw, 0, 9, 100, 33, GPU_F32_RTOL);
            linear_case(f16, f16, f32, lx, lw, 1, 64, 320, 640, 1e-4);
            linear_case(f16, f16, f16, lx, lw, 1, 64, 320, 640, GPU_F16_RTOL);
            linear_case(bf16, bf16, bf16, lx, lw, 1, 50, 128, 96, GPU_BF16_RTOL);
        }
    }
}

static void conv_case(kiln_dtype_t dt, kiln_dtype_t odt, int lx, const int64_t *xs,
                      const int64_t *ws, const kiln_conv2d_params_t *p, int bias, double rtol)
{
    kiln_tensor_t *hx, *dx, *hw, *dw, *hb = NULL, *db = NULL;
    pair_rand(dt, lx, 1.0, 4, xs, &hx, &dx);
    pair_rand(dt, 0, 0.3, 4, ws, &hw, &dw);
    if (bias)
        pair_rand(KILN_DTYPE_F32, 0, 1.0, SHAPE(ws[0]), &hb, &db);
    int64_t sh = p && p->stride_h ? p->stride_h : 1, sw = p && p->stride_w ? p->stride_w : 1;
    int64_t dh = p && p->dilation_h ? p->dilation_h : 1, dw_ = p && p->dilation_w ? p->dilation_w : 1;
    int64_t ph = p ? p->pad_top + p->pad_bottom : 0, pw = p ? p->pad_left + p->pad_right : 0;
    int64_t oh = (xs[2] + ph - dh * (ws[2] - 1) - 1) / sh + 1;
    int64_t ow = (xs[3] + pw - dw_ * (ws[3] - 1) - 1) / sw + 1;
    int64_t os[4] = {xs[0], ws[0], oh, ow};
    kiln_tensor_t *want = tnew(KILN_DTYPE_F32, 4, os);
    kiln_tensor_t *got = gpu_poisoned(odt, 4, os);
    ASSERT_EQ_INT(kiln_op_conv2d(NULL, want, hx, hw, hb, p), 0);
    ASSERT_EQ_INT(kiln_op_conv2d(NULL, got, dx, dw, db, p), 0);
    CHECK_GPU(got, want, rtol);
    kiln_tensor_release(hx);
    kiln_tensor_release(dx);
    kiln_tensor_release(hw);
    kiln_tensor_release(dw);
    kiln_tensor_release(hb);
    kiln_tensor_release(db);
    kiln_tensor_release(want);
    kiln_tensor_release(got);
}

static void test_conv2d(void)
{
    need_gpu();
    kiln_dtype_t f32 = KILN_DTYPE_F32, f16 = KILN_DTYPE_F16;
    kiln_conv2d_params_t pad1 = {KILN_CONV2D_PARAMS_INIT, .pad_top = 1, .pad_bottom = 1,
                                 .pad_left = 1, .pad_right = 1};
    kiln_conv2d_params_t down = {KILN_CONV2D_PARAMS_INIT, .stride_h = 2, .stride_w = 2,
                                 .pad_bottom = 1, .pad_right = 1};
    kiln_conv2d_params_t dil = {KILN_CONV2D_PARAMS_INIT, .dilation_h = 2, .dilation_w = 3,
                                .pad_top = 2, .pad_left = 1};
    for (int lx = 0; lx < 3; lx++) {
        rng_seed(900 + lx);
        conv_case(f32, f32, lx, ARR(2, 8, 13, 11), ARR(16, 8, 3, 3), &pad1, 1, GPU_F32_RTOL);
        conv_case(f32, f32, lx, ARR(3, 5, 16, 16), ARR(7, 5, 3, 3), &down, 1, GPU_F32_RTOL);
        conv_case(f32, f32, lx, ARR(1, 4, 12, 15), ARR(6, 4, 3, 2), &dil, 0, GPU_F32_RTOL);
        conv_case(f32, f32, lx, ARR(2, 32, 9, 9), ARR(24, 32, 1, 1), NULL, 1, GPU_F32_RTOL);
        conv_case(f16, f32, lx, ARR(2, 64, 16, 16), ARR(32, 64, 3, 3), &pad1, 1, 1e-4);
        conv_case(f16, f16, lx, ARR(2, 64, 8, 8), ARR(64, 64, 1, 1), NULL, 1, GPU_F16_RTOL);
        /* F16 in and out: cuDNN where the machine has it (symmetric padding) */
        conv_case(f16, f16, lx, ARR(2, 32, 16, 16), ARR(48, 32, 3, 3), &pad1, 1, GPU_F16_RTOL);
        kiln_conv2d_params_t s2 = {KILN_CONV2D_PARAMS_INIT, .stride_h = 2, .stride_w = 2,
                                   .pad_top = 1, .pad_bottom = 1, .pad_left = 1,
                                   .pad_right = 1};
        conv_case(f16, f16, lx, ARR(1, 64, 15, 16), ARR(64, 64, 3, 3), &s2, 1, GPU_F16_RTOL);
        conv_case(KILN_DTYPE_BF16, KILN_DTYPE_BF16, lx, ARR(2, 16, 9, 9), ARR(8, 16, 3, 3),
                  &pad1, 0, GPU_BF16_RTOL);
    }
}

/* ---- attention ------------------------------------------------------------------------------ */

static void attention_case(kiln_dtype_t dt, int layout, int64_t b, int64_t lq, int64_t lk,
                           int heads, int64_t d, int64_t dv, double rtol)
{
    kiln_tensor_t *hq, *dq, *hk, *dk, *hv, *dvv;
    pair_rand(dt, layout, 1.0, SHAPE(b, lq, heads * d), &hq, &dq);
    pair_rand(dt, layout, 1.0, SHAPE(b, lk, heads * d), &hk, &dk);
    pair_rand(dt, layout == 1 ? 0 : layout, 1.0, SHAPE(b, lk, heads * dv), &hv, &dvv);
    kiln_tensor_t *want = tnew(KILN_DTYPE_F32, SHAPE(b, lq, heads * dv));
    kiln_tensor_t *got = gpu_poisoned(KILN_DTYPE_F32, SHAPE(b, lq, heads * dv));
    ASSERT_EQ_INT(kiln_op_attention(NULL, want, hq, hk, hv, heads, 0.0f), 0);
    ASSERT_EQ_INT(kiln_op_attention(NULL, got, dq, dk, dvv, heads, 0.0f), 0);
    CHECK_GPU(got, want, rtol);
    kiln_tensor_release(hq);
    kiln_tensor_release(dq);
    kiln_tensor_release(hk);
    kiln_tensor_release(dk);
    kiln_tensor_release(hv);
    kiln_tensor_release(dvv);
    kiln_tensor_release(want);
    kiln_tensor_release(got);
}

static void test_attention(void)
{
    need_gpu();
    for (int layout = 0; layout < 3; layout++) {
        rng_seed(1000 + layout);
        attention_case(KILN_DTYPE_F32, layout, 2, 77, 77, 8, 40, 40, GPU_F32_RTOL);
        attention_case(KILN_DTYPE_F32, layout, 2, 256, 77, 8, 40, 40, GPU_F32_RTOL);
        attention_case(KILN_DTYPE_F32, layout, 1, 100, 33, 4, 64, 24, GPU_F32_RTOL);
        attention_case(KILN_DTYPE_F32, layout, 1, 50, 61, 2, 160, 160, GPU_F32_RTOL);
        attention_case(KILN_DTYPE_F16, layout, 2, 130, 90, 5, 16, 16, GPU_F32_RTOL);
        /* tensor-core path: probabilities rounded to the input format before P V */
        attention_case(KILN_DTYPE_F16, layout, 2, 300, 77, 8, 40, 40, 3e-3);
        attention_case(KILN_DTYPE_F16, layout, 1, 129, 200, 4, 80, 80, 3e-3);
        attention_case(KILN_DTYPE_F16, layout, 1, 64, 64, 2, 160, 160, 3e-3);
        attention_case(KILN_DTYPE_F16, layout, 2, 70, 33, 3, 64, 64, 3e-3);
        attention_case(KILN_DTYPE_BF16, layout, 2, 100, 150, 8, 40, 40, 2e-2);
    }
    rng_seed(1011);
    attention_case(KILN_DTYPE_F16, 0, 1, 4096, 4096, 1, 40, 40, 3e-3);
    rng_seed(1010); /* a long self-attention: 1024 x 1024 scores per head */
    attention_case(KILN_DTYPE_F32, 0, 1, 1024, 1024, 2, 40, 40, GPU_F32_RTOL);
}

/* ---- resampling, embeddings, data movement ---------------------------------------------------- */

static void interp_case(int layout, kiln_interp_mode_t mode, const int64_t *xs, int64_t oh,
                        int64_t ow)
{
    kiln_tensor_t *h, *d;
    pair_rand(KILN_DTYPE_F32, layout, 4.0, 4, xs, &h, &d);
    int64_t os[4] = {xs[0], xs[1], oh, ow};
    kiln_tensor_t *want = tnew(KILN_DTYPE_F32, 4, os);
    kiln_tensor_t *got = gpu_poisoned(KILN_DTYPE_F32, 4, os);
    ASSERT_EQ_INT(kiln_op_interpolate(NULL, want, h, mode), 0);
    ASSERT_EQ_INT(kiln_op_interpolate(NULL, got, d, mode), 0);
    CHECK_GPU(got, want, 0.0); /* the same float steps: bit-identical */
    kiln_tensor_release(h);
    kiln_tensor_release(d);
    kiln_tensor_release(want);
    kiln_tensor_release(got);
}

static void test_interpolate(void)
{
    need_gpu();
    for (int layout = 0; layout < 3; layout++) {
        rng_seed(1100 + layout);
        for (int mode = 0; mode < 3; mode++) {
            interp_case(layout, (kiln_interp_mode_t)mode, ARR(2, 3, 8, 8), 16, 16);
            interp_case(layout, (kiln_interp_mode_t)mode, ARR(1, 2, 7, 5), 11, 13);
            interp_case(layout, (kiln_interp_mode_t)mode, ARR(1, 3, 20, 30), 9, 7);
            interp_case(layout, (kiln_interp_mode_t)mode, ARR(1, 1, 6, 6), 6, 6);
        }
    }
}

static void test_timestep_embedding(void)
{
    need_gpu();
    int64_t dims[] = {320, 33, 2};
    for (size_t i = 0; i < 3; i++) {
        rng_seed(1200 + i);
        kiln_tensor_t *h, *d;
        pair_rand(KILN_DTYPE_F32, 0, 500.0, SHAPE(5), &h, &d);
        ASSERT_EQ_INT(kiln_op_add_scalar(NULL, h, h, 500.0f), 0); /* t in [0, 1000) */
        ASSERT_EQ_INT(kiln_op_add_scalar(NULL, d, d, 500.0f), 0);
        kiln_tensor_t *want = tnew(KILN_DTYPE_F32, SHAPE(5, dims[i]));
        kiln_tensor_t *got = gpu_poisoned(KILN_DTYPE_F32, SHAPE(5, dims[i]));
        ASSERT_EQ_INT(kiln_op_timestep_embedding(NULL, want, h, 0.0f), 0);
        ASSERT_EQ_INT(kiln_op_timestep_embedding(NULL, got, d, 0.0f), 0);
        CHECK_GPU(got, want, GPU_F32_RTOL);
        kiln_tensor_release(h);
        kiln_tensor_release(d);
        kiln_tensor_release(want);
        kiln_tensor_release(got);
    }
}

static void test_embedding(void)
{
    need_gpu();
    rng_seed(1300);
    kiln_tensor_t *hw, *dw;
    pair_rand(KILN_DTYPE_F16, 1, 1.0, SHAPE(50, 16), &hw, &dw);
    kiln_tensor_t *ids = tnew(KILN_DTYPE_I64, SHAPE(2, 7));
    int64_t *p = kiln_tensor_data(ids);
    for (int i = 0; i < 14; i++)
        p[i] = (i * 37 + 11) % 50;
    kiln_tensor_t *dids = to_gpu(ids);
    kiln_tensor_t *want = tnew(KILN_DTYPE_F32, SHAPE(2, 7, 16));
    kiln_tensor_t *got = gpu_poisoned(KILN_DTYPE_F32, SHAPE(2, 7, 16));
    ASSERT_EQ_INT(kiln_op_embedding(NULL, want, hw, ids), 0);
    ASSERT_EQ_INT(kiln_op_embedding(NULL, got, dw, dids), 0);
    CHECK_GPU(got, want, 0.0);
    /* an id outside the table: KILN_ERANGE and nothing written */
    kiln_tensor_t *bad = gpu_poisoned(KILN_DTYPE_F32, SHAPE(2, 7, 16));
    p[9] = 50;
    kiln_tensor_t *dbad = to_gpu(ids);
    ASSERT_EQ_INT(kiln_op_embedding(NULL, bad, dw, dbad), KILN_ERANGE);
    kiln_tensor_t *hbad = to_host(bad);
    const uint32_t *bits = kiln_tensor_data(hbad);
    for (int i = 0; i < 2 * 7 * 16; i++)
        ASSERT_EQ_INT(bits[i], 0xffffffffu);
    kiln_tensor_release(hbad);
    kiln_tensor_release(dbad);
    kiln_tensor_release(bad);
    kiln_tensor_release(hw);
    kiln_tensor_release(dw);
    kiln_tensor_release(ids);
    kiln_tensor_release(dids);
    kiln_tensor_release(want);
    kiln_tensor_release(got);
}

static void test_data_movement(void)
{
    need_gpu();
    rng_seed(1400);
    kiln_tensor_t *h, *d;
    pair_rand(KILN_DTYPE_F32, 2, 3.0, SHAPE(3, 4, 5, 6), &h, &d);
    int perm[4] = {2, 0, 3, 1};
    kiln_tensor_t *want = tnew(KILN_DTYPE_F32, SHAPE(5, 3, 6, 4));
    kiln_tensor_t *got = gpu_poisoned(KILN_DTYPE_F16, SHAPE(5, 3, 6, 4));
    ASSERT_EQ_INT(kiln_op_permute(NULL, want, h, perm), 0);
    ASSERT_EQ_INT(kiln_op_permute(NULL, got, d, perm), 0);
    CHECK_GPU(got, want, GPU_F16_RTOL);
    kiln_tensor_t *ws = tnew(KILN_DTYPE_F32, SHAPE(3, 2, 5, 6));
    kiln_tensor_t *gs = gpu_poisoned(KILN_DTYPE_F32, SHAPE(3, 2, 5, 6));
    ASSERT_EQ_INT(kiln_op_slice(NULL, ws, h, 1, 1), 0);
    ASSERT_EQ_INT(kiln_op_slice(NULL, gs, d, 1, 1), 0);
    CHECK_GPU(gs, ws, 0.0);
    kiln_tensor_t *wt = tnew(KILN_DTYPE_F32, SHAPE(3, 6, 5, 4));
    kiln_tensor_t *gt = gpu_poisoned(KILN_DTYPE_F32, SHAPE(3, 6, 5, 4));
    ASSERT_EQ_INT(kiln_op_transpose(NULL, wt, h, 1, -1), 0);
    ASSERT_EQ_INT(kiln_op_transpose(NULL, gt, d, 1, -1), 0);
    CHECK_GPU(gt, wt, 0.0);
    /* concat of a strided F32 view and a dense F16 tensor along dim 1 */
    kiln_tensor_t *h2, *d2;
    pair_rand(KILN_DTYPE_F16, 0, 1.0, SHAPE(3, 3, 5, 6), &h2, &d2);
    kiln_tensor_t *wc = tnew(KILN_DTYPE_F32, SHAPE(3, 7, 5, 6));
    kiln_tensor_t *gc = gpu_poisoned(KILN_DTYPE_F32, SHAPE(3, 7, 5, 6));
    ASSERT_EQ_INT(kiln_op_concat(NULL, wc, (const kiln_tensor_t *const[]){h, h2}, 2, 1), 0);
    ASSERT_EQ_INT(kiln_op_concat(NULL, gc, (const kiln_tensor_t *const[]){d, d2}, 2, 1), 0);
    CHECK_GPU(gc, wc, 0.0);
    kiln_tensor_t *all[] = {h, d, want, got, ws, gs, wt, gt, h2, d2, wc, gc};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        kiln_tensor_release(all[i]);
}

/* Mixed devices are refused before anything runs. */
static void test_mixed_devices_refused(void)
{
    need_gpu();
    kiln_tensor_t *h = tnew(KILN_DTYPE_F32, SHAPE(4));
    kiln_tensor_t *d = to_gpu(h);
    kiln_tensor_t *o = gpu_poisoned(KILN_DTYPE_F32, SHAPE(4));
    ASSERT_EQ_INT(kiln_op_add(NULL, o, d, h), KILN_EUNSUPPORTED);
    ASSERT_EQ_INT(kiln_op_silu(NULL, h, d), KILN_EUNSUPPORTED);
    kiln_tensor_t *o8 = NULL;
    ASSERT_EQ_INT(kiln_tensor_new_on(GPU, KILN_DTYPE_I32, SHAPE(4), &o8), 0);
    ASSERT_EQ_INT(kiln_op_silu(NULL, o8, d), KILN_ETYPE);
    kiln_tensor_release(h);
    kiln_tensor_release(d);
    kiln_tensor_release(o);
    kiln_tensor_release(o8);
}

KILN_TEST_MAIN(TEST(test_unary), TEST(test_binary_broadcast), TEST(test_binary_in_place),
               TEST(test_geglu), TEST(test_geglu_vector), TEST(test_softmax),
               TEST(test_layer_norm), TEST(test_layer_norm_fast), TEST(test_group_norm),
               TEST_TIMEOUT(test_group_norm_layouts, 120), TEST(test_matmul), TEST(test_linear),
               TEST_TIMEOUT(test_conv2d, 120), TEST_TIMEOUT(test_attention, 120),
               TEST(test_interpolate), TEST(test_timestep_embedding), TEST(test_embedding),
               TEST(test_data_movement), TEST(test_mixed_devices_refused))
