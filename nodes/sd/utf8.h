/* UTF-8 decoding and the Unicode character properties the CLIP tokenizer needs: letter and
 * number classes (the \p{L} and \p{N} of the CLIP pre-tokenizer regex), whitespace as the
 * regex engine and as Python see it, decimal digits, NFC normalisation and full lowercasing.
 *
 * Text is handled as arrays of code points. A byte that is not part of valid UTF-8 decodes to
 * SD_UTF8_RAW + byte and encodes back to that same byte, so malformed input passes through
 * byte-level BPE unchanged instead of failing. All functions are pure and thread-safe. */
#ifndef KILN_SD_UTF8_H
#define KILN_SD_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Code points at or above this stand for one invalid byte (SD_UTF8_RAW + byte). */
#define SD_UTF8_RAW 0x110000u

/* Decodes the code point at s[*pos] (pos < len) and advances *pos past it. Overlong forms,
 * surrogates and truncated sequences decode byte by byte as SD_UTF8_RAW + byte. */
uint32_t sd_utf8_next(const char *s, size_t len, size_t *pos);

/* Writes the UTF-8 form of cp (1-4 bytes; one byte for a raw byte) to out; returns its
 * length. */
size_t sd_utf8_put(uint32_t cp, char *out);

/* Decodes len bytes into a new array of code points (*out, freed with free(); never NULL
 * on success, even for len 0). Returns 0 or KILN_ENOMEM. */
int sd_utf8_decode(const char *s, size_t len, uint32_t **out, size_t *n);

/* Number of code points in s (as Python's len() counts them; invalid bytes count one each). */
size_t sd_utf8_count(const char *s, size_t len);

bool sd_uni_is_letter(uint32_t cp);      /* general category L* */
bool sd_uni_is_number(uint32_t cp);      /* general category N* */
bool sd_uni_is_regex_space(uint32_t cp); /* \s of Oniguruma: the White_Space property */
bool sd_uni_is_py_space(uint32_t cp);    /* Python's str.isspace() */

/* The decimal digit value 0-9 of cp (Python's unicodedata.decimal), or -1. */
int sd_uni_decimal(uint32_t cp);

/* NFC (canonical decomposition, canonical ordering, canonical composition) of in[0..n),
 * written to a new array *out (free() it) of *out_n code points. Returns 0 or KILN_ENOMEM. */
int sd_uni_nfc(const uint32_t *in, size_t n, uint32_t **out, size_t *out_n);

/* Full lowercase mapping of in[0..n) as Rust's str::to_lowercase and Python's str.lower()
 * do it: simple mappings, U+0130 to "i\u0307", and Greek capital sigma to final sigma at the
 * end of a word. New array in *out (free() it). Returns 0 or KILN_ENOMEM. */
int sd_uni_lower(const uint32_t *in, size_t n, uint32_t **out, size_t *out_n);

#endif
