/* `kiln serve`: ComfyUI's server flags (--listen, --port, --max-upload-size,
 * --enable-cors-header, --user-directory, --front-end-root) on top of the options every
 * subcommand shares (directories, cache, lanes), then the server until SIGINT/SIGTERM. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "server/server.h"

static void serve_usage(void)
{
    fprintf(stderr,
            "usage: kiln serve [options]\n"
            "  --listen [ADDR[,ADDR]]         addresses to listen on (default 127.0.0.1;\n"
            "                                 bare --listen: 0.0.0.0,::)\n"
            "  --port N                       port (default 8188; 0 picks a free one)\n"
            "  --max-upload-size MB           request body limit (default 100)\n"
            "  --enable-cors-header [ORIGIN]  send CORS headers (default origin *) instead of\n"
            "                                 refusing cross-origin requests\n"
            "  --user-directory DIR           queue journal and history (default <base>/user)\n"
            "  --front-end-root DIR           static files served at / (default ./web)\n"
            "  --max-history N                history entries kept (default 10000)\n"
            "  --ws-send-queue MB             data queued for one WebSocket before a client\n"
            "                                 too slow to read is dropped (default 16)\n"
            "  plus the common options of `kiln --help` (directories, cache, lanes)\n");
}

/* An optional value: the next argument unless it is another flag. */
static const char *optional_value(int argc, char **argv, int *i, const char *flag)
{
    size_t n = strlen(flag);
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0)
        return argv[++*i];
    return NULL;
}

static const char *required_value(int argc, char **argv, int *i, const char *flag)
{
    size_t n = strlen(flag);
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (*i + 1 < argc)
        return argv[++*i];
    fprintf(stderr, "kiln serve: %s needs a value\n", flag);
    return NULL;
}

static bool flag_is(const char *arg, const char *flag)
{
    size_t n = strlen(flag);
    return !strncmp(arg, flag, n) && (arg[n] == 0 || arg[n] == '=');
}

static int parse_number(const char *flag, const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double d = v ? strtod(v, &end) : 0;
    if (!v || errno || end == v || *end || d < lo || d > hi) {
        fprintf(stderr, "kiln serve: %s needs a number in [%g, %g], got '%s'\n", flag, lo, hi,
                v ? v : "");
        return -1;
    }
    *out = d;
    return 0;
}

/* Takes the serve flags out of argv (into so); the rest go to rest/n_rest. */
static int parse_serve(int argc, char **argv, kiln__server_opts_t *so, char **rest, int *n_rest)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        double d;
        if (flag_is(a, "--listen")) {
            const char *v = optional_value(argc, argv, &i, "--listen");
            so->listen = v ? v : "0.0.0.0,::";
        } else if (flag_is(a, "--port")) {
            if (parse_number("--port", required_value(argc, argv, &i, "--port"), 0, 65535,
                             &d))
                return -1;
            so->port = (int)d;
        } else if (flag_is(a, "--max-upload-size")) {
            if (parse_number("--max-upload-size",
                             required_value(argc, argv, &i, "--max-upload-size"), 0.001,
                             1048576, &d))
                return -1;
            so->max_upload_bytes = (size_t)(d * 1024 * 1024);
        } else if (flag_is(a, "--enable-cors-header")) {
            const char *v = optional_value(argc, argv, &i, "--enable-cors-header");
            so->cors_origin = v ? v : "*";
        } else if (flag_is(a, "--user-directory")) {
            if (!(so->user_dir = required_value(argc, argv, &i, "--user-directory")))
                return -1;
        } else if (flag_is(a, "--front-end-root")) {
            if (!(so->web_root = required_value(argc, argv, &i, "--front-end-root")))
                return -1;
        } else if (flag_is(a, "--max-history")) {
            if (parse_number("--max-history", required_value(argc, argv, &i, "--max-history"),
                             1, 1e9, &d))
                return -1;
            so->history_max_items = (size_t)d;
        } else if (flag_is(a, "--ws-send-queue")) {
            const char *v = required_value(argc, argv, &i, "--ws-send-queue");
            if (parse_number("--ws-send-queue", v, 0.001, 1048576, &d))
                return -1;
            so->ws_queue_bytes = (size_t)(d * 1024 * 1024);
        } else {
            rest[(*n_rest)++] = argv[i];
        }
    }
    return 0;
}

int kiln_cli_cmd_serve(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            serve_usage();
            return 0;
        }
    kiln__server_opts_t so = {.port = 8188, .argc = argc, .argv = argv};
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int n_rest = 0;
    kiln_cli_opts_t o;
    if (!rest || parse_serve(argc, argv, &so, rest, &n_rest) != 0 ||
        kiln_cli_parse(n_rest, rest, &o) != 0) {
        free(rest);
        serve_usage();
        return 2;
    }
    free(rest);
    if (o.n_args > 0) {
        fprintf(stderr, "kiln serve: unexpected argument '%s'\n", o.args[0]);
        kiln_cli_opts_free(&o);
        return 2;
    }
    so.base_dir = o.engine.base_directory;
    so.output_dir = o.engine.output_directory;
    so.input_dir = o.engine.input_directory;
    so.temp_dir = o.engine.temp_directory;
    so.verbose = o.verbose;
    kiln_engine_t *e = NULL;
    int rc = kiln_engine_new(&o.engine, &e);
    if (rc != 0) {
        fprintf(stderr, "kiln serve: cannot start the engine: %s\n", kiln_strerror(rc));
        kiln_cli_opts_free(&o);
        return 1;
    }
    rc = kiln__server_run(e, &so);
    if (kiln_engine_close(e) != 0)
        fprintf(stderr, "kiln serve: the engine did not close cleanly\n");
    kiln_cli_opts_free(&o);
    return rc == 0 ? 0 : 1;
}
