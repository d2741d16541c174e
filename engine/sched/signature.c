/* Cache signatures, after ComfyUI's input signatures (§6.4): a node's signature hashes
 * its class_type, its is_changed fingerprint, its id only when the class is not
 * idempotent (or asks for UNIQUE_ID), and every input in sorted key order: constants by
 * structure, links as (signature of the source, output slot). Node ids are otherwise
 * left out, so identical subgraphs share results. Because a link hashes its source's whole
 * signature, a change anywhere upstream changes every descendant's signature. */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "sched/sched_int.h"

/* Seeds for the two 64-bit halves of a constant's structural hash. */
#define SEED_LO 0x6b696c6e5f736967ull
#define SEED_HI 0x9e3779b97f4a7c15ull

bool kiln__sig_equal(const kiln__sig_t *a, const kiln__sig_t *b)
{
    return a->valid && b->valid && a->h[0] == b->h[0] && a->h[1] == b->h[1];
}

/* Feeds a length-prefixed string, so that adjacent fields cannot run into each other. */
static void put_str(XXH3_state_t *st, const char *s)
{
    uint64_t len = s ? strlen(s) : UINT64_MAX;
    XXH3_128bits_update(st, &len, sizeof len);
    if (s)
        XXH3_128bits_update(st, s, (size_t)len);
}

static void put_u64(XXH3_state_t *st, uint64_t v)
{
    XXH3_128bits_update(st, &v, sizeof v);
}

static bool wants_unique_id(const kiln__node_class_t *cls)
{
    if (cls->def.flags & KILN_NODE_NOT_IDEMPOTENT)
        return true;
    for (size_t i = 0; i < cls->n_inputs; i++)
        if (cls->inputs[i].section == KILN_INPUT_HIDDEN && cls->inputs[i].type &&
            strcmp(cls->inputs[i].type, "UNIQUE_ID") == 0)
            return true;
    return false;
}

/* Runs the class's is_changed hook and hashes its fingerprint. False when the hook failed
 * (the node then never hits the cache). */
static bool put_is_changed(XXH3_state_t *st, const kiln__graph_node_t *n, const kiln__env_t *env)
{
    if (!n->cls->def.is_changed) {
        put_str(st, "is_changed:false");
        return true;
    }
    kiln_call_t *call = kiln__call_new_constants(n, env);
    if (!call)
        return false;
    char fp[1024] = {0};
    int rc = n->cls->def.is_changed(call, fp, sizeof fp);
    if (rc != 0) {
        const char *why = kiln__call_error(call);
        kiln_logf(KILN_LOG_WARN, "node %s (%s): is_changed failed: %s; it will always run",
                  n->id, n->class_type, why ? why : kiln_strerror(rc));
    }
    kiln__call_free(call);
    fp[sizeof fp - 1] = '\0';
    put_str(st, "is_changed:");
    put_str(st, fp);
    return rc == 0;
}

static int cmp_input(const void *a, const void *b)
{
    const kiln__graph_input_t *x = *(const kiln__graph_input_t *const *)a;
    const kiln__graph_input_t *y = *(const kiln__graph_input_t *const *)b;
    return strcmp(x->name, y->name);
}

/* Hashes the inputs in sorted key order. False when a source's signature is invalid. */
static bool put_inputs(XXH3_state_t *st, const kiln__graph_node_t *n, const kiln__sig_t *sigs,
                       const kiln__graph_input_t **sorted)
{
    for (size_t i = 0; i < n->n_inputs; i++)
        sorted[i] = &n->inputs[i];
    qsort(sorted, n->n_inputs, sizeof *sorted, cmp_input);
    bool valid = true;
    for (size_t i = 0; i < n->n_inputs; i++) {
        const kiln__graph_input_t *in = sorted[i];
        put_str(st, in->name);
        if (in->is_link && in->src >= 0) {
            put_str(st, "link");
            put_u64(st, sigs[in->src].h[0]);
            put_u64(st, sigs[in->src].h[1]);
            put_u64(st, (uint64_t)(int64_t)in->src_slot);
            valid = valid && sigs[in->src].valid;
        } else if (in->is_link) {
            put_str(st, "missing");
            put_str(st, in->src_id);
            put_u64(st, (uint64_t)(int64_t)in->src_slot);
        } else {
            put_str(st, "const");
            put_u64(st, kiln__json_hash(in->value, SEED_LO));
            put_u64(st, kiln__json_hash(in->value, SEED_HI));
        }
    }
    return valid;
}

/* The signature of node n, whose sources' signatures are final. */
static int node_sig(const kiln__graph_t *g, size_t idx, const kiln__env_t *env, kiln__sig_t *sigs,
                    XXH3_state_t *st)
{
    const kiln__graph_node_t *n = &g->nodes[idx];
    kiln__sig_t *s = &sigs[idx];
    if (!n->cls) {
        s->valid = false;
        return 0;
    }
    const kiln__graph_input_t **sorted = malloc((n->n_inputs + 1) * sizeof *sorted);
    if (!sorted)
        return KILN_ENOMEM;
    XXH3_128bits_reset(st);
    put_str(st, n->class_type);
    bool valid = put_is_changed(st, n, env);
    if (wants_unique_id(n->cls))
        put_str(st, n->id);
    else
        put_str(st, "");
    valid = put_inputs(st, n, sigs, sorted) && valid;
    free(sorted);
    XXH128_hash_t h = XXH3_128bits_digest(st);
    s->h[0] = h.low64;
    s->h[1] = h.high64;
    s->valid = valid;
    return 0;
}

/* Consumers per source in compressed form: the consumers of node s are
 * adj[head[s] .. head[s + 1]). indeg[i] counts node i's links to existing nodes. */
typedef struct csr {
    size_t *head;   /* owned: n + 1 */
    size_t *adj;    /* owned */
    int *indeg;     /* owned: n */
} csr_t;

static void csr_free(csr_t *c)
{
    free(c->head);
    free(c->adj);
    free(c->indeg);
}

static int csr_build(const kiln__graph_t *g, csr_t *c)
{
    size_t n = g->n_nodes, edges = 0;
    c->indeg = calloc(n ? n : 1, sizeof *c->indeg);
    c->head = calloc(n + 1, sizeof *c->head);
    size_t *fill = calloc(n ? n : 1, sizeof *fill);
    if (!c->indeg || !c->head || !fill)
        goto oom;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < g->nodes[i].n_inputs; k++)
            if (g->nodes[i].inputs[k].is_link && g->nodes[i].inputs[k].src >= 0) {
                c->head[g->nodes[i].inputs[k].src + 1]++;
                c->indeg[i]++;
                edges++;
            }
    for (size_t i = 0; i < n; i++)
        c->head[i + 1] += c->head[i];
    c->adj = malloc((edges ? edges : 1) * sizeof *c->adj);
    if (!c->adj)
        goto oom;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < g->nodes[i].n_inputs; k++) {
            const kiln__graph_input_t *in = &g->nodes[i].inputs[k];
            if (in->is_link && in->src >= 0)
                c->adj[c->head[in->src] + fill[in->src]++] = i;
        }
    free(fill);
    return 0;
oom:
    free(fill);
    return KILN_ENOMEM;
}

/* Orders the nodes so that every linked source precedes its consumers (Kahn over all
 * links). Nodes on or behind a cycle are left out; *n_order says how many were placed. */
static int topo_order(const kiln__graph_t *g, size_t *order, size_t *n_order)
{
    csr_t c = {0};
    int rc = csr_build(g, &c);
    size_t placed = 0, next = 0;
    for (size_t i = 0; rc == 0 && i < g->n_nodes; i++)
        if (c.indeg[i] == 0)
            order[placed++] = i;
    while (next < placed) {
        size_t u = order[next++];
        for (size_t e = c.head[u]; e < c.head[u + 1]; e++)
            if (--c.indeg[c.adj[e]] == 0)
                order[placed++] = c.adj[e];
    }
    *n_order = placed;
    csr_free(&c);
    return rc;
}

int kiln__sig_compute(const kiln__graph_t *g, const kiln__env_t *env, kiln__sig_t *sigs)
{
    size_t n = g->n_nodes;
    for (size_t i = 0; i < n; i++)
        sigs[i] = (kiln__sig_t){{0, 0}, false};
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    XXH3_state_t *st = XXH3_createState();
    size_t placed = 0;
    int rc = order && st ? topo_order(g, order, &placed) : KILN_ENOMEM;
    for (size_t i = 0; i < placed && rc == 0; i++)
        rc = node_sig(g, order[i], env, sigs, st);
    /* Nodes on a cycle keep their invalid signature: they never hit the cache. */
    free(order);
    XXH3_freeState(st);
    return rc;
}
