/* kiln's JSON document model: a parser that keeps 64-bit integers exact (seeds reach
 * 2^64-1, beyond a double), keeps object member order, and writers for compact JSON and
 * for the exact text Python's json.dumps produces (", " and ": " separators, non-ASCII as
 * \uXXXX, NaN/Infinity), which PNG metadata chunks must match byte for byte.
 *
 * Nodes form a tree: arrays and objects own their children through `child`/`next`. */
#ifndef KILN_JSON_JSON_H
#define KILN_JSON_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum kiln__json_type {
    KILN_JSON_NULL = 0,
    KILN_JSON_BOOL,
    KILN_JSON_INT,      /* integer literal that fits int64 (or uint64: see is_u64) */
    KILN_JSON_NUMBER,   /* any other number (fraction, exponent, or beyond 64 bits) */
    KILN_JSON_STRING,
    KILN_JSON_ARRAY,
    KILN_JSON_OBJECT
} kiln__json_type_t;

typedef struct kiln__json kiln__json_t;
struct kiln__json {
    kiln__json_type_t type;
    kiln__json_t *next;      /* next sibling in the parent (owned by the parent) */
    kiln__json_t *child;     /* first child of an array/object (owned) */
    kiln__json_t *last;      /* last child, for O(1) append (borrowed) */
    size_t count;            /* number of children of an array/object */
    char *key;               /* member name when the parent is an object (owned, NUL-terminated) */
    size_t key_len;
    bool b;                  /* BOOL */
    bool is_u64;             /* INT whose value exceeds INT64_MAX: read u */
    int64_t i;               /* INT */
    uint64_t u;              /* INT when is_u64 */
    double d;                /* NUMBER; also set for INT (nearest double) */
    char *str;               /* STRING (owned, NUL-terminated; may contain NULs within len) */
    size_t len;              /* STRING length in bytes */
};

/* Limits a parse enforces; exceeding one is a parse error, never a crash. */
#define KILN_JSON_MAX_DEPTH 512

/* Parses len bytes of UTF-8 JSON text into *out (caller frees with kiln__json_free).
 * Rejects trailing garbage, invalid UTF-8 escapes, control characters in strings and
 * nesting beyond KILN_JSON_MAX_DEPTH; accepts NaN, Infinity and -Infinity as Python does.
 * On failure returns KILN_EPARSE (or KILN_ENOMEM) and writes "line L column C: reason" to
 * err. Duplicate object keys: the last one wins, as in Python. */
int kiln__json_parse(const char *text, size_t len, kiln__json_t **out, char *err, size_t err_size);

void kiln__json_free(kiln__json_t *j);

/* A deep copy; NULL when out of memory. */
kiln__json_t *kiln__json_dup(const kiln__json_t *j);

/* Constructors; NULL only when out of memory. */
kiln__json_t *kiln__json_new_null(void);
kiln__json_t *kiln__json_new_bool(bool b);
kiln__json_t *kiln__json_new_int(int64_t i);
kiln__json_t *kiln__json_new_u64(uint64_t u);
kiln__json_t *kiln__json_new_number(double d);
kiln__json_t *kiln__json_new_string(const char *s);               /* copies */
kiln__json_t *kiln__json_new_stringn(const char *s, size_t len);  /* copies */
kiln__json_t *kiln__json_new_array(void);
kiln__json_t *kiln__json_new_object(void);

/* Appends item (taking ownership) to an array; 0 or KILN_EINVAL. */
int kiln__json_append(kiln__json_t *array, kiln__json_t *item);
/* Sets object[key] = item (taking ownership), replacing an existing member in place
 * (order kept) or appending a new one. 0, KILN_EINVAL or KILN_ENOMEM (item freed). */
int kiln__json_set(kiln__json_t *object, const char *key, kiln__json_t *item);
/* Removes and frees object[key]; 0 or KILN_ENOTFOUND. */
int kiln__json_remove(kiln__json_t *object, const char *key);
/* Detaches object[key] and returns it (caller owns), or NULL. */
kiln__json_t *kiln__json_take(kiln__json_t *object, const char *key);

/* Lookups (borrowed results; NULL when absent or when j has another type). */
kiln__json_t *kiln__json_get(const kiln__json_t *object, const char *key);
kiln__json_t *kiln__json_at(const kiln__json_t *array, size_t index);

/* Typed reads with defaults for missing or mistyped members. */
const char *kiln__json_get_string(const kiln__json_t *object, const char *key, const char *dflt);
int64_t kiln__json_get_int(const kiln__json_t *object, const char *key, int64_t dflt);
double kiln__json_get_number(const kiln__json_t *object, const char *key, double dflt);

/* True for INT or NUMBER. */
bool kiln__json_is_number(const kiln__json_t *j);

/* Structural equality (object members compared by key, order ignored; INT 1 equals
 * NUMBER 1.0 as in Python). */
bool kiln__json_equal(const kiln__json_t *a, const kiln__json_t *b);

/* 64-bit structural hash consistent with kiln__json_equal (xxHash3 based). */
uint64_t kiln__json_hash(const kiln__json_t *j, uint64_t seed);

typedef enum kiln__json_style {
    KILN_JSON_COMPACT = 0, /* no spaces, UTF-8 passed through: for the wire */
    KILN_JSON_PYTHON,      /* json.dumps defaults: ", " / ": ", ensure_ascii, NaN */
    KILN_JSON_PRETTY       /* indented by 2 spaces, for people */
} kiln__json_style_t;

/* Serializes j; returns a malloc'd NUL-terminated string (length in *len when len is
 * non-NULL), or NULL when out of memory. Numbers: INT exactly; NUMBER as the shortest
 * text that round-trips (Python repr of a float, e.g. 8.0, 0.1, 1e-05). */
char *kiln__json_dump(const kiln__json_t *j, kiln__json_style_t style, size_t *len);

#endif
