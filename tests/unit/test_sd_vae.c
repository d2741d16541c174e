/* The SD VAE against ComfyUI's own AutoencoderKL outputs on the sd15-tiny model
 * (vae.safetensors): first_stage_model.decode, VAEDecode, VAEEncode on a 64x64 image and on
 * a 68x75 one that VAEEncode crops to 64x72; batches, extra image channels, odd latent
 * sizes and load / argument errors. Tolerance: rel = max|out - ref| / max|ref| <= 1e-4. */
#include <kiln/kiln.h>
#include <kiln/weights.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../nodes/sd/vae.h"
#include "runner.h"
#include "test_fake_safetensors.h"

#define FIXTURES KILN_SHARED_DIR "/fixtures/sd15-tiny/"
#define VAE_PREFIX "first_stage_model."
#define REL_TOL 1e-4

typedef struct env {
    kiln_engine_t *eng;
    kiln_weights_t *ckpt; /* checkpoint.safetensors */
    kiln_weights_t *ref;  /* vae.safetensors: ComfyUI's inputs and outputs */
    sd_vae_t *vae;
} env_t;

static void quiet(void *ud, kiln_log_level_t level, const char *msg)
{
    (void)ud, (void)level, (void)msg;
}

static kiln_weights_t *open_weights(const char *path)
{
    kiln_weights_t *w = NULL;
    char err[256] = "";
    int rc = kiln_weights_open(path, &w, err, sizeof err);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "open %s: %s (%s)", path, err, kiln_err_name(rc));
    return w;
}

/* An engine first: creating it binds the sd pack's host table, which vae.c calls through. */
static void env_open(env_t *e)
{
    memset(e, 0, sizeof *e);
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.base_directory = kiln_test_tmpdir();
    o.cpu_lanes = 1;
    o.log = quiet;
    ASSERT_EQ_INT(kiln_engine_new(&o, &e->eng), 0);
    e->ckpt = open_weights(FIXTURES "checkpoint.safetensors");
    e->ref = open_weights(FIXTURES "vae.safetensors");
    char err[256] = "";
    int rc = sd_vae_load(e->ckpt, VAE_PREFIX, &e->vae, err, sizeof err);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "sd_vae_load: %s (%s)", err, kiln_err_name(rc));
}

static void env_close(env_t *e)
{
    sd_vae_free(e->vae);
    kiln_weights_close(e->ref);
    kiln_weights_close(e->ckpt);
    ASSERT_EQ_INT(kiln_engine_close(e->eng), 0);
}

static kiln_tensor_t *ref_tensor(const env_t *e, const char *name)
{
    kiln_tensor_t *t = NULL;
    int rc = kiln_weights_get(e->ref, name, KILN_DTYPE_F32, &t);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "fixture tensor %s: %s", name, kiln_err_name(rc));
    return t;
}

static void assert_shape(const kiln_tensor_t *t, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    ASSERT(t != NULL);
    ASSERT_EQ_INT(kiln_tensor_ndim(t), 4);
    ASSERT_EQ_INT(kiln_tensor_dim(t, 0), d0);
    ASSERT_EQ_INT(kiln_tensor_dim(t, 1), d1);
    ASSERT_EQ_INT(kiln_tensor_dim(t, 2), d2);
    ASSERT_EQ_INT(kiln_tensor_dim(t, 3), d3);
}

/* max|a - b| / max|b| over n floats. */
static double rel_n(const float *a, const float *b, int64_t n)
{
    double dmax = 0.0, rmax = 0.0;
    for (int64_t i = 0; i < n; i++) {
        ASSERT(isfinite(a[i]));
        dmax = fmax(dmax, fabs((double)a[i] - (double)b[i]));
        rmax = fmax(rmax, fabs((double)b[i]));
    }
    ASSERT(rmax > 0.0);
    return dmax / rmax;
}

/* Compares out with fixture tensor name (shapes must match), prints and checks rel. */
static void check_ref(const env_t *e, const kiln_tensor_t *out, const char *name)
{
    kiln_tensor_t *ref = ref_tensor(e, name);
    ASSERT_EQ_INT(kiln_tensor_ndim(out), kiln_tensor_ndim(ref));
    for (int i = 0; i < kiln_tensor_ndim(ref); i++)
        ASSERT_EQ_INT(kiln_tensor_dim(out, i), kiln_tensor_dim(ref, i));
    double r = rel_n(kiln_tensor_data(out), kiln_tensor_data(ref), kiln_tensor_numel(ref));
    printf("  %s: rel %.3g\n", name, r);
    if (!(r <= REL_TOL))
        kiln_test_fail(__FILE__, __LINE__, "%s: rel %g > %g", name, r, REL_TOL);
    kiln_tensor_release(ref);
}

static void test_decode(void)
{
    env_t e;
    env_open(&e);
    ASSERT_EQ_INT(sd_vae_latent_channels(e.vae), 4);
    ASSERT_EQ_INT(sd_vae_downscale(e.vae), 8);
    kiln_tensor_t *lat = ref_tensor(&e, "latent"), *raw = NULL, *img = NULL;
    ASSERT_EQ_INT(sd_vae_decode_raw(e.vae, NULL, lat, &raw), 0);
    assert_shape(raw, 1, 3, 64, 64);
    check_ref(&e, raw, "decoder_raw");
    ASSERT_EQ_INT(sd_vae_decode(e.vae, NULL, lat, &img), 0);
    assert_shape(img, 1, 64, 64, 3);
    check_ref(&e, img, "image");
    kiln_tensor_release(lat);
    kiln_tensor_release(raw);
    kiln_tensor_release(img);
    env_close(&e);
}

/* Decode and encode with the VAE's activations and conv kernels laid out channels-last
 * (the GPU layout, forced on the host): the results handed back are dense tensors, and
 * equal to the fixtures as closely as with the default layout. */
static void test_channels_last(void)
{
    ASSERT_EQ_INT(setenv("KILN_SD_CHANNELS_LAST", "1", 1), 0); /* this test's process only */
    env_t e;
    env_open(&e);
    kiln_tensor_t *lat = ref_tensor(&e, "latent"), *raw = NULL;
    ASSERT_EQ_INT(sd_vae_decode_raw(e.vae, NULL, lat, &raw), 0);
    assert_shape(raw, 1, 3, 64, 64);
    ASSERT_EQ_INT(kiln_tensor_is_contiguous(raw), 1);
    check_ref(&e, raw, "decoder_raw");
    kiln_tensor_release(lat);
    kiln_tensor_release(raw);
    env_close(&e);
}

static void test_encode(void)
{
    env_t e;
    env_open(&e);
    kiln_tensor_t *in = ref_tensor(&e, "image_in"), *lat = NULL;
    ASSERT_EQ_INT(sd_vae_encode(e.vae, NULL, in, &lat), 0);
    assert_shape(lat, 1, 4, 8, 8);
    check_ref(&e, lat, "latent_out");
    kiln_tensor_release(lat);
    kiln_tensor_release(in);
    in = ref_tensor(&e, "crop_image_in"); /* 68 x 75: cropped to 64 x 72 at (2, 1) */
    ASSERT_EQ_INT(sd_vae_encode(e.vae, NULL, in, &lat), 0);
    assert_shape(lat, 1, 4, 8, 9);
    check_ref(&e, lat, "crop_latent_out");
    kiln_tensor_release(lat);
    kiln_tensor_release(in);
    env_close(&e);
}

/* A new [n, ...] tensor whose samples are copies of the given [1, ...] tensors, each padded
 * along the last dimension to `last` entries with the value `fill`. */
static kiln_tensor_t *stack(kiln_tensor_t *const *parts, int n, int64_t last, float fill)
{
    int64_t shape[4];
    for (int i = 0; i < 4; i++)
        shape[i] = kiln_tensor_dim(parts[0], i);
    int64_t src_last = shape[3], rows = shape[1] * shape[2];
    shape[0] = n;
    shape[3] = last;
    kiln_tensor_t *t = kiln_tensor_new(KILN_DTYPE_F32, 4, shape);
    ASSERT(t != NULL);
    float *d = kiln_tensor_data(t);
    for (int i = 0; i < n; i++) {
        const float *s = kiln_tensor_data(parts[i]);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < last; j++)
                d[(i * rows + r) * last + j] = j < src_last ? s[r * src_last + j] : fill;
    }
    return t;
}

/* Batches run sample by sample with the same results as single images; an image's fourth
 * channel (alpha) is ignored as VAEEncode's pixels[..., :3] does. */
static void test_batches_and_channels(void)
{
    env_t e;
    env_open(&e);
    kiln_tensor_t *l0 = ref_tensor(&e, "latent"), *l1 = ref_tensor(&e, "latent_out");
    kiln_tensor_t *pair[2] = {l1, l0}, *lat2 = stack(pair, 2, 8, 0.0f), *raw2 = NULL;
    kiln_tensor_t *raw0 = NULL;
    ASSERT_EQ_INT(sd_vae_decode_raw(e.vae, NULL, lat2, &raw2), 0);
    assert_shape(raw2, 2, 3, 64, 64);
    ASSERT_EQ_INT(sd_vae_decode_raw(e.vae, NULL, l0, &raw0), 0);
    int64_t n = kiln_tensor_numel(raw0);
    ASSERT(memcmp((float *)kiln_tensor_data(raw2) + n, kiln_tensor_data(raw0),
                  (size_t)n * sizeof(float)) == 0);
    ASSERT(rel_n(kiln_tensor_data(raw2), kiln_tensor_data(raw0), n) > 0.05);
    kiln_tensor_release(raw0);
    ASSERT_EQ_INT(sd_vae_decode_raw(e.vae, NULL, l1, &raw0), 0);
    ASSERT(memcmp(kiln_tensor_data(raw2), kiln_tensor_data(raw0), (size_t)n * sizeof(float)) == 0);

    kiln_tensor_t *img = ref_tensor(&e, "image_in"), *imgs[2] = {img, img};
    kiln_tensor_t *rgba = stack(imgs, 2, 4, 0.75f), *lat = NULL, *want = NULL;
    ASSERT_EQ_INT(sd_vae_encode(e.vae, NULL, rgba, &lat), 0);
    assert_shape(lat, 2, 4, 8, 8);
    ASSERT_EQ_INT(sd_vae_encode(e.vae, NULL, img, &want), 0);
    for (int i = 0; i < 2; i++)
        ASSERT(memcmp((float *)kiln_tensor_data(lat) + i * 256, kiln_tensor_data(want),
                      256 * sizeof(float)) == 0);
    kiln_tensor_t *all[] = {l0, l1, lat2, raw2, raw0, img, rgba, lat, want};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        kiln_tensor_release(all[i]);
    env_close(&e);
}

/* A non-square latent decodes to 8x its size, and decode maps raw values into 0..1 as
 * clamp((x + 1) / 2, 0, 1) elementwise. */
static void test_odd_size_and_clamp(void)
{
    env_t e;
    env_open(&e);
    kiln_tensor_t *lat = ref_tensor(&e, "crop_latent_out"), *raw = NULL, *img = NULL;
    ASSERT_EQ_INT(sd_vae_decode_raw(e.vae, NULL, lat, &raw), 0);
    assert_shape(raw, 1, 3, 64, 72);
    ASSERT_EQ_INT(sd_vae_decode(e.vae, NULL, lat, &img), 0);
    assert_shape(img, 1, 64, 72, 3);
    const float *r = kiln_tensor_data(raw), *p = kiln_tensor_data(img);
    int clamped = 0;
    for (int64_t y = 0; y < 64; y++) {
        for (int64_t x = 0; x < 72; x++) {
            for (int64_t c = 0; c < 3; c++) {
                float v = (r[(c * 64 + y) * 72 + x] + 1.0f) / 2.0f;
                float want = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
                clamped += want != v;
                ASSERT(p[(y * 72 + x) * 3 + c] == want);
            }
        }
    }
    ASSERT_CMP_INT(clamped, >, 0);
    kiln_tensor_release(lat);
    kiln_tensor_release(raw);
    kiln_tensor_release(img);
    env_close(&e);
}

static void test_errors(void)
{
    env_t e;
    env_open(&e);
    kiln_tensor_t *out = (kiln_tensor_t *)&e;
    kiln_tensor_t *bad = kiln_tensor_new(KILN_DTYPE_F32, 4, (const int64_t[]){1, 3, 8, 8});
    ASSERT_EQ_INT(sd_vae_decode_raw(e.vae, NULL, bad, &out), KILN_EINVAL); /* 3 channels */
    ASSERT(out == NULL);
    ASSERT_EQ_INT(sd_vae_decode(e.vae, NULL, NULL, &out), KILN_EINVAL);
    kiln_tensor_t *tiny = kiln_tensor_new(KILN_DTYPE_F32, 4, (const int64_t[]){1, 7, 64, 3});
    ASSERT_EQ_INT(sd_vae_encode(e.vae, NULL, tiny, &out), KILN_EINVAL); /* under 8 rows */
    kiln_tensor_t *gray = kiln_tensor_new(KILN_DTYPE_F32, 4, (const int64_t[]){1, 8, 8, 1});
    ASSERT_EQ_INT(sd_vae_encode(e.vae, NULL, gray, &out), KILN_EINVAL); /* 1 channel */
    ASSERT(out == NULL);
    kiln_tensor_release(bad);
    kiln_tensor_release(tiny);
    kiln_tensor_release(gray);

    sd_vae_t *v = (sd_vae_t *)&e;
    char err[256] = "";
    ASSERT_EQ_INT(sd_vae_load(e.ckpt, "vae.", &v, err, sizeof err), KILN_ENOTFOUND);
    ASSERT(v == NULL);
    ASSERT_STR_CONTAINS(err, "vae.encoder.conv_in.weight");
    ASSERT_EQ_INT(sd_vae_load(e.ref, VAE_PREFIX, &v, err, sizeof err), KILN_ENOTFOUND);
    ASSERT_EQ_INT(sd_vae_load(NULL, VAE_PREFIX, &v, err, sizeof err), KILN_EINVAL);
    env_close(&e);
}

/* Files with a level width that is no multiple of ch, or a block missing, fail with a
 * message (and no crash, under ASan). */
static void test_malformed_file(void)
{
    env_t e;
    env_open(&e);
    fake_tensor_t ts[] = {
        {"encoder.conv_in.weight", 4, {32, 3, 3, 3}},
        {"decoder.conv_in.weight", 4, {64, 4, 3, 3}},
        {"decoder.conv_out.weight", 4, {3, 32, 3, 3}},
        {"post_quant_conv.weight", 4, {4, 4, 1, 1}},
        {"encoder.down.0.block.0.conv1.weight", 4, {48, 32, 3, 3}},
    };
    kiln_weights_t *w = open_weights(write_fake(ts, 5));
    sd_vae_t *v = NULL;
    char err[256] = "";
    ASSERT_EQ_INT(sd_vae_load(w, "", &v, err, sizeof err), KILN_EPARSE);
    ASSERT(v == NULL);
    ASSERT_STR_CONTAINS(err, "not a multiple of 32");
    kiln_weights_close(w);
    ts[4].shape[0] = 32;
    w = open_weights(write_fake(ts, 5));
    ASSERT_EQ_INT(sd_vae_load(w, "", &v, err, sizeof err), KILN_ENOTFOUND);
    ASSERT_STR_CONTAINS(err, "encoder.conv_in.bias");
    kiln_weights_close(w);
    env_close(&e);
}

KILN_TEST_MAIN(TEST_TIMEOUT(test_decode, 120), TEST_TIMEOUT(test_channels_last, 120),
               TEST_TIMEOUT(test_encode, 120),
               TEST_TIMEOUT(test_batches_and_channels, 120), TEST(test_odd_size_and_clamp),
               TEST(test_errors), TEST(test_malformed_file))
