/* The SD 1.x CLIP text encoder against ComfyUI's own CLIPTextEncode outputs on the sd15-tiny
 * model (clip.safetensors): cond and pooled for five prompts, at the last layer and with
 * CLIPSetLastLayer -2, from the fixture's token ids and from our tokenizer on the prompt
 * text; ComfyUI's weight interpolation and layer-selection rules on hand-made chunks; and
 * load errors. Tolerance: rel = max|out - ref| / max|ref| <= 1e-4 per tensor. */
#include <kiln/kiln.h>
#include <kiln/weights.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../nodes/sd/clip.h"
#include "json/json.h"
#include "runner.h"
#include "test_fake_safetensors.h"

#define FIXTURES KILN_SHARED_DIR "/fixtures/sd15-tiny/"
#define TOKENIZER_DIR KILN_SHARED_DIR "/fixtures/clip-tokenizer/"
#define CLIP_PREFIX "cond_stage_model.transformer.text_model."
#define REL_TOL 1e-4
#define N_PROMPTS 5

typedef struct env {
    kiln_engine_t *eng;
    kiln_weights_t *ckpt; /* checkpoint.safetensors */
    kiln_weights_t *ref;  /* clip.safetensors: ComfyUI's outputs */
    sd_clip_t *clip;
} env_t;

static void quiet(void *ud, kiln_log_level_t level, const char *msg)
{
    (void)ud, (void)level, (void)msg;
}

static kiln_weights_t *open_weights(const char *path)
{
    kiln_weights_t *w = NULL;
    char err[256] = "";
    int rc = kiln_weights_open(path, &w, err, sizeof err);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "open %s: %s (%s)", path, err, kiln_err_name(rc));
    return w;
}

/* An engine first: creating it binds the sd pack's host table, which clip.c calls through. */
static void env_open(env_t *e)
{
    memset(e, 0, sizeof *e);
    kiln_engine_options_t o = KILN_ENGINE_OPTIONS_INIT;
    o.base_directory = kiln_test_tmpdir();
    o.cpu_lanes = 1;
    o.log = quiet;
    ASSERT_EQ_INT(kiln_engine_new(&o, &e->eng), 0);
    e->ckpt = open_weights(FIXTURES "checkpoint.safetensors");
    e->ref = open_weights(FIXTURES "clip.safetensors");
    char err[256] = "";
    int rc = sd_clip_load(e->ckpt, CLIP_PREFIX, 4, &e->clip, err, sizeof err);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "sd_clip_load: %s (%s)", err, kiln_err_name(rc));
}

static void env_close(env_t *e)
{
    sd_clip_free(e->clip);
    kiln_weights_close(e->ref);
    kiln_weights_close(e->ckpt);
    ASSERT_EQ_INT(kiln_engine_close(e->eng), 0);
}

static kiln_tensor_t *ref_tensor(const env_t *e, const char *name)
{
    kiln_tensor_t *t = NULL;
    int rc = kiln_weights_get(e->ref, name, KILN_DTYPE_F32, &t);
    if (rc != 0)
        kiln_test_fail(__FILE__, __LINE__, "fixture tensor %s: %s", name, kiln_err_name(rc));
    return t;
}

/* max|out - ref| / max|ref| over two F32 tensors of one shape (asserted). */
static double rel_err(const kiln_tensor_t *out, const kiln_tensor_t *ref)
{
    ASSERT_EQ_INT(kiln_tensor_ndim(out), kiln_tensor_ndim(ref));
    for (int i = 0; i < kiln_tensor_ndim(ref); i++)
        ASSERT_EQ_INT(kiln_tensor_dim(out, i), kiln_tensor_dim(ref, i));
    ASSERT(kiln_tensor_is_contiguous(out) && kiln_tensor_is_contiguous(ref));
    const float *a = kiln_tensor_data(out), *b = kiln_tensor_data(ref);
    double dmax = 0.0, rmax = 0.0;
    for (int64_t i = 0; i < kiln_tensor_numel(ref); i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        ASSERT(isfinite(a[i]));
        dmax = d > dmax ? d : dmax;
        rmax = fabs((double)b[i]) > rmax ? fabs((double)b[i]) : rmax;
    }
    ASSERT(rmax > 0.0);
    return dmax / rmax;
}

/* Prompt p's chunks straight from the fixture's p<p>_ids / p<p>_weights tensors. */
static sd_token_chunks_t fixture_chunks(const env_t *e, int p)
{
    char name[64];
    snprintf(name, sizeof name, "p%d_ids", p);
    kiln_tensor_t *ids = NULL;
    ASSERT_EQ_INT(kiln_weights_get(e->ref, name, KILN_DTYPE_I64, &ids), 0);
    snprintf(name, sizeof name, "p%d_weights", p);
    kiln_tensor_t *w = ref_tensor(e, name);
    ASSERT_EQ_INT(kiln_tensor_dim(ids, 1), SD_CLIP_CHUNK);
    sd_token_chunks_t c = {.n_chunks = (size_t)kiln_tensor_dim(ids, 0)};
    size_t n = c.n_chunks * SD_CLIP_CHUNK;
    c.ids = malloc(n * sizeof *c.ids);
    c.weights = malloc(n * sizeof *c.weights);
    c.word_ids = calloc(n, sizeof *c.word_ids);
    ASSERT(c.ids && c.weights && c.word_ids);
    const int64_t *pi = kiln_tensor_data(ids);
    const float *pw = kiln_tensor_data(w);
    for (size_t i = 0; i < n; i++) {
        c.ids[i] = (int32_t)pi[i];
        c.weights[i] = (double)pw[i];
    }
    kiln_tensor_release(ids);
    kiln_tensor_release(w);
    return c;
}

/* Encodes chunks at stop_at_layer and checks cond and pooled against p<p>_cond<suffix> and
 * p<p>_pooled<suffix>; prints the errors measured. */
static void check_prompt(const env_t *e, const sd_token_chunks_t *c, int p, int stop,
                         const char *how)
{
    const char *suffix = stop == -1 ? "" : "_lastlayer_m2";
    kiln_tensor_t *cond = NULL, *pooled = NULL;
    ASSERT_EQ_INT(sd_clip_encode(e->clip, NULL, c, stop, &cond, &pooled), 0);
    char name[64];
    snprintf(name, sizeof name, "p%d_cond%s", p, suffix);
    kiln_tensor_t *rc = ref_tensor(e, name);
    snprintf(name, sizeof name, "p%d_pooled%s", p, suffix);
    kiln_tensor_t *rp = ref_tensor(e, name);
    double ec = rel_err(cond, rc), ep = rel_err(pooled, rp);
    printf("  %s p%d stop %d: cond rel %.3g, pooled rel %.3g\n", how, p, stop, ec, ep);
    if (!(ec <= REL_TOL && ep <= REL_TOL))
        kiln_test_fail(__FILE__, __LINE__, "%s p%d stop %d: rel %g / %g > %g", how, p, stop, ec, ep,
                       REL_TOL);
    kiln_tensor_release(cond);
    kiln_tensor_release(pooled);
    kiln_tensor_release(rc);
    kiln_tensor_release(rp);
}

static void test_fixture_ids(void)
{
    env_t e;
    env_open(&e);
    ASSERT_EQ_INT(sd_clip_width(e.clip), 32);
    ASSERT_EQ_INT(sd_clip_layers(e.clip), 2);
    ASSERT_EQ_INT(sd_clip_heads(e.clip), 4);
    for (int p = 0; p < N_PROMPTS; p++) {
        sd_token_chunks_t c = fixture_chunks(&e, p);
        check_prompt(&e, &c, p, -1, "ids");
        check_prompt(&e, &c, p, -2, "ids");
        sd_token_chunks_free(&c);
    }
    env_close(&e);
}

/* The whole CLIPTextEncode path: prompt text -> tokenizer -> encoder. */
static void test_tokenized_prompts(void)
{
    env_t e;
    env_open(&e);
    sd_tokenizer_t *tok = NULL;
    char err[256] = "";
    ASSERT_EQ_INT(sd_tokenizer_load(TOKENIZER_DIR "vocab.json", TOKENIZER_DIR "merges.txt", &tok,
                                    err, sizeof err),
                  0);
    size_t len = 0;
    char *text = kiln_test_read_file(FIXTURES "tokens.json", &len);
    ASSERT(text != NULL);
    kiln__json_t *root = NULL;
    ASSERT_EQ_INT(kiln__json_parse(text, len, &root, err, sizeof err), 0);
    const kiln__json_t *prompts = kiln__json_get(root, "prompts");
    ASSERT(prompts != NULL && prompts->count == N_PROMPTS);
    for (int p = 0; p < N_PROMPTS; p++) {
        const kiln__json_t *jp = kiln__json_at(prompts, (size_t)p);
        ASSERT_EQ_INT(kiln__json_get_int(jp, "index", -1), p);
        const char *prompt = kiln__json_get_string(jp, "text", NULL);
        ASSERT(prompt != NULL);
        sd_token_chunks_t c, want = fixture_chunks(&e, p);
        ASSERT_EQ_INT(sd_tokenize_weighted(tok, prompt, strlen(prompt), &c), 0);
        ASSERT_EQ_INT(c.n_chunks, want.n_chunks);
        for (size_t i = 0; i < c.n_chunks * SD_CLIP_CHUNK; i++) {
            ASSERT_EQ_INT(c.ids[i], want.ids[i]);
            ASSERT_NEAR(c.weights[i], want.weights[i], 1e-6);
        }
        check_prompt(&e, &c, p, -1, "text");
        check_prompt(&e, &c, p, -2, "text");
        sd_token_chunks_free(&c);
        sd_token_chunks_free(&want);
    }
    kiln__json_free(root);
    free(text);
    sd_tokenizer_free(tok);
    env_close(&e);
}

/* Row j of a [1, L, C] tensor as a pointer. */
static const float *row(const kiln_tensor_t *t, int64_t j)
{
    return (const float *)kiln_tensor_data(t) + j * kiln_tensor_dim(t, 2);
}

static double row_rel(const float *a, const float *b, int64_t n)
{
    double d = 0.0, m = 0.0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return d / m;
}

/* ComfyUI's weighting: z = z_empty + w (z - z_empty) at weighted positions only. Weight 0
 * therefore gives the empty prompt's encoding at that position (p1 is the empty prompt),
 * weight 2 gives 2 z - z_empty, and weight-1 positions keep the unweighted encoding. */
static void test_weight_rule(void)
{
    env_t e;
    env_open(&e);
    sd_token_chunks_t c = fixture_chunks(&e, 0); /* "a photo of a cat": all weights 1 */
    for (int j = 0; j < SD_CLIP_CHUNK; j++)
        ASSERT(c.weights[j] == 1.0);
    kiln_tensor_t *plain = NULL, *pp = NULL, *cond = NULL, *pooled = NULL;
    ASSERT_EQ_INT(sd_clip_encode(e.clip, NULL, &c, -1, &plain, &pp), 0);
    c.weights[2] = 0.0;
    c.weights[4] = 2.0;
    ASSERT_EQ_INT(sd_clip_encode(e.clip, NULL, &c, -1, &cond, &pooled), 0);
    kiln_tensor_t *empty = ref_tensor(&e, "p1_cond");
    int64_t cw = sd_clip_width(e.clip);
    ASSERT(row_rel(row(cond, 2), row(empty, 2), cw) <= REL_TOL);
    ASSERT(row_rel(row(plain, 2), row(empty, 2), cw) > 0.1); /* the weight made a change */
    float want[64];
    for (int64_t i = 0; i < cw; i++)
        want[i] = 2.0f * row(plain, 4)[i] - row(empty, 4)[i];
    ASSERT(row_rel(row(cond, 4), want, cw) <= REL_TOL);
    for (int j = 0; j < SD_CLIP_CHUNK; j++)
        if (j != 2 && j != 4)
            ASSERT(row_rel(row(cond, j), row(plain, j), cw) <= 1e-6);
    ASSERT(row_rel(row(pooled, 0), row(pp, 0), cw) <= 1e-6); /* pooled is never weighted */
    kiln_tensor_t *tensors[] = {plain, pp, cond, pooled, empty};
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; i++)
        kiln_tensor_release(tensors[i]);
    sd_token_chunks_free(&c);
    env_close(&e);
}

/* stop_at_layer below -n keeps the last layer (ComfyUI's clip_layer); stop_at_layer >= 0 is
 * refused; no chunks encode the empty chunk; an id outside the vocabulary fails cleanly. */
static void test_layers_and_edges(void)
{
    env_t e;
    env_open(&e);
    sd_token_chunks_t c = fixture_chunks(&e, 2);
    kiln_tensor_t *a = NULL, *ap = NULL, *b = NULL, *bp = NULL;
    ASSERT_EQ_INT(sd_clip_encode(e.clip, NULL, &c, -1, &a, &ap), 0);
    ASSERT_EQ_INT(sd_clip_encode(e.clip, NULL, &c, -3, &b, &bp), 0);
    ASSERT(memcmp(kiln_tensor_data(a), kiln_tensor_data(b), kiln_tensor_nbytes(a)) == 0);
    kiln_tensor_release(b);
    kiln_tensor_release(bp);
    ASSERT_EQ_INT(sd_clip_encode(e.clip, NULL, &c, 0, &b, &bp), KILN_EINVAL);
    ASSERT(b == NULL && bp == NULL);
    ASSERT_EQ_INT(sd_clip_encode(e.clip, NULL, &c, 1, &b, &bp), KILN_EINVAL);
    c.ids[5] = 49408; /* one past the vocabulary */
    ASSERT_EQ_INT(sd_clip_encode(e.clip, NULL, &c, -1, &b, &bp), KILN_ERANGE);
    ASSERT(b == NULL && bp == NULL);
    sd_token_chunks_t none = {0};
    ASSERT_EQ_INT(sd_clip_encode(e.clip, NULL, &none, -2, &b, &bp), 0);
    kiln_tensor_t *rc = ref_tensor(&e, "p1_cond_lastlayer_m2");
    kiln_tensor_t *rp = ref_tensor(&e, "p1_pooled_lastlayer_m2");
    ASSERT(rel_err(b, rc) <= REL_TOL && rel_err(bp, rp) <= REL_TOL);
    kiln_tensor_t *tensors[] = {a, ap, b, bp, rc, rp};
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; i++)
        kiln_tensor_release(tensors[i]);
    sd_token_chunks_free(&c);
    env_close(&e);
}

static void test_load_errors(void)
{
    env_t e;
    env_open(&e);
    sd_clip_t *c = (sd_clip_t *)&e;
    char err[256] = "";
    ASSERT_EQ_INT(sd_clip_load(e.ckpt, "text_model.", 4, &c, err, sizeof err), KILN_ENOTFOUND);
    ASSERT(c == NULL);
    ASSERT_STR_CONTAINS(err, "text_model.embeddings.token_embedding.weight");
    ASSERT_EQ_INT(sd_clip_load(e.ckpt, CLIP_PREFIX, 5, &c, err, sizeof err), KILN_EPARSE);
    ASSERT_STR_CONTAINS(err, "5 heads");
    ASSERT_EQ_INT(sd_clip_load(e.ref, CLIP_PREFIX, 4, &c, err, sizeof err), KILN_ENOTFOUND);
    ASSERT_EQ_INT(sd_clip_load(NULL, CLIP_PREFIX, 4, &c, err, sizeof err), KILN_EINVAL);
    /* Without a hint the head count follows SD's 64-wide heads (wrong for this model). */
    ASSERT_EQ_INT(sd_clip_load(e.ckpt, CLIP_PREFIX, 0, &c, NULL, 0), 0);
    ASSERT_EQ_INT(sd_clip_heads(c), 1); /* 32 / 64 rounds to 1 when no hint is given */
    sd_clip_free(c);
    env_close(&e);
}

/* A file whose tensors are present but one has the wrong shape fails with that tensor named
 * (and no crash, under ASan), as does one with a width no head count divides. */
static void test_malformed_file(void)
{
    env_t e;
    env_open(&e);
    fake_tensor_t ts[] = {
        {"t.embeddings.token_embedding.weight", 2, {10, 8}},
        {"t.embeddings.position_embedding.weight", 2, {77, 8}},
        {"t.final_layer_norm.weight", 1, {8}},
        {"t.final_layer_norm.bias", 1, {8}},
        {"t.encoder.layers.0.layer_norm1.weight", 1, {8}},
        {"t.encoder.layers.0.layer_norm1.bias", 1, {8}},
        {"t.encoder.layers.0.self_attn.q_proj.weight", 2, {8, 9}},
        {"t.encoder.layers.0.mlp.fc1.weight", 2, {16, 8}},
    };
    kiln_weights_t *w = open_weights(write_fake(ts, 8));
    sd_clip_t *c = NULL;
    char err[256] = "";
    ASSERT_EQ_INT(sd_clip_load(w, "t.", 2, &c, err, sizeof err), KILN_EPARSE);
    ASSERT(c == NULL);
    ASSERT_STR_CONTAINS(err, "t.encoder.layers.0.self_attn.q_proj.weight");
    ASSERT_EQ_INT(sd_clip_load(w, "t.", 3, &c, err, sizeof err), KILN_EPARSE);
    kiln_weights_close(w);
    ts[1].shape[0] = 76; /* fewer positions than a chunk */
    ts[6].shape[1] = 8;
    w = open_weights(write_fake(ts, 8));
    ASSERT_EQ_INT(sd_clip_load(w, "t.", 2, &c, err, sizeof err), KILN_EPARSE);
    ASSERT_STR_CONTAINS(err, "76 positions");
    kiln_weights_close(w);
    env_close(&e);
}

KILN_TEST_MAIN(TEST_TIMEOUT(test_fixture_ids, 120), TEST_TIMEOUT(test_tokenized_prompts, 120),
               TEST(test_weight_rule), TEST(test_layers_and_edges), TEST(test_load_errors),
               TEST(test_malformed_file))
