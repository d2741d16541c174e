/* UTF-8 and Unicode helpers for the CLIP tokenizer: table lookups over the generated
 * unicode_tables.h, NFC normalisation (UAX #15) and full lowercasing with the final-sigma
 * rule. The tables come from tools/gen_unicode_tables.py. */
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

#include "kiln/error.h"
#include "unicode_tables.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Hangul syllables decompose and compose arithmetically (Unicode ch. 3.12). */
enum {
    HANGUL_S = 0xAC00,
    HANGUL_L = 0x1100,
    HANGUL_V = 0x1161,
    HANGUL_T = 0x11A7,
    HANGUL_LCOUNT = 19,
    HANGUL_VCOUNT = 21,
    HANGUL_TCOUNT = 28,
    HANGUL_NCOUNT = HANGUL_VCOUNT * HANGUL_TCOUNT,
    HANGUL_SCOUNT = HANGUL_LCOUNT * HANGUL_NCOUNT
};

uint32_t sd_utf8_next(const char *s, size_t len, size_t *pos)
{
    const unsigned char *p = (const unsigned char *)s + *pos;
    size_t left = len - *pos;
    unsigned b = p[0];
    uint32_t cp, min;
    size_t n;
    if (b < 0x80) {
        *pos += 1;
        return b;
    } else if (b >= 0xC2 && b <= 0xDF) {
        n = 2, cp = b & 0x1F, min = 0x80;
    } else if (b >= 0xE0 && b <= 0xEF) {
        n = 3, cp = b & 0x0F, min = 0x800;
    } else if (b >= 0xF0 && b <= 0xF4) {
        n = 4, cp = b & 0x07, min = 0x10000;
    } else {
        n = 0, cp = 0, min = 0;
    }
    if (n == 0 || left < n)
        goto raw;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            goto raw;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        goto raw;
    *pos += n;
    return cp;
raw:
    *pos += 1;
    return SD_UTF8_RAW + b;
}

size_t sd_utf8_put(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp >= SD_UTF8_RAW) {
        o[0] = (unsigned char)(cp - SD_UTF8_RAW);
        return 1;
    }
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

int sd_utf8_decode(const char *s, size_t len, uint32_t **out, size_t *n)
{
    /* One code point per byte at most; +1 keeps malloc(0) out of the picture. */
    uint32_t *v = malloc((len + 1) * sizeof *v);
    if (!v)
        return KILN_ENOMEM;
    size_t pos = 0, k = 0;
    while (pos < len)
        v[k++] = sd_utf8_next(s, len, &pos);
    *out = v;
    *n = k;
    return 0;
}

size_t sd_utf8_count(const char *s, size_t len)
{
    size_t pos = 0, k = 0;
    while (pos < len) {
        sd_utf8_next(s, len, &pos);
        k++;
    }
    return k;
}

static bool in_ranges(const sd_uni_range_t *r, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid].lo)
            hi = mid;
        else if (cp > r[mid].hi)
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

bool sd_uni_is_letter(uint32_t cp)
{
    if (cp < 0x80)
        return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    return in_ranges(sd_uni_letter, COUNT(sd_uni_letter), cp);
}

bool sd_uni_is_number(uint32_t cp)
{
    if (cp < 0x80)
        return cp >= '0' && cp <= '9';
    return in_ranges(sd_uni_number, COUNT(sd_uni_number), cp);
}

bool sd_uni_is_regex_space(uint32_t cp)
{
    /* White_Space: stable since Unicode 6.3 and short enough to spell out. */
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

bool sd_uni_is_py_space(uint32_t cp)
{
    return in_ranges(sd_uni_pyspace, COUNT(sd_uni_pyspace), cp);
}

int sd_uni_decimal(uint32_t cp)
{
    if (cp < 0x80)
        return cp >= '0' && cp <= '9' ? (int)(cp - '0') : -1;
    /* Decimal digits come in runs of ten starting at a zero; find the last zero <= cp. */
    size_t lo = 0, hi = COUNT(sd_uni_digit_zero);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sd_uni_digit_zero[mid] <= cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || cp - sd_uni_digit_zero[lo - 1] > 9)
        return -1;
    return (int)(cp - sd_uni_digit_zero[lo - 1]);
}

static unsigned ccc_of(uint32_t cp)
{
    if (cp < 0x300 || cp >= SD_UTF8_RAW)
        return 0;
    size_t lo = 0, hi = COUNT(sd_uni_ccc);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < sd_uni_ccc[mid].lo)
            hi = mid;
        else if (cp > sd_uni_ccc[mid].hi)
            lo = mid + 1;
        else
            return sd_uni_ccc[mid].ccc;
    }
    return 0;
}

/* Appends the full canonical decomposition of cp to out (room for SD_UNI_DECOMP_MAX, at
 * least 3 for Hangul); returns the number written. */
static size_t decompose(uint32_t cp, uint32_t *out)
{
    if (cp >= HANGUL_S && cp < HANGUL_S + HANGUL_SCOUNT) {
        uint32_t s = cp - HANGUL_S, t = s % HANGUL_TCOUNT;
        out[0] = HANGUL_L + s / HANGUL_NCOUNT;
        out[1] = HANGUL_V + (s % HANGUL_NCOUNT) / HANGUL_TCOUNT;
        if (t == 0)
            return 2;
        out[2] = HANGUL_T + t;
        return 3;
    }
    if (cp >= 0xC0 && cp < SD_UTF8_RAW) {
        size_t lo = 0, hi = COUNT(sd_uni_decomp);
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (sd_uni_decomp[mid].cp < cp) {
                lo = mid + 1;
            } else if (sd_uni_decomp[mid].cp > cp) {
                hi = mid;
            } else {
                const sd_uni_decomp_t *d = &sd_uni_decomp[mid];
                memcpy(out, &sd_uni_decomp_data[d->off], d->len * sizeof *out);
                return d->len;
            }
        }
    }
    out[0] = cp;
    return 1;
}

/* The primary composite of the pair (a, b), or 0 when there is none. */
static uint32_t compose_pair(uint32_t a, uint32_t b)
{
    if (a >= HANGUL_L && a < HANGUL_L + HANGUL_LCOUNT && b >= HANGUL_V &&
        b < HANGUL_V + HANGUL_VCOUNT)
        return HANGUL_S + ((a - HANGUL_L) * HANGUL_VCOUNT + (b - HANGUL_V)) * HANGUL_TCOUNT;
    if (a >= HANGUL_S && a < HANGUL_S + HANGUL_SCOUNT && (a - HANGUL_S) % HANGUL_TCOUNT == 0 &&
        b > HANGUL_T && b < HANGUL_T + HANGUL_TCOUNT)
        return a + (b - HANGUL_T);
    size_t lo = 0, hi = COUNT(sd_uni_compose);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const sd_uni_compose_t *c = &sd_uni_compose[mid];
        if (c->a < a || (c->a == a && c->b < b))
            lo = mid + 1;
        else if (c->a == a && c->b == b)
            return c->c;
        else
            hi = mid;
    }
    return 0;
}

/* Canonical ordering: a stable sort of every run of non-starters by combining class. */
static void reorder(uint32_t *v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        unsigned c = ccc_of(v[i]);
        if (c == 0)
            continue;
        size_t j = i;
        uint32_t cp = v[i];
        while (j > 0 && ccc_of(v[j - 1]) > c) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = cp;
    }
}

/* Canonical composition in place (the UAX #15 algorithm); returns the new length. */
static size_t compose(uint32_t *v, size_t n)
{
    if (n == 0)
        return 0;
    size_t starter = 0, out = 1;
    unsigned last = ccc_of(v[0]);
    if (last != 0)
        last = 256; /* a leading non-starter blocks everything up to the next starter */
    for (size_t i = 1; i < n; i++) {
        uint32_t cp = v[i];
        unsigned c = ccc_of(cp);
        uint32_t comp = compose_pair(v[starter], cp);
        if (comp && (last < c || last == 0)) {
            v[starter] = comp;
            continue;
        }
        if (c == 0)
            starter = out;
        last = c;
        v[out++] = cp;
    }
    return out;
}

int sd_uni_nfc(const uint32_t *in, size_t n, uint32_t **out, size_t *out_n)
{
    bool simple = true;
    for (size_t i = 0; i < n && simple; i++)
        simple = in[i] < 0x300 || in[i] >= SD_UTF8_RAW;
    /* Hangul decomposes to 3 code points; other decompositions to SD_UNI_DECOMP_MAX. */
    size_t per = simple ? 1 : (SD_UNI_DECOMP_MAX > 3 ? SD_UNI_DECOMP_MAX : 3);
    if (n > (SIZE_MAX / sizeof(uint32_t) - 1) / per)
        return KILN_ENOMEM;
    uint32_t *v = malloc((n * per + 1) * sizeof *v);
    if (!v)
        return KILN_ENOMEM;
    if (simple) {
        /* Nothing below U+0300 decomposes to something else, reorders or composes (the
         * generator checks this), so such text is already in NFC. */
        if (n)
            memcpy(v, in, n * sizeof *v);
        *out = v;
        *out_n = n;
        return 0;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += decompose(in[i], v + k);
    reorder(v, k);
    *out = v;
    *out_n = compose(v, k);
    return 0;
}

static bool is_case_ignorable(uint32_t cp)
{
    return in_ranges(sd_uni_case_ignorable, COUNT(sd_uni_case_ignorable), cp);
}

static bool is_cased(uint32_t cp)
{
    return in_ranges(sd_uni_cased, COUNT(sd_uni_cased), cp);
}

/* Final_Sigma: a cased letter (skipping case-ignorables) before position i, and no cased
 * letter (skipping case-ignorables) after it. */
static bool final_sigma(const uint32_t *v, size_t n, size_t i)
{
    size_t j = i;
    while (j > 0 && is_case_ignorable(v[j - 1]))
        j--;
    if (j == 0 || !is_cased(v[j - 1]))
        return false;
    j = i + 1;
    while (j < n && is_case_ignorable(v[j]))
        j++;
    return j == n || !is_cased(v[j]);
}

static uint32_t lower_simple(uint32_t cp)
{
    if (cp < 0x80)
        return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    size_t lo = 0, hi = COUNT(sd_uni_lower_runs);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const sd_uni_lower_run_t *r = &sd_uni_lower_runs[mid];
        if (cp < r->lo) {
            hi = mid;
        } else if (cp > r->hi) {
            lo = mid + 1;
        } else {
            if ((cp - r->lo) % r->stride != 0)
                return cp;
            return (uint32_t)((int64_t)cp + r->delta);
        }
    }
    return cp;
}

int sd_uni_lower(const uint32_t *in, size_t n, uint32_t **out, size_t *out_n)
{
    /* Only U+0130 grows (to two code points). */
    if (n > SIZE_MAX / (2 * sizeof(uint32_t)) - 1)
        return KILN_ENOMEM;
    uint32_t *v = malloc((2 * n + 1) * sizeof *v);
    if (!v)
        return KILN_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = in[i];
        if (cp == 0x130) {
            v[k++] = 'i';
            v[k++] = 0x307;
        } else if (cp == 0x3A3) {
            v[k++] = final_sigma(in, n, i) ? 0x3C2 : 0x3C3;
        } else {
            v[k++] = cp < SD_UTF8_RAW ? lower_simple(cp) : cp;
        }
    }
    *out = v;
    *out_n = k;
    return 0;
}
