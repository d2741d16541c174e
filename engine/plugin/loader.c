/* The plugin loader: scans the plugin folders for *.so files, opens each with
 * dlopen(RTLD_NOW | RTLD_LOCAL) so that unresolved symbols fail here rather than in the
 * middle of a prompt and so that packs cannot bind each other's symbols, and hands the
 * pack's kiln_plugin_init to the registry, which checks every definition all-or-nothing.
 * Every outcome is one log line naming the file; no outcome stops the engine. */
#include "plugin/loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


/* One opened library. */
typedef struct lib {
    void *handle;               /* owned: dlopen handle, closed by kiln__plugins_close */
    char *path;                 /* owned: the path it was opened by */
} lib_t;

struct kiln__plugins {
    lib_t *libs;                /* owned: libraries whose init ran, load order */
    size_t n_libs, cap_libs;
    char **seen;                /* owned: real paths of every file tried, for dedup */
    size_t n_seen, cap_seen;
    size_t n_packs;             /* packs that registered */
};

/* Grows *arr (elements of size elem) to hold need entries. */
static int reserve(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 8;
    while (ncap < need)
        ncap *= 2;
    void *grown = realloc(*arr, ncap * elem);
    if (!grown)
        return KILN_ENOMEM;
    *arr = grown;
    *cap = ncap;
    return 0;
}

/* Logs "plugin '<path>': refused: <why>" at error level. */
static void refuse(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void refuse(const char *path, const char *fmt, ...)
{
    char why[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    kiln_logf(KILN_LOG_ERROR, "plugin '%s': refused: %s", path, why);
}

/* The file name of path without its directory and its ".so" suffix: the pack name the
 * registry uses when the pack does not name itself. */
static void file_stem(const char *path, char *out, size_t out_size)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 3 && strcmp(base + n - 3, ".so") == 0)
        n -= 3;
    snprintf(out, out_size, "%.*s", (int)n, base);
}

/* Keeps an opened library until close; on OOM closes it (its init has not run yet). */
static int keep(kiln__plugins_t *p, void *handle, const char *path)
{
    char *copy = strdup(path);
    if (!copy || reserve((void **)&p->libs, &p->cap_libs, p->n_libs + 1, sizeof *p->libs)) {
        free(copy);
        dlclose(handle);
        return KILN_ENOMEM;
    }
    p->libs[p->n_libs++] = (lib_t){.handle = handle, .path = copy};
    return 0;
}

/* The pack's declared ABI from the optional kiln_plugin_abi symbol: 0 when it may be
 * called (no tag, or the same major), else KILN_EABI after logging the refusal. */
static int check_abi_tag(void *handle, const char *path)
{
    const uint32_t *tag = dlsym(handle, KILN__PLUGIN_ABI_SYMBOL);
    if (!tag)
        return 0;
    unsigned major = *tag >> 16, minor = *tag & 0xffffu;
    if (major == KILN_ABI_MAJOR)
        return 0;
    refuse(path, "built for ABI major %u (ABI %u.%u), kiln has %d (ABI %d.%d)", major, major,
           minor, KILN_ABI_MAJOR, KILN_ABI_MAJOR, KILN_ABI_MINOR);
    return KILN_EABI;
}

/* Registers the pack of an opened library and logs the outcome. The library is kept
 * whatever the registry said: its init ran, so the process may hold pointers into it. */
static int register_pack(kiln__plugins_t *p, kiln__registry_t *reg, void *handle,
                         kiln_plugin_init_fn init, const char *path)
{
    int rc = keep(p, handle, path);
    if (rc != 0)
        return rc;
    char stem[256], err[512] = "";
    file_stem(path, stem, sizeof stem);
    size_t before = kiln__registry_count(reg);
    rc = kiln__registry_add_pack(reg, stem, init, err, sizeof err);
    if (rc == KILN_EABI) {
        refuse(path, "built for another ABI major: its init refused kiln's ABI %d.%d",
               KILN_ABI_MAJOR, KILN_ABI_MINOR);
    } else if (rc != 0) {
        refuse(path, "%s", *err ? err : kiln_strerror(rc));
    } else {
        size_t n = kiln__registry_count(reg) - before;
        const kiln__node_class_t *first = kiln__registry_at(reg, before);
        p->n_packs++;
        kiln_logf(KILN_LOG_INFO, "plugin '%s': loaded pack '%s' with %zu node%s", path,
                  first ? first->pack : stem, n, n == 1 ? "" : "s");
    }
    /* Even KILN_ENOMEM stays here: a pack's init may return it for reasons of its own,
     * and no pack may keep the engine from starting. */
    return 0;
}

/* Opens one library and registers its pack. 0, or KILN_ENOMEM when the loader's own
 * bookkeeping ran out of memory. */
static int load_one(kiln__plugins_t *p, kiln__registry_t *reg, const char *path)
{
    dlerror();
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        refuse(path, "cannot load: %s", why ? why : "unknown dlopen error");
        return 0;
    }
    void *sym = dlsym(handle, "kiln_plugin_init");
    if (!sym) {
        refuse(path, "missing entry point kiln_plugin_init (is it exported with KILN_API?)");
        dlclose(handle);
        return 0;
    }
    if (check_abi_tag(handle, path) != 0) {
        dlclose(handle);
        return 0;
    }
    kiln_plugin_init_fn init;
    memcpy(&init, &sym, sizeof init); /* POSIX: a data pointer from dlsym names the function */
    return register_pack(p, reg, handle, init, path);
}

/* True when real was tried before; else remembers it (taking ownership). On OOM frees
 * real and reports it as seen, so that the file is skipped rather than loaded twice. */
static bool seen_before(kiln__plugins_t *p, char *real, int *rc)
{
    for (size_t i = 0; i < p->n_seen; i++) {
        if (strcmp(p->seen[i], real) == 0) {
            free(real);
            return true;
        }
    }
    if (reserve((void **)&p->seen, &p->cap_seen, p->n_seen + 1, sizeof *p->seen) != 0) {
        free(real);
        *rc = KILN_ENOMEM;
        return true;
    }
    p->seen[p->n_seen++] = real;
    return false;
}

static bool is_plugin_name(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && n > 3 && strcmp(name + n - 3, ".so") == 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.so names of dir, sorted (caller frees each and the array). 0, KILN_ENOMEM, or
 * KILN_EIO when dir cannot be opened (*err_no then holds the reason). */
static int list_dir(const char *dir, char ***names, size_t *n, int *err_no)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        *err_no = errno;
        return KILN_EIO;
    }
    size_t cap = 0;
    int rc = 0;
    struct dirent *ent;
    while (rc == 0 && (ent = readdir(d)) != NULL) {
        if (!is_plugin_name(ent->d_name))
            continue;
        char *copy = strdup(ent->d_name);
        if (!copy || reserve((void **)names, &cap, *n + 1, sizeof **names) != 0) {
            free(copy);
            rc = KILN_ENOMEM;
            break;
        }
        (*names)[(*n)++] = copy;
    }
    closedir(d);
    if (*n > 1)
        qsort(*names, *n, sizeof **names, cmp_names);
    return rc;
}

/* Loads every plugin of one folder. `required` folders (given explicitly) warn when they
 * cannot be read; the default folder may simply not exist. */
static int load_dir(kiln__plugins_t *p, kiln__registry_t *reg, const char *dir, bool required)
{
    char **names;
    size_t n;
    int err_no = 0;
    int rc = list_dir(dir, &names, &n, &err_no);
    if (rc == KILN_EIO) {
        if (required || err_no != ENOENT)
            kiln_logf(KILN_LOG_WARN, "plugin folder '%s': cannot read it: %s", dir,
                      strerror(err_no));
        return 0;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(len);
        if (!path) {
            rc = KILN_ENOMEM;
            break;
        }
        snprintf(path, len, "%s/%s", dir, names[i]);
        struct stat st;
        char *real = stat(path, &st) == 0 && S_ISREG(st.st_mode) ? realpath(path, NULL) : NULL;
        if (real && !seen_before(p, real, &rc))
            rc = load_one(p, reg, path);
        free(path);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

int kiln__plugins_load(kiln__registry_t *reg, const char *base_dir,
                       const char *const *extra_dirs, bool no_default, kiln__plugins_t **out)
{
    if (out)
        *out = NULL;
    if (!reg || !out)
        return KILN_EINVAL;
    kiln__plugins_t *p = calloc(1, sizeof *p);
    if (!p)
        return KILN_ENOMEM;
    int rc = 0;
    if (!no_default) {
        const char *base = base_dir && *base_dir ? base_dir : ".";
        size_t len = strlen(base) + sizeof "/plugins";
        char *dir = malloc(len);
        if (dir) {
            snprintf(dir, len, "%s/plugins", base);
            rc = load_dir(p, reg, dir, false);
        } else {
            rc = KILN_ENOMEM;
        }
        free(dir);
    }
    for (size_t i = 0; rc == 0 && extra_dirs && extra_dirs[i]; i++)
        if (extra_dirs[i][0])
            rc = load_dir(p, reg, extra_dirs[i], true);
    /* Also on failure: packs registered before memory ran out point into libraries of p,
     * which must outlive the registry. */
    *out = p;
    return rc;
}

size_t kiln__plugins_count(const kiln__plugins_t *p)
{
    return p ? p->n_packs : 0;
}

void kiln__plugins_close(kiln__plugins_t *p)
{
    if (!p)
        return;
    /* Reverse load order, as a library loaded later may (in principle) use an earlier one. */
    for (size_t i = p->n_libs; i-- > 0;) {
        dlclose(p->libs[i].handle);
        free(p->libs[i].path);
    }
    for (size_t i = 0; i < p->n_seen; i++)
        free(p->seen[i]);
    free(p->libs);
    free(p->seen);
    free(p);
}
