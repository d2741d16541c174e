/* ComfyUI's SDTokenizer.tokenize_with_weights for SD1.x: weighted segments become words
 * (split only before "embedding:" references), each word is tokenized whole, and the words'
 * tokens are packed into 77-token chunks with ComfyUI's rules for words that do not fit. */
#include "tokenizer.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/error.h"
#include "utf8.h"

#define EMBEDDING_ID "embedding:"
#define EMBEDDING_ID_LEN 10
#define MAX_PROMPT ((size_t)1 << 30)
/* ComfyUI keeps a word whole when it has fewer tokens than this (max_word_length). */
#define MAX_WORD_LENGTH 8

typedef struct packer {
    sd_token_chunks_t *out;
    size_t cap;  /* chunks allocated */
    size_t used; /* positions filled in the last chunk */
    int32_t start_id, end_id;
} packer_t;

static void put(packer_t *p, int32_t id, double weight, int32_t word)
{
    size_t i = (p->out->n_chunks - 1) * SD_CLIP_CHUNK + p->used++;
    p->out->ids[i] = id;
    p->out->weights[i] = weight;
    p->out->word_ids[i] = word;
}

static int new_chunk(packer_t *p)
{
    sd_token_chunks_t *o = p->out;
    if (o->n_chunks == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 1;
        if (cap > SIZE_MAX / (SD_CLIP_CHUNK * sizeof(double)))
            return KILN_ENOMEM;
        int32_t *ids = realloc(o->ids, cap * SD_CLIP_CHUNK * sizeof *ids);
        if (ids)
            o->ids = ids;
        double *w = realloc(o->weights, cap * SD_CLIP_CHUNK * sizeof *w);
        if (w)
            o->weights = w;
        int32_t *wid = realloc(o->word_ids, cap * SD_CLIP_CHUNK * sizeof *wid);
        if (wid)
            o->word_ids = wid;
        if (!ids || !w || !wid)
            return KILN_ENOMEM;
        p->cap = cap;
    }
    o->n_chunks++;
    p->used = 0;
    put(p, p->start_id, 1.0, 0);
    return 0;
}

/* Ends the current chunk: the end token, then end-token padding up to 77 positions. */
static void finish_chunk(packer_t *p)
{
    put(p, p->end_id, 1.0, 0);
    while (p->used < SD_CLIP_CHUNK)
        put(p, p->end_id, 1.0, 0);
}

/* Packs one word's tokens. A word that does not fit in the current chunk (start + 75 + end)
 * either spills over chunk boundaries (8+ tokens) or moves whole to a new chunk. */
static int pack_word(packer_t *p, const int32_t *t, size_t n, double weight, int32_t word)
{
    bool large = n >= MAX_WORD_LENGTH;
    while (n > 0) {
        if (n + p->used > SD_CLIP_CHUNK - 1) {
            size_t room = SD_CLIP_CHUNK - p->used - 1;
            if (large) {
                for (size_t i = 0; i < room; i++)
                    put(p, t[i], weight, word);
                t += room;
                n -= room;
            }
            finish_chunk(p);
            int rc = new_chunk(p);
            if (rc != 0)
                return rc;
        } else {
            for (size_t i = 0; i < n; i++)
                put(p, t[i], weight, word);
            n = 0;
        }
    }
    return 0;
}

typedef struct span {
    const char *s;
    size_t len;
} span_t;

/* Python's str.split() with no argument: the words between runs of whitespace. Returns the
 * number of words; fills up to max of them. */
static size_t py_split(const char *s, size_t len, span_t *words, size_t max)
{
    size_t pos = 0, n = 0;
    while (pos < len) {
        size_t start = pos;
        if (sd_uni_is_py_space(sd_utf8_next(s, len, &pos)))
            continue;
        size_t end = pos;
        while (pos < len && !sd_uni_is_py_space(sd_utf8_next(s, len, &pos)))
            end = pos;
        if (n < max)
            words[n] = (span_t){s + start, end - start};
        n++;
    }
    return n;
}

/* What ComfyUI tokenizes in place of a word "embedding:<rest>" when the embedding does not
 * exist (always, for now): _try_get_embedding's leftover. The first whitespace-separated
 * name is dropped; the other words are joined with single spaces; commas trimmed from the
 * name come back in front of them (sliced the way ComfyUI slices them). An empty result means
 * the word is dropped. ComfyUI raises IndexError for an empty name; kiln drops the word. */
static int embedding_leftover(const char *w, size_t len, char **out, size_t *out_len)
{
    const char *s = w + EMBEDDING_ID_LEN;
    size_t n = len - EMBEDDING_ID_LEN;
    while (n > 0 && s[0] == '\n')
        s++, n--;
    while (n > 0 && s[n - 1] == '\n')
        n--;
    size_t words = py_split(s, n, NULL, 0);
    span_t *v = malloc((words + 1) * sizeof *v);
    char *buf = malloc(n + 2);
    if (!v || !buf) {
        free(v);
        free(buf);
        return KILN_ENOMEM;
    }
    py_split(s, n, v, words);
    size_t k = 0;
    if (words > 0) {
        span_t name = v[0], bare = name;
        while (bare.len > 0 && bare.s[0] == ',')
            bare.s++, bare.len--;
        while (bare.len > 0 && bare.s[bare.len - 1] == ',')
            bare.len--;
        if (bare.len < name.len) {
            /* name[len(stripped):] counts code points from the start of the name. */
            size_t skip = sd_utf8_count(bare.s, bare.len), pos = 0;
            for (size_t i = 0; i < skip; i++)
                sd_utf8_next(name.s, name.len, &pos);
            memcpy(buf, name.s + pos, name.len - pos);
            k = name.len - pos;
            buf[k++] = ' ';
        }
        for (size_t i = 1; i < words; i++) {
            if (i > 1)
                buf[k++] = ' ';
            memcpy(buf + k, v[i].s, v[i].len);
            k += v[i].len;
        }
    }
    free(v);
    *out = buf;
    *out_len = k;
    return 0;
}

typedef struct word_ctx {
    const sd_tokenizer_t *tok;
    packer_t *pack;
    int32_t words; /* words packed so far; the next gets id words + 1 */
} word_ctx_t;

static int add_word(word_ctx_t *c, const char *w, size_t len, double weight)
{
    char *left = NULL;
    if (len >= EMBEDDING_ID_LEN && memcmp(w, EMBEDDING_ID, EMBEDDING_ID_LEN) == 0) {
        c->pack->out->n_missing_embeddings++;
        int rc = embedding_leftover(w, len, &left, &len);
        if (rc != 0)
            return rc;
        w = left;
        if (len == 0) {
            free(left);
            return 0;
        }
    }
    int32_t *ids;
    size_t n;
    int rc = sd_tokenizer_encode(c->tok, w, len, &ids, &n);
    free(left);
    if (rc != 0)
        return rc;
    /* A word with no tokens still takes an id, as ComfyUI appends its empty token list. */
    rc = pack_word(c->pack, ids, n, weight, ++c->words);
    free(ids);
    return rc;
}

/* Splits a segment as re.split(' embedding:|\nembedding:') does (the "embedding:" stays with
 * the word after it) and adds the non-empty words. */
static int add_segment(word_ctx_t *c, const char *s, size_t len, double weight)
{
    size_t start = 0;
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0; i++) {
        if ((s[i] == ' ' || s[i] == '\n') && len - i - 1 >= EMBEDDING_ID_LEN &&
            memcmp(s + i + 1, EMBEDDING_ID, EMBEDDING_ID_LEN) == 0) {
            if (i > start)
                rc = add_word(c, s + start, i - start, weight);
            start = i + 1;
            i += EMBEDDING_ID_LEN;
        }
    }
    if (rc == 0 && len > start)
        rc = add_word(c, s + start, len - start, weight);
    return rc;
}

int sd_tokenize_weighted(const sd_tokenizer_t *tok, const char *prompt, size_t len,
                         sd_token_chunks_t *out)
{
    if (!out)
        return KILN_EINVAL;
    memset(out, 0, sizeof *out);
    if (!tok || (!prompt && len))
        return KILN_EINVAL;
    if (len >= MAX_PROMPT)
        return KILN_ELIMIT;
    sd_prompt_segment_t *segs;
    size_t n_segs;
    int rc = sd_prompt_parse_weights(prompt, len, &segs, &n_segs);
    if (rc != 0)
        return rc;
    packer_t pack = {out, 0, 0, sd_tokenizer_start_id(tok), sd_tokenizer_end_id(tok)};
    word_ctx_t ctx = {tok, &pack, 0};
    rc = new_chunk(&pack);
    for (size_t i = 0; i < n_segs && rc == 0; i++)
        rc = add_segment(&ctx, segs[i].text, segs[i].len, segs[i].weight);
    if (rc == 0)
        finish_chunk(&pack);
    sd_prompt_segments_free(segs, n_segs);
    if (rc != 0)
        sd_token_chunks_free(out);
    return rc;
}

void sd_token_chunks_free(sd_token_chunks_t *chunks)
{
    if (!chunks)
        return;
    free(chunks->ids);
    free(chunks->weights);
    free(chunks->word_ids);
    memset(chunks, 0, sizeof *chunks);
}
