/* UI workflow -> API prompt: the server-side equivalent of the editor's graphToPrompt
 * (../shared/docs/comfyui-compat.md §2.5-2.6). Subgraph instances are expanded into
 * frames (one per instance, execution ids "<instance>:<inner>"), every linked input is
 * resolved through Reroutes, bypassed nodes, PrimitiveNodes and subgraph boundaries, and
 * links into nodes that are not emitted are dropped at the end, as the editor drops them. */
#include <kiln/error.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"
#include "graph/ui_int.h"

/* Short local names for the converter's types. */
typedef kiln__ui_frame_t frame_t;
typedef kiln__ui_conv_t conv_t;
typedef kiln__ui_res_t res_t;
typedef kiln__ui_exec_t exec_t;

static int fail(conv_t *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(conv_t *c, int rc, const char *fmt, ...)
{
    if (c->doc.err && c->doc.err_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->doc.err, c->doc.err_size, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* ---- expansion ------------------------------------------------------------------------- */

/* Appends node n of frame f to the emission list (virtual and muted nodes too; emission
 * skips them), refusing workflows that expand beyond KILN_UI_MAX_EXEC. */
static int add_exec(conv_t *c, const frame_t *f, const kiln__ui_node_t *n)
{
    if (c->n_exec + c->n_frames > KILN_UI_MAX_EXEC)
        return fail(c, KILN_EINVAL, "the workflow expands to more than %d nodes", KILN_UI_MAX_EXEC);
    if (c->n_exec == c->cap_exec) {
        size_t cap = c->cap_exec ? c->cap_exec * 2 : 64;
        exec_t *p = realloc(c->exec, cap * sizeof *p);
        if (!p)
            return KILN_ENOMEM;
        c->exec = p;
        c->cap_exec = cap;
    }
    char *id = kiln__ui_concat3(f->prefix, n->id, "");
    if (!id)
        return KILN_ENOMEM;
    c->exec[c->n_exec++] = (exec_t){f, n, id};
    return 0;
}

/* Creates the frame of the root graph (inst NULL) or of subgraph instance inst, owned by
 * c, and indexes instance frames by prefix for resolution. */
static int new_frame(conv_t *c, const frame_t *parent, const kiln__ui_node_t *inst, frame_t **out)
{
    if (c->n_frames == c->cap_frames) {
        size_t cap = c->cap_frames ? c->cap_frames * 2 : 8;
        frame_t **p = realloc(c->frames, cap * sizeof *p);
        if (!p)
            return KILN_ENOMEM;
        c->frames = p;
        c->cap_frames = cap;
    }
    frame_t *f = calloc(1, sizeof *f);
    if (!f)
        return KILN_ENOMEM;
    c->frames[c->n_frames++] = f;
    f->parent = parent;
    f->instance = inst;
    f->g = inst ? inst->sub : &c->doc.root;
    f->depth = parent ? parent->depth + 1 : 0;
    f->prefix = inst ? kiln__ui_concat3(parent->prefix, inst->id, ":") : strdup("");
    if (!f->prefix)
        return KILN_ENOMEM;
    *out = f;
    if (!inst)
        return 0;
    int rc = kiln__ui_frame_promoted(f);
    if (rc == 0 && kiln__strmap_put(c->frame_by_prefix, f->prefix, f) != 0)
        rc = KILN_ENOMEM;
    return rc;
}

/* Adds the nodes of frame f in the given order (NULL: file order), expanding subgraph
 * instances in place as the editor's getInnerNodes does. A muted or bypassed instance is
 * not expanded: its contents do not run. */
static int expand(conv_t *c, frame_t *f, const size_t *order)
{
    for (size_t i = 0; i < f->g->n_nodes; i++) {
        const kiln__ui_node_t *n = &f->g->nodes[order ? order[i] : i];
        int rc;
        if (n->kind != KILN_UI_SUBGRAPH) {
            rc = add_exec(c, f, n);
        } else if (n->mode == 2 || n->mode == 4) {
            continue;
        } else if (f->depth + 1 > KILN_UI_MAX_DEPTH) {
            rc = fail(c, KILN_EINVAL,
                      "subgraphs nested deeper than %d levels at node %s%s (does a subgraph "
                      "contain itself?)",
                      KILN_UI_MAX_DEPTH, f->prefix, n->id);
        } else {
            frame_t *child = NULL;
            rc = new_frame(c, f, n, &child);
            if (rc == 0 && c->n_exec + c->n_frames > KILN_UI_MAX_EXEC)
                rc = fail(c, KILN_EINVAL, "the workflow expands to more than %d nodes",
                          KILN_UI_MAX_EXEC);
            if (rc == 0)
                rc = expand(c, child, NULL);
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- emission -------------------------------------------------------------------------- */

static const char *node_title(const kiln__ui_node_t *n)
{
    const kiln__json_t *t = kiln__json_get(n->json, "title");
    if (t && t->type == KILN_JSON_STRING)
        return t->str;
    if (n->cls)
        return n->cls->def.display_name ? n->cls->def.display_name : n->cls->def.name;
    return n->type;
}

static kiln__json_t *link_value(const res_t *r)
{
    char *id = kiln__ui_concat3(r->f->prefix, r->n->id, "");
    kiln__json_t *a = kiln__json_new_array();
    kiln__json_t *s = id ? kiln__json_new_string(id) : NULL;
    kiln__json_t *k = kiln__json_new_int(r->slot);
    free(id);
    if (!a || !s || !k || kiln__json_append(a, s) != 0) {
        kiln__json_free(a);
        kiln__json_free(s);
        kiln__json_free(k);
        return NULL;
    }
    if (kiln__json_append(a, k) != 0) {
        kiln__json_free(a);
        kiln__json_free(k);
        return NULL;
    }
    return a;
}

/* Writes the resolved value of every linked input slot of e over the widget values. */
static int put_links(conv_t *c, const exec_t *e, kiln__json_t *inputs)
{
    const kiln__ui_node_t *n = e->n;
    size_t n_in = n->inputs.count;
    for (size_t s = 0; s < n_in; s++) {
        const char *name = kiln__ui_slot_name(n, (int64_t)s);
        if (!name)
            continue;
        res_t r = kiln__ui_resolve_input(c, e->f, n, (int64_t)s);
        int rc = 0;
        if (r.kind == KILN_UI_RES_LINK) {
            kiln__json_t *v = link_value(&r);
            rc = v ? kiln__json_set(inputs, name, v) : KILN_ENOMEM;
        } else if (r.kind == KILN_UI_RES_VALUE) {
            const char *w = kiln__ui_slot_widget(n, (int64_t)s);
            const char *key = r.primitive && w ? w : name;
            const kiln_input_def_t *def = n->cls ? kiln__node_class_input(n->cls, key) : NULL;
            /* A PrimitiveNode only ever writes into widgets. */
            if (r.primitive && !w && !(def && kiln__ui_widget_typed(def)))
                continue;
            rc = kiln__ui_put_value(inputs, key, r.value, def, e->id, c->seed);
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int emit_node(conv_t *c, const exec_t *e, kiln__json_t *prompt)
{
    const kiln__ui_node_t *n = e->n;
    kiln__json_t *node = kiln__json_new_object();
    kiln__json_t *inputs = kiln__json_new_object();
    kiln__json_t *meta = kiln__json_new_object();
    int rc = node && inputs && meta ? 0 : KILN_ENOMEM;
    if (rc == 0 && n->kind == KILN_UI_REAL)
        rc = kiln__ui_widget_values(&c->doc, n->cls, kiln__json_get(n->json, "widgets_values"),
                                    e->id, c->seed, inputs);
    if (rc == 0)
        rc = put_links(c, e, inputs);
    if (rc == 0) {
        rc = kiln__json_set(node, "inputs", inputs);
        inputs = NULL;
    }
    if (rc == 0) {
        kiln__json_t *ct = kiln__json_new_string(n->type);
        rc = ct ? kiln__json_set(node, "class_type", ct) : KILN_ENOMEM;
    }
    if (rc == 0) {
        kiln__json_t *title = kiln__json_new_string(node_title(n));
        rc = title ? kiln__json_set(meta, "title", title) : KILN_ENOMEM;
    }
    if (rc == 0) {
        rc = kiln__json_set(node, "_meta", meta);
        meta = NULL;
    }
    if (rc == 0) {
        rc = kiln__json_set(prompt, e->id, node);
        node = NULL;
    }
    kiln__json_free(node);
    kiln__json_free(inputs);
    kiln__json_free(meta);
    return rc;
}

/* graphToPrompt's last step: a link to a node that was not emitted (muted, say) is
 * removed, which may leave a required input missing for validation to report. */
static int drop_dangling(kiln__json_t *prompt)
{
    kiln__strmap_t *ids = kiln__strmap_new();
    if (!ids)
        return KILN_ENOMEM;
    for (kiln__json_t *m = prompt->child; m; m = m->next)
        if (kiln__strmap_put(ids, m->key, m) != 0) {
            kiln__strmap_free(ids);
            return KILN_ENOMEM;
        }
    for (kiln__json_t *m = prompt->child; m; m = m->next) {
        kiln__json_t *inputs = kiln__json_get(m, "inputs");
        for (kiln__json_t *in = inputs ? inputs->child : NULL; in;) {
            kiln__json_t *next = in->next;
            if (in->type == KILN_JSON_ARRAY && in->count == 2 &&
                in->child->type == KILN_JSON_STRING && !kiln__strmap_has(ids, in->child->str))
                kiln__json_remove(inputs, in->key);
            in = next;
        }
    }
    kiln__strmap_free(ids);
    return 0;
}

/* ---- entry points ---------------------------------------------------------------------- */

static void conv_free(conv_t *c)
{
    for (size_t i = 0; i < c->n_frames; i++) {
        free(c->frames[i]->prefix);
        free(c->frames[i]->promoted);
        free(c->frames[i]);
    }
    for (size_t i = 0; i < c->n_exec; i++)
        free(c->exec[i].id);
    free(c->frames);
    free(c->exec);
    kiln__strmap_free(c->frame_by_prefix);
    kiln__ui_doc_free(&c->doc);
}

/* The value of a key that JavaScript treats as an array index (canonical decimal below
 * 2^32 - 1), or -1 for any other key. */
static long long js_index_key(const char *k)
{
    if (!k[0] || (k[0] == '0' && k[1]) || strlen(k) > 10)
        return -1;
    long long v = 0;
    for (const char *p = k; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v < 4294967295LL ? v : -1;
}

typedef struct js_key {
    kiln__json_t *member; /* borrowed: a member of the prompt */
    long long index;      /* js_index_key of its key */
    size_t pos;           /* original position, to keep the sort stable */
} js_key_t;

static int js_key_cmp(const void *a, const void *b)
{
    const js_key_t *x = a, *y = b;
    if (x->index >= 0 && y->index >= 0)
        return x->index < y->index ? -1 : x->index > y->index;
    if ((x->index >= 0) != (y->index >= 0))
        return x->index >= 0 ? -1 : 1; /* index keys first */
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Orders the prompt's keys as the editor's JSON.stringify of a plain object does: node ids
 * that are array indexes ascending, then the others ("12:5") in insertion order. The key
 * order decides which output node runs first and is what the PNG prompt chunk shows. */
static int order_like_js(kiln__json_t *prompt)
{
    size_t n = prompt->count, k = 0;
    if (n < 2)
        return 0;
    js_key_t *v = malloc(n * sizeof *v);
    if (!v)
        return KILN_ENOMEM;
    for (kiln__json_t *c = prompt->child; c && k < n; c = c->next, k++)
        v[k] = (js_key_t){c, js_index_key(c->key), k};
    qsort(v, k, sizeof *v, js_key_cmp);
    for (size_t i = 0; i < k; i++)
        v[i].member->next = i + 1 < k ? v[i + 1].member : NULL;
    prompt->child = v[0].member;
    prompt->last = v[k - 1].member;
    free(v);
    return 0;
}

static int convert(conv_t *c, const kiln__json_t *workflow, kiln__json_t *prompt)
{
    int rc = kiln__ui_doc_parse(&c->doc, workflow);
    if (rc)
        return rc;
    c->frame_by_prefix = kiln__strmap_new();
    size_t *order = malloc((c->doc.root.n_nodes ? c->doc.root.n_nodes : 1) * sizeof *order);
    frame_t *root = NULL;
    rc = c->frame_by_prefix && order ? 0 : KILN_ENOMEM;
    if (rc == 0)
        rc = kiln__ui_execution_order(&c->doc.root, order);
    if (rc == 0)
        rc = new_frame(c, NULL, NULL, &root);
    if (rc == 0)
        rc = expand(c, root, order);
    free(order);
    for (size_t i = 0; rc == 0 && i < c->n_exec; i++) {
        const kiln__ui_node_t *n = c->exec[i].n;
        bool virtual = n->kind == KILN_UI_REROUTE || n->kind == KILN_UI_PRIMITIVE ||
                       n->kind == KILN_UI_NOTE;
        if (virtual || n->mode == 2 || n->mode == 4)
            continue;
        rc = emit_node(c, &c->exec[i], prompt);
    }
    if (rc == 0)
        rc = drop_dangling(prompt);
    return rc == 0 ? order_like_js(prompt) : rc;
}

int kiln__workflow_to_prompt(const kiln__json_t *workflow, const kiln__registry_t *reg,
                             const kiln__env_t *env, uint64_t seed, kiln__json_t **prompt,
                             char *err, size_t err_size)
{
    conv_t c = {.seed = seed};
    c.doc.reg = reg;
    c.doc.env = env;
    c.doc.err = err;
    c.doc.err_size = err_size;
    if (err && err_size)
        err[0] = 0;
    *prompt = NULL;
    kiln__json_t *out = kiln__json_new_object();
    int rc = out ? convert(&c, workflow, out) : KILN_ENOMEM;
    conv_free(&c);
    if (rc) {
        kiln__json_free(out);
        if (rc == KILN_ENOMEM && err && err_size)
            snprintf(err, err_size, "out of memory converting the workflow");
        return rc;
    }
    *prompt = out;
    return 0;
}

bool kiln__workflow_is_ui(const kiln__json_t *doc)
{
    const kiln__json_t *nodes = doc ? kiln__json_get(doc, "nodes") : NULL;
    const kiln__json_t *links = doc ? kiln__json_get(doc, "links") : NULL;
    return doc && doc->type == KILN_JSON_OBJECT && nodes && nodes->type == KILN_JSON_ARRAY &&
           links && links->type == KILN_JSON_ARRAY;
}
