/* Tests of the sd pack's nodes through the real engine on the tiny SD1.5 fixture model
 * (../shared/fixtures/sd15-tiny, produced by ComfyUI's own code): the fixture workflows run
 * unchanged and their PNGs match ComfyUI's pixels within 1; KSampler latents for four
 * sampler/scheduler pairs, the hires chain, VAEEncode and CLIPSetLastLayer match the
 * fixture tensors; KSamplerAdvanced, batches, noise masks and the latent upscalers behave as
 * ComfyUI's do; the cache re-runs only the sampler chain when the seed changes; interrupts
 * stop sampling; missing files give clear errors. A probe pack feeds fixture tensors in
 * and records the LATENT and CONDITIONING values that reach it. */
#include <errno.h>
#include <kiln/kiln.h>
#include <math.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runner.h"

#include "../../nodes/sd/sd_types.h"

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb_image.h>
#pragma GCC diagnostic pop

#define FIXTURES KILN_SHARED_DIR "/fixtures/sd15-tiny"

/* ---- fixture tensors -------------------------------------------------------------------- */

/* A fixture tensor as a new F32 (or U8) tensor; fails the test when absent. */
static kiln_tensor_t *fixture(const char *file, const char *name, kiln_dtype_t dtype)
{
    char path[1024], err[256] = "";
    snprintf(path, sizeof path, "%s/%s", FIXTURES, file);
    kiln_weights_t *w = NULL;
    if (kiln_weights_open(path, &w, err, sizeof err) != 0)
        kiln_test_fail(__FILE__, __LINE__, "cannot open %s: %s", path, err);
    kiln_tensor_t *t = NULL, *copy = NULL;
    int rc = kiln_weights_get(w, name, dtype, &t);
    if (rc == 0)
        rc = kiln_tensor_to_dtype(t, dtype, &copy);   /* outlives the mapping */
    kiln_tensor_release(t);
    kiln_weights_close(w);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "fixture %s/%s: error %d", file, name, rc);
    return copy;
}

/* max |a - b| / max |b| over n floats. */
static double rel_err(const float *a, const float *b, size_t n)
{
    double diff = 0, ref = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= diff))
            diff = d;   /* NaN propagates */
        if (fabs(b[i]) > ref)
            ref = fabs(b[i]);
    }
    return ref > 0 ? diff / ref : diff;
}

/* ---- the probe pack ----------------------------------------------------------------------- */

typedef struct capture {
    char id[16];
    char type[32];
    int ndim;
    int64_t dims[4];
    float *data;                /* LATENT samples or the first CONDITIONING entry */
    size_t n;
    size_t n_entries;           /* CONDITIONING */
    const void *entry_data[4];  /* CONDITIONING: identity of each entry's tensor */
    int has_mask;
    size_t n_batch_index;
} capture_t;

static pthread_mutex_t cap_mu = PTHREAD_MUTEX_INITIALIZER;
static capture_t caps[32];
static int n_caps;
static kiln_tensor_t *source_tensors[4];   /* what SdTestImage / SdTestMask emit */

static void copy_tensor(capture_t *c, const kiln_tensor_t *t)
{
    c->ndim = kiln_tensor_ndim(t);
    for (int i = 0; i < c->ndim && i < 4; i++)
        c->dims[i] = kiln_tensor_dim(t, i);
    c->n = (size_t)kiln_tensor_numel(t);
    c->data = malloc(c->n * sizeof(float));
    memcpy(c->data, kiln_tensor_data(t), c->n * sizeof(float));
}

static int capture_execute(kiln_call_t *call)
{
    const kiln_value_t *v = kiln_call_input(call, "value");
    pthread_mutex_lock(&cap_mu);
    if (n_caps < 32) {
        capture_t *c = &caps[n_caps++];
        memset(c, 0, sizeof *c);
        snprintf(c->id, sizeof c->id, "%s", kiln_call_node_id(call));
        snprintf(c->type, sizeof c->type, "%s", kiln_value_type(v));
        const sd_latent_t *l = kiln_value_get_object(v, "LATENT");
        const sd_cond_t *cond = kiln_value_get_object(v, "CONDITIONING");
        if (l) {
            copy_tensor(c, l->samples);
            c->has_mask = l->noise_mask != NULL;
            c->n_batch_index = l->n_batch_index;
        } else if (cond) {
            c->n_entries = cond->n;
            for (size_t i = 0; i < cond->n && i < 4; i++)
                c->entry_data[i] = kiln_tensor_data(cond->entries[i].cond);
            if (cond->n)
                copy_tensor(c, cond->entries[0].cond);
        }
    }
    pthread_mutex_unlock(&cap_mu);
    return 0;
}

static int source_execute(kiln_call_t *call, const char *type)
{
    int64_t slot = 0;
    kiln_value_get_int(kiln_call_input(call, "slot"), &slot);
    if (slot < 0 || slot >= 4 || !source_tensors[slot])
        return kiln_call_fail(call, "no such source tensor");
    return kiln_call_set_output(call, 0, kiln_value_new_tensor(type, source_tensors[slot]));
}

static int image_source_execute(kiln_call_t *call)
{
    return source_execute(call, "IMAGE");
}

static int mask_source_execute(kiln_call_t *call)
{
    return source_execute(call, "MASK");
}

/* A CONDITIONING whose single entry is the input's first context repeated twice along the
 * tokens (built here, freed by free_test_cond). */
static void free_test_cond(void *p)
{
    sd_cond_t *c = p;
    kiln_tensor_release(c->entries[0].cond);
    free(c->entries);
    free(c);
}

static int repeat_cond_execute(kiln_call_t *call)
{
    const sd_cond_t *in = kiln_value_get_object(kiln_call_input(call, "conditioning"),
                                                "CONDITIONING");
    if (!in || in->n < 1)
        return kiln_call_fail(call, "no conditioning");
    const kiln_tensor_t *t = in->entries[0].cond;
    int64_t l = kiln_tensor_dim(t, 1), w = kiln_tensor_dim(t, 2);
    int64_t shape[3] = {1, 2 * l, w};
    kiln_tensor_t *out = kiln_tensor_new(KILN_DTYPE_F32, 3, shape);   // [1, 2L, C]
    float *dst = kiln_tensor_data(out);
    memcpy(dst, kiln_tensor_data(t), (size_t)(l * w) * sizeof(float));
    memcpy(dst + l * w, kiln_tensor_data(t), (size_t)(l * w) * sizeof(float));
    sd_cond_t *c = calloc(1, sizeof *c);
    c->n = 1;
    c->entries = calloc(1, sizeof *c->entries);
    c->entries[0].cond = out;
    c->entries[0].strength = 1.0;
    return kiln_call_set_output(call, 0, kiln_value_new_object("CONDITIONING", c,
                                                               free_test_cond));
}

static const kiln_input_def_t capture_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "value", .type = "*"}, {0}};
static const kiln_output_def_t no_outputs[] = {{0}};
static const kiln_node_def_t capture_def = {
    KILN_NODE_DEF_INIT, .name = "SdTestCapture", .category = "testing", .inputs = capture_inputs,
    .outputs = no_outputs, .flags = KILN_NODE_OUTPUT, .execute = capture_execute};
static const kiln_input_def_t source_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "slot", .type = "INT", .has_default = 1, .max_int = 3}, {0}};
static const kiln_output_def_t image_outputs[] = {{KILN_OUTPUT_DEF_INIT, .type = "IMAGE"}, {0}};
static const kiln_output_def_t mask_outputs[] = {{KILN_OUTPUT_DEF_INIT, .type = "MASK"}, {0}};
static const kiln_node_def_t image_source_def = {
    KILN_NODE_DEF_INIT, .name = "SdTestImage", .category = "testing", .inputs = source_inputs,
    .outputs = image_outputs, .execute = image_source_execute};
static const kiln_node_def_t mask_source_def = {
    KILN_NODE_DEF_INIT, .name = "SdTestMask", .category = "testing", .inputs = source_inputs,
    .outputs = mask_outputs, .execute = mask_source_execute};
static const kiln_input_def_t repeat_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "conditioning", .type = "CONDITIONING"}, {0}};
static const kiln_output_def_t cond_outputs[] = {
    {KILN_OUTPUT_DEF_INIT, .type = "CONDITIONING"}, {0}};
static const kiln_node_def_t repeat_cond_def = {
    KILN_NODE_DEF_INIT, .name = "SdTestRepeatCond", .category = "testing",
    .inputs = repeat_inputs, .outputs = cond_outputs, .execute = repeat_cond_execute};
static const kiln_node_def_t *const probe_nodes[] = {&capture_def, &image_source_def,
                                                     &mask_source_def, &repeat_cond_def, NULL};

static int probe_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    (void)api;
    out->name = "sdprobe";
    out->nodes = probe_nodes;
    return 0;
}

/* The newest capture of a node; fails the test when there is none. */
static const capture_t *captured(const char *id)
{
    for (int i = n_caps - 1; i >= 0; i--)
        if (strcmp(caps[i].id, id) == 0)
            return &caps[i];
    kiln_test_fail(__FILE__, __LINE__, "capture %s did not run", id);
}

/* Compares a capture with fixture tensor `name` of `file`: shape and rel error. */
static double compare(const char *id, const char *file, const char *name, double tol)
{
    const capture_t *c = captured(id);
    kiln_tensor_t *ref = fixture(file, name, KILN_DTYPE_F32);
    ASSERT_EQ_INT(c->n, kiln_tensor_numel(ref));
    ASSERT_EQ_INT(c->ndim, kiln_tensor_ndim(ref));
    for (int i = 0; i < c->ndim; i++)
        ASSERT_EQ_INT(c->dims[i], kiln_tensor_dim(ref, i));
    double rel = rel_err(c->data, kiln_tensor_data(ref), c->n);
    fprintf(stderr, "  %-6s vs %-32s rel %.3g\n", id, name, rel);
    kiln_tensor_release(ref);
    if (!(rel <= tol))
        kiln_test_fail(__FILE__, __LINE__, "%s vs %s: rel %g > %g", id, name, rel, tol);
    return rel;
}

/* ---- engine helpers ----------------------------------------------------------------------- */

typedef struct events {
    char text[1 << 16];
    size_t len;
    kiln_engine_t *engine;
    uint64_t interrupt_at;      /* interrupt when KSampler reports this progress value */
    uint64_t last_progress, progress_max;
} events_t;

static void on_event(void *ud, const kiln_event_t *ev)
{
    events_t *e = ud;
    int n = snprintf(e->text + e->len, sizeof e->text - e->len, "%s %s\n", ev->name,
                     ev->data_json);
    if (n > 0 && (size_t)n < sizeof e->text - e->len)
        e->len += (size_t)n;
    if (ev->type == KILN_EVENT_PROGRESS && strcmp(ev->node_type, "KSampler") == 0) {
        e->last_progress = ev->value;
        e->progress_max = ev->max;
        if (e->interrupt_at && ev->value == e->interrupt_at)
            kiln_engine_interrupt(e->engine);
    }
}

static void quiet(void *ud, kiln_log_level_t level, const char *msg)
{
    (void)ud, (void)level, (void)msg;
}

static void link_fixture(const char *target, const char *link)
{
    if (symlink(target, link) != 0 && errno != EEXIST)
        kiln_test_fail(__FILE__, __LINE__, "symlink %s: %s", link, strerror(errno));
}

/* A base directory under the test's tmpdir: models/checkpoints/checkpoint.safetensors and
 * (with_tokenizer) models/tokenizers/clip/{vocab.json,merges.txt} link to the fixtures. */
static const char *make_base(const char *name, int with_tokenizer)
{
    static char base[1024];
    char p[1200];
    snprintf(base, sizeof base, "%s/%s", kiln_test_tmpdir(), name);
    const char *dirs[] = {"", "/models", "/models/checkpoints", "/models/tokenizers",
                          "/models/tokenizers/clip"};
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s%s", base, dirs[i]);
        mkdir(p, 0777);
    }
    snprintf(p, sizeof p, "%s/models/checkpoints/checkpoint.safetensors", base);
    link_fixture(FIXTURES "/checkpoint.safetensors", p);
    if (with_tokenizer) {
        snprintf(p, sizeof p, "%s/models/tokenizers/clip/vocab.json", base);
        link_fixture(KILN_SHARED_DIR "/fixtures/clip-tokenizer/vocab.json", p);
        snprintf(p, sizeof p, "%s/models/tokenizers/clip/merges.txt", base);
        link_fixture(KILN_SHARED_DIR "/fixtures/clip-tokenizer/merges.txt", p);
    }
    return base;
}

static kiln_engine_t *engine_at(const char *base)
{
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.base_directory = base;
    o.cpu_lanes = 2;
    o.log = quiet;
    kiln_engine_t *e = NULL;
    ASSERT_EQ_INT(kiln_engine_new(&o, &e), 0);
    ASSERT_EQ_INT(kiln_engine_add_pack(e, "sdprobe", probe_init), 0);
    return e;
}

static kiln_engine_t *engine(void)
{
    return engine_at(make_base("base", 1));
}

/* Validates and executes a prompt; returns execute's result. */
static int run(kiln_engine_t *e, const char *prompt, events_t *ev)
{
    kiln_prompt_t *p = NULL;
    char *errors = NULL;
    int rc = kiln_prompt_new(e, prompt, strlen(prompt), NULL, 0, &p, &errors);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "prompt failed validation: %s", errors);
    kiln_free(errors);
    ev->len = 0;
    ev->text[0] = 0;
    ev->engine = e;
    rc = kiln_engine_execute(e, p, "p1", NULL, on_event, ev);
    kiln_prompt_free(p);
    return rc;
}

static int run_file(kiln_engine_t *e, const char *path, events_t *ev)
{
    size_t len = 0;
    char *json = kiln_test_read_file(path, &len);
    ASSERT(json);
    int rc = run(e, json, ev);
    free(json);
    return rc;
}

/* Max |png - ref| over the pixels of output file `name` and fixture `ref_name`. */
static int png_diff(const char *base, const char *name, const char *ref_name)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/output/%s", base, name);
    int w, h, c;
    uint8_t *px = stbi_load(path, &w, &h, &c, 0);
    if (!px)
        kiln_test_fail(__FILE__, __LINE__, "cannot read %s", path);
    kiln_tensor_t *ref = fixture("samples.safetensors", ref_name, KILN_DTYPE_U8);
    ASSERT_EQ_INT(h, kiln_tensor_dim(ref, 1));
    ASSERT_EQ_INT(w, kiln_tensor_dim(ref, 2));
    ASSERT_EQ_INT(c, 3);
    const uint8_t *r = kiln_tensor_data(ref);
    int worst = 0;
    size_t differ = 0;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        int d = abs((int)px[i] - (int)r[i]);
        worst = d > worst ? d : worst;
        differ += d != 0;
    }
    fprintf(stderr, "  %s vs %s: max |diff| %d, %zu of %d values differ\n", name, ref_name,
            worst, differ, w * h * 3);
    stbi_image_free(px);
    kiln_tensor_release(ref);
    return worst;
}

/* ---- prompt pieces ------------------------------------------------------------------------ */

/* Loader, the fixture prompts, a 64 x 64 empty latent of batch `b`; ends with a comma. */
static const char *const BASE_NODES =
    "\"4\": {\"class_type\": \"CheckpointLoaderSimple\","
    " \"inputs\": {\"ckpt_name\": \"checkpoint.safetensors\"}},"
    "\"6\": {\"class_type\": \"CLIPTextEncode\", \"inputs\": {\"text\": \"a photo of a cat\","
    " \"clip\": [\"4\", 1]}},"
    "\"7\": {\"class_type\": \"CLIPTextEncode\", \"inputs\": {\"text\": \"\","
    " \"clip\": [\"4\", 1]}},"
    "\"5\": {\"class_type\": \"EmptyLatentImage\", \"inputs\": {\"width\": 64, \"height\": 64,"
    " \"batch_size\": %d}},";

/* Appends a KSampler node `id` on latent `from` (seed 42, cfg 7.5, fixture prompts). */
static void add_ksampler(char *buf, size_t size, const char *id, const char *sampler,
                         const char *scheduler, int steps, double denoise, int seed,
                         const char *from)
{
    size_t len = strlen(buf);
    snprintf(buf + len, size - len,
             "\"%s\": {\"class_type\": \"KSampler\", \"inputs\": {\"seed\": %d, \"steps\": %d,"
             " \"cfg\": 7.5, \"sampler_name\": \"%s\", \"scheduler\": \"%s\", \"denoise\": %g,"
             " \"model\": [\"4\", 0], \"positive\": [\"6\", 0], \"negative\": [\"7\", 0],"
             " \"latent_image\": [\"%s\", 0]}},",
             id, seed, steps, sampler, scheduler, denoise, from);
}

/* Appends any node: `inputs` is the JSON object body. */
static void add_node(char *buf, size_t size, const char *id, const char *cls,
                     const char *inputs)
{
    size_t len = strlen(buf);
    snprintf(buf + len, size - len, "\"%s\": {\"class_type\": \"%s\", \"inputs\": {%s}},", id,
             cls, inputs);
}

static void add_capture(char *buf, size_t size, const char *id, const char *from)
{
    char in[64];
    snprintf(in, sizeof in, "\"value\": [\"%s\", 0]", from);
    add_node(buf, size, id, "SdTestCapture", in);
}

/* Starts a prompt with the base nodes. */
static void begin(char *buf, size_t size, int batch)
{
    buf[0] = '{';
    snprintf(buf + 1, size - 1, BASE_NODES, batch);
}

/* Closes the prompt (replacing the trailing comma). */
static void end(char *buf)
{
    size_t len = strlen(buf);
    ASSERT(buf[len - 1] == ',');
    buf[len - 1] = '}';
}

/* ---- the fixture workflows ---------------------------------------------------------------- */

static void test_txt2img_workflow_matches_comfyui_pixels(void)
{
    const char *base = make_base("base", 1);
    kiln_engine_t *e = engine_at(base);
    static events_t ev;
    ASSERT_EQ_INT(run_file(e, FIXTURES "/workflow_api.json", &ev), 0);
    ASSERT_STR_CONTAINS(ev.text, "\"filename\":\"kiln_fixture_00001_.png\"");
    ASSERT_STR_CONTAINS(ev.text, "progress {\"value\":1,\"max\":6,");
    ASSERT_STR_CONTAINS(ev.text, "progress {\"value\":6,\"max\":6,");
    ASSERT_CMP_INT(png_diff(base, "kiln_fixture_00001_.png", "euler_normal_image_uint8"), <=, 1);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

static void test_hires_workflow_matches_comfyui_pixels(void)
{
    const char *base = make_base("base", 1);
    kiln_engine_t *e = engine_at(base);
    static events_t ev;
    ASSERT_EQ_INT(run_file(e, FIXTURES "/workflow_api_hires.json", &ev), 0);
    /* The second pass samples 4 steps of an 8-step schedule. */
    ASSERT_STR_CONTAINS(ev.text, "progress {\"value\":4,\"max\":4,");
    ASSERT_CMP_INT(png_diff(base, "kiln_fixture_hires_00001_.png", "hires_image_uint8"), <=, 1);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* ---- latents ------------------------------------------------------------------------------ */

static void test_sampler_latents_match_comfyui(void)
{
    kiln_engine_t *e = engine();
    static events_t ev;
    static char p[16384];
    begin(p, sizeof p, 1);
    add_ksampler(p, sizeof p, "10", "euler", "normal", 6, 1.0, 42, "5");
    add_ksampler(p, sizeof p, "11", "euler_ancestral", "normal", 6, 1.0, 42, "5");
    add_ksampler(p, sizeof p, "12", "dpmpp_2m", "karras", 6, 1.0, 42, "5");
    add_ksampler(p, sizeof p, "13", "ddim", "ddim_uniform", 6, 1.0, 42, "5");
    add_capture(p, sizeof p, "20", "10");
    add_capture(p, sizeof p, "21", "11");
    add_capture(p, sizeof p, "22", "12");
    add_capture(p, sizeof p, "23", "13");
    add_capture(p, sizeof p, "24", "6");
    add_capture(p, sizeof p, "25", "7");
    add_capture(p, sizeof p, "26", "5");
    end(p);
    ASSERT_EQ_INT(run(e, p, &ev), 0);
    compare("20", "samples.safetensors", "euler_normal_latent", 1e-3);
    compare("21", "samples.safetensors", "euler_ancestral_normal_latent", 1e-3);
    compare("22", "samples.safetensors", "dpmpp_2m_karras_latent", 1e-3);
    compare("23", "samples.safetensors", "ddim_ddim_uniform_latent", 1e-3);
    compare("24", "samples.safetensors", "positive_cond", 1e-4);
    compare("25", "samples.safetensors", "negative_cond", 1e-4);
    compare("26", "samples.safetensors", "empty_latent", 0);
    ASSERT_STR_EQ(captured("24")->type, "CONDITIONING");
    ASSERT_EQ_INT(captured("24")->n_entries, 1);
    ASSERT_STR_EQ(captured("20")->type, "LATENT");
    ASSERT_EQ_INT(captured("20")->has_mask, 0);
    /* ddim_uniform's 6 steps give 8 sigmas: 7 reported steps. */
    ASSERT_STR_CONTAINS(ev.text, "progress {\"value\":7,\"max\":7,");
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* The hires chain's intermediate latents: LatentUpscaleBy and the denoise 0.5 pass. */
static void test_hires_chain_latents(void)
{
    kiln_engine_t *e = engine();
    static events_t ev;
    static char p[16384];
    begin(p, sizeof p, 1);
    add_ksampler(p, sizeof p, "3", "euler", "normal", 6, 1.0, 42, "5");
    add_node(p, sizeof p, "10", "LatentUpscaleBy",
             "\"upscale_method\": \"nearest-exact\", \"scale_by\": 1.5, \"samples\": [\"3\", 0]");
    add_ksampler(p, sizeof p, "11", "euler", "normal", 4, 0.5, 43, "10");
    add_capture(p, sizeof p, "20", "10");
    add_capture(p, sizeof p, "21", "11");
    end(p);
    ASSERT_EQ_INT(run(e, p, &ev), 0);
    compare("20", "samples.safetensors", "hires_upscaled_latent", 1e-3);
    compare("21", "samples.safetensors", "hires_latent", 1e-3);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* KSamplerAdvanced over the whole schedule, and split in two halves (leftover noise, then
 * no added noise), both give KSampler's result. */
static void test_ksampler_advanced(void)
{
    kiln_engine_t *e = engine();
    static events_t ev;
    static char p[16384];
    const char *adv =
        "\"model\": [\"4\", 0], \"positive\": [\"6\", 0], \"negative\": [\"7\", 0],"
        " \"noise_seed\": 42, \"steps\": 6, \"cfg\": 7.5, \"sampler_name\": \"euler\","
        " \"scheduler\": \"normal\", ";
    char in[1024];
    begin(p, sizeof p, 1);
    snprintf(in, sizeof in, "%s \"add_noise\": \"enable\", \"start_at_step\": 0, "
             "\"end_at_step\": 10000, \"return_with_leftover_noise\": \"disable\", "
             "\"latent_image\": [\"5\", 0]", adv);
    add_node(p, sizeof p, "10", "KSamplerAdvanced", in);
    snprintf(in, sizeof in, "%s \"add_noise\": \"enable\", \"start_at_step\": 0, "
             "\"end_at_step\": 3, \"return_with_leftover_noise\": \"enable\", "
             "\"latent_image\": [\"5\", 0]", adv);
    add_node(p, sizeof p, "11", "KSamplerAdvanced", in);
    snprintf(in, sizeof in, "%s \"add_noise\": \"disable\", \"start_at_step\": 3, "
             "\"end_at_step\": 10000, \"return_with_leftover_noise\": \"disable\", "
             "\"latent_image\": [\"11\", 0]", adv);
    add_node(p, sizeof p, "12", "KSamplerAdvanced", in);
    /* Starting past the end samples nothing: the latent comes back unchanged. */
    snprintf(in, sizeof in, "%s \"add_noise\": \"enable\", \"start_at_step\": 6, "
             "\"end_at_step\": 10000, \"return_with_leftover_noise\": \"disable\", "
             "\"latent_image\": [\"11\", 0]", adv);
    add_node(p, sizeof p, "13", "KSamplerAdvanced", in);
    add_capture(p, sizeof p, "20", "10");
    add_capture(p, sizeof p, "21", "11");
    add_capture(p, sizeof p, "22", "12");
    add_capture(p, sizeof p, "23", "13");
    end(p);
    ASSERT_EQ_INT(run(e, p, &ev), 0);
    compare("20", "samples.safetensors", "euler_normal_latent", 1e-3);
    compare("22", "samples.safetensors", "euler_normal_latent", 1e-3);
    /* The half-way latent still holds noise of sigma 1.16: it is far from the result. */
    const capture_t *half = captured("21"), *none = captured("23");
    kiln_tensor_t *ref = fixture("samples.safetensors", "euler_normal_latent", KILN_DTYPE_F32);
    ASSERT(rel_err(half->data, kiln_tensor_data(ref), half->n) > 1e-2);
    kiln_tensor_release(ref);
    ASSERT_EQ_INT(rel_err(none->data, half->data, half->n) == 0.0, 1);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* A batch of two: item 0 draws the same noise as a batch of one (torch fills the uniforms
 * first), so it samples to the fixture latent; item 1 differs. */
static void test_batch_of_two(void)
{
    kiln_engine_t *e = engine();
    static events_t ev;
    static char p[16384];
    begin(p, sizeof p, 2);
    add_ksampler(p, sizeof p, "10", "euler", "normal", 6, 1.0, 42, "5");
    add_capture(p, sizeof p, "20", "10");
    end(p);
    ASSERT_EQ_INT(run(e, p, &ev), 0);
    const capture_t *c = captured("20");
    ASSERT_EQ_INT(c->dims[0], 2);
    kiln_tensor_t *ref = fixture("samples.safetensors", "euler_normal_latent", KILN_DTYPE_F32);
    size_t half = c->n / 2;
    double r0 = rel_err(c->data, kiln_tensor_data(ref), half);
    double r1 = rel_err(c->data + half, kiln_tensor_data(ref), half);
    fprintf(stderr, "  batch item 0 rel %.3g, item 1 rel %.3g\n", r0, r1);
    ASSERT(r0 <= 1e-3);
    ASSERT(r1 > 0.1);
    kiln_tensor_release(ref);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* SetLatentNoiseMask: a mask of ones regenerates everything (the plain result); a mask of
 * zeros keeps the input latent. */
static void test_noise_mask(void)
{
    int64_t shape[3] = {1, 64, 64};
    source_tensors[0] = kiln_tensor_new(KILN_DTYPE_F32, 3, shape);
    source_tensors[1] = kiln_tensor_new(KILN_DTYPE_F32, 3, shape);
    float *ones = kiln_tensor_data(source_tensors[1]);
    for (int i = 0; i < 64 * 64; i++)
        ones[i] = 1.0f;
    kiln_engine_t *e = engine();
    static events_t ev;
    static char p[16384];
    begin(p, sizeof p, 1);
    add_node(p, sizeof p, "30", "SdTestMask", "\"slot\": 0");
    add_node(p, sizeof p, "31", "SdTestMask", "\"slot\": 1");
    add_node(p, sizeof p, "32", "SetLatentNoiseMask",
             "\"samples\": [\"5\", 0], \"mask\": [\"31\", 0]");
    add_ksampler(p, sizeof p, "10", "euler", "normal", 6, 1.0, 42, "32");
    add_node(p, sizeof p, "33", "SetLatentNoiseMask",
             "\"samples\": [\"10\", 0], \"mask\": [\"30\", 0]");
    add_ksampler(p, sizeof p, "11", "euler", "normal", 4, 0.5, 43, "33");
    add_ksampler(p, sizeof p, "12", "ddim", "normal", 4, 0.5, 43, "33");
    add_capture(p, sizeof p, "20", "10");
    add_capture(p, sizeof p, "21", "11");
    add_capture(p, sizeof p, "22", "12");
    end(p);
    ASSERT_EQ_INT(run(e, p, &ev), 0);
    compare("20", "samples.safetensors", "euler_normal_latent", 1e-3);
    ASSERT_EQ_INT(captured("20")->has_mask, 1);
    const capture_t *in = captured("20"), *kept = captured("21"), *kept2 = captured("22");
    double r = rel_err(kept->data, in->data, in->n);
    double r2 = rel_err(kept2->data, in->data, in->n);
    fprintf(stderr, "  zero mask: output vs input rel %.3g (euler), %.3g (ddim)\n", r, r2);
    ASSERT(r <= 1e-5 && r2 <= 1e-5);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
    kiln_tensor_release(source_tensors[0]);
    kiln_tensor_release(source_tensors[1]);
}

/* VAEEncode on the fixture images (one cropped to multiples of 8). */
static void test_vae_encode_matches_comfyui(void)
{
    source_tensors[0] = fixture("vae.safetensors", "image_in", KILN_DTYPE_F32);
    source_tensors[1] = fixture("vae.safetensors", "crop_image_in", KILN_DTYPE_F32);
    kiln_engine_t *e = engine();
    static events_t ev;
    static char p[16384];
    begin(p, sizeof p, 1);
    add_node(p, sizeof p, "30", "SdTestImage", "\"slot\": 0");
    add_node(p, sizeof p, "31", "SdTestImage", "\"slot\": 1");
    add_node(p, sizeof p, "32", "VAEEncode", "\"pixels\": [\"30\", 0], \"vae\": [\"4\", 2]");
    add_node(p, sizeof p, "33", "VAEEncode", "\"pixels\": [\"31\", 0], \"vae\": [\"4\", 2]");
    add_capture(p, sizeof p, "20", "32");
    add_capture(p, sizeof p, "21", "33");
    end(p);
    ASSERT_EQ_INT(run(e, p, &ev), 0);
    compare("20", "vae.safetensors", "latent_out", 1e-4);
    compare("21", "vae.safetensors", "crop_latent_out", 1e-4);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
    kiln_tensor_release(source_tensors[0]);
    kiln_tensor_release(source_tensors[1]);
}

/* CLIPSetLastLayer(-2) and ConditioningCombine. */
static void test_clip_layer_and_combine(void)
{
    kiln_engine_t *e = engine();
    static events_t ev;
    static char p[16384];
    begin(p, sizeof p, 1);
    add_node(p, sizeof p, "30", "CLIPSetLastLayer",
             "\"clip\": [\"4\", 1], \"stop_at_clip_layer\": -2");
    add_node(p, sizeof p, "31", "CLIPTextEncode",
             "\"text\": \"a photo of a cat\", \"clip\": [\"30\", 0]");
    add_node(p, sizeof p, "32", "ConditioningCombine",
             "\"conditioning_1\": [\"31\", 0], \"conditioning_2\": [\"6\", 0]");
    add_capture(p, sizeof p, "20", "31");
    add_capture(p, sizeof p, "21", "32");
    add_capture(p, sizeof p, "22", "6");
    end(p);
    ASSERT_EQ_INT(run(e, p, &ev), 0);
    compare("20", "clip.safetensors", "p0_cond_lastlayer_m2", 1e-4);
    compare("22", "clip.safetensors", "p0_cond", 1e-4);
    const capture_t *c = captured("21");
    ASSERT_EQ_INT(c->n_entries, 2);
    ASSERT(c->entry_data[0] == captured("20")->entry_data[0]);
    ASSERT(c->entry_data[1] == captured("22")->entry_data[0]);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* A two-entry positive through KSampler: ComfyUI averages the entries' predictions, so two
 * copies of one conditioning give the single-entry result. A positive whose context is the
 * fixture's repeated twice (154 tokens) is batched with the 77-token negative by repeating
 * the shorter one to the LCM length, which leaves cross-attention unchanged. With cfg 1 the
 * negative is not evaluated at all. */
static void test_combined_and_long_conditioning(void)
{
    kiln_engine_t *e = engine();
    static events_t ev;
    static char p[16384];
    const char *ks = "\"seed\": 42, \"steps\": 6, \"sampler_name\": \"euler\","
                     " \"scheduler\": \"normal\", \"denoise\": 1.0, \"model\": [\"4\", 0],"
                     " \"latent_image\": [\"5\", 0], ";
    char in[1024];
    begin(p, sizeof p, 1);
    add_node(p, sizeof p, "30", "ConditioningCombine",
             "\"conditioning_1\": [\"6\", 0], \"conditioning_2\": [\"6\", 0]");
    add_node(p, sizeof p, "31", "SdTestRepeatCond", "\"conditioning\": [\"6\", 0]");
    add_node(p, sizeof p, "32", "CLIPTextEncode",
             "\"text\": \"a b c d e f g h i j k l m n o p q r s t u v w x y z a b c d e f g h i"
             " j k l m n o p q r s t u v w x y z a b c d e f g h i j k l m n o p q r s t u v"
             " w x y z\", \"clip\": [\"4\", 1]");
    snprintf(in, sizeof in, "%s \"cfg\": 7.5, \"positive\": [\"30\", 0], "
             "\"negative\": [\"7\", 0]", ks);
    add_node(p, sizeof p, "10", "KSampler", in);
    snprintf(in, sizeof in, "%s \"cfg\": 7.5, \"positive\": [\"31\", 0], "
             "\"negative\": [\"7\", 0]", ks);
    add_node(p, sizeof p, "11", "KSampler", in);
    snprintf(in, sizeof in, "%s \"cfg\": 1.0, \"positive\": [\"6\", 0], "
             "\"negative\": [\"32\", 0]", ks);
    add_node(p, sizeof p, "12", "KSampler", in);
    snprintf(in, sizeof in, "%s \"cfg\": 1.0, \"positive\": [\"6\", 0], "
             "\"negative\": [\"7\", 0]", ks);
    add_node(p, sizeof p, "13", "KSampler", in);
    add_capture(p, sizeof p, "20", "10");
    add_capture(p, sizeof p, "21", "11");
    add_capture(p, sizeof p, "22", "12");
    add_capture(p, sizeof p, "23", "13");
    add_capture(p, sizeof p, "24", "32");
    add_capture(p, sizeof p, "25", "31");
    end(p);
    ASSERT_EQ_INT(run(e, p, &ev), 0);
    ASSERT_EQ_INT(captured("24")->dims[1], 154);
    ASSERT_EQ_INT(captured("25")->dims[1], 154);
    compare("20", "samples.safetensors", "euler_normal_latent", 1e-3);
    compare("21", "samples.safetensors", "euler_normal_latent", 1e-3);
    const capture_t *a = captured("22"), *b = captured("23");
    ASSERT(rel_err(a->data, b->data, a->n) == 0.0);
    kiln_tensor_t *ref = fixture("samples.safetensors", "euler_normal_latent", KILN_DTYPE_F32);
    ASSERT(rel_err(a->data, kiln_tensor_data(ref), a->n) > 1e-3);
    kiln_tensor_release(ref);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* The upscalers on a sampled latent, checked against their definitions. */
static void test_latent_upscale_methods(void)
{
    kiln_engine_t *e = engine();
    static events_t ev;
    static char p[16384];
    begin(p, sizeof p, 1);
    add_ksampler(p, sizeof p, "3", "euler", "normal", 2, 1.0, 42, "5");
    add_node(p, sizeof p, "30", "LatentUpscaleBy", "\"samples\": [\"3\", 0],"
             " \"upscale_method\": \"area\", \"scale_by\": 0.5");
    add_node(p, sizeof p, "31", "LatentUpscaleBy", "\"samples\": [\"3\", 0],"
             " \"upscale_method\": \"bilinear\", \"scale_by\": 2.0");
    add_node(p, sizeof p, "32", "LatentUpscaleBy", "\"samples\": [\"3\", 0],"
             " \"upscale_method\": \"bicubic\", \"scale_by\": 1.0");
    add_node(p, sizeof p, "33", "LatentUpscale", "\"samples\": [\"3\", 0], \"upscale_method\":"
             " \"nearest-exact\", \"width\": 128, \"height\": 0, \"crop\": \"disabled\"");
    add_node(p, sizeof p, "34", "LatentUpscale", "\"samples\": [\"3\", 0], \"upscale_method\":"
             " \"nearest-exact\", \"width\": 128, \"height\": 64, \"crop\": \"center\"");
    for (int i = 0; i < 6; i++) {
        char id[8], from[8];
        snprintf(id, sizeof id, "2%d", i);
        snprintf(from, sizeof from, "%d", i == 5 ? 3 : 30 + i);
        add_capture(p, sizeof p, id, from);
    }
    end(p);
    ASSERT_EQ_INT(run(e, p, &ev), 0);
    const float *x = captured("25")->data;        /* [1, 4, 8, 8] */
    const capture_t *area = captured("20"), *bil = captured("21"), *bic = captured("22");
    ASSERT_EQ_INT(area->dims[2], 4);
    ASSERT_EQ_INT(area->dims[3], 4);
    for (int c = 0; c < 4; c++)
        for (int y = 0; y < 4; y++)
            for (int xx = 0; xx < 4; xx++) {
                const float *s = x + c * 64 + 2 * y * 8 + 2 * xx;
                float want = (s[0] + s[1] + s[8] + s[9]) / 2.0f / 2.0f;
                ASSERT_NEAR(area->data[c * 16 + y * 4 + xx], want, 1e-6 * fabsf(want));
            }
    /* Bilinear x2 (align_corners False): output 2i+1 sits at source i + 0.25. */
    ASSERT_EQ_INT(bil->dims[2], 16);
    for (int y = 0; y < 7; y++) {
        const float *s = x + y * 8 + 3;
        float top = 0.75f * s[0] + 0.25f * s[1], bottom = 0.75f * s[8] + 0.25f * s[9];
        float want = 0.75f * top + 0.25f * bottom;
        ASSERT_NEAR(bil->data[(2 * y + 1) * 16 + 7], want, 1e-5 * fabsf(want) + 1e-6);
    }
    /* Bicubic at scale 1 is the identity; nearest-exact 64 -> 128 px doubles each cell
     * (height 0 keeps the aspect ratio); a centre crop of a square to 2:1 keeps rows 2..5. */
    ASSERT(rel_err(bic->data, x, 256) == 0.0);
    const capture_t *ne = captured("23"), *cc = captured("24");
    ASSERT_EQ_INT(ne->dims[2], 16);
    ASSERT_EQ_INT(ne->dims[3], 16);
    ASSERT_NEAR(ne->data[16 * 5 + 9], x[8 * 2 + 4], 0);
    ASSERT_EQ_INT(cc->dims[2], 8);
    ASSERT_EQ_INT(cc->dims[3], 16);
    ASSERT_NEAR(cc->data[0], x[2 * 8], 0);
    ASSERT_NEAR(cc->data[16 * 7 + 15], x[5 * 8 + 7], 0);
    /* bislerp is refused with a clear message. */
    begin(p, sizeof p, 1);
    add_node(p, sizeof p, "30", "LatentUpscaleBy", "\"samples\": [\"5\", 0],"
             " \"upscale_method\": \"bislerp\", \"scale_by\": 2.0");
    add_capture(p, sizeof p, "20", "30");
    end(p);
    ASSERT_EQ_INT(run(e, p, &ev), KILN_ENODE);
    ASSERT_STR_CONTAINS(ev.text, "upscale_method 'bislerp' is not supported yet");
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* ---- cache, interrupt, errors ----------------------------------------------------------- */

/* Changing only the seed re-executes KSampler, VAEDecode and SaveImage. */
static void test_seed_change_reruns_only_sampler_chain(void)
{
    const char *base = make_base("base", 1);
    kiln_engine_t *e = engine_at(base);
    static events_t ev;
    size_t len = 0;
    char *json = kiln_test_read_file(FIXTURES "/workflow_api.json", &len);
    ASSERT(json);
    ASSERT_EQ_INT(run(e, json, &ev), 0);
    uint64_t executed = kiln_engine_stat(e, KILN_STAT_NODES_EXECUTED);
    uint64_t cached = kiln_engine_stat(e, KILN_STAT_NODES_CACHED);
    ASSERT_EQ_INT(executed, 7);
    char *seed = strstr(json, "\"seed\": 42");
    ASSERT(seed);
    seed[9] = '3';
    ASSERT_EQ_INT(run(e, json, &ev), 0);
    ASSERT_EQ_INT(kiln_engine_stat(e, KILN_STAT_NODES_EXECUTED) - executed, 3);
    ASSERT_EQ_INT(kiln_engine_stat(e, KILN_STAT_NODES_CACHED) - cached, 4);
    ASSERT_STR_CONTAINS(ev.text, "executing {\"node\":\"3\"");
    ASSERT(!strstr(ev.text, "executing {\"node\":\"4\""));
    ASSERT_STR_CONTAINS(ev.text, "\"filename\":\"kiln_fixture_00002_.png\"");
    /* The new seed gives other pixels. */
    ASSERT_CMP_INT(png_diff(base, "kiln_fixture_00002_.png", "euler_normal_image_uint8"), >, 1);
    free(json);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

static void test_interrupt_mid_sampling(void)
{
    const char *base = make_base("base", 1);
    kiln_engine_t *e = engine_at(base);
    static events_t ev;
    ev.interrupt_at = 2;
    ASSERT_EQ_INT(run_file(e, FIXTURES "/workflow_api.json", &ev), KILN_EINTERRUPTED);
    ASSERT_STR_CONTAINS(ev.text, "execution_interrupted {\"prompt_id\":\"p1\",\"node_id\":\"3\"");
    ASSERT_EQ_INT(ev.last_progress, 2);
    ASSERT(!strstr(ev.text, "executing {\"node\":\"8\""));
    char path[1200];
    snprintf(path, sizeof path, "%s/output/kiln_fixture_00001_.png", base);
    ASSERT(access(path, F_OK) != 0);
    /* The engine serves the next prompt; the loader's outputs were kept. */
    ev.interrupt_at = 0;
    ASSERT_EQ_INT(run_file(e, FIXTURES "/workflow_api.json", &ev), 0);
    ASSERT(!strstr(ev.text, "executing {\"node\":\"4\""));
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* Without the tokenizer files the loader fails naming the missing path. */
static void test_missing_tokenizer_is_a_clear_error(void)
{
    kiln_engine_t *e = engine_at(make_base("notok", 0));
    static events_t ev;
    ASSERT_EQ_INT(run_file(e, FIXTURES "/workflow_api.json", &ev), KILN_ENODE);
    ASSERT_STR_CONTAINS(ev.text, "execution_error");
    ASSERT_STR_CONTAINS(ev.text, "\"node_type\":\"CheckpointLoaderSimple\"");
    ASSERT_STR_CONTAINS(ev.text, "notok/models/tokenizers/clip/");
    ASSERT_STR_CONTAINS(ev.text, "notok/models/checkpoints/tokenizer/");
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
    /* A Hugging Face style tokenizer/ folder next to the checkpoint is found too. */
    const char *hf = make_base("hftok", 0);
    char dir[1200], file[1300];
    snprintf(dir, sizeof dir, "%s/models/checkpoints/tokenizer", hf);
    mkdir(dir, 0777);
    snprintf(file, sizeof file, "%s/vocab.json", dir);
    link_fixture(KILN_SHARED_DIR "/fixtures/clip-tokenizer/vocab.json", file);
    snprintf(file, sizeof file, "%s/merges.txt", dir);
    link_fixture(KILN_SHARED_DIR "/fixtures/clip-tokenizer/merges.txt", file);
    e = engine_at(hf);
    memset(&ev, 0, sizeof ev);
    ASSERT_EQ_INT(run_file(e, FIXTURES "/workflow_api.json", &ev), 0);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
    /* A safetensors file without a UNet: the loader names the part that is missing. */
    const char *base = make_base("notsd", 1);
    char path[1200];
    snprintf(path, sizeof path, "%s/models/checkpoints/vae_only.safetensors", base);
    link_fixture(FIXTURES "/vae.safetensors", path);
    e = engine_at(base);
    const char *prompt = "{\"4\": {\"class_type\": \"CheckpointLoaderSimple\","
                         " \"inputs\": {\"ckpt_name\": \"vae_only.safetensors\"}},"
                         " \"20\": {\"class_type\": \"SdTestCapture\","
                         " \"inputs\": {\"value\": [\"4\", 0]}}}";
    ASSERT_EQ_INT(run(e, prompt, &ev), KILN_ENODE);
    ASSERT_STR_CONTAINS(ev.text, "cannot load the UNet of ");
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* /object_info: names, widget options and the sampler/scheduler lists in ComfyUI's order. */
static void test_object_info(void)
{
    kiln_engine_t *e = engine();
    char *json = NULL;
    ASSERT_EQ_INT(kiln_engine_object_info(e, "KSampler", &json), 0);
    ASSERT_STR_CONTAINS(json, "\"seed\":[\"INT\",{\"default\":0,\"min\":0,"
                              "\"max\":18446744073709551615,\"control_after_generate\":true,");
    ASSERT_STR_CONTAINS(json, "\"cfg\":[\"FLOAT\",{\"default\":8.0,\"min\":0.0,\"max\":100.0,"
                              "\"step\":0.1,\"round\":0.01,");
    ASSERT_STR_CONTAINS(json, "\"sampler_name\":[[\"euler\",\"euler_ancestral\",\"heun\",");
    ASSERT_STR_CONTAINS(json, "\"ddpm\",\"lcm\",\"ddim\"]");
    ASSERT_STR_CONTAINS(json, "\"scheduler\":[[\"simple\",\"sgm_uniform\",\"karras\","
                              "\"exponential\",\"ddim_uniform\",\"beta\",\"normal\",");
    ASSERT_STR_CONTAINS(json, "\"input_order\":{\"required\":[\"model\",\"seed\",\"steps\","
                              "\"cfg\",\"sampler_name\",\"scheduler\",\"positive\","
                              "\"negative\",\"latent_image\",\"denoise\"]}");
    ASSERT_STR_CONTAINS(json, "\"category\":\"sampling\"");
    kiln_free(json);
    ASSERT_EQ_INT(kiln_engine_object_info(e, "KSamplerAdvanced", &json), 0);
    ASSERT_STR_CONTAINS(json, "\"required\":[\"model\",\"add_noise\",\"noise_seed\",\"steps\","
                              "\"cfg\",\"sampler_name\",\"scheduler\",\"positive\","
                              "\"negative\",\"latent_image\",\"start_at_step\","
                              "\"end_at_step\",\"return_with_leftover_noise\"]");
    ASSERT_STR_CONTAINS(json, "\"display_name\":\"KSampler (Advanced)\"");
    kiln_free(json);
    ASSERT_EQ_INT(kiln_engine_object_info(e, "CheckpointLoaderSimple", &json), 0);
    ASSERT_STR_CONTAINS(json, "\"ckpt_name\":[[\"checkpoint.safetensors\"]");
    ASSERT_STR_CONTAINS(json, "\"output\":[\"MODEL\",\"CLIP\",\"VAE\"]");
    ASSERT_STR_CONTAINS(json, "\"display_name\":\"Load Checkpoint\"");
    ASSERT_STR_CONTAINS(json, "\"category\":\"loaders\"");
    kiln_free(json);
    ASSERT_EQ_INT(kiln_engine_object_info(e, "CLIPTextEncode", &json), 0);
    ASSERT_STR_CONTAINS(json, "\"text\":[\"STRING\",{\"multiline\":true,\"dynamicPrompts\":true");
    kiln_free(json);
    ASSERT_EQ_INT(kiln_engine_object_info(e, "EmptyLatentImage", &json), 0);
    ASSERT_STR_CONTAINS(json, "\"width\":[\"INT\",{\"default\":512,\"min\":16,"
                              "\"max\":16384,\"step\":8,");
    kiln_free(json);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* s with every `from` replaced by `to` (malloc'd). */
static char *replace_all(const char *s, const char *from, const char *to)
{
    size_t n = 0, lf = strlen(from), lt = strlen(to);
    for (const char *p = strstr(s, from); p; p = strstr(p + lf, from))
        n++;
    char *out = malloc(strlen(s) + n * lt + 1), *o = out;
    for (const char *p; (p = strstr(s, from)); s = p + lf) {
        memcpy(o, s, (size_t)(p - s));
        o += p - s;
        memcpy(o, to, lt);
        o += lt;
    }
    strcpy(o, s);
    return out;
}

/* The example workflows convert and validate (with the fixture checkpoint standing in for
 * SD1.5 and a fixture PNG as the img2img input); the UI file is the txt2img graph. */
static void test_example_workflows_validate(void)
{
    const char *base = make_base("base", 1);
    char png[1200];
    snprintf(png, sizeof png, "%s/input", base);
    mkdir(png, 0777);
    snprintf(png, sizeof png, "%s/input/example.png", base);
    link_fixture(FIXTURES "/euler_normal.png", png);
    kiln_engine_t *e = engine_at(base);
    const char *files[] = {"sd15_txt2img_api.json", "sd15_hires_api.json",
                           "sd15_img2img_api.json", "sd15_txt2img_ui.json"};
    char *validated[4] = {0};
    for (int i = 0; i < 4; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/workflows/%s", KILN_SOURCE_DIR, files[i]);
        size_t len = 0;
        char *doc = kiln_test_read_file(path, &len), *api = NULL, *err = NULL;
        ASSERT(doc);
        if (kiln_engine_to_prompt(e, doc, len, &api, &err) != 0)
            kiln_test_fail(__FILE__, __LINE__, "%s: %s", files[i], err);
        char *fixed = replace_all(api, "v1-5-pruned-emaonly.safetensors",
                                  "checkpoint.safetensors");
        kiln_prompt_t *p = NULL;
        if (kiln_prompt_new(e, fixed, strlen(fixed), NULL, 0, &p, &err) != 0)
            kiln_test_fail(__FILE__, __LINE__, "%s: %s", files[i], err);
        kiln_free(err);
        ASSERT_EQ_INT(kiln_prompt_output_count(p), 1);
        validated[i] = strdup(kiln_prompt_json(p));
        kiln_prompt_free(p);
        free(fixed);
        kiln_free(api);
        free(doc);
    }
    ASSERT_STR_EQ(validated[3], validated[0]);
    for (int i = 0; i < 4; i++)
        free(validated[i]);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

KILN_TEST_MAIN(TEST_TIMEOUT(test_txt2img_workflow_matches_comfyui_pixels, 120),
               TEST_TIMEOUT(test_hires_workflow_matches_comfyui_pixels, 120),
               TEST_TIMEOUT(test_sampler_latents_match_comfyui, 120),
               TEST_TIMEOUT(test_hires_chain_latents, 120),
               TEST_TIMEOUT(test_ksampler_advanced, 120),
               TEST_TIMEOUT(test_batch_of_two, 120),
               TEST_TIMEOUT(test_noise_mask, 120),
               TEST_TIMEOUT(test_vae_encode_matches_comfyui, 120),
               TEST_TIMEOUT(test_clip_layer_and_combine, 120),
               TEST_TIMEOUT(test_combined_and_long_conditioning, 120),
               TEST_TIMEOUT(test_latent_upscale_methods, 120),
               TEST_TIMEOUT(test_seed_change_reruns_only_sampler_chain, 120),
               TEST_TIMEOUT(test_interrupt_mid_sampling, 120),
               TEST_TIMEOUT(test_missing_tokenizer_is_a_clear_error, 120),
               TEST_TIMEOUT(test_object_info, 60),
               TEST_TIMEOUT(test_example_workflows_validate, 60))
