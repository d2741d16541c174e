/* kiln_malloc/kiln_free: thin wrappers over malloc/free that count live bytes, so memory
 * budgets can include what node packs allocate. Each block is preceded by a header that
 * records its size and a magic word; kiln_free checks the magic to catch pointers that
 * did not come from kiln_malloc (or were freed twice) instead of corrupting the heap. */
#include "util/alloc.h"

#include <assert.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ALLOC_MAGIC 0x6b696c6e616c6c63ull /* "kilnallc" */
#define FREED_MAGIC 0x6b696c6e66726565ull /* "kilnfree" */

/* The header keeps the user pointer aligned as malloc's own result is. */
typedef union block_header {
    struct {
        size_t size;
        uint64_t magic;
    } h;
    max_align_t align_;
} block_header_t;

static atomic_size_t live_bytes;
static atomic_size_t live_blocks;

void *kiln_malloc(size_t size)
{
    if (size > SIZE_MAX - sizeof(block_header_t))
        return NULL;
    block_header_t *b = malloc(sizeof *b + size);
    if (!b)
        return NULL;
    b->h.size = size;
    b->h.magic = ALLOC_MAGIC;
    atomic_fetch_add(&live_bytes, size);
    atomic_fetch_add(&live_blocks, 1);
    return b + 1;
}

int kiln_free(void *ptr)
{
    if (!ptr)
        return 0;
    block_header_t *b = (block_header_t *)ptr - 1;
    if (b->h.magic != ALLOC_MAGIC) {
        /* Not ours, or freed already: leaking is better than corrupting the heap. */
        assert(!"kiln_free: pointer not from kiln_malloc, or freed twice");
        kiln_log(KILN_LOG_ERROR, "kiln_free: pointer not from kiln_malloc, or freed twice");
        return KILN_EINVAL;
    }
    b->h.magic = FREED_MAGIC;
    atomic_fetch_sub(&live_bytes, b->h.size);
    atomic_fetch_sub(&live_blocks, 1);
    free(b);
    return 0;
}

size_t kiln__alloc_live_bytes(void)
{
    return atomic_load(&live_bytes);
}

size_t kiln__alloc_live_blocks(void)
{
    return atomic_load(&live_blocks);
}

char *kiln__alloc_memdup(const void *p, size_t len)
{
    if ((!p && len > 0) || len == SIZE_MAX)
        return NULL;
    char *s = kiln_malloc(len + 1);
    if (!s)
        return NULL;
    if (len)
        memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

char *kiln__alloc_strdup(const char *s)
{
    return s ? kiln__alloc_memdup(s, strlen(s)) : NULL;
}
