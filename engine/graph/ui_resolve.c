/* Link resolution for the UI-workflow converter: what feeds a node's input once
 * Reroutes, bypassed (mode 4) nodes, PrimitiveNodes and subgraph boundaries are seen
 * through, following the editor's ExecutableNodeDTO (resolveInput/resolveOutput) rule for
 * rule, including its choice of the input that stands in for a bypassed node's output. */
#include <kiln/error.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "graph/ui_int.h"

/* Short local names for the converter's types. */
typedef kiln__ui_frame_t frame_t;
typedef kiln__ui_conv_t conv_t;
typedef kiln__ui_res_t res_t;

char *kiln__ui_concat3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = malloc(la + lb + lc + 1);
    if (s) {
        memcpy(s, a, la);
        memcpy(s + la, b, lb);
        memcpy(s + la + lb, c, lc + 1);
    }
    return s;
}

/* ---- slots and types ---------------------------------------------------------------- */

/* A slot's type as the editor compares it; a missing slot or odd type is the wildcard. */
static const char *slot_type(const kiln__ui_slots_t *slots, int64_t i)
{
    const kiln__json_t *s = kiln__ui_slot(slots, i);
    const kiln__json_t *t = s ? kiln__json_get(s, "type") : NULL;
    return t && t->type == KILN_JSON_STRING ? t->str : "*";
}

static bool wildcard(const char *t)
{
    return !t || t[0] == 0 || strcmp(t, "*") == 0;
}

/* True when a comma-separated type list has an empty member, which matches anything. */
static bool has_empty_member(const char *s)
{
    size_t n = strlen(s);
    return s[0] == ',' || (n && s[n - 1] == ',') || strstr(s, ",,") != NULL;
}

/* LiteGraph.isValidConnection: wildcards match anything, otherwise a case-insensitive
 * match of any member of one comma-separated list with any member of the other. */
static bool type_match(const char *a, const char *b)
{
    if (wildcard(a) || wildcard(b) || strcmp(a, b) == 0)
        return true;
    if (!strchr(a, ',') && !strchr(b, ','))
        return strcasecmp(a, b) == 0;
    if (has_empty_member(a) || has_empty_member(b))
        return true;
    for (const char *p = a; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
        size_t la = strcspn(p, ",");
        for (const char *q = b; *q; q += strcspn(q, ",") + (q[strcspn(q, ",")] == ',')) {
            size_t lb = strcspn(q, ",");
            if ((la == 1 && p[0] == '*') || (lb == 1 && q[0] == '*') ||
                (la == lb && strncasecmp(p, q, la) == 0))
                return true;
        }
    }
    return false;
}

/* The input of a bypassed node that stands in for its output `slot` when feeding an
 * input of `type` (ExecutableNodeDTO's bypass rule), or -1. */
static int64_t bypass_input(const kiln__ui_node_t *n, int64_t slot, const char *type)
{
    size_t n_in = n->inputs.count;
    if (!kiln__ui_slot(&n->outputs, slot))
        return -1;
    const char *out_type = slot_type(&n->outputs, slot);
    if (strcmp(type, "*") == 0 || type[0] == 0)
        return (uint64_t)slot < n_in ? slot : 0;
    if (kiln__ui_slot(&n->inputs, slot)) {
        const char *t = slot_type(&n->inputs, slot);
        if (type_match(t, out_type) && type_match(t, type))
            return slot;
    }
    for (size_t i = 0; i < n_in; i++)
        if (strcmp(slot_type(&n->inputs, (int64_t)i), type) == 0)
            return (int64_t)i;
    for (size_t i = 0; i < n_in; i++) {
        const char *t = slot_type(&n->inputs, (int64_t)i);
        if (type_match(t, out_type) && type_match(t, type))
            return (int64_t)i;
    }
    return -1;
}

/* ---- resolution ------------------------------------------------------------------------ */

static res_t resolve_output(conv_t *c, const frame_t *f, const kiln__ui_node_t *n, int64_t slot,
                            const char *type, int *hops);

static const frame_t *child_frame(const conv_t *c, const frame_t *f, const kiln__ui_node_t *inst)
{
    char *key = kiln__ui_concat3(f->prefix, inst->id, ":");
    const frame_t *child = key ? kiln__strmap_get(c->frame_by_prefix, key) : NULL;
    free(key);
    return child;
}

/* The promoted widget value of definition input k of the instance that f expands. */
static res_t promoted_value(const frame_t *f, int64_t k)
{
    res_t r = {KILN_UI_RES_NONE};
    if (k < 0 || (uint64_t)k >= f->n_promoted || f->promoted[k] < 0)
        return r;
    const kiln__json_t *wv = kiln__json_get(f->instance->json, "widgets_values");
    if (wv && wv->type == KILN_JSON_ARRAY && (uint64_t)f->promoted[k] < wv->count) {
        r.kind = KILN_UI_RES_VALUE;
        r.value = kiln__json_at(wv, (size_t)f->promoted[k]);
    }
    return r;
}

/* Input k of the instance that f expands, seen from inside: its outer link, else its
 * promoted widget value. */
static res_t resolve_instance_input(conv_t *c, const frame_t *f, int64_t k, int *hops);

/* Follows inputs[slot] of node n (in frame f) to what feeds it. `type` is the final
 * target's type (NULL: this slot's own type). */
static res_t resolve_input(conv_t *c, const frame_t *f, const kiln__ui_node_t *n, int64_t slot,
                           const char *type, int *hops)
{
    res_t none = {KILN_UI_RES_NONE};
    if (++*hops > KILN_UI_MAX_HOPS)
        return none; /* a cycle through Reroutes or bypassed nodes: drop the link */
    int64_t link_id = kiln__ui_slot_link(n, slot);
    const kiln__ui_link_t *l = link_id >= 0 ? kiln__ui_graph_link(f->g, link_id) : NULL;
    if (!l)
        return none;
    if (!type)
        type = slot_type(&n->inputs, slot);
    if (f->instance && strcmp(l->origin, f->g->input_node) == 0)
        return resolve_instance_input(c, f, l->origin_slot, hops);
    const kiln__ui_node_t *o = kiln__ui_graph_find(f->g, l->origin);
    return o ? resolve_output(c, f, o, l->origin_slot, type, hops) : none;
}

static res_t resolve_instance_input(conv_t *c, const frame_t *f, int64_t k, int *hops)
{
    if (kiln__ui_slot_link(f->instance, k) >= 0)
        return resolve_input(c, f->parent, f->instance, k, NULL, hops);
    return promoted_value(f, k);
}

/* Output `slot` of subgraph instance n: continue inside, from what feeds the definition's
 * output (which may be one of the definition's own inputs). */
static res_t resolve_subgraph_output(conv_t *c, const frame_t *f, const kiln__ui_node_t *n,
                                     int64_t slot, const char *type, int *hops)
{
    res_t none = {KILN_UI_RES_NONE};
    const frame_t *child = child_frame(c, f, n);
    const kiln__ui_link_t *l = child ? kiln__ui_graph_output_link(child->g, slot) : NULL;
    if (!l)
        return none;
    if (strcmp(l->origin, child->g->input_node) == 0)
        return resolve_instance_input(c, child, l->origin_slot, hops);
    const kiln__ui_node_t *inner = kiln__ui_graph_find(child->g, l->origin);
    return inner ? resolve_output(c, child, inner, l->origin_slot, type, hops) : none;
}

static res_t resolve_output(conv_t *c, const frame_t *f, const kiln__ui_node_t *n, int64_t slot,
                            const char *type, int *hops)
{
    res_t r = {KILN_UI_RES_NONE};
    if (++*hops > KILN_UI_MAX_HOPS)
        return r;
    if (n->mode == 4) {
        int64_t in = bypass_input(n, slot, type);
        return in >= 0 ? resolve_input(c, f, n, in, NULL, hops) : r;
    }
    switch (n->kind) {
    case KILN_UI_SUBGRAPH:
        /* A muted instance is not expanded: whatever it fed stays unconnected. */
        return n->mode == 2 ? r : resolve_subgraph_output(c, f, n, slot, type, hops);
    case KILN_UI_PRIMITIVE: {
        const kiln__json_t *wv = kiln__json_get(n->json, "widgets_values");
        if (slot == 0 && wv && wv->type == KILN_JSON_ARRAY && wv->child) {
            r.kind = KILN_UI_RES_VALUE;
            r.value = wv->child;
            r.primitive = true;
        }
        return r;
    }
    case KILN_UI_REROUTE:
        return kiln__ui_slot(&n->inputs, slot) ? resolve_input(c, f, n, slot, type, hops) : r;
    case KILN_UI_NOTE:
        return r;
    default:
        r.kind = KILN_UI_RES_LINK;
        r.f = f;
        r.n = n;
        r.slot = slot;
        return r;
    }
}

res_t kiln__ui_resolve_input(conv_t *c, const frame_t *f, const kiln__ui_node_t *n, int64_t slot)
{
    int hops = 0;
    return resolve_input(c, f, n, slot, NULL, &hops);
}
