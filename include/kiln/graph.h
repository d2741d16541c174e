/* Recorded GPU work (CUDA graphs) for code that issues the same ops on the same shapes
 * many times, such as a sampler's model call at every step: record the ops once, then
 * replay them with one launch instead of hundreds, which takes the host out of the step.
 *
 *   kiln_lane_record_begin(lane);             // ops on lane are recorded, not run
 *   rc = forward(lane, x_static, out_static); // the usual op calls
 *   kiln_lane_record_end(lane, &g);           // 0, or the recording failed: run eagerly
 *   ...                                        // each step: fill x_static, then
 *   kiln_graph_replay(lane, g);               // out_static holds the result
 *
 * The rules: record a call only after running it once eagerly with the same shapes (the
 * first call of a shape measures and caches kernel choices, which cannot be recorded);
 * nothing between begin and end may wait on the host (downloads, kiln_tensor_sync);
 * tensors read by the recording (inputs, weights) must stay alive, at the same addresses,
 * for as long as the graph is replayed, and a replay reads their current contents;
 * tensors made during the recording take memory the graph keeps for itself until
 * kiln_graph_free, so the ones still alive at the end (the outputs) hold each replay's
 * result. Replay on the lane (stream) that recorded. NULL lane: the calling thread's
 * current GPU stream, as the ops use it. CPU lanes: KILN_EUNSUPPORTED. */
#ifndef KILN_GRAPH_H
#define KILN_GRAPH_H

#include "kiln/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_graph kiln_graph_t;
struct kiln_lane;

/* clang-format off */
#define KILN_GRAPH_API_MAP(XX)                                                              \
    XX(int, lane_record_begin, (struct kiln_lane *lane), (lane))                            \
    XX(int, lane_record_end, (struct kiln_lane *lane, kiln_graph_t **out), (lane, out))     \
    XX(int, graph_replay, (struct kiln_lane *lane, kiln_graph_t *g), (lane, g))             \
    XX(void, graph_free, (kiln_graph_t *g), (g))
/* clang-format on */

#ifndef KILN_PLUGIN
/* Starts recording on lane. KILN_EINVAL when it already records; KILN_EUNSUPPORTED for a
 * CPU lane or a build without CUDA. */
KILN_API int kiln_lane_record_begin(struct kiln_lane *lane);

/* Ends the recording: *out receives the graph (0), or nothing when an op failed or waited
 * during the recording (KILN_EDEVICE; the memory is given back and nothing ran). Either
 * way the lane runs ops eagerly again. */
KILN_API int kiln_lane_record_end(struct kiln_lane *lane, kiln_graph_t **out);

/* Queues one run of g on lane (asynchronous, like any op). */
KILN_API int kiln_graph_replay(struct kiln_lane *lane, kiln_graph_t *g);

/* Waits for g's queued replays, then frees it and gives its memory back (NULL is fine). */
KILN_API void kiln_graph_free(kiln_graph_t *g);
#endif

#ifdef __cplusplus
}
#endif

#endif
