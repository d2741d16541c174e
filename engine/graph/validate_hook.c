/* The call of a node class's validate hook during prompt validation (ComfyUI's
 * VALIDATE_INPUTS): the hook sees the node's constants, already coerced, and a refusal
 * becomes custom_validation_failed errors shaped the way ComfyUI shapes them. */
#include "graph/validate_int.h"

#include <kiln/error.h>
#include <string.h>

#include "sched/call.h"

/* ---- the validate hook ------------------------------------------------------------------ */

/* Records custom_validation_failed the way ComfyUI does: one error per input handed to the
 * hook (constants it names, in prompt order, then hidden inputs it names), "<name> -
 * <reason>"; a single error with the bare reason when it names none of them. */
static int hook_errors(kiln__validator_t *v, int n, const char *reason)
{
    const kiln__graph_node_t *node = &v->g->nodes[n];
    const kiln__node_class_t *cls = node->cls;
    size_t named = 0;
    int rc = 0;
    for (size_t pass = 0; pass < 2 && rc == 0; pass++) {
        size_t count = pass == 0 ? node->n_inputs : cls->n_inputs;
        for (size_t i = 0; i < count && rc == 0; i++) {
            const char *x;
            if (pass == 0) {
                const kiln__graph_input_t *gi = &node->inputs[i];
                if (gi->value->type == KILN_JSON_ARRAY || !gi->def ||
                    gi->def->section == KILN_INPUT_HIDDEN)
                    continue;
                x = gi->name;
            } else {
                if (cls->inputs[i].section != KILN_INPUT_HIDDEN)
                    continue;
                x = cls->inputs[i].name;
            }
            if (!kiln__validate_names(&cls->def, x))
                continue;
            kiln__sbuf_t details = KILN_SBUF_INIT;
            kiln__sbuf_puts(&details, x);
            if (reason[0])
                kiln__sbuf_printf(&details, " - %s", reason);
            kiln__json_t *extra = kiln__json_new_object();
            bool ok = extra && !details.failed;
            kiln__validate_put(extra, "input_name", kiln__json_new_string(x), &ok);
            rc = ok ? kiln__validate_add_error(
                          v, n,
                          kiln__validate_error_new("custom_validation_failed",
                                                   "Custom validation failed for node",
                                                   details.data, extra))
                    : KILN_ENOMEM;
            if (!ok)
                kiln__json_free(extra);
            kiln__sbuf_free(&details);
            named++;
        }
    }
    if (rc == 0 && named == 0)
        rc = kiln__validate_add_error(v, n,
                                      kiln__validate_error_new("custom_validation_failed",
                                                               "Custom validation failed for node",
                                                               reason, NULL));
    return rc;
}

int kiln__validate_hook(kiln__validator_t *v, int n)
{
    kiln__graph_node_t *node = &v->g->nodes[n];
    const kiln_node_def_t *def = &node->cls->def;
    if (!def->validate)
        return 0;
    kiln_call_t *call = kiln__call_new_constants(node, v->env);
    if (!call)
        return KILN_ENOMEM;
    char msg[1024];
    msg[0] = 0;
    int r = def->validate(call, msg, sizeof msg);
    msg[sizeof msg - 1] = 0;
    int rc = 0;
    if (r != 0) {
        const char *reason = msg[0] ? msg : kiln__call_error(call);
        rc = hook_errors(v, n, reason ? reason : "");
    }
    kiln__call_free(call);
    return rc;
}
