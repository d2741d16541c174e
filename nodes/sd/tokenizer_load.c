/* Loading the CLIP tokenizer: a purpose-built reader for the flat vocab.json object and for
 * merges.txt, both checked so that a malformed file gives a clear error instead of a crash,
 * and the hash tables BPE looks symbols and merges up in. */
#include "tokenizer_int.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/error.h"
#include "utf8.h"
#include "sd_err.h"

/* Ids above this are refused: they would only make the id table huge. */
#define MAX_ID (1 << 24)

/* ---- vocab.json: a flat {"token": id, ...} object ------------------------------------- */

typedef struct jreader {
    const char *s;
    size_t len, pos;
    char *err;
    size_t errlen;
} jreader_t;

static int jfail(jreader_t *r, const char *what)
{
    sd_errf(r->err, r->errlen, 0, "vocab.json: byte %zu: %s", r->pos, what);
    return KILN_EPARSE;
}

static void jskip_ws(jreader_t *r)
{
    while (r->pos < r->len && (r->s[r->pos] == ' ' || r->s[r->pos] == '\t' ||
                               r->s[r->pos] == '\n' || r->s[r->pos] == '\r'))
        r->pos++;
}

static int arena_reserve(sd_tokenizer_t *tok, size_t more)
{
    if (tok->strings_len + more <= tok->strings_cap)
        return 0;
    size_t cap = tok->strings_cap ? tok->strings_cap : 1 << 16;
    while (cap < tok->strings_len + more)
        cap *= 2;
    if (cap > UINT32_MAX)
        return KILN_ELIMIT;
    char *p = realloc(tok->strings, cap);
    if (!p)
        return KILN_ENOMEM;
    tok->strings = p;
    tok->strings_cap = cap;
    return 0;
}

static int hex4(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + (uint32_t)d;
    }
    *out = v;
    return 0;
}

/* Reads the \u escape at r->pos (just after the backslash and 'u'), joining surrogate pairs;
 * a lone surrogate is kept in its 3-byte form, as Python's json keeps it in the string. */
static int junicode(jreader_t *r, uint32_t *cp)
{
    if (r->len - r->pos < 4 || hex4(r->s + r->pos, cp) != 0)
        return jfail(r, "bad \\u escape");
    r->pos += 4;
    uint32_t lo;
    if (*cp >= 0xD800 && *cp < 0xDC00 && r->len - r->pos >= 6 && r->s[r->pos] == '\\' &&
        r->s[r->pos + 1] == 'u' && hex4(r->s + r->pos + 2, &lo) == 0 && lo >= 0xDC00 &&
        lo < 0xE000) {
        *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
        r->pos += 6;
    }
    return 0;
}

/* Reads a string (r->pos at the opening quote) into the arena; *off and *len locate it. */
static int jstring(jreader_t *r, sd_tokenizer_t *tok, uint32_t *off, uint32_t *len)
{
    r->pos++;
    size_t start = tok->strings_len;
    for (;;) {
        if (r->pos >= r->len)
            return jfail(r, "unterminated string");
        int rc = arena_reserve(tok, 5);
        if (rc != 0)
            return rc;
        unsigned char c = (unsigned char)r->s[r->pos];
        if (c == '"')
            break;
        if (c < 0x20)
            return jfail(r, "control character in string");
        if (c != '\\') {
            tok->strings[tok->strings_len++] = (char)c;
            r->pos++;
            continue;
        }
        if (++r->pos >= r->len)
            return jfail(r, "unterminated string");
        char e = r->s[r->pos++];
        const char *plain = strchr("\"\\/bfnrt", e);
        if (e == 'u') {
            uint32_t cp;
            if ((rc = junicode(r, &cp)) != 0)
                return rc;
            if (cp >= 0xD800 && cp < 0xE000) { /* lone surrogate: 3-byte form */
                tok->strings[tok->strings_len++] = (char)(0xE0 | (cp >> 12));
                tok->strings[tok->strings_len++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                tok->strings[tok->strings_len++] = (char)(0x80 | (cp & 0x3F));
            } else {
                tok->strings_len += sd_utf8_put(cp, tok->strings + tok->strings_len);
            }
        } else if (e != '\0' && plain) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            tok->strings[tok->strings_len++] = map[plain - "\"\\/bfnrt"];
        } else {
            r->pos--;
            return jfail(r, "bad escape");
        }
    }
    r->pos++;
    *off = (uint32_t)start;
    *len = (uint32_t)(tok->strings_len - start);
    tok->strings[tok->strings_len++] = '\0';
    return 0;
}

static int jid(jreader_t *r, int32_t *id)
{
    size_t start = r->pos;
    bool neg = r->pos < r->len && r->s[r->pos] == '-';
    if (neg)
        r->pos++;
    int64_t v = 0;
    size_t digits = 0;
    while (r->pos < r->len && r->s[r->pos] >= '0' && r->s[r->pos] <= '9') {
        if (v < MAX_ID)
            v = v * 10 + (r->s[r->pos] - '0');
        r->pos++;
        digits++;
    }
    if (digits == 0)
        return jfail(r, "expected an integer id");
    if (r->pos < r->len && strchr(".eE", r->s[r->pos]) && r->s[r->pos] != '\0')
        return jfail(r, "ids must be integers");
    if (neg && v != 0) {
        r->pos = start;
        return jfail(r, "negative id");
    }
    if (v >= MAX_ID) {
        sd_errf(r->err, r->errlen, 0, "vocab.json: byte %zu: id too large", start);
        return KILN_ELIMIT;
    }
    *id = (int32_t)v;
    return 0;
}

static int add_entry(sd_tokenizer_t *tok, uint32_t off, uint32_t len, int32_t id)
{
    if (tok->n_entries == tok->entries_cap) {
        size_t cap = tok->entries_cap ? tok->entries_cap * 2 : 1024;
        sd_tok_entry_t *p = realloc(tok->entries, cap * sizeof *p);
        if (!p)
            return KILN_ENOMEM;
        tok->entries = p;
        tok->entries_cap = cap;
    }
    tok->entries[tok->n_entries++] = (sd_tok_entry_t){off, len, id};
    if (id >= tok->n_ids)
        tok->n_ids = id + 1;
    return 0;
}

static int parse_vocab(sd_tokenizer_t *tok, jreader_t *r)
{
    jskip_ws(r);
    if (r->pos >= r->len || r->s[r->pos] != '{')
        return jfail(r, "expected '{'");
    r->pos++;
    jskip_ws(r);
    if (r->pos < r->len && r->s[r->pos] == '}') {
        r->pos++;
    } else {
        for (;;) {
            uint32_t off, len;
            int32_t id;
            int rc;
            jskip_ws(r);
            if (r->pos >= r->len || r->s[r->pos] != '"')
                return jfail(r, "expected a string key");
            if ((rc = jstring(r, tok, &off, &len)) != 0)
                return rc;
            jskip_ws(r);
            if (r->pos >= r->len || r->s[r->pos] != ':')
                return jfail(r, "expected ':'");
            r->pos++;
            jskip_ws(r);
            if ((rc = jid(r, &id)) != 0 || (rc = add_entry(tok, off, len, id)) != 0)
                return rc;
            jskip_ws(r);
            if (r->pos < r->len && r->s[r->pos] == ',') {
                r->pos++;
                continue;
            }
            if (r->pos < r->len && r->s[r->pos] == '}') {
                r->pos++;
                break;
            }
            return jfail(r, "expected ',' or '}'");
        }
    }
    jskip_ws(r);
    if (r->pos != r->len)
        return jfail(r, "trailing data after the object");
    return 0;
}

/* Builds the string hash and the id table; a repeated key keeps its last id, as Python's
 * json does. */
static int index_vocab(sd_tokenizer_t *tok)
{
    size_t cap = 16;
    while (cap < tok->n_entries * 2)
        cap *= 2;
    tok->vslots = calloc(cap, sizeof *tok->vslots);
    tok->id_entry = malloc(((size_t)tok->n_ids + 1) * sizeof *tok->id_entry);
    if (!tok->vslots || !tok->id_entry)
        return KILN_ENOMEM;
    tok->vmask = cap - 1;
    for (int32_t i = 0; i < tok->n_ids; i++)
        tok->id_entry[i] = -1;
    for (size_t e = 0; e < tok->n_entries; e++) {
        const sd_tok_entry_t *ve = &tok->entries[e];
        const char *s = tok->strings + ve->off;
        size_t i = sd_tok_hash_bytes(s, ve->len) & tok->vmask;
        for (;; i = (i + 1) & tok->vmask) {
            uint32_t o = tok->vslots[i];
            if (o == 0 || (tok->entries[o - 1].len == ve->len &&
                           memcmp(tok->strings + tok->entries[o - 1].off, s, ve->len) == 0))
                break;
        }
        tok->vslots[i] = (uint32_t)e + 1;
        tok->id_entry[ve->id] = (int32_t)e;
    }
    return 0;
}

/* GPT-2's byte-to-unicode table: printable Latin-1 bytes stand for themselves, the other 68
 * bytes for U+0100 onwards in byte order. */
static uint32_t byte_to_unicode(unsigned b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
        return b;
    unsigned n = 0;
    for (unsigned x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255)))
            n++;
    return 256 + n;
}

static int find_specials(sd_tokenizer_t *tok, char *err, size_t errlen)
{
    for (unsigned b = 0; b < 256; b++) {
        char s[8];
        size_t n = sd_utf8_put(byte_to_unicode(b), s);
        memcpy(s + n, "</w>", 4);
        tok->byte_id[b] = sd_tok_vocab_find(tok, s, n);
        tok->byte_eow_id[b] = sd_tok_vocab_find(tok, s, n + 4);
        if (tok->byte_id[b] < 0 || tok->byte_eow_id[b] < 0) {
            sd_errf(err, errlen, 0, "vocab.json: no symbol for byte 0x%02X", b);
            return KILN_EPARSE;
        }
    }
    tok->start_id = sd_tok_vocab_find(tok, "<|startoftext|>", 15);
    tok->end_id = sd_tok_vocab_find(tok, "<|endoftext|>", 13);
    if (tok->start_id < 0 || tok->end_id < 0) {
        sd_errf(err, errlen, 0, "vocab.json: no <|startoftext|> or <|endoftext|> token");
        return KILN_EPARSE;
    }
    return 0;
}

/* ---- merges.txt ----------------------------------------------------------------------- */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Adds the merge "a b" of line `line` with rank `rank`; a repeated pair takes the later
 * rank, as a Python dict (and the Rust tokenizer's map) built from the list does. */
static int add_merge(sd_tokenizer_t *tok, const char *a, size_t alen, const char *b, size_t blen,
                     int32_t rank, size_t line, char *err, size_t errlen)
{
    char small[256];
    char *buf = alen + blen <= sizeof small ? small : malloc(alen + blen);
    if (!buf)
        return KILN_ENOMEM;
    memcpy(buf, a, alen);
    memcpy(buf + alen, b, blen);
    int32_t ia = sd_tok_vocab_find(tok, a, alen), ib = sd_tok_vocab_find(tok, b, blen);
    int32_t io = sd_tok_vocab_find(tok, buf, alen + blen);
    if (buf != small)
        free(buf);
    if (ia < 0 || ib < 0 || io < 0) {
        sd_errf(err, errlen, 0, "merges.txt: line %zu: a symbol or its merge is not in vocab.json",
                line);
        return KILN_EPARSE;
    }
    uint64_t key = ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib;
    size_t i = sd_tok_hash_u64(key) & tok->mmask;
    while (tok->mslots[i].rank >= 0 && tok->mslots[i].key != key)
        i = (i + 1) & tok->mmask;
    tok->mslots[i] = (sd_tok_merge_t){key, rank, io};
    return 0;
}

static int parse_merges(sd_tokenizer_t *tok, const char *s, size_t len, char *err, size_t errlen)
{
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += s[i] == '\n';
    size_t cap = 16;
    while (cap < lines * 2)
        cap *= 2;
    tok->mslots = malloc(cap * sizeof *tok->mslots);
    if (!tok->mslots)
        return KILN_ENOMEM;
    tok->mmask = cap - 1;
    for (size_t i = 0; i < cap; i++)
        tok->mslots[i].rank = -1;
    int32_t rank = 0;
    size_t pos = 0, line = 0;
    while (pos < len) {
        size_t end = pos;
        while (end < len && s[end] != '\n')
            end++;
        line++;
        size_t a = pos, e = end;
        pos = end + 1;
        if (line == 1 && e - a >= 8 && memcmp(s + a, "#version", 8) == 0)
            continue;
        size_t parts[4][2], np = 0;
        for (size_t i = a; i < e;) {
            while (i < e && is_blank(s[i]))
                i++;
            if (i == e)
                break;
            size_t st = i;
            while (i < e && !is_blank(s[i]))
                i++;
            if (np < 4)
                parts[np][0] = st, parts[np][1] = i - st;
            np++;
        }
        if (np == 0)
            continue; /* blank line */
        if (np != 2) {
            sd_errf(err, errlen, 0, "merges.txt: line %zu: expected two symbols", line);
            return KILN_EPARSE;
        }
        int rc = add_merge(tok, s + parts[0][0], parts[0][1], s + parts[1][0], parts[1][1], rank++,
                           line, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int sd_tokenizer_load_mem(const char *vocab_json, size_t vocab_len, const char *merges,
                          size_t merges_len, sd_tokenizer_t **out, char *err, size_t errlen)
{
    if (!out)
        return KILN_EINVAL;
    *out = NULL;
    if ((!vocab_json && vocab_len) || (!merges && merges_len))
        return KILN_EINVAL;
    sd_tokenizer_t *tok = calloc(1, sizeof *tok);
    if (!tok)
        return KILN_ENOMEM;
    jreader_t r = {vocab_json, vocab_len, 0, err, errlen};
    int rc = parse_vocab(tok, &r);
    if (rc == 0)
        rc = index_vocab(tok);
    if (rc == 0)
        rc = find_specials(tok, err, errlen);
    if (rc == 0)
        rc = parse_merges(tok, merges, merges_len, err, errlen);
    if (rc != 0) {
        if (rc == KILN_ENOMEM)
            sd_errf(err, errlen, 0, "out of memory loading the tokenizer");
        sd_tokenizer_free(tok);
        return rc;
    }
    *out = tok;
    return 0;
}

static int read_file(const char *path, char **data, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        sd_errf(err, errlen, 0, "cannot open %s", path);
        return KILN_EIO;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    int rc = buf ? 0 : KILN_ENOMEM;
    while (rc == 0) {
        if (n == cap) {
            char *p = cap < SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!p) {
                rc = KILN_ENOMEM;
                break;
            }
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                sd_errf(err, errlen, 0, "cannot read %s", path);
                rc = KILN_EIO;
            }
            break;
        }
    }
    fclose(f);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *data = buf;
    *len = n;
    return 0;
}

int sd_tokenizer_load(const char *vocab_json_path, const char *merges_path, sd_tokenizer_t **out,
                      char *err, size_t errlen)
{
    if (!out)
        return KILN_EINVAL;
    *out = NULL;
    if (!vocab_json_path || !merges_path)
        return KILN_EINVAL;
    char *vocab = NULL, *merges = NULL;
    size_t vlen = 0, mlen = 0;
    int rc = read_file(vocab_json_path, &vocab, &vlen, err, errlen);
    if (rc == 0)
        rc = read_file(merges_path, &merges, &mlen, err, errlen);
    if (rc == 0)
        rc = sd_tokenizer_load_mem(vocab, vlen, merges, mlen, out, err, errlen);
    free(vocab);
    free(merges);
    return rc;
}

void sd_tokenizer_free(sd_tokenizer_t *tok)
{
    if (!tok)
        return;
    free(tok->strings);
    free(tok->entries);
    free(tok->vslots);
    free(tok->id_entry);
    free(tok->mslots);
    free(tok);
}

int32_t sd_tokenizer_start_id(const sd_tokenizer_t *tok)
{
    return tok->start_id;
}

int32_t sd_tokenizer_end_id(const sd_tokenizer_t *tok)
{
    return tok->end_id;
}

const char *sd_tokenizer_token(const sd_tokenizer_t *tok, int32_t id)
{
    if (id < 0 || id >= tok->n_ids || tok->id_entry[id] < 0)
        return NULL;
    return tok->strings + tok->entries[tok->id_entry[id]].off;
}
