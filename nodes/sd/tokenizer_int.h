/* The insides of the CLIP tokenizer, shared by tokenizer_load.c (which builds them) and
 * tokenizer.c (which encodes with them). Nothing outside these files includes this. */
#ifndef KILN_SD_TOKENIZER_INT_H
#define KILN_SD_TOKENIZER_INT_H

#include <stdint.h>
#include <string.h>

#include "tokenizer.h"

typedef struct sd_tok_entry {
    uint32_t off, len; /* the token string in tok->strings */
    int32_t id;
} sd_tok_entry_t;

typedef struct sd_tok_merge {
    uint64_t key; /* (left id << 32) | right id */
    int32_t rank; /* line order, 0 = merged first; -1 marks an empty slot */
    int32_t out;  /* id of the merged symbol */
} sd_tok_merge_t;

struct sd_tokenizer {
    char *strings; /* owned: every token string, NUL-terminated */
    size_t strings_len, strings_cap;
    sd_tok_entry_t *entries; /* owned: vocab.json entries in file order */
    size_t n_entries, entries_cap;
    uint32_t *vslots;  /* owned: vocab hash, entry index + 1 (0 = empty) */
    size_t vmask;      /* slot count - 1 (a power of two) */
    int32_t *id_entry; /* owned: [n_ids] entry index of each id, or -1 */
    int32_t n_ids;
    sd_tok_merge_t *mslots;   /* owned: merge hash, open addressing */
    size_t mmask;             /* slot count - 1 (a power of two) */
    int32_t byte_id[256];     /* the symbol of each byte inside a word */
    int32_t byte_eow_id[256]; /* the symbol of each byte ending a word ("x</w>") */
    int32_t start_id, end_id; /* <|startoftext|>, <|endoftext|> */
};

static inline uint64_t sd_tok_hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static inline uint64_t sd_tok_hash_u64(uint64_t x)
{
    x ^= x >> 33; /* the splitmix64 finaliser */
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* The vocabulary id of the token string s[0..len), or -1. */
static inline int32_t sd_tok_vocab_find(const sd_tokenizer_t *tok, const char *s, size_t len)
{
    for (size_t i = sd_tok_hash_bytes(s, len) & tok->vmask;; i = (i + 1) & tok->vmask) {
        uint32_t e = tok->vslots[i];
        if (e == 0)
            return -1;
        const sd_tok_entry_t *ve = &tok->entries[e - 1];
        if (ve->len == len && memcmp(tok->strings + ve->off, s, len) == 0)
            return ve->id;
    }
}

/* The merge of the symbol pair (a, b), or NULL. */
static inline const sd_tok_merge_t *sd_tok_merge_find(const sd_tokenizer_t *tok, int32_t a,
                                                      int32_t b)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t i = sd_tok_hash_u64(key) & tok->mmask;; i = (i + 1) & tok->mmask) {
        const sd_tok_merge_t *m = &tok->mslots[i];
        if (m->rank < 0)
            return NULL;
        if (m->key == key)
            return m;
    }
}

#endif
