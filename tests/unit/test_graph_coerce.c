/* Tests for engine/graph/validate_coerce.c: the Python semantics that prompt validation
 * reproduces (float repr, string repr, int() and float() of strings, str() and bool() of
 * JSON values), checked against what CPython prints. */
#include "runner.h"

#include "graph/validate_int.h"
#include "util/sbuf.h"

static const char *dump(const kiln__json_t *j)
{
    static char buf[256];
    char *s = kiln__json_dump(j, KILN_JSON_COMPACT, NULL);
    ASSERT(s != NULL);
    snprintf(buf, sizeof buf, "%s", s);
    free(s);
    return buf;
}

static const char *float_repr(double d)
{
    static char buf[64];
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__py_float_repr(&b, d);
    snprintf(buf, sizeof buf, "%s", kiln__sbuf_cstr(&b));
    kiln__sbuf_free(&b);
    return buf;
}

static void test_py_float_repr(void)
{
    ASSERT_STR_EQ(float_repr(8.0), "8.0");
    ASSERT_STR_EQ(float_repr(0.1), "0.1");
    ASSERT_STR_EQ(float_repr(1e-05), "1e-05");
    ASSERT_STR_EQ(float_repr(0.0001), "0.0001");
    ASSERT_STR_EQ(float_repr(1e16), "1e+16");
    ASSERT_STR_EQ(float_repr(1234567890123456.0), "1234567890123456.0");
    ASSERT_STR_EQ(float_repr(123456789012345678.0), "1.2345678901234568e+17");
    ASSERT_STR_EQ(float_repr(-2.5), "-2.5");
    ASSERT_STR_EQ(float_repr(-0.0), "-0.0");
    ASSERT_STR_EQ(float_repr(1.0 / 0.0), "inf");
    ASSERT_STR_EQ(float_repr(-1.0 / 0.0), "-inf");
    ASSERT_STR_EQ(float_repr(0.0 / 0.0), "nan");
    ASSERT_STR_EQ(float_repr(100.0), "100.0");
    ASSERT_STR_EQ(float_repr(1.5e300), "1.5e+300");
}

static const char *repr_str(const char *s)
{
    static char buf[128];
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__py_repr_str(&b, s, strlen(s));
    snprintf(buf, sizeof buf, "%s", kiln__sbuf_cstr(&b));
    kiln__sbuf_free(&b);
    return buf;
}

static void test_py_repr_str(void)
{
    ASSERT_STR_EQ(repr_str("abc"), "'abc'");
    ASSERT_STR_EQ(repr_str("it's"), "\"it's\"");
    ASSERT_STR_EQ(repr_str("a'b\"c"), "'a\\'b\"c'");
    ASSERT_STR_EQ(repr_str("t\tn\n\\\x01"), "'t\\tn\\n\\\\\\x01'");
    ASSERT_STR_EQ(repr_str("caf\xc3\xa9"), "'caf\xc3\xa9'");
}

/* int() of a string: "" when it raises, else the resulting JSON. */
static const char *py_int_of(const char *s)
{
    static char buf[256];
    kiln__json_t *v = kiln__json_new_string(s), *out = NULL;
    kiln__sbuf_t text = KILN_SBUF_INIT;
    int kind = kiln__py_int(v, &out, &text);
    if (kind == KILN_PYINT_OK)
        snprintf(buf, sizeof buf, "%s", dump(out));
    else if (kind == KILN_PYINT_BIG)
        snprintf(buf, sizeof buf, "big:%s", text.data);
    else
        snprintf(buf, sizeof buf, "%s", "");
    kiln__json_free(out);
    kiln__json_free(v);
    kiln__sbuf_free(&text);
    return buf;
}

static void test_py_int_strings(void)
{
    ASSERT_STR_EQ(py_int_of(" 42 "), "42");
    ASSERT_STR_EQ(py_int_of("+7"), "7");
    ASSERT_STR_EQ(py_int_of("-0"), "0");
    ASSERT_STR_EQ(py_int_of("007"), "7");
    ASSERT_STR_EQ(py_int_of("1_000"), "1000");
    ASSERT_STR_EQ(py_int_of("-9223372036854775808"), "-9223372036854775808");
    ASSERT_STR_EQ(py_int_of("99999999999999999999"), "big:99999999999999999999");
    ASSERT_STR_EQ(py_int_of("1__0"), "");
    ASSERT_STR_EQ(py_int_of("_1"), "");
    ASSERT_STR_EQ(py_int_of("1_"), "");
    ASSERT_STR_EQ(py_int_of(""), "");
    ASSERT_STR_EQ(py_int_of("- 1"), "");
    ASSERT_STR_EQ(py_int_of("0x10"), "");
    ASSERT_STR_EQ(py_int_of("1e3"), "");
}

/* float() of a string: "err" when it raises, else the Python repr of the result. */
static const char *py_float_of(const char *s)
{
    static char buf[64];
    kiln__json_t *v = kiln__json_new_string(s);
    kiln__sbuf_t exc = KILN_SBUF_INIT;
    double d;
    if (kiln__py_float(v, &d, &exc) == 0)
        snprintf(buf, sizeof buf, "%s", float_repr(d));
    else
        snprintf(buf, sizeof buf, "err");
    kiln__json_free(v);
    kiln__sbuf_free(&exc);
    return buf;
}

static void test_py_float_strings(void)
{
    ASSERT_STR_EQ(py_float_of(" 2.5 "), "2.5");
    ASSERT_STR_EQ(py_float_of("1_0.5"), "10.5");
    ASSERT_STR_EQ(py_float_of("1e5"), "100000.0");
    ASSERT_STR_EQ(py_float_of(".5"), "0.5");
    ASSERT_STR_EQ(py_float_of("5."), "5.0");
    ASSERT_STR_EQ(py_float_of("-Infinity"), "-inf");
    ASSERT_STR_EQ(py_float_of("nan"), "nan");
    ASSERT_STR_EQ(py_float_of("1e999"), "inf");
    ASSERT_STR_EQ(py_float_of("."), "err");
    ASSERT_STR_EQ(py_float_of("e5"), "err");
    ASSERT_STR_EQ(py_float_of("1e"), "err");
    ASSERT_STR_EQ(py_float_of("0x10"), "err");
    ASSERT_STR_EQ(py_float_of("1_.5"), "err");
    ASSERT_STR_EQ(py_float_of(""), "err");
    ASSERT_STR_EQ(py_float_of("infinit"), "err");
}

/* str() and bool() of parsed JSON text. */
static const char *py_str_of(const char *json)
{
    static char buf[256];
    kiln__json_t *v = NULL;
    char err[64];
    ASSERT_EQ_INT(kiln__json_parse(json, strlen(json), &v, err, sizeof err), 0);
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__py_str(&b, v);
    snprintf(buf, sizeof buf, "%s|%s", kiln__sbuf_cstr(&b), kiln__py_bool(v) ? "T" : "F");
    kiln__sbuf_free(&b);
    kiln__json_free(v);
    return buf;
}

static void test_py_str_bool(void)
{
    ASSERT_STR_EQ(py_str_of("null"), "None|F");
    ASSERT_STR_EQ(py_str_of("true"), "True|T");
    ASSERT_STR_EQ(py_str_of("0"), "0|F");
    ASSERT_STR_EQ(py_str_of("-0.0"), "-0.0|F");
    ASSERT_STR_EQ(py_str_of("NaN"), "nan|T");
    ASSERT_STR_EQ(py_str_of("18446744073709551615"), "18446744073709551615|T");
    ASSERT_STR_EQ(py_str_of("\"false\""), "false|T");
    ASSERT_STR_EQ(py_str_of("\"\""), "|F");
    ASSERT_STR_EQ(py_str_of("[]"), "[]|F");
    ASSERT_STR_EQ(py_str_of("{}"), "{}|F");
    ASSERT_STR_EQ(py_str_of("[1, 2.0, \"a\", null, {\"k\": false}]"),
                  "[1, 2.0, 'a', None, {'k': False}]|T");
}

KILN_TEST_MAIN(TEST(test_py_float_repr), TEST(test_py_repr_str), TEST(test_py_int_strings),
               TEST(test_py_float_strings), TEST(test_py_str_bool))
