/* The safetensors reader: maps the file read-only, validates the header completely before
 * anything is handed out, and serves tensors that view the mapping. A bad file of any kind
 * ends in KILN_EPARSE with a message, never in a read outside the mapping. */
#include "runtime/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <kiln/error.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json/json.h"
#include "runtime/tensor_int.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; a big-endian host would need byte swapping"
#endif

/* The whole-file mapping, unmapped when the data-region storage is released. */
struct mapping {
    void *base;
    size_t len;
};

struct kiln__safetensors {
    char *path;                                /* owned */
    kiln__storage_t *storage;                  /* owned reference: the data region */
    uint64_t data_offset;                      /* 8 + header length */
    uint64_t data_bytes;
    kiln__safetensors_info_t *infos;           /* owned: `count` entries in header order */
    size_t count;
    const kiln__safetensors_info_t **by_name;  /* owned array: infos sorted by name */
    const char **meta;                         /* owned array: key, value, key, value ... */
    size_t meta_count;
    char *arena;                               /* owned: every name and metadata string */
    size_t arena_used;
};

static int fail(char *err, size_t errlen, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(char *err, size_t errlen, int code, const char *path, const char *fmt, ...)
{
    if (err && errlen) {
        int n = snprintf(err, errlen, "%s: ", path);
        if (n >= 0 && (size_t)n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

static void unmap_release(void *owner, void *data, size_t bytes)
{
    struct mapping *m = owner;
    munmap(m->base, m->len);
    free(m);
}

/* Opens and maps the file; on success *m owns the mapping. */
static int map_file(const char *path, struct mapping **out, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(err, errlen, errno == ENOENT ? KILN_ENOTFOUND : KILN_EIO, path,
                    "cannot open: %s", strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = fail(err, errlen, KILN_EIO, path, "cannot stat: %s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = fail(err, errlen, KILN_EIO, path, "not a regular file");
    else if (st.st_size < 8)
        rc = fail(err, errlen, KILN_EPARSE, path,
                  "file is %lld bytes, too short for the 8-byte header length",
                  (long long)st.st_size);
    struct mapping *m = rc ? NULL : calloc(1, sizeof *m);
    if (!rc && !m)
        rc = fail(err, errlen, KILN_ENOMEM, path, "out of memory");
    if (!rc) {
        m->len = (size_t)st.st_size;
        m->base = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m->base == MAP_FAILED) {
            rc = fail(err, errlen, KILN_EIO, path, "cannot map: %s", strerror(errno));
            free(m);
        }
    }
    close(fd);
    if (!rc)
        *out = m;
    return rc;
}

/* ---- header validation ---------------------------------------------------------------- */

/* A JSON integer in [0, INT64_MAX] into *v; 0 when it is anything else. */
static int json_nonneg(const kiln__json_t *j, int64_t *v)
{
    if (!j || j->type != KILN_JSON_INT || j->is_u64 || j->i < 0)
        return 0;
    *v = j->i;
    return 1;
}

static int parse_dtype(kiln__safetensors_t *f, const char *name, const kiln__json_t *e,
                       kiln__safetensors_info_t *info, char *err, size_t errlen)
{
    const kiln__json_t *j = kiln__json_get(e, "dtype");
    if (!j || j->type != KILN_JSON_STRING)
        return fail(err, errlen, KILN_EPARSE, f->path,
                    "tensor '%s': \"dtype\" is missing or not a string", name);
    if (kiln_dtype_from_name(j->str, &info->dtype) == 0 && strlen(j->str) == j->len)
        return 0;
    if (strncmp(j->str, "F8", 2) == 0 || strncmp(j->str, "F6", 2) == 0 ||
        strncmp(j->str, "F4", 2) == 0 || strcmp(j->str, "E8M0") == 0 ||
        strncmp(j->str, "U", 1) == 0)
        return fail(err, errlen, KILN_EPARSE, f->path,
                    "tensor '%s': dtype %.32s is not supported", name, j->str);
    return fail(err, errlen, KILN_EPARSE, f->path, "tensor '%s': unknown dtype \"%.32s\"",
                name, j->str);
}

static int parse_shape(kiln__safetensors_t *f, const char *name, const kiln__json_t *e,
                       kiln__safetensors_info_t *info, char *err, size_t errlen)
{
    const kiln__json_t *j = kiln__json_get(e, "shape");
    if (!j || j->type != KILN_JSON_ARRAY)
        return fail(err, errlen, KILN_EPARSE, f->path,
                    "tensor '%s': \"shape\" is missing or not an array", name);
    if (j->count > KILN_TENSOR_MAX_DIMS)
        return fail(err, errlen, KILN_EPARSE, f->path,
                    "tensor '%s' has %zu dimensions; at most %d are supported", name, j->count,
                    KILN_TENSOR_MAX_DIMS);
    info->ndim = (int)j->count;
    info->numel = 1;
    int i = 0;
    for (const kiln__json_t *d = j->child; d; d = d->next, i++) {
        if (!json_nonneg(d, &info->shape[i]))
            return fail(err, errlen, KILN_EPARSE, f->path,
                        "tensor '%s': dimension %d is not a non-negative integer", name, i);
        if (__builtin_mul_overflow(info->numel, info->shape[i], &info->numel))
            return fail(err, errlen, KILN_EPARSE, f->path,
                        "tensor '%s': the element count overflows", name);
    }
    return 0;
}

static int parse_offsets(kiln__safetensors_t *f, const char *name, const kiln__json_t *e,
                         kiln__safetensors_info_t *info, char *err, size_t errlen)
{
    const kiln__json_t *j = kiln__json_get(e, "data_offsets");
    int64_t b, end;
    if (!j || j->type != KILN_JSON_ARRAY || j->count != 2 || !json_nonneg(j->child, &b) ||
        !json_nonneg(j->child->next, &end))
        return fail(err, errlen, KILN_EPARSE, f->path,
                    "tensor '%s': \"data_offsets\" must be two non-negative integers", name);
    if (b > end || (uint64_t)end > f->data_bytes)
        return fail(err, errlen, KILN_EPARSE, f->path,
                    "tensor '%s': data_offsets [%lld, %lld] are not inside the %llu-byte "
                    "data region", name, (long long)b, (long long)end,
                    (unsigned long long)f->data_bytes);
    int64_t bytes;
    if (__builtin_mul_overflow(info->numel, (int64_t)kiln_dtype_size(info->dtype), &bytes) ||
        bytes != end - b)
        return fail(err, errlen, KILN_EPARSE, f->path,
                    "tensor '%s': %lld bytes of data for %lld elements of %s", name,
                    (long long)(end - b), (long long)info->numel, kiln_dtype_name(info->dtype));
    info->begin = (uint64_t)b;
    info->end = (uint64_t)end;
    info->file_offset = f->data_offset + (uint64_t)b;
    return 0;
}

/* Copies len bytes of s into the arena as a NUL-terminated string. */
static const char *arena_put(kiln__safetensors_t *f, const char *s, size_t len)
{
    char *p = f->arena + f->arena_used;
    memcpy(p, s, len);
    p[len] = 0;
    f->arena_used += len + 1;
    return p;
}

static int parse_entry(kiln__safetensors_t *f, const kiln__json_t *e,
                       kiln__safetensors_info_t *info, char *err, size_t errlen)
{
    const char *name = e->key;
    if (strlen(name) != e->key_len)
        return fail(err, errlen, KILN_EPARSE, f->path, "a tensor name contains a NUL byte");
    if (e->type != KILN_JSON_OBJECT)
        return fail(err, errlen, KILN_EPARSE, f->path, "tensor '%s': entry is not an object",
                    name);
    int rc = parse_dtype(f, name, e, info, err, errlen);
    if (!rc)
        rc = parse_shape(f, name, e, info, err, errlen);
    if (!rc)
        rc = parse_offsets(f, name, e, info, err, errlen);
    if (!rc)
        info->name = arena_put(f, name, e->key_len);
    return rc;
}

static int parse_metadata(kiln__safetensors_t *f, const kiln__json_t *md, char *err,
                          size_t errlen)
{
    if (md->type != KILN_JSON_OBJECT)
        return fail(err, errlen, KILN_EPARSE, f->path, "__metadata__ is not an object");
    f->meta = calloc(md->count ? md->count * 2 : 1, sizeof *f->meta);
    if (!f->meta)
        return fail(err, errlen, KILN_ENOMEM, f->path, "out of memory");
    for (const kiln__json_t *m = md->child; m; m = m->next) {
        if (m->type != KILN_JSON_STRING)
            return fail(err, errlen, KILN_EPARSE, f->path,
                        "__metadata__ value of '%s' is not a string", m->key);
        if (strlen(m->key) != m->key_len || strlen(m->str) != m->len)
            return fail(err, errlen, KILN_EPARSE, f->path,
                        "__metadata__ entry '%s' contains a NUL byte", m->key);
        f->meta[2 * f->meta_count] = arena_put(f, m->key, m->key_len);
        f->meta[2 * f->meta_count + 1] = arena_put(f, m->str, m->len);
        f->meta_count++;
    }
    return 0;
}

static int is_metadata_key(const kiln__json_t *m)
{
    return m->key_len == 12 && memcmp(m->key, "__metadata__", 12) == 0;
}

/* Sizes the arena and the info array for root's members. */
static int alloc_tables(kiln__safetensors_t *f, const kiln__json_t *root, char *err,
                        size_t errlen)
{
    size_t arena = 1;
    for (const kiln__json_t *m = root->child; m; m = m->next) {
        if (is_metadata_key(m)) {
            for (const kiln__json_t *k = m->child; k; k = k->next)
                arena += k->key_len + 1 + (k->type == KILN_JSON_STRING ? k->len + 1 : 0);
        } else {
            arena += m->key_len + 1;
            f->count++;
        }
    }
    f->arena = malloc(arena);
    f->infos = calloc(f->count ? f->count : 1, sizeof *f->infos);
    f->by_name = calloc(f->count ? f->count : 1, sizeof *f->by_name);
    if (!f->arena || !f->infos || !f->by_name)
        return fail(err, errlen, KILN_ENOMEM, f->path, "out of memory");
    return 0;
}

static int cmp_begin(const void *a, const void *b)
{
    const kiln__safetensors_info_t *x = *(const kiln__safetensors_info_t *const *)a;
    const kiln__safetensors_info_t *y = *(const kiln__safetensors_info_t *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(const kiln__safetensors_info_t *const *)a)->name,
                  (*(const kiln__safetensors_info_t *const *)b)->name);
}

/* Rejects tensors whose byte ranges overlap (empty tensors overlap nothing), then leaves
 * by_name sorted by name for lookups. */
static int check_layout(kiln__safetensors_t *f, char *err, size_t errlen)
{
    for (size_t i = 0; i < f->count; i++)
        f->by_name[i] = &f->infos[i];
    qsort(f->by_name, f->count, sizeof *f->by_name, cmp_begin);
    const kiln__safetensors_info_t *prev = NULL;
    for (size_t i = 0; i < f->count; i++) {
        const kiln__safetensors_info_t *t = f->by_name[i];
        if (t->begin == t->end)
            continue;
        if (prev && t->begin < prev->end)
            return fail(err, errlen, KILN_EPARSE, f->path,
                        "tensors '%s' and '%s' overlap in the data region", prev->name,
                        t->name);
        if (!prev || t->end > prev->end)
            prev = t;
    }
    qsort(f->by_name, f->count, sizeof *f->by_name, cmp_name);
    for (size_t i = 1; i < f->count; i++) {
        if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0)
            return fail(err, errlen, KILN_EPARSE, f->path, "tensor '%s' appears twice",
                        f->by_name[i]->name);
    }
    return 0;
}

/* Parses and checks the JSON header text. */
static int parse_header(kiln__safetensors_t *f, const char *text, size_t len, char *err,
                        size_t errlen)
{
    /* Writers pad the header to an 8-byte boundary with spaces (some with NULs). */
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\0'))
        len--;
    kiln__json_t *root = NULL;
    char jerr[160] = "";
    int rc = kiln__json_parse(text, len, &root, jerr, sizeof jerr);
    if (rc == KILN_ENOMEM)
        return fail(err, errlen, rc, f->path, "out of memory");
    if (rc < 0)
        return fail(err, errlen, KILN_EPARSE, f->path, "header is not valid JSON: %s", jerr);
    if (root->type != KILN_JSON_OBJECT)
        rc = fail(err, errlen, KILN_EPARSE, f->path, "header is not a JSON object");
    if (!rc)
        rc = alloc_tables(f, root, err, errlen);
    size_t i = 0;
    for (const kiln__json_t *m = rc ? NULL : root->child; m && !rc; m = m->next) {
        if (is_metadata_key(m))
            rc = parse_metadata(f, m, err, errlen);
        else
            rc = parse_entry(f, m, &f->infos[i++], err, errlen);
    }
    kiln__json_free(root);
    return rc ? rc : check_layout(f, err, errlen);
}

static int read_header(kiln__safetensors_t *f, const struct mapping *m, char *err,
                       size_t errlen)
{
    const uint8_t *p = m->base;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | p[i];
    if (n > KILN__SAFETENSORS_MAX_HEADER)
        return fail(err, errlen, KILN_EPARSE, f->path,
                    "header length %llu is over the %u-byte limit", (unsigned long long)n,
                    KILN__SAFETENSORS_MAX_HEADER);
    if (n > m->len - 8)
        return fail(err, errlen, KILN_EPARSE, f->path,
                    "header length %llu runs past the end of the %zu-byte file (truncated?)",
                    (unsigned long long)n, m->len);
    f->data_offset = 8 + n;
    f->data_bytes = m->len - f->data_offset;
    return parse_header(f, (const char *)p + 8, (size_t)n, err, errlen);
}

int kiln__safetensors_open(const char *path, kiln__safetensors_t **out, char *err, size_t errlen)
{
    if (!path || !out)
        return fail(err, errlen, KILN_EINVAL, path ? path : "(null)", "invalid argument");
    kiln__safetensors_t *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return fail(err, errlen, KILN_ENOMEM, path, "out of memory");
    }
    struct mapping *m = NULL;
    int rc = map_file(path, &m, err, errlen);
    if (rc < 0)
        goto fail;
    f->storage = kiln__storage_new(KILN_DEVICE_CPU, NULL, 0, KILN__STORAGE_READONLY,
                                   unmap_release, m);
    if (!f->storage) {
        unmap_release(m, NULL, 0);
        rc = fail(err, errlen, KILN_ENOMEM, path, "out of memory");
        goto fail;
    }
    rc = read_header(f, m, err, errlen);
    if (rc < 0)
        goto fail;
    f->storage->data = (char *)m->base + f->data_offset;
    f->storage->bytes = (size_t)f->data_bytes;
    *out = f;
    return 0;
fail:
    kiln__safetensors_close(f);
    return rc;
}

void kiln__safetensors_close(kiln__safetensors_t *f)
{
    if (!f)
        return;
    kiln__storage_release(f->storage);
    free(f->infos);
    free(f->by_name);
    free(f->meta);
    free(f->arena);
    free(f->path);
    free(f);
}

/* ---- lookups -------------------------------------------------------------------------- */

size_t kiln__safetensors_count(const kiln__safetensors_t *f)
{
    return f ? f->count : 0;
}

const kiln__safetensors_info_t *kiln__safetensors_info_at(const kiln__safetensors_t *f,
                                                          size_t i)
{
    return f && i < f->count ? &f->infos[i] : NULL;
}

const kiln__safetensors_info_t *kiln__safetensors_find(const kiln__safetensors_t *f,
                                                       const char *name)
{
    if (!f || !name)
        return NULL;
    size_t lo = 0, hi = f->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->by_name[mid]->name);
        if (c == 0)
            return f->by_name[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

int kiln__safetensors_tensor(kiln__safetensors_t *f, const char *name, kiln_tensor_t **out,
                             char *err, size_t errlen)
{
    if (!f || !out)
        return fail(err, errlen, KILN_EINVAL, f ? f->path : "(null)", "invalid argument");
    const kiln__safetensors_info_t *info = kiln__safetensors_find(f, name);
    if (!info)
        return fail(err, errlen, KILN_ENOTFOUND, f->path, "no tensor named '%s'",
                    name ? name : "(null)");
    const char *src = (const char *)f->storage->data + info->begin;
    size_t esize = kiln_dtype_size(info->dtype);
    if ((uintptr_t)src % esize == 0) {
        int rc = kiln__tensor_wrap(f->storage, (size_t)info->begin, info->dtype, info->ndim,
                                   info->shape, NULL, out);
        return rc < 0 ? fail(err, errlen, rc, f->path, "tensor '%s': %s", name,
                             kiln_strerror(rc))
                      : 0;
    }
    /* Misaligned bytes cannot be read through typed pointers: copy them out. */
    kiln_tensor_t *t = kiln__tensor_new_uninit(info->dtype, info->ndim, info->shape);
    if (!t)
        return fail(err, errlen, KILN_ENOMEM, f->path, "out of memory loading '%s'", name);
    memcpy(t->data, src, (size_t)(info->end - info->begin));
    *out = t;
    return 0;
}

int kiln__safetensors_tensor_as(kiln__safetensors_t *f, const char *name, kiln_dtype_t dtype,
                                kiln_tensor_t **out, char *err, size_t errlen)
{
    kiln_tensor_t *t = NULL;
    int rc = kiln__safetensors_tensor(f, name, &t, err, errlen);
    if (rc < 0 || t->dtype == dtype) {
        if (!rc)
            *out = t;
        return rc;
    }
    rc = kiln_tensor_to_dtype(t, dtype, out);
    if (rc < 0)
        fail(err, errlen, rc, f->path, "tensor '%s': cannot convert %s to %s: %s", name,
             kiln_dtype_name(t->dtype), kiln_dtype_name(dtype), kiln_strerror(rc));
    kiln_tensor_release(t);
    return rc;
}

const char *kiln__safetensors_metadata(const kiln__safetensors_t *f, const char *key)
{
    for (size_t i = 0; f && key && i < f->meta_count; i++) {
        if (strcmp(f->meta[2 * i], key) == 0)
            return f->meta[2 * i + 1];
    }
    return NULL;
}

size_t kiln__safetensors_metadata_count(const kiln__safetensors_t *f)
{
    return f ? f->meta_count : 0;
}

int kiln__safetensors_metadata_at(const kiln__safetensors_t *f, size_t i, const char **key,
                                  const char **value)
{
    if (!f || i >= f->meta_count)
        return KILN_ERANGE;
    if (key)
        *key = f->meta[2 * i];
    if (value)
        *value = f->meta[2 * i + 1];
    return 0;
}
