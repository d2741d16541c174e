// The editor's UI-only nodes, which never reach the server: Reroute (a pass-through dot
// for tidy links), PrimitiveNode (one value driving the widgets it is linked to; the
// converter writes that value into them), Note and MarkdownNote (text). Their saved
// shapes follow ComfyUI's so workflows move between the two editors unchanged.
import { LiteGraph } from '@comfyorg/litegraph';

import { KilnNode } from './nodes.js';
import { addInputWidgets, addMultilineWidget } from './widgets.js';

const ANY = '*';

class RerouteNode extends KilnNode {
    static title = 'Reroute';
    static category = 'utils';
    static collapsable = false;
    static title_mode = LiteGraph.NO_TITLE;

    constructor(title) {
        super(title ?? 'Reroute');
        this.addInput('', ANY);
        this.addOutput('', ANY);
        this.properties = { showOutputText: false, horizontal: false };
        this.size = [75, 26];
        this.isVirtualNode = true;
    }

    computeSize() {
        return [75, 26];
    }

    /** The type flowing in, following a chain of reroutes upstream. */
    upstreamType() {
        let node = this;
        for (let hops = 0; hops < 64 && node; hops++) {
            const link = node.graph?._links.get(node.inputs[0]?.link);
            if (!link) return ANY;
            const origin = node.graph.getNodeById(link.origin_id);
            if (!(origin instanceof RerouteNode))
                return origin?.outputs?.[link.origin_slot]?.type ?? ANY;
            node = origin;
        }
        return ANY;
    }

    onConnectionsChange() {
        const type = this.upstreamType();
        if (this.outputs[0].type !== type) {
            this.outputs[0].type = type;
            for (const id of this.outputs[0].links ?? []) {
                const link = this.graph?._links.get(id);
                if (link) link.type = type;
            }
        }
        this.setDirtyCanvas(true, true);
    }
}

class PrimitiveNode extends KilnNode {
    static title = 'Primitive';
    static category = 'utils';

    constructor(title, ctx) {
        super(title ?? 'Primitive');
        this.kilnCtx = ctx;
        this.addOutput('connect to widget input', ANY);
        this.properties = { 'Run widget replace on values': false };
        this.isVirtualNode = true;
        this.size = [210, 60];
    }

    /** The widgets (and their specs) this node's output feeds, through reroutes. */
    targets() {
        const out = [];
        const visit = (node, slot, depth) => {
            for (const id of node.outputs?.[slot]?.links ?? []) {
                const link = this.graph?._links.get(id);
                const t = link && this.graph.getNodeById(link.target_id);
                if (!t || depth > 64) continue;
                if (t instanceof RerouteNode) {
                    visit(t, 0, depth + 1);
                    continue;
                }
                const name = t.inputs?.[link.target_slot]?.widget?.name;
                const widget = name && t.widgets?.find((w) => w.name === name);
                const spec = name && t.constructor.kilnSpecs?.find((s) => s.name === name);
                if (widget && spec) out.push({ node: t, widget, spec });
            }
        };
        visit(this, 0, 0);
        return out;
    }

    /** Builds this node's widget after the first target, keeping values when given. */
    rebuild(values) {
        const first = this.targets()[0];
        for (const w of this.widgets ?? []) w.onRemove?.();
        this.widgets = [];
        const out = this.outputs[0];
        if (!first) {
            out.type = ANY;
            out.name = 'connect to widget input';
            delete out.widget;
            this.setDirtyCanvas(true, true);
            return;
        }
        out.type = first.spec.type;
        out.name = first.spec.type;
        out.widget = { name: first.spec.name };
        const v = values && values.length ? values[0] : first.widget.value;
        // Numbers and combos get a control widget here whatever their input declares.
        const spec = { ...first.spec, name: 'value' };
        spec.control = spec.combo || spec.type === 'INT' || spec.type === 'FLOAT';
        const w = addInputWidgets(this, spec, this.kilnCtx, v);
        if (w.kilnControl && values && typeof values[1] === 'string')
            w.kilnControl.value = values[1];
        else if (w.kilnControl) w.kilnControl.value = 'fixed';
        this.setSize([Math.max(this.size[0], 210), this.computeSize()[1]]);
        this.setDirtyCanvas(true, true);
    }

    onConfigure(info) {
        // Targets may not be configured yet; the app calls rebuild once all nodes are.
        this.kilnPendingValues = info.widgets_values ?? [];
    }

    onAfterGraphConfigured() {
        this.rebuild(this.kilnPendingValues);
        delete this.kilnPendingValues;
    }

    onConnectionsChange(type) {
        if (type === LiteGraph.OUTPUT && !this.graph?.kilnConfiguring) {
            const keep = this.widgets?.length ? [this.widgets[0].value] : null;
            const had = this.outputs[0].widget?.name;
            const first = this.targets()[0];
            this.rebuild(first && had === first.spec.name ? keep : null);
        }
    }

    /** Writes the value into every target widget, as the editor does before queueing. */
    applyToGraph() {
        const v = this.widgets?.[0]?.value;
        if (v === undefined) return;
        for (const t of this.targets()) t.widget.value = v;
    }
}

function makeNoteClass(type, title) {
    return class extends KilnNode {
        static title = title;
        static category = 'utils';

        constructor(t, ctx) {
            super(t ?? title);
            this.color = '#432';
            this.bgcolor = '#653';
            this.isVirtualNode = true;
            this.properties = { text: '' };
            addMultilineWidget(this, 'text', '', { ...ctx, placeholder: 'note' });
            this.size = [400, 140];
        }
    };
}

/** Registers the UI-only node types; ctx is the widget context of nodes.js. */
export function registerVirtualNodes(ctx) {
    LiteGraph.registerNodeType('Reroute', RerouteNode);
    LiteGraph.registerNodeType(
        'PrimitiveNode',
        class extends PrimitiveNode {
            constructor(t) {
                super(t, ctx);
            }
        },
    );
    const Note = makeNoteClass('Note', 'Note');
    const Markdown = makeNoteClass('MarkdownNote', 'Markdown Note');
    LiteGraph.registerNodeType(
        'Note',
        class extends Note {
            constructor(t) {
                super(t, ctx);
            }
        },
    );
    LiteGraph.registerNodeType(
        'MarkdownNote',
        class extends Markdown {
            constructor(t) {
                super(t, ctx);
            }
        },
    );
}

export { PrimitiveNode, RerouteNode };
