/* Option parsing shared by the kiln subcommands. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* Parses a non-negative decimal; returns 0 on success. */
static int parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return -1;
    *out = (size_t)v;
    return 0;
}

/* The value of an option that takes one: "--flag VALUE" or "--flag=VALUE". */
static const char *opt_value(int argc, char **argv, int *i, const char *flag)
{
    size_t n = strlen(flag);
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (*i + 1 >= argc) {
        fprintf(stderr, "kiln: %s needs a value\n", flag);
        return NULL;
    }
    return argv[++*i];
}

static bool is_flag(const char *arg, const char *flag)
{
    size_t n = strlen(flag);
    return !strncmp(arg, flag, n) && (arg[n] == 0 || arg[n] == '=');
}

static int push(const char ***list, int *n, const char *s)
{
    const char **p = realloc(*list, sizeof **list * (size_t)(*n + 1));
    if (!p)
        return -1;
    p[(*n)++] = s;
    *list = p;
    return 0;
}

/* Appends a --plugins folder, keeping the list NULL-terminated for engine.plugin_dirs. */
static int push_dir(kiln_cli_opts_t *o, const char *dir)
{
    const char **p = realloc(o->plugin_dirs, sizeof *p * (size_t)(o->n_plugin_dirs + 2));
    if (!p)
        return -1;
    p[o->n_plugin_dirs++] = dir;
    p[o->n_plugin_dirs] = NULL;
    o->plugin_dirs = p;
    o->engine.plugin_dirs = p;
    return 0;
}

/* Handles one flag that takes a value; returns 1 when consumed, 0 when unknown, -1 on error. */
static int parse_valued(int argc, char **argv, int *i, kiln_cli_opts_t *o)
{
    static const char *const valued[] = {"--base-directory", "--output-directory",
                                         "--input-directory", "--temp-directory", "--set",
                                         "--target", "--cache-lru", "--cache-ram-budget",
                                         "--lanes", "--affinity", "--plugins", NULL};
    const char *a = argv[*i];
    int k = 0;
    while (valued[k] && !is_flag(a, valued[k]))
        k++;
    if (!valued[k])
        return 0;
    const char *v = opt_value(argc, argv, i, valued[k]);
    if (!v)
        return -1;
    size_t num = 0;
    switch (k) {
    case 0: o->engine.base_directory = v; return 1;
    case 1: o->engine.output_directory = v; return 1;
    case 2: o->engine.input_directory = v; return 1;
    case 3: o->engine.temp_directory = v; return 1;
    case 4: return push(&o->sets, &o->n_sets, v) ? -1 : 1;
    case 5: return push(&o->targets, &o->n_targets, v) ? -1 : 1;
    case 9: o->engine.affinity = v; return 1;
    case 10: return push_dir(o, v) ? -1 : 1;
    default: break;
    }
    if (parse_size(v, &num)) {
        fprintf(stderr, "kiln: %s needs a non-negative number, got '%s'\n", valued[k], v);
        return -1;
    }
    if (k == 6) {
        o->engine.cache_mode = KILN_CACHE_LRU;
        o->engine.cache_lru_size = num;
    } else if (k == 7) {
        o->engine.cache_ram_budget = num * 1024 * 1024;
    } else {
        o->engine.cpu_lanes = (int)(num > 256 ? 256 : num);
    }
    return 1;
}

int kiln_cli_parse(int argc, char **argv, kiln_cli_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->engine = (kiln_engine_options_t)KILN_ENGINE_OPTIONS_INIT;
    o->engine.base_directory = ".";
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int r = parse_valued(argc, argv, &i, o);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (!strcmp(a, "--json"))
            o->json = true;
        else if (!strcmp(a, "--verbose"))
            o->verbose = true;
        else if (!strcmp(a, "--cache-classic"))
            o->engine.cache_mode = KILN_CACHE_CLASSIC;
        else if (!strcmp(a, "--cache-none"))
            o->engine.cache_mode = KILN_CACHE_NONE;
        else if (!strcmp(a, "--disable-metadata"))
            o->engine.disable_metadata = 1;
        else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "kiln: unknown option '%s' (see kiln --help)\n", a);
            return 2;
        } else if (push(&o->args, &o->n_args, a)) {
            return 2;
        }
    }
    return 0;
}

void kiln_cli_opts_free(kiln_cli_opts_t *o)
{
    free(o->sets);
    free(o->targets);
    free(o->plugin_dirs);
    free(o->args);
    memset(o, 0, sizeof *o);
}
