/* The node registry: packs register their node definitions once, at engine start; the
 * registry keeps normalized copies (registry_check.c), finds a class by name in O(1) and
 * lists classes in registration order.
 *
 * python_module, as /object_info shows it, follows where ComfyUI keeps the same kind of
 * node: the built-in pack "core" is "nodes" (ComfyUI's nodes.py), any other built-in pack
 * <p> is "comfy_extras.nodes_<p>", and an external pack <p> is "custom_nodes.<p>". */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/builtin_packs.h"
#include "registry/registry_int.h"
#include "util/log.h"
#include "util/strmap.h"

struct kiln__registry {
    kiln__strmap_t *by_name;        /* owned: class name -> kiln__class_rec_t * (borrowed) */
    kiln__class_rec_t **classes;    /* owned, with the records: registration order */
    size_t n_classes, cap_classes;
    kiln__pack_rec_t **packs;       /* owned, with the records */
    size_t n_packs, cap_packs;
};

kiln__registry_t *kiln__registry_new(void)
{
    kiln__registry_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->by_name = kiln__strmap_new();
    if (!r->by_name) {
        free(r);
        return NULL;
    }
    return r;
}

static void pack_free(kiln__pack_rec_t *p)
{
    if (p) {
        free(p->name);
        free(p->python_module);
        free(p);
    }
}

void kiln__registry_free(kiln__registry_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_classes; i++)
        kiln__registry_class_free(r->classes[i]);
    for (size_t i = 0; i < r->n_packs; i++)
        pack_free(r->packs[i]);
    free(r->classes);
    free(r->packs);
    kiln__strmap_free(r->by_name);
    free(r);
}

static char *str_dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    return d ? memcpy(d, s, n) : NULL;
}

static kiln__pack_rec_t *pack_new(const char *name, const char *folder, bool builtin)
{
    kiln__pack_rec_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->builtin = builtin;
    p->name = str_dup(name);
    if (builtin && strcmp(folder, "core") == 0) {
        p->python_module = str_dup("nodes");
    } else {
        const char *prefix = builtin ? "comfy_extras.nodes_" : "custom_nodes.";
        const char *suffix = builtin ? folder : name;
        size_t n = strlen(prefix) + strlen(suffix) + 1;
        p->python_module = malloc(n);
        if (p->python_module)
            snprintf(p->python_module, n, "%s%s", prefix, suffix);
    }
    if (!p->name || !p->python_module) {
        pack_free(p);
        return NULL;
    }
    return p;
}

/* Grows *arr (of element size elem) to hold at least need entries. */
static int reserve(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    void *grown = realloc(*arr, ncap * elem);
    if (!grown)
        return KILN_ENOMEM;
    *arr = grown;
    *cap = ncap;
    return 0;
}

static int failf(char *err, size_t err_size, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int failf(char *err, size_t err_size, int rc, const char *fmt, ...)
{
    if (err && err_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_size, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Most nodes one pack may declare; a list without its NULL terminator fails here. */
#define MAX_PACK_NODES 65536

/* The classes of one pack while they are checked, before any of them is registered. */
typedef struct staged {
    kiln__class_rec_t **recs;       /* owned until committed */
    size_t n, cap;
    kiln__strmap_t *names;          /* owned: names seen in this pack */
} staged_t;

static void staged_free(staged_t *st, bool free_recs)
{
    for (size_t i = 0; free_recs && i < st->n; i++)
        kiln__registry_class_free(st->recs[i]);
    free(st->recs);
    kiln__strmap_free(st->names);
}

/* Normalizes and checks every node of the pack, including name clashes with registered
 * classes and within the pack. */
static int stage_nodes(const kiln__registry_t *r, const kiln_plugin_t *plug, const char *pack,
                       staged_t *st, char *err, size_t err_size)
{
    char why[512];
    st->names = kiln__strmap_new();
    if (!st->names)
        return failf(err, err_size, KILN_ENOMEM, "pack '%s': out of memory", pack);
    for (size_t i = 0; plug->nodes && plug->nodes[i]; i++) {
        if (i >= MAX_PACK_NODES)
            return failf(err, err_size, KILN_EINVAL, "pack '%s': node list has no terminator",
                         pack);
        kiln__class_rec_t *rec;
        int rc = kiln__registry_class_new(plug->nodes[i], i, &rec, why, sizeof why);
        if (rc != 0)
            return failf(err, err_size, rc, "pack '%s': %s", pack, why);
        if (reserve((void **)&st->recs, &st->cap, st->n + 1, sizeof *st->recs) != 0) {
            kiln__registry_class_free(rec);
            return failf(err, err_size, KILN_ENOMEM, "pack '%s': out of memory", pack);
        }
        st->recs[st->n++] = rec;
        const char *name = rec->cls.def.name;
        const kiln__class_rec_t *old = kiln__strmap_get(r->by_name, name);
        if (old)
            return failf(err, err_size, KILN_EEXISTS, "pack '%s': node '%s': duplicate node "
                         "name (already registered by pack '%s')", pack, name, old->pack->name);
        if (kiln__strmap_has(st->names, name))
            return failf(err, err_size, KILN_EEXISTS, "pack '%s': node '%s': duplicate node "
                         "name", pack, name);
        if (kiln__strmap_put(st->names, name, rec) != 0)
            return failf(err, err_size, KILN_ENOMEM, "pack '%s': out of memory", pack);
    }
    return 0;
}

/* Registers a staged pack: every class or, when memory runs out, none. */
static int commit(kiln__registry_t *r, kiln__pack_rec_t *pack, staged_t *st)
{
    if (reserve((void **)&r->classes, &r->cap_classes, r->n_classes + st->n,
                sizeof *r->classes) != 0 ||
        reserve((void **)&r->packs, &r->cap_packs, r->n_packs + 1, sizeof *r->packs) != 0)
        return KILN_ENOMEM;
    for (size_t i = 0; i < st->n; i++) {
        if (kiln__strmap_put(r->by_name, st->recs[i]->cls.def.name, st->recs[i]) != 0) {
            while (i-- > 0)
                kiln__strmap_remove(r->by_name, st->recs[i]->cls.def.name);
            return KILN_ENOMEM;
        }
    }
    for (size_t i = 0; i < st->n; i++) {
        st->recs[i]->pack = pack;
        st->recs[i]->cls.pack = pack->name;
        r->classes[r->n_classes++] = st->recs[i];
    }
    r->packs[r->n_packs++] = pack;
    return 0;
}

/* Calls the pack's init and registers its nodes. `folder` names a built-in pack's folder
 * (for python_module); NULL for external packs. */
static int add_pack(kiln__registry_t *r, const char *pack_name, const char *folder,
                    kiln_plugin_init_fn init, char *err, size_t err_size)
{
    const char *label = pack_name && pack_name[0] ? pack_name : "?";
    if (!r || !init)
        return failf(err, err_size, KILN_EINVAL, "pack '%s': no init function", label);
    kiln_plugin_t plug = {.struct_size = sizeof plug};
    int rc = init(kiln__host_api(), &plug);
    if (rc == KILN_EABI)
        return failf(err, err_size, KILN_EABI, "pack '%s': incompatible plugin ABI (this host "
                     "has ABI %d.%d)", label, KILN_ABI_MAJOR, KILN_ABI_MINOR);
    if (rc != 0)
        return failf(err, err_size, rc == KILN_ENOMEM ? KILN_ENOMEM : KILN_EINVAL,
                     "pack '%s': init failed: %s (%d)", label, kiln_strerror(rc), rc);
    /* node.h: the name the pack gives itself is the one /object_info shows. */
    const char *name = plug.name && plug.name[0] ? plug.name : pack_name;
    if (!name || !name[0])
        return failf(err, err_size, KILN_EINVAL, "pack '%s': missing pack name", label);
    for (size_t i = 0; i < r->n_packs; i++)
        if (strcmp(r->packs[i]->name, name) == 0)
            return failf(err, err_size, KILN_EEXISTS, "pack '%s': a pack with this name is "
                         "already registered", name);
    staged_t st = {0};
    rc = stage_nodes(r, &plug, name, &st, err, err_size);
    kiln__pack_rec_t *pack = rc == 0 ? pack_new(name, folder, folder != NULL) : NULL;
    if (rc == 0 && (!pack || commit(r, pack, &st) != 0)) {
        pack_free(pack);
        rc = failf(err, err_size, KILN_ENOMEM, "pack '%s': out of memory", name);
    }
    staged_free(&st, rc != 0);
    return rc;
}

int kiln__registry_add_pack(kiln__registry_t *r, const char *pack_name, kiln_plugin_init_fn init,
                            char *err, size_t err_size)
{
    return add_pack(r, pack_name, NULL, init, err, err_size);
}

/* A built-in pack that fails is logged (one line) and skipped, and the engine serves with
 * the others, as it does for a bad external pack. err receives the first failure's
 * message ("" when none). Returns 0, or KILN_ENOMEM when memory ran out, which leaves the
 * engine in no state to serve. */
int kiln__registry_add_builtins(kiln__registry_t *r, char *err, size_t err_size)
{
    if (err && err_size)
        err[0] = '\0';
    bool reported = false;
    for (const kiln__builtin_pack_t *b = kiln__builtin_packs; b->name; b++) {
        char msg[512];
        int rc = add_pack(r, b->name, b->name, b->init, msg, sizeof msg);
        if (rc == 0)
            continue;
        kiln_logf(KILN_LOG_ERROR, "%s; the pack is skipped", msg);
        if (!reported && err && err_size)
            snprintf(err, err_size, "%s", msg);
        reported = true;
        if (rc == KILN_ENOMEM)
            return rc;
    }
    return 0;
}

const kiln__node_class_t *kiln__registry_find(const kiln__registry_t *r, const char *name)
{
    if (!r || !name)
        return NULL;
    const kiln__class_rec_t *rec = kiln__strmap_get(r->by_name, name);
    return rec ? &rec->cls : NULL;
}

size_t kiln__registry_count(const kiln__registry_t *r)
{
    return r ? r->n_classes : 0;
}

const kiln__node_class_t *kiln__registry_at(const kiln__registry_t *r, size_t i)
{
    return r && i < r->n_classes ? &r->classes[i]->cls : NULL;
}

const kiln_input_def_t *kiln__node_class_input(const kiln__node_class_t *cls, const char *name)
{
    if (!cls || !name)
        return NULL;
    /* Classes have a handful of inputs; a scan beats hashing here. */
    for (size_t i = 0; i < cls->n_inputs; i++)
        if (strcmp(cls->inputs[i].name, name) == 0)
            return &cls->inputs[i];
    return NULL;
}

bool kiln__input_is_widget(const kiln_input_def_t *in)
{
    static const char *const widget_types[] = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"};
    if (!in || !in->type || (in->flags & KILN_INPUT_FORCE_INPUT))
        return false;
    for (size_t i = 0; i < sizeof widget_types / sizeof widget_types[0]; i++)
        if (strcmp(in->type, widget_types[i]) == 0)
            return true;
    return false;
}

const char *kiln__registry_python_module(const kiln__node_class_t *cls)
{
    const kiln__class_rec_t *rec = (const kiln__class_rec_t *)cls;
    return rec->pack ? rec->pack->python_module : "custom_nodes";
}
