/* Where the loader looks and what it does with what it finds: the default folder
 * <base>/plugins and no_default_plugins, extra folders in order, a folder named twice, the
 * same pack in two folders, missing folders, and the example pack as CMake builds it
 * (<build>/packs/example.so) running a small workflow. */
#include "test_plugin_common.h"

#define BUILT_EXAMPLE PL_BUILT_PACKS "/example.so"

/* ExampleGrayscale on a white 2x2 image, probed. */
static const char GRAY[] =
    "{\"1\": {\"class_type\": \"EmptyImage\", \"inputs\": {\"width\": 2, \"height\": 2,"
    "  \"batch_size\": 1, \"color\": 16777215}},"
    " \"2\": {\"class_type\": \"ExampleGrayscale\", \"inputs\": {\"image\": [\"1\", 0]}},"
    " \"3\": {\"class_type\": \"TProbe\", \"inputs\": {\"image\": [\"2\", 0]}}}";

static void test_default_folder_loads(void)
{
    char dir[512], want[1024];
    pl_mkdir("plugins", dir, sizeof dir);
    pl_link(dir, "example.so", BUILT_EXAMPLE);
    kiln_engine_t *e = pl_engine(NULL, 0);
    snprintf(want, sizeof want, "[info] plugin '%s/example.so': loaded pack 'example' with 6 "
             "nodes", dir);
    ASSERT_LOG(want, NULL);
    ASSERT_EQ_INT(kiln_engine_add_pack(e, "probe", pl_probe_init), 0);
    tp_events_t ev;
    tp_events_init(&ev);
    ASSERT_EQ_INT(pl_run(e, GRAY, &ev), 0);
    const char *out = pl_executed(&ev, "3");
    ASSERT(out != NULL);
    /* 0.299 + 0.587 + 0.114 = 1 (to float rounding) */
    ASSERT_STR_CONTAINS(out, "\"1x2x2x3|s0:1.00000,1.00000,1.00000|c:1.00000,1.00000,1.00000\"");
    tp_events_clear(&ev);
    tp_close(e);
}

static void test_no_default_skips_the_folder(void)
{
    char dir[512];
    pl_mkdir("plugins", dir, sizeof dir);
    pl_link(dir, "example.so", BUILT_EXAMPLE);
    kiln_engine_t *e = pl_engine(NULL, 1);
    ASSERT_EQ_INT(pl_log_count("plugin"), 0);
    char *json = NULL;
    ASSERT_EQ_INT(kiln_engine_object_info(e, "ExampleGrayscale", &json), 0);
    ASSERT_STR_EQ(json, "{}");
    kiln_free(json);
    tp_close(e);
}

static void test_missing_folders(void)
{
    /* The default folder may be absent (silent); a folder asked for must exist (warning). */
    const char *dirs[] = {"", "/nonexistent/kiln-plugins", NULL};
    kiln_engine_t *e = pl_engine(dirs, 0);
    ASSERT_LOG("[warn] plugin folder '/nonexistent/kiln-plugins': cannot read it: ", NULL);
    ASSERT_EQ_INT(pl_log_count("plugin"), 1);
    tp_events_t ev;
    tp_events_init(&ev);
    ASSERT_EQ_INT(pl_run(e, "{\"1\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": 1}}}",
                         &ev),
                  0);
    tp_events_clear(&ev);
    tp_close(e);
}

/* The same file reached twice loads once; another copy of one pack is refused by name. */
static void test_duplicates(void)
{
    char dir[512], copy_dir[512], path[600];
    pl_mkdir("plugins", dir, sizeof dir);
    pl_link(dir, "example.so", BUILT_EXAMPLE);
    pl_link(dir, "again.so", BUILT_EXAMPLE);
    pl_mkdir("copy", copy_dir, sizeof copy_dir);
    size_t len;
    char *bytes = kiln_test_read_file(BUILT_EXAMPLE, &len);
    ASSERT(bytes != NULL);
    snprintf(path, sizeof path, "%s/example_copy.so", copy_dir);
    ASSERT_EQ_INT(kiln_test_write_file(path, bytes, len), 0);
    free(bytes);
    const char *dirs[] = {dir, copy_dir, NULL};
    kiln_engine_t *e = pl_engine(dirs, 0); /* dir is also the default folder */
    /* again.so comes first in name order; example.so (the same file) is skipped */
    ASSERT_LOG("again.so': loaded pack 'example' with 6 nodes", NULL);
    ASSERT_EQ_INT(pl_log_count("loaded pack 'example'"), 1);
    ASSERT_EQ_INT(pl_log_count("/example.so'"), 0);
    ASSERT_LOG("example_copy.so': refused: pack 'example': a pack with this name is already "
               "registered", NULL);
    ASSERT_EQ_INT(pl_log_count("plugin"), 2);
    tp_close(e);
}

/* Folders load in the order given, files in name order within a folder. */
static void test_load_order(void)
{
    char a[512], b[512];
    pl_mkdir("a", a, sizeof a);
    pl_mkdir("b", b, sizeof b);
    pl_link(b, "z_good.so", PL_BROKEN_PACKS "/good.so");
    pl_link(a, "m_node_error.so", PL_BROKEN_PACKS "/node_error.so");
    pl_link(a, "b_bad_outputs.so", PL_BROKEN_PACKS "/bad_outputs.so");
    const char *dirs[] = {b, a, NULL};
    kiln_engine_t *e = pl_engine(dirs, 1);
    const char *z = strstr(pl_log, "z_good.so"), *m = strstr(pl_log, "m_node_error.so"),
               *o = strstr(pl_log, "b_bad_outputs.so");
    ASSERT(z && m && o);
    ASSERT(z < o && o < m);
    tp_close(e);
}

KILN_TEST_MAIN(TEST(test_default_folder_loads), TEST(test_no_default_skips_the_folder),
               TEST(test_missing_folders), TEST(test_duplicates), TEST(test_load_order))
