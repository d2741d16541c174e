/* A hash map from NUL-terminated string keys (copied) to void * values (borrowed), with
 * open addressing, linear probing and xxHash3. Iteration order is unspecified. A map is
 * not thread-safe: callers that share one across threads hold their own lock. */
#ifndef KILN_UTIL_STRMAP_H
#define KILN_UTIL_STRMAP_H

#include <stddef.h>

typedef struct kiln__strmap kiln__strmap_t;

/* An empty map; NULL when out of memory. */
kiln__strmap_t *kiln__strmap_new(void);

/* Frees the map and its key copies; values are the caller's (free them first, e.g. with
 * kiln__strmap_foreach). NULL is accepted. */
void kiln__strmap_free(kiln__strmap_t *m);

/* Maps key to value, replacing (not freeing) a previous value. The key is copied.
 * 0, KILN_EINVAL (NULL map or key) or KILN_ENOMEM (the map is unchanged). */
int kiln__strmap_put(kiln__strmap_t *m, const char *key, void *value);

/* The value for key, or NULL when absent (use kiln__strmap_has when NULL is a value). */
void *kiln__strmap_get(const kiln__strmap_t *m, const char *key);

/* 1 when key is present, else 0. */
int kiln__strmap_has(const kiln__strmap_t *m, const char *key);

/* Removes key (the value is not freed); 0 or KILN_ENOTFOUND. */
int kiln__strmap_remove(kiln__strmap_t *m, const char *key);

/* Removes key and returns its value through *value (when non-NULL); 0 or KILN_ENOTFOUND. */
int kiln__strmap_take(kiln__strmap_t *m, const char *key, void **value);

/* Number of keys. */
size_t kiln__strmap_count(const kiln__strmap_t *m);

/* Calls fn for every entry in unspecified order; stops at the first non-zero return and
 * returns it, else 0. fn must not add or remove keys; replacing the value of the key it
 * was given with kiln__strmap_put is allowed (that never moves entries). */
int kiln__strmap_foreach(const kiln__strmap_t *m,
                         int (*fn)(const char *key, void *value, void *ud), void *ud);

/* Removes every key (values are not freed); keeps the table's capacity. */
void kiln__strmap_clear(kiln__strmap_t *m);

#endif
