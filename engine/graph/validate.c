/* Prompt validation as ComfyUI's validate_prompt does it: pick the output nodes, validate
 * each one's inputs depth-first with memoisation (an invalid upstream node invalidates its
 * dependents without errors of their own), detect dependency cycles, and assemble
 * node_errors and the 400 body. The walk keeps its own stack, so a 100000-node chain
 * cannot overflow the C stack. */
#include <kiln/error.h>
#include <stdio.h>
#include <string.h>

#include "graph/validate_int.h"

/* A cycle longer than this is shown abbreviated, and only its first CYCLE_SHOW_MAX nodes
 * get the dependency_cycle error attached (the others are invalid without an error), so
 * a hostile ring of 100000 nodes cannot make the report quadratic. */
#define CYCLE_SHOW_MAX 32

/* Log at most this many errors per failing output and nodes per report. */
#define LOG_MAX 20

/* One node whose declared inputs are being checked; `next` is the next declaration. */
typedef struct frame {
    int node;
    int child; /* upstream node being validated on our behalf, or -1 */
    size_t next;
} frame_t;

typedef struct run {
    kiln__validator_t v;
    frame_t *stack; /* owned: at most one frame per node */
    size_t sp;
    int *order; /* owned: nodes in the order they finished */
    size_t n_order;
    int *todo; /* owned: scratch stack of the dependent-outputs walks */
} run_t;

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

/* ---- dependency cycles ------------------------------------------------------------------ */

static void put_hop(kiln__sbuf_t *b, const kiln__graph_node_t *n, bool last)
{
    kiln__sbuf_printf(b, "%s (%s)%s", n->id, n->class_type, last ? "" : " -> ");
}

/* "a (T) -> b (U) -> a (T)" for the stack from `from` to the top, back to its first node. */
static void cycle_details(run_t *r, size_t from, kiln__sbuf_t *b)
{
    const kiln__graph_node_t *nodes = r->v.g->nodes;
    size_t len = r->sp - from, half = CYCLE_SHOW_MAX / 2;
    for (size_t i = 0; i < len; i++) {
        if (len > CYCLE_SHOW_MAX && i == half) {
            kiln__sbuf_printf(b, "... (%zu more) -> ", len - 2 * half);
            i = len - half;
        }
        put_hop(b, &nodes[r->stack[from + i].node], false);
    }
    put_hop(b, &nodes[r->stack[from].node], true);
}

/* The walk met node c again while c is still on the stack: every node from c to the top
 * is on a cycle. As in newer ComfyUI each gets a dependency_cycle error (replacing one from
 * an earlier cycle), unless c itself was already marked, which makes nothing new. */
static int mark_cycle(run_t *r, int c)
{
    kiln__vnode_t *vn = r->v.vn;
    if (vn[c].in_cycle)
        return 0;
    size_t from = vn[c].stackpos, len = r->sp - from;
    kiln__sbuf_t details = KILN_SBUF_INIT;
    cycle_details(r, from, &details);
    kiln__json_t *ids = kiln__json_new_array();
    bool ok = ids && !details.failed;
    for (size_t i = 0; ok && i < len && i < CYCLE_SHOW_MAX; i++)
        kiln__validate_put(ids, NULL,
                           kiln__json_new_string(r->v.g->nodes[r->stack[from + i].node].id), &ok);
    for (size_t i = 0; ok && i < len; i++) {
        int n = r->stack[from + i].node;
        vn[n].in_cycle = true;
        if (i >= CYCLE_SHOW_MAX)
            continue;
        kiln__json_t *extra = kiln__json_new_object();
        kiln__validate_put(extra, "node_id", kiln__json_new_string(r->v.g->nodes[n].id), &ok);
        kiln__validate_put(extra, "cycle_nodes", kiln__json_dup(ids), &ok);
        kiln__json_t *err =
            ok ? kiln__validate_error_new("dependency_cycle", "Dependency cycle detected",
                                          details.data, extra)
               : NULL;
        if (!ok)
            kiln__json_free(extra);
        ok = ok && err;
        kiln__json_free(vn[n].cycle);
        vn[n].cycle = err;
    }
    kiln__json_free(ids);
    kiln__sbuf_free(&details);
    return ok ? 0 : KILN_ENOMEM;
}

/* ---- the walk --------------------------------------------------------------------------- */

static void push(run_t *r, int n)
{
    r->v.vn[n].state = KILN_VSTATE_ACTIVE;
    r->v.vn[n].stackpos = (uint32_t)r->sp;
    r->stack[r->sp++] = (frame_t){n, -1, 0};
}

/* Node n has checked every input: its cycle error goes first in its list (ComfyUI joins
 * the cycle result with the node's own errors in that order) and its validity is final. */
static int finish(run_t *r, int n)
{
    kiln__vnode_t *vn = &r->v.vn[n];
    vn->state = KILN_VSTATE_DONE;
    vn->finish = (uint32_t)r->n_order;
    r->order[r->n_order++] = n;
    vn->valid = !vn->errors && !vn->cycle && !vn->upstream_bad && !vn->in_cycle;
    if (!vn->cycle)
        return 0;
    if (!vn->errors) {
        if (!(vn->errors = kiln__json_new_array()))
            return KILN_ENOMEM; /* the cycle error is freed with the validator */
        kiln__json_append(vn->errors, vn->cycle);
    } else {
        /* Prepend: json.h's child/next list is the array's documented layout. */
        vn->cycle->next = vn->errors->child;
        vn->errors->child = vn->cycle;
        vn->errors->count++;
    }
    vn->cycle = NULL;
    return 0;
}

/* Checks the declarations of the node on top of the stack from where it stopped; returns
 * with *pushed set when an upstream node must be validated first. */
static int step(run_t *r, frame_t *f, bool *pushed)
{
    kiln__vnode_t *vn = r->v.vn;
    const kiln__node_class_t *cls = r->v.g->nodes[f->node].cls;
    while (f->next < cls->n_inputs) {
        const kiln_input_def_t *def = &cls->inputs[f->next++];
        if (def->section == KILN_INPUT_HIDDEN)
            continue;
        int up, rc = kiln__validate_input(&r->v, f->node, def, &up);
        if (rc != 0)
            return rc;
        if (up < 0)
            continue;
        if (vn[up].state == KILN_VSTATE_NEW) {
            f->child = up;
            push(r, up);
            *pushed = true;
            return 0;
        }
        if (vn[up].state == KILN_VSTATE_ACTIVE && (rc = mark_cycle(r, up)) != 0)
            return rc;
        if (vn[up].state == KILN_VSTATE_ACTIVE || !vn[up].valid)
            vn[f->node].upstream_bad = true;
    }
    return 0;
}

/* Validates root and everything it depends on that is not validated yet. */
static int visit(run_t *r, int root)
{
    if (r->v.vn[root].state != KILN_VSTATE_NEW)
        return 0;
    push(r, root);
    while (r->sp > 0) {
        frame_t *f = &r->stack[r->sp - 1];
        if (f->child >= 0) {
            if (!r->v.vn[f->child].valid)
                r->v.vn[f->node].upstream_bad = true;
            f->child = -1;
        }
        bool pushed = false;
        int rc = step(r, f, &pushed);
        if (rc != 0)
            return rc;
        if (pushed)
            continue;
        if ((rc = kiln__validate_hook(&r->v, f->node)) != 0 || (rc = finish(r, f->node)) != 0)
            return rc;
        r->sp--;
    }
    return 0;
}

/* ---- the report ------------------------------------------------------------------------- */

/* dependent_outputs: each failing output (in prompt order) is added to every node with
 * errors that its validation reached. Only invalid nodes can lead to errors, so the walk
 * follows the links validation followed, through invalid nodes only. */
static int collect_deps(run_t *r, const int *outs, size_t n_outs)
{
    kiln__vnode_t *vn = r->v.vn;
    const kiln__graph_t *g = r->v.g;
    for (size_t k = 0; k < n_outs; k++) {
        int o = outs[k];
        if (vn[o].valid)
            continue;
        uint32_t stamp = (uint32_t)k + 1;
        size_t top = 0;
        r->todo[top++] = o;
        vn[o].mark = stamp;
        while (top > 0) {
            int n = r->todo[--top];
            if (vn[n].errors) {
                bool ok = true;
                if (!vn[n].deps)
                    vn[n].deps = kiln__json_new_array();
                kiln__validate_put(vn[n].deps, NULL, kiln__json_new_string(g->nodes[o].id), &ok);
                if (!ok)
                    return KILN_ENOMEM;
            }
            for (size_t i = 0; i < g->nodes[n].n_inputs; i++) {
                int s = g->nodes[n].inputs[i].src;
                if (!r->v.followed[r->v.in_base[n] + i] || vn[s].valid || vn[s].mark == stamp)
                    continue;
                vn[s].mark = stamp;
                r->todo[top++] = s;
            }
        }
    }
    return 0;
}

static void log_errors(const kiln__json_t *errors)
{
    size_t i = 0;
    for (const kiln__json_t *e = errors ? errors->child : NULL; e && i < LOG_MAX; e = e->next)
        kiln_logf(KILN_LOG_WARN, "  - %s: %s", kiln__json_get_string(e, "message", ""),
                  kiln__json_get_string(e, "details", ""));
}

/* Logs what ComfyUI logs for failed outputs, bounded for huge prompts. */
static void log_failures(run_t *r, const int *outs, size_t n_outs)
{
    const kiln__graph_t *g = r->v.g;
    for (size_t k = 0; k < n_outs; k++) {
        if (r->v.vn[outs[k]].valid)
            continue;
        kiln_logf(KILN_LOG_WARN, "Failed to validate prompt for output %s:", g->nodes[outs[k]].id);
        log_errors(r->v.vn[outs[k]].errors);
    }
    size_t shown = 0;
    for (size_t i = 0; i < r->n_order && shown < LOG_MAX; i++) {
        int n = r->order[i];
        if (!r->v.vn[n].errors)
            continue;
        kiln_logf(KILN_LOG_WARN, "* %s %s:", g->nodes[n].class_type, g->nodes[n].id);
        log_errors(r->v.vn[n].errors);
        shown++;
    }
}

/* "\n"-joined "<message>: <details>" of the errors on the failing output nodes themselves. */
static int failed_details(run_t *r, const int *outs, size_t n_outs, kiln__sbuf_t *b)
{
    bool first = true;
    for (size_t k = 0; k < n_outs; k++) {
        const kiln__json_t *errs = r->v.vn[outs[k]].errors;
        for (const kiln__json_t *e = errs ? errs->child : NULL; e; e = e->next) {
            kiln__sbuf_printf(b, "%s%s: %s", first ? "" : "\n",
                              kiln__json_get_string(e, "message", ""),
                              kiln__json_get_string(e, "details", ""));
            first = false;
        }
    }
    kiln__sbuf_cstr(b);
    return b->failed ? KILN_ENOMEM : 0;
}

/* node_errors {id: {errors, dependent_outputs, class_type}} in the order nodes finished;
 * the error lists move out of the validator. NULL on OOM. */
static kiln__json_t *node_errors_object(run_t *r)
{
    kiln__json_t *ne = kiln__json_new_object();
    bool ok = ne != NULL;
    for (size_t i = 0; ok && i < r->n_order; i++) {
        int n = r->order[i];
        kiln__vnode_t *vn = &r->v.vn[n];
        if (!vn->errors || !vn->deps)
            continue;
        kiln__json_t *entry = kiln__json_new_object();
        ok = entry != NULL;
        kiln__validate_put(entry, "errors", vn->errors, &ok);
        kiln__validate_put(entry, "dependent_outputs", vn->deps, &ok);
        kiln__validate_put(entry, "class_type", kiln__json_new_string(r->v.g->nodes[n].class_type),
                           &ok);
        vn->errors = vn->deps = NULL;
        kiln__validate_put(ne, r->v.g->nodes[n].id, entry, &ok);
    }
    if (!ok) {
        kiln__json_free(ne);
        return NULL;
    }
    return ne;
}

/* {"error": error, "node_errors": node_errors}, taking ownership of both; NULL on OOM. */
static kiln__json_t *error_body(kiln__json_t *error, kiln__json_t *node_errors)
{
    kiln__json_t *body = kiln__json_new_object();
    bool ok = body != NULL;
    kiln__validate_put(body, "error", error, &ok);
    kiln__validate_put(body, "node_errors", node_errors, &ok);
    if (!ok) {
        kiln__json_free(body);
        return NULL;
    }
    return body;
}

/* ---- entry point ------------------------------------------------------------------------ */

static bool is_target(const char *id, const char *const *targets, size_t n_targets)
{
    for (size_t i = 0; i < n_targets; i++)
        if (targets[i] && strcmp(targets[i], id) == 0)
            return true;
    return false;
}

static int run_init(run_t *r, kiln__graph_t *g, const kiln__registry_t *reg, const kiln__env_t *env)
{
    memset(r, 0, sizeof *r);
    r->v.g = g;
    r->v.reg = reg;
    r->v.env = env;
    size_t n = g->n_nodes, total = 0;
    r->v.vn = zalloc(n, sizeof *r->v.vn);
    r->v.in_base = zalloc(n, sizeof *r->v.in_base);
    r->stack = zalloc(n, sizeof *r->stack);
    r->order = zalloc(n, sizeof *r->order);
    r->todo = zalloc(n, sizeof *r->todo);
    if (!r->v.vn || !r->v.in_base || !r->stack || !r->order || !r->todo)
        return KILN_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        r->v.in_base[i] = total;
        total += g->nodes[i].n_inputs;
    }
    r->v.followed = zalloc(total, sizeof *r->v.followed);
    return r->v.followed ? 0 : KILN_ENOMEM;
}

static void run_free(run_t *r)
{
    for (size_t i = 0; r->v.vn && i < r->v.g->n_nodes; i++) {
        kiln__json_free(r->v.vn[i].errors);
        kiln__json_free(r->v.vn[i].cycle);
        kiln__json_free(r->v.vn[i].deps);
    }
    kiln__validate_caches_free(&r->v);
    kiln_free(r->v.vn);
    kiln_free(r->v.in_base);
    kiln_free(r->v.followed);
    kiln_free(r->stack);
    kiln_free(r->order);
    kiln_free(r->todo);
}

/* Validates every output and builds the result (see graph.h). */
static int validate_outputs(run_t *r, int *outs, size_t n_outs, kiln__json_t **node_errors,
                            kiln__json_t **body)
{
    kiln__graph_t *g = r->v.g;
    int rc;
    for (size_t k = 0; k < n_outs; k++)
        if ((rc = visit(r, outs[k])) != 0)
            return rc;
    if ((rc = collect_deps(r, outs, n_outs)) != 0)
        return rc;
    size_t n_good = 0;
    for (size_t k = 0; k < n_outs; k++)
        if (r->v.vn[outs[k]].valid)
            outs[n_good++] = outs[k];
    if (n_good < n_outs)
        log_failures(r, outs, n_outs);
    kiln__sbuf_t details = KILN_SBUF_INIT;
    if (n_good == 0 && (rc = failed_details(r, outs, n_outs, &details)) != 0) {
        kiln__sbuf_free(&details);
        return rc;
    }
    kiln__json_t *ne = node_errors_object(r);
    if (!ne) {
        kiln__sbuf_free(&details);
        return KILN_ENOMEM;
    }
    if (n_good > 0) {
        g->outputs = outs; /* valid ones compacted to the front, prompt order kept */
        g->n_outputs = n_good;
        *node_errors = ne;
        return 0;
    }
    kiln__json_t *err = kiln__graph_error("prompt_outputs_failed_validation",
                                          "Prompt outputs failed validation", details.data);
    kiln__sbuf_free(&details);
    *body = err ? error_body(err, ne) : NULL;
    if (!err)
        kiln__json_free(ne);
    return *body ? KILN_EVALIDATION : KILN_ENOMEM;
}

int kiln__graph_validate(kiln__graph_t *g, const kiln__registry_t *reg, const kiln__env_t *env,
                         const char *const *partial_targets, size_t n_targets,
                         kiln__json_t **node_errors, kiln__json_t **error_body_out)
{
    kiln__json_t *ne_local = NULL, *body_local = NULL;
    kiln__json_t **ne = node_errors ? node_errors : &ne_local;
    kiln__json_t **body = error_body_out ? error_body_out : &body_local;
    *ne = *body = NULL;
    if (!g)
        return KILN_EINVAL;
    kiln_free(g->outputs);
    g->outputs = NULL;
    g->n_outputs = 0;
    int *outs = zalloc(g->n_nodes, sizeof *outs);
    if (!outs)
        return KILN_ENOMEM;
    size_t n_outs = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        if ((g->nodes[i].cls->def.flags & KILN_NODE_OUTPUT) &&
            (n_targets == 0 || is_target(g->nodes[i].id, partial_targets, n_targets)))
            outs[n_outs++] = (int)i;
    int rc;
    if (n_outs == 0) {
        kiln_free(outs);
        kiln__json_t *err = kiln__graph_error("prompt_no_outputs", "Prompt has no outputs", "");
        *body = err ? error_body(err, kiln__json_new_object()) : NULL;
        rc = *body ? KILN_EVALIDATION : KILN_ENOMEM;
    } else {
        run_t r;
        rc = run_init(&r, g, reg, env);
        if (rc == 0)
            rc = validate_outputs(&r, outs, n_outs, ne, body);
        if (g->outputs != outs)
            kiln_free(outs);
        run_free(&r);
    }
    kiln__json_free(ne_local);
    kiln__json_free(body_local);
    return rc;
}
