/* The SD model code on the GPU, against the same code on the CPU, with the sd15-tiny
 * fixture checkpoint (random weights, SD1.5 structure): the UNet's eps for a batch-2 8x8
 * latent and an odd 12x12 one (the up path resizes to each skip), and the VAE decoder,
 * in float32 (weights and activations; within 1e-4 of the CPU, far inside the 1e-3 the
 * fixtures allow) and in float16 (within 2e-2). The model is placed on the device through
 * tests/gpu/gpu_shim.h. Errors are rel = max|gpu - cpu| / max|cpu|. */
#include <kiln/kiln.h>
#include <kiln/weights.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../nodes/sd/unet.h"
#include "../../nodes/sd/vae.h"

#include "gpu_common.h"
#include "gpu_shim.h"

#define CKPT KILN_SHARED_DIR "/fixtures/sd15-tiny/checkpoint.safetensors"

static kiln_engine_t *engine_up(void)
{
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.base_directory = kiln_test_tmpdir();
    o.cpu_lanes = 1;
    kiln_engine_t *e = NULL;
    ASSERT_EQ_INT(kiln_engine_new(&o, &e), 0);
    return e;
}

static kiln_weights_t *open_ckpt(void)
{
    kiln_weights_t *w = NULL;
    char err[256] = "";
    if (kiln_weights_open(CKPT, &w, err, sizeof err) != 0)
        kiln_test_fail(__FILE__, __LINE__, "open %s: %s", CKPT, err);
    return w;
}

static sd_unet_t *unet_load(kiln_weights_t *w)
{
    sd_unet_t *u = NULL;
    char err[256] = "";
    int rc = sd_unet_load(w, "model.diffusion_model.", 0, &u, err, sizeof err);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "unet load: %s (%s)", err, kiln_err_name(rc));
    return u;
}

/* rel = max|got - want| / max|want| (got on any device, want on the host). */
static double rel_err(const kiln_tensor_t *got, const kiln_tensor_t *want)
{
    kiln_tensor_t *h = to_host(got);
    ASSERT_EQ_INT(kiln_tensor_numel(h), kiln_tensor_numel(want));
    double *g = to_doubles(h), *r = to_doubles(want), num = 0.0, den = 0.0;
    for (int64_t i = 0; i < kiln_tensor_numel(h); i++) {
        double d = fabs(g[i] - r[i]);
        num = d > num || isnan(d) ? d : num;
        den = fabs(r[i]) > den ? fabs(r[i]) : den;
    }
    free(g);
    free(r);
    kiln_tensor_release(h);
    return num / den;
}

/* eps of the tiny UNet for an h x w latent, CPU and GPU, compared. */
static void unet_case(kiln_dtype_t dt, int64_t h, int64_t w, double tol)
{
    kiln_engine_t *e = engine_up();
    kiln_weights_t *wf = open_ckpt();
    sd_unet_t *cpu = unet_load(wf);
    int ctx_dim = sd_unet_config(cpu)->context_dim;
    rng_seed(77 + (uint64_t)h);
    kiln_tensor_t *x = tnew(KILN_DTYPE_F32, SHAPE(2, 4, h, w));
    kiln_tensor_t *ctx = tnew(KILN_DTYPE_F32, SHAPE(2, 77, ctx_dim));
    fill_random(x, 2.0);
    fill_random(ctx, 1.0);
    float ts[2] = {981.0f, 17.0f};
    kiln_tensor_t *want = tnew(KILN_DTYPE_F32, SHAPE(2, 4, h, w));
    ASSERT_EQ_INT(sd_unet_forward(cpu, NULL, x, ts, ctx, want), 0);

    ASSERT_EQ_INT(gpu_shim_on(GPU, dt, dt, NULL), 0);
    sd_unet_t *gpu = unet_load(wf);
    kiln_tensor_t *hx = NULL, *hc = NULL;
    ASSERT_EQ_INT(kiln_tensor_to_dtype(x, dt, &hx), 0);
    ASSERT_EQ_INT(kiln_tensor_to_dtype(ctx, dt, &hc), 0);
    kiln_tensor_t *dx = to_gpu(hx), *dc = to_gpu(hc);
    kiln_tensor_t *got = gpu_poisoned(dt, SHAPE(2, 4, h, w));
    ASSERT_EQ_INT(sd_unet_forward(gpu, NULL, dx, ts, dc, got), 0);
    ASSERT_EQ_INT(kiln_tensor_sync(got), 0);
    double r = rel_err(got, want);
    printf("tiny UNet %s %lldx%lld: rel %.3g (tol %g)\n", kiln_dtype_name(dt), (long long)h,
           (long long)w, r, tol);
    ASSERT(r <= tol);
    sd_unet_free(gpu);
    gpu_shim_off();
    kiln_tensor_t *all[] = {x, ctx, want, hx, hc, dx, dc, got};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        kiln_tensor_release(all[i]);
    sd_unet_free(cpu);
    kiln_weights_close(wf);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

static void test_tiny_unet_gpu_matches_cpu(void)
{
    need_gpu();
    unet_case(KILN_DTYPE_F32, 8, 8, 1e-4);
    unet_case(KILN_DTYPE_F32, 12, 12, 1e-4);
}

static void test_tiny_unet_gpu_f16(void)
{
    need_gpu();
    unet_case(KILN_DTYPE_F16, 8, 8, 2e-2);
}

/* KILN_SD_GRAPHS=1: the second call of a shape records the body and later calls replay
 * it; each call's eps, for new inputs and timesteps, equals the eager run's (each test
 * runs in its own process, so the variable stays this test's). */
static void test_tiny_unet_graph_replay(void)
{
    need_gpu();
    kiln_engine_t *e = engine_up();
    kiln_weights_t *wf = open_ckpt();
    ASSERT_EQ_INT(gpu_shim_on(GPU, KILN_DTYPE_F32, KILN_DTYPE_F32, NULL), 0);
    sd_unet_t *gpu = unet_load(wf);
    int ctx_dim = sd_unet_config(gpu)->context_dim;
    kiln_tensor_t *want[3], *x[3], *c[3];
    float ts[3][2] = {{981.0f, 17.0f}, {500.0f, 500.0f}, {3.0f, 700.0f}};
    for (int graphs = 0; graphs < 2; graphs++) {
        setenv("KILN_SD_GRAPHS", graphs ? "1" : "0", 1);
        for (int i = 0; i < 3; i++) {
            if (!graphs) {
                rng_seed(300 + (uint64_t)i);
                kiln_tensor_t *hx = tnew(KILN_DTYPE_F32, SHAPE(2, 4, 8, 8));
                kiln_tensor_t *hc = tnew(KILN_DTYPE_F32, SHAPE(2, 77, ctx_dim));
                fill_random(hx, 2.0);
                fill_random(hc, 1.0);
                x[i] = to_gpu(hx);
                c[i] = to_gpu(hc);
                kiln_tensor_release(hx);
                kiln_tensor_release(hc);
            }
            kiln_tensor_t *got = gpu_poisoned(KILN_DTYPE_F32, SHAPE(2, 4, 8, 8));
            ASSERT_EQ_INT(sd_unet_forward(gpu, NULL, x[i], ts[i], c[i], got), 0);
            ASSERT_EQ_INT(kiln_tensor_sync(got), 0);
            if (!graphs) {
                want[i] = to_host(got);
            } else {
                double r = rel_err(got, want[i]);
                printf("tiny UNet F32 call %d with graphs: rel %.3g to eager\n", i, r);
                ASSERT(r <= 1e-6);
            }
            kiln_tensor_release(got);
        }
    }
    for (int i = 0; i < 3; i++) {
        kiln_tensor_release(want[i]);
        kiln_tensor_release(x[i]);
        kiln_tensor_release(c[i]);
    }
    sd_unet_free(gpu);
    gpu_shim_off();
    kiln_weights_close(wf);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

static void test_tiny_vae_decode_gpu(void)
{
    need_gpu();
    kiln_dtype_t dts[] = {KILN_DTYPE_F32, KILN_DTYPE_F16};
    double tols[] = {1e-4, 2e-2};
    for (int i = 0; i < 2; i++) {
        kiln_engine_t *e = engine_up();
        kiln_weights_t *wf = open_ckpt();
        char err[256] = "";
        sd_vae_t *cpu = NULL, *gpu = NULL;
        ASSERT_EQ_INT(sd_vae_load(wf, "first_stage_model.", &cpu, err, sizeof err), 0);
        rng_seed(91);
        kiln_tensor_t *z = tnew(KILN_DTYPE_F32, SHAPE(1, 4, 8, 8));
        fill_random(z, 3.0);
        kiln_tensor_t *want = NULL, *got = NULL, *hz = NULL;
        ASSERT_EQ_INT(sd_vae_decode_raw(cpu, NULL, z, &want), 0);
        ASSERT_EQ_INT(gpu_shim_on(GPU, dts[i], dts[i], NULL), 0);
        ASSERT_EQ_INT(sd_vae_load(wf, "first_stage_model.", &gpu, err, sizeof err), 0);
        ASSERT_EQ_INT(kiln_tensor_to_dtype(z, dts[i], &hz), 0);
        kiln_tensor_t *dz = to_gpu(hz);
        ASSERT_EQ_INT(sd_vae_decode_raw(gpu, NULL, dz, &got), 0);
        /* a model placed on a device hands its results back as host float32 (sd_device.h) */
        ASSERT_EQ_INT(kiln_tensor_device(got), KILN_DEVICE_CPU);
        double r = rel_err(got, want);
        printf("tiny VAE decode %s: rel %.3g (tol %g)\n", kiln_dtype_name(dts[i]), r, tols[i]);
        ASSERT(r <= tols[i]);
        sd_vae_free(gpu);
        gpu_shim_off();
        kiln_tensor_t *all[] = {z, want, got, hz, dz};
        for (size_t j = 0; j < sizeof all / sizeof all[0]; j++)
            kiln_tensor_release(all[j]);
        sd_vae_free(cpu);
        kiln_weights_close(wf);
        ASSERT_EQ_INT(kiln_engine_close(e), 0);
    }
}

KILN_TEST_MAIN(TEST_TIMEOUT(test_tiny_unet_gpu_matches_cpu, 120), TEST(test_tiny_unet_gpu_f16),
               TEST_TIMEOUT(test_tiny_unet_graph_replay, 120),
               TEST_TIMEOUT(test_tiny_vae_decode_gpu, 120))
