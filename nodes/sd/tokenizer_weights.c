/* ComfyUI's prompt handling for SD1.x CLIP (comfy/sd1_clip.py): prompt weighting with
 * parentheses, the split of segments into words before "embedding:" references, and the
 * packing of each word's tokens into 77-token chunks. Every rule, including how unbalanced
 * parentheses and odd weight numbers behave, follows ComfyUI's own code. */
#include "tokenizer.h"

#include <locale.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/error.h"
#include "utf8.h"

/* Nesting deeper than this fails; ComfyUI itself fails near 1000 (Python's recursion limit). */
#define MAX_NESTING 900

/* ---- Python's float() ------------------------------------------------------------------- */

static bool ascii_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static bool digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Case-insensitive comparison of s[0..n) with a lowercase ASCII word. */
static bool word_is(const char *s, size_t n, const char *word)
{
    if (strlen(word) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((s[i] | 0x20) != word[i])
            return false;
    return true;
}

/* Python's float grammar on a stripped ASCII string: [sign] (digits [. [digits]] | . digits)
 * [(e|E) [sign] digits], or [sign] inf|infinity|nan in any case. */
static bool float_syntax(const char *s, size_t n, bool *special)
{
    size_t i = n > 0 && (s[0] == '+' || s[0] == '-');
    *special = word_is(s + i, n - i, "inf") || word_is(s + i, n - i, "infinity") ||
               word_is(s + i, n - i, "nan");
    if (*special)
        return true;
    size_t d = 0;
    for (; i < n && digit(s[i]); i++)
        d++;
    if (i < n && s[i] == '.')
        for (i++; i < n && digit(s[i]); i++)
            d++;
    if (d == 0)
        return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        i += i < n && (s[i] == '+' || s[i] == '-');
        if (i == n || !digit(s[i]))
            return false;
        while (i < n && digit(s[i]))
            i++;
    }
    return i == n;
}

/* Maps the text as Python's float() first does: ASCII stays, other whitespace becomes a
 * space, other decimal digits become ASCII digits; anything else fails. Then applies the
 * underscore rule (only between digits) and drops the underscores. Returns the new length,
 * or -1 when float() would raise. */
static long long float_prepare(const char *s, size_t len, char *buf)
{
    size_t pos = 0, n = 0;
    char prev = '\0';
    while (pos < len) {
        uint32_t cp = sd_utf8_next(s, len, &pos);
        char c;
        if (cp < 127)
            c = (char)cp;
        else if (cp < SD_UTF8_RAW && sd_uni_is_py_space(cp))
            c = ' ';
        else if (cp < SD_UTF8_RAW && sd_uni_decimal(cp) >= 0)
            c = (char)('0' + sd_uni_decimal(cp));
        else
            return -1;
        if (c == '\0' || (c == '_' && !digit(prev)) || (prev == '_' && !digit(c)))
            return -1;
        if (c != '_')
            buf[n++] = c;
        prev = c;
    }
    return prev == '_' ? -1 : (long long)n;
}

/* Python's float(s) for the UTF-8 text s[0..len): 0 with *out set, or -1 where Python would
 * raise ValueError. The value is correctly rounded (strtod, as Python's own dtoa). */
static int py_float(const char *s, size_t len, double *out)
{
    char small[64];
    char *buf = len + 1 <= sizeof small ? small : malloc(len + 1);
    if (!buf)
        return -1;
    long long n = float_prepare(s, len, buf);
    int rc = -1;
    bool special;
    size_t a = 0, b = n > 0 ? (size_t)n : 0;
    while (a < b && ascii_space(buf[a]))
        a++;
    while (b > a && ascii_space(buf[b - 1]))
        b--;
    if (n >= 0 && float_syntax(buf + a, b - a, &special)) {
        bool neg = buf[a] == '-';
        if (special) {
            size_t i = a + (buf[a] == '+' || buf[a] == '-');
            double v = (buf[i] | 0x20) == 'n' ? NAN : INFINITY;
            *out = neg ? -v : v;
        } else {
            /* strtod follows LC_NUMERIC; Python's float() always reads '.'. */
            const char *dp = localeconv()->decimal_point;
            buf[b] = '\0';
            char *dot = memchr(buf + a, '.', b - a);
            if (dot && dp && dp[0] && !dp[1])
                *dot = dp[0];
            *out = strtod(buf + a, NULL);
        }
        rc = 0;
    }
    if (buf != small)
        free(buf);
    return rc;
}

/* ---- token_weights ------------------------------------------------------------------------ */

typedef struct seg_ref {
    size_t off, len; /* in the escaped prompt */
    double weight;
} seg_ref_t;

typedef struct parser {
    const char *text; /* borrowed: the escaped prompt */
    seg_ref_t *segs;  /* owned */
    size_t n, cap;
} parser_t;

static int push_seg(parser_t *p, size_t off, size_t len, double weight)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        seg_ref_t *v = realloc(p->segs, cap * sizeof *v);
        if (!v)
            return KILN_ENOMEM;
        p->segs = v;
        p->cap = cap;
    }
    p->segs[p->n++] = (seg_ref_t){off, len, weight};
    return 0;
}

static int token_weights(parser_t *p, size_t off, size_t len, double weight, int depth);

/* One item of parse_parentheses: a "(...)" group recurses with its weight, anything else is
 * a segment of the current weight. */
static int weigh_item(parser_t *p, size_t off, size_t len, double weight, int depth)
{
    const char *s = p->text + off;
    if (len < 2 || s[0] != '(' || s[len - 1] != ')')
        return push_seg(p, off, len, weight);
    size_t xoff = off + 1, xlen = len - 2;
    double w = weight * 1.1, v;
    const char *colon = NULL;
    for (size_t i = xlen; i > 0; i--) {
        if (p->text[xoff + i - 1] == ':') {
            colon = p->text + xoff + i - 1;
            break;
        }
    }
    size_t xx = colon ? (size_t)(colon - (p->text + xoff)) : 0;
    if (colon && xx > 0 && py_float(colon + 1, xlen - xx - 1, &v) == 0) {
        w = v;
        xlen = xx;
    }
    return token_weights(p, xoff, xlen, w, depth + 1);
}

/* ComfyUI's token_weights(): parse_parentheses splits the text into top-level "(...)" groups
 * and the text between them. A ')' without its '(' drives the nesting count negative, after
 * which ComfyUI keeps treating parentheses as text until the count is back at zero; that is
 * reproduced by counting exactly as it does. */
static int token_weights(parser_t *p, size_t off, size_t len, double weight, int depth)
{
    if (depth > MAX_NESTING)
        return KILN_ELIMIT;
    const char *s = p->text + off;
    long long nest = 0;
    size_t start = 0;
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0; i++) {
        if (s[i] == '(') {
            if (nest == 0 && i > start) {
                rc = weigh_item(p, off + start, i - start, weight, depth);
                start = i;
            }
            nest++;
        } else if (s[i] == ')') {
            if (--nest == 0) {
                rc = weigh_item(p, off + start, i + 1 - start, weight, depth);
                start = i + 1;
            }
        }
    }
    if (rc == 0 && start < len)
        rc = weigh_item(p, off + start, len - start, weight, depth);
    return rc;
}

/* escape_important: "\)" and "\(" become the markers "\0\1" and "\0\2". */
static char *escape_important(const char *s, size_t len, size_t *out_len)
{
    char *e = malloc(len + 1);
    if (!e)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\' && i + 1 < len && (s[i + 1] == ')' || s[i + 1] == '(')) {
            e[n++] = '\0';
            e[n++] = s[++i] == ')' ? '\1' : '\2';
        } else {
            e[n++] = s[i];
        }
    }
    *out_len = n;
    return e;
}

/* unescape_important: the markers become plain parentheses. */
static char *unescape_important(const char *s, size_t len, size_t *out_len)
{
    char *u = malloc(len + 1);
    if (!u)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\0' && i + 1 < len && (s[i + 1] == '\1' || s[i + 1] == '\2'))
            u[n++] = s[++i] == '\1' ? ')' : '(';
        else
            u[n++] = s[i];
    }
    u[n] = '\0';
    *out_len = n;
    return u;
}

int sd_prompt_parse_weights(const char *prompt, size_t len, sd_prompt_segment_t **segs, size_t *n)
{
    if (!segs || !n || (!prompt && len))
        return KILN_EINVAL;
    *segs = NULL;
    *n = 0;
    size_t elen;
    char *esc = escape_important(prompt ? prompt : "", len, &elen);
    if (!esc)
        return KILN_ENOMEM;
    parser_t p = {esc, NULL, 0, 0};
    int rc = token_weights(&p, 0, elen, 1.0, 0);
    sd_prompt_segment_t *out = NULL;
    if (rc == 0 && !(out = calloc(p.n + 1, sizeof *out)))
        rc = KILN_ENOMEM;
    for (size_t i = 0; rc == 0 && i < p.n; i++) {
        out[i].weight = p.segs[i].weight;
        out[i].text = unescape_important(esc + p.segs[i].off, p.segs[i].len, &out[i].len);
        if (!out[i].text)
            rc = KILN_ENOMEM;
    }
    free(esc);
    free(p.segs);
    if (rc != 0) {
        sd_prompt_segments_free(out, out ? p.n : 0);
        return rc;
    }
    *segs = out;
    *n = p.n;
    return 0;
}

void sd_prompt_segments_free(sd_prompt_segment_t *segs, size_t n)
{
    if (!segs)
        return;
    for (size_t i = 0; i < n; i++)
        free(segs[i].text);
    free(segs);
}
