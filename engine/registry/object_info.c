/* ComfyUI's /object_info, rendered from the registered definitions
 * (../shared/docs/comfyui-compat.md §3): per class the input sections with their widget
 * options, input_order, the outputs, naming and flags, keys in the order ComfyUI writes
 * them. Building uses a sticky `ok` flag: a failed allocation anywhere makes the whole
 * result NULL, checked once per object. */
#include <stdint.h>
#include <string.h>

#include "registry/registry_int.h"

static const char *const section_names[] = {"required", "optional", "hidden"};

/* Sets o[key] = v (taking v), clearing *ok when v is NULL (out of memory) or the set
 * fails. */
static void put(kiln__json_t *o, const char *key, kiln__json_t *v, bool *ok)
{
    if (!v) {
        *ok = false;
        return;
    }
    int rc = o ? kiln__json_set(o, key, v) : KILN_EINVAL;
    if (rc == KILN_EINVAL)
        kiln__json_free(v); /* on KILN_ENOMEM kiln__json_set freed it */
    if (rc != 0)
        *ok = false;
}

/* Appends v to array a (taking v), clearing *ok on failure. */
static void push(kiln__json_t *a, kiln__json_t *v, bool *ok)
{
    if (!v || !a || kiln__json_append(a, v) != 0) {
        kiln__json_free(v);
        *ok = false;
    }
}

static void put_true(kiln__json_t *o, const char *key, bool cond, bool *ok)
{
    if (cond)
        put(o, key, kiln__json_new_bool(true), ok);
}

/* default/min/max/step/round by widget type. */
static void put_numbers(kiln__json_t *o, const kiln_input_def_t *in, bool *ok)
{
    if (strcmp(in->type, "INT") == 0) {
        bool u64max = (in->flags & KILN_INPUT_MAX_U64) != 0;
        if (in->has_default)
            put(o, "default", kiln__json_new_int(in->default_int), ok);
        if (u64max || in->min_int != 0 || in->max_int != 0) {
            put(o, "min", kiln__json_new_int(in->min_int), ok);
            put(o, "max", u64max ? kiln__json_new_u64(UINT64_MAX)
                                 : kiln__json_new_int(in->max_int), ok);
        }
        if (in->step_int != 0)
            put(o, "step", kiln__json_new_int(in->step_int), ok);
    } else if (strcmp(in->type, "FLOAT") == 0) {
        if (in->has_default)
            put(o, "default", kiln__json_new_number(in->default_float), ok);
        if (in->min_float != 0 || in->max_float != 0) {
            put(o, "min", kiln__json_new_number(in->min_float), ok);
            put(o, "max", kiln__json_new_number(in->max_float), ok);
        }
        if (in->step_float != 0)
            put(o, "step", kiln__json_new_number(in->step_float), ok);
        if (in->flags & KILN_INPUT_NO_ROUND)
            put(o, "round", kiln__json_new_bool(false), ok);
        else if (in->round != 0)
            put(o, "round", kiln__json_new_number(in->round), ok);
    } else if (strcmp(in->type, "BOOLEAN") == 0) {
        if (in->has_default)
            put(o, "default", kiln__json_new_bool(in->default_int != 0), ok);
    } else if (strcmp(in->type, "STRING") == 0) {
        /* A STRING default of NULL is the empty string. */
        if (in->has_default)
            put(o, "default", kiln__json_new_string(in->default_string ? in->default_string
                                                                        : ""), ok);
    } else if (strcmp(in->type, "COMBO") == 0) {
        if (in->has_default && in->default_string)
            put(o, "default", kiln__json_new_string(in->default_string), ok);
    }
}

/* Merges the members of the input's extra_json (checked at registration) into o. */
static void merge_extra(kiln__json_t *o, const char *extra, bool *ok)
{
    kiln__json_t *j = NULL;
    if (kiln__json_parse(extra, strlen(extra), &j, NULL, 0) != 0) {
        *ok = false;
        return;
    }
    for (kiln__json_t *m = j->child; m && *ok; m = m->next)
        put(o, m->key, kiln__json_dup(m), ok);
    kiln__json_free(j);
}

/* The options object of a required/optional input. */
static kiln__json_t *input_options(const kiln_input_def_t *in, bool *ok)
{
    kiln__json_t *o = kiln__json_new_object();
    if (!o) {
        *ok = false;
        return NULL;
    }
    put_numbers(o, in, ok);
    uint32_t f = in->flags;
    put_true(o, "multiline", f & KILN_INPUT_MULTILINE, ok);
    put_true(o, "dynamicPrompts", f & KILN_INPUT_DYNAMIC_PROMPTS, ok);
    put_true(o, "forceInput", f & KILN_INPUT_FORCE_INPUT, ok);
    put_true(o, "control_after_generate", f & KILN_INPUT_CONTROL_AFTER_GENERATE, ok);
    put_true(o, "image_upload", f & KILN_INPUT_IMAGE_UPLOAD, ok);
    put_true(o, "lazy", f & KILN_INPUT_LAZY, ok);
    if (in->tooltip)
        put(o, "tooltip", kiln__json_new_string(in->tooltip), ok);
    if (in->extra_json)
        merge_extra(o, in->extra_json, ok);
    return o;
}

/* [type] or [type, {options}]; a COMBO is [[choices...], {options}]. */
static kiln__json_t *input_spec(const kiln_input_def_t *in, const kiln__env_t *env, bool *ok)
{
    kiln__json_t *spec = kiln__json_new_array();
    if (strcmp(in->type, "COMBO") == 0)
        push(spec, kiln__registry_combo_options(in, env), ok);
    else
        push(spec, kiln__json_new_string(in->type), ok);
    kiln__json_t *opts = input_options(in, ok);
    if (opts && opts->count > 0)
        push(spec, opts, ok);
    else
        kiln__json_free(opts);
    return spec;
}

/* "input" and "input_order": required always (ComfyUI nodes declare it even when empty),
 * optional and hidden when the class has such inputs. */
static void put_inputs(kiln__json_t *info, const kiln__node_class_t *cls,
                       const kiln__env_t *env, bool *ok)
{
    kiln__json_t *input = kiln__json_new_object();
    kiln__json_t *order = kiln__json_new_object();
    for (int s = KILN_INPUT_REQUIRED; s <= KILN_INPUT_HIDDEN && input && order; s++) {
        kiln__json_t *sec = NULL, *names = NULL;
        for (size_t i = 0; i < cls->n_inputs; i++) {
            const kiln_input_def_t *in = &cls->inputs[i];
            if ((int)in->section != s)
                continue;
            if (!sec) {
                sec = kiln__json_new_object();
                names = kiln__json_new_array();
            }
            put(sec, in->name, s == KILN_INPUT_HIDDEN ? kiln__json_new_string(in->type)
                                                      : input_spec(in, env, ok), ok);
            push(names, kiln__json_new_string(in->name), ok);
        }
        if (!sec && s == KILN_INPUT_REQUIRED) {
            sec = kiln__json_new_object();
            names = kiln__json_new_array();
        } else if (!sec) {
            continue;
        }
        put(input, section_names[s], sec, ok);
        put(order, section_names[s], names, ok);
    }
    put(info, "input", input, ok);
    put(info, "input_order", order, ok);
}

/* "output", "output_is_list", "output_name"; *tips receives output_tooltips (NULL when no
 * output has a tooltip), which ComfyUI writes later in the object. */
static void put_outputs(kiln__json_t *info, const kiln__node_class_t *cls, kiln__json_t **tips,
                        bool *ok)
{
    kiln__json_t *types = kiln__json_new_array();
    kiln__json_t *is_list = kiln__json_new_array();
    kiln__json_t *names = kiln__json_new_array();
    bool any_tooltip = false;
    for (size_t i = 0; i < cls->n_outputs; i++) {
        const kiln_output_def_t *out = &cls->outputs[i];
        push(types, kiln__json_new_string(out->type), ok);
        push(is_list, kiln__json_new_bool(out->is_list != 0), ok);
        push(names, kiln__json_new_string(out->name ? out->name : out->type), ok);
        any_tooltip |= out->tooltip != NULL;
    }
    put(info, "output", types, ok);
    put(info, "output_is_list", is_list, ok);
    put(info, "output_name", names, ok);
    *tips = NULL;
    if (!any_tooltip)
        return;
    *tips = kiln__json_new_array();
    for (size_t i = 0; i < cls->n_outputs; i++) {
        const char *tip = cls->outputs[i].tooltip;
        push(*tips, tip ? kiln__json_new_string(tip) : kiln__json_new_null(), ok);
    }
    if (!*tips)
        *ok = false;
}

static kiln__json_t *class_info(const kiln__node_class_t *cls, const kiln__env_t *env)
{
    bool ok = true;
    kiln__json_t *info = kiln__json_new_object();
    if (!info)
        return NULL;
    const kiln_node_def_t *d = &cls->def;
    put_inputs(info, cls, env, &ok);
    kiln__json_t *tips = NULL;
    put_outputs(info, cls, &tips, &ok);
    put(info, "name", kiln__json_new_string(d->name), &ok);
    put(info, "display_name", kiln__json_new_string(d->display_name ? d->display_name
                                                                     : d->name), &ok);
    put(info, "description", kiln__json_new_string(d->description ? d->description : ""),
        &ok);
    put(info, "python_module", kiln__json_new_string(kiln__registry_python_module(cls)), &ok);
    put(info, "category", kiln__json_new_string(d->category ? d->category : "sd"), &ok);
    put(info, "output_node", kiln__json_new_bool((d->flags & KILN_NODE_OUTPUT) != 0), &ok);
    if (tips)
        put(info, "output_tooltips", tips, &ok);
    put_true(info, "deprecated", d->flags & KILN_NODE_DEPRECATED, &ok);
    put_true(info, "experimental", d->flags & KILN_NODE_EXPERIMENTAL, &ok);
    if (!ok) {
        kiln__json_free(info);
        return NULL;
    }
    return info;
}

kiln__json_t *kiln__registry_object_info(const kiln__registry_t *r, const kiln__env_t *env,
                                         const char *name)
{
    kiln__json_t *all = kiln__json_new_object();
    if (!all || !r)
        return all;
    bool ok = true;
    if (name) {
        const kiln__node_class_t *cls = kiln__registry_find(r, name);
        if (cls)
            put(all, cls->def.name, class_info(cls, env), &ok);
    } else {
        for (size_t i = 0; i < kiln__registry_count(r) && ok; i++) {
            const kiln__node_class_t *cls = kiln__registry_at(r, i);
            put(all, cls->def.name, class_info(cls, env), &ok);
        }
    }
    if (!ok) {
        kiln__json_free(all);
        return NULL;
    }
    return all;
}
