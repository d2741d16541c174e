/* Internals of the UI-workflow converter (ui_convert.c, ui_model.c, ui_order.c,
 * ui_resolve.c, ui_subgraph.c, ui_widgets.c): the workflow's graphs (root and subgraph
 * definitions) parsed into nodes and a link table, the expansion state, link resolution
 * and the widget-value rules of the editor. Everything borrows from the workflow JSON,
 * which must outlive these structures. */
#ifndef KILN_GRAPH_UI_INT_H
#define KILN_GRAPH_UI_INT_H

#include <kiln/node.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json/json.h"
#include "registry/registry.h"
#include "util/env.h"
#include "util/strmap.h"

/* Bounds that keep hostile files from costing unbounded time or memory. An API inputs or
 * prompt object is searched linearly while it is built, so the node and slot counts also
 * keep conversion from turning quadratic. */
#define KILN_UI_MAX_NODES 20000   /* nodes of one graph */
#define KILN_UI_MAX_LINKS 1000000 /* links of one graph */
#define KILN_UI_MAX_EXEC 20000    /* nodes after subgraph expansion */
#define KILN_UI_MAX_DEPTH 16      /* subgraph nesting */
#define KILN_UI_MAX_HOPS 1024     /* steps through reroutes/bypasses for one input */
#define KILN_UI_MAX_DEFS 10000    /* subgraph definitions */
#define KILN_UI_MAX_SLOTS 4096    /* inputs or outputs of one node */

typedef enum kiln__ui_kind {
    KILN_UI_REAL = 0,  /* a class the registry knows */
    KILN_UI_UNKNOWN,   /* not registered: emitted as-is so validation names it */
    KILN_UI_REROUTE,   /* pass-through by slot index */
    KILN_UI_PRIMITIVE, /* its value feeds the widgets it is linked to */
    KILN_UI_NOTE,      /* Note, MarkdownNote: text only */
    KILN_UI_SUBGRAPH   /* an instance of a subgraph definition */
} kiln__ui_kind_t;

typedef struct kiln__ui_graph kiln__ui_graph_t;

/* A node's inputs[] or outputs[] as an array, so slot i is found in O(1). */
typedef struct kiln__ui_slots {
    const kiln__json_t **at; /* owned array of borrowed slot objects; NULL where the
                              * entry is not an object */
    size_t count;
} kiln__ui_slots_t;

typedef struct kiln__ui_node {
    const kiln__json_t *json; /* borrowed: the node object in the workflow */
    char *id;                 /* owned: the id as a string ("3", "abc") */
    const char *type;         /* borrowed */
    int64_t mode;             /* 0 always, 2 muted, 4 bypassed, ... */
    kiln__ui_kind_t kind;
    const kiln__node_class_t *cls; /* borrowed: registry; KILN_UI_REAL only */
    kiln__ui_graph_t *sub;         /* borrowed: the definition; KILN_UI_SUBGRAPH only */
    kiln__ui_slots_t inputs;       /* inputs[] (empty when absent or not an array) */
    kiln__ui_slots_t outputs;      /* outputs[] */
} kiln__ui_node_t;

typedef struct kiln__ui_link {
    int64_t id;
    char *origin; /* owned: origin node id as a string */
    int64_t origin_slot;
    char *target; /* owned: target node id as a string */
    int64_t target_slot;
    size_t order; /* position in the links array (first one wins) */
} kiln__ui_link_t;

/* A definition input that feeds a widget of an inner node (the editor promotes that
 * widget onto every instance). */
typedef struct kiln__ui_promo {
    int64_t slot; /* index among the definition's inputs */
    bool control; /* the inner widget has a control_after_generate value */
} kiln__ui_promo_t;

struct kiln__ui_graph {
    const kiln__json_t *json; /* borrowed: the workflow, or a subgraph definition */
    const char *def_id;       /* borrowed: definition id; NULL for the root graph */
    kiln__ui_node_t *nodes;   /* owned; workflow order */
    size_t n_nodes;
    kiln__strmap_t *by_id;  /* owned: node id -> (void *)(index + 1) */
    kiln__ui_link_t *links; /* owned; sorted by id */
    size_t n_links;
    char *input_node;               /* owned: id of a definition's input node (e.g. "-10") */
    char *output_node;              /* owned: id of its output node (e.g. "-20") */
    const kiln__json_t *io_outputs; /* borrowed: a definition's outputs[] */
    kiln__ui_promo_t *promos;       /* owned: a definition's inputs that feed a widget
                                     * inside, sorted by slot */
    size_t n_promos;
    size_t *to_output; /* owned: indexes into links of the links that end at
                        * the output node, sorted by (target_slot, order) */
    size_t n_to_output;
};

/* The parsed workflow: the root graph and every subgraph definition. */
typedef struct kiln__ui_doc {
    const kiln__registry_t *reg; /* borrowed; may be NULL (every class unknown) */
    const kiln__env_t *env;      /* borrowed; may be NULL (folder combos get no default) */
    kiln__ui_graph_t root;
    kiln__ui_graph_t *defs; /* owned */
    size_t n_defs;
    char *err; /* borrowed: the caller's message buffer */
    size_t err_size;
} kiln__ui_doc_t;

/* Parses workflow into doc (whose reg, env, err and err_size the caller has set). Returns
 * 0, KILN_EINVAL with a message in doc->err for a workflow that cannot be read (nodes not
 * an array, a node without a usable id or type, duplicate ids, too many nodes, a legacy
 * group node), or KILN_ENOMEM. Links that cannot be read are dropped. Free with
 * kiln__ui_doc_free, also after a failure. */
int kiln__ui_doc_parse(kiln__ui_doc_t *doc, const kiln__json_t *workflow);
void kiln__ui_doc_free(kiln__ui_doc_t *doc);

/* The node of g with this id, or NULL. */
const kiln__ui_node_t *kiln__ui_graph_find(const kiln__ui_graph_t *g, const char *id);

/* Computes a definition's promos and to_output (ui_subgraph.c), once its nodes and links
 * are parsed. 0 or KILN_ENOMEM. */
int kiln__ui_def_index(kiln__ui_graph_t *g);

/* The promotion of definition input slot of g, or NULL. */
const kiln__ui_promo_t *kiln__ui_graph_promo(const kiln__ui_graph_t *g, int64_t slot);

/* The first link of definition g that ends at its output node's slot, or NULL. */
const kiln__ui_link_t *kiln__ui_graph_output_link(const kiln__ui_graph_t *g, int64_t slot);

/* The link of g with this id, or NULL. */
const kiln__ui_link_t *kiln__ui_graph_link(const kiln__ui_graph_t *g, int64_t id);

/* Writes a node or link id (an integer, or a string) as text into buf. False for any
 * other JSON type, a fraction, or a string too long for buf. */
bool kiln__ui_id_text(const kiln__json_t *j, char *buf, size_t size);

/* Reads an integer JSON value (an INT, or a NUMBER with no fraction within int64). */
bool kiln__ui_int(const kiln__json_t *j, int64_t *out);

/* Slot i of a node's inputs or outputs (an object), or NULL. */
const kiln__json_t *kiln__ui_slot(const kiln__ui_slots_t *slots, int64_t i);

/* The link id of inputs[slot] of node n, or -1 when the slot is absent or unlinked. */
int64_t kiln__ui_slot_link(const kiln__ui_node_t *n, int64_t slot);

/* The name of inputs[slot] ("name"), or NULL. */
const char *kiln__ui_slot_name(const kiln__ui_node_t *n, int64_t slot);

/* The widget name of inputs[slot] ("widget": {"name": ...}), or NULL. */
const char *kiln__ui_slot_widget(const kiln__ui_node_t *n, int64_t slot);

/* Fills order[0..g->n_nodes) with node indexes in the editor's execution order
 * (LGraph.computeExecutionOrder: nodes without linked inputs first in file order, then
 * each node once all its linked inputs were reached, breadth first; nodes left in cycles
 * last, integer ids ascending before other ids). 0 or KILN_ENOMEM. */
int kiln__ui_execution_order(const kiln__ui_graph_t *g, size_t *order);

/* ---- conversion state (ui_convert.c, ui_resolve.c, ui_subgraph.c) ------------------- */

/* One expanded graph: the root, or one subgraph instance (recursively). */
typedef struct kiln__ui_frame {
    const kiln__ui_graph_t *g;           /* borrowed: doc */
    const struct kiln__ui_frame *parent; /* borrowed: conv; NULL for the root */
    const kiln__ui_node_t *instance;     /* borrowed: the instance node in parent->g */
    char *prefix;                        /* owned: "" for the root, "12:" or "12:7:" inside */
    int64_t *promoted;                   /* owned: per input slot of the instance, the index of
                                          * its promoted widget value in the instance's
                                          * widgets_values, or -1 */
    size_t n_promoted;
    int depth; /* 0 for the root */
} kiln__ui_frame_t;

/* One node to emit, in emission order. */
typedef struct kiln__ui_exec {
    const kiln__ui_frame_t *f; /* borrowed: conv */
    const kiln__ui_node_t *n;  /* borrowed: doc */
    char *id;                  /* owned: execution id */
} kiln__ui_exec_t;

/* One conversion. */
typedef struct kiln__ui_conv {
    kiln__ui_doc_t doc;
    uint64_t seed;             /* for dynamic prompts */
    kiln__ui_frame_t **frames; /* owned */
    size_t n_frames, cap_frames;
    kiln__strmap_t *frame_by_prefix; /* owned: prefix -> kiln__ui_frame_t * (instances) */
    kiln__ui_exec_t *exec;           /* owned */
    size_t n_exec, cap_exec;
} kiln__ui_conv_t;

typedef enum kiln__ui_res_kind {
    KILN_UI_RES_NONE = 0, /* unconnected */
    KILN_UI_RES_LINK,     /* a real node's output */
    KILN_UI_RES_VALUE     /* a widget value (PrimitiveNode, promoted widget) */
} kiln__ui_res_kind_t;

/* What a linked input resolves to. */
typedef struct kiln__ui_res {
    kiln__ui_res_kind_t kind;
    const kiln__ui_frame_t *f; /* LINK: the origin's frame */
    const kiln__ui_node_t *n;  /* LINK: the origin node */
    int64_t slot;              /* LINK: the origin's output index */
    const kiln__json_t *value; /* VALUE: borrowed from the workflow */
    bool primitive;            /* VALUE: from a PrimitiveNode */
} kiln__ui_res_t;

/* a + b + c in a malloc'd string; NULL when out of memory. */
char *kiln__ui_concat3(const char *a, const char *b, const char *c);

/* Follows inputs[slot] of node n (in frame f) through Reroutes, bypassed nodes, subgraph
 * boundaries and PrimitiveNodes to what feeds it, as ExecutableNodeDTO.resolveInput does.
 * Broken links, missing nodes and cycles (more than KILN_UI_MAX_HOPS steps) resolve to
 * KILN_UI_RES_NONE. */
kiln__ui_res_t kiln__ui_resolve_input(kiln__ui_conv_t *c, const kiln__ui_frame_t *f,
                                      const kiln__ui_node_t *n, int64_t slot);

/* Fills f->promoted for a subgraph instance frame: where the values of the definition's
 * promoted widgets sit in the instance's widgets_values. 0 or KILN_ENOMEM. */
int kiln__ui_frame_promoted(kiln__ui_frame_t *f);

/* ---- widgets (ui_widgets.c) ---------------------------------------------------------- */

/* True when the input's type is one the editor draws as a widget (INT, FLOAT, STRING,
 * BOOLEAN, COMBO), forceInput or not. */
bool kiln__ui_widget_typed(const kiln_input_def_t *in);

/* True when the editor puts a control_after_generate value after this widget. */
bool kiln__ui_has_control(const kiln_input_def_t *in);

/* Stores value under name in the inputs object as the editor serializes a widget value:
 * arrays wrapped as {"__value__": [...]}, strings of dynamic-prompt inputs (def may be
 * NULL) expanded with a seed derived from seed, exec_id and name. value is copied. 0 or
 * KILN_ENOMEM. */
int kiln__ui_put_value(kiln__json_t *inputs, const char *name, const kiln__json_t *value,
                       const kiln_input_def_t *def, const char *exec_id, uint64_t seed);

/* Writes every widget value of a node of class cls into inputs, in the class's input
 * order: the value from widgets_values (an array laid out as the editor lays it out, or an
 * object keyed by name; may be NULL), else the class default. 0 or KILN_ENOMEM. */
int kiln__ui_widget_values(const kiln__ui_doc_t *doc, const kiln__node_class_t *cls,
                           const kiln__json_t *widgets_values, const char *exec_id, uint64_t seed,
                           kiln__json_t *inputs);

#endif
