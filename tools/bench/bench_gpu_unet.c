/* SD1.5 UNet benchmark on the GPU: the full-size SD1.5 UNet (860M parameters, the key
 * names and shapes of a real checkpoint) with random weights generated here (nothing is
 * read from or written to disk), placed on the device in F16 through tests/gpu/gpu_shim.h
 * and run by the model code of nodes/sd. Reports the median time of one UNet call at
 * 64x64 latents (512x512 images) for batches 1, 2 (one image with classifier-free
 * guidance), 8 and 16 (4 and 8 images with guidance), what that implies for 20-step
 * sampling, the FLOP floor at the measured cuBLAS F16 rate, and the F16 result's error
 * against an F32 run of the same weights (TF32 off).
 *
 *   bench_gpu_unet [reps [batches]]   (needs a CUDA device and ~6 GB of its memory)
 *
 * batches: a comma list such as "2" (default 1,2,8,16); with a list the profiled call
 * and the F32 comparison are skipped, which keeps a run short under a profiler. */
#include <stdio.h>
#include <stdlib.h>

#ifdef KILN_HAVE_CUDA
#include <kiln/kiln.h>
#include <kiln/ops.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cuda_profiler_api.h>

#include "nodes/sd/unet.h"
#include "runtime/convert.h"
#include "tests/gpu/gpu_shim.h"

#define DEV 1

/* ---- SD1.5 UNet keys and shapes ------------------------------------------------------- */

typedef struct key {
    char name[160];
    int nd;
    int64_t shape[4];
} key_t_;

static key_t_ *keys;
static size_t n_keys, cap_keys;

static void add(const char *name, int nd, int64_t a, int64_t b, int64_t c, int64_t d)
{
    if (n_keys == cap_keys) {
        cap_keys = cap_keys ? 2 * cap_keys : 1024;
        keys = realloc(keys, cap_keys * sizeof *keys);
    }
    key_t_ *k = &keys[n_keys++];
    snprintf(k->name, sizeof k->name, "model.diffusion_model.%s", name);
    k->nd = nd;
    int64_t s[4] = {a, b, c, d};
    memcpy(k->shape, s, sizeof s);
}

static void addf(int nd, int64_t a, int64_t b, int64_t c, int64_t d, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void addf(int nd, int64_t a, int64_t b, int64_t c, int64_t d, const char *fmt, ...)
{
    char name[112];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    add(name, nd, a, b, c, d);
}

static void conv(const char *p, int64_t cin, int64_t cout, int64_t k)
{
    addf(4, cout, cin, k, k, "%s.weight", p);
    addf(1, cout, 0, 0, 0, "%s.bias", p);
}

static void lin(const char *p, int64_t in, int64_t out, int bias)
{
    addf(2, out, in, 0, 0, "%s.weight", p);
    if (bias)
        addf(1, out, 0, 0, 0, "%s.bias", p);
}

static void norm(const char *p, int64_t c)
{
    addf(1, c, 0, 0, 0, "%s.weight", p);
    addf(1, c, 0, 0, 0, "%s.bias", p);
}

static void res(const char *p, int64_t cin, int64_t cout)
{
    char b[96];
    snprintf(b, sizeof b, "%s.in_layers.0", p), norm(b, cin);
    snprintf(b, sizeof b, "%s.in_layers.2", p), conv(b, cin, cout, 3);
    snprintf(b, sizeof b, "%s.emb_layers.1", p), lin(b, 1280, cout, 1);
    snprintf(b, sizeof b, "%s.out_layers.0", p), norm(b, cout);
    snprintf(b, sizeof b, "%s.out_layers.3", p), conv(b, cout, cout, 3);
    if (cin != cout)
        snprintf(b, sizeof b, "%s.skip_connection", p), conv(b, cin, cout, 1);
}

static void st(const char *p, int64_t c)
{
    char b[112];
    snprintf(b, sizeof b, "%s.norm", p), norm(b, c);
    snprintf(b, sizeof b, "%s.proj_in", p), conv(b, c, c, 1);
    const char *tb = "transformer_blocks.0";
    const char *qkv[] = {"to_q", "to_k", "to_v"};
    for (int i = 0; i < 3; i++) {
        snprintf(b, sizeof b, "%s.%s.attn1.%s", p, tb, qkv[i]), lin(b, c, c, 0);
        snprintf(b, sizeof b, "%s.%s.attn2.%s", p, tb, qkv[i]), lin(b, i ? 768 : c, c, 0);
    }
    snprintf(b, sizeof b, "%s.%s.attn1.to_out.0", p, tb), lin(b, c, c, 1);
    snprintf(b, sizeof b, "%s.%s.attn2.to_out.0", p, tb), lin(b, c, c, 1);
    snprintf(b, sizeof b, "%s.%s.ff.net.0.proj", p, tb), lin(b, c, 8 * c, 1);
    snprintf(b, sizeof b, "%s.%s.ff.net.2", p, tb), lin(b, 4 * c, c, 1);
    for (int i = 1; i <= 3; i++)
        snprintf(b, sizeof b, "%s.%s.norm%d", p, tb, i), norm(b, c);
    snprintf(b, sizeof b, "%s.proj_out", p), conv(b, c, c, 1);
}

/* The LDM/ComfyUI SD1.5 UNet: widths 320·[1, 2, 4, 4], 2 res blocks per level, attention
 * at the first three levels and in the middle, context 768. */
static void sd15_keys(void)
{
    const int64_t ch[4] = {320, 640, 1280, 1280};
    int64_t skips[16], n_skips = 0, cur = 320;
    char p[64], q[64];
    lin("time_embed.0", 320, 1280, 1);
    lin("time_embed.2", 1280, 1280, 1);
    conv("input_blocks.0.0", 4, 320, 3);
    skips[n_skips++] = 320;
    int idx = 1;
    for (int l = 0; l < 4; l++) {
        for (int r = 0; r < 2; r++, idx++) {
            snprintf(p, sizeof p, "input_blocks.%d.0", idx), res(p, cur, ch[l]);
            cur = ch[l];
            if (l < 3)
                snprintf(p, sizeof p, "input_blocks.%d.1", idx), st(p, cur);
            skips[n_skips++] = cur;
        }
        if (l < 3) {
            snprintf(p, sizeof p, "input_blocks.%d.0.op", idx++), conv(p, cur, cur, 3);
            skips[n_skips++] = cur;
        }
    }
    res("middle_block.0", 1280, 1280);
    st("middle_block.1", 1280);
    res("middle_block.2", 1280, 1280);
    idx = 0;
    for (int l = 3; l >= 0; l--) {
        for (int r = 0; r < 3; r++, idx++) {
            int64_t skip = skips[--n_skips];
            snprintf(p, sizeof p, "output_blocks.%d.0", idx), res(p, cur + skip, ch[l]);
            cur = ch[l];
            int sub = 1;
            if (l < 3)
                snprintf(p, sizeof p, "output_blocks.%d.1", idx), st(p, cur), sub = 2;
            if (l > 0 && r == 2)
                snprintf(q, sizeof q, "output_blocks.%d.%d.conv", idx, sub), conv(q, cur, cur, 3);
        }
    }
    norm("out.0", 320);
    conv("out.2", 320, 4, 3);
}

/* ---- the synthetic weights source ------------------------------------------------------ */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static const key_t_ *find_key(const char *name)
{
    for (size_t i = 0; i < n_keys; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static size_t syn_count(void *ctx) { return n_keys; }
static const char *syn_name(void *ctx, size_t i) { return i < n_keys ? keys[i].name : NULL; }

static int syn_info(void *ctx, const char *name, kiln_dtype_t *dt, int *nd, int64_t *shape)
{
    const key_t_ *k = find_key(name);
    if (!k)
        return KILN_ENOTFOUND;
    *dt = KILN_DTYPE_F16;
    *nd = k->nd;
    memcpy(shape, k->shape, sizeof(int64_t) * (size_t)k->nd);
    return 0;
}

/* PyTorch-like init: weights U(-1/sqrt(fan_in), +), norm gains 1 + small, biases small. */
static int syn_get(void *ctx, const char *name, kiln_dtype_t dt, kiln_tensor_t **out)
{
    const key_t_ *k = find_key(name);
    if (!k)
        return KILN_ENOTFOUND;
    kiln_tensor_t *t = kiln_tensor_new(dt, k->nd, k->shape);
    if (!t)
        return KILN_ENOMEM;
    int64_t n = kiln_tensor_numel(t), fan_in = 1;
    for (int i = 1; i < k->nd; i++)
        fan_in *= k->shape[i];
    int is_bias = strstr(name, ".bias") != NULL, is_gain = k->nd == 1 && !is_bias;
    double bound = is_bias ? 0.05 : (is_gain ? 0.1 : 1.0 / sqrt((double)fan_in));
    uint64_t seed = 1469598103934665603ull;
    for (const char *c = name; *c; c++)
        seed = (seed ^ (uint8_t)*c) * 1099511628211ull;
    for (int64_t i = 0; i < n; i++) {
        double u = (double)(mix(seed + (uint64_t)i) >> 11) / (double)(1ull << 53) * 2.0 - 1.0;
        float v = (float)(u * bound + (is_gain ? 1.0 : 0.0));
        if (dt == KILN_DTYPE_F16)
            ((uint16_t *)kiln_tensor_data(t))[i] = kiln__f32_to_f16(v);
        else
            ((float *)kiln_tensor_data(t))[i] = v;
    }
    *out = t;
    return 0;
}

static gpu_shim_weights_t syn = {syn_count, syn_name, syn_info, syn_get, NULL};

/* ---- timing ------------------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A random device tensor of dtype dt (uniform in [-scale, scale)). */
static kiln_tensor_t *rnd(kiln_dtype_t dt, double scale, int nd, const int64_t *shape,
                          uint64_t seed)
{
    kiln_tensor_t *h = kiln_tensor_new(dt, nd, shape), *d = NULL;
    for (int64_t i = 0; h && i < kiln_tensor_numel(h); i++) {
        float v = (float)(((double)(mix(seed + (uint64_t)i) >> 11) / (double)(1ull << 53) * 2 - 1) *
                          scale);
        if (dt == KILN_DTYPE_F16)
            ((uint16_t *)kiln_tensor_data(h))[i] = kiln__f32_to_f16(v);
        else
            ((float *)kiln_tensor_data(h))[i] = v;
    }
    if (!h || kiln_tensor_to_device(h, DEV, &d) != 0)
        d = NULL;
    kiln_tensor_release(h);
    return d;
}

typedef struct run {
    kiln_tensor_t *x, *ctx, *out;
    float ts[16];
} run_t;

static int setup(run_t *r, kiln_dtype_t dt, int64_t b)
{
    r->x = rnd(dt, 1.5, 4, (const int64_t[]){b, 4, 64, 64}, 11);
    r->ctx = rnd(dt, 1.0, 3, (const int64_t[]){b, 77, 768}, 12);
    for (int i = 0; i < b; i++)
        r->ts[i] = 999.0f - 50.0f * (float)i;
    return r->x && r->ctx &&
                   kiln_tensor_new_on(DEV, dt, 4, (const int64_t[]){b, 4, 64, 64}, &r->out) == 0
               ? 0
               : KILN_ENOMEM;
}

static void teardown(run_t *r)
{
    kiln_tensor_release(r->x);
    kiln_tensor_release(r->ctx);
    kiln_tensor_release(r->out);
}

/* Median seconds of one UNet call: GPU time between events, and host wall time. */
static int time_unet(const sd_unet_t *u, run_t *r, int reps, double *gpu, double *wall)
{
    cudaStream_t s = gpu_shim.stream->stream;
    for (int i = 0; i < 2; i++)
        if (sd_unet_forward(u, NULL, r->x, r->ts, r->ctx, r->out) != 0)
            return -1;
    cudaStreamSynchronize(s);
    double *g = calloc((size_t)reps, sizeof *g), *w = calloc((size_t)reps, sizeof *w);
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    int rc = 0;
    /* KILN_BENCH_PROFILE_LAST=1: only the last call lies in the profiler's range (for
     * ncu --profile-from-start off) */
    const char *pl = getenv("KILN_BENCH_PROFILE_LAST");
    for (int i = 0; rc == 0 && i < reps; i++) {
        if (pl && *pl == '1' && i == reps - 1)
            cudaProfilerStart();
        double t0 = now_s();
        cudaEventRecord(a, s);
        rc = sd_unet_forward(u, NULL, r->x, r->ts, r->ctx, r->out);
        cudaEventRecord(b, s);
        cudaEventSynchronize(b);
        w[i] = now_s() - t0;
        if (pl && *pl == '1' && i == reps - 1)
            cudaProfilerStop();
        float ms = 0;
        cudaEventElapsedTime(&ms, a, b);
        g[i] = ms * 1e-3;
    }
    qsort(g, (size_t)reps, sizeof *g, cmp_double);
    qsort(w, (size_t)reps, sizeof *w, cmp_double);
    *gpu = g[reps / 2];
    *wall = w[reps / 2];
    free(g);
    free(w);
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return rc;
}

/* The device's F16 matmul rate (TFLOP/s) through the op library: the FLOP floor's rate. */
static double matmul_rate(void)
{
    const int64_t n = 8192;
    kiln_tensor_t *a = rnd(KILN_DTYPE_F16, 1, 2, (const int64_t[]){n, n}, 1);
    kiln_tensor_t *b = rnd(KILN_DTYPE_F16, 1, 2, (const int64_t[]){n, n}, 2), *c = NULL;
    kiln_tensor_new_on(DEV, KILN_DTYPE_F16, 2, (const int64_t[]){n, n}, &c);
    cudaStream_t s = gpu_shim.stream->stream;
    double best = 0;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    for (int i = 0; i < 8; i++) {
        cudaEventRecord(e0, s);
        kiln_op_matmul(NULL, c, a, b, 0);
        cudaEventRecord(e1, s);
        cudaEventSynchronize(e1);
        float ms = 0;
        cudaEventElapsedTime(&ms, e0, e1);
        double r = 2.0 * n * n * n / (ms * 1e-3) / 1e12;
        best = i >= 2 && r > best ? r : best; /* after warm-up */
    }
    kiln_tensor_release(a);
    kiln_tensor_release(b);
    kiln_tensor_release(c);
    return best;
}

static sd_unet_t *load(kiln_dtype_t dt, double *secs)
{
    if (gpu_shim_on(DEV, dt, dt, &syn) != 0)
        return NULL;
    sd_unet_t *u = NULL;
    char err[256] = "";
    double t0 = now_s();
    int rc = sd_unet_load((kiln_weights_t *)&syn, "model.diffusion_model.", 0, &u, err, sizeof err);
    cudaDeviceSynchronize();
    *secs = now_s() - t0;
    if (rc != 0)
        fprintf(stderr, "unet load: %s (%s)\n", err, kiln_err_name(rc));
    return u;
}

/* max|a - b| / max|b| over two device tensors. */
static double rel_err(const kiln_tensor_t *a, const kiln_tensor_t *b)
{
    kiln_tensor_t *ha = NULL, *hb = NULL, *fa = NULL, *fb = NULL;
    kiln_tensor_to_device(a, KILN_DEVICE_CPU, &ha);
    kiln_tensor_to_device(b, KILN_DEVICE_CPU, &hb);
    kiln_tensor_to_dtype(ha, KILN_DTYPE_F32, &fa);
    kiln_tensor_to_dtype(hb, KILN_DTYPE_F32, &fb);
    const float *pa = kiln_tensor_data(fa), *pb = kiln_tensor_data(fb);
    double num = 0, den = 0;
    for (int64_t i = 0; i < kiln_tensor_numel(fa); i++) {
        double d = fabs((double)pa[i] - pb[i]);
        num = d > num || isnan(d) ? d : num;
        den = fabs(pb[i]) > den ? fabs(pb[i]) : den;
    }
    kiln_tensor_release(ha);
    kiln_tensor_release(hb);
    kiln_tensor_release(fa);
    kiln_tensor_release(fb);
    return num / den;
}

/* 1 when b is in the comma list `list`. */
static int in_list(const char *list, int64_t b)
{
    for (const char *p = list; *p;) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p)
            return 0;
        if (v == b)
            return 1;
        p = *end == ',' ? end + 1 : end;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 10;
    reps = reps < 3 ? 3 : reps;
    if (kiln_device_count() < 1) {
        fprintf(stderr, "bench_gpu_unet: no CUDA device\n");
        return 1;
    }
    char dir[] = "/tmp/kiln-bench-XXXXXX";
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.base_directory = mkdtemp(dir);
    o.cpu_lanes = 1;
    kiln_engine_t *e = NULL;
    if (!o.base_directory || kiln_engine_new(&o, &e) != 0)
        return 1;
    sd15_keys();
    double load_s = 0;
    sd_unet_t *u = load(KILN_DTYPE_F16, &load_s);
    if (!u)
        return 1;
    printf("SD1.5 UNet, random weights: %zu tensors, %.0f MB F16 on the device, loaded in %.2f s\n",
           n_keys, gpu_shim.uploaded / 1e6, load_s);
    double rate = matmul_rate();
    printf("cuBLAS F16 matmul 8192^3: %.0f TFLOP/s\n", rate);
    const int64_t batches[] = {1, 2, 8, 16};
    double gpu_t[4] = {0}, wall_t[4] = {0};
    const char *only = argc > 2 ? argv[2] : NULL;
    printf("%-8s %12s %12s %14s\n", "batch", "GPU ms", "wall ms", "floor ms");
    for (int i = 0; i < 4; i++) {
        run_t r = {0};
        if (only && !in_list(only, batches[i]))
            continue;
        if (setup(&r, KILN_DTYPE_F16, batches[i]) != 0 ||
            time_unet(u, &r, reps, &gpu_t[i], &wall_t[i]) != 0) {
            printf("%-8lld FAILED\n", (long long)batches[i]);
            teardown(&r);
            continue;
        }
        double floor_ms = 0.80 * (double)batches[i] / rate * 1e3;
        printf("%-8lld %12.2f %12.2f %14.2f\n", (long long)batches[i], gpu_t[i] * 1e3,
               wall_t[i] * 1e3, floor_ms);
        teardown(&r);
    }
    if (only) {
        sd_unet_free(u);
        gpu_shim_off();
        kiln_engine_close(e);
        return 0;
    }
    run_t rp = {0}; /* where the time goes: one profiled batch-2 call */
    if (setup(&rp, KILN_DTYPE_F16, 2) == 0) {
        kiln__cuda_profile_enable(1);
        kiln__cuda_profile_reset();
        double t0 = now_s();
        if (sd_unet_forward(u, NULL, rp.x, rp.ts, rp.ctx, rp.out) == 0) {
            cudaDeviceSynchronize();
            printf("profiled batch-2 call (%.2f ms wall with profiling):\n", (now_s() - t0) * 1e3);
            kiln__cuda_profile_report(stdout);
        }
        kiln__cuda_profile_enable(0);
    }
    teardown(&rp);
    if (wall_t[1] > 0)
        printf("20 steps, 1 image (batch 2 with cfg): %.3f s of UNet (wall), %.3f s GPU\n",
               20 * wall_t[1], 20 * gpu_t[1]);
    if (wall_t[2] > 0)
        printf("4 images per batch: %.2f images/s (UNet only)\n", 4.0 / (20 * wall_t[2]));
    if (wall_t[3] > 0)
        printf("8 images per batch: %.2f images/s (UNet only)\n", 8.0 / (20 * wall_t[3]));
    /* F16 against F32 (same weights, TF32 off), batch 2 */
    run_t r16 = {0}, r32 = {0};
    if (setup(&r16, KILN_DTYPE_F16, 2) == 0 &&
        sd_unet_forward(u, NULL, r16.x, r16.ts, r16.ctx, r16.out) == 0) {
        cudaDeviceSynchronize();
        sd_unet_free(u);
        u = load(KILN_DTYPE_F32, &load_s);
        double g32 = 0, w32 = 0;
        if (u && setup(&r32, KILN_DTYPE_F32, 2) == 0 && time_unet(u, &r32, 3, &g32, &w32) == 0)
            printf("F32 UNet batch 2: %.2f ms GPU; F16 eps vs F32 eps: rel %.3g\n", g32 * 1e3,
                   rel_err(r16.out, r32.out));
    }
    teardown(&r16);
    teardown(&r32);
    sd_unet_free(u);
    gpu_shim_off();
    kiln_engine_close(e);
    return 0;
}

#else
int main(void)
{
    fprintf(stderr, "bench_gpu_unet: built without the CUDA backend\n");
    return 1;
}
#endif
