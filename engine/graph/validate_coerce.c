/* Python semantics for prompt constants: ComfyUI coerces INT/FLOAT/STRING/BOOLEAN inputs
 * with int(), float(), str() and bool(), and its error texts print values the way Python
 * does. Clients see both the coerced values (written back into the prompt) and the texts,
 * so this file reproduces them: parsing rules, exception messages and number printing. */
#include "graph/validate_int.h"

#include <kiln/error.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Python 3.11+ refuses to convert decimal strings longer than this (sys.int_info). */
#define PY_INT_MAX_STR_DIGITS 4300

/* Characters str.strip() removes from an ASCII string (Python counts \x1c-\x1f as space). */
static bool py_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '\x1c' && c <= '\x1f');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static void strip(const char **s, const char **e)
{
    while (*s < *e && py_space(**s))
        (*s)++;
    while (*e > *s && py_space((*e)[-1]))
        (*e)--;
}

/* ---- printing --------------------------------------------------------------------------- */

void kiln__py_float_repr(kiln__sbuf_t *b, double d)
{
    if (isnan(d)) {
        kiln__sbuf_puts(b, "nan");
        return;
    }
    if (isinf(d)) {
        kiln__sbuf_puts(b, d < 0 ? "-inf" : "inf");
        return;
    }
    if (d == 0) {
        kiln__sbuf_puts(b, signbit(d) ? "-0.0" : "0.0");
        return;
    }
    /* The shortest precision that reads back as the same double is what repr() prints. */
    char buf[48];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    char digits[24];
    int nd = 0;
    const char *p = buf;
    if (*p == '-')
        p++;
    for (; *p && *p != 'e'; p++)
        if (is_digit(*p) && nd < 20)
            digits[nd++] = *p;
    int exp10 = *p == 'e' ? atoi(p + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    int decpt = exp10 + 1; /* digits before the decimal point */
    if (d < 0)
        kiln__sbuf_putc(b, '-');
    if (decpt <= -4 || decpt > 16) {
        /* Python switches to exponent form outside [1e-4, 1e16). */
        kiln__sbuf_putc(b, digits[0]);
        if (nd > 1) {
            kiln__sbuf_putc(b, '.');
            kiln__sbuf_append(b, digits + 1, (size_t)nd - 1);
        }
        kiln__sbuf_printf(b, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    } else if (decpt <= 0) {
        kiln__sbuf_puts(b, "0.");
        for (int i = 0; i < -decpt; i++)
            kiln__sbuf_putc(b, '0');
        kiln__sbuf_append(b, digits, (size_t)nd);
    } else if (decpt >= nd) {
        kiln__sbuf_append(b, digits, (size_t)nd);
        for (int i = nd; i < decpt; i++)
            kiln__sbuf_putc(b, '0');
        kiln__sbuf_puts(b, ".0");
    } else {
        kiln__sbuf_append(b, digits, (size_t)decpt);
        kiln__sbuf_putc(b, '.');
        kiln__sbuf_append(b, digits + decpt, (size_t)(nd - decpt));
    }
}

/* Length of the UTF-8 sequence at s (1 for an invalid lead byte). */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
    size_t n = s[0] < 0xC0 ? 1 : s[0] < 0xE0 ? 2 : s[0] < 0xF0 ? 3 : 4;
    return n <= left ? n : 1;
}

void kiln__py_repr_str(kiln__sbuf_t *b, const char *s, size_t len)
{
    /* Python prefers single quotes and switches to double quotes only when the text
     * contains a single quote and no double quote. */
    bool has_sq = memchr(s, '\'', len) != NULL, has_dq = memchr(s, '"', len) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    kiln__sbuf_putc(b, q);
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        if (c == (unsigned char)q || c == '\\') {
            kiln__sbuf_putc(b, '\\');
            kiln__sbuf_putc(b, (char)c);
        } else if (c == '\n') {
            kiln__sbuf_puts(b, "\\n");
        } else if (c == '\r') {
            kiln__sbuf_puts(b, "\\r");
        } else if (c == '\t') {
            kiln__sbuf_puts(b, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            kiln__sbuf_printf(b, "\\x%02x", c);
        } else if (c == 0xC2 && i + 1 < len &&
                   (((unsigned char)s[i + 1] >= 0x80 && (unsigned char)s[i + 1] <= 0xA0) ||
                    (unsigned char)s[i + 1] == 0xAD)) {
            /* U+0080..U+00A0 and U+00AD are not printable: repr() escapes them. */
            kiln__sbuf_printf(b, "\\x%02x", (unsigned char)s[i + 1]);
            i += 2;
            continue;
        } else {
            size_t n = utf8_seq((const unsigned char *)s + i, len - i);
            kiln__sbuf_append(b, s + i, n);
            i += n;
            continue;
        }
        i++;
    }
    kiln__sbuf_putc(b, q);
}

static void py_any(kiln__sbuf_t *b, const kiln__json_t *v, bool repr)
{
    switch (v->type) {
    case KILN_JSON_NULL:
        kiln__sbuf_puts(b, "None");
        break;
    case KILN_JSON_BOOL:
        kiln__sbuf_puts(b, v->b ? "True" : "False");
        break;
    case KILN_JSON_INT:
        if (v->is_u64)
            kiln__sbuf_printf(b, "%llu", (unsigned long long)v->u);
        else
            kiln__sbuf_printf(b, "%lld", (long long)v->i);
        break;
    case KILN_JSON_NUMBER:
        kiln__py_float_repr(b, v->d);
        break;
    case KILN_JSON_STRING:
        if (repr)
            kiln__py_repr_str(b, v->str, v->len);
        else
            kiln__sbuf_append(b, v->str, v->len);
        break;
    case KILN_JSON_ARRAY:
    case KILN_JSON_OBJECT: {
        bool obj = v->type == KILN_JSON_OBJECT;
        kiln__sbuf_putc(b, obj ? '{' : '[');
        for (const kiln__json_t *c = v->child; c; c = c->next) {
            if (c != v->child)
                kiln__sbuf_puts(b, ", ");
            if (obj) {
                kiln__py_repr_str(b, c->key ? c->key : "", c->key ? c->key_len : 0);
                kiln__sbuf_puts(b, ": ");
            }
            py_any(b, c, true);
        }
        kiln__sbuf_putc(b, obj ? '}' : ']');
        break;
    }
    }
}

void kiln__py_str(kiln__sbuf_t *b, const kiln__json_t *v)
{
    py_any(b, v, false);
}

void kiln__py_repr(kiln__sbuf_t *b, const kiln__json_t *v)
{
    py_any(b, v, true);
}

bool kiln__py_bool(const kiln__json_t *v)
{
    switch (v->type) {
    case KILN_JSON_NULL:
        return false;
    case KILN_JSON_BOOL:
        return v->b;
    case KILN_JSON_INT:
        return v->is_u64 || v->i != 0;
    case KILN_JSON_NUMBER:
        return v->d != 0; /* NaN is true, as in Python */
    case KILN_JSON_STRING:
        return v->len > 0;
    default:
        return v->count > 0;
    }
}

/* Python's name of a JSON value's type, for TypeError messages. */
static const char *py_type_name(const kiln__json_t *v)
{
    switch (v->type) {
    case KILN_JSON_NULL:
        return "NoneType";
    case KILN_JSON_ARRAY:
        return "list";
    case KILN_JSON_OBJECT:
        return "dict";
    case KILN_JSON_STRING:
        return "str";
    case KILN_JSON_BOOL:
        return "bool";
    case KILN_JSON_INT:
        return "int";
    default:
        return "float";
    }
}

/* ---- int() ------------------------------------------------------------------------------ */

/* Builds the JSON integer for sign/magnitude digits, or reports BIG. `digits` has no
 * leading zeros (or is "0"). */
static int int_from_digits(bool neg, const char *digits, size_t nd, kiln__json_t **out,
                           kiln__sbuf_t *text)
{
    uint64_t mag = 0;
    bool fits = nd <= 20;
    for (size_t i = 0; fits && i < nd; i++) {
        uint64_t dv = (uint64_t)(digits[i] - '0');
        if (mag > (UINT64_MAX - dv) / 10)
            fits = false;
        else
            mag = mag * 10 + dv;
    }
    if (fits && neg && mag <= (uint64_t)INT64_MAX + 1) {
        *out = kiln__json_new_int(mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag);
        return *out ? KILN_PYINT_OK : KILN_ENOMEM;
    }
    if (fits && !neg) {
        *out = mag <= INT64_MAX ? kiln__json_new_int((int64_t)mag) : kiln__json_new_u64(mag);
        return *out ? KILN_PYINT_OK : KILN_ENOMEM;
    }
    if (neg)
        kiln__sbuf_putc(text, '-');
    kiln__sbuf_append(text, digits, nd);
    return text->failed ? KILN_ENOMEM : KILN_PYINT_BIG;
}

static int int_error_literal(const kiln__json_t *v, kiln__sbuf_t *text)
{
    kiln__sbuf_puts(text, "invalid literal for int() with base 10: ");
    kiln__py_repr_str(text, v->str, v->len);
    return text->failed ? KILN_ENOMEM : KILN_PYINT_ERROR;
}

/* int(str): [ws][sign]digits('_'digits)*[ws]. */
static int int_from_string(const kiln__json_t *v, kiln__json_t **out, kiln__sbuf_t *text)
{
    const char *s = v->str, *e = v->str + v->len;
    strip(&s, &e);
    bool neg = false;
    if (s < e && (*s == '+' || *s == '-'))
        neg = *s++ == '-';
    if (s == e || !is_digit(*s))
        return int_error_literal(v, text);
    kiln__sbuf_t digits = KILN_SBUF_INIT;
    for (const char *p = s; p < e; p++) {
        if (*p == '_' && p + 1 < e && is_digit(p[1]) && is_digit(p[-1]))
            continue;
        if (!is_digit(*p)) {
            kiln__sbuf_free(&digits);
            return int_error_literal(v, text);
        }
        if (digits.len == 1 && digits.data[0] == '0')
            digits.len = 0; /* drop leading zeros: int("007") == 7 */
        kiln__sbuf_putc(&digits, *p);
    }
    if (digits.failed) {
        kiln__sbuf_free(&digits);
        return KILN_ENOMEM;
    }
    int rc;
    if (digits.len > PY_INT_MAX_STR_DIGITS) {
        kiln__sbuf_printf(text,
                          "Exceeds the limit (%d digits) for integer string conversion: value "
                          "has %zu digits; use sys.set_int_max_str_digits() to increase the "
                          "limit",
                          PY_INT_MAX_STR_DIGITS, digits.len);
        rc = text->failed ? KILN_ENOMEM : KILN_PYINT_ERROR;
    } else {
        rc = int_from_digits(neg, digits.data, digits.len, out, text);
    }
    kiln__sbuf_free(&digits);
    return rc;
}

static int int_from_double(double d, kiln__json_t **out, kiln__sbuf_t *text)
{
    if (isnan(d)) {
        kiln__sbuf_puts(text, "cannot convert float NaN to integer");
        return text->failed ? KILN_ENOMEM : KILN_PYINT_ERROR;
    }
    if (isinf(d)) {
        kiln__sbuf_puts(text, "cannot convert float infinity to integer");
        return text->failed ? KILN_ENOMEM : KILN_PYINT_ERROR;
    }
    double t = trunc(d);
    if (t >= -9223372036854775808.0 && t < 9223372036854775808.0) {
        *out = kiln__json_new_int((int64_t)t);
        return *out ? KILN_PYINT_OK : KILN_ENOMEM;
    }
    if (t >= 0 && t < 18446744073709551616.0) {
        *out = kiln__json_new_u64((uint64_t)t);
        return *out ? KILN_PYINT_OK : KILN_ENOMEM;
    }
    /* Beyond 64 bits: the exact integer value of the double, as Python's int() gives. */
    char buf[400];
    snprintf(buf, sizeof buf, "%.0f", fabs(t));
    return int_from_digits(t < 0, buf, strlen(buf), out, text);
}

int kiln__py_int(const kiln__json_t *v, kiln__json_t **out, kiln__sbuf_t *text)
{
    *out = NULL;
    switch (v->type) {
    case KILN_JSON_INT:
        *out = kiln__json_dup(v);
        return *out ? KILN_PYINT_OK : KILN_ENOMEM;
    case KILN_JSON_BOOL:
        *out = kiln__json_new_int(v->b ? 1 : 0);
        return *out ? KILN_PYINT_OK : KILN_ENOMEM;
    case KILN_JSON_NUMBER:
        return int_from_double(v->d, out, text);
    case KILN_JSON_STRING:
        return int_from_string(v, out, text);
    default:
        kiln__sbuf_printf(text,
                          "int() argument must be a string, a bytes-like object or a real "
                          "number, not '%s'",
                          py_type_name(v));
        return text->failed ? KILN_ENOMEM : KILN_PYINT_ERROR;
    }
}

/* ---- float() ---------------------------------------------------------------------------- */

static bool ieq(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

/* Checks Python's float literal grammar on s..e (underscores already removed) and that an
 * underscore sat only between digits; returns false when float() would raise. */
static bool float_grammar(const char *s, const char *e)
{
    if (s < e && (*s == '+' || *s == '-'))
        s++;
    size_t n = (size_t)(e - s);
    if (ieq(s, n, "inf") || ieq(s, n, "infinity") || ieq(s, n, "nan"))
        return true;
    size_t int_digits = 0, frac_digits = 0;
    while (s < e && is_digit(*s))
        s++, int_digits++;
    if (s < e && *s == '.') {
        s++;
        while (s < e && is_digit(*s))
            s++, frac_digits++;
    }
    if (int_digits + frac_digits == 0)
        return false;
    if (s < e && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < e && (*s == '+' || *s == '-'))
            s++;
        if (s == e || !is_digit(*s))
            return false;
        while (s < e && is_digit(*s))
            s++;
    }
    return s == e;
}

static int float_from_string(const kiln__json_t *v, double *out, kiln__sbuf_t *exc)
{
    const char *s = v->str, *e = v->str + v->len;
    strip(&s, &e);
    char *clean = malloc((size_t)(e - s) + 1);
    if (!clean)
        return KILN_ENOMEM;
    size_t n = 0;
    bool ok = true;
    for (const char *p = s; p < e; p++) {
        if (*p == '_') {
            ok = ok && p > s && p + 1 < e && is_digit(p[-1]) && is_digit(p[1]);
            continue;
        }
        ok = ok && *p != '\0';
        clean[n++] = *p;
    }
    clean[n] = 0;
    if (ok && float_grammar(clean, clean + n)) {
        *out = strtod(clean, NULL);
        free(clean);
        return 0;
    }
    free(clean);
    kiln__sbuf_puts(exc, "could not convert string to float: ");
    kiln__py_repr_str(exc, v->str, v->len);
    return exc->failed ? KILN_ENOMEM : 1;
}

int kiln__py_float(const kiln__json_t *v, double *out, kiln__sbuf_t *exc)
{
    switch (v->type) {
    case KILN_JSON_INT:
        *out = v->is_u64 ? (double)v->u : (double)v->i;
        return 0;
    case KILN_JSON_NUMBER:
        *out = v->d;
        return 0;
    case KILN_JSON_BOOL:
        *out = v->b ? 1.0 : 0.0;
        return 0;
    case KILN_JSON_STRING:
        return float_from_string(v, out, exc);
    default:
        kiln__sbuf_printf(exc, "float() argument must be a string or a real number, not '%s'",
                          py_type_name(v));
        return exc->failed ? KILN_ENOMEM : 1;
    }
}
