// Node classes for the canvas, one per /object_info entry, built the way ComfyUI's editor
// builds them: sockets for data inputs and outputs (typed, coloured by type), a widget for
// every widget input plus a hidden socket on it (so a link or a PrimitiveNode can drive
// it), control and upload companions, and the run-time decorations: the executing
// outline, a progress bar, a "cached" mark, validation and execution errors on the node
// and its inputs, and images from SaveImage/PreviewImage.
import { LGraphNode, LiteGraph } from '@comfyorg/litegraph';

import { defaultControlMode, displayName, inputSpecs, storedWidgetValues } from './lib/nodeinfo.js';
import { addInputWidgets } from './widgets.js';

const ERROR_RED = '#ff4040';

/** Drawing and state shared by kiln's node classes. */
export class KilnNode extends LGraphNode {
    constructor(title) {
        super(title);
        this.serialize_widgets = true;
        this.kilnState = { running: false, cached: false, errors: null };
        this.imgs = [];
        // LiteGraph outlines a node in red while has_errors is true.
        Object.defineProperty(this, 'has_errors', {
            get: () => !!this.kilnState?.errors || this.kilnMissing === true,
            set: (v) => {
                this.kilnMissing = !!v;
            },
            configurable: true,
        });
        this.strokeStyles.running = function () {
            if (this.kilnState?.running) return { color: '#0f0', lineWidth: 3, padding: 6 };
            if (this.kilnState?.cached) return { color: '#4a90c0', lineWidth: 2, padding: 4 };
        };
    }

    /** LiteGraph merges saved slot arrays into the constructor's by index; a saved node's
     * slots must replace them instead (widget sockets come back in onConfigure). */
    configure(info) {
        if (Array.isArray(info?.inputs)) this.inputs = [];
        if (Array.isArray(info?.outputs)) this.outputs = [];
        super.configure(info);
    }

    onRemoved() {
        for (const w of this.widgets ?? []) w.onRemove?.();
    }

    /** The y where free space below slots and widgets begins. */
    contentBottom() {
        let y = 0;
        const rows = Math.max(
            (this.inputs ?? []).filter((s) => !s.widget).length,
            (this.outputs ?? []).length,
        );
        y = rows * LiteGraph.NODE_SLOT_HEIGHT + 6;
        for (const w of this.widgets ?? [])
            y = Math.max(y, (w.y ?? 0) + (w.computedHeight ?? LiteGraph.NODE_WIDGET_HEIGHT + 4));
        return y;
    }

    setImages(urls) {
        this.imgs = urls.map((src) => {
            const img = new Image();
            img.onload = () => {
                const need = this.contentBottom() + 200;
                if (this.size[1] < need) this.setSize([Math.max(this.size[0], 220), need]);
                this.setDirtyCanvas(true, true);
            };
            img.src = src;
            return img;
        });
        this.setDirtyCanvas(true, true);
    }

    onDrawBackground(ctx) {
        if (this.flags?.collapsed || !this.imgs?.length) return;
        const top = this.contentBottom();
        const h = this.size[1] - top - 4;
        const w = this.size[0] - 8;
        const imgs = this.imgs.filter((i) => i.complete && i.naturalWidth);
        if (h < 16 || !imgs.length) return;
        // One image fills the area; several are tiled in a near-square grid.
        const cols = Math.ceil(Math.sqrt(imgs.length));
        const rows = Math.ceil(imgs.length / cols);
        const cw = w / cols,
            ch = h / rows;
        imgs.forEach((img, i) => {
            const s = Math.min(cw / img.naturalWidth, ch / img.naturalHeight);
            const dw = img.naturalWidth * s,
                dh = img.naturalHeight * s;
            const x = 4 + (i % cols) * cw + (cw - dw) / 2;
            const y = top + Math.floor(i / cols) * ch + (ch - dh) / 2;
            ctx.drawImage(img, x, y, dw, dh);
        });
    }

    onDrawForeground(ctx) {
        const th = LiteGraph.NODE_TITLE_HEIGHT;
        if (this.mode === 2 || this.mode === 4) {
            // Muted nodes are dimmed, bypassed ones tinted purple, as in ComfyUI.
            ctx.save();
            ctx.fillStyle = this.mode === 4 ? 'rgba(160, 60, 200, 0.35)' : 'rgba(0, 0, 0, 0.45)';
            ctx.fillRect(0, -th, this.size[0], this.size[1] + th);
            ctx.restore();
        }
        const st = this.kilnState;
        if (!st) return;
        if (st.cached && !st.running) {
            ctx.save();
            ctx.font = '11px sans-serif';
            ctx.fillStyle = '#6ab0e0';
            ctx.textAlign = 'right';
            ctx.fillText('cached', this.size[0] - 8, -th + 19);
            ctx.restore();
        }
        if (!st.errors) return;
        ctx.save();
        // The offending inputs: a red ring on the socket, a red frame on the widget.
        for (const name of st.errors.inputs) {
            const w = this.widgets?.find((x) => x.name === name);
            const slotIndex = this.inputs?.findIndex((s) => s.name === name) ?? -1;
            const slot = slotIndex >= 0 ? this.inputs[slotIndex] : null;
            ctx.strokeStyle = ERROR_RED;
            ctx.lineWidth = 2;
            if (w && !(slot && slot.link != null)) {
                ctx.strokeRect(12, w.y - 1, this.size[0] - 24, (w.computedHeight ?? 24) - 2);
            } else if (slot) {
                const pos = slot.pos ?? [10, (slotIndex + 0.7) * LiteGraph.NODE_SLOT_HEIGHT];
                ctx.beginPath();
                ctx.arc(pos[0], pos[1], 7, 0, Math.PI * 2);
                ctx.stroke();
            }
        }
        // The messages, above the title.
        ctx.font = '12px sans-serif';
        ctx.fillStyle = ERROR_RED;
        ctx.textAlign = 'left';
        st.errors.messages.slice(0, 3).forEach((m, i, all) => {
            ctx.fillText(
                m.length > 90 ? `${m.slice(0, 87)}...` : m,
                0,
                -th - 8 - (all.length - 1 - i) * 15,
            );
        });
        ctx.restore();
    }
}

function isObject(v) {
    return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Creates the class of one node definition. ctx: {host, getCanvas, onChange, upload}
 * for the widgets.
 */
function makeNodeClass(type, def, ctx) {
    const specs = inputSpecs(def);
    const title = displayName(def, type);
    const outputs = Array.isArray(def.output) ? def.output : [];
    const names = Array.isArray(def.output_name) ? def.output_name : outputs;
    const isList = Array.isArray(def.output_is_list) ? def.output_is_list : [];

    class DefNode extends KilnNode {
        static title = title;
        static comfyClass = type;
        static nodeData = def;
        static category = typeof def.category === 'string' ? def.category : 'sd';
        static kilnSpecs = specs;

        constructor(t) {
            super(t ?? title);
            this.properties['Node name for S&R'] = type;
            for (const s of specs) {
                if (s.widget) {
                    addInputWidgets(this, s, { ...ctx, controlMode: defaultControlMode(s) });
                    this.addInput(s.name, s.type, { widget: { name: s.name } });
                } else {
                    this.addInput(
                        s.name,
                        s.type,
                        s.optional ? { shape: LiteGraph.CIRCLE_SHAPE } : {},
                    );
                }
            }
            outputs.forEach((t2, i) => {
                const otype = Array.isArray(t2) ? 'COMBO' : String(t2);
                this.addOutput(
                    String(names[i] ?? otype),
                    otype,
                    isList[i] ? { shape: LiteGraph.GRID_SHAPE } : {},
                );
            });
            if (def.output_node && /Image/.test(type)) this.size[1] = Math.max(this.size[1], 120);
            const size = this.computeSize();
            // Room for the whole title, and for images on output nodes.
            size[0] = Math.max(size[0], title.length * 8 + 60, def.output_node ? 260 : 0);
            this.setSize(size);
        }

        /** Re-reads widgets_values the way the editor lays them out (old files too), and
         * gives every widget its hidden socket back. */
        onConfigure(info) {
            const { values, controls } = storedWidgetValues(specs, info.widgets_values);
            for (const w of this.widgets ?? []) {
                if (w.kilnSpec && values.has(w.name)) {
                    const v = values.get(w.name);
                    if (w.type === 'combo' && !w.options.values.includes(v) && v != null)
                        w.options.values = [...w.options.values, v];
                    w.value = v;
                }
                if (w.kilnControlFor) {
                    // Very old files stored a "randomize" toggle here.
                    const m = controls.get(w.kilnControlFor.name);
                    if (typeof m === 'boolean') w.value = m ? 'randomize' : 'fixed';
                    else if (typeof m === 'string' && w.options.values.includes(m)) w.value = m;
                    else w.value = defaultControlMode(w.kilnControlFor.kilnSpec);
                }
                if (w.kilnUploadFor) w.value = 'image';
            }
            for (const s of specs) {
                if (s.widget && !this.inputs.some((i) => i.widget?.name === s.name))
                    this.addInput(s.name, s.type, { widget: { name: s.name } });
            }
        }
    }
    return DefNode;
}

/**
 * Registers a class per node definition of objectInfo (replacing earlier ones) and
 * returns their names.
 */
export function registerNodeDefs(objectInfo, ctx) {
    const names = [];
    for (const [type, def] of Object.entries(objectInfo)) {
        if (!isObject(def)) continue;
        LiteGraph.registerNodeType(type, makeNodeClass(type, def, ctx));
        names.push(type);
    }
    return names;
}
