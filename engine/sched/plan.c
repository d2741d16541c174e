/* The plan of one prompt: which nodes run (the needed set: outputs plus the uncached
 * ancestors that they need), which results come from the cache, who consumes whom (for
 * Kahn's ready set and for dropping results early), duplicates that share one execution,
 * and each node's rank among ready nodes.
 *
 * Ready order approximates ComfyUI's (§6.2): output nodes first, then nodes feeding an
 * output, then nodes two hops away, then the rest; ties go to prompt order. Unlike
 * ComfyUI several ready nodes may run at once (one per free lane), so this order decides
 * who starts first, not who runs alone.
 *
 * Lazy inputs (KILN_INPUT_LAZY) are still ordinary dependencies here: their sources always
 * run before the node. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/sched_int.h"
#include "util/strmap.h"

void kiln__plan_free(kiln__plan_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        free(p->nodes[i].consumers);
        kiln__outputs_release(p->nodes[i].result);
        kiln__outputs_release(p->nodes[i].done.result);
        free(p->nodes[i].done.message);
        kiln__json_free(p->nodes[i].done.inputs);
    }
    free(p->nodes);
    free(p->cached);
    free(p);
}

static int add_consumer(kiln__pnode_t *src, int consumer)
{
    for (int i = 0; i < src->n_consumers; i++)
        if (src->consumers[i] == consumer)
            return 0; /* one edge per pair, however many links */
    int *v = realloc(src->consumers, (size_t)(src->n_consumers + 1) * sizeof *v);
    if (!v)
        return KILN_ENOMEM;
    src->consumers = v;
    src->consumers[src->n_consumers++] = consumer;
    src->consumers_left++;
    return 0;
}

/* Looks every node up in the cache. Hits are listed for execution_cached; the results
 * are kept only for nodes that turn out to be needed (see drop_unneeded). */
static void lookup_cache(kiln__plan_t *p, const kiln__sig_t *sigs, kiln__cache_t *cache)
{
    for (size_t i = 0; i < p->n; i++) {
        p->nodes[i].result = kiln__cache_get(cache, &sigs[i]);
        if (p->nodes[i].result)
            p->cached[p->n_cached++] = (int)i;
    }
}

/* Marks the outputs and, depth-first, the sources of every needed node that is not
 * cached. A cached node's own ancestors are not needed through it. */
static int mark_needed(kiln__plan_t *p, const kiln__graph_t *g)
{
    int *stack = malloc((p->n ? p->n : 1) * sizeof *stack);
    bool *seen = calloc(p->n ? p->n : 1, sizeof *seen);
    if (!stack || !seen) {
        free(stack);
        free(seen);
        return KILN_ENOMEM;
    }
    size_t top = 0;
    for (size_t o = 0; o < g->n_outputs; o++) {
        int idx = g->outputs[o];
        p->nodes[idx].is_output = true;
        if (!seen[idx]) {
            seen[idx] = true;
            stack[top++] = idx;
        }
    }
    while (top > 0) {
        int u = stack[--top];
        kiln__pnode_t *pn = &p->nodes[u];
        if (pn->result) {
            pn->state = KILN__PN_CACHED;
            continue;
        }
        pn->state = KILN__PN_WAITING;
        p->n_todo++;
        const kiln__graph_node_t *gn = &g->nodes[u];
        for (size_t k = 0; k < gn->n_inputs; k++) {
            int src = gn->inputs[k].is_link ? gn->inputs[k].src : -1;
            if (src >= 0 && !seen[src]) {
                seen[src] = true;
                stack[top++] = src;
            }
        }
    }
    free(stack);
    free(seen);
    return 0;
}

/* Links each node that will run to its sources: an uncached source blocks it. */
static int link_sources(kiln__plan_t *p, const kiln__graph_t *g)
{
    for (size_t u = 0; u < p->n; u++) {
        if (p->nodes[u].state != KILN__PN_WAITING)
            continue;
        const kiln__graph_node_t *gn = &g->nodes[u];
        for (size_t k = 0; k < gn->n_inputs; k++) {
            int src = gn->inputs[k].is_link ? gn->inputs[k].src : -1;
            if (src < 0)
                continue;
            kiln__pnode_t *sp = &p->nodes[src];
            int before = sp->n_consumers;
            if (add_consumer(sp, (int)u) != 0)
                return KILN_ENOMEM;
            if (sp->n_consumers > before && sp->state == KILN__PN_WAITING)
                p->nodes[u].deps_left++;
        }
    }
    return 0;
}

/* Equal signatures among the nodes that will run: the later node waits for the first
 * and takes its result instead of running (ComfyUI finds the same through its cache). */
static int find_aliases(kiln__plan_t *p, const kiln__sig_t *sigs)
{
    kiln__strmap_t *first = kiln__strmap_new();
    if (!first)
        return KILN_ENOMEM;
    int rc = 0;
    for (size_t u = 0; u < p->n && rc == 0; u++) {
        if (p->nodes[u].state != KILN__PN_WAITING || !sigs[u].valid)
            continue;
        char key[33];
        snprintf(key, sizeof key, "%016llx%016llx", (unsigned long long)sigs[u].h[0],
                 (unsigned long long)sigs[u].h[1]);
        void *prev = kiln__strmap_get(first, key);
        if (!prev) {
            rc = kiln__strmap_put(first, key, (void *)(uintptr_t)(u + 1));
            continue;
        }
        int j = (int)((uintptr_t)prev - 1);
        p->nodes[u].alias_of = j;
        int before = p->nodes[j].n_consumers;
        rc = add_consumer(&p->nodes[j], (int)u);
        if (rc == 0 && p->nodes[j].n_consumers > before)
            p->nodes[u].deps_left++;
    }
    kiln__strmap_free(first);
    return rc;
}

/* Distance from each needed node to the nearest output, breadth-first over sources. */
static int rank(kiln__plan_t *p, const kiln__graph_t *g)
{
    int *queue = malloc((p->n ? p->n : 1) * sizeof *queue);
    if (!queue)
        return KILN_ENOMEM;
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < p->n; i++)
        p->nodes[i].prio = -1;
    for (size_t o = 0; o < g->n_outputs; o++) {
        int idx = g->outputs[o];
        if (p->nodes[idx].prio < 0) {
            p->nodes[idx].prio = 0;
            queue[tail++] = idx;
        }
    }
    while (head < tail) {
        int u = queue[head++];
        const kiln__graph_node_t *gn = &g->nodes[u];
        for (size_t k = 0; k < gn->n_inputs; k++) {
            int src = gn->inputs[k].is_link ? gn->inputs[k].src : -1;
            if (src >= 0 && p->nodes[src].prio < 0 && p->nodes[src].state != KILN__PN_UNNEEDED) {
                p->nodes[src].prio = p->nodes[u].prio + 1;
                queue[tail++] = src;
            }
        }
    }
    for (size_t i = 0; i < p->n; i++)
        if (p->nodes[i].prio < 0 || p->nodes[i].prio > 3)
            p->nodes[i].prio = 3;
    free(queue);
    return 0;
}

/* Cache hits that nothing in this prompt reads are listed but not held. */
static void drop_unneeded(kiln__plan_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->nodes[i].state == KILN__PN_UNNEEDED && p->nodes[i].result) {
            kiln__outputs_release(p->nodes[i].result);
            p->nodes[i].result = NULL;
        }
}

int kiln__plan_build(const kiln__graph_t *g, const kiln__sig_t *sigs, kiln__cache_t *cache,
                     kiln__plan_t **out)
{
    *out = NULL;
    kiln__plan_t *p = calloc(1, sizeof *p);
    if (!p)
        return KILN_ENOMEM;
    p->n = g->n_nodes;
    p->nodes = calloc(p->n ? p->n : 1, sizeof *p->nodes);
    p->cached = malloc((p->n ? p->n : 1) * sizeof *p->cached);
    if (!p->nodes || !p->cached) {
        kiln__plan_free(p);
        return KILN_ENOMEM;
    }
    for (size_t i = 0; i < p->n; i++) {
        p->nodes[i].idx = (int)i;
        p->nodes[i].alias_of = -1;
    }
    lookup_cache(p, sigs, cache);
    int rc = mark_needed(p, g);
    if (rc == 0)
        rc = link_sources(p, g);
    if (rc == 0)
        rc = find_aliases(p, sigs);
    if (rc == 0)
        rc = rank(p, g);
    if (rc != 0) {
        kiln__plan_free(p);
        return rc;
    }
    drop_unneeded(p);
    *out = p;
    return 0;
}

/* ---- the ready heap ------------------------------------------------------------------ */

static bool before(const kiln__plan_t *p, int a, int b)
{
    if (p->nodes[a].prio != p->nodes[b].prio)
        return p->nodes[a].prio < p->nodes[b].prio;
    return a < b;
}

int kiln__ready_push(kiln__ready_t *r, const kiln__plan_t *p, int idx)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        int *v = realloc(r->v, cap * sizeof *v);
        if (!v)
            return KILN_ENOMEM;
        r->v = v;
        r->cap = cap;
    }
    size_t i = r->n++;
    r->v[i] = idx;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!before(p, r->v[i], r->v[up]))
            break;
        int t = r->v[i];
        r->v[i] = r->v[up];
        r->v[up] = t;
        i = up;
    }
    return 0;
}

int kiln__ready_pop(kiln__ready_t *r, const kiln__plan_t *p)
{
    if (r->n == 0)
        return -1;
    int top = r->v[0];
    r->v[0] = r->v[--r->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        if (l < r->n && before(p, r->v[l], r->v[best]))
            best = l;
        if (l + 1 < r->n && before(p, r->v[l + 1], r->v[best]))
            best = l + 1;
        if (best == i)
            break;
        int t = r->v[i];
        r->v[i] = r->v[best];
        r->v[best] = t;
        i = best;
    }
    return top;
}

void kiln__ready_free(kiln__ready_t *r)
{
    free(r->v);
    r->v = NULL;
    r->n = r->cap = 0;
}
