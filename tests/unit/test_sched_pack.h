/* A node pack for scheduler, cache and engine tests, registered from test code with
 * kiln_engine_add_pack(e, "test", test_pack_init). Nodes count their execute() calls per
 * node id, so tests can assert exactly which nodes ran; an event recorder keeps every
 * event as "name data_json" in order.
 *
 *   TConst   value:INT                 -> INT            (the value)
 *   TAdd     a:INT, b:INT (optional)   -> INT            (a + b)
 *   TSleep   x:INT, ms:INT, steps:INT  -> INT            (x, after ms, reporting progress)
 *   TFail    x:INT                     -> INT            (always fails with "boom <x>")
 *   TRange   n:INT                     -> INT (is_list)  (0, 1, ..., n-1)
 *   TSumList x:INT (INPUT_IS_LIST)     -> INT            (sum of the whole list)
 *   TBytes   n:INT, tag:INT            -> STRING         (n bytes of 'a' + the tag)
 *   TOut     value:* (output node)     -> (none)         (ui {"values": [value]})
 *   TMeta    value:* (output node, hidden PROMPT/EXTRA_PNGINFO/UNIQUE_ID)
 *   TNonce   x:INT (not idempotent)    -> INT
 *   TChanged x:INT, fp:STRING           -> INT  is_changed returns fp; fp "fail" fails
 *
 * Header-only on purpose: each test program includes it once. */
#ifndef KILN_TESTS_TEST_SCHED_PACK_H
#define KILN_TESTS_TEST_SCHED_PACK_H

#include <kiln/kiln.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runner.h"

/* Each test program uses a different subset of these helpers. */
#pragma GCC diagnostic ignored "-Wunused-function"

/* ---- execution counters ------------------------------------------------------------- */

#define TP_MAX_IDS 64

static pthread_mutex_t tp_mu = PTHREAD_MUTEX_INITIALIZER;
static char tp_ids[TP_MAX_IDS][16];
static int tp_counts[TP_MAX_IDS];
static int tp_n_ids;
static int tp_running, tp_max_running; /* concurrency watermark */
static char tp_order[256];             /* node ids in start order, comma separated */

static void tp_count(const char *id)
{
    pthread_mutex_lock(&tp_mu);
    int i = 0;
    while (i < tp_n_ids && strcmp(tp_ids[i], id) != 0)
        i++;
    if (i == tp_n_ids && tp_n_ids < TP_MAX_IDS)
        snprintf(tp_ids[tp_n_ids++], sizeof tp_ids[0], "%s", id);
    if (i < TP_MAX_IDS)
        tp_counts[i]++;
    size_t len = strlen(tp_order);
    snprintf(tp_order + len, sizeof tp_order - len, "%s%s", len ? "," : "", id);
    pthread_mutex_unlock(&tp_mu);
}

/* execute() calls of node id so far. */
static int tp_runs(const char *id)
{
    pthread_mutex_lock(&tp_mu);
    int n = 0;
    for (int i = 0; i < tp_n_ids; i++)
        if (strcmp(tp_ids[i], id) == 0)
            n = tp_counts[i];
    pthread_mutex_unlock(&tp_mu);
    return n;
}

static void tp_reset(void)
{
    pthread_mutex_lock(&tp_mu);
    tp_n_ids = 0;
    memset(tp_counts, 0, sizeof tp_counts);
    tp_order[0] = '\0';
    tp_max_running = 0;
    pthread_mutex_unlock(&tp_mu);
}

static double tp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- nodes -------------------------------------------------------------------------- */

static int64_t tp_int(kiln_call_t *call, const char *name, int64_t dflt)
{
    int64_t v = dflt;
    const kiln_value_t *val = kiln_call_input(call, name);
    if (val)
        kiln_value_get_int(val, &v);
    return v;
}

static int tp_const(kiln_call_t *call)
{
    tp_count(kiln_call_node_id(call));
    return kiln_call_set_output(call, 0, kiln_value_new_int(tp_int(call, "value", 0)));
}

static int tp_add(kiln_call_t *call)
{
    tp_count(kiln_call_node_id(call));
    return kiln_call_set_output(call, 0,
                                kiln_value_new_int(tp_int(call, "a", 0) + tp_int(call, "b", 0)));
}

static int tp_sleep(kiln_call_t *call)
{
    tp_count(kiln_call_node_id(call));
    pthread_mutex_lock(&tp_mu);
    if (++tp_running > tp_max_running)
        tp_max_running = tp_running;
    pthread_mutex_unlock(&tp_mu);
    int64_t ms = tp_int(call, "ms", 0), steps = tp_int(call, "steps", 1);
    int rc = 0;
    for (int64_t s = 1; s <= steps && rc == 0; s++) {
        struct timespec ts = {(time_t)(ms / steps / 1000), (long)(ms / steps % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        rc = kiln_call_progress(call, (uint64_t)s, (uint64_t)steps);
    }
    pthread_mutex_lock(&tp_mu);
    tp_running--;
    pthread_mutex_unlock(&tp_mu);
    if (rc != 0)
        return rc;
    return kiln_call_set_output(call, 0, kiln_value_new_int(tp_int(call, "x", 0)));
}

static int tp_fail(kiln_call_t *call)
{
    tp_count(kiln_call_node_id(call));
    return kiln_call_failf(call, "boom %lld", (long long)tp_int(call, "x", 0));
}

static int tp_range(kiln_call_t *call)
{
    tp_count(kiln_call_node_id(call));
    int64_t n = tp_int(call, "n", 0);
    for (int64_t i = 0; i < n; i++) {
        int rc = kiln_call_set_output(call, 0, kiln_value_new_int(i));
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int tp_sum_list(kiln_call_t *call)
{
    tp_count(kiln_call_node_id(call));
    int64_t sum = 0;
    for (size_t i = 0; i < kiln_call_input_count(call, "x"); i++) {
        int64_t v = 0;
        kiln_value_get_int(kiln_call_input_at(call, "x", i), &v);
        sum += v;
    }
    return kiln_call_set_output(call, 0, kiln_value_new_int(sum));
}

static int tp_bytes(kiln_call_t *call)
{
    tp_count(kiln_call_node_id(call));
    size_t n = (size_t)tp_int(call, "n", 0);
    char *s = malloc(n + 32);
    if (!s)
        return KILN_ENOMEM;
    memset(s, 'a', n);
    int len = snprintf(s + n, 32, "%lld", (long long)tp_int(call, "tag", 0));
    kiln_value_t *v = kiln_value_new_string(s, n + (size_t)len);
    free(s);
    return kiln_call_set_output(call, 0, v);
}

/* ui {"values": [value]} with the value's JSON form (INT or the string). */
static int tp_out(kiln_call_t *call)
{
    tp_count(kiln_call_node_id(call));
    const kiln_value_t *v = kiln_call_input(call, "value");
    char text[64] = "null";
    int64_t i;
    if (v && kiln_value_get_int(v, &i) == 0)
        snprintf(text, sizeof text, "%lld", (long long)i);
    return kiln_call_ui_append(call, "values", text);
}

/* ui {"meta": [key...], "texts": [text...], "hidden": [prompt, pnginfo, id]} */
static int tp_meta(kiln_call_t *call)
{
    tp_count(kiln_call_node_id(call));
    char buf[4096];
    for (size_t i = 0; i < kiln_call_metadata_count(call); i++) {
        const char *key, *text;
        if (kiln_call_metadata_get(call, i, &key, &text) != 0)
            return kiln_call_fail(call, "metadata_get failed");
        snprintf(buf, sizeof buf, "\"%s\"", key);
        kiln_call_ui_append(call, "meta", buf);
        /* The text is JSON itself: keep it as a JSON value. */
        kiln_call_ui_append(call, "texts", text);
    }
    const char *names[] = {"prompt", "extra_pnginfo", "unique_id"};
    for (int k = 0; k < 3; k++) {
        const char *s = NULL;
        size_t len = 0;
        const kiln_value_t *v = kiln_call_input(call, names[k]);
        if (v && kiln_value_get_string(v, &s, &len) == 0 && k < 2) {
            kiln_call_ui_append(call, "hidden", s); /* PROMPT, EXTRA_PNGINFO: JSON text */
        } else if (v && k == 2) {
            snprintf(buf, sizeof buf, "\"%s\"", s);
            kiln_call_ui_append(call, "hidden", buf);
        } else
            kiln_call_ui_append(call, "hidden", "null");
    }
    return 0;
}

static int tp_changed_execute(kiln_call_t *call)
{
    tp_count(kiln_call_node_id(call));
    return kiln_call_set_output(call, 0, kiln_value_new_int(tp_int(call, "x", 0)));
}

static int tp_changed_hook(kiln_call_t *call, char *out, size_t out_size)
{
    const char *fp = "";
    size_t len;
    const kiln_value_t *v = kiln_call_input(call, "fp");
    if (v)
        kiln_value_get_string(v, &fp, &len);
    if (strcmp(fp, "fail") == 0)
        return kiln_call_fail(call, "fingerprint failed");
    snprintf(out, out_size, "%s", fp);
    return 0;
}

#define TP_INT(n) {KILN_INPUT_DEF_INIT, .name = n, .type = "INT", .has_default = 1}
#define TP_INT_OPT(n) \
    {KILN_INPUT_DEF_INIT, .name = n, .type = "INT", .section = KILN_INPUT_OPTIONAL}
#define TP_OUT_INT {KILN_OUTPUT_DEF_INIT, .type = "INT"}

static const kiln_input_def_t tp_in_value[] = {TP_INT("value"), {0}};
static const kiln_input_def_t tp_in_ab[] = {TP_INT("a"), TP_INT_OPT("b"), {0}};
static const kiln_input_def_t tp_in_sleep[] = {TP_INT("x"), TP_INT("ms"), TP_INT("steps"), {0}};
static const kiln_input_def_t tp_in_x[] = {TP_INT("x"), {0}};
static const kiln_input_def_t tp_in_n[] = {TP_INT("n"), {0}};
static const kiln_input_def_t tp_in_bytes[] = {TP_INT("n"), TP_INT("tag"), {0}};
static const kiln_input_def_t tp_in_any[] = {
    {KILN_INPUT_DEF_INIT, .name = "value", .type = "*"}, {0}};
static const kiln_input_def_t tp_in_meta[] = {
    {KILN_INPUT_DEF_INIT, .name = "value", .type = "*"},
    {KILN_INPUT_DEF_INIT, .name = "prompt", .type = "PROMPT", .section = KILN_INPUT_HIDDEN},
    {KILN_INPUT_DEF_INIT, .name = "extra_pnginfo", .type = "EXTRA_PNGINFO",
     .section = KILN_INPUT_HIDDEN},
    {KILN_INPUT_DEF_INIT, .name = "unique_id", .type = "UNIQUE_ID",
     .section = KILN_INPUT_HIDDEN},
    {0}};
static const kiln_input_def_t tp_in_changed[] = {
    TP_INT("x"), {KILN_INPUT_DEF_INIT, .name = "fp", .type = "STRING", .has_default = 1,
                  .default_string = ""},
    {0}};
static const kiln_output_def_t tp_out_int[] = {TP_OUT_INT, {0}};
static const kiln_output_def_t tp_out_int_list[] = {
    {KILN_OUTPUT_DEF_INIT, .type = "INT", .is_list = 1}, {0}};
static const kiln_output_def_t tp_out_string[] = {{KILN_OUTPUT_DEF_INIT, .type = "STRING"}, {0}};
static const kiln_output_def_t tp_out_none[] = {{0}};

#define TP_NODE(var, nm, in, out, fn, fl)                                                     \
    static const kiln_node_def_t var = {KILN_NODE_DEF_INIT, .name = nm, .category = "test",  \
                                        .inputs = in, .outputs = out, .execute = fn,        \
                                        .flags = fl}
TP_NODE(tp_def_const, "TConst", tp_in_value, tp_out_int, tp_const, 0);
TP_NODE(tp_def_add, "TAdd", tp_in_ab, tp_out_int, tp_add, 0);
TP_NODE(tp_def_sleep, "TSleep", tp_in_sleep, tp_out_int, tp_sleep, 0);
TP_NODE(tp_def_fail, "TFail", tp_in_x, tp_out_int, tp_fail, 0);
TP_NODE(tp_def_range, "TRange", tp_in_n, tp_out_int_list, tp_range, 0);
TP_NODE(tp_def_sum, "TSumList", tp_in_x, tp_out_int, tp_sum_list, KILN_NODE_INPUT_IS_LIST);
TP_NODE(tp_def_bytes, "TBytes", tp_in_bytes, tp_out_string, tp_bytes, 0);
TP_NODE(tp_def_out, "TOut", tp_in_any, tp_out_none, tp_out, KILN_NODE_OUTPUT);
TP_NODE(tp_def_meta, "TMeta", tp_in_meta, tp_out_none, tp_meta, KILN_NODE_OUTPUT);
TP_NODE(tp_def_nonce, "TNonce", tp_in_x, tp_out_int, tp_const, KILN_NODE_NOT_IDEMPOTENT);
static const kiln_node_def_t tp_def_changed = {
    KILN_NODE_DEF_INIT, .name = "TChanged", .category = "test", .inputs = tp_in_changed,
    .outputs = tp_out_int, .execute = tp_changed_execute, .is_changed = tp_changed_hook};

static const kiln_node_def_t *const tp_nodes[] = {
    &tp_def_const, &tp_def_add, &tp_def_sleep, &tp_def_fail, &tp_def_range, &tp_def_sum,
    &tp_def_bytes, &tp_def_out, &tp_def_meta, &tp_def_nonce, &tp_def_changed, NULL};

static int test_pack_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    out->name = "test";
    out->nodes = tp_nodes;
    return 0;
}

/* ---- events -------------------------------------------------------------------------- */

typedef struct tp_events {
    pthread_mutex_t mu;
    char *lines[512];       /* "name data_json" */
    int n;
} tp_events_t;

static void tp_on_event(void *ud, const kiln_event_t *ev)
{
    tp_events_t *r = ud;
    pthread_mutex_lock(&r->mu);
    if (r->n < 512) {
        size_t len = strlen(ev->name) + strlen(ev->data_json) + 2;
        r->lines[r->n] = malloc(len);
        snprintf(r->lines[r->n], len, "%s %s", ev->name, ev->data_json);
        r->n++;
    }
    pthread_mutex_unlock(&r->mu);
}

static void tp_events_init(tp_events_t *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
}

static void tp_events_clear(tp_events_t *r)
{
    for (int i = 0; i < r->n; i++)
        free(r->lines[i]);
    r->n = 0;
}

/* Index of the first event whose line starts with prefix, from `from`; -1 when none. */
static int tp_find(const tp_events_t *r, const char *prefix, int from)
{
    for (int i = from; i < r->n; i++)
        if (strncmp(r->lines[i], prefix, strlen(prefix)) == 0)
            return i;
    return -1;
}

static int tp_count_events(const tp_events_t *r, const char *prefix)
{
    int n = 0;
    for (int i = 0; i < r->n; i++)
        if (strncmp(r->lines[i], prefix, strlen(prefix)) == 0)
            n++;
    return n;
}

/* Copies line with every "timestamp":<digits> replaced by "timestamp":T (static buffer). */
static const char *tp_no_ts(const char *line)
{
    static char buf[8192];
    size_t o = 0;
    const char *key = "\"timestamp\":";
    while (*line && o + 1 < sizeof buf) {
        if (strncmp(line, key, strlen(key)) == 0) {
            size_t k = strlen(key);
            if (o + k + 2 >= sizeof buf)
                break;
            memcpy(buf + o, key, k);
            o += k;
            buf[o++] = 'T';
            line += k;
            while (*line >= '0' && *line <= '9')
                line++;
            continue;
        }
        buf[o++] = *line++;
    }
    buf[o] = '\0';
    return buf;
}

/* ---- engine helpers ------------------------------------------------------------------ */

/* An engine rooted in the test's scratch folder with the test pack registered. */
static kiln_engine_t *tp_engine(kiln_engine_options_t *opt)
{
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    if (opt)
        o = *opt;
    o.base_directory = kiln_test_tmpdir();
    kiln_engine_t *e = NULL;
    ASSERT_EQ_INT(kiln_engine_new(&o, &e), 0);
    ASSERT_EQ_INT(kiln_engine_add_pack(e, "test", test_pack_init), 0);
    tp_reset();
    return e;
}

static kiln_prompt_t *tp_prompt(kiln_engine_t *e, const char *json)
{
    kiln_prompt_t *p = NULL;
    char *errors = NULL;
    int rc = kiln_prompt_new(e, json, strlen(json), NULL, 0, &p, &errors);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "prompt rejected (%d): %s", rc,
                       errors ? errors : "(no body)");
    kiln_free(errors);
    return p;
}

/* Builds, executes and frees a prompt; returns kiln_engine_execute's code. */
static int tp_run(kiln_engine_t *e, const char *json, tp_events_t *ev)
{
    kiln_prompt_t *p = tp_prompt(e, json);
    int rc = kiln_engine_execute(e, p, "p1", "{}", ev ? tp_on_event : NULL, ev);
    kiln_prompt_free(p);
    return rc;
}

static void tp_close(kiln_engine_t *e)
{
    ASSERT_EQ_INT(kiln_engine_close(e), 0);
}

#endif
