/* Hand-made safetensors files for the model loaders' malformed-file tests: zero-filled F32
 * tensors with the names and shapes a test chooses. Included by one test file each. */
#ifndef KILN_TEST_FAKE_SAFETENSORS_H
#define KILN_TEST_FAKE_SAFETENSORS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"

/* One tensor of a hand-made safetensors file: F32 zeros of the given shape. */
typedef struct fake_tensor {
    const char *name;
    int ndim;
    int64_t shape[4];
} fake_tensor_t;

/* Writes a safetensors file of zero-filled F32 tensors to the test's tmpdir; returns its
 * path (static storage). */
static const char *write_fake(const fake_tensor_t *ts, int n)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/fake.safetensors", kiln_test_tmpdir());
    char hdr[8192];
    size_t len = 0;
    int64_t off = 0;
    len += (size_t)snprintf(hdr + len, sizeof hdr - len, "{");
    for (int i = 0; i < n; i++) {
        int64_t numel = 1;
        len += (size_t)snprintf(hdr + len, sizeof hdr - len,
                                "%s\"%s\":{\"dtype\":\"F32\","
                                "\"shape\":[",
                                i ? "," : "", ts[i].name);
        for (int d = 0; d < ts[i].ndim; d++) {
            numel *= ts[i].shape[d];
            len += (size_t)snprintf(hdr + len, sizeof hdr - len, "%s%lld", d ? "," : "",
                                    (long long)ts[i].shape[d]);
        }
        len += (size_t)snprintf(hdr + len, sizeof hdr - len, "],\"data_offsets\":[%lld,%lld]}",
                                (long long)off, (long long)(off + 4 * numel));
        off += 4 * numel;
    }
    len += (size_t)snprintf(hdr + len, sizeof hdr - len, "}");
    while (len % 8 != 0)
        hdr[len++] = ' ';
    ASSERT(len < sizeof hdr);
    size_t total = 8 + len + (size_t)off;
    unsigned char *buf = calloc(1, total);
    ASSERT(buf != NULL);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)len >> (8 * i));
    memcpy(buf + 8, hdr, len);
    ASSERT_EQ_INT(kiln_test_write_file(path, buf, total), 0);
    free(buf);
    return path;
}

#endif
