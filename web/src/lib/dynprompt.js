// Dynamic prompts: the editor's preprocessing of STRING widgets that declare
// dynamicPrompts (CLIPTextEncode.text) before a prompt is queued. C-style comments are
// removed, then each {a|b|c} group (nestable, backslash escapes) is replaced by one of its
// options, chosen with `random` (Math.random in the page). The rules are the editor's,
// quirks included; they match kiln's server-side converter (engine/graph/dynprompt.c), so
// a workflow expands the same way whether the page or `kiln run` converts it.

const COMMENTS = /\/\*[\s\S]*?\*\/|\/\/.*/g;

// Scans the group whose text starts at t[i] (just past its "{"). Returns {end, options}:
// the index past the closing "}" (or the text's end) and the option slices.
function scanGroup(t, i) {
    const options = [];
    let depth = 0;
    let start = i;
    while (i < t.length) {
        const c = t[i++];
        if (c === '\\') {
            if (i < t.length) i++;
            continue;
        }
        if (c === '{') {
            depth++;
        } else if (c === '}') {
            if (depth === 0) {
                options.push(t.slice(start, i - 1));
                return { end: i, options };
            }
            depth--;
        } else if (c === '|' && depth === 0) {
            options.push(t.slice(start, i - 1));
            start = i;
        }
    }
    options.push(t.slice(start));
    return { end: t.length, options };
}

/** Expands text; `random` returns a number in [0, 1). */
export function expandDynamicPrompt(text, random = Math.random, depth = 0) {
    const t = String(text).replace(COMMENTS, '');
    let out = '';
    let i = 0;
    while (i < t.length) {
        const c = t[i++];
        if (c === '\\') {
            out += c;
            if (i < t.length) out += t[i++];
        } else if (c === '{') {
            const { end, options } = scanGroup(t, i);
            const k = Math.min(options.length - 1, Math.floor(random() * options.length));
            i = end;
            // Nesting this deep only comes from hostile text; keep the option as written.
            out += depth >= 200 ? options[k] : expandDynamicPrompt(options[k], random, depth + 1);
        } else {
            out += c;
        }
    }
    return out.replace(/\\([{}|])/g, '$1');
}
