/* Prints execution events for the CLI: a progress bar on a terminal, plain lines when
 * the output is not a terminal, JSON lines with --json. */
#ifndef KILN_CLI_PROGRESS_H
#define KILN_CLI_PROGRESS_H

#include <kiln/kiln.h>
#include <stdbool.h>
#include <stdio.h>

typedef struct kiln_cli_progress {
    FILE *out;
    bool json;       /* one {"type", "data"} object per line */
    bool tty;        /* redraw a progress bar in place */
    bool bar_open;   /* a bar is on the current line */
    double t_node;   /* when the current node started (s) */
    double t_start;  /* when the prompt started (s) */
    int executed;    /* nodes executed */
    size_t cached;   /* nodes served from the cache */
    char *error;     /* owned: execution_error data, kept for the summary */
} kiln_cli_progress_t;

void kiln_cli_progress_init(kiln_cli_progress_t *p, FILE *out, bool json);
/* The kiln_event_cb to pass to kiln_engine_execute with p as ud. */
void kiln_cli_progress_event(void *ud, const kiln_event_t *ev);
void kiln_cli_progress_close(kiln_cli_progress_t *p);

#endif
