/* Tests for engine/value: every value kind and its getters, exact 64-bit integers (u64
 * seeds beyond INT64_MAX), refcounting of values, tensors and objects, the JSON
 * conversions, and the live count returning to zero. */
#include "runner.h"

#include <kiln/kiln.h>
#include <stdatomic.h>

#include "runtime/tensor_int.h"
#include "value/value.h"

static void test_int_and_u64(void)
{
    long live0 = kiln__value_live_count();
    kiln_value_t *v = kiln_value_new_int(-7);
    ASSERT(v != NULL);
    ASSERT_EQ_INT(kiln__value_live_count(), live0 + 1);
    ASSERT_EQ_INT(kiln_value_kind(v), KILN_VALUE_INT);
    ASSERT_STR_EQ(kiln_value_type(v), "INT");
    int64_t i = 0;
    uint64_t u = 0;
    double d = 0;
    ASSERT_EQ_INT(kiln_value_get_int(v, &i), 0);
    ASSERT_EQ_INT(i, -7);
    ASSERT_EQ_INT(kiln_value_get_u64(v, &u), KILN_ERANGE); /* negative */
    ASSERT_EQ_INT(kiln_value_get_float(v, &d), 0);           /* INT reads as FLOAT */
    ASSERT_NEAR(d, -7.0, 0);
    int b;
    ASSERT_EQ_INT(kiln_value_get_bool(v, &b), KILN_ETYPE);
    const char *s;
    ASSERT_EQ_INT(kiln_value_get_string(v, &s, NULL), KILN_ETYPE);
    ASSERT(kiln_value_get_tensor(v) == NULL);
    ASSERT(kiln_value_get_object(v, NULL) == NULL);
    kiln_value_release(v);

    /* The extremes of int64 stay exact. */
    v = kiln_value_new_int(INT64_MIN);
    ASSERT_EQ_INT(kiln_value_get_int(v, &i), 0);
    ASSERT(i == INT64_MIN);
    kiln_value_release(v);

    /* A u64 that fits int64 is an ordinary INT. */
    v = kiln_value_new_u64((uint64_t)INT64_MAX);
    ASSERT_EQ_INT(kiln_value_get_int(v, &i), 0);
    ASSERT(i == INT64_MAX);
    ASSERT_EQ_INT(kiln_value_get_u64(v, &u), 0);
    ASSERT(u == (uint64_t)INT64_MAX);
    kiln_value_release(v);

    /* Beyond INT64_MAX: only the u64 and float getters can read it. */
    v = kiln_value_new_u64(UINT64_MAX);
    ASSERT_EQ_INT(kiln_value_kind(v), KILN_VALUE_INT);
    ASSERT_EQ_INT(kiln_value_get_int(v, &i), KILN_ERANGE);
    ASSERT_EQ_INT(kiln_value_get_u64(v, &u), 0);
    ASSERT(u == UINT64_MAX);
    ASSERT_EQ_INT(kiln_value_get_float(v, &d), 0);
    ASSERT_NEAR(d, 18446744073709551615.0, 0);
    kiln_value_release(v);
    v = kiln_value_new_u64((uint64_t)INT64_MAX + 1);
    ASSERT_EQ_INT(kiln_value_get_u64(v, &u), 0);
    ASSERT(u == 9223372036854775808ull);
    kiln_value_release(v);
    ASSERT_EQ_INT(kiln__value_live_count(), live0);
}

static void test_float_bool_string(void)
{
    long live0 = kiln__value_live_count();
    kiln_value_t *f = kiln_value_new_float(0.1);
    double d = 0;
    int64_t i;
    ASSERT_EQ_INT(kiln_value_kind(f), KILN_VALUE_FLOAT);
    ASSERT_STR_EQ(kiln_value_type(f), "FLOAT");
    ASSERT_EQ_INT(kiln_value_get_float(f, &d), 0);
    ASSERT(d == 0.1);
    ASSERT_EQ_INT(kiln_value_get_int(f, &i), KILN_ETYPE); /* no silent truncation */
    kiln_value_release(f);

    kiln_value_t *b = kiln_value_new_bool(5);
    int bv = -1;
    ASSERT_EQ_INT(kiln_value_kind(b), KILN_VALUE_BOOL);
    ASSERT_STR_EQ(kiln_value_type(b), "BOOLEAN");
    ASSERT_EQ_INT(kiln_value_get_bool(b, &bv), 0);
    ASSERT_EQ_INT(bv, 1); /* normalized */
    ASSERT_EQ_INT(kiln_value_get_float(b, &d), KILN_ETYPE);
    kiln_value_release(b);

    /* Strings are copied, keep embedded NULs, and are NUL-terminated. */
    char buf[] = {'a', '\0', 'b', 'c'};
    kiln_value_t *s = kiln_value_new_string(buf, sizeof buf);
    buf[0] = 'z';
    const char *p;
    size_t len = 0;
    ASSERT_EQ_INT(kiln_value_kind(s), KILN_VALUE_STRING);
    ASSERT_STR_EQ(kiln_value_type(s), "STRING");
    ASSERT_EQ_INT(kiln_value_get_string(s, &p, &len), 0);
    ASSERT_EQ_INT(len, 4);
    ASSERT(memcmp(p, "a\0bc", 5) == 0);
    ASSERT_EQ_INT(kiln_value_get_int(s, &i), KILN_ETYPE);
    kiln_value_release(s);
    s = kiln_value_new_string(NULL, 0);
    ASSERT_EQ_INT(kiln_value_get_string(s, &p, &len), 0);
    ASSERT_STR_EQ(p, "");
    ASSERT_EQ_INT(len, 0);
    kiln_value_release(s);
    ASSERT(kiln_value_new_string(NULL, 3) == NULL);

    /* NULL arguments are errors, never crashes. */
    ASSERT_EQ_INT(kiln_value_kind(NULL), KILN_VALUE_NONE);
    ASSERT_STR_EQ(kiln_value_type(NULL), "NONE");
    ASSERT_EQ_INT(kiln_value_get_int(NULL, &i), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_value_retain(NULL), KILN_EINVAL);
    ASSERT_EQ_INT(kiln_value_release(NULL), 0);
    ASSERT_EQ_INT(kiln__value_live_count(), live0);
}

static void test_refcount(void)
{
    long live0 = kiln__value_live_count();
    kiln_value_t *v = kiln_value_new_int(1);
    ASSERT_EQ_INT(kiln_value_retain(v), 0);
    ASSERT_EQ_INT(kiln_value_retain(v), 0);
    ASSERT_EQ_INT(kiln_value_release(v), 0);
    ASSERT_EQ_INT(kiln_value_release(v), 0);
    ASSERT_EQ_INT(kiln__value_live_count(), live0 + 1); /* one reference left */
    int64_t i;
    ASSERT_EQ_INT(kiln_value_get_int(v, &i), 0);
    ASSERT_EQ_INT(kiln_value_release(v), 0);
    ASSERT_EQ_INT(kiln__value_live_count(), live0);
}

static int g_freed;
static void count_free(void *p)
{
    g_freed++;
    free(p);
}

static void test_tensor_and_object(void)
{
    long live0 = kiln__value_live_count();
    int64_t shape[2] = {4, 4};
    kiln_tensor_t *t = kiln_tensor_new(KILN_DTYPE_F32, 2, shape); /* [4, 4] */
    ASSERT(t != NULL);
    char type[8] = "IMAGE";
    kiln_value_t *v = kiln_value_new_tensor(type, t);
    ASSERT(v != NULL);
    type[0] = 'X'; /* the value keeps its own copy of the type name */
    ASSERT_EQ_INT(kiln_value_kind(v), KILN_VALUE_TENSOR);
    ASSERT_STR_EQ(kiln_value_type(v), "IMAGE");
    ASSERT(kiln_value_get_tensor(v) == t);
    ASSERT_EQ_INT(atomic_load(&t->refcount), 2);
    ASSERT_CMP_INT(kiln__value_bytes(v), >=, 64);
    kiln_tensor_release(t); /* the value's reference keeps it alive */
    ASSERT_EQ_INT(atomic_load(&t->refcount), 1);
    ((float *)kiln_tensor_data(kiln_value_get_tensor(v)))[15] = 2.0f;
    int64_t i;
    ASSERT_EQ_INT(kiln_value_get_int(v, &i), KILN_ETYPE);
    ASSERT(kiln_value_get_object(v, NULL) == NULL);
    kiln_value_release(v); /* frees the tensor too (ASan would report a leak otherwise) */
    ASSERT(kiln_value_new_tensor("IMAGE", NULL) == NULL);

    g_freed = 0;
    int *payload = malloc(sizeof *payload);
    *payload = 99;
    kiln_value_t *o = kiln_value_new_object("MODEL", payload, count_free);
    ASSERT_EQ_INT(kiln_value_kind(o), KILN_VALUE_OBJECT);
    ASSERT_STR_EQ(kiln_value_type(o), "MODEL");
    ASSERT(kiln_value_get_object(o, "MODEL") == payload);
    ASSERT(kiln_value_get_object(o, NULL) == payload);
    ASSERT(kiln_value_get_object(o, "CLIP") == NULL);
    ASSERT(kiln_value_get_tensor(o) == NULL);
    kiln_value_retain(o);
    kiln_value_release(o);
    ASSERT_EQ_INT(g_freed, 0);
    kiln_value_release(o);
    ASSERT_EQ_INT(g_freed, 1);
    /* A failed constructor still owns (and frees) what it was given. */
    int *lost = malloc(sizeof *lost);
    ASSERT(kiln_value_new_object(NULL, lost, count_free) == NULL);
    ASSERT_EQ_INT(g_freed, 2);
    ASSERT_EQ_INT(kiln__value_live_count(), live0);
}

/* Parses text, converts it with an input of the given type, returns the value. */
static kiln_value_t *from_json(const char *text, const char *type)
{
    kiln__json_t *j = NULL;
    char err[128];
    ASSERT_EQ_INT(kiln__json_parse(text, strlen(text), &j, err, sizeof err), 0);
    kiln_input_def_t def = {KILN_INPUT_DEF_INIT, .name = "x", .type = type};
    kiln_value_t *v = kiln__value_from_json(j, type ? &def : NULL);
    kiln__json_free(j);
    ASSERT(v != NULL);
    return v;
}

/* The value's text (STRING) or its JSON form (anything else), compact. */
static void expect_json(kiln_value_t *v, kiln_value_kind_t kind, const char *expected)
{
    ASSERT_EQ_INT(kiln_value_kind(v), kind);
    kiln__json_t *j = kiln__value_to_json(v);
    ASSERT(j != NULL);
    char *text = kiln__json_dump(j, KILN_JSON_COMPACT, NULL);
    ASSERT_STR_EQ(text, expected);
    free(text);
    kiln__json_free(j);
    kiln_value_release(v);
}

static void test_from_json(void)
{
    long live0 = kiln__value_live_count();
    expect_json(from_json("18446744073709551615", "INT"), KILN_VALUE_INT,
                "18446744073709551615");
    expect_json(from_json("-9223372036854775808", "INT"), KILN_VALUE_INT,
                "-9223372036854775808");
    expect_json(from_json("7.9", "INT"), KILN_VALUE_INT, "7");      /* int() truncates */
    expect_json(from_json("\"12\"", "INT"), KILN_VALUE_INT, "12");
    expect_json(from_json("true", "INT"), KILN_VALUE_INT, "1");
    expect_json(from_json("3", "FLOAT"), KILN_VALUE_FLOAT, "3.0");
    expect_json(from_json("0.25", "FLOAT"), KILN_VALUE_FLOAT, "0.25");
    expect_json(from_json("false", "BOOLEAN"), KILN_VALUE_BOOL, "false");
    expect_json(from_json("1", "BOOLEAN"), KILN_VALUE_BOOL, "true");
    expect_json(from_json("\"euler\"", "COMBO"), KILN_VALUE_STRING, "\"euler\"");
    expect_json(from_json("1.5", "COMBO"), KILN_VALUE_STRING, "\"1.5\"");
    expect_json(from_json("{\"a\": [1, 2]}", "STRING"), KILN_VALUE_STRING,
                "\"{\\\"a\\\":[1,2]}\"");
    /* Undeclared inputs and socket types: the JSON type decides. */
    expect_json(from_json("5", NULL), KILN_VALUE_INT, "5");
    expect_json(from_json("5.5", NULL), KILN_VALUE_FLOAT, "5.5");
    expect_json(from_json("\"s\"", NULL), KILN_VALUE_STRING, "\"s\"");
    expect_json(from_json("true", "*"), KILN_VALUE_BOOL, "true");
    expect_json(from_json("null", NULL), KILN_VALUE_STRING, "\"null\"");
    /* A constant the declared type cannot hold keeps its own type. */
    expect_json(from_json("\"abc\"", "INT"), KILN_VALUE_STRING, "\"abc\"");
    ASSERT(kiln__value_from_json(NULL, NULL) == NULL);
    ASSERT_EQ_INT(kiln__value_live_count(), live0);
}

static void test_to_json_and_bytes(void)
{
    int64_t shape[1] = {8};
    kiln_tensor_t *t = kiln_tensor_new(KILN_DTYPE_F32, 1, shape); /* [8] */
    expect_json(kiln_value_new_tensor("MASK", t), KILN_VALUE_TENSOR, "{\"type\":\"MASK\"}");
    kiln_tensor_release(t);
    expect_json(kiln_value_new_object("CLIP", NULL, NULL), KILN_VALUE_OBJECT,
                "{\"type\":\"CLIP\"}");
    expect_json(kiln_value_new_u64(UINT64_MAX), KILN_VALUE_INT, "18446744073709551615");
    expect_json(kiln_value_new_float(8.0), KILN_VALUE_FLOAT, "8.0");
    kiln_value_t *s = kiln_value_new_string("0123456789", 10);
    ASSERT_CMP_INT(kiln__value_bytes(s), >=, 10);
    kiln_value_t *n = kiln_value_new_int(1);
    ASSERT_CMP_INT(kiln__value_bytes(s), >, kiln__value_bytes(n));
    ASSERT_EQ_INT(kiln__value_bytes(NULL), 0);
    kiln_value_release(s);
    kiln_value_release(n);
    ASSERT_EQ_INT(kiln__value_live_count(), 0);
}

KILN_TEST_MAIN(TEST(test_int_and_u64), TEST(test_float_bool_string), TEST(test_refcount),
               TEST(test_tensor_and_object), TEST(test_from_json),
               TEST(test_to_json_and_bytes))
