/* A full-size SD1.5 UNet step in float16 on the GPU against the float32 CPU run of the same
 * step: the random float16-exact weights of gpu_sd15_case.h regenerated here and loaded by
 * a node on the engine's GPU lane exactly as CheckpointLoaderSimple places a model there
 * (nodes/sd/sd_device.h, KILN_CUDA_DTYPE=fp16), one batch-2 64x64 forward with the inputs
 * of the reference file, rel = max|gpu - cpu| / max|cpu| <= 1e-2 on eps. The reference
 * comes from tools/bench/sd15_cpu_ref, run where OpenBLAS is (the GPU machine has none,
 * and a full-size float32 step without it takes far too long): KILN_SD15_REF names the
 * file, default <build>/sd15_ref.safetensors. Without it the test fails and says how to
 * make it.
 *
 * KILN_GPU_TESTS_ON_HOST=1 lets the node run on a CPU lane when there is no GPU: the same
 * check with the model on the host in float32, a check of the test itself (eps then
 * matches to float32 rounding). */
#include <kiln/kiln.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../nodes/sd/sd_device.h"
#include "../../nodes/sd/unet_int.h"
#include "gpu_sd15_case.h"
#include "gpu_lane_job.h"
#include "runner.h"
#include "runtime/safetensors.h"

#define F16_TOL 1e-2 /* the bound the CUDA backend must meet */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the reference file ------------------------------------------------------------------ */

static const char *ref_path(void)
{
    const char *p = getenv("KILN_SD15_REF");
    return p && *p ? p : KILN_BINARY_DIR "/" SD15_REF_NAME;
}

/* The reference file, or a failure that says how to make one. */
static kiln__safetensors_t *open_ref(void)
{
    const char *path = ref_path();
    if (access(path, R_OK) != 0)
        kiln_test_fail(__FILE__, __LINE__,
                       "missing the CPU reference %s: make it on a machine with OpenBLAS with "
                       "`sd15_cpu_ref -o %s` (tools/bench/sd15_cpu_ref.c, about a minute on "
                       "2 cores), carry it here and point KILN_SD15_REF at it",
                       path, SD15_REF_NAME);
    kiln__safetensors_t *f = NULL;
    char err[256] = "";
    if (kiln__safetensors_open(path, &f, err, sizeof err) != 0)
        kiln_test_fail(__FILE__, __LINE__, "%s: %s", path, err);
    const char *v = kiln__safetensors_metadata(f, SD15_META_VERSION);
    if (!v || strcmp(v, SD15_CASE_VERSION) != 0)
        kiln_test_fail(__FILE__, __LINE__,
                       "%s was made for case %s, this test is %s: make it again with "
                       "sd15_cpu_ref",
                       path, v ? v : "(none)", SD15_CASE_VERSION);
    return f;
}

/* Reference tensor `name` as a new dense F32 host tensor. */
static kiln_tensor_t *ref_f32(kiln__safetensors_t *f, const char *name)
{
    kiln_tensor_t *t = NULL;
    char err[256] = "";
    if (kiln__safetensors_tensor_as(f, name, KILN_DTYPE_F32, &t, err, sizeof err) != 0)
        kiln_test_fail(__FILE__, __LINE__, "reference tensor %s: %s", name, err);
    return t;
}

/* The weights regenerated here must be the ones the reference was made with. */
static void check_weights(kiln__safetensors_t *f, const sd15_case_t *c)
{
    char hash[32], count[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)c->hash);
    snprintf(count, sizeof count, "%zu", c->served);
    const char *want = kiln__safetensors_metadata(f, SD15_META_HASH);
    const char *want_n = kiln__safetensors_metadata(f, SD15_META_COUNT);
    ASSERT_EQ_INT(c->served, 686);
    if (!want || !want_n || strcmp(want, hash) != 0 || strcmp(want_n, count) != 0)
        kiln_test_fail(__FILE__, __LINE__,
                       "weights differ from the reference's: hash %s of %s tensors here, %s of "
                       "%s there",
                       hash, count, want ? want : "?", want_n ? want_n : "?");
}

/* max|got - want| / max|want|; a NaN or infinity in got gives infinity. */
static double rel_err(const kiln_tensor_t *got, const kiln_tensor_t *want)
{
    ASSERT_EQ_INT(kiln_tensor_numel(got), kiln_tensor_numel(want));
    const float *g = kiln_tensor_data(got), *w = kiln_tensor_data(want);
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < kiln_tensor_numel(want); i++) {
        double d = fabs((double)g[i] - w[i]);
        num = isfinite(d) ? fmax(num, d) : INFINITY;
        den = fmax(den, fabs((double)w[i]));
    }
    ASSERT(den > 0.0);
    return num / den;
}

/* ---- a node on the GPU lane ---------------------------------------------------------------
 * The work runs inside a node flagged KILN_NODE_GPU, so it gets the lane (device, stream,
 * placement) that the sd nodes get; results go back through `job`. */

static const kiln_node_def_t *const job_nodes[] = {&job_def, NULL};

static int job_pack(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    (void)api;
    out->name = "gputest";
    out->nodes = job_nodes;
    return 0;
}

static kiln_engine_t *engine_up(void)
{
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.base_directory = kiln_test_tmpdir();
    o.cpu_lanes = 1;
    o.log = quiet;
    kiln_engine_t *e = NULL;
    ASSERT_EQ_INT(kiln_engine_new(&o, &e), 0);
    ASSERT_EQ_INT(kiln_engine_add_pack(e, "gputest", job_pack), 0);
    return e;
}

/* ---- the step ------------------------------------------------------------------------------ */

typedef struct step {
    sd15_case_t c;
    kiln_tensor_t *x, *ctx, *ts, *got;
    sd_dev_t dev; /* where the UNet was placed */
    double load_s, fwd_s;
    char err[512];
} step_t;

/* Loads the UNet where a loader node on this lane would, and runs the step. */
static int step_job(kiln_lane_t *lane, void *ud)
{
    step_t *s = ud;
    double t0 = now_s();
    sd_dev_t prev = sd_dev_enter(sd_dev_for_lane(lane));
    sd_unet_t *u = NULL;
    int rc = sd15_unet_load(&s->c, &u, s->err, sizeof s->err);
    sd_dev_leave(prev);
    s->load_s = now_s() - t0;
    if (rc != 0)
        return rc;
    s->dev = u->dev;
    t0 = now_s();
    rc = sd_unet_forward(u, lane, s->x, kiln_tensor_data(s->ts), s->ctx, s->got);
    s->fwd_s = now_s() - t0;
    if (rc != 0)
        snprintf(s->err, sizeof s->err, "forward: %s", kiln_err_name(rc));
    sd_unet_free(u);
    return rc;
}

static void test_sd15_unet_step_f16_matches_cpu_f32(void)
{
    int device = want_device();
    kiln__safetensors_t *ref = open_ref(); /* before anything slow */
    setenv("KILN_CUDA_DTYPE", "fp16", 1);
    kiln_engine_t *e = engine_up();
    step_t s;
    memset(&s, 0, sizeof s);
    ASSERT_EQ_INT(sd15_case_init(&s.c), 0);
    ASSERT_EQ_INT(s.c.n, 686);
    s.x = ref_f32(ref, "x");
    s.ctx = ref_f32(ref, "context");
    s.ts = ref_f32(ref, "timesteps");
    kiln_tensor_t *want = ref_f32(ref, "eps");
    ASSERT_EQ_INT(kiln_tensor_ndim(want), 4);
    ASSERT_EQ_INT(kiln_tensor_dim(want, 0), 2);
    ASSERT_EQ_INT(kiln_tensor_numel(s.ts), 2);
    int64_t shape[4];
    for (int d = 0; d < 4; d++)
        shape[d] = kiln_tensor_dim(want, d);
    s.got = kiln_tensor_new(KILN_DTYPE_F32, 4, shape); // [2, 4, S, S] on the host
    ASSERT(s.got != NULL);

    run_on_gpu_lane(e, step_job, &s);
    check_weights(ref, &s.c);
    ASSERT_EQ_INT(s.dev.device, device);
    if (device != KILN_DEVICE_CPU)
        ASSERT_EQ_INT(s.dev.act, KILN_DTYPE_F16);
    double r = rel_err(s.got, want);
    printf("SD1.5 UNet on device %d (%s), batch 2 %lldx%lld: eps rel %.3g against the CPU "
           "float32 run (bound %g); weights made and loaded in %.1f s, forward %.1f ms\n",
           device, device != KILN_DEVICE_CPU ? kiln_dtype_name(s.dev.act) : "F32",
           (long long)shape[2], (long long)shape[3], r, F16_TOL, s.load_s, s.fwd_s * 1e3);
    if (!(r <= F16_TOL))
        kiln_test_fail(__FILE__, __LINE__, "eps rel %.3g > %g", r, F16_TOL);

    kiln_tensor_t *all[] = {s.x, s.ctx, s.ts, s.got, want};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        kiln_tensor_release(all[i]);
    sd15_case_free(&s.c);
    kiln__safetensors_close(ref);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* ---- the reference file's checks ----------------------------------------------------------- */

/* Runs open_ref in a child process with KILN_SD15_REF = path: it must fail (status 1)
 * with a message containing `want`. */
static void expect_refused(const char *path, const char *want)
{
    char log[512];
    snprintf(log, sizeof log, "%s/open_ref.log", kiln_test_tmpdir());
    setenv("KILN_SD15_REF", path, 1);
    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        if (!freopen(log, "w", stderr))
            _exit(3);
        open_ref(); /* fails: exits with status 1 */
        _exit(0);
    }
    int status = 0;
    ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ_INT(WEXITSTATUS(status), 1);
    size_t len = 0;
    char *text = kiln_test_read_file(log, &len);
    ASSERT(text != NULL);
    ASSERT_STR_CONTAINS(text, want);
    free(text);
}

/* The file is checked before anything heavy runs: a missing one, or one made for another
 * version of the case, fails at once with the remedy in the message. */
static void test_missing_or_stale_reference_fails(void)
{
    char path[512], err[256] = "";
    snprintf(path, sizeof path, "%s/none.safetensors", kiln_test_tmpdir());
    expect_refused(path, "sd15_cpu_ref -o");
    snprintf(path, sizeof path, "%s/stale.safetensors", kiln_test_tmpdir());
    kiln_tensor_t *t = kiln_tensor_new(KILN_DTYPE_F32, 1, (const int64_t[]){2});
    const char *names[] = {"timesteps"};
    const char *meta[] = {SD15_META_VERSION, "sd15-case-0", NULL};
    ASSERT_EQ_INT(kiln__safetensors_write(path, names, &t, 1, meta, err, sizeof err), 0);
    kiln_tensor_release(t);
    expect_refused(path, "make it again with sd15_cpu_ref");
}

KILN_TEST_MAIN(TEST_TIMEOUT(test_sd15_unet_step_f16_matches_cpu_f32, 300),
               TEST(test_missing_or_stale_reference_fails))
