/* The choices of COMBO inputs: a static list from the definition, or the files of a
 * folder read at the time of the request, as ComfyUI lists them: image files at the top
 * of the input (or output, temp) directory, and model files anywhere below
 * models/<folder>/ as relative paths with '/' separators. Lists are sorted by byte
 * order (Python's sorted() on str) and free of duplicates. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "registry/registry_int.h"

/* Subfolder depth followed below a model folder; also stops symlink cycles. */
#define MAX_DEPTH 16

typedef struct name_list {
    char **v;                       /* owned, each entry owned */
    size_t n, cap;
    bool failed;                    /* an allocation failed: the list is incomplete */
} name_list_t;

static void names_add(name_list_t *l, const char *name)
{
    if (l->failed)
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->failed = true;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    size_t len = strlen(name) + 1;
    char *copy = malloc(len);
    if (!copy) {
        l->failed = true;
        return;
    }
    l->v[l->n++] = memcpy(copy, name, len);
}

static void names_free(name_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* True when name ends with one of exts (case-insensitively, as ComfyUI lowercases). */
static bool has_ext(const char *name, const char *const *exts)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name)
        return false;
    for (size_t i = 0; exts[i]; i++)
        if (strcasecmp(dot + 1, exts[i]) == 0)
            return true;
    return false;
}

static const char *const image_exts[] = {"png", "jpg", "jpeg", "webp", "bmp", "gif",
                                         "tga", "tif", "tiff", NULL};
static const char *const model_exts[] = {"safetensors", "ckpt", "pt", "pth", "bin", "sft", NULL};

/* Adds the files of dir/rel (rel "" for dir itself) whose names match exts; descends into
 * subfolders when depth allows. */
static void scan_dir(name_list_t *l, const char *dir, const char *rel, int depth,
                     const char *const *exts)
{
    char path[4096];
    snprintf(path, sizeof path, rel[0] ? "%s/%s" : "%s", dir, rel);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char child_rel[4096], child[8192];
        int n = snprintf(child_rel, sizeof child_rel, rel[0] ? "%s/%s" : "%s%s", rel,
                         e->d_name);
        if (n < 0 || (size_t)n >= sizeof child_rel)
            continue;
        snprintf(child, sizeof child, "%s/%s", dir, child_rel);
        struct stat st;
        if (stat(child, &st) != 0) /* follows links, as os.walk(followlinks=True) */
            continue;
        if (S_ISREG(st.st_mode) && has_ext(e->d_name, exts))
            names_add(l, child_rel);
        else if (S_ISDIR(st.st_mode) && depth > 0 && strcmp(e->d_name, ".git") != 0)
            scan_dir(l, dir, child_rel, depth - 1, exts);
    }
    closedir(d);
}

/* ComfyUI's folder aliases: a kind whose files may live in several model folders. */
static void scan_models(name_list_t *l, const char *models_dir, const char *folder)
{
    static const char *const aliases[][3] = {
        {"text_encoders", "text_encoders", "clip"},
        {"clip", "text_encoders", "clip"},
        {"diffusion_models", "diffusion_models", "unet"},
        {"unet", "diffusion_models", "unet"},
    };
    const char *dirs[2] = {folder, NULL};
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        if (strcmp(folder, aliases[i][0]) == 0) {
            dirs[0] = aliases[i][1];
            dirs[1] = aliases[i][2];
        }
    }
    for (int i = 0; i < 2 && dirs[i]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", models_dir, dirs[i]);
        scan_dir(l, path, "", MAX_DEPTH, model_exts);
    }
}

static void scan_folder(name_list_t *l, const char *folder, const kiln__env_t *env)
{
    const char *image_dir = NULL;
    if (strcmp(folder, "input") == 0)
        image_dir = env->input_dir;
    else if (strcmp(folder, "output") == 0)
        image_dir = env->output_dir;
    else if (strcmp(folder, "temp") == 0)
        image_dir = env->temp_dir;
    else if (env->models_dir)
        scan_models(l, env->models_dir, folder);
    if (image_dir)
        scan_dir(l, image_dir, "", 0, image_exts);
}

kiln__json_t *kiln__registry_combo_options(const kiln_input_def_t *in, const kiln__env_t *env)
{
    kiln__json_t *arr = kiln__json_new_array();
    if (!arr || !in)
        return arr;
    if (in->options) {
        for (size_t i = 0; in->options[i]; i++) {
            if (kiln__json_append(arr, kiln__json_new_string(in->options[i])) != 0)
                goto oom;
        }
        return arr;
    }
    if (!env || !kiln__registry_folder_name_ok(in->options_folder))
        return arr;
    name_list_t l = {0};
    scan_folder(&l, in->options_folder, env);
    if (l.n)
        qsort(l.v, l.n, sizeof *l.v, cmp_names);
    for (size_t i = 0; i < l.n && !l.failed; i++) {
        if (i > 0 && strcmp(l.v[i], l.v[i - 1]) == 0)
            continue;
        if (kiln__json_append(arr, kiln__json_new_string(l.v[i])) != 0)
            l.failed = true;
    }
    bool failed = l.failed;
    names_free(&l);
    if (!failed)
        return arr;
oom:
    kiln__json_free(arr);
    return NULL;
}
