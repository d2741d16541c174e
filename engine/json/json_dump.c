/* The JSON writers. KILN_JSON_PYTHON reproduces Python 3's json.dumps(obj) with default
 * arguments byte for byte (ComfyUI stores prompts in PNG text chunks that way), so the
 * float format follows float.__repr__: the shortest digits that read back to the same
 * double, positional when the decimal exponent is in [-4, 16), otherwise "1e-05" style.
 *
 * Strings that are not valid UTF-8 cannot crash a writer: each bad byte is written as
 * U+FFFD. Lone surrogates in 3-byte form (see json_parse.c) are written as \udXXX. */
#include "json/json_int.h"

#include "util/sbuf.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- float repr ----------------------------------------------------------------------- */

/* Reads the digits and exponent out of printf's "%.*e" text. The radix character is
 * skipped whatever it is, so the process locale does not matter. */
static int split_e(const char *buf, char *digits, int *exp10)
{
    int n = 0;
    const char *p = buf;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9')
            digits[n++] = *p;
    int sign = 1, e = 0;
    if (*p == 'e')
        p++;
    if (*p == '-' || *p == '+')
        sign = *p++ == '-' ? -1 : 1;
    for (; *p >= '0' && *p <= '9'; p++)
        e = e * 10 + (*p - '0');
    *exp10 = sign * e;
    return n;
}

/* The double that digits d1.d2...dn x 10^e reads back as. */
static double read_back(const char *digits, int n, int e)
{
    char buf[48];
    char *o = buf;
    *o++ = digits[0];
    *o++ = '.';
    memcpy(o, digits + 1, (size_t)(n - 1));
    o += n - 1;
    snprintf(o, sizeof buf - (size_t)(o - buf), "e%d", e);
    return kiln__json_strtod(buf);
}

/* Moves digits one unit in the last place up (dir > 0) or down, keeping n digits. */
static void step_digits(char *digits, int n, int *e, int dir)
{
    int k = n - 1;
    if (dir > 0) {
        while (k >= 0 && digits[k] == '9')
            digits[k--] = '0';
        if (k >= 0) {
            digits[k]++;
        } else {
            digits[0] = '1';
            ++*e;
        }
    } else {
        while (k >= 0 && digits[k] == '0')
            digits[k--] = '9';
        digits[k]--; /* k >= 0: the leading digit is never 0 */
        if (digits[0] == '0') {
            memset(digits, '9', (size_t)n);
            --*e;
        }
    }
}

/* Shortest significant digits of finite x > 0 that round-trip, as Python's repr finds
 * them: the fewest digits, and of those the one nearest to x. printf's correctly rounded
 * "%.*e" gives the nearest candidate of each length; next to a power of two the rounding
 * interval is lopsided, so the neighbour on the other side is tried as well. */
static int shortest_digits(double x, char *digits, int *exp10)
{
    char buf[48], alt[24];
    int n = 0;
    for (int prec = 0; prec < 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec, x);
        n = split_e(buf, digits, exp10);
        double back = read_back(digits, n, *exp10);
        if (back == x)
            break;
        int e = *exp10;
        memcpy(alt, digits, (size_t)n);
        step_digits(alt, n, &e, back < x ? 1 : -1);
        if (read_back(alt, n, e) == x) {
            memcpy(digits, alt, (size_t)n);
            *exp10 = e;
            break;
        }
    }
    while (n > 1 && digits[n - 1] == '0')
        n--;
    return n;
}

static void put_float(kiln__sbuf_t *b, double x)
{
    if (isnan(x)) {
        kiln__sbuf_puts(b, "NaN");
        return;
    }
    if (isinf(x)) {
        kiln__sbuf_puts(b, x > 0 ? "Infinity" : "-Infinity");
        return;
    }
    if (x == 0) {
        kiln__sbuf_puts(b, signbit(x) ? "-0.0" : "0.0");
        return;
    }
    char digits[24], out[64];
    int e = 0;
    int n = shortest_digits(fabs(x), digits, &e);
    char *o = out;
    if (x < 0)
        *o++ = '-';
    int decpt = e + 1; /* digits are 0.d1d2... x 10^decpt */
    if (decpt <= -4 || decpt > 16) {
        *o++ = digits[0];
        if (n > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)(n - 1));
            o += n - 1;
        }
        snprintf(o, sizeof out - (size_t)(o - out), "e%c%02d", e < 0 ? '-' : '+', abs(e));
        kiln__sbuf_puts(b, out);
        return;
    }
    if (decpt <= 0) {
        memcpy(o, "0.", 2);
        o += 2;
        memset(o, '0', (size_t)-decpt);
        o += -decpt;
        memcpy(o, digits, (size_t)n);
        o += n;
    } else if (decpt < n) {
        memcpy(o, digits, (size_t)decpt);
        o += decpt;
        *o++ = '.';
        memcpy(o, digits + decpt, (size_t)(n - decpt));
        o += n - decpt;
    } else {
        memcpy(o, digits, (size_t)n);
        o += n;
        memset(o, '0', (size_t)(decpt - n));
        o += decpt - n;
        memcpy(o, ".0", 2);
        o += 2;
    }
    kiln__sbuf_append(b, out, (size_t)(o - out));
}

/* ---- strings -------------------------------------------------------------------------- */

/* Decodes the UTF-8 sequence at p (lead byte >= 0x80), also accepting the 3-byte form of
 * surrogates; returns its length and sets *cp, or 0 when the bytes are not valid. */
static size_t decode_utf8(const unsigned char *p, const unsigned char *end, uint32_t *cp)
{
    size_t avail = (size_t)(end - p);
    unsigned char c = p[0], lo = 0x80, hi = 0xBF;
    size_t n;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, v = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, v = c & 0x0F, lo = c == 0xE0 ? 0xA0 : 0x80;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, v = c & 0x07, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    if (avail < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 1; k < n; k++) {
        if ((p[k] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (p[k] & 0x3F);
    }
    *cp = v;
    return n;
}

static void put_u16(kiln__sbuf_t *b, uint32_t unit)
{
    static const char hex[] = "0123456789abcdef";
    char e[6] = {'\\', 'u', hex[(unit >> 12) & 15], hex[(unit >> 8) & 15], hex[(unit >> 4) & 15],
                 hex[unit & 15]};
    kiln__sbuf_append(b, e, sizeof e);
}

static void put_ascii_escape(kiln__sbuf_t *b, unsigned char c)
{
    switch (c) {
    case '"': kiln__sbuf_puts(b, "\\\""); break;
    case '\\': kiln__sbuf_puts(b, "\\\\"); break;
    case '\n': kiln__sbuf_puts(b, "\\n"); break;
    case '\r': kiln__sbuf_puts(b, "\\r"); break;
    case '\t': kiln__sbuf_puts(b, "\\t"); break;
    case '\b': kiln__sbuf_puts(b, "\\b"); break;
    case '\f': kiln__sbuf_puts(b, "\\f"); break;
    default: put_u16(b, c); break;
    }
}

/* ascii: escape every code point outside printable ASCII (Python's ensure_ascii, which
 * also escapes DEL); otherwise pass valid UTF-8 through and escape only what JSON must. */
static void put_string(kiln__sbuf_t *b, const char *s, size_t len, bool ascii)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len, *run = p;
    kiln__sbuf_putc(b, '"');
    while (p < end) {
        unsigned char c = *p;
        uint32_t cp = 0;
        size_t n = 0;
        if (c >= 0x20 && c != '"' && c != '\\' && (c < 0x7F || (c == 0x7F && !ascii))) {
            p++;
            continue;
        }
        if (c >= 0x80) {
            n = decode_utf8(p, end, &cp);
            if (!ascii && n && (cp < 0xD800 || cp > 0xDFFF)) {
                p += n;
                continue;
            }
        }
        kiln__sbuf_append(b, run, (size_t)(p - run));
        if (c < 0x80) {
            put_ascii_escape(b, c);
            n = 1;
        } else if (!n) {
            if (ascii)
                put_u16(b, 0xFFFD);
            else
                kiln__sbuf_puts(b, "\xEF\xBF\xBD");
            n = 1;
        } else if (cp >= 0x10000) {
            put_u16(b, 0xD800 + ((cp - 0x10000) >> 10));
            put_u16(b, 0xDC00 + ((cp - 0x10000) & 0x3FF));
        } else {
            put_u16(b, cp);
        }
        p += n;
        run = p;
    }
    kiln__sbuf_append(b, run, (size_t)(p - run));
    kiln__sbuf_putc(b, '"');
}

/* ---- values --------------------------------------------------------------------------- */

static void newline_indent(kiln__sbuf_t *b, int level)
{
    kiln__sbuf_putc(b, '\n');
    for (int k = 0; k < level; k++)
        kiln__sbuf_append(b, "  ", 2);
}

static void dump_value(kiln__sbuf_t *b, const kiln__json_t *j, kiln__json_style_t style,
                       int level);

static void dump_container(kiln__sbuf_t *b, const kiln__json_t *j, kiln__json_style_t style,
                           int level)
{
    bool obj = j->type == KILN_JSON_OBJECT;
    if (!j->child) {
        kiln__sbuf_puts(b, obj ? "{}" : "[]");
        return;
    }
    kiln__sbuf_putc(b, obj ? '{' : '[');
    for (const kiln__json_t *c = j->child; c; c = c->next) {
        if (c != j->child)
            kiln__sbuf_puts(b, style == KILN_JSON_PYTHON ? ", " : ",");
        if (style == KILN_JSON_PRETTY)
            newline_indent(b, level + 1);
        if (obj) {
            put_string(b, c->key ? c->key : "", c->key ? c->key_len : 0,
                       style == KILN_JSON_PYTHON);
            kiln__sbuf_puts(b, style == KILN_JSON_COMPACT ? ":" : ": ");
        }
        dump_value(b, c, style, level + 1);
    }
    if (style == KILN_JSON_PRETTY)
        newline_indent(b, level);
    kiln__sbuf_putc(b, obj ? '}' : ']');
}

static void dump_value(kiln__sbuf_t *b, const kiln__json_t *j, kiln__json_style_t style,
                       int level)
{
    switch (j->type) {
    case KILN_JSON_BOOL:
        kiln__sbuf_puts(b, j->b ? "true" : "false");
        break;
    case KILN_JSON_INT:
        if (j->is_u64)
            kiln__sbuf_printf(b, "%" PRIu64, j->u);
        else
            kiln__sbuf_printf(b, "%" PRId64, j->i);
        break;
    case KILN_JSON_NUMBER:
        put_float(b, j->d);
        break;
    case KILN_JSON_STRING:
        put_string(b, j->str ? j->str : "", j->str ? j->len : 0, style == KILN_JSON_PYTHON);
        break;
    case KILN_JSON_ARRAY:
    case KILN_JSON_OBJECT:
        dump_container(b, j, style, level);
        break;
    default:
        kiln__sbuf_puts(b, "null");
        break;
    }
}

char *kiln__json_dump(const kiln__json_t *j, kiln__json_style_t style, size_t *len)
{
    kiln__sbuf_t b = KILN_SBUF_INIT;
    if (j)
        dump_value(&b, j, style, 0);
    else
        kiln__sbuf_puts(&b, "null");
    return kiln__sbuf_take(&b, len);
}
