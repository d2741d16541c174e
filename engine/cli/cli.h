/* The kiln command line: shared option parsing and the subcommands. */
#ifndef KILN_CLI_CLI_H
#define KILN_CLI_CLI_H

#include <kiln/kiln.h>
#include <stdbool.h>

#include "json/json.h"

/* Options every subcommand understands (ComfyUI's flag names where it has them). */
typedef struct kiln_cli_opts {
    kiln_engine_options_t engine;
    bool json;              /* --json: machine-readable output */
    bool verbose;           /* --verbose */
    const char **sets;      /* --set NODE.input=value, in order (borrowed from argv) */
    int n_sets;
    const char **targets;   /* --target NODE: partial execution targets */
    int n_targets;
    const char **plugin_dirs; /* --plugins DIR, in order, NULL-terminated (engine.plugin_dirs) */
    int n_plugin_dirs;
    const char **args;      /* positional arguments (borrowed from argv) */
    int n_args;
} kiln_cli_opts_t;

/* Parses argv (after the subcommand name). Returns 0, or 2 after printing a usage error. */
int kiln_cli_parse(int argc, char **argv, kiln_cli_opts_t *o);
void kiln_cli_opts_free(kiln_cli_opts_t *o);

/* A workflow read from a file, ready to validate. */
typedef struct kiln_cli_workflow {
    kiln__json_t *prompt;       /* owned: API prompt */
    kiln__json_t *extra_data;   /* owned: {"extra_pnginfo": {"workflow": ...}} or {} */
} kiln_cli_workflow_t;

/* Loads a .json (API or UI format) or a .png saved by SaveImage (its `prompt` text chunk,
 * else its `workflow` chunk) and applies --set overrides. Prints the problem and returns
 * non-zero on failure. */
int kiln_cli_workflow_load(kiln_engine_t *e, const char *path, const kiln_cli_opts_t *o,
                           kiln_cli_workflow_t *out);
void kiln_cli_workflow_free(kiln_cli_workflow_t *w);

/* Prints a 400 body's errors for people, one line per problem. */
void kiln_cli_print_errors(const char *body_json);

int kiln_cli_cmd_run(int argc, char **argv);
int kiln_cli_cmd_validate(int argc, char **argv);
int kiln_cli_cmd_nodes(int argc, char **argv);
int kiln_cli_cmd_serve(int argc, char **argv);

#endif
