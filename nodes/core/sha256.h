/* SHA-256 (FIPS 180-4) for LoadImage's is_changed fingerprint: ComfyUI's IS_CHANGED hashes
 * the image file with hashlib.sha256 and returns the hex digest, so editing the file
 * re-runs the node. Plain functions with no host calls, usable from unit tests. */
#ifndef KILN_NODES_CORE_SHA256_H
#define KILN_NODES_CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct kiln__core_sha256 {
    uint32_t h[8];          /* chaining state */
    uint64_t length;        /* bytes hashed so far */
    uint8_t block[64];      /* pending partial block */
    size_t fill;            /* bytes used in block */
} kiln__core_sha256_t;

/* Starts a new digest. Any thread; a context is used by one thread at a time. */
void kiln__core_sha256_init(kiln__core_sha256_t *s);

/* Hashes n more bytes of data (n may be 0). */
void kiln__core_sha256_update(kiln__core_sha256_t *s, const void *data, size_t n);

/* Finishes the digest into out (32 bytes); the context must be re-initialised for reuse. */
void kiln__core_sha256_final(kiln__core_sha256_t *s, uint8_t out[32]);

/* Writes the 64 lowercase hex digits of digest plus a NUL to hex (65 bytes). */
void kiln__core_sha256_hex(const uint8_t digest[32], char hex[65]);

/* Hashes a whole file into 64 hex digits plus NUL. Returns 0, KILN_ENOTFOUND when the file
 * cannot be opened, or KILN_EIO on a read error. */
int kiln__core_sha256_file(const char *path, char hex[65]);

#endif
