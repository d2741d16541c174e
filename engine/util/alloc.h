/* Counted host allocation: kiln_malloc/kiln_free (public, in the host table) plus the
 * engine's helpers around them. Every block carries a small header holding its size, so
 * the live byte count is exact; a pointer from plain malloc() must never reach kiln_free
 * (copy it with kiln__alloc_memdup first). */
#ifndef KILN_UTIL_ALLOC_H
#define KILN_UTIL_ALLOC_H

#include <kiln/kiln.h>
#include <stddef.h>

/* Bytes currently allocated through kiln_malloc and not yet freed (headers excluded).
 * Any thread. */
size_t kiln__alloc_live_bytes(void);

/* Blocks currently allocated through kiln_malloc and not yet freed. Any thread. */
size_t kiln__alloc_live_blocks(void);

/* A kiln_malloc'd copy of len bytes plus a terminating NUL (so text can be handed out
 * through the public API, whose callers free with kiln_free). NULL when out of memory or
 * when p is NULL with len > 0. */
char *kiln__alloc_memdup(const void *p, size_t len);

/* kiln__alloc_memdup(s, strlen(s)); NULL for a NULL s or when out of memory. */
char *kiln__alloc_strdup(const char *s);

#endif
