/* Affinity policies: `single` (GPU-capable nodes on the first GPU lane, the rest on the
 * CPU pool) and `rules` read from a config
 * file, plus the per-node "_meta": {"lane": ...} override of a prompt. The grammar and the
 * precedence are described in affinity.h. */
#include "sched/affinity.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/strmap.h"

/* One rule's target. lane NULL means the CPU pool. */
typedef struct rule {
    kiln_lane_t *lane;   /* borrowed: the engine's lanes */
    int line;            /* where it was declared (duplicate messages) */
} rule_t;

struct kiln__affinity {
    bool is_rules;
    kiln__strmap_t *by_class;   /* owned: class_type -> rule_t * (owned) */
    kiln__strmap_t *by_node;    /* owned: node id -> rule_t * (owned) */
    rule_t dflt;                /* lane NULL: the pool */
    bool has_default;
};

#define MAX_TOKENS 8

static void set_err(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t err_size, const char *fmt, ...)
{
    if (!err || !err_size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
}

static int free_rule(const char *key, void *value, void *ud)
{
    free(value);
    return 0;
}

void kiln__affinity_free(kiln__affinity_t *a)
{
    if (!a)
        return;
    if (a->by_class) {
        kiln__strmap_foreach(a->by_class, free_rule, NULL);
        kiln__strmap_free(a->by_class);
    }
    if (a->by_node) {
        kiln__strmap_foreach(a->by_node, free_rule, NULL);
        kiln__strmap_free(a->by_node);
    }
    free(a);
}

const char *kiln__affinity_name(const kiln__affinity_t *a)
{
    return a->is_rules ? "rules" : "single";
}

/* Resolves a lane word: "cpu" or "any" is the pool (*lane = NULL); anything else must be
 * the exact name of an existing lane. */
static int resolve_lane(const kiln__lanes_t *lanes, const char *word, kiln_lane_t **lane)
{
    if (strcmp(word, "cpu") == 0 || strcmp(word, "any") == 0) {
        *lane = NULL;
        return 0;
    }
    *lane = kiln__lanes_find(lanes, word);
    return *lane ? 0 : KILN_ENOTFOUND;
}

/* Writes "cpu:0, cpu:1, ..." into buf (the valid lane names, for error messages). */
static void lane_list(const kiln__lanes_t *lanes, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < lanes->n && used + 1 < size; i++) {
        int w = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", lanes->lanes[i]->name);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* Splits one line into tokens in place. A '#' outside quotes ends the line; "..." is one
 * token. Returns the token count, or -1 for an unterminated quote, -2 for too many. */
static int tokenize(char *line, char **tok)
{
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (!*p || *p == '#')
            return n;
        if (n == MAX_TOKENS)
            return -2;
        if (*p == '"') {
            char *end = strchr(p + 1, '"');
            if (!end)
                return -1;
            *end = '\0';
            tok[n++] = p + 1;
            p = end + 1;
            continue;
        }
        tok[n++] = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '#')
            p++;
        if (*p == '#') {
            *p = '\0';
            return n;
        }
        if (*p)
            *p++ = '\0';
    }
}

/* Adds key -> rule to map, refusing a second rule for the same key. */
static int add_rule(kiln__strmap_t *map, const char *what, const char *key, kiln_lane_t *lane,
                    int line, const char *origin, char *err, size_t err_size)
{
    rule_t *old = kiln__strmap_get(map, key);
    if (old) {
        set_err(err, err_size, "%s:%d: duplicate rule for %s '%s' (first on line %d)", origin,
                line, what, key, old->line);
        return KILN_EPARSE;
    }
    rule_t *r = malloc(sizeof *r);
    if (!r)
        return KILN_ENOMEM;
    r->lane = lane;
    r->line = line;
    if (kiln__strmap_put(map, key, r) != 0) {
        free(r);
        return KILN_ENOMEM;
    }
    return 0;
}

/* Applies one tokenized, non-empty line. */
static int parse_line(kiln__affinity_t *a, char **tok, int n, int line, const char *origin,
                      const kiln__lanes_t *lanes, char *err, size_t err_size)
{
    bool keyed = n == 4 && (strcmp(tok[0], "class") == 0 || strcmp(tok[0], "node") == 0) &&
                 strcmp(tok[2], "lane") == 0;
    bool dflt = n == 3 && strcmp(tok[0], "default") == 0 && strcmp(tok[1], "lane") == 0;
    if (!keyed && !dflt) {
        set_err(err, err_size,
                "%s:%d: expected 'class <class_type> lane <lane>', 'node <id> lane <lane>' "
                "or 'default lane <lane>'",
                origin, line);
        return KILN_EPARSE;
    }
    const char *word = tok[n - 1];
    kiln_lane_t *lane;
    if (resolve_lane(lanes, word, &lane) != 0) {
        char names[256];
        lane_list(lanes, names, sizeof names);
        set_err(err, err_size, "%s:%d: unknown lane '%s' (lanes: cpu, %s)", origin, line, word,
                names);
        return KILN_EPARSE;
    }
    if (dflt) {
        if (a->has_default) {
            set_err(err, err_size, "%s:%d: duplicate default rule (first on line %d)", origin,
                    line, a->dflt.line);
            return KILN_EPARSE;
        }
        a->dflt.lane = lane;
        a->dflt.line = line;
        a->has_default = true;
        return 0;
    }
    if (!*tok[1]) {
        set_err(err, err_size, "%s:%d: empty %s name", origin, line, tok[0]);
        return KILN_EPARSE;
    }
    bool is_class = tok[0][0] == 'c';
    return add_rule(is_class ? a->by_class : a->by_node, is_class ? "class" : "node", tok[1],
                    lane, line, origin, err, err_size);
}

static kiln__affinity_t *affinity_alloc(bool is_rules)
{
    kiln__affinity_t *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->is_rules = is_rules;
    a->by_class = kiln__strmap_new();
    a->by_node = kiln__strmap_new();
    if (!a->by_class || !a->by_node) {
        kiln__affinity_free(a);
        return NULL;
    }
    return a;
}

int kiln__affinity_parse(const char *text, const char *origin, const kiln__lanes_t *lanes,
                         kiln__affinity_t **out, char *err, size_t err_size)
{
    *out = NULL;
    kiln__affinity_t *a = affinity_alloc(true);
    char *copy = strdup(text ? text : "");
    if (!a || !copy) {
        kiln__affinity_free(a);
        free(copy);
        return KILN_ENOMEM;
    }
    int rc = 0, line = 0;
    char *save = NULL;
    /* strtok_r would merge empty lines and break the numbering, so split by hand. */
    for (char *p = copy; p && rc == 0; p = save) {
        char *nl = strchr(p, '\n');
        save = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        line++;
        char *tok[MAX_TOKENS];
        int n = tokenize(p, tok);
        if (n < 0) {
            set_err(err, err_size, "%s:%d: %s", origin, line,
                    n == -1 ? "unterminated quote" : "too many words");
            rc = KILN_EPARSE;
        } else if (n > 0) {
            rc = parse_line(a, tok, n, line, origin, lanes, err, err_size);
        }
    }
    free(copy);
    if (rc != 0) {
        kiln__affinity_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

/* Reads a whole file as text; NULL with errno set on failure. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                errno = ENOMEM;
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, 4096, f);
        len += got;
        if (got < 4096)
            break;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

int kiln__affinity_new(const char *spec, const kiln__lanes_t *lanes, kiln__affinity_t **out,
                       char *err, size_t err_size)
{
    *out = NULL;
    if (!spec || !*spec || strcmp(spec, "single") == 0) {
        *out = affinity_alloc(false);
        return *out ? 0 : KILN_ENOMEM;
    }
    char *text = read_text(spec);
    if (!text) {
        if (errno == ENOMEM)
            return KILN_ENOMEM;
        set_err(err, err_size,
                "affinity '%s': not a policy name (single) and not a readable rules file: %s",
                spec, strerror(errno));
        return KILN_EIO;
    }
    int rc = kiln__affinity_parse(text, spec, lanes, out, err, err_size);
    free(text);
    return rc;
}

/* The "_meta": {"lane": "..."} of a prompt node, or NULL. */
static const char *meta_lane(const kiln__graph_node_t *node)
{
    kiln__json_t *meta = node->json ? kiln__json_get(node->json, "_meta") : NULL;
    return meta ? kiln__json_get_string(meta, "lane", NULL) : NULL;
}

int kiln__affinity_pick(const kiln__affinity_t *a, const kiln__graph_node_t *node,
                        const kiln__lanes_t *lanes, kiln_lane_t **lane, char *err,
                        size_t err_size)
{
    *lane = NULL;
    const char *want = meta_lane(node);
    if (want) {
        if (resolve_lane(lanes, want, lane) != 0) {
            char names[256];
            lane_list(lanes, names, sizeof names);
            set_err(err, err_size, "node %s: _meta.lane '%s' names no lane (lanes: cpu, %s)",
                    node->id, want, names);
            return KILN_ENOTFOUND;
        }
        return 0;
    }
    if (!a->is_rules) {
        /* single: GPU-capable nodes on the first GPU lane, everything else on the pool */
        if (node->cls && (node->cls->def.flags & KILN_NODE_GPU))
            *lane = kiln__lanes_first_device(lanes);
        return 0;
    }
    rule_t *r = kiln__strmap_get(a->by_node, node->id);
    if (!r && node->class_type)
        r = kiln__strmap_get(a->by_class, node->class_type);
    if (r)
        *lane = r->lane;
    else if (a->has_default)
        *lane = a->dflt.lane;
    return 0;
}
