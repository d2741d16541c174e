/* Normalization and validation of one node definition. A pack's tables are read through
 * each entry's struct_size (a pack built against an older minor has shorter structs) into
 * zero-filled copies of the host's layout, then checked, so that nothing a pack declares
 * can crash the engine later: every problem becomes a message naming node and input. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry_int.h"
#include "util/strmap.h"

/* Most entries one table may have; a table without a terminator fails here instead of
 * walking through memory forever. */
#define MAX_TABLE_ENTRIES 4096

static int failf(char *err, size_t err_size, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int failf(char *err, size_t err_size, int rc, const char *fmt, ...)
{
    if (err && err_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_size, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Checks an entry's struct_size: present, at least `min`, sane, pointer-aligned. Returns
 * NULL when fine, else a reason. */
static const char *check_struct_size(uint32_t size, size_t min, char *buf, size_t buf_size)
{
    if (size == 0)
        return "struct_size is 0 (initialize it with the KILN_*_DEF_INIT macro)";
    if (size < min) {
        snprintf(buf, buf_size, "struct_size %u is smaller than the ABI 1.0 minimum %zu",
                 (unsigned)size, min);
        return buf;
    }
    if (size > KILN__DEF_MAX_SIZE || size % _Alignof(void *) != 0) {
        snprintf(buf, buf_size, "struct_size %u is not a plausible struct size", (unsigned)size);
        return buf;
    }
    return NULL;
}

/* Copies min(size, dst_size) bytes of src into a zeroed dst. */
static void copy_prefix(void *dst, size_t dst_size, const void *src, uint32_t size)
{
    memset(dst, 0, dst_size);
    memcpy(dst, src, size < dst_size ? size : dst_size);
}

bool kiln__registry_folder_name_ok(const char *folder)
{
    return folder && folder[0] && folder[0] != '.' && !strchr(folder, '/') &&
           !strchr(folder, '\\');
}

static bool is_hidden_type(const char *type)
{
    static const char *const hidden[] = {"PROMPT", "EXTRA_PNGINFO", "UNIQUE_ID", "DYNPROMPT"};
    for (size_t i = 0; i < sizeof hidden / sizeof hidden[0]; i++)
        if (strcmp(type, hidden[i]) == 0)
            return true;
    return false;
}

/* Range checks of an INT input; NULL when fine, else a reason in buf. */
static const char *check_int(const kiln_input_def_t *in, char *buf, size_t n)
{
    bool u64max = (in->flags & KILN_INPUT_MAX_U64) != 0;
    bool bounded = u64max || in->min_int != 0 || in->max_int != 0;
    if (!bounded)
        return NULL;
    if (!u64max && in->min_int > in->max_int) {
        snprintf(buf, n, "min %lld > max %lld", (long long)in->min_int, (long long)in->max_int);
        return buf;
    }
    /* With KILN_INPUT_MAX_U64 every int64 default is below the maximum. */
    if (in->has_default &&
        (in->default_int < in->min_int || (!u64max && in->default_int > in->max_int))) {
        snprintf(buf, n, "default %lld outside min..max", (long long)in->default_int);
        return buf;
    }
    return NULL;
}

static const char *check_float(const kiln_input_def_t *in, char *buf, size_t n)
{
    if (isnan(in->min_float) || isnan(in->max_float) || isnan(in->step_float) ||
        isnan(in->round) || (in->has_default && isnan(in->default_float)))
        return "min, max, step, round and default must be numbers, not NaN";
    if (in->min_float == 0 && in->max_float == 0)
        return NULL;
    if (in->min_float > in->max_float) {
        snprintf(buf, n, "min %g > max %g", in->min_float, in->max_float);
        return buf;
    }
    if (in->has_default &&
        (in->default_float < in->min_float || in->default_float > in->max_float)) {
        snprintf(buf, n, "default %g outside min..max", in->default_float);
        return buf;
    }
    return NULL;
}

static const char *check_extra_json(const char *text)
{
    kiln__json_t *j = NULL;
    char perr[128];
    int rc = kiln__json_parse(text, strlen(text), &j, perr, sizeof perr);
    bool ok = rc == 0 && j->type == KILN_JSON_OBJECT;
    kiln__json_free(j);
    if (rc == KILN_ENOMEM)
        return "out of memory parsing extra_json";
    return ok ? NULL : "extra_json is not a JSON object";
}

/* Checks one normalized input; NULL when fine, else a reason (in buf or static). */
static const char *check_input(const kiln_input_def_t *in, char *buf, size_t n)
{
    if (!in->name[0])
        return "empty input name";
    if (!in->type)
        return "missing type";
    if (!in->type[0])
        return "empty type";
    if ((unsigned)in->section > KILN_INPUT_HIDDEN) {
        snprintf(buf, n, "bad section %d", (int)in->section);
        return buf;
    }
    if (in->section == KILN_INPUT_HIDDEN && !is_hidden_type(in->type)) {
        snprintf(buf, n, "hidden input type '%s' is not PROMPT, EXTRA_PNGINFO, UNIQUE_ID or "
                 "DYNPROMPT", in->type);
        return buf;
    }
    const char *why = NULL;
    if (strcmp(in->type, "INT") == 0)
        why = check_int(in, buf, n);
    else if (strcmp(in->type, "FLOAT") == 0)
        why = check_float(in, buf, n);
    else if (strcmp(in->type, "BOOLEAN") == 0 && in->has_default && in->default_int != 0 &&
             in->default_int != 1)
        why = "BOOLEAN default must be 0 or 1";
    else if (strcmp(in->type, "COMBO") == 0 && !in->options && !in->options_folder)
        why = "COMBO has neither options nor options_folder";
    if (!why && in->options_folder && !kiln__registry_folder_name_ok(in->options_folder))
        why = "options_folder must be a plain folder name";
    if (!why && in->extra_json)
        why = check_extra_json(in->extra_json);
    return why;
}

/* Checks the struct_size of entry n of a table; NULL when fine, else a reason. */
static const char *check_entry(size_t n, uint32_t size, size_t min, char *buf, size_t buf_size)
{
    if (n >= MAX_TABLE_ENTRIES)
        return "table has no terminator";
    return check_struct_size(size, min, buf, buf_size);
}

/* Stores the inputs in rec sorted by section (required, optional, hidden), keeping the
 * declaration order within a section; the array ends with a zeroed entry. */
static int store_inputs(kiln__class_rec_t *rec, const kiln_input_def_t *tmp, size_t n)
{
    rec->cls.inputs = calloc(n + 1, sizeof *rec->cls.inputs);
    if (!rec->cls.inputs)
        return KILN_ENOMEM;
    size_t k = 0;
    for (int section = KILN_INPUT_REQUIRED; section <= KILN_INPUT_HIDDEN; section++)
        for (size_t i = 0; i < n; i++)
            if ((int)tmp[i].section == section)
                rec->cls.inputs[k++] = tmp[i];
    rec->cls.n_inputs = n;
    return 0;
}

/* Reads the pack's input table into rec and checks each entry. The table is walked with
 * each entry's own struct_size as its stride: that is the size the pack compiled. */
static int read_inputs(kiln__class_rec_t *rec, const char *p, char *err, size_t err_size)
{
    const char *node = rec->cls.def.name;
    char buf[256];
    size_t n = 0;
    kiln_input_def_t *tmp = NULL;
    int rc = 0;
    for (; p; n++) {
        const char *name;
        uint32_t size;
        memcpy(&size, p, sizeof size);
        memcpy(&name, p + offsetof(kiln_input_def_t, name), sizeof name);
        if (!name)
            break;
        const char *why = check_entry(n, size, KILN__INPUT_DEF_MIN_SIZE, buf, sizeof buf);
        if (why) {
            rc = failf(err, err_size, KILN_EINVAL, "node '%s': input #%zu: %s", node, n, why);
            goto done;
        }
        kiln_input_def_t *grown = realloc(tmp, (n + 1) * sizeof *tmp);
        if (!grown) {
            rc = failf(err, err_size, KILN_ENOMEM, "node '%s': out of memory", node);
            goto done;
        }
        tmp = grown;
        copy_prefix(&tmp[n], sizeof tmp[n], p, size);
        tmp[n].struct_size = sizeof tmp[n];
        why = check_input(&tmp[n], buf, sizeof buf);
        for (size_t k = 0; !why && k < n; k++)
            if (strcmp(tmp[k].name, tmp[n].name) == 0)
                why = "duplicate input name";
        if (why) {
            rc = failf(err, err_size, KILN_EINVAL, "node '%s': input '%s': %s", node, name, why);
            goto done;
        }
        p += size;
    }
    if (store_inputs(rec, tmp, n) != 0)
        rc = failf(err, err_size, KILN_ENOMEM, "node '%s': out of memory", node);
done:
    free(tmp);
    return rc;
}

/* Reads the pack's output table into rec and checks each entry; an output without a name
 * gets its type as name. The array ends with a zeroed entry. */
static int read_outputs(kiln__class_rec_t *rec, const char *p, char *err, size_t err_size)
{
    const char *node = rec->cls.def.name;
    char buf[256];
    rec->cls.outputs = calloc(1, sizeof *rec->cls.outputs);
    if (!rec->cls.outputs)
        return failf(err, err_size, KILN_ENOMEM, "node '%s': out of memory", node);
    for (size_t n = 0; p; n++) {
        const char *type;
        uint32_t size;
        memcpy(&size, p, sizeof size);
        memcpy(&type, p + offsetof(kiln_output_def_t, type), sizeof type);
        if (!type)
            break;
        const char *why = check_entry(n, size, KILN__OUTPUT_DEF_MIN_SIZE, buf, sizeof buf);
        if (!why && !type[0])
            why = "empty type";
        if (why)
            return failf(err, err_size, KILN_EINVAL, "node '%s': output #%zu: %s", node, n, why);
        kiln_output_def_t *grown = realloc(rec->cls.outputs, (n + 2) * sizeof *grown);
        if (!grown)
            return failf(err, err_size, KILN_ENOMEM, "node '%s': out of memory", node);
        rec->cls.outputs = grown;
        copy_prefix(&grown[n], sizeof grown[n], p, size);
        grown[n].struct_size = sizeof grown[n];
        if (!grown[n].name)
            grown[n].name = grown[n].type;
        memset(&grown[n + 1], 0, sizeof grown[n + 1]);
        rec->cls.n_outputs = n + 1;
        p += size;
    }
    return 0;
}

/* Node-level checks after the tables were read. */
static int check_node(const kiln__class_rec_t *rec, char *err, size_t err_size)
{
    const kiln_node_def_t *def = &rec->cls.def;
    if (!def->execute)
        return failf(err, err_size, KILN_EINVAL, "node '%s': missing execute", def->name);
    for (size_t i = 0; def->validates && def->validates[i]; i++) {
        if (i >= MAX_TABLE_ENTRIES)
            return failf(err, err_size, KILN_EINVAL, "node '%s': validates has no terminator",
                         def->name);
        if (!kiln__node_class_input(&rec->cls, def->validates[i]))
            return failf(err, err_size, KILN_EINVAL, "node '%s': validates names unknown input "
                         "'%s'", def->name, def->validates[i]);
    }
    return 0;
}

int kiln__registry_class_new(const kiln_node_def_t *def, size_t index, kiln__class_rec_t **out,
                             char *err, size_t err_size)
{
    *out = NULL;
    char buf[256];
    uint32_t size;
    memcpy(&size, def, sizeof size);
    const char *why = check_struct_size(size, KILN__NODE_DEF_MIN_SIZE, buf, sizeof buf);
    if (why)
        return failf(err, err_size, KILN_EINVAL, "node #%zu: %s", index, why);
    kiln__class_rec_t *rec = calloc(1, sizeof *rec);
    if (!rec)
        return failf(err, err_size, KILN_ENOMEM, "node #%zu: out of memory", index);
    kiln_node_def_t *d = &rec->cls.def;
    copy_prefix(d, sizeof *d, def, size);
    d->struct_size = sizeof *d;
    int rc;
    if (!d->name || !d->name[0]) {
        rc = failf(err, err_size, KILN_EINVAL, "node #%zu: missing name", index);
        goto fail;
    }
    /* Optional strings get the defaults /object_info shows, so readers need no checks. */
    if (!d->display_name)
        d->display_name = d->name;
    if (!d->category)
        d->category = "sd";
    if (!d->description)
        d->description = "";
    if ((rc = read_inputs(rec, (const char *)d->inputs, err, err_size)) != 0 ||
        (rc = read_outputs(rec, (const char *)d->outputs, err, err_size)) != 0)
        goto fail;
    d->inputs = rec->cls.inputs;
    d->outputs = rec->cls.outputs;
    if ((rc = check_node(rec, err, err_size)) != 0)
        goto fail;
    *out = rec;
    return 0;
fail:
    kiln__registry_class_free(rec);
    return rc;
}

void kiln__registry_class_free(kiln__class_rec_t *rec)
{
    if (!rec)
        return;
    free(rec->cls.inputs);
    free(rec->cls.outputs);
    free(rec);
}
