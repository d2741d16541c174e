/* The table of node packs compiled into the kiln binary (generated list). */
#ifndef KILN_REGISTRY_BUILTIN_PACKS_H
#define KILN_REGISTRY_BUILTIN_PACKS_H

#include <kiln/node.h>

typedef struct kiln__builtin_pack {
    const char *name;            /* pack folder name under nodes/ */
    kiln_plugin_init_fn init;    /* the pack's kiln_plugin_init, renamed at build time */
} kiln__builtin_pack_t;

/* Terminated by an entry whose name is NULL. */
extern const kiln__builtin_pack_t kiln__builtin_packs[];

#endif
