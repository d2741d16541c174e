/* Tests of the core pack's nodes through the engine, one small API prompt each:
 * EmptyImage -> ImageInvert -> SaveImage (files, pixels, metadata chunks, UI events,
 * counters), escaping prefixes, PreviewImage, LoadImage (alpha and masks, annotations,
 * validation, is_changed re-runs), ImageScale/ImageScaleBy, ImageBatch and the
 * primitives. A small probe pack records the values that reach it. */
#include <kiln/kiln.h>
#include <pthread.h>
#include <sys/stat.h>
#include <zlib.h>

#include "runner.h"

#include "../../nodes/core/png_write.h"

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

/* ---- a probe pack: records what reaches it -------------------------------------------- */

typedef struct probe_rec {
    char id[16];
    int ndim;
    int64_t dims[6];
    float *data;            /* copy of a float32 tensor */
    char type[32];
} probe_rec_t;

static pthread_mutex_t probe_mu = PTHREAD_MUTEX_INITIALIZER;
static probe_rec_t probe_recs[32];
static int probe_n;

static int probe_execute(kiln_call_t *call)
{
    const kiln_value_t *v = kiln_call_input(call, "value");
    kiln_tensor_t *t = kiln_value_get_tensor(v);
    pthread_mutex_lock(&probe_mu);
    if (probe_n < 32) {
        probe_rec_t *r = &probe_recs[probe_n++];
        snprintf(r->id, sizeof r->id, "%s", kiln_call_node_id(call));
        snprintf(r->type, sizeof r->type, "%s", kiln_value_type(v));
        if (t && kiln_tensor_dtype(t) == KILN_DTYPE_F32) {
            r->ndim = kiln_tensor_ndim(t);
            for (int i = 0; i < r->ndim; i++)
                r->dims[i] = kiln_tensor_dim(t, i);
            r->data = malloc(kiln_tensor_nbytes(t));
            memcpy(r->data, kiln_tensor_data(t), kiln_tensor_nbytes(t));
        }
    }
    pthread_mutex_unlock(&probe_mu);
    return 0;
}

static const kiln_input_def_t probe_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "value", .type = "*"}, {0}};
static const kiln_output_def_t probe_outputs[] = {{0}};
static const kiln_node_def_t probe_def = {
    KILN_NODE_DEF_INIT, .name = "CoreTestProbe", .category = "testing", .inputs = probe_inputs,
    .outputs = probe_outputs, .flags = KILN_NODE_OUTPUT, .execute = probe_execute};
static const kiln_node_def_t *const probe_nodes[] = {&probe_def, NULL};

static int probe_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    (void)api;
    out->name = "coreprobe";
    out->nodes = probe_nodes;
    return 0;
}

/* The newest record of a node; fails the test when there is none. */
static const probe_rec_t *probe(const char *id)
{
    for (int i = probe_n - 1; i >= 0; i--)
        if (strcmp(probe_recs[i].id, id) == 0)
            return &probe_recs[i];
    kiln_test_fail(__FILE__, __LINE__, "probe %s did not run", id);
}

/* ---- engine helpers ------------------------------------------------------------------- */

typedef struct events {
    char text[65536];       /* "name data\n" lines */
    size_t len;
} events_t;

static void on_event(void *ud, const kiln_event_t *ev)
{
    events_t *e = ud;
    int n = snprintf(e->text + e->len, sizeof e->text - e->len, "%s %s\n", ev->name,
                     ev->data_json);
    if (n > 0 && (size_t)n < sizeof e->text - e->len)
        e->len += (size_t)n;
}

static void quiet(void *ud, kiln_log_level_t level, const char *msg)
{
    (void)ud, (void)level, (void)msg;
}

static kiln_engine_t *engine(void)
{
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.base_directory = kiln_test_tmpdir();
    o.cpu_lanes = 2;
    o.log = quiet;
    kiln_engine_t *e = NULL;
    ASSERT_EQ_INT(kiln_engine_new(&o, &e), 0);
    ASSERT_EQ_INT(kiln_engine_add_pack(e, "coreprobe", probe_init), 0);
    return e;
}

/* Validates and executes a prompt; returns execute's result (or the validation error,
 * with the 400 body in errors when non-NULL). */
static int run(kiln_engine_t *e, const char *prompt, const char *extra, events_t *ev,
               char *errors, size_t errors_size)
{
    kiln_prompt_t *p = NULL;
    char *node_errors = NULL;
    int rc = kiln_prompt_new(e, prompt, strlen(prompt), NULL, 0, &p, &node_errors);
    if (rc != 0) {
        if (errors)
            snprintf(errors, errors_size, "%s", node_errors ? node_errors : "");
        else
            fprintf(stderr, "prompt failed validation: %s\n", node_errors ? node_errors : "");
        kiln_free(node_errors);
        return rc;
    }
    kiln_free(node_errors);
    ev->len = 0;
    ev->text[0] = 0;
    rc = kiln_engine_execute(e, p, "p1", extra, on_event, ev);
    kiln_prompt_free(p);
    return rc;
}

static char *dir_path(const char *sub, const char *name)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s", kiln_test_tmpdir(), sub, name);
    return path;
}

/* Writes an 8-bit PNG of w x h x c pixels into the input folder. */
static void write_input_png(const char *name, const uint8_t *px, int w, int h, int c)
{
    uint8_t *png = NULL;
    size_t len = 0;
    ASSERT_EQ_INT(kiln__core_png_encode(px, (uint32_t)w, (uint32_t)h, c, NULL, 0, 4, &png, &len),
                  0);
    char *path = dir_path("input", name);
    char *slash = strrchr(path, '/');
    *slash = 0;
    mkdir(path, 0777);
    *slash = '/';
    ASSERT_EQ_INT(kiln_test_write_file(path, png, len), 0);
    free(png);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The text of tEXt chunk `key` of a PNG file (malloc'd), and its position among the
 * chunks (IHDR is 0). */
static char *png_text(const char *path, const char *key, int *index)
{
    size_t len = 0;
    uint8_t *d = (uint8_t *)kiln_test_read_file(path, &len);
    ASSERT(d && len > 8);
    size_t p = 8;
    int i = 0;
    char *found = NULL;
    size_t klen = strlen(key);
    while (p + 12 <= len && !found) {
        uint32_t n = be32(d + p);
        ASSERT(p + 12 + n <= len);
        ASSERT_EQ_INT(be32(d + p + 8 + n), (uint32_t)crc32(0, d + p + 4, 4 + n));
        const uint8_t *body = d + p + 8;
        if (memcmp(d + p + 4, "tEXt", 4) == 0 && n > klen && memcmp(body, key, klen + 1) == 0) {
            found = malloc(n - klen);
            memcpy(found, d + p + 8 + klen + 1, n - klen - 1);
            found[n - klen - 1] = 0;
            *index = i;
        }
        p += 12 + n;
        i++;
    }
    free(d);
    return found;
}

/* ---- whole prompts -------------------------------------------------------------------- */

static const char *const SAVE_PROMPT =
    "{\"1\": {\"class_type\": \"EmptyImage\", \"inputs\": {\"width\": 4, \"height\": 2,"
    " \"batch_size\": 2, \"color\": %d}},"
    " \"2\": {\"class_type\": \"ImageInvert\", \"inputs\": {\"image\": [\"1\", 0]}},"
    " \"3\": {\"class_type\": \"SaveImage\", \"inputs\": {\"images\": [\"2\", 0],"
    " \"filename_prefix\": \"sub/inv\"}}}";

static void test_save_inverted_batch(void)
{
    kiln_engine_t *e = engine();
    static events_t ev;
    char prompt[1024];
    snprintf(prompt, sizeof prompt, SAVE_PROMPT, 0xFF0000);
    const char *extra = "{\"extra_pnginfo\": {\"workflow\": {\"nodes\": [], \"x\": \"\\u00e9\"}}}";
    ASSERT_EQ_INT(run(e, prompt, extra, &ev, NULL, 0), 0);
    ASSERT_STR_CONTAINS(ev.text, "{\"filename\":\"inv_00001_.png\",\"subfolder\":\"sub\","
                                 "\"type\":\"output\"}");
    ASSERT_STR_CONTAINS(ev.text, "{\"filename\":\"inv_00002_.png\",\"subfolder\":\"sub\","
                                 "\"type\":\"output\"}");
    for (int i = 1; i <= 2; i++) {
        char name[64];
        snprintf(name, sizeof name, "sub/inv_%05d_.png", i);
        int w, h, c;
        uint8_t *px = stbi_load(dir_path("output", name), &w, &h, &c, 0);
        ASSERT(px);
        ASSERT_EQ_INT(w, 4);
        ASSERT_EQ_INT(h, 2);
        ASSERT_EQ_INT(c, 3);
        for (int k = 0; k < 8; k++) {
            ASSERT_EQ_INT(px[3 * k], 0);    /* red inverted is cyan */
            ASSERT_EQ_INT(px[3 * k + 1], 255);
            ASSERT_EQ_INT(px[3 * k + 2], 255);
        }
        stbi_image_free(px);
        int at_prompt = -1, at_workflow = -1;
        char *ptext = png_text(dir_path("output", name), "prompt", &at_prompt);
        char *wtext = png_text(dir_path("output", name), "workflow", &at_workflow);
        ASSERT(ptext && wtext);
        ASSERT_EQ_INT(at_prompt, 1);
        ASSERT_EQ_INT(at_workflow, 2);
        ASSERT_STR_CONTAINS(ptext, "\"class_type\": \"ImageInvert\"");
        ASSERT_STR_CONTAINS(ptext, "\"filename_prefix\": \"sub/inv\"");
        ASSERT_STR_EQ(wtext, "{\"nodes\": [], \"x\": \"\\u00e9\"}");
        free(ptext);
        free(wtext);
    }
    /* Another color re-runs the chain; the counter continues after the existing files. */
    snprintf(prompt, sizeof prompt, SAVE_PROMPT, 0x00FF00);
    ASSERT_EQ_INT(run(e, prompt, NULL, &ev, NULL, 0), 0);
    ASSERT_STR_CONTAINS(ev.text, "\"inv_00003_.png\"");
    ASSERT_STR_CONTAINS(ev.text, "\"inv_00004_.png\"");
    int w, h, c;
    uint8_t *px = stbi_load(dir_path("output", "sub/inv_00004_.png"), &w, &h, &c, 0);
    ASSERT(px);
    ASSERT_EQ_INT(px[0], 255);
    ASSERT_EQ_INT(px[1], 0);
    stbi_image_free(px);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

static int file_exists(const char *sub, const char *name)
{
    struct stat st;
    return stat(dir_path(sub, name), &st) == 0;
}

/* %batch_num% goes into each file name while the counter runs on per image; a later run
 * never overwrites an existing file (ComfyUI would, since its scan cannot see names with
 * the batch number in them). */
static void test_save_batch_num_token(void)
{
    kiln_engine_t *e = engine();
    static events_t ev;
    const char *prompt =
        "{\"1\": {\"class_type\": \"EmptyImage\", \"inputs\": {\"width\": 2, \"height\": 2,"
        " \"batch_size\": 2, \"color\": %d}},"
        " \"2\": {\"class_type\": \"SaveImage\", \"inputs\": {\"images\": [\"1\", 0],"
        " \"filename_prefix\": \"b%%batch_num%%\"}}}";
    char p[1024];
    snprintf(p, sizeof p, prompt, 1);
    ASSERT_EQ_INT(run(e, p, NULL, &ev, NULL, 0), 0);
    ASSERT(file_exists("output", "b0_00001_.png"));
    ASSERT(file_exists("output", "b1_00002_.png"));
    snprintf(p, sizeof p, prompt, 2);
    ASSERT_EQ_INT(run(e, p, NULL, &ev, NULL, 0), 0);
    ASSERT_STR_CONTAINS(ev.text, "\"filename\":\"b0_00002_.png\"");
    ASSERT_STR_CONTAINS(ev.text, "\"filename\":\"b1_00003_.png\"");
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

/* Two SaveImage nodes with one prefix may run at once; each file gets its own counter. */
static void test_concurrent_saves_share_a_prefix(void)
{
    kiln_engine_t *e = engine();
    static events_t ev;
    const char *prompt =
        "{\"1\": {\"class_type\": \"EmptyImage\", \"inputs\": {\"width\": 64, \"height\": 64,"
        " \"batch_size\": 3, \"color\": 1}},"
        " \"5\": {\"class_type\": \"EmptyImage\", \"inputs\": {\"width\": 64, \"height\": 64,"
        " \"batch_size\": 3, \"color\": 2}},"
        " \"6\": {\"class_type\": \"EmptyImage\", \"inputs\": {\"width\": 64, \"height\": 64,"
        " \"batch_size\": 3, \"color\": 3}},"
        " \"2\": {\"class_type\": \"SaveImage\", \"inputs\": {\"images\": [\"1\", 0],"
        " \"filename_prefix\": \"same\"}},"
        " \"3\": {\"class_type\": \"SaveImage\", \"inputs\": {\"images\": [\"5\", 0],"
        " \"filename_prefix\": \"same\"}},"
        " \"4\": {\"class_type\": \"SaveImage\", \"inputs\": {\"images\": [\"6\", 0],"
        " \"filename_prefix\": \"same\"}}}";
    ASSERT_EQ_INT(run(e, prompt, NULL, &ev, NULL, 0), 0);
    for (int i = 1; i <= 9; i++) {
        char name[64];
        snprintf(name, sizeof name, "same_%05d_.png", i);
        ASSERT(file_exists("output", name));
        char quoted[80];
        snprintf(quoted, sizeof quoted, "\"%s\"", name);
        ASSERT_STR_CONTAINS(ev.text, quoted);
        /* Each name is reported once. */
        ASSERT(strstr(strstr(ev.text, quoted) + 1, quoted) == NULL);
    }
    ASSERT(!file_exists("output", "same_00010_.png"));
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}


static void test_save_rejects_escaping_prefix(void)
{
    kiln_engine_t *e = engine();
    static events_t ev;
    const char *prompt =
        "{\"1\": {\"class_type\": \"EmptyImage\", \"inputs\": {\"width\": 2, \"height\": 2,"
        " \"batch_size\": 1, \"color\": 0}},"
        " \"2\": {\"class_type\": \"SaveImage\", \"inputs\": {\"images\": [\"1\", 0],"
        " \"filename_prefix\": \"../evil\"}}}";
    ASSERT_EQ_INT(run(e, prompt, NULL, &ev, NULL, 0), KILN_ENODE);
    ASSERT_STR_CONTAINS(ev.text, "execution_error");
    ASSERT_STR_CONTAINS(ev.text, "outside the output folder");
    struct stat st;
    ASSERT(stat(dir_path(".", "evil_00001_.png"), &st) != 0);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

static void test_preview_writes_temp_files(void)
{
    kiln_engine_t *e = engine();
    static events_t ev;
    const char *prompt =
        "{\"1\": {\"class_type\": \"EmptyImage\", \"inputs\": {\"width\": 3, \"height\": 3,"
        " \"batch_size\": 1, \"color\": 8421504}},"
        " \"2\": {\"class_type\": \"PreviewImage\", \"inputs\": {\"images\": [\"1\", 0]}}}";
    ASSERT_EQ_INT(run(e, prompt, NULL, &ev, NULL, 0), 0);
    const char *at = strstr(ev.text, "\"filename\":\"ComfyUI_temp_");
    ASSERT(at);
    char name[64];
    ASSERT_EQ_INT(sscanf(at, "\"filename\":\"%40[^\"]\"", name), 1);
    ASSERT_EQ_INT(strlen(name), strlen("ComfyUI_temp_abcde_00001_.png"));
    for (int i = 13; i < 18; i++)
        ASSERT(name[i] >= 'a' && name[i] <= 'z');
    ASSERT_STR_CONTAINS(name, "_00001_.png");
    ASSERT_STR_CONTAINS(ev.text, "\"subfolder\":\"\",\"type\":\"temp\"");
    int w, h, c;
    uint8_t *px = stbi_load(dir_path("temp", name), &w, &h, &c, 0);
    ASSERT(px);
    ASSERT_EQ_INT(px[0], 128);  /* 0x80 / 255 * 255 truncates back to 128 */
    stbi_image_free(px);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

static const char *const LOAD_PROMPT =
    "{\"1\": {\"class_type\": \"LoadImage\", \"inputs\": {\"image\": \"%s\"}},"
    " \"2\": {\"class_type\": \"CoreTestProbe\", \"inputs\": {\"value\": [\"1\", 0]}},"
    " \"3\": {\"class_type\": \"CoreTestProbe\", \"inputs\": {\"value\": [\"1\", 1]}}}";

static void test_load_image_with_alpha(void)
{
    kiln_engine_t *e = engine();
    static events_t ev;
    const uint8_t px[2 * 3 * 4] = {255, 0, 0, 255, 0, 255, 0, 0,  0, 0, 255, 51,
                                   10, 20, 30, 204, 0, 0, 0, 255, 255, 255, 255, 102};
    write_input_png("pics/a.png", px, 3, 2, 4);
    char prompt[1024];
    snprintf(prompt, sizeof prompt, LOAD_PROMPT, "pics/a.png");
    ASSERT_EQ_INT(run(e, prompt, NULL, &ev, NULL, 0), 0);
    const probe_rec_t *img = probe("2"), *mask = probe("3");
    ASSERT_STR_EQ(img->type, "IMAGE");
    ASSERT_STR_EQ(mask->type, "MASK");
    ASSERT_EQ_INT(img->ndim, 4);
    ASSERT_EQ_INT(img->dims[0], 1);
    ASSERT_EQ_INT(img->dims[1], 2);
    ASSERT_EQ_INT(img->dims[2], 3);
    ASSERT_EQ_INT(img->dims[3], 3);
    ASSERT_EQ_INT(mask->ndim, 3);
    ASSERT_EQ_INT(mask->dims[1], 2);
    ASSERT_EQ_INT(mask->dims[2], 3);
    for (int i = 0; i < 6; i++) {
        for (int ch = 0; ch < 3; ch++)
            ASSERT_NEAR(img->data[3 * i + ch], px[4 * i + ch] / 255.0f, 0);
        ASSERT_NEAR(mask->data[i], 1.0f - px[4 * i + 3] / 255.0f, 0);
    }
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

static void test_load_image_without_alpha_and_annotations(void)
{
    kiln_engine_t *e = engine();
    static events_t ev;
    const uint8_t px[3] = {0, 128, 255};
    write_input_png("rgb.png", px, 1, 1, 3);
    char prompt[1024];
    snprintf(prompt, sizeof prompt, LOAD_PROMPT, "rgb.png [input]");
    ASSERT_EQ_INT(run(e, prompt, NULL, &ev, NULL, 0), 0);
    const probe_rec_t *img = probe("2"), *mask = probe("3");
    ASSERT_NEAR(img->data[1], 128.0f / 255.0f, 0);
    ASSERT_EQ_INT(mask->dims[0], 1);
    ASSERT_EQ_INT(mask->dims[1], 64);
    ASSERT_EQ_INT(mask->dims[2], 64);
    for (int i = 0; i < 64 * 64; i++)
        ASSERT_NEAR(mask->data[i], 0, 0);
    /* A file saved by SaveImage loads back through the [output] annotation. */
    const char *save =
        "{\"1\": {\"class_type\": \"EmptyImage\", \"inputs\": {\"width\": 2, \"height\": 1,"
        " \"batch_size\": 1, \"color\": 255}},"
        " \"2\": {\"class_type\": \"SaveImage\", \"inputs\": {\"images\": [\"1\", 0],"
        " \"filename_prefix\": \"blue\"}}}";
    ASSERT_EQ_INT(run(e, save, NULL, &ev, NULL, 0), 0);
    snprintf(prompt, sizeof prompt, LOAD_PROMPT, "blue_00001_.png [output]");
    ASSERT_EQ_INT(run(e, prompt, NULL, &ev, NULL, 0), 0);
    img = probe("2");
    ASSERT_EQ_INT(img->dims[2], 2);
    ASSERT_NEAR(img->data[0], 0, 0);
    ASSERT_NEAR(img->data[2], 1, 0);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

static void test_load_image_validation(void)
{
    kiln_engine_t *e = engine();
    static events_t ev;
    static char errors[8192];
    char prompt[1024];
    snprintf(prompt, sizeof prompt, LOAD_PROMPT, "nope.png");
    ASSERT_EQ_INT(run(e, prompt, NULL, &ev, errors, sizeof errors), KILN_EVALIDATION);
    ASSERT_STR_CONTAINS(errors, "Invalid image file: nope.png");
    snprintf(prompt, sizeof prompt, LOAD_PROMPT, "../../etc/passwd");
    ASSERT_EQ_INT(run(e, prompt, NULL, &ev, errors, sizeof errors), KILN_EVALIDATION);
    ASSERT_STR_CONTAINS(errors, "Invalid image file: ../../etc/passwd");
    /* Not an image: validation passes (the file exists), execution fails cleanly. */
    ASSERT_EQ_INT(kiln_test_write_file(dir_path("input", "junk.png"), "junk", 4), 0);
    snprintf(prompt, sizeof prompt, LOAD_PROMPT, "junk.png");
    ASSERT_EQ_INT(run(e, prompt, NULL, &ev, NULL, 0), KILN_ENODE);
    ASSERT_STR_CONTAINS(ev.text, "cannot load image junk.png");
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

static void test_load_image_reruns_when_the_file_changes(void)
{
    kiln_engine_t *e = engine();
    static events_t ev;
    uint8_t px[3] = {10, 20, 30};
    write_input_png("c.png", px, 1, 1, 3);
    char prompt[1024];
    snprintf(prompt, sizeof prompt, LOAD_PROMPT, "c.png");
    ASSERT_EQ_INT(run(e, prompt, NULL, &ev, NULL, 0), 0);
    uint64_t executed = kiln_engine_stat(e, KILN_STAT_NODES_EXECUTED);
    ASSERT_EQ_INT(run(e, prompt, NULL, &ev, NULL, 0), 0);
    ASSERT_EQ_INT(kiln_engine_stat(e, KILN_STAT_NODES_EXECUTED), executed);
    px[0] = 200;
    write_input_png("c.png", px, 1, 1, 3);
    ASSERT_EQ_INT(run(e, prompt, NULL, &ev, NULL, 0), 0);
    ASSERT_CMP_INT(kiln_engine_stat(e, KILN_STAT_NODES_EXECUTED), >, executed);
    ASSERT_NEAR(probe("2")->data[0], 200.0f / 255.0f, 0);
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

static void test_image_scale_nodes(void)
{
    kiln_engine_t *e = engine();
    static events_t ev;
    const uint8_t ramp[8] = {0, 60, 120, 180, 0, 60, 120, 180};  /* two equal rows */
    write_input_png("ramp.png", ramp, 4, 2, 1);
    const char *prompt =
        "{\"1\": {\"class_type\": \"LoadImage\", \"inputs\": {\"image\": \"ramp.png\"}},"
        " \"2\": {\"class_type\": \"ImageScale\", \"inputs\": {\"image\": [\"1\", 0],"
        " \"upscale_method\": \"bilinear\", \"width\": 2, \"height\": 1, \"crop\": \"disabled\"}},"
        " \"3\": {\"class_type\": \"CoreTestProbe\", \"inputs\": {\"value\": [\"2\", 0]}},"
        " \"4\": {\"class_type\": \"ImageScale\", \"inputs\": {\"image\": [\"1\", 0],"
        " \"upscale_method\": \"nearest-exact\", \"width\": 0, \"height\": 3,"
        " \"crop\": \"disabled\"}},"
        " \"5\": {\"class_type\": \"CoreTestProbe\", \"inputs\": {\"value\": [\"4\", 0]}},"
        " \"6\": {\"class_type\": \"ImageScaleBy\", \"inputs\": {\"image\": [\"1\", 0],"
        " \"upscale_method\": \"area\", \"scale_by\": 0.5}},"
        " \"7\": {\"class_type\": \"CoreTestProbe\", \"inputs\": {\"value\": [\"6\", 0]}},"
        " \"8\": {\"class_type\": \"ImageScale\", \"inputs\": {\"image\": [\"1\", 0],"
        " \"upscale_method\": \"nearest-exact\", \"width\": 1, \"height\": 1,"
        " \"crop\": \"center\"}},"
        " \"9\": {\"class_type\": \"CoreTestProbe\", \"inputs\": {\"value\": [\"8\", 0]}},"
        " \"10\": {\"class_type\": \"ImageScale\", \"inputs\": {\"image\": [\"1\", 0],"
        " \"upscale_method\": \"lanczos\", \"width\": 0, \"height\": 0, \"crop\": \"center\"}},"
        " \"11\": {\"class_type\": \"CoreTestProbe\", \"inputs\": {\"value\": [\"10\", 0]}}}";
    ASSERT_EQ_INT(run(e, prompt, NULL, &ev, NULL, 0), 0);
    const probe_rec_t *bl = probe("3"), *ne = probe("5"), *ar = probe("7"), *cc = probe("9");
    const probe_rec_t *same = probe("11");
    /* bilinear 4 x 2 -> 2 x 1 samples x = 0.5, 2.5 and y = 0.5 (both rows). */
    ASSERT_EQ_INT(bl->dims[1], 1);
    ASSERT_EQ_INT(bl->dims[2], 2);
    ASSERT_NEAR(bl->data[0], 30.0f / 255.0f, 1e-6);
    ASSERT_NEAR(bl->data[3], 150.0f / 255.0f, 1e-6);
    /* width 0 keeps the aspect: round(4 * 3 / 2) = 6 wide; columns read
     * floor((i + 0.5) * 2 / 3) = 0, 1, 1, 2, 3, 3 (1.5 * 0.6666667f is just above 1). */
    ASSERT_EQ_INT(ne->dims[1], 3);
    ASSERT_EQ_INT(ne->dims[2], 6);
    const float cols[6] = {0, 60, 60, 120, 180, 180};
    for (int i = 0; i < 6; i++)
        ASSERT_NEAR(ne->data[3 * i], cols[i] / 255.0f, 0);
    /* area by 0.5: 2 x 1, each the mean of a 2 x 2 window. */
    ASSERT_EQ_INT(ar->dims[1], 1);
    ASSERT_EQ_INT(ar->dims[2], 2);
    ASSERT_NEAR(ar->data[0], 30.0f / 255.0f, 1e-6);
    ASSERT_NEAR(ar->data[3], 150.0f / 255.0f, 1e-6);
    /* center crop to 1 x 1 keeps columns 1..2, nearest-exact then reads column 2. */
    ASSERT_EQ_INT(cc->dims[1], 1);
    ASSERT_EQ_INT(cc->dims[2], 1);
    ASSERT_NEAR(cc->data[0], 120.0f / 255.0f, 0);
    /* 0 x 0 passes the image through unchanged. */
    ASSERT_EQ_INT(same->dims[1], 2);
    ASSERT_EQ_INT(same->dims[2], 4);
    ASSERT_NEAR(same->data[3], 60.0f / 255.0f, 0);
    /* 0.5 of 4 x 1 would be 2 x 0: the node fails with a message instead of crashing. */
    const uint8_t line[4] = {1, 2, 3, 4};
    write_input_png("line.png", line, 4, 1, 1);
    const char *empty =
        "{\"1\": {\"class_type\": \"LoadImage\", \"inputs\": {\"image\": \"line.png\"}},"
        " \"2\": {\"class_type\": \"ImageScaleBy\", \"inputs\": {\"image\": [\"1\", 0],"
        " \"upscale_method\": \"bicubic\", \"scale_by\": 0.1}},"
        " \"3\": {\"class_type\": \"CoreTestProbe\", \"inputs\": {\"value\": [\"2\", 0]}}}";
    ASSERT_EQ_INT(run(e, empty, NULL, &ev, NULL, 0), KILN_ENODE);
    ASSERT_STR_CONTAINS(ev.text, "cannot resize to 0 x 0");
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

static void test_image_batch_resizes_the_second_batch(void)
{
    kiln_engine_t *e = engine();
    static events_t ev;
    const char *prompt =
        "{\"1\": {\"class_type\": \"EmptyImage\", \"inputs\": {\"width\": 4, \"height\": 4,"
        " \"batch_size\": 1, \"color\": 16711680}},"
        " \"2\": {\"class_type\": \"EmptyImage\", \"inputs\": {\"width\": 2, \"height\": 3,"
        " \"batch_size\": 2, \"color\": 255}},"
        " \"3\": {\"class_type\": \"ImageBatch\", \"inputs\": {\"image1\": [\"1\", 0],"
        " \"image2\": [\"2\", 0]}},"
        " \"4\": {\"class_type\": \"CoreTestProbe\", \"inputs\": {\"value\": [\"3\", 0]}}}";
    ASSERT_EQ_INT(run(e, prompt, NULL, &ev, NULL, 0), 0);
    const probe_rec_t *r = probe("4");
    ASSERT_EQ_INT(r->ndim, 4);
    ASSERT_EQ_INT(r->dims[0], 3);
    ASSERT_EQ_INT(r->dims[1], 4);
    ASSERT_EQ_INT(r->dims[2], 4);
    ASSERT_EQ_INT(r->dims[3], 3);
    for (int i = 0; i < 16; i++) {
        ASSERT_NEAR(r->data[3 * i], 1, 0);
        ASSERT_NEAR(r->data[3 * i + 2], 0, 0);
    }
    for (int i = 16; i < 48; i++) {
        ASSERT_NEAR(r->data[3 * i], 0, 0);
        ASSERT_NEAR(r->data[3 * i + 2], 1, 1e-6);
    }
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

static void test_primitives_feed_other_nodes(void)
{
    kiln_engine_t *e = engine();
    static events_t ev;
    const char *prompt =
        "{\"1\": {\"class_type\": \"PrimitiveInt\", \"inputs\": {\"value\": 3}},"
        " \"2\": {\"class_type\": \"PrimitiveFloat\", \"inputs\": {\"value\": 2.0}},"
        " \"3\": {\"class_type\": \"PrimitiveString\", \"inputs\": {\"value\": \"prim\"}},"
        " \"4\": {\"class_type\": \"PrimitiveStringMultiline\","
        " \"inputs\": {\"value\": \"two\\nlines\"}},"
        " \"5\": {\"class_type\": \"PrimitiveBoolean\", \"inputs\": {\"value\": true}},"
        " \"6\": {\"class_type\": \"EmptyImage\", \"inputs\": {\"width\": [\"1\", 0],"
        " \"height\": [\"1\", 0], \"batch_size\": 1, \"color\": 0}},"
        " \"7\": {\"class_type\": \"ImageScaleBy\", \"inputs\": {\"image\": [\"6\", 0],"
        " \"upscale_method\": \"nearest-exact\", \"scale_by\": [\"2\", 0]}},"
        " \"8\": {\"class_type\": \"SaveImage\", \"inputs\": {\"images\": [\"7\", 0],"
        " \"filename_prefix\": [\"3\", 0]}},"
        " \"9\": {\"class_type\": \"CoreTestProbe\", \"inputs\": {\"value\": [\"4\", 0]}},"
        " \"10\": {\"class_type\": \"CoreTestProbe\", \"inputs\": {\"value\": [\"5\", 0]}}}";
    ASSERT_EQ_INT(run(e, prompt, NULL, &ev, NULL, 0), 0);
    ASSERT_STR_CONTAINS(ev.text, "\"filename\":\"prim_00001_.png\"");
    int w, h, c;
    uint8_t *px = stbi_load(dir_path("output", "prim_00001_.png"), &w, &h, &c, 0);
    ASSERT(px);
    ASSERT_EQ_INT(w, 6);
    ASSERT_EQ_INT(h, 6);
    stbi_image_free(px);
    ASSERT_STR_EQ(probe("9")->type, "STRING");
    ASSERT_STR_EQ(probe("10")->type, "BOOLEAN");
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

KILN_TEST_MAIN(TEST(test_save_inverted_batch), TEST(test_save_batch_num_token),
               TEST(test_concurrent_saves_share_a_prefix),
               TEST(test_save_rejects_escaping_prefix), TEST(test_preview_writes_temp_files),
               TEST(test_load_image_with_alpha),
               TEST(test_load_image_without_alpha_and_annotations),
               TEST(test_load_image_validation),
               TEST(test_load_image_reruns_when_the_file_changes), TEST(test_image_scale_nodes),
               TEST(test_image_batch_resizes_the_second_batch),
               TEST(test_primitives_feed_other_nodes))
