/* The model function KSampler hands to the samplers (sd_guider_* in sd_types.h): ComfyUI's
 * CFGGuider over an EPS model. Every conditioning entry of both sides is one UNet batch
 * item per latent: entries whose contexts can be concatenated (same width, LCM of the
 * token lengths at most 4x the shorter, as comfy.conds.CONDCrossAttn.can_concat) share
 * one UNet call, the shorter contexts repeated along the tokens to the LCM length (which
 * leaves cross-attention unchanged). Arithmetic follows the torch expressions of
 * comfy.samplers / model_sampling in float32, element by element. */
#include <math.h>
#include <string.h>

#include "sd_types.h"

/* One conditioning entry: its dense context and where its prediction goes. */
typedef struct guide_entry {
    kiln_tensor_t *cond;        /* one reference: dense float32 [Bc, L, C] */
    int side;                   /* 0 positive, 1 negative */
    float strength;
} guide_entry_t;

/* Entries evaluated in one UNet call. */
typedef struct guide_group {
    size_t n;
    size_t *entry;              /* indices into entries */
    kiln_tensor_t *context;     /* [n * B, L, C] */
    kiln_tensor_t *x_in;        /* [n * B, C, h, w] */
    kiln_tensor_t *eps;         /* [n * B, C, h, w] */
    float *timesteps;           /* n * B */
} guide_group_t;

struct sd_guider {
    sd_guider_params_t p;
    size_t n_entries, n_groups;
    guide_entry_t *entries;
    guide_group_t *groups;
    float *acc[2];              /* per side: sum of strength-weighted predictions */
    float *xm;                  /* x with the known latent blended in (masks only) */
    size_t n;                   /* elements of the latent */
    char err[256];
};

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static int64_t lcm64(int64_t a, int64_t b)
{
    return a / gcd64(a, b) * b;
}

/* CONDCrossAttn.can_concat: equal widths and a padding factor of at most 4. */
static int can_concat(const kiln_tensor_t *a, const kiln_tensor_t *b)
{
    int64_t la = kiln_tensor_dim(a, 1), lb = kiln_tensor_dim(b, 1);
    if (kiln_tensor_dim(a, 2) != kiln_tensor_dim(b, 2))
        return 0;
    if (la == lb)
        return 1;
    return lcm64(la, lb) / (la < lb ? la : lb) <= 4;
}

/* Appends the entries of one side, checking each context against the UNet. */
static int add_side(sd_guider_t *g, const sd_cond_t *c, int side, int64_t ctx_dim)
{
    for (size_t i = 0; c && i < c->n; i++) {
        const kiln_tensor_t *t = c->entries[i].cond;
        if (!t || kiln_tensor_ndim(t) != 3 || kiln_tensor_dim(t, 0) < 1 ||
            kiln_tensor_dim(t, 1) < 1) {
            snprintf(g->err, sizeof g->err, "%s conditioning %zu is not a [B, L, C] tensor",
                     side ? "negative" : "positive", i);
            return KILN_EINVAL;
        }
        if (kiln_tensor_dim(t, 2) != ctx_dim) {
            snprintf(g->err, sizeof g->err, "%s conditioning has width %lld but the model "
                     "takes %lld (a text encoder of another model family?)",
                     side ? "negative" : "positive", (long long)kiln_tensor_dim(t, 2),
                     (long long)ctx_dim);
            return KILN_EINVAL;
        }
        guide_entry_t *e = &g->entries[g->n_entries];
        e->cond = sd_dense_f32(t);
        if (!e->cond)
            return KILN_ENOMEM;
        e->side = side;
        e->strength = (float)c->entries[i].strength;
        g->n_entries++;
    }
    return 0;
}

/* Fills group context [n * B, L, C]: item (k, b) token j is entry k's cond[b % Bc][j % Lk]
 * (repeat_to_batch_size, then the LCM repeat of CONDCrossAttn.concat). */
static void fill_context(sd_guider_t *g, guide_group_t *gr, int64_t len)
{
    int64_t batch = g->p.batch;
    int64_t width = kiln_tensor_dim(g->entries[gr->entry[0]].cond, 2);
    float *dst = kiln_tensor_data(gr->context);
    for (size_t k = 0; k < gr->n; k++) {
        const kiln_tensor_t *c = g->entries[gr->entry[k]].cond;
        const float *src = kiln_tensor_data(c);
        int64_t bc = kiln_tensor_dim(c, 0), lc = kiln_tensor_dim(c, 1);
        for (int64_t b = 0; b < batch; b++)
            for (int64_t j = 0; j < len; j++)
                memcpy(dst + (((int64_t)k * batch + b) * len + j) * width,
                       src + ((b % bc) * lc + j % lc) * width, (size_t)width * sizeof *dst);
    }
}

/* Allocates a group's tensors for its n entries. */
static int alloc_group(sd_guider_t *g, guide_group_t *gr)
{
    int64_t len = kiln_tensor_dim(g->entries[gr->entry[0]].cond, 1);
    for (size_t k = 1; k < gr->n; k++)
        len = lcm64(len, kiln_tensor_dim(g->entries[gr->entry[k]].cond, 1));
    int64_t rows = (int64_t)gr->n * g->p.batch;
    int64_t cshape[3] = {rows, len, kiln_tensor_dim(g->entries[gr->entry[0]].cond, 2)};
    int64_t xshape[4] = {rows, g->p.channels, g->p.height, g->p.width};
    gr->context = kiln_tensor_new(KILN_DTYPE_F32, 3, cshape);     // [n * B, L, C]
    gr->x_in = kiln_tensor_new(KILN_DTYPE_F32, 4, xshape);        // [n * B, C, h, w]
    gr->eps = kiln_tensor_new(KILN_DTYPE_F32, 4, xshape);         // [n * B, C, h, w]
    gr->timesteps = kiln_malloc((size_t)rows * sizeof *gr->timesteps);
    if (!gr->context || !gr->x_in || !gr->eps || !gr->timesteps)
        return KILN_ENOMEM;
    fill_context(g, gr, len);
    return 0;
}

/* Splits the entries into groups as calc_cond_batch does: the first waiting entry and
 * every waiting entry that can be concatenated with it. */
static int make_groups(sd_guider_t *g)
{
    size_t n = g->n_entries;
    unsigned char *done = kiln_malloc(n ? n : 1);
    g->groups = kiln_malloc((n ? n : 1) * sizeof *g->groups);
    if (!done || !g->groups) {
        kiln_free(done);
        return KILN_ENOMEM;
    }
    memset(done, 0, n);
    memset(g->groups, 0, (n ? n : 1) * sizeof *g->groups);
    int rc = 0;
    for (size_t first = 0; first < n && !rc; first++) {
        if (done[first])
            continue;
        guide_group_t *gr = &g->groups[g->n_groups++];
        gr->entry = kiln_malloc(n * sizeof *gr->entry);
        if (!gr->entry) {
            rc = KILN_ENOMEM;
            break;
        }
        for (size_t i = first; i < n; i++) {
            if (!done[i] && can_concat(g->entries[first].cond, g->entries[i].cond)) {
                done[i] = 1;
                gr->entry[gr->n++] = i;
            }
        }
        rc = alloc_group(g, gr);
    }
    kiln_free(done);
    return rc;
}

int sd_guider_new(const sd_guider_params_t *p, sd_guider_t **out, char *err, size_t errlen)
{
    *out = NULL;
    sd_guider_t *g = kiln_malloc(sizeof *g);
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return KILN_ENOMEM;
    }
    memset(g, 0, sizeof *g);
    g->p = *p;
    g->n = (size_t)(p->batch * p->channels * p->height * p->width);
    /* ComfyUI skips the negative side when cfg is 1 (math.isclose, rel_tol 1e-9). */
    int use_negative = !(fabs(p->cfg - 1.0) <= 1e-9 * fmax(fabs(p->cfg), 1.0));
    size_t cap = (p->positive ? p->positive->n : 0) +
                 (use_negative && p->negative ? p->negative->n : 0);
    const sd_unet_config_t *cfg = sd_unet_config(p->model->unet);
    int rc = KILN_ENOMEM;
    g->entries = kiln_malloc((cap ? cap : 1) * sizeof *g->entries);
    g->acc[0] = kiln_malloc(g->n * sizeof(float));
    g->acc[1] = kiln_malloc(g->n * sizeof(float));
    g->xm = p->mask ? kiln_malloc(g->n * sizeof(float)) : NULL;
    if (g->entries && g->acc[0] && g->acc[1] && (!p->mask || g->xm)) {
        rc = add_side(g, p->positive, 0, cfg->context_dim);
        if (!rc && use_negative)
            rc = add_side(g, p->negative, 1, cfg->context_dim);
        if (!rc)
            rc = make_groups(g);
    }
    if (rc) {
        snprintf(err, errlen, "%s", g->err[0] ? g->err : "out of memory");
        sd_guider_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

void sd_guider_free(sd_guider_t *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n_entries; i++)
        kiln_tensor_release(g->entries[i].cond);
    for (size_t i = 0; g->groups && i < g->n_groups; i++) {
        guide_group_t *gr = &g->groups[i];
        kiln_free(gr->entry);
        kiln_tensor_release(gr->context);
        kiln_tensor_release(gr->x_in);
        kiln_tensor_release(gr->eps);
        kiln_free(gr->timesteps);
    }
    kiln_free(g->groups);
    kiln_free(g->entries);
    kiln_free(g->acc[0]);
    kiln_free(g->acc[1]);
    kiln_free(g->xm);
    kiln_free(g);
}

const char *sd_guider_error(const sd_guider_t *g)
{
    return g->err;
}

/* Runs one group through the UNet at noise level sigma and adds each entry's
 * denoised = x - eps * sigma, times its strength, to its side's sum. */
static int run_group(sd_guider_t *g, guide_group_t *gr, const float *x, float sigma,
                     float t)
{
    size_t n = g->n;
    float s_in = sqrtf(sigma * sigma + 1.0f);    /* EPS calculate_input: (sigma^2 + 1)^0.5 */
    float *xin = kiln_tensor_data(gr->x_in);
    for (size_t i = 0; i < n; i++)
        xin[i] = x[i] / s_in;
    for (size_t k = 1; k < gr->n; k++)
        memcpy(xin + k * n, xin, n * sizeof *xin);
    for (size_t i = 0; i < gr->n * (size_t)g->p.batch; i++)
        gr->timesteps[i] = t;
    int rc = sd_unet_forward(g->p.model->unet, g->p.lane, gr->x_in, gr->timesteps,
                             gr->context, gr->eps);
    if (rc) {
        snprintf(g->err, sizeof g->err, "the UNet failed (error %d)", rc);
        return rc;
    }
    const float *eps = kiln_tensor_data(gr->eps);
    for (size_t k = 0; k < gr->n; k++) {
        const guide_entry_t *e = &g->entries[gr->entry[k]];
        float *acc = g->acc[e->side];
        const float *ek = eps + k * n;
        for (size_t i = 0; i < n; i++)
            acc[i] += (x[i] - ek[i] * sigma) * e->strength;
    }
    return 0;
}

/* x * m + (noise * sigma + latent) * (1 - m): KSamplerX0Inpaint's re-noised known part. */
static const float *blend_known(sd_guider_t *g, const float *x, float sigma)
{
    const float *m = g->p.mask, *nz = g->p.mask_noise, *lat = g->p.latent_in;
    for (size_t i = 0; i < g->n; i++)
        g->xm[i] = x[i] * m[i] + (nz[i] * sigma + lat[i]) * (1.0f - m[i]);
    return g->xm;
}

int sd_guider_denoise(void *ud, const float *x, float sigma, float *denoised, size_t n)
{
    sd_guider_t *g = ud;
    if (n != g->n)
        return KILN_EINVAL;
    if (g->p.mask)
        x = blend_known(g, x, sigma);
    float t = sd_model_sampling_timestep(&g->p.model->sampling, sigma);
    float cnt[2] = {1e-37f, 1e-37f};
    memset(g->acc[0], 0, n * sizeof(float));
    memset(g->acc[1], 0, n * sizeof(float));
    for (size_t i = 0; i < g->n_groups; i++) {
        int rc = g->p.call ? kiln_call_interrupted(g->p.call) : 0;
        if (!rc)
            rc = run_group(g, &g->groups[i], x, sigma, t);
        if (rc)
            return rc;
        for (size_t k = 0; k < g->groups[i].n; k++) {
            const guide_entry_t *e = &g->entries[g->groups[i].entry[k]];
            cnt[e->side] += e->strength;
        }
    }
    /* cfg_function: uncond + (cond - uncond) * cfg, with each side its weighted mean. */
    float cfg = (float)g->p.cfg;
    const float *m = g->p.mask, *lat = g->p.latent_in;
    for (size_t i = 0; i < n; i++) {
        float c = g->acc[0][i] / cnt[0], u = g->acc[1][i] / cnt[1];
        float d = u + (c - u) * cfg;
        denoised[i] = m ? d * m[i] + lat[i] * (1.0f - m[i]) : d;
    }
    return 0;
}
