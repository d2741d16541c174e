/* ConditioningZeroOut (category advanced/conditioning) and VAEDecodeTiled ("VAE Decode
 * (Tiled)", category _for_testing), as ComfyUI defines them.
 *
 * VAEDecodeTiled follows ComfyUI's VAE.decode_tiled_: the latent is decoded three times with
 * comfy.utils.tiled_scale, with tiles of (w/2, 2h), (2w, h/2) and (w, h) latent cells that
 * overlap by `overlap` cells; each decoded tile is weighted by a mask that ramps linearly
 * over the overlap at every edge ("feathering"), the weighted tiles are summed and divided by
 * the summed weights, and the three results are averaged. Every multiply and add runs in
 * float32 in the order torch runs ComfyUI's tensor expressions. One difference: where a pass
 * fits the whole latent in one tile its result is the plain decode, and when all three do
 * the plain decode is returned as it is, so that VAEDecodeTiled equals VAEDecode bit for bit
 * (ComfyUI's (a + a + a) / 3 can move the last bit of a raw value). */
#include <math.h>
#include <string.h>

#include "sd_types.h"

/* ---- ConditioningZeroOut ----------------------------------------------------------------- */

/* A zero-filled float32 tensor of t's shape, or NULL when out of memory. */
static kiln_tensor_t *zeros_like(const kiln_tensor_t *t)
{
    int64_t shape[KILN_TENSOR_MAX_DIMS];
    int nd = kiln_tensor_ndim(t);
    for (int i = 0; i < nd; i++)
        shape[i] = kiln_tensor_dim(t, i);
    return kiln_tensor_new(KILN_DTYPE_F32, nd, shape);
}

static int zero_out_execute(kiln_call_t *call)
{
    const sd_cond_t *in = sd_input_cond(call, "conditioning");
    if (!in)
        return KILN_ENODE;
    sd_cond_t *c = sd_cond_new(in->n);
    if (!c)
        return kiln_call_fail(call, "out of memory");
    for (size_t i = 0; i < in->n; i++) {
        const sd_cond_entry_t *e = &in->entries[i];
        c->entries[i].strength = e->strength;
        c->entries[i].cond = zeros_like(e->cond);                  // [B, L, C] zeros
        c->entries[i].pooled = e->pooled ? zeros_like(e->pooled) : NULL;   // [B, C] zeros
        if (!c->entries[i].cond || (e->pooled && !c->entries[i].pooled)) {
            sd_cond_free(c);
            return kiln_call_fail(call, "out of memory");
        }
    }
    return sd_set_output(call, 0, sd_value_cond(c));
}

static const kiln_input_def_t zero_out_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "conditioning", .type = SD_TYPE_CONDITIONING}, {0}};

static const kiln_output_def_t cond_output[] = {
    {KILN_OUTPUT_DEF_INIT, .type = SD_TYPE_CONDITIONING}, {0}};

const kiln_node_def_t sd_node_conditioning_zero_out = {
    KILN_NODE_DEF_INIT, .name = "ConditioningZeroOut", .display_name = "ConditioningZeroOut",
    .category = "advanced/conditioning", .inputs = zero_out_inputs, .outputs = cond_output,
    .execute = zero_out_execute};

/* ---- VAEDecodeTiled: one tiled_scale pass ------------------------------------------------ */

typedef struct tiling {
    kiln_call_t *call;
    const sd_vae_t *vae;
    int64_t f;                  /* pixels per latent cell */
    int64_t overlap;            /* in latent cells */
    uint64_t done, total;       /* progress, in tiles */
} tiling_t;

/* Tile origins along an axis of `size` cells: ComfyUI's range(0, size - overlap,
 * tile - overlap), or just 0 when one tile covers the axis. Writes them to pos (NULL: count
 * only) and returns the count. */
static int64_t tile_origins(int64_t size, int64_t tile, int64_t overlap, int64_t *pos)
{
    if (size <= tile) {
        if (pos)
            pos[0] = 0;
        return 1;
    }
    int64_t n = 0;
    for (int64_t p = 0; p < size - overlap; p += tile - overlap) {
        if (pos)
            pos[n] = p;
        n++;
    }
    return n;
}

/* The feather factors of a tile edge of len pixels: tiled_scale multiplies row t and row
 * len-1-t by (t + 1) / feather for t < feather (a float32 multiply by the rounded double),
 * so each row gets at most two factors; first[] and second[] hold them in the order they
 * are applied (1 for none). */
static void feather_factors(int64_t len, int64_t feather, float *first, float *second)
{
    for (int64_t p = 0; p < len; p++) {
        int64_t t1 = p < len - 1 - p ? p : len - 1 - p, t2 = len - 1 - t1;
        int on = feather < len;
        first[p] = on && t1 < feather ? (float)((double)(t1 + 1) / (double)feather) : 1.0f;
        second[p] = on && t2 < feather ? (float)((double)(t2 + 1) / (double)feather) : 1.0f;
    }
}

/* Decodes latent cells [y0, y0+lh) x [x0, x0+lw) of z [1, C, h, w] and adds the tile, times
 * its feather mask, into out [3, H, W], and the mask into div [H, W]. */
static int add_tile(tiling_t *tg, const kiln_tensor_t *z, int64_t y0, int64_t lh, int64_t x0,
                    int64_t lw, float *out, float *div, int64_t hp, int64_t wp)
{
    kiln_tensor_t *rows = NULL, *view = NULL, *ps = NULL;
    int rc = kiln_tensor_slice(z, 2, y0, lh, &rows);
    if (!rc)
        rc = kiln_tensor_slice(rows, 3, x0, lw, &view);              // [1, C, lh, lw]
    if (!rc)
        rc = sd_vae_decode_raw(tg->vae, kiln_call_lane(tg->call), view, &ps);  // [1, 3, th, tw]
    kiln_tensor_release(rows);
    kiln_tensor_release(view);
    int64_t th = lh * tg->f, tw = lw * tg->f, feather = tg->overlap * tg->f;
    if (!rc && (kiln_tensor_dim(ps, 1) != 3 || kiln_tensor_dim(ps, 2) != th ||
                kiln_tensor_dim(ps, 3) != tw))
        rc = KILN_EINVAL;
    float *fy = rc ? NULL : kiln_malloc((size_t)(2 * th + 2 * tw) * sizeof *fy);
    if (!rc && !fy)
        rc = KILN_ENOMEM;
    if (rc) {
        kiln_tensor_release(ps);
        return rc;
    }
    float *fy2 = fy + th, *fx = fy2 + th, *fx2 = fx + tw;
    feather_factors(th, feather, fy, fy2);
    feather_factors(tw, feather, fx, fx2);
    const float *src = kiln_tensor_data(ps);
    int64_t oy = y0 * tg->f, ox = x0 * tg->f, nch = 3;
    for (int64_t y = 0; y < th; y++) {
        float my = fy[y] * fy2[y];          /* the height pass: 1 * a * b */
        for (int64_t x = 0; x < tw; x++) {
            float m = my * fx[x];
            m = m * fx2[x];
            for (int64_t c = 0; c < nch; c++) {
                float v = src[(c * th + y) * tw + x] * m;
                out[(c * hp + oy + y) * wp + ox + x] += v;
            }
            div[(oy + y) * wp + ox + x] += m;
        }
    }
    kiln_free(fy);
    kiln_tensor_release(ps);
    return 0;
}

/* One tiled_scale pass over z [1, C, h, w] with tiles of tile_h x tile_w cells into dst
 * [3, H, W]. */
static int tiled_pass(tiling_t *tg, const kiln_tensor_t *z, int64_t tile_h, int64_t tile_w,
                      float *dst)
{
    int64_t h = kiln_tensor_dim(z, 2), w = kiln_tensor_dim(z, 3);
    int64_t hp = h * tg->f, wp = w * tg->f, ov = tg->overlap;
    int64_t ny = tile_origins(h, tile_h, ov, NULL), nx = tile_origins(w, tile_w, ov, NULL);
    int64_t *ys = kiln_malloc((size_t)(ny + nx) * sizeof *ys);
    float *div = kiln_malloc((size_t)(hp * wp) * sizeof *div);
    int rc = ys && div ? 0 : KILN_ENOMEM;
    if (!rc) {
        int64_t *xs = ys + ny;
        tile_origins(h, tile_h, ov, ys);
        tile_origins(w, tile_w, ov, xs);
        memset(dst, 0, (size_t)(3 * hp * wp) * sizeof *dst);
        memset(div, 0, (size_t)(hp * wp) * sizeof *div);
        for (int64_t i = 0; !rc && i < ny; i++) {
            for (int64_t j = 0; !rc && j < nx; j++) {
                int64_t lh = tile_h < h - ys[i] ? tile_h : h - ys[i];
                int64_t lw = tile_w < w - xs[j] ? tile_w : w - xs[j];
                rc = add_tile(tg, z, ys[i], lh, xs[j], lw, dst, div, hp, wp);
                if (!rc)
                    rc = kiln_call_progress(tg->call, ++tg->done, tg->total);
            }
        }
    }
    for (int64_t c = 0; !rc && c < 3; c++)
        for (int64_t k = 0; k < hp * wp; k++)
            dst[c * hp * wp + k] /= div[k];
    kiln_free(ys);
    kiln_free(div);
    return rc;
}

/* ---- VAEDecodeTiled: the three passes ---------------------------------------------------- */

/* Tile shapes {height, width} in latent cells of decode_tiled_'s three passes. */
static void pass_shapes(int64_t tile, int64_t shapes[3][2])
{
    shapes[0][0] = tile * 2, shapes[0][1] = tile / 2;
    shapes[1][0] = tile / 2, shapes[1][1] = tile * 2;
    shapes[2][0] = tile, shapes[2][1] = tile;
}

/* Tiles one pass decodes on an h x w latent (1 when a single tile covers it). */
static uint64_t pass_tiles(int64_t h, int64_t w, const int64_t shape[2], int64_t overlap)
{
    if (h <= shape[0] && w <= shape[1])
        return 1;
    return (uint64_t)(tile_origins(h, shape[0], overlap, NULL) *
                      tile_origins(w, shape[1], overlap, NULL));
}

/* The raw decode of one sample z [1, C, h, w] into dst [3, H, W]: (A + B + C) / 3 over the
 * three passes, each pass that fits in one tile being the plain decode (computed once). tmp
 * has room for one [3, H, W] image. */
static int decode_sample(tiling_t *tg, const kiln_tensor_t *z, int64_t tile, float *dst,
                         float *tmp)
{
    int64_t h = kiln_tensor_dim(z, 2), w = kiln_tensor_dim(z, 3), shapes[3][2];
    size_t n = (size_t)(3 * h * w * tg->f * tg->f);
    pass_shapes(tile, shapes);
    int single[3], n_single = 0;
    for (int k = 0; k < 3; k++)
        n_single += single[k] = h <= shapes[k][0] && w <= shapes[k][1];
    kiln_tensor_t *whole = NULL;
    int rc = 0;
    if (n_single)
        rc = sd_vae_decode_raw(tg->vae, kiln_call_lane(tg->call), z, &whole);  // [1, 3, H, W]
    if (!rc && n_single == 3) {
        memcpy(dst, kiln_tensor_data(whole), n * sizeof *dst);
        tg->done += 2;
        rc = kiln_call_progress(tg->call, ++tg->done, tg->total);
        kiln_tensor_release(whole);
        return rc;
    }
    for (int k = 0; !rc && k < 3; k++) {
        float *buf = k == 0 ? dst : tmp;
        if (single[k]) {
            memcpy(buf, kiln_tensor_data(whole), n * sizeof *buf);
            rc = kiln_call_progress(tg->call, ++tg->done, tg->total);
        } else {
            rc = tiled_pass(tg, z, shapes[k][0], shapes[k][1], buf);
        }
        for (size_t i = 0; !rc && k > 0 && i < n; i++)
            dst[i] += tmp[i];
    }
    for (size_t i = 0; !rc && i < n; i++)
        dst[i] /= 3.0f;
    kiln_tensor_release(whole);
    return rc;
}

/* The raw decode [B, 3, H, W] of every sample of latent [B, C, h, w]. */
static int decode_all(tiling_t *tg, const kiln_tensor_t *latent, int64_t tile,
                      kiln_tensor_t **raw)
{
    int64_t b = kiln_tensor_dim(latent, 0), h = kiln_tensor_dim(latent, 2);
    int64_t w = kiln_tensor_dim(latent, 3), shapes[3][2];
    pass_shapes(tile, shapes);
    tg->total = 0;
    for (int k = 0; k < 3; k++)
        tg->total += (uint64_t)b * pass_tiles(h, w, shapes[k], tg->overlap);
    int64_t shape[4] = {b, 3, h * tg->f, w * tg->f};
    *raw = kiln_tensor_new(KILN_DTYPE_F32, 4, shape);                // [B, 3, H, W]
    size_t n = (size_t)(3 * shape[2] * shape[3]);
    float *tmp = *raw ? kiln_malloc(n * sizeof *tmp) : NULL;
    int rc = tmp ? 0 : KILN_ENOMEM;
    for (int64_t i = 0; !rc && i < b; i++) {
        kiln_tensor_t *z = NULL;
        rc = kiln_tensor_slice(latent, 0, i, 1, &z);                 // [1, C, h, w]
        if (!rc)
            rc = decode_sample(tg, z, tile, (float *)kiln_tensor_data(*raw) + (size_t)i * n,
                               tmp);
        kiln_tensor_release(z);
    }
    kiln_free(tmp);
    if (rc) {
        kiln_tensor_release(*raw);
        *raw = NULL;
    }
    return rc;
}

/* VAEDecode's finish: clamp((raw + 1) / 2, 0, 1) as NHWC, with the same ops. */
static int to_image(kiln_lane_t *lane, const kiln_tensor_t *raw, kiln_tensor_t **image)
{
    kiln_tensor_t *nhwc = NULL, *img = NULL;
    int rc = kiln_tensor_permute(raw, (const int[]){0, 2, 3, 1}, &nhwc);   // [B, H, W, 3]
    if (!rc) {
        int64_t shape[4] = {kiln_tensor_dim(nhwc, 0), kiln_tensor_dim(nhwc, 1),
                            kiln_tensor_dim(nhwc, 2), kiln_tensor_dim(nhwc, 3)};
        img = kiln_tensor_new(KILN_DTYPE_F32, 4, shape);
        rc = img ? kiln_op_add_scalar(lane, img, nhwc, 1.0f) : KILN_ENOMEM;
    }
    if (!rc)
        rc = kiln_op_scale(lane, img, img, 0.5f);
    if (!rc)
        rc = kiln_op_clamp(lane, img, img, 0.0f, 1.0f);
    kiln_tensor_release(nhwc);
    if (rc) {
        kiln_tensor_release(img);
        img = NULL;
    }
    *image = img;
    return rc;
}

/* Reads the four INT inputs; the temporal ones only matter for video VAEs. */
static int read_tiling(kiln_call_t *call, int64_t *tile_size, int64_t *overlap)
{
    int64_t t_size, t_overlap;
    int rc = sd_input_int(call, "tile_size", tile_size);
    if (!rc)
        rc = sd_input_int(call, "overlap", overlap);
    if (!rc)
        rc = sd_input_int(call, "temporal_size", &t_size);
    if (!rc)
        rc = sd_input_int(call, "temporal_overlap", &t_overlap);
    if (rc)
        return rc;
    if (*tile_size < 64 || *tile_size > 4096 || *overlap < 0 || *overlap > 4096)
        return kiln_call_failf(call, "tile_size must be 64..4096 and overlap 0..4096, got %lld "
                               "and %lld", (long long)*tile_size, (long long)*overlap);
    if (*tile_size < *overlap * 4)
        *overlap = *tile_size / 4;
    return 0;
}

static int tiled_execute(kiln_call_t *call)
{
    const sd_latent_t *in = sd_input_latent(call, "samples");
    sd_vae_obj_t *vae = in ? sd_input_vae(call, "vae") : NULL;
    if (!vae)
        return KILN_ENODE;
    int64_t tile_size, overlap, c = kiln_tensor_dim(in->samples, 1);
    int rc = read_tiling(call, &tile_size, &overlap);
    if (rc)
        return rc;
    if (c != sd_vae_latent_channels(vae->vae))
        return kiln_call_failf(call, "the latent has %lld channels but the VAE takes %d",
                               (long long)c, sd_vae_latent_channels(vae->vae));
    if (kiln_tensor_numel(in->samples) < 1)
        return kiln_call_fail(call, "the latent is empty");
    tiling_t tg = {.call = call, .vae = vae->vae, .f = sd_vae_downscale(vae->vae)};
    int64_t tile = tile_size / tg.f;
    tg.overlap = overlap / tg.f;
    /* The narrowest tile (half of it) must advance past the overlap. */
    if (tile / 2 <= tg.overlap)
        return kiln_call_failf(call, "tile_size %lld is too small for overlap %lld",
                               (long long)tile_size, (long long)overlap);
    kiln_tensor_t *raw = NULL, *image = NULL;
    rc = decode_all(&tg, in->samples, tile, &raw);
    if (!rc)
        rc = to_image(kiln_call_lane(call), raw, &image);
    kiln_tensor_release(raw);
    if (rc)
        return rc == KILN_EINTERRUPTED || rc == KILN_ENODE
                   ? rc : kiln_call_failf(call, "VAE decode failed (error %d)", rc);
    kiln_value_t *v = kiln_value_new_tensor("IMAGE", image);
    kiln_tensor_release(image);
    return sd_set_output(call, 0, v);
}

static const kiln_input_def_t tiled_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "samples", .type = SD_TYPE_LATENT},
    {KILN_INPUT_DEF_INIT, .name = "vae", .type = SD_TYPE_VAE},
    {KILN_INPUT_DEF_INIT, .name = "tile_size", .type = "INT", .has_default = 1,
     .default_int = 512, .min_int = 64, .max_int = 4096, .step_int = 32},
    {KILN_INPUT_DEF_INIT, .name = "overlap", .type = "INT", .has_default = 1,
     .default_int = 64, .min_int = 0, .max_int = 4096, .step_int = 32},
    {KILN_INPUT_DEF_INIT, .name = "temporal_size", .type = "INT", .has_default = 1,
     .default_int = 64, .min_int = 8, .max_int = 4096, .step_int = 4,
     .tooltip = "Only used for video VAEs: Amount of frames to decode at a time."},
    {KILN_INPUT_DEF_INIT, .name = "temporal_overlap", .type = "INT", .has_default = 1,
     .default_int = 8, .min_int = 4, .max_int = 4096, .step_int = 4,
     .tooltip = "Only used for video VAEs: Amount of frames to overlap."},
    {0}};

static const kiln_output_def_t tiled_output[] = {{KILN_OUTPUT_DEF_INIT, .type = "IMAGE"}, {0}};

const kiln_node_def_t sd_node_vae_decode_tiled = {
    KILN_NODE_DEF_INIT, .name = "VAEDecodeTiled", .display_name = "VAE Decode (Tiled)",
    .category = "_for_testing", .inputs = tiled_inputs, .outputs = tiled_output,
    .execute = tiled_execute};
