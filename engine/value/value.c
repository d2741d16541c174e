/* Socket values: refcounted INT, FLOAT, STRING, BOOLEAN, tensor and object values, the
 * kiln_value_* functions of the node ABI, and the engine's JSON conversions. A value is
 * one allocation: the header plus, for strings, the bytes, and for tensors and objects,
 * the type name. Values are immutable after construction, so only the refcount is
 * shared state between threads. */
#include "value/value.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct kiln_value {
    atomic_long refcount;
    kiln_value_kind_t kind;
    bool is_u64;                    /* INT beyond INT64_MAX: read u.u */
    union {
        int64_t i;                  /* INT */
        uint64_t u;                 /* INT when is_u64 */
        double f;                   /* FLOAT */
        int b;                      /* BOOL: 0 or 1 */
        kiln_tensor_t *tensor;      /* TENSOR: owned, one reference */
        struct {
            void *ptr;              /* owned: freed with free_fn */
            void (*free_fn)(void *ptr);
        } obj;                      /* OBJECT */
    } u;
    size_t len;                     /* STRING: bytes in text; TENSOR/OBJECT: type name length */
    char text[];                    /* STRING bytes, or the type name; NUL-terminated */
};

static atomic_long live_values;

/* A value of `kind` with room for `len` text bytes copied from `text` (may be NULL when
 * len is 0), one reference, counted as live. */
static kiln_value_t *value_alloc(kiln_value_kind_t kind, const char *text, size_t len)
{
    if (len > SIZE_MAX - sizeof(kiln_value_t) - 1)
        return NULL;
    kiln_value_t *v = malloc(sizeof *v + len + 1);
    if (!v)
        return NULL;
    atomic_init(&v->refcount, 1);
    v->kind = kind;
    v->is_u64 = false;
    memset(&v->u, 0, sizeof v->u);
    v->len = len;
    if (len)
        memcpy(v->text, text, len);
    v->text[len] = '\0';
    atomic_fetch_add(&live_values, 1);
    return v;
}

kiln_value_t *kiln_value_new_int(int64_t i)
{
    kiln_value_t *v = value_alloc(KILN_VALUE_INT, NULL, 0);
    if (v)
        v->u.i = i;
    return v;
}

kiln_value_t *kiln_value_new_u64(uint64_t u)
{
    /* Values that fit int64 are ordinary INTs, so equal numbers look equal. */
    if (u <= (uint64_t)INT64_MAX)
        return kiln_value_new_int((int64_t)u);
    kiln_value_t *v = value_alloc(KILN_VALUE_INT, NULL, 0);
    if (v) {
        v->is_u64 = true;
        v->u.u = u;
    }
    return v;
}

kiln_value_t *kiln_value_new_float(double f)
{
    kiln_value_t *v = value_alloc(KILN_VALUE_FLOAT, NULL, 0);
    if (v)
        v->u.f = f;
    return v;
}

kiln_value_t *kiln_value_new_bool(int b)
{
    kiln_value_t *v = value_alloc(KILN_VALUE_BOOL, NULL, 0);
    if (v)
        v->u.b = b != 0;
    return v;
}

kiln_value_t *kiln_value_new_string(const char *s, size_t len)
{
    if (!s && len > 0)
        return NULL;
    return value_alloc(KILN_VALUE_STRING, s, len);
}

kiln_value_t *kiln_value_new_tensor(const char *type, kiln_tensor_t *t)
{
    if (!type || !t)
        return NULL;
    kiln_value_t *v = value_alloc(KILN_VALUE_TENSOR, type, strlen(type));
    if (!v)
        return NULL;
    kiln_tensor_retain(t);
    v->u.tensor = t;
    return v;
}

kiln_value_t *kiln_value_new_object(const char *type, void *ptr, void (*free_fn)(void *ptr))
{
    kiln_value_t *v = type ? value_alloc(KILN_VALUE_OBJECT, type, strlen(type)) : NULL;
    if (!v) {
        /* Ownership of ptr passed to us with the call, so a failed call must not leak it. */
        if (ptr && free_fn)
            free_fn(ptr);
        return NULL;
    }
    v->u.obj.ptr = ptr;
    v->u.obj.free_fn = free_fn;
    return v;
}

int kiln_value_retain(const kiln_value_t *cv)
{
    if (!cv)
        return KILN_EINVAL;
    /* The refcount is the one mutable field; values are handed around as const. */
    kiln_value_t *v = (kiln_value_t *)cv;
    atomic_fetch_add_explicit(&v->refcount, 1, memory_order_relaxed);
    return 0;
}

static void value_destroy(kiln_value_t *v)
{
    if (v->kind == KILN_VALUE_TENSOR)
        kiln_tensor_release(v->u.tensor);
    else if (v->kind == KILN_VALUE_OBJECT && v->u.obj.free_fn && v->u.obj.ptr)
        v->u.obj.free_fn(v->u.obj.ptr);
    atomic_fetch_sub(&live_values, 1);
    free(v);
}

int kiln_value_release(const kiln_value_t *cv)
{
    if (!cv)
        return 0;
    kiln_value_t *v = (kiln_value_t *)cv;
    long prev = atomic_fetch_sub_explicit(&v->refcount, 1, memory_order_acq_rel);
    if (prev > 1)
        return 0;
    if (prev <= 0) {
        /* Released more often than retained: a bug in the caller. */
        assert(!"kiln_value_release: refcount already zero");
        atomic_fetch_add(&v->refcount, 1);
        return KILN_EINVAL;
    }
    value_destroy(v);
    return 0;
}

kiln_value_kind_t kiln_value_kind(const kiln_value_t *v)
{
    return v ? v->kind : KILN_VALUE_NONE;
}

const char *kiln_value_type(const kiln_value_t *v)
{
    switch (kiln_value_kind(v)) {
    case KILN_VALUE_INT:
        return "INT";
    case KILN_VALUE_FLOAT:
        return "FLOAT";
    case KILN_VALUE_STRING:
        return "STRING";
    case KILN_VALUE_BOOL:
        return "BOOLEAN";
    case KILN_VALUE_TENSOR:
    case KILN_VALUE_OBJECT:
        return v->text;
    default:
        return "NONE";
    }
}

int kiln_value_get_int(const kiln_value_t *v, int64_t *out)
{
    if (!v || !out)
        return KILN_EINVAL;
    if (v->kind != KILN_VALUE_INT)
        return KILN_ETYPE;
    if (v->is_u64)
        return KILN_ERANGE;
    *out = v->u.i;
    return 0;
}

int kiln_value_get_u64(const kiln_value_t *v, uint64_t *out)
{
    if (!v || !out)
        return KILN_EINVAL;
    if (v->kind != KILN_VALUE_INT)
        return KILN_ETYPE;
    if (v->is_u64) {
        *out = v->u.u;
        return 0;
    }
    if (v->u.i < 0)
        return KILN_ERANGE;
    *out = (uint64_t)v->u.i;
    return 0;
}

int kiln_value_get_float(const kiln_value_t *v, double *out)
{
    if (!v || !out)
        return KILN_EINVAL;
    if (v->kind == KILN_VALUE_FLOAT)
        *out = v->u.f;
    else if (v->kind == KILN_VALUE_INT)
        *out = v->is_u64 ? (double)v->u.u : (double)v->u.i;
    else
        return KILN_ETYPE;
    return 0;
}

int kiln_value_get_bool(const kiln_value_t *v, int *out)
{
    if (!v || !out)
        return KILN_EINVAL;
    if (v->kind != KILN_VALUE_BOOL)
        return KILN_ETYPE;
    *out = v->u.b;
    return 0;
}

int kiln_value_get_string(const kiln_value_t *v, const char **s, size_t *len)
{
    if (!v || !s)
        return KILN_EINVAL;
    if (v->kind != KILN_VALUE_STRING)
        return KILN_ETYPE;
    *s = v->text;
    if (len)
        *len = v->len;
    return 0;
}

kiln_tensor_t *kiln_value_get_tensor(const kiln_value_t *v)
{
    return v && v->kind == KILN_VALUE_TENSOR ? v->u.tensor : NULL;
}

void *kiln_value_get_object(const kiln_value_t *v, const char *type)
{
    if (!v || v->kind != KILN_VALUE_OBJECT)
        return NULL;
    if (type && strcmp(type, v->text) != 0)
        return NULL;
    return v->u.obj.ptr;
}

long kiln__value_live_count(void)
{
    return atomic_load(&live_values);
}

size_t kiln__value_bytes(const kiln_value_t *v)
{
    if (!v)
        return 0;
    size_t bytes = sizeof *v + v->len + 1;
    if (v->kind == KILN_VALUE_TENSOR)
        bytes += kiln_tensor_nbytes(v->u.tensor);
    return bytes;
}
