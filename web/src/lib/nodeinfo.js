// Node definitions as /object_info describes them, read the way ComfyUI's editor reads
// them: which inputs become widgets, which get a control_after_generate value or an upload
// button, what a widget's default is, and where each widget's value sits in a saved
// node's widgets_values (../shared/docs/comfyui-compat.md §2.3, §3). Pure functions: the
// converter, the node classes of the canvas and the tests share them.

/** Types the editor draws as a widget rather than a socket. */
export const WIDGET_TYPES = new Set(['INT', 'FLOAT', 'STRING', 'BOOLEAN', 'COMBO']);

/** UI-only node types: never sent to the server. */
export const VIRTUAL_TYPES = new Set(['Reroute', 'PrimitiveNode', 'Note', 'MarkdownNote']);

/** Values a control_after_generate widget can hold. */
export const CONTROL_MODES = ['fixed', 'increment', 'decrement', 'randomize'];

/** The largest integer a seed may take in the page (ComfyUI's limit for JS numbers). */
export const MAX_SAFE_SEED = 1125899906842624;

function isObject(v) {
    return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * The inputs of a node definition in declaration order (input_order when the server
 * sends it, else the key order of each section), hidden inputs left out. Each entry is
 * {name, type, options, optional, combo, widget, control, upload}.
 */
export function inputSpecs(def) {
    const out = [];
    const input = isObject(def?.input) ? def.input : {};
    for (const section of ['required', 'optional']) {
        const group = isObject(input[section]) ? input[section] : {};
        const order = Array.isArray(def?.input_order?.[section])
            ? def.input_order[section].filter((n) => n in group)
            : Object.keys(group);
        for (const name of order) {
            const spec = group[name];
            if (!Array.isArray(spec) || spec.length === 0) continue;
            out.push(describeInput(name, spec, section === 'optional'));
        }
    }
    return out;
}

function describeInput(name, spec, optional) {
    const raw = spec[0];
    const options = isObject(spec[1]) ? spec[1] : {};
    const combo = Array.isArray(raw) || raw === 'COMBO';
    const type = combo ? 'COMBO' : String(raw);
    const choices = Array.isArray(raw)
        ? raw
        : Array.isArray(options.options)
          ? options.options
          : [];
    const widgetTyped = combo || WIDGET_TYPES.has(type);
    const widget = widgetTyped && !options.forceInput && !options.defaultInput;
    let control = false;
    if (widget && type === 'INT')
        control = !!options.control_after_generate || name === 'seed' || name === 'noise_seed';
    else if (widget && combo) control = !!options.control_after_generate;
    return {
        name,
        type,
        options,
        optional,
        combo,
        choices,
        widgetTyped,
        widget,
        control,
        upload: widget && combo && !!options.image_upload,
    };
}

/** The mode a new control widget starts in: the option's string, else "randomize". */
export function defaultControlMode(spec) {
    const v = spec.options.control_after_generate;
    return typeof v === 'string' && v ? v : 'randomize';
}

/**
 * The editor's value for a widget that has none stored: the declared default, else 0,
 * "", false or a combo's first choice. undefined when there is none (an empty combo):
 * the input is then left out of the prompt, as JSON.stringify leaves out undefined.
 */
export function defaultValue(spec) {
    const d = spec.options.default;
    if (spec.combo) return d !== undefined ? d : spec.choices.length ? spec.choices[0] : undefined;
    if (d !== undefined) return d;
    switch (spec.type) {
        case 'INT':
        case 'FLOAT':
            return 0;
        case 'BOOLEAN':
            return false;
        default:
            return '';
    }
}

function isControlValue(v) {
    return (
        v === null ||
        typeof v === 'boolean' ||
        (typeof v === 'string' && (CONTROL_MODES.includes(v) || v === 'increment-wrap'))
    );
}

/**
 * Where each widget value sits in widgets_values. Returns an array of
 * {spec, pos, controlPos} (controlPos -1 when no control value is stored) for the widget
 * inputs of def, following the editor's layout and its two historical variants: files
 * from frontend 1.16 that also stored values of forceInput inputs, and files older than
 * control widgets (a control position holding something that is not a mode).
 */
export function widgetLayout(specs, widgetsValues) {
    const build = (extras, phantom) => {
        const slots = [];
        let pos = 0;
        for (const s of specs) {
            if (!s.widget) {
                if (phantom && s.widgetTyped) pos++;
                continue;
            }
            const control = extras && s.control;
            slots.push({ spec: s, pos, controlPos: control ? pos + 1 : -1 });
            pos += 1 + (control ? 1 : 0) + (extras && s.upload ? 1 : 0);
        }
        return { slots, total: pos };
    };
    const canonical = build(true, false);
    if (!Array.isArray(widgetsValues)) return canonical.slots;
    const nForce = specs.filter((s) => !s.widget && s.widgetTyped).length;
    if (nForce && widgetsValues.length === canonical.total + nForce) return build(true, true).slots;
    const misplaced = canonical.slots.some(
        (sl) =>
            sl.controlPos >= 0 &&
            sl.controlPos < widgetsValues.length &&
            !isControlValue(widgetsValues[sl.controlPos]),
    );
    return misplaced ? build(false, false).slots : canonical.slots;
}

/**
 * The stored widget values of a saved node, by input name: {values: Map name -> value,
 * controls: Map name -> mode (a string, or a boolean in very old files)}. widgetsValues
 * may be an array in the editor's layout, an object keyed by name, or absent. Missing
 * entries are absent from the maps.
 */
export function storedWidgetValues(specs, widgetsValues) {
    const values = new Map();
    const controls = new Map();
    if (isObject(widgetsValues)) {
        for (const s of specs)
            if (s.widget && s.name in widgetsValues) values.set(s.name, widgetsValues[s.name]);
        return { values, controls };
    }
    if (!Array.isArray(widgetsValues)) return { values, controls };
    for (const sl of widgetLayout(specs, widgetsValues)) {
        if (sl.pos < widgetsValues.length) values.set(sl.spec.name, widgetsValues[sl.pos]);
        if (sl.controlPos >= 0 && sl.controlPos < widgetsValues.length) {
            const m = widgetsValues[sl.controlPos];
            if (typeof m === 'string' || typeof m === 'boolean') controls.set(sl.spec.name, m);
        }
    }
    return { values, controls };
}

/** The title ComfyUI gives a node of this definition. */
export function displayName(def, type) {
    return def?.display_name || def?.name || type;
}
