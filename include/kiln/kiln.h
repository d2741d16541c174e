/* kiln's embedding API: create an engine, turn workflow JSON into a validated prompt,
 * execute it with ComfyUI-shaped progress events, interrupt, inspect node definitions.
 *
 *   kiln_engine_options_t opt = KILN_ENGINE_OPTIONS_INIT;
 *   opt.base_directory = ".";
 *   kiln_engine_t *eng;
 *   if (kiln_engine_new(&opt, &eng) != 0) ...
 *   kiln_prompt_t *p; char *errors;
 *   if (kiln_prompt_new(eng, json, len, NULL, 0, &p, &errors) == KILN_EVALIDATION)
 *       puts(errors);                       // ComfyUI's 400 body
 *   kiln_engine_execute(eng, p, "my-prompt-id", "{}", on_event, ud);
 *   kiln_prompt_free(p);
 *   kiln_engine_close(eng);
 *
 * Strings returned through char ** are malloc'd and freed by the caller with kiln_free. */
#ifndef KILN_KILN_H
#define KILN_KILN_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/error.h"
#include "kiln/export.h"
#include "kiln/node.h"
#include "kiln/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_engine kiln_engine_t;
typedef struct kiln_prompt kiln_prompt_t;

typedef enum kiln_cache_mode {
    KILN_CACHE_CLASSIC = 0, /* keep only what the newest prompt can reuse (ComfyUI default) */
    KILN_CACHE_LRU = 1,     /* keep up to cache_lru_size entries across prompts */
    KILN_CACHE_NONE = 2     /* drop results as soon as their consumers have run */
} kiln_cache_mode_t;

typedef struct kiln_engine_options {
    uint32_t struct_size;           /* sizeof(kiln_engine_options_t) */
    const char *base_directory;     /* (optional) default ".": models/, input/, output/, temp/ */
    const char *output_directory;   /* (optional) default <base>/output */
    const char *input_directory;    /* (optional) default <base>/input */
    const char *temp_directory;     /* (optional) default <base>/temp */
    kiln_cache_mode_t cache_mode;
    size_t cache_lru_size;          /* KILN_CACHE_LRU: entries kept */
    size_t cache_ram_budget;        /* bytes of cached host memory; 0 = no byte limit */
    int cpu_lanes;                  /* CPU worker lanes; 0 = one per core (at least 2) */
    const char *affinity;           /* (optional) "single" (default) or a rules file path */
    int disable_metadata;           /* no PNG text chunks */
    /* (optional) log sink; default: stderr. Called from any engine thread. */
    void (*log)(void *ud, kiln_log_level_t level, const char *msg);
    void *log_ud;
    /* Plugin packs: every *.so in <base>/plugins, then in each of these folders. */
    const char *const *plugin_dirs; /* (optional) NULL-terminated extra plugin folders */
    int no_default_plugins;         /* skip <base>/plugins */
} kiln_engine_options_t;

#define KILN_ENGINE_OPTIONS_INIT {.struct_size = sizeof(kiln_engine_options_t)}

/* Creates an engine: registers the built-in packs, starts the lanes' worker threads,
 * creates missing output/input/temp folders. Returns 0 or a KILN_E* code (a message goes
 * to the log). */
KILN_API int kiln_engine_new(const kiln_engine_options_t *opts, kiln_engine_t **out);

/* Stops the workers and frees everything. KILN_EBUSY while a prompt executes. */
KILN_API int kiln_engine_close(kiln_engine_t *e);

/* Frees a string or buffer the API returned. */
KILN_API int kiln_free(void *p);

/* Registers an extra node pack (the plugin loader and tests use this). Returns 0 or an
 * error with the reason in the log. */
KILN_API int kiln_engine_add_pack(kiln_engine_t *e, const char *pack_name,
                                  kiln_plugin_init_fn init);

/* /object_info JSON for every class (class_type NULL) or one ("{}" when unknown). */
KILN_API int kiln_engine_object_info(kiln_engine_t *e, const char *class_type, char **json);

/* Converts a document that may be a UI-format workflow or an API prompt into API-prompt
 * JSON (an API prompt passes through). On failure returns KILN_EPARSE/KILN_EINVAL and
 * *error holds a message. */
KILN_API int kiln_engine_to_prompt(kiln_engine_t *e, const char *json, size_t len,
                                   char **prompt_json, char **error);

/* Parses and validates an API prompt (the "prompt" of POST /prompt). On success returns 0
 * with *p, and *node_errors (if non-NULL) receives the node_errors JSON of outputs that
 * failed while others passed ("{}" when none). On a validation failure returns
 * KILN_EVALIDATION with *node_errors receiving ComfyUI's complete 400 body
 * {"error": ..., "node_errors": ...}; on malformed JSON KILN_EPARSE with a 400 body too. */
KILN_API int kiln_prompt_new(kiln_engine_t *e, const char *prompt_json, size_t len,
                             const char *const *partial_targets, size_t n_targets,
                             kiln_prompt_t **p, char **node_errors);

/* The validated prompt (coerced constants) as compact JSON (borrowed: lives with p). */
KILN_API const char *kiln_prompt_json(const kiln_prompt_t *p);

/* Ids of the output nodes that will execute (borrowed). */
KILN_API size_t kiln_prompt_output_count(const kiln_prompt_t *p);
KILN_API const char *kiln_prompt_output_id(const kiln_prompt_t *p, size_t i);

KILN_API int kiln_prompt_free(kiln_prompt_t *p);

typedef enum kiln_event_type {
    KILN_EVENT_EXECUTION_START = 0,   /* data {prompt_id, timestamp} */
    KILN_EVENT_EXECUTION_CACHED,      /* data {nodes: [ids], prompt_id, timestamp} */
    KILN_EVENT_EXECUTING,             /* data {node, display_node, prompt_id} */
    KILN_EVENT_PROGRESS,              /* data {value, max, prompt_id, node} */
    KILN_EVENT_EXECUTED,              /* data {node, display_node, output, prompt_id} */
    KILN_EVENT_EXECUTION_SUCCESS,     /* data {prompt_id, timestamp} */
    KILN_EVENT_EXECUTION_ERROR,       /* data {prompt_id, node_id, node_type, executed,
                                       *       exception_message, exception_type, traceback,
                                       *       current_inputs, current_outputs, timestamp} */
    KILN_EVENT_EXECUTION_INTERRUPTED  /* data {prompt_id, node_id, node_type, executed, timestamp} */
} kiln_event_type_t;

/* One execution event, in the shape the server forwards as a ComfyUI WebSocket message
 * {"type": name, "data": <data_json>}. All pointers are borrowed for the callback only. */
typedef struct kiln_event {
    kiln_event_type_t type;
    const char *name;         /* "execution_start", "executing", ... */
    const char *data_json;    /* the message's data object, compact JSON */
    const char *prompt_id;
    const char *node;         /* EXECUTING, PROGRESS, EXECUTED, ERROR, INTERRUPTED: node id */
    const char *node_type;    /* class_type of node, when node is set */
    uint64_t value, max;      /* PROGRESS */
    size_t n_cached;          /* EXECUTION_CACHED: how many nodes */
} kiln_event_t;

typedef void (*kiln_event_cb)(void *ud, const kiln_event_t *ev);

/* Executes a validated prompt. Nodes run on the engine's lanes, independent branches
 * concurrently; results are cached under their signatures for later prompts. extra_data
 * is POST /prompt's extra_data object (client_id, extra_pnginfo) or NULL. Events arrive
 * one at a time, in order, from engine threads. Returns 0 on success, KILN_EINTERRUPTED,
 * or KILN_ENODE when a node failed (an EXECUTION_ERROR event carried the details). One
 * prompt executes at a time per engine; a concurrent call waits. */
KILN_API int kiln_engine_execute(kiln_engine_t *e, kiln_prompt_t *p, const char *prompt_id,
                                 const char *extra_data_json, kiln_event_cb cb, void *ud);

/* Interrupts the executing prompt at its next node or progress boundary; a no-op when
 * idle. Any thread. */
KILN_API int kiln_engine_interrupt(kiln_engine_t *e);

/* Drops every cached result (POST /free). Any thread; waits for a running prompt's node
 * boundaries only, never for the whole prompt. */
KILN_API int kiln_engine_clear_cache(kiln_engine_t *e);

typedef enum kiln_stat {
    KILN_STAT_NODES_EXECUTED = 0,  /* node execute() calls since the engine started */
    KILN_STAT_NODES_CACHED,        /* nodes satisfied from the cache */
    KILN_STAT_CACHE_ENTRIES,       /* entries in the output cache now */
    KILN_STAT_CACHE_BYTES,         /* bytes held by the output cache now */
    KILN_STAT_CACHE_EVICTIONS      /* entries evicted so far */
} kiln_stat_t;

/* A counter of the engine (tests and metrics). */
KILN_API uint64_t kiln_engine_stat(kiln_engine_t *e, kiln_stat_t which);

#ifdef __cplusplus
}
#endif
#endif
