/* The sd pack's value types (see sd_types.h): reference counting of the shared checkpoint
 * file and text encoder, the MODEL/CLIP/VAE/CONDITIONING/LATENT object values, and the
 * input/output helpers every node file uses. */
#include <string.h>

#include "sd_types.h"

/* ---- the checkpoint file ---------------------------------------------------------------- */

sd_file_t *sd_file_new(kiln_weights_t *w, const char *path)
{
    sd_file_t *f = kiln_malloc(sizeof *f);
    size_t len = strlen(path) + 1;
    char *copy = kiln_malloc(len);
    if (!f || !copy) {
        kiln_free(f);
        kiln_free(copy);
        kiln_weights_close(w);
        return NULL;
    }
    atomic_init(&f->refs, 1);
    f->weights = w;
    f->path = memcpy(copy, path, len);
    return f;
}

void sd_file_retain(sd_file_t *f)
{
    atomic_fetch_add(&f->refs, 1);
}

void sd_file_release(sd_file_t *f)
{
    if (!f || atomic_fetch_sub(&f->refs, 1) != 1)
        return;
    kiln_weights_close(f->weights);
    kiln_free(f->path);
    kiln_free(f);
}

/* ---- MODEL, CLIP, VAE ------------------------------------------------------------------- */

void sd_model_obj_free(sd_model_obj_t *obj)
{
    if (!obj)
        return;
    sd_unet_free(obj->unet);
    sd_file_release(obj->file);
    kiln_free(obj);
}

void sd_clip_core_retain(sd_clip_core_t *core)
{
    atomic_fetch_add(&core->refs, 1);
}

void sd_clip_core_release(sd_clip_core_t *core)
{
    if (!core || atomic_fetch_sub(&core->refs, 1) != 1)
        return;
    sd_clip_free(core->encoder);
    sd_tokenizer_free(core->tokenizer);
    sd_file_release(core->file);
    kiln_free(core);
}

void sd_clip_obj_free(sd_clip_obj_t *obj)
{
    if (!obj)
        return;
    sd_clip_core_release(obj->core);
    kiln_free(obj);
}

void sd_vae_obj_free(sd_vae_obj_t *obj)
{
    if (!obj)
        return;
    sd_vae_free(obj->vae);
    sd_file_release(obj->file);
    kiln_free(obj);
}

/* The value's free functions take void *. */
static void model_free_cb(void *p)
{
    sd_model_obj_free(p);
}

static void clip_free_cb(void *p)
{
    sd_clip_obj_free(p);
}

static void vae_free_cb(void *p)
{
    sd_vae_obj_free(p);
}

static void cond_free_cb(void *p)
{
    sd_cond_free(p);
}

static void latent_free_cb(void *p)
{
    sd_latent_free(p);
}

/* kiln_value_new_object, which frees ptr itself when the value cannot be made. */
static kiln_value_t *new_object(const char *type, void *ptr, void (*free_fn)(void *))
{
    if (!ptr)
        return NULL;
    return kiln_value_new_object(type, ptr, free_fn);
}

kiln_value_t *sd_value_model(sd_model_obj_t *obj)
{
    return new_object(SD_TYPE_MODEL, obj, model_free_cb);
}

kiln_value_t *sd_value_clip(sd_clip_obj_t *obj)
{
    return new_object(SD_TYPE_CLIP, obj, clip_free_cb);
}

kiln_value_t *sd_value_vae(sd_vae_obj_t *obj)
{
    return new_object(SD_TYPE_VAE, obj, vae_free_cb);
}

/* The object of type `type` behind input `name`, or NULL after failing the call with
 * ComfyUI's wording for a missing model ("clip input is invalid: None"). */
static void *input_object(kiln_call_t *call, const char *name, const char *type)
{
    const kiln_value_t *v = kiln_call_input(call, name);
    void *p = v ? kiln_value_get_object(v, type) : NULL;
    if (!p) {
        if (!v || kiln_value_kind(v) == KILN_VALUE_NONE)
            kiln_call_failf(call, "%s input is invalid: None", name);
        else
            kiln_call_failf(call, "input '%s' must be a %s, got %s", name, type,
                            kiln_value_type(v));
    }
    return p;
}

sd_model_obj_t *sd_input_model(kiln_call_t *call, const char *name)
{
    return input_object(call, name, SD_TYPE_MODEL);
}

sd_clip_obj_t *sd_input_clip(kiln_call_t *call, const char *name)
{
    return input_object(call, name, SD_TYPE_CLIP);
}

sd_vae_obj_t *sd_input_vae(kiln_call_t *call, const char *name)
{
    return input_object(call, name, SD_TYPE_VAE);
}

/* ---- CONDITIONING ----------------------------------------------------------------------- */

sd_cond_t *sd_cond_new(size_t n)
{
    sd_cond_t *c = kiln_malloc(sizeof *c);
    sd_cond_entry_t *e = n ? kiln_malloc(n * sizeof *e) : NULL;
    if (!c || (n && !e)) {
        kiln_free(c);
        kiln_free(e);
        return NULL;
    }
    if (e)
        memset(e, 0, n * sizeof *e);
    c->n = n;
    c->entries = e;
    return c;
}

void sd_cond_free(sd_cond_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        kiln_tensor_release(c->entries[i].cond);
        kiln_tensor_release(c->entries[i].pooled);
    }
    kiln_free(c->entries);
    kiln_free(c);
}

kiln_value_t *sd_value_cond(sd_cond_t *c)
{
    return new_object(SD_TYPE_CONDITIONING, c, cond_free_cb);
}

const sd_cond_t *sd_input_cond(kiln_call_t *call, const char *name)
{
    return input_object(call, name, SD_TYPE_CONDITIONING);
}

/* ---- LATENT ------------------------------------------------------------------------------ */

sd_latent_t *sd_latent_new(kiln_tensor_t *samples, const sd_latent_t *like)
{
    sd_latent_t *l = kiln_malloc(sizeof *l);
    if (!l)
        return NULL;
    memset(l, 0, sizeof *l);
    if (like && like->n_batch_index) {
        size_t bytes = like->n_batch_index * sizeof *l->batch_index;
        l->batch_index = kiln_malloc(bytes);
        if (!l->batch_index) {
            kiln_free(l);
            return NULL;
        }
        memcpy(l->batch_index, like->batch_index, bytes);
        l->n_batch_index = like->n_batch_index;
    }
    kiln_tensor_retain(samples);
    l->samples = samples;
    if (like && like->noise_mask) {
        kiln_tensor_retain(like->noise_mask);
        l->noise_mask = like->noise_mask;
    }
    return l;
}

void sd_latent_free(sd_latent_t *l)
{
    if (!l)
        return;
    kiln_tensor_release(l->samples);
    kiln_tensor_release(l->noise_mask);
    kiln_free(l->batch_index);
    kiln_free(l);
}

kiln_value_t *sd_value_latent(sd_latent_t *l)
{
    return new_object(SD_TYPE_LATENT, l, latent_free_cb);
}

const sd_latent_t *sd_input_latent(kiln_call_t *call, const char *name)
{
    const sd_latent_t *l = input_object(call, name, SD_TYPE_LATENT);
    if (!l)
        return NULL;
    const kiln_tensor_t *s = l->samples;
    if (!s || kiln_tensor_ndim(s) != 4 || kiln_tensor_dtype(s) != KILN_DTYPE_F32 ||
        !kiln_tensor_is_contiguous(s) || !kiln_tensor_data(s)) {
        kiln_call_failf(call, "input '%s': latent samples must be a dense float32 "
                        "[B, C, H, W] tensor in host memory", name);
        return NULL;
    }
    return l;
}

/* ---- inputs and outputs ----------------------------------------------------------------- */

int sd_input_int(kiln_call_t *call, const char *name, int64_t *v)
{
    const kiln_value_t *val = kiln_call_input(call, name);
    if (!val || kiln_value_get_int(val, v) != 0)
        return kiln_call_failf(call, "input '%s' is missing or is not an integer", name);
    return 0;
}

int sd_input_u64(kiln_call_t *call, const char *name, uint64_t *v)
{
    const kiln_value_t *val = kiln_call_input(call, name);
    if (!val || kiln_value_get_u64(val, v) != 0)
        return kiln_call_failf(call, "input '%s' is missing or is not a non-negative integer",
                               name);
    return 0;
}

int sd_input_float(kiln_call_t *call, const char *name, double *v)
{
    const kiln_value_t *val = kiln_call_input(call, name);
    if (!val || kiln_value_get_float(val, v) != 0)
        return kiln_call_failf(call, "input '%s' is missing or is not a number", name);
    return 0;
}

int sd_input_cstr(kiln_call_t *call, const char *name, char *buf, size_t size)
{
    const char *s = NULL;
    size_t len = 0;
    const kiln_value_t *v = kiln_call_input(call, name);
    if (!v || kiln_value_get_string(v, &s, &len) != 0)
        return kiln_call_failf(call, "input '%s' is missing or is not a string", name);
    if (memchr(s, 0, len))
        return kiln_call_failf(call, "input '%s' contains a NUL character", name);
    if (len >= size)
        return kiln_call_failf(call, "input '%s' is too long (%zu bytes)", name, len);
    memcpy(buf, s, len);
    buf[len] = 0;
    return 0;
}

int sd_set_output(kiln_call_t *call, int index, kiln_value_t *v)
{
    if (!v)
        return kiln_call_fail(call, "out of memory");
    return kiln_call_set_output(call, index, v);
}

kiln_tensor_t *sd_new_f32_4d(kiln_call_t *call, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    int64_t shape[4] = {d0, d1, d2, d3};
    int64_t n = 1;
    for (int i = 0; i < 4; i++) {
        if (shape[i] < 0 || shape[i] > SD_MAX_ELEMENTS || n > SD_MAX_ELEMENTS) {
            n = SD_MAX_ELEMENTS + 1;
            break;
        }
        n *= shape[i];
    }
    if (n > SD_MAX_ELEMENTS) {
        kiln_call_failf(call, "a tensor of %lld x %lld x %lld x %lld is too large (limit %lld "
                        "elements)", (long long)d0, (long long)d1, (long long)d2,
                        (long long)d3, (long long)SD_MAX_ELEMENTS);
        return NULL;
    }
    kiln_tensor_t *t = kiln_tensor_new(KILN_DTYPE_F32, 4, shape);
    if (!t)
        kiln_call_fail(call, "out of memory");
    return t;
}

kiln_tensor_t *sd_dense_f32(const kiln_tensor_t *t)
{
    kiln_tensor_t *out = NULL;
    if (!t || !kiln_tensor_data(t))
        return NULL;
    kiln_dtype_t dt = kiln_tensor_dtype(t);
    if (dt == KILN_DTYPE_F32) {
        if (kiln_tensor_contiguous(t, &out) != 0)
            return NULL;
        return out;
    }
    if (dt != KILN_DTYPE_F16 && dt != KILN_DTYPE_BF16 && dt != KILN_DTYPE_F64)
        return NULL;
    if (kiln_tensor_to_dtype(t, KILN_DTYPE_F32, &out) != 0)
        return NULL;
    return out;
}
