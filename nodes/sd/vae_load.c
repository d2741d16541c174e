/* Loading the SD VAE (ComfyUI's ldm AutoencoderKL): ch, ch_mult, num_res_blocks, the
 * latent and image channels come from the tensor shapes, and every tensor of the Encoder,
 * Decoder and the quant convs is checked against that configuration, so a foreign or
 * damaged file fails with the tensor named instead of a shape error later. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vae_int.h"
#include "sd_err.h"

/* ---- loading ---------------------------------------------------------------------------- */

typedef struct loader {
    kiln_weights_t *w;  /* borrowed: the caller's file */
    const char *prefix; /* borrowed */
    sd_vae_t *v;        /* borrowed: the VAE being filled */
    char *err;          /* borrowed: may be NULL */
    size_t err_size;
} loader_t;

/* Writes the message to the caller's err buffer and returns rc. */
static int fail(loader_t *l, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(loader_t *l, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sd_verrf(l->err, l->err_size, rc, fmt, ap);
    va_end(ap);
    return rc;
}

/* Takes over one reference to t into the VAE's tensor list (released by sd_vae_free). */
static int keep(sd_vae_t *v, kiln_tensor_t *t)
{
    if (v->n_tensors == v->cap_tensors) {
        int cap = v->cap_tensors ? 2 * v->cap_tensors : 64;
        kiln_tensor_t **p = kiln_malloc((size_t)cap * sizeof *p);
        if (!p) {
            kiln_tensor_release(t);
            return KILN_ENOMEM;
        }
        if (v->n_tensors)
            memcpy(p, v->tensors, (size_t)v->n_tensors * sizeof *p);
        kiln_free(v->tensors);
        v->tensors = p;
        v->cap_tensors = cap;
    }
    v->tensors[v->n_tensors++] = t;
    return 0;
}

/* The stored shape of prefix + name; KILN_ENOTFOUND (quietly) when absent. */
static int probe(const loader_t *l, const char *name, int *ndim, int64_t *shape)
{
    char full[512];
    kiln_dtype_t dt;
    int n = snprintf(full, sizeof full, "%s%s", l->prefix, name);
    if (n < 0 || (size_t)n >= sizeof full)
        return KILN_ENOTFOUND;
    return kiln_weights_info(l->w, full, &dt, ndim, shape);
}

/* Loads prefix + name as F32 after checking its shape (ndim entries of want) and keeps it. */
static int fetch(loader_t *l, const char *name, int ndim, const int64_t *want, kiln_tensor_t **out)
{
    int64_t shape[KILN_TENSOR_MAX_DIMS];
    int nd = 0;
    if (probe(l, name, &nd, shape) != 0)
        return fail(l, KILN_ENOTFOUND, "VAE tensor %s%s is missing", l->prefix, name);
    int ok = nd == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = want[i] == shape[i];
    if (!ok)
        return fail(l, KILN_EPARSE, "VAE tensor %s%s has an unexpected shape", l->prefix, name);
    char full[512];
    snprintf(full, sizeof full, "%s%s", l->prefix, name);
    int rc = sd_weight_get(l->w, full, KILN_DTYPE_F32, out);
    if (rc != 0)
        return fail(l, rc, "VAE tensor %s: %s", full, kiln_strerror(rc));
    return keep(l->v, *out);
}

/* "<base>.weight" [oc, ic, k, k] and "<base>.bias" [oc]. */
static int fetch_conv(loader_t *l, vae_conv_t *cv, int64_t oc, int64_t ic, int64_t k,
                      const char *base)
{
    char name[256];
    snprintf(name, sizeof name, "%s.weight", base);
    int rc = fetch(l, name, 4, (const int64_t[]){oc, ic, k, k}, &cv->w);
    if (rc == 0) {
        snprintf(name, sizeof name, "%s.bias", base);
        rc = fetch(l, name, 1, (const int64_t[]){oc}, &cv->b);
    }
    return rc;
}

/* A 1x1 conv kept as a [c, c] matrix for kiln_op_linear. */
static int fetch_pointwise(loader_t *l, vae_conv_t *cv, int64_t c, const char *base)
{
    int rc = fetch_conv(l, cv, c, c, 1, base);
    kiln_tensor_t *m = NULL;
    if (rc == 0)
        rc = kiln_tensor_reshape(cv->w, 2, (const int64_t[]){c, c}, &m);
    if (rc == 0 && (rc = keep(l->v, m)) == 0)
        cv->w = m;
    return rc;
}

static int fetch_norm(loader_t *l, vae_norm_t *n, int64_t c, const char *base)
{
    if (c % VAE_GROUPS != 0)
        return fail(l, KILN_EPARSE, "VAE: %lld channels at %s%s do not form %d groups",
                    (long long)c, l->prefix, base, VAE_GROUPS);
    char name[256];
    snprintf(name, sizeof name, "%s.weight", base);
    int rc = fetch(l, name, 1, (const int64_t[]){c}, &n->w);
    if (rc == 0) {
        snprintf(name, sizeof name, "%s.bias", base);
        rc = fetch(l, name, 1, (const int64_t[]){c}, &n->b);
    }
    return rc;
}

static int fetch_resblock(loader_t *l, vae_resblock_t *rb, int64_t cin, int64_t cout,
                          const char *base)
{
    char name[256];
    snprintf(name, sizeof name, "%s.norm1", base);
    int rc = fetch_norm(l, &rb->norm1, cin, name);
    snprintf(name, sizeof name, "%s.conv1", base);
    if (rc == 0)
        rc = fetch_conv(l, &rb->conv1, cout, cin, 3, name);
    snprintf(name, sizeof name, "%s.norm2", base);
    if (rc == 0)
        rc = fetch_norm(l, &rb->norm2, cout, name);
    snprintf(name, sizeof name, "%s.conv2", base);
    if (rc == 0)
        rc = fetch_conv(l, &rb->conv2, cout, cout, 3, name);
    snprintf(name, sizeof name, "%s.nin_shortcut", base);
    if (rc == 0 && cin != cout)
        rc = fetch_conv(l, &rb->nin, cout, cin, 1, name);
    return rc;
}

static int fetch_mid(loader_t *l, vae_coder_t *cd, int64_t c, const char *half)
{
    char name[256];
    snprintf(name, sizeof name, "%s.mid.block_1", half);
    int rc = fetch_resblock(l, &cd->mid1, c, c, name);
    const char *parts[] = {"norm", "q", "k", "v", "proj_out"};
    vae_conv_t *convs[] = {NULL, &cd->attn.q, &cd->attn.k, &cd->attn.v, &cd->attn.proj};
    for (int i = 0; rc == 0 && i < 5; i++) {
        snprintf(name, sizeof name, "%s.mid.attn_1.%s", half, parts[i]);
        rc =
            i == 0 ? fetch_norm(l, &cd->attn.norm, c, name) : fetch_pointwise(l, convs[i], c, name);
    }
    snprintf(name, sizeof name, "%s.mid.block_2", half);
    if (rc == 0)
        rc = fetch_resblock(l, &cd->mid2, c, c, name);
    return rc;
}

/* How many of name(0), name(1), ... exist in a row, up to max; fmt has one %d. */
static int count_present(const loader_t *l, const char *fmt, int max)
{
    char name[256];
    int64_t sh[KILN_TENSOR_MAX_DIMS];
    int n = 0, nd;
    while (n < max) {
        snprintf(name, sizeof name, fmt, n);
        if (probe(l, name, &nd, sh) != 0)
            break;
        n++;
    }
    return n;
}

/* dim d of tensor name (which must have rank nd) into *out, within 1..max. */
static int read_dim(loader_t *l, const char *name, int nd, int d, int64_t max, int *out)
{
    int64_t sh[KILN_TENSOR_MAX_DIMS];
    int have = 0;
    if (probe(l, name, &have, sh) != 0)
        return fail(l, KILN_ENOTFOUND, "VAE tensor %s%s is missing", l->prefix, name);
    if (have != nd || sh[d] < 1 || sh[d] > max)
        return fail(l, KILN_EPARSE, "VAE tensor %s%s has an unexpected shape", l->prefix, name);
    *out = (int)sh[d];
    return 0;
}

/* ch, ch_mult, num_res_blocks, z_channels, embed_dim and the image channels. */
static int read_config(loader_t *l, sd_vae_t *v)
{
    int rc = read_dim(l, "encoder.conv_in.weight", 4, 0, 1 << 16, &v->ch);
    if (rc == 0)
        rc = read_dim(l, "encoder.conv_in.weight", 4, 1, 64, &v->in_channels);
    if (rc == 0)
        rc = read_dim(l, "decoder.conv_in.weight", 4, 1, 1 << 16, &v->z);
    if (rc == 0)
        rc = read_dim(l, "post_quant_conv.weight", 4, 1, 1 << 16, &v->embed);
    if (rc == 0)
        rc = read_dim(l, "decoder.conv_out.weight", 4, 0, 64, &v->out_channels);
    if (rc != 0)
        return rc;
    v->n_levels = count_present(l, "encoder.down.%d.block.0.conv1.weight", VAE_MAX_LEVELS + 1);
    v->n_res = count_present(l, "encoder.down.0.block.%d.conv1.weight", 65);
    if (v->n_levels == 0 || v->n_res == 0)
        return fail(l, KILN_ENOTFOUND,
                    "VAE tensor %sencoder.down.0.block.0.conv1.weight is "
                    "missing",
                    l->prefix);
    if (v->n_levels > VAE_MAX_LEVELS || v->n_res > 64)
        return fail(l, KILN_EPARSE, "VAE has too many levels or blocks");
    for (int i = 0; i < v->n_levels; i++) {
        char name[128];
        int c = 0;
        snprintf(name, sizeof name, "encoder.down.%d.block.0.conv1.weight", i);
        if ((rc = read_dim(l, name, 4, 0, 1 << 16, &c)) != 0)
            return rc;
        if (c % v->ch != 0)
            return fail(l, KILN_EPARSE, "VAE level %d width %d is not a multiple of %d", i, c,
                        v->ch);
        v->ch_mult[i] = c / v->ch;
    }
    return 0;
}

static int load_encoder(loader_t *l, sd_vae_t *v, vae_resblock_t **next)
{
    vae_coder_t *e = &v->enc;
    char name[128];
    int64_t ch = v->ch, block_in = ch;
    int rc = fetch_conv(l, &e->conv_in, ch, v->in_channels, 3, "encoder.conv_in");
    for (int i = 0; rc == 0 && i < v->n_levels; i++) {
        int64_t cout = ch * v->ch_mult[i];
        vae_level_t *lv = &e->levels[i];
        lv->blocks = *next;
        lv->n_blocks = v->n_res;
        *next += v->n_res;
        for (int j = 0; rc == 0 && j < v->n_res; j++) {
            snprintf(name, sizeof name, "encoder.down.%d.block.%d", i, j);
            rc = fetch_resblock(l, &lv->blocks[j], j == 0 ? block_in : cout, cout, name);
        }
        block_in = cout;
        snprintf(name, sizeof name, "encoder.down.%d.downsample.conv", i);
        if (rc == 0 && i != v->n_levels - 1)
            rc = fetch_conv(l, &lv->resample, block_in, block_in, 3, name);
    }
    if (rc == 0)
        rc = fetch_mid(l, e, block_in, "encoder");
    if (rc == 0)
        rc = fetch_norm(l, &e->norm_out, block_in, "encoder.norm_out");
    if (rc == 0)
        rc = fetch_conv(l, &e->conv_out, 2 * (int64_t)v->z, block_in, 3, "encoder.conv_out");
    return rc;
}

static int load_decoder(loader_t *l, sd_vae_t *v, vae_resblock_t **next)
{
    vae_coder_t *d = &v->dec;
    char name[128];
    int64_t ch = v->ch, block_in = ch * v->ch_mult[v->n_levels - 1];
    int rc = fetch_conv(l, &d->conv_in, block_in, v->z, 3, "decoder.conv_in");
    if (rc == 0)
        rc = fetch_mid(l, d, block_in, "decoder");
    for (int i = v->n_levels - 1; rc == 0 && i >= 0; i--) {
        int64_t cout = ch * v->ch_mult[i];
        vae_level_t *lv = &d->levels[i];
        lv->blocks = *next;
        lv->n_blocks = v->n_res + 1;
        *next += v->n_res + 1;
        for (int j = 0; rc == 0 && j < v->n_res + 1; j++) {
            snprintf(name, sizeof name, "decoder.up.%d.block.%d", i, j);
            rc = fetch_resblock(l, &lv->blocks[j], j == 0 ? block_in : cout, cout, name);
        }
        block_in = cout;
        snprintf(name, sizeof name, "decoder.up.%d.upsample.conv", i);
        if (rc == 0 && i != 0)
            rc = fetch_conv(l, &lv->resample, block_in, block_in, 3, name);
    }
    if (rc == 0)
        rc = fetch_norm(l, &d->norm_out, block_in, "decoder.norm_out");
    if (rc == 0)
        rc = fetch_conv(l, &d->conv_out, v->out_channels, block_in, 3, "decoder.conv_out");
    return rc;
}

static int load_all(loader_t *l, sd_vae_t *v)
{
    int rc = read_config(l, v);
    if (rc != 0)
        return rc;
    v->n_blocks = v->n_levels * (2 * v->n_res + 1);
    v->blocks = kiln_malloc((size_t)v->n_blocks * sizeof *v->blocks);
    if (!v->blocks)
        return KILN_ENOMEM;
    memset(v->blocks, 0, (size_t)v->n_blocks * sizeof *v->blocks);
    vae_resblock_t *next = v->blocks;
    rc = load_encoder(l, v, &next);
    if (rc == 0)
        rc = load_decoder(l, v, &next);
    if (rc == 0)
        rc = fetch_conv(l, &v->quant, 2 * (int64_t)v->embed, 2 * (int64_t)v->z, 1, "quant_conv");
    if (rc == 0)
        rc = fetch_conv(l, &v->post_quant, v->z, v->embed, 1, "post_quant_conv");
    return rc;
}

int sd_vae_load(kiln_weights_t *w, const char *prefix, sd_vae_t **out, char *err, size_t err_size)
{
    if (err && err_size)
        err[0] = '\0';
    if (!out)
        return KILN_EINVAL;
    *out = NULL;
    if (!w)
        return KILN_EINVAL;
    sd_vae_t *v = kiln_malloc(sizeof *v);
    if (!v)
        return KILN_ENOMEM;
    memset(v, 0, sizeof *v);
    v->dev = sd_dev_current(); /* the weights below are placed there */
    loader_t l = {.w = w, .prefix = prefix ? prefix : "", .v = v, .err = err, .err_size = err_size};
    int rc = load_all(&l, v);
    if (rc != 0) {
        if (rc == KILN_ENOMEM)
            fail(&l, rc, "out of memory loading the VAE");
        sd_vae_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

void sd_vae_free(sd_vae_t *v)
{
    if (!v)
        return;
    for (int i = 0; i < v->n_tensors; i++)
        kiln_tensor_release(v->tensors[i]);
    kiln_free(v->tensors);
    kiln_free(v->blocks);
    kiln_free(v);
}

int sd_vae_latent_channels(const sd_vae_t *v)
{
    return v ? v->embed : 0;
}

int sd_vae_downscale(const sd_vae_t *v)
{
    return v ? 1 << (v->n_levels - 1) : 0;
}
