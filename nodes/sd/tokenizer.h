/* The CLIP byte-level BPE tokenizer of Stable Diffusion 1.x, and ComfyUI's prompt weighting
 * on top of it: what CLIPTextEncode does to a prompt before the text encoder runs.
 *
 *   sd_tokenizer_t *tok;
 *   char err[256];
 *   if (sd_tokenizer_load("vocab.json", "merges.txt", &tok, err, sizeof err) != 0) ...
 *   sd_token_chunks_t chunks;
 *   if (sd_tokenize_weighted(tok, prompt, strlen(prompt), &chunks) == 0) {
 *       // chunks.ids / weights / word_ids: chunks.n_chunks rows of SD_CLIP_CHUNK entries
 *       sd_token_chunks_free(&chunks);
 *   }
 *   sd_tokenizer_free(tok);
 *
 * Text handling follows the tokenizer ComfyUI gets from transformers 5 (the Rust "fast"
 * CLIPTokenizer): NFC, lowercasing, the special tokens, the CLIP pre-tokenizer regex
 * 's|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+ and BPE over the UTF-8 bytes. (The
 * slow Python tokenizer of transformers 4 without ftfy also splits CJK ideographs apart and
 * drops control characters; kiln does not.)
 *
 * Threads: a loaded tokenizer is immutable; any number of threads may encode with it at once. */
#ifndef KILN_SD_TOKENIZER_H
#define KILN_SD_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

/* Positions per text-encoder chunk: start token, up to 75 content tokens, end token, padding. */
#define SD_CLIP_CHUNK 77

typedef struct sd_tokenizer sd_tokenizer_t;

/* Loads a tokenizer from a vocab.json ({"token": id, ...}) and a merges.txt (an optional
 * "#version" line, then one "left right" merge per line, highest priority first). On failure
 * returns KILN_EIO (unreadable file), KILN_EPARSE (malformed file; err says where and why),
 * KILN_ELIMIT (ids beyond 2^24) or KILN_ENOMEM, and *out is NULL. err may be NULL. */
int sd_tokenizer_load(const char *vocab_json_path, const char *merges_path, sd_tokenizer_t **out,
                      char *err, size_t errlen);

/* The same from memory: the buffers are only read during the call. */
int sd_tokenizer_load_mem(const char *vocab_json, size_t vocab_len, const char *merges,
                          size_t merges_len, sd_tokenizer_t **out, char *err, size_t errlen);

/* Frees a tokenizer (NULL is fine). */
void sd_tokenizer_free(sd_tokenizer_t *tok);

/* The ids of <|startoftext|> and <|endoftext|> (49406 and 49407 for CLIP). */
int32_t sd_tokenizer_start_id(const sd_tokenizer_t *tok);
int32_t sd_tokenizer_end_id(const sd_tokenizer_t *tok);

/* The token string of an id in the vocabulary's byte-to-unicode spelling ("cat</w>"), or NULL
 * for an unknown id. Borrowed from tok. */
const char *sd_tokenizer_token(const sd_tokenizer_t *tok, int32_t id);

/* Tokenizes text[0..len) as the Hugging Face tokenizer does for tokenizer(text)["input_ids"],
 * without the start and end tokens: NFC, lowercase, special tokens, regex split, BPE. The ids
 * go to a new array *ids (free() it; non-NULL even when *n is 0). Bytes that are not valid
 * UTF-8 are tokenized as the bytes they are. Returns 0 or KILN_ENOMEM. */
int sd_tokenizer_encode(const sd_tokenizer_t *tok, const char *text, size_t len, int32_t **ids,
                        size_t *n);

/* One weighted segment of a prompt, as ComfyUI's token_weights() splits it. */
typedef struct sd_prompt_segment {
    char *text;    /* owned, NUL-terminated (may also contain NULs within len) */
    size_t len;    /* bytes */
    double weight; /* 1.0, ×1.1 per "(...)" level, or the number of "(text:number)" */
} sd_prompt_segment_t;

/* Splits a prompt into weighted segments exactly as ComfyUI's escape_important,
 * token_weights/parse_parentheses and unescape_important do: "(a)" multiplies the weight by
 * 1.1, "(a:1.3)" sets it to 1.3 (the number read as Python's float() reads it), nesting
 * multiplies, "\(" and "\)" are literal parentheses, and unbalanced parentheses are kept as
 * text the way ComfyUI keeps them. Empty segments are kept (they still count as words).
 * On success *segs (free with sd_prompt_segments_free) holds *n segments. Returns 0,
 * KILN_ENOMEM, or KILN_ELIMIT for nesting deeper than 900 levels. */
int sd_prompt_parse_weights(const char *prompt, size_t len, sd_prompt_segment_t **segs, size_t *n);
void sd_prompt_segments_free(sd_prompt_segment_t *segs, size_t n);

/* What CLIPTextEncode feeds the SD1.x text encoder: n_chunks rows of SD_CLIP_CHUNK
 * positions. Start, end and padding positions have weight 1.0 and word id 0; content tokens
 * carry their segment's weight and their word's 1-based index. */
typedef struct sd_token_chunks {
    size_t n_chunks;
    int32_t *ids;      /* owned: [n_chunks, SD_CLIP_CHUNK] */
    double *weights;   /* owned: [n_chunks, SD_CLIP_CHUNK] */
    int32_t *word_ids; /* owned: [n_chunks, SD_CLIP_CHUNK] */
    /* "embedding:name" references that were dropped. Textual-inversion embeddings are not
     * supported yet, so every reference behaves as ComfyUI behaves for a missing file: the
     * name is skipped (with any text after it in the word kept), and the caller may warn. */
    size_t n_missing_embeddings;
} sd_token_chunks_t;

/* ComfyUI's SDTokenizer.tokenize_with_weights(prompt, return_word_ids=True) for SD1.x:
 * weighted segments (sd_prompt_parse_weights), each split into words only before
 * "embedding:" references, each word tokenized whole (sd_tokenizer_encode), then packed into
 * 77-token chunks: a word of 8 or more tokens is split across chunks, a shorter one that does
 * not fit moves whole to the next chunk and the current chunk is padded; an empty prompt gives
 * one chunk. On success fills *out (free with sd_token_chunks_free); on failure *out is
 * zeroed. Returns 0, KILN_EINVAL (NULL arguments), KILN_ENOMEM or KILN_ELIMIT (see above, or
 * a prompt of 1 GiB or more). */
int sd_tokenize_weighted(const sd_tokenizer_t *tok, const char *prompt, size_t len,
                         sd_token_chunks_t *out);
void sd_token_chunks_free(sd_token_chunks_t *chunks);

#endif
