/* Encoding text with the CLIP tokenizer, step for step as the Hugging Face CLIP tokenizer
 * does it: NFC, lowercase, the special tokens, the CLIP pre-tokenizer regex, then byte-level
 * BPE per piece. BPE merges with a priority queue keyed by (merge rank, position), which
 * gives the same result as the reference "merge the best-ranked pair everywhere, repeat"
 * loop in O(n log n), so a long unbroken run of letters cannot stall a prompt. No result
 * cache: a typical prompt encodes in microseconds, and a shared cache would need a lock. */
#include "tokenizer_int.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/error.h"
#include "utf8.h"

typedef struct idvec {
    int32_t *v; /* owned */
    size_t n, cap;
} idvec_t;

typedef struct heap_item {
    int32_t rank;
    int32_t pos; /* index of the pair's left symbol */
} heap_item_t;

/* Scratch space for BPE, reused from piece to piece within one encode call. */
typedef struct bpe_work {
    int32_t *sym;      /* owned: [cap] symbol id per position, -1 once merged away */
    int32_t *prev;     /* owned: [cap] previous live position or -1 */
    int32_t *next;     /* owned: [cap] next live position or -1 */
    heap_item_t *heap; /* owned: [3 * cap] pending pairs */
    size_t heap_n, cap;
    char *bytes; /* owned: [bytes_cap] the piece as UTF-8 */
    size_t bytes_cap;
} bpe_work_t;

static int idvec_push(idvec_t *v, int32_t id)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->v, cap * sizeof *p);
        if (!p)
            return KILN_ENOMEM;
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = id;
    return 0;
}

static int work_reserve(bpe_work_t *w, size_t n)
{
    if (n <= w->cap)
        return 0;
    if (n > INT32_MAX / 3)
        return KILN_ELIMIT;
    free(w->sym);
    free(w->prev);
    free(w->next);
    free(w->heap);
    w->sym = malloc(n * sizeof *w->sym);
    w->prev = malloc(n * sizeof *w->prev);
    w->next = malloc(n * sizeof *w->next);
    w->heap = malloc(3 * n * sizeof *w->heap);
    w->cap = w->sym && w->prev && w->next && w->heap ? n : 0;
    return w->cap ? 0 : KILN_ENOMEM;
}

static void work_free(bpe_work_t *w)
{
    free(w->sym);
    free(w->prev);
    free(w->next);
    free(w->heap);
    free(w->bytes);
}

static bool heap_less(heap_item_t a, heap_item_t b)
{
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(bpe_work_t *w, heap_item_t it)
{
    size_t i = w->heap_n++;
    while (i > 0 && heap_less(it, w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = it;
}

static heap_item_t heap_pop(bpe_work_t *w)
{
    heap_item_t top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->heap_n)
            break;
        if (c + 1 < w->heap_n && heap_less(w->heap[c + 1], w->heap[c]))
            c++;
        if (!heap_less(w->heap[c], last))
            break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    w->heap[i] = last;
    return top;
}

/* Queues the pair starting at live position p if the merge table knows it. */
static void push_pair(const sd_tokenizer_t *tok, bpe_work_t *w, int32_t p)
{
    const sd_tok_merge_t *m = sd_tok_merge_find(tok, w->sym[p], w->sym[w->next[p]]);
    if (m)
        heap_push(w, (heap_item_t){m->rank, p});
}

/* BPE of one pre-tokenized piece (its UTF-8 bytes); appends the ids to out. */
static int bpe(const sd_tokenizer_t *tok, bpe_work_t *w, const unsigned char *b, size_t n,
               idvec_t *out)
{
    int rc = work_reserve(w, n);
    if (rc != 0 || n == 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        w->sym[i] = i + 1 == n ? tok->byte_eow_id[b[i]] : tok->byte_id[b[i]];
        w->prev[i] = (int32_t)i - 1;
        w->next[i] = i + 1 == n ? -1 : (int32_t)i + 1;
    }
    w->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++)
        push_pair(tok, w, (int32_t)i);
    while (w->heap_n > 0) {
        heap_item_t it = heap_pop(w);
        int32_t p = it.pos, q = w->next[p];
        /* Entries go stale when a neighbour merges first; the rank identifies the pair. */
        if (w->sym[p] < 0 || q < 0)
            continue;
        const sd_tok_merge_t *m = sd_tok_merge_find(tok, w->sym[p], w->sym[q]);
        if (!m || m->rank != it.rank)
            continue;
        w->sym[p] = m->out;
        w->sym[q] = -1;
        w->next[p] = w->next[q];
        if (w->next[q] >= 0)
            w->prev[w->next[q]] = p;
        if (w->prev[p] >= 0)
            push_pair(tok, w, w->prev[p]);
        if (w->next[p] >= 0)
            push_pair(tok, w, p);
    }
    /* Merges keep the left position, so position 0 always survives. */
    for (int32_t i = 0; i >= 0; i = w->next[i])
        if ((rc = idvec_push(out, w->sym[i])) != 0)
            return rc;
    return 0;
}

static int encode_piece(const sd_tokenizer_t *tok, bpe_work_t *w, const uint32_t *cp, size_t n,
                        idvec_t *out)
{
    if (n > SIZE_MAX / 4 - 1)
        return KILN_ELIMIT;
    if (4 * n > w->bytes_cap) {
        char *p = realloc(w->bytes, 4 * n);
        if (!p)
            return KILN_ENOMEM;
        w->bytes = p;
        w->bytes_cap = 4 * n;
    }
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += sd_utf8_put(cp[i], w->bytes + len);
    return bpe(tok, w, (const unsigned char *)w->bytes, len, out);
}

/* Length of a contraction piece ('s 't 'm 'd 're 've 'll) at v[i], or 0. */
static size_t contraction(const uint32_t *v, size_t i, size_t end)
{
    if (v[i] != '\'' || i + 1 >= end)
        return 0;
    uint32_t a = v[i + 1], b = i + 2 < end ? v[i + 2] : 0;
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return 3;
    return 0;
}

/* The CLIP pre-tokenizer: the matches of
 * 's|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+ are the pieces (tried in that
 * order at each position), whitespace between them is dropped. */
static int pretokenize(const sd_tokenizer_t *tok, bpe_work_t *w, const uint32_t *v, size_t start,
                       size_t end, idvec_t *out)
{
    size_t i = start;
    while (i < end) {
        size_t j = i + contraction(v, i, end);
        if (j == i) {
            uint32_t c = v[i];
            j = i + 1;
            if (sd_uni_is_letter(c)) {
                while (j < end && sd_uni_is_letter(v[j]))
                    j++;
            } else if (sd_uni_is_regex_space(c)) {
                i = j;
                continue;
            } else if (!sd_uni_is_number(c)) {
                while (j < end && !sd_uni_is_letter(v[j]) && !sd_uni_is_number(v[j]) &&
                       !sd_uni_is_regex_space(v[j]))
                    j++;
            }
        }
        int rc = encode_piece(tok, w, v + i, j - i, out);
        if (rc != 0)
            return rc;
        i = j;
    }
    return 0;
}

/* The length of the special token spelled at v[i], with its id in *id; 0 if none. The
 * special tokens are matched in the normalised text, as the tokenizer's added tokens are. */
static size_t special_at(const sd_tokenizer_t *tok, const uint32_t *v, size_t i, size_t n,
                         int32_t *id)
{
    static const char *const names[2] = {"<|startoftext|>", "<|endoftext|>"};
    for (int k = 0; k < 2; k++) {
        size_t len = strlen(names[k]), j = 0;
        while (j < len && i + j < n && v[i + j] == (unsigned char)names[k][j])
            j++;
        if (j == len) {
            *id = k == 0 ? tok->start_id : tok->end_id;
            return len;
        }
    }
    return 0;
}

static int encode_normalized(const sd_tokenizer_t *tok, const uint32_t *v, size_t n, idvec_t *out)
{
    bpe_work_t w = {0};
    size_t seg = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        int32_t id;
        size_t len = v[i] == '<' ? special_at(tok, v, i, n, &id) : 0;
        if (len == 0) {
            i++;
            continue;
        }
        rc = pretokenize(tok, &w, v, seg, i, out);
        if (rc == 0)
            rc = idvec_push(out, id);
        i += len;
        seg = i;
    }
    if (rc == 0)
        rc = pretokenize(tok, &w, v, seg, n, out);
    work_free(&w);
    return rc;
}

int sd_tokenizer_encode(const sd_tokenizer_t *tok, const char *text, size_t len, int32_t **ids,
                        size_t *n)
{
    if (!tok || (!text && len) || !ids || !n)
        return KILN_EINVAL;
    *ids = NULL;
    *n = 0;
    uint32_t *raw = NULL, *nfc = NULL, *low = NULL;
    size_t n_raw, n_nfc, n_low;
    idvec_t out = {0};
    int rc = sd_utf8_decode(text ? text : "", len, &raw, &n_raw);
    if (rc == 0)
        rc = sd_uni_nfc(raw, n_raw, &nfc, &n_nfc);
    if (rc == 0)
        rc = sd_uni_lower(nfc, n_nfc, &low, &n_low);
    if (rc == 0)
        rc = encode_normalized(tok, low, n_low, &out);
    if (rc == 0 && !out.v) {
        out.v = malloc(sizeof *out.v);
        rc = out.v ? 0 : KILN_ENOMEM;
    }
    free(raw);
    free(nfc);
    free(low);
    if (rc != 0) {
        free(out.v);
        return rc;
    }
    *ids = out.v;
    *n = out.n;
    return 0;
}
