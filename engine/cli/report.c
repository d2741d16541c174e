/* Human-readable rendering of validation errors for the CLI. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void print_error(const char *where, const kiln__json_t *e)
{
    const char *msg = kiln__json_get_string(e, "message", "error");
    const char *details = kiln__json_get_string(e, "details", "");
    fprintf(stderr, "  %s%s%s%s\n", where, msg, details[0] ? ": " : "", details);
}

void kiln_cli_print_errors(const char *body_json)
{
    kiln__json_t *body = NULL;
    char err[128];
    if (!body_json || kiln__json_parse(body_json, strlen(body_json), &body, err, sizeof err)) {
        fprintf(stderr, "  %s\n", body_json ? body_json : "(no details)");
        return;
    }
    kiln__json_t *top = kiln__json_get(body, "error");
    if (top && top->type == KILN_JSON_OBJECT)
        print_error("", top);
    kiln__json_t *nodes = kiln__json_get(body, "node_errors");
    for (kiln__json_t *n = nodes ? nodes->child : NULL; n; n = n->next) {
        char where[512];
        kiln__json_t *errors = kiln__json_get(n, "errors");
        snprintf(where, sizeof where, "node %s (%s): ", n->key,
                 kiln__json_get_string(n, "class_type", "?"));
        for (kiln__json_t *e = errors ? errors->child : NULL; e; e = e->next)
            print_error(where, e);
    }
    kiln__json_free(body);
}
