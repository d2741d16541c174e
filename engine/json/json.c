/* The JSON document model: node constructors, ownership (free, dup), member and element
 * access, structural equality and hashing. Parsing lives in json_parse.c and writing in
 * json_dump.c. Object lookups are linear scans (objects in prompts are small); the member
 * index below is used only where a scan would make a whole operation quadratic. */
#include "json/json_int.h"

#include <kiln/error.h>

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* strtod must not depend on the process locale (a "," radix would break "0.5"). */
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale;

static void make_c_locale(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

double kiln__json_strtod(const char *s)
{
    pthread_once(&c_locale_once, make_c_locale);
    return c_locale ? strtod_l(s, NULL, c_locale) : strtod(s, NULL);
}

/* ---- member index --------------------------------------------------------------------- */

uint64_t kiln__json_key_hash(const char *key, size_t len)
{
    return XXH3_64bits_withSeed(key, len, 0x6b696c6e6b657973ull);
}

int kiln__json_index_init(kiln__json_index_t *ix, size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2 && cap < ((size_t)1 << (sizeof(size_t) * 8 - 2)))
        cap *= 2;
    ix->count = 0;
    ix->cap = cap;
    ix->slots = calloc(cap, sizeof *ix->slots);
    return ix->slots ? 0 : KILN_ENOMEM;
}

static void index_place(kiln__json_t **slots, size_t cap, kiln__json_t *member)
{
    size_t i = (size_t)kiln__json_key_hash(member->key, member->key_len) & (cap - 1);
    while (slots[i])
        i = (i + 1) & (cap - 1);
    slots[i] = member;
}

int kiln__json_index_add(kiln__json_index_t *ix, kiln__json_t *member)
{
    /* Keep the load factor at or below one half so probes stay short. */
    if ((ix->count + 1) * 2 > ix->cap) {
        size_t cap = ix->cap * 2;
        kiln__json_t **slots = calloc(cap, sizeof *slots);
        if (!slots)
            return KILN_ENOMEM;
        for (size_t i = 0; i < ix->cap; i++)
            if (ix->slots[i])
                index_place(slots, cap, ix->slots[i]);
        free(ix->slots);
        ix->slots = slots;
        ix->cap = cap;
    }
    index_place(ix->slots, ix->cap, member);
    ix->count++;
    return 0;
}

int kiln__json_index_add_all(kiln__json_index_t *ix, const kiln__json_t *object)
{
    for (kiln__json_t *m = object->child; m; m = m->next) {
        int rc = kiln__json_index_add(ix, m);
        if (rc)
            return rc;
    }
    return 0;
}

kiln__json_t *kiln__json_index_find(const kiln__json_index_t *ix, const char *key, size_t len)
{
    size_t i = (size_t)kiln__json_key_hash(key, len) & (ix->cap - 1);
    while (ix->slots[i]) {
        kiln__json_t *m = ix->slots[i];
        if (m->key_len == len && memcmp(m->key, key, len) == 0)
            return m;
        i = (i + 1) & (ix->cap - 1);
    }
    return NULL;
}

void kiln__json_index_free(kiln__json_index_t *ix)
{
    free(ix->slots);
    ix->slots = NULL;
    ix->cap = ix->count = 0;
}

/* ---- construction and ownership ------------------------------------------------------- */

kiln__json_t *kiln__json_node(kiln__json_type_t type)
{
    kiln__json_t *j = calloc(1, sizeof *j);
    if (j)
        j->type = type;
    return j;
}

/* Frees what a node holds (children, string) but not the node, its key or its siblings. */
static void free_value(kiln__json_t *j)
{
    kiln__json_t *c = j->child;
    while (c) {
        kiln__json_t *next = c->next;
        kiln__json_free(c);
        c = next;
    }
    free(j->str);
    j->child = j->last = NULL;
    j->str = NULL;
    j->count = j->len = 0;
}

void kiln__json_free(kiln__json_t *j)
{
    if (!j)
        return;
    free_value(j);
    free(j->key);
    free(j);
}

void kiln__json_move_value(kiln__json_t *dst, kiln__json_t *src)
{
    free_value(dst);
    dst->type = src->type;
    dst->child = src->child;
    dst->last = src->last;
    dst->count = src->count;
    dst->b = src->b;
    dst->is_u64 = src->is_u64;
    dst->i = src->i;
    dst->u = src->u;
    dst->d = src->d;
    dst->str = src->str;
    dst->len = src->len;
    free(src->key);
    free(src);
}

kiln__json_t *kiln__json_new_null(void)
{
    return kiln__json_node(KILN_JSON_NULL);
}

kiln__json_t *kiln__json_new_bool(bool b)
{
    kiln__json_t *j = kiln__json_node(KILN_JSON_BOOL);
    if (j)
        j->b = b;
    return j;
}

kiln__json_t *kiln__json_new_int(int64_t i)
{
    kiln__json_t *j = kiln__json_node(KILN_JSON_INT);
    if (j) {
        j->i = i;
        j->d = (double)i;
    }
    return j;
}

/* Values that fit int64 are stored as plain INT so that equal values have one form. */
kiln__json_t *kiln__json_new_u64(uint64_t u)
{
    if (u <= (uint64_t)INT64_MAX)
        return kiln__json_new_int((int64_t)u);
    kiln__json_t *j = kiln__json_node(KILN_JSON_INT);
    if (j) {
        j->is_u64 = true;
        j->u = u;
        j->d = (double)u;
    }
    return j;
}

kiln__json_t *kiln__json_new_number(double d)
{
    kiln__json_t *j = kiln__json_node(KILN_JSON_NUMBER);
    if (j)
        j->d = d;
    return j;
}

kiln__json_t *kiln__json_new_stringn(const char *s, size_t len)
{
    kiln__json_t *j = kiln__json_node(KILN_JSON_STRING);
    if (!j)
        return NULL;
    j->str = malloc(len + 1);
    if (!j->str) {
        free(j);
        return NULL;
    }
    if (len)
        memcpy(j->str, s, len);
    j->str[len] = 0;
    j->len = len;
    return j;
}

/* A NULL string is treated as "". */
kiln__json_t *kiln__json_new_string(const char *s)
{
    return kiln__json_new_stringn(s ? s : "", s ? strlen(s) : 0);
}

kiln__json_t *kiln__json_new_array(void)
{
    return kiln__json_node(KILN_JSON_ARRAY);
}

kiln__json_t *kiln__json_new_object(void)
{
    return kiln__json_node(KILN_JSON_OBJECT);
}

static char *dup_bytes(const char *s, size_t len)
{
    char *p = malloc(len + 1);
    if (p) {
        if (len)
            memcpy(p, s, len);
        p[len] = 0;
    }
    return p;
}

kiln__json_t *kiln__json_dup(const kiln__json_t *j)
{
    if (!j)
        return NULL;
    kiln__json_t *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    *c = *j;
    c->next = c->child = c->last = NULL;
    c->key = NULL;
    c->str = NULL;
    c->count = 0;
    if (j->key && !(c->key = dup_bytes(j->key, j->key_len)))
        goto fail;
    if (j->str && !(c->str = dup_bytes(j->str, j->len)))
        goto fail;
    for (const kiln__json_t *k = j->child; k; k = k->next) {
        kiln__json_t *kc = kiln__json_dup(k);
        if (!kc)
            goto fail;
        if (c->last)
            c->last->next = kc;
        else
            c->child = kc;
        c->last = kc;
        c->count++;
    }
    return c;
fail:
    kiln__json_free(c);
    return NULL;
}

/* ---- arrays and objects --------------------------------------------------------------- */

static void link_last(kiln__json_t *parent, kiln__json_t *item)
{
    item->next = NULL;
    if (parent->last)
        parent->last->next = item;
    else
        parent->child = item;
    parent->last = item;
    parent->count++;
}

/* On KILN_EINVAL the caller keeps item. A member name left on item is dropped. */
int kiln__json_append(kiln__json_t *array, kiln__json_t *item)
{
    if (!array || !item || array->type != KILN_JSON_ARRAY || array == item)
        return KILN_EINVAL;
    free(item->key);
    item->key = NULL;
    item->key_len = 0;
    link_last(array, item);
    return 0;
}

static bool key_is(const kiln__json_t *m, const char *key, size_t len)
{
    return m->key_len == len && memcmp(m->key, key, len) == 0;
}

/* On KILN_EINVAL (not an object, NULL key or item) the caller keeps item; on KILN_ENOMEM
 * item has been freed. A replaced member's node is freed and item takes its place. */
int kiln__json_set(kiln__json_t *object, const char *key, kiln__json_t *item)
{
    if (!object || !key || !item || object->type != KILN_JSON_OBJECT || object == item)
        return KILN_EINVAL;
    size_t len = strlen(key);
    char *k = dup_bytes(key, len);
    if (!k) {
        kiln__json_free(item);
        return KILN_ENOMEM;
    }
    free(item->key);
    item->key = k;
    item->key_len = len;
    kiln__json_t *prev = NULL;
    for (kiln__json_t *m = object->child; m; prev = m, m = m->next) {
        if (!key_is(m, key, len))
            continue;
        item->next = m->next;
        if (prev)
            prev->next = item;
        else
            object->child = item;
        if (object->last == m)
            object->last = item;
        m->next = NULL;
        kiln__json_free(m);
        return 0;
    }
    link_last(object, item);
    return 0;
}

/* The member's node is returned with its key still attached (kiln__json_set or
 * kiln__json_append replace or drop it). */
kiln__json_t *kiln__json_take(kiln__json_t *object, const char *key)
{
    if (!object || !key || object->type != KILN_JSON_OBJECT)
        return NULL;
    size_t len = strlen(key);
    kiln__json_t *prev = NULL;
    for (kiln__json_t *m = object->child; m; prev = m, m = m->next) {
        if (!key_is(m, key, len))
            continue;
        if (prev)
            prev->next = m->next;
        else
            object->child = m->next;
        if (object->last == m)
            object->last = prev;
        object->count--;
        m->next = NULL;
        return m;
    }
    return NULL;
}

int kiln__json_remove(kiln__json_t *object, const char *key)
{
    kiln__json_t *m = kiln__json_take(object, key);
    if (!m)
        return KILN_ENOTFOUND;
    kiln__json_free(m);
    return 0;
}

kiln__json_t *kiln__json_get(const kiln__json_t *object, const char *key)
{
    if (!object || !key || object->type != KILN_JSON_OBJECT)
        return NULL;
    size_t len = strlen(key);
    for (kiln__json_t *m = object->child; m; m = m->next)
        if (key_is(m, key, len))
            return m;
    return NULL;
}

kiln__json_t *kiln__json_at(const kiln__json_t *array, size_t index)
{
    if (!array || array->type != KILN_JSON_ARRAY || index >= array->count)
        return NULL;
    kiln__json_t *e = array->child;
    while (e && index--)
        e = e->next;
    return e;
}

const char *kiln__json_get_string(const kiln__json_t *object, const char *key, const char *dflt)
{
    const kiln__json_t *m = kiln__json_get(object, key);
    return m && m->type == KILN_JSON_STRING ? m->str : dflt;
}

/* An integral NUMBER within int64 range is accepted too (20.0 reads as 20); a uint64
 * beyond INT64_MAX is not representable and gives dflt. */
int64_t kiln__json_get_int(const kiln__json_t *object, const char *key, int64_t dflt)
{
    const kiln__json_t *m = kiln__json_get(object, key);
    if (!m)
        return dflt;
    if (m->type == KILN_JSON_INT)
        return m->is_u64 ? dflt : m->i;
    if (m->type == KILN_JSON_NUMBER && m->d == floor(m->d) && m->d >= -9223372036854775808.0 &&
        m->d < 9223372036854775808.0)
        return (int64_t)m->d;
    return dflt;
}

double kiln__json_get_number(const kiln__json_t *object, const char *key, double dflt)
{
    const kiln__json_t *m = kiln__json_get(object, key);
    return kiln__json_is_number(m) ? m->d : dflt;
}

bool kiln__json_is_number(const kiln__json_t *j)
{
    return j && (j->type == KILN_JSON_INT || j->type == KILN_JSON_NUMBER);
}

/* ---- equality and hashing ------------------------------------------------------------- */

/* The exact integer a number node holds, if any: kind 1 = int64 in *i, kind 2 = uint64
 * beyond INT64_MAX in *u, kind 0 = not an integer (fraction, NaN, infinity, too large). */
static int integer_of(const kiln__json_t *j, int64_t *i, uint64_t *u)
{
    if (j->type == KILN_JSON_INT) {
        if (j->is_u64 && j->u > (uint64_t)INT64_MAX) {
            *u = j->u;
            return 2;
        }
        *i = j->is_u64 ? (int64_t)j->u : j->i;
        return 1;
    }
    double d = j->d;
    if (!isfinite(d) || d != floor(d))
        return 0;
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
        *i = (int64_t)d;
        return 1;
    }
    if (d > 0 && d < 18446744073709551616.0) {
        *u = (uint64_t)d;
        return 2;
    }
    return 0;
}

/* Numbers compare by value as Python does (1 == 1.0, 0.0 == -0.0), except that NaN
 * equals NaN here so that a document always equals itself (and its hash is stable). */
static bool numbers_equal(const kiln__json_t *a, const kiln__json_t *b)
{
    int64_t ai = 0, bi = 0;
    uint64_t au = 0, bu = 0;
    int ka = integer_of(a, &ai, &au), kb = integer_of(b, &bi, &bu);
    if (ka || kb)
        return ka == kb && (ka == 1 ? ai == bi : au == bu);
    return a->d == b->d || (isnan(a->d) && isnan(b->d));
}

static bool objects_equal(const kiln__json_t *a, const kiln__json_t *b)
{
    kiln__json_index_t ix = {0};
    bool indexed = a->count > KILN_JSON_INDEX_MIN && kiln__json_index_init(&ix, b->count) == 0;
    if (indexed && kiln__json_index_add_all(&ix, b) != 0) {
        kiln__json_index_free(&ix);
        indexed = false;
    }
    bool eq = true;
    for (const kiln__json_t *m = a->child; m && eq; m = m->next) {
        const kiln__json_t *n = NULL;
        if (indexed) {
            n = kiln__json_index_find(&ix, m->key, m->key_len);
        } else {
            for (n = b->child; n && !key_is(n, m->key, m->key_len); n = n->next) {
            }
        }
        eq = n && kiln__json_equal(m, n);
    }
    kiln__json_index_free(&ix);
    return eq;
}

bool kiln__json_equal(const kiln__json_t *a, const kiln__json_t *b)
{
    if (a == b)
        return true;
    if (!a || !b)
        return false;
    if (kiln__json_is_number(a) && kiln__json_is_number(b))
        return numbers_equal(a, b);
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case KILN_JSON_NULL:
        return true;
    case KILN_JSON_BOOL:
        return a->b == b->b;
    case KILN_JSON_STRING:
        return a->len == b->len && (a->len == 0 || memcmp(a->str, b->str, a->len) == 0);
    case KILN_JSON_ARRAY: {
        if (a->count != b->count)
            return false;
        const kiln__json_t *x = a->child, *y = b->child;
        for (; x && y; x = x->next, y = y->next)
            if (!kiln__json_equal(x, y))
                return false;
        return !x && !y;
    }
    case KILN_JSON_OBJECT:
        return a->count == b->count && objects_equal(a, b);
    default:
        return false;
    }
}

static uint64_t hash_tagged(char tag, const void *data, size_t len, uint64_t seed)
{
    unsigned char buf[1 + 16];
    buf[0] = (unsigned char)tag;
    memcpy(buf + 1, data, len);
    return XXH3_64bits_withSeed(buf, 1 + len, seed);
}

static uint64_t hash_number(const kiln__json_t *j, uint64_t seed)
{
    int64_t i = 0;
    uint64_t u = 0;
    switch (integer_of(j, &i, &u)) {
    case 1:
        return hash_tagged('i', &i, sizeof i, seed);
    case 2:
        return hash_tagged('u', &u, sizeof u, seed);
    default: {
        /* Every NaN hashes alike, since all NaNs compare equal here. */
        uint64_t bits = 0x7ff8000000000000ull;
        if (!isnan(j->d))
            memcpy(&bits, &j->d, sizeof bits);
        return hash_tagged('d', &bits, sizeof bits, seed);
    }
    }
}

/* Arrays fold their elements' hashes in order; objects add up one hash per (key, value)
 * pair, a commutative combination, so member order does not matter. */
uint64_t kiln__json_hash(const kiln__json_t *j, uint64_t seed)
{
    if (!j)
        return hash_tagged('0', "", 0, seed);
    if (kiln__json_is_number(j))
        return hash_number(j, seed);
    switch (j->type) {
    case KILN_JSON_NULL:
        return hash_tagged('n', "", 0, seed);
    case KILN_JSON_BOOL:
        return hash_tagged(j->b ? 't' : 'f', "", 0, seed);
    case KILN_JSON_STRING:
        return XXH3_64bits_withSeed(j->str, j->len, seed ^ 0x5354524e47ull);
    case KILN_JSON_ARRAY: {
        uint64_t h = hash_tagged('a', &j->count, sizeof j->count, seed);
        for (const kiln__json_t *e = j->child; e; e = e->next) {
            uint64_t eh = kiln__json_hash(e, seed);
            h = XXH3_64bits_withSeed(&eh, sizeof eh, h);
        }
        return h;
    }
    case KILN_JSON_OBJECT: {
        uint64_t sum = 0;
        for (const kiln__json_t *m = j->child; m; m = m->next) {
            uint64_t pair[2] = {XXH3_64bits_withSeed(m->key, m->key_len, seed),
                                kiln__json_hash(m, seed)};
            sum += XXH3_64bits_withSeed(pair, sizeof pair, seed);
        }
        uint64_t tail[2] = {sum, (uint64_t)j->count};
        return hash_tagged('o', tail, sizeof tail, seed);
    }
    default:
        return 0;
    }
}
