/* The SD 1.x checkpoint layout: walks ComfyUI's UNetModel, AutoencoderKL and CLIPTextModel
 * constructors for a configuration and lists every parameter they would hold, named as in
 * an SD1.x single-file checkpoint. The names and shapes of the tiny configuration equal the
 * sd15-tiny fixture's, key for key. */
#include "sd_layout.h"

#include <kiln/error.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNET "model.diffusion_model."
#define VAE "first_stage_model."
#define CLIP "cond_stage_model.transformer.text_model."

enum { PART_UNET, PART_VAE, PART_CLIP };

void kiln__ckpt_config_tiny(kiln__ckpt_config_t *c)
{
    *c = (kiln__ckpt_config_t){
        .clip_width = 32, .clip_layers = 2, .clip_heads = 4, .clip_ff = 64,
        .clip_vocab = 49408, .clip_positions = 77,
        .unet_ch = 32, .unet_levels = 4, .unet_mult = {1, 2, 2, 2}, .unet_res = 2,
        .unet_attn_levels = 3, .unet_in = 4, .unet_out = 4,
        .vae_ch = 32, .vae_levels = 4, .vae_mult = {1, 1, 2, 2}, .vae_res = 2,
        .vae_z = 4, .vae_embed = 4, .vae_image = 3};
}

void kiln__ckpt_config_sd15(kiln__ckpt_config_t *c)
{
    kiln__ckpt_config_tiny(c);
    c->clip_width = 768, c->clip_layers = 12, c->clip_heads = 12, c->clip_ff = 3072;
    c->unet_ch = 320, c->unet_mult[2] = 4, c->unet_mult[3] = 4;
    c->vae_ch = 128, c->vae_mult[1] = 2, c->vae_mult[2] = 4, c->vae_mult[3] = 4;
}

static int bad(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "invalid configuration: %s", what);
    return KILN_EINVAL;
}

int kiln__ckpt_config_check(const kiln__ckpt_config_t *c, char *err, size_t errlen)
{
    if (c->clip_width < 1 || c->clip_layers < 1 || c->clip_heads < 1 || c->clip_ff < 1 ||
        c->clip_width % c->clip_heads != 0 || c->clip_width > 65536 || c->clip_ff > 262144 ||
        c->clip_layers > 256)
        return bad(err, errlen, "the CLIP width must split into its heads");
    if (c->unet_levels < 1 || c->unet_levels > KILN__CKPT_MAX_LEVELS || c->vae_levels < 1 ||
        c->vae_levels > KILN__CKPT_MAX_LEVELS || c->unet_res < 1 || c->vae_res < 1 ||
        c->unet_res > 16 || c->vae_res > 16)
        return bad(err, errlen, "1..6 levels of 1..16 res blocks");
    if (c->unet_attn_levels < 0 || c->unet_attn_levels > c->unet_levels)
        return bad(err, errlen, "more attention levels than levels");
    for (int i = 0; i < c->unet_levels; i++) {
        int64_t w = (int64_t)c->unet_ch * c->unet_mult[i];
        /* GroupNorm(32) everywhere, and SD1.x's 8 attention heads. */
        if (c->unet_mult[i] < 1 || w % 32 != 0 || w > 65536)
            return bad(err, errlen, "every UNet width must be a multiple of 32");
    }
    for (int i = 0; i < c->vae_levels; i++) {
        int64_t w = (int64_t)c->vae_ch * c->vae_mult[i];
        if (c->vae_mult[i] < 1 || w % 32 != 0 || w > 65536)
            return bad(err, errlen, "every VAE width must be a multiple of 32");
    }
    if (c->unet_ch < 32 || c->vae_ch < 32)
        return bad(err, errlen, "widths below 32");
    return 0;
}

/* ---- building the list ------------------------------------------------------------------ */

typedef struct bld {
    kiln__ckpt_layout_t *l;
    int part;
    int rc;
} bld_t;

/* Appends one tensor: dims are the shape (ndim of them), the name is printf-formatted. */
static void put(bld_t *b, float offset, float bound, int ndim, const int64_t *dims,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void put(bld_t *b, float offset, float bound, int ndim, const int64_t *dims,
                const char *fmt, ...)
{
    kiln__ckpt_layout_t *l = b->l;
    if (b->rc)
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        kiln__ckpt_spec_t *p = realloc(l->specs, cap * sizeof *p);
        if (!p) {
            b->rc = KILN_ENOMEM;
            return;
        }
        l->specs = p;
        l->cap = cap;
    }
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    kiln__ckpt_spec_t *s = &l->specs[l->n];
    memset(s, 0, sizeof *s);
    if (!(s->name = strdup(name))) {
        b->rc = KILN_ENOMEM;
        return;
    }
    s->ndim = ndim;
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= s->shape[i] = dims[i];
    s->offset = offset;
    s->bound = bound;
    l->params[b->part] += numel;
    l->n++;
}

/* A linear or convolution (k = 0: linear [out, in]; else [out, in, k, k]) with a bias, at
 * PyTorch's default bound 1 / sqrt(fan_in). p is the module's name. */
static void layer(bld_t *b, const char *p, int64_t out, int64_t in, int k, int bias)
{
    int64_t dims[4] = {out, in, k, k};
    float bound = (float)(1.0 / sqrt((double)(in * (k ? k * k : 1))));
    put(b, 0.0f, bound, k ? 4 : 2, dims, "%s.weight", p);
    if (bias)
        put(b, 0.0f, bound, 1, dims, "%s.bias", p);
}

/* A GroupNorm or LayerNorm of c channels: gamma 1, beta 0. */
static void norm(bld_t *b, const char *p, int64_t c)
{
    put(b, 1.0f, 0.0f, 1, &c, "%s.weight", p);
    put(b, 0.0f, 0.0f, 1, &c, "%s.bias", p);
}

/* Name of a submodule: base + "." + leaf (leaf printf-formatted). */
static const char *sub(char *buf, const char *base, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *sub(char *buf, const char *base, const char *fmt, ...)
{
    int n = snprintf(buf, 256, "%s.", base);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, (size_t)(256 - n), fmt, ap);
    va_end(ap);
    return buf;
}

/* ---- UNet --------------------------------------------------------------------------------- */

/* ResBlock: in_layers (GroupNorm, SiLU, conv), emb_layers (SiLU, linear), out_layers
 * (GroupNorm, SiLU, dropout, conv), skip_connection (1x1 conv) when the width changes. */
static void unet_res(bld_t *b, const char *p, int64_t in, int64_t out, int64_t emb)
{
    char s[256];
    norm(b, sub(s, p, "in_layers.0"), in);
    layer(b, sub(s, p, "in_layers.2"), out, in, 3, 1);
    layer(b, sub(s, p, "emb_layers.1"), out, emb, 0, 1);
    norm(b, sub(s, p, "out_layers.0"), out);
    layer(b, sub(s, p, "out_layers.3"), out, out, 3, 1);
    if (in != out)
        layer(b, sub(s, p, "skip_connection"), out, in, 1, 1);
}

/* SpatialTransformer of depth 1 with conv projections (SD1.x): self attention, cross
 * attention on the context, and a GEGLU feed-forward of 4x width. */
static void unet_transformer(bld_t *b, const char *p, int64_t c, int64_t ctx)
{
    char s[256];
    norm(b, sub(s, p, "norm"), c);
    layer(b, sub(s, p, "proj_in"), c, c, 1, 1);
    static const char *const attn[2] = {"attn1", "attn2"};
    for (int a = 0; a < 2; a++) {
        int64_t kv = a ? ctx : c;
        layer(b, sub(s, p, "transformer_blocks.0.%s.to_q", attn[a]), c, c, 0, 0);
        layer(b, sub(s, p, "transformer_blocks.0.%s.to_k", attn[a]), c, kv, 0, 0);
        layer(b, sub(s, p, "transformer_blocks.0.%s.to_v", attn[a]), c, kv, 0, 0);
        layer(b, sub(s, p, "transformer_blocks.0.%s.to_out.0", attn[a]), c, c, 0, 1);
    }
    layer(b, sub(s, p, "transformer_blocks.0.ff.net.0.proj"), 8 * c, c, 0, 1);
    layer(b, sub(s, p, "transformer_blocks.0.ff.net.2"), c, 4 * c, 0, 1);
    for (int i = 1; i <= 3; i++)
        norm(b, sub(s, p, "transformer_blocks.0.norm%d", i), c);
    layer(b, sub(s, p, "proj_out"), c, c, 1, 1);
}

static void unet(bld_t *b, const kiln__ckpt_config_t *c)
{
    char p[256];
    int64_t ch = c->unet_ch, emb = 4 * ch, ctx = c->clip_width;
    int64_t chans[1 + KILN__CKPT_MAX_LEVELS * 17], n_chans = 0;
    b->part = PART_UNET;
    layer(b, UNET "time_embed.0", emb, ch, 0, 1);
    layer(b, UNET "time_embed.2", emb, emb, 0, 1);
    layer(b, UNET "input_blocks.0.0", ch, c->unet_in, 3, 1);
    chans[n_chans++] = ch;
    int idx = 1;
    int64_t cur = ch;
    for (int lv = 0; lv < c->unet_levels; lv++) {
        int64_t out = ch * c->unet_mult[lv];
        for (int r = 0; r < c->unet_res; r++, idx++) {
            unet_res(b, sub(p, UNET "input_blocks", "%d.0", idx), cur, out, emb);
            if (lv < c->unet_attn_levels)
                unet_transformer(b, sub(p, UNET "input_blocks", "%d.1", idx), out, ctx);
            chans[n_chans++] = cur = out;
        }
        if (lv + 1 < c->unet_levels) {
            layer(b, sub(p, UNET "input_blocks", "%d.0.op", idx++), cur, cur, 3, 1);
            chans[n_chans++] = cur;
        }
    }
    unet_res(b, UNET "middle_block.0", cur, cur, emb);
    unet_transformer(b, UNET "middle_block.1", cur, ctx);
    unet_res(b, UNET "middle_block.2", cur, cur, emb);
    idx = 0;
    for (int lv = c->unet_levels - 1; lv >= 0; lv--) {
        int64_t out = ch * c->unet_mult[lv];
        for (int r = 0; r <= c->unet_res; r++, idx++) {
            int64_t in = cur + chans[--n_chans];
            int at = lv < c->unet_attn_levels;
            unet_res(b, sub(p, UNET "output_blocks", "%d.0", idx), in, out, emb);
            if (at)
                unet_transformer(b, sub(p, UNET "output_blocks", "%d.1", idx), out, ctx);
            if (lv > 0 && r == c->unet_res)
                layer(b, sub(p, UNET "output_blocks", "%d.%d.conv", idx, at ? 2 : 1), out, out,
                      3, 1);
            cur = out;
        }
    }
    norm(b, UNET "out.0", cur);
    layer(b, UNET "out.2", c->unet_out, cur, 3, 1);
}

/* ---- VAE ---------------------------------------------------------------------------------- */

static void vae_res(bld_t *b, const char *p, int64_t in, int64_t out)
{
    char s[256];
    norm(b, sub(s, p, "norm1"), in);
    layer(b, sub(s, p, "conv1"), out, in, 3, 1);
    norm(b, sub(s, p, "norm2"), out);
    layer(b, sub(s, p, "conv2"), out, out, 3, 1);
    if (in != out)
        layer(b, sub(s, p, "nin_shortcut"), out, in, 1, 1);
}

/* mid.block_1, mid.attn_1 (single-head attention with 1x1 convs), mid.block_2. */
static void vae_mid(bld_t *b, const char *p, int64_t c)
{
    char s[256];
    vae_res(b, sub(s, p, "mid.block_1"), c, c);
    norm(b, sub(s, p, "mid.attn_1.norm"), c);
    static const char *const convs[4] = {"q", "k", "v", "proj_out"};
    for (int i = 0; i < 4; i++)
        layer(b, sub(s, p, "mid.attn_1.%s", convs[i]), c, c, 1, 1);
    vae_res(b, sub(s, p, "mid.block_2"), c, c);
}

static void vae(bld_t *b, const kiln__ckpt_config_t *c)
{
    char p[256];
    int64_t ch = c->vae_ch, z = c->vae_z, cur = ch;
    b->part = PART_VAE;
    layer(b, VAE "encoder.conv_in", ch, c->vae_image, 3, 1);
    for (int lv = 0; lv < c->vae_levels; lv++) {
        int64_t out = ch * c->vae_mult[lv];
        for (int r = 0; r < c->vae_res; r++, cur = out)
            vae_res(b, sub(p, VAE "encoder.down", "%d.block.%d", lv, r), cur, out);
        if (lv + 1 < c->vae_levels)
            layer(b, sub(p, VAE "encoder.down", "%d.downsample.conv", lv), cur, cur, 3, 1);
    }
    vae_mid(b, VAE "encoder", cur);
    norm(b, VAE "encoder.norm_out", cur);
    layer(b, VAE "encoder.conv_out", 2 * z, cur, 3, 1);

    cur = ch * c->vae_mult[c->vae_levels - 1];
    layer(b, VAE "decoder.conv_in", cur, z, 3, 1);
    vae_mid(b, VAE "decoder", cur);
    for (int lv = c->vae_levels - 1; lv >= 0; lv--) {
        int64_t out = ch * c->vae_mult[lv];
        for (int r = 0; r <= c->vae_res; r++, cur = out)
            vae_res(b, sub(p, VAE "decoder.up", "%d.block.%d", lv, r), cur, out);
        if (lv > 0)
            layer(b, sub(p, VAE "decoder.up", "%d.upsample.conv", lv), cur, cur, 3, 1);
    }
    norm(b, VAE "decoder.norm_out", cur);
    layer(b, VAE "decoder.conv_out", c->vae_image, cur, 3, 1);
    layer(b, VAE "quant_conv", 2 * c->vae_embed, 2 * z, 1, 1);
    layer(b, VAE "post_quant_conv", z, c->vae_embed, 1, 1);
}

/* ---- CLIP --------------------------------------------------------------------------------- */

/* A CLIP linear: a uniform weight of the given std (transformers draws a normal), zero
 * bias. */
static void clip_linear(bld_t *b, const char *p, int64_t out, int64_t in, double std)
{
    int64_t dims[2] = {out, in};
    put(b, 0.0f, (float)(std * sqrt(3.0)), 2, dims, "%s.weight", p);
    put(b, 0.0f, 0.0f, 1, dims, "%s.bias", p);
}

static void clip(bld_t *b, const kiln__ckpt_config_t *c)
{
    char p[256], s[256];
    int64_t w = c->clip_width, pos = c->clip_positions;
    /* CLIPTextModel's _init_weights with initializer_factor 1. */
    double in_std = pow((double)w, -0.5) * pow(2.0 * c->clip_layers, -0.5);
    double out_std = pow((double)w, -0.5), fc_std = pow(2.0 * (double)w, -0.5);
    b->part = PART_CLIP;
    put(b, 0.0f, (float)(0.02 * sqrt(3.0)), 2, (const int64_t[]){c->clip_vocab, w},
        CLIP "embeddings.token_embedding.weight");
    put(b, 0.0f, (float)(0.02 * sqrt(3.0)), 2, (const int64_t[]){pos, w},
        CLIP "embeddings.position_embedding.weight");
    put(b, 0.0f, 0.0f, 2, (const int64_t[]){1, pos}, CLIP "embeddings.position_ids");
    if (!b->rc)
        b->l->specs[b->l->n - 1].positions = 1;
    for (int i = 0; i < c->clip_layers; i++) {
        sub(p, CLIP "encoder.layers", "%d", i);
        clip_linear(b, sub(s, p, "self_attn.q_proj"), w, w, in_std);
        clip_linear(b, sub(s, p, "self_attn.k_proj"), w, w, in_std);
        clip_linear(b, sub(s, p, "self_attn.v_proj"), w, w, in_std);
        clip_linear(b, sub(s, p, "self_attn.out_proj"), w, w, out_std);
        norm(b, sub(s, p, "layer_norm1"), w);
        clip_linear(b, sub(s, p, "mlp.fc1"), c->clip_ff, w, fc_std);
        clip_linear(b, sub(s, p, "mlp.fc2"), w, c->clip_ff, in_std);
        norm(b, sub(s, p, "layer_norm2"), w);
    }
    norm(b, CLIP "final_layer_norm", w);
}

int kiln__ckpt_layout_build(const kiln__ckpt_config_t *c, kiln__ckpt_layout_t *out)
{
    bld_t b = {.l = out};
    unet(&b, c);
    vae(&b, c);
    clip(&b, c);
    if (b.rc)
        kiln__ckpt_layout_free(out);
    return b.rc;
}

void kiln__ckpt_layout_free(kiln__ckpt_layout_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->specs[i].name);
    free(l->specs);
    memset(l, 0, sizeof *l);
}
