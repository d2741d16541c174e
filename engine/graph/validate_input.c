/* The checks ComfyUI's validate_inputs makes on one declared input of one node, producing
 * errors in ComfyUI's vocabulary (../shared/docs/comfyui-compat.md §1.5). Constants are coerced
 * with Python semantics and written back into the prompt, because ComfyUI's history and PNG
 * metadata carry the coerced prompt. */
#include "graph/validate_int.h"

#include <kiln/error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Combos with more choices than this are not echoed back in errors (ComfyUI's rule). */
#define COMBO_ECHO_MAX 20

void kiln__validate_put(kiln__json_t *obj, const char *key, kiln__json_t *item, bool *ok)
{
    if (!item || !obj) {
        kiln__json_free(item);
        *ok = false;
        return;
    }
    int rc = key ? kiln__json_set(obj, key, item) : kiln__json_append(obj, item);
    if (rc == KILN_EINVAL)
        kiln__json_free(item); /* the container keeps nothing it refused */
    if (rc != 0)
        *ok = false;
}

kiln__json_t *kiln__validate_error_new(const char *type, const char *message, const char *details,
                                       kiln__json_t *extra_info)
{
    kiln__json_t *e = kiln__json_new_object();
    bool ok = e != NULL;
    kiln__validate_put(e, "type", kiln__json_new_string(type), &ok);
    kiln__validate_put(e, "message", kiln__json_new_string(message), &ok);
    kiln__validate_put(e, "details", kiln__json_new_string(details), &ok);
    kiln__validate_put(e, "extra_info", extra_info ? extra_info : kiln__json_new_object(), &ok);
    if (!ok) {
        kiln__json_free(e);
        return NULL;
    }
    return e;
}

int kiln__validate_add_error(kiln__validator_t *v, int n, kiln__json_t *err)
{
    kiln__vnode_t *vn = &v->vn[n];
    if (!err)
        return KILN_ENOMEM;
    if (!vn->errors && !(vn->errors = kiln__json_new_array())) {
        kiln__json_free(err);
        return KILN_ENOMEM;
    }
    return kiln__json_append(vn->errors, err);
}

/* ---- type compatibility ----------------------------------------------------------------- */

/* Next comma-separated element of a type string, trimmed of spaces as Python's strip(). */
static bool next_type(const char **p, const char **s, size_t *len)
{
    if (!*p)
        return false;
    const char *start = *p, *comma = strchr(start, ',');
    const char *end = comma ? comma : start + strlen(start);
    *p = comma ? comma + 1 : NULL;
    while (start < end && (*start == ' ' || (*start >= '\t' && *start <= '\r')))
        start++;
    while (end > start && (end[-1] == ' ' || (end[-1] >= '\t' && end[-1] <= '\r')))
        end--;
    *s = start;
    *len = (size_t)(end - start);
    return true;
}

bool kiln__validate_types_match(const char *received, const char *expected)
{
    if (!received || !expected)
        return false;
    if (strcmp(received, expected) == 0 || strcmp(received, "*") == 0 || strcmp(expected, "*") == 0)
        return true;
    const char *pa = received, *sa;
    size_t la;
    while (next_type(&pa, &sa, &la)) {
        const char *pb = expected, *sb;
        size_t lb;
        while (next_type(&pb, &sb, &lb))
            if ((la == lb && memcmp(sa, sb, la) == 0) || (la == 1 && *sa == '*') ||
                (lb == 1 && *sb == '*'))
                return true;
    }
    return false;
}

/* ---- caches: class info (input_config) and combo choices -------------------------------- */

void kiln__validate_caches_free(kiln__validator_t *v)
{
    for (size_t i = 0; i < v->n_infos; i++)
        kiln__json_free(v->infos[i].info);
    for (size_t i = 0; i < v->n_combos; i++)
        kiln__json_free(v->combos[i].options);
    kiln_free(v->infos);
    kiln_free(v->combos);
    v->infos = NULL;
    v->combos = NULL;
    v->n_infos = v->n_combos = v->cap_infos = v->cap_combos = 0;
}

/* Grows a cache array by one slot; false on OOM. */
static bool cache_grow(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? *cap * 2 : 8;
    void *p = kiln_malloc(c * size);
    if (!p)
        return false;
    if (n)
        memcpy(p, *arr, n * size);
    kiln_free(*arr);
    *arr = p;
    *cap = c;
    return true;
}

/* The class's NodeInfo as /object_info renders it (cached), or NULL. */
static const kiln__json_t *class_info(kiln__validator_t *v, const kiln__node_class_t *cls)
{
    for (size_t i = 0; i < v->n_infos; i++)
        if (v->infos[i].cls == cls)
            return v->infos[i].info;
    if (!v->reg || !v->env ||
        !cache_grow((void **)&v->infos, &v->cap_infos, v->n_infos, sizeof *v->infos))
        return NULL;
    kiln__json_t *all = kiln__registry_object_info(v->reg, v->env, cls->def.name);
    kiln__json_t *info = kiln__json_take(all, cls->def.name);
    kiln__json_free(all);
    v->infos[v->n_infos++] = (kiln__vinfo_t){cls, info};
    return info;
}

/* The current choices of a COMBO input (cached; borrowed), or NULL on OOM. */
static const kiln__json_t *combo_options(kiln__validator_t *v, const kiln_input_def_t *def)
{
    for (size_t i = 0; i < v->n_combos; i++)
        if (v->combos[i].def == def)
            return v->combos[i].options;
    if (!cache_grow((void **)&v->combos, &v->cap_combos, v->n_combos, sizeof *v->combos))
        return NULL;
    kiln__json_t *opts;
    if (v->env) {
        opts = kiln__registry_combo_options(def, v->env);
    } else {
        /* Without an environment there are no folders to scan: static choices only. */
        opts = kiln__json_new_array();
        bool ok = opts != NULL;
        for (const char *const *o = def->options; ok && o && *o; o++)
            kiln__validate_put(opts, NULL, kiln__json_new_string(*o), &ok);
        if (!ok) {
            kiln__json_free(opts);
            opts = NULL;
        }
    }
    if (!opts)
        return NULL;
    v->combos[v->n_combos++] = (kiln__vcombo_t){def, opts};
    return opts;
}

/* input_config: [type, {options}] exactly as /object_info shows the input, or a minimal
 * rendering from the definition when no registry rendering is available. */
static kiln__json_t *input_config(kiln__validator_t *v, int n, const kiln_input_def_t *def)
{
    const kiln__node_class_t *cls = v->g->nodes[n].cls;
    const kiln__json_t *in = kiln__json_get(class_info(v, cls), "input");
    const char *sec = def->section == KILN_INPUT_OPTIONAL ? "optional" : "required";
    const kiln__json_t *spec = kiln__json_get(kiln__json_get(in, sec), def->name);
    if (spec)
        return kiln__json_dup(spec);
    kiln__json_t *cfg = kiln__json_new_array();
    bool ok = cfg != NULL;
    if (strcmp(def->type, "COMBO") == 0) {
        const kiln__json_t *opts = combo_options(v, def);
        kiln__validate_put(cfg, NULL, opts ? kiln__json_dup(opts) : NULL, &ok);
    } else {
        kiln__validate_put(cfg, NULL, kiln__json_new_string(def->type), &ok);
    }
    kiln__validate_put(cfg, NULL, kiln__json_new_object(), &ok);
    if (!ok) {
        kiln__json_free(cfg);
        return NULL;
    }
    return cfg;
}

/* ---- error records ---------------------------------------------------------------------- */

/* Which extra_info fields an input error carries (see the table in §1.5). */
enum {
    X_CONFIG = 1u << 0,      /* input_config */
    X_CONFIG_NULL = 1u << 1, /* input_config: null (combos too long to echo) */
    X_RECEIVED = 1u << 2,    /* received_value */
    X_LINKED = 1u << 3       /* linked_node */
};

/* Appends an input error to node n; `value` is borrowed (received_value / linked_node).
 * `more`, when non-NULL, is an object of extra fields whose members are moved in. */
static int input_error(kiln__validator_t *v, int n, const kiln_input_def_t *def, unsigned x,
                       const char *type, const char *message, const char *details,
                       const kiln__json_t *value, kiln__json_t *more)
{
    kiln__json_t *extra = kiln__json_new_object();
    bool ok = extra != NULL;
    kiln__validate_put(extra, "input_name", kiln__json_new_string(def->name), &ok);
    if (x & X_CONFIG)
        kiln__validate_put(extra, "input_config", input_config(v, n, def), &ok);
    if (x & X_CONFIG_NULL)
        kiln__validate_put(extra, "input_config", kiln__json_new_null(), &ok);
    if (x & X_RECEIVED)
        kiln__validate_put(extra, "received_value", kiln__json_dup(value), &ok);
    if (x & X_LINKED)
        kiln__validate_put(extra, "linked_node", kiln__json_dup(value), &ok);
    while (ok && more && more->child) {
        kiln__json_t *item = kiln__json_take(more, more->child->key);
        kiln__validate_put(extra, item->key, item, &ok); /* the key is copied first */
    }
    kiln__json_free(more);
    if (!ok) {
        kiln__json_free(extra);
        return KILN_ENOMEM;
    }
    return kiln__validate_add_error(v, n, kiln__validate_error_new(type, message, details, extra));
}

/* {exception_type, exception_message, traceback: []} for exception-shaped errors. */
static kiln__json_t *exception_info(const char *type, const char *message)
{
    kiln__json_t *o = kiln__json_new_object();
    bool ok = o != NULL;
    kiln__validate_put(o, "exception_message", kiln__json_new_string(message), &ok);
    kiln__validate_put(o, "exception_type", kiln__json_new_string(type), &ok);
    kiln__validate_put(o, "traceback", kiln__json_new_array(), &ok);
    if (!ok) {
        kiln__json_free(o);
        return NULL;
    }
    return o;
}

/* ---- links ------------------------------------------------------------------------------ */

/* Checks a link-shaped value (any JSON array, as ComfyUI treats every list as a link). */
static int check_link(kiln__validator_t *v, int n, const kiln_input_def_t *def,
                      kiln__graph_input_t *gi, int *upstream)
{
    const char *x = def->name;
    if (!gi->is_link) {
        /* Wrong length, or two elements that are not [id, index]: neither is a link. */
        return input_error(v, n, def, X_CONFIG | X_RECEIVED, "bad_linked_input",
                           "Bad linked input, must be a length-2 list of [node_id, slot_index]", x,
                           gi->value, NULL);
    }
    kiln__sbuf_t msg = KILN_SBUF_INIT;
    int rc;
    if (gi->src < 0) {
        /* ComfyUI's prompt[o_id] raises KeyError('<id>'); its str() names the node. */
        kiln__py_repr_str(&msg, gi->src_id, strlen(gi->src_id));
        kiln__json_t *more = msg.failed ? NULL : exception_info("KeyError", msg.data);
        rc = more ? input_error(v, n, def, X_LINKED, "exception_during_validation",
                                "Exception when validating node", msg.data, gi->value, more)
                  : KILN_ENOMEM;
        kiln__sbuf_free(&msg);
        return rc;
    }
    const kiln__node_class_t *src = v->g->nodes[gi->src].cls;
    if (gi->src_slot < 0 || (size_t)gi->src_slot >= src->n_outputs) {
        /* RETURN_TYPES[idx] raises IndexError (or TypeError for a fractional index). */
        bool frac = gi->value->child->next->type == KILN_JSON_NUMBER && gi->src_slot < 0;
        const char *text = frac ? "tuple indices must be integers or slices, not float"
                                : "tuple index out of range";
        kiln__json_t *more = exception_info(frac ? "TypeError" : "IndexError", text);
        return more ? input_error(v, n, def, X_CONFIG | X_LINKED,
                                  "exception_during_inner_validation",
                                  "Exception when validating inner node", text, gi->value, more)
                    : KILN_ENOMEM;
    }
    const char *received = src->outputs[gi->src_slot].type;
    if (!kiln__validate_types_match(received, def->type)) {
        kiln__sbuf_printf(&msg, "%s, received_type(%s) mismatch input_type(%s)", x, received,
                          def->type);
        kiln__json_t *more = kiln__json_new_object();
        bool ok = more && !msg.failed;
        kiln__validate_put(more, "received_type", kiln__json_new_string(received), &ok);
        rc =
            ok ? input_error(v, n, def, X_CONFIG | X_LINKED, "return_type_mismatch",
                             "Return type mismatch between linked nodes", msg.data, gi->value, more)
               : KILN_ENOMEM;
        if (!ok)
            kiln__json_free(more);
        kiln__sbuf_free(&msg);
        return rc;
    }
    *upstream = gi->src;
    return 0;
}

/* ---- constants -------------------------------------------------------------------------- */

/* Replaces the input's value in the prompt (taking ownership of val), keeping its position. */
static int write_back(kiln__validator_t *v, int n, kiln__graph_input_t *gi, kiln__json_t *val)
{
    kiln__json_t *inputs = kiln__json_get(v->g->nodes[n].json, "inputs");
    int rc = kiln__json_set(inputs, gi->name, val); /* copies the name before freeing it */
    if (rc == KILN_EINVAL)
        kiln__json_free(val);
    if (rc != 0)
        return KILN_ENOMEM;
    gi->name = val->key;
    gi->value = val;
    return 0;
}

static int type_error(kiln__validator_t *v, int n, const kiln_input_def_t *def,
                      const kiln__json_t *val, const char *exc)
{
    char message[160];
    snprintf(message, sizeof message, "Failed to convert an input value to a %s value", def->type);
    kiln__sbuf_t details = KILN_SBUF_INIT;
    kiln__sbuf_printf(&details, "%s, ", def->name);
    kiln__py_str(&details, val);
    kiln__sbuf_printf(&details, ", %s", exc);
    kiln__json_t *more = kiln__json_new_object();
    bool ok = more && !details.failed;
    kiln__validate_put(more, "exception_message", kiln__json_new_string(exc), &ok);
    int rc = ok ? input_error(v, n, def, X_CONFIG | X_RECEIVED, "invalid_input_type", message,
                              details.data, val, more)
                : KILN_ENOMEM;
    if (!ok)
        kiln__json_free(more);
    kiln__sbuf_free(&details);
    return rc;
}

/* value_smaller_than_min / value_bigger_than_max with Python-printed numbers. */
static int range_error(kiln__validator_t *v, int n, const kiln_input_def_t *def, bool small,
                       const char *val_text, const char *bound_text, const kiln__json_t *val)
{
    char message[512];
    snprintf(message, sizeof message, "Value %s %s %s", val_text,
             small ? "smaller than min of" : "bigger than max of", bound_text);
    return input_error(v, n, def, X_CONFIG | X_RECEIVED,
                       small ? "value_smaller_than_min" : "value_bigger_than_max", message,
                       def->name, val, NULL);
}

/* Range of an INT input. Both bounds 0 means unbounded; kiln then still holds the value to
 * 64 bits (int64, or uint64 for KILN_INPUT_MAX_U64 seeds), reported as a range error. */
static int check_int_range(kiln__validator_t *v, int n, const kiln_input_def_t *def, int kind,
                           const kiln__json_t *val, const char *big)
{
    bool u64 = (def->flags & KILN_INPUT_MAX_U64) != 0;
    bool bounded = u64 || def->min_int != 0 || def->max_int != 0;
    int64_t lo = bounded ? def->min_int : INT64_MIN;
    int64_t hi = bounded ? def->max_int : INT64_MAX;
    char lo_text[32], hi_text[32];
    snprintf(lo_text, sizeof lo_text, "%lld", (long long)lo);
    if (u64)
        snprintf(hi_text, sizeof hi_text, "%llu", (unsigned long long)UINT64_MAX);
    else
        snprintf(hi_text, sizeof hi_text, "%lld", (long long)hi);
    bool small, large;
    if (kind == KILN_PYINT_BIG) {
        small = big[0] == '-';
        large = !small;
    } else {
        small = !val->is_u64 && val->i < lo;
        large = u64 ? false : (val->is_u64 || val->i > hi);
    }
    if (!small && !large)
        return 0;
    kiln__sbuf_t text = KILN_SBUF_INIT;
    if (kind == KILN_PYINT_BIG)
        kiln__sbuf_puts(&text, big);
    else
        kiln__py_str(&text, val);
    int rc = text.failed ? KILN_ENOMEM
                         : range_error(v, n, def, small, text.data, small ? lo_text : hi_text, val);
    kiln__sbuf_free(&text);
    return rc;
}

static int check_float_range(kiln__validator_t *v, int n, const kiln_input_def_t *def,
                             const kiln__json_t *val)
{
    if (def->min_float == 0 && def->max_float == 0)
        return 0;
    bool small = val->d<def->min_float, large = val->d> def->max_float;
    if (!small && !large)
        return 0;
    kiln__sbuf_t a = KILN_SBUF_INIT, b = KILN_SBUF_INIT;
    kiln__py_float_repr(&a, val->d);
    kiln__py_float_repr(&b, small ? def->min_float : def->max_float);
    int rc =
        a.failed || b.failed ? KILN_ENOMEM : range_error(v, n, def, small, a.data, b.data, val);
    kiln__sbuf_free(&a);
    kiln__sbuf_free(&b);
    return rc;
}

/* ---- combos ----------------------------------------------------------------------------- */

/* True when the input's extra options turn on multiple selection (newer ComfyUI). */
static bool combo_multiselect(const kiln_input_def_t *def)
{
    if (!def->extra_json)
        return false;
    kiln__json_t *j = NULL;
    char err[64];
    if (kiln__json_parse(def->extra_json, strlen(def->extra_json), &j, err, sizeof err) != 0)
        return false;
    const kiln__json_t *m = kiln__json_get(j, "multiselect");
    if (!m)
        m = kiln__json_get(j, "multi_select");
    bool on = m && kiln__py_bool(m);
    kiln__json_free(j);
    return on;
}

/* Python's `val in options` (1 == 1.0, strings compared exactly). */
static bool combo_has(const kiln__json_t *opts, const kiln__json_t *val)
{
    for (const kiln__json_t *c = opts->child; c; c = c->next)
        if (kiln__json_equal(c, val))
            return true;
    return false;
}

static int check_combo(kiln__validator_t *v, int n, const kiln_input_def_t *def,
                       const kiln__json_t *val)
{
    const kiln__json_t *opts = combo_options(v, def);
    if (!opts)
        return KILN_ENOMEM;
    bool multi = val->type == KILN_JSON_ARRAY && combo_multiselect(def);
    kiln__sbuf_t details = KILN_SBUF_INIT;
    kiln__sbuf_printf(&details, "%s: ", def->name);
    bool bad = false;
    if (multi) {
        /* Newer ComfyUI lists each rejected choice with repr(). */
        for (const kiln__json_t *e = val->child; e; e = e->next) {
            if (combo_has(opts, e))
                continue;
            if (bad)
                kiln__sbuf_puts(&details, ", ");
            kiln__py_repr(&details, e);
            bad = true;
        }
    } else if (!combo_has(opts, val)) {
        kiln__sbuf_putc(&details, '\'');
        kiln__py_str(&details, val);
        kiln__sbuf_putc(&details, '\'');
        bad = true;
    }
    int rc = 0;
    if (bad) {
        bool echo = opts->count <= COMBO_ECHO_MAX;
        kiln__sbuf_puts(&details, " not in ");
        if (echo)
            kiln__py_repr(&details, opts);
        else
            kiln__sbuf_printf(&details, "(list of length %zu)", opts->count);
        rc = details.failed
                 ? KILN_ENOMEM
                 : input_error(v, n, def, (echo ? X_CONFIG : X_CONFIG_NULL) | X_RECEIVED,
                               "value_not_in_list", "Value not in list", details.data, val, NULL);
    }
    kiln__sbuf_free(&details);
    return rc;
}

/* ---- one input -------------------------------------------------------------------------- */

bool kiln__validate_names(const kiln_node_def_t *def, const char *name)
{
    for (const char *const *p = def->validates; p && *p; p++)
        if (strcmp(*p, name) == 0)
            return true;
    return false;
}

/* int() of an INT constant, written back; then its range unless the hook owns it. */
static int check_int(kiln__validator_t *v, int n, const kiln_input_def_t *def,
                     kiln__graph_input_t *gi, bool ranged)
{
    kiln__sbuf_t text = KILN_SBUF_INIT;
    kiln__json_t *out = NULL, *big = NULL;
    int kind = kiln__py_int(gi->value, &out, &text), rc = 0;
    if (kind < 0) {
        rc = kind;
    } else if (kind == KILN_PYINT_ERROR) {
        rc = type_error(v, n, def, gi->value, text.data);
    } else if (kind == KILN_PYINT_OK) {
        /* A value that already was an integer stays as it is. */
        if (gi->value->type == KILN_JSON_INT)
            kiln__json_free(out);
        else
            rc = write_back(v, n, gi, out);
        if (rc == 0 && ranged)
            rc = check_int_range(v, n, def, kind, gi->value, NULL);
    } else {
        /* Beyond 64 bits: kiln cannot hold it, so it is out of range even without bounds;
         * the prompt keeps what the client sent. */
        big = kiln__json_new_number(strtod(text.data, NULL));
        rc = big ? check_int_range(v, n, def, kind, big, text.data) : KILN_ENOMEM;
    }
    kiln__json_free(big);
    kiln__sbuf_free(&text);
    return rc;
}

/* A constant: __value__ unwrapping, coercion by declared type (written back), then the
 * range and combo checks that a validate hook naming the input replaces. */
static int check_constant(kiln__validator_t *v, int n, const kiln_input_def_t *def,
                          kiln__graph_input_t *gi)
{
    int rc = 0;
    kiln__json_t *val = gi->value;
    if (val->type == KILN_JSON_OBJECT && kiln__json_get(val, "__value__") &&
        (rc = write_back(v, n, gi, kiln__json_take(val, "__value__"))) != 0)
        return rc;
    val = gi->value;
    bool ranged = !kiln__validate_names(&v->g->nodes[n].cls->def, def->name);
    const char *t = def->type;
    kiln__sbuf_t text = KILN_SBUF_INIT;
    if (strcmp(t, "INT") == 0) {
        rc = check_int(v, n, def, gi, ranged);
    } else if (strcmp(t, "FLOAT") == 0) {
        double d;
        int r = kiln__py_float(val, &d, &text);
        if (r < 0)
            rc = r;
        else if (r > 0)
            rc = type_error(v, n, def, val, text.data);
        else if ((rc = write_back(v, n, gi, kiln__json_new_number(d))) == 0 && ranged)
            rc = check_float_range(v, n, def, gi->value);
    } else if (strcmp(t, "STRING") == 0 && val->type != KILN_JSON_STRING) {
        kiln__py_str(&text, val);
        rc = text.failed ? KILN_ENOMEM
                         : write_back(v, n, gi, kiln__json_new_stringn(text.data, text.len));
    } else if (strcmp(t, "BOOLEAN") == 0 && val->type != KILN_JSON_BOOL) {
        rc = write_back(v, n, gi, kiln__json_new_bool(kiln__py_bool(val)));
    } else if (strcmp(t, "COMBO") == 0 && ranged) {
        rc = check_combo(v, n, def, val);
    }
    kiln__sbuf_free(&text);
    return rc;
}

int kiln__validate_input(kiln__validator_t *v, int n, const kiln_input_def_t *def, int *upstream)
{
    *upstream = -1;
    kiln__graph_node_t *node = &v->g->nodes[n];
    kiln__graph_input_t *gi = kiln__graph_node_input(node, def->name);
    if (!gi) {
        if (def->section != KILN_INPUT_REQUIRED)
            return 0;
        return input_error(v, n, def, 0, "required_input_missing", "Required input is missing",
                           def->name, NULL, NULL);
    }
    if (gi->value->type != KILN_JSON_ARRAY)
        return check_constant(v, n, def, gi);
    int rc = check_link(v, n, def, gi, upstream);
    if (rc == 0 && *upstream >= 0)
        v->followed[v->in_base[n] + (size_t)(gi - node->inputs)] = true;
    return rc;
}
