/* The example pack (nodes/example) as a node author meets it: built outside the tree with
 * the README's one-line cc command, loaded from a plugin folder, listed in /object_info
 * under custom_nodes.example, and run in a workflow that uses every node of it: a custom
 * type between two nodes, a list output feeding a per-element node, the op-library node,
 * the batchable node, and core SaveImage writing the results. */
#include "test_plugin_common.h"

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

/* Builds nodes/example into <tmp>/<leaf>/example.so exactly as the README says (the
 * compiler from PATH, the source tree's include/, nothing else), and returns the folder. */
static void build_example(const char *leaf, char *dir, size_t size)
{
    pl_mkdir(leaf, dir, size);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cc -shared -fPIC -I'%s/include' '%s'/nodes/example/*.c -o '%s/example.so'",
             KILN_SOURCE_DIR, KILN_SOURCE_DIR, dir);
    ASSERT_EQ_INT(system(cmd), 0);
}

/* Red and blue 4x4 images, their blend, the palette nodes, the list split feeding
 * grayscale per element, the vignette on the batch and on red alone, SaveImage for three
 * of them, and probes on everything. */
static const char WORKFLOW[] =
    "{\"1\": {\"class_type\": \"EmptyImage\", \"inputs\": {\"width\": 4, \"height\": 4,"
    "   \"batch_size\": 1, \"color\": 16711680}},"
    " \"2\": {\"class_type\": \"EmptyImage\", \"inputs\": {\"width\": 4, \"height\": 4,"
    "   \"batch_size\": 1, \"color\": 255}},"
    " \"3\": {\"class_type\": \"ImageBatch\", \"inputs\": {\"image1\": [\"1\", 0],"
    "   \"image2\": [\"2\", 0]}},"
    " \"4\": {\"class_type\": \"ExampleBlend\", \"inputs\": {\"image_a\": [\"1\", 0],"
    "   \"image_b\": [\"2\", 0], \"factor\": 0.25}},"
    " \"5\": {\"class_type\": \"ExampleMakePalette\","
    "   \"inputs\": {\"colors\": \"#000000, #ffffff,#FF0000\"}},"
    " \"6\": {\"class_type\": \"ExampleApplyPalette\", \"inputs\": {\"image\": [\"4\", 0],"
    "   \"palette\": [\"5\", 0]}},"
    " \"7\": {\"class_type\": \"ExampleSplitBatch\", \"inputs\": {\"images\": [\"3\", 0]}},"
    " \"8\": {\"class_type\": \"ExampleGrayscale\", \"inputs\": {\"image\": [\"7\", 0]}},"
    " \"9\": {\"class_type\": \"SaveImage\", \"inputs\": {\"images\": [\"8\", 0],"
    "   \"filename_prefix\": \"example/gray\"}},"
    " \"10\": {\"class_type\": \"SaveImage\", \"inputs\": {\"images\": [\"6\", 0],"
    "   \"filename_prefix\": \"example/palette\"}},"
    " \"11\": {\"class_type\": \"ExampleVignette\", \"inputs\": {\"image\": [\"3\", 0],"
    "   \"strength\": 0.5}},"
    " \"12\": {\"class_type\": \"ExampleVignette\", \"inputs\": {\"image\": [\"1\", 0],"
    "   \"strength\": 0.5}},"
    " \"13\": {\"class_type\": \"SaveImage\", \"inputs\": {\"images\": [\"11\", 0],"
    "   \"filename_prefix\": \"example/vignette\"}},"
    " \"20\": {\"class_type\": \"TProbe\", \"inputs\": {\"image\": [\"4\", 0]}},"
    " \"21\": {\"class_type\": \"TProbe\", \"inputs\": {\"image\": [\"6\", 0]}},"
    " \"22\": {\"class_type\": \"TProbe\", \"inputs\": {\"image\": [\"8\", 0]}},"
    " \"23\": {\"class_type\": \"TProbe\", \"inputs\": {\"image\": [\"11\", 0]}},"
    " \"24\": {\"class_type\": \"TProbe\", \"inputs\": {\"image\": [\"12\", 0]}},"
    " \"25\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"5\", 1]}}}";

static void test_object_info_lists_the_pack(void)
{
    char dir[512], want[1024];
    build_example("ext", dir, sizeof dir);
    const char *dirs[] = {dir, NULL};
    kiln_engine_t *e = pl_engine(dirs, 1);
    snprintf(want, sizeof want, "plugin '%s/example.so': loaded pack 'example' with 6 nodes",
             dir);
    ASSERT_LOG(want, NULL);

    char *json = NULL;
    ASSERT_EQ_INT(kiln_engine_object_info(e, NULL, &json), 0);
    const char *names[] = {"ExampleGrayscale", "ExampleVignette", "ExampleSplitBatch",
                           "ExampleMakePalette", "ExampleApplyPalette", "ExampleBlend"};
    for (int i = 0; i < 6; i++) {
        snprintf(want, sizeof want, "\"%s\":{", names[i]);
        ASSERT_STR_CONTAINS(json, want);
    }
    /* six classes of the pack, each with the pack's python_module */
    int n = 0;
    for (const char *p = strstr(json, "\"custom_nodes.example\""); p;
         p = strstr(p + 1, "\"custom_nodes.example\""))
        n++;
    ASSERT_EQ_INT(n, 6);
    kiln_free(json);

    ASSERT_EQ_INT(kiln_engine_object_info(e, "ExampleMakePalette", &json), 0);
    ASSERT_STR_CONTAINS(json, "\"python_module\":\"custom_nodes.example\"");
    ASSERT_STR_CONTAINS(json, "\"output\":[\"EXAMPLE_PALETTE\",\"INT\"]");
    ASSERT_STR_CONTAINS(json, "\"output_name\":[\"palette\",\"count\"]");
    ASSERT_STR_CONTAINS(json, "\"category\":\"example/palette\"");
    kiln_free(json);
    ASSERT_EQ_INT(kiln_engine_object_info(e, "ExampleSplitBatch", &json), 0);
    ASSERT_STR_CONTAINS(json, "\"output_is_list\":[true]");
    kiln_free(json);
    ASSERT_EQ_INT(kiln_engine_object_info(e, "ExampleBlend", &json), 0);
    ASSERT_STR_CONTAINS(json, "\"factor\":[\"FLOAT\",{\"default\":0.5,\"min\":0.0,\"max\":1.0");
    kiln_free(json);
    tp_close(e);
}

/* Pixel (x, y) channel k of a PNG as 0..255, or -1. */
static int png_pixel(const char *leaf, int x, int y, int k)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/output/%s", kiln_test_tmpdir(), leaf);
    int w, h, c;
    unsigned char *px = stbi_load(path, &w, &h, &c, 3);
    if (!px)
        return -1;
    int v = x < w && y < h ? px[(y * w + x) * 3 + k] : -1;
    stbi_image_free(px);
    return v;
}

static void expect_probe(const tp_events_t *ev, const char *id, const char *text)
{
    const char *line = pl_executed(ev, id);
    if (!line)
        kiln_test_fail(__FILE__, __LINE__, "node %s did not execute", id);
    ASSERT_STR_CONTAINS(line, text);
}

static void test_workflow_runs_every_node(void)
{
    char dir[512];
    build_example("ext", dir, sizeof dir);
    const char *dirs[] = {dir, NULL};
    kiln_engine_t *e = pl_engine(dirs, 1);
    ASSERT_EQ_INT(kiln_engine_add_pack(e, "probe", pl_probe_init), 0);
    tp_events_t ev;
    tp_events_init(&ev);
    ASSERT_EQ_INT(pl_run(e, WORKFLOW, &ev), 0);
    ASSERT(tp_find(&ev, "execution_success", 0) >= 0);

    /* op library: clamp(red + (blue - red) * 0.25) */
    expect_probe(&ev, "20", "\"1x4x4x3|s0:0.75000,0.00000,0.25000|c:0.75000,0.00000,0.25000\"");
    /* custom type: the nearest of black, white, red to (0.75, 0, 0.25) is red */
    expect_probe(&ev, "21", "\"1x4x4x3|s0:1.00000,0.00000,0.00000|");
    expect_probe(&ev, "25", "\"values\":[3]");
    /* list output: grayscale ran once per element, red then blue */
    expect_probe(&ev, "22", "[\"1x4x4x3|s0:0.29900,0.29900,0.29900|c:0.29900,0.29900,0.29900\","
                            "\"1x4x4x3|s0:0.11400,0.11400,0.11400|c:0.11400,0.11400,0.11400\"]");
    /* batchable: corner factor 1 - 0.5 * 0.5625, center-ish pixel 1 - 0.5 * 0.0625; the
     * batch's first sample equals the red image processed alone */
    expect_probe(&ev, "23", "\"2x4x4x3|s0:0.71875,0.00000,0.00000|s1:0.00000,0.00000,0.71875|"
                            "c:0.96875,0.00000,0.00000\"");
    expect_probe(&ev, "24", "\"1x4x4x3|s0:0.71875,0.00000,0.00000|c:0.96875,0.00000,0.00000\"");
    /* progress of the batchable node: one event per sample */
    ASSERT(tp_find(&ev, "progress {\"value\":2,\"max\":2,\"prompt_id\":\"p1\",\"node\":\"11\"",
                   0) >= 0);

    /* SaveImage wrote what the nodes made: one file per list element */
    ASSERT_EQ_INT(png_pixel("example/gray_00001_.png", 0, 0, 0), 76);   /* 0.299 * 255 */
    ASSERT_EQ_INT(png_pixel("example/gray_00002_.png", 3, 3, 1), 29);   /* 0.114 * 255 */
    ASSERT_EQ_INT(png_pixel("example/gray_00003_.png", 0, 0, 0), -1);
    ASSERT_EQ_INT(png_pixel("example/palette_00001_.png", 2, 1, 0), 255);
    ASSERT_EQ_INT(png_pixel("example/palette_00001_.png", 2, 1, 2), 0);
    ASSERT_EQ_INT(png_pixel("example/vignette_00002_.png", 0, 0, 2), 183); /* 0.71875 * 255 */
    tp_events_clear(&ev);
    tp_close(e);
}

/* Errors of the pack's nodes reach execution_error with the pack's message. */
static void test_node_errors_are_reported(void)
{
    char dir[512];
    build_example("ext", dir, sizeof dir);
    const char *dirs[] = {dir, NULL};
    kiln_engine_t *e = pl_engine(dirs, 1);
    tp_events_t ev;
    tp_events_init(&ev);
    ASSERT_EQ_INT(pl_run(e,
                         "{\"1\": {\"class_type\": \"ExampleMakePalette\","
                         "  \"inputs\": {\"colors\": \"#12345\"}},"
                         " \"2\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"1\", 1]}}}",
                         &ev),
                  KILN_ENODE);
    int at = tp_find(&ev, "execution_error", 0);
    ASSERT(at >= 0);
    ASSERT_STR_CONTAINS(ev.lines[at], "\"node_type\":\"ExampleMakePalette\"");
    ASSERT_STR_CONTAINS(ev.lines[at], "'#12345' is not a color like #ff8800");

    /* shapes that do not match are refused by the op node, not by a crash */
    ASSERT_EQ_INT(pl_run(e,
                         "{\"1\": {\"class_type\": \"EmptyImage\", \"inputs\": {\"width\": 4,"
                         "  \"height\": 4, \"batch_size\": 1, \"color\": 0}},"
                         " \"2\": {\"class_type\": \"EmptyImage\", \"inputs\": {\"width\": 5,"
                         "  \"height\": 4, \"batch_size\": 1, \"color\": 0}},"
                         " \"3\": {\"class_type\": \"ExampleBlend\", \"inputs\": {\"image_a\":"
                         "  [\"1\", 0], \"image_b\": [\"2\", 0], \"factor\": 0.5}},"
                         " \"4\": {\"class_type\": \"PreviewImage\","
                         "  \"inputs\": {\"images\": [\"3\", 0]}}}",
                         &ev),
                  KILN_ENODE);
    at = tp_find(&ev, "execution_error", 0);
    ASSERT(at >= 0);
    ASSERT_STR_CONTAINS(ev.lines[at], "image_a [1, 4, 4, 3] and image_b [1, 4, 5, 3]");
    tp_events_clear(&ev);
    tp_close(e);
}

KILN_TEST_MAIN(TEST_TIMEOUT(test_object_info_lists_the_pack, 120),
               TEST_TIMEOUT(test_workflow_runs_every_node, 120),
               TEST_TIMEOUT(test_node_errors_are_reported, 120))
