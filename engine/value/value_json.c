/* Conversions between socket values and JSON: constants of a validated prompt become
 * values of their declared input types, and values become JSON for UI payloads. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "value/value.h"

/* A STRING value holding j's compact JSON text. */
static kiln_value_t *json_text_value(const kiln__json_t *j)
{
    size_t len = 0;
    char *text = kiln__json_dump(j, KILN_JSON_COMPACT, &len);
    if (!text)
        return NULL;
    kiln_value_t *v = kiln_value_new_string(text, len);
    free(text);
    return v;
}

/* The value the JSON type alone suggests (an undeclared input, or a constant that its
 * declared type cannot hold). */
static kiln_value_t *natural_value(const kiln__json_t *j)
{
    switch (j->type) {
    case KILN_JSON_INT:
        return j->is_u64 ? kiln_value_new_u64(j->u) : kiln_value_new_int(j->i);
    case KILN_JSON_NUMBER:
        return kiln_value_new_float(j->d);
    case KILN_JSON_BOOL:
        return kiln_value_new_bool(j->b);
    case KILN_JSON_STRING:
        return kiln_value_new_string(j->str, j->len);
    default:
        return json_text_value(j);
    }
}

/* Python's int() of a number or a decimal string, when it fits 64 bits. Returns 1 with
 * the value in *out (or *uout for magnitudes beyond INT64_MAX, setting *is_u64). */
static int json_as_integer(const kiln__json_t *j, int64_t *out, uint64_t *uout, bool *is_u64)
{
    *is_u64 = false;
    switch (j->type) {
    case KILN_JSON_INT:
        *is_u64 = j->is_u64;
        *out = j->i;
        *uout = j->u;
        return 1;
    case KILN_JSON_BOOL:
        *out = j->b;
        return 1;
    case KILN_JSON_NUMBER:
        if (!isfinite(j->d))
            return 0;
        if (j->d > -9223372036854775808.0 && j->d < 9223372036854775808.0) {
            *out = (int64_t)j->d; /* truncates toward zero, as int() does */
            return 1;
        }
        if (j->d >= 0 && j->d < 18446744073709551616.0) {
            *uout = (uint64_t)j->d;
            *is_u64 = true;
            return 1;
        }
        return 0;
    case KILN_JSON_STRING: {
        char *end;
        errno = 0;
        long long v = strtoll(j->str, &end, 10);
        if (end == j->str || *end != '\0' || errno == ERANGE)
            return 0;
        *out = v;
        return 1;
    }
    default:
        return 0;
    }
}

static kiln_value_t *int_value(const kiln__json_t *j)
{
    int64_t i;
    uint64_t u;
    bool is_u64;
    if (!json_as_integer(j, &i, &u, &is_u64))
        return natural_value(j);
    return is_u64 ? kiln_value_new_u64(u) : kiln_value_new_int(i);
}

static kiln_value_t *float_value(const kiln__json_t *j)
{
    switch (j->type) {
    case KILN_JSON_INT:
        return kiln_value_new_float(j->is_u64 ? (double)j->u : (double)j->i);
    case KILN_JSON_NUMBER:
        return kiln_value_new_float(j->d);
    case KILN_JSON_BOOL:
        return kiln_value_new_float(j->b ? 1.0 : 0.0);
    default:
        return natural_value(j);
    }
}

static kiln_value_t *bool_value(const kiln__json_t *j)
{
    switch (j->type) {
    case KILN_JSON_BOOL:
        return kiln_value_new_bool(j->b);
    case KILN_JSON_INT:
        return kiln_value_new_bool(j->is_u64 || j->i != 0);
    case KILN_JSON_NUMBER:
        return kiln_value_new_bool(j->d != 0);
    default:
        return natural_value(j);
    }
}

kiln_value_t *kiln__value_from_json(const kiln__json_t *j, const kiln_input_def_t *def)
{
    if (!j)
        return NULL;
    const char *type = def ? def->type : NULL;
    if (!type)
        return natural_value(j);
    if (strcmp(type, "INT") == 0)
        return int_value(j);
    if (strcmp(type, "FLOAT") == 0)
        return float_value(j);
    if (strcmp(type, "BOOLEAN") == 0)
        return bool_value(j);
    if (strcmp(type, "STRING") == 0 || strcmp(type, "COMBO") == 0)
        return j->type == KILN_JSON_STRING ? kiln_value_new_string(j->str, j->len)
                                           : json_text_value(j);
    return natural_value(j);
}

kiln__json_t *kiln__value_to_json(const kiln_value_t *v)
{
    int64_t i;
    uint64_t u;
    double d;
    int b;
    const char *s;
    size_t len;
    switch (kiln_value_kind(v)) {
    case KILN_VALUE_INT:
        if (kiln_value_get_int(v, &i) == 0)
            return kiln__json_new_int(i);
        kiln_value_get_u64(v, &u);
        return kiln__json_new_u64(u);
    case KILN_VALUE_FLOAT:
        kiln_value_get_float(v, &d);
        return kiln__json_new_number(d);
    case KILN_VALUE_BOOL:
        kiln_value_get_bool(v, &b);
        return kiln__json_new_bool(b != 0);
    case KILN_VALUE_STRING:
        kiln_value_get_string(v, &s, &len);
        return kiln__json_new_stringn(s, len);
    case KILN_VALUE_TENSOR:
    case KILN_VALUE_OBJECT: {
        kiln__json_t *o = kiln__json_new_object();
        if (o && kiln__json_set(o, "type", kiln__json_new_string(kiln_value_type(v))) != 0) {
            kiln__json_free(o);
            return NULL;
        }
        return o;
    }
    default:
        return kiln__json_new_null();
    }
}
