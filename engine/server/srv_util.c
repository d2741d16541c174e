/* Small helpers the server parts share: ids, time, JSON string literals, atomic file
 * writes, bounded file reads, MIME types. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/server_int.h"

static void random_bytes(unsigned char *b, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(b + got, n - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    /* getrandom cannot fail on Linux >= 3.17 with a small buffer; keep going anyway. */
    for (; got < n; got++)
        b[got] = (unsigned char)rand();
}

void kiln__srv_uuid4(char out[37])
{
    unsigned char b[16];
    random_bytes(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}

void kiln__srv_uuid_hex(char out[33])
{
    char u[37];
    kiln__srv_uuid4(u);
    size_t k = 0;
    for (size_t i = 0; u[i]; i++)
        if (u[i] != '-')
            out[k++] = u[i];
    out[k] = 0;
}

int64_t kiln__srv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kiln__srv_json_strn(kiln__sbuf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    kiln__sbuf_putc(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        kiln__sbuf_append(b, s + run, i - run);
        run = i + 1;
        char esc[7] = {'\\', 0};
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            break;
        }
        kiln__sbuf_puts(b, esc);
    }
    kiln__sbuf_append(b, s + run, n - run);
    kiln__sbuf_putc(b, '"');
}

void kiln__srv_json_str(kiln__sbuf_t *b, const char *s)
{
    kiln__srv_json_strn(b, s ? s : "", s ? strlen(s) : 0);
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return KILN_EIO;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int kiln__srv_write_atomic(const char *path, const void *data, size_t len)
{
    /* A unique temporary (two uploads of one name may run at once on the pool). */
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp)
        return KILN_ENOMEM;
    snprintf(tmp, n, "%s.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd >= 0 && fchmod(fd, 0644) != 0) {
        close(fd);
        unlink(tmp);
        fd = -1;
    }
    int rc = fd < 0 ? KILN_EIO : write_all(fd, data, len);
    if (fd >= 0 && close(fd) != 0)
        rc = KILN_EIO;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = KILN_EIO;
    if (rc != 0) {
        kiln_logf(KILN_LOG_ERROR, "cannot write '%s': %s", path, strerror(errno));
        if (fd >= 0)
            unlink(tmp);
    }
    free(tmp);
    return rc;
}

int kiln__srv_read_file(const char *path, size_t max, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR ? KILN_ENOTFOUND : KILN_EIO;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return KILN_ENOTFOUND;
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return KILN_ELIMIT;
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    size_t got = 0;
    while (buf && got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!buf)
        return KILN_ENOMEM;
    buf[got] = 0;   /* a file that shrank while read is returned as it was read */
    *data = buf;
    *len = got;
    return 0;
}

int kiln__srv_mkdirs(const char *path)
{
    char *p = strdup(path);
    if (!p)
        return KILN_ENOMEM;
    int rc = 0;
    for (char *s = p + 1; rc == 0; s++) {
        bool end = *s == '\0';
        if (*s != '/' && !end)
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            rc = KILN_EIO;
        if (end)
            break;
        *s = '/';
    }
    free(p);
    return rc;
}

char *kiln__srv_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", a, b);
    return s;
}

const char *kiln__srv_mime(const char *name)
{
    static const char *const table[][2] = {
        {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
        {"js", "application/javascript; charset=utf-8"},
        {"mjs", "application/javascript; charset=utf-8"}, {"css", "text/css; charset=utf-8"},
        {"json", "application/json"}, {"map", "application/json"},
        {"txt", "text/plain; charset=utf-8"}, {"png", "image/png"}, {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"}, {"gif", "image/gif"}, {"webp", "image/webp"},
        {"svg", "image/svg+xml"}, {"ico", "image/x-icon"}, {"bmp", "image/bmp"},
        {"tif", "image/tiff"}, {"tiff", "image/tiff"}, {"wasm", "application/wasm"},
        {"woff", "font/woff"}, {"woff2", "font/woff2"}, {"ttf", "font/ttf"},
        {"otf", "font/otf"}, {"mp4", "video/mp4"}, {"webm", "video/webm"},
        {"mp3", "audio/mpeg"}, {"wav", "audio/wav"}, {"flac", "audio/flac"},
        {"ogg", "audio/ogg"}, {"safetensors", "application/octet-stream"},
    };
    const char *dot = strrchr(name, '.');
    const char *slash = strrchr(name, '/');
    if (!dot || (slash && dot < slash))
        return "application/octet-stream";
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcasecmp(dot + 1, table[i][0]))
            return table[i][1];
    return "application/octet-stream";
}
