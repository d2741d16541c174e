/* Dynamic prompts: comment stripping and {a|b} choice expansion exactly as the editor
 * does it before queueing (see dynprompt.h), with a seeded PRNG in place of Math.random.
 * Options are always contiguous slices of the text, so a group is parsed twice (count,
 * then locate the chosen slice) instead of being copied into a list. */
#include "graph/dynprompt.h"

#include <kiln/error.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/sbuf.h"

typedef struct rng {
    uint64_t state;
} rng_t;

/* splitmix64: small, fast and well mixed; enough for picking options. */
static uint64_t rng_next(rng_t *r)
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* floor(random() * n) with random() in [0, 1), as the editor computes the index. */
static size_t rng_pick(rng_t *r, size_t n)
{
    double u = (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    size_t k = (size_t)(u * (double)n);
    return k < n ? k : n - 1;
}

/* Length of a line terminator starting at s[i] as JavaScript's "." sees it (\n, \r,
 * U+2028, U+2029), or 0. */
static size_t line_end_len(const char *s, size_t n, size_t i)
{
    if (s[i] == '\n' || s[i] == '\r')
        return 1;
    if (i + 2 < n && (unsigned char)s[i] == 0xe2 && (unsigned char)s[i + 1] == 0x80 &&
        ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9))
        return 3;
    return 0;
}

/* The editor's /\/\*[\s\S]*?\*\/|\/\/.* /g replaced by "". Once a search for a closing
 * "*" "/" has failed, no later block comment can close either, which keeps a text full
 * of unclosed openers linear. */
static void strip_comments(const char *s, size_t n, kiln__sbuf_t *out)
{
    bool no_close = false;
    size_t i = 0;
    while (i < n) {
        if (s[i] == '/' && i + 1 < n && s[i + 1] == '*' && !no_close) {
            const char *close = NULL;
            for (size_t j = i + 2; j + 1 < n; j++) {
                if (s[j] == '*' && s[j + 1] == '/') {
                    close = s + j;
                    break;
                }
            }
            if (close) {
                i = (size_t)(close - s) + 2;
                continue;
            }
            no_close = true;
        }
        if (s[i] == '/' && i + 1 < n && s[i + 1] == '/') {
            while (i < n && !line_end_len(s, n, i))
                i++;
            continue;
        }
        kiln__sbuf_putc(out, s[i++]);
    }
}

/* Scans the group whose text starts at t[i] (just after its "{"). Returns the index just
 * past the group (after the closing "}" or at the end of the text), the number of options
 * in *count and, when want < *count, the bounds of option `want` in [*b0, *b1). */
static size_t scan_group(const char *t, size_t n, size_t i, size_t want, size_t *count, size_t *b0,
                         size_t *b1)
{
    size_t depth = 0, k = 0, start = i;
    while (i < n) {
        char c = t[i++];
        if (c == '\\') {
            if (i < n)
                i++;
            continue;
        }
        if (c == '{') {
            depth++;
        } else if (c == '}') {
            if (depth == 0) {
                if (k == want) {
                    *b0 = start;
                    *b1 = i - 1;
                }
                *count = k + 1;
                return i;
            }
            depth--;
        } else if (c == '|' && depth == 0) {
            if (k == want) {
                *b0 = start;
                *b1 = i - 1;
            }
            k++;
            start = i;
        }
    }
    if (k == want) {
        *b0 = start;
        *b1 = n;
    }
    *count = k + 1;
    return n;
}

/* The final unescaping of one level: \{ \} \| lose their backslash, scanning left to
 * right as a global regular expression replacement does. */
static void unescape(const char *s, size_t n, kiln__sbuf_t *out)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n && (s[i + 1] == '{' || s[i + 1] == '}' || s[i + 1] == '|')) {
            kiln__sbuf_putc(out, s[i + 1]);
            i++;
            continue;
        }
        kiln__sbuf_putc(out, s[i]);
    }
}

/* One level of processDynamicPrompt: strip, expand groups (recursing into the chosen
 * option), unescape. Appends to out. */
static void process(const char *text, size_t len, rng_t *r, int depth, kiln__sbuf_t *out)
{
    kiln__sbuf_t stripped = KILN_SBUF_INIT, result = KILN_SBUF_INIT;
    strip_comments(text, len, &stripped);
    const char *t = stripped.data ? stripped.data : "";
    size_t n = stripped.len, i = 0;
    while (i < n && !stripped.failed && !result.failed) {
        char c = t[i++];
        if (c == '\\') {
            kiln__sbuf_putc(&result, c);
            if (i < n)
                kiln__sbuf_putc(&result, t[i++]);
        } else if (c == '{') {
            size_t count = 0, b0 = i, b1 = i;
            scan_group(t, n, i, (size_t)-1, &count, &b0, &b1);
            size_t k = rng_pick(r, count);
            i = scan_group(t, n, i, k, &count, &b0, &b1);
            if (depth >= KILN_DYNPROMPT_MAX_DEPTH)
                kiln__sbuf_append(&result, t + b0, b1 - b0);
            else
                process(t + b0, b1 - b0, r, depth + 1, &result);
        } else {
            kiln__sbuf_putc(&result, c);
        }
    }
    if (stripped.failed || result.failed)
        out->failed = true;
    else
        unescape(result.data ? result.data : "", result.len, out);
    kiln__sbuf_free(&stripped);
    kiln__sbuf_free(&result);
}

int kiln__dynprompt_expand(const char *text, size_t len, uint64_t seed, char **out, size_t *out_len)
{
    rng_t r = {seed};
    kiln__sbuf_t buf = KILN_SBUF_INIT;
    process(text ? text : "", text ? len : 0, &r, 0, &buf);
    size_t n = 0;
    char *s = kiln__sbuf_take(&buf, &n);
    if (!s)
        return KILN_ENOMEM;
    *out = s;
    if (out_len)
        *out_len = n;
    return 0;
}

/* FNV-1a over a NUL-terminated string. */
static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; s && *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t kiln__dynprompt_seed(uint64_t seed, const char *node_id, const char *input_name)
{
    rng_t r = {seed ^ fnv1a(node_id)};
    uint64_t a = rng_next(&r);
    r.state = a ^ fnv1a(input_name);
    return rng_next(&r);
}
