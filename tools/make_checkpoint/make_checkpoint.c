/* make_checkpoint: writes a random-weight SD 1.x single-file checkpoint (safetensors, the
 * key names and shapes ComfyUI's loader expects) of a tiny or a full SD1.5-sized
 * configuration, in float32 or float16, from a seed, so that demos, CI and benchmarks need
 * no download; or, with --tokenizer, the demo byte-level CLIP tokenizer files. The weights
 * are noise: the images such a model makes are noise too, but every op runs at the real
 * sizes and activations stay finite. */
#include <errno.h>
#include <kiln/error.h>
#include <kiln/tensor.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/safetensors.h"
#include "sd_layout.h"

static const char USAGE[] =
    "usage: make_checkpoint (--tiny | --sd15) [options] -o FILE.safetensors\n"
    "       make_checkpoint --tokenizer DIR\n"
    "\n"
    "  --tiny             the sd15-tiny fixture's shapes: CLIP 32 wide / 2 layers / 4 heads,\n"
    "                     UNet 32 channels mult 1,2,2,2, VAE ch 32 mult 1,1,2,2 (25 MB)\n"
    "  --sd15             SD1.5's shapes: CLIP 768 / 12 / 12, UNet 320 mult 1,2,4,4 context\n"
    "                     768, VAE ch 128 mult 1,2,4,4 (1.07 G parameters)\n"
    "  --dtype f32|f16    stored dtype (default f32)\n"
    "  --seed N           random seed (default 0)\n"
    "  --list             print each tensor's name and shape instead of writing a file\n"
    "  --clip-width N, --clip-layers N, --clip-heads N, --clip-ff N,\n"
    "  --unet-ch N, --unet-mult A,B,..., --vae-ch N, --vae-mult A,B,...\n"
    "                     override one number of the chosen configuration\n"
    "  --tokenizer DIR    write DIR/vocab.json and DIR/merges.txt: a DEMO byte-level CLIP\n"
    "                     tokenizer (one token per byte, no merges); real checkpoints need\n"
    "                     the real files of openai/clip-vit-large-patch14 there instead\n";

typedef struct opts {
    kiln__ckpt_config_t cfg;
    int have_cfg, list;
    kiln_dtype_t dtype;
    uint64_t seed;
    const char *out, *tokenizer;
} opts_t;

/* ---- random fill ------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Each tensor draws from its own stream, seeded from the seed and its name, so that a
 * tensor's values do not depend on the configuration's other tensors. */
static uint64_t stream_seed(uint64_t seed, const char *name)
{
    uint64_t h = 0xCBF29CE484222325ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001B3ull;
    uint64_t s = seed ^ h;
    return splitmix64(&s);
}

/* A new tensor for spec s in dtype, filled; NULL when out of memory. */
static kiln_tensor_t *make_tensor(const kiln__ckpt_spec_t *s, kiln_dtype_t dtype, uint64_t seed)
{
    if (s->positions) {
        kiln_tensor_t *t = kiln_tensor_new(KILN_DTYPE_I64, s->ndim, s->shape);
        int64_t *d = t ? kiln_tensor_data(t) : NULL;
        for (int64_t i = 0; d && i < kiln_tensor_numel(t); i++)
            d[i] = i;
        return t;
    }
    kiln_tensor_t *t = kiln_tensor_new(KILN_DTYPE_F32, s->ndim, s->shape), *conv = NULL;
    if (!t)
        return NULL;
    float *d = kiln_tensor_data(t);
    uint64_t st = stream_seed(seed, s->name);
    for (int64_t i = 0, n = kiln_tensor_numel(t); i < n; i++) {
        float u = (float)(splitmix64(&st) >> 40) * (1.0f / 16777216.0f);   /* [0, 1) */
        d[i] = s->offset + s->bound * (2.0f * u - 1.0f);
    }
    if (dtype == KILN_DTYPE_F32)
        return t;
    int rc = kiln_tensor_to_dtype(t, dtype, &conv);
    kiln_tensor_release(t);
    return rc ? NULL : conv;
}

/* ---- writing ---------------------------------------------------------------------------- */

/* mkdir -p of the directory part of path (the whole path when whole is set). */
static int make_dirs(const char *path, int whole)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -1;
    char *end = whole ? buf + strlen(buf) : strrchr(buf, '/');
    if (!end)
        return 0;
    *end = 0;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return buf[0] && mkdir(buf, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

/* "[a, b, c]" of n ints into buf. */
static const char *int_list(char *buf, size_t size, const int *v, int n)
{
    size_t len = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < n && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%d", i ? ", " : "", v[i]);
    if (len < size)
        snprintf(buf + len, size - len, "]");
    return buf;
}

static int write_checkpoint(const opts_t *o, const kiln__ckpt_layout_t *l)
{
    const kiln__ckpt_config_t *c = &o->cfg;
    char clip[256], unet[256], vae[256], note[256], m1[64], m2[64];
    snprintf(clip, sizeof clip, "{\"hidden_size\": %d, \"intermediate_size\": %d, "
             "\"num_hidden_layers\": %d, \"num_attention_heads\": %d}", c->clip_width,
             c->clip_ff, c->clip_layers, c->clip_heads);
    snprintf(unet, sizeof unet, "{\"model_channels\": %d, \"channel_mult\": %s, "
             "\"context_dim\": %d}", c->unet_ch, int_list(m1, sizeof m1, c->unet_mult,
             c->unet_levels), c->clip_width);
    snprintf(vae, sizeof vae, "{\"ch\": %d, \"ch_mult\": %s}", c->vae_ch,
             int_list(m2, sizeof m2, c->vae_mult, c->vae_levels));
    snprintf(note, sizeof note, "random weights from make_checkpoint (seed %llu), SD1.x "
             "structure; not a usable model", (unsigned long long)o->seed);
    const char *meta[] = {"format", "pt", "kiln_clip", clip, "kiln_unet", unet,
                          "kiln_vae", vae, "kiln_note", note, NULL};
    const char **names = calloc(l->n, sizeof *names);
    kiln_tensor_t **ts = calloc(l->n, sizeof *ts);
    int rc = names && ts ? 0 : KILN_ENOMEM;
    for (size_t i = 0; !rc && i < l->n; i++) {
        names[i] = l->specs[i].name;
        if (!(ts[i] = make_tensor(&l->specs[i], o->dtype, o->seed)))
            rc = KILN_ENOMEM;
    }
    char err[512] = "out of memory";
    if (!rc && make_dirs(o->out, 0) != 0) {
        snprintf(err, sizeof err, "cannot create the directory of %s", o->out);
        rc = KILN_EIO;
    }
    if (!rc)
        rc = kiln__safetensors_write(o->out, names, ts, l->n, meta, err, sizeof err);
    for (size_t i = 0; ts && i < l->n; i++)
        kiln_tensor_release(ts[i]);
    free(ts);
    free(names);
    if (rc)
        fprintf(stderr, "make_checkpoint: %s\n", err);
    return rc;
}

/* ---- options ---------------------------------------------------------------------------- */

/* "a,b,c" into v (at most KILN__CKPT_MAX_LEVELS); the count, or -1. */
static int parse_mult(const char *s, int *v)
{
    int n = 0;
    for (;;) {
        char *end;
        long x = strtol(s, &end, 10);
        if (end == s || x < 1 || x > 64 || n == KILN__CKPT_MAX_LEVELS)
            return -1;
        v[n++] = (int)x;
        if (*end == 0)
            return n;
        if (*end != ',')
            return -1;
        s = end + 1;
    }
}

static int parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

/* One option taking a value (argv[*i] is the option); 0, or -1 for a bad value. */
static int parse_valued(opts_t *o, const char *opt, const char *v)
{
    kiln__ckpt_config_t *c = &o->cfg;
    int *ints[] = {&c->clip_width, &c->clip_layers, &c->clip_heads, &c->clip_ff, &c->unet_ch,
                   &c->vae_ch};
    static const char *const int_opts[] = {"--clip-width", "--clip-layers", "--clip-heads",
                                           "--clip-ff", "--unet-ch", "--vae-ch", NULL};
    long long x;
    for (int k = 0; int_opts[k]; k++) {
        if (strcmp(opt, int_opts[k]) == 0) {
            if (parse_int(v, 1, 1 << 20, &x) != 0)
                return -1;
            *ints[k] = (int)x;
            return 0;
        }
    }
    if (strcmp(opt, "--unet-mult") == 0)
        return (c->unet_levels = parse_mult(v, c->unet_mult)) < 0 ? -1 : 0;
    if (strcmp(opt, "--vae-mult") == 0)
        return (c->vae_levels = parse_mult(v, c->vae_mult)) < 0 ? -1 : 0;
    if (strcmp(opt, "--seed") == 0) {
        char *end;
        errno = 0;
        o->seed = strtoull(v, &end, 10);
        return errno || end == v || *end || v[0] == '-' ? -1 : 0;
    }
    if (strcmp(opt, "--dtype") == 0) {
        o->dtype = strcmp(v, "f16") == 0 ? KILN_DTYPE_F16 : KILN_DTYPE_F32;
        return strcmp(v, "f16") == 0 || strcmp(v, "f32") == 0 ? 0 : -1;
    }
    if (strcmp(opt, "-o") == 0 || strcmp(opt, "--output") == 0)
        o->out = v;
    else if (strcmp(opt, "--tokenizer") == 0)
        o->tokenizer = v;
    else
        return -1;
    return 0;
}

static int parse(int argc, char **argv, opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->dtype = KILN_DTYPE_F32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--tiny") == 0 || strcmp(a, "--sd15") == 0) {
            /* The preset comes first so that later overrides apply to it. */
            if (a[2] == 't')
                kiln__ckpt_config_tiny(&o->cfg);
            else
                kiln__ckpt_config_sd15(&o->cfg);
            o->have_cfg = 1;
        } else if (strcmp(a, "--list") == 0) {
            o->list = 1;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(USAGE, stdout);
            exit(0);
        } else {
            /* Size overrides change the preset, which must come before them. */
            int sized = strncmp(a, "--clip", 6) == 0 || strncmp(a, "--unet", 6) == 0 ||
                        strncmp(a, "--vae", 5) == 0;
            if (i + 1 >= argc || (sized && !o->have_cfg) ||
                parse_valued(o, a, argv[i + 1]) != 0) {
                fprintf(stderr, "make_checkpoint: bad or misplaced argument '%s'\n%s", a,
                        USAGE);
                return -1;
            }
            i++;
        }
    }
    if (!o->tokenizer && (!o->have_cfg || (!o->out && !o->list))) {
        fputs(USAGE, stderr);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    opts_t o;
    char err[512] = "";
    if (parse(argc, argv, &o) != 0)
        return 2;
    if (o.tokenizer) {
        if (make_dirs(o.tokenizer, 1) != 0 ||
            kiln__ckpt_write_demo_tokenizer(o.tokenizer, err, sizeof err) != 0) {
            fprintf(stderr, "make_checkpoint: %s\n", err[0] ? err : "cannot create the folder");
            return 1;
        }
        printf("wrote the demo byte-level CLIP tokenizer to %s (not the real CLIP vocabulary)\n",
               o.tokenizer);
        if (!o.have_cfg)
            return 0;
    }
    kiln__ckpt_layout_t l = {0};
    if (kiln__ckpt_config_check(&o.cfg, err, sizeof err) != 0) {
        fprintf(stderr, "make_checkpoint: %s\n", err);
        return 2;
    }
    if (kiln__ckpt_layout_build(&o.cfg, &l) != 0) {
        fprintf(stderr, "make_checkpoint: out of memory\n");
        return 1;
    }
    int rc = 0;
    for (size_t i = 0; o.list && i < l.n; i++) {
        const kiln__ckpt_spec_t *s = &l.specs[i];
        printf("%s %s [", s->name, s->positions ? "I64" : kiln_dtype_name(o.dtype));
        for (int k = 0; k < s->ndim; k++)
            printf("%s%lld", k ? ", " : "", (long long)s->shape[k]);
        printf("]\n");
    }
    if (!o.list && (rc = write_checkpoint(&o, &l)) == 0)
        printf("wrote %s: ", o.out);
    if (!rc)
        printf("%zu tensors, %lld parameters (UNet %lld, VAE %lld, CLIP %lld), %s\n", l.n,
               (long long)(l.params[0] + l.params[1] + l.params[2]), (long long)l.params[0],
               (long long)l.params[1], (long long)l.params[2], kiln_dtype_name(o.dtype));
    kiln__ckpt_layout_free(&l);
    return rc ? 1 : 0;
}
