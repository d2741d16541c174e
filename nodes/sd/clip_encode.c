/* The forward pass of the SD 1.x CLIP text encoder as ComfyUI runs it (comfy/clip_model.py
 * and sd1_clip.py): token + position embeddings, pre-LN transformer layers with causal
 * self-attention and quick_gelu MLPs, the final layer norm, CLIPSetLastLayer's intermediate
 * output and the prompt-weight interpolation against an encoded empty chunk. All float32,
 * all through the op library, so the same code runs wherever the ops do. */
#include <math.h>
#include <string.h>

#include "clip_int.h"

/* More chunks than this in one prompt (about 5 million tokens) is refused. */
#define CLIP_MAX_CHUNKS 65536

/* Scratch tensors of one forward pass, shared by every layer. */
typedef struct clip_work {
    int64_t b, l, c, h, d;    /* batch, tokens, width, heads, head width */
    kiln_tensor_t *x;         /* owned: [B, L, C] the residual stream */
    kiln_tensor_t *n;         /* owned: [B, L, C] normed input, then projections */
    kiln_tensor_t *q, *k, *v; /* owned: [B, L, C] */
    kiln_tensor_t *a;         /* owned: [B, L, C] attention output, heads merged */
    kiln_tensor_t *f;         /* owned: [B, L, I] MLP hidden layer */
    kiln_tensor_t *s;         /* owned: [B, H, L, L] attention scores */
    kiln_tensor_t *o;         /* owned: [B, H, L, D] attention output per head */
    kiln_tensor_t *mask;      /* owned: [L, L] 0 on and below the diagonal, -inf above */
} clip_work_t;

static void work_free(clip_work_t *w)
{
    kiln_tensor_t *all[] = {w->x, w->n, w->q, w->k, w->v, w->a, w->f, w->s, w->o, w->mask};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        kiln_tensor_release(all[i]);
    memset(w, 0, sizeof *w);
}

static int work_init(clip_work_t *w, const sd_clip_t *c, int64_t b, int64_t l)
{
    memset(w, 0, sizeof *w);
    w->b = b, w->l = l, w->c = c->width, w->h = c->heads, w->d = c->width / c->heads;
    const int64_t blc[3] = {b, l, w->c};
    kiln_tensor_t **bufs[] = {&w->x, &w->n, &w->q, &w->k, &w->v, &w->a};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        *bufs[i] = sd_tensor_new(KILN_DTYPE_F32, 3, blc);
    w->f = sd_tensor_new(KILN_DTYPE_F32, 3, (const int64_t[]){b, l, c->inner});
    w->s = sd_tensor_new(KILN_DTYPE_F32, 4, (const int64_t[]){b, w->h, l, l});
    w->o = sd_tensor_new(KILN_DTYPE_F32, 4, (const int64_t[]){b, w->h, l, w->d});
    /* The causal mask is written on the host, then moved to the model's device. */
    kiln_tensor_t *mask = kiln_tensor_new(KILN_DTYPE_F32, 2, (const int64_t[]){l, l}); // [L, L]
    float *m = mask ? kiln_tensor_data(mask) : NULL;
    for (int64_t i = 0; m && i < l; i++)
        for (int64_t j = 0; j < l; j++)
            m[i * l + j] = j > i ? -INFINITY : 0.0f;
    if (m)
        sd_to_dev(NULL, mask, &w->mask);
    kiln_tensor_release(mask);
    if (!w->x || !w->n || !w->q || !w->k || !w->v || !w->a || !w->f || !w->s || !w->o || !w->mask) {
        work_free(w);
        return KILN_ENOMEM;
    }
    return 0;
}

/* A view of t [B, L, H*D] as [B, H, L, D] (no copy). */
static int heads_view(const clip_work_t *w, const kiln_tensor_t *t, kiln_tensor_t **out)
{
    kiln_tensor_t *r = NULL;
    int rc = kiln_tensor_reshape(t, 4, (const int64_t[]){w->b, w->l, w->h, w->d}, &r);
    if (rc == 0)
        rc = kiln_tensor_permute(r, (const int[]){0, 2, 1, 3}, out); // [B, H, L, D]
    kiln_tensor_release(r);
    return rc;
}

/* a = softmax(Q K^T / sqrt(D) + causal mask) V per head, with the heads merged back into
 * [B, L, C]. The score matrix is small (77 x 77 per head), so it is built whole. */
static int causal_attention(clip_work_t *w, kiln_lane_t *lane)
{
    kiln_tensor_t *qh = NULL, *kh = NULL, *vh = NULL, *a4 = NULL;
    int rc = heads_view(w, w->q, &qh);
    if (rc == 0)
        rc = heads_view(w, w->k, &kh);
    if (rc == 0)
        rc = heads_view(w, w->v, &vh);
    if (rc == 0)
        rc = kiln_op_matmul(lane, w->s, qh, kh, 1); // [B, H, L, L]
    if (rc == 0)
        rc = kiln_op_scale(lane, w->s, w->s, (float)(1.0 / sqrt((double)w->d)));
    if (rc == 0)
        rc = kiln_op_add(lane, w->s, w->s, w->mask);
    if (rc == 0)
        rc = kiln_op_softmax(lane, w->s, w->s);
    if (rc == 0)
        rc = kiln_op_matmul(lane, w->o, w->s, vh, 0); // [B, H, L, D]
    if (rc == 0)
        rc = kiln_tensor_reshape(w->a, 4, (const int64_t[]){w->b, w->l, w->h, w->d}, &a4);
    if (rc == 0)
        rc = kiln_op_permute(lane, a4, w->o, (const int[]){0, 2, 1, 3}); // [B, L, H, D]
    kiln_tensor_release(qh);
    kiln_tensor_release(kh);
    kiln_tensor_release(vh);
    kiln_tensor_release(a4);
    return rc;
}

/* One encoder layer on w->x in place:
 * x += out_proj(attn(ln1(x))); x += fc2(quick_gelu(fc1(ln2(x)))). */
static int layer_forward(const clip_layer_t *ly, clip_work_t *w, kiln_lane_t *lane)
{
    int rc = kiln_op_layer_norm(lane, w->n, w->x, ly->ln1_w, ly->ln1_b, CLIP_LN_EPS);
    if (rc == 0)
        rc = kiln_op_linear(lane, w->q, w->n, ly->q_w, ly->q_b);
    if (rc == 0)
        rc = kiln_op_linear(lane, w->k, w->n, ly->k_w, ly->k_b);
    if (rc == 0)
        rc = kiln_op_linear(lane, w->v, w->n, ly->v_w, ly->v_b);
    if (rc == 0)
        rc = causal_attention(w, lane);
    if (rc == 0)
        rc = kiln_op_linear(lane, w->n, w->a, ly->o_w, ly->o_b);
    if (rc == 0)
        rc = kiln_op_add(lane, w->x, w->x, w->n);
    if (rc == 0)
        rc = kiln_op_layer_norm(lane, w->n, w->x, ly->ln2_w, ly->ln2_b, CLIP_LN_EPS);
    if (rc == 0)
        rc = kiln_op_linear(lane, w->f, w->n, ly->fc1_w, ly->fc1_b); // [B, L, I]
    if (rc == 0)
        rc = kiln_op_quick_gelu(lane, w->f, w->f);
    if (rc == 0)
        rc = kiln_op_linear(lane, w->n, w->f, ly->fc2_w, ly->fc2_b); // [B, L, C]
    if (rc == 0)
        rc = kiln_op_add(lane, w->x, w->x, w->n);
    return rc;
}

/* A new [B, L, C] tensor holding final_layer_norm(x). */
static int final_norm(const sd_clip_t *c, kiln_lane_t *lane, const kiln_tensor_t *x,
                      kiln_tensor_t **out)
{
    int64_t shape[3] = {kiln_tensor_dim(x, 0), kiln_tensor_dim(x, 1), c->width};
    *out = sd_tensor_new(KILN_DTYPE_F32, 3, shape);
    if (!*out)
        return KILN_ENOMEM;
    int rc = kiln_op_layer_norm(lane, *out, x, c->final_w, c->final_b, CLIP_LN_EPS);
    if (rc != 0) {
        kiln_tensor_release(*out);
        *out = NULL;
    }
    return rc;
}

/* Runs the encoder on ids [B, L]: *last = final_layer_norm(last layer's output) and, when
 * 0 <= inter_idx < n_layers - 1, *inter = final_layer_norm(output of layer inter_idx)
 * (else *inter stays NULL). Both [B, L, C], new tensors. */
static int forward(const sd_clip_t *c, kiln_lane_t *lane, const kiln_tensor_t *ids, int inter_idx,
                   kiln_tensor_t **last, kiln_tensor_t **inter)
{
    clip_work_t w;
    kiln_tensor_t *pos = NULL, *ids_d = NULL;
    int64_t b = kiln_tensor_dim(ids, 0), l = kiln_tensor_dim(ids, 1);
    int rc = work_init(&w, c, b, l);
    if (rc != 0)
        return rc;
    rc = sd_to_dev(lane, ids, &ids_d); /* the token ids, written on the host */
    if (rc == 0)
        rc = kiln_op_embedding(lane, w.x, c->tok_emb, ids_d); // [B, L, C]
    kiln_tensor_release(ids_d);
    if (rc == 0)
        rc = kiln_tensor_slice(c->pos_emb, 0, 0, l, &pos); // [L, C]
    if (rc == 0)
        rc = kiln_op_add(lane, w.x, w.x, pos);
    for (int i = 0; rc == 0 && i < c->n_layers; i++) {
        rc = layer_forward(&c->layers[i], &w, lane);
        if (rc == 0 && i == inter_idx && i != c->n_layers - 1)
            rc = final_norm(c, lane, w.x, inter);
    }
    if (rc == 0)
        rc = final_norm(c, lane, w.x, last);
    if (rc != 0) {
        kiln_tensor_release(*inter);
        *inter = NULL;
    }
    kiln_tensor_release(pos);
    work_free(&w);
    return rc;
}

/* The ids to encode: the chunks, then (when with_empty) ComfyUI's empty chunk
 * [start, end, pad, ...]. */
static kiln_tensor_t *make_ids(const sd_token_chunks_t *ch, int64_t nb, int with_empty)
{
    kiln_tensor_t *t = kiln_tensor_new(KILN_DTYPE_I32, 2, (const int64_t[]){nb, SD_CLIP_CHUNK});
    if (!t)
        return NULL;
    int32_t *p = kiln_tensor_data(t);
    if (ch->n_chunks > 0)
        memcpy(p, ch->ids, ch->n_chunks * SD_CLIP_CHUNK * sizeof *p);
    if (with_empty) {
        int32_t *e = p + ch->n_chunks * SD_CLIP_CHUNK;
        e[0] = CLIP_START_ID;
        e[1] = CLIP_END_ID;
        for (int j = 2; j < SD_CLIP_CHUNK; j++)
            e[j] = CLIP_PAD_ID;
    }
    return t;
}

/* z[k, j] = (z[k, j] - z_empty[j]) * w + z_empty[j] for every chunk position whose weight
 * is not 1, in place on z [nb, L, C] whose last row is the empty chunk (ComfyUI's order
 * of operations; positions of weight 1 stay bit-identical). */
static int apply_weights(kiln_lane_t *lane, const sd_token_chunks_t *ch, kiln_tensor_t *z)
{
    int64_t cw = kiln_tensor_dim(z, 2), sections = (int64_t)ch->n_chunks;
    int64_t row = (int64_t)SD_CLIP_CHUNK * cw;
    int rc = 0;
    for (int64_t k = 0; rc == 0 && k < sections; k++) {
        for (int64_t j = 0; rc == 0 && j < SD_CLIP_CHUNK; j++) {
            double wt = ch->weights[k * SD_CLIP_CHUNK + j];
            if (wt == 1.0)
                continue;
            kiln_tensor_t *zt = NULL, *et = NULL;
            rc = kiln_tensor_view(z, 1, &cw, NULL, k * row + j * cw, &zt); // [C]
            if (rc == 0)
                rc = kiln_tensor_view(z, 1, &cw, NULL, sections * row + j * cw, &et);
            if (rc == 0)
                rc = kiln_op_sub(lane, zt, zt, et);
            if (rc == 0)
                rc = kiln_op_scale(lane, zt, zt, (float)wt);
            if (rc == 0)
                rc = kiln_op_add(lane, zt, zt, et);
            kiln_tensor_release(zt);
            kiln_tensor_release(et);
        }
    }
    return rc;
}

/* A new [1, n, C] tensor with rows [start, start + n) of x [B, L, C] read as [B*L, C]. */
static int take_rows(kiln_lane_t *lane, const kiln_tensor_t *x, int64_t start, int64_t n,
                     kiln_tensor_t **out)
{
    int64_t cw = kiln_tensor_dim(x, 2), shape[3] = {1, n, cw};
    kiln_tensor_t *v = NULL;
    int rc = kiln_tensor_view(x, 3, shape, NULL, start * cw, &v);
    if (rc == 0) {
        *out = sd_tensor_new(KILN_DTYPE_F32, 3, shape);
        rc = *out ? kiln_op_contiguous(lane, *out, v) : KILN_ENOMEM;
    }
    kiln_tensor_release(v);
    return rc;
}

/* The position of the first end token of ids[0..L) (0 when there is none, as the argmax
 * over (ids == end) that ComfyUI takes gives). */
static int64_t first_end(const int32_t *ids)
{
    for (int j = 0; j < SD_CLIP_CHUNK; j++)
        if (ids[j] == CLIP_END_ID)
            return j;
    return 0;
}

/* Which layer's output becomes cond: ComfyUI's clip_layer() keeps the last layer when
 * |stop_at_layer| exceeds the depth, else takes layer n + stop_at_layer. -1 means none. */
static int inter_index(const sd_clip_t *c, int stop_at_layer)
{
    if (stop_at_layer < -c->n_layers || stop_at_layer == -1)
        return -1;
    return c->n_layers + stop_at_layer;
}

static int check_args(const sd_clip_t *c, const sd_token_chunks_t *ch, int stop_at_layer)
{
    if (!c || !ch || stop_at_layer >= 0 || (ch->n_chunks > 0 && !ch->ids))
        return KILN_EINVAL;
    return ch->n_chunks > CLIP_MAX_CHUNKS ? KILN_ELIMIT : 0;
}

/* sd_clip_encode on the current target device; the results stay there. */
static int encode_here(const sd_clip_t *c, kiln_lane_t *lane, const sd_token_chunks_t *chunks,
                       int stop_at_layer, kiln_tensor_t **cond, kiln_tensor_t **pooled)
{
    int rc = 0;
    int64_t sections = (int64_t)chunks->n_chunks;
    int has_weights = 0;
    for (int64_t i = 0; chunks->weights && i < sections * SD_CLIP_CHUNK; i++)
        has_weights |= chunks->weights[i] != 1.0;
    int with_empty = has_weights || sections == 0;
    kiln_tensor_t *ids = make_ids(chunks, sections + with_empty, with_empty);
    kiln_tensor_t *last = NULL, *inter = NULL;
    rc = ids ? forward(c, lane, ids, inter_index(c, stop_at_layer), &last, &inter) : KILN_ENOMEM;
    kiln_tensor_t *z = inter ? inter : last;
    if (rc == 0 && has_weights)
        rc = apply_weights(lane, chunks, z);
    if (rc == 0) /* no chunks at all: ComfyUI returns the empty chunk's encoding */
        rc = take_rows(lane, z, 0, (sections ? sections : 1) * SD_CLIP_CHUNK, cond);
    if (rc == 0) {
        const int32_t *row0 = kiln_tensor_data(ids);
        rc = take_rows(lane, last, first_end(row0), 1, pooled);
        if (rc == 0) { /* [1, 1, C] -> [1, C] */
            kiln_tensor_t *p2 = NULL;
            rc = kiln_tensor_reshape(*pooled, 2, (const int64_t[]){1, c->width}, &p2);
            kiln_tensor_release(*pooled);
            *pooled = p2;
        }
    }
    if (rc != 0) {
        kiln_tensor_release(*cond);
        kiln_tensor_release(*pooled);
        *cond = *pooled = NULL;
    }
    kiln_tensor_release(ids);
    kiln_tensor_release(last);
    kiln_tensor_release(inter);
    return rc;
}

int sd_clip_encode(const sd_clip_t *c, kiln_lane_t *lane, const sd_token_chunks_t *chunks,
                   int stop_at_layer, kiln_tensor_t **cond, kiln_tensor_t **pooled)
{
    if (!cond || !pooled)
        return KILN_EINVAL;
    *cond = *pooled = NULL;
    int rc = check_args(c, chunks, stop_at_layer);
    if (rc != 0)
        return rc;
    if (c->dev.device == KILN_DEVICE_CPU) { /* entered for its (dense) layout */
        sd_dev_t prev = sd_dev_enter(c->dev);
        rc = encode_here(c, sd_host_lane(lane), chunks, stop_at_layer, cond, pooled);
        sd_dev_leave(prev);
        return rc;
    }
    /* On a GPU: encode there, hand back host float32 results (CONDITIONING is host data). */
    sd_dev_t prev = sd_dev_enter(c->dev);
    kiln_tensor_t *dc = NULL, *dp = NULL;
    rc = encode_here(c, sd_dev_lane(lane), chunks, stop_at_layer, &dc, &dp);
    if (rc == 0)
        rc = sd_to_host_f32(dc, cond);
    if (rc == 0)
        rc = sd_to_host_f32(dp, pooled);
    if (rc != 0) {
        kiln_tensor_release(*cond);
        *cond = NULL;
    }
    kiln_tensor_release(dc);
    kiln_tensor_release(dp);
    sd_dev_leave(prev);
    return rc;
}
