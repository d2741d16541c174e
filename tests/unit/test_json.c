/* Tests for engine/json: parsing of every type and limit, error positions, the three
 * writers (the Python style against strings json.dumps produces), equality and hashing,
 * tree editing, large documents, and random mutations that must never crash. */
#include "runner.h"

#include "json/json.h"
#include "util/sbuf.h"

#include <kiln/error.h>

#include <locale.h>
#include <math.h>

/* Parses text that must be valid. */
static kiln__json_t *parse_ok(const char *text)
{
    char err[128];
    kiln__json_t *j = NULL;
    int rc = kiln__json_parse(text, strlen(text), &j, err, sizeof err);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "parse of %s failed: %s", text, err);
    return j;
}

/* Parses text that must be invalid and checks the whole error message. */
static void expect_error(const char *text, size_t len, const char *message)
{
    char err[128] = "unset";
    kiln__json_t *j = (kiln__json_t *)1;
    int rc = kiln__json_parse(text, len, &j, err, sizeof err);
    if (rc != KILN_EPARSE || j != NULL)
        kiln_test_fail(__FILE__, __LINE__, "%s: rc %d, want EPARSE", text, rc);
    if (strcmp(err, message) != 0)
        kiln_test_fail(__FILE__, __LINE__, "%s: error \"%s\", want \"%s\"", text, err, message);
}

static char *dump(const kiln__json_t *j, kiln__json_style_t style)
{
    char *s = kiln__json_dump(j, style, NULL);
    ASSERT(s != NULL);
    return s;
}

/* Parses `in`, dumps it in `style` and compares with `want`. */
static void expect_dump(const char *in, kiln__json_style_t style, const char *want)
{
    kiln__json_t *j = parse_ok(in);
    char *s = dump(j, style);
    if (strcmp(s, want) != 0)
        kiln_test_fail(__FILE__, __LINE__, "dump of %s:\n  got  %s\n  want %s", in, s, want);
    free(s);
    kiln__json_free(j);
}

static void test_parse_scalars(void)
{
    kiln__json_t *j = parse_ok(" null ");
    ASSERT_EQ_INT(j->type, KILN_JSON_NULL);
    kiln__json_free(j);
    j = parse_ok("true");
    ASSERT(j->type == KILN_JSON_BOOL && j->b);
    kiln__json_free(j);
    j = parse_ok("\t\r\nfalse\n");
    ASSERT(j->type == KILN_JSON_BOOL && !j->b);
    kiln__json_free(j);
    j = parse_ok("-42");
    ASSERT(j->type == KILN_JSON_INT && !j->is_u64 && j->i == -42 && j->d == -42.0);
    kiln__json_free(j);
    j = parse_ok("2.5e3");
    ASSERT(j->type == KILN_JSON_NUMBER && j->d == 2500.0);
    kiln__json_free(j);
    j = parse_ok("1E-2");
    ASSERT(j->type == KILN_JSON_NUMBER && j->d == 0.01);
    kiln__json_free(j);
    j = parse_ok("-0");
    ASSERT(j->type == KILN_JSON_INT && j->i == 0);
    kiln__json_free(j);
    j = parse_ok("-0.0");
    ASSERT(j->type == KILN_JSON_NUMBER && j->d == 0 && signbit(j->d));
    kiln__json_free(j);
    j = parse_ok("NaN");
    ASSERT(j->type == KILN_JSON_NUMBER && isnan(j->d));
    kiln__json_free(j);
    j = parse_ok("[Infinity, -Infinity, 1e400, -1e400, 1e-400]");
    ASSERT(isinf(kiln__json_at(j, 0)->d) && kiln__json_at(j, 0)->d > 0);
    ASSERT(isinf(kiln__json_at(j, 1)->d) && kiln__json_at(j, 1)->d < 0);
    ASSERT(kiln__json_at(j, 2)->type == KILN_JSON_NUMBER && kiln__json_at(j, 2)->d == INFINITY);
    ASSERT(kiln__json_at(j, 3)->d == -INFINITY);
    ASSERT(kiln__json_at(j, 4)->d == 0.0);
    kiln__json_free(j);
    j = parse_ok("\xEF\xBB\xBF\"bom\"");
    ASSERT_STR_EQ(j->str, "bom");
    kiln__json_free(j);
}

static void test_parse_int_limits(void)
{
    kiln__json_t *j = parse_ok("[9223372036854775807, 9223372036854775808, 18446744073709551615,"
                               " 18446744073709551616, -9223372036854775808,"
                               " -9223372036854775809, 1.0, 1e2]");
    const kiln__json_t *e = kiln__json_at(j, 0);
    ASSERT(e->type == KILN_JSON_INT && !e->is_u64 && e->i == INT64_MAX);
    e = kiln__json_at(j, 1);
    ASSERT(e->type == KILN_JSON_INT && e->is_u64 && e->u == (uint64_t)INT64_MAX + 1);
    ASSERT(e->d == 9223372036854775808.0);
    e = kiln__json_at(j, 2);
    ASSERT(e->type == KILN_JSON_INT && e->is_u64 && e->u == UINT64_MAX);
    e = kiln__json_at(j, 3);
    ASSERT(e->type == KILN_JSON_NUMBER && e->d == 18446744073709551616.0);
    e = kiln__json_at(j, 4);
    ASSERT(e->type == KILN_JSON_INT && !e->is_u64 && e->i == INT64_MIN);
    e = kiln__json_at(j, 5);
    ASSERT(e->type == KILN_JSON_NUMBER && e->d == -9223372036854775808.0);
    ASSERT_EQ_INT(kiln__json_at(j, 6)->type, KILN_JSON_NUMBER);
    ASSERT_EQ_INT(kiln__json_at(j, 7)->type, KILN_JSON_NUMBER);
    char *s = dump(j, KILN_JSON_PYTHON);
    ASSERT_STR_EQ(s, "[9223372036854775807, 9223372036854775808, 18446744073709551615, "
                     "1.8446744073709552e+19, -9223372036854775808, -9.223372036854776e+18, "
                     "1.0, 100.0]");
    free(s);
    kiln__json_free(j);
    expect_dump("18446744073709551615", KILN_JSON_COMPACT, "18446744073709551615");
    expect_dump("-9223372036854775808", KILN_JSON_COMPACT, "-9223372036854775808");
}

static void test_parse_strings(void)
{
    kiln__json_t *j = parse_ok("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"");
    ASSERT_STR_EQ(j->str, "a\"b\\c/d\b\f\n\r\t");
    ASSERT_EQ_INT(j->len, 12);
    kiln__json_free(j);
    j = parse_ok("\"\\u00e9\\u20AC\\ud83d\\ude00\xc3\xa9\"");
    ASSERT_STR_EQ(j->str, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xc3\xa9");
    kiln__json_free(j);
    j = parse_ok("\"x\\u0000y\"");
    ASSERT_EQ_INT(j->len, 3);
    ASSERT(memcmp(j->str, "x\0y", 4) == 0);
    kiln__json_free(j);
    /* A lone surrogate is kept in its 3-byte form and written back as the same escape. */
    j = parse_ok("\"\\ud800A\\udc00\\ud83d\\u0041\"");
    ASSERT_EQ_INT(j->len, 11);
    ASSERT(memcmp(j->str, "\xed\xa0\x80" "A" "\xed\xb0\x80" "\xed\xa0\xbd" "A", 11) == 0);
    char *s = dump(j, KILN_JSON_PYTHON);
    ASSERT_STR_EQ(s, "\"\\ud800A\\udc00\\ud83dA\"");
    free(s);
    s = dump(j, KILN_JSON_COMPACT);
    ASSERT_STR_EQ(s, "\"\\ud800A\\udc00\\ud83dA\"");
    free(s);
    kiln__json_free(j);
    j = parse_ok("\"\"");
    ASSERT(j->type == KILN_JSON_STRING && j->len == 0 && j->str[0] == 0);
    kiln__json_free(j);
}

static void test_parse_containers(void)
{
    kiln__json_t *j = parse_ok("{\"z\": [1, [], {}], \"a\": {\"b\": \"c\"}, \"m\": null}");
    ASSERT_EQ_INT(j->type, KILN_JSON_OBJECT);
    ASSERT_EQ_INT(j->count, 3);
    ASSERT_STR_EQ(j->child->key, "z"); /* member order is kept */
    ASSERT_STR_EQ(j->child->next->key, "a");
    ASSERT(j->last == j->child->next->next);
    kiln__json_t *z = kiln__json_get(j, "z");
    ASSERT(z && z->type == KILN_JSON_ARRAY && z->count == 3);
    ASSERT_EQ_INT(kiln__json_at(z, 0)->i, 1);
    ASSERT(kiln__json_at(z, 1)->type == KILN_JSON_ARRAY && kiln__json_at(z, 1)->count == 0);
    ASSERT(kiln__json_at(z, 3) == NULL);
    ASSERT_STR_EQ(kiln__json_get_string(kiln__json_get(j, "a"), "b", NULL), "c");
    ASSERT(kiln__json_get(j, "missing") == NULL);
    ASSERT(kiln__json_get(z, "z") == NULL);
    ASSERT(kiln__json_at(j, 0) == NULL);
    kiln__json_free(j);
}

static void test_duplicate_keys(void)
{
    /* The last value wins at the first key's position, as a Python dict does. */
    expect_dump("{\"a\": 1, \"b\": 2, \"a\": 3}", KILN_JSON_PYTHON, "{\"a\": 3, \"b\": 2}");
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_putc(&b, '{');
    for (int i = 0; i < 100; i++)
        kiln__sbuf_printf(&b, "\"k%d\": %d, ", i, i);
    kiln__sbuf_puts(&b, "\"k5\": \"five\", \"k99\": [99], \"k0\": {}}");
    kiln__json_t *j = parse_ok(kiln__sbuf_cstr(&b));
    ASSERT_EQ_INT(j->count, 100);
    ASSERT_STR_EQ(kiln__json_get_string(j, "k5", NULL), "five");
    ASSERT_EQ_INT(kiln__json_get(j, "k99")->type, KILN_JSON_ARRAY);
    ASSERT_EQ_INT(j->child->type, KILN_JSON_OBJECT);
    ASSERT_STR_EQ(j->child->key, "k0");
    ASSERT_STR_EQ(j->last->key, "k99");
    ASSERT_EQ_INT(kiln__json_get_int(j, "k42", -1), 42);
    kiln__json_free(j);
    kiln__sbuf_free(&b);
}

static void test_parse_errors(void)
{
    expect_error("", 0, "line 1 column 1: Expecting value");
    expect_error("  ", 2, "line 1 column 3: Expecting value");
    expect_error("[1, 2", 5, "line 1 column 6: Expecting ',' delimiter");
    expect_error("{\n  \"a\": tru\n}", 14, "line 2 column 8: Expecting value");
    expect_error("[1] x", 5, "line 1 column 5: Extra data");
    expect_error("{\"a\" 1}", 7, "line 1 column 6: Expecting ':' delimiter");
    expect_error("{\"a\": 1,}", 9, "line 1 column 9: Expecting property name enclosed in "
                                   "double quotes");
    expect_error("[1,]", 4, "line 1 column 4: Expecting value");
    expect_error("\"abc", 4, "line 1 column 1: Unterminated string starting at");
    expect_error("\"a\tb\"", 5, "line 1 column 3: Invalid control character at");
    expect_error("[\"\\x\"]", 6, "line 1 column 3: Invalid \\escape");
    expect_error("\"\\u12G4\"", 8, "line 1 column 2: Invalid \\escape");
    expect_error("\"\\u12\"", 6, "line 1 column 2: Invalid \\escape");
    expect_error("01", 2, "line 1 column 2: Extra data");
    expect_error("-", 1, "line 1 column 1: Expecting value");
    expect_error("1.", 2, "line 1 column 3: Expecting digits after '.'");
    expect_error("1e+", 3, "line 1 column 4: Expecting digits in exponent");
    expect_error("[\"\xc3\xa9\", x]", 9, "line 1 column 7: Expecting value");
    expect_error("\"\xc3\"", 3, "line 1 column 2: Invalid UTF-8 in string");
    expect_error("\"\xed\xa0\x80\"", 5, "line 1 column 2: Invalid UTF-8 in string");
    expect_error("nul", 3, "line 1 column 1: Expecting value");
    expect_error("-NaN", 4, "line 1 column 1: Expecting value");
    expect_error("[1]\0", 4, "line 1 column 4: Extra data");
    expect_error("\n\n  }", 5, "line 3 column 3: Expecting value");
    /* err may be NULL; out must not be. */
    kiln__json_t *j = NULL;
    ASSERT_EQ_INT(kiln__json_parse("[", 1, &j, NULL, 0), KILN_EPARSE);
    ASSERT_EQ_INT(kiln__json_parse("1", 1, NULL, NULL, 0), KILN_EINVAL);
    char tiny[8];
    ASSERT_EQ_INT(kiln__json_parse("[", 1, &j, tiny, sizeof tiny), KILN_EPARSE);
    ASSERT_STR_EQ(tiny, "line 1 ");
}

static void test_depth_limit(void)
{
    char *buf = malloc(200001);
    for (int depth = KILN_JSON_MAX_DEPTH; depth <= KILN_JSON_MAX_DEPTH + 1; depth++) {
        memset(buf, '[', (size_t)depth);
        memset(buf + depth, ']', (size_t)depth);
        kiln__json_t *j = NULL;
        char err[128];
        int rc = kiln__json_parse(buf, (size_t)depth * 2, &j, err, sizeof err);
        if (depth == KILN_JSON_MAX_DEPTH) {
            ASSERT_EQ_INT(rc, 0);
            kiln__json_free(j);
        } else {
            ASSERT_EQ_INT(rc, KILN_EPARSE);
            ASSERT_STR_EQ(err, "line 1 column 513: Nesting too deep");
        }
    }
    memset(buf, '[', 200000);
    kiln__json_t *j = NULL;
    ASSERT_EQ_INT(kiln__json_parse(buf, 200000, &j, NULL, 0), KILN_EPARSE);
    for (int i = 0; i < 200000; i++)
        buf[i] = i % 2 ? '[' : '{';
    ASSERT_EQ_INT(kiln__json_parse(buf, 200000, &j, NULL, 0), KILN_EPARSE);
    free(buf);
}

static void test_dump_python(void)
{
    expect_dump("{\"a\": [1, 2.5, \"\xc3\xa9\\n\"], \"b\": null}", KILN_JSON_PYTHON,
                "{\"a\": [1, 2.5, \"\\u00e9\\n\"], \"b\": null}");
    expect_dump("[\"\\u0000\\u001f\\u007f/\\\"\\\\\\b\\f\\t\\r\", \"\xf0\x9f\x98\x80\"]",
                KILN_JSON_PYTHON,
                "[\"\\u0000\\u001f\\u007f/\\\"\\\\\\b\\f\\t\\r\", \"\\ud83d\\ude00\"]");
    expect_dump("[0.1, 0.00001, 1e16, 123456789012345678, 8.0, -0.0, 1.7976931348623157e308,"
                " 5e-324, NaN, Infinity, -Infinity, true, false, {}, []]",
                KILN_JSON_PYTHON,
                "[0.1, 1e-05, 1e+16, 123456789012345678, 8.0, -0.0, 1.7976931348623157e+308, "
                "5e-324, NaN, Infinity, -Infinity, true, false, {}, []]");
    expect_dump("[1e22, 1e-7, 0.0001, 123456789.125, 1e15, 9223372036854775808.0, -2.5e-310,"
                " 9999999999999998.0, 0.3, 2e-4, 1.5e300, 100, 1E2]",
                KILN_JSON_PYTHON,
                "[1e+22, 1e-07, 0.0001, 123456789.125, 1000000000000000.0, "
                "9.223372036854776e+18, -2.5e-310, 9999999999999998.0, 0.3, 0.0002, 1.5e+300, "
                "100, 100.0]");
    expect_dump("{\"k\xc3\xa9y\": {\"n\": [[]], \"x\": 0.1}}", KILN_JSON_PYTHON,
                "{\"k\\u00e9y\": {\"n\": [[]], \"x\": 0.1}}");
    expect_dump("\"\xe2\x82\xac\xf4\x8f\xbf\xbf\"", KILN_JSON_PYTHON,
                "\"\\u20ac\\udbff\\udfff\"");
    /* Strings built in code need not be UTF-8: bad bytes become U+FFFD. */
    kiln__json_t *j = kiln__json_new_stringn("a\xff\xc3" "b", 4);
    char *s = dump(j, KILN_JSON_PYTHON);
    ASSERT_STR_EQ(s, "\"a\\ufffd\\ufffdb\"");
    free(s);
    s = dump(j, KILN_JSON_COMPACT);
    ASSERT_STR_EQ(s, "\"a\xef\xbf\xbd\xef\xbf\xbd" "b\"");
    free(s);
    kiln__json_free(j);
    s = kiln__json_dump(NULL, KILN_JSON_PYTHON, NULL);
    ASSERT_STR_EQ(s, "null");
    free(s);
}

static void test_dump_compact_pretty(void)
{
    const char *in = "{\"a\": [1, {\"b\": null}], \"c\": {}, \"\xc3\xa9\": \"\x7f\\u0001\"}";
    expect_dump(in, KILN_JSON_COMPACT,
                "{\"a\":[1,{\"b\":null}],\"c\":{},\"\xc3\xa9\":\"\x7f\\u0001\"}");
    expect_dump(in, KILN_JSON_PRETTY,
                "{\n  \"a\": [\n    1,\n    {\n      \"b\": null\n    }\n  ],\n  \"c\": {},\n"
                "  \"\xc3\xa9\": \"\x7f\\u0001\"\n}");
    expect_dump("[]", KILN_JSON_PRETTY, "[]");
    expect_dump("[0.5,-1e-9,3]", KILN_JSON_COMPACT, "[0.5,-1e-09,3]");
    kiln__json_t *j = parse_ok("[\"x\\u0000y\"]");
    size_t len = 0;
    char *s = kiln__json_dump(j, KILN_JSON_COMPACT, &len);
    ASSERT_STR_EQ(s, "[\"x\\u0000y\"]");
    ASSERT_EQ_INT(len, 12);
    free(s);
    kiln__json_free(j);
}

/* Under a locale whose radix is ',' parsing and writing must not change. */
static void test_locale_independent(void)
{
    const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "C.UTF-8"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (setlocale(LC_NUMERIC, names[i]))
            break;
    expect_dump("[0.5, 1.25e-7, 3.0]", KILN_JSON_PYTHON, "[0.5, 1.25e-07, 3.0]");
    setlocale(LC_NUMERIC, "C");
}

static void test_equal_hash(void)
{
    const char *same[][2] = {
        {"{\"a\": 1, \"b\": [true, null, \"s\"]}", "{\"b\": [true, null, \"s\"], \"a\": 1.0}"},
        {"[1, 2.5, -0.0]", "[1.0, 2.5, 0]"},
        {"18446744073709551615", "18446744073709551615"},
        {"9223372036854775808", "9223372036854775808.0"},
        {"NaN", "NaN"},
        {"\"\\u00e9\"", "\"\xc3\xa9\""},
        {"{}", "{}"},
    };
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        kiln__json_t *a = parse_ok(same[i][0]), *b = parse_ok(same[i][1]);
        if (!kiln__json_equal(a, b))
            kiln_test_fail(__FILE__, __LINE__, "%s should equal %s", same[i][0], same[i][1]);
        ASSERT(kiln__json_hash(a, 7) == kiln__json_hash(b, 7));
        ASSERT(kiln__json_hash(a, 7) != kiln__json_hash(a, 8));
        kiln__json_free(a);
        kiln__json_free(b);
    }
    const char *differ[][2] = {
        {"{\"a\": 1}", "{\"a\": 2}"},       {"{\"a\": 1}", "{\"b\": 1}"},
        {"[1, 2]", "[2, 1]"},               {"[1]", "[1, 1]"},
        {"1", "\"1\""},                     {"9007199254740993", "9007199254740992.0"},
        {"18446744073709551615", "-1"},     {"0.1", "0.10000000000000002"},
        {"null", "false"},                  {"\"a\\u0000b\"", "\"a\\u0000c\""},
        {"{\"a\": 1, \"b\": 2}", "{\"a\": 1, \"c\": 2}"}, {"[[]]", "[{}]"},
    };
    for (size_t i = 0; i < sizeof differ / sizeof *differ; i++) {
        kiln__json_t *a = parse_ok(differ[i][0]), *b = parse_ok(differ[i][1]);
        if (kiln__json_equal(a, b))
            kiln_test_fail(__FILE__, __LINE__, "%s should differ from %s", differ[i][0],
                           differ[i][1]);
        ASSERT(kiln__json_hash(a, 0) != kiln__json_hash(b, 0));
        kiln__json_free(a);
        kiln__json_free(b);
    }
}

static void test_build_and_edit(void)
{
    kiln__json_t *o = kiln__json_new_object();
    ASSERT_EQ_INT(kiln__json_set(o, "seed", kiln__json_new_u64(UINT64_MAX)), 0);
    ASSERT_EQ_INT(kiln__json_set(o, "cfg", kiln__json_new_number(7.5)), 0);
    ASSERT_EQ_INT(kiln__json_set(o, "name", kiln__json_new_string("x")), 0);
    kiln__json_t *arr = kiln__json_new_array();
    ASSERT_EQ_INT(kiln__json_append(arr, kiln__json_new_int(-3)), 0);
    ASSERT_EQ_INT(kiln__json_append(arr, kiln__json_new_bool(true)), 0);
    ASSERT_EQ_INT(kiln__json_append(arr, kiln__json_new_null()), 0);
    ASSERT_EQ_INT(kiln__json_set(o, "list", arr), 0);
    char *s = dump(o, KILN_JSON_PYTHON);
    ASSERT_STR_EQ(s, "{\"seed\": 18446744073709551615, \"cfg\": 7.5, \"name\": \"x\", "
                     "\"list\": [-3, true, null]}");
    free(s);
    /* Replacing keeps the position; arr is still owned by o and usable. */
    ASSERT_EQ_INT(kiln__json_set(o, "cfg", kiln__json_new_int(8)), 0);
    ASSERT_EQ_INT(kiln__json_append(arr, kiln__json_new_stringn("a\0b", 3)), 0);
    ASSERT_EQ_INT(kiln__json_get_int(o, "cfg", 0), 8);
    ASSERT_NEAR(kiln__json_get_number(o, "cfg", 0), 8.0, 0);
    ASSERT_EQ_INT(kiln__json_get_int(o, "seed", -1), -1);
    ASSERT_EQ_INT(kiln__json_get_int(o, "name", -2), -2);
    ASSERT_STR_EQ(kiln__json_get_string(o, "cfg", "dflt"), "dflt");
    kiln__json_t *copy = kiln__json_dup(o);
    ASSERT(copy && kiln__json_equal(o, copy));
    s = dump(copy, KILN_JSON_COMPACT);
    ASSERT_STR_EQ(s, "{\"seed\":18446744073709551615,\"cfg\":8,\"name\":\"x\","
                     "\"list\":[-3,true,null,\"a\\u0000b\"]}");
    free(s);
    /* take / remove, including the last member (the tail pointer must follow). */
    kiln__json_t *t = kiln__json_take(o, "list");
    ASSERT(t == arr && t->next == NULL && o->count == 3);
    ASSERT_STR_EQ(o->last->key, "name");
    ASSERT_EQ_INT(kiln__json_remove(o, "seed"), 0);
    ASSERT_EQ_INT(kiln__json_remove(o, "seed"), KILN_ENOTFOUND);
    ASSERT(kiln__json_take(o, "nope") == NULL);
    ASSERT_EQ_INT(kiln__json_set(o, "again", t), 0);
    s = dump(o, KILN_JSON_COMPACT);
    ASSERT_STR_EQ(s, "{\"cfg\":8,\"name\":\"x\",\"again\":[-3,true,null,\"a\\u0000b\"]}");
    free(s);
    ASSERT(!kiln__json_equal(o, copy));
    ASSERT_EQ_INT(kiln__json_remove(o, "again"), 0);
    ASSERT_EQ_INT(kiln__json_remove(o, "name"), 0);
    ASSERT_EQ_INT(kiln__json_remove(o, "cfg"), 0);
    ASSERT(o->child == NULL && o->last == NULL && o->count == 0);
    ASSERT_EQ_INT(kiln__json_set(o, "k", kiln__json_new_int(1)), 0);
    ASSERT(o->child == o->last);
    /* Misuse is refused without taking ownership. */
    kiln__json_t *n = kiln__json_new_null();
    ASSERT_EQ_INT(kiln__json_append(o, n), KILN_EINVAL);
    ASSERT_EQ_INT(kiln__json_set(copy->child, "x", n), KILN_EINVAL);
    ASSERT_EQ_INT(kiln__json_set(o, NULL, n), KILN_EINVAL);
    kiln__json_free(n);
    kiln__json_t *u = kiln__json_new_u64(5);
    ASSERT(u->type == KILN_JSON_INT && !u->is_u64 && u->i == 5);
    kiln__json_free(u);
    kiln__json_free(o);
    kiln__json_free(copy);
}

/* A 10 MB object of 100k members: parsing, lookups, equality and a writer round trip must
 * all be linear enough to finish well inside the timeout under AddressSanitizer. */
static void test_big_document(void)
{
    enum { N = 100000 };
    kiln__sbuf_t b = KILN_SBUF_INIT, rev = KILN_SBUF_INIT;
    char pad[81];
    memset(pad, 'p', 80);
    pad[80] = 0;
    kiln__sbuf_putc(&b, '{');
    kiln__sbuf_putc(&rev, '{');
    for (int i = 0; i < N; i++) {
        kiln__sbuf_printf(&b, "%s\"key%06d\": \"%s%d\"", i ? ", " : "", i, pad, i);
        kiln__sbuf_printf(&rev, "%s\"key%06d\": \"%s%d\"", i ? "," : "", N - 1 - i, pad, N - 1 - i);
    }
    kiln__sbuf_puts(&b, ", \"key000007\": 7}");
    kiln__sbuf_puts(&rev, "}");
    ASSERT_CMP_INT(b.len, >, 10000000);
    kiln__json_t *j = NULL, *r = NULL;
    ASSERT_EQ_INT(kiln__json_parse(b.data, b.len, &j, NULL, 0), 0);
    ASSERT_EQ_INT(kiln__json_parse(rev.data, rev.len, &r, NULL, 0), 0);
    ASSERT_EQ_INT(j->count, N);
    ASSERT_EQ_INT(kiln__json_get_int(j, "key000007", 0), 7);
    ASSERT(!kiln__json_equal(j, r));
    ASSERT(kiln__json_hash(j, 1) != kiln__json_hash(r, 1));
    char want[96];
    snprintf(want, sizeof want, "%s7", pad);
    ASSERT_EQ_INT(kiln__json_set(j, "key000007", kiln__json_new_string(want)), 0);
    ASSERT(kiln__json_equal(j, r));
    ASSERT(kiln__json_hash(j, 1) == kiln__json_hash(r, 1));
    size_t len = 0;
    char *s = kiln__json_dump(j, KILN_JSON_PYTHON, &len);
    ASSERT(s && len == b.len - strlen(", \"key000007\": 7"));
    kiln__json_t *back = NULL;
    ASSERT_EQ_INT(kiln__json_parse(s, len, &back, NULL, 0), 0);
    ASSERT(kiln__json_equal(back, j));
    free(s);
    kiln__json_free(back);
    kiln__json_free(j);
    kiln__json_free(r);
    kiln__sbuf_free(&b);
    kiln__sbuf_free(&rev);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32) % n;
}

/* Any text that parses must survive every writer, and the compact and Python forms must
 * parse back to an equal document. */
static int check_round_trip(const char *text, size_t len)
{
    kiln__json_t *j = NULL;
    char err[128];
    int rc = kiln__json_parse(text, len, &j, err, sizeof err);
    if (rc != 0) {
        ASSERT_EQ_INT(rc, KILN_EPARSE);
        ASSERT(j == NULL && strncmp(err, "line ", 5) == 0);
        return 0;
    }
    for (int style = KILN_JSON_COMPACT; style <= KILN_JSON_PRETTY; style++) {
        size_t n = 0;
        char *s = kiln__json_dump(j, (kiln__json_style_t)style, &n);
        ASSERT(s != NULL);
        kiln__json_t *back = NULL;
        if (kiln__json_parse(s, n, &back, err, sizeof err) != 0)
            kiln_test_fail(__FILE__, __LINE__, "dump does not parse (%s): %s", err, s);
        ASSERT(kiln__json_equal(j, back));
        ASSERT(kiln__json_hash(j, 3) == kiln__json_hash(back, 3));
        kiln__json_free(back);
        free(s);
    }
    kiln__json_t *copy = kiln__json_dup(j);
    ASSERT(kiln__json_equal(copy, j));
    kiln__json_free(copy);
    kiln__json_free(j);
    return 1;
}

static void test_fuzz_no_crash(void)
{
    static const char *seeds[] = {
        "{\"1\": {\"inputs\": {\"seed\": 18446744073709551615, \"cfg\": 7.5, \"text\": "
        "\"a \\\"cat\\\" \\u00e9\\ud83d\\ude00\"}, \"class_type\": \"KSampler\"}}",
        "[1, -2, 3.5e-3, true, false, null, NaN, -Infinity, [], {}, [[{\"a\": [\"b\"]}]]]",
        "{\"k\": \"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\\n\\t\\\\\", \"n\": -0.0, \"e\": 1E+2}",
        "[\"\\ud800\", \"\\u0000\", 12345678901234567890123, -9223372036854775808]",
    };
    static const char bytes[] = "{}[],:\"\\u0123456789-+.eEtrufalsnNIy \n\t"
                                "\x01\x7f\xc3\xa9\xed\xff";
    size_t nseeds = sizeof seeds / sizeof *seeds;
    char buf[512];
    for (size_t s = 0; s < nseeds; s++) {
        size_t len = strlen(seeds[s]);
        check_round_trip(seeds[s], len);
        for (size_t cut = 0; cut < len; cut++) {
            kiln__json_t *j = NULL;
            /* Every proper prefix of a seed is incomplete (seeds end with a bracket). */
            char *copy = malloc(cut ? cut : 1); /* exact size: ASan catches overreads */
            memcpy(copy, seeds[s], cut);
            ASSERT_EQ_INT(kiln__json_parse(copy, cut, &j, NULL, 0), KILN_EPARSE);
            free(copy);
        }
    }
    int parsed = 0;
    for (int iter = 0; iter < 100000; iter++) {
        const char *seed = seeds[rnd((uint32_t)nseeds)];
        size_t len = strlen(seed);
        memcpy(buf, seed, len);
        for (int m = 1 + (int)rnd(4); m > 0 && len > 0; m--) {
            size_t at = rnd((uint32_t)len);
            switch (rnd(4)) {
            case 0: buf[at] = bytes[rnd(sizeof bytes - 1)]; break;
            case 1: buf[at] = (char)rnd(256); break;
            case 2: memmove(buf + at, buf + at + 1, len - at - 1); len--; break;
            default:
                if (len + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = bytes[rnd(sizeof bytes - 1)];
                    len++;
                }
            }
        }
        char *copy = malloc(len ? len : 1);
        memcpy(copy, buf, len);
        parsed += check_round_trip(copy, len);
        free(copy);
    }
    /* Enough mutants stay valid for the round-trip checks to mean something. */
    printf("%d of 100000 mutants parsed\n", parsed);
    ASSERT_CMP_INT(parsed, >, 5000);
}

KILN_TEST_MAIN(TEST(test_parse_scalars), TEST(test_parse_int_limits), TEST(test_parse_strings),
               TEST(test_parse_containers), TEST(test_duplicate_keys), TEST(test_parse_errors),
               TEST(test_depth_limit), TEST(test_dump_python), TEST(test_dump_compact_pretty),
               TEST(test_locale_independent), TEST(test_equal_hash), TEST(test_build_and_edit),
               TEST(test_big_document), TEST_TIMEOUT(test_fuzz_no_crash, 120))
