/* Reading an SD UNet from a checkpoint: the module layout is discovered from the tensor
 * names (as ComfyUI's model_detection does), every tensor's shape is checked against the
 * channel flow (skips included), and the config of unet.h is derived from what was found.
 * Whatever the file holds, the result is a model the forward can run or a clear error. */
#include <kiln/node.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet_int.h"

/* Longest tensor name this reader builds. */
#define KEY_MAX 320

typedef struct rd {
    kiln_weights_t *w; /* borrowed: the caller's open file */
    const char *prefix;
    char *err;
    size_t err_size;
    int heads;         /* the caller's override, or <= 0 */
    int heads_decided; /* num_heads / num_head_channels set in cfg */
    sd_unet_config_t *cfg;
} rd_t;

/* prefix + base + leaf into buf; 0, or KILN_EPARSE when the name is too long. */
static int key(const rd_t *r, char *buf, const char *base, const char *leaf)
{
    int n = snprintf(buf, KEY_MAX, "%s%s%s", r->prefix, base, leaf);
    if (n < 0 || n >= KEY_MAX) {
        snprintf(r->err, r->err_size, "unet: tensor name too long under \"%s\"", r->prefix);
        return KILN_EPARSE;
    }
    return 0;
}

/* buf = base + what + i + "."; 0 when that does not fit in KEY_MAX. */
static int join(char *buf, const char *base, const char *what, int i)
{
    char num[16];
    int nl = snprintf(num, sizeof num, "%d.", i);
    size_t bl = strlen(base), wl = strlen(what);
    if (nl < 0 || bl + wl + (size_t)nl >= KEY_MAX)
        return 0;
    memcpy(buf, base, bl);
    memcpy(buf + bl, what, wl);
    memcpy(buf + bl + wl, num, (size_t)nl + 1);
    return 1;
}

/* 1 when the tensor prefix + base + leaf exists (its rank in *ndim, shape in shape). */
static int has(const rd_t *r, const char *base, const char *leaf, int *ndim, int64_t *shape)
{
    char k[KEY_MAX];
    kiln_dtype_t dt;
    int nd = 0;
    int64_t sh[KILN_TENSOR_MAX_DIMS];
    if (key(r, k, base, leaf) != 0)
        return 0;
    if (kiln_weights_info(r->w, k, &dt, ndim ? ndim : &nd, shape ? shape : sh) != 0)
        return 0;
    return 1;
}

/* The safetensors spelling of the dtypes a weight may have (kiln_dtype_name is not in
 * the host table). */
static const char *dtype_name(kiln_dtype_t dt)
{
    switch (dt) {
    case KILN_DTYPE_F32:
        return "F32";
    case KILN_DTYPE_F16:
        return "F16";
    case KILN_DTYPE_BF16:
        return "BF16";
    case KILN_DTYPE_F64:
        return "F64";
    default:
        return "a non-float dtype";
    }
}

/* Loads prefix + base + leaf, which must have rank ndim and, where dims[i] >= 0, size
 * dims[i] along i. Float tensors stay in their stored dtype (the ops widen F16/BF16
 * exactly), F64 becomes F32. */
static int get(const rd_t *r, const char *base, const char *leaf, int ndim, const int64_t *dims,
               kiln_tensor_t **out)
{
    char k[KEY_MAX];
    kiln_dtype_t dt;
    int nd;
    int64_t sh[KILN_TENSOR_MAX_DIMS];
    int rc = key(r, k, base, leaf);
    if (rc != 0)
        return rc;
    if (kiln_weights_info(r->w, k, &dt, &nd, sh) != 0) {
        snprintf(r->err, r->err_size, "unet: missing tensor %s", k);
        return KILN_ENOTFOUND;
    }
    int ok = nd == ndim && (dt == KILN_DTYPE_F32 || dt == KILN_DTYPE_F16 || dt == KILN_DTYPE_BF16 ||
                            dt == KILN_DTYPE_F64);
    for (int i = 0; ok && i < ndim; i++)
        ok = dims[i] < 0 || dims[i] == sh[i];
    if (!ok) {
        char got[96] = "", want[96] = "";
        for (int i = 0; i < nd && i < KILN_TENSOR_MAX_DIMS; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "",
                     (long long)sh[i]);
        for (int i = 0; i < ndim; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? ", " : "",
                     (long long)dims[i]);
        snprintf(r->err, r->err_size, "unet: %s is %s [%s], expected float [%s] (-1: any)", k,
                 dtype_name(dt), got, want);
        return KILN_EPARSE;
    }
    rc = sd_weight_get(r->w, k, dt == KILN_DTYPE_F64 ? KILN_DTYPE_F32 : dt, out);
    if (rc != 0)
        snprintf(r->err, r->err_size, "unet: cannot read %s (error %d)", k, rc);
    return rc;
}

/* A layer's weight of rank ndim and dims, plus its bias [dims[0]] when with_bias. */
static int get_wb(const rd_t *r, const char *base, const char *name, int ndim, const int64_t *dims,
                  int with_bias, sd_unet_wb_t *wb)
{
    char leaf[96];
    snprintf(leaf, sizeof leaf, "%s.weight", name);
    int rc = get(r, base, leaf, ndim, dims, &wb->w);
    if (rc == 0 && with_bias) {
        int64_t n = kiln_tensor_dim(wb->w, 0);
        snprintf(leaf, sizeof leaf, "%s.bias", name);
        rc = get(r, base, leaf, 1, &n, &wb->b);
    }
    return rc;
}

/* Records "unet: <prefix><base>: <message>" in r->err and returns rc. */
static int fail(const rd_t *r, int rc, const char *base, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(const rd_t *r, int rc, const char *base, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(r->err, r->err_size, "unet: %s%s: %s", r->prefix, base, msg);
    return rc;
}

/* A ResBlock at base taking c_in channels; emb_dim is the time embedding's width. */
static int read_res(const rd_t *r, const char *base, int c_in, int64_t emb_dim, sd_unet_res_t *res)
{
    res->c_in = c_in;
    int rc = get_wb(r, base, "in_layers.0", 1, (const int64_t[]){c_in}, 1, &res->in_norm);
    if (rc == 0)
        rc = get_wb(r, base, "in_layers.2", 4, (const int64_t[]){-1, c_in, 3, 3}, 1, &res->in_conv);
    if (rc != 0)
        return rc;
    int64_t co = kiln_tensor_dim(res->in_conv.w, 0);
    res->c_out = (int)co;
    if (co < 1 || c_in < 1 || co % SD_UNET_GROUPS != 0 || c_in % SD_UNET_GROUPS != 0)
        return fail(r, KILN_EPARSE, base, "channels %d -> %lld are not multiples of 32", c_in,
                    (long long)co);
    rc = get_wb(r, base, "emb_layers.1", 2, (const int64_t[]){co, emb_dim}, 1, &res->emb);
    if (rc == 0)
        rc = get_wb(r, base, "out_layers.0", 1, &co, 1, &res->out_norm);
    if (rc == 0)
        rc = get_wb(r, base, "out_layers.3", 4, (const int64_t[]){co, co, 3, 3}, 1, &res->out_conv);
    if (rc == 0 && has(r, base, "skip_connection.weight", NULL, NULL))
        rc =
            get_wb(r, base, "skip_connection", 4, (const int64_t[]){co, c_in, 1, 1}, 1, &res->skip);
    else if (rc == 0 && co != c_in)
        return fail(r, KILN_EPARSE, base, "no skip_connection for %d -> %lld channels", c_in,
                    (long long)co);
    return rc;
}

/* Attention head count for a transformer of `inner` channels, as ComfyUI's UNetModel:
 * num_head_channels -1 gives num_heads heads of ch / num_heads, else ch / num_head_channels
 * heads of num_head_channels. The first transformer decides the defaults (SD1.x's num_heads
 * 8 with conv projections, SD2.x's 64-wide heads with linear ones). */
static int decide_heads(rd_t *r, const char *base, int ch, int inner, int use_linear, int *heads)
{
    if (!r->heads_decided) {
        r->cfg->num_heads = r->heads > 0 ? r->heads : (use_linear ? -1 : 8);
        r->cfg->num_head_channels = r->heads > 0 ? -1 : (use_linear ? 64 : -1);
        r->heads_decided = 1;
    }
    int nh = r->cfg->num_heads, dh = r->cfg->num_head_channels;
    if (dh > 0)
        nh = ch / dh;
    else
        dh = nh > 0 ? ch / nh : 0;
    if (nh < 1 || dh < 1 || nh * dh != inner)
        return fail(r, KILN_EPARSE, base, "%d channels do not split into heads (inner %d)", ch,
                    inner);
    *heads = nh;
    return 0;
}

static int read_tblock(rd_t *r, const char *base, int64_t inner, sd_unet_tblock_t *t)
{
    const int64_t n1[1] = {inner}, sq[2] = {inner, inner};
    const int64_t kv[2] = {inner, r->cfg->context_dim > 0 ? r->cfg->context_dim : -1};
    int rc = get_wb(r, base, "norm1", 1, n1, 1, &t->norm1);
    if (rc == 0)
        rc = get_wb(r, base, "norm2", 1, n1, 1, &t->norm2);
    if (rc == 0)
        rc = get_wb(r, base, "norm3", 1, n1, 1, &t->norm3);
    if (rc == 0)
        rc = get(r, base, "attn1.to_q.weight", 2, sq, &t->q1);
    if (rc == 0)
        rc = get(r, base, "attn1.to_k.weight", 2, sq, &t->k1);
    if (rc == 0)
        rc = get(r, base, "attn1.to_v.weight", 2, sq, &t->v1);
    if (rc == 0)
        rc = get_wb(r, base, "attn1.to_out.0", 2, sq, 1, &t->o1);
    if (rc == 0)
        rc = get(r, base, "attn2.to_q.weight", 2, sq, &t->q2);
    if (rc == 0)
        rc = get(r, base, "attn2.to_k.weight", 2, kv, &t->k2);
    if (rc != 0)
        return rc;
    if (kiln_tensor_dim(t->k2, 1) < 1 || kiln_tensor_dim(t->k2, 1) > (1 << 20))
        return fail(r, KILN_EPARSE, base, "context width %lld",
                    (long long)kiln_tensor_dim(t->k2, 1));
    r->cfg->context_dim = (int)kiln_tensor_dim(t->k2, 1);
    const int64_t kv2[2] = {inner, r->cfg->context_dim};
    rc = get(r, base, "attn2.to_v.weight", 2, kv2, &t->v2);
    if (rc == 0)
        rc = get_wb(r, base, "attn2.to_out.0", 2, sq, 1, &t->o2);
    if (rc == 0)
        rc = get_wb(r, base, "ff.net.0.proj", 2, (const int64_t[]){-1, inner}, 1, &t->ff_in);
    if (rc != 0)
        return rc;
    int64_t ff2 = kiln_tensor_dim(t->ff_in.w, 0);
    if (ff2 < 2 || ff2 % 2 != 0)
        return fail(r, KILN_EPARSE, base, "GEGLU projection width %lld is not even",
                    (long long)ff2);
    return get_wb(r, base, "ff.net.2", 2, (const int64_t[]){inner, ff2 / 2}, 1, &t->ff_out);
}

/* A SpatialTransformer at base over ch channels. */
static int read_st(rd_t *r, const char *base, int ch, sd_unet_st_t *st)
{
    int64_t pshape[KILN_TENSOR_MAX_DIMS];
    int pnd = 0;
    st->channels = ch;
    if (ch < 1 || ch % SD_UNET_GROUPS != 0)
        return fail(r, KILN_EPARSE, base, "%d channels are not a multiple of 32", ch);
    if (!has(r, base, "proj_in.weight", &pnd, pshape) || (pnd != 2 && pnd != 4))
        return fail(r, KILN_EPARSE, base, "proj_in must be a linear or a 1x1 conv");
    st->use_linear = pnd == 2;
    st->inner = (int)pshape[0];
    if (r->cfg->use_linear_in_transformer >= 0 &&
        r->cfg->use_linear_in_transformer != st->use_linear)
        return fail(r, KILN_EPARSE, base, "mixes linear and conv projections");
    r->cfg->use_linear_in_transformer = st->use_linear;
    const int64_t pin[4] = {st->inner, ch, 1, 1}, pout[4] = {ch, st->inner, 1, 1};
    int rc = get_wb(r, base, "norm", 1, (const int64_t[]){ch}, 1, &st->norm);
    if (rc == 0)
        rc = get_wb(r, base, "proj_in", pnd, pin, 1, &st->proj_in);
    if (rc == 0)
        rc = get_wb(r, base, "proj_out", pnd, pout, 1, &st->proj_out);
    if (rc == 0)
        rc = decide_heads(r, base, ch, st->inner, st->use_linear, &st->heads);
    if (rc != 0)
        return rc;
    char b2[KEY_MAX];
    while (st->depth < 1000 && join(b2, base, "transformer_blocks.", st->depth) &&
           has(r, b2, "norm1.weight", NULL, NULL))
        st->depth++;
    if (st->depth == 0)
        return fail(r, KILN_EPARSE, base, "no transformer_blocks");
    st->blocks = kiln_malloc((size_t)st->depth * sizeof *st->blocks);
    if (!st->blocks)
        return KILN_ENOMEM;
    memset(st->blocks, 0, (size_t)st->depth * sizeof *st->blocks);
    for (int i = 0; rc == 0 && i < st->depth; i++) {
        join(b2, base, "transformer_blocks.", i); /* fitted while counting */
        rc = read_tblock(r, b2, st->inner, &st->blocks[i]);
    }
    return rc;
}

/* Which module sits at base ("input_blocks.3.0."), or -1 for none. */
static int probe_kind(const rd_t *r, const char *base)
{
    if (has(r, base, "in_layers.0.weight", NULL, NULL))
        return SD_UNET_MOD_RES;
    if (has(r, base, "proj_in.weight", NULL, NULL))
        return SD_UNET_MOD_ST;
    if (has(r, base, "op.weight", NULL, NULL))
        return SD_UNET_MOD_DOWN;
    if (has(r, base, "conv.weight", NULL, NULL))
        return SD_UNET_MOD_UP;
    if (has(r, base, "weight", NULL, NULL))
        return SD_UNET_MOD_CONV;
    return -1;
}

/* The flow through the model while reading: channels and the resolution level. */
typedef struct flow {
    int ch, level;
    int64_t emb_dim;
} flow_t;

/* One module at base, of the kind found there; updates the flow. `where` is 0 for input
 * blocks, 1 middle, 2 output (convs only open the input path, resampling only where
 * ComfyUI puts it). */
static int read_mod(rd_t *r, const char *base, int kind, int where, flow_t *f, sd_unet_mod_t *m)
{
    m->kind = (sd_unet_mod_kind_t)kind;
    int rc;
    int ok = kind == SD_UNET_MOD_RES || kind == SD_UNET_MOD_ST ||
             (kind == SD_UNET_MOD_DOWN && where == 0) || (kind == SD_UNET_MOD_UP && where == 2);
    if (!ok)
        return fail(r, KILN_EPARSE, base, "a module of kind %d is not expected here", kind);
    switch (kind) {
    case SD_UNET_MOD_RES:
        m->res = kiln_malloc(sizeof *m->res);
        if (!m->res)
            return KILN_ENOMEM;
        memset(m->res, 0, sizeof *m->res);
        rc = read_res(r, base, f->ch, f->emb_dim, m->res);
        f->ch = m->res->c_out;
        return rc;
    case SD_UNET_MOD_ST:
        m->st = kiln_malloc(sizeof *m->st);
        if (!m->st)
            return KILN_ENOMEM;
        memset(m->st, 0, sizeof *m->st);
        return read_st(r, base, f->ch, m->st);
    default:
        rc = get_wb(r, base, kind == SD_UNET_MOD_DOWN ? "op" : "conv", 4,
                    (const int64_t[]){-1, f->ch, 3, 3}, 1, &m->conv);
        if (rc == 0 && kiln_tensor_dim(m->conv.w, 0) < 1)
            return fail(r, KILN_EPARSE, base, "a conv without output channels");
        if (rc == 0)
            f->ch = (int)kiln_tensor_dim(m->conv.w, 0);
        f->level += kind == SD_UNET_MOD_DOWN ? 1 : -1;
        return rc;
    }
}

/* One TimestepEmbedSequential at base: its modules .0, .1, ... in order. */
static int read_seq(rd_t *r, const char *base, int where, flow_t *f, sd_unet_seq_t *s)
{
    char b2[KEY_MAX];
    for (int j = 0; j <= SD_UNET_SEQ_MAX; j++) {
        int kind = join(b2, base, "", j) ? probe_kind(r, b2) : -1;
        if (kind < 0)
            break;
        if (j == SD_UNET_SEQ_MAX)
            return fail(r, KILN_EPARSE, base, "more than %d modules", SD_UNET_SEQ_MAX);
        int rc = read_mod(r, b2, kind, where, f, &s->mods[j]);
        s->n = j + 1;
        if (rc != 0)
            return rc;
    }
    if (s->n == 0)
        return fail(r, KILN_EPARSE, base, "no module found");
    return 0;
}

/* 1 + the largest N of the names prefix + group + "N." in the file. */
static int count_blocks(const rd_t *r, const char *group)
{
    size_t pl = strlen(r->prefix), gl = strlen(group), n = kiln_weights_count(r->w);
    long best = -1;
    for (size_t i = 0; i < n; i++) {
        const char *name = kiln_weights_name(r->w, i);
        if (!name || strncmp(name, r->prefix, pl) != 0 || strncmp(name + pl, group, gl) != 0)
            continue;
        char *end;
        long v = strtol(name + pl + gl, &end, 10);
        if (end != name + pl + gl && *end == '.' && v > best && v < 10000)
            best = v;
    }
    return (int)(best + 1);
}

/* input_blocks.0 must be the plain conv_in, the only CONV module. */
static int read_input(rd_t *r, sd_unet_t *u, flow_t *f, int *skip_ch, int *skip_lv)
{
    char base[64];
    for (int i = 0; i < u->n_input; i++) {
        snprintf(base, sizeof base, "input_blocks.%d.", i);
        int rc;
        if (i == 0) {
            u->input[0].n = 1;
            u->input[0].mods[0].kind = SD_UNET_MOD_CONV;
            rc = get_wb(r, base, "0", 4, (const int64_t[]){-1, f->ch, 3, 3}, 1,
                        &u->input[0].mods[0].conv);
            if (rc == 0)
                f->ch = (int)kiln_tensor_dim(u->input[0].mods[0].conv.w, 0);
        } else {
            rc = read_seq(r, base, 0, f, &u->input[i]);
        }
        if (rc != 0)
            return rc;
        skip_ch[i] = f->ch;
        skip_lv[i] = f->level;
    }
    return 0;
}

static int read_output(rd_t *r, sd_unet_t *u, flow_t *f, const int *skip_ch, const int *skip_lv)
{
    char base[64];
    for (int i = 0; i < u->n_output; i++) {
        int top = u->n_input - 1 - i;
        snprintf(base, sizeof base, "output_blocks.%d.", i);
        if (skip_lv[top] != f->level)
            return fail(r, KILN_EPARSE, base, "joins a skip of level %d at level %d", skip_lv[top],
                        f->level);
        f->ch += skip_ch[top];
        int rc = read_seq(r, base, 2, f, &u->output[i]);
        if (rc != 0)
            return rc;
    }
    if (f->level != 0)
        return fail(r, KILN_EPARSE, "output_blocks", "the up path ends at level %d", f->level);
    return 0;
}

/* The config of unet.h, read off the modules (ComfyUI's detect_unet_config). */
static int derive_config(rd_t *r, sd_unet_t *u)
{
    sd_unet_config_t *c = &u->cfg;
    int level = 0, res_in_level = 0;
    for (int i = 1; i < u->n_input; i++) {
        const sd_unet_seq_t *s = &u->input[i];
        if (s->mods[0].kind == SD_UNET_MOD_DOWN) {
            level++;
            res_in_level = 0;
            continue;
        }
        if (level >= 8)
            return fail(r, KILN_EPARSE, "input_blocks", "more than 8 levels");
        if (s->mods[0].kind != SD_UNET_MOD_RES)
            continue;
        if (res_in_level++ == 0) {
            c->channel_mult[level] = s->mods[0].res->c_out / c->model_channels;
            c->transformer_depth[level] = s->n > 1 && s->mods[1].st ? s->mods[1].st->depth : 0;
        }
        if (level == 0)
            c->num_res_blocks = res_in_level;
    }
    if (level >= 8)
        return fail(r, KILN_EPARSE, "input_blocks", "more than 8 levels");
    c->n_levels = level + 1;
    for (int j = 0; j < u->middle.n; j++)
        if (u->middle.mods[j].st)
            c->transformer_depth_middle = u->middle.mods[j].st->depth;
    if (c->use_linear_in_transformer < 0)
        c->use_linear_in_transformer = 0;
    if (!r->heads_decided) {
        c->num_heads = r->heads > 0 ? r->heads : 8;
        c->num_head_channels = -1;
    }
    return 0;
}

/* What comes before the blocks: no class conditioning, conv_in's channels, time_embed. */
static int read_head(rd_t *r, sd_unet_t *u, flow_t *f)
{
    if (has(r, "label_emb.0.0.weight", "", NULL, NULL)) {
        snprintf(r->err, r->err_size,
                 "unet: class-conditioned UNets (label_emb: SDXL, "
                 "SD2.x unCLIP) are not supported");
        return KILN_EUNSUPPORTED;
    }
    int nd = 0;
    int64_t sh[KILN_TENSOR_MAX_DIMS];
    if (!has(r, "input_blocks.0.0.weight", "", &nd, sh)) {
        snprintf(r->err, r->err_size, "unet: missing tensor %sinput_blocks.0.0.weight", r->prefix);
        return KILN_ENOTFOUND;
    }
    if (nd != 4 || sh[0] < 1 || sh[1] < 1 || sh[0] > (1 << 20) || sh[1] > (1 << 20))
        return fail(r, KILN_EPARSE, "input_blocks.0.0.weight", "not a conv_in weight");
    u->cfg.model_channels = (int)sh[0];
    u->cfg.in_channels = f->ch = (int)sh[1];
    int rc = get_wb(r, "", "time_embed.0", 2, (const int64_t[]){-1, sh[0]}, 1, &u->time1);
    if (rc == 0)
        rc = get_wb(r, "", "time_embed.2", 2, (const int64_t[]){-1, kiln_tensor_dim(u->time1.w, 0)},
                    1, &u->time2);
    if (rc == 0)
        f->emb_dim = kiln_tensor_dim(u->time2.w, 0);
    return rc;
}

int sd_unet_read(sd_unet_t *u, kiln_weights_t *w, const char *prefix, int heads, char *err,
                 size_t err_size)
{
    rd_t r = {
        .w = w, .prefix = prefix, .err = err, .err_size = err_size, .heads = heads, .cfg = &u->cfg};
    u->cfg.use_linear_in_transformer = -1;
    flow_t f = {0};
    int rc = read_head(&r, u, &f);
    if (rc != 0)
        return rc;
    u->n_input = count_blocks(&r, "input_blocks.");
    u->n_output = count_blocks(&r, "output_blocks.");
    if (u->n_input != u->n_output || u->n_input > 64) {
        snprintf(err, err_size, "unet: %d input blocks but %d output blocks (at most 64)",
                 u->n_input, u->n_output);
        return KILN_EPARSE;
    }
    u->input = kiln_malloc((size_t)u->n_input * sizeof *u->input);
    u->output = kiln_malloc((size_t)u->n_output * sizeof *u->output);
    if (!u->input || !u->output)
        return KILN_ENOMEM;
    memset(u->input, 0, (size_t)u->n_input * sizeof *u->input);
    memset(u->output, 0, (size_t)u->n_output * sizeof *u->output);
    int skip_ch[64], skip_lv[64];
    rc = read_input(&r, u, &f, skip_ch, skip_lv);
    if (rc == 0)
        rc = read_seq(&r, "middle_block.", 1, &f, &u->middle);
    if (rc == 0)
        rc = read_output(&r, u, &f, skip_ch, skip_lv);
    if (rc == 0 && f.ch % SD_UNET_GROUPS != 0)
        rc = fail(&r, KILN_EPARSE, "out", "%d channels are not a multiple of 32", f.ch);
    if (rc == 0)
        rc = get_wb(&r, "", "out.0", 1, (const int64_t[]){f.ch}, 1, &u->out_norm);
    if (rc == 0)
        rc = get_wb(&r, "", "out.2", 4, (const int64_t[]){-1, f.ch, 3, 3}, 1, &u->out_conv);
    if (rc != 0)
        return rc;
    u->cfg.out_channels = (int)kiln_tensor_dim(u->out_conv.w, 0);
    return derive_config(&r, u);
}
