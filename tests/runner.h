/* A small test harness: each test is a function run in its own forked process with a
 * timeout, so a crash or hang fails that test only. ASSERT macros print both operands.
 *
 *   static void test_parse_empty(void) { ASSERT_EQ_INT(parse("{}"), 0); }
 *   KILN_TEST_MAIN(TEST(test_parse_empty), TEST_TIMEOUT(test_slow, 60))
 *
 * Run one test with `./test_x NAME`; `--no-fork` runs in-process (for a debugger). */
#ifndef KILN_TESTS_RUNNER_H
#define KILN_TESTS_RUNNER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct kiln_test {
    const char *name;
    void (*fn)(void);
    int timeout_s;   /* 0: the default of 60 s */
} kiln_test_t;

int kiln_test_main(const kiln_test_t *tests, int argc, char **argv);

/* Prints the failure and ends the test process with status 1. */
void kiln_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

/* A scratch directory unique to this test process (created on first use, removed after
 * the test unless KILN_TEST_KEEP is set). */
const char *kiln_test_tmpdir(void);

/* Reads a whole file into a NUL-terminated buffer (free with free()); NULL on failure. */
char *kiln_test_read_file(const char *path, size_t *len);

/* Writes a buffer to a file; returns 0 on success. */
int kiln_test_write_file(const char *path, const void *data, size_t len);

#define TEST(fn) {#fn, fn, 0}
#define TEST_TIMEOUT(fn, s) {#fn, fn, (s)}
#define KILN_TEST_MAIN(...)                                                  \
    int main(int argc, char **argv)                                          \
    {                                                                        \
        static const kiln_test_t kiln_tests_[] = {__VA_ARGS__, {0, 0, 0}};   \
        return kiln_test_main(kiln_tests_, argc, argv);                      \
    }

#define ASSERT(cond)                                                         \
    do {                                                                     \
        if (!(cond))                                                         \
            kiln_test_fail(__FILE__, __LINE__, "assertion failed: %s", #cond); \
    } while (0)

#define ASSERT_EQ_INT(a, b)                                                  \
    do {                                                                     \
        long long a_ = (long long)(a), b_ = (long long)(b);                  \
        if (a_ != b_)                                                        \
            kiln_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_); \
    } while (0)

#define ASSERT_NE_INT(a, b)                                                  \
    do {                                                                     \
        long long a_ = (long long)(a), b_ = (long long)(b);                  \
        if (a_ == b_)                                                        \
            kiln_test_fail(__FILE__, __LINE__, "%s != %s: both %lld", #a, #b, a_); \
    } while (0)

#define ASSERT_CMP_INT(a, op, b)                                             \
    do {                                                                     \
        long long a_ = (long long)(a), b_ = (long long)(b);                  \
        if (!(a_ op b_))                                                     \
            kiln_test_fail(__FILE__, __LINE__, "%s %s %s: %lld vs %lld", #a, #op, #b, a_, b_); \
    } while (0)

#define ASSERT_STR_EQ(a, b)                                                  \
    do {                                                                     \
        const char *a_ = (a), *b_ = (b);                                     \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                               \
            kiln_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b, \
                           a_ ? a_ : "(null)", b_ ? b_ : "(null)");          \
    } while (0)

#define ASSERT_STR_CONTAINS(hay, needle)                                     \
    do {                                                                     \
        const char *h_ = (hay), *n_ = (needle);                              \
        if (!h_ || !strstr(h_, n_))                                          \
            kiln_test_fail(__FILE__, __LINE__, "%s does not contain \"%s\": \"%s\"", #hay, \
                           n_, h_ ? h_ : "(null)");                          \
    } while (0)

#define ASSERT_NEAR(a, b, tol)                                               \
    do {                                                                     \
        double a_ = (double)(a), b_ = (double)(b), t_ = (double)(tol);       \
        if (!(a_ - b_ <= t_ && b_ - a_ <= t_))                               \
            kiln_test_fail(__FILE__, __LINE__, "%s ~= %s: %.9g vs %.9g (tol %g)", #a, #b, a_, \
                           b_, t_);                                          \
    } while (0)

#endif
