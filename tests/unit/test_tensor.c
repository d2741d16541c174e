/* Tensor runtime: construction, refcounts shared through views, strides of view, reshape,
 * permute, transpose and slice, contiguous copies, strided dtype conversion, and the
 * argument checks of every view function. */
#include <kiln/error.h>
#include <kiln/tensor.h>

#include "runner.h"
#include "runtime/host_pool.h"
#include "runtime/tensor_int.h"

/* A contiguous F32 tensor holding 0, 1, 2, ... */
static kiln_tensor_t *iota(int ndim, const int64_t *shape)
{
    kiln_tensor_t *t = kiln_tensor_new(KILN_DTYPE_F32, ndim, shape);
    ASSERT(t != NULL);
    float *p = kiln_tensor_data(t);
    for (int64_t i = 0; i < kiln_tensor_numel(t); i++)
        p[i] = (float)i;
    return t;
}

/* Element at a multi-index, read through the strides. */
static float at(const kiln_tensor_t *t, const int64_t *idx)
{
    int64_t off = 0;
    for (int i = 0; i < kiln_tensor_ndim(t); i++)
        off += idx[i] * kiln_tensor_stride(t, i);
    return ((const float *)kiln_tensor_data(t))[off];
}

static void test_new_basic(void)
{
    int64_t shape[4] = {2, 3, 4, 5};
    kiln_tensor_t *t = kiln_tensor_new(KILN_DTYPE_F16, 4, shape);
    ASSERT(t != NULL);
    ASSERT_EQ_INT(kiln_tensor_ndim(t), 4);
    ASSERT_EQ_INT(kiln_tensor_dim(t, -1), 5);
    ASSERT_EQ_INT(kiln_tensor_dim(t, 4), 0);
    ASSERT_EQ_INT(kiln_tensor_numel(t), 120);
    ASSERT_EQ_INT(kiln_tensor_nbytes(t), 240);
    ASSERT_EQ_INT(kiln_tensor_stride(t, 0), 60);
    ASSERT_EQ_INT(kiln_tensor_stride(t, -1), 1);
    ASSERT_EQ_INT(kiln_tensor_device(t), KILN_DEVICE_CPU);
    ASSERT(kiln_tensor_is_contiguous(t));
    ASSERT(!kiln_tensor_is_readonly(t));
    ASSERT_EQ_INT((uintptr_t)kiln_tensor_data(t) % KILN__HOST_POOL_ALIGN, 0);
    const uint16_t *p = kiln_tensor_data(t);
    for (int i = 0; i < 120; i++)
        ASSERT_EQ_INT(p[i], 0);
    kiln_tensor_release(t);

    kiln_tensor_t *s = kiln_tensor_new(KILN_DTYPE_I64, 0, NULL);   /* a scalar */
    ASSERT(s != NULL);
    ASSERT_EQ_INT(kiln_tensor_numel(s), 1);
    ASSERT_EQ_INT(*(int64_t *)kiln_tensor_data(s), 0);
    kiln_tensor_release(s);

    int64_t bad[2] = {3, -1};
    ASSERT(kiln_tensor_new(KILN_DTYPE_F32, 2, bad) == NULL);
    int64_t huge[3] = {INT64_C(1) << 40, INT64_C(1) << 40, 4};
    ASSERT(kiln_tensor_new(KILN_DTYPE_F32, 3, huge) == NULL);
    ASSERT(kiln_tensor_new(KILN_DTYPE_F32, KILN_TENSOR_MAX_DIMS + 1, shape) == NULL);
    ASSERT(kiln_tensor_new(KILN_DTYPE_COUNT, 1, shape) == NULL);
}

static void test_dtype_names(void)
{
    kiln_dtype_t d;
    for (int i = 0; i < KILN_DTYPE_COUNT; i++) {
        ASSERT_EQ_INT(kiln_dtype_from_name(kiln_dtype_name((kiln_dtype_t)i), &d), 0);
        ASSERT_EQ_INT(d, i);
    }
    ASSERT_STR_EQ(kiln_dtype_name(KILN_DTYPE_BF16), "BF16");
    ASSERT_EQ_INT(kiln_dtype_size(KILN_DTYPE_BOOL), 1);
    ASSERT_EQ_INT(kiln_dtype_size(KILN_DTYPE_I16), 2);
    ASSERT_EQ_INT(kiln_dtype_from_name("F8_E4M3", &d), KILN_ENOTFOUND);
    ASSERT(kiln_dtype_is_float(KILN_DTYPE_BF16));
    ASSERT(!kiln_dtype_is_float(KILN_DTYPE_I64));
}

static void test_views_share_storage(void)
{
    int64_t shape[2] = {4, 6};
    kiln_tensor_t *t = iota(2, shape);
    kiln_tensor_t *row = NULL;
    ASSERT_EQ_INT(kiln_tensor_slice(t, 0, 2, 1, &row), 0);            /* [1, 6] */
    ASSERT_EQ_INT(atomic_load(&t->storage->refcount), 2);
    kiln_tensor_release(t);                                            /* the view keeps it */
    ASSERT_EQ_INT(atomic_load(&row->storage->refcount), 1);
    const float *p = kiln_tensor_data(row);
    ASSERT_NEAR(p[0], 12.0, 0);
    ASSERT_NEAR(p[5], 17.0, 0);
    ((float *)kiln_tensor_data(row))[1] = -1.0f;
    kiln_tensor_t *again = NULL;
    ASSERT_EQ_INT(kiln_tensor_view(row, 1, (int64_t[]){3}, (int64_t[]){2}, 1, &again), 0);
    p = kiln_tensor_data(again);
    ASSERT_NEAR(p[0], -1.0, 0);                                        /* written via row */
    ASSERT_NEAR(p[2], 15.0, 0);
    ASSERT_NEAR(p[4], 17.0, 0);
    kiln_tensor_retain(again);
    kiln_tensor_release(again);
    kiln_tensor_release(again);
    kiln_tensor_release(row);
}

static void test_view_bounds(void)
{
    int64_t shape[2] = {3, 4};
    kiln_tensor_t *t = iota(2, shape), *v = NULL;
    /* The last reachable element is 2*4 + 3 = 11: in bounds. */
    ASSERT_EQ_INT(kiln_tensor_view(t, 2, (int64_t[]){2, 2}, (int64_t[]){4, 3}, 2, &v), 0);
    int64_t idx[2] = {1, 1};
    ASSERT_NEAR(at(v, idx), 9.0, 0);
    kiln_tensor_release(v);
    v = NULL;
    ASSERT_EQ_INT(kiln_tensor_view(t, 1, (int64_t[]){13}, NULL, 0, &v), KILN_ERANGE);
    ASSERT_EQ_INT(kiln_tensor_view(t, 1, (int64_t[]){12}, NULL, 1, &v), KILN_ERANGE);
    ASSERT_EQ_INT(kiln_tensor_view(t, 1, (int64_t[]){2}, (int64_t[]){-1}, 4, &v), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_tensor_view(t, 1, (int64_t[]){-2}, NULL, 0, &v), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_tensor_view(t, 1, (int64_t[]){2}, NULL, -1, &v), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_tensor_view(t, 2, (int64_t[]){INT64_MAX, 2},
                                   (int64_t[]){INT64_MAX, 1}, 0, &v), KILN_ERANGE);
    ASSERT_EQ_INT(kiln_tensor_view(t, 1, (int64_t[]){2}, NULL, INT64_MAX / 2, &v), KILN_ERANGE);
    ASSERT(v == NULL);
    /* Broadcast views (stride 0) are allowed. */
    ASSERT_EQ_INT(kiln_tensor_view(t, 2, (int64_t[]){5, 4}, (int64_t[]){0, 1}, 4, &v), 0);
    idx[0] = 4;
    idx[1] = 2;
    ASSERT_NEAR(at(v, idx), 6.0, 0);
    ASSERT(!kiln_tensor_is_contiguous(v));
    kiln_tensor_release(v);
    kiln_tensor_release(t);
}

static void test_permute_transpose(void)
{
    int64_t shape[4] = {2, 3, 4, 5};                       /* [B, H, W, C] */
    kiln_tensor_t *t = iota(4, shape), *p = NULL;
    ASSERT_EQ_INT(kiln_tensor_permute(t, (int[]){0, 3, 1, 2}, &p), 0);   /* [B, C, H, W] */
    ASSERT_EQ_INT(kiln_tensor_dim(p, 1), 5);
    ASSERT_EQ_INT(kiln_tensor_stride(p, 1), 1);
    ASSERT_EQ_INT(kiln_tensor_stride(p, 3), 5);
    ASSERT(!kiln_tensor_is_contiguous(p));
    int64_t idx[4] = {1, 4, 2, 3};                        /* b=1, c=4, h=2, w=3 */
    ASSERT_NEAR(at(p, idx), 60 + 2 * 20 + 3 * 5 + 4, 0);
    kiln_tensor_t *q = NULL;
    ASSERT_EQ_INT(kiln_tensor_transpose(p, -1, -2, &q), 0);             /* [B, C, W, H] */
    ASSERT_EQ_INT(kiln_tensor_dim(q, 3), 3);
    int64_t qidx[4] = {1, 4, 3, 2};
    ASSERT_NEAR(at(q, qidx), 60 + 2 * 20 + 3 * 5 + 4, 0);            /* t[1, 2, 3, 4] */
    kiln_tensor_release(q);
    q = NULL;
    ASSERT_EQ_INT(kiln_tensor_permute(t, (int[]){0, 0, 1, 2}, &q), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_tensor_permute(t, (int[]){0, 1, 2, 4}, &q), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_tensor_permute(t, (int[]){-1, -2, -3, -4}, &q), 0);  /* reversed */
    ASSERT_EQ_INT(kiln_tensor_dim(q, 0), 5);
    kiln_tensor_release(q);
    ASSERT_EQ_INT(kiln_tensor_transpose(t, 0, 4, &q), KILN_EINVAL);
    kiln_tensor_release(p);
    kiln_tensor_release(t);
}

static void test_slice(void)
{
    int64_t shape[3] = {2, 5, 3};
    kiln_tensor_t *t = iota(3, shape), *s = NULL;
    ASSERT_EQ_INT(kiln_tensor_slice(t, 1, 1, 3, &s), 0);               /* [2, 3, 3] */
    ASSERT_EQ_INT(kiln_tensor_dim(s, 1), 3);
    ASSERT_EQ_INT(kiln_tensor_stride(s, 0), 15);
    ASSERT(!kiln_tensor_is_contiguous(s));
    int64_t idx[3] = {1, 2, 1};
    ASSERT_NEAR(at(s, idx), 15 + 3 * 3 + 1, 0);
    kiln_tensor_t *e = NULL;
    ASSERT_EQ_INT(kiln_tensor_slice(t, -1, 3, 0, &e), 0);              /* empty: [2, 5, 0] */
    ASSERT_EQ_INT(kiln_tensor_numel(e), 0);
    kiln_tensor_release(e);
    ASSERT_EQ_INT(kiln_tensor_slice(t, 1, 4, 2, &e), KILN_ERANGE);
    ASSERT_EQ_INT(kiln_tensor_slice(t, 1, 6, 0, &e), KILN_ERANGE);
    ASSERT_EQ_INT(kiln_tensor_slice(t, 1, -1, 2, &e), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_tensor_slice(t, 3, 0, 1, &e), KILN_EINVAL);
    /* A slice of a slice composes offsets. */
    ASSERT_EQ_INT(kiln_tensor_slice(s, 2, 2, 1, &e), 0);               /* [2, 3, 1] */
    ASSERT_NEAR(((float *)kiln_tensor_data(e))[0], 3 + 2, 0);
    kiln_tensor_release(e);
    kiln_tensor_release(s);
    kiln_tensor_release(t);
}

static void test_contiguous(void)
{
    int64_t shape[3] = {3, 4, 5};
    kiln_tensor_t *t = iota(3, shape), *c = NULL, *p = NULL;
    ASSERT_EQ_INT(kiln_tensor_contiguous(t, &c), 0);
    ASSERT(c == t);                                                    /* no copy needed */
    kiln_tensor_release(c);
    ASSERT_EQ_INT(kiln_tensor_permute(t, (int[]){2, 0, 1}, &p), 0);    /* [5, 3, 4] */
    ASSERT_EQ_INT(kiln_tensor_contiguous(p, &c), 0);
    ASSERT(c != p);
    ASSERT(kiln_tensor_is_contiguous(c));
    ASSERT(c->storage != t->storage);
    const float *d = kiln_tensor_data(c);
    for (int64_t a = 0; a < 5; a++)
        for (int64_t b = 0; b < 3; b++)
            for (int64_t k = 0; k < 4; k++)
                ASSERT_NEAR(d[(a * 3 + b) * 4 + k], b * 20 + k * 5 + a, 0);
    kiln_tensor_release(c);
    kiln_tensor_release(p);
    /* Size-1 dimensions do not break contiguity, whatever their stride. */
    kiln_tensor_t *v = NULL;
    ASSERT_EQ_INT(kiln_tensor_view(t, 3, (int64_t[]){1, 4, 5}, (int64_t[]){999, 5, 1}, 0, &v),
                  0);
    ASSERT(kiln_tensor_is_contiguous(v));
    kiln_tensor_release(v);
    kiln_tensor_release(t);
}

static void test_reshape(void)
{
    int64_t shape[3] = {2, 3, 4};
    kiln_tensor_t *t = iota(3, shape), *r = NULL;
    ASSERT_EQ_INT(kiln_tensor_reshape(t, 2, (int64_t[]){6, -1}, &r), 0);   /* [6, 4] */
    ASSERT_EQ_INT(kiln_tensor_dim(r, 1), 4);
    ASSERT(r->storage == t->storage);
    kiln_tensor_release(r);
    ASSERT_EQ_INT(kiln_tensor_reshape(t, 2, (int64_t[]){5, -1}, &r), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_tensor_reshape(t, 2, (int64_t[]){-1, -1}, &r), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_tensor_reshape(t, 1, (int64_t[]){25}, &r), KILN_EINVAL);

    /* A slice along the last dim: splitting the outer dims is still a view... */
    kiln_tensor_t *s = NULL;
    ASSERT_EQ_INT(kiln_tensor_slice(t, 2, 1, 2, &s), 0);                /* [2, 3, 2] */
    ASSERT_EQ_INT(kiln_tensor_reshape(s, 4, (int64_t[]){2, 3, 1, 2}, &r), 0);
    ASSERT(r->storage == t->storage);
    ASSERT_EQ_INT(kiln_tensor_stride(r, 1), 4);
    kiln_tensor_release(r);
    /* ...merging the sliced dim with its neighbour needs a copy. */
    ASSERT_EQ_INT(kiln_tensor_reshape(s, 2, (int64_t[]){2, 6}, &r), 0);  /* [2, 6] */
    ASSERT(r->storage != t->storage);
    const float *d = kiln_tensor_data(r);
    const float want[6] = {1, 2, 5, 6, 9, 10};
    for (int i = 0; i < 6; i++) {
        ASSERT_NEAR(d[i], want[i], 0);
        ASSERT_NEAR(d[6 + i], want[i] + 12, 0);
    }
    kiln_tensor_release(r);
    /* A transposed matrix flattens only by copying; merging [H, W] of a permuted NCHW
     * tensor whose H and W stay dense is a view. */
    kiln_tensor_t *p = NULL;
    ASSERT_EQ_INT(kiln_tensor_permute(t, (int[]){1, 0, 2}, &p), 0);    /* [3, 2, 4] */
    ASSERT_EQ_INT(kiln_tensor_reshape(p, 3, (int64_t[]){3, 2, 4}, &r), 0);
    ASSERT(r->storage == t->storage);
    kiln_tensor_release(r);
    ASSERT_EQ_INT(kiln_tensor_reshape(p, 2, (int64_t[]){3, 8}, &r), 0);
    ASSERT(r->storage != t->storage);
    ASSERT_NEAR(((float *)kiln_tensor_data(r))[4], 12, 0);              /* p[0][1][0] */
    kiln_tensor_release(r);
    kiln_tensor_release(p);
    kiln_tensor_release(s);
    /* Scalars and empty tensors. */
    kiln_tensor_t *one = NULL;
    ASSERT_EQ_INT(kiln_tensor_slice(t, 0, 1, 1, &s), 0);
    ASSERT_EQ_INT(kiln_tensor_reshape(s, 4, (int64_t[]){1, 12, 1, 1}, &one), 0);
    ASSERT_NEAR(((float *)kiln_tensor_data(one))[11], 23, 0);
    kiln_tensor_release(one);
    kiln_tensor_release(s);
    kiln_tensor_release(t);
}

static void test_copy_and_convert(void)
{
    int64_t shape[2] = {3, 4};
    kiln_tensor_t *t = iota(2, shape), *tt = NULL, *h = NULL;
    ASSERT_EQ_INT(kiln_tensor_transpose(t, 0, 1, &tt), 0);            /* [4, 3] */
    ASSERT_EQ_INT(kiln_tensor_to_dtype(tt, KILN_DTYPE_F16, &h), 0);
    ASSERT(kiln_tensor_is_contiguous(h));
    const uint16_t *hp = kiln_tensor_data(h);
    ASSERT_EQ_INT(hp[0], 0x0000);                                      /* 0.0 */
    ASSERT_EQ_INT(hp[1], 0x4400);                                      /* 4.0 */
    ASSERT_EQ_INT(hp[3], 0x3c00);                                      /* 1.0 */
    ASSERT_EQ_INT(hp[11], 0x4980);                                     /* 11.0 */
    /* Copy back into a strided destination, converting again. */
    kiln_tensor_t *dst = kiln_tensor_new(KILN_DTYPE_F32, 2, (int64_t[]){3, 4}), *dt = NULL;
    ASSERT_EQ_INT(kiln_tensor_transpose(dst, 0, 1, &dt), 0);
    ASSERT_EQ_INT(kiln_tensor_copy(dt, h), 0);
    const float *a = kiln_tensor_data(t), *b = kiln_tensor_data(dst);
    for (int i = 0; i < 12; i++)
        ASSERT_NEAR(b[i], a[i], 0);
    ASSERT_EQ_INT(kiln_tensor_copy(dst, h), KILN_EINVAL);              /* shapes differ */
    kiln_tensor_t *i32 = NULL;
    ASSERT_EQ_INT(kiln_tensor_to_dtype(t, KILN_DTYPE_I32, &i32), KILN_EUNSUPPORTED);
    ASSERT(i32 == NULL);
    kiln_tensor_t *ints = kiln_tensor_new(KILN_DTYPE_I64, 1, (int64_t[]){3});
    int64_t *ip = kiln_tensor_data(ints);
    ip[0] = -5;
    ip[1] = 300;
    ip[2] = INT64_C(1) << 40;
    kiln_tensor_t *f = NULL;
    ASSERT_EQ_INT(kiln_tensor_to_dtype(ints, KILN_DTYPE_F32, &f), 0);
    ASSERT_NEAR(((float *)kiln_tensor_data(f))[2], 1099511627776.0, 0);
    kiln_tensor_release(f);
    ASSERT_EQ_INT(kiln_tensor_to_dtype(ints, KILN_DTYPE_U8, &f), KILN_ERANGE);
    ip[2] = 7;
    ASSERT_EQ_INT(kiln_tensor_to_dtype(ints, KILN_DTYPE_I16, &f), 0);
    ASSERT_EQ_INT(((int16_t *)kiln_tensor_data(f))[1], 300);
    kiln_tensor_release(f);
    kiln_tensor_release(ints);
    kiln_tensor_release(dt);
    kiln_tensor_release(dst);
    kiln_tensor_release(h);
    kiln_tensor_release(tt);
    kiln_tensor_release(t);
}

/* A copy between two strided 4-D views, checked element by element. */
static void test_copy_strided_4d(void)
{
    int64_t shape[4] = {2, 3, 4, 5};
    kiln_tensor_t *t = iota(4, shape), *src = NULL, *sl = NULL;
    ASSERT_EQ_INT(kiln_tensor_permute(t, (int[]){3, 1, 0, 2}, &src), 0);   /* [5, 3, 2, 4] */
    ASSERT_EQ_INT(kiln_tensor_slice(src, 3, 1, 2, &sl), 0);                /* [5, 3, 2, 2] */
    kiln_tensor_t *big = kiln_tensor_new(KILN_DTYPE_F64, 4, (int64_t[]){5, 3, 2, 6}), *dst = NULL;
    ASSERT_EQ_INT(kiln_tensor_slice(big, 3, 3, 2, &dst), 0);
    ASSERT_EQ_INT(kiln_tensor_copy(dst, sl), 0);
    const double *d = kiln_tensor_data(big);
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 2; c++)
                for (int e = 0; e < 6; e++) {
                    double got = d[((a * 3 + b) * 2 + c) * 6 + e];
                    double want = e >= 3 && e < 5 ? c * 60 + b * 20 + (e - 2) * 5 + a : 0;
                    ASSERT_NEAR(got, want, 0);
                }
    kiln_tensor_release(dst);
    kiln_tensor_release(big);
    kiln_tensor_release(sl);
    kiln_tensor_release(src);
    kiln_tensor_release(t);
}

static void test_pool_backs_tensors(void)
{
    kiln__host_pool_t *pool = kiln__host_pool_default();
    kiln__host_pool_stats_t s0, s1, s2;
    kiln__host_pool_stats(pool, &s0);
    int64_t shape[2] = {100, 100};                           /* 40000 bytes: class 40960 */
    kiln_tensor_t *t = kiln_tensor_new(KILN_DTYPE_F32, 2, shape);
    kiln__host_pool_stats(pool, &s1);
    ASSERT_EQ_INT(s1.in_use - s0.in_use, 40960);
    void *first = kiln_tensor_data(t);
    kiln_tensor_release(t);
    t = kiln_tensor_new(KILN_DTYPE_F32, 2, shape);
    kiln__host_pool_stats(pool, &s2);
    ASSERT(kiln_tensor_data(t) == first);                    /* the cached block again */
    ASSERT_EQ_INT(s2.hits - s1.hits, 1);
    kiln_tensor_release(t);
}

KILN_TEST_MAIN(TEST(test_new_basic), TEST(test_dtype_names), TEST(test_views_share_storage),
               TEST(test_view_bounds), TEST(test_permute_transpose), TEST(test_slice),
               TEST(test_contiguous), TEST(test_reshape), TEST(test_copy_and_convert),
               TEST(test_copy_strided_4d), TEST(test_pool_backs_tensors))
