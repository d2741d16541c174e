/* The JSON parser: strict RFC 8259 text plus Python's NaN, Infinity and -Infinity, with
 * exact 64-bit integers. Input is untrusted (prompts arrive over the network), so every
 * read is bounds-checked against the end pointer and nesting is limited; errors report
 * "line L column C: reason", with C counted in code points from 1 like Python's json.
 *
 * Strings: \uXXXX escapes become UTF-8; a surrogate pair becomes one 4-byte sequence and a
 * lone surrogate is kept as its 3-byte generalized UTF-8 (WTF-8) form, which the writers
 * turn back into the same \udXXX escape, so such text round-trips as it does in Python.
 * Raw bytes must be valid UTF-8. Duplicate keys: the last value wins and stays at the
 * position of the first occurrence, which is what a Python dict does. */
#include "json/json_int.h"

#include <kiln/error.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const char *start; /* borrowed: the caller's text */
    const char *p;
    const char *end;
    int depth;
    int rc;             /* 0, KILN_EPARSE or KILN_ENOMEM */
    const char *err_at; /* where the first error was found */
    const char *reason; /* static text */
} parser_t;

/* Records the first error only; returns NULL so callers can `return fail(...)`. */
static void *fail(parser_t *ps, const char *at, const char *reason)
{
    if (!ps->rc) {
        ps->rc = KILN_EPARSE;
        ps->err_at = at;
        ps->reason = reason;
    }
    return NULL;
}

static void *oom(parser_t *ps)
{
    if (!ps->rc) {
        ps->rc = KILN_ENOMEM;
        ps->err_at = ps->p;
        ps->reason = "out of memory";
    }
    return NULL;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static void skip_ws(parser_t *ps)
{
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static bool match(parser_t *ps, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n) != 0)
        return false;
    ps->p += n;
    return true;
}

/* Converts the validated literal [s, e) with strtod; huge magnitudes become +-inf and
 * tiny ones 0, as float() does in Python. */
static int number_to_double(const char *s, const char *e, double *out)
{
    size_t n = (size_t)(e - s);
    char small[64];
    char *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf)
        return KILN_ENOMEM;
    memcpy(buf, s, n);
    buf[n] = 0;
    *out = kiln__json_strtod(buf);
    if (buf != small)
        free(buf);
    return 0;
}

/* Integers without fraction or exponent stay exact when they fit 64 bits. */
static void set_integer(kiln__json_t *j, bool neg, const char *digits, const char *end,
                        bool *fits)
{
    uint64_t mag = 0;
    *fits = true;
    for (const char *q = digits; q < end; q++) {
        unsigned dg = (unsigned)(*q - '0');
        if (mag > (UINT64_MAX - dg) / 10) {
            *fits = false;
            return;
        }
        mag = mag * 10 + dg;
    }
    if (neg && mag > (uint64_t)INT64_MAX + 1) {
        *fits = false;
        return;
    }
    j->type = KILN_JSON_INT;
    if (neg) {
        j->i = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
        j->d = (double)j->i;
    } else if (mag > (uint64_t)INT64_MAX) {
        j->is_u64 = true;
        j->u = mag;
        j->d = (double)mag;
    } else {
        j->i = (int64_t)mag;
        j->d = (double)j->i;
    }
}

static kiln__json_t *parse_number(parser_t *ps)
{
    const char *s = ps->p, *q = s, *end = ps->end;
    bool neg = q < end && *q == '-';
    if (neg)
        q++;
    if (q >= end || !is_digit(*q))
        return fail(ps, s, "Expecting value");
    const char *digits = q;
    if (*q == '0')
        q++;
    else
        while (q < end && is_digit(*q))
            q++;
    const char *digits_end = q;
    bool integral = true;
    if (q < end && *q == '.') {
        if (q + 1 >= end || !is_digit(q[1]))
            return fail(ps, q + 1, "Expecting digits after '.'");
        for (q++; q < end && is_digit(*q); q++) {
        }
        integral = false;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        if (q >= end || !is_digit(*q))
            return fail(ps, q, "Expecting digits in exponent");
        while (q < end && is_digit(*q))
            q++;
        integral = false;
    }
    kiln__json_t *j = kiln__json_node(KILN_JSON_NUMBER);
    if (!j)
        return oom(ps);
    bool fits = false;
    if (integral)
        set_integer(j, neg, digits, digits_end, &fits);
    if (!fits && number_to_double(s, q, &j->d) != 0) {
        free(j);
        return oom(ps);
    }
    ps->p = q;
    return j;
}

static void put_utf8(char **o, uint32_t cp)
{
    unsigned char *u = (unsigned char *)*o;
    if (cp < 0x80) {
        *u++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *u++ = (unsigned char)(0xC0 | (cp >> 6));
        *u++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *u++ = (unsigned char)(0xE0 | (cp >> 12));
        *u++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *u++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *u++ = (unsigned char)(0xF0 | (cp >> 18));
        *u++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        *u++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *u++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    *o = (char *)u;
}

/* Reads 4 hex digits at p (bounds checked by the caller); -1 when one is not hex. */
static long hex4(const char *p)
{
    long v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        int h = c >= '0' && c <= '9' ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : -1;
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Length of the valid UTF-8 sequence at p (lead byte >= 0x80), or 0 when invalid. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    size_t avail = (size_t)(end - p);
    unsigned char c = p[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t n;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    if (avail < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 2; k < n; k++)
        if ((p[k] & 0xC0) != 0x80)
            return 0;
    return n;
}

/* Decodes the escape at *pp (just after the backslash) into *o; false on a bad escape. */
static bool decode_escape(parser_t *ps, const char **pp, const char *close, char **o)
{
    const char *p = *pp;
    char c = *p++;
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit = c ? strchr(from, c) : NULL;
    if (hit) {
        *(*o)++ = to[hit - from];
        *pp = p;
        return true;
    }
    if (c != 'u' || close - p < 4 || hex4(p) < 0) {
        fail(ps, p - 2, "Invalid \\escape");
        return false;
    }
    uint32_t cp = (uint32_t)hex4(p);
    p += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF && close - p >= 6 && p[0] == '\\' && p[1] == 'u') {
        long lo = hex4(p + 2);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (uint32_t)(lo - 0xDC00);
            p += 6;
        }
    }
    put_utf8(o, cp);
    *pp = p;
    return true;
}

/* Parses the string at ps->p (an opening quote) into a malloc'd buffer. The decoded text
 * is never longer than its source, so one allocation of the source length suffices. */
static int parse_string(parser_t *ps, char **out, size_t *out_len)
{
    const char *open = ps->p, *p = open + 1, *end = ps->end;
    while (p < end && *p != '"')
        p += (*p == '\\' && p + 1 < end) ? 2 : 1;
    if (p >= end) {
        fail(ps, open, "Unterminated string starting at");
        return KILN_EPARSE;
    }
    const char *close = p;
    char *buf = malloc((size_t)(close - open));
    if (!buf) {
        oom(ps);
        return KILN_ENOMEM;
    }
    char *o = buf;
    for (p = open + 1; p < close;) {
        unsigned char c = (unsigned char)*p;
        if (c == '\\') {
            p++;
            if (!decode_escape(ps, &p, close, &o))
                goto fail;
        } else if (c < 0x20) {
            fail(ps, p, "Invalid control character at");
            goto fail;
        } else if (c < 0x80) {
            *o++ = *p++;
        } else {
            size_t n = utf8_len((const unsigned char *)p, (const unsigned char *)close);
            if (!n) {
                fail(ps, p, "Invalid UTF-8 in string");
                goto fail;
            }
            memcpy(o, p, n);
            o += n;
            p += n;
        }
    }
    *o = 0;
    *out = buf;
    *out_len = (size_t)(o - buf);
    ps->p = close + 1;
    return 0;
fail:
    free(buf);
    return ps->rc;
}

static kiln__json_t *parse_value(parser_t *ps);

static kiln__json_t *parse_array(parser_t *ps)
{
    kiln__json_t *arr = kiln__json_node(KILN_JSON_ARRAY);
    if (!arr)
        return oom(ps);
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        return arr;
    }
    for (;;) {
        kiln__json_t *v = parse_value(ps);
        if (!v)
            goto fail;
        kiln__json_append(arr, v);
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
        } else if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            return arr;
        } else {
            fail(ps, ps->p, "Expecting ',' delimiter");
            goto fail;
        }
    }
fail:
    kiln__json_free(arr);
    return NULL;
}

/* Attaches member to obj unless its key is already present, in which case the value
 * replaces the earlier one in place. Small objects are scanned; larger ones get an index
 * so that an object of n members costs O(n), not O(n^2). */
static int add_member(kiln__json_t *obj, kiln__json_t *member, kiln__json_index_t *ix)
{
    kiln__json_t *prev = NULL;
    if (ix->slots) {
        prev = kiln__json_index_find(ix, member->key, member->key_len);
    } else {
        for (prev = obj->child; prev; prev = prev->next)
            if (prev->key_len == member->key_len &&
                memcmp(prev->key, member->key, member->key_len) == 0)
                break;
    }
    if (prev) {
        kiln__json_move_value(prev, member);
        return 0;
    }
    member->next = NULL;
    if (obj->last)
        obj->last->next = member;
    else
        obj->child = member;
    obj->last = member;
    obj->count++;
    if (ix->slots)
        return kiln__json_index_add(ix, member);
    if (obj->count > KILN_JSON_INDEX_MIN) {
        if (kiln__json_index_init(ix, obj->count * 2) != 0)
            return KILN_ENOMEM;
        return kiln__json_index_add_all(ix, obj);
    }
    return 0;
}

/* Parses `"key" : value` at ps->p into a member node (key attached). */
static kiln__json_t *parse_member(parser_t *ps)
{
    if (ps->p >= ps->end || *ps->p != '"')
        return fail(ps, ps->p, "Expecting property name enclosed in double quotes");
    char *key;
    size_t key_len;
    if (parse_string(ps, &key, &key_len) != 0)
        return NULL;
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != ':') {
        free(key);
        return fail(ps, ps->p, "Expecting ':' delimiter");
    }
    ps->p++;
    kiln__json_t *v = parse_value(ps);
    if (!v) {
        free(key);
        return NULL;
    }
    v->key = key;
    v->key_len = key_len;
    return v;
}

static kiln__json_t *parse_object(parser_t *ps)
{
    kiln__json_index_t ix = {0};
    kiln__json_t *obj = kiln__json_node(KILN_JSON_OBJECT);
    if (!obj)
        return oom(ps);
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        return obj;
    }
    for (;;) {
        kiln__json_t *m = parse_member(ps);
        if (!m)
            goto fail;
        if (add_member(obj, m, &ix) != 0) {
            oom(ps);
            goto fail;
        }
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            skip_ws(ps);
        } else if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            kiln__json_index_free(&ix);
            return obj;
        } else {
            fail(ps, ps->p, "Expecting ',' delimiter");
            goto fail;
        }
    }
fail:
    kiln__json_index_free(&ix);
    kiln__json_free(obj);
    return NULL;
}

static kiln__json_t *parse_literal(parser_t *ps)
{
    kiln__json_t *j = NULL;
    const char *at = ps->p;
    if (match(ps, "true") || match(ps, "false")) {
        if ((j = kiln__json_node(KILN_JSON_BOOL)))
            j->b = at[0] == 't';
    } else if (match(ps, "null")) {
        j = kiln__json_node(KILN_JSON_NULL);
    } else if (match(ps, "NaN")) {
        j = kiln__json_new_number(NAN);
    } else if (match(ps, "Infinity")) {
        j = kiln__json_new_number(INFINITY);
    } else if (match(ps, "-Infinity")) {
        j = kiln__json_new_number(-INFINITY);
    } else {
        return fail(ps, at, "Expecting value");
    }
    return j ? j : oom(ps);
}

static kiln__json_t *parse_value(parser_t *ps)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return fail(ps, ps->p, "Expecting value");
    char c = *ps->p;
    if (c == '{' || c == '[') {
        if (++ps->depth > KILN_JSON_MAX_DEPTH)
            return fail(ps, ps->p, "Nesting too deep");
        kiln__json_t *j = c == '{' ? parse_object(ps) : parse_array(ps);
        ps->depth--;
        return j;
    }
    if (c == '"') {
        kiln__json_t *j = kiln__json_node(KILN_JSON_STRING);
        if (!j)
            return oom(ps);
        if (parse_string(ps, &j->str, &j->len) != 0) {
            free(j);
            return NULL;
        }
        return j;
    }
    if (is_digit(c) || (c == '-' && !(ps->end - ps->p > 1 && ps->p[1] == 'I')))
        return parse_number(ps);
    return parse_literal(ps);
}

/* Writes "line L column C: reason"; C counts code points (not continuation bytes). */
static void format_error(const parser_t *ps, char *err, size_t err_size)
{
    if (!err || !err_size)
        return;
    size_t line = 1, col = 1;
    for (const char *q = ps->start; q < ps->err_at; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)*q & 0xC0) != 0x80) {
            col++;
        }
    }
    snprintf(err, err_size, "line %zu column %zu: %s", line, col, ps->reason);
}

int kiln__json_parse(const char *text, size_t len, kiln__json_t **out, char *err, size_t err_size)
{
    if (err && err_size)
        err[0] = 0;
    if (!out || (!text && len))
        return KILN_EINVAL;
    *out = NULL;
    const char *base = text ? text : "";
    parser_t ps = {.start = base, .p = base, .end = base + len};
    /* A UTF-8 byte order mark is skipped, as Python's json.loads does for bytes. */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        ps.p += 3;
    kiln__json_t *j = parse_value(&ps);
    if (j) {
        skip_ws(&ps);
        if (ps.p < ps.end) {
            fail(&ps, ps.p, "Extra data");
            kiln__json_free(j);
            j = NULL;
        }
    }
    if (!j) {
        format_error(&ps, err, err_size);
        return ps.rc ? ps.rc : KILN_EPARSE;
    }
    *out = j;
    return 0;
}
