/* Output and input file naming (see file_naming.h). The counter rules follow ComfyUI's
 * folder_paths.get_save_image_path; creation adds O_EXCL so that concurrent SaveImage
 * nodes with one prefix take distinct counters instead of overwriting each other. */
#include "file_naming.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A counter beyond this is treated as this; it keeps counter + 1 from overflowing. */
#define COUNTER_CAP 1000000000000000000ull

/* Appends n bytes to out at *pos, keeping room for the final NUL. */
static int append(char *out, size_t size, size_t *pos, const char *s, size_t n)
{
    if (n >= size - *pos)
        return KILN_ERANGE;
    memcpy(out + *pos, s, n);
    *pos += n;
    out[*pos] = 0;
    return 0;
}

int kiln__core_naming_expand(const char *prefix, int64_t width, int64_t height,
                             const struct tm *now, char *out, size_t out_size)
{
    struct token {
        const char *name;
        char value[24];
    } tokens[8] = {{"%width%", ""},  {"%height%", ""}, {"%year%", ""},   {"%month%", ""},
                   {"%day%", ""},    {"%hour%", ""},   {"%minute%", ""}, {"%second%", ""}};
    snprintf(tokens[0].value, sizeof tokens[0].value, "%" PRId64, width);
    snprintf(tokens[1].value, sizeof tokens[1].value, "%" PRId64, height);
    snprintf(tokens[2].value, sizeof tokens[2].value, "%d", now->tm_year + 1900);
    snprintf(tokens[3].value, sizeof tokens[3].value, "%02d", now->tm_mon + 1);
    snprintf(tokens[4].value, sizeof tokens[4].value, "%02d", now->tm_mday);
    snprintf(tokens[5].value, sizeof tokens[5].value, "%02d", now->tm_hour);
    snprintf(tokens[6].value, sizeof tokens[6].value, "%02d", now->tm_min);
    snprintf(tokens[7].value, sizeof tokens[7].value, "%02d", now->tm_sec);
    if (out_size == 0)
        return KILN_ERANGE;
    size_t pos = 0;
    out[0] = 0;
    /* ComfyUI applies one str.replace per token in this order; since no replacement
     * value contains '%', a single left-to-right scan gives the same text. */
    for (const char *p = prefix; *p;) {
        int matched = 0;
        for (int i = 0; i < 8 && *p == '%'; i++) {
            size_t n = strlen(tokens[i].name);
            if (strncmp(p, tokens[i].name, n) == 0) {
                if (append(out, out_size, &pos, tokens[i].value, strlen(tokens[i].value)))
                    return KILN_ERANGE;
                p += n;
                matched = 1;
                break;
            }
        }
        if (!matched && append(out, out_size, &pos, p++, 1))
            return KILN_ERANGE;
    }
    return 0;
}

static void set_err(char *err, size_t err_size, const char *msg)
{
    if (err && err_size)
        snprintf(err, err_size, "%s", msg);
}

int kiln__core_naming_split(const char *prefix, char *subfolder, size_t subfolder_size,
                            char *filename, size_t filename_size, char *err, size_t err_size)
{
    if (subfolder_size == 0 || filename_size == 0)
        return KILN_ERANGE;
    subfolder[0] = filename[0] = 0;
    if (prefix[0] == '/') {
        set_err(err, err_size, "Saving image outside the output folder is not allowed.");
        return KILN_EINVAL;
    }
    /* Normalize into subfolder as a stack of components separated by '/'. */
    size_t len = 0;
    for (const char *p = prefix; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (len == 0) {
                set_err(err, err_size, "Saving image outside the output folder is not allowed.");
                return KILN_EINVAL;
            }
            char *slash = strrchr(subfolder, '/');
            len = slash ? (size_t)(slash - subfolder) : 0;
            subfolder[len] = 0;
        } else if (n > 0 && !(n == 1 && p[0] == '.')) {
            if ((len && append(subfolder, subfolder_size, &len, "/", 1)) ||
                append(subfolder, subfolder_size, &len, p, n))
                return KILN_ERANGE;
        }
        p += n;
        p += *p == '/';
    }
    if (len == 0) {
        set_err(err, err_size, "filename_prefix names no file");
        return KILN_EINVAL;
    }
    char *slash = strrchr(subfolder, '/');
    const char *base = slash ? slash + 1 : subfolder;
    if (strlen(base) >= filename_size)
        return KILN_ERANGE;
    memmove(filename, base, strlen(base) + 1);
    if (slash)
        *slash = 0;
    else
        subfolder[0] = 0;
    return 0;
}

/* The counter an entry name contributes (ComfyUI's map_filename): the digits between
 * "<filename>_" and the next '_' (or the end); anything else parses as 0. */
static uint64_t entry_counter(const char *rest)
{
    size_t n = strcspn(rest, "_");
    if (n == 0)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (rest[i] < '0' || rest[i] > '9')
            return 0;
        v = v > COUNTER_CAP / 10 ? COUNTER_CAP : v * 10 + (uint64_t)(rest[i] - '0');
    }
    return v > COUNTER_CAP ? COUNTER_CAP : v;
}

int kiln__core_naming_counter(const char *folder, const char *filename, uint64_t *counter)
{
    *counter = 1;
    DIR *d = opendir(folder);
    if (!d)
        return errno == ENOENT ? 0 : KILN_EIO;
    size_t flen = strlen(filename);
    struct dirent *e;
    int any = 0;
    uint64_t best = 0;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, filename, flen) != 0 || e->d_name[flen] != '_')
            continue;
        uint64_t v = entry_counter(e->d_name + flen + 1);
        if (!any || v > best)
            best = v;
        any = 1;
    }
    closedir(d);
    if (any)
        *counter = best + 1;
    return 0;
}

int kiln__core_naming_create(const char *folder, const char *filename, const char *ext,
                             uint64_t *counter, int *fd, char *name, size_t name_size)
{
    char path[4096];
    /* Each attempt that finds the name taken moves one counter up; this many collisions
     * in a row means something else is going on, so give up rather than spin. */
    for (int attempt = 0; attempt < 100000; attempt++, (*counter)++) {
        int n = snprintf(name, name_size, "%s_%05" PRIu64 "_.%s", filename, *counter, ext);
        if (n < 0 || (size_t)n >= name_size)
            return KILN_ERANGE;
        if (kiln__core_path_join(folder, name, path, sizeof path))
            return KILN_ERANGE;
        *fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (*fd >= 0)
            return 0;
        if (errno == ENAMETOOLONG)
            return KILN_ERANGE;
        if (errno != EEXIST)
            return KILN_EIO;
    }
    errno = EEXIST;
    return KILN_EIO;
}

int kiln__core_mkdirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return KILN_EIO;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0)
            continue;
        char saved = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return KILN_EIO;
        buf[i] = saved;
    }
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : KILN_EIO;
}

int kiln__core_str_replace(const char *s, const char *token, const char *value, char *out,
                           size_t out_size)
{
    size_t tlen = strlen(token), vlen = strlen(value), pos = 0;
    if (out_size == 0)
        return KILN_ERANGE;
    out[0] = 0;
    while (*s) {
        const char *hit = tlen ? strstr(s, token) : NULL;
        size_t n = hit ? (size_t)(hit - s) : strlen(s);
        if (append(out, out_size, &pos, s, n))
            return KILN_ERANGE;
        if (!hit)
            break;
        if (append(out, out_size, &pos, value, vlen))
            return KILN_ERANGE;
        s = hit + tlen;
    }
    return 0;
}

int kiln__core_path_join(const char *folder, const char *name, char *out, size_t out_size)
{
    size_t flen = strlen(folder);
    int sep = flen > 0 && folder[flen - 1] != '/' && name[0] != 0;
    int n = snprintf(out, out_size, "%s%s%s", folder, sep ? "/" : "", name);
    return n < 0 || (size_t)n >= out_size ? KILN_ERANGE : 0;
}

/* True when the relative name stays inside its folder: not absolute, no ".." part. */
static int name_is_contained(const char *rel)
{
    if (rel[0] == 0 || rel[0] == '/')
        return 0;
    for (const char *p = rel; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return 0;
        p += n;
        p += *p == '/';
    }
    return 1;
}

int kiln__core_annotated_name(const char *name, size_t len, kiln_dir_t *dir, char *rel,
                              size_t rel_size)
{
    static const struct {
        const char *suffix;
        kiln_dir_t dir;
    } notes[] = {{"[output]", KILN_DIR_OUTPUT}, {"[input]", KILN_DIR_INPUT},
                 {"[temp]", KILN_DIR_TEMP}};
    if (!name || memchr(name, 0, len))
        return KILN_EINVAL;
    *dir = KILN_DIR_INPUT;
    for (size_t i = 0; i < sizeof notes / sizeof notes[0]; i++) {
        size_t n = strlen(notes[i].suffix);
        if (len >= n && memcmp(name + len - n, notes[i].suffix, n) == 0) {
            *dir = notes[i].dir;
            len -= n;
            len -= len > 0 && name[len - 1] == ' ';
            break;
        }
    }
    if (len >= rel_size)
        return KILN_ERANGE;
    memcpy(rel, name, len);
    rel[len] = 0;
    return name_is_contained(rel) ? 0 : KILN_EINVAL;
}
