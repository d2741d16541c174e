/* Reading a UI-format workflow into the converter's model (ui_int.h): node ids normalized
 * to strings, node kinds (registered class, UI-only type, subgraph instance, unknown),
 * link tables of either schema (0.4 arrays, version 1 objects) sorted by id, and every
 * subgraph definition, wherever it is nested. Nothing here follows links; that is
 * ui_convert.c's job. */
#include "graph/ui_int.h"

#include <kiln/error.h>

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_MAX 128 /* longest node id accepted, in bytes (UUIDs are 36) */

static int fail(kiln__ui_doc_t *doc, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(kiln__ui_doc_t *doc, int rc, const char *fmt, ...)
{
    if (doc->err && doc->err_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(doc->err, doc->err_size, fmt, ap);
        va_end(ap);
    }
    return rc;
}

bool kiln__ui_int(const kiln__json_t *j, int64_t *out)
{
    if (!j)
        return false;
    if (j->type == KILN_JSON_INT && !j->is_u64) {
        *out = j->i;
        return true;
    }
    /* JavaScript writes every number the same way; 3.0 is the integer 3. */
    if (j->type == KILN_JSON_NUMBER && isfinite(j->d) && j->d == floor(j->d) && j->d >= -9.2e18 &&
        j->d <= 9.2e18) {
        *out = (int64_t)j->d;
        return true;
    }
    return false;
}

bool kiln__ui_id_text(const kiln__json_t *j, char *buf, size_t size)
{
    int64_t v;
    int n;
    if (!j)
        return false;
    if (j->type == KILN_JSON_STRING) {
        if (j->len == 0 || j->len >= size || strlen(j->str) != j->len)
            return false;
        memcpy(buf, j->str, j->len + 1);
        return true;
    }
    if (j->type == KILN_JSON_INT && j->is_u64)
        n = snprintf(buf, size, "%" PRIu64, j->u);
    else if (kiln__ui_int(j, &v))
        n = snprintf(buf, size, "%" PRId64, v);
    else
        return false;
    return n > 0 && (size_t)n < size;
}

const kiln__ui_node_t *kiln__ui_graph_find(const kiln__ui_graph_t *g, const char *id)
{
    if (!g->by_id || !id)
        return NULL;
    uintptr_t v = (uintptr_t)kiln__strmap_get(g->by_id, id);
    return v ? &g->nodes[v - 1] : NULL;
}

const kiln__ui_link_t *kiln__ui_graph_link(const kiln__ui_graph_t *g, int64_t id)
{
    size_t lo = 0, hi = g->n_links;
    /* Lower bound: the first link with this id, which is also the first in file order. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->links[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < g->n_links && g->links[lo].id == id ? &g->links[lo] : NULL;
}

const kiln__json_t *kiln__ui_slot(const kiln__ui_slots_t *slots, int64_t i)
{
    if (i < 0 || (uint64_t)i >= slots->count)
        return NULL;
    return slots->at[i];
}

int64_t kiln__ui_slot_link(const kiln__ui_node_t *n, int64_t slot)
{
    int64_t id;
    const kiln__json_t *s = kiln__ui_slot(&n->inputs, slot);
    return s && kiln__ui_int(kiln__json_get(s, "link"), &id) ? id : -1;
}

const char *kiln__ui_slot_name(const kiln__ui_node_t *n, int64_t slot)
{
    const kiln__json_t *s = kiln__ui_slot(&n->inputs, slot);
    const kiln__json_t *name = s ? kiln__json_get(s, "name") : NULL;
    return name && name->type == KILN_JSON_STRING ? name->str : NULL;
}

const char *kiln__ui_slot_widget(const kiln__ui_node_t *n, int64_t slot)
{
    const kiln__json_t *s = kiln__ui_slot(&n->inputs, slot);
    const kiln__json_t *w = s ? kiln__json_get(s, "widget") : NULL;
    const kiln__json_t *name = w ? kiln__json_get(w, "name") : NULL;
    return name && name->type == KILN_JSON_STRING ? name->str : NULL;
}

/* ---- links ----------------------------------------------------------------------------- */

static int link_cmp(const void *a, const void *b)
{
    const kiln__ui_link_t *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Reads one entry of a links array, either [id, origin, oslot, target, tslot, type] or
 * {id, origin_id, origin_slot, target_id, target_slot, ...}. False when unusable. */
static bool read_link(const kiln__json_t *e, int64_t *id, char *origin, int64_t *oslot,
                      char *target, int64_t *tslot)
{
    const kiln__json_t *f[5];
    if (e->type == KILN_JSON_ARRAY && e->count >= 5) {
        for (size_t i = 0; i < 5; i++)
            f[i] = kiln__json_at(e, i);
    } else if (e->type == KILN_JSON_OBJECT) {
        f[0] = kiln__json_get(e, "id");
        f[1] = kiln__json_get(e, "origin_id");
        f[2] = kiln__json_get(e, "origin_slot");
        f[3] = kiln__json_get(e, "target_id");
        f[4] = kiln__json_get(e, "target_slot");
    } else {
        return false;
    }
    return kiln__ui_int(f[0], id) && kiln__ui_id_text(f[1], origin, ID_MAX) &&
           kiln__ui_int(f[2], oslot) && kiln__ui_id_text(f[3], target, ID_MAX) &&
           kiln__ui_int(f[4], tslot) && *oslot >= 0 && *tslot >= 0 && *oslot <= INT32_MAX &&
           *tslot <= INT32_MAX;
}

static int parse_links(kiln__ui_doc_t *doc, kiln__ui_graph_t *g, const kiln__json_t *links)
{
    if (!links || links->type == KILN_JSON_NULL)
        return 0;
    if (links->type != KILN_JSON_ARRAY)
        return fail(doc, KILN_EINVAL, "workflow links is not an array");
    if (links->count > KILN_UI_MAX_LINKS)
        return fail(doc, KILN_EINVAL, "workflow has %zu links (at most %d are accepted)",
                    links->count, KILN_UI_MAX_LINKS);
    g->links = calloc(links->count ? links->count : 1, sizeof *g->links);
    if (!g->links)
        return KILN_ENOMEM;
    size_t order = 0;
    for (const kiln__json_t *e = links->child; e; e = e->next, order++) {
        char origin[ID_MAX], target[ID_MAX];
        kiln__ui_link_t l = {.order = order};
        if (!read_link(e, &l.id, origin, &l.origin_slot, target, &l.target_slot))
            continue; /* an unreadable link is dropped, as if it were not there */
        l.origin = strdup(origin);
        l.target = strdup(target);
        g->links[g->n_links++] = l;
        if (!l.origin || !l.target)
            return KILN_ENOMEM;
    }
    qsort(g->links, g->n_links, sizeof *g->links, link_cmp);
    return 0;
}

/* ---- nodes ----------------------------------------------------------------------------- */

/* Legacy group nodes ("workflow>Name", or "workflow/Name" with a definition in
 * extra.groupNodes) predate subgraphs; the editor converts them on load. */
static bool is_group_node(const kiln__ui_doc_t *doc, const char *type)
{
    if (strncmp(type, "workflow>", 9) == 0)
        return true;
    if (strncmp(type, "workflow/", 9) != 0)
        return false;
    const kiln__json_t *extra = kiln__json_get(doc->root.json, "extra");
    const kiln__json_t *groups = extra ? kiln__json_get(extra, "groupNodes") : NULL;
    return groups && kiln__json_get(groups, type + 9) != NULL;
}

static kiln__ui_kind_t classify(kiln__ui_doc_t *doc, kiln__strmap_t *defs, kiln__ui_node_t *n)
{
    const char *t = n->type;
    if (strcmp(t, "Reroute") == 0)
        return KILN_UI_REROUTE;
    if (strcmp(t, "PrimitiveNode") == 0)
        return KILN_UI_PRIMITIVE;
    if (strcmp(t, "Note") == 0 || strcmp(t, "MarkdownNote") == 0)
        return KILN_UI_NOTE;
    uintptr_t d = (uintptr_t)kiln__strmap_get(defs, t);
    if (d) {
        n->sub = &doc->defs[d - 1];
        return KILN_UI_SUBGRAPH;
    }
    n->cls = doc->reg ? kiln__registry_find(doc->reg, t) : NULL;
    return n->cls ? KILN_UI_REAL : KILN_UI_UNKNOWN;
}

/* Indexes the objects of a slots array (anything else reads as no slots). */
static int read_slots(kiln__ui_slots_t *slots, const kiln__json_t *arr)
{
    if (!arr || arr->type != KILN_JSON_ARRAY || arr->count == 0)
        return 0;
    slots->at = calloc(arr->count, sizeof *slots->at);
    if (!slots->at)
        return KILN_ENOMEM;
    for (const kiln__json_t *e = arr->child; e; e = e->next)
        slots->at[slots->count++] = e->type == KILN_JSON_OBJECT ? e : NULL;
    return 0;
}

/* Reads one node object into n; where names the graph in messages. */
static int parse_node(kiln__ui_doc_t *doc, kiln__strmap_t *defs, kiln__ui_graph_t *g, size_t index,
                      const kiln__json_t *j, const char *where)
{
    char id[ID_MAX];
    kiln__ui_node_t *n = &g->nodes[index];
    if (j->type != KILN_JSON_OBJECT)
        return fail(doc, KILN_EINVAL, "%s: node %zu is not an object", where, index);
    if (!kiln__ui_id_text(kiln__json_get(j, "id"), id, sizeof id))
        return fail(doc, KILN_EINVAL, "%s: node %zu has no usable id (an integer or a string)",
                    where, index);
    const kiln__json_t *type = kiln__json_get(j, "type");
    if (!type || type->type != KILN_JSON_STRING || type->len == 0)
        return fail(doc, KILN_EINVAL, "%s: node %s has no type", where, id);
    n->json = j;
    n->type = type->str;
    n->id = strdup(id);
    if (!n->id)
        return KILN_ENOMEM;
    if (!kiln__ui_int(kiln__json_get(j, "mode"), &n->mode))
        n->mode = 0;
    const kiln__json_t *ins = kiln__json_get(j, "inputs"), *outs = kiln__json_get(j, "outputs");
    if ((ins && ins->count > KILN_UI_MAX_SLOTS) || (outs && outs->count > KILN_UI_MAX_SLOTS))
        return fail(doc, KILN_EINVAL, "%s: node %s has more than %d inputs or outputs", where, id,
                    KILN_UI_MAX_SLOTS);
    if (read_slots(&n->inputs, ins) != 0 || read_slots(&n->outputs, outs) != 0)
        return KILN_ENOMEM;
    if (is_group_node(doc, n->type))
        return fail(doc, KILN_EINVAL,
                    "%s: node %s is a legacy group node (%s), which is not supported; "
                    "convert it to a subgraph in the editor and save again",
                    where, id, n->type);
    n->kind = classify(doc, defs, n);
    if (kiln__strmap_has(g->by_id, id))
        return fail(doc, KILN_EINVAL, "%s: duplicate node id %s", where, id);
    return kiln__strmap_put(g->by_id, id, (void *)(uintptr_t)(index + 1));
}

static int parse_graph(kiln__ui_doc_t *doc, kiln__strmap_t *defs, kiln__ui_graph_t *g,
                       const char *where)
{
    const kiln__json_t *nodes = kiln__json_get(g->json, "nodes");
    if (!nodes || nodes->type != KILN_JSON_ARRAY)
        return fail(doc, KILN_EINVAL, "%s: nodes is not an array", where);
    if (nodes->count > KILN_UI_MAX_NODES)
        return fail(doc, KILN_EINVAL, "%s has %zu nodes (at most %d are accepted)", where,
                    nodes->count, KILN_UI_MAX_NODES);
    g->by_id = kiln__strmap_new();
    g->nodes = calloc(nodes->count ? nodes->count : 1, sizeof *g->nodes);
    if (!g->by_id || !g->nodes)
        return KILN_ENOMEM;
    size_t i = 0;
    for (const kiln__json_t *j = nodes->child; j; j = j->next, i++) {
        g->n_nodes = i + 1;
        int rc = parse_node(doc, defs, g, i, j, where);
        if (rc)
            return rc;
    }
    return parse_links(doc, g, kiln__json_get(g->json, "links"));
}

/* ---- subgraph definitions ----------------------------------------------------------------- */

/* Adds every definition listed under obj.definitions.subgraphs (and, recursively, under
 * theirs) to the defs map and list; the first definition of an id wins. */
static int collect_defs(kiln__ui_doc_t *doc, kiln__strmap_t *defs, const kiln__json_t ***list,
                        size_t *n, size_t *cap, const kiln__json_t *obj, int depth)
{
    const kiln__json_t *d = kiln__json_get(obj, "definitions");
    const kiln__json_t *subs = d ? kiln__json_get(d, "subgraphs") : NULL;
    if (!subs || subs->type != KILN_JSON_ARRAY)
        return 0;
    if (depth > KILN_UI_MAX_DEPTH)
        return fail(doc, KILN_EINVAL, "subgraph definitions nested deeper than %d levels",
                    KILN_UI_MAX_DEPTH);
    for (const kiln__json_t *s = subs->child; s; s = s->next) {
        const kiln__json_t *id = kiln__json_get(s, "id");
        if (!id || id->type != KILN_JSON_STRING || id->len == 0 || kiln__strmap_has(defs, id->str))
            continue;
        if (*n >= KILN_UI_MAX_DEFS)
            return fail(doc, KILN_EINVAL, "more than %d subgraph definitions", KILN_UI_MAX_DEFS);
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 8;
            const kiln__json_t **p = realloc(*list, c * sizeof *p);
            if (!p)
                return KILN_ENOMEM;
            *list = p;
            *cap = c;
        }
        (*list)[(*n)++] = s;
        if (kiln__strmap_put(defs, id->str, (void *)(uintptr_t)*n) != 0)
            return KILN_ENOMEM;
        int rc = collect_defs(doc, defs, list, n, cap, s, depth + 1);
        if (rc)
            return rc;
    }
    return 0;
}

/* The id of a definition's inputNode/outputNode, with the editor's fixed ids as fallback. */
static char *io_node_id(const kiln__json_t *def, const char *key, const char *dflt)
{
    char id[ID_MAX];
    const kiln__json_t *io = kiln__json_get(def, key);
    if (!io || !kiln__ui_id_text(kiln__json_get(io, "id"), id, sizeof id))
        return strdup(dflt);
    return strdup(id);
}

static int parse_def(kiln__ui_doc_t *doc, kiln__strmap_t *defs, kiln__ui_graph_t *g)
{
    char where[96];
    snprintf(where, sizeof where, "subgraph %.60s", g->def_id);
    g->input_node = io_node_id(g->json, "inputNode", "-10");
    g->output_node = io_node_id(g->json, "outputNode", "-20");
    if (!g->input_node || !g->output_node)
        return KILN_ENOMEM;
    const kiln__json_t *outs = kiln__json_get(g->json, "outputs");
    g->io_outputs = outs && outs->type == KILN_JSON_ARRAY ? outs : NULL;
    int rc = parse_graph(doc, defs, g, where);
    return rc ? rc : kiln__ui_def_index(g);
}

int kiln__ui_doc_parse(kiln__ui_doc_t *doc, const kiln__json_t *workflow)
{
    const kiln__json_t **list = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (!workflow || workflow->type != KILN_JSON_OBJECT)
        return fail(doc, KILN_EINVAL, "the workflow is not a JSON object");
    doc->root.json = workflow;
    kiln__strmap_t *defs = kiln__strmap_new();
    if (!defs)
        return KILN_ENOMEM;
    rc = collect_defs(doc, defs, &list, &n, &cap, workflow, 0);
    if (rc == 0 && n) {
        doc->defs = calloc(n, sizeof *doc->defs);
        rc = doc->defs ? 0 : KILN_ENOMEM;
    }
    if (rc == 0) {
        doc->n_defs = n;
        for (size_t i = 0; i < n; i++) {
            doc->defs[i].json = list[i];
            doc->defs[i].def_id = kiln__json_get(list[i], "id")->str;
        }
        rc = parse_graph(doc, defs, &doc->root, "workflow");
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = parse_def(doc, defs, &doc->defs[i]);
    free(list);
    kiln__strmap_free(defs);
    return rc;
}

static void graph_free(kiln__ui_graph_t *g)
{
    for (size_t i = 0; i < g->n_nodes; i++) {
        free(g->nodes[i].id);
        free(g->nodes[i].inputs.at);
        free(g->nodes[i].outputs.at);
    }
    for (size_t i = 0; i < g->n_links; i++) {
        free(g->links[i].origin);
        free(g->links[i].target);
    }
    free(g->nodes);
    free(g->links);
    free(g->promos);
    free(g->to_output);
    free(g->input_node);
    free(g->output_node);
    kiln__strmap_free(g->by_id);
    memset(g, 0, sizeof *g);
}

void kiln__ui_doc_free(kiln__ui_doc_t *doc)
{
    graph_free(&doc->root);
    for (size_t i = 0; i < doc->n_defs; i++)
        graph_free(&doc->defs[i]);
    free(doc->defs);
    doc->defs = NULL;
    doc->n_defs = 0;
}
