/* The CUDA runtime under the tensors: host<->device copies (every dtype, strided views,
 * transfers larger than the pinned staging buffers), zero-filled device tensors, the
 * caching allocator (reuse without new device memory, clear out-of-memory errors that
 * leave the device usable), CUDA lanes: work on two lanes' streams that shares a
 * tensor is ordered by the runtime's events without host waits, and recorded graphs:
 * replays read new inputs and match the CPU; a recording with a host wait fails cleanly. */
#include <pthread.h>
#include <semaphore.h>

#include <kiln/graph.h>

#include "gpu_common.h"
#include "cuda/cuda_rt.h"
#include "sched/lane.h"

static void test_roundtrip_dtypes(void)
{
    need_gpu();
    kiln_dtype_t dts[] = {KILN_DTYPE_F32, KILN_DTYPE_F16, KILN_DTYPE_BF16, KILN_DTYPE_I64,
                          KILN_DTYPE_U8, KILN_DTYPE_F64};
    for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
        kiln_tensor_t *h = tnew(dts[i], SHAPE(3, 41, 5));
        size_t n = kiln_tensor_nbytes(h);
        unsigned char *b = kiln_tensor_data(h);
        for (size_t j = 0; j < n; j++)
            b[j] = (unsigned char)(j * 131 + i * 7 + 1);
        if (dts[i] == KILN_DTYPE_F64) /* keep doubles finite: only low mantissa bytes vary */
            for (size_t j = 0; j < n; j += 8)
                b[j + 7] = 0x3f;
        kiln_tensor_t *d = to_gpu(h);
        ASSERT_EQ_INT(kiln_tensor_device(d), GPU);
        ASSERT(kiln_tensor_data(d) == NULL);
        kiln_tensor_t *back = to_host(d);
        ASSERT_EQ_INT(kiln_tensor_device(back), KILN_DEVICE_CPU);
        ASSERT_EQ_INT(memcmp(kiln_tensor_data(back), b, n), 0);
        kiln_tensor_release(h);
        kiln_tensor_release(d);
        kiln_tensor_release(back);
    }
}

/* 40 MiB each way: more than the two 16 MiB staging buffers hold at once. */
static void test_large_transfer(void)
{
    need_gpu();
    int64_t n = 10 << 20;
    kiln_tensor_t *h = tnew(KILN_DTYPE_F32, 1, &n);
    float *p = kiln_tensor_data(h);
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)(i % 100003) - 17.5f;
    kiln_tensor_t *d = to_gpu(h);
    kiln_tensor_t *d2 = NULL;
    ASSERT_EQ_INT(kiln_tensor_to_device(d, GPU, &d2), 0); /* device to device */
    kiln_tensor_t *back = to_host(d2);
    ASSERT_EQ_INT(memcmp(kiln_tensor_data(back), p, (size_t)n * 4), 0);
    kiln_tensor_release(h);
    kiln_tensor_release(d);
    kiln_tensor_release(d2);
    kiln_tensor_release(back);
}

/* Strided device views download as dense tensors in index order. */
static void test_strided_download(void)
{
    need_gpu();
    rng_seed(7);
    for (int layout = 1; layout < 3; layout++) {
        kiln_tensor_t *h, *d;
        pair_rand(KILN_DTYPE_F32, layout, 1.0, SHAPE(4, 9, 6), &h, &d);
        ASSERT(!kiln_tensor_is_contiguous(d));
        kiln_tensor_t *back = to_host(d);
        double *ref = to_doubles(h);
        check_close_at(__FILE__, __LINE__, back, ref, 0.0);
        free(ref);
        kiln_tensor_release(h);
        kiln_tensor_release(d);
        kiln_tensor_release(back);
    }
}

static void test_new_on_zero_filled(void)
{
    need_gpu();
    kiln_tensor_t *d = NULL;
    ASSERT_EQ_INT(kiln_tensor_new_on(GPU, KILN_DTYPE_F32, SHAPE(1000, 33), &d), 0);
    kiln_tensor_t *h = to_host(d);
    ASSERT(all_equal(h, 0.0));
    kiln_tensor_release(h);
    kiln_tensor_release(d);
    ASSERT_EQ_INT(kiln_tensor_new_on(99, KILN_DTYPE_F32, SHAPE(4), &d), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_tensor_new_on(GPU, KILN_DTYPE_F32, SHAPE(-1), &d), KILN_EINVAL);
}

/* Freed blocks come back from the cache: repeating an allocation pattern asks the device
 * for no new memory. */
static void test_allocator_reuse(void)
{
    need_gpu();
    size_t use0, cache0, use1, cache1;
    for (int round = 0; round < 3; round++) {
        kiln_tensor_t *t[8];
        for (int i = 0; i < 8; i++)
            ASSERT_EQ_INT(kiln_tensor_new_on(GPU, KILN_DTYPE_F16, SHAPE(1000 + i * 777, 64), &t[i]),
                          0);
        for (int i = 0; i < 8; i++)
            kiln_tensor_release(t[i]);
        if (round == 0)
            kiln__cuda_mem_stats(GPU, &use0, &cache0);
    }
    kiln__cuda_mem_stats(GPU, &use1, &cache1);
    ASSERT_EQ_INT(use1 + cache1, use0 + cache0);
    ASSERT_CMP_INT(cache1, >, 0);
    ASSERT_CMP_INT(kiln__cuda_empty_cache(GPU), >, 0);
    kiln__cuda_mem_stats(GPU, &use1, &cache1);
    ASSERT_EQ_INT(cache1, 0);
}

/* A request beyond the device's memory fails with KILN_EDEVICE_OOM; the device stays
 * usable afterwards. */
static void test_out_of_memory(void)
{
    need_gpu();
    kiln_tensor_t *t = NULL;
    ASSERT_EQ_INT(kiln_tensor_new_on(GPU, KILN_DTYPE_F32, SHAPE(1ll << 40), &t), KILN_EDEVICE_OOM);
    ASSERT(t == NULL);
    kiln_tensor_t *h = tnew(KILN_DTYPE_F32, SHAPE(5));
    ASSERT_EQ_INT(kiln_op_add_scalar(NULL, h, h, 2.0f), 0);
    kiln_tensor_t *d = to_gpu(h);
    ASSERT_EQ_INT(kiln_op_scale(NULL, d, d, 3.0f), 0);
    kiln_tensor_t *back = to_host(d);
    CHECK_EXACT(back, 6, 6, 6, 6, 6);
    kiln_tensor_release(h);
    kiln_tensor_release(d);
    kiln_tensor_release(back);
}

/* ---- lanes ---------------------------------------------------------------------------- */

typedef struct step {
    kiln__lane_job_t job;
    void (*fn)(struct step *s, kiln_lane_t *lane);
    kiln_tensor_t *a, *b, *c;
    int rc;
    sem_t done;
} step_t;

static void step_run(kiln__lane_job_t *job, kiln_lane_t *lane)
{
    step_t *s = (step_t *)job;
    s->fn(s, lane);
    sem_post(&s->done);
}

static void run_on(kiln_lane_t *lane, step_t *s)
{
    sem_init(&s->done, 0, 0);
    s->job.run = step_run;
    kiln__lane_submit(lane, &s->job);
    sem_wait(&s->done); /* the job returned: its device work is queued, maybe not done */
    sem_destroy(&s->done);
}

/* Producer: a long chain of products ending in c = 1 + (a @ a) * 0 on its lane. */
static void produce(step_t *s, kiln_lane_t *lane)
{
    s->rc = 0;
    for (int i = 0; s->rc == 0 && i < 40; i++)
        s->rc = kiln_op_matmul(lane, s->b, s->a, s->a, 0); // [N, N]
    if (s->rc == 0)
        s->rc = kiln_op_scale(lane, s->c, s->b, 0.0f);
    if (s->rc == 0)
        s->rc = kiln_op_add_scalar(lane, s->c, s->c, 1.0f);
}

/* b = a (a copy on the lane, before a graph replay reads b). */
static void copy_in(step_t *s, kiln_lane_t *lane)
{
    s->rc = kiln_op_contiguous(lane, s->b, s->a);
}

/* Consumer on the other lane: b = c * 2 (must see the producer's c). */
static void consume(step_t *s, kiln_lane_t *lane)
{
    s->rc = kiln_op_scale(lane, s->b, s->c, 2.0f);
}

static void test_lanes_cross_stream_order(void)
{
    need_gpu();
    kiln__lanes_t *ls = NULL;
    ASSERT_EQ_INT(kiln__lanes_new(1, &ls), 0);
    ASSERT_EQ_INT(kiln__cuda_lanes_add(ls, 2), 2 * kiln_device_count());
    kiln_lane_t *l0 = kiln__lanes_find(ls, "cuda:0:0"), *l1 = kiln__lanes_find(ls, "cuda:0:1");
    ASSERT(l0 && l1 && l0->stream_handle != l1->stream_handle);
    for (int round = 0; round < 3; round++) {
        int64_t n = 2048;
        kiln_tensor_t *ha = tnew(KILN_DTYPE_F32, SHAPE(n, n));
        rng_seed(40 + round);
        fill_random(ha, 1.0);
        step_t p = {.fn = produce, .a = to_gpu(ha)};
        ASSERT_EQ_INT(kiln_tensor_new_on(GPU, KILN_DTYPE_F32, SHAPE(n, n), &p.b), 0);
        ASSERT_EQ_INT(kiln_tensor_new_on(GPU, KILN_DTYPE_F32, SHAPE(n, n), &p.c), 0);
        ASSERT_EQ_INT(kiln_tensor_sync(p.c), 0);
        run_on(l0, &p);
        ASSERT_EQ_INT(p.rc, 0);
        step_t q = {.fn = consume, .c = p.c};
        ASSERT_EQ_INT(kiln_tensor_new_on(GPU, KILN_DTYPE_F32, SHAPE(n, n), &q.b), 0);
        run_on(l1, &q);
        ASSERT_EQ_INT(q.rc, 0);
        kiln_tensor_t *back = to_host(q.b);
        ASSERT(all_equal(back, 2.0));
        kiln_tensor_t *all[] = {ha, p.a, p.b, p.c, q.b, back};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            kiln_tensor_release(all[i]);
    }
    kiln__lanes_free(ls);
}

/* ---- recorded graphs (kiln/graph.h) ------------------------------------------------- */

typedef struct graph_step {
    step_t base;
    kiln_tensor_t *w, *bias, *out;
    kiln_graph_t *g;
    int mode; /* 0: eager, 1: record, 2: replay, 3: record with a host wait inside */
} graph_step_t;

/* out = silu(a W^T + b), with the middle tensor made inside the call (graph memory). */
static int silu_linear(graph_step_t *g, kiln_lane_t *lane)
{
    kiln_tensor_t *t = NULL;
    int rc = kiln_tensor_new_on(GPU, KILN_DTYPE_F32, SHAPE(64, 32), &t);
    if (rc == 0)
        rc = kiln_op_linear(lane, t, g->base.a, g->w, g->bias); // [64, 32]
    if (rc == 0 && g->mode == 3)
        rc = kiln_tensor_sync(t); /* a host wait: not recordable */
    if (rc == 0)
        rc = kiln_op_silu(lane, g->out, t);
    kiln_tensor_release(t);
    return rc;
}

static void graph_run(step_t *s, kiln_lane_t *lane)
{
    graph_step_t *g = (graph_step_t *)s;
    if (g->mode == 2) {
        s->rc = kiln_graph_replay(lane, g->g);
        return;
    }
    if (g->mode == 1 || g->mode == 3)
        ASSERT_EQ_INT(kiln_lane_record_begin(lane), 0);
    int rc = silu_linear(g, lane);
    s->rc = g->mode == 1 || g->mode == 3 ? kiln_lane_record_end(lane, &g->g) : rc;
    if (g->mode == 3)
        s->rc = s->rc ? s->rc : rc;
}

/* The CPU result for a_host. */
static kiln_tensor_t *silu_linear_cpu(const kiln_tensor_t *a, const kiln_tensor_t *w,
                                      const kiln_tensor_t *b)
{
    kiln_tensor_t *t = tnew(KILN_DTYPE_F32, SHAPE(64, 32));
    kiln_tensor_t *o = tnew(KILN_DTYPE_F32, SHAPE(64, 32));
    ASSERT_EQ_INT(kiln_op_linear(NULL, t, a, w, b), 0);
    ASSERT_EQ_INT(kiln_op_silu(NULL, o, t), 0);
    kiln_tensor_release(t);
    return o;
}

static void test_graph_record_and_replay(void)
{
    need_gpu();
    kiln__lanes_t *ls = NULL;
    ASSERT_EQ_INT(kiln__lanes_new(1, &ls), 0);
    ASSERT_EQ_INT(kiln__cuda_lanes_add(ls, 1), kiln_device_count());
    kiln_lane_t *l0 = kiln__lanes_find(ls, "cuda:0:0"), *cpu = kiln__lanes_find(ls, "cpu:0");
    ASSERT(l0 && cpu);
    ASSERT_EQ_INT(kiln_lane_record_begin(cpu), KILN_EUNSUPPORTED);
    rng_seed(60);
    kiln_tensor_t *ha = tnew(KILN_DTYPE_F32, SHAPE(64, 48));
    kiln_tensor_t *hw = tnew(KILN_DTYPE_F32, SHAPE(32, 48));
    kiln_tensor_t *hb = tnew(KILN_DTYPE_F32, SHAPE(32));
    fill_random(ha, 1.0);
    fill_random(hw, 0.5);
    fill_random(hb, 1.0);
    graph_step_t g = {.base = {.fn = graph_run, .a = to_gpu(ha)}, .w = to_gpu(hw),
                      .bias = to_gpu(hb)};
    ASSERT_EQ_INT(kiln_tensor_new_on(GPU, KILN_DTYPE_F32, SHAPE(64, 32), &g.out), 0);
    for (int mode = 0; mode < 2; mode++) { /* an eager call first, then the recording */
        g.mode = mode;
        run_on(l0, &g.base);
        ASSERT_EQ_INT(g.base.rc, 0);
    }
    ASSERT(g.g != NULL);
    for (int round = 0; round < 3; round++) { /* new inputs each time, then one replay */
        fill_random(ha, 1.0 + round);
        kiln_tensor_t *da = to_gpu(ha);
        step_t fill = {.fn = copy_in, .a = da, .b = g.base.a};
        run_on(l0, &fill);
        ASSERT_EQ_INT(fill.rc, 0);
        g.mode = 2;
        run_on(l0, &g.base);
        ASSERT_EQ_INT(g.base.rc, 0);
        kiln_tensor_t *want = silu_linear_cpu(ha, hw, hb);
        CHECK_GPU(g.out, want, 1e-5);
        kiln_tensor_release(want);
        kiln_tensor_release(da);
    }
    kiln_graph_free(g.g);
    /* a host wait inside a recording fails it; the lane then runs eagerly as before */
    g.mode = 3;
    g.g = NULL;
    run_on(l0, &g.base);
    ASSERT(g.base.rc != 0);
    ASSERT(g.g == NULL);
    g.mode = 0;
    run_on(l0, &g.base);
    ASSERT_EQ_INT(g.base.rc, 0);
    kiln_tensor_t *want = silu_linear_cpu(ha, hw, hb);
    CHECK_GPU(g.out, want, 1e-5);
    kiln_tensor_t *all[] = {ha, hw, hb, g.base.a, g.w, g.bias, g.out, want};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        kiln_tensor_release(all[i]);
    kiln__lanes_free(ls);
}

KILN_TEST_MAIN(TEST(test_roundtrip_dtypes), TEST(test_large_transfer), TEST(test_strided_download),
               TEST(test_new_on_zero_filled), TEST(test_allocator_reuse),
               TEST(test_out_of_memory), TEST_TIMEOUT(test_lanes_cross_stream_order, 120),
               TEST_TIMEOUT(test_graph_record_and_replay, 120))
