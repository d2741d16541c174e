/* The embedding API of kiln.h: engine lifetime (environment, registry, lanes, affinity,
 * cache), prompts (parse, build, validate), execution and its controls. Execution itself
 * lives in engine/sched; this file wires the parts together and turns internal results
 * into the strings the API hands out (allocated with kiln_malloc, freed with kiln_free). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/engine_int.h"
#ifdef KILN_HAVE_CUDA
#include "cuda/cuda_rt.h"
#endif
#include "util/alloc.h"
#include "util/log.h"

/* Copies a plain-malloc'd string into kiln_malloc memory (what API callers free) and
 * frees the original. NULL when s is NULL or on OOM. */
static char *api_string(char *s)
{
    if (!s)
        return NULL;
    char *out = kiln__alloc_strdup(s);
    free(s);
    return out;
}

/* Compact JSON of j as an API string; NULL on OOM. */
static char *api_dump(const kiln__json_t *j)
{
    return j ? api_string(kiln__json_dump(j, KILN_JSON_COMPACT, NULL)) : NULL;
}

/* ---- environment --------------------------------------------------------------------- */

/* mkdir -p. 0 or KILN_EIO (with the reason logged). */
static int make_dirs(const char *path)
{
    char *p = strdup(path);
    if (!p)
        return KILN_ENOMEM;
    int rc = 0;
    for (char *s = p + 1; rc == 0; s++) {
        bool end = *s == '\0';
        if (*s != '/' && !end)
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            kiln_logf(KILN_LOG_ERROR, "cannot create folder '%s': %s", p, strerror(errno));
            rc = KILN_EIO;
        }
        if (end)
            break;
        *s = '/';
    }
    free(p);
    return rc;
}

static char *join(const char *base, const char *leaf)
{
    size_t n = strlen(base) + strlen(leaf) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", base, leaf);
    return s;
}

static char *dir_or(const char *given, const char *base, const char *leaf)
{
    return given && *given ? strdup(given) : join(base, leaf);
}

static void env_free(kiln__env_t *env)
{
    free(env->base_dir);
    free(env->output_dir);
    free(env->input_dir);
    free(env->temp_dir);
    free(env->models_dir);
    memset(env, 0, sizeof *env);
}

/* Fills env from the options and creates missing folders. */
static int env_init(kiln__env_t *env, const kiln_engine_options_t *o)
{
    const char *base = o->base_directory && *o->base_directory ? o->base_directory : ".";
    env->base_dir = strdup(base);
    env->output_dir = dir_or(o->output_directory, base, "output");
    env->input_dir = dir_or(o->input_directory, base, "input");
    env->temp_dir = dir_or(o->temp_directory, base, "temp");
    env->models_dir = join(base, "models");
    env->disable_metadata = o->disable_metadata != 0;
    if (!env->base_dir || !env->output_dir || !env->input_dir || !env->temp_dir ||
        !env->models_dir)
        return KILN_ENOMEM;
    const char *dirs[] = {env->output_dir, env->input_dir, env->temp_dir, env->models_dir};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        int rc = make_dirs(dirs[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- engine -------------------------------------------------------------------------- */

/* The options as this library's struct, whatever struct_size the caller compiled with:
 * fields past it read as zero. */
static int read_options(const kiln_engine_options_t *opts, kiln_engine_options_t *o)
{
    memset(o, 0, sizeof *o);
    if (opts) {
        size_t n = opts->struct_size < sizeof *o ? opts->struct_size : sizeof *o;
        if (n < sizeof(uint32_t))
            return KILN_EINVAL;
        memcpy(o, opts, n);
    }
    o->struct_size = sizeof *o;
    if ((int)o->cache_mode < KILN_CACHE_CLASSIC || (int)o->cache_mode > KILN_CACHE_NONE ||
        o->cpu_lanes < 0)
        return KILN_EINVAL;
    return 0;
}

static int cpu_lane_count(int requested)
{
    if (requested > 0)
        return requested;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 2 ? (int)(cores > 256 ? 256 : cores) : 2;
}

/* Everything but the struct itself; each part may be missing (a failed kiln_engine_new). */
static void engine_destroy(kiln_engine_t *e)
{
    kiln__lanes_free(e->lanes);
    kiln__affinity_free(e->affinity);
    kiln__cache_free(e->cache);
    kiln__registry_free(e->reg);
    /* Last of the parts: the registry, cached values and workers may point into plugins. */
    kiln__plugins_close(e->plugins);
    env_free(&e->env);
    pthread_mutex_destroy(&e->exec_mu);
    if (e->log)
        kiln__log_set_sink(NULL, NULL);
    free(e);
}

/* Registry, lanes, affinity policy and cache. */
static int engine_parts(kiln_engine_t *e, const kiln_engine_options_t *o)
{
    char err[512] = "";
    e->reg = kiln__registry_new();
    if (!e->reg)
        return KILN_ENOMEM;
    int rc = kiln__registry_add_builtins(e->reg, err, sizeof err);
    if (rc != 0) {
        kiln_logf(KILN_LOG_ERROR, "built-in node packs: %s", err);
        return rc;
    }
    rc = kiln__plugins_load(e->reg, e->env.base_dir, o->plugin_dirs, o->no_default_plugins != 0,
                            &e->plugins);
    if (rc != 0)
        return rc;
    rc = kiln__lanes_new(cpu_lane_count(o->cpu_lanes), &e->lanes);
    if (rc != 0)
        return rc;
#ifdef KILN_HAVE_CUDA
    /* One lane per GPU, next to the CPU pool; none (and no error) without a GPU. */
    if (kiln__cuda_device_count() > 0) {
        rc = kiln__cuda_lanes_add(e->lanes, 1);
        if (rc < 0) {
            kiln_logf(KILN_LOG_ERROR, "CUDA lanes: %s", kiln_strerror(rc));
            return rc;
        }
    }
#endif
    rc = kiln__affinity_new(o->affinity, e->lanes, &e->affinity, err, sizeof err);
    if (rc != 0) {
        kiln_logf(KILN_LOG_ERROR, "affinity: %s", err);
        return rc;
    }
    e->cache = kiln__cache_new(o->cache_mode, o->cache_lru_size, o->cache_ram_budget);
    return e->cache ? 0 : KILN_ENOMEM;
}

int kiln_engine_new(const kiln_engine_options_t *opts, kiln_engine_t **out)
{
    if (!out)
        return KILN_EINVAL;
    *out = NULL;
    kiln_engine_options_t o;
    int rc = read_options(opts, &o);
    if (rc != 0)
        return rc;
    kiln_engine_t *e = calloc(1, sizeof *e);
    if (!e)
        return KILN_ENOMEM;
    pthread_mutex_init(&e->exec_mu, NULL);
    if (o.log) {
        /* The log sink is process-wide: the newest engine with a sink receives the lines. */
        e->log = o.log;
        e->log_ud = o.log_ud;
        kiln__log_set_sink(o.log, o.log_ud);
    }
    rc = env_init(&e->env, &o);
    if (rc == 0)
        rc = engine_parts(e, &o);
    if (rc != 0) {
        engine_destroy(e);
        return rc;
    }
    *out = e;
    return 0;
}

/* Refuses while a prompt executes and while prompts of this engine are alive (they
 * borrow its registry), so that nothing is left pointing into a freed engine. */
int kiln_engine_close(kiln_engine_t *e)
{
    if (!e)
        return KILN_EINVAL;
    if (atomic_load(&e->executing) > 0)
        return KILN_EBUSY;
    long live = atomic_load(&e->live_prompts);
    if (live > 0) {
        kiln_logf(KILN_LOG_ERROR, "kiln_engine_close: %ld prompt(s) not freed yet", live);
        return KILN_EBUSY;
    }
    engine_destroy(e);
    return 0;
}

int kiln_engine_add_pack(kiln_engine_t *e, const char *pack_name, kiln_plugin_init_fn init)
{
    if (!e || !pack_name || !init)
        return KILN_EINVAL;
    if (atomic_load(&e->executing) > 0)
        return KILN_EBUSY;
    char err[512] = "";
    int rc = kiln__registry_add_pack(e->reg, pack_name, init, err, sizeof err);
    if (rc != 0)
        kiln_logf(KILN_LOG_ERROR, "node pack '%s' not loaded: %s", pack_name,
                  *err ? err : kiln_strerror(rc));
    return rc;
}

int kiln_engine_object_info(kiln_engine_t *e, const char *class_type, char **json)
{
    if (!e || !json)
        return KILN_EINVAL;
    kiln__json_t *j = kiln__registry_object_info(e->reg, &e->env, class_type);
    *json = api_dump(j);
    kiln__json_free(j);
    return *json ? 0 : KILN_ENOMEM;
}

int kiln_engine_to_prompt(kiln_engine_t *e, const char *json, size_t len, char **prompt_json,
                          char **error)
{
    if (prompt_json)
        *prompt_json = NULL;
    if (error)
        *error = NULL;
    if (!e || !json || !prompt_json)
        return KILN_EINVAL;
    char err[512] = "";
    kiln__json_t *doc = NULL, *prompt = NULL;
    int rc = kiln__json_parse(json, len, &doc, err, sizeof err);
    if (rc == 0 && doc->type != KILN_JSON_OBJECT) {
        snprintf(err, sizeof err, "not a workflow or an API prompt (expected a JSON object)");
        rc = KILN_EINVAL;
    }
    if (rc == 0 && kiln__workflow_is_ui(doc))
        rc = kiln__workflow_to_prompt(doc, e->reg, &e->env, 0, &prompt, err, sizeof err);
    if (rc == 0) {
        *prompt_json = api_dump(prompt ? prompt : doc);
        rc = *prompt_json ? 0 : KILN_ENOMEM;
    }
    if (rc != 0 && error)
        *error = kiln__alloc_strdup(*err ? err : kiln_strerror(rc));
    kiln__json_free(prompt);
    kiln__json_free(doc);
    return rc;
}

/* ---- prompts ------------------------------------------------------------------------- */

/* ComfyUI's 400 body {"error": error, "node_errors": {}} (error consumed) as an API string. */
static char *error_body(kiln__json_t *error)
{
    kiln__json_t *body = kiln__json_new_object();
    if (!body || !error || kiln__json_set(body, "error", error) != 0) {
        if (!body)
            kiln__json_free(error);
        kiln__json_free(body);
        return NULL;
    }
    char *s = NULL;
    kiln__json_t *ne = kiln__json_new_object();
    if (ne && kiln__json_set(body, "node_errors", ne) == 0)
        s = api_dump(body);
    kiln__json_free(body);
    return s;
}

/* Parses and builds the graph; on failure *body is the 400 body (may be NULL on OOM). */
static int build_graph(kiln_engine_t *e, const char *json, size_t len, kiln__graph_t **g,
                       char **body)
{
    char err[512] = "";
    kiln__json_t *doc = NULL, *error = NULL;
    int rc = kiln__json_parse(json, len, &doc, err, sizeof err);
    if (rc == KILN_EPARSE) {
        *body = error_body(kiln__graph_error("invalid_prompt", "Invalid prompt: malformed JSON",
                                             err));
        return rc;
    }
    if (rc != 0)
        return rc;
    rc = kiln__graph_new(doc, e->reg, g, &error);
    if (rc == KILN_EVALIDATION)
        *body = error_body(error);
    else
        kiln__json_free(error);
    return rc;
}

static int prompt_texts(kiln_prompt_t *p, bool metadata)
{
    p->json = kiln__json_dump(p->graph->prompt, KILN_JSON_COMPACT, NULL);
    if (metadata)
        p->python_json = kiln__json_dump(p->graph->prompt, KILN_JSON_PYTHON, NULL);
    return p->json && (!metadata || p->python_json) ? 0 : KILN_ENOMEM;
}

int kiln_prompt_new(kiln_engine_t *e, const char *prompt_json, size_t len,
                    const char *const *partial_targets, size_t n_targets, kiln_prompt_t **p,
                    char **node_errors)
{
    if (p)
        *p = NULL;
    if (node_errors)
        *node_errors = NULL;
    if (!e || !prompt_json || !p || (n_targets && !partial_targets))
        return KILN_EINVAL;
    kiln__graph_t *g = NULL;
    char *body = NULL;
    int rc = build_graph(e, prompt_json, len, &g, &body);
    kiln__json_t *ne = NULL, *fail = NULL;
    if (rc == 0)
        rc = kiln__graph_validate(g, e->reg, &e->env, partial_targets, n_targets, &ne, &fail);
    if (rc == KILN_EVALIDATION && fail)
        body = api_dump(fail);
    kiln_prompt_t *np = rc == 0 ? calloc(1, sizeof *np) : NULL;
    if (rc == 0 && np) {
        np->engine = e;
        np->graph = g;
        g = NULL;
        rc = prompt_texts(np, !e->env.disable_metadata);
        body = rc == 0 ? api_dump(ne) : NULL;
    } else if (rc == 0) {
        rc = KILN_ENOMEM;
    }
    kiln__json_free(ne);
    kiln__json_free(fail);
    kiln__graph_free(g);
    if (rc == 0) {
        atomic_fetch_add(&e->live_prompts, 1);
        *p = np;
    } else if (np) {
        np->engine = NULL; /* never counted */
        kiln_prompt_free(np);
    }
    if (node_errors)
        *node_errors = body;
    else
        kiln_free(body);
    return rc;
}

const char *kiln_prompt_json(const kiln_prompt_t *p)
{
    return p ? p->json : NULL;
}

size_t kiln_prompt_output_count(const kiln_prompt_t *p)
{
    return p ? p->graph->n_outputs : 0;
}

const char *kiln_prompt_output_id(const kiln_prompt_t *p, size_t i)
{
    if (!p || i >= p->graph->n_outputs)
        return NULL;
    return p->graph->nodes[p->graph->outputs[i]].id;
}

int kiln_prompt_free(kiln_prompt_t *p)
{
    if (!p)
        return 0;
    if (p->engine)
        atomic_fetch_sub(&p->engine->live_prompts, 1);
    kiln__graph_free(p->graph);
    free(p->json);
    free(p->python_json);
    free(p);
    return 0;
}

/* ---- execution ----------------------------------------------------------------------- */

int kiln_engine_execute(kiln_engine_t *e, kiln_prompt_t *p, const char *prompt_id,
                        const char *extra_data_json, kiln_event_cb cb, void *ud)
{
    return kiln__exec_prompt(e, p, prompt_id, extra_data_json, cb, ud);
}

int kiln_engine_interrupt(kiln_engine_t *e)
{
    if (!e)
        return KILN_EINVAL;
    /* The flag is reset when the next prompt starts, so setting it while idle is inert. */
    atomic_store(&e->interrupt, true);
    return 0;
}

int kiln_engine_clear_cache(kiln_engine_t *e)
{
    if (!e)
        return KILN_EINVAL;
    kiln__cache_clear(e->cache);
    return 0;
}

uint64_t kiln_engine_stat(kiln_engine_t *e, kiln_stat_t which)
{
    if (!e)
        return 0;
    switch (which) {
    case KILN_STAT_NODES_EXECUTED:
        return atomic_load(&e->n_executed);
    case KILN_STAT_NODES_CACHED:
        return atomic_load(&e->n_cached);
    case KILN_STAT_CACHE_ENTRIES:
        return kiln__cache_entries(e->cache);
    case KILN_STAT_CACHE_BYTES:
        return kiln__cache_bytes(e->cache);
    case KILN_STAT_CACHE_EVICTIONS:
        return kiln__cache_evictions(e->cache);
    }
    return 0;
}
