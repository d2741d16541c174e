/* String-keyed hash map (see strmap.h). Open addressing with linear probing; removal
 * shifts the following entries back (no tombstones), so lookups never slow down after
 * many removals. The table stays at most 3/4 full. */
#include "util/strmap.h"

#include <kiln/error.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

typedef struct entry {
    char *key;     /* owned; NULL marks an empty slot */
    void *value;   /* borrowed: the caller's */
    uint64_t hash;
} entry_t;

struct kiln__strmap {
    entry_t *slots; /* owned */
    size_t cap;     /* power of two */
    size_t count;
};

static uint64_t hash_key(const char *key, size_t len)
{
    return XXH3_64bits_withSeed(key, len, 0x73747261706d6170ull);
}

kiln__strmap_t *kiln__strmap_new(void)
{
    kiln__strmap_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cap = 16;
    m->slots = calloc(m->cap, sizeof *m->slots);
    if (!m->slots) {
        free(m);
        return NULL;
    }
    return m;
}

void kiln__strmap_clear(kiln__strmap_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->cap; i++) {
        free(m->slots[i].key);
        m->slots[i].key = NULL;
    }
    m->count = 0;
}

void kiln__strmap_free(kiln__strmap_t *m)
{
    if (!m)
        return;
    kiln__strmap_clear(m);
    free(m->slots);
    free(m);
}

/* The slot holding key, or the empty slot where it would go. */
static size_t find_slot(const kiln__strmap_t *m, const char *key, size_t len, uint64_t h)
{
    size_t mask = m->cap - 1, i = (size_t)h & mask;
    while (m->slots[i].key) {
        const entry_t *e = &m->slots[i];
        if (e->hash == h && strncmp(e->key, key, len) == 0 && e->key[len] == 0)
            return i;
        i = (i + 1) & mask;
    }
    return i;
}

static int grow(kiln__strmap_t *m)
{
    if (m->cap > SIZE_MAX / 2 / sizeof(entry_t))
        return KILN_ENOMEM;
    size_t cap = m->cap * 2, mask = cap - 1;
    entry_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return KILN_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key)
            continue;
        size_t j = (size_t)m->slots[i].hash & mask;
        while (slots[j].key)
            j = (j + 1) & mask;
        slots[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int kiln__strmap_put(kiln__strmap_t *m, const char *key, void *value)
{
    if (!m || !key)
        return KILN_EINVAL;
    size_t len = strlen(key);
    uint64_t h = hash_key(key, len);
    size_t i = find_slot(m, key, len, h);
    if (m->slots[i].key) {
        m->slots[i].value = value;
        return 0;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return KILN_ENOMEM;
    memcpy(copy, key, len + 1);
    if ((m->count + 1) * 4 > m->cap * 3) {
        if (grow(m) != 0) {
            free(copy);
            return KILN_ENOMEM;
        }
        i = find_slot(m, key, len, h);
    }
    m->slots[i] = (entry_t){copy, value, h};
    m->count++;
    return 0;
}

static const entry_t *lookup(const kiln__strmap_t *m, const char *key)
{
    if (!m || !key)
        return NULL;
    size_t len = strlen(key);
    size_t i = find_slot(m, key, len, hash_key(key, len));
    return m->slots[i].key ? &m->slots[i] : NULL;
}

void *kiln__strmap_get(const kiln__strmap_t *m, const char *key)
{
    const entry_t *e = lookup(m, key);
    return e ? e->value : NULL;
}

int kiln__strmap_has(const kiln__strmap_t *m, const char *key)
{
    return lookup(m, key) != NULL;
}

int kiln__strmap_take(kiln__strmap_t *m, const char *key, void **value)
{
    const entry_t *e = lookup(m, key);
    if (!e)
        return KILN_ENOTFOUND;
    size_t mask = m->cap - 1, i = (size_t)(e - m->slots);
    if (value)
        *value = e->value;
    free(m->slots[i].key);
    m->slots[i].key = NULL;
    m->count--;
    /* Backward-shift deletion: move later entries of the probe run into the hole when
     * their home slot does not lie cyclically in (hole, j]. */
    for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t home = (size_t)m->slots[j].hash & mask;
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays)
            continue;
        m->slots[i] = m->slots[j];
        m->slots[j].key = NULL;
        i = j;
    }
    return 0;
}

int kiln__strmap_remove(kiln__strmap_t *m, const char *key)
{
    return kiln__strmap_take(m, key, NULL);
}

size_t kiln__strmap_count(const kiln__strmap_t *m)
{
    return m ? m->count : 0;
}

int kiln__strmap_foreach(const kiln__strmap_t *m,
                         int (*fn)(const char *key, void *value, void *ud), void *ud)
{
    if (!m || !fn)
        return 0;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key)
            continue;
        int rc = fn(m->slots[i].key, m->slots[i].value, ud);
        if (rc)
            return rc;
    }
    return 0;
}
