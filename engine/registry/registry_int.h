/* Registry internals shared by registry.c (packs and lookup), registry_check.c
 * (normalization and validation of definitions) and object_info.c. */
#ifndef KILN_REGISTRY_REGISTRY_INT_H
#define KILN_REGISTRY_REGISTRY_INT_H

#include <stdbool.h>

#include "registry/registry.h"

/* One registered pack. */
typedef struct kiln__pack_rec {
    char *name;                     /* owned: the pack's name */
    char *python_module;            /* owned: what /object_info shows as python_module */
    bool builtin;                   /* linked into kiln rather than loaded */
} kiln__pack_rec_t;

/* A class and the pack that declared it. cls comes first, so a kiln__node_class_t
 * pointer handed out by the registry is also a pointer to its record. */
typedef struct kiln__class_rec {
    kiln__node_class_t cls;
    const kiln__pack_rec_t *pack;   /* borrowed: the registry's pack list */
} kiln__class_rec_t;

/* The prefix of each definition struct that every pack must provide (the fields the host
 * cannot default). A pack built against an older minor has a smaller struct_size; the
 * fields past it read as zero. Anything below these sizes is rejected. */
#define KILN__NODE_DEF_MIN_SIZE (offsetof(kiln_node_def_t, execute) + sizeof(void *))
#define KILN__INPUT_DEF_MIN_SIZE \
    (offsetof(kiln_input_def_t, section) + sizeof(kiln_input_section_t))
#define KILN__OUTPUT_DEF_MIN_SIZE (offsetof(kiln_output_def_t, type) + sizeof(void *))

/* Largest struct_size accepted: guards against a garbage size walking off a table. */
#define KILN__DEF_MAX_SIZE 4096u

/* Copies and checks one node definition (def is the pack's pointer, index its position
 * in the pack's list, for messages) into a new record whose pack is unset. On failure
 * returns KILN_EINVAL or KILN_ENOMEM with a reason ("node 'Y': input 'x': ...") in err.
 * Names are not checked for uniqueness across classes here. */
int kiln__registry_class_new(const kiln_node_def_t *def, size_t index, kiln__class_rec_t **out,
                             char *err, size_t err_size);
void kiln__registry_class_free(kiln__class_rec_t *rec);

/* The python_module shown for a registered class. */
const char *kiln__registry_python_module(const kiln__node_class_t *cls);

/* True when a COMBO's options_folder names something kiln can list: a plain folder name
 * (no '/', '\\' or leading '.'). */
bool kiln__registry_folder_name_ok(const char *folder);

#endif
