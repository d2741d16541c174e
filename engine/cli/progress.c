/* Event printing for `kiln run`. */
#include "cli/progress.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "json/json.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The node whose "done in" line is due: a node's time runs from its `executing` event to
 * the next one or to the prompt's end. Kept here rather than in kiln_cli_progress_t, whose
 * header this feature leaves alone; `kiln run` prints one prompt at a time. */
static struct {
    const kiln_cli_progress_t *owner;   /* NULL: no node running */
    char node[64], type[128];
} running;

void kiln_cli_progress_init(kiln_cli_progress_t *p, FILE *out, bool json)
{
    memset(p, 0, sizeof *p);
    p->out = out;
    p->json = json;
    p->tty = !json && isatty(fileno(out));
    p->t_start = now_s();
    running.owner = NULL;
}

static void end_bar(kiln_cli_progress_t *p)
{
    if (p->bar_open) {
        fputc('\n', p->out);
        p->bar_open = false;
    }
}

static void node_done(kiln_cli_progress_t *p)
{
    if (running.owner != p)
        return;
    running.owner = NULL;
    if (p->json)
        return;
    end_bar(p);
    fprintf(p->out, "  node %s (%s) done in %.3f s\n", running.node, running.type,
            now_s() - p->t_node);
}

static void node_started(kiln_cli_progress_t *p, const kiln_event_t *ev)
{
    node_done(p);
    running.owner = p;
    snprintf(running.node, sizeof running.node, "%s", ev->node ? ev->node : "?");
    snprintf(running.type, sizeof running.type, "%s", ev->node_type ? ev->node_type : "?");
}

static void draw_bar(kiln_cli_progress_t *p, const kiln_event_t *ev)
{
    uint64_t max = ev->max ? ev->max : 1, v = ev->value > max ? max : ev->value;
    if (!p->tty) {
        fprintf(p->out, "  progress %llu/%llu\n", (unsigned long long)v,
                (unsigned long long)max);
        return;
    }
    enum { WIDTH = 30 };
    int fill = (int)(v * WIDTH / max);
    double dt = now_s() - p->t_node;
    fprintf(p->out, "\r  [%.*s%*s] %llu/%llu %.1fs", fill, "##############################",
            WIDTH - fill, "", (unsigned long long)v, (unsigned long long)max, dt);
    if (v > 0 && dt > 0)
        fprintf(p->out, " (%.2f it/s)", (double)v / dt);
    p->bar_open = true;
}

/* An output node's UI payload: one line per image ("saved output/sub/x_00001_.png"), the
 * raw JSON for anything else. */
static void print_outputs(kiln_cli_progress_t *p, const kiln_event_t *ev)
{
    kiln__json_t *d = NULL;
    char err[64];
    if (kiln__json_parse(ev->data_json, strlen(ev->data_json), &d, err, sizeof err) != 0)
        return;
    const kiln__json_t *out = kiln__json_get(d, "output");
    for (const kiln__json_t *k = out ? out->child : NULL; k; k = k->next) {
        if (strcmp(k->key, "images") != 0 || k->type != KILN_JSON_ARRAY) {
            char *text = kiln__json_dump(k, KILN_JSON_COMPACT, NULL);
            fprintf(p->out, "  %s: %s\n", k->key, text ? text : "?");
            free(text);
            continue;
        }
        for (const kiln__json_t *img = k->child; img; img = img->next) {
            const char *sub = kiln__json_get_string(img, "subfolder", "");
            fprintf(p->out, "  saved %s/%s%s%s\n", kiln__json_get_string(img, "type", "output"),
                    sub, sub[0] ? "/" : "", kiln__json_get_string(img, "filename", "?"));
        }
    }
    kiln__json_free(d);
}

/* Saved error data for the summary; the message line is printed right away. */
static void report_error(kiln_cli_progress_t *p, const kiln_event_t *ev)
{
    kiln__json_t *d = NULL;
    char err[64];
    free(p->error);
    p->error = strdup(ev->data_json);
    if (kiln__json_parse(ev->data_json, strlen(ev->data_json), &d, err, sizeof err) == 0) {
        fprintf(p->out, "error in node %s (%s): %s\n", kiln__json_get_string(d, "node_id", "?"),
                kiln__json_get_string(d, "node_type", "?"),
                kiln__json_get_string(d, "exception_message", "?"));
        kiln__json_free(d);
    }
}

void kiln_cli_progress_event(void *ud, const kiln_event_t *ev)
{
    kiln_cli_progress_t *p = ud;
    if (p->json) {
        fprintf(p->out, "{\"type\":\"%s\",\"data\":%s}\n", ev->name, ev->data_json);
        fflush(p->out);
    }
    switch (ev->type) {
    case KILN_EVENT_EXECUTION_CACHED:
        p->cached = ev->n_cached;
        if (!p->json && ev->n_cached)
            fprintf(p->out, "cached: %zu node%s\n", ev->n_cached, ev->n_cached == 1 ? "" : "s");
        break;
    case KILN_EVENT_EXECUTING:
        node_started(p, ev);
        p->executed++;
        p->t_node = now_s();
        if (!p->json) {
            end_bar(p);
            fprintf(p->out, "node %s (%s)\n", ev->node ? ev->node : "?",
                    ev->node_type ? ev->node_type : "?");
        }
        break;
    case KILN_EVENT_PROGRESS:
        if (!p->json)
            draw_bar(p, ev);
        break;
    case KILN_EVENT_EXECUTED:
        if (!p->json) {
            end_bar(p);
            print_outputs(p, ev);
        }
        break;
    case KILN_EVENT_EXECUTION_ERROR:
        node_done(p);
        end_bar(p);
        if (!p->json)
            report_error(p, ev);
        break;
    case KILN_EVENT_EXECUTION_INTERRUPTED:
        node_done(p);
        end_bar(p);
        if (!p->json)
            fprintf(p->out, "interrupted in node %s\n", ev->node ? ev->node : "?");
        break;
    case KILN_EVENT_EXECUTION_SUCCESS:
        node_done(p);
        end_bar(p);
        if (!p->json)
            fprintf(p->out, "done: %d executed, %zu cached, %.3f s\n", p->executed, p->cached,
                    now_s() - p->t_start);
        break;
    default:
        break;
    }
    fflush(p->out);
}

void kiln_cli_progress_close(kiln_cli_progress_t *p)
{
    end_bar(p);
    free(p->error);
    p->error = NULL;
}
