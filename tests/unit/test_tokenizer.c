/* The CLIP tokenizer and ComfyUI's prompt weighting: every prompt of the sd15-tiny tokens.json
 * fixture (ids, weights and word ids exact), ComfyUI's weighting and chunking quirks (expected
 * values worked out from ComfyUI's sd1_clip.py rules), Unicode normalisation, BPE mechanics on
 * a small hand-made vocabulary, and malformed vocab.json / merges.txt files, which must fail
 * with a message and never crash (run under ASan). */
#include <kiln/error.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../nodes/sd/tokenizer.h"
#include "json/json.h"
#include "runner.h"

#define CLIP_DIR KILN_SHARED_DIR "/fixtures/clip-tokenizer/"
#define TOKENS_JSON KILN_SHARED_DIR "/fixtures/sd15-tiny/tokens.json"

static sd_tokenizer_t *load_clip(void)
{
    sd_tokenizer_t *tok = NULL;
    char err[256] = "";
    int rc = sd_tokenizer_load(CLIP_DIR "vocab.json", CLIP_DIR "merges.txt", &tok, err, sizeof err);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "load: %s (%s)", err, kiln_err_name(rc));
    return tok;
}

static sd_token_chunks_t tokenize(const sd_tokenizer_t *tok, const char *prompt)
{
    sd_token_chunks_t c;
    int rc = sd_tokenize_weighted(tok, prompt, strlen(prompt), &c);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "tokenize \"%s\": %s", prompt, kiln_err_name(rc));
    return c;
}

static void test_load_and_specials(void)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    sd_tokenizer_t *tok = load_clip();
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
    ASSERT_CMP_INT(s * 1000, <, 3000); /* about 15 ms unoptimised; generous for ASan */
    ASSERT_EQ_INT(sd_tokenizer_start_id(tok), 49406);
    ASSERT_EQ_INT(sd_tokenizer_end_id(tok), 49407);
    ASSERT_STR_EQ(sd_tokenizer_token(tok, 2368), "cat</w>");
    ASSERT_STR_EQ(sd_tokenizer_token(tok, 0), "!");
    ASSERT_STR_EQ(sd_tokenizer_token(tok, 49407), "<|endoftext|>");
    ASSERT(sd_tokenizer_token(tok, 49408) == NULL);
    ASSERT(sd_tokenizer_token(tok, -1) == NULL);
    sd_tokenizer_free(tok);
}

static void expect_ids(const sd_tokenizer_t *tok, const char *text, size_t len, const int32_t *want,
                       size_t n_want)
{
    int32_t *ids;
    size_t n;
    ASSERT_EQ_INT(sd_tokenizer_encode(tok, text, len, &ids, &n), 0);
    ASSERT(ids != NULL);
    ASSERT_EQ_INT(n, n_want);
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ_INT(ids[i], want[i]);
    free(ids);
}

#define EXPECT_IDS(tok, text, ...)                                                                 \
    do {                                                                                           \
        static const int32_t want_[] = {__VA_ARGS__};                                              \
        expect_ids(tok, text, sizeof(text) - 1, want_, sizeof want_ / sizeof want_[0]);            \
    } while (0)

static void test_encode(void)
{
    sd_tokenizer_t *tok = load_clip();
    EXPECT_IDS(tok, "a photo of a cat", 320, 1125, 539, 320, 2368);
    EXPECT_IDS(tok, "A PHOTO", 320, 1125); /* lowercased */
    EXPECT_IDS(tok, "e\xcc\x81", 4166);    /* e + U+0301: NFC gives é */
    EXPECT_IDS(tok, "\xc3\xa9", 4166);
    EXPECT_IDS(tok, "it'S", 585, 568);                   /* the 's contraction */
    EXPECT_IDS(tok, "x<|endoftext|>y", 343, 49407, 344); /* special tokens */
    EXPECT_IDS(tok, "supercalifragilisticexpialidocious", 1642, 2857, 13093, 2076, 5868, 26850, 835,
               639, 38466);
    /* Capital sigma at a word end lowercases to final sigma (ς, CF 82), not σ. */
    EXPECT_IDS(tok, "\xce\x9f\xce\x94\xce\x9f\xce\xa3", 138, 123, 138, 112, 138, 123, 139, 480);
    EXPECT_IDS(tok, "\xc3\xbf", 127, 379); /* ÿ as its two UTF-8 bytes */
    EXPECT_IDS(tok, "\xff", 443);          /* an invalid byte as itself */
    int32_t *ids;
    size_t n;
    ASSERT_EQ_INT(sd_tokenizer_encode(tok, " \t\n ", 4, &ids, &n), 0);
    ASSERT(ids != NULL);
    ASSERT_EQ_INT(n, 0);
    free(ids);
    sd_tokenizer_free(tok);
}

/* Compares one tokens.json prompt with our chunks. */
static void check_fixture_prompt(const sd_tokenizer_t *tok, const kiln__json_t *p)
{
    const char *text = kiln__json_get_string(p, "text", NULL);
    ASSERT(text != NULL);
    const kiln__json_t *ids = kiln__json_get(p, "ids"), *w = kiln__json_get(p, "weights");
    const kiln__json_t *wid = kiln__json_get(p, "word_ids");
    ASSERT(ids && w && wid);
    sd_token_chunks_t c = tokenize(tok, text);
    ASSERT_EQ_INT(c.n_chunks, kiln__json_get_int(p, "n_chunks", -1));
    ASSERT_EQ_INT(c.n_chunks, ids->count);
    for (size_t k = 0; k < c.n_chunks; k++) {
        const kiln__json_t *ri = kiln__json_at(ids, k), *rw = kiln__json_at(w, k);
        const kiln__json_t *rd = kiln__json_at(wid, k);
        ASSERT_EQ_INT(ri->count, SD_CLIP_CHUNK);
        for (size_t i = 0; i < SD_CLIP_CHUNK; i++) {
            size_t at = k * SD_CLIP_CHUNK + i;
            ASSERT_EQ_INT(c.ids[at], kiln__json_at(ri, i)->i);
            ASSERT_EQ_INT(c.word_ids[at], kiln__json_at(rd, i)->i);
            ASSERT(c.weights[at] == kiln__json_at(rw, i)->d);
        }
    }
    ASSERT_EQ_INT(c.n_missing_embeddings, 0);
    sd_token_chunks_free(&c);
}

static void test_fixture_prompts(void)
{
    size_t len;
    char *text = kiln_test_read_file(TOKENS_JSON, &len);
    ASSERT(text != NULL);
    kiln__json_t *root = NULL;
    char err[256];
    ASSERT_EQ_INT(kiln__json_parse(text, len, &root, err, sizeof err), 0);
    const kiln__json_t *prompts = kiln__json_get(root, "prompts");
    ASSERT(prompts != NULL);
    ASSERT_EQ_INT(prompts->count, 5);
    sd_tokenizer_t *tok = load_clip();
    for (size_t i = 0; i < prompts->count; i++)
        check_fixture_prompt(tok, kiln__json_at(prompts, i));
    sd_tokenizer_free(tok);
    kiln__json_free(root);
    free(text);
}

typedef struct seg_want {
    const char *text;
    double weight;
} seg_want_t;

static void expect_segments(const char *prompt, const seg_want_t *want, size_t n_want)
{
    sd_prompt_segment_t *s;
    size_t n;
    ASSERT_EQ_INT(sd_prompt_parse_weights(prompt, strlen(prompt), &s, &n), 0);
    ASSERT_EQ_INT(n, n_want);
    for (size_t i = 0; i < n; i++) {
        ASSERT_EQ_INT(s[i].len, strlen(want[i].text));
        ASSERT(memcmp(s[i].text, want[i].text, s[i].len) == 0);
        if (!(s[i].weight == want[i].weight))
            kiln_test_fail(__FILE__, __LINE__, "\"%s\" segment %zu: weight %.17g, want %.17g",
                           prompt, i, s[i].weight, want[i].weight);
    }
    sd_prompt_segments_free(s, n);
}

#define EXPECT_SEGS(prompt, ...)                                                                   \
    do {                                                                                           \
        static const seg_want_t want_[] = {__VA_ARGS__};                                           \
        expect_segments(prompt, want_, sizeof want_ / sizeof want_[0]);                            \
    } while (0)

static void test_prompt_weights(void)
{
    EXPECT_SEGS("(a)", {"a", 1.1});
    EXPECT_SEGS("((a))", {"a", 1.1 * 1.1});
    EXPECT_SEGS("(a:1.5) b", {"a", 1.5}, {" b", 1.0});
    EXPECT_SEGS("((a:2)b)", {"a", 2.0}, {"b", 1.1});
    EXPECT_SEGS("\\(a\\) b", {"(a) b", 1.0}); /* escaped parentheses */
    EXPECT_SEGS("a) (b", {"a) (b", 1.0});     /* a stray ')' */
    EXPECT_SEGS("a) (b (c:1.3) \\(d\\)) e (f", {"a) (b ", 1.0}, {"c", 1.3}, {" (d)) e (f", 1.0});
    EXPECT_SEGS("(a (b)", {"a ", 1.1}, {"(b", 1.1});    /* an unclosed '(' */
    EXPECT_SEGS("(a:1_0)", {"a", 10.0});                /* Python float() syntax */
    EXPECT_SEGS("(a: \xd9\xa1.\xd9\xa5 )", {"a", 1.5}); /* Arabic-Indic digits */
    EXPECT_SEGS("(a:1e3)", {"a", 1000.0});
    EXPECT_SEGS("(a:.5)", {"a", 0.5});
    EXPECT_SEGS("(a:-inf)", {"a", -INFINITY});
    EXPECT_SEGS("(:1.2)", {":1.2", 1.1}); /* a colon at 0 is text */
    EXPECT_SEGS("(a:x)", {"a:x", 1.1});
    EXPECT_SEGS("(a:1__0)", {"a:1__0", 1.1});
    EXPECT_SEGS("(a:1.2:0.5)", {"a:1.2", 0.5}); /* the last colon counts */
    EXPECT_SEGS("(a) (b)", {"a", 1.1}, {" ", 1.0}, {"b", 1.1});

    sd_prompt_segment_t *s;
    size_t n;
    ASSERT_EQ_INT(sd_prompt_parse_weights("()", 2, &s, &n), 0); /* nothing inside: no segment */
    ASSERT_EQ_INT(n, 0);
    sd_prompt_segments_free(s, n);
    ASSERT_EQ_INT(sd_prompt_parse_weights("(a:nan)", 7, &s, &n), 0);
    ASSERT_EQ_INT(n, 1);
    ASSERT(isnan(s[0].weight));
    sd_prompt_segments_free(s, n);
    ASSERT_EQ_INT(sd_prompt_parse_weights("", 0, &s, &n), 0);
    ASSERT_EQ_INT(n, 0);
    sd_prompt_segments_free(s, n);
}

static void test_deep_nesting(void)
{
    enum { DEEP = 1000 };
    char *p = malloc(2 * DEEP + 2);
    ASSERT(p != NULL);
    memset(p, '(', DEEP);
    p[DEEP] = 'x';
    memset(p + DEEP + 1, ')', DEEP);
    sd_prompt_segment_t *s;
    size_t n;
    ASSERT_EQ_INT(sd_prompt_parse_weights(p, 2 * DEEP + 1, &s, &n), KILN_ELIMIT);
    /* 800 levels still parse. */
    ASSERT_EQ_INT(sd_prompt_parse_weights(p + 200, 2 * 800 + 1, &s, &n), 0);
    ASSERT_EQ_INT(n, 1);
    ASSERT_EQ_INT(s[0].len, 1);
    sd_prompt_segments_free(s, n);
    free(p);
}

/* Content positions of a single-chunk result: (position, id, weight, word id). */
typedef struct tok_want {
    int pos;
    int32_t id;
    double weight;
    int32_t word;
} tok_want_t;

static void expect_tokens(const sd_tokenizer_t *tok, const char *prompt, size_t missing,
                          const tok_want_t *want, size_t n_want)
{
    sd_token_chunks_t c = tokenize(tok, prompt);
    ASSERT_EQ_INT(c.n_chunks, 1);
    ASSERT_EQ_INT(c.n_missing_embeddings, missing);
    ASSERT_EQ_INT(c.ids[0], 49406);
    for (size_t i = 0; i < n_want; i++) {
        ASSERT_EQ_INT(c.ids[want[i].pos], want[i].id);
        ASSERT(c.weights[want[i].pos] == want[i].weight);
        ASSERT_EQ_INT(c.word_ids[want[i].pos], want[i].word);
    }
    ASSERT_EQ_INT(c.ids[n_want + 1], 49407);
    for (size_t i = n_want + 1; i < SD_CLIP_CHUNK; i++) {
        ASSERT_EQ_INT(c.ids[i], 49407);
        ASSERT(c.weights[i] == 1.0);
        ASSERT_EQ_INT(c.word_ids[i], 0);
    }
    sd_token_chunks_free(&c);
}

#define EXPECT_TOKENS(tok, prompt, missing, ...)                                                   \
    do {                                                                                           \
        static const tok_want_t want_[] = {__VA_ARGS__};                                           \
        expect_tokens(tok, prompt, missing, want_, sizeof want_ / sizeof want_[0]);                \
    } while (0)

static void test_words_and_embeddings(void)
{
    sd_tokenizer_t *tok = load_clip();
    /* A segment is one word; an empty segment still uses up a word id. */
    EXPECT_TOKENS(tok, "(a) (b)", 0, {1, 320, 1.1, 1}, {2, 321, 1.1, 3});
    EXPECT_TOKENS(tok, "A", 0, {1, 320, 1.0, 1});
    /* Embeddings are not supported: the name is dropped as ComfyUI drops a missing one,
     * and what follows it in the segment becomes a word of its own. */
    EXPECT_TOKENS(tok, "a embedding:foo, b", 1, {1, 320, 1.0, 1}, {2, 267, 1.0, 2},
                  {3, 321, 1.0, 2});
    EXPECT_TOKENS(tok, "x embedding:,,bar,, y", 1, {1, 343, 1.0, 1}, {2, 625, 1.0, 2},
                  {3, 8844, 1.0, 2}, {4, 344, 1.0, 2});
    EXPECT_TOKENS(tok, "embedding-free", 0, {1, 19703, 1.0, 1}, {2, 796, 1.0, 1}, {3, 268, 1.0, 1},
                  {4, 1139, 1.0, 1});
    sd_token_chunks_t c = tokenize(tok, "embedding:foo");
    ASSERT_EQ_INT(c.n_missing_embeddings, 1);
    ASSERT_EQ_INT(c.n_chunks, 1);
    ASSERT_EQ_INT(c.ids[1], 49407);
    sd_token_chunks_free(&c);
    c = tokenize(tok, "a embedding:");
    ASSERT_EQ_INT(c.n_missing_embeddings, 1);
    ASSERT_EQ_INT(c.ids[1], 320);
    ASSERT_EQ_INT(c.ids[2], 49407);
    sd_token_chunks_free(&c);
    sd_tokenizer_free(tok);
}

/* 70 tokens of one word, then a word of 7 (moved whole) or 8 (split) tokens. */
static void test_chunk_boundaries(void)
{
    sd_tokenizer_t *tok = load_clip();
    char prompt[256] = "";
    for (int i = 0; i < 70; i++)
        strcat(prompt, "a ");
    size_t base = strlen(prompt);
    strcpy(prompt + base, "(b c d e f g h)");
    sd_token_chunks_t c = tokenize(tok, prompt);
    ASSERT_EQ_INT(c.n_chunks, 2);
    for (int i = 1; i <= 70; i++)
        ASSERT_EQ_INT(c.word_ids[i], 1);
    for (int i = 71; i < SD_CLIP_CHUNK; i++)
        ASSERT_EQ_INT(c.ids[i], 49407);
    ASSERT_EQ_INT(c.ids[77], 49406);
    for (int i = 0; i < 7; i++) {
        ASSERT_EQ_INT(c.ids[78 + i], 321 + i);
        ASSERT(c.weights[78 + i] == 1.1);
        ASSERT_EQ_INT(c.word_ids[78 + i], 2);
    }
    ASSERT_EQ_INT(c.ids[85], 49407);
    sd_token_chunks_free(&c);

    strcpy(prompt + base, "(b c d e f g h i)");
    c = tokenize(tok, prompt);
    ASSERT_EQ_INT(c.n_chunks, 2);
    for (int i = 0; i < 5; i++)
        ASSERT_EQ_INT(c.ids[71 + i], 321 + i);
    ASSERT_EQ_INT(c.ids[76], 49407);
    ASSERT(c.weights[76] == 1.0);
    ASSERT_EQ_INT(c.ids[77], 49406);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ_INT(c.ids[78 + i], 326 + i);
        ASSERT_EQ_INT(c.word_ids[78 + i], 2);
    }
    ASSERT_EQ_INT(c.ids[81], 49407);
    sd_token_chunks_free(&c);
    sd_tokenizer_free(tok);
}

/* A megabyte without a single space: BPE must stay O(n log n). */
static void test_long_input(void)
{
    sd_tokenizer_t *tok = load_clip();
    size_t len = 1 << 20;
    char *p = malloc(len);
    ASSERT(p != NULL);
    for (size_t i = 0; i < len; i++)
        p[i] = (char)('a' + (i * 7 + i / 13) % 26);
    sd_token_chunks_t c;
    ASSERT_EQ_INT(sd_tokenize_weighted(tok, p, len, &c), 0);
    ASSERT_CMP_INT(c.n_chunks, >, 1000);
    /* One word of 8+ tokens: it fills every chunk to the brim, word id 1 throughout. */
    for (size_t k = 0; k < c.n_chunks; k++) {
        const int32_t *ids = c.ids + k * SD_CLIP_CHUNK, *words = c.word_ids + k * SD_CLIP_CHUNK;
        ASSERT_EQ_INT(ids[0], 49406);
        ASSERT_EQ_INT(words[1], 1);
        if (k + 1 < c.n_chunks) {
            ASSERT_EQ_INT(words[75], 1);
            ASSERT_EQ_INT(ids[76], 49407);
        }
    }
    sd_token_chunks_free(&c);
    free(p);
    sd_tokenizer_free(tok);
}

/* ---- a hand-made vocabulary ------------------------------------------------------------ */

/* The GPT-2 byte-to-unicode symbol of byte b, as UTF-8, JSON-escaped where needed. */
static size_t byte_symbol(unsigned b, char *out)
{
    unsigned cp = b, n = 0;
    int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    if (!printable) {
        for (unsigned x = 0; x < b; x++)
            n += !((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174);
        cp = 256 + n;
    }
    if (cp == '"' || cp == '\\')
        return (size_t)sprintf(out, "\\%c", (char)cp);
    if (cp < 0x80)
        return (size_t)sprintf(out, "%c", (char)cp);
    return (size_t)sprintf(out, "%c%c", (char)(0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F)));
}

/* Bytes (ids 0-255), bytes ending a word (256-511), the specials (512, 513), then extra. */
static char *small_vocab(const char *extra)
{
    char *v = malloc(32768);
    ASSERT(v != NULL);
    size_t n = (size_t)sprintf(v, "{");
    for (unsigned b = 0; b < 256; b++) {
        char sym[8];
        byte_symbol(b, sym);
        n += (size_t)sprintf(v + n, "\"%s\": %u, \"%s</w>\": %u, ", sym, b, sym, b + 256);
    }
    sprintf(v + n, "\"<|startoftext|>\": 512, \"<|endoftext|>\": 513%s}", extra);
    return v;
}

static sd_tokenizer_t *load_small(const char *extra_vocab, const char *merges)
{
    char *v = small_vocab(extra_vocab);
    sd_tokenizer_t *tok = NULL;
    char err[256] = "";
    int rc = sd_tokenizer_load_mem(v, strlen(v), merges, strlen(merges), &tok, err, sizeof err);
    free(v);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "load: %s (%s)", err, kiln_err_name(rc));
    return tok;
}

static void test_bpe_rules(void)
{
    /* Rank order decides: (b, c</w>) is ranked before (a, b). */
    sd_tokenizer_t *tok =
        load_small(", \"bc</w>\": 514, \"ab\": 515", "#version: 0.2\nb c</w>\na b\n");
    EXPECT_IDS(tok, "abc", 'a', 514);
    EXPECT_IDS(tok, "abd", 515, 'd' + 256);
    sd_tokenizer_free(tok);
    /* Equal pairs merge from the left, and a merged symbol merges again. */
    tok =
        load_small(", \"aa\": 514, \"aaa</w>\": 515, \"aa</w>\": 516", "a a\naa a</w>\na a</w>\n");
    EXPECT_IDS(tok, "aaa", 515);
    EXPECT_IDS(tok, "aaaa", 514, 516);
    EXPECT_IDS(tok, "aa aaa", 516, 515);
    sd_tokenizer_free(tok);
}

static void expect_load_error(const char *vocab, const char *merges, int want_rc,
                              const char *want_msg)
{
    sd_tokenizer_t *tok = (sd_tokenizer_t *)1;
    char err[256] = "";
    int rc =
        sd_tokenizer_load_mem(vocab, strlen(vocab), merges, strlen(merges), &tok, err, sizeof err);
    ASSERT_EQ_INT(rc, want_rc);
    ASSERT(tok == NULL);
    ASSERT_STR_CONTAINS(err, want_msg);
}

static void test_malformed_files(void)
{
    char *good = small_vocab("");
    expect_load_error("", "", KILN_EPARSE, "expected '{'");
    expect_load_error("[1, 2]", "", KILN_EPARSE, "expected '{'");
    expect_load_error("{\"a\": 1,}", "", KILN_EPARSE, "expected a string key");
    expect_load_error("{\"a\" 1}", "", KILN_EPARSE, "expected ':'");
    expect_load_error("{\"a\": 1.5}", "", KILN_EPARSE, "integers");
    expect_load_error("{\"a\": -3}", "", KILN_EPARSE, "negative");
    expect_load_error("{\"a\": 99999999999}", "", KILN_ELIMIT, "too large");
    expect_load_error("{\"a\": x}", "", KILN_EPARSE, "integer id");
    expect_load_error("{\"a\\q\": 1}", "", KILN_EPARSE, "bad escape");
    expect_load_error("{\"a\\u12\": 1}", "", KILN_EPARSE, "\\u escape");
    expect_load_error("{\"a\n\": 1}", "", KILN_EPARSE, "control character");
    expect_load_error("{\"a\": 1} x", "", KILN_EPARSE, "trailing data");
    expect_load_error("{\"abc", "", KILN_EPARSE, "unterminated");
    expect_load_error("{\"a\": 1}", "", KILN_EPARSE, "no symbol for byte 0x00");
    expect_load_error(good, "a\n", KILN_EPARSE, "line 1: expected two symbols");
    expect_load_error(good, "#version: 0.2\na b c\n", KILN_EPARSE, "line 2: expected two");
    expect_load_error(good, "a b\n", KILN_EPARSE, "line 1: a symbol or its merge");
    expect_load_error(good, "zz b\n", KILN_EPARSE, "not in vocab.json");

    /* Every truncation of a valid vocab.json fails cleanly. */
    size_t len = strlen(good);
    for (size_t cut = 0; cut < len; cut += 7) {
        sd_tokenizer_t *tok = NULL;
        char err[256] = "";
        int rc = sd_tokenizer_load_mem(good, cut, "", 0, &tok, err, sizeof err);
        ASSERT_EQ_INT(rc, KILN_EPARSE);
        ASSERT(err[0] != '\0');
    }
    free(good);

    sd_tokenizer_t *tok = (sd_tokenizer_t *)1;
    char err[256] = "";
    ASSERT_EQ_INT(
        sd_tokenizer_load("/nonexistent/vocab.json", CLIP_DIR "merges.txt", &tok, err, sizeof err),
        KILN_EIO);
    ASSERT(tok == NULL);
    ASSERT_STR_CONTAINS(err, "/nonexistent/vocab.json");
}

static void test_bad_arguments(void)
{
    sd_tokenizer_t *tok = load_clip();
    sd_token_chunks_t c;
    int32_t *ids;
    size_t n;
    ASSERT_EQ_INT(sd_tokenize_weighted(tok, NULL, 3, &c), KILN_EINVAL);
    ASSERT_EQ_INT(c.n_chunks, 0);
    ASSERT_EQ_INT(sd_tokenize_weighted(NULL, "a", 1, &c), KILN_EINVAL);
    ASSERT_EQ_INT(sd_tokenizer_encode(tok, NULL, 1, &ids, &n), KILN_EINVAL);
    /* NUL bytes are text like any other. */
    ASSERT_EQ_INT(sd_tokenize_weighted(tok, "a\0b", 3, &c), 0);
    ASSERT_EQ_INT(c.ids[1], 320);
    ASSERT_EQ_INT(c.ids[3], 321);
    sd_token_chunks_free(&c);
    sd_token_chunks_free(NULL);
    sd_tokenizer_free(NULL);
    sd_tokenizer_free(tok);
}

KILN_TEST_MAIN(TEST(test_load_and_specials), TEST(test_encode), TEST(test_fixture_prompts),
               TEST(test_prompt_weights), TEST(test_deep_nesting), TEST(test_words_and_embeddings),
               TEST(test_chunk_boundaries), TEST(test_long_input), TEST(test_bpe_rules),
               TEST(test_malformed_files), TEST(test_bad_arguments))
