/* A growable byte buffer for building strings. Allocation failure is sticky: once an
 * append fails, `failed` is set, further appends are ignored, and the caller checks once
 * at the end. */
#ifndef KILN_UTIL_SBUF_H
#define KILN_UTIL_SBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct kiln__sbuf {
    char *data;     /* owned; always NUL-terminated when len > 0 or after sbuf_cstr */
    size_t len;
    size_t cap;
    bool failed;    /* an allocation failed */
} kiln__sbuf_t;

#define KILN_SBUF_INIT {0, 0, 0, false}

void kiln__sbuf_append(kiln__sbuf_t *b, const void *data, size_t len);
void kiln__sbuf_puts(kiln__sbuf_t *b, const char *s);
void kiln__sbuf_putc(kiln__sbuf_t *b, char c);
void kiln__sbuf_printf(kiln__sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A NUL-terminated view of the contents (borrowed; "" when empty). */
const char *kiln__sbuf_cstr(kiln__sbuf_t *b);
/* Hands the buffer to the caller (NULL when an append failed) and resets b. */
char *kiln__sbuf_take(kiln__sbuf_t *b, size_t *len);
void kiln__sbuf_free(kiln__sbuf_t *b);

#endif
