/* Growable byte buffer (see sbuf.h). */
#include "util/sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(kiln__sbuf_t *b, size_t extra)
{
    if (b->failed)
        return false;
    if (b->len + extra + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) {
        if (cap > ((size_t)-1) / 2) {
            b->failed = true;
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void kiln__sbuf_append(kiln__sbuf_t *b, const void *data, size_t len)
{
    if (!reserve(b, len))
        return;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = 0;
}

void kiln__sbuf_puts(kiln__sbuf_t *b, const char *s)
{
    kiln__sbuf_append(b, s, strlen(s));
}

void kiln__sbuf_putc(kiln__sbuf_t *b, char c)
{
    kiln__sbuf_append(b, &c, 1);
}

void kiln__sbuf_printf(kiln__sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

const char *kiln__sbuf_cstr(kiln__sbuf_t *b)
{
    return b->data && !b->failed ? b->data : "";
}

char *kiln__sbuf_take(kiln__sbuf_t *b, size_t *len)
{
    char *out = NULL;
    if (!b->failed) {
        out = b->data ? b->data : calloc(1, 1);
        if (len)
            *len = b->len;
    } else {
        free(b->data);
    }
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = false;
    return out;
}

void kiln__sbuf_free(kiln__sbuf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = false;
}
