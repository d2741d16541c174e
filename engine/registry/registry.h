/* The node registry: every node class that packs declared, validated once at
 * registration, looked up by class_type, and rendered as ComfyUI's /object_info JSON. */
#ifndef KILN_REGISTRY_REGISTRY_H
#define KILN_REGISTRY_REGISTRY_H

#include <kiln/node.h>
#include <stdbool.h>
#include <stddef.h>

#include "json/json.h"
#include "util/env.h"

/* One registered node class. The def and its tables are normalized copies (fields past a
 * pack's struct_size zero-filled), owned by the registry and immutable after registration,
 * so any thread may read them. */
typedef struct kiln__node_class {
    kiln_node_def_t def;            /* normalized copy; def.inputs/outputs point at the arrays below */
    const char *pack;               /* borrowed: registry-owned pack name (python_module) */
    kiln_input_def_t *inputs;       /* owned; declaration order: required, optional, hidden */
    size_t n_inputs;
    kiln_output_def_t *outputs;     /* owned */
    size_t n_outputs;
} kiln__node_class_t;

typedef struct kiln__registry kiln__registry_t;

/* A new, empty registry; NULL when out of memory. */
kiln__registry_t *kiln__registry_new(void);
void kiln__registry_free(kiln__registry_t *r);

/* Calls a pack's init with the host table, then checks every definition (names present
 * and unique across all packs, known sections, output/input types non-empty, widget specs
 * sane: min <= max, default within range, combo with options or a folder, execute set).
 * All-or-nothing: a pack with any bad definition registers nothing and the reason goes to
 * err ("pack 'x': node 'Y': duplicate node name"). Returns 0, KILN_EABI, KILN_EEXISTS,
 * KILN_EINVAL or KILN_ENOMEM. Not thread-safe: call before the engine serves. */
int kiln__registry_add_pack(kiln__registry_t *r, const char *pack_name, kiln_plugin_init_fn init,
                            char *err, size_t err_size);

/* Registers every pack in kiln__builtin_packs. */
int kiln__registry_add_builtins(kiln__registry_t *r, char *err, size_t err_size);

/* The class registered under name, or NULL. */
const kiln__node_class_t *kiln__registry_find(const kiln__registry_t *r, const char *name);

/* Classes in registration order. */
size_t kiln__registry_count(const kiln__registry_t *r);
const kiln__node_class_t *kiln__registry_at(const kiln__registry_t *r, size_t i);

/* The declared input of a class by name (any section), or NULL. */
const kiln_input_def_t *kiln__node_class_input(const kiln__node_class_t *cls, const char *name);

/* True when the input gets a widget in the editor (INT, FLOAT, STRING, BOOLEAN, COMBO and
 * not KILN_INPUT_FORCE_INPUT). */
bool kiln__input_is_widget(const kiln_input_def_t *in);

/* The current choices of a COMBO input as a JSON array of strings (caller owns): the
 * static options, or the sorted file names of its folder (input images for "input",
 * models/<folder>/ recursively with '/' separators for model folders). NULL on OOM. */
kiln__json_t *kiln__registry_combo_options(const kiln_input_def_t *in, const kiln__env_t *env);

/* ComfyUI's /object_info: {class: NodeInfo} for every class (name == NULL) or for one
 * ({} when unknown). Caller owns the result; NULL on OOM. */
kiln__json_t *kiln__registry_object_info(const kiln__registry_t *r, const kiln__env_t *env,
                                         const char *name);

/* The host function table handed to packs (static storage). */
const kiln_host_api_t *kiln__host_api(void);

#endif
