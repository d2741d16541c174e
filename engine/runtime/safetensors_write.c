/* The safetensors writer: builds the JSON header with the project's JSON module, lays the
 * tensors out so each starts aligned to its element size, and writes the file under a
 * temporary name before renaming it into place, so a reader never sees half a file. */
#include <kiln/error.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json/json.h"
#include "runtime/safetensors.h"
#include "runtime/tensor_int.h"

static int wfail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int wfail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Sort key of the layout: larger elements first (so every start stays aligned), then the
 * caller's order. */
struct slot {
    size_t index;
    size_t esize;
    uint64_t begin;
};

static int cmp_slot(const void *a, const void *b)
{
    const struct slot *x = a, *y = b;
    if (x->esize != y->esize)
        return x->esize > y->esize ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int check_args(const char *path, const char *const *names,
                      kiln_tensor_t *const *tensors, size_t n, const char *const *metadata,
                      char *err, size_t errlen)
{
    if (!path || (n && (!names || !tensors)))
        return wfail(err, errlen, KILN_EINVAL, "safetensors write: invalid argument");
    for (size_t i = 0; i < n; i++) {
        if (!names[i] || !names[i][0] || strcmp(names[i], "__metadata__") == 0)
            return wfail(err, errlen, KILN_EINVAL, "%s: tensor %zu has a reserved or empty name",
                         path, i);
        if (!tensors[i] || !tensors[i]->data)
            return wfail(err, errlen, KILN_EINVAL, "%s: tensor '%s' is not a host tensor",
                         path, names[i]);
        for (size_t k = 0; k < i; k++) {
            if (strcmp(names[k], names[i]) == 0)
                return wfail(err, errlen, KILN_EINVAL, "%s: tensor name '%s' appears twice",
                             path, names[i]);
        }
    }
    size_t m = 0;
    while (metadata && metadata[m])
        m++;
    if (m % 2)
        return wfail(err, errlen, KILN_EINVAL, "%s: metadata key '%s' has no value", path,
                     metadata[m - 1]);
    return 0;
}

static kiln__json_t *int_array(const int64_t *v, int n)
{
    kiln__json_t *a = kiln__json_new_array();
    for (int i = 0; a && i < n; i++) {
        kiln__json_t *x = kiln__json_new_int(v[i]);
        if (!x || kiln__json_append(a, x) < 0) {
            kiln__json_free(x);
            kiln__json_free(a);
            return NULL;
        }
    }
    return a;
}

/* One header entry: {"dtype": .., "shape": [..], "data_offsets": [b, e]}. */
static kiln__json_t *entry_json(const kiln_tensor_t *t, uint64_t begin)
{
    int64_t offsets[2] = {(int64_t)begin, (int64_t)(begin + kiln_tensor_nbytes(t))};
    kiln__json_t *e = kiln__json_new_object();
    if (!e || kiln__json_set(e, "dtype", kiln__json_new_string(kiln_dtype_name(t->dtype))) < 0 ||
        kiln__json_set(e, "shape", int_array(t->shape, t->ndim)) < 0 ||
        kiln__json_set(e, "data_offsets", int_array(offsets, 2)) < 0) {
        kiln__json_free(e);
        return NULL;
    }
    return e;
}

/* The header text, padded with spaces to a multiple of 8 bytes. */
static char *build_header(const char *const *names, kiln_tensor_t *const *tensors, size_t n,
                          const struct slot *by_index, const char *const *metadata,
                          size_t *len)
{
    kiln__json_t *root = kiln__json_new_object();
    kiln__json_t *md = metadata && metadata[0] ? kiln__json_new_object() : NULL;
    int ok = root != NULL && (md != NULL || !(metadata && metadata[0]));
    for (size_t i = 0; ok && md && metadata[i]; i += 2)
        ok = kiln__json_set(md, metadata[i], kiln__json_new_string(metadata[i + 1])) == 0;
    if (ok && md) {
        ok = kiln__json_set(root, "__metadata__", md) == 0;
        md = NULL;   /* owned by root now, or freed by the failed set */
    }
    for (size_t i = 0; ok && i < n; i++)
        ok = kiln__json_set(root, names[i], entry_json(tensors[i], by_index[i].begin)) == 0;
    char *text = ok ? kiln__json_dump(root, KILN_JSON_COMPACT, len) : NULL;
    kiln__json_free(md);
    kiln__json_free(root);
    if (!text)
        return NULL;
    size_t padded = (*len + 7) & ~(size_t)7;
    char *p = realloc(text, padded + 1);
    if (!p) {
        free(text);
        return NULL;
    }
    memset(p + *len, ' ', padded - *len);
    p[padded] = 0;
    *len = padded;
    return p;
}

/* Writes the elements of t in row-major order. */
static int write_tensor(FILE *fp, const kiln_tensor_t *t)
{
    kiln_tensor_t *dense = NULL;
    int rc = kiln_tensor_contiguous(t, &dense);
    if (rc < 0)
        return rc;
    size_t bytes = kiln_tensor_nbytes(dense);
    if (bytes && fwrite(dense->data, 1, bytes, fp) != bytes)
        rc = KILN_EIO;
    kiln_tensor_release(dense);
    return rc;
}

static int write_file(const char *tmp, const char *header, size_t hlen,
                      kiln_tensor_t *const *tensors, const struct slot *order, size_t n)
{
    FILE *fp = fopen(tmp, "wb");
    if (!fp)
        return KILN_EIO;
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    int rc = fwrite(lenbuf, 1, 8, fp) == 8 && fwrite(header, 1, hlen, fp) == hlen ? 0 : KILN_EIO;
    for (size_t i = 0; !rc && i < n; i++)
        rc = write_tensor(fp, tensors[order[i].index]);
    if (fclose(fp) != 0 && !rc)
        rc = KILN_EIO;
    return rc;
}

int kiln__safetensors_write(const char *path, const char *const *names,
                            kiln_tensor_t *const *tensors, size_t n,
                            const char *const *metadata, char *err, size_t errlen)
{
    int rc = check_args(path, names, tensors, n, metadata, err, errlen);
    if (rc < 0)
        return rc;
    struct slot *order = calloc(n ? n : 1, sizeof *order);
    struct slot *by_index = calloc(n ? n : 1, sizeof *by_index);
    char *tmp = malloc(strlen(path) + 32), *header = NULL;
    if (!order || !by_index || !tmp) {
        rc = wfail(err, errlen, KILN_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = (struct slot){i, kiln_dtype_size(tensors[i]->dtype), 0};
    qsort(order, n, sizeof *order, cmp_slot);
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        order[i].begin = at;
        at += kiln_tensor_nbytes(tensors[order[i].index]);
        by_index[order[i].index] = order[i];
    }
    size_t hlen = 0;
    header = build_header(names, tensors, n, by_index, metadata, &hlen);
    if (!header) {
        rc = wfail(err, errlen, KILN_ENOMEM, "%s: out of memory building the header", path);
        goto done;
    }
    snprintf(tmp, strlen(path) + 32, "%s.tmp%ld", path, (long)getpid());
    rc = write_file(tmp, header, hlen, tensors, order, n);
    if (!rc && rename(tmp, path) != 0)
        rc = KILN_EIO;
    if (rc < 0) {
        unlink(tmp);
        wfail(err, errlen, rc, "%s: cannot write: %s", path, kiln_strerror(rc));
    }
done:
    free(header);
    free(tmp);
    free(by_index);
    free(order);
    return rc;
}
