/* The affinity policy: which lane a node executes on.
 *
 * `single` (the default) puts every node on one device. For the CPU that device is the
 * pool of CPU worker lanes, so a node goes to whichever CPU lane is least loaded when it
 * becomes ready, and independent branches overlap across the pool. When the engine has
 * GPU lanes (a CUDA build on a machine with a GPU), a node whose definition carries
 * KILN_NODE_GPU (node.h: the SD loader, text encoder, samplers, VAE and latent nodes) goes
 * to the first GPU lane ("cuda:0:0"), so all model work shares one stream and the weights
 * the loader placed on that GPU; nodes without the flag (file I/O, PNG encoding, image
 * ops) stay on the CPU pool. Without GPU lanes the flag changes nothing.
 *
 * `rules` come from a config file, one rule per line, `#` starting a comment:
 *
 *   class KSampler lane cpu:1        # every node of this class_type
 *   class "Name With Spaces" lane cpu:0
 *   node 7 lane cpu:0                # the node with prompt id 7
 *   default lane cpu                 # everything else ("cpu" = the CPU pool)
 *
 * A prompt may override both per node with "_meta": {"lane": "cpu:1"}. Precedence: the
 * prompt's _meta.lane, then a node rule, then a class rule, then the default. */
#ifndef KILN_SCHED_AFFINITY_H
#define KILN_SCHED_AFFINITY_H

#include <stddef.h>

#include "graph/graph.h"
#include "sched/lane.h"

typedef struct kiln__affinity kiln__affinity_t;

/* Builds a policy from spec: NULL, "" or "single" for the default policy, otherwise the
 * path of a rules file. Lane names in rules are checked against lanes. On failure returns
 * KILN_EINVAL / KILN_EIO / KILN_EPARSE with a message in err ("rules.conf:3: unknown lane
 * 'cpu:9'"), or KILN_ENOMEM. */
int kiln__affinity_new(const char *spec, const kiln__lanes_t *lanes, kiln__affinity_t **out,
                       char *err, size_t err_size);

/* Builds a rules policy from text; `origin` names the source in messages (a file path).
 * Same errors as kiln__affinity_new. */
int kiln__affinity_parse(const char *text, const char *origin, const kiln__lanes_t *lanes,
                         kiln__affinity_t **out, char *err, size_t err_size);

void kiln__affinity_free(kiln__affinity_t *a);

/* The policy's name: "single" or "rules". */
const char *kiln__affinity_name(const kiln__affinity_t *a);

/* Picks the lane for node. *lane = a specific lane, or NULL for "any lane of the CPU
 * pool" (the scheduler then uses the least-loaded CPU lane). KILN_ENOTFOUND with a
 * message in err when the node's _meta.lane names no lane. Read-only: any thread. */
int kiln__affinity_pick(const kiln__affinity_t *a, const kiln__graph_node_t *node,
                        const kiln__lanes_t *lanes, kiln_lane_t **lane, char *err,
                        size_t err_size);

#endif
