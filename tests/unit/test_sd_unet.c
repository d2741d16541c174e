/* The SD UNet against the sd15-tiny fixtures made by ComfyUI's own UNetModel: the config
 * read off the checkpoint, the time embedding, eps for the batch-2 8x8 case (raw and
 * scaled inputs) and the odd 12x12 case whose up path resizes to each skip's size, compared
 * as rel = max|out - ref| / max|ref|. Also F16 weights, bad inputs, and broken
 * checkpoints, which must fail with a message (run under ASan). The 8x8 case is
 * ill-conditioned at its 1x1 bottom level and gets a looser bound: see test_eps_batch2. */
#include <kiln/error.h>
#include <kiln/kiln.h>
#include <kiln/ops.h>
#include <kiln/tensor.h>
#include <kiln/weights.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../../nodes/sd/unet.h"
#include "../../nodes/sd/unet_int.h"
#include "runner.h"
#include "runtime/safetensors.h"

#define FIX KILN_SHARED_DIR "/fixtures/sd15-tiny/"
#define CKPT FIX "checkpoint.safetensors"
#define REFS FIX "unet.safetensors"
#define PREFIX "model.diffusion_model."

/* Binds the sd pack's host table (the engine registers the built-in packs). */
static kiln_engine_t *engine_up(void)
{
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.base_directory = kiln_test_tmpdir();
    o.cpu_lanes = 1;
    kiln_engine_t *e = NULL;
    ASSERT_EQ_INT(kiln_engine_new(&o, &e), 0);
    return e;
}

static sd_unet_t *load_unet(const char *path, int heads)
{
    kiln_weights_t *w = NULL;
    char err[256] = "";
    if (kiln_weights_open(path, &w, err, sizeof err) != 0)
        kiln_test_fail(__FILE__, __LINE__, "open %s: %s", path, err);
    sd_unet_t *u = NULL;
    int rc = sd_unet_load(w, PREFIX, heads, &u, err, sizeof err);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "load: %s (%s)", err, kiln_err_name(rc));
    kiln_weights_close(w); /* the model keeps its own references */
    return u;
}

/* A float32 reference tensor from unet.safetensors (a new reference). */
static kiln_tensor_t *ref(kiln_weights_t *refs, const char *name)
{
    kiln_tensor_t *t = NULL;
    if (kiln_weights_get(refs, name, KILN_DTYPE_F32, &t) != 0)
        kiln_test_fail(__FILE__, __LINE__, "fixture tensor %s missing", name);
    return t;
}

static kiln_weights_t *open_refs(void)
{
    kiln_weights_t *w = NULL;
    char err[256] = "";
    if (kiln_weights_open(REFS, &w, err, sizeof err) != 0)
        kiln_test_fail(__FILE__, __LINE__, "open %s: %s", REFS, err);
    return w;
}

/* rel = max|got - want| / max|want| over two tensors of one shape. */
static double rel_err(const kiln_tensor_t *got, const kiln_tensor_t *want)
{
    ASSERT_EQ_INT(kiln_tensor_numel(got), kiln_tensor_numel(want));
    ASSERT_EQ_INT(kiln_tensor_ndim(got), kiln_tensor_ndim(want));
    for (int d = 0; d < kiln_tensor_ndim(want); d++)
        ASSERT_EQ_INT(kiln_tensor_dim(got, d), kiln_tensor_dim(want, d));
    const float *g = kiln_tensor_data(got), *r = kiln_tensor_data(want);
    double diff = 0.0, mag = 0.0;
    for (int64_t i = 0; i < kiln_tensor_numel(want); i++) {
        ASSERT(isfinite(g[i]));
        diff = fmax(diff, fabs((double)g[i] - r[i]));
        mag = fmax(mag, fabs((double)r[i]));
    }
    ASSERT(mag > 0.0);
    return diff / mag;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void test_config_detected(void)
{
    kiln_engine_t *e = engine_up();
    sd_unet_t *u = load_unet(CKPT, 0);
    const sd_unet_config_t *c = sd_unet_config(u);
    ASSERT_EQ_INT(c->in_channels, 4);
    ASSERT_EQ_INT(c->out_channels, 4);
    ASSERT_EQ_INT(c->model_channels, 32);
    ASSERT_EQ_INT(c->num_res_blocks, 2);
    ASSERT_EQ_INT(c->n_levels, 4);
    const int mult[4] = {1, 2, 2, 2}, depth[4] = {1, 1, 1, 0};
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ_INT(c->channel_mult[i], mult[i]);
        ASSERT_EQ_INT(c->transformer_depth[i], depth[i]);
    }
    ASSERT_EQ_INT(c->transformer_depth_middle, 1);
    ASSERT_EQ_INT(c->context_dim, 32);
    ASSERT_EQ_INT(c->num_heads, 8);
    ASSERT_EQ_INT(c->num_head_channels, -1);
    ASSERT_EQ_INT(c->use_linear_in_transformer, 0);
    /* The README's head widths 4, 8, 8, 8 (middle): 8 heads at every transformer. */
    ASSERT_EQ_INT(u->n_input, 12);
    ASSERT_EQ_INT(u->n_output, 12);
    ASSERT_EQ_INT(u->input[1].mods[1].kind, SD_UNET_MOD_ST);
    ASSERT_EQ_INT(u->input[1].mods[1].st->heads, 8);
    ASSERT_EQ_INT(u->input[1].mods[1].st->inner / u->input[1].mods[1].st->heads, 4);
    ASSERT_EQ_INT(u->middle.mods[1].st->inner / u->middle.mods[1].st->heads, 8);
    ASSERT_EQ_INT(u->input[3].mods[0].kind, SD_UNET_MOD_DOWN);
    ASSERT_EQ_INT(u->output[2].n, 2); /* ResBlock, Upsample: no attention at level 3 */
    ASSERT_EQ_INT(u->output[2].mods[1].kind, SD_UNET_MOD_UP);
    ASSERT_EQ_INT(u->output[5].mods[2].kind, SD_UNET_MOD_UP);
    ASSERT_EQ_INT(u->output[11].n, 2);
    ASSERT(sd_unet_config(NULL) == NULL);
    sd_unet_free(u);
    sd_unet_free(NULL);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* heads > 0 overrides num_heads; a count that does not split 32 channels is refused, as is
 * a prefix with no UNet under it. */
static void test_load_options_and_errors(void)
{
    kiln_engine_t *e = engine_up();
    sd_unet_t *u = load_unet(CKPT, 4);
    ASSERT_EQ_INT(sd_unet_config(u)->num_heads, 4);
    ASSERT_EQ_INT(u->input[1].mods[1].st->heads, 4);
    sd_unet_free(u);
    kiln_weights_t *w = NULL;
    char err[256];
    ASSERT_EQ_INT(kiln_weights_open(CKPT, &w, err, sizeof err), 0);
    static char sentinel;
    u = (sd_unet_t *)&sentinel; /* must be reset to NULL on failure */
    ASSERT_EQ_INT(sd_unet_load(w, PREFIX, 3, &u, err, sizeof err), KILN_EPARSE);
    ASSERT(u == NULL);
    ASSERT_STR_CONTAINS(err, "input_blocks.1.1.");
    ASSERT_STR_CONTAINS(err, "heads");
    ASSERT_EQ_INT(sd_unet_load(w, "nope.", 0, &u, err, sizeof err), KILN_ENOTFOUND);
    ASSERT_STR_CONTAINS(err, "nope.input_blocks.0.0.weight");
    ASSERT_EQ_INT(sd_unet_load(w, PREFIX, 0, &u, NULL, 0), 0); /* err is optional */
    sd_unet_free(u);
    kiln_weights_close(w);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

static void test_time_embedding(void)
{
    kiln_engine_t *e = engine_up();
    sd_unet_t *u = load_unet(CKPT, 0);
    kiln_weights_t *refs = open_refs();
    kiln_tensor_t *ts = ref(refs, "timestep"), *t_emb = ref(refs, "t_emb");
    kiln_tensor_t *te_ref = ref(refs, "time_embed_out");
    const float *t = kiln_tensor_data(ts);
    ASSERT_EQ_INT(t[0], 999);
    ASSERT_EQ_INT(t[1], 354);

    kiln_tensor_t *te = kiln_tensor_new(KILN_DTYPE_F32, 2, (int64_t[]){2, 32});
    ASSERT_EQ_INT(kiln_op_timestep_embedding(NULL, te, ts, 0.0f), 0);
    double r1 = rel_err(te, t_emb);
    kiln_tensor_t *emb = NULL;
    ASSERT_EQ_INT(sd_unet_time_embed(u, NULL, t, 2, &emb), 0);
    double r2 = rel_err(emb, te_ref);
    printf("t_emb rel %.3g, time_embed_out rel %.3g\n", r1, r2);
    ASSERT_CMP_INT(r1 * 1e9, <=, 1e5);
    ASSERT_CMP_INT(r2 * 1e9, <=, 1e5);
    ASSERT_EQ_INT(sd_unet_time_embed(u, NULL, t, 0, &emb), KILN_EINVAL);

    kiln_tensor_release(te);
    kiln_tensor_release(emb);
    kiln_tensor_release(ts);
    kiln_tensor_release(t_emb);
    kiln_tensor_release(te_ref);
    kiln_weights_close(refs);
    sd_unet_free(u);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* Runs the UNet on fixture tensors x_name/ts_name/ctx_name and checks it against
 * want_name at rel <= tol; returns the measured rel. */
static double check_eps(const sd_unet_t *u, kiln_weights_t *refs, const char *x_name,
                        const char *ts_name, const char *ctx_name, const char *want_name,
                        double tol)
{
    kiln_tensor_t *x = ref(refs, x_name), *ts = ref(refs, ts_name), *ctx = ref(refs, ctx_name);
    kiln_tensor_t *want = ref(refs, want_name);
    int64_t shape[4];
    for (int d = 0; d < 4; d++)
        shape[d] = kiln_tensor_dim(want, d);
    kiln_tensor_t *out = kiln_tensor_new(KILN_DTYPE_F32, 4, shape);
    double t0 = now_s();
    int rc = sd_unet_forward(u, NULL, x, kiln_tensor_data(ts), ctx, out);
    double dt = now_s() - t0;
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "forward on %s: %s", x_name, kiln_err_name(rc));
    double r = rel_err(out, want);
    printf("%s: rel %.3g (forward %.1f ms)\n", want_name, r, dt * 1e3);
    if (r > tol)
        kiln_test_fail(__FILE__, __LINE__, "%s: rel %.3g > %g", want_name, r, tol);
    kiln_tensor_release(out);
    kiln_tensor_release(x);
    kiln_tensor_release(ts);
    kiln_tensor_release(ctx);
    kiln_tensor_release(want);
    return r;
}

/* The 8x8 case reaches 1x1 at the bottom level, where every GroupNorm group holds two
 * values that are often nearly equal (std down to 3e-5 at |x| ~ 0.1): each such norm
 * multiplies rounding differences by up to ~100, and after a dozen of them a one-ulp
 * change of the input moves eps by up to 1.6e-3 (test_conditioning shows it with this very
 * code). No float32 implementation can match torch's rounding there to 1e-4, so these two
 * get 5e-3. That still catches what matters: those near-degenerate groups are exactly where
 * the GroupNorm eps shows, and ResBlock eps 1e-6 instead of 1e-5 moves eps_raw by 3.9e-2,
 * SpatialTransformer eps 1e-5 instead of 1e-6 by 2e-2. Measured: eps_raw 4.8e-5,
 * eps_of_x_in 2.8e-4. */
static void test_eps_batch2(void)
{
    kiln_engine_t *e = engine_up();
    sd_unet_t *u = load_unet(CKPT, 0);
    kiln_weights_t *refs = open_refs();
    check_eps(u, refs, "x", "timestep", "context", "eps_raw", 5e-3);
    check_eps(u, refs, "x_in", "timestep", "context", "eps_of_x_in", 5e-3);
    kiln_weights_close(refs);
    sd_unet_free(u);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* 12x12 -> 6x6 -> 3x3 -> 2x2 down; up resizes 2->3, 3->6, 6->12 to match each skip.
 * Well conditioned (groups of 8 values at the bottom), so held to 1e-5, tighter than the
 * README's 1e-4: a wrong norm eps moves this case by only 2e-5 to 8e-5, a dropped
 * attention output bias by 0.16. Measured rel 1.2e-6. */
static void test_eps_odd_size(void)
{
    kiln_engine_t *e = engine_up();
    sd_unet_t *u = load_unet(CKPT, 0);
    kiln_weights_t *refs = open_refs();
    check_eps(u, refs, "odd_x", "odd_timestep", "odd_context", "odd_eps_raw", 1e-5);
    kiln_weights_close(refs);
    sd_unet_free(u);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* The same case with the model's activations and conv kernels laid out channels-last
 * (the GPU layout, here forced on the host): the model code reaches every tensor through
 * logical shapes and views, so the layout must not change the result beyond float
 * rounding of a different summation order (the CPU kernels are the same). */
static void test_eps_channels_last(void)
{
    ASSERT_EQ_INT(setenv("KILN_SD_CHANNELS_LAST", "1", 1), 0); /* this test's process only */
    kiln_engine_t *e = engine_up();
    sd_unet_t *u = load_unet(CKPT, 0);
    kiln_weights_t *refs = open_refs();
    check_eps(u, refs, "odd_x", "odd_timestep", "odd_context", "odd_eps_raw", 1e-5);
    check_eps(u, refs, "x", "timestep", "context", "eps_raw", 5e-3);
    kiln_weights_close(refs);
    sd_unet_free(u);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* rel between the UNet's eps for the fixture input and for the same input with every
 * other element moved by one ulp: how far float32 rounding alone can move this case. */
static double ulp_sensitivity(const sd_unet_t *u, kiln_weights_t *refs, const char *x_name,
                              const char *ts_name, const char *ctx_name)
{
    kiln_tensor_t *x = ref(refs, x_name), *ts = ref(refs, ts_name), *ctx = ref(refs, ctx_name);
    int64_t shape[4];
    for (int d = 0; d < 4; d++)
        shape[d] = kiln_tensor_dim(x, d);
    kiln_tensor_t *xp = kiln_tensor_new(KILN_DTYPE_F32, 4, shape);
    kiln_tensor_t *a = kiln_tensor_new(KILN_DTYPE_F32, 4, shape);
    kiln_tensor_t *b = kiln_tensor_new(KILN_DTYPE_F32, 4, shape);
    const float *xv = kiln_tensor_data(x);
    float *pv = kiln_tensor_data(xp);
    for (int64_t i = 0; i < kiln_tensor_numel(x); i++)
        pv[i] = i % 2 ? nextafterf(xv[i], INFINITY) : xv[i];
    ASSERT_EQ_INT(sd_unet_forward(u, NULL, x, kiln_tensor_data(ts), ctx, a), 0);
    ASSERT_EQ_INT(sd_unet_forward(u, NULL, xp, kiln_tensor_data(ts), ctx, b), 0);
    double r = rel_err(b, a);
    kiln_tensor_t *all[] = {x, ts, ctx, xp, a, b};
    for (size_t i = 0; i < 6; i++)
        kiln_tensor_release(all[i]);
    return r;
}

/* The reason for test_eps_batch2's bound, measured on this code rather than assumed. */
static void test_conditioning(void)
{
    kiln_engine_t *e = engine_up();
    sd_unet_t *u = load_unet(CKPT, 0);
    kiln_weights_t *refs = open_refs();
    double s8 = ulp_sensitivity(u, refs, "x_in", "timestep", "context");
    double s12 = ulp_sensitivity(u, refs, "odd_x", "odd_timestep", "odd_context");
    printf("one-ulp input change moves eps by rel %.3g (8x8), %.3g (12x12)\n", s8, s12);
    ASSERT(s8 > 1e-4);
    ASSERT(s12 < 1e-5);
    kiln_weights_close(refs);
    sd_unet_free(u);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* Tensors the model does not fit are refused before anything runs; out stays as it was. */
static void test_bad_inputs(void)
{
    kiln_engine_t *e = engine_up();
    sd_unet_t *u = load_unet(CKPT, 0);
    const float ts[2] = {10.0f, 20.0f};
    kiln_tensor_t *x = kiln_tensor_new(KILN_DTYPE_F32, 4, (int64_t[]){2, 4, 8, 8});
    kiln_tensor_t *x3 = kiln_tensor_new(KILN_DTYPE_F32, 4, (int64_t[]){2, 3, 8, 8});
    kiln_tensor_t *ctx = kiln_tensor_new(KILN_DTYPE_F32, 3, (int64_t[]){2, 77, 32});
    kiln_tensor_t *ctx1 = kiln_tensor_new(KILN_DTYPE_F32, 3, (int64_t[]){1, 77, 32});
    kiln_tensor_t *ctxw = kiln_tensor_new(KILN_DTYPE_F32, 3, (int64_t[]){2, 77, 16});
    kiln_tensor_t *out = kiln_tensor_new(KILN_DTYPE_F32, 4, (int64_t[]){2, 4, 8, 8});
    kiln_tensor_t *out6 = kiln_tensor_new(KILN_DTYPE_F32, 4, (int64_t[]){2, 4, 6, 8});
    ((float *)kiln_tensor_data(out))[0] = 42.0f;
    ASSERT_EQ_INT(sd_unet_forward(u, NULL, x3, ts, ctx, out), KILN_EINVAL);
    ASSERT_EQ_INT(sd_unet_forward(u, NULL, x, ts, ctx1, out), KILN_EINVAL);
    ASSERT_EQ_INT(sd_unet_forward(u, NULL, x, ts, ctxw, out), KILN_EINVAL);
    ASSERT_EQ_INT(sd_unet_forward(u, NULL, x, ts, ctx, out6), KILN_EINVAL);
    ASSERT_EQ_INT(sd_unet_forward(u, NULL, x, NULL, ctx, out), KILN_EINVAL);
    ASSERT_EQ_INT(sd_unet_forward(NULL, NULL, x, ts, ctx, out), KILN_EINVAL);
    ASSERT_EQ_INT(((float *)kiln_tensor_data(out))[0], 42);
    /* A 1x1 latent still runs: every level is 1x1 and the up path stays at 1x1. */
    kiln_tensor_t *x1 = kiln_tensor_new(KILN_DTYPE_F32, 4, (int64_t[]){2, 4, 1, 1});
    kiln_tensor_t *o1 = kiln_tensor_new(KILN_DTYPE_F32, 4, (int64_t[]){2, 4, 1, 1});
    ASSERT_EQ_INT(sd_unet_forward(u, NULL, x1, ts, ctx, o1), 0);
    const float *v = kiln_tensor_data(o1);
    for (int i = 0; i < 8; i++)
        ASSERT(isfinite(v[i]) && v[i] != 0.0f);
    kiln_tensor_t *all[] = {x, x3, ctx, ctx1, ctxw, out, out6, x1, o1};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        kiln_tensor_release(all[i]);
    sd_unet_free(u);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* How write_variant changes the checkpoint's UNet. */
typedef struct variant {
    kiln_dtype_t dtype;        /* every tensor converted to this */
    const char *drop;          /* (optional) a tensor left out */
    const char *swap;          /* (optional) a tensor replaced by zeros of swap_shape */
    const int64_t *swap_shape; /* [4] */
    int linear_proj;           /* proj_in/proj_out weights stored as [out, in] (SD2.x style) */
} variant_t;

/* The checkpoint's weight `name` as the variant stores it (a new reference). */
static kiln_tensor_t *variant_tensor(kiln__safetensors_t *f, const char *name, const variant_t *v)
{
    char err[256] = "";
    kiln_tensor_t *t = NULL, *flat = NULL;
    if (v->swap && strcmp(name, v->swap) == 0)
        return kiln_tensor_new(KILN_DTYPE_F32, 4, v->swap_shape);
    ASSERT_EQ_INT(kiln__safetensors_tensor_as(f, name, v->dtype, &t, err, sizeof err), 0);
    size_t len = strlen(name);
    if (!v->linear_proj || kiln_tensor_ndim(t) != 4 || len < 15 ||
        (strcmp(name + len - 14, "proj_in.weight") != 0 &&
         strcmp(name + len - 15, "proj_out.weight") != 0))
        return t;
    ASSERT_EQ_INT(kiln_tensor_reshape(t, 2, (int64_t[]){kiln_tensor_dim(t, 0), -1}, &flat), 0);
    kiln_tensor_release(t);
    return flat;
}

/* Writes the checkpoint's UNet tensors to path, changed as v says. */
static void write_variant(const char *path, const variant_t *v)
{
    kiln__safetensors_t *f = NULL;
    char err[256] = "";
    ASSERT_EQ_INT(kiln__safetensors_open(CKPT, &f, err, sizeof err), 0);
    size_t n = kiln__safetensors_count(f), k = 0;
    const char **names = calloc(n, sizeof *names);
    kiln_tensor_t **ts = calloc(n, sizeof *ts);
    ASSERT(names && ts);
    for (size_t i = 0; i < n; i++) {
        const char *name = kiln__safetensors_info_at(f, i)->name;
        if (strncmp(name, PREFIX, strlen(PREFIX)) != 0 || (v->drop && strcmp(name, v->drop) == 0))
            continue;
        ts[k] = variant_tensor(f, name, v);
        names[k++] = name;
    }
    ASSERT_EQ_INT(kiln__safetensors_write(path, names, ts, k, NULL, err, sizeof err), 0);
    for (size_t i = 0; i < k; i++)
        kiln_tensor_release(ts[i]);
    free(ts);
    free(names);
    kiln__safetensors_close(f);
}

static int try_load(const char *path, char *err, size_t err_size)
{
    kiln_weights_t *w = NULL;
    ASSERT_EQ_INT(kiln_weights_open(path, &w, err, err_size), 0);
    sd_unet_t *u = NULL;
    int rc = sd_unet_load(w, PREFIX, 0, &u, err, err_size);
    ASSERT((rc == 0) == (u != NULL));
    sd_unet_free(u);
    kiln_weights_close(w);
    return rc;
}

static void test_broken_checkpoints(void)
{
    kiln_engine_t *e = engine_up();
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/broken.safetensors", kiln_test_tmpdir());

    write_variant(path, &(variant_t){.drop = PREFIX "output_blocks.11.0.skip_connection.weight"});
    ASSERT_EQ_INT(try_load(path, err, sizeof err), KILN_EPARSE);
    ASSERT_STR_CONTAINS(err, "output_blocks.11.0.");
    ASSERT_STR_CONTAINS(err, "skip_connection");

    write_variant(path, &(variant_t){.swap = PREFIX "middle_block.1.proj_out.weight",
                                     .swap_shape = (const int64_t[]){64, 32, 1, 1}});
    ASSERT_EQ_INT(try_load(path, err, sizeof err), KILN_EPARSE);
    ASSERT_STR_CONTAINS(err, "middle_block.1.proj_out.weight");

    write_variant(
        path, &(variant_t){.drop = PREFIX "output_blocks.4.1.transformer_blocks.0.ff.net.2.bias"});
    ASSERT_EQ_INT(try_load(path, err, sizeof err), KILN_ENOTFOUND);
    ASSERT_STR_CONTAINS(err, "output_blocks.4.1.transformer_blocks.0.ff.net.2.bias");

    /* Without the last output block the skips no longer pair up with the up path. */
    write_variant(path, &(variant_t){.drop = PREFIX "output_blocks.5.2.conv.weight"});
    ASSERT_EQ_INT(try_load(path, err, sizeof err), KILN_EPARSE);
    ASSERT_STR_CONTAINS(err, "level");
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* F16 weights are used as stored (the ops widen them exactly): eps moves only by the
 * weights' rounding (on the well-conditioned odd-size case). */
static void test_f16_weights(void)
{
    kiln_engine_t *e = engine_up();
    char path[512];
    snprintf(path, sizeof path, "%s/f16.safetensors", kiln_test_tmpdir());
    write_variant(path, &(variant_t){.dtype = KILN_DTYPE_F16});
    sd_unet_t *u = load_unet(path, 0);
    ASSERT_EQ_INT(kiln_tensor_dtype(u->out_conv.w), KILN_DTYPE_F16);
    kiln_weights_t *refs = open_refs();
    kiln_tensor_t *x = ref(refs, "odd_x"), *ts = ref(refs, "odd_timestep");
    kiln_tensor_t *ctx = ref(refs, "odd_context"), *want = ref(refs, "odd_eps_raw");
    kiln_tensor_t *out = kiln_tensor_new(KILN_DTYPE_F32, 4, (int64_t[]){1, 4, 12, 12});
    ASSERT_EQ_INT(sd_unet_forward(u, NULL, x, kiln_tensor_data(ts), ctx, out), 0);
    double r = rel_err(out, want);
    printf("odd_eps_raw with F16 weights: rel %.3g\n", r);
    ASSERT(r < 1e-2 && r > 1e-6); /* rounded weights: close, but not the F32 result */
    kiln_tensor_t *all[] = {x, ts, ctx, want, out};
    for (size_t i = 0; i < 5; i++)
        kiln_tensor_release(all[i]);
    kiln_weights_close(refs);
    sd_unet_free(u);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* SD2.x-style linear proj_in/proj_out: the same numbers as the 1x1 convs, so with the same
 * 8 heads eps equals the conv model's; by default linear projections mean SD2.x's 64-wide
 * heads, which 32 channels cannot hold. */
static void test_linear_projections(void)
{
    kiln_engine_t *e = engine_up();
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/linear.safetensors", kiln_test_tmpdir());
    write_variant(path, &(variant_t){.linear_proj = 1});
    ASSERT_EQ_INT(try_load(path, err, sizeof err), KILN_EPARSE);
    ASSERT_STR_CONTAINS(err, "heads");
    sd_unet_t *u = load_unet(path, 8);
    const sd_unet_config_t *c = sd_unet_config(u);
    ASSERT_EQ_INT(c->use_linear_in_transformer, 1);
    ASSERT_EQ_INT(c->num_heads, 8);
    ASSERT_EQ_INT(c->num_head_channels, -1);
    kiln_weights_t *refs = open_refs();
    double r = check_eps(u, refs, "odd_x", "odd_timestep", "odd_context", "odd_eps_raw", 1e-5);
    printf("linear projections: odd_eps_raw rel %.3g\n", r);
    kiln_weights_close(refs);
    sd_unet_free(u);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

KILN_TEST_MAIN(TEST(test_config_detected), TEST(test_load_options_and_errors),
               TEST(test_time_embedding), TEST(test_eps_batch2), TEST(test_eps_odd_size),
               TEST(test_eps_channels_last),
               TEST(test_conditioning), TEST(test_bad_inputs), TEST(test_broken_checkpoints),
               TEST(test_f16_weights), TEST(test_linear_projections))
