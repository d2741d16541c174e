/* The output cache: node results (one value list per output slot, plus the node's UI
 * payload) kept across prompts under their cache signature, with ComfyUI's cache modes
 * (classic, lru N, none), a byte budget with least-recently-used eviction, and counters.
 * Every function is thread-safe: lanes' completions and kiln_engine_clear_cache may reach
 * the cache from different threads. */
#ifndef KILN_CACHE_CACHE_H
#define KILN_CACHE_CACHE_H

#include <kiln/kiln.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json/json.h"

/* A node's cache key. Two nodes with equal valid signatures compute the same outputs.
 * A signature that is not `valid` (an is_changed hook failed, or an ancestor's did) never
 * equals anything: such results are never stored nor found. */
typedef struct kiln__sig {
    uint64_t h[2];   /* 128 bits of xxHash3 over the node's immediate inputs */
    bool valid;
} kiln__sig_t;

/* A list of values on one output slot (ComfyUI keeps every output as a list). */
typedef struct kiln__vlist {
    kiln_value_t **items;   /* owned: one reference per item */
    size_t n;
    size_t cap;
} kiln__vlist_t;

/* Appends v, taking over the caller's reference (also on failure, when v is released).
 * 0 or KILN_ENOMEM. */
int kiln__vlist_push(kiln__vlist_t *l, kiln_value_t *v);
/* Releases every item and the array; the list is empty afterwards. */
void kiln__vlist_clear(kiln__vlist_t *l);

/* A node's result: its output lists and its UI payload. Immutable once complete and
 * refcounted, so the cache, the running prompt and later prompts share one copy; any
 * thread may retain or release it. */
typedef struct kiln__outputs {
    atomic_int refs;
    size_t n_slots;
    kiln__vlist_t *slots;   /* owned: n_slots lists */
    kiln__json_t *ui;       /* owned: {key: [json, ...]} or NULL when the node had none */
    size_t bytes;           /* kiln__value_bytes summed over every item (budget accounting) */
} kiln__outputs_t;

/* An empty result with n_slots output lists and one reference; NULL on OOM. */
kiln__outputs_t *kiln__outputs_new(size_t n_slots);
void kiln__outputs_retain(kiln__outputs_t *o);
/* Drops one reference; the last one frees the lists, their values and the UI. NULL is
 * accepted. */
void kiln__outputs_release(kiln__outputs_t *o);
/* Recomputes o->bytes from the items (call once the result is complete). */
void kiln__outputs_measure(kiln__outputs_t *o);

typedef struct kiln__cache kiln__cache_t;

/* A new cache. lru_size: entries kept in KILN_CACHE_LRU mode (0 = no count limit there);
 * byte_budget: bytes of values kept in any mode (0 = no byte limit). NULL on OOM. */
kiln__cache_t *kiln__cache_new(kiln_cache_mode_t mode, size_t lru_size, size_t byte_budget);
/* Releases every entry; NULL is accepted. */
void kiln__cache_free(kiln__cache_t *c);

kiln_cache_mode_t kiln__cache_mode(const kiln__cache_t *c);

/* The result stored under sig, retained for the caller (release it), or NULL. A hit makes
 * the entry the most recently used one. Invalid signatures never hit. */
kiln__outputs_t *kiln__cache_get(kiln__cache_t *c, const kiln__sig_t *sig);

/* True when sig has an entry (no recency update). */
bool kiln__cache_has(kiln__cache_t *c, const kiln__sig_t *sig);

/* Stores o under sig (the cache takes its own reference; the caller keeps its one),
 * replacing an older entry, then evicts least-recently-used entries beyond the LRU count
 * and the byte budget. A result larger than the whole budget is refused (counted as an
 * eviction) without touching other entries; an invalid signature stores nothing.
 * 0 or KILN_ENOMEM. */
int kiln__cache_put(kiln__cache_t *c, const kiln__sig_t *sig, kiln__outputs_t *o);

/* Removes sig's entry if present (KILN_CACHE_NONE drops a result once its consumers ran).
 * Counted as an eviction. */
void kiln__cache_drop(kiln__cache_t *c, const kiln__sig_t *sig);

/* Called when a prompt starts, with the signatures of all its nodes. Classic: evicts
 * every entry whose signature is not among sigs. None: drops everything. LRU: nothing. */
void kiln__cache_begin_prompt(kiln__cache_t *c, const kiln__sig_t *sigs, size_t n);

/* Called when a prompt ends. None: drops everything. Others: nothing. */
void kiln__cache_end_prompt(kiln__cache_t *c);

/* Drops every entry (POST /free); not counted as evictions. */
void kiln__cache_clear(kiln__cache_t *c);

/* Counters for kiln_engine_stat. */
size_t kiln__cache_entries(kiln__cache_t *c);
size_t kiln__cache_bytes(kiln__cache_t *c);
uint64_t kiln__cache_evictions(kiln__cache_t *c);

#endif
