/* One full-size SD1.5 UNet step shared by tools/bench/sd15_cpu_ref.c (the float32 CPU
 * reference, made on a machine with OpenBLAS) and tests/gpu/test_gpu_sd15_f16.c (the same
 * step in float16 on a GPU): the UNet's 686 tensors with SD1.5's key names and shapes,
 * filled with values computed from a hash of each tensor's name and element index and
 * rounded to float16, so that the float32 run and the float16 run use the same numbers;
 * a weights source the sd pack reads them through; and the reference file's layout.
 * Every value comes from integer hashing, IEEE double arithmetic and an integer float16
 * rounding, so both machines regenerate the same bits; a hash of every weight served
 * travels in the reference file to prove it. Only for test and benchmark code: loading
 * swaps the sd pack's host table for the duration of the load. */
#ifndef KILN_TESTS_GPU_SD15_CASE_H
#define KILN_TESTS_GPU_SD15_CASE_H

#include <kiln/error.h>
#include <kiln/node.h>
#include <kiln/tensor.h>
#include <kiln/weights.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../nodes/sd/unet.h"

/* The reference file (safetensors): x [2, 4, S, S] and context [2, 77, 768] as F16 (both
 * float16-exact), timesteps [2] and eps [2, 4, S, S] as F32; metadata SD15_META_HASH (the
 * weights' hash, 16 hex digits), SD15_META_COUNT (tensors served) and SD15_META_VERSION
 * (SD15_CASE_VERSION, bumped whenever the values here change). */
#define SD15_REF_NAME "sd15_ref.safetensors"
#define SD15_CASE_VERSION "sd15-case-1"
#define SD15_META_HASH "weights_hash"
#define SD15_META_COUNT "weights_count"
#define SD15_META_VERSION "case_version"
#define SD15_PREFIX "model.diffusion_model."

/* The sd pack's host table, bound when an engine registers the built-in packs. */
extern const kiln_host_api_t *kiln_host_sd;

/* How a tensor is filled: offset + U(-bound, bound), rounded to float16. */
typedef struct sd15_key {
    char name[128];
    int ndim;
    int64_t shape[4];
    double offset, bound;
} sd15_key_t;

/* The key table and what has been served from it. Passed to the sd pack as its
 * kiln_weights_t (the table calls below cast it back). */
typedef struct sd15_case {
    sd15_key_t *keys;
    size_t n, cap;
    int oom;
    uint64_t hash; /* sum of per-tensor hashes: independent of the loading order */
    size_t served; /* tensors handed out */
    double values; /* elements generated */
} sd15_case_t;

/* ---- the key table -------------------------------------------------------------------- */

static inline void sd15_add(sd15_case_t *c, int ndim, const int64_t *shape, double offset,
                            double bound, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static inline void sd15_add(sd15_case_t *c, int ndim, const int64_t *shape, double offset,
                            double bound, const char *fmt, ...)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 1024;
        sd15_key_t *k = realloc(c->keys, cap * sizeof *k);
        if (!k) {
            c->oom = 1;
            return;
        }
        c->keys = k;
        c->cap = cap;
    }
    sd15_key_t *k = &c->keys[c->n++];
    memset(k, 0, sizeof *k);
    int len = snprintf(k->name, sizeof k->name, "%s", SD15_PREFIX);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->name + len, sizeof k->name - (size_t)len, fmt, ap);
    va_end(ap);
    k->ndim = ndim;
    memcpy(k->shape, shape, (size_t)ndim * sizeof *shape);
    k->offset = offset;
    k->bound = bound;
}

/* A convolution (k x k) or linear (k == 0) layer: PyTorch's default init, weight and bias
 * both U(-1/sqrt(fan_in), +1/sqrt(fan_in)). */
static inline void sd15_layer(sd15_case_t *c, const char *p, int64_t in, int64_t out, int k,
                              int bias)
{
    double b = 1.0 / sqrt((double)(in * (k ? k * k : 1)));
    if (k)
        sd15_add(c, 4, (const int64_t[]){out, in, k, k}, 0.0, b, "%s.weight", p);
    else
        sd15_add(c, 2, (const int64_t[]){out, in}, 0.0, b, "%s.weight", p);
    if (bias)
        sd15_add(c, 1, &out, 0.0, b, "%s.bias", p);
}

/* A GroupNorm or LayerNorm: gamma 1 + U(-0.1, 0.1), beta U(-0.1, 0.1), so that a dropped
 * gamma or beta shows. */
static inline void sd15_norm(sd15_case_t *c, const char *p, int64_t ch)
{
    sd15_add(c, 1, &ch, 1.0, 0.1, "%s.weight", p);
    sd15_add(c, 1, &ch, 0.0, 0.1, "%s.bias", p);
}

static inline void sd15_res(sd15_case_t *c, const char *p, int64_t in, int64_t out)
{
    char b[112];
    snprintf(b, sizeof b, "%s.in_layers.0", p), sd15_norm(c, b, in);
    snprintf(b, sizeof b, "%s.in_layers.2", p), sd15_layer(c, b, in, out, 3, 1);
    snprintf(b, sizeof b, "%s.emb_layers.1", p), sd15_layer(c, b, 1280, out, 0, 1);
    snprintf(b, sizeof b, "%s.out_layers.0", p), sd15_norm(c, b, out);
    snprintf(b, sizeof b, "%s.out_layers.3", p), sd15_layer(c, b, out, out, 3, 1);
    if (in != out)
        snprintf(b, sizeof b, "%s.skip_connection", p), sd15_layer(c, b, in, out, 1, 1);
}

/* A SpatialTransformer of depth 1 with conv proj_in / proj_out and a 768-wide context. */
static inline void sd15_transformer(sd15_case_t *c, const char *p, int64_t ch)
{
    char b[112];
    snprintf(b, sizeof b, "%s.norm", p), sd15_norm(c, b, ch);
    snprintf(b, sizeof b, "%s.proj_in", p), sd15_layer(c, b, ch, ch, 1, 1);
    for (int a = 1; a <= 2; a++) {
        const char *qkv[3] = {"to_q", "to_k", "to_v"};
        for (int i = 0; i < 3; i++) {
            int64_t in = a == 2 && i > 0 ? 768 : ch;
            snprintf(b, sizeof b, "%s.transformer_blocks.0.attn%d.%s", p, a, qkv[i]);
            sd15_layer(c, b, in, ch, 0, 0);
        }
        snprintf(b, sizeof b, "%s.transformer_blocks.0.attn%d.to_out.0", p, a);
        sd15_layer(c, b, ch, ch, 0, 1);
    }
    snprintf(b, sizeof b, "%s.transformer_blocks.0.ff.net.0.proj", p);
    sd15_layer(c, b, ch, 8 * ch, 0, 1); /* GEGLU: value and gate halves */
    snprintf(b, sizeof b, "%s.transformer_blocks.0.ff.net.2", p);
    sd15_layer(c, b, 4 * ch, ch, 0, 1);
    for (int i = 1; i <= 3; i++)
        snprintf(b, sizeof b, "%s.transformer_blocks.0.norm%d", p, i), sd15_norm(c, b, ch);
    snprintf(b, sizeof b, "%s.proj_out", p), sd15_layer(c, b, ch, ch, 1, 1);
}

/* Fills c (zeroed by the caller) with SD1.5's UNet: widths 320 x [1, 2, 4, 4], two res
 * blocks per level, attention at the first three levels and in the middle, time embedding
 * 1280, context 768. 0, or KILN_ENOMEM (c freed then). */
static inline int sd15_case_init(sd15_case_t *c)
{
    const int64_t ch[4] = {320, 640, 1280, 1280};
    int64_t skips[16], cur = 320;
    int ns = 0, in = 1, out = 0;
    char p[64];
    memset(c, 0, sizeof *c);
    sd15_layer(c, "time_embed.0", 320, 1280, 0, 1);
    sd15_layer(c, "time_embed.2", 1280, 1280, 0, 1);
    sd15_layer(c, "input_blocks.0.0", 4, 320, 3, 1);
    skips[ns++] = cur;
    for (int l = 0; l < 4; l++) {
        for (int r = 0; r < 2; r++, in++) {
            snprintf(p, sizeof p, "input_blocks.%d.0", in), sd15_res(c, p, cur, ch[l]);
            cur = ch[l];
            if (l < 3)
                snprintf(p, sizeof p, "input_blocks.%d.1", in), sd15_transformer(c, p, cur);
            skips[ns++] = cur;
        }
        if (l < 3) {
            snprintf(p, sizeof p, "input_blocks.%d.0.op", in++);
            sd15_layer(c, p, cur, cur, 3, 1); /* stride-2 downsample */
            skips[ns++] = cur;
        }
    }
    sd15_res(c, "middle_block.0", cur, cur);
    sd15_transformer(c, "middle_block.1", cur);
    sd15_res(c, "middle_block.2", cur, cur);
    for (int l = 3; l >= 0; l--) {
        for (int r = 0; r < 3; r++, out++) {
            int64_t skip = skips[--ns];
            snprintf(p, sizeof p, "output_blocks.%d.0", out), sd15_res(c, p, cur + skip, ch[l]);
            cur = ch[l];
            if (l < 3)
                snprintf(p, sizeof p, "output_blocks.%d.1", out), sd15_transformer(c, p, cur);
            if (l > 0 && r == 2) {
                snprintf(p, sizeof p, "output_blocks.%d.%d.conv", out, l < 3 ? 2 : 1);
                sd15_layer(c, p, cur, cur, 3, 1); /* after a nearest x2 upsample */
            }
        }
    }
    sd15_norm(c, "out.0", 320);
    sd15_layer(c, "out.2", 320, 4, 3, 1);
    if (c->oom) {
        free(c->keys);
        memset(c, 0, sizeof *c);
        return KILN_ENOMEM;
    }
    return 0;
}

static inline void sd15_case_free(sd15_case_t *c)
{
    free(c->keys);
    memset(c, 0, sizeof *c);
}

/* ---- values ------------------------------------------------------------------------------ */

/* murmur3's 64-bit finalizer. */
static inline uint64_t sd15_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* FNV-1a of a string, the per-tensor stream seed. */
static inline uint64_t sd15_seed(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* f as float16 bits: rounded to nearest (halfway away from zero) and magnitudes below
 * 2^-14 (float16's smallest normal) flushed to a signed zero, for |f| < 65504. Plain
 * integer arithmetic, so every machine gets the same bits; not IEEE's conversion, and it
 * need not be: the bits define the value both runs use. */
static inline uint16_t sd15_half(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    uint16_t sign = (uint16_t)((b >> 16) & 0x8000u);
    int32_t e = (int32_t)((b >> 23) & 0xffu) - 127 + 15;
    if (e <= 0)
        return sign;
    uint32_t m = (b & 0x7fffffu) + 0x1000u; /* half of the 13 dropped bits */
    if (m & 0x800000u) {
        m = 0;
        e++;
    }
    return (uint16_t)(sign | (uint32_t)e << 10 | m >> 13);
}

/* The float32 value of float16 bits that sd15_half makes (normal numbers and zeros):
 * exact. */
static inline float sd15_widen(uint16_t h)
{
    uint32_t e = (h >> 10) & 0x1fu, b = (uint32_t)(h & 0x8000u) << 16;
    if (e)
        b |= (e + 127 - 15) << 23 | (uint32_t)(h & 0x3ffu) << 13;
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* Element i of the stream seed as float16 bits: offset + U(-bound, bound), from 53 random
 * bits through double arithmetic rounded once to float (IEEE, the same everywhere with
 * the C11 mode's FP contraction off) and then to float16 by sd15_half. */
static inline uint16_t sd15_value(uint64_t seed, int64_t i, double offset, double bound)
{
    uint64_t r = sd15_mix(seed + (uint64_t)i * 0x9e3779b97f4a7c15ull);
    double u = (double)(r >> 11) * 0x1p-52 - 1.0; /* [-1, 1) */
    return sd15_half((float)(offset + u * bound));
}

/* n values of stream `seed` into a float16-exact host tensor of dtype dt (F32, F16 or
 * BF16), and the hash of their float16 bits into *hash. NULL when out of memory or dt is
 * another dtype. */
static inline kiln_tensor_t *sd15_fill(kiln_dtype_t dt, int ndim, const int64_t *shape,
                                       uint64_t seed, double offset, double bound, uint64_t *hash)
{
    if (dt != KILN_DTYPE_F32 && dt != KILN_DTYPE_F16 && dt != KILN_DTYPE_BF16)
        return NULL;
    kiln_tensor_t *t = kiln_tensor_new(dt == KILN_DTYPE_F16 ? dt : KILN_DTYPE_F32, ndim, shape);
    if (!t)
        return NULL;
    int64_t n = kiln_tensor_numel(t);
    uint16_t *h16 = dt == KILN_DTYPE_F16 ? kiln_tensor_data(t) : NULL;
    float *f32 = dt == KILN_DTYPE_F16 ? NULL : kiln_tensor_data(t);
    uint64_t h = seed;
    for (int64_t i = 0; i < n; i++) {
        uint16_t v = sd15_value(seed, i, offset, bound);
        h = (h ^ v) * 0x100000001b3ull;
        if (h16)
            h16[i] = v;
        else
            f32[i] = sd15_widen(v);
    }
    *hash = sd15_mix(h);
    if (dt == KILN_DTYPE_BF16) { /* float16 values are not all bfloat16-exact: rounded */
        kiln_tensor_t *b = NULL;
        kiln_tensor_to_dtype(t, dt, &b);
        kiln_tensor_release(t);
        t = b;
    }
    return t;
}

/* ---- the weights source (host table entries; w is the sd15_case_t) -------------------- */

static inline const sd15_key_t *sd15_find(const sd15_case_t *c, const char *name)
{
    for (size_t i = 0; name && i < c->n; i++)
        if (strcmp(c->keys[i].name, name) == 0)
            return &c->keys[i];
    return NULL;
}

static inline size_t sd15_w_count(const kiln_weights_t *w)
{
    return ((const sd15_case_t *)w)->n;
}

static inline const char *sd15_w_name(const kiln_weights_t *w, size_t i)
{
    const sd15_case_t *c = (const sd15_case_t *)w;
    return i < c->n ? c->keys[i].name : NULL;
}

/* Every tensor is reported as F32, so that a host model keeps float32 weights; a GPU
 * placement asks for its compute dtype instead (sd_device.h). */
static inline int sd15_w_info(const kiln_weights_t *w, const char *name, kiln_dtype_t *dt,
                              int *ndim, int64_t *shape)
{
    const sd15_key_t *k = sd15_find((const sd15_case_t *)w, name);
    if (!k)
        return KILN_ENOTFOUND;
    *dt = KILN_DTYPE_F32;
    *ndim = k->ndim;
    memcpy(shape, k->shape, (size_t)k->ndim * sizeof *shape);
    return 0;
}

static inline int sd15_w_get(kiln_weights_t *w, const char *name, kiln_dtype_t dt,
                             kiln_tensor_t **out)
{
    sd15_case_t *c = (sd15_case_t *)w;
    *out = NULL;
    const sd15_key_t *k = sd15_find(c, name);
    if (!k)
        return KILN_ENOTFOUND;
    uint64_t h = 0;
    *out = sd15_fill(dt, k->ndim, k->shape, sd15_seed(k->name), k->offset, k->bound, &h);
    if (!*out)
        return dt == KILN_DTYPE_F32 || dt == KILN_DTYPE_F16 || dt == KILN_DTYPE_BF16
                   ? KILN_ENOMEM
                   : KILN_EUNSUPPORTED;
    c->hash += h;
    c->served++;
    c->values += (double)kiln_tensor_numel(*out);
    return 0;
}

/* Loads the UNet from c's weights with sd_unet_load, placed where the calling thread's sd
 * target is (sd_dev_enter; the host by default). The sd pack's host table is swapped for
 * a copy with the weights entries above during the call (an engine must exist, and no
 * other thread may load models meanwhile). c->hash and c->served then describe the weights
 * the model got. Errors as sd_unet_load. */
static inline int sd15_unet_load(sd15_case_t *c, sd_unet_t **out, char *err, size_t err_size)
{
    static kiln_host_api_t api;
    const kiln_host_api_t *saved = kiln_host_sd;
    if (!saved) {
        snprintf(err, err_size, "the sd pack is not bound (create an engine first)");
        return KILN_EINVAL;
    }
    api = *saved;
    api.weights_count = sd15_w_count;
    api.weights_name = sd15_w_name;
    api.weights_info = sd15_w_info;
    api.weights_get = sd15_w_get;
    c->hash = 0;
    c->served = 0;
    c->values = 0;
    kiln_host_sd = &api;
    int rc = sd_unet_load((kiln_weights_t *)c, SD15_PREFIX, 0, out, err, err_size);
    kiln_host_sd = saved;
    return rc;
}

#endif
