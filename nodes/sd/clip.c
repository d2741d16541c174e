/* Loading the SD 1.x CLIP text encoder from a transformers-layout state dict: the
 * configuration (width, depth, MLP width, positions) comes from the tensor shapes and every
 * tensor is checked against it, so a damaged or foreign file fails with a named tensor
 * instead of a crash later. The forward pass is in clip_encode.c. */
#include "clip_int.h"
#include "sd_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- loading ---------------------------------------------------------------------------- */

typedef struct loader {
    kiln_weights_t *w;  /* borrowed: the caller's file */
    const char *prefix; /* borrowed */
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

/* prefix + name into buf; KILN_ELIMIT when it does not fit. */
static int full_name(const loader_t *l, char *buf, size_t n, const char *name)
{
    int len = snprintf(buf, n, "%s%s", l->prefix, name);
    return len < 0 || (size_t)len >= n ? KILN_ELIMIT : 0;
}

/* The shape of prefix+name into shape (ndim entries); KILN_ENOTFOUND quietly when absent. */
static int probe(const loader_t *l, const char *name, int *ndim, int64_t *shape)
{
    char full[512];
    kiln_dtype_t dt;
    if (full_name(l, full, sizeof full, name) < 0)
        return KILN_ENOTFOUND;
    return kiln_weights_info(l->w, full, &dt, ndim, shape);
}

/* Loads prefix+name as F32 after checking its shape against want (ndim entries; -1 matches
 * any size). Errors name the tensor in err. */
static int fetch(loader_t *l, const char *name, int ndim, const int64_t *want, kiln_tensor_t **out)
{
    char full[512];
    int64_t shape[KILN_TENSOR_MAX_DIMS];
    int nd = 0;
    kiln_dtype_t dt;
    if (full_name(l, full, sizeof full, name) < 0 ||
        kiln_weights_info(l->w, full, &dt, &nd, shape) != 0)
        return fail(l, KILN_ENOTFOUND, "text encoder tensor %s%s is missing", l->prefix, name);
    int ok = nd == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = want[i] < 0 || want[i] == shape[i];
    if (!ok)
        return fail(l, KILN_EPARSE, "text encoder tensor %s has an unexpected shape", full);
    int rc = sd_weight_get(l->w, full, KILN_DTYPE_F32, out);
    if (rc != 0)
        return fail(l, rc, "text encoder tensor %s: %s", full, kiln_strerror(rc));
    return 0;
}

static int fetch_vec(loader_t *l, const char *name, int64_t n, kiln_tensor_t **out)
{
    return fetch(l, name, 1, (const int64_t[]){n}, out);
}

static int fetch_mat(loader_t *l, const char *name, int64_t rows, int64_t cols, kiln_tensor_t **out)
{
    return fetch(l, name, 2, (const int64_t[]){rows, cols}, out);
}

/* One linear layer of layer i: "<part>.weight" [rows, cols] and "<part>.bias" [rows]. */
static int fetch_linear(loader_t *l, int i, const char *part, int64_t rows, int64_t cols,
                        kiln_tensor_t **w, kiln_tensor_t **b)
{
    char name[160];
    snprintf(name, sizeof name, "encoder.layers.%d.%s.weight", i, part);
    int rc = fetch_mat(l, name, rows, cols, w);
    if (rc == 0) {
        snprintf(name, sizeof name, "encoder.layers.%d.%s.bias", i, part);
        rc = fetch_vec(l, name, rows, b);
    }
    return rc;
}

static int fetch_norm(loader_t *l, int i, const char *part, int64_t c, kiln_tensor_t **w,
                      kiln_tensor_t **b)
{
    char name[160];
    snprintf(name, sizeof name, "encoder.layers.%d.%s.weight", i, part);
    int rc = fetch_vec(l, name, c, w);
    if (rc == 0) {
        snprintf(name, sizeof name, "encoder.layers.%d.%s.bias", i, part);
        rc = fetch_vec(l, name, c, b);
    }
    return rc;
}

static int load_layer(loader_t *l, int i, int64_t c, int64_t inner, clip_layer_t *ly)
{
    int rc = fetch_norm(l, i, "layer_norm1", c, &ly->ln1_w, &ly->ln1_b);
    if (rc == 0)
        rc = fetch_linear(l, i, "self_attn.q_proj", c, c, &ly->q_w, &ly->q_b);
    if (rc == 0)
        rc = fetch_linear(l, i, "self_attn.k_proj", c, c, &ly->k_w, &ly->k_b);
    if (rc == 0)
        rc = fetch_linear(l, i, "self_attn.v_proj", c, c, &ly->v_w, &ly->v_b);
    if (rc == 0)
        rc = fetch_linear(l, i, "self_attn.out_proj", c, c, &ly->o_w, &ly->o_b);
    if (rc == 0)
        rc = fetch_norm(l, i, "layer_norm2", c, &ly->ln2_w, &ly->ln2_b);
    if (rc == 0)
        rc = fetch_linear(l, i, "mlp.fc1", inner, c, &ly->fc1_w, &ly->fc1_b);
    if (rc == 0)
        rc = fetch_linear(l, i, "mlp.fc2", c, inner, &ly->fc2_w, &ly->fc2_b);
    return rc;
}

/* Width, positions, depth and MLP width from the tensor shapes; heads from the hint. */
static int read_config(loader_t *l, int heads, sd_clip_t *c)
{
    int64_t sh[KILN_TENSOR_MAX_DIMS];
    int nd = 0;
    if (probe(l, "embeddings.token_embedding.weight", &nd, sh) != 0)
        return fail(l, KILN_ENOTFOUND,
                    "text encoder tensor %sembeddings.token_embedding.weight "
                    "is missing",
                    l->prefix);
    if (nd != 2 || sh[1] < 1 || sh[1] > (1 << 20))
        return fail(l, KILN_EPARSE, "text encoder token embedding has an unexpected shape");
    c->width = (int)sh[1];
    char name[160];
    while (c->n_layers < 1000) {
        snprintf(name, sizeof name, "encoder.layers.%d.layer_norm1.weight", c->n_layers);
        if (probe(l, name, &nd, sh) != 0)
            break;
        c->n_layers++;
    }
    if (c->n_layers == 0)
        return fail(l, KILN_ENOTFOUND,
                    "text encoder tensor %sencoder.layers.0.layer_norm1"
                    ".weight is missing",
                    l->prefix);
    if (probe(l, "encoder.layers.0.mlp.fc1.weight", &nd, sh) != 0)
        return fail(l, KILN_ENOTFOUND,
                    "text encoder tensor %sencoder.layers.0.mlp.fc1.weight "
                    "is missing",
                    l->prefix);
    if (nd != 2 || sh[0] < 1 || sh[0] > (1 << 22))
        return fail(l, KILN_EPARSE, "text encoder MLP has an unexpected shape");
    c->inner = (int)sh[0];
    c->heads = heads > 0 ? heads : (c->width + 32) / 64;
    if (c->heads < 1)
        c->heads = 1;
    if (c->width % c->heads != 0)
        return fail(l, KILN_EPARSE, "text encoder width %d is not divisible by %d heads", c->width,
                    c->heads);
    return 0;
}

static int load_all(loader_t *l, sd_clip_t *c)
{
    int64_t w = c->width;
    int rc =
        fetch(l, "embeddings.token_embedding.weight", 2, (const int64_t[]){-1, w}, &c->tok_emb);
    if (rc == 0)
        rc = fetch(l, "embeddings.position_embedding.weight", 2, (const int64_t[]){-1, w},
                   &c->pos_emb);
    if (rc == 0)
        rc = fetch_vec(l, "final_layer_norm.weight", w, &c->final_w);
    if (rc == 0)
        rc = fetch_vec(l, "final_layer_norm.bias", w, &c->final_b);
    if (rc == 0) {
        c->n_pos = (int)kiln_tensor_dim(c->pos_emb, 0);
        if (c->n_pos < SD_CLIP_CHUNK)
            return fail(l, KILN_EPARSE, "text encoder has %d positions, fewer than %d", c->n_pos,
                        SD_CLIP_CHUNK);
        c->layers = kiln_malloc((size_t)c->n_layers * sizeof *c->layers);
        if (!c->layers)
            return KILN_ENOMEM;
        memset(c->layers, 0, (size_t)c->n_layers * sizeof *c->layers);
    }
    for (int i = 0; rc == 0 && i < c->n_layers; i++)
        rc = load_layer(l, i, w, c->inner, &c->layers[i]);
    return rc;
}

int sd_clip_load(kiln_weights_t *w, const char *prefix, int heads, sd_clip_t **out, char *err,
                 size_t err_size)
{
    if (err && err_size)
        err[0] = '\0';
    if (!out)
        return KILN_EINVAL;
    *out = NULL;
    if (!w)
        return KILN_EINVAL;
    loader_t l = {.w = w, .prefix = prefix ? prefix : "", .err = err, .err_size = err_size};
    sd_clip_t *c = kiln_malloc(sizeof *c);
    if (!c)
        return KILN_ENOMEM;
    memset(c, 0, sizeof *c);
    c->dev = sd_dev_current(); /* the weights below are placed there */
    c->dev.channels_last = 0;   /* a transformer over tokens: no image layout to choose */
    int rc = read_config(&l, heads, c);
    if (rc == 0)
        rc = load_all(&l, c);
    if (rc != 0) {
        if (rc == KILN_ENOMEM)
            fail(&l, rc, "out of memory loading the text encoder");
        sd_clip_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void sd_clip_free(sd_clip_t *c)
{
    if (!c)
        return;
    if (c->layers) {
        for (int i = 0; i < c->n_layers; i++) {
            kiln_tensor_t **t = (kiln_tensor_t **)&c->layers[i];
            for (int j = 0; j < CLIP_LAYER_TENSORS; j++)
                kiln_tensor_release(t[j]);
        }
        kiln_free(c->layers);
    }
    kiln_tensor_release(c->tok_emb);
    kiln_tensor_release(c->pos_emb);
    kiln_tensor_release(c->final_w);
    kiln_tensor_release(c->final_b);
    kiln_free(c);
}

int sd_clip_width(const sd_clip_t *c)
{
    return c ? c->width : 0;
}

int sd_clip_layers(const sd_clip_t *c)
{
    return c ? c->n_layers : 0;
}

int sd_clip_heads(const sd_clip_t *c)
{
    return c ? c->heads : 0;
}
