/* safetensors files: a reader that maps the file and hands out tensors viewing the mapped
 * bytes (no copy), with every header field validated, and a writer for tests and tools.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"key": "value", ...}}, then the data region; offsets count from its
 * start.
 *
 *   kiln__safetensors_t *f = NULL;
 *   char err[256];
 *   if (kiln__safetensors_open(path, &f, err, sizeof err) < 0) { report err; }
 *   kiln_tensor_t *w = NULL;
 *   kiln__safetensors_tensor(f, "model.diffusion_model.out.2.weight", &w, err, sizeof err);
 *   kiln__safetensors_close(f);        // w stays valid: it keeps the mapping alive
 *   kiln_tensor_release(w);            // the last user unmaps the file
 *
 * Threads: an open file is immutable, so any number of threads may look up and load
 * tensors at once; close must not race with other calls on the same file. */
#ifndef KILN_RUNTIME_SAFETENSORS_H
#define KILN_RUNTIME_SAFETENSORS_H

#include <kiln/tensor.h>
#include <stddef.h>
#include <stdint.h>

/* Headers longer than this are refused (the format's own reader uses the same bound). */
#define KILN__SAFETENSORS_MAX_HEADER 100000000u

typedef struct kiln__safetensors kiln__safetensors_t;

/* One tensor's header entry. */
typedef struct kiln__safetensors_info {
    const char *name;                     /* borrowed: owned by the file */
    kiln_dtype_t dtype;
    int ndim;
    int64_t shape[KILN_TENSOR_MAX_DIMS];  /* outermost first */
    int64_t numel;
    uint64_t begin;                       /* byte range [begin, end) in the data region */
    uint64_t end;
    uint64_t file_offset;                 /* begin as an offset from the start of the file */
} kiln__safetensors_info_t;

/* Opens and maps `path` and validates the whole header: the length (at most
 * KILN__SAFETENSORS_MAX_HEADER and within the file), the JSON, each entry (a known dtype,
 * at most KILN_TENSOR_MAX_DIMS non-negative integer dimensions without overflow, two
 * integer offsets with begin <= end inside the data region and end - begin equal to the
 * element count times the dtype size), no two tensors overlapping (entries may come in any
 * order; gaps are allowed), and __metadata__ being a map of strings. On success *out is the
 * open file (close it with kiln__safetensors_close). Errors, with a message naming the
 * file and the offending field in err (err may be NULL): KILN_EPARSE for any malformed
 * content, KILN_ENOTFOUND when the file does not exist, KILN_EIO for other I/O failures,
 * KILN_ENOMEM. The file must not be truncated while mapped (the OS would fault). */
int kiln__safetensors_open(const char *path, kiln__safetensors_t **out, char *err, size_t errlen);

/* Drops the file's reference to its mapping; tensors loaded from it stay valid and the
 * mapping goes away with the last of them. NULL is ignored. */
void kiln__safetensors_close(kiln__safetensors_t *f);

/* Number of tensors (the __metadata__ entry not counted). */
size_t kiln__safetensors_count(const kiln__safetensors_t *f);

/* The i-th tensor in header order, or NULL when i >= count (borrowed: lives with f). */
const kiln__safetensors_info_t *kiln__safetensors_info_at(const kiln__safetensors_t *f,
                                                          size_t i);

/* The entry of the tensor called name, or NULL (borrowed: lives with f). O(log n). */
const kiln__safetensors_info_t *kiln__safetensors_find(const kiln__safetensors_t *f,
                                                       const char *name);

/* A read-only host tensor with the stored dtype and shape that views the mapped bytes
 * (the mapping stays alive while the tensor does). When the bytes are not aligned to the
 * element size (a writer that did not pad) the tensor is an aligned, writable copy
 * instead. Errors: KILN_ENOTFOUND (no such tensor), KILN_ENOMEM; err may be NULL. */
int kiln__safetensors_tensor(kiln__safetensors_t *f, const char *name, kiln_tensor_t **out,
                             char *err, size_t errlen);

/* Like kiln__safetensors_tensor, converted to dtype on load (a new host tensor unless
 * dtype is the stored one, in which case it is the zero-copy view). Errors as there, plus
 * KILN_EUNSUPPORTED (float data into an integer dtype) and KILN_ERANGE (an integer that
 * does not fit). */
int kiln__safetensors_tensor_as(kiln__safetensors_t *f, const char *name, kiln_dtype_t dtype,
                                kiln_tensor_t **out, char *err, size_t errlen);

/* The __metadata__ value for key, or NULL (borrowed: lives with f). */
const char *kiln__safetensors_metadata(const kiln__safetensors_t *f, const char *key);

/* Number of __metadata__ entries, and entry i in header order (borrowed strings);
 * metadata_at returns KILN_ERANGE when i >= count. */
size_t kiln__safetensors_metadata_count(const kiln__safetensors_t *f);
int kiln__safetensors_metadata_at(const kiln__safetensors_t *f, size_t i, const char **key,
                                  const char **value);

/* Writes n host tensors (any strides) to `path` as a safetensors file, names[i] naming
 * tensors[i]. `metadata` is NULL or a NULL-terminated list of key, value pairs
 * ({"format", "pt", NULL}) written as __metadata__. Tensors are laid out largest element
 * size first, so every tensor starts aligned to its element size, and the header is padded
 * to a multiple of 8 bytes, as the format's reference writer does. The file appears
 * atomically (written to a temporary name, then renamed). Errors: KILN_EINVAL (a NULL,
 * empty, duplicate or reserved name, a device tensor, an odd metadata list), KILN_EIO,
 * KILN_ENOMEM; err may be NULL. */
int kiln__safetensors_write(const char *path, const char *const *names,
                            kiln_tensor_t *const *tensors, size_t n,
                            const char *const *metadata, char *err, size_t errlen);

#endif
