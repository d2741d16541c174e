/* kiln_log's sink: where log lines go. By default every line at or above the minimum
 * level is written to stderr as "kiln: [level] msg"; an engine (or a test) may route the
 * lines elsewhere, e.g. to kiln_engine_options_t.log. */
#ifndef KILN_UTIL_LOG_H
#define KILN_UTIL_LOG_H

#include <kiln/node.h>

/* Receives one log line (msg is borrowed for the call). Called from any thread, possibly
 * from several at once, so a sink that keeps state guards it itself. */
typedef void (*kiln__log_sink_fn)(void *ud, kiln_log_level_t level, const char *msg);

/* Replaces the sink; fn NULL restores the default stderr sink. A line being delivered on
 * another thread while the sink changes may still reach the previous sink. Any thread. */
void kiln__log_set_sink(kiln__log_sink_fn fn, void *ud);

/* Lines below `level` are dropped before they reach the sink (default KILN_LOG_INFO).
 * Any thread. */
void kiln__log_set_level(kiln_log_level_t level);

/* The lowercase name of a level: "debug", "info", "warn", "error" ("?" otherwise). */
const char *kiln__log_level_name(kiln_log_level_t level);

#endif
