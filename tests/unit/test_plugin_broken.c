/* Deliberately broken plugins (tests/plugins/NAME.c, built by CMake as
 * <build>/test_plugins/NAME.so) loaded through the real loader: each refusal is one clear
 * log line naming the file and the reason, nothing of a refused pack registers, the good
 * packs of the same folder load, nodes that fail or break the output contract end their
 * prompt in execution_error, and the engine serves the next prompt every time. */
#include <stdbool.h>

#include "test_plugin_common.h"

/* A core-only workflow: EmptyImage -> SaveImage, plus GoodDouble(3) -> TOut. */
static const char NORMAL[] =
    "{\"1\": {\"class_type\": \"EmptyImage\", \"inputs\": {\"width\": 2, \"height\": 2,"
    "  \"batch_size\": 1, \"color\": 0}},"
    " \"2\": {\"class_type\": \"SaveImage\", \"inputs\": {\"images\": [\"1\", 0],"
    "  \"filename_prefix\": \"normal\"}},"
    " \"3\": {\"class_type\": \"GoodDouble\", \"inputs\": {\"x\": 3}},"
    " \"4\": {\"class_type\": \"TOut\", \"inputs\": {\"value\": [\"3\", 0]}}}";

/* Runs NORMAL and checks that it succeeded. */
static void expect_normal_run(kiln_engine_t *e, tp_events_t *ev)
{
    ASSERT_EQ_INT(pl_run(e, NORMAL, ev), 0);
    ASSERT(tp_find(ev, "execution_success", 0) >= 0);
    const char *out = pl_executed(ev, "4");
    ASSERT(out != NULL);
    ASSERT_STR_CONTAINS(out, "\"values\":[6]");
    ASSERT(pl_executed(ev, "2") != NULL);
}

/* An engine loading every broken pack, and a folder with a file that is no library. */
static kiln_engine_t *broken_engine(void)
{
    char junk[512], path[600];
    pl_mkdir("junk", junk, sizeof junk);
    snprintf(path, sizeof path, "%s/junk.so", junk);
    ASSERT_EQ_INT(kiln_test_write_file(path, "not an ELF file\n", 16), 0);
    snprintf(path, sizeof path, "%s/notes.txt", junk);
    ASSERT_EQ_INT(kiln_test_write_file(path, "ignored\n", 8), 0);
    static char junk_dir[512];
    snprintf(junk_dir, sizeof junk_dir, "%s", junk);
    static const char *dirs[3];
    dirs[0] = PL_BROKEN_PACKS;
    dirs[1] = junk_dir;
    dirs[2] = NULL;
    return pl_engine(dirs, 1);
}

static void test_each_refusal_is_one_clear_line(void)
{
    kiln_engine_t *e = broken_engine();
    ASSERT_LOG("no_entry.so': refused: missing entry point kiln_plugin_init", NULL);
    ASSERT_LOG("abi_tagged.so': refused: built for ABI major 2 (ABI 2.3), kiln has 1", NULL);
    char abi_line[160];
    snprintf(abi_line, sizeof abi_line,
             "abi_major.so': refused: built for another ABI major: its init refused kiln's "
             "ABI %d.%d", KILN_ABI_MAJOR, KILN_ABI_MINOR);
    ASSERT_LOG(abi_line, NULL);
    ASSERT_LOG("dup_names.so': refused: pack 'dup_names': node 'BrokenTwin': duplicate node "
               "name", NULL);
    ASSERT_LOG("dup_core.so': refused: pack 'dup_core': node 'SaveImage': duplicate node name "
               "(already registered by pack 'core')", NULL);
    ASSERT_LOG("bad_widget.so': refused: pack 'bad_widget': node 'BrokenWidget': input 'steps': "
               "min 10 > max 1", NULL);
    ASSERT_LOG("init_fails.so': refused: pack 'init_fails': init failed: out of memory (-1)", NULL);
    ASSERT_LOG("junk.so': refused: cannot load: ", NULL);
    ASSERT_LOG("[error] plugin '" PL_BROKEN_PACKS "/no_entry.so'", NULL);
    /* one line per file (init_fails also logged its own warning) */
    const char *files[] = {"no_entry.so", "abi_tagged.so", "abi_major.so", "dup_names.so",
                           "dup_core.so", "bad_widget.so", "junk.so", "good.so",
                           "node_error.so", "bad_outputs.so"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        ASSERT_EQ_INT(pl_log_count(files[i]), 1);
    ASSERT_EQ_INT(pl_log_count("init_fails.so"), 1);
    ASSERT_LOG("[warn] init_fails: refusing to start, on purpose", NULL);
    ASSERT_EQ_INT(pl_log_count("notes.txt"), 0);
    /* the good packs of the same folders loaded */
    ASSERT_LOG("good.so': loaded pack 'good' with 1 node", NULL);
    ASSERT_LOG("node_error.so': loaded pack 'node_error' with 1 node", NULL);
    ASSERT_LOG("bad_outputs.so': loaded pack 'bad_outputs' with 3 nodes", NULL);
    tp_close(e);
}

static void test_refused_packs_register_nothing(void)
{
    kiln_engine_t *e = broken_engine();
    const char *absent[] = {"DupNamesFine", "BrokenTwin", "BrokenWidget", "BrokenFutureNode"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) {
        char *json = NULL;
        ASSERT_EQ_INT(kiln_engine_object_info(e, absent[i], &json), 0);
        ASSERT_STR_EQ(json, "{}");
        kiln_free(json);
    }
    char *json = NULL;
    ASSERT_EQ_INT(kiln_engine_object_info(e, "SaveImage", &json), 0);
    ASSERT_STR_CONTAINS(json, "\"python_module\":\"nodes\"");
    kiln_free(json);
    ASSERT_EQ_INT(kiln_engine_object_info(e, "GoodDouble", &json), 0);
    ASSERT_STR_CONTAINS(json, "\"python_module\":\"custom_nodes.good\"");
    kiln_free(json);
    /* the engine serves: core nodes (the real SaveImage) and the good plugin */
    tp_events_t ev;
    tp_events_init(&ev);
    expect_normal_run(e, &ev);
    tp_events_clear(&ev);
    tp_close(e);
}

/* Runs `prompt`, expects execution_error from node 1 of class `type` whose message
 * contains `msg`, then checks that the next prompt runs. */
static void expect_failure_then_normal(kiln_engine_t *e, const char *type, const char *msg)
{
    char prompt[512], want[256];
    snprintf(prompt, sizeof prompt,
             "{\"1\": {\"class_type\": \"%s\", \"inputs\": {\"x\": 5}},"
             " \"2\": {\"class_type\": \"PreviewImage\", \"inputs\": {\"images\": [\"1\", 0]}}}",
             type);
    tp_events_t ev;
    tp_events_init(&ev);
    ASSERT_EQ_INT(pl_run(e, prompt, &ev), KILN_ENODE);
    int at = tp_find(&ev, "execution_error", 0);
    ASSERT(at >= 0);
    snprintf(want, sizeof want, "\"node_id\":\"1\",\"node_type\":\"%s\"", type);
    ASSERT_STR_CONTAINS(ev.lines[at], want);
    ASSERT_STR_CONTAINS(ev.lines[at], msg);
    ASSERT_STR_CONTAINS(ev.lines[at], "\"exception_type\":\"kiln.NodeError\"");
    ASSERT(pl_executed(&ev, "2") == NULL);
    expect_normal_run(e, &ev);
    tp_events_clear(&ev);
}

static void test_node_error_fails_only_its_prompt(void)
{
    kiln_engine_t *e = broken_engine();
    expect_failure_then_normal(e, "BrokenFails", "\"exception_message\":\"BrokenFails refuses x=5");
    /* and again: the failure is not cached, the node runs (and fails) once more */
    expect_failure_then_normal(e, "BrokenFails", "BrokenFails refuses x=5");
    tp_close(e);
}

static void test_bad_outputs_fail_cleanly(void)
{
    kiln_engine_t *e = broken_engine();
    expect_failure_then_normal(e, "BrokenWrongType",
                               "output 0 (IMAGE) is declared IMAGE but the node set a value of "
                               "type INT");
    expect_failure_then_normal(e, "BrokenMissingOutput", "node did not set output 0 (IMAGE)");
    expect_failure_then_normal(e, "BrokenWrongList",
                               "output 0 (IMAGE) is declared IMAGE but the node set a value of "
                               "type STRING");
    tp_close(e);
}

/* True when the process maps a file whose path contains s. (/proc files report a size
 * of 0, so they are read line by line.) */
static bool mapped(const char *s)
{
    FILE *f = fopen("/proc/self/maps", "r");
    ASSERT(f != NULL);
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, s) != NULL;
    fclose(f);
    return found;
}

static void test_close_unloads_the_libraries(void)
{
    kiln_engine_t *e = broken_engine();
    ASSERT(mapped("/test_plugins/good.so"));
    ASSERT(mapped("/test_plugins/init_fails.so")); /* its init ran: kept until close */
    ASSERT(!mapped("/test_plugins/no_entry.so"));  /* never called: closed at once */
    ASSERT(!mapped("/test_plugins/abi_tagged.so"));
    tp_events_t ev;
    tp_events_init(&ev);
    expect_normal_run(e, &ev); /* a cached value of a plugin node outlives the prompt */
    tp_events_clear(&ev);
    tp_close(e);
    ASSERT(!mapped("/test_plugins/good.so"));
    ASSERT(!mapped("/test_plugins/init_fails.so"));
}

KILN_TEST_MAIN(TEST(test_each_refusal_is_one_clear_line),
               TEST(test_refused_packs_register_nothing),
               TEST(test_node_error_fails_only_its_prompt),
               TEST(test_bad_outputs_fail_cleanly),
               TEST(test_close_unloads_the_libraries))
