/* The primitive nodes of ComfyUI's comfy_extras/nodes_primitive.py (category
 * utils/primitive): each passes its one widget value through to an output of the same
 * type, so a workflow can feed one constant to several inputs. */
#include <stdint.h>

#include "core_int.h"

static int int_execute(kiln_call_t *call)
{
    int64_t v;
    int err = kiln__core_input_int(call, "value", &v);
    if (err)
        return err;
    kiln_value_t *out = kiln_value_new_int(v);
    return out ? kiln_call_set_output(call, 0, out) : kiln_call_fail(call, "out of memory");
}

static int float_execute(kiln_call_t *call)
{
    double v;
    int err = kiln__core_input_float(call, "value", &v);
    if (err)
        return err;
    kiln_value_t *out = kiln_value_new_float(v);
    return out ? kiln_call_set_output(call, 0, out) : kiln_call_fail(call, "out of memory");
}

static int string_execute(kiln_call_t *call)
{
    const char *s = NULL;
    size_t len = 0;
    const kiln_value_t *in = kiln_call_input(call, "value");
    if (!in || kiln_value_get_string(in, &s, &len) != 0)
        return kiln_call_fail(call, "input 'value' is missing or is not a string");
    kiln_value_t *out = kiln_value_new_string(s, len);
    return out ? kiln_call_set_output(call, 0, out) : kiln_call_fail(call, "out of memory");
}

static int boolean_execute(kiln_call_t *call)
{
    int v;
    int err = kiln__core_input_bool(call, "value", &v);
    if (err)
        return err;
    kiln_value_t *out = kiln_value_new_bool(v != 0);
    return out ? kiln_call_set_output(call, 0, out) : kiln_call_fail(call, "out of memory");
}

/* -sys.maxsize .. sys.maxsize, as ComfyUI declares them. */
static const kiln_input_def_t int_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "value", .type = "INT",
     .flags = KILN_INPUT_CONTROL_AFTER_GENERATE, .min_int = -INT64_MAX, .max_int = INT64_MAX},
    {0}};
static const kiln_input_def_t float_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "value", .type = "FLOAT", .min_float = -9223372036854775807.0,
     .max_float = 9223372036854775807.0, .step_float = 0.1},
    {0}};
static const kiln_input_def_t string_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "value", .type = "STRING"}, {0}};
static const kiln_input_def_t string_multiline_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "value", .type = "STRING", .flags = KILN_INPUT_MULTILINE},
    {0}};
static const kiln_input_def_t boolean_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "value", .type = "BOOLEAN"}, {0}};

static const kiln_output_def_t int_outputs[] = {{KILN_OUTPUT_DEF_INIT, .type = "INT"}, {0}};
static const kiln_output_def_t float_outputs[] = {{KILN_OUTPUT_DEF_INIT, .type = "FLOAT"}, {0}};
static const kiln_output_def_t string_outputs[] = {{KILN_OUTPUT_DEF_INIT, .type = "STRING"}, {0}};
static const kiln_output_def_t boolean_outputs[] = {
    {KILN_OUTPUT_DEF_INIT, .type = "BOOLEAN"}, {0}};

const kiln_node_def_t kiln__core_primitive_int = {
    KILN_NODE_DEF_INIT, .name = "PrimitiveInt", .display_name = "Int",
    .category = "utils/primitive", .inputs = int_inputs, .outputs = int_outputs,
    .execute = int_execute};

const kiln_node_def_t kiln__core_primitive_float = {
    KILN_NODE_DEF_INIT, .name = "PrimitiveFloat", .display_name = "Float",
    .category = "utils/primitive", .inputs = float_inputs, .outputs = float_outputs,
    .execute = float_execute};

const kiln_node_def_t kiln__core_primitive_string = {
    KILN_NODE_DEF_INIT, .name = "PrimitiveString", .display_name = "String",
    .category = "utils/primitive", .inputs = string_inputs, .outputs = string_outputs,
    .execute = string_execute};

const kiln_node_def_t kiln__core_primitive_string_multiline = {
    KILN_NODE_DEF_INIT, .name = "PrimitiveStringMultiline", .display_name = "String (Multiline)",
    .category = "utils/primitive", .inputs = string_multiline_inputs, .outputs = string_outputs,
    .execute = string_execute};

const kiln_node_def_t kiln__core_primitive_boolean = {
    KILN_NODE_DEF_INIT, .name = "PrimitiveBoolean", .display_name = "Boolean",
    .category = "utils/primitive", .inputs = boolean_inputs, .outputs = boolean_outputs,
    .execute = boolean_execute};
