/* Loading a workflow for the CLI: JSON in either format or a PNG with metadata, plus
 * --set overrides applied to the API prompt. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/png_text.h"
#include "graph/graph.h"

#define MAX_WORKFLOW_FILE (256u << 20)

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "kiln: cannot open %s: %m\n", path);
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = cap ? cap * 2 : 65536 * 2;
            char *p = cap > MAX_WORKFLOW_FILE + 65536 + 1 ? NULL : realloc(buf, cap);
            if (!p) {
                fprintf(stderr, "kiln: %s is too large (limit %u MiB)\n", path,
                        MAX_WORKFLOW_FILE >> 20);
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = p;
        }
        size_t r = fread(buf + n, 1, 65536, f);
        n += r;
        if (r < 65536)
            break;
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

static kiln__json_t *parse_or_report(const char *what, const char *text, size_t len)
{
    kiln__json_t *j = NULL;
    char err[256];
    if (kiln__json_parse(text, len, &j, err, sizeof err) != 0) {
        fprintf(stderr, "kiln: %s is not valid JSON: %s\n", what, err);
        return NULL;
    }
    return j;
}

/* A UI workflow becomes an API prompt; an API prompt passes through. The UI workflow is
 * kept as extra_pnginfo.workflow so SaveImage embeds it, as the editor does. */
static int to_prompt(kiln_engine_t *e, kiln__json_t *doc, kiln_cli_workflow_t *out)
{
    kiln__json_t *wrapped = kiln__json_get(doc, "prompt");
    if (wrapped && wrapped->type == KILN_JSON_OBJECT && !kiln__json_get(doc, "class_type")) {
        /* A POST /prompt body: {"prompt": {...}, "extra_data": {...}}. */
        out->prompt = kiln__json_take(doc, "prompt");
        kiln__json_t *extra = kiln__json_take(doc, "extra_data");
        if (extra && extra->type == KILN_JSON_OBJECT)
            out->extra_data = extra;
        else
            kiln__json_free(extra);
        kiln__json_free(doc);
        return 0;
    }
    if (!kiln__workflow_is_ui(doc)) {
        out->prompt = doc;
        return 0;
    }
    char *text = kiln__json_dump(doc, KILN_JSON_COMPACT, NULL);
    char *prompt_json = NULL, *error = NULL;
    int rc = text ? kiln_engine_to_prompt(e, text, strlen(text), &prompt_json, &error)
                  : KILN_ENOMEM;
    free(text);
    if (rc != 0) {
        fprintf(stderr, "kiln: cannot convert the workflow: %s\n",
                error ? error : kiln_strerror(rc));
        kiln_free(error);
        kiln__json_free(doc);
        return rc;
    }
    out->prompt = parse_or_report("the converted prompt", prompt_json, strlen(prompt_json));
    kiln_free(prompt_json);
    kiln__json_t *pnginfo = kiln__json_new_object();
    if (!out->prompt || !pnginfo || kiln__json_set(pnginfo, "workflow", doc) != 0 ||
        kiln__json_set(out->extra_data, "extra_pnginfo", pnginfo) != 0)
        return KILN_ENOMEM;
    return 0;
}

/* A PNG from SaveImage: its `prompt` chunk is the exact API prompt that made it; its
 * `workflow` chunk (if any) travels along as extra_pnginfo. */
static int from_png(kiln_engine_t *e, const char *path, const unsigned char *png, size_t len,
                    kiln_cli_workflow_t *out)
{
    char *prompt = kiln_cli_png_text(png, len, "prompt");
    char *workflow = kiln_cli_png_text(png, len, "workflow");
    int rc = 0;
    if (prompt) {
        out->prompt = parse_or_report("the PNG's prompt chunk", prompt, strlen(prompt));
        rc = out->prompt ? 0 : KILN_EPARSE;
        kiln__json_t *wf = workflow ? parse_or_report("the PNG's workflow chunk", workflow,
                                                      strlen(workflow))
                                    : NULL;
        if (wf) {
            kiln__json_t *pnginfo = kiln__json_new_object();
            if (!pnginfo || kiln__json_set(pnginfo, "workflow", wf) != 0 ||
                kiln__json_set(out->extra_data, "extra_pnginfo", pnginfo) != 0)
                rc = KILN_ENOMEM;
        }
    } else if (workflow) {
        kiln__json_t *doc = parse_or_report("the PNG's workflow chunk", workflow,
                                            strlen(workflow));
        rc = doc ? to_prompt(e, doc, out) : KILN_EPARSE;
    } else {
        fprintf(stderr, "kiln: %s holds no workflow (no 'prompt' or 'workflow' text chunk)\n",
                path);
        rc = KILN_ENOTFOUND;
    }
    free(prompt);
    free(workflow);
    return rc;
}

/* --set NODE.input=VALUE (also NODE.inputs.input=VALUE). VALUE is JSON when it parses as
 * JSON, else taken as a string, so `--set 6.text=a cat` works without quoting. */
static int apply_set(kiln__json_t *prompt, const char *spec)
{
    const char *eq = strchr(spec, '=');
    const char *dot = eq ? memrchr(spec, '.', (size_t)(eq - spec)) : NULL;
    if (!eq || !dot || dot == spec || dot + 1 == eq) {
        fprintf(stderr, "kiln: --set wants NODE.input=VALUE, got '%s'\n", spec);
        return KILN_EINVAL;
    }
    size_t node_len = (size_t)(dot - spec);
    if (node_len > 7 && !strncmp(dot - 7, ".inputs", 7))
        node_len -= 7;
    char node[256], input[256];
    if (node_len >= sizeof node || (size_t)(eq - dot - 1) >= sizeof input) {
        fprintf(stderr, "kiln: --set name too long: '%s'\n", spec);
        return KILN_EINVAL;
    }
    memcpy(node, spec, node_len);
    node[node_len] = 0;
    memcpy(input, dot + 1, (size_t)(eq - dot - 1));
    input[eq - dot - 1] = 0;
    kiln__json_t *n = kiln__json_get(prompt, node);
    kiln__json_t *inputs = n ? kiln__json_get(n, "inputs") : NULL;
    if (!inputs || inputs->type != KILN_JSON_OBJECT) {
        fprintf(stderr, "kiln: --set %s: the workflow has no node '%s'\n", spec, node);
        return KILN_ENOTFOUND;
    }
    kiln__json_t *v = NULL;
    char err[64];
    if (kiln__json_parse(eq + 1, strlen(eq + 1), &v, err, sizeof err) != 0)
        v = kiln__json_new_string(eq + 1);
    if (!v || kiln__json_set(inputs, input, v) != 0)
        return KILN_ENOMEM;
    return 0;
}

int kiln_cli_workflow_load(kiln_engine_t *e, const char *path, const kiln_cli_opts_t *o,
                           kiln_cli_workflow_t *out)
{
    memset(out, 0, sizeof *out);
    out->extra_data = kiln__json_new_object();
    size_t len = 0;
    char *buf = out->extra_data ? read_file(path, &len) : NULL;
    if (!buf)
        return KILN_EIO;
    int rc;
    if (len >= 8 && !memcmp(buf, "\x89PNG", 4)) {
        rc = from_png(e, path, (const unsigned char *)buf, len, out);
    } else {
        kiln__json_t *doc = parse_or_report(path, buf, len);
        rc = doc ? to_prompt(e, doc, out) : KILN_EPARSE;
    }
    free(buf);
    for (int i = 0; rc == 0 && i < o->n_sets; i++)
        rc = apply_set(out->prompt, o->sets[i]);
    return rc;
}

void kiln_cli_workflow_free(kiln_cli_workflow_t *w)
{
    kiln__json_free(w->prompt);
    kiln__json_free(w->extra_data);
    memset(w, 0, sizeof *w);
}
