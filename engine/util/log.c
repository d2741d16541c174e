/* kiln_log: the one function every part of kiln (and every node pack, through the host
 * table) logs with. The sink and the minimum level are process-wide; the pair (fn, ud)
 * is read under a mutex so a line never reaches a sink with another sink's userdata. */
#include "util/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static kiln__log_sink_fn sink_fn;   /* NULL: the stderr sink */
static void *sink_ud;               /* borrowed: the sink's owner */
static atomic_int min_level = KILN_LOG_INFO;

const char *kiln__log_level_name(kiln_log_level_t level)
{
    switch (level) {
    case KILN_LOG_DEBUG:
        return "debug";
    case KILN_LOG_INFO:
        return "info";
    case KILN_LOG_WARN:
        return "warn";
    case KILN_LOG_ERROR:
        return "error";
    default:
        return "?";
    }
}

static void stderr_sink(void *ud, kiln_log_level_t level, const char *msg)
{
    (void)ud;
    /* One fprintf call per line, so lines from several threads do not interleave. */
    fprintf(stderr, "kiln: [%s] %s\n", kiln__log_level_name(level), msg);
}

void kiln__log_set_sink(kiln__log_sink_fn fn, void *ud)
{
    pthread_mutex_lock(&sink_lock);
    sink_fn = fn;
    sink_ud = fn ? ud : NULL;
    pthread_mutex_unlock(&sink_lock);
}

void kiln__log_set_level(kiln_log_level_t level)
{
    atomic_store(&min_level, (int)level);
}

int kiln_log(kiln_log_level_t level, const char *msg)
{
    if (!msg)
        return KILN_EINVAL;
    if ((int)level < atomic_load(&min_level))
        return 0;
    /* The sink runs outside the lock: a sink may itself log or replace the sink. */
    pthread_mutex_lock(&sink_lock);
    kiln__log_sink_fn fn = sink_fn;
    void *ud = sink_ud;
    pthread_mutex_unlock(&sink_lock);
    if (!fn)
        fn = stderr_sink;
    fn(ud, level, msg);
    return 0;
}
