/* The SD 1.x UNet as a whole: loading (the reading itself is in unet_config.c), the time
 * embedding, and ComfyUI's UNetModel.forward: input blocks whose outputs are kept as
 * skips, the middle block, then output blocks that each concatenate the newest skip
 * before running, and the GroupNorm/SiLU/conv head. */
#include <kiln/node.h>
#include <kiln/ops.h>
#include <stdio.h>
#include <string.h>

#include "unet_int.h"

/* GroupNorm eps of the output head (torch's default). */
#define EPS_OUT 1e-5f

int sd_unet_load(kiln_weights_t *w, const char *prefix, int heads, sd_unet_t **out, char *err,
                 size_t err_size)
{
    if (!out)
        return KILN_EINVAL;
    *out = NULL;
    if (err && err_size)
        err[0] = '\0';
    char dummy[8];
    if (!err || err_size == 0) {
        err = dummy;
        err_size = sizeof dummy;
    }
    if (!w || !prefix) {
        snprintf(err, err_size, "unet: no weights or prefix");
        return KILN_EINVAL;
    }
    sd_unet_t *u = kiln_malloc(sizeof *u);
    if (!u)
        return KILN_ENOMEM;
    memset(u, 0, sizeof *u);
    u->dev = sd_dev_current(); /* the weights below are placed there */
    int rc = sd_unet_read(u, w, prefix, heads, err, err_size);
    if (rc != 0) {
        if (rc == KILN_ENOMEM && err[0] == '\0')
            snprintf(err, err_size, "unet: out of memory while loading");
        sd_unet_free(u);
        return rc;
    }
    *out = u;
    return 0;
}

static void seq_clear(sd_unet_seq_t *s)
{
    for (int j = 0; j < s->n; j++)
        sd_unet_mod_clear(&s->mods[j]);
    s->n = 0;
}

void sd_unet_free(sd_unet_t *u)
{
    if (!u)
        return;
    sd_unet_graphs_free(u);
    for (int i = 0; u->input && i < u->n_input; i++)
        seq_clear(&u->input[i]);
    for (int i = 0; u->output && i < u->n_output; i++)
        seq_clear(&u->output[i]);
    seq_clear(&u->middle);
    sd_unet_wb_t *wbs[] = {&u->time1, &u->time2, &u->out_norm, &u->out_conv};
    for (int i = 0; i < 4; i++) {
        kiln_tensor_release(wbs[i]->w);
        kiln_tensor_release(wbs[i]->b);
    }
    kiln_free(u->input);
    kiln_free(u->output);
    kiln_free(u);
}

const sd_unet_config_t *sd_unet_config(const sd_unet_t *u)
{
    return u ? &u->cfg : NULL;
}

int sd_unet_time_embed(const sd_unet_t *u, kiln_lane_t *lane, const float *timesteps, int64_t n,
                       kiln_tensor_t **out)
{
    if (!u || !timesteps || !out || n < 1)
        return KILN_EINVAL;
    *out = NULL;
    kiln_tensor_t *t = kiln_tensor_new(KILN_DTYPE_F32, 1, &n); // [N], written on the host
    kiln_tensor_t *te =
        sd_tensor_new(KILN_DTYPE_F32, 2, (int64_t[]){n, u->cfg.model_channels}); // [N, mc]
    kiln_tensor_t *h =
        sd_tensor_new(KILN_DTYPE_F32, 2, (int64_t[]){n, kiln_tensor_dim(u->time1.w, 0)});
    kiln_tensor_t *e =
        sd_tensor_new(KILN_DTYPE_F32, 2, (int64_t[]){n, kiln_tensor_dim(u->time2.w, 0)});
    int rc = t && te && h && e ? 0 : KILN_ENOMEM;
    kiln_tensor_t *td = NULL;
    if (rc == 0) {
        memcpy(kiln_tensor_data(t), timesteps, (size_t)n * sizeof *timesteps);
        rc = sd_to_dev(lane, t, &td); /* the model's device; t itself on the host */
    }
    if (rc == 0)
        rc = kiln_op_timestep_embedding(lane, te, td, 0.0f); // cos half first, period 10000
    kiln_tensor_release(td);
    if (rc == 0)
        rc = kiln_op_linear(lane, h, te, u->time1.w, u->time1.b); // [N, E]
    if (rc == 0)
        rc = kiln_op_silu(lane, h, h);
    if (rc == 0)
        rc = kiln_op_linear(lane, e, h, u->time2.w, u->time2.b); // [N, E]
    kiln_tensor_release(t);
    kiln_tensor_release(te);
    kiln_tensor_release(h);
    if (rc != 0) {
        kiln_tensor_release(e);
        return rc;
    }
    *out = e;
    return 0;
}

/* Runs one TimestepEmbedSequential on h (borrowed): *out, new. */
static int seq_forward(const sd_unet_seq_t *s, kiln_lane_t *lane, const kiln_tensor_t *h,
                       const kiln_tensor_t *emb_silu, const kiln_tensor_t *context,
                       const int64_t *skip_shape, kiln_tensor_t **out)
{
    kiln_tensor_t *cur = NULL;
    int rc = 0;
    for (int j = 0; rc == 0 && j < s->n; j++) {
        kiln_tensor_t *next = NULL;
        rc = sd_unet_mod_forward(&s->mods[j], lane, cur ? cur : h, emb_silu, context, skip_shape,
                                 &next);
        kiln_tensor_release(cur);
        cur = next;
    }
    *out = rc == 0 ? cur : NULL;
    if (rc != 0)
        kiln_tensor_release(cur);
    return rc;
}

/* The up path: each output block takes the newest skip (concatenated after h along
 * channels) and, for its Upsample, the size of the skip after that one. Consumes h and
 * the skips it pops (hs[0..*n_hs-1]); *out gets the last block's output. */
static int up_path(const sd_unet_t *u, kiln_lane_t *lane, kiln_tensor_t *h, kiln_tensor_t **hs,
                   int *n_hs, const kiln_tensor_t *emb_silu, const kiln_tensor_t *context,
                   kiln_tensor_t **out)
{
    int rc = 0;
    for (int i = 0; rc == 0 && i < u->n_output; i++) {
        kiln_tensor_t *skip = hs[--*n_hs], *cat = NULL;
        hs[*n_hs] = NULL;
        cat = sd_tensor_new(KILN_DTYPE_F32, 4,
                              (int64_t[]){kiln_tensor_dim(h, 0),
                                          kiln_tensor_dim(h, 1) + kiln_tensor_dim(skip, 1),
                                          kiln_tensor_dim(h, 2), kiln_tensor_dim(h, 3)});
        rc = cat ? 0 : KILN_ENOMEM;
        if (rc == 0)
            rc = kiln_op_concat(lane, cat, (const kiln_tensor_t *const[]){h, skip}, 2,
                                1); // [B, C + C_skip, H, W]
        kiln_tensor_release(h);
        kiln_tensor_release(skip);
        h = NULL;
        int64_t next[4];
        const kiln_tensor_t *nx = *n_hs > 0 ? hs[*n_hs - 1] : NULL;
        for (int d = 0; nx && d < 4; d++)
            next[d] = kiln_tensor_dim(nx, d);
        if (rc == 0)
            rc = seq_forward(&u->output[i], lane, cat, emb_silu, context, nx ? next : NULL, &h);
        kiln_tensor_release(cat);
    }
    *out = rc == 0 ? h : NULL;
    if (rc != 0)
        kiln_tensor_release(h);
    return rc;
}

/* x, context and out fit the model (shapes, devices, dtypes the ops take). */
static int check_io(const sd_unet_t *u, const kiln_tensor_t *x, const float *timesteps,
                    const kiln_tensor_t *context, const kiln_tensor_t *out)
{
    if (!u || !x || !timesteps || !context || !out)
        return KILN_EINVAL;
    int64_t nb = kiln_tensor_dim(x, 0);
    if (kiln_tensor_ndim(x) != 4 || kiln_tensor_ndim(context) != 3 || kiln_tensor_ndim(out) != 4 ||
        nb < 1 || kiln_tensor_dim(x, 1) != u->cfg.in_channels || kiln_tensor_dim(x, 2) < 1 ||
        kiln_tensor_dim(x, 3) < 1 || kiln_tensor_dim(context, 0) != nb ||
        kiln_tensor_dim(context, 1) < 1)
        return KILN_EINVAL;
    if (u->cfg.context_dim > 0 && kiln_tensor_dim(context, 2) != u->cfg.context_dim)
        return KILN_EINVAL;
    int64_t want[4] = {nb, u->cfg.out_channels, kiln_tensor_dim(x, 2), kiln_tensor_dim(x, 3)};
    for (int d = 0; d < 4; d++)
        if (kiln_tensor_dim(out, d) != want[d])
            return KILN_EINVAL;
    return 0;
}

int sd_unet_body(const sd_unet_t *u, kiln_lane_t *lane, const kiln_tensor_t *x,
                 const kiln_tensor_t *emb, const kiln_tensor_t *context, kiln_tensor_t *out)
{
    int rc = 0;
    kiln_tensor_t *h = NULL;
    kiln_tensor_t *hs[64] = {NULL};
    int n_hs = 0;
    for (int i = 0; rc == 0 && i < u->n_input; i++) {
        rc =
            seq_forward(&u->input[i], lane, n_hs ? hs[n_hs - 1] : x, emb, context, NULL, &hs[n_hs]);
        n_hs += rc == 0;
    }
    if (rc == 0)
        rc = seq_forward(&u->middle, lane, hs[n_hs - 1], emb, context, NULL, &h);
    if (rc == 0) {
        kiln_tensor_t *top = h;
        h = NULL;
        rc = up_path(u, lane, top, hs, &n_hs, emb, context, &h); // [B, mc, H, W]
    }
    if (rc == 0)
        rc = kiln_op_group_norm(lane, h, h, u->out_norm.w, u->out_norm.b, SD_UNET_GROUPS, EPS_OUT,
                                1);
    if (rc == 0)
        rc = kiln_op_conv2d(lane, out, h, u->out_conv.w, u->out_conv.b,
                            &(kiln_conv2d_params_t){KILN_CONV2D_PARAMS_INIT, .pad_top = 1,
                                                    .pad_bottom = 1, .pad_left = 1,
                                                    .pad_right = 1}); // [B, out, H, W]
    kiln_tensor_release(h);
    for (int i = 0; i < n_hs; i++)
        kiln_tensor_release(hs[i]);
    return rc;
}

/* sd_unet_forward with every tensor on the current target device. */
static int forward_here(const sd_unet_t *u, kiln_lane_t *lane, const kiln_tensor_t *x,
                        const float *timesteps, const kiln_tensor_t *context, kiln_tensor_t *out)
{
    kiln_tensor_t *emb = NULL;
    int rc = sd_unet_time_embed(u, lane, timesteps, kiln_tensor_dim(x, 0), &emb); // [B, E]
    /* Every ResBlock's emb_layers start with SiLU: apply it once for all of them. */
    if (rc == 0)
        rc = kiln_op_silu(lane, emb, emb);
    if (rc == 0)
        rc = sd_unet_body_graphed(u, lane, x, emb, context, out);
    kiln_tensor_release(emb);
    return rc;
}

/* On a GPU: x and context moved there, eps computed there and copied into out. */
static int forward_on_device(const sd_unet_t *u, kiln_lane_t *lane, const kiln_tensor_t *x,
                             const float *timesteps, const kiln_tensor_t *context,
                             kiln_tensor_t *out)
{
    sd_dev_t prev = sd_dev_enter(u->dev);
    lane = sd_dev_lane(lane);
    kiln_tensor_t *xd = NULL, *cd = NULL, *od = NULL, *oh = NULL;
    int rc = sd_to_dev(lane, x, &xd);
    if (rc == 0)
        rc = sd_to_dev(lane, context, &cd);
    if (rc == 0 && kiln_tensor_device(out) == u->dev.device) {
        rc = forward_here(u, lane, xd, timesteps, cd, out); /* already in place */
    } else if (rc == 0) {
        int64_t shape[4];
        for (int d = 0; d < 4; d++)
            shape[d] = kiln_tensor_dim(out, d);
        od = sd_tensor_new(KILN_DTYPE_F32, 4, shape); // [B, out, H, W]
        rc = od ? forward_here(u, lane, xd, timesteps, cd, od) : KILN_ENOMEM;
        if (rc == 0)
            rc = sd_to_host_f32(od, &oh); /* waits for the step */
        if (rc == 0)
            rc = kiln_tensor_copy(out, oh);
    }
    kiln_tensor_release(xd);
    kiln_tensor_release(cd);
    kiln_tensor_release(od);
    kiln_tensor_release(oh);
    sd_dev_leave(prev);
    return rc;
}

int sd_unet_forward(const sd_unet_t *u, kiln_lane_t *lane, const kiln_tensor_t *x,
                    const float *timesteps, const kiln_tensor_t *context, kiln_tensor_t *out)
{
    int rc = check_io(u, x, timesteps, context, out);
    if (rc != 0)
        return rc;
    if (u->dev.device == KILN_DEVICE_CPU)
        return forward_here(u, sd_host_lane(lane), x, timesteps, context, out);
    return forward_on_device(u, lane, x, timesteps, context, out);
}
