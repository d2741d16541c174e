/* The node ABI: how a node pack (built-in or a plugin .so) declares nodes to kiln.
 *
 * A pack exports one function, kiln_plugin_init(api, out). It receives the host's function
 * table and fills `out` with its name and a NULL-terminated list of node definitions.
 * Definitions are static tables; the host validates them at registration and renders
 * /object_info from them. A pack never links against libkiln: every kiln_* call below goes
 * through the table, via inline wrappers that this header defines when KILN_PLUGIN is set.
 *
 *   #define KILN_PLUGIN 1
 *   #include <kiln/node.h>
 *   KILN_PLUGIN_DEFINE_HOST;                       // in exactly one file of the pack
 *
 *   static int invert_execute(kiln_call_t *call)
 *   {
 *       kiln_tensor_t *in = kiln_value_get_tensor(kiln_call_input(call, "image"));
 *       ...
 *       return kiln_call_set_output(call, 0, kiln_value_new_tensor("IMAGE", out));
 *   }
 *   static const kiln_input_def_t invert_inputs[] = {
 *       {KILN_INPUT_DEF_INIT, .name = "image", .type = "IMAGE"},
 *       {0}};
 *   static const kiln_output_def_t invert_outputs[] = {
 *       {KILN_OUTPUT_DEF_INIT, .type = "IMAGE"}, {0}};
 *   static const kiln_node_def_t invert = {
 *       KILN_NODE_DEF_INIT, .name = "ImageInvert", .category = "image",
 *       .inputs = invert_inputs, .outputs = invert_outputs, .execute = invert_execute};
 *   static const kiln_node_def_t *const nodes[] = {&invert, NULL};
 *
 *   int kiln_plugin_init(const kiln_host_api_t *api, kiln_plugin_t *out)
 *   {
 *       KILN_PLUGIN_BIND_HOST(api);               // refuses an incompatible host
 *       out->name = "my_pack";
 *       out->nodes = nodes;
 *       return 0;
 *   }
 *
 * Ownership: a value returned by kiln_value_new_* belongs to the caller; handing it to
 * kiln_call_set_output() gives it to the host. Values from kiln_call_input() are borrowed
 * for the duration of the call; retain one to keep it.
 *
 * Threads: execute() runs on a worker of the lane the affinity policy chose; several
 * nodes (of one or several prompts) may execute at once, so a node keeps no unguarded
 * global state. The definition tables are read-only and shared. */
#ifndef KILN_NODE_H
#define KILN_NODE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kiln/error.h"
#include "kiln/export.h"
#include "kiln/graph.h"
#include "kiln/ops.h"
#include "kiln/tensor.h"
#include "kiln/version.h"
#include "kiln/weights.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- values --------------------------------------------------------------------------- */

/* A refcounted value carried on a node socket. */
typedef struct kiln_value kiln_value_t;

typedef enum kiln_value_kind {
    KILN_VALUE_NONE = 0,
    KILN_VALUE_INT = 1,      /* int64_t; see kiln_value_get_u64 for seeds up to 2^64-1 */
    KILN_VALUE_FLOAT = 2,    /* double */
    KILN_VALUE_STRING = 3,   /* UTF-8 bytes plus length; also combo values */
    KILN_VALUE_BOOL = 4,
    KILN_VALUE_TENSOR = 5,   /* a tensor with a socket type name (IMAGE, MASK, ...) */
    KILN_VALUE_OBJECT = 6    /* an opaque pointer with a type name and a free function */
} kiln_value_kind_t;

/* One call of a node's execute (or is_changed / validate) function. Opaque. */
typedef struct kiln_call kiln_call_t;

/* A lane: one (device, stream) pair on which nodes execute. Opaque. */
typedef struct kiln_lane kiln_lane_t;

/* ---- node definitions ----------------------------------------------------------------- */

typedef enum kiln_input_section {
    KILN_INPUT_REQUIRED = 0,
    KILN_INPUT_OPTIONAL = 1,
    KILN_INPUT_HIDDEN = 2     /* filled by the engine: type is PROMPT, EXTRA_PNGINFO or UNIQUE_ID */
} kiln_input_section_t;

/* Widget and socket flags of an input. */
enum {
    KILN_INPUT_MULTILINE = 1u << 0,        /* STRING: multiline text box */
    KILN_INPUT_DYNAMIC_PROMPTS = 1u << 1,  /* STRING: the editor expands {a|b} and comments */
    KILN_INPUT_FORCE_INPUT = 1u << 2,      /* a socket, never a widget */
    KILN_INPUT_CONTROL_AFTER_GENERATE = 1u << 3, /* INT/COMBO: a seed-style control widget */
    KILN_INPUT_IMAGE_UPLOAD = 1u << 4,     /* COMBO: an upload button follows the widget */
    KILN_INPUT_LAZY = 1u << 5,             /* evaluated only when check_lazy asks for it */
    KILN_INPUT_NO_ROUND = 1u << 6,         /* FLOAT: "round": false */
    KILN_INPUT_MAX_U64 = 1u << 7           /* INT: max is 2^64-1 (seeds); `max` is ignored */
};

/* One input. `type` is "INT", "FLOAT", "STRING", "BOOLEAN", "COMBO" or a socket type
 * name such as "IMAGE" (a comma-separated union like "INT,FLOAT" is allowed, and "*"
 * accepts anything). A COMBO lists its choices in `options` (NULL-terminated) or names a
 * folder kind in `options_folder` whose files are the choices ("input" for images in the
 * input directory, or a model folder such as "checkpoints"). Unused numeric fields are
 * ignored; `has_default` says whether the default fields mean anything. */
typedef struct kiln_input_def {
    uint32_t struct_size;           /* sizeof(kiln_input_def_t) as the pack saw it */
    const char *name;               /* NULL ends the table */
    const char *type;
    kiln_input_section_t section;
    uint32_t flags;                 /* KILN_INPUT_* */
    int has_default;
    int64_t default_int;            /* INT, BOOLEAN (0/1) */
    double default_float;           /* FLOAT */
    const char *default_string;     /* STRING, COMBO */
    int64_t min_int, max_int, step_int;       /* INT; both 0 means unbounded */
    double min_float, max_float, step_float;  /* FLOAT; both 0 means unbounded */
    double round;                   /* FLOAT; 0 = unset */
    const char *const *options;     /* COMBO: NULL-terminated choices */
    const char *options_folder;     /* COMBO: "input", "output", "checkpoints", "vae", ... */
    const char *tooltip;
    const char *extra_json;         /* (optional) a JSON object merged into the input's options */
} kiln_input_def_t;

/* One output socket. */
typedef struct kiln_output_def {
    uint32_t struct_size;
    const char *type;               /* NULL ends the table */
    const char *name;               /* (optional) default: the type */
    int is_list;                    /* the node emits a list on this output */
    const char *tooltip;
} kiln_output_def_t;

/* Node flags. */
enum {
    KILN_NODE_OUTPUT = 1u << 0,         /* an output node (SaveImage, PreviewImage, ...) */
    KILN_NODE_NOT_IDEMPOTENT = 1u << 1, /* never shared between nodes with equal inputs */
    KILN_NODE_INPUT_IS_LIST = 1u << 2,  /* execute once with whole lists */
    KILN_NODE_BATCHABLE = 1u << 3,      /* instances from several prompts may be merged */
    KILN_NODE_DEPRECATED = 1u << 4,
    KILN_NODE_EXPERIMENTAL = 1u << 5,
    /* (since 1.1) the node's work runs well on an accelerator: the `single` affinity
     * policy sends it to the first GPU lane when the engine has one (CPU lanes otherwise).
     * Such a node must accept host inputs and produce outputs that other nodes can read
     * (see tensor_to_device below); nodes without the flag always run on CPU lanes. */
    KILN_NODE_GPU = 1u << 6
};

typedef struct kiln_node_def {
    uint32_t struct_size;
    const char *name;               /* class_type, unique across all packs */
    const char *display_name;       /* (optional) default: name */
    const char *category;           /* (optional) default: "sd" */
    const char *description;        /* (optional) default: "" */
    const kiln_input_def_t *inputs; /* terminated by an entry with name == NULL */
    const kiln_output_def_t *outputs; /* terminated by an entry with type == NULL */
    uint32_t flags;                 /* KILN_NODE_* */
    /* Runs the node: read inputs, set every output (or fail). Returns 0 or a KILN_E*
     * error, with a message given through kiln_call_fail(). */
    int (*execute)(kiln_call_t *call);
    /* (optional) default: none. ComfyUI's IS_CHANGED: writes a fingerprint of the node's
     * external state (a file hash, say) to `out`; a different string re-runs the node.
     * Only constant inputs are visible (linked ones read as NULL). */
    int (*is_changed)(kiln_call_t *call, char *out, size_t out_size);
    /* (optional) default: none. ComfyUI's VALIDATE_INPUTS: returns 0 when the constant
     * inputs are acceptable, else writes a reason to `msg`. Inputs named in
     * `validates` skip the engine's own range and combo checks. */
    int (*validate)(kiln_call_t *call, char *msg, size_t msg_size);
    const char *const *validates;   /* (optional) NULL-terminated input names */
    void *userdata;                 /* (optional) read back with kiln_call_userdata() */
} kiln_node_def_t;

#define KILN_INPUT_DEF_INIT .struct_size = sizeof(kiln_input_def_t)
#define KILN_OUTPUT_DEF_INIT .struct_size = sizeof(kiln_output_def_t)
#define KILN_NODE_DEF_INIT .struct_size = sizeof(kiln_node_def_t)

/* What a pack's init fills in. */
typedef struct kiln_plugin {
    uint32_t struct_size;           /* set by the host before init is called */
    const char *name;               /* pack name; shown as python_module in /object_info */
    const char *version;            /* (optional) */
    const kiln_node_def_t *const *nodes; /* NULL-terminated; static storage */
} kiln_plugin_t;

/* Where kiln_call_dir() points. */
typedef enum kiln_dir {
    KILN_DIR_OUTPUT = 0,
    KILN_DIR_INPUT = 1,
    KILN_DIR_TEMP = 2,
    KILN_DIR_MODELS = 3
} kiln_dir_t;

typedef enum kiln_log_level {
    KILN_LOG_DEBUG = 0,
    KILN_LOG_INFO = 1,
    KILN_LOG_WARN = 2,
    KILN_LOG_ERROR = 3
} kiln_log_level_t;

/* ---- the host function table ---------------------------------------------------------- *
 * XX(return type, name, (parameters), (arguments)). Entries are only ever appended; each
 * group says the ABI minor that introduced it. The public names are kiln_<name>. */
#define KILN_HOST_API_MAP(XX)                                                              \
    /* since 1.0: memory and logging */                                                    \
    XX(void *, malloc, (size_t size), (size))                                              \
    XX(int, free, (void *ptr), (ptr))                                                      \
    XX(int, log, (kiln_log_level_t level, const char *msg), (level, msg))                  \
    /* since 1.0: values. Constructors return NULL only when out of memory. */             \
    XX(kiln_value_t *, value_new_int, (int64_t v), (v))                                    \
    XX(kiln_value_t *, value_new_u64, (uint64_t v), (v))                                   \
    XX(kiln_value_t *, value_new_float, (double v), (v))                                   \
    XX(kiln_value_t *, value_new_bool, (int v), (v))                                       \
    /* copies len bytes of s */                                                            \
    XX(kiln_value_t *, value_new_string, (const char *s, size_t len), (s, len))            \
    /* retains t; the caller keeps its own reference */                                    \
    XX(kiln_value_t *, value_new_tensor, (const char *type, kiln_tensor_t *t), (type, t))  \
    /* takes ownership of ptr: free_fn(ptr) runs when the last reference goes */           \
    XX(kiln_value_t *, value_new_object,                                                   \
       (const char *type, void *ptr, void (*free_fn)(void *ptr)), (type, ptr, free_fn))    \
    XX(int, value_retain, (const kiln_value_t *v), (v))                                    \
    XX(int, value_release, (const kiln_value_t *v), (v))                                   \
    XX(kiln_value_kind_t, value_kind, (const kiln_value_t *v), (v))                        \
    /* "INT", "FLOAT", "STRING", "BOOLEAN" or the tensor/object type name */               \
    XX(const char *, value_type, (const kiln_value_t *v), (v))                             \
    /* getters return KILN_ETYPE for a value of another kind (INT reads as FLOAT) */       \
    XX(int, value_get_int, (const kiln_value_t *v, int64_t *out), (v, out))                \
    XX(int, value_get_u64, (const kiln_value_t *v, uint64_t *out), (v, out))               \
    XX(int, value_get_float, (const kiln_value_t *v, double *out), (v, out))               \
    XX(int, value_get_bool, (const kiln_value_t *v, int *out), (v, out))                   \
    XX(int, value_get_string, (const kiln_value_t *v, const char **s, size_t *len),        \
       (v, s, len))                                                                        \
    /* borrowed; NULL when v is not a tensor */                                            \
    XX(kiln_tensor_t *, value_get_tensor, (const kiln_value_t *v), (v))                    \
    /* borrowed; NULL when v is not an object of that type */                             \
    XX(void *, value_get_object, (const kiln_value_t *v, const char *type), (v, type))     \
    /* since 1.0: the call of a node */                                                    \
    /* the value of an input for this call (borrowed), or NULL when absent */              \
    XX(const kiln_value_t *, call_input, (kiln_call_t *call, const char *name),            \
       (call, name))                                                                       \
    /* INPUT_IS_LIST nodes: the length of an input's list and its elements (borrowed) */   \
    XX(size_t, call_input_count, (kiln_call_t *call, const char *name), (call, name))      \
    XX(const kiln_value_t *, call_input_at, (kiln_call_t *call, const char *name,          \
       size_t i), (call, name, i))                                                         \
    /* takes ownership of v; an is_list output may be set repeatedly to append */          \
    XX(int, call_set_output, (kiln_call_t *call, int index, kiln_value_t *v),              \
       (call, index, v))                                                                   \
    /* reports progress; returns KILN_EINTERRUPTED when the prompt was interrupted */      \
    XX(int, call_progress, (kiln_call_t *call, uint64_t value, uint64_t max),              \
       (call, value, max))                                                                 \
    XX(int, call_interrupted, (kiln_call_t *call), (call))                                 \
    /* records the error message that execution_error reports; returns KILN_ENODE */       \
    XX(int, call_fail, (kiln_call_t *call, const char *msg), (call, msg))                  \
    /* appends one JSON value (text) to the node's UI output list under key, e.g.          \
     * ("images", "{\"filename\": ..., \"subfolder\": ..., \"type\": \"output\"}") */      \
    XX(int, call_ui_append, (kiln_call_t *call, const char *key, const char *json),        \
       (call, key, json))                                                                  \
    /* PNG text metadata for output nodes: count of entries (0 when disabled), then each   \
     * key ("prompt", "workflow", ...) with its value as Python json.dumps would write it */ \
    XX(size_t, call_metadata_count, (kiln_call_t *call), (call))                           \
    XX(int, call_metadata_get, (kiln_call_t *call, size_t i, const char **key,             \
       const char **text), (call, i, key, text))                                           \
    XX(const char *, call_node_id, (kiln_call_t *call), (call))                            \
    XX(const char *, call_dir, (kiln_call_t *call, kiln_dir_t dir), (call, dir))           \
    XX(kiln_lane_t *, call_lane, (kiln_call_t *call), (call))                              \
    XX(void *, call_userdata, (kiln_call_t *call), (call))                                 \
    /* since 1.0: tensors (see tensor.h) */                                                \
    XX(kiln_tensor_t *, tensor_new, (kiln_dtype_t dtype, int ndim, const int64_t *shape),  \
       (dtype, ndim, shape))                                                               \
    XX(int, tensor_retain, (kiln_tensor_t *t), (t))                                        \
    XX(int, tensor_release, (kiln_tensor_t *t), (t))                                       \
    XX(void *, tensor_data, (const kiln_tensor_t *t), (t))                                 \
    XX(kiln_dtype_t, tensor_dtype, (const kiln_tensor_t *t), (t))                          \
    XX(int, tensor_ndim, (const kiln_tensor_t *t), (t))                                    \
    XX(int64_t, tensor_dim, (const kiln_tensor_t *t, int i), (t, i))                       \
    XX(int64_t, tensor_numel, (const kiln_tensor_t *t), (t))                               \
    XX(size_t, tensor_nbytes, (const kiln_tensor_t *t), (t))                               \
    /* since 1.0: tensor views and copies (see tensor.h) */                                \
    XX(int64_t, tensor_stride, (const kiln_tensor_t *t, int i), (t, i))                    \
    XX(int, tensor_device, (const kiln_tensor_t *t), (t))                                  \
    XX(int, tensor_is_contiguous, (const kiln_tensor_t *t), (t))                           \
    XX(int, tensor_view, (const kiln_tensor_t *t, int ndim, const int64_t *shape,          \
       const int64_t *strides, int64_t offset, kiln_tensor_t **out),                       \
       (t, ndim, shape, strides, offset, out))                                             \
    XX(int, tensor_reshape, (const kiln_tensor_t *t, int ndim, const int64_t *shape,       \
       kiln_tensor_t **out), (t, ndim, shape, out))                                        \
    XX(int, tensor_permute, (const kiln_tensor_t *t, const int *perm, kiln_tensor_t **out), \
       (t, perm, out))                                                                     \
    XX(int, tensor_transpose, (const kiln_tensor_t *t, int d0, int d1, kiln_tensor_t **out), \
       (t, d0, d1, out))                                                                   \
    XX(int, tensor_slice, (const kiln_tensor_t *t, int dim, int64_t start, int64_t length, \
       kiln_tensor_t **out), (t, dim, start, length, out))                                 \
    XX(int, tensor_contiguous, (const kiln_tensor_t *t, kiln_tensor_t **out), (t, out))    \
    XX(int, tensor_to_dtype, (const kiln_tensor_t *t, kiln_dtype_t dtype,                  \
       kiln_tensor_t **out), (t, dtype, out))                                              \
    XX(int, tensor_copy, (kiln_tensor_t *dst, const kiln_tensor_t *src), (dst, src))

/* since 1.1: devices (see tensor.h). These follow the op and weights entries in the table
 * so that every 1.0 entry keeps its offset; a pack calls them only after
 * KILN_API_HAS(kiln_host, tensor_new_on). */
#define KILN_HOST_API_DEVICE_MAP(XX)                                                       \
    XX(int, tensor_new_on, (int device, kiln_dtype_t dtype, int ndim, const int64_t *shape, \
       kiln_tensor_t **out), (device, dtype, ndim, shape, out))                            \
    XX(int, tensor_to_device, (const kiln_tensor_t *t, int device, kiln_tensor_t **out),   \
       (t, device, out))                                                                   \
    XX(int, tensor_sync, (const kiln_tensor_t *t), (t))                                    \
    XX(int, device_count, (void), ())                                                      \
    /* the device a lane issues work to: KILN_DEVICE_CPU (0) for CPU lanes and NULL, an    \
     * accelerator id 1..device_count() for GPU lanes */                                   \
    XX(int, lane_device, (const kiln_lane_t *lane), (lane))

/* The whole table: the entries above, then the op library (ops.h), weight files
 * (weights.h), the 1.1 device entries, and the 1.2 fused ops (ops.h) and graphs (graph.h). */
#define KILN_HOST_API_ALL(XX)                                                              \
    KILN_HOST_API_MAP(XX) KILN_OPS_API_MAP(XX) KILN_WEIGHTS_API_MAP(XX)                    \
    KILN_HOST_API_DEVICE_MAP(XX) KILN_OPS_API_FUSED_MAP(XX) KILN_GRAPH_API_MAP(XX)

typedef struct kiln_host_api {
    uint32_t size;          /* sizeof(kiln_host_api_t) in the host */
    uint16_t abi_major;     /* KILN_ABI_MAJOR of the host */
    uint16_t abi_minor;     /* KILN_ABI_MINOR of the host */
#define KILN_HOST_API_MEMBER_(ret, name, params, args) ret(*name) params;
    KILN_HOST_API_ALL(KILN_HOST_API_MEMBER_)
#undef KILN_HOST_API_MEMBER_
} kiln_host_api_t;

/* True when the host's table has entry fn (for calls newer than ABI 1.0). */
#define KILN_API_HAS(api, fn) \
    (offsetof(kiln_host_api_t, fn) + sizeof(void *) <= (api)->size && (api)->fn != NULL)

typedef int (*kiln_plugin_init_fn)(const kiln_host_api_t *api, kiln_plugin_t *out);

#ifdef KILN_PLUGIN
/* ---- pack side: every kiln_* call goes through the host table ------------------------- */
#ifndef KILN_HOST_SYMBOL
#define KILN_HOST_SYMBOL kiln_host
#endif
#ifndef KILN_PLUGIN_ENTRY
#define KILN_PLUGIN_ENTRY kiln_plugin_init
#endif
extern const kiln_host_api_t *KILN_HOST_SYMBOL;
#define KILN_PLUGIN_DEFINE_HOST const kiln_host_api_t *KILN_HOST_SYMBOL
/* (optional, external packs) Exports the ABI the pack was built against, as
 * (major << 16) | minor, so the loader can refuse a pack of another major with a message
 * naming both before running any of its code. Use once, next to KILN_PLUGIN_DEFINE_HOST. */
#define KILN_PLUGIN_DEFINE_ABI                                                              \
    KILN_API extern const uint32_t kiln_plugin_abi;                                        \
    const uint32_t kiln_plugin_abi = ((uint32_t)KILN_ABI_MAJOR << 16) | KILN_ABI_MINOR
#define KILN_PLUGIN_BIND_HOST(api)                                                          \
    do {                                                                                   \
        if (!(api) || (api)->abi_major != KILN_ABI_MAJOR)                                  \
            return KILN_EABI;                                                              \
        KILN_HOST_SYMBOL = (api);                                                          \
    } while (0)
/* The exported entry point of a pack. */
KILN_API int KILN_PLUGIN_ENTRY(const kiln_host_api_t *api, kiln_plugin_t *out);

#define KILN_HOST_API_WRAPPER_(ret, name, params, args) \
    static inline ret kiln_##name params { return KILN_HOST_SYMBOL->name args; }
KILN_HOST_API_ALL(KILN_HOST_API_WRAPPER_)
#undef KILN_HOST_API_WRAPPER_
#else
/* ---- host side: the same functions, exported by libkiln ------------------------------- */
#define KILN_HOST_API_DECL_(ret, name, params, args) KILN_API ret kiln_##name params;
KILN_HOST_API_MAP(KILN_HOST_API_DECL_)
#undef KILN_HOST_API_DECL_
/* The device a lane issues work to (the 1.1 entries' others are declared in tensor.h). */
KILN_API int kiln_lane_device(const kiln_lane_t *lane);
#endif

/* printf-style kiln_call_fail(). */
static inline int kiln_call_failf(kiln_call_t *call, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline int kiln_call_failf(kiln_call_t *call, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return kiln_call_fail(call, msg);
}

/* printf-style kiln_log(). */
static inline int kiln_logf(kiln_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline int kiln_logf(kiln_log_level_t level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return kiln_log(level, msg);
}

#ifdef __cplusplus
}
#endif
#endif
