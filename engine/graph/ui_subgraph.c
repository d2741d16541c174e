/* Subgraph definitions for the UI-workflow converter: per definition, which of its inputs
 * feed a widget inside (the editor promotes those widgets onto every instance, and an
 * instance's widgets_values hold their values) and which link feeds each output; per
 * instance, where each promoted value sits. Computed once per definition so that a file
 * with many instances of a large definition stays linear. */
#include <kiln/error.h>

#include <stdlib.h>
#include <string.h>

#include "graph/ui_int.h"

/* Beyond this many inputs, a target node whose inputs[target_slot] does not carry the
 * link is not searched further (only broken files get there). */
#define SLOT_SCAN_MAX 64

/* The slot of node t that carries link id (the editor searches by link id; a consistent
 * file has it at target_slot). -1 when none. */
static int64_t slot_with_link(const kiln__ui_node_t *t, const kiln__ui_link_t *l)
{
    if (kiln__ui_slot_link(t, l->target_slot) == l->id)
        return l->target_slot;
    if (t->inputs.count > SLOT_SCAN_MAX)
        return -1;
    for (size_t s = 0; s < t->inputs.count; s++)
        if (kiln__ui_slot_link(t, (int64_t)s) == l->id)
            return (int64_t)s;
    return -1;
}

typedef struct link_ref {
    int64_t key;  /* origin_slot or target_slot */
    int64_t tie;  /* link id or file order */
    size_t index; /* into g->links */
} link_ref_t;

static int ref_cmp(const void *a, const void *b)
{
    const link_ref_t *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->tie < y->tie ? -1 : x->tie > y->tie;
}

/* Links that leave the input node, grouped by input slot in link-id order (the order of
 * each input's linkIds): the first that reaches a widget promotes it. */
static int index_promos(kiln__ui_graph_t *g, link_ref_t *refs)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n_links; i++)
        if (strcmp(g->links[i].origin, g->input_node) == 0)
            refs[n++] = (link_ref_t){g->links[i].origin_slot, g->links[i].id, i};
    qsort(refs, n, sizeof *refs, ref_cmp);
    g->promos = calloc(n ? n : 1, sizeof *g->promos);
    if (!g->promos)
        return KILN_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (g->n_promos && g->promos[g->n_promos - 1].slot == refs[i].key)
            continue; /* this input already promotes a widget */
        const kiln__ui_link_t *l = &g->links[refs[i].index];
        const kiln__ui_node_t *t = kiln__ui_graph_find(g, l->target);
        int64_t s = t ? slot_with_link(t, l) : -1;
        const char *w = s >= 0 ? kiln__ui_slot_widget(t, s) : NULL;
        if (!w)
            continue;
        const kiln_input_def_t *def = t->cls ? kiln__node_class_input(t->cls, w) : NULL;
        g->promos[g->n_promos++] =
            (kiln__ui_promo_t){l->origin_slot, def && kiln__ui_has_control(def)};
    }
    return 0;
}

static int index_outputs(kiln__ui_graph_t *g, link_ref_t *refs)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n_links; i++)
        if (strcmp(g->links[i].target, g->output_node) == 0)
            refs[n++] = (link_ref_t){g->links[i].target_slot, (int64_t)g->links[i].order, i};
    qsort(refs, n, sizeof *refs, ref_cmp);
    g->to_output = malloc((n ? n : 1) * sizeof *g->to_output);
    if (!g->to_output)
        return KILN_ENOMEM;
    for (size_t i = 0; i < n; i++)
        g->to_output[i] = refs[i].index;
    g->n_to_output = n;
    return 0;
}

int kiln__ui_def_index(kiln__ui_graph_t *g)
{
    link_ref_t *refs = malloc((g->n_links ? g->n_links : 1) * sizeof *refs);
    if (!refs)
        return KILN_ENOMEM;
    int rc = index_promos(g, refs);
    if (rc == 0)
        rc = index_outputs(g, refs);
    free(refs);
    return rc;
}

const kiln__ui_promo_t *kiln__ui_graph_promo(const kiln__ui_graph_t *g, int64_t slot)
{
    size_t lo = 0, hi = g->n_promos;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->promos[mid].slot < slot)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < g->n_promos && g->promos[lo].slot == slot ? &g->promos[lo] : NULL;
}

const kiln__ui_link_t *kiln__ui_graph_output_link(const kiln__ui_graph_t *g, int64_t slot)
{
    /* The editor takes the first id in the output's linkIds. */
    const kiln__json_t *outs = g->io_outputs;
    const kiln__json_t *out = outs && slot >= 0 && (uint64_t)slot < outs->count
                                  ? kiln__json_at(outs, (size_t)slot)
                                  : NULL;
    const kiln__json_t *ids = out ? kiln__json_get(out, "linkIds") : NULL;
    int64_t id;
    if (ids && ids->type == KILN_JSON_ARRAY && kiln__ui_int(ids->child, &id)) {
        const kiln__ui_link_t *l = kiln__ui_graph_link(g, id);
        if (l && strcmp(l->target, g->output_node) == 0 && l->target_slot == slot)
            return l;
    }
    size_t lo = 0, hi = g->n_to_output;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->links[g->to_output[mid]].target_slot < slot)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < g->n_to_output && g->links[g->to_output[lo]].target_slot == slot)
        return &g->links[g->to_output[lo]];
    return NULL;
}

int kiln__ui_frame_promoted(kiln__ui_frame_t *f)
{
    const kiln__ui_graph_t *g = f->g;
    size_t n = f->instance->inputs.count;
    f->n_promoted = n;
    f->promoted = malloc((n ? n : 1) * sizeof *f->promoted);
    if (!f->promoted)
        return KILN_ENOMEM;
    size_t count = 0;
    for (size_t k = 0; k < n; k++)
        count += kiln__ui_graph_promo(g, (int64_t)k) != NULL;
    /* Editors that mirrored the inner layout stored a control value after a promoted
     * seed; such arrays are longer than one value per promoted input. */
    const kiln__json_t *wv = kiln__json_get(f->instance->json, "widgets_values");
    bool legacy = wv && wv->type == KILN_JSON_ARRAY && wv->count > count;
    int64_t idx = 0;
    for (size_t k = 0; k < n; k++) {
        const kiln__ui_promo_t *p = kiln__ui_graph_promo(g, (int64_t)k);
        f->promoted[k] = p ? idx : -1;
        if (p)
            idx += 1 + (legacy && p->control ? 1 : 0);
    }
    return 0;
}
