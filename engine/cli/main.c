/* kiln's entry point: dispatches to the subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "kiln %s - a node-graph engine for diffusion workflows\n"
            "\n"
            "usage: kiln <command> [options]\n"
            "\n"
            "commands:\n"
            "  run WORKFLOW        run a workflow (.json in API or UI format, or a .png saved by\n"
            "                      SaveImage) headless, printing per-node progress\n"
            "  validate WORKFLOW   check a workflow and print every problem\n"
            "  nodes               list node definitions (--json: /object_info)\n"
            "  serve               ComfyUI-compatible HTTP + WebSocket server (serve --help)\n"
            "\n"
            "common options:\n"
            "  --base-directory DIR     holds models/, input/, output/, temp/ (default .)\n"
            "  --output-directory DIR   --input-directory DIR   --temp-directory DIR\n"
            "  --set NODE.input=VALUE   override an input (VALUE parsed as JSON, else a string)\n"
            "  --target NODE            run only this output node (repeatable)\n"
            "  --cache-classic | --cache-lru N | --cache-none   --cache-ram-budget MB\n"
            "  --lanes N                CPU lanes (worker threads)\n"
            "  --affinity FILE          lane rules (see README)\n"
            "  --disable-metadata       no prompt/workflow text chunks in PNGs\n"
            "  --json                   machine-readable output (events as JSON lines)\n",
            KILN_VERSION_STRING);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("kiln %s (node ABI %d.%d)\n", KILN_VERSION_STRING, KILN_ABI_MAJOR, KILN_ABI_MINOR);
        return 0;
    }
    if (!strcmp(argv[1], "run"))
        return kiln_cli_cmd_run(argc - 2, argv + 2);
    if (!strcmp(argv[1], "validate"))
        return kiln_cli_cmd_validate(argc - 2, argv + 2);
    if (!strcmp(argv[1], "nodes"))
        return kiln_cli_cmd_nodes(argc - 2, argv + 2);
    if (!strcmp(argv[1], "serve"))
        return kiln_cli_cmd_serve(argc - 2, argv + 2);
    fprintf(stderr, "kiln: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
