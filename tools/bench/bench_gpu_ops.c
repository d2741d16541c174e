/* GPU op benchmark: the op library's CUDA kernels at the shapes of one SD1.5 UNet step at
 * 512x512 (latent 64x64, batch 2 for classifier-free guidance), in F16 unless named, plus
 * a large F16 matmul for the device's cuBLAS ceiling; group norm also on channels-last
 * tensors (input and output), the layout the models keep on GPUs. Inputs are random (never zeros);
 * each case is warmed up, then timed with CUDA events around each of `reps` calls on one
 * stream, and the median is reported with its TFLOP/s (or GB/s for memory-bound ops).
 *
 *   bench_gpu_ops [reps]        (prints a table; needs a CUDA device) */
#include <stdio.h>
#include <stdlib.h>

#ifdef KILN_HAVE_CUDA
#include <cuda_runtime_api.h>
#include <kiln/ops.h>
#include <kiln/tensor.h>
#include <string.h>

#include "cuda/cuda_rt.h"
#include "runtime/convert.h"

#define DEV 1
#define F16 KILN_DTYPE_F16
#define F32 KILN_DTYPE_F32

static uint64_t rng = 0x2545f4914f6cdd1dull;

static float uniform(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (float)((double)((rng * 0x2545f4914f6cdd1dull) >> 11) / (double)(1ull << 53)) * 2.0f -
           1.0f;
}

/* A random device tensor (uniform in [-scale, scale)). */
static kiln_tensor_t *rnd(kiln_dtype_t dt, float scale, int ndim, const int64_t *shape)
{
    kiln_tensor_t *h = kiln_tensor_new(dt, ndim, shape), *d = NULL;
    if (!h)
        return NULL;
    int64_t n = kiln_tensor_numel(h);
    for (int64_t i = 0; i < n; i++) {
        float v = uniform() * scale;
        if (dt == F16)
            ((uint16_t *)kiln_tensor_data(h))[i] = kiln__f32_to_f16(v);
        else
            ((float *)kiln_tensor_data(h))[i] = v;
    }
    if (kiln_tensor_to_device(h, DEV, &d) != 0)
        d = NULL;
    kiln_tensor_release(h);
    return d;
}

#define S(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__}

static const int to_cl[4] = {0, 3, 1, 2}; /* [N, H, W, C] -> [N, C, H, W] */

/* A random channels-last device tensor [n, c, h, w] (a permuted [n, h, w, c] one). */
static kiln_tensor_t *rnd_cl(kiln_dtype_t dt, float scale, int64_t n, int64_t c, int64_t h,
                             int64_t w)
{
    kiln_tensor_t *b = rnd(dt, scale, S(n, h, w, c)), *v = NULL;
    if (b && kiln_tensor_permute(b, to_cl, &v) != 0)
        v = NULL;
    kiln_tensor_release(b);
    return v;
}

typedef struct bcase {
    const char *name;
    double flop;  /* per call; 0 for memory-bound ops */
    double bytes; /* per call, minimum traffic */
    kiln_tensor_t *t[4];
    int (*run)(struct bcase *c);
} bcase_t;

static int run_matmul(bcase_t *c) { return kiln_op_matmul(NULL, c->t[0], c->t[1], c->t[2], 0); }
static int run_conv(bcase_t *c)
{
    kiln_conv2d_params_t p = {KILN_CONV2D_PARAMS_INIT, .pad_top = 1, .pad_bottom = 1,
                              .pad_left = 1, .pad_right = 1};
    return kiln_op_conv2d(NULL, c->t[0], c->t[1], c->t[2], c->t[3], &p);
}
static int run_attn(bcase_t *c) { return kiln_op_attention(NULL, c->t[0], c->t[1], c->t[2], c->t[3], 8, 0.0f); }
static int run_linear(bcase_t *c) { return kiln_op_linear(NULL, c->t[0], c->t[1], c->t[2], c->t[3]); }
static int run_gn(bcase_t *c) { return kiln_op_group_norm(NULL, c->t[0], c->t[1], c->t[2], c->t[3], 32, 1e-5f, 1); }
static int run_ln(bcase_t *c) { return kiln_op_layer_norm(NULL, c->t[0], c->t[1], c->t[2], c->t[3], 1e-5f); }
static int run_geglu(bcase_t *c) { return kiln_op_geglu(NULL, c->t[0], c->t[1]); }
static int run_add(bcase_t *c) { return kiln_op_add(NULL, c->t[0], c->t[1], c->t[2]); }

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* Median milliseconds of reps calls (after 3 warm-ups); negative on failure. */
static float time_case(bcase_t *c, cudaStream_t s, int reps)
{
    for (int i = 0; i < 3; i++)
        if (c->run(c) != 0)
            return -1.0f;
    float *ms = calloc((size_t)reps, sizeof *ms);
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    for (int i = 0; i < reps; i++) {
        cudaEventRecord(a, s);
        int rc = c->run(c);
        cudaEventRecord(b, s);
        cudaEventSynchronize(b);
        cudaEventElapsedTime(&ms[i], a, b);
        if (rc != 0)
            ms[i] = -1.0f;
    }
    qsort(ms, (size_t)reps, sizeof *ms, cmp_float);
    float med = ms[0] < 0 ? -1.0f : ms[reps / 2];
    free(ms);
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return med;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 20;
    if (reps < 1)
        reps = 20;
    if (kiln_device_count() < 1) {
        fprintf(stderr, "bench_gpu_ops: no CUDA device\n");
        return 1;
    }
    kiln__cuda_stream_t *st = NULL;
    if (kiln__cuda_stream_new(DEV, &st) != 0)
        return 1;
    kiln__cuda_set_current_stream(st); /* lane-less calls queue on st without waiting */
    struct cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
    const int64_t B = 2, C = 320, HW = 4096;
    bcase_t cases[] = {
        {"matmul f16 8192^3 (cuBLAS ceiling)", 2.0 * 8192.0 * 8192 * 8192, 0,
         {NULL, rnd(F16, 1, S(8192, 8192)), rnd(F16, 1, S(8192, 8192))}, run_matmul},
        {"conv3x3 320->320 64x64 b2", 2.0 * B * C * C * 9 * HW, 0,
         {NULL, rnd(F16, 1, S(B, C, 64, 64)), rnd(F16, 0.05f, S(C, C, 3, 3)), rnd(F16, 1, S(C))},
         run_conv},
        {"conv3x3 640->640 32x32 b2", 2.0 * B * 640 * 640 * 9 * 1024, 0,
         {NULL, rnd(F16, 1, S(B, 640, 32, 32)), rnd(F16, 0.05f, S(640, 640, 3, 3)),
          rnd(F16, 1, S(640))},
         run_conv},
        {"conv3x3 1280->1280 8x8 b2", 2.0 * B * 1280 * 1280 * 9 * 64, 0,
         {NULL, rnd(F16, 1, S(B, 1280, 8, 8)), rnd(F16, 0.05f, S(1280, 1280, 3, 3)),
          rnd(F16, 1, S(1280))},
         run_conv},
        {"attention self 4096x4096 h8 d40 b2", 4.0 * B * 8 * HW * HW * 40, 0,
         {NULL, rnd(F16, 1, S(B, HW, C)), rnd(F16, 1, S(B, HW, C)), rnd(F16, 1, S(B, HW, C))},
         run_attn},
        {"attention cross 4096x77 h8 d40 b2", 4.0 * B * 8 * HW * 77 * 40, 0,
         {NULL, rnd(F16, 1, S(B, HW, C)), rnd(F16, 1, S(B, 77, C)), rnd(F16, 1, S(B, 77, C))},
         run_attn},
        {"linear 8192x320 -> 2560 (ff proj)", 2.0 * B * HW * C * 2560, 0,
         {NULL, rnd(F16, 1, S(B, HW, C)), rnd(F16, 0.05f, S(2560, C)), rnd(F16, 1, S(2560))},
         run_linear},
        {"group_norm+silu 2x320x64x64", 0, 2.0 * 2 * B * C * HW,
         {NULL, rnd(F16, 1, S(B, C, 64, 64)), rnd(F16, 1, S(C)), rnd(F16, 1, S(C))}, run_gn},
        {"layer_norm 8192x320", 0, 2.0 * 2 * B * HW * C,
         {NULL, rnd(F16, 1, S(B, HW, C)), rnd(F16, 1, S(C)), rnd(F16, 1, S(C))}, run_ln},
        {"geglu 8192x2560 -> 1280", 0, 2.0 * B * HW * (2560 + 1280),
         {NULL, rnd(F16, 1, S(B, HW, 2560))}, run_geglu},
        {"add 2x320x64x64", 0, 2.0 * 3 * B * C * HW,
         {NULL, rnd(F16, 1, S(B, C, 64, 64)), rnd(F16, 1, S(B, C, 64, 64))}, run_add},
        /* the norms and GEGLU at SD's other widths, and channels-last group norm (x and
         * out [N, C, H, W] views of [N, H, W, C] memory) */
        {"group_norm+silu 2x320x64x64 channels-last", 0, 2.0 * 2 * B * C * HW,
         {NULL, rnd_cl(F16, 1, B, C, 64, 64), rnd(F16, 1, S(C)), rnd(F16, 1, S(C))}, run_gn},
        {"group_norm+silu 2x640x32x32", 0, 2.0 * 2 * B * 640 * 1024,
         {NULL, rnd(F16, 1, S(B, 640, 32, 32)), rnd(F16, 1, S(640)), rnd(F16, 1, S(640))},
         run_gn},
        {"group_norm+silu 2x640x32x32 channels-last", 0, 2.0 * 2 * B * 640 * 1024,
         {NULL, rnd_cl(F16, 1, B, 640, 32, 32), rnd(F16, 1, S(640)), rnd(F16, 1, S(640))},
         run_gn},
        {"group_norm+silu 2x1280x16x16 channels-last", 0, 2.0 * 2 * B * 1280 * 256,
         {NULL, rnd_cl(F16, 1, B, 1280, 16, 16), rnd(F16, 1, S(1280)), rnd(F16, 1, S(1280))},
         run_gn},
        {"group_norm+silu 1x128x512x512 ch-last (VAE)", 0, 2.0 * 2 * 128 * 512 * 512,
         {NULL, rnd_cl(F16, 1, 1, 128, 512, 512), rnd(F16, 1, S(128)), rnd(F16, 1, S(128))},
         run_gn},
        {"layer_norm 2048x640", 0, 2.0 * 2 * B * 1024 * 640,
         {NULL, rnd(F16, 1, S(B, 1024, 640)), rnd(F16, 1, S(640)), rnd(F16, 1, S(640))}, run_ln},
        {"layer_norm 512x1280", 0, 2.0 * 2 * B * 256 * 1280,
         {NULL, rnd(F16, 1, S(B, 256, 1280)), rnd(F16, 1, S(1280)), rnd(F16, 1, S(1280))},
         run_ln},
        {"geglu 2048x5120 -> 2560", 0, 2.0 * B * 1024 * (5120 + 2560),
         {NULL, rnd(F16, 1, S(B, 1024, 5120))}, run_geglu},
    };
    /* outputs: shapes follow from the inputs; cl: made channels-last like the input */
    int64_t sh[][4] = {{8192, 8192}, {B, C, 64, 64}, {B, 640, 32, 32}, {B, 1280, 8, 8},
                       {B, HW, C}, {B, HW, C}, {B, HW, 2560}, {B, C, 64, 64}, {B, HW, C},
                       {B, HW, 1280}, {B, C, 64, 64}, {B, C, 64, 64}, {B, 640, 32, 32},
                       {B, 640, 32, 32}, {B, 1280, 16, 16}, {1, 128, 512, 512},
                       {B, 1024, 640}, {B, 256, 1280}, {B, 1024, 2560}};
    int nd[] = {2, 4, 4, 4, 3, 3, 3, 4, 3, 3, 4, 4, 4, 4, 4, 4, 3, 3, 3};
    int cl[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0};
    printf("%-44s %10s %10s\n", "case (F16 in/out)", "median ms", "rate");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bcase_t *c = &cases[i];
        int64_t *o = sh[i], cl_shape[4] = {o[0], o[2], o[3], o[1]};
        kiln_tensor_t *base = NULL;
        int rc = kiln_tensor_new_on(DEV, F16, nd[i], cl[i] ? cl_shape : o, &base);
        if (rc == 0 && cl[i]) {
            rc = kiln_tensor_permute(base, to_cl, &c->t[0]);
            kiln_tensor_release(base);
        } else {
            c->t[0] = base;
        }
        if (rc != 0) {
            printf("%-44s alloc failed\n", c->name);
            for (int j = 0; j < 4; j++)
                kiln_tensor_release(c->t[j]);
            continue;
        }
        float ms = time_case(c, st->stream, reps);
        if (ms < 0)
            printf("%-44s FAILED\n", c->name);
        else if (c->flop > 0)
            printf("%-44s %10.4f %7.1f TFLOP/s\n", c->name, ms, c->flop / (ms * 1e-3) / 1e12);
        else
            printf("%-44s %10.4f %7.1f GB/s\n", c->name, ms, c->bytes / (ms * 1e-3) / 1e9);
        for (int j = 0; j < 4; j++)
            kiln_tensor_release(c->t[j]);
    }
    return 0;
}

#else
int main(void)
{
    fprintf(stderr, "bench_gpu_ops: built without the CUDA backend\n");
    return 1;
}
#endif
