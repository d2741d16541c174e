/* API prompt -> graph: checks the prompt's shape the way ComfyUI's validate_prompt does
 * before per-node validation (every entry an object with a known class_type), indexes the
 * nodes by id and records each input as a constant or a link. Checking the links and the
 * constants belongs to validation (validate.c). */
#include "graph/graph.h"

#include <kiln/error.h>
#include <stdio.h>
#include <string.h>

#include "graph/validate_int.h"
#include "util/sbuf.h"

/* Absurd sizes are refused before any per-node work, so a hostile prompt cannot make
 * validation allocate without bound. */
#define GRAPH_MAX_NODES 100000
#define GRAPH_MAX_INPUTS 10000

kiln__json_t *kiln__graph_error(const char *type, const char *message, const char *details)
{
    return kiln__validate_error_new(type, message, details ? details : "", NULL);
}

/* A prompt-level invalid_prompt error about node `id` (NULL when it concerns the whole
 * prompt). extra_info gets {node_id, class_type, node_title} as newer ComfyUI sends. */
static kiln__json_t *invalid_prompt(const char *id, const kiln__json_t *class_type,
                                    const char *title, const char *message)
{
    kiln__sbuf_t details = KILN_SBUF_INIT;
    if (id)
        kiln__sbuf_printf(&details, "Node ID '#%s'", id);
    kiln__json_t *extra = kiln__json_new_object();
    bool ok = extra && !details.failed;
    if (id && ok) {
        kiln__validate_put(extra, "node_id", kiln__json_new_string(id), &ok);
        kiln__validate_put(extra, "class_type",
                           class_type ? kiln__json_dup(class_type) : kiln__json_new_null(), &ok);
        kiln__validate_put(extra, "node_title",
                           title ? kiln__json_new_string(title) : kiln__json_new_null(), &ok);
    }
    kiln__json_t *err = NULL;
    if (ok)
        err = kiln__validate_error_new("invalid_prompt", message, kiln__sbuf_cstr(&details), extra);
    else
        kiln__json_free(extra);
    kiln__sbuf_free(&details);
    return err;
}

void kiln__graph_free(kiln__graph_t *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n_nodes; i++)
        kiln_free(g->nodes[i].inputs);
    kiln_free(g->nodes);
    kiln_free(g->outputs);
    kiln__strmap_free(g->index);
    kiln__json_free(g->prompt);
    kiln_free(g);
}

int kiln__graph_find(const kiln__graph_t *g, const char *id)
{
    if (!g || !id)
        return -1;
    uintptr_t v = (uintptr_t)kiln__strmap_get(g->index, id);
    return v ? (int)(v - 1) : -1;
}

kiln__graph_input_t *kiln__graph_node_input(const kiln__graph_node_t *n, const char *name)
{
    for (size_t i = 0; n && name && i < n->n_inputs; i++)
        if (strcmp(n->inputs[i].name, name) == 0)
            return &n->inputs[i];
    return NULL;
}

static void *zalloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    size_t bytes = n * size;
    void *p = kiln_malloc(bytes > 0 ? bytes : 1);
    if (p)
        memset(p, 0, bytes);
    return p;
}

/* The node's _meta.title when it is a string. */
static const char *node_title(const kiln__json_t *node)
{
    return kiln__json_get_string(kiln__json_get(node, "_meta"), "title", NULL);
}

/* Shape checks of one prompt entry, in ComfyUI's order; fills n. Returns 0, or
 * KILN_EVALIDATION with *error (NULL when allocating it failed). */
static int parse_node(const kiln__registry_t *reg, kiln__json_t *m, kiln__graph_node_t *n,
                      kiln__json_t **error)
{
    const char *id = m->key;
    n->id = id;
    n->json = m;
    char msg[256];
    if (strlen(id) != m->key_len) {
        *error = invalid_prompt(NULL, NULL, NULL,
                                "Cannot execute because a node id contains a NUL character.");
        return KILN_EVALIDATION;
    }
    if (m->type != KILN_JSON_OBJECT) {
        *error =
            invalid_prompt(id, NULL, NULL, "Cannot execute because a node is not a JSON object.");
        return KILN_EVALIDATION;
    }
    n->title = node_title(m);
    const kiln__json_t *ct = kiln__json_get(m, "class_type");
    if (!ct) {
        *error = invalid_prompt(id, NULL, n->title,
                                "Cannot execute because a node is missing the class_type "
                                "property.");
        return KILN_EVALIDATION;
    }
    n->cls = ct->type == KILN_JSON_STRING ? kiln__registry_find(reg, ct->str) : NULL;
    if (!n->cls) {
        /* ComfyUI prints the class_type with str(), so a non-string one reads e.g. "5". */
        kiln__sbuf_t name = KILN_SBUF_INIT;
        kiln__py_str(&name, ct);
        const char *cname = kiln__sbuf_cstr(&name);
        snprintf(msg, sizeof msg, "Cannot execute because node %s does not exist.", cname);
        *error = invalid_prompt(id, ct, n->title ? n->title : cname, msg);
        kiln__sbuf_free(&name);
        return KILN_EVALIDATION;
    }
    n->class_type = ct->str;
    const kiln__json_t *inputs = kiln__json_get(m, "inputs");
    const char *title = n->title ? n->title : ct->str;
    if (inputs && inputs->type != KILN_JSON_OBJECT) {
        *error = invalid_prompt(id, ct, title,
                                "Cannot execute because the inputs of a node are not a JSON "
                                "object.");
        return KILN_EVALIDATION;
    }
    /* Inputs are matched by C string, so a name with a NUL inside would alias another. */
    for (const kiln__json_t *in = inputs ? inputs->child : NULL; in; in = in->next) {
        if (strlen(in->key) != in->key_len) {
            *error = invalid_prompt(id, ct, title,
                                    "Cannot execute because an input name contains a NUL "
                                    "character.");
            return KILN_EVALIDATION;
        }
    }
    if (inputs && inputs->count > GRAPH_MAX_INPUTS) {
        snprintf(msg, sizeof msg, "Cannot execute because a node has %zu inputs; the limit is %d.",
                 inputs->count, GRAPH_MAX_INPUTS);
        *error = invalid_prompt(id, ct, title, msg);
        return KILN_EVALIDATION;
    }
    return 0;
}

/* Rewrites a numeric link id ([4, 0] -> ["4", 0]) in the prompt, since ids are strings
 * everywhere downstream (history, events). Returns the new link array or NULL on OOM. */
static kiln__json_t *stringify_link(kiln__json_t *inputs, kiln__json_t *link)
{
    const kiln__json_t *first = link->child;
    char buf[32];
    if (first->is_u64)
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)first->u);
    else if (first->type == KILN_JSON_INT)
        snprintf(buf, sizeof buf, "%lld", (long long)first->i);
    else
        snprintf(buf, sizeof buf, "%.0f", first->d);
    kiln__json_t *arr = kiln__json_new_array();
    bool ok = arr != NULL;
    kiln__validate_put(arr, NULL, kiln__json_new_string(buf), &ok);
    kiln__validate_put(arr, NULL, kiln__json_dup(first->next), &ok);
    if (!ok) {
        kiln__json_free(arr);
        return NULL;
    }
    /* kiln__json_set copies the name before it frees the old link that holds it. */
    if (kiln__json_set(inputs, link->key, arr) != 0)
        return NULL;
    return arr;
}

/* True for an integral number usable as a node id. */
static bool numeric_id(const kiln__json_t *j)
{
    if (j->type == KILN_JSON_INT)
        return true;
    /* Range first: converting an out-of-range double to an integer is undefined. */
    return j->type == KILN_JSON_NUMBER && j->d >= 0 && j->d < 9e15 && j->d == (double)(int64_t)j->d;
}

/* Records one input; a link is ["id", slot] (ComfyUI's is_link) or, defensively, [4, slot].
 * The slot of a link is its integer value, or -1 when it is not a usable index (validation
 * reports that). Returns 0 or KILN_ENOMEM. */
static int parse_input(kiln__graph_t *g, kiln__json_t *inputs, kiln__json_t *m,
                       kiln__graph_input_t *in, const kiln__node_class_t *cls)
{
    in->name = m->key;
    in->def = kiln__node_class_input(cls, m->key);
    in->value = m;
    in->src = -1;
    in->src_slot = -1;
    if (m->type != KILN_JSON_ARRAY || m->count != 2)
        return 0;
    kiln__json_t *first = m->child, *slot = first->next;
    if (!kiln__json_is_number(slot))
        return 0;
    if (first->type != KILN_JSON_STRING) {
        if (!numeric_id(first))
            return 0;
        if (!(m = stringify_link(inputs, m)))
            return KILN_ENOMEM;
        in->name = m->key;
        in->value = m;
        first = m->child;
        slot = first->next;
    }
    in->is_link = true;
    in->src_id = first->str;
    if (slot->type == KILN_JSON_INT && !slot->is_u64 && slot->i >= 0 && slot->i <= INT32_MAX)
        in->src_slot = (int)slot->i;
    else if (slot->type == KILN_JSON_NUMBER && slot->d >= 0 && slot->d <= INT32_MAX &&
             slot->d == (double)(int)slot->d)
        in->src_slot = (int)slot->d; /* 0.0 is accepted as slot 0 */
    return 0;
}

static int parse_inputs(kiln__graph_t *g, kiln__graph_node_t *n)
{
    kiln__json_t *inputs = kiln__json_get(n->json, "inputs");
    if (!inputs || inputs->count == 0)
        return 0;
    n->inputs = zalloc(inputs->count, sizeof *n->inputs);
    if (!n->inputs)
        return KILN_ENOMEM;
    for (kiln__json_t *m = inputs->child, *next; m; m = next) {
        next = m->next; /* stringify_link may replace m */
        kiln__graph_input_t *in = &n->inputs[n->n_inputs++];
        if (parse_input(g, inputs, m, in, n->cls) != 0)
            return KILN_ENOMEM;
    }
    return 0;
}

static int fail_prompt(kiln__json_t **error, const char *msg)
{
    *error = kiln__graph_error("invalid_prompt", msg, "");
    return *error ? KILN_EVALIDATION : KILN_ENOMEM;
}

int kiln__graph_new(kiln__json_t *prompt, const kiln__registry_t *reg, kiln__graph_t **out,
                    kiln__json_t **error)
{
    *out = NULL;
    *error = NULL;
    int rc;
    if (!prompt || prompt->type != KILN_JSON_OBJECT) {
        kiln__json_free(prompt);
        return fail_prompt(error, "Cannot execute because the prompt is not a JSON object.");
    }
    if (prompt->count > GRAPH_MAX_NODES) {
        char msg[128];
        snprintf(msg, sizeof msg,
                 "Cannot execute because the prompt has %zu nodes; the limit is %d.", prompt->count,
                 GRAPH_MAX_NODES);
        kiln__json_free(prompt);
        return fail_prompt(error, msg);
    }
    kiln__graph_t *g = zalloc(1, sizeof *g);
    if (!g) {
        kiln__json_free(prompt);
        return KILN_ENOMEM;
    }
    g->prompt = prompt;
    rc = KILN_ENOMEM;
    if (!(g->index = kiln__strmap_new()))
        goto fail;
    if (prompt->count && !(g->nodes = zalloc(prompt->count, sizeof *g->nodes)))
        goto fail;
    for (kiln__json_t *m = prompt->child; m; m = m->next) {
        kiln__graph_node_t *n = &g->nodes[g->n_nodes++];
        if ((rc = parse_node(reg, m, n, error)) != 0)
            goto fail;
        rc = KILN_ENOMEM;
        if (kiln__strmap_put(g->index, n->id, (void *)(uintptr_t)g->n_nodes) != 0)
            goto fail;
    }
    for (size_t i = 0; i < g->n_nodes; i++)
        if (parse_inputs(g, &g->nodes[i]) != 0)
            goto fail;
    /* Links are resolved once every id is indexed. */
    for (size_t i = 0; i < g->n_nodes; i++)
        for (size_t k = 0; k < g->nodes[i].n_inputs; k++) {
            kiln__graph_input_t *in = &g->nodes[i].inputs[k];
            if (in->is_link)
                in->src = kiln__graph_find(g, in->src_id);
        }
    *out = g;
    return 0;
fail:
    if (rc == KILN_EVALIDATION && !*error)
        rc = KILN_ENOMEM; /* the error object itself could not be built */
    kiln__graph_free(g);
    return rc;
}
