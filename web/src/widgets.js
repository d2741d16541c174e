// Widgets for node inputs, as ComfyUI's editor builds them from an input's spec: numbers
// with min/max/step and rounding, one-line and multiline strings (a real <textarea> laid
// over the canvas), toggles, combos, the control_after_generate companion of seeds and
// the upload button of image combos. Also the control step itself (what "randomize" and
// friends do to a value after a prompt is queued).
import { CONTROL_MODES, MAX_SAFE_SEED, defaultValue } from './lib/nodeinfo.js';

const decimals = (x) => {
    const s = String(x);
    const e = s.indexOf('e-');
    if (e >= 0) return Number(s.slice(e + 2));
    const dot = s.indexOf('.');
    return dot < 0 ? 0 : s.length - dot - 1;
};

function numberOptions(spec) {
    const o = spec.options;
    const isInt = spec.type === 'INT';
    const step = typeof o.step === 'number' && o.step > 0 ? o.step : isInt ? 1 : 0.5;
    const opts = {
        min: typeof o.min === 'number' ? o.min : 0,
        max: typeof o.max === 'number' ? o.max : 2048,
        step2: step,
        precision: isInt
            ? 0
            : typeof o.round === 'number' && o.round > 0
              ? decimals(o.round)
              : Math.max(0, decimals(step)),
    };
    if (isInt) opts.round = step;
    else if (o.round !== false)
        opts.round = typeof o.round === 'number' && o.round > 0 ? o.round : 10 ** -opts.precision;
    return opts;
}

/** Snaps a number to the widget's grid and range, as the editor does on every change. */
export function snapNumber(widget, v, isInt) {
    const o = widget.options;
    let x = Number(v);
    if (!Number.isFinite(x)) return widget.value;
    if (isInt) {
        const s = o.step2 || 1;
        const shift = Number.isFinite(o.min % s) ? o.min % s : 0;
        x = Math.round((x - shift) / s) * s + shift;
    } else if (o.round) {
        x = Math.round(x / o.round) * o.round;
        x = Number(x.toFixed(Math.max(o.precision ?? 0, decimals(o.round))));
    }
    return Math.min(o.max, Math.max(o.min, x));
}

// ---- multiline strings --------------------------------------------------------------------

let frame = 0;
const multilineWidgets = new Set();

/** Call once per drawn frame: hides the textareas of nodes that were not drawn. */
export function endWidgetFrame() {
    for (const w of multilineWidgets) {
        if (!w.node?.graph) {
            w.element.remove();
            multilineWidgets.delete(w);
        } else if (w.drawnFrame !== frame) {
            w.element.style.display = 'none';
        }
    }
    frame++;
}

/** A STRING widget with multiline: a textarea kept over the widget's area. */
export function addMultilineWidget(node, name, value, opts) {
    const el = document.createElement('textarea');
    el.className = 'kiln-multiline';
    el.spellcheck = false;
    el.placeholder = opts.placeholder ?? name;
    el.value = value ?? '';
    el.dataset.node = '';
    el.dataset.widget = name;
    el.style.display = 'none';
    opts.host.appendChild(el);
    const widget = {
        type: 'customtext',
        name,
        options: {},
        y: 0,
        element: el,
        node,
        get value() {
            return el.value;
        },
        set value(v) {
            el.value = v ?? '';
        },
        computeLayoutSize() {
            return { minHeight: 60, maxHeight: 600, minWidth: 200 };
        },
        draw(ctx, n, width, y) {
            const canvas = opts.getCanvas();
            this.drawnFrame = frame;
            const h = (this.computedHeight ?? 60) - 4;
            ctx.fillStyle = '#222';
            ctx.fillRect(10, y, width - 20, h);
            if (!canvas || n.flags?.collapsed) {
                el.style.display = 'none';
                return;
            }
            const { scale, offset } = canvas.ds;
            const rect = canvas.canvas.getBoundingClientRect();
            const host = opts.host.getBoundingClientRect();
            const x0 = (n.pos[0] + 10 + offset[0]) * scale + rect.left - host.left;
            const y0 = (n.pos[1] + y + offset[1]) * scale + rect.top - host.top;
            el.dataset.node = String(n.id);
            Object.assign(el.style, {
                display: '',
                left: `${x0}px`,
                top: `${y0}px`,
                width: `${(width - 20) * scale}px`,
                height: `${h * scale}px`,
                fontSize: `${Math.max(8, 12 * scale)}px`,
                opacity: this.computedDisabled ? '0.5' : '1',
            });
            el.disabled = !!this.computedDisabled;
        },
        onRemove() {
            el.remove();
            multilineWidgets.delete(widget);
        },
    };
    el.addEventListener('input', () => opts.onChange?.());
    multilineWidgets.add(widget);
    node.addCustomWidget(widget);
    return widget;
}

// ---- widget construction ------------------------------------------------------------------

/**
 * Adds the widget(s) of one input spec to node: the value widget, then its control
 * widget, then its upload button, in the order the editor saves their values.
 * ctx: {host, getCanvas, onChange, upload(node, widget)}.
 */
export function addInputWidgets(node, spec, ctx, value = defaultValue(spec)) {
    const o = spec.options;
    const changed = () => ctx.onChange?.();
    let w;
    if (spec.combo) {
        w = node.addWidget('combo', spec.name, value, changed, { values: [...spec.choices] });
    } else if (spec.type === 'INT' || spec.type === 'FLOAT') {
        const isInt = spec.type === 'INT';
        w = node.addWidget(
            'number',
            spec.name,
            value,
            function (v) {
                this.value = snapNumber(this, v, isInt);
                changed();
            },
            numberOptions(spec),
        );
    } else if (spec.type === 'BOOLEAN') {
        w = node.addWidget('toggle', spec.name, !!value, changed, {
            on: o.label_on ?? 'true',
            off: o.label_off ?? 'false',
        });
    } else if (o.multiline) {
        w = addMultilineWidget(node, spec.name, value, { ...ctx, placeholder: o.placeholder });
    } else {
        w = node.addWidget('text', spec.name, value ?? '', changed, {});
    }
    if (o.tooltip) w.tooltip = o.tooltip;
    w.kilnSpec = spec;
    if (spec.control) {
        const modes = spec.combo ? [...CONTROL_MODES, 'increment-wrap'] : [...CONTROL_MODES];
        const c = node.addWidget(
            'combo',
            'control_after_generate',
            ctx.controlMode ?? 'randomize',
            changed,
            { values: modes },
        );
        c.kilnControlFor = w;
        w.kilnControl = c;
    }
    if (spec.upload) {
        const b = node.addWidget('button', 'upload', 'image', () => ctx.upload?.(node, w), {});
        b.label = 'choose file to upload';
        b.value = 'image';
        b.kilnUploadFor = w;
    }
    return w;
}

/**
 * Applies a control widget's mode to its target after a prompt was queued: "increment"
 * and "decrement" step by the widget's step (combos move through their choices),
 * "randomize" draws a value (seeds are capped to what a JS number holds exactly).
 */
export function applyControl(control, random = Math.random) {
    const w = control.kilnControlFor;
    const mode = control.value;
    if (!w || mode === 'fixed' || typeof mode !== 'string') return;
    if (w.type === 'combo') {
        const values = w.options.values ?? [];
        if (!values.length) return;
        let i = values.indexOf(w.value);
        if (mode === 'increment') i = Math.min(values.length - 1, i + 1);
        else if (mode === 'increment-wrap') i = (i + 1) % values.length;
        else if (mode === 'decrement') i = Math.max(0, i - 1);
        else if (mode === 'randomize') i = Math.floor(random() * values.length);
        w.value = values[Math.max(0, i)];
        return;
    }
    const o = w.options;
    const step = o.step2 || 1;
    const min = Math.max(-MAX_SAFE_SEED, o.min ?? 0);
    const max = Math.min(MAX_SAFE_SEED, o.max ?? MAX_SAFE_SEED);
    let v = Number(w.value);
    if (mode === 'increment') v += step;
    else if (mode === 'decrement') v -= step;
    else if (mode === 'randomize') v = Math.floor(random() * ((max - min) / step + 1)) * step + min;
    w.value = Math.min(max, Math.max(min, v));
}
