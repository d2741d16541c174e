/* Tests for /object_info rendering (engine/registry/object_info.c, combo.c): exact JSON
 * for a KSampler-like class (u64 seed maximum, combos, FLOAT round, tooltips, key order),
 * hidden and optional sections, widget option flags, extra_json merging, and combo
 * choices listed from input and model folders. */
#include "runner.h"

#include <kiln/kiln.h>
#include <sys/stat.h>

#include "registry/registry.h"

static int exec_ok(kiln_call_t *call)
{
    return 0;
}

static const kiln_node_def_t *const *g_nodes;

static int test_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    out->name = "testpack";
    out->nodes = g_nodes;
    return 0;
}

static kiln__registry_t *registry_with(const kiln_node_def_t *const *nodes)
{
    kiln__registry_t *r = kiln__registry_new();
    char err[512];
    g_nodes = nodes;
    int rc = kiln__registry_add_pack(r, "testpack", test_init, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "  %s\n", err);
    ASSERT_EQ_INT(rc, 0);
    return r;
}

/* object_info for one class (or all when name is NULL) as compact JSON; caller frees. */
static char *info_text(const kiln__registry_t *r, const kiln__env_t *env, const char *name)
{
    kiln__json_t *j = kiln__registry_object_info(r, env, name);
    ASSERT(j != NULL);
    char *text = kiln__json_dump(j, KILN_JSON_COMPACT, NULL);
    kiln__json_free(j);
    ASSERT(text != NULL);
    return text;
}

/* ---- a KSampler-like class ------------------------------------------------------------- */

static const char *const samplers[] = {"euler", "euler_ancestral", "dpmpp_2m", NULL};
static const char *const schedulers[] = {"normal", "karras", NULL};

static const kiln_input_def_t ks_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "model", .type = "MODEL",
     .tooltip = "The model used for denoising the input latent."},
    {KILN_INPUT_DEF_INIT, .name = "seed", .type = "INT", .has_default = 1, .default_int = 0,
     .min_int = 0, .flags = KILN_INPUT_MAX_U64 | KILN_INPUT_CONTROL_AFTER_GENERATE,
     .tooltip = "The random seed."},
    {KILN_INPUT_DEF_INIT, .name = "steps", .type = "INT", .has_default = 1, .default_int = 20,
     .min_int = 1, .max_int = 10000},
    {KILN_INPUT_DEF_INIT, .name = "cfg", .type = "FLOAT", .has_default = 1,
     .default_float = 8.0, .min_float = 0.0, .max_float = 100.0, .step_float = 0.1,
     .round = 0.01},
    {KILN_INPUT_DEF_INIT, .name = "sampler_name", .type = "COMBO", .options = samplers},
    {KILN_INPUT_DEF_INIT, .name = "scheduler", .type = "COMBO", .options = schedulers,
     .has_default = 1, .default_string = "karras", .tooltip = "How noise is removed."},
    {KILN_INPUT_DEF_INIT, .name = "positive", .type = "CONDITIONING"},
    {KILN_INPUT_DEF_INIT, .name = "latent_image", .type = "LATENT"},
    {KILN_INPUT_DEF_INIT, .name = "denoise", .type = "FLOAT", .has_default = 1,
     .default_float = 1.0, .min_float = 0.0, .max_float = 1.0, .step_float = 0.01},
    {0}};
static const kiln_output_def_t ks_outputs[] = {
    {KILN_OUTPUT_DEF_INIT, .type = "LATENT", .tooltip = "The denoised latent."}, {0}};
static const kiln_node_def_t ksampler = {
    KILN_NODE_DEF_INIT, .name = "KSampler", .category = "sampling",
    .description = "Denoises the latent.", .inputs = ks_inputs, .outputs = ks_outputs,
    .execute = exec_ok};

static const char ksampler_golden[] =
    "{\"KSampler\":{"
    "\"input\":{\"required\":{"
    "\"model\":[\"MODEL\",{\"tooltip\":\"The model used for denoising the input latent.\"}],"
    "\"seed\":[\"INT\",{\"default\":0,\"min\":0,\"max\":18446744073709551615,"
    "\"control_after_generate\":true,\"tooltip\":\"The random seed.\"}],"
    "\"steps\":[\"INT\",{\"default\":20,\"min\":1,\"max\":10000}],"
    "\"cfg\":[\"FLOAT\",{\"default\":8.0,\"min\":0.0,\"max\":100.0,\"step\":0.1,"
    "\"round\":0.01}],"
    "\"sampler_name\":[[\"euler\",\"euler_ancestral\",\"dpmpp_2m\"]],"
    "\"scheduler\":[[\"normal\",\"karras\"],{\"default\":\"karras\","
    "\"tooltip\":\"How noise is removed.\"}],"
    "\"positive\":[\"CONDITIONING\"],"
    "\"latent_image\":[\"LATENT\"],"
    "\"denoise\":[\"FLOAT\",{\"default\":1.0,\"min\":0.0,\"max\":1.0,\"step\":0.01}]}},"
    "\"input_order\":{\"required\":[\"model\",\"seed\",\"steps\",\"cfg\",\"sampler_name\","
    "\"scheduler\",\"positive\",\"latent_image\",\"denoise\"]},"
    "\"output\":[\"LATENT\"],\"output_is_list\":[false],\"output_name\":[\"LATENT\"],"
    "\"name\":\"KSampler\",\"display_name\":\"KSampler\","
    "\"description\":\"Denoises the latent.\",\"python_module\":\"custom_nodes.testpack\","
    "\"category\":\"sampling\",\"output_node\":false,"
    "\"output_tooltips\":[\"The denoised latent.\"]}}";

static void test_ksampler_golden(void)
{
    const kiln_node_def_t *nodes[] = {&ksampler, NULL};
    kiln__registry_t *r = registry_with(nodes);
    char *text = info_text(r, NULL, "KSampler");
    ASSERT_STR_EQ(text, ksampler_golden);
    free(text);
    /* The whole listing holds the same object; an unknown class gives {}. */
    text = info_text(r, NULL, NULL);
    ASSERT_STR_EQ(text, ksampler_golden);
    free(text);
    text = info_text(r, NULL, "Nope");
    ASSERT_STR_EQ(text, "{}");
    free(text);
    kiln__registry_free(r);
}

/* ---- sections, flags, extra_json, outputs ---------------------------------------------- */

static const kiln_input_def_t misc_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "text", .type = "STRING", .has_default = 1,
     .flags = KILN_INPUT_MULTILINE | KILN_INPUT_DYNAMIC_PROMPTS},
    {KILN_INPUT_DEF_INIT, .name = "flag", .type = "BOOLEAN", .has_default = 1,
     .default_int = 1, .extra_json = "{\"label_on\": \"yes\", \"label_off\": \"no\"}"},
    {KILN_INPUT_DEF_INIT, .name = "scale", .type = "FLOAT", .has_default = 1,
     .default_float = 0.5, .min_float = -1, .max_float = 1, .flags = KILN_INPUT_NO_ROUND},
    {KILN_INPUT_DEF_INIT, .name = "width", .type = "INT", .has_default = 1,
     .default_int = 512, .min_int = 16, .max_int = 8192, .step_int = 8,
     .extra_json = "{\"step\": 64, \"display\": \"slider\"}"},
    {KILN_INPUT_DEF_INIT, .name = "count", .type = "INT", .flags = KILN_INPUT_FORCE_INPUT},
    {KILN_INPUT_DEF_INIT, .name = "prompt", .type = "PROMPT", .section = KILN_INPUT_HIDDEN},
    {KILN_INPUT_DEF_INIT, .name = "image", .type = "IMAGE", .section = KILN_INPUT_OPTIONAL,
     .flags = KILN_INPUT_LAZY},
    {KILN_INPUT_DEF_INIT, .name = "unique_id", .type = "UNIQUE_ID",
     .section = KILN_INPUT_HIDDEN},
    {KILN_INPUT_DEF_INIT, .name = "any", .type = "INT,FLOAT", .section = KILN_INPUT_OPTIONAL},
    {KILN_INPUT_DEF_INIT, .name = "extra_pnginfo", .type = "EXTRA_PNGINFO",
     .section = KILN_INPUT_HIDDEN},
    {0}};
static const kiln_output_def_t misc_outputs[] = {
    {KILN_OUTPUT_DEF_INIT, .type = "IMAGE", .name = "images", .is_list = 1},
    {KILN_OUTPUT_DEF_INIT, .type = "INT", .tooltip = "How many."},
    {0}};
static const kiln_node_def_t misc = {
    KILN_NODE_DEF_INIT, .name = "Misc", .display_name = "Miscellany", .inputs = misc_inputs,
    .outputs = misc_outputs, .execute = exec_ok,
    .flags = KILN_NODE_OUTPUT | KILN_NODE_DEPRECATED | KILN_NODE_EXPERIMENTAL};
static const kiln_node_def_t bare = {KILN_NODE_DEF_INIT, .name = "Bare", .execute = exec_ok};

static const char misc_golden[] =
    "{\"Misc\":{"
    "\"input\":{\"required\":{"
    "\"text\":[\"STRING\",{\"default\":\"\",\"multiline\":true,\"dynamicPrompts\":true}],"
    "\"flag\":[\"BOOLEAN\",{\"default\":true,\"label_on\":\"yes\",\"label_off\":\"no\"}],"
    "\"scale\":[\"FLOAT\",{\"default\":0.5,\"min\":-1.0,\"max\":1.0,\"round\":false}],"
    "\"width\":[\"INT\",{\"default\":512,\"min\":16,\"max\":8192,\"step\":64,"
    "\"display\":\"slider\"}],"
    "\"count\":[\"INT\",{\"forceInput\":true}]},"
    "\"optional\":{\"image\":[\"IMAGE\",{\"lazy\":true}],\"any\":[\"INT,FLOAT\"]},"
    "\"hidden\":{\"prompt\":\"PROMPT\",\"unique_id\":\"UNIQUE_ID\","
    "\"extra_pnginfo\":\"EXTRA_PNGINFO\"}},"
    "\"input_order\":{\"required\":[\"text\",\"flag\",\"scale\",\"width\",\"count\"],"
    "\"optional\":[\"image\",\"any\"],"
    "\"hidden\":[\"prompt\",\"unique_id\",\"extra_pnginfo\"]},"
    "\"output\":[\"IMAGE\",\"INT\"],\"output_is_list\":[true,false],"
    "\"output_name\":[\"images\",\"INT\"],"
    "\"name\":\"Misc\",\"display_name\":\"Miscellany\",\"description\":\"\","
    "\"python_module\":\"custom_nodes.testpack\",\"category\":\"sd\",\"output_node\":true,"
    "\"output_tooltips\":[null,\"How many.\"],\"deprecated\":true,\"experimental\":true},"
    "\"Bare\":{\"input\":{\"required\":{}},\"input_order\":{\"required\":[]},"
    "\"output\":[],\"output_is_list\":[],\"output_name\":[],"
    "\"name\":\"Bare\",\"display_name\":\"Bare\",\"description\":\"\","
    "\"python_module\":\"custom_nodes.testpack\",\"category\":\"sd\",\"output_node\":false}}";

static void test_sections_flags_golden(void)
{
    const kiln_node_def_t *nodes[] = {&misc, &bare, NULL};
    kiln__registry_t *r = registry_with(nodes);
    char *text = info_text(r, NULL, NULL);
    ASSERT_STR_EQ(text, misc_golden);
    free(text);
    kiln__registry_free(r);
}

/* ---- combos from folders --------------------------------------------------------------- */

static void make_file(const char *dir, const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    /* Create the parents first. */
    for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        mkdir(path, 0755);
        *p = '/';
    }
    ASSERT_EQ_INT(kiln_test_write_file(path, "x", 1), 0);
}

static char *combo_text(const char *folder, const kiln__env_t *env)
{
    kiln_input_def_t in = {KILN_INPUT_DEF_INIT, .name = "c", .type = "COMBO",
                           .options_folder = folder};
    kiln__json_t *j = kiln__registry_combo_options(&in, env);
    ASSERT(j != NULL);
    char *text = kiln__json_dump(j, KILN_JSON_COMPACT, NULL);
    kiln__json_free(j);
    return text;
}

static const kiln_input_def_t load_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "image", .type = "COMBO", .options_folder = "input",
     .flags = KILN_INPUT_IMAGE_UPLOAD},
    {0}};
static const kiln_input_def_t ckpt_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "ckpt_name", .type = "COMBO",
     .options_folder = "checkpoints", .tooltip = "The checkpoint."},
    {0}};
static const kiln_node_def_t load_image = {
    KILN_NODE_DEF_INIT, .name = "LoadImage", .inputs = load_inputs, .execute = exec_ok};
static const kiln_node_def_t load_ckpt = {
    KILN_NODE_DEF_INIT, .name = "CheckpointLoaderSimple", .inputs = ckpt_inputs,
    .execute = exec_ok};

static void test_combo_folders(void)
{
    char in_dir[512], models_dir[512], out_dir[512];
    snprintf(in_dir, sizeof in_dir, "%s/input", kiln_test_tmpdir());
    snprintf(models_dir, sizeof models_dir, "%s/models", kiln_test_tmpdir());
    snprintf(out_dir, sizeof out_dir, "%s/output", kiln_test_tmpdir());
    mkdir(in_dir, 0755);
    mkdir(models_dir, 0755);
    const char *inputs[] = {"b.png", "a.JPG", "c.webp", "notes.txt", "sub/deep.png",
                            "Z.tiff", "noext"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++)
        make_file(in_dir, inputs[i]);
    const char *models[] = {"checkpoints/v1.safetensors", "checkpoints/sd/old.ckpt",
                            "checkpoints/sd/deeper/x.SFT", "checkpoints/readme.md",
                            "checkpoints/.git/hidden.safetensors", "checkpoints/a.pth",
                            "clip/legacy.safetensors", "text_encoders/t5.safetensors",
                            "vae/ae.pt", "loras/l.bin"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        make_file(models_dir, models[i]);
    kiln__env_t env = {.input_dir = in_dir, .models_dir = models_dir, .output_dir = out_dir};

    char *t = combo_text("input", &env);
    ASSERT_STR_EQ(t, "[\"Z.tiff\",\"a.JPG\",\"b.png\",\"c.webp\"]"); /* byte order */
    free(t);
    t = combo_text("checkpoints", &env);
    ASSERT_STR_EQ(t, "[\"a.pth\",\"sd/deeper/x.SFT\",\"sd/old.ckpt\",\"v1.safetensors\"]");
    free(t);
    /* text_encoders also lists the legacy clip folder, as ComfyUI does. */
    t = combo_text("text_encoders", &env);
    ASSERT_STR_EQ(t, "[\"legacy.safetensors\",\"t5.safetensors\"]");
    free(t);
    t = combo_text("vae", &env);
    ASSERT_STR_EQ(t, "[\"ae.pt\"]");
    free(t);
    t = combo_text("upscale_models", &env); /* no such folder */
    ASSERT_STR_EQ(t, "[]");
    free(t);
    t = combo_text("output", &env); /* exists in env, not on disk */
    ASSERT_STR_EQ(t, "[]");
    free(t);
    t = combo_text("input", NULL); /* no environment: no choices */
    ASSERT_STR_EQ(t, "[]");
    free(t);

    const kiln_node_def_t *nodes[] = {&load_image, &load_ckpt, NULL};
    kiln__registry_t *r = registry_with(nodes);
    t = info_text(r, &env, "LoadImage");
    ASSERT_STR_CONTAINS(t, "\"input\":{\"required\":{\"image\":[[\"Z.tiff\",\"a.JPG\","
                           "\"b.png\",\"c.webp\"],{\"image_upload\":true}]}}");
    free(t);
    /* Lists are read per request: a new file shows up at once. */
    make_file(models_dir, "checkpoints/new.safetensors");
    t = info_text(r, &env, "CheckpointLoaderSimple");
    ASSERT_STR_CONTAINS(t, "\"ckpt_name\":[[\"a.pth\",\"new.safetensors\",\"sd/deeper/x.SFT\","
                           "\"sd/old.ckpt\",\"v1.safetensors\"],{\"tooltip\":"
                           "\"The checkpoint.\"}]");
    free(t);
    kiln__registry_free(r);
}

static void test_static_combo_options(void)
{
    static const char *const opts[] = {"b", "a", "a", NULL};
    kiln_input_def_t in = {KILN_INPUT_DEF_INIT, .name = "c", .type = "COMBO", .options = opts};
    kiln__json_t *j = kiln__registry_combo_options(&in, NULL);
    char *t = kiln__json_dump(j, KILN_JSON_COMPACT, NULL);
    ASSERT_STR_EQ(t, "[\"b\",\"a\",\"a\"]"); /* declaration order, as declared */
    free(t);
    kiln__json_free(j);
}

KILN_TEST_MAIN(TEST(test_ksampler_golden), TEST(test_sections_flags_golden),
               TEST(test_combo_folders), TEST(test_static_combo_options))
