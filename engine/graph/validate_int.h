/* Internals shared by the prompt validation files: validate.c (the walk over the graph and
 * the error report), validate_input.c (the checks of one input), validate_hook.c (the
 * class's validate hook) and validate_coerce.c (Python's int()/float()/str()/bool() and
 * Python-style printing). */
#ifndef KILN_GRAPH_VALIDATE_INT_H
#define KILN_GRAPH_VALIDATE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "graph/graph.h"
#include "util/sbuf.h"

/* Where a node stands in the depth-first validation walk. */
enum {
    KILN_VSTATE_NEW = 0,    /* not reached yet */
    KILN_VSTATE_ACTIVE = 1, /* on the walk's stack: its inputs are being checked */
    KILN_VSTATE_DONE = 2    /* checked; `valid` is final */
};

/* Validation state of one graph node (indexed like graph->nodes). */
typedef struct kiln__vnode {
    uint8_t state;        /* KILN_VSTATE_* */
    bool valid;           /* DONE: no own errors, no cycle, every followed upstream valid */
    bool upstream_bad;    /* a followed upstream node is invalid (no error of its own) */
    bool in_cycle;        /* on a dependency cycle (its error may be omitted: see validate.c) */
    uint32_t stackpos;    /* ACTIVE: its frame's index in the walk stack */
    uint32_t finish;      /* DONE: order in which nodes finished (for node_errors order) */
    uint32_t mark;        /* stamp of the last dependent-outputs walk that reached it */
    kiln__json_t *errors; /* owned: array of this node's own errors, NULL while none */
    kiln__json_t *cycle;  /* owned: its dependency_cycle error until the node finishes */
    kiln__json_t *deps;   /* owned: dependent_outputs, NULL while none */
} kiln__vnode_t;

/* A cached per-class /object_info entry, used to render input_config. */
typedef struct kiln__vinfo {
    const kiln__node_class_t *cls; /* borrowed: registry */
    kiln__json_t *info;            /* owned: NodeInfo of cls, NULL when it could not be built */
} kiln__vinfo_t;

/* A cached combo choice list (folder scans are not repeated per node). */
typedef struct kiln__vcombo {
    const kiln_input_def_t *def; /* borrowed: registry */
    kiln__json_t *options;       /* owned: array of strings */
} kiln__vcombo_t;

/* One validation run over one graph. Single-threaded; lives for one kiln__graph_validate. */
typedef struct kiln__validator {
    kiln__graph_t *g;            /* borrowed: validation writes coerced constants into it */
    const kiln__registry_t *reg; /* borrowed; may be NULL (input_config built from defs) */
    const kiln__env_t *env;      /* borrowed; may be NULL (folder combos are then empty) */
    kiln__vnode_t *vn;           /* owned: one per graph node */
    size_t *in_base;             /* owned: index of node i's first input in `followed` */
    bool *followed;              /* owned: per graph input, the walk recursed along it */
    kiln__vinfo_t *infos;        /* owned */
    size_t n_infos, cap_infos;
    kiln__vcombo_t *combos; /* owned */
    size_t n_combos, cap_combos;
} kiln__validator_t;

/* ---- validate_input.c --------------------------------------------------------------- */

/* Checks declared input `def` of node n exactly as ComfyUI's validate_inputs does for one
 * input (missing, malformed or mistyped link, constant coercion written back into the
 * prompt, __value__ unwrapping, range and combo membership), appending errors to
 * v->vn[n].errors. When the input is a sound link, *upstream is the source node's index,
 * which the caller must validate; else -1. Returns 0 or KILN_ENOMEM. */
int kiln__validate_input(kiln__validator_t *v, int n, const kiln_input_def_t *def, int *upstream);

/* True when the class's `validates` list names input `name` (its range and combo checks
 * are then the hook's business). */
bool kiln__validate_names(const kiln_node_def_t *def, const char *name);

/* ---- validate_hook.c ---------------------------------------------------------------- */

/* Runs the class's validate hook (ComfyUI's VALIDATE_INPUTS) when it has one and records
 * custom_validation_failed errors. Returns 0 or KILN_ENOMEM. */
int kiln__validate_hook(kiln__validator_t *v, int n);

/* Appends err (taking ownership; NULL means allocation failed) to node n's errors.
 * 0 or KILN_ENOMEM. */
int kiln__validate_add_error(kiln__validator_t *v, int n, kiln__json_t *err);

/* Builds {type, message, details, extra_info} taking ownership of extra_info (NULL gives
 * {}); NULL when out of memory (extra_info is freed). */
kiln__json_t *kiln__validate_error_new(const char *type, const char *message, const char *details,
                                       kiln__json_t *extra_info);

/* True when a link carrying `received` may feed an input of type `expected`: equal, "*" on
 * either side, or comma-separated sets that intersect (ComfyUI's validate_node_input). */
bool kiln__validate_types_match(const char *received, const char *expected);

/* Frees the caches held by v (infos, combos). */
void kiln__validate_caches_free(kiln__validator_t *v);

/* Sets obj[key] = item, or appends item to an array when key is NULL. A NULL item (a failed
 * allocation) or a failed insertion clears *ok; the item is never leaked. */
void kiln__validate_put(kiln__json_t *obj, const char *key, kiln__json_t *item, bool *ok);

/* ---- validate_coerce.c -------------------------------------------------------------- */

/* Result of Python's int() on a JSON value. */
typedef enum kiln__pyint_kind {
    KILN_PYINT_OK = 0,   /* fits int64 or uint64: *out holds the JSON integer */
    KILN_PYINT_BIG = 1,  /* an integer beyond 64 bits: `text` holds its decimal digits */
    KILN_PYINT_ERROR = 2 /* Python raises: `text` holds the exception message */
} kiln__pyint_kind_t;

/* Python int(v): int stays, float truncates toward zero (NaN and infinities raise), bool
 * gives 0/1, strings parse as base-10 literals (whitespace, sign, '_' between digits),
 * anything else raises TypeError. On KILN_PYINT_OK *out is a new JSON INT (caller owns);
 * otherwise *out is NULL and `text` receives the digits or the message. Returns the kind,
 * or KILN_ENOMEM. */
int kiln__py_int(const kiln__json_t *v, kiln__json_t **out, kiln__sbuf_t *text);

/* Python float(v): numbers, bools, and strings float() accepts ("1e3", " 2.5 ", "inf",
 * "-Infinity", "nan", "1_000.5"). Returns 0 with *out, 1 when Python raises (the message is
 * in `exc`), or KILN_ENOMEM. */
int kiln__py_float(const kiln__json_t *v, double *out, kiln__sbuf_t *exc);

/* Python bool(v) (truthiness: "false" is true, 0 and "" and {} and null are false). */
bool kiln__py_bool(const kiln__json_t *v);

/* Appends Python's str(v) / repr(v) of a JSON value (None, True, 8.0, {'a': [1, 'x']}). */
void kiln__py_str(kiln__sbuf_t *b, const kiln__json_t *v);
void kiln__py_repr(kiln__sbuf_t *b, const kiln__json_t *v);

/* Appends repr() of a string: quoted as Python quotes it, with its escapes. */
void kiln__py_repr_str(kiln__sbuf_t *b, const char *s, size_t len);

/* Appends repr() of a float (shortest round-trip digits: 8.0, 0.1, 1e-05, inf, nan). */
void kiln__py_float_repr(kiln__sbuf_t *b, double d);

#endif
