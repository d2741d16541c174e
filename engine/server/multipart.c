/* A multipart/form-data parser (RFC 7578) for the uploads: splits the body at the
 * boundary, reads each part's Content-Disposition name and filename (quoted strings,
 * tokens, and RFC 5987 filename*=), and points into the body for the data. A body that
 * ends before its closing boundary is reported as truncated. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/paths.h"
#include "server/server_int.h"

static void set_err(char *err, size_t n, const char *msg)
{
    snprintf(err, n, "%s", msg);
}

/* The boundary parameter of the content type, or 0 when absent. */
static size_t boundary_of(const char *ct, char *out, size_t n)
{
    const char *b = strcasestr(ct, "boundary=");
    if (!b)
        return 0;
    b += 9;
    size_t len;
    if (*b == '"') {
        b++;
        const char *q = strchr(b, '"');
        len = q ? (size_t)(q - b) : 0;
    } else {
        len = strcspn(b, "; \t");
    }
    if (len == 0 || len > 70 || len >= n)
        return 0;
    memcpy(out, b, len);
    out[len] = 0;
    return len;
}

/* Value of parameter `key` (e.g. "name") in a Content-Disposition line; malloc'd. */
static char *param(const char *line, size_t len, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i + kl + 1 < len; i++) {
        bool start = i == 0 || line[i - 1] == ';' || line[i - 1] == ' ' || line[i - 1] == '\t';
        if (!start || strncasecmp(line + i, key, kl) || line[i + kl] != '=')
            continue;
        const char *v = line + i + kl + 1, *end = line + len;
        kiln__sbuf_t b = KILN_SBUF_INIT;
        if (v < end && *v == '"') {
            for (v++; v < end && *v != '"'; v++) {
                if (*v == '\\' && v + 1 < end)
                    v++;
                kiln__sbuf_putc(&b, *v);
            }
        } else {
            while (v < end && *v != ';' && *v != ' ' && *v != '\t')
                kiln__sbuf_putc(&b, *v++);
        }
        kiln__sbuf_putc(&b, 0);   /* an empty value is still a value */
        return kiln__sbuf_take(&b, NULL);
    }
    return NULL;
}

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

/* filename*=charset'lang'percent-encoded (RFC 5987); malloc'd or NULL. */
static char *ext_filename(const char *line, size_t len)
{
    char *v = param(line, len, "filename*");
    char *q = v ? strchr(v, '\'') : NULL;
    q = q ? strchr(q + 1, '\'') : NULL;
    if (!q) {
        free(v);
        return NULL;
    }
    char *out = v, *w = v;
    for (const char *r = q + 1; *r; r++) {
        if (*r == '%' && hexval(r[1]) >= 0 && hexval(r[2]) >= 0) {
            *w++ = (char)(hexval(r[1]) * 16 + hexval(r[2]));
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = 0;
    return out;
}

/* Reads the part headers in [p, end); fills name and filename. */
static int part_headers(const char *p, const char *end, kiln__part_t *part)
{
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        size_t n = eol ? (size_t)(eol - p) : (size_t)(end - p);
        if (n > 20 && !strncasecmp(p, "content-disposition:", 20)) {
            part->name = param(p + 20, n - 20, "name");
            part->filename = ext_filename(p + 20, n - 20);
            if (!part->filename)
                part->filename = param(p + 20, n - 20, "filename");
        }
        p += n + 2;
    }
    return part->name ? 0 : KILN_EPARSE;
}

static int push(kiln__part_t **parts, size_t *n, kiln__part_t *part)
{
    kiln__part_t *v = realloc(*parts, sizeof *v * (*n + 1));
    if (!v)
        return KILN_ENOMEM;
    *parts = v;
    v[(*n)++] = *part;
    return 0;
}

int kiln__multipart_parse(const char *content_type, const char *body, size_t len,
                          kiln__part_t **parts, size_t *n, char *err, size_t err_size)
{
    *parts = NULL;
    *n = 0;
    char boundary[80], delim[90];
    if (strncasecmp(content_type, "multipart/form-data", 19) ||
        !boundary_of(content_type, boundary, sizeof boundary)) {
        set_err(err, err_size, "expected a multipart/form-data body with a boundary");
        return KILN_EINVAL;
    }
    size_t dl = (size_t)snprintf(delim, sizeof delim, "\r\n--%s", boundary);
    /* The first delimiter may open the body (no CRLF before it) or follow a preamble. */
    const char *end = body + len, *p;
    if (len >= dl - 2 && !memcmp(body, delim + 2, dl - 2))
        p = body + dl - 2;
    else if ((p = memmem(body, len, delim, dl)))
        p += dl;
    else {
        set_err(err, err_size, "multipart body without its boundary");
        return KILN_EPARSE;
    }
    for (;;) {
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return 0;   /* the closing delimiter */
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *hdr_end = end - p >= 2 && !memcmp(p, "\r\n", 2)
                                  ? memmem(p, (size_t)(end - p), "\r\n\r\n", 4) : NULL;
        const char *data = hdr_end ? hdr_end + 4 : NULL;
        const char *next = data ? memmem(data, (size_t)(end - data), delim, dl) : NULL;
        if (!next) {
            kiln__multipart_free(*parts, *n);
            *parts = NULL;
            *n = 0;
            set_err(err, err_size, "truncated multipart body (no closing boundary)");
            return KILN_EPARSE;
        }
        kiln__part_t part = {.data = data, .len = (size_t)(next - data)};
        int rc = part_headers(p + 2, hdr_end + 2, &part);
        if (rc == 0)
            rc = push(parts, n, &part);
        if (rc != 0) {
            free(part.name);
            free(part.filename);
            kiln__multipart_free(*parts, *n);
            *parts = NULL;
            *n = 0;
            set_err(err, err_size, rc == KILN_ENOMEM ? "out of memory"
                                                     : "multipart part without a name");
            return rc;
        }
        p = next + dl;
    }
}

void kiln__multipart_free(kiln__part_t *parts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(parts[i].name);
        free(parts[i].filename);
    }
    free(parts);
}

const kiln__part_t *kiln__multipart_get(const kiln__part_t *parts, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(parts[i].name, name))
            return &parts[i];
    return NULL;
}
