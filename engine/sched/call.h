/* Construction of kiln_call_t objects outside execution: for a node's is_changed and
 * validate hooks, which see only the node's constant inputs. */
#ifndef KILN_SCHED_CALL_H
#define KILN_SCHED_CALL_H

#include <kiln/node.h>

#include "graph/graph.h"
#include "util/env.h"

/* A call whose inputs are the node's constant inputs converted to values of their declared
 * types (linked inputs read as NULL). Caller frees with kiln__call_free. NULL on OOM. */
kiln_call_t *kiln__call_new_constants(const kiln__graph_node_t *node, const kiln__env_t *env);
void kiln__call_free(kiln_call_t *call);

/* The message a hook or execute recorded with kiln_call_fail, or NULL. */
const char *kiln__call_error(const kiln_call_t *call);

#endif
