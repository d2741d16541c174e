/* Internal helpers around socket values (the kiln_value_* functions themselves are the
 * public ones declared in include/kiln/node.h and implemented in value.c). */
#ifndef KILN_VALUE_VALUE_H
#define KILN_VALUE_VALUE_H

#include <kiln/node.h>

#include "json/json.h"

/* Converts a validated constant to a value of its declared input type: INT (exact, u64
 * for seeds beyond INT64_MAX), FLOAT, BOOLEAN, STRING/COMBO (string; a number in a combo
 * becomes its JSON text), any other JSON as a STRING holding its compact JSON text.
 * def may be NULL (undeclared input): the JSON type decides. NULL when out of memory. */
kiln_value_t *kiln__value_from_json(const kiln__json_t *j, const kiln_input_def_t *def);

/* The value as JSON for UI payloads and debugging: numbers, strings, booleans; tensors
 * and objects as {"type": T}. Caller owns; NULL when out of memory. */
kiln__json_t *kiln__value_to_json(const kiln_value_t *v);

/* Approximate bytes held by the value (tensor storage, string bytes), for cache budgets. */
size_t kiln__value_bytes(const kiln_value_t *v);

/* Live value count (leak checks in tests). */
long kiln__value_live_count(void);

#endif
