/* The editor's execution order of a graph's nodes (LGraph.computeExecutionOrder), which
 * is the order of the nodes in the prompt it queues. Key order is visible: it decides
 * the order in which the server visits output nodes (and so file counters and event
 * order), and it is what the PNG "prompt" chunk shows. */
#include "graph/ui_int.h"

#include <kiln/error.h>

#include <stdlib.h>
#include <string.h>

/* True for an id that JavaScript treats as an array index ("0".."4294967294" without
 * leading zeros): such keys of an object iterate first, in numeric order. */
static bool index_key(const char *s, uint64_t *v)
{
    size_t n = strlen(s);
    if (n == 0 || n > 10 || (n > 1 && s[0] == '0'))
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (uint64_t)(s[i] - '0');
    }
    *v = x;
    return x <= 4294967294ull;
}

typedef struct pending {
    size_t index;
    uint64_t key;
    bool is_index;
} pending_t;

static int pending_cmp(const void *a, const void *b)
{
    const pending_t *x = a, *y = b;
    if (x->is_index != y->is_index)
        return x->is_index ? -1 : 1;
    if (x->is_index && x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Number of input slots whose "link" is anything but null (the editor's count). */
static int64_t linked_inputs(const kiln__ui_node_t *n)
{
    int64_t k = 0;
    for (size_t i = 0; i < n->inputs.count; i++) {
        const kiln__json_t *s = n->inputs.at[i];
        const kiln__json_t *l = s ? kiln__json_get(s, "link") : NULL;
        if (l && l->type != KILN_JSON_NULL)
            k++;
    }
    return k;
}

/* Counts down the links leaving node n; queues targets whose count reaches zero. */
static void release_outputs(const kiln__ui_graph_t *g, const kiln__ui_node_t *n, int64_t *remaining,
                            bool *visited, size_t *queue, size_t *tail)
{
    for (size_t i = 0; i < n->outputs.count; i++) {
        const kiln__json_t *o = n->outputs.at[i];
        const kiln__json_t *links = o ? kiln__json_get(o, "links") : NULL;
        for (const kiln__json_t *lj = links && links->type == KILN_JSON_ARRAY ? links->child : NULL;
             lj; lj = lj->next) {
            int64_t id;
            const kiln__ui_link_t *l = kiln__ui_int(lj, &id) ? kiln__ui_graph_link(g, id) : NULL;
            if (!l || visited[l - g->links])
                continue;
            visited[l - g->links] = true;
            const kiln__ui_node_t *t = kiln__ui_graph_find(g, l->target);
            if (!t)
                continue;
            size_t ti = (size_t)(t - g->nodes);
            /* A target that started with no linked inputs has no count (NaN in the
             * editor): it never reaches zero again. */
            if (remaining[ti] > 0 && --remaining[ti] == 0)
                queue[(*tail)++] = ti;
        }
    }
}

int kiln__ui_execution_order(const kiln__ui_graph_t *g, size_t *order)
{
    size_t n = g->n_nodes, head = 0, tail = 0, done = 0;
    int64_t *remaining = calloc(n ? n : 1, sizeof *remaining);
    bool *visited = calloc(g->n_links ? g->n_links : 1, sizeof *visited);
    bool *placed = calloc(n ? n : 1, sizeof *placed);
    size_t *queue = malloc((n ? n : 1) * sizeof *queue);
    pending_t *rest = malloc((n ? n : 1) * sizeof *rest);
    int rc = remaining && visited && placed && queue && rest ? 0 : KILN_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        remaining[i] = linked_inputs(&g->nodes[i]);
        if (remaining[i] == 0)
            queue[tail++] = i;
    }
    while (rc == 0 && head < tail) {
        size_t i = queue[head++];
        order[done++] = i;
        placed[i] = true;
        release_outputs(g, &g->nodes[i], remaining, visited, queue, &tail);
    }
    size_t n_rest = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (placed[i])
            continue;
        rest[n_rest] = (pending_t){.index = i};
        rest[n_rest].is_index = index_key(g->nodes[i].id, &rest[n_rest].key);
        n_rest++;
    }
    if (rc == 0) {
        qsort(rest, n_rest, sizeof *rest, pending_cmp);
        for (size_t i = 0; i < n_rest; i++)
            order[done++] = rest[i].index;
    }
    free(remaining);
    free(visited);
    free(placed);
    free(queue);
    free(rest);
    return rc;
}
