/* Helpers of the plugin tests: a log recorder (the engine's log option), engines whose
 * plugin folders the test chooses, a probe node that reports what an IMAGE holds, and the
 * paths of the packs CMake built (<build>/packs, <build>/test_plugins).
 *
 * Header-only on purpose: each test program includes it once. */
#ifndef KILN_TESTS_TEST_PLUGIN_COMMON_H
#define KILN_TESTS_TEST_PLUGIN_COMMON_H

#include <kiln/kiln.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_sched_pack.h"

#define PL_BUILT_PACKS KILN_BINARY_DIR "/packs"
#define PL_BROKEN_PACKS KILN_BINARY_DIR "/test_plugins"

/* ---- the log ---------------------------------------------------------------------------- */

static pthread_mutex_t pl_log_mu = PTHREAD_MUTEX_INITIALIZER;
static char pl_log[65536]; /* "[level] msg\n" per line */

static void pl_log_sink(void *ud, kiln_log_level_t level, const char *msg)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    pthread_mutex_lock(&pl_log_mu);
    size_t len = strlen(pl_log);
    snprintf(pl_log + len, sizeof pl_log - len, "[%s] %s\n",
             (unsigned)level < 4 ? names[level] : "?", msg);
    pthread_mutex_unlock(&pl_log_mu);
}

static void pl_log_clear(void)
{
    pthread_mutex_lock(&pl_log_mu);
    pl_log[0] = '\0';
    pthread_mutex_unlock(&pl_log_mu);
}

/* The log line that contains both a and b (static copy, without the newline), or NULL. */
static const char *pl_log_line(const char *a, const char *b)
{
    static char line[2048];
    for (const char *p = pl_log; *p;) {
        const char *end = strchr(p, '\n');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        snprintf(line, sizeof line, "%.*s", (int)n, p);
        if (strstr(line, a) && (!b || strstr(line, b)))
            return line;
        p += n + (end ? 1 : 0);
    }
    return NULL;
}

/* Lines of the log that contain s. */
static int pl_log_count(const char *s)
{
    int n = 0;
    for (const char *p = strstr(pl_log, s); p; p = strstr(p, s)) {
        n++;
        p = strchr(p, '\n'); /* the next line */
        if (!p)
            break;
    }
    return n;
}

#define ASSERT_LOG(a, b)                                                                   \
    do {                                                                                   \
        if (!pl_log_line((a), (b)))                                                        \
            kiln_test_fail(__FILE__, __LINE__, "no log line with \"%s\" and \"%s\":\n%s",  \
                           (a), (b) ? (const char *)(b) : "", pl_log);                     \
    } while (0)

/* ---- engines ---------------------------------------------------------------------------- */

/* An engine rooted in the test's scratch folder that loads the plugin folders dirs (NULL
 * or NULL-terminated) after its default <tmp>/plugins, with the log recorded and the
 * test pack of test_sched_pack.h registered. */
static kiln_engine_t *pl_engine(const char *const *dirs, int no_default)
{
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.base_directory = kiln_test_tmpdir();
    o.plugin_dirs = dirs;
    o.no_default_plugins = no_default;
    o.log = pl_log_sink;
    o.cpu_lanes = 2;
    pl_log_clear();
    kiln_engine_t *e = NULL;
    ASSERT_EQ_INT(kiln_engine_new(&o, &e), 0);
    ASSERT_EQ_INT(kiln_engine_add_pack(e, "test", test_pack_init), 0);
    tp_reset();
    return e;
}

/* Creates the folder <tmp>/<leaf> (if needed) and writes its path to out. */
static void pl_mkdir(const char *leaf, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", kiln_test_tmpdir(), leaf);
    ASSERT(mkdir(out, 0755) == 0 || access(out, F_OK) == 0);
}

/* Links <dir>/<name> to target (so a folder holds just the packs a test wants). */
static void pl_link(const char *dir, const char *name, const char *target)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ASSERT_EQ_INT(symlink(target, path), 0);
}

/* Executes prompt json, collecting events into ev (cleared first); returns the code. */
static int pl_run(kiln_engine_t *e, const char *json, tp_events_t *ev)
{
    tp_events_clear(ev);
    return tp_run(e, json, ev);
}

/* ---- a probe node ----------------------------------------------------------------------- *
 * TProbe image:IMAGE (output node): appends to ui "probe" one string per call,
 * "BxHxWxC|s0:r,g,b|...|c:r,g,b": the first pixel of every sample, then pixel (1, 1) of
 * sample 0, each channel with 5 decimals. */

static int pl_probe_execute(kiln_call_t *call)
{
    kiln_tensor_t *t = kiln_value_get_tensor(kiln_call_input(call, "image"));
    kiln_tensor_t *dense = NULL;
    if (!t || kiln_tensor_ndim(t) != 4 || kiln_tensor_contiguous(t, &dense) != 0)
        return kiln_call_fail(call, "probe: not an image");
    const float *px = kiln_tensor_data(dense);
    int64_t b = kiln_tensor_dim(t, 0), h = kiln_tensor_dim(t, 1), w = kiln_tensor_dim(t, 2),
            c = kiln_tensor_dim(t, 3);
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "\"%lldx%lldx%lldx%lld", (long long)b, (long long)h,
                     (long long)w, (long long)c);
    for (int64_t s = 0; s < b && s < 8; s++) {
        const float *p = px + s * h * w * c;
        n += snprintf(buf + n, sizeof buf - (size_t)n, "|s%lld:%.5f,%.5f,%.5f", (long long)s,
                      p[0], p[1], p[2]);
    }
    if (h > 1 && w > 1) {
        const float *p = px + (w + 1) * c;
        n += snprintf(buf + n, sizeof buf - (size_t)n, "|c:%.5f,%.5f,%.5f", p[0], p[1], p[2]);
    }
    snprintf(buf + n, sizeof buf - (size_t)n, "\"");
    kiln_tensor_release(dense);
    return kiln_call_ui_append(call, "probe", buf);
}

static const kiln_input_def_t pl_probe_in[] = {
    {KILN_INPUT_DEF_INIT, .name = "image", .type = "IMAGE"}, {0}};
static const kiln_output_def_t pl_probe_out[] = {{0}};
static const kiln_node_def_t pl_probe_def = {
    KILN_NODE_DEF_INIT, .name = "TProbe", .category = "test", .inputs = pl_probe_in,
    .outputs = pl_probe_out, .flags = KILN_NODE_OUTPUT, .execute = pl_probe_execute};
static const kiln_node_def_t *const pl_probe_nodes[] = {&pl_probe_def, NULL};

static int pl_probe_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    out->name = "probe";
    out->nodes = pl_probe_nodes;
    return 0;
}

/* The "executed" event line of node id, or NULL. */
static const char *pl_executed(const tp_events_t *ev, const char *id)
{
    char key[64];
    snprintf(key, sizeof key, "\"node\":\"%s\"", id);
    for (int i = 0; i < ev->n; i++)
        if (strncmp(ev->lines[i], "executed ", 9) == 0 && strstr(ev->lines[i], key))
            return ev->lines[i];
    return NULL;
}

#endif
