/* CheckpointLoaderSimple ("Load Checkpoint", category loaders): opens an SD 1.x single-file
 * checkpoint from <models>/checkpoints/ and builds the MODEL (UNet + sigma table), CLIP
 * (text encoder + tokenizer) and VAE from it. The three share the open weights file, which
 * stays open until the last of them is freed.
 *
 * The CLIP tokenizer is not part of a checkpoint: it is read from
 * <models>/tokenizers/clip/vocab.json and merges.txt, or from a Hugging Face style tokenizer/
 * folder next to the checkpoint (the files of
 * openai/clip-vit-large-patch14); a missing file fails the node with its path. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sd_device.h"
#include "sd_types.h"

/* Tensor name prefixes of an SD 1.x single-file checkpoint. */
#define UNET_PREFIX "model.diffusion_model."
#define CLIP_PREFIX "cond_stage_model.transformer.text_model."
#define VAE_PREFIX "first_stage_model."

/* Largest safetensors header read when looking for metadata hints. */
#define MAX_HEADER_BYTES ((uint64_t)64 << 20)

/* A file name from a combo: relative, without "." or ".." components, so that it cannot
 * leave the checkpoints folder. */
static int safe_relative_name(const char *name)
{
    if (!name[0] || name[0] == '/' || strchr(name, '\\'))
        return 0;
    for (const char *p = name; *p;) {
        size_t len = strcspn(p, "/");
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        p += len;
        if (*p == '/')
            p++;
    }
    return 1;
}

/* Reads the number after `key` in text (skipping quotes, backslashes, colons and spaces, as
 * the key appears inside an escaped JSON string of the metadata). 0 when absent. */
static int number_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    if (!p)
        return 0;
    p += strlen(key);
    while (*p == '"' || *p == '\\' || *p == ':' || *p == ' ')
        p++;
    int v = 0;
    while (*p >= '0' && *p <= '9' && v < 100000)
        v = v * 10 + (*p++ - '0');
    return v;
}

/* The text encoder's head count declared in the safetensors metadata, if any: the key
 * "kiln_clip" may hold a JSON object with "num_attention_heads" (the tiny test models, whose
 * widths are not multiples of 64, declare it there). 0 when the file declares nothing, so
 * that the encoder infers width / 64 as for real checkpoints. */
static int clip_heads_hint(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    unsigned char len8[8];
    char *hdr = NULL;
    uint64_t len = 0;
    if (fread(len8, 1, 8, f) == 8) {
        for (int i = 7; i >= 0; i--)
            len = len << 8 | len8[i];
        if (len > 0 && len <= MAX_HEADER_BYTES && (hdr = kiln_malloc((size_t)len + 1))) {
            if (fread(hdr, 1, (size_t)len, f) == (size_t)len) {
                hdr[len] = 0;
            } else {
                kiln_free(hdr);
                hdr = NULL;
            }
        }
    }
    fclose(f);
    int heads = 0;
    if (hdr) {
        const char *meta = strstr(hdr, "\"kiln_clip\"");
        if (meta)
            heads = number_after(meta, "num_attention_heads");
        kiln_free(hdr);
    }
    return heads;
}

/* Fails the call unless path names a readable file. */
static int require_file(kiln_call_t *call, const char *path, const char *what)
{
    if (access(path, R_OK) == 0)
        return 0;
    return kiln_call_failf(call, "%s not found: %s (%s)", what, path, strerror(errno));
}

/* Finds the tokenizer files: <models>/tokenizers/clip/ first, then a Hugging Face style
 * `tokenizer/` folder next to the checkpoint. Writes both paths; 0 when both files are
 * readable, else fails the call naming every place it looked. */
static int find_tokenizer(kiln_call_t *call, const char *models, const char *ckpt_path,
                          char *vocab, char *merges, size_t size)
{
    char dirs[2][2048];
    snprintf(dirs[0], sizeof dirs[0], "%s/tokenizers/clip", models);
    const char *slash = strrchr(ckpt_path, '/');
    int dir_len = slash ? (int)(slash - ckpt_path) : 1;
    snprintf(dirs[1], sizeof dirs[1], "%.*s/tokenizer", dir_len, slash ? ckpt_path : ".");
    for (int i = 0; i < 2; i++) {
        int nv = snprintf(vocab, size, "%.2047s/vocab.json", dirs[i]);
        int nm = snprintf(merges, size, "%.2047s/merges.txt", dirs[i]);
        if (nv > 0 && (size_t)nv < size && nm > 0 && (size_t)nm < size &&
            access(vocab, R_OK) == 0 && access(merges, R_OK) == 0)
            return 0;
    }
    return kiln_call_failf(call,
                           "CLIP tokenizer not found: put vocab.json and merges.txt (from "
                           "openai/clip-vit-large-patch14) in %s/ or in %s/",
                           dirs[0], dirs[1]);
}

/* Loads the tokenizer (see find_tokenizer for where it is looked for). */
static int load_tokenizer(kiln_call_t *call, const char *models, const char *ckpt_path,
                          sd_tokenizer_t **tok)
{
    char vocab[4096], merges[4096], err[256] = "";
    int rc = find_tokenizer(call, models, ckpt_path, vocab, merges, sizeof vocab);
    if (rc)
        return rc;
    rc = sd_tokenizer_load(vocab, merges, tok, err, sizeof err);
    if (rc)
        return kiln_call_failf(call, "cannot load the CLIP tokenizer from %s: %s", vocab, err);
    return 0;
}

/* The three objects under construction; freed together on failure. */
typedef struct loaded {
    sd_model_obj_t *model;
    sd_clip_obj_t *clip;
    sd_vae_obj_t *vae;
} loaded_t;

static void loaded_free(loaded_t *l)
{
    sd_model_obj_free(l->model);
    sd_clip_obj_free(l->clip);
    sd_vae_obj_free(l->vae);
}

/* Allocates the objects around file f (each takes a reference). */
static int alloc_objects(loaded_t *l, sd_file_t *f)
{
    l->model = kiln_malloc(sizeof *l->model);
    l->clip = kiln_malloc(sizeof *l->clip);
    l->vae = kiln_malloc(sizeof *l->vae);
    sd_clip_core_t *core = kiln_malloc(sizeof *core);
    if (!l->model || !l->clip || !l->vae || !core) {
        kiln_free(l->model);
        kiln_free(l->clip);
        kiln_free(l->vae);
        kiln_free(core);
        memset(l, 0, sizeof *l);
        return KILN_ENOMEM;
    }
    memset(l->model, 0, sizeof *l->model);
    memset(core, 0, sizeof *core);
    memset(l->vae, 0, sizeof *l->vae);
    atomic_init(&core->refs, 1);
    l->clip->core = core;
    l->clip->stop_at_layer = -1;
    sd_file_retain(f);
    l->model->file = f;
    sd_file_retain(f);
    core->file = f;
    sd_file_retain(f);
    l->vae->file = f;
    sd_model_sampling_init_sd1(&l->model->sampling);
    return 0;
}

/* Builds the UNet, text encoder and VAE from f's tensors. */
static int load_parts(kiln_call_t *call, loaded_t *l, sd_file_t *f)
{
    char err[512] = "";
    kiln_weights_t *w = f->weights;
    /* The weights go to the device of the lane this node runs on (a GPU lane: converted to
     * KILN_CUDA_DTYPE and uploaded once) and stay resident in the model objects. */
    sd_dev_t prev = sd_dev_enter(sd_dev_for_lane(kiln_call_lane(call)));
    int rc = 0;
    if (sd_unet_load(w, UNET_PREFIX, 0, &l->model->unet, err, sizeof err) != 0)
        rc = kiln_call_failf(call, "cannot load the UNet of %s: %s", f->path, err);
    int heads = clip_heads_hint(f->path);
    if (rc == 0 &&
        sd_clip_load(w, CLIP_PREFIX, heads, &l->clip->core->encoder, err, sizeof err) != 0)
        rc = kiln_call_failf(call, "cannot load the text encoder of %s: %s", f->path, err);
    if (rc == 0 && sd_vae_load(w, VAE_PREFIX, &l->vae->vae, err, sizeof err) != 0)
        rc = kiln_call_failf(call, "cannot load the VAE of %s: %s", f->path, err);
    sd_dev_leave(prev);
    return rc;
}

static int checkpoint_execute(kiln_call_t *call)
{
    char name[1024], path[4096], err[512] = "";
    int rc = sd_input_cstr(call, "ckpt_name", name, sizeof name);
    if (rc)
        return rc;
    const char *models = kiln_call_dir(call, KILN_DIR_MODELS);
    if (!models)
        return kiln_call_fail(call, "the engine has no models directory");
    if (!safe_relative_name(name))
        return kiln_call_failf(call, "invalid checkpoint name '%s'", name);
    if ((size_t)snprintf(path, sizeof path, "%s/checkpoints/%s", models, name) >= sizeof path)
        return kiln_call_fail(call, "checkpoint path too long");
    if ((rc = require_file(call, path, "checkpoint")) != 0)
        return rc;

    sd_tokenizer_t *tok = NULL;
    if ((rc = load_tokenizer(call, models, path, &tok)) != 0)
        return rc;
    kiln_weights_t *w = NULL;
    if (kiln_weights_open(path, &w, err, sizeof err) != 0) {
        sd_tokenizer_free(tok);
        return kiln_call_failf(call, "cannot open checkpoint %s: %s", path, err);
    }
    sd_file_t *f = sd_file_new(w, path);
    loaded_t l = {0};
    if (!f || alloc_objects(&l, f) != 0) {
        sd_file_release(f);
        sd_tokenizer_free(tok);
        return kiln_call_fail(call, "out of memory");
    }
    l.clip->core->tokenizer = tok;
    sd_file_release(f);     /* the objects hold the file now */
    rc = load_parts(call, &l, f);
    if (rc) {
        loaded_free(&l);
        return rc;
    }
    kiln_value_t *vm = sd_value_model(l.model);
    kiln_value_t *vc = sd_value_clip(l.clip);
    kiln_value_t *vv = sd_value_vae(l.vae);
    if (!vm || !vc || !vv) {
        kiln_value_release(vm);
        kiln_value_release(vc);
        kiln_value_release(vv);
        return kiln_call_fail(call, "out of memory");
    }
    rc = kiln_call_set_output(call, 0, vm);
    if (!rc)
        rc = kiln_call_set_output(call, 1, vc);
    else
        kiln_value_release(vc);
    if (!rc)
        rc = kiln_call_set_output(call, 2, vv);
    else
        kiln_value_release(vv);
    return rc;
}

static const kiln_input_def_t checkpoint_inputs[] = {
    {KILN_INPUT_DEF_INIT, .name = "ckpt_name", .type = "COMBO",
     .options_folder = "checkpoints", .tooltip = "The name of the checkpoint (model) to load."},
    {0}};

static const kiln_output_def_t checkpoint_outputs[] = {
    {KILN_OUTPUT_DEF_INIT, .type = SD_TYPE_MODEL,
     .tooltip = "The model used for denoising latents."},
    {KILN_OUTPUT_DEF_INIT, .type = SD_TYPE_CLIP,
     .tooltip = "The CLIP model used for encoding text prompts."},
    {KILN_OUTPUT_DEF_INIT, .type = SD_TYPE_VAE,
     .tooltip = "The VAE model used for encoding and decoding images to and from latent "
                "space."},
    {0}};

const kiln_node_def_t sd_node_checkpoint_loader_simple = {
    KILN_NODE_DEF_INIT, .name = "CheckpointLoaderSimple", .display_name = "Load Checkpoint",
    .flags = KILN_NODE_GPU, /* may run on a GPU lane (sd_device.h) */
    .category = "loaders",
    .description = "Loads a diffusion model checkpoint, diffusion models are used to denoise "
                   "latents.",
    .inputs = checkpoint_inputs, .outputs = checkpoint_outputs, .execute = checkpoint_execute};
