/* The test harness behind tests/runner.h: forks one process per test, enforces the
 * timeout with alarm(), and prints a closing "N passed, N failed" line. */
#include "runner.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef KILN_SANITIZE
#include <sanitizer/lsan_interface.h>
#endif

static char tmpdir_path[512];

void kiln_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "  FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    exit(1);
}

const char *kiln_test_tmpdir(void)
{
    if (!tmpdir_path[0]) {
        snprintf(tmpdir_path, sizeof tmpdir_path, "/tmp/kiln_test_%d_XXXXXX", (int)getpid());
        if (!mkdtemp(tmpdir_path)) {
            perror("mkdtemp");
            exit(1);
        }
    }
    return tmpdir_path;
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char child[1024];
            snprintf(child, sizeof child, "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode))
                remove_tree(child);
            else
                unlink(child);
        }
        closedir(d);
    }
    rmdir(path);
}

char *kiln_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

int kiln_test_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int run_one(const kiln_test_t *t, int fork_each)
{
    if (!fork_each) {
        t->fn();
        return 0;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        alarm((unsigned)(t->timeout_s > 0 ? t->timeout_s : 60));
        t->fn();
        if (tmpdir_path[0] && !getenv("KILN_TEST_KEEP"))
            remove_tree(tmpdir_path);
        fflush(stdout);
#ifdef KILN_SANITIZE
        /* _exit skips the sanitizer's exit-time leak check: run it here (it exits non-zero
         * when a test leaked). */
        __lsan_do_leak_check();
#endif
        _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        fprintf(stderr, "  FAIL %s: %s\n", t->name,
                sig == SIGALRM ? "timed out" : strsignal(sig));
        return 1;
    }
    return WEXITSTATUS(status) != 0;
}

int kiln_test_main(const kiln_test_t *tests, int argc, char **argv)
{
    int fork_each = 1;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-fork"))
            fork_each = 0;
        else
            only = argv[i];
    }
    int passed = 0, failed = 0;
    for (const kiln_test_t *t = tests; t->name; t++) {
        if (only && strcmp(only, t->name) != 0)
            continue;
        double t0 = now_s();
        int bad = run_one(t, fork_each);
        printf("%s %s (%.3f s)\n", bad ? "FAIL" : "ok  ", t->name, now_s() - t0);
        fflush(stdout);
        if (bad)
            failed++;
        else
            passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
