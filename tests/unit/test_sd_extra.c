/* Tests of the sd pack's HiresFix, ConditioningZeroOut and VAEDecodeTiled nodes on the tiny
 * SD1.5 fixture model, and of tools/make_checkpoint: HiresFix equals the LatentUpscaleBy ->
 * KSampler chain bit for bit (the fixture hires workflow rewritten to use it reproduces
 * ComfyUI's PNG); VAEDecodeTiled equals VAEDecode when one tile covers the latent and
 * equals an independent transcription of ComfyUI's tiled_scale otherwise; the generated
 * tiny checkpoint has the fixture's keys and shapes and runs the demo workflow with the demo
 * tokenizer. A probe pack records the values that reach it. */
#include <errno.h>
#include <kiln/kiln.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json/json.h"
#include "runner.h"
#include "runtime/safetensors.h"

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
#define MAKE_CHECKPOINT KILN_BINARY_DIR "/make_checkpoint"

/* ---- the probe pack ----------------------------------------------------------------------- */

typedef struct capture {
    char id[16];
    char type[32];
    int ndim;
    int64_t dims[4];
    float *data;                /* LATENT samples, IMAGE, or the first CONDITIONING entry */
    size_t n;
    size_t n_entries;           /* CONDITIONING */
    double cond_absmax;         /* CONDITIONING: max |x| over every cond and pooled tensor */
    size_t n_pooled;            /* CONDITIONING: entries with a pooled_output */
    double strength;            /* CONDITIONING: the first entry's */
} capture_t;

static pthread_mutex_t cap_mu = PTHREAD_MUTEX_INITIALIZER;
static capture_t caps[32];
static int n_caps;

static void copy_tensor(capture_t *c, const kiln_tensor_t *t)
{
    c->ndim = kiln_tensor_ndim(t);
    for (int i = 0; i < c->ndim && i < 4; i++)
        c->dims[i] = kiln_tensor_dim(t, i);
    c->n = (size_t)kiln_tensor_numel(t);
    c->data = malloc(c->n * sizeof(float));
    memcpy(c->data, kiln_tensor_data(t), c->n * sizeof(float));
}

static double absmax(const kiln_tensor_t *t)
{
    const float *d = kiln_tensor_data(t);
    double m = 0;
    for (int64_t i = 0; i < kiln_tensor_numel(t); i++)
        m = fabs(d[i]) > m ? fabs(d[i]) : m;
    return m;
}

static void capture_cond(capture_t *c, const sd_cond_t *cond)
{
    c->n_entries = cond->n;
    for (size_t i = 0; i < cond->n; i++) {
        double m = absmax(cond->entries[i].cond);
        c->cond_absmax = m > c->cond_absmax ? m : c->cond_absmax;
        if (cond->entries[i].pooled) {
            c->n_pooled++;
            m = absmax(cond->entries[i].pooled);
            c->cond_absmax = m > c->cond_absmax ? m : c->cond_absmax;
        }
    }
    if (cond->n) {
        copy_tensor(c, cond->entries[0].cond);
        c->strength = cond->entries[0].strength;
    }
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
        kiln_tensor_t *t = kiln_value_get_tensor(v);
        if (l)
            copy_tensor(c, l->samples);
        else if (cond)
            capture_cond(c, cond);
        else if (t)
            copy_tensor(c, t);
    }
    pthread_mutex_unlock(&cap_mu);
    return 0;
}

static const kiln_input_def_t capture_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "value", .type = "*"}, {0}};
static const kiln_output_def_t no_outputs[] = {{0}};
static const kiln_node_def_t capture_def = {
    KILN_NODE_DEF_INIT, .name = "SdxCapture", .category = "testing", .inputs = capture_inputs,
    .outputs = no_outputs, .flags = KILN_NODE_OUTPUT, .execute = capture_execute};
static const kiln_node_def_t *const probe_nodes[] = {&capture_def, NULL};

static int probe_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    (void)api;
    out->name = "sdxprobe";
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

/* Asserts that two captures hold the same shape and the same bits. */
static void assert_identical(const char *a, const char *b)
{
    const capture_t *x = captured(a), *y = captured(b);
    ASSERT_EQ_INT(x->n, y->n);
    ASSERT_EQ_INT(x->ndim, y->ndim);
    for (int i = 0; i < x->ndim; i++)
        ASSERT_EQ_INT(x->dims[i], y->dims[i]);
    if (memcmp(x->data, y->data, x->n * sizeof(float)) != 0)
        kiln_test_fail(__FILE__, __LINE__, "captures %s and %s differ", a, b);
}

/* max |a - b| over n floats (NaN counts as infinitely far). */
static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= worst))
            worst = isnan(d) ? INFINITY : d;
    }
    return worst;
}

/* ---- engine helpers ----------------------------------------------------------------------- */

typedef struct events {
    char text[1 << 16];
    size_t len;
    kiln_engine_t *engine;
    const char *interrupt_type;     /* interrupt when this node type reports... */
    uint64_t interrupt_at;          /* ...this progress value */
    uint64_t last_progress;
} events_t;

static void on_event(void *ud, const kiln_event_t *ev)
{
    events_t *e = ud;
    int n = snprintf(e->text + e->len, sizeof e->text - e->len, "%s %s %s\n", ev->name,
                     ev->node_type ? ev->node_type : "-", ev->data_json);
    if (n > 0 && (size_t)n < sizeof e->text - e->len)
        e->len += (size_t)n;
    if (ev->type == KILN_EVENT_PROGRESS && e->interrupt_type &&
        strcmp(ev->node_type, e->interrupt_type) == 0) {
        e->last_progress = ev->value;
        if (ev->value == e->interrupt_at)
            kiln_engine_interrupt(e->engine);
    }
}

static void quiet(void *ud, kiln_log_level_t level, const char *msg)
{
    (void)ud, (void)level, (void)msg;
}

static void link_file(const char *target, const char *link)
{
    if (symlink(target, link) != 0 && errno != EEXIST)
        kiln_test_fail(__FILE__, __LINE__, "symlink %s: %s", link, strerror(errno));
}

static void make_dirs(const char *base)
{
    const char *dirs[] = {"", "/models", "/models/checkpoints", "/models/tokenizers",
                          "/models/tokenizers/clip"};
    char p[1200];
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s%s", base, dirs[i]);
        mkdir(p, 0777);
    }
}

/* A base directory under the tmpdir with the fixture checkpoint and the real tokenizer. */
static const char *fixture_base(void)
{
    static char base[1024];
    char p[1200];
    snprintf(base, sizeof base, "%s/base", kiln_test_tmpdir());
    make_dirs(base);
    snprintf(p, sizeof p, "%s/models/checkpoints/checkpoint.safetensors", base);
    link_file(FIXTURES "/checkpoint.safetensors", p);
    snprintf(p, sizeof p, "%s/models/tokenizers/clip/vocab.json", base);
    link_file(KILN_SHARED_DIR "/fixtures/clip-tokenizer/vocab.json", p);
    snprintf(p, sizeof p, "%s/models/tokenizers/clip/merges.txt", base);
    link_file(KILN_SHARED_DIR "/fixtures/clip-tokenizer/merges.txt", p);
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
    ASSERT_EQ_INT(kiln_engine_add_pack(e, "sdxprobe", probe_init), 0);
    return e;
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

/* ---- prompt pieces ------------------------------------------------------------------------ */

/* Starts a prompt: loader, the fixture prompts, an empty latent of w x h and batch b. */
static void begin(char *buf, size_t size, int w, int h, int b)
{
    snprintf(buf, size,
             "{\"4\": {\"class_type\": \"CheckpointLoaderSimple\","
             " \"inputs\": {\"ckpt_name\": \"checkpoint.safetensors\"}},"
             "\"6\": {\"class_type\": \"CLIPTextEncode\", \"inputs\": {\"text\":"
             " \"a photo of a cat\", \"clip\": [\"4\", 1]}},"
             "\"7\": {\"class_type\": \"CLIPTextEncode\", \"inputs\": {\"text\": \"\","
             " \"clip\": [\"4\", 1]}},"
             "\"5\": {\"class_type\": \"EmptyLatentImage\", \"inputs\": {\"width\": %d,"
             " \"height\": %d, \"batch_size\": %d}},", w, h, b);
}

/* Appends any node: `fmt` formats the inputs object's body. */
static void add_node(char *buf, size_t size, const char *id, const char *cls, const char *fmt,
                     ...) __attribute__((format(printf, 5, 6)));
static void add_node(char *buf, size_t size, const char *id, const char *cls, const char *fmt,
                     ...)
{
    char in[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(in, sizeof in, fmt, ap);
    va_end(ap);
    size_t len = strlen(buf);
    snprintf(buf + len, size - len, "\"%s\": {\"class_type\": \"%s\", \"inputs\": {%s}},", id,
             cls, in);
}

/* The model and prompt inputs shared by KSampler and HiresFix. */
#define MPN "\"model\": [\"4\", 0], \"positive\": [\"6\", 0], \"negative\": [\"7\", 0]"

static void add_ksampler(char *buf, size_t size, const char *id, const char *from, int seed,
                         int steps, const char *sampler, const char *sched, double denoise)
{
    add_node(buf, size, id, "KSampler",
             "\"seed\": %d, \"steps\": %d, \"cfg\": 7.5, \"sampler_name\": \"%s\","
             " \"scheduler\": \"%s\", \"denoise\": %g, " MPN ", \"latent_image\": [\"%s\", 0]",
             seed, steps, sampler, sched, denoise, from);
}

static void add_capture(char *buf, size_t size, const char *id, const char *from)
{
    add_node(buf, size, id, "SdxCapture", "\"value\": [\"%s\", 0]", from);
}

/* Closes the prompt (replacing the trailing comma). */
static void end(char *buf)
{
    size_t len = strlen(buf);
    ASSERT(buf[len - 1] == ',');
    buf[len - 1] = '}';
}

/* ---- HiresFix ------------------------------------------------------------------------------ */

/* The fixture's hires workflow with LatentUpscaleBy "10" -> KSampler "11" replaced by one
 * HiresFix "11" with their settings, and SdxCapture nodes cap_image on "8" and cap_latent on
 * "11" added; a new compact JSON text (free it). With hires 0 only the captures are added. */
static char *hires_workflow(int hires, const char *cap_image, const char *cap_latent)
{
    size_t len = 0;
    char *text = kiln_test_read_file(FIXTURES "/workflow_api_hires.json", &len), err[128];
    kiln__json_t *doc = NULL;
    ASSERT(text);
    ASSERT_EQ_INT(kiln__json_parse(text, len, &doc, err, sizeof err), 0);
    free(text);
    if (hires) {
        kiln__json_t *up = kiln__json_take(doc, "10");
        kiln__json_t *ks = kiln__json_get(doc, "11"), *ks_in = kiln__json_get(ks, "inputs");
        kiln__json_t *up_in = kiln__json_get(up, "inputs");
        ASSERT(up && ks_in && up_in);
        ASSERT_STR_EQ(kiln__json_get_string(up, "class_type", ""), "LatentUpscaleBy");
        kiln__json_set(ks, "class_type", kiln__json_new_string("HiresFix"));
        kiln__json_remove(ks_in, "latent_image");
        const char *moved[] = {"samples", "upscale_method", "scale_by"};
        for (int i = 0; i < 3; i++)
            kiln__json_set(ks_in, moved[i], kiln__json_take(up_in, moved[i]));
        kiln__json_free(up);
    }
    const char *caps_for[2][2] = {{cap_image, "8"}, {cap_latent, "11"}};
    for (int i = 0; i < 2; i++) {
        kiln__json_t *node = kiln__json_new_object(), *in = kiln__json_new_object();
        kiln__json_t *link = kiln__json_new_array();
        kiln__json_append(link, kiln__json_new_string(caps_for[i][1]));
        kiln__json_append(link, kiln__json_new_int(0));
        kiln__json_set(in, "value", link);
        kiln__json_set(node, "class_type", kiln__json_new_string("SdxCapture"));
        kiln__json_set(node, "inputs", in);
        kiln__json_set(doc, caps_for[i][0], node);
    }
    char *out = kiln__json_dump(doc, KILN_JSON_COMPACT, NULL);
    kiln__json_free(doc);
    ASSERT(out);
    return out;
}

/* Max |png - ref| over the pixels of output file `name` and fixture PNG `ref_name`. */
static int png_diff(const char *base, const char *name, const char *ref_name)
{
    char path[1200];
    int w, h, c, rw, rh, rc;
    snprintf(path, sizeof path, "%s/output/%s", base, name);
    uint8_t *px = stbi_load(path, &w, &h, &c, 3);
    uint8_t *ref = stbi_load(ref_name, &rw, &rh, &rc, 3);
    if (!px || !ref)
        kiln_test_fail(__FILE__, __LINE__, "cannot read %s or %s", path, ref_name);
    ASSERT_EQ_INT(w, rw);
    ASSERT_EQ_INT(h, rh);
    int worst = 0;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        int d = abs((int)px[i] - (int)ref[i]);
        worst = d > worst ? d : worst;
    }
    fprintf(stderr, "  %s vs %s: max |diff| %d\n", name, ref_name, worst);
    stbi_image_free(px);
    stbi_image_free(ref);
    return worst;
}

/* The fixture's hires workflow with HiresFix: the same latent and image as the chain, and
 * ComfyUI's PNG within 1. */
static void test_hires_fix_matches_fixture_chain(void)
{
    const char *base = fixture_base();
    kiln_engine_t *e = engine_at(base);
    static events_t ev;
    char *chain = hires_workflow(0, "20", "21"), *hires = hires_workflow(1, "22", "23");
    ASSERT(!strstr(hires, "LatentUpscaleBy"));
    ASSERT_EQ_INT(run(e, chain, &ev), 0);
    ASSERT_EQ_INT(run(e, hires, &ev), 0);
    ASSERT_STR_CONTAINS(ev.text, "executing HiresFix {\"node\":\"11\"");
    /* denoise 0.5 of 4 steps: the last 4 steps of an 8-step schedule, each reported. */
    ASSERT_STR_CONTAINS(ev.text, "progress HiresFix {\"value\":1,\"max\":4,");
    ASSERT_STR_CONTAINS(ev.text, "progress HiresFix {\"value\":4,\"max\":4,");
    assert_identical("21", "23");
    assert_identical("20", "22");
    ASSERT_EQ_INT(captured("23")->dims[2], 12);
    ASSERT_CMP_INT(png_diff(base, "kiln_fixture_hires_00002_.png", FIXTURES "/hires.png"), <=, 1);
    free(chain);
    free(hires);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* HiresFix against the explicit chain for other methods, samplers, schedulers and a batch
 * of two; denoise 0 gives the upscaled latent itself. */
static void test_hires_fix_equals_chain(void)
{
    kiln_engine_t *e = engine_at(fixture_base());
    static events_t ev;
    static char p[16384];
    struct {
        const char *method, *sampler, *sched;
        double scale, denoise;
        int steps;
    } cases[] = {{"bilinear", "euler_ancestral", "karras", 1.25, 0.6, 3},
                 {"bicubic", "dpmpp_2m", "exponential", 2.0, 0.4, 5},
                 {"area", "ddim", "ddim_uniform", 0.75, 1.0, 2},
                 {"nearest-exact", "euler", "normal", 1.5, 0.0, 3}};
    begin(p, sizeof p, 64, 64, 2);
    add_ksampler(p, sizeof p, "3", "5", 42, 3, "euler", "normal", 1.0);
    for (int i = 0; i < 4; i++) {
        char up[8], ks[8], hf[8], c1[8], c2[8], c3[8];
        snprintf(up, sizeof up, "%d", 10 + 3 * i);
        snprintf(ks, sizeof ks, "%d", 11 + 3 * i);
        snprintf(hf, sizeof hf, "%d", 12 + 3 * i);
        snprintf(c1, sizeof c1, "%d", 30 + 3 * i);
        snprintf(c2, sizeof c2, "%d", 31 + 3 * i);
        snprintf(c3, sizeof c3, "%d", 32 + 3 * i);
        add_node(p, sizeof p, up, "LatentUpscaleBy", "\"samples\": [\"3\", 0], "
                 "\"upscale_method\": \"%s\", \"scale_by\": %g", cases[i].method, cases[i].scale);
        add_ksampler(p, sizeof p, ks, up, 7 + i, cases[i].steps, cases[i].sampler,
                     cases[i].sched, cases[i].denoise);
        add_node(p, sizeof p, hf, "HiresFix", MPN ", \"samples\": [\"3\", 0], \"upscale_method\":"
                 " \"%s\", \"scale_by\": %g, \"seed\": %d, \"steps\": %d, \"cfg\": 7.5, "
                 "\"sampler_name\": \"%s\", \"scheduler\": \"%s\", \"denoise\": %g",
                 cases[i].method, cases[i].scale, 7 + i, cases[i].steps, cases[i].sampler,
                 cases[i].sched, cases[i].denoise);
        add_capture(p, sizeof p, c1, up);
        add_capture(p, sizeof p, c2, ks);
        add_capture(p, sizeof p, c3, hf);
    }
    end(p);
    ASSERT_EQ_INT(run(e, p, &ev), 0);
    for (int i = 0; i < 4; i++) {
        char c2[8], c3[8];
        snprintf(c2, sizeof c2, "%d", 31 + 3 * i);
        snprintf(c3, sizeof c3, "%d", 32 + 3 * i);
        assert_identical(c2, c3);
        ASSERT_EQ_INT(captured(c3)->dims[0], 2);
    }
    ASSERT_EQ_INT(captured("35")->dims[2], 16);    /* bicubic x2 of 8 */
    ASSERT_EQ_INT(captured("38")->dims[3], 6);     /* area x0.75 of 8 */
    /* Sampling changed the first three; denoise 0 returns the upscaled latent. */
    ASSERT(max_abs_diff(captured("32")->data, captured("30")->data, captured("32")->n) > 1e-3);
    assert_identical("41", "39");
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* An interrupt during HiresFix's sampling stops it between steps. */
static void test_hires_fix_interrupt(void)
{
    kiln_engine_t *e = engine_at(fixture_base());
    static events_t ev;
    ev.interrupt_type = "HiresFix";
    ev.interrupt_at = 2;
    char *hires = hires_workflow(1, "22", "23");
    ASSERT_EQ_INT(run(e, hires, &ev), KILN_EINTERRUPTED);
    ASSERT_STR_CONTAINS(ev.text, "execution_interrupted HiresFix {\"prompt_id\":\"p1\","
                                 "\"node_id\":\"11\"");
    ASSERT_EQ_INT(ev.last_progress, 2);
    ASSERT(!strstr(ev.text, "executing VAEDecode"));
    free(hires);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* /object_info of the three nodes: widgets, defaults, order, categories. */
static void test_object_info(void)
{
    kiln_engine_t *e = engine_at(fixture_base());
    char *json = NULL;
    ASSERT_EQ_INT(kiln_engine_object_info(e, "HiresFix", &json), 0);
    ASSERT_STR_CONTAINS(json, "\"required\":[\"model\",\"positive\",\"negative\",\"samples\","
                              "\"upscale_method\",\"scale_by\",\"seed\",\"steps\",\"cfg\","
                              "\"sampler_name\",\"scheduler\",\"denoise\"]");
    ASSERT_STR_CONTAINS(json, "\"upscale_method\":[[\"nearest-exact\",\"bilinear\",\"area\","
                              "\"bicubic\"]");
    ASSERT_STR_CONTAINS(json, "\"scale_by\":[\"FLOAT\",{\"default\":1.5,\"min\":0.01,"
                              "\"max\":8.0,\"step\":0.01");
    ASSERT_STR_CONTAINS(json, "\"seed\":[\"INT\",{\"default\":0,\"min\":0,"
                              "\"max\":18446744073709551615,\"control_after_generate\":true");
    ASSERT_STR_CONTAINS(json, "\"steps\":[\"INT\",{\"default\":14,\"min\":1,\"max\":10000");
    ASSERT_STR_CONTAINS(json, "\"cfg\":[\"FLOAT\",{\"default\":8.0,\"min\":0.0,\"max\":100.0,"
                              "\"step\":0.1,\"round\":0.01");
    ASSERT_STR_CONTAINS(json, "\"denoise\":[\"FLOAT\",{\"default\":0.5,\"min\":0.0,"
                              "\"max\":1.0,\"step\":0.01");
    ASSERT_STR_CONTAINS(json, "\"output\":[\"LATENT\"]");
    ASSERT_STR_CONTAINS(json, "\"category\":\"sampling\"");
    kiln_free(json);
    ASSERT_EQ_INT(kiln_engine_object_info(e, "VAEDecodeTiled", &json), 0);
    ASSERT_STR_CONTAINS(json, "\"required\":[\"samples\",\"vae\",\"tile_size\",\"overlap\","
                              "\"temporal_size\",\"temporal_overlap\"]");
    ASSERT_STR_CONTAINS(json, "\"tile_size\":[\"INT\",{\"default\":512,\"min\":64,"
                              "\"max\":4096,\"step\":32");
    ASSERT_STR_CONTAINS(json, "\"overlap\":[\"INT\",{\"default\":64,\"min\":0,\"max\":4096,"
                              "\"step\":32");
    ASSERT_STR_CONTAINS(json, "\"temporal_size\":[\"INT\",{\"default\":64,\"min\":8,"
                              "\"max\":4096,\"step\":4");
    ASSERT_STR_CONTAINS(json, "\"temporal_overlap\":[\"INT\",{\"default\":8,\"min\":4,"
                              "\"max\":4096,\"step\":4");
    ASSERT_STR_CONTAINS(json, "\"display_name\":\"VAE Decode (Tiled)\"");
    ASSERT_STR_CONTAINS(json, "\"category\":\"_for_testing\"");
    kiln_free(json);
    ASSERT_EQ_INT(kiln_engine_object_info(e, "ConditioningZeroOut", &json), 0);
    ASSERT_STR_CONTAINS(json, "\"required\":[\"conditioning\"]");
    ASSERT_STR_CONTAINS(json, "\"output\":[\"CONDITIONING\"]");
    ASSERT_STR_CONTAINS(json, "\"category\":\"advanced/conditioning\"");
    kiln_free(json);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* ---- ConditioningZeroOut ---------------------------------------------------------------- */

static void test_conditioning_zero_out(void)
{
    kiln_engine_t *e = engine_at(fixture_base());
    static events_t ev;
    static char p[16384];
    begin(p, sizeof p, 64, 64, 1);
    add_node(p, sizeof p, "10", "ConditioningZeroOut", "\"conditioning\": [\"6\", 0]");
    add_node(p, sizeof p, "11", "ConditioningCombine",
             "\"conditioning_1\": [\"6\", 0], \"conditioning_2\": [\"7\", 0]");
    add_node(p, sizeof p, "12", "ConditioningZeroOut", "\"conditioning\": [\"11\", 0]");
    /* A zeroed negative is a common SD3/Flux-style pattern: sampling must run with it. */
    add_node(p, sizeof p, "13", "KSampler", "\"seed\": 42, \"steps\": 3, \"cfg\": 7.5, "
             "\"sampler_name\": \"euler\", \"scheduler\": \"normal\", \"denoise\": 1.0, "
             "\"model\": [\"4\", 0], \"positive\": [\"6\", 0], \"negative\": [\"10\", 0], "
             "\"latent_image\": [\"5\", 0]");
    add_ksampler(p, sizeof p, "14", "5", 42, 3, "euler", "normal", 1.0);
    add_capture(p, sizeof p, "20", "10");
    add_capture(p, sizeof p, "21", "12");
    add_capture(p, sizeof p, "22", "6");
    add_capture(p, sizeof p, "23", "13");
    add_capture(p, sizeof p, "24", "14");
    end(p);
    ASSERT_EQ_INT(run(e, p, &ev), 0);
    const capture_t *z = captured("20"), *zc = captured("21"), *orig = captured("22");
    ASSERT_STR_EQ(z->type, "CONDITIONING");
    ASSERT_EQ_INT(z->n_entries, 1);
    ASSERT_EQ_INT(z->n_pooled, 1);
    ASSERT_EQ_INT(z->ndim, 3);
    ASSERT_EQ_INT(z->dims[1], 77);
    ASSERT_EQ_INT(z->dims[2], 32);
    ASSERT(z->cond_absmax == 0.0);
    ASSERT(z->strength == 1.0);
    ASSERT_EQ_INT(zc->n_entries, 2);
    ASSERT_EQ_INT(zc->n_pooled, 2);
    ASSERT(zc->cond_absmax == 0.0);
    ASSERT(orig->cond_absmax > 0.5);    /* the input is left as it was */
    const capture_t *a = captured("23"), *b = captured("24");
    double d = max_abs_diff(a->data, b->data, a->n);
    ASSERT(isfinite(d) && d > 1e-3);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* ---- VAEDecodeTiled ------------------------------------------------------------------------ */

static void add_tiled(char *buf, size_t size, const char *id, const char *from, int tile,
                      int overlap)
{
    add_node(buf, size, id, "VAEDecodeTiled", "\"samples\": [\"%s\", 0], \"vae\": [\"4\", 2], "
             "\"tile_size\": %d, \"overlap\": %d, \"temporal_size\": 64, "
             "\"temporal_overlap\": 8", from, tile, overlap);
}

/* When one tile covers the latent in all three passes the result is VAEDecode's, bit for
 * bit, for every sample of a batch. */
static void test_tiled_single_tile_equals_decode(void)
{
    kiln_engine_t *e = engine_at(fixture_base());
    static events_t ev;
    static char p[16384];
    begin(p, sizeof p, 64, 64, 2);
    add_ksampler(p, sizeof p, "3", "5", 42, 3, "euler", "normal", 1.0);
    add_node(p, sizeof p, "8", "VAEDecode", "\"samples\": [\"3\", 0], \"vae\": [\"4\", 2]");
    add_tiled(p, sizeof p, "9", "3", 512, 64);
    add_node(p, sizeof p, "15", "EmptyLatentImage", "\"width\": 128, \"height\": 128, "
             "\"batch_size\": 1");
    add_ksampler(p, sizeof p, "13", "15", 5, 2, "euler", "normal", 1.0);
    add_node(p, sizeof p, "18", "VAEDecode", "\"samples\": [\"13\", 0], \"vae\": [\"4\", 2]");
    add_tiled(p, sizeof p, "19", "13", 256, 32);   /* passes of 32x8, 8x32 and 16x16 cells */
    add_capture(p, sizeof p, "20", "8");
    add_capture(p, sizeof p, "21", "9");
    add_capture(p, sizeof p, "22", "18");
    add_capture(p, sizeof p, "23", "19");
    end(p);
    ASSERT_EQ_INT(run(e, p, &ev), 0);
    ASSERT_STR_EQ(captured("21")->type, "IMAGE");
    ASSERT_EQ_INT(captured("21")->dims[0], 2);
    ASSERT_EQ_INT(captured("21")->dims[3], 3);
    assert_identical("20", "21");
    assert_identical("22", "23");
    ASSERT_EQ_INT(captured("23")->dims[1], 128);
    /* Progress counts the tiles of the three passes: 2 samples x 3 single tiles. */
    ASSERT_STR_CONTAINS(ev.text, "progress VAEDecodeTiled {\"value\":6,\"max\":6,");
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* ComfyUI's comfy.utils.tiled_scale_multidim transcribed the way torch runs it, for one
 * latent [1, C, h, w] and tiles of th x tw cells overlapping by ov: a ones mask per tile
 * narrowed and multiplied in place row by row, out += tile * mask, out_div += mask (both
 * with three channels), then out / out_div. A new [3, H, W] array. */
static float *ref_tiled_scale(const sd_vae_t *vae, const kiln_tensor_t *z, int64_t th,
                              int64_t tw, int64_t ov)
{
    int64_t h = kiln_tensor_dim(z, 2), w = kiln_tensor_dim(z, 3), f = 8, H = h * f, W = w * f;
    if (h <= th && w <= tw) {
        /* The whole input fits one tile: function(s) as it is. */
        kiln_tensor_t *ps = NULL;
        ASSERT_EQ_INT(sd_vae_decode_raw(vae, NULL, z, &ps), 0);
        float *r = malloc((size_t)(3 * H * W) * sizeof(float));
        memcpy(r, kiln_tensor_data(ps), (size_t)(3 * H * W) * sizeof(float));
        kiln_tensor_release(ps);
        return r;
    }
    float *out = calloc((size_t)(3 * H * W), sizeof(float));
    float *div = calloc((size_t)(3 * H * W), sizeof(float));
    int64_t tile[2] = {th, tw}, size[2] = {h, w}, pos[2][256], np[2];
    for (int d = 0; d < 2; d++) {
        np[d] = 0;
        if (size[d] <= tile[d])
            pos[d][np[d]++] = 0;
        else
            for (int64_t s = 0; s < size[d] - ov; s += tile[d] - ov)
                pos[d][np[d]++] = s;
    }
    for (int64_t iy = 0; iy < np[0]; iy++) {
        for (int64_t ix = 0; ix < np[1]; ix++) {
            int64_t start[2], len[2];
            for (int d = 0; d < 2; d++) {
                int64_t it = d ? pos[1][ix] : pos[0][iy];
                start[d] = it < size[d] - ov ? it : size[d] - ov;
                start[d] = start[d] > 0 ? start[d] : 0;
                len[d] = tile[d] < size[d] - start[d] ? tile[d] : size[d] - start[d];
            }
            kiln_tensor_t *a = NULL, *b = NULL, *ps = NULL;
            ASSERT_EQ_INT(kiln_tensor_slice(z, 2, start[0], len[0], &a), 0);
            ASSERT_EQ_INT(kiln_tensor_slice(a, 3, start[1], len[1], &b), 0);
            ASSERT_EQ_INT(sd_vae_decode_raw(vae, NULL, b, &ps), 0);
            int64_t PH = len[0] * f, PW = len[1] * f, feather = ov * f;
            float *mask = malloc((size_t)(3 * PH * PW) * sizeof(float));
            for (int64_t i = 0; i < 3 * PH * PW; i++)
                mask[i] = 1.0f;
            for (int d = 0; d < 2; d++) {
                int64_t L = d ? PW : PH;
                for (int64_t t = 0; feather < L && t < feather; t++) {
                    float a_t = (float)((double)(t + 1) / (double)feather);
                    int64_t rows[2] = {t, L - 1 - t};
                    for (int k = 0; k < 2; k++)
                        for (int64_t c = 0; c < 3; c++)
                            for (int64_t o = 0; o < (d ? PH : PW); o++) {
                                int64_t y = d ? o : rows[k], x = d ? rows[k] : o;
                                mask[(c * PH + y) * PW + x] *= a_t;
                            }
                }
            }
            const float *src = kiln_tensor_data(ps);
            for (int64_t c = 0; c < 3; c++)
                for (int64_t y = 0; y < PH; y++)
                    for (int64_t x = 0; x < PW; x++) {
                        size_t o = (size_t)((c * H + start[0] * f + y) * W + start[1] * f + x);
                        float m = mask[(c * PH + y) * PW + x];
                        out[o] += src[(c * PH + y) * PW + x] * m;
                        div[o] += m;
                    }
            free(mask);
            kiln_tensor_release(a);
            kiln_tensor_release(b);
            kiln_tensor_release(ps);
        }
    }
    for (int64_t i = 0; i < 3 * H * W; i++)
        out[i] = out[i] / div[i];
    free(div);
    return out;
}

/* VAE.decode_tiled_ and VAEDecodeTiled's finish for one latent capture: the three passes
 * (each a plain decode when one tile covers it, as tiled_scale does), (A + B + C) / 3.0,
 * clamp((x + 1) / 2) as NHWC. A new [H, W, 3] array. */
static float *ref_decode_tiled(const sd_vae_t *vae, const capture_t *lat, int tile_size,
                               int overlap)
{
    if (tile_size < overlap * 4)
        overlap = tile_size / 4;
    int64_t t = tile_size / 8, ov = overlap / 8, h = lat->dims[2], w = lat->dims[3];
    int64_t shapes[3][2] = {{t * 2, t / 2}, {t / 2, t * 2}, {t, t}}, H = h * 8, W = w * 8;
    kiln_tensor_t *z = kiln_tensor_new(KILN_DTYPE_F32, 4, lat->dims);
    memcpy(kiln_tensor_data(z), lat->data, lat->n * sizeof(float));
    float *acc = NULL;
    for (int k = 0; k < 3; k++) {
        float *r = ref_tiled_scale(vae, z, shapes[k][0], shapes[k][1], ov);
        if (!acc) {
            acc = r;
            continue;
        }
        for (int64_t i = 0; i < 3 * H * W; i++)
            acc[i] = acc[i] + r[i];
        free(r);
    }
    float *img = malloc((size_t)(3 * H * W) * sizeof(float));
    for (int64_t c = 0; c < 3; c++)
        for (int64_t i = 0; i < H * W; i++) {
            float v = ((acc[c * H * W + i] / 3.0f) + 1.0f) / 2.0f;
            img[i * 3 + c] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        }
    free(acc);
    kiln_tensor_release(z);
    return img;
}

static sd_vae_t *fixture_vae(kiln_weights_t **w)
{
    char err[256] = "";
    sd_vae_t *vae = NULL;
    ASSERT_EQ_INT(kiln_weights_open(FIXTURES "/checkpoint.safetensors", w, err, sizeof err), 0);
    if (sd_vae_load(*w, "first_stage_model.", &vae, err, sizeof err) != 0)
        kiln_test_fail(__FILE__, __LINE__, "sd_vae_load: %s", err);
    return vae;
}

/* Several tiles: equal to the transcription of ComfyUI's algorithm, and close to VAEDecode
 * (the tiny random VAE sees less context per tile, so the seams are visible but bounded). */
static void test_tiled_blending_matches_comfyui(void)
{
    kiln_engine_t *e = engine_at(fixture_base());
    static events_t ev;
    static char p[16384];
    begin(p, sizeof p, 128, 128, 1);
    add_ksampler(p, sizeof p, "3", "5", 42, 3, "euler", "normal", 1.0);
    add_node(p, sizeof p, "8", "VAEDecode", "\"samples\": [\"3\", 0], \"vae\": [\"4\", 2]");
    add_tiled(p, sizeof p, "9", "3", 64, 16);
    add_node(p, sizeof p, "15", "EmptyLatentImage", "\"width\": 64, \"height\": 64, "
             "\"batch_size\": 1");
    add_ksampler(p, sizeof p, "13", "15", 42, 3, "euler", "normal", 1.0);
    add_node(p, sizeof p, "18", "VAEDecode", "\"samples\": [\"13\", 0], \"vae\": [\"4\", 2]");
    add_tiled(p, sizeof p, "19", "13", 64, 16);   /* the (8 x 8) pass is a single tile */
    add_tiled(p, sizeof p, "10", "13", 64, 64);   /* overlap > tile / 4: becomes 16 */
    add_tiled(p, sizeof p, "11", "13", 96, 0);    /* no overlap, no feathering */
    add_capture(p, sizeof p, "20", "3");
    add_capture(p, sizeof p, "21", "8");
    add_capture(p, sizeof p, "22", "9");
    add_capture(p, sizeof p, "25", "13");
    add_capture(p, sizeof p, "26", "19");
    add_capture(p, sizeof p, "23", "10");
    add_capture(p, sizeof p, "24", "11");
    add_capture(p, sizeof p, "27", "18");
    end(p);
    ASSERT_EQ_INT(run(e, p, &ev), 0);
    /* 16 x 16 cells, tile 8, overlap 2: 1 x 7 + 7 x 1 + 3 x 3 tiles. */
    ASSERT_STR_CONTAINS(ev.text, "progress VAEDecodeTiled {\"value\":23,\"max\":23,");
    assert_identical("26", "23");
    kiln_weights_t *w = NULL;
    sd_vae_t *vae = fixture_vae(&w);
    struct {
        const char *lat, *img;
        int tile, overlap;
    } checks[] = {{"20", "22", 64, 16}, {"25", "26", 64, 16}, {"25", "24", 96, 0}};
    for (int i = 0; i < 3; i++) {
        const capture_t *img = captured(checks[i].img);
        float *ref = ref_decode_tiled(vae, captured(checks[i].lat), checks[i].tile,
                                      checks[i].overlap);
        double d = max_abs_diff(img->data, ref, img->n);
        fprintf(stderr, "  tiled %s vs ComfyUI's algorithm: max |diff| %g\n", checks[i].img, d);
        ASSERT(d == 0.0);
        free(ref);
    }
    /* Against the untiled decode (images in 0..1). */
    const capture_t *full = captured("21"), *tiled = captured("22"), *full8 = captured("27");
    double d16 = max_abs_diff(tiled->data, full->data, full->n), mean = 0;
    double d0 = max_abs_diff(captured("24")->data, full8->data, full8->n);
    for (size_t i = 0; i < full->n; i++)
        mean += fabs((double)tiled->data[i] - full->data[i]) / (double)full->n;
    fprintf(stderr, "  tiled vs VAEDecode: max |diff| %.4f (mean %.4f) with 16 px overlap, "
            "%.4f without\n", d16, mean, d0);
    ASSERT(d16 > 0.0 && d16 <= 0.25 && mean <= 0.04);
    ASSERT(d0 > 0.0 && d0 <= 0.4);
    sd_vae_free(vae);
    kiln_weights_close(w);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* ---- tools/make_checkpoint ---------------------------------------------------------------- */

/* Runs make_checkpoint with args; its exit status. */
static int make_checkpoint(const char *args)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' %s >/dev/null", MAKE_CHECKPOINT, args);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static kiln__safetensors_t *open_st(const char *path)
{
    kiln__safetensors_t *f = NULL;
    char err[256] = "";
    if (kiln__safetensors_open(path, &f, err, sizeof err) != 0)
        kiln_test_fail(__FILE__, __LINE__, "%s", err);
    return f;
}

/* --tiny writes the fixture's keys with the fixture's shapes (f32 and f16), reproducibly
 * from a seed, with the metadata the loader reads the CLIP head count from; --sd15 lists
 * SD1.5's 1131 tensors and 1.066 G parameters. */
static void test_make_checkpoint_layout(void)
{
    char f32[1024], f16[1024], again[1024], other[1024], cmd[2048];
    snprintf(f32, sizeof f32, "%s/ck/tiny32.safetensors", kiln_test_tmpdir());
    snprintf(f16, sizeof f16, "%s/ck/tiny16.safetensors", kiln_test_tmpdir());
    snprintf(again, sizeof again, "%s/ck/again.safetensors", kiln_test_tmpdir());
    snprintf(other, sizeof other, "%s/ck/other.safetensors", kiln_test_tmpdir());
    snprintf(cmd, sizeof cmd, "--tiny --seed 5 -o '%s'", f32);
    ASSERT_EQ_INT(make_checkpoint(cmd), 0);
    snprintf(cmd, sizeof cmd, "--tiny --seed 5 --dtype f16 -o '%s'", f16);
    ASSERT_EQ_INT(make_checkpoint(cmd), 0);
    snprintf(cmd, sizeof cmd, "--tiny --seed 5 -o '%s'", again);
    ASSERT_EQ_INT(make_checkpoint(cmd), 0);
    snprintf(cmd, sizeof cmd, "--tiny --seed 6 -o '%s'", other);
    ASSERT_EQ_INT(make_checkpoint(cmd), 0);
    ASSERT_EQ_INT(make_checkpoint("--tiny --unet-ch 48 -o /dev/null"), 2);  /* 48 % 32 */
    ASSERT_EQ_INT(make_checkpoint("--bogus"), 2);
    kiln__safetensors_t *ref = open_st(FIXTURES "/checkpoint.safetensors");
    kiln__safetensors_t *a = open_st(f32), *b = open_st(f16), *c = open_st(again);
    kiln__safetensors_t *d = open_st(other);
    ASSERT_EQ_INT(kiln__safetensors_count(a), kiln__safetensors_count(ref));
    ASSERT_EQ_INT(kiln__safetensors_count(b), 965);
    for (size_t i = 0; i < kiln__safetensors_count(ref); i++) {
        const kiln__safetensors_info_t *r = kiln__safetensors_info_at(ref, i);
        const kiln__safetensors_info_t *x = kiln__safetensors_find(a, r->name);
        const kiln__safetensors_info_t *y = kiln__safetensors_find(b, r->name);
        if (!x || !y)
            kiln_test_fail(__FILE__, __LINE__, "%s is missing", r->name);
        ASSERT_EQ_INT(x->ndim, r->ndim);
        for (int k = 0; k < r->ndim; k++)
            ASSERT_EQ_INT(x->shape[k], r->shape[k]);
        ASSERT_EQ_INT(x->dtype, r->dtype);
        ASSERT_EQ_INT(y->dtype, r->dtype == KILN_DTYPE_I64 ? KILN_DTYPE_I64 : KILN_DTYPE_F16);
    }
    ASSERT_STR_CONTAINS(kiln__safetensors_metadata(a, "kiln_clip"), "\"num_attention_heads\": 4");
    ASSERT_STR_EQ(kiln__safetensors_metadata(a, "format"), "pt");
    /* Same seed, same bytes; another seed, other weights; f16 is f32 rounded. */
    const char *name = "model.diffusion_model.input_blocks.1.1.proj_in.weight";
    kiln_tensor_t *ta = NULL, *tb = NULL, *tc = NULL, *td = NULL;
    ASSERT_EQ_INT(kiln__safetensors_tensor_as(a, name, KILN_DTYPE_F32, &ta, NULL, 0), 0);
    ASSERT_EQ_INT(kiln__safetensors_tensor_as(b, name, KILN_DTYPE_F32, &tb, NULL, 0), 0);
    ASSERT_EQ_INT(kiln__safetensors_tensor_as(c, name, KILN_DTYPE_F32, &tc, NULL, 0), 0);
    ASSERT_EQ_INT(kiln__safetensors_tensor_as(d, name, KILN_DTYPE_F32, &td, NULL, 0), 0);
    size_t n = (size_t)kiln_tensor_numel(ta);
    const float *va = kiln_tensor_data(ta);
    ASSERT(memcmp(va, kiln_tensor_data(tc), n * sizeof(float)) == 0);
    ASSERT(max_abs_diff(va, kiln_tensor_data(td), n) > 0.01);
    ASSERT(max_abs_diff(va, kiln_tensor_data(tb), n) <= 1e-3 * (1.0 / sqrt(32.0)));
    /* proj_in is a 1x1 conv with fan-in 32: PyTorch's bound 1/sqrt(32). */
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabs(va[i]) > m ? fabs(va[i]) : m;
    ASSERT(m > 0.9 / sqrt(32.0) && m <= 1.0 / sqrt(32.0));
    kiln_tensor_t *tensors[] = {ta, tb, tc, td};
    kiln__safetensors_t *files[] = {ref, a, b, c, d};
    for (int i = 0; i < 4; i++)
        kiln_tensor_release(tensors[i]);
    for (int i = 0; i < 5; i++)
        kiln__safetensors_close(files[i]);
    /* The full-size layout, without writing 4 GB. */
    snprintf(cmd, sizeof cmd, "'%s' --sd15 --list", MAKE_CHECKPOINT);
    FILE *pipe = popen(cmd, "r");
    ASSERT(pipe);
    char line[512];
    int lines = 0, found = 0;
    const char *expect[] = {
        "model.diffusion_model.input_blocks.7.0.skip_connection.weight F32 [1280, 640, 1, 1]",
        "model.diffusion_model.output_blocks.2.1.conv.weight F32 [1280, 1280, 3, 3]",
        "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight F32 "
        "[1280, 768]",
        "first_stage_model.decoder.up.0.block.0.nin_shortcut.weight F32 [128, 256, 1, 1]",
        "cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc1.weight F32 "
        "[3072, 768]",
        "1131 tensors, 1066235384 parameters (UNet 859520964, VAE 83653863, CLIP 123060557)"};
    while (fgets(line, sizeof line, pipe)) {
        lines++;
        for (int i = 0; i < 6; i++)
            found += strncmp(line, expect[i], strlen(expect[i])) == 0;
    }
    ASSERT_EQ_INT(pclose(pipe), 0);
    ASSERT_EQ_INT(lines, 1132);
    ASSERT_EQ_INT(found, 6);
}

/* The demo tokenizer: one token per byte, the real CLIP ids for those symbols. */
static void check_demo_tokenizer(const char *dir)
{
    char vocab[1300], merges[1300], err[256] = "";
    snprintf(vocab, sizeof vocab, "%s/vocab.json", dir);
    snprintf(merges, sizeof merges, "%s/merges.txt", dir);
    sd_tokenizer_t *tok = NULL;
    if (sd_tokenizer_load(vocab, merges, &tok, err, sizeof err) != 0)
        kiln_test_fail(__FILE__, __LINE__, "demo tokenizer: %s", err);
    ASSERT_EQ_INT(sd_tokenizer_start_id(tok), 49406);
    ASSERT_EQ_INT(sd_tokenizer_end_id(tok), 49407);
    int32_t *ids = NULL;
    size_t n = 0;
    const char *text = "Hi, cat! \xc3\xa9";
    ASSERT_EQ_INT(sd_tokenizer_encode(tok, text, strlen(text), &ids, &n), 0);
    /* h i</w> ,</w> c a t</w> !</w> then the two bytes of e-acute: 0xC3, 0xA9</w>. */
    const int32_t want[] = {71, 328, 267, 66, 64, 339, 256, 127, 358};
    ASSERT_EQ_INT(n, 9);
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ_INT(ids[i], want[i]);
    free(ids);
    sd_tokenizer_free(tok);
}

/* make run's set-up: a generated tiny checkpoint (f16) and the demo tokenizer under a fresh
 * base directory run workflows/demo_txt2img_api.json to a finite, non-uniform image. */
static void test_demo_workflow_runs(void)
{
    char base[1024], args[4096], path[1200];
    snprintf(base, sizeof base, "%s/demo", kiln_test_tmpdir());
    snprintf(args, sizeof args, "--tiny --dtype f16 -o '%s/models/checkpoints/"
             "kiln-demo-tiny.safetensors' --tokenizer '%s/models/tokenizers/clip'", base, base);
    ASSERT_EQ_INT(make_checkpoint(args), 0);
    snprintf(path, sizeof path, "%s/models/tokenizers/clip", base);
    check_demo_tokenizer(path);
    kiln_engine_t *e = engine_at(base);
    static events_t ev;
    size_t len = 0;
    char *doc = kiln_test_read_file(KILN_SOURCE_DIR "/workflows/demo_txt2img_api.json", &len);
    ASSERT(doc);
    /* The graph `make run` runs, at 128 x 128 and 4 of its 8 steps to keep the sanitizer
     * build quick, plus a capture of the decoded image. */
    kiln__json_t *g = NULL;
    char jerr[128];
    ASSERT_EQ_INT(kiln__json_parse(doc, len, &g, jerr, sizeof jerr), 0);
    kiln__json_t *latent = kiln__json_get(kiln__json_get(g, "5"), "inputs");
    kiln__json_t *sampler = kiln__json_get(kiln__json_get(g, "3"), "inputs");
    ASSERT(latent && sampler);
    ASSERT_EQ_INT(kiln__json_get_int(latent, "width", 0), 256);
    ASSERT_EQ_INT(kiln__json_get_int(sampler, "steps", 0), 8);
    ASSERT_STR_EQ(kiln__json_get_string(kiln__json_get(kiln__json_get(g, "4"), "inputs"),
                                        "ckpt_name", ""), "kiln-demo-tiny.safetensors");
    kiln__json_set(latent, "width", kiln__json_new_int(128));
    kiln__json_set(latent, "height", kiln__json_new_int(128));
    kiln__json_set(sampler, "steps", kiln__json_new_int(4));
    char *body = kiln__json_dump(g, KILN_JSON_COMPACT, NULL);
    kiln__json_free(g);
    size_t blen = strlen(body);
    char *prompt = malloc(blen + 256);
    body[blen - 1] = 0;     /* drop the closing brace */
    snprintf(prompt, blen + 256, "%s,\"20\": {\"class_type\": \"SdxCapture\", \"inputs\": "
             "{\"value\": [\"8\", 0]}}}", body);
    free(body);
    ASSERT_EQ_INT(run(e, prompt, &ev), 0);
    ASSERT_STR_CONTAINS(ev.text, "progress KSampler {\"value\":4,\"max\":4,");
    const capture_t *img = captured("20");
    ASSERT_EQ_INT(img->dims[1], 128);
    ASSERT_EQ_INT(img->dims[2], 128);
    double sum = 0, sq = 0;
    for (size_t i = 0; i < img->n; i++) {
        ASSERT(isfinite(img->data[i]));
        sum += img->data[i];
        sq += (double)img->data[i] * img->data[i];
    }
    double mean = sum / (double)img->n, sd = sqrt(sq / (double)img->n - mean * mean);
    fprintf(stderr, "  demo image: mean %.3f, std %.3f\n", mean, sd);
    ASSERT(sd > 0.05);
    snprintf(path, sizeof path, "%s/output/kiln_demo_00001_.png", base);
    ASSERT(access(path, F_OK) == 0);
    free(prompt);
    free(doc);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

KILN_TEST_MAIN(TEST_TIMEOUT(test_hires_fix_matches_fixture_chain, 120),
               TEST_TIMEOUT(test_hires_fix_equals_chain, 120),
               TEST_TIMEOUT(test_hires_fix_interrupt, 120),
               TEST_TIMEOUT(test_object_info, 60),
               TEST_TIMEOUT(test_conditioning_zero_out, 120),
               TEST_TIMEOUT(test_tiled_single_tile_equals_decode, 120),
               TEST_TIMEOUT(test_tiled_blending_matches_comfyui, 120),
               TEST_TIMEOUT(test_make_checkpoint_layout, 120),
               TEST_TIMEOUT(test_demo_workflow_runs, 180))
