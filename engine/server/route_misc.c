/* Discovery routes (§4.3): /object_info[/{class}], /system_stats, /embeddings, /models
 * [/{folder}], /extensions, /features. Anything that reads the disk or encodes a large
 * document runs on the pool. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "server/server_int.h"

/* ---- /object_info ----------------------------------------------------------------------- */

static void object_info_work(kiln__req_t *r)
{
    const char *cls = !strncmp(r->path, "/object_info/", 13) ? r->path + 13 : NULL;
    char *json = NULL;
    int rc = kiln_engine_object_info(r->srv->engine, cls, &json);
    if (rc != 0) {
        kiln__req_reply_error(r, 500, "internal_error", "object_info: %s", kiln_strerror(rc));
        return;
    }
    kiln__req_reply_json(r, 200, strdup(json));
    kiln_free(json);
}

void kiln__route_object_info(kiln__req_t *r)
{
    kiln__req_defer(r, object_info_work);
}

/* ---- /system_stats ---------------------------------------------------------------------- */

/* MemTotal and MemAvailable from /proc/meminfo, in bytes (0 when unknown). */
static void memory(unsigned long long *total, unsigned long long *avail)
{
    *total = *avail = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
            *total = kb * 1024;
        else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            *avail = kb * 1024;
    }
    fclose(f);
}

static void system_stats_work(kiln__req_t *r)
{
    unsigned long long total, avail;
    memory(&total, &avail);
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_printf(&b,
                      "{\"system\": {\"os\": \"posix\", \"ram_total\": %llu, \"ram_free\": %llu, "
                      "\"comfyui_version\": \"0.3.64\", \"required_frontend_version\": "
                      "\"1.28.0\", \"installed_templates_version\": null, "
                      "\"required_templates_version\": null, \"python_version\": \"kiln %s\", "
                      "\"pytorch_version\": \"none\", \"embedded_python\": false, "
                      "\"kiln_version\": \"%s\", \"argv\": %s}, ",
                      total, avail, KILN_VERSION_STRING, KILN_VERSION_STRING,
                      r->srv->cfg.argv_json ? r->srv->cfg.argv_json : "[]");
    /* kiln runs on the CPU here: one device whose memory is the host's. */
    kiln__sbuf_printf(&b,
                      "\"devices\": [{\"name\": \"cpu\", \"type\": \"cpu\", \"index\": 0, "
                      "\"vram_total\": %llu, \"vram_free\": %llu, \"torch_vram_total\": %llu, "
                      "\"torch_vram_free\": %llu}]}",
                      total, avail, total, avail);
    kiln__req_reply_json(r, 200, kiln__sbuf_take(&b, NULL));
}

void kiln__route_system_stats(kiln__req_t *r)
{
    kiln__req_defer(r, system_stats_work);
}

/* ---- /models, /embeddings --------------------------------------------------------------- */

static const char *const model_folders[] = {
    "checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models",
    "clip_vision", "style_models", "embeddings", "diffusers", "vae_approx", "controlnet",
    "gligen", "upscale_models", "custom_nodes", "hypernetworks", "photomaker",
    "classifiers", "model_patches", "audio_encoders", NULL};

static bool model_ext(const char *folder, const char *name)
{
    static const char *const pt[] = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors",
                                     ".pkl", ".sft", NULL};
    const char *dot = strrchr(name, '.');
    if (!dot)
        return false;
    if (!strcmp(folder, "configs"))
        return !strcasecmp(dot, ".yaml");
    for (size_t i = 0; pt[i]; i++)
        if (!strcasecmp(dot, pt[i]))
            return true;
    return false;
}

typedef struct names {
    char **v;
    size_t n, cap;
} names_t;

static void add_name(names_t *l, const char *rel)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        char **v = realloc(l->v, sizeof *v * cap);
        if (!v)
            return;
        l->v = v;
        l->cap = cap;
    }
    char *s = strdup(rel);
    if (s)
        l->v[l->n++] = s;
}

/* Every matching file under dir (following links, as os.walk(followlinks=True) does),
 * as paths relative to the folder; depth-limited so a link loop cannot recurse forever. */
static void walk(const char *folder, const char *dir, const char *rel, int depth, names_t *out)
{
    DIR *d = depth < 16 ? opendir(dir) : NULL;
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096], sub[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            walk(folder, path, sub, depth + 1, out);
        else if (S_ISREG(st.st_mode) && model_ext(folder, e->d_name))
            add_name(out, sub);
    }
    closedir(d);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A JSON array of the folder's model files, sorted; strip drops extensions. */
static char *list_folder(kiln__srv_t *srv, const char *folder, bool strip)
{
    names_t l = {0};
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", srv->cfg.models_dir, folder);
    if (strcmp(folder, "custom_nodes"))
        walk(folder, dir, "", 0, &l);
    if (l.n > 1)
        qsort(l.v, l.n, sizeof *l.v, cmp_str);
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_putc(&b, '[');
    for (size_t i = 0; i < l.n; i++) {
        if (strip) {
            char *dot = strrchr(l.v[i], '.');
            if (dot)
                *dot = 0;
        }
        if (i)
            kiln__sbuf_puts(&b, ", ");
        kiln__srv_json_str(&b, l.v[i]);
        free(l.v[i]);
    }
    free(l.v);
    kiln__sbuf_putc(&b, ']');
    return kiln__sbuf_take(&b, NULL);
}

static void models_work(kiln__req_t *r)
{
    const char *folder = r->path + strlen("/models/");
    for (size_t i = 0; model_folders[i]; i++)
        if (!strcmp(folder, model_folders[i])) {
            kiln__req_reply_json(r, 200, list_folder(r->srv, folder, false));
            return;
        }
    kiln__req_reply_error(r, 404, "not_found", "unknown model folder '%s'", folder);
}

void kiln__route_models(kiln__req_t *r)
{
    if (strcmp(r->path, "/models")) {
        kiln__req_defer(r, models_work);
        return;
    }
    kiln__sbuf_t b = KILN_SBUF_INIT;
    kiln__sbuf_putc(&b, '[');
    for (size_t i = 0; model_folders[i]; i++) {
        if (i)
            kiln__sbuf_puts(&b, ", ");
        kiln__srv_json_str(&b, model_folders[i]);
    }
    kiln__sbuf_putc(&b, ']');
    kiln__req_reply_json(r, 200, kiln__sbuf_take(&b, NULL));
}

static void embeddings_work(kiln__req_t *r)
{
    kiln__req_reply_json(r, 200, list_folder(r->srv, "embeddings", true));
}

void kiln__route_embeddings(kiln__req_t *r)
{
    kiln__req_defer(r, embeddings_work);
}

/* ---- /extensions, /features ------------------------------------------------------------- */

void kiln__route_extensions(kiln__req_t *r)
{
    /* kiln has no JavaScript extensions to load into a frontend. */
    kiln__req_reply_json_copy(r, 200, "[]");
}

char *kiln__features_json(const kiln__srv_t *srv)
{
    char buf[160];
    snprintf(buf, sizeof buf,
             "{\"supports_preview_metadata\": true, \"max_upload_size\": %zu.0}",
             srv->cfg.max_body);
    return strdup(buf);
}

void kiln__route_features(kiln__req_t *r)
{
    kiln__req_reply_json(r, 200, kiln__features_json(r->srv));
}
