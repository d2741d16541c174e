/* Node results as the scheduler and the cache share them: value lists per output slot
 * plus the UI payload, refcounted so that one result may live in the cache, in a running
 * prompt and in the next prompt at once without copies. */
#include "cache/cache.h"

#include <stdlib.h>

#include "value/value.h"

int kiln__vlist_push(kiln__vlist_t *l, kiln_value_t *v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        kiln_value_t **items = realloc(l->items, cap * sizeof *items);
        if (!items) {
            kiln_value_release(v);
            return KILN_ENOMEM;
        }
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = v;
    return 0;
}

void kiln__vlist_clear(kiln__vlist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        kiln_value_release(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = l->cap = 0;
}

kiln__outputs_t *kiln__outputs_new(size_t n_slots)
{
    kiln__outputs_t *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    if (n_slots) {
        o->slots = calloc(n_slots, sizeof *o->slots);
        if (!o->slots) {
            free(o);
            return NULL;
        }
    }
    o->n_slots = n_slots;
    atomic_init(&o->refs, 1);
    return o;
}

void kiln__outputs_retain(kiln__outputs_t *o)
{
    atomic_fetch_add(&o->refs, 1);
}

void kiln__outputs_release(kiln__outputs_t *o)
{
    if (!o || atomic_fetch_sub(&o->refs, 1) != 1)
        return;
    for (size_t i = 0; i < o->n_slots; i++)
        kiln__vlist_clear(&o->slots[i]);
    free(o->slots);
    kiln__json_free(o->ui);
    free(o);
}

void kiln__outputs_measure(kiln__outputs_t *o)
{
    size_t bytes = 0;
    for (size_t s = 0; s < o->n_slots; s++)
        for (size_t i = 0; i < o->slots[s].n; i++)
            bytes += kiln__value_bytes(o->slots[s].items[i]);
    o->bytes = bytes;
}
