/* The editor's dynamic-prompt preprocessing of STRING widgets that declare it (ComfyUI's
 * frontend processDynamicPrompt): C-style comments are stripped, then every {a|b|c} group
 * (nestable, with backslash escapes) is replaced by one of its options. Used when a UI
 * workflow is converted to an API prompt on the server. */
#ifndef KILN_GRAPH_DYNPROMPT_H
#define KILN_GRAPH_DYNPROMPT_H

#include <stddef.h>
#include <stdint.h>

/* Nesting depth of {..} groups expanded recursively; a chosen option deeper than this is
 * kept as written (the editor has no bound, but no real prompt comes near it). */
#define KILN_DYNPROMPT_MAX_DEPTH 200

/* Expands len bytes of text. The editor picks options with Math.random(); here a small
 * PRNG seeded with `seed` picks them, so the same text and seed always give the same
 * result (one draw per group, in the editor's order). The rules match the editor's code,
 * quirks included: comments are removed first (so "http://x" loses "//x", and an
 * unclosed block comment is kept), an unclosed "{" runs to the end of the text, an empty
 * option can be chosen, "\x" escapes keep both characters while parsing and "\{", "\}",
 * "\|" lose the backslash at the end (a backslash ending the text stays a backslash,
 * where the editor appends "undefined"). On success *out is a malloc'd NUL-terminated string
 * (free with free()) and *out_len its length. Returns 0 or KILN_ENOMEM. Thread-safe. */
int kiln__dynprompt_expand(const char *text, size_t len, uint64_t seed, char **out,
                           size_t *out_len);

/* A seed for one widget, mixed from the conversion seed, the node's execution id and the
 * input name, so that every dynamic widget of a workflow draws its own stream and does
 * not depend on the order in which nodes are converted. */
uint64_t kiln__dynprompt_seed(uint64_t seed, const char *node_id, const char *input_name);

#endif
