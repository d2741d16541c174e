/* `kiln nodes`: the node definitions, as a table or as /object_info JSON. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void print_table(const kiln__json_t *info)
{
    printf("%-28s %-30s %s\n", "NODE", "CATEGORY", "DISPLAY NAME");
    for (const kiln__json_t *n = info->child; n; n = n->next) {
        printf("%-28s %-30s %s%s\n", n->key, kiln__json_get_string(n, "category", ""),
               kiln__json_get_string(n, "display_name", n->key),
               kiln__json_get(n, "output_node") && kiln__json_get(n, "output_node")->b
                   ? "  [output]"
                   : "");
    }
    printf("%zu nodes\n", info->count);
}

int kiln_cli_cmd_nodes(int argc, char **argv)
{
    kiln_cli_opts_t o;
    if (kiln_cli_parse(argc, argv, &o) != 0)
        return 2;
    kiln_engine_t *e = NULL;
    int rc = kiln_engine_new(&o.engine, &e);
    char *json = NULL;
    if (rc == 0)
        rc = kiln_engine_object_info(e, o.n_args ? o.args[0] : NULL, &json);
    if (rc != 0) {
        fprintf(stderr, "kiln: %s\n", kiln_strerror(rc));
    } else if (o.json) {
        printf("%s\n", json);
    } else {
        kiln__json_t *info = NULL;
        char err[128];
        rc = kiln__json_parse(json, strlen(json), &info, err, sizeof err);
        if (rc == 0)
            print_table(info);
        kiln__json_free(info);
    }
    kiln_free(json);
    if (e)
        kiln_engine_close(e);
    kiln_cli_opts_free(&o);
    return rc ? 1 : 0;
}
