/* The prompt graph: an API-format prompt turned into nodes and links, checked against
 * the registry, with ComfyUI-shaped errors. */
#ifndef KILN_GRAPH_GRAPH_H
#define KILN_GRAPH_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json/json.h"
#include "registry/registry.h"
#include "util/env.h"
#include "util/strmap.h"

typedef struct kiln__graph_input {
    const char *name;               /* borrowed: key in the prompt JSON */
    const kiln_input_def_t *def;    /* borrowed: registry; NULL when the class does not declare it */
    bool is_link;                   /* ["id", slot] */
    kiln__json_t *value;            /* borrowed: the constant inside graph->prompt (validation
                                     * coerces it in place); for a link, the link array */
    const char *src_id;             /* link: borrowed source node id */
    int src_slot;                   /* link: output index */
    int src;                        /* link: index into graph->nodes, -1 when absent */
} kiln__graph_input_t;

typedef struct kiln__graph_node {
    const char *id;                 /* borrowed: key in graph->prompt */
    const char *class_type;         /* borrowed */
    const kiln__node_class_t *cls;  /* borrowed: registry; NULL when unknown */
    const char *title;              /* borrowed: _meta.title or NULL */
    kiln__graph_input_t *inputs;    /* owned; prompt order */
    size_t n_inputs;
    kiln__json_t *json;             /* borrowed: this node's entry in graph->prompt */
} kiln__graph_node_t;

typedef struct kiln__graph {
    kiln__json_t *prompt;           /* owned: the API prompt; validation writes coerced values */
    kiln__graph_node_t *nodes;      /* owned; prompt order */
    size_t n_nodes;
    kiln__strmap_t *index;          /* owned: id -> (void *)(uintptr_t)(index + 1) */
    int *outputs;                   /* owned: node indexes of the outputs to execute (after
                                     * validation), in prompt order */
    size_t n_outputs;
} kiln__graph_t;

/* Builds a graph from an API-format prompt (takes ownership of prompt, also on failure).
 * Structural problems that ComfyUI reports before per-node validation become *error, a
 * prompt-level error object {type, message, details, extra_info} (caller owns):
 * invalid_prompt for a non-object prompt, a node that is not an object, a missing
 * class_type, or an unknown class ("Cannot execute because node X does not exist.",
 * details "Node ID '#id'"). Links are recorded as they are; their checking belongs to
 * validation. Returns 0, KILN_EVALIDATION (with *error) or KILN_ENOMEM. */
int kiln__graph_new(kiln__json_t *prompt, const kiln__registry_t *reg, kiln__graph_t **out,
                    kiln__json_t **error);
void kiln__graph_free(kiln__graph_t *g);

/* Index of the node with this id, or -1. */
int kiln__graph_find(const kiln__graph_t *g, const char *id);

/* The graph input of node n named name, or NULL. */
kiln__graph_input_t *kiln__graph_node_input(const kiln__graph_node_t *n, const char *name);

/* Validates as ComfyUI's validate_prompt does (see ../shared/docs/comfyui-compat.md §1.4-1.5):
 * picks the output nodes (filtered by partial_targets when n_targets > 0), validates each
 * recursively with memoisation, coerces constants in place, collects every error of every
 * node. On success (at least one valid output) fills g->outputs and returns 0 with
 * *node_errors = the node_errors object of the outputs that failed ({} when none). When no
 * output is valid returns KILN_EVALIDATION with *error_body = the complete 400 body
 * {"error": {...}, "node_errors": {...}}. Caller owns what it receives. */
int kiln__graph_validate(kiln__graph_t *g, const kiln__registry_t *reg, const kiln__env_t *env,
                         const char *const *partial_targets, size_t n_targets,
                         kiln__json_t **node_errors, kiln__json_t **error_body);

/* Builds a prompt-level error object {type, message, details, extra_info: {}}. */
kiln__json_t *kiln__graph_error(const char *type, const char *message, const char *details);

/* Converts a UI-format saved workflow (nodes/links/widgets_values, schema 0.4 or 1) to an
 * API-format prompt exactly as ComfyUI's frontend graphToPrompt does
 * (../shared/docs/comfyui-compat.md §2): muted and bypassed nodes, Reroute, PrimitiveNode,
 * Note, control_after_generate values, converted widgets, subgraphs, groups ignored, and
 * the frontend's dynamic-prompt preprocessing of STRING widgets that declare it (with
 * `seed` choosing among {a|b} options deterministically). Returns 0 with *prompt (caller
 * owns), or KILN_EINVAL (structural problems) / KILN_ENOMEM with a message in err. */
int kiln__workflow_to_prompt(const kiln__json_t *workflow, const kiln__registry_t *reg,
                             const kiln__env_t *env, uint64_t seed, kiln__json_t **prompt,
                             char *err, size_t err_size);

/* True when doc looks like a UI-format workflow (has a "nodes" array and a "links" array)
 * rather than an API prompt. */
bool kiln__workflow_is_ui(const kiln__json_t *doc);

#endif
