/* Internals shared by the files of the JSON module (json.c, json_parse.c, json_dump.c):
 * a hash index over an object's members, used where a linear scan would make work
 * quadratic (duplicate keys while parsing a large object, comparing large objects). */
#ifndef KILN_JSON_JSON_INT_H
#define KILN_JSON_JSON_INT_H

#include "json/json.h"

/* Objects with more members than this get a hash index where speed matters. */
#define KILN_JSON_INDEX_MIN 32

/* An open-addressing set of member nodes keyed by (key, key_len); the nodes are borrowed
 * from the object that owns them. Not thread-safe; lives as long as one operation. */
typedef struct kiln__json_index {
    kiln__json_t **slots; /* owned array of borrowed member pointers; NULL = empty */
    size_t cap;           /* power of two */
    size_t count;
} kiln__json_index_t;

/* Hash of a member key (length-aware: keys may contain NUL bytes). */
uint64_t kiln__json_key_hash(const char *key, size_t len);

/* Prepares an empty index sized for about `expected` members; 0 or KILN_ENOMEM. */
int kiln__json_index_init(kiln__json_index_t *ix, size_t expected);

/* Adds every member of object; 0 or KILN_ENOMEM (the index is then still usable). */
int kiln__json_index_add_all(kiln__json_index_t *ix, const kiln__json_t *object);

/* Adds one member (its key must not be in the index yet); 0 or KILN_ENOMEM. */
int kiln__json_index_add(kiln__json_index_t *ix, kiln__json_t *member);

/* The member whose key equals (key, len), or NULL. */
kiln__json_t *kiln__json_index_find(const kiln__json_index_t *ix, const char *key, size_t len);

void kiln__json_index_free(kiln__json_index_t *ix);

/* strtod in the C locale, whatever the process locale is; thread-safe. */
double kiln__json_strtod(const char *s);

/* Allocates a zeroed node of the given type; NULL when out of memory. */
kiln__json_t *kiln__json_node(kiln__json_type_t type);

/* Frees the value held by dst (children, string) and moves src's value into it, keeping
 * dst's key and sibling link; src's shell (and its key) is freed. Used to let a later
 * duplicate key win while keeping the first one's position. */
void kiln__json_move_value(kiln__json_t *dst, kiln__json_t *src);

#endif
