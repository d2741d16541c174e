/* Tests of the core pack's output naming (ComfyUI's get_save_image_path rules): prefix
 * tokens, subfolders and escaping prefixes, the counter scan over existing files
 * (including 6-digit counters and other prefixes), exclusive creation under concurrency,
 * and LoadImage's annotated input names. */
#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/error.h"
#include "runner.h"

#include "../../nodes/core/file_naming.h"

static void touch(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ASSERT_EQ_INT(kiln_test_write_file(path, "x", 1), 0);
}

static const char *subdir(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", kiln_test_tmpdir(), name);
    ASSERT_EQ_INT(kiln__core_mkdirs(path), 0);
    return path;
}

static void test_expand_tokens(void)
{
    struct tm tm = {.tm_year = 2024 - 1900, .tm_mon = 2, .tm_mday = 7, .tm_hour = 9,
                    .tm_min = 5, .tm_sec = 3};
    char out[256];
    ASSERT_EQ_INT(kiln__core_naming_expand("img_%width%x%height%_%year%-%month%-%day%_%hour%"
                                           "%minute%%second%_%batch_num%_%foo%",
                                           640, 480, &tm, out, sizeof out), 0);
    ASSERT_STR_EQ(out, "img_640x480_2024-03-07_090503_%batch_num%_%foo%");
    ASSERT_EQ_INT(kiln__core_naming_expand("ComfyUI", 1, 1, &tm, out, sizeof out), 0);
    ASSERT_STR_EQ(out, "ComfyUI");
    ASSERT_EQ_INT(kiln__core_naming_expand("%width%%", 1, 1, &tm, out, sizeof out), 0);
    ASSERT_STR_EQ(out, "1%");
    ASSERT_EQ_INT(kiln__core_naming_expand("abcdef", 1, 1, &tm, out, 6), KILN_ERANGE);
    ASSERT_EQ_INT(kiln__core_naming_expand("%year%", 1, 1, &tm, out, 4), KILN_ERANGE);
}

static void split_ok(const char *prefix, const char *sub, const char *file)
{
    char s[256], f[256], why[128] = "";
    ASSERT_EQ_INT(kiln__core_naming_split(prefix, s, sizeof s, f, sizeof f, why, sizeof why), 0);
    ASSERT_STR_EQ(s, sub);
    ASSERT_STR_EQ(f, file);
}

static void split_bad(const char *prefix, const char *why_part)
{
    char s[256], f[256], why[128] = "";
    ASSERT_EQ_INT(kiln__core_naming_split(prefix, s, sizeof s, f, sizeof f, why, sizeof why),
                  KILN_EINVAL);
    ASSERT_STR_CONTAINS(why, why_part);
}

static void test_split_subfolders(void)
{
    split_ok("ComfyUI", "", "ComfyUI");
    split_ok("a/b/c", "a/b", "c");
    split_ok("a//b/./c/../d", "a/b", "d");
    split_ok("./x", "", "x");
    split_ok("foo/", "", "foo");
    split_ok("a/b/..", "", "a");
    split_ok("a/..b/c", "a/..b", "c");
}

static void test_split_rejects_escapes(void)
{
    split_bad("../x", "outside the output folder");
    split_bad("/etc/x", "outside the output folder");
    split_bad("a/../../x", "outside the output folder");
    split_bad("a/..", "names no file");
    split_bad("", "names no file");
    char s[4], f[256];
    ASSERT_EQ_INT(kiln__core_naming_split("abcd/e", s, sizeof s, f, sizeof f, NULL, 0),
                  KILN_ERANGE);
}

static void test_counter_scans_existing_files(void)
{
    const char *dir = subdir("scan");
    uint64_t counter = 0;
    ASSERT_EQ_INT(kiln__core_naming_counter(dir, "ComfyUI", &counter), 0);
    ASSERT_EQ_INT(counter, 1);
    touch(dir, "ComfyUI_00001_.png");
    touch(dir, "ComfyUI_00007_.png");
    touch(dir, "Other_00099_.png");
    touch(dir, "ComfyUIx_00050_.png");
    touch(dir, "ComfyUI_abc_.png");
    ASSERT_EQ_INT(kiln__core_naming_counter(dir, "ComfyUI", &counter), 0);
    ASSERT_EQ_INT(counter, 8);
    ASSERT_EQ_INT(kiln__core_naming_counter(dir, "Other", &counter), 0);
    ASSERT_EQ_INT(counter, 100);
    ASSERT_EQ_INT(kiln__core_naming_counter(dir, "ComfyUIx", &counter), 0);
    ASSERT_EQ_INT(counter, 51);
    ASSERT_EQ_INT(kiln__core_naming_counter(dir, "Comfy", &counter), 0);
    ASSERT_EQ_INT(counter, 1);
    touch(dir, "ComfyUI_100000_.png");
    ASSERT_EQ_INT(kiln__core_naming_counter(dir, "ComfyUI", &counter), 0);
    ASSERT_EQ_INT(counter, 100001);
    /* Only "<name>_<digits>" up to the next '_' counts; "00300.png" is not a number. */
    const char *dir2 = subdir("scan2");
    touch(dir2, "img_00300.png");
    touch(dir2, "img_12");
    ASSERT_EQ_INT(kiln__core_naming_counter(dir2, "img", &counter), 0);
    ASSERT_EQ_INT(counter, 13);
    char missing[1024];
    snprintf(missing, sizeof missing, "%s/nope", kiln_test_tmpdir());
    ASSERT_EQ_INT(kiln__core_naming_counter(missing, "img", &counter), 0);
    ASSERT_EQ_INT(counter, 1);
}

static void test_create_skips_taken_names(void)
{
    const char *dir = subdir("create");
    touch(dir, "ComfyUI_00002_.png");
    touch(dir, "ComfyUI_00003_.png");
    uint64_t counter = 2;
    int fd = -1;
    char name[256];
    ASSERT_EQ_INT(kiln__core_naming_create(dir, "ComfyUI", "png", &counter, &fd, name,
                                           sizeof name), 0);
    ASSERT(fd >= 0);
    close(fd);
    ASSERT_EQ_INT(counter, 4);
    ASSERT_STR_EQ(name, "ComfyUI_00004_.png");
    counter = 123456;
    ASSERT_EQ_INT(kiln__core_naming_create(dir, "big", "png", &counter, &fd, name, sizeof name),
                  0);
    close(fd);
    ASSERT_STR_EQ(name, "big_123456_.png");
    char nodir[1024];
    snprintf(nodir, sizeof nodir, "%s/absent", kiln_test_tmpdir());
    ASSERT_EQ_INT(kiln__core_naming_create(nodir, "x", "png", &counter, &fd, name, sizeof name),
                  KILN_EIO);
    ASSERT_EQ_INT(kiln__core_naming_create(dir, "x", "png", &counter, &fd, name, 8),
                  KILN_ERANGE);
}

typedef struct saver {
    const char *dir;
    int made;
} saver_t;

/* One concurrent saver: scans for its counter, then creates 10 files as SaveImage does. */
static void *saver_main(void *arg)
{
    saver_t *s = arg;
    for (int i = 0; i < 10; i++) {
        uint64_t counter;
        int fd;
        char name[256];
        if (kiln__core_naming_counter(s->dir, "race", &counter) != 0 ||
            kiln__core_naming_create(s->dir, "race", "png", &counter, &fd, name,
                                     sizeof name) != 0)
            return NULL;
        close(fd);
        s->made++;
    }
    return NULL;
}

static void test_concurrent_savers_never_share_a_file(void)
{
    const char *dir = subdir("race");
    pthread_t th[8];
    saver_t s[8];
    for (int i = 0; i < 8; i++) {
        s[i] = (saver_t){dir, 0};
        ASSERT_EQ_INT(pthread_create(&th[i], NULL, saver_main, &s[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ASSERT_EQ_INT(s[i].made, 10);
    }
    /* 80 distinct files with counters 1..80. */
    int count = 0;
    DIR *d = opendir(dir);
    ASSERT(d);
    struct dirent *e;
    while ((e = readdir(d)))
        count += e->d_name[0] != '.';
    closedir(d);
    ASSERT_EQ_INT(count, 80);
    char path[1024];
    struct stat st;
    snprintf(path, sizeof path, "%s/race_00080_.png", dir);
    ASSERT_EQ_INT(stat(path, &st), 0);
}

static void test_mkdirs_and_join(void)
{
    char path[1024], file[1024];
    snprintf(path, sizeof path, "%s/m/a/b/c", kiln_test_tmpdir());
    ASSERT_EQ_INT(kiln__core_mkdirs(path), 0);
    ASSERT_EQ_INT(kiln__core_mkdirs(path), 0);
    struct stat st;
    ASSERT_EQ_INT(stat(path, &st), 0);
    ASSERT(S_ISDIR(st.st_mode));
    snprintf(file, sizeof file, "%s/m/f", kiln_test_tmpdir());
    ASSERT_EQ_INT(kiln_test_write_file(file, "x", 1), 0);
    snprintf(path, sizeof path, "%s/m/f/sub", kiln_test_tmpdir());
    ASSERT_EQ_INT(kiln__core_mkdirs(path), KILN_EIO);
    char out[16];
    ASSERT_EQ_INT(kiln__core_path_join("out", "", out, sizeof out), 0);
    ASSERT_STR_EQ(out, "out");
    ASSERT_EQ_INT(kiln__core_path_join("out/", "a/b", out, sizeof out), 0);
    ASSERT_STR_EQ(out, "out/a/b");
    ASSERT_EQ_INT(kiln__core_path_join("out", "a.png", out, sizeof out), 0);
    ASSERT_STR_EQ(out, "out/a.png");
    ASSERT_EQ_INT(kiln__core_path_join("output-folder", "xy", out, sizeof out), KILN_ERANGE);
}

static void test_str_replace(void)
{
    char out[64];
    ASSERT_EQ_INT(kiln__core_str_replace("img_%batch_num%_x%batch_num%", "%batch_num%", "3", out,
                                         sizeof out), 0);
    ASSERT_STR_EQ(out, "img_3_x3");
    ASSERT_EQ_INT(kiln__core_str_replace("plain", "%batch_num%", "3", out, sizeof out), 0);
    ASSERT_STR_EQ(out, "plain");
    ASSERT_EQ_INT(kiln__core_str_replace("%batch_num%", "%batch_num%", "123456", out, 6),
                  KILN_ERANGE);
}

static void annotated(const char *name, int want_err, kiln_dir_t want_dir, const char *want_rel)
{
    kiln_dir_t dir = KILN_DIR_MODELS;
    char rel[256] = "";
    ASSERT_EQ_INT(kiln__core_annotated_name(name, strlen(name), &dir, rel, sizeof rel), want_err);
    if (!want_err) {
        ASSERT_EQ_INT(dir, want_dir);
        ASSERT_STR_EQ(rel, want_rel);
    }
}

static void test_annotated_names(void)
{
    annotated("x.png", 0, KILN_DIR_INPUT, "x.png");
    annotated("x.png [output]", 0, KILN_DIR_OUTPUT, "x.png");
    annotated("x.png [input]", 0, KILN_DIR_INPUT, "x.png");
    annotated("sub/x.png [temp]", 0, KILN_DIR_TEMP, "sub/x.png");
    annotated("sub/dir/x.png", 0, KILN_DIR_INPUT, "sub/dir/x.png");
    annotated("a/..b.png", 0, KILN_DIR_INPUT, "a/..b.png");
    annotated("../x.png", KILN_EINVAL, 0, NULL);
    annotated("a/../../x.png [output]", KILN_EINVAL, 0, NULL);
    annotated("sub/../x.png", KILN_EINVAL, 0, NULL);
    annotated("/etc/passwd", KILN_EINVAL, 0, NULL);
    annotated("", KILN_EINVAL, 0, NULL);
    annotated(" [output]", KILN_EINVAL, 0, NULL);
    kiln_dir_t dir;
    char rel[8];
    ASSERT_EQ_INT(kiln__core_annotated_name("a\0b.png", 7, &dir, rel, sizeof rel), KILN_EINVAL);
    ASSERT_EQ_INT(kiln__core_annotated_name("long_name.png", 13, &dir, rel, sizeof rel),
                  KILN_ERANGE);
}

KILN_TEST_MAIN(TEST(test_expand_tokens), TEST(test_split_subfolders),
               TEST(test_split_rejects_escapes), TEST(test_counter_scans_existing_files),
               TEST(test_create_skips_taken_names),
               TEST(test_concurrent_savers_never_share_a_file), TEST(test_mkdirs_and_join),
               TEST(test_str_replace), TEST(test_annotated_names))
