/* sd15_cpu_ref: the CPU float32 reference for tests/gpu/test_gpu_sd15_f16.c. Builds the
 * full-size SD1.5 UNet of tests/gpu/gpu_sd15_case.h in memory (random float16-exact
 * weights, nothing read from disk), runs one guided step on the host in float32 (x
 * [2, 4, S, S], two timesteps, context [2, 77, 768], float16-exact inputs) and writes
 * inputs, eps and the weights' hash to a small safetensors file (about 0.5 MB at S = 64).
 * Run it where kiln is built with OpenBLAS (without BLAS the host GEMMs are plain loops
 * and a full-size step takes far too long); the file then travels to the GPU machine.
 *
 *   sd15_cpu_ref [-o FILE] [--size S]     (default ./sd15_ref.safetensors, S = 64) */
#include <kiln/kiln.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/safetensors.h"
#include "tests/gpu/gpu_sd15_case.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void quiet(void *ud, kiln_log_level_t level, const char *msg)
{
    (void)ud;
    if (level >= KILN_LOG_ERROR)
        fprintf(stderr, "kiln: %s\n", msg);
}

/* A float16-exact input of unit standard deviation (U(-sqrt 3, sqrt 3)), as F32. */
static kiln_tensor_t *input(const char *stream, int ndim, const int64_t *shape)
{
    uint64_t h = 0;
    return sd15_fill(KILN_DTYPE_F32, ndim, shape, sd15_seed(stream), 0.0, sqrt(3.0), &h);
}

/* Prints mean, standard deviation and max |v| of eps; 0 when every value is finite and
 * the output is not degenerate. */
static int describe(const kiln_tensor_t *eps)
{
    const float *v = kiln_tensor_data(eps);
    int64_t n = kiln_tensor_numel(eps);
    double s = 0, s2 = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) {
            fprintf(stderr, "sd15_cpu_ref: eps[%lld] is not finite\n", (long long)i);
            return 1;
        }
        s += v[i];
        s2 += (double)v[i] * v[i];
        mx = fabs(v[i]) > mx ? fabs(v[i]) : mx;
    }
    double mean = s / (double)n, sd = sqrt(s2 / (double)n - mean * mean);
    printf("eps: mean %.5f, std %.5f, max |v| %.5f\n", mean, sd, mx);
    return sd > 1e-3 ? 0 : 1;
}

/* Writes x, context (F16), timesteps, eps (F32) and the metadata to path. */
static int write_ref(const char *path, const sd15_case_t *c, const kiln_tensor_t *x,
                     const kiln_tensor_t *ctx, const float *ts, const kiln_tensor_t *eps,
                     double secs)
{
    kiln_tensor_t *x16 = NULL, *c16 = NULL;
    kiln_tensor_t *t = kiln_tensor_new(KILN_DTYPE_F32, 1, (const int64_t[]){2});
    if (!t || kiln_tensor_to_dtype(x, KILN_DTYPE_F16, &x16) != 0 ||
        kiln_tensor_to_dtype(ctx, KILN_DTYPE_F16, &c16) != 0) {
        kiln_tensor_release(t);
        kiln_tensor_release(x16);
        return KILN_ENOMEM;
    }
    memcpy(kiln_tensor_data(t), ts, 2 * sizeof *ts);
    char hash[32], count[32], size[32], took[32], err[256] = "";
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)c->hash);
    snprintf(count, sizeof count, "%zu", c->served);
    snprintf(size, sizeof size, "%lld", (long long)kiln_tensor_dim(x, 3));
    snprintf(took, sizeof took, "%.1f", secs);
    const char *meta[] = {SD15_META_VERSION, SD15_CASE_VERSION, SD15_META_HASH, hash,
                          SD15_META_COUNT, count, "latent_size", size, "cpu_forward_s", took,
                          NULL};
    const char *names[] = {"x", "context", "timesteps", "eps"};
    kiln_tensor_t *const ts4[] = {x16, c16, t, (kiln_tensor_t *)eps};
    int rc = kiln__safetensors_write(path, names, ts4, 4, meta, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "sd15_cpu_ref: cannot write %s: %s\n", path, err);
    kiln_tensor_release(x16);
    kiln_tensor_release(c16);
    kiln_tensor_release(t);
    return rc;
}

/* Loads the UNet, runs the step and writes the file. 0 or 1. */
static int make_ref(const char *path, int64_t size)
{
    sd15_case_t c;
    if (sd15_case_init(&c) != 0)
        return 1;
    char err[512] = "";
    sd_unet_t *u = NULL;
    double t0 = now_s();
    if (sd15_unet_load(&c, &u, err, sizeof err) != 0) {
        fprintf(stderr, "sd15_cpu_ref: unet load: %s\n", err);
        sd15_case_free(&c);
        return 1;
    }
    printf("SD1.5 UNet: %zu of %zu tensors, %.1f M parameters, weights hash %016llx "
           "(made in %.1f s)\n", c.served, c.n, c.values / 1e6, (unsigned long long)c.hash,
           now_s() - t0);
    const float ts[2] = {981.0f, 341.0f};
    kiln_tensor_t *x = input("sd15-case x", 4, (const int64_t[]){2, 4, size, size});
    kiln_tensor_t *ctx = input("sd15-case context", 3, (const int64_t[]){2, 77, 768});
    kiln_tensor_t *eps = kiln_tensor_new(KILN_DTYPE_F32, 4, (const int64_t[]){2, 4, size, size});
    int rc = x && ctx && eps ? 0 : KILN_ENOMEM;
    t0 = now_s();
    if (rc == 0)
        rc = sd_unet_forward(u, NULL, x, ts, ctx, eps); // [2, 4, S, S]
    double secs = now_s() - t0;
    if (rc != 0)
        fprintf(stderr, "sd15_cpu_ref: forward: %s\n", kiln_err_name(rc));
    else
        printf("one UNet step, batch 2, %lldx%lld latent, float32 on the CPU: %.1f s\n",
               (long long)size, (long long)size, secs);
    if (rc == 0)
        rc = describe(eps);
    if (rc == 0)
        rc = write_ref(path, &c, x, ctx, ts, eps, secs);
    if (rc == 0)
        printf("wrote %s\n", path);
    kiln_tensor_release(x);
    kiln_tensor_release(ctx);
    kiln_tensor_release(eps);
    sd_unet_free(u);
    sd15_case_free(&c);
    return rc == 0 ? 0 : 1;
}

/* Removes the scratch base directory and the folders the engine made in it. */
static void remove_base(const char *base)
{
    const char *subs[] = {"output", "input", "temp"};
    char p[512];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", base, subs[i]);
        rmdir(p);
    }
    rmdir(base);
}

int main(int argc, char **argv)
{
    const char *path = SD15_REF_NAME;
    long size = 64;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
            char *end = NULL;
            size = strtol(argv[++i], &end, 10);
            if (!end || *end || size < 8 || size > 256) {
                fprintf(stderr, "sd15_cpu_ref: --size wants 8..256\n");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: sd15_cpu_ref [-o FILE] [--size S]\n");
            return 2;
        }
    }
    char base[] = "/tmp/kiln-sd15-ref-XXXXXX";
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.base_directory = mkdtemp(base);
    o.cpu_lanes = 1;
    o.log = quiet;
    kiln_engine_t *e = NULL;
    if (!o.base_directory || kiln_engine_new(&o, &e) != 0) {
        fprintf(stderr, "sd15_cpu_ref: cannot start an engine\n");
        return 1;
    }
    int rc = make_ref(path, size);
    kiln_engine_close(e);
    remove_base(base);
    return rc;
}
