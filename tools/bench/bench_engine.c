/* Engine overhead benchmark: plans and runs graphs of trivial nodes and prints the
 * engine's cost per node (parse + validate + plan + dispatch + events), median of
 * several runs after a warm-up. Trivial nodes do almost nothing, so nearly all of the
 * time measured is the engine's own. */
#include <kiln/kiln.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/sbuf.h"

enum { RUNS = 15, WARMUP = 3 };

static int add_execute(kiln_call_t *call)
{
    int64_t a = 0, b = 0, k = 0;
    const kiln_value_t *va = kiln_call_input(call, "a"), *vb = kiln_call_input(call, "b");
    if (va)
        kiln_value_get_int(va, &a);
    if (vb)
        kiln_value_get_int(vb, &b);
    kiln_value_get_int(kiln_call_input(call, "k"), &k);
    return kiln_call_set_output(call, 0, kiln_value_new_int(a + b + k));
}

static int sink_execute(kiln_call_t *call)
{
    return 0;
}

static const kiln_input_def_t add_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "k", .type = "INT", .has_default = 1, .min_int = -1000000,
     .max_int = 1000000},
    {KILN_INPUT_DEF_INIT, .name = "a", .type = "INT", .section = KILN_INPUT_OPTIONAL,
     .flags = KILN_INPUT_FORCE_INPUT},
    {KILN_INPUT_DEF_INIT, .name = "b", .type = "INT", .section = KILN_INPUT_OPTIONAL,
     .flags = KILN_INPUT_FORCE_INPUT},
    {0}};
static const kiln_output_def_t add_outputs[] = {{KILN_OUTPUT_DEF_INIT, .type = "INT"}, {0}};
static const kiln_input_def_t sink_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "a", .type = "INT", .flags = KILN_INPUT_FORCE_INPUT},
    {0}};
static const kiln_output_def_t no_outputs[] = {{0}};
static const kiln_node_def_t add_def = {KILN_NODE_DEF_INIT, .name = "BenchAdd",
                                        .category = "bench", .inputs = add_inputs,
                                        .outputs = add_outputs, .execute = add_execute};
static const kiln_node_def_t sink_def = {KILN_NODE_DEF_INIT, .name = "BenchSink",
                                         .category = "bench", .inputs = sink_inputs,
                                         .outputs = no_outputs, .flags = KILN_NODE_OUTPUT,
                                         .execute = sink_execute};
static const kiln_node_def_t *const bench_nodes[] = {&add_def, &sink_def, NULL};

static int bench_init(const kiln_host_api_t *api, kiln_plugin_t *out)
{
    out->name = "bench";
    out->nodes = bench_nodes;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A layered graph: node i adds nodes i-1 and i/2, so it is deep and has many joins; every
 * node is upstream of the sink. `salt` changes the root constant so nothing is cached. */
static char *layered_graph(int n, int salt)
{
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_printf(&b, "{\"0\":{\"class_type\":\"BenchAdd\",\"inputs\":{\"k\":%d}}", salt);
    for (int i = 1; i < n - 1; i++)
        kiln__sbuf_printf(&b, ",\"%d\":{\"class_type\":\"BenchAdd\",\"inputs\":{\"k\":1,"
                              "\"a\":[\"%d\",0],\"b\":[\"%d\",0]}}", i, i - 1, i / 2);
    kiln__sbuf_printf(&b, ",\"%d\":{\"class_type\":\"BenchSink\",\"inputs\":{\"a\":[\"%d\",0]}}}",
                      n - 1, n - 2);
    return kiln__sbuf_take(&b, NULL);
}

/* Diamonds in series: top -> (left, right) -> join -> next top; 4 nodes per diamond. */
static char *diamond_graph(int n, int salt)
{
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_printf(&b, "{\"0\":{\"class_type\":\"BenchAdd\",\"inputs\":{\"k\":%d}}", salt);
    int last = 0, id = 1;
    while (id + 3 < n) {
        kiln__sbuf_printf(&b, ",\"%d\":{\"class_type\":\"BenchAdd\",\"inputs\":{\"k\":1,"
                              "\"a\":[\"%d\",0]}}", id, last);
        kiln__sbuf_printf(&b, ",\"%d\":{\"class_type\":\"BenchAdd\",\"inputs\":{\"k\":2,"
                              "\"a\":[\"%d\",0]}}", id + 1, last);
        kiln__sbuf_printf(&b, ",\"%d\":{\"class_type\":\"BenchAdd\",\"inputs\":{\"k\":3,"
                              "\"a\":[\"%d\",0],\"b\":[\"%d\",0]}}", id + 2, id, id + 1);
        last = id + 2;
        id += 3;
    }
    while (id < n - 1) {
        kiln__sbuf_printf(&b, ",\"%d\":{\"class_type\":\"BenchAdd\",\"inputs\":{\"k\":1,"
                              "\"a\":[\"%d\",0]}}", id, last);
        last = id++;
    }
    kiln__sbuf_printf(&b, ",\"%d\":{\"class_type\":\"BenchSink\",\"inputs\":{\"a\":[\"%d\",0]}}}",
                      id, last);
    return kiln__sbuf_take(&b, NULL);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void count_events(void *ud, const kiln_event_t *ev)
{
    ++*(long *)ud;
}

/* Runs one graph shape RUNS times after WARMUP and prints the medians. */
static int bench(kiln_engine_t *e, const char *name, int n, char *(*make)(int, int))
{
    double plan[RUNS], run[RUNS];
    long events = 0;
    for (int r = -WARMUP; r < RUNS; r++) {
        char *json = make(n, r + 100);
        kiln_prompt_t *p = NULL;
        char *errors = NULL;
        double t0 = now_s();
        int rc = kiln_prompt_new(e, json, strlen(json), NULL, 0, &p, &errors);
        double t1 = now_s();
        if (rc == 0)
            rc = kiln_engine_execute(e, p, "bench", NULL, count_events, &events);
        double t2 = now_s();
        if (rc != 0) {
            fprintf(stderr, "bench %s failed: %s %s\n", name, kiln_strerror(rc),
                    errors ? errors : "");
            return 1;
        }
        kiln_free(errors);
        kiln_prompt_free(p);
        free(json);
        if (r >= 0) {
            plan[r] = t1 - t0;
            run[r] = t2 - t1;
        }
    }
    qsort(plan, RUNS, sizeof *plan, cmp_double);
    qsort(run, RUNS, sizeof *run, cmp_double);
    double p = plan[RUNS / 2], x = run[RUNS / 2];
    printf("| %-22s | %5d | %9.3f | %9.3f | %9.2f | %9.2f |\n", name, n, p * 1e3, x * 1e3,
           p / n * 1e6, (p + x) / n * 1e6);
    return 0;
}

int main(int argc, char **argv)
{
    kiln_engine_options_t opt = KILN_ENGINE_OPTIONS_INIT;
    opt.base_directory = "/tmp/kiln_bench";
    opt.cache_mode = KILN_CACHE_CLASSIC;
    kiln_engine_t *e = NULL;
    if (kiln_engine_new(&opt, &e) != 0 || kiln_engine_add_pack(e, "bench", bench_init) != 0) {
        fprintf(stderr, "bench: cannot start the engine\n");
        return 1;
    }
    printf("engine overhead, median of %d runs after %d warm-up runs (nothing cached: the\n"
           "root constant changes every run)\n\n", RUNS, WARMUP);
    printf("| %-22s | %5s | %9s | %9s | %9s | %9s |\n", "graph", "nodes", "plan ms",
           "run ms", "plan us/n", "total us/n");
    printf("|------------------------|-------|-----------|-----------|-----------|-----------|\n");
    int rc = bench(e, "layered (i-1, i/2)", 1000, layered_graph);
    rc |= bench(e, "diamonds", 100, diamond_graph);
    rc |= bench(e, "layered (i-1, i/2)", 10000, layered_graph);
    kiln_engine_close(e);
    return rc;
}
