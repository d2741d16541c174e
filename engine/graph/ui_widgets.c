/* Widget values of a UI-workflow node: where each widget's value sits in widgets_values
 * (the editor's layout: one entry per widget input in declaration order, with UI-only
 * control_after_generate and upload entries interleaved), the class defaults for values a
 * file lacks, and the editor's serialization of a value (array wrapping, dynamic prompts).
 * See ../shared/docs/comfyui-compat.md §2.3. */
#include "graph/ui_int.h"

#include <kiln/error.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph/dynprompt.h"

/* Where one widget's value sits in a widgets_values array. */
typedef struct wslot {
    const kiln_input_def_t *in; /* borrowed: registry */
    size_t pos;                 /* index of the value */
    bool control;               /* a control_after_generate value follows at pos + 1 */
} wslot_t;

static bool type_is(const kiln_input_def_t *in, const char *type)
{
    return in->type && strcmp(in->type, type) == 0;
}

bool kiln__ui_widget_typed(const kiln_input_def_t *in)
{
    return type_is(in, "INT") || type_is(in, "FLOAT") || type_is(in, "STRING") ||
           type_is(in, "BOOLEAN") || type_is(in, "COMBO") || in->options || in->options_folder;
}

static bool is_combo(const kiln_input_def_t *in)
{
    return type_is(in, "COMBO") || in->options || in->options_folder;
}

bool kiln__ui_has_control(const kiln_input_def_t *in)
{
    if (!kiln__input_is_widget(in))
        return false;
    if (type_is(in, "INT"))
        return (in->flags & KILN_INPUT_CONTROL_AFTER_GENERATE) || strcmp(in->name, "seed") == 0 ||
               strcmp(in->name, "noise_seed") == 0;
    return is_combo(in) && (in->flags & KILN_INPUT_CONTROL_AFTER_GENERATE);
}

/* Lays out the widgets of cls into slots (room for cls->n_inputs) and returns the length
 * of a complete widgets_values array. `extras` counts the UI-only entries (control,
 * upload); `phantom` gives forceInput inputs of widget type a position of their own, as
 * frontend 1.16 saved them. */
static size_t layout(const kiln__node_class_t *cls, bool extras, bool phantom, wslot_t *slots,
                     size_t *n_slots)
{
    size_t pos = 0, n = 0;
    for (size_t i = 0; i < cls->n_inputs; i++) {
        const kiln_input_def_t *in = &cls->inputs[i];
        if (in->section == KILN_INPUT_HIDDEN)
            continue;
        if (!kiln__input_is_widget(in)) {
            if (phantom && kiln__ui_widget_typed(in))
                pos++;
            continue;
        }
        bool control = extras && kiln__ui_has_control(in);
        slots[n++] = (wslot_t){in, pos, control};
        pos += 1 + (control ? 1 : 0);
        if (extras && is_combo(in) && (in->flags & KILN_INPUT_IMAGE_UPLOAD))
            pos++;
    }
    *n_slots = n;
    return pos;
}

static size_t count_force_inputs(const kiln__node_class_t *cls)
{
    size_t n = 0;
    for (size_t i = 0; i < cls->n_inputs; i++) {
        const kiln_input_def_t *in = &cls->inputs[i];
        if (in->section != KILN_INPUT_HIDDEN && !kiln__input_is_widget(in) &&
            kiln__ui_widget_typed(in))
            n++;
    }
    return n;
}

/* True for a value the editor stores in a control_after_generate slot. */
static bool is_control_value(const kiln__json_t *v)
{
    static const char *const modes[] = {"fixed", "increment", "decrement", "randomize",
                                        "increment-wrap"};
    if (v->type == KILN_JSON_BOOL || v->type == KILN_JSON_NULL)
        return true;
    if (v->type != KILN_JSON_STRING)
        return false;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(v->str, modes[i]) == 0)
            return true;
    return false;
}

/* True when a control slot of the layout holds something that cannot be a control value:
 * the file predates control widgets and stores plain values only. */
static bool controls_misplaced(const wslot_t *slots, size_t n, const kiln__json_t *wv)
{
    for (size_t i = 0; i < n; i++) {
        if (!slots[i].control || slots[i].pos + 1 >= wv->count)
            continue;
        if (!is_control_value(kiln__json_at(wv, slots[i].pos + 1)))
            return true;
    }
    return false;
}

/* The editor's default for a widget with no stored value: the declared default, else 0,
 * "", false, or a combo's first choice. *out is NULL when there is none (a folder combo
 * with no files): the input is then left out, as the editor leaves out undefined. */
static int default_value(const kiln__ui_doc_t *doc, const kiln_input_def_t *in, kiln__json_t **out)
{
    *out = NULL;
    if (type_is(in, "INT")) {
        *out = kiln__json_new_int(in->has_default ? in->default_int : 0);
    } else if (type_is(in, "FLOAT")) {
        double d = in->has_default ? in->default_float : 0.0;
        /* JavaScript prints 8.0 as 8; keep integral defaults integers. */
        if (isfinite(d) && d == floor(d) && fabs(d) < 9.0e15)
            *out = kiln__json_new_int((int64_t)d);
        else
            *out = kiln__json_new_number(d);
    } else if (type_is(in, "BOOLEAN")) {
        *out = kiln__json_new_bool(in->has_default && in->default_int != 0);
    } else if (is_combo(in)) {
        if (in->default_string)
            *out = kiln__json_new_string(in->default_string);
        else if (in->options && in->options[0])
            *out = kiln__json_new_string(in->options[0]);
        else if (in->options_folder && doc->env) {
            kiln__json_t *list = kiln__registry_combo_options(in, doc->env);
            if (!list)
                return KILN_ENOMEM;
            bool empty = list->child == NULL;
            if (!empty)
                *out = kiln__json_dup(list->child);
            kiln__json_free(list);
            if (empty)
                return 0;
        } else {
            return 0;
        }
    } else {
        *out = kiln__json_new_string(in->default_string ? in->default_string : "");
    }
    return *out ? 0 : KILN_ENOMEM;
}

int kiln__ui_put_value(kiln__json_t *inputs, const char *name, const kiln__json_t *value,
                       const kiln_input_def_t *def, const char *exec_id, uint64_t seed)
{
    kiln__json_t *v = NULL;
    if (value->type == KILN_JSON_ARRAY) {
        /* A bare array would read as a link; the backend unwraps __value__. */
        v = kiln__json_new_object();
        kiln__json_t *arr = kiln__json_dup(value);
        if (!v || !arr) {
            kiln__json_free(v);
            kiln__json_free(arr);
            return KILN_ENOMEM;
        }
        if (kiln__json_set(v, "__value__", arr) != 0) { /* arr is freed on failure */
            kiln__json_free(v);
            return KILN_ENOMEM;
        }
    } else if (value->type == KILN_JSON_STRING && def && type_is(def, "STRING") &&
               (def->flags & KILN_INPUT_DYNAMIC_PROMPTS)) {
        char *text = NULL;
        size_t len = 0;
        uint64_t s = kiln__dynprompt_seed(seed, exec_id, name);
        if (kiln__dynprompt_expand(value->str, value->len, s, &text, &len) != 0)
            return KILN_ENOMEM;
        v = kiln__json_new_stringn(text, len);
        free(text);
    } else {
        v = kiln__json_dup(value);
    }
    if (!v)
        return KILN_ENOMEM;
    return kiln__json_set(inputs, name, v);
}

/* Writes one widget's value: the stored one when present, else the default. */
static int put_widget(const kiln__ui_doc_t *doc, const kiln_input_def_t *in,
                      const kiln__json_t *stored, const char *exec_id, uint64_t seed,
                      kiln__json_t *inputs)
{
    if (stored)
        return kiln__ui_put_value(inputs, in->name, stored, in, exec_id, seed);
    kiln__json_t *dflt = NULL;
    int rc = default_value(doc, in, &dflt);
    if (rc || !dflt)
        return rc;
    rc = kiln__ui_put_value(inputs, in->name, dflt, in, exec_id, seed);
    kiln__json_free(dflt);
    return rc;
}

int kiln__ui_widget_values(const kiln__ui_doc_t *doc, const kiln__node_class_t *cls,
                           const kiln__json_t *wv, const char *exec_id, uint64_t seed,
                           kiln__json_t *inputs)
{
    size_t n = 0;
    wslot_t *slots = calloc(cls->n_inputs ? cls->n_inputs : 1, sizeof *slots);
    if (!slots)
        return KILN_ENOMEM;
    bool is_array = wv && wv->type == KILN_JSON_ARRAY;
    size_t total = layout(cls, true, false, slots, &n);
    size_t n_force = count_force_inputs(cls);
    if (is_array && n_force && wv->count == total + n_force)
        layout(cls, true, true, slots, &n);
    else if (is_array && controls_misplaced(slots, n, wv))
        layout(cls, false, false, slots, &n);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const kiln__json_t *stored = NULL;
        if (is_array && slots[i].pos < wv->count)
            stored = kiln__json_at(wv, slots[i].pos);
        else if (wv && wv->type == KILN_JSON_OBJECT)
            stored = kiln__json_get(wv, slots[i].in->name);
        rc = put_widget(doc, slots[i].in, stored, exec_id, seed, inputs);
    }
    free(slots);
    return rc;
}
