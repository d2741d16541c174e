/* kiln_call_t: what a node's execute (and its is_changed / validate hooks) sees. Inputs
 * are lists (ComfyUI §6.3): a per-element call reads element i of each list (the last one
 * when a list is shorter), an INPUT_IS_LIST call reads whole lists. Outputs accumulate
 * per slot into a kiln__outputs_t that the scheduler caches.
 *
 * A call belongs to the one thread that runs the node; only progress events and the
 * interrupt flag reach other threads (through the exec's event lock and an atomic). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/sched_int.h"
#include "value/value.h"

static kiln_call_t *call_alloc(const kiln__graph_node_t *node, const kiln__env_t *env)
{
    kiln_call_t *call = calloc(1, sizeof *call);
    if (!call)
        return NULL;
    call->node = node;
    call->cls = node->cls;
    call->env = env;
    return call;
}

/* A new input slot (empty own list) at the end of call->inputs, or NULL on OOM. */
static kiln__call_input_t *input_slot(kiln_call_t *call, const char *name)
{
    if (call->n_inputs == call->cap_inputs) {
        size_t cap = call->cap_inputs ? call->cap_inputs * 2 : 8;
        /* Inputs whose list is their own value list point into the array: mark them
         * (NULL) before it moves and point them at the new place after. */
        for (size_t i = 0; i < call->n_inputs; i++)
            if (call->inputs[i].list == &call->inputs[i].own)
                call->inputs[i].list = NULL;
        kiln__call_input_t *v = realloc(call->inputs, cap * sizeof *v);
        bool moved = v != NULL;
        if (!moved)
            v = call->inputs; /* unchanged: restore the marks, then fail */
        for (size_t i = 0; i < call->n_inputs; i++)
            if (!v[i].list)
                v[i].list = &v[i].own;
        if (!moved)
            return NULL;
        call->inputs = v;
        call->cap_inputs = cap;
    }
    kiln__call_input_t *in = &call->inputs[call->n_inputs++];
    memset(in, 0, sizeof *in);
    in->name = name;
    in->list = &in->own;
    return in;
}

int kiln__call_add_list(kiln_call_t *call, const char *name, const kiln__vlist_t *list)
{
    kiln__call_input_t *in = input_slot(call, name);
    if (!in)
        return KILN_ENOMEM;
    in->list = list;
    return 0;
}

int kiln__call_add_value(kiln_call_t *call, const char *name, kiln_value_t *v, bool hidden)
{
    if (!v)
        return KILN_ENOMEM;
    kiln__call_input_t *in = input_slot(call, name);
    if (!in) {
        kiln_value_release(v);
        return KILN_ENOMEM;
    }
    in->hidden = hidden;
    int rc = kiln__vlist_push(&in->own, v);
    if (rc != 0)
        call->n_inputs--;
    return rc;
}

kiln_call_t *kiln__call_new_constants(const kiln__graph_node_t *node, const kiln__env_t *env)
{
    kiln_call_t *call = call_alloc(node, env);
    if (!call)
        return NULL;
    for (size_t i = 0; i < node->n_inputs; i++) {
        const kiln__graph_input_t *gi = &node->inputs[i];
        /* Linked inputs read as NULL; undeclared constants are dropped, as in ComfyUI. */
        if (gi->is_link || !gi->def || !gi->value)
            continue;
        if (kiln__call_add_value(call, gi->name, kiln__value_from_json(gi->value, gi->def),
                                 false) != 0) {
            kiln__call_free(call);
            return NULL;
        }
    }
    return call;
}

kiln_call_t *kiln__call_new_exec(const kiln__graph_node_t *node, kiln__exec_t *exec,
                                 kiln_lane_t *lane)
{
    kiln_call_t *call = call_alloc(node, exec->env);
    if (!call)
        return NULL;
    call->exec = exec;
    call->lane = lane;
    return call;
}

static void release_pending(kiln_call_t *call)
{
    if (!call->pending)
        return;
    for (size_t s = 0; s < call->cls->n_outputs; s++) {
        kiln_value_release(call->pending[s]);
        call->pending[s] = NULL;
    }
}

void kiln__call_free(kiln_call_t *call)
{
    if (!call)
        return;
    for (size_t i = 0; i < call->n_inputs; i++)
        kiln__vlist_clear(&call->inputs[i].own);
    free(call->inputs);
    release_pending(call);
    free(call->pending);
    kiln__outputs_release(call->out);
    kiln__json_free(call->ui);
    free(call->error);
    free(call);
}

const char *kiln__call_error(const kiln_call_t *call)
{
    return call ? call->error : NULL;
}

/* Moves this element call's single-value outputs into the result lists. */
static int collect_pending(kiln_call_t *call)
{
    for (size_t s = 0; s < call->cls->n_outputs; s++) {
        if (call->cls->outputs[s].is_list)
            continue;
        if (!call->pending[s]) {
            const kiln_output_def_t *od = &call->cls->outputs[s];
            char msg[256];
            snprintf(msg, sizeof msg, "node did not set output %zu (%s)", s,
                     od->name ? od->name : od->type);
            return kiln_call_fail(call, msg);
        }
        int rc = kiln__vlist_push(&call->out->slots[s], call->pending[s]);
        call->pending[s] = NULL;
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* How many execute() calls a per-element node makes: the longest input list, and one
 * call when there are no inputs or every list is empty (ComfyUI then calls the function
 * once without arguments; here the empty inputs read as absent). */
static size_t element_count(const kiln_call_t *call)
{
    if (call->whole_lists)
        return 1;
    size_t n = 1;
    for (size_t i = 0; i < call->n_inputs; i++)
        if (call->inputs[i].list->n > n)
            n = call->inputs[i].list->n;
    return n;
}

int kiln__call_execute(kiln_call_t *call, uint64_t *n_calls)
{
    *n_calls = 0;
    const kiln__node_class_t *cls = call->cls;
    if (!cls || !cls->def.execute)
        return kiln_call_fail(call, "node class has no execute function");
    call->whole_lists = (cls->def.flags & KILN_NODE_INPUT_IS_LIST) != 0;
    call->out = kiln__outputs_new(cls->n_outputs);
    call->pending = calloc(cls->n_outputs ? cls->n_outputs : 1, sizeof *call->pending);
    if (!call->out || !call->pending)
        return KILN_ENOMEM;
    size_t n = element_count(call);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (call->exec && atomic_load(call->exec->interrupt)) {
            rc = KILN_EINTERRUPTED;
            break;
        }
        call->elem = i;
        rc = cls->def.execute(call);
        (*n_calls)++;
        if (rc > 0)
            rc = KILN_ENODE; /* a positive return is a bug in the pack; still a failure */
        if (rc == 0 && call->fail_code != 0)
            rc = call->fail_code; /* an output was refused, even if execute ignored that */
        if (rc == 0)
            rc = collect_pending(call);
    }
    release_pending(call);
    call->fail_code = rc;
    if (rc == 0)
        kiln__outputs_measure(call->out);
    return rc;
}

kiln__outputs_t *kiln__call_take_outputs(kiln_call_t *call)
{
    kiln__outputs_t *o = call->out;
    call->out = NULL;
    if (o) {
        o->ui = call->ui;
        call->ui = NULL;
    }
    return o;
}

/* One value as ComfyUI's format_value writes it: primitives as themselves, anything
 * else as its string form. */
static kiln__json_t *format_value(const kiln_value_t *v)
{
    kiln__json_t *j = kiln__value_to_json(v);
    if (!j || (j->type != KILN_JSON_OBJECT && j->type != KILN_JSON_ARRAY))
        return j;
    char *text = kiln__json_dump(j, KILN_JSON_COMPACT, NULL);
    kiln__json_free(j);
    if (!text)
        return NULL;
    kiln__json_t *s = kiln__json_new_string(text);
    free(text);
    return s;
}

kiln__json_t *kiln__call_inputs_json(const kiln_call_t *call)
{
    kiln__json_t *obj = kiln__json_new_object();
    if (!obj)
        return NULL;
    for (size_t i = 0; i < call->n_inputs; i++) {
        const kiln__call_input_t *in = &call->inputs[i];
        if (in->hidden)
            continue;
        kiln__json_t *arr = kiln__json_new_array();
        if (!arr || kiln__json_set(obj, in->name, arr) != 0)
            goto fail;
        for (size_t k = 0; k < in->list->n; k++) {
            kiln__json_t *item = format_value(in->list->items[k]);
            if (!item || kiln__json_append(arr, item) != 0) {
                kiln__json_free(item);
                goto fail;
            }
        }
    }
    return obj;
fail:
    kiln__json_free(obj);
    return NULL;
}

/* ---- the kiln_call_* functions of the host table ------------------------------------- */

static const kiln__call_input_t *find_input(const kiln_call_t *call, const char *name)
{
    if (!call || !name)
        return NULL;
    for (size_t i = 0; i < call->n_inputs; i++)
        if (strcmp(call->inputs[i].name, name) == 0)
            return &call->inputs[i];
    return NULL;
}

/* Per-element calls read element i, or the last element of a shorter list; whole-list
 * calls read the first element here and the rest through kiln_call_input_at. */
const kiln_value_t *kiln_call_input(kiln_call_t *call, const char *name)
{
    const kiln__call_input_t *in = find_input(call, name);
    if (!in || in->list->n == 0)
        return NULL;
    if (call->whole_lists)
        return in->list->items[0];
    size_t i = call->elem < in->list->n ? call->elem : in->list->n - 1;
    return in->list->items[i];
}

/* Whole-list calls see the full list; a per-element call sees a list of one element (its
 * own), so code written for lists also works per element. */
size_t kiln_call_input_count(kiln_call_t *call, const char *name)
{
    const kiln__call_input_t *in = find_input(call, name);
    if (!in)
        return 0;
    if (call->whole_lists)
        return in->list->n;
    return in->list->n ? 1 : 0;
}

const kiln_value_t *kiln_call_input_at(kiln_call_t *call, const char *name, size_t i)
{
    const kiln__call_input_t *in = find_input(call, name);
    if (!in)
        return NULL;
    if (call->whole_lists)
        return i < in->list->n ? in->list->items[i] : NULL;
    return i == 0 ? kiln_call_input(call, name) : NULL;
}

/* True when a value of type `actual` may travel on an output declared `declared`: "*"
 * takes anything, a comma-separated union any of its members, COMBO a STRING; otherwise
 * the names must be equal. */
static bool output_type_ok(const char *declared, const char *actual)
{
    if (strcmp(declared, "*") == 0)
        return true;
    if (strcmp(declared, "COMBO") == 0 && strcmp(actual, "STRING") == 0)
        return true;
    size_t n = strlen(actual);
    for (const char *p = declared; p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, actual, n) == 0)
            return true;
        p = comma ? comma + 1 : NULL;
    }
    return false;
}

/* A value of the wrong type would reach consumers that trust the declared type (a node
 * reading an IMAGE tensor from an INT), so it is refused here: the call fails with a
 * message naming both types, also when execute ignores the return code. */
int kiln_call_set_output(kiln_call_t *call, int index, kiln_value_t *v)
{
    if (!v)
        return KILN_EINVAL;
    if (!call || !call->out || !call->pending || index < 0 ||
        (size_t)index >= call->cls->n_outputs) {
        kiln_value_release(v);
        return KILN_EINVAL;
    }
    const kiln_output_def_t *od = &call->cls->outputs[index];
    const char *actual = kiln_value_type(v);
    if (!output_type_ok(od->type, actual ? actual : "NONE")) {
        char msg[384];
        snprintf(msg, sizeof msg, "output %d (%.100s) is declared %.100s but the node set a "
                 "value of type %.100s", index, od->name ? od->name : od->type, od->type,
                 actual ? actual : "NONE");
        kiln_value_release(v);
        kiln_call_fail(call, msg);
        call->fail_code = KILN_ETYPE;
        return KILN_ETYPE;
    }
    if (call->cls->outputs[index].is_list)
        return kiln__vlist_push(&call->out->slots[index], v);
    kiln_value_release(call->pending[index]); /* a second set replaces the first */
    call->pending[index] = v;
    return 0;
}

int kiln_call_progress(kiln_call_t *call, uint64_t value, uint64_t max)
{
    if (!call || !call->exec)
        return 0;
    if (atomic_load(call->exec->interrupt))
        return KILN_EINTERRUPTED;
    kiln__ev_progress(call->exec, call->node, value, max);
    return 0;
}

/* KILN_EINTERRUPTED (non-zero) when the prompt was interrupted, so that
 * `if ((rc = kiln_call_interrupted(call))) return rc;` propagates the right code. */
int kiln_call_interrupted(kiln_call_t *call)
{
    if (call && call->exec && atomic_load(call->exec->interrupt))
        return KILN_EINTERRUPTED;
    return 0;
}

int kiln_call_fail(kiln_call_t *call, const char *msg)
{
    if (!call)
        return KILN_ENODE;
    char *copy = strdup(msg ? msg : "node failed");
    if (copy) {
        free(call->error);
        call->error = copy;
    }
    return KILN_ENODE;
}

int kiln_call_ui_append(kiln_call_t *call, const char *key, const char *json)
{
    if (!call || !call->exec || !key || !json)
        return KILN_EINVAL;
    kiln__json_t *item = NULL;
    char err[128];
    int rc = kiln__json_parse(json, strlen(json), &item, err, sizeof err);
    if (rc != 0)
        return rc;
    if (!call->ui && !(call->ui = kiln__json_new_object())) {
        kiln__json_free(item);
        return KILN_ENOMEM;
    }
    kiln__json_t *arr = kiln__json_get(call->ui, key);
    if (!arr) {
        arr = kiln__json_new_array();
        if (!arr || (rc = kiln__json_set(call->ui, key, arr)) != 0) {
            kiln__json_free(item);
            return KILN_ENOMEM; /* kiln__json_set freed arr */
        }
    } else if (arr->type != KILN_JSON_ARRAY) {
        kiln__json_free(item);
        return KILN_EINVAL;
    }
    rc = kiln__json_append(arr, item);
    if (rc != 0)
        kiln__json_free(item);
    return rc;
}

size_t kiln_call_metadata_count(kiln_call_t *call)
{
    if (!call || !call->exec || !call->exec->metadata)
        return 0;
    return 1 + call->exec->n_pnginfo;
}

int kiln_call_metadata_get(kiln_call_t *call, size_t i, const char **key, const char **text)
{
    if (i >= kiln_call_metadata_count(call))
        return KILN_ERANGE;
    const kiln__exec_t *x = call->exec;
    const char *k = i == 0 ? "prompt" : x->pnginfo_keys[i - 1];
    const char *t = i == 0 ? x->prompt_python : x->pnginfo_texts[i - 1];
    if (key)
        *key = k;
    if (text)
        *text = t;
    return 0;
}

const char *kiln_call_node_id(kiln_call_t *call)
{
    return call ? call->node->id : NULL;
}

const char *kiln_call_dir(kiln_call_t *call, kiln_dir_t dir)
{
    if (!call || !call->env)
        return NULL;
    switch (dir) {
    case KILN_DIR_OUTPUT:
        return call->env->output_dir;
    case KILN_DIR_INPUT:
        return call->env->input_dir;
    case KILN_DIR_TEMP:
        return call->env->temp_dir;
    case KILN_DIR_MODELS:
        return call->env->models_dir;
    }
    return NULL;
}

kiln_lane_t *kiln_call_lane(kiln_call_t *call)
{
    return call ? call->lane : NULL;
}

void *kiln_call_userdata(kiln_call_t *call)
{
    return call && call->cls ? call->cls->def.userdata : NULL;
}
