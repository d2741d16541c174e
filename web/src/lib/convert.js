// UI workflow -> API prompt, as ComfyUI's editor does it before queueing (graphToPrompt,
// ../shared/docs/comfyui-compat.md §2.5-2.6): nodes in LiteGraph's execution order,
// subgraph instances expanded into "<instance>:<inner>" ids, widget values mapped to
// input names in definition order, every linked input resolved through Reroutes,
// bypassed nodes, PrimitiveNodes and subgraph boundaries, muted and UI-only nodes left
// out, and links into nodes that were not emitted dropped at the end. The page converts
// its own serialized graph with this, so what it queues is exactly what it would save.

import { expandDynamicPrompt } from './dynprompt.js';
import {
    VIRTUAL_TYPES,
    defaultValue,
    displayName,
    inputSpecs,
    storedWidgetValues,
} from './nodeinfo.js';

const MAX_HOPS = 1024; // steps through reroutes/bypasses for one input (cycles end here)
const MAX_DEPTH = 16; // subgraph nesting
const MAX_EXEC = 20000; // nodes after expansion

/** Thrown for a workflow that cannot be converted at all. */
export class WorkflowError extends Error {}

function isObject(v) {
    return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function isInt(v) {
    return typeof v === 'number' && Number.isInteger(v);
}

/** A node or link id as the editor prints it, or null when it is not an id. */
function idText(v) {
    if (typeof v === 'string') return v.length ? v : null;
    return isInt(v) ? String(v) : null;
}

/** True for a document in the UI (saved) format rather than the API format. */
export function isUiWorkflow(doc) {
    return isObject(doc) && Array.isArray(doc.nodes) && Array.isArray(doc.links);
}

// ---- model ------------------------------------------------------------------------------

function readLink(e, order) {
    let f;
    if (Array.isArray(e) && e.length >= 5) f = e.slice(0, 5);
    else if (isObject(e)) f = [e.id, e.origin_id, e.origin_slot, e.target_id, e.target_slot];
    else return null;
    const [id, origin, oslot, target, tslot] = f;
    if (
        !isInt(id) ||
        idText(origin) === null ||
        idText(target) === null ||
        !isInt(oslot) ||
        !isInt(tslot) ||
        oslot < 0 ||
        tslot < 0
    )
        return null;
    return {
        id,
        origin: idText(origin),
        originSlot: oslot,
        target: idText(target),
        targetSlot: tslot,
        order,
    };
}

function slotsOf(arr) {
    return Array.isArray(arr) ? arr.map((s) => (isObject(s) ? s : null)) : [];
}

function isGroupNode(root, type) {
    if (type.startsWith('workflow>')) return true;
    return (
        type.startsWith('workflow/') &&
        isObject(root.extra?.groupNodes) &&
        type.slice(9) in root.extra.groupNodes
    );
}

class Graph {
    constructor(json, where, doc, defId = null) {
        this.json = json;
        this.defId = defId;
        if (!Array.isArray(json.nodes)) throw new WorkflowError(`${where}: nodes is not an array`);
        this.nodes = [];
        this.byId = new Map();
        json.nodes.forEach((j, index) => {
            if (!isObject(j)) throw new WorkflowError(`${where}: node ${index} is not an object`);
            const id = idText(j.id);
            if (id === null) throw new WorkflowError(`${where}: node ${index} has no usable id`);
            if (typeof j.type !== 'string' || !j.type)
                throw new WorkflowError(`${where}: node ${id} has no type`);
            if (isGroupNode(doc.root ?? json, j.type))
                throw new WorkflowError(
                    `${where}: node ${id} is a legacy group node ` +
                        `(${j.type}), which is not supported; convert it to a subgraph`,
                );
            if (this.byId.has(id)) throw new WorkflowError(`${where}: duplicate node id ${id}`);
            const n = {
                json: j,
                id,
                type: j.type,
                mode: isInt(j.mode) ? j.mode : 0,
                inputs: slotsOf(j.inputs),
                outputs: slotsOf(j.outputs),
                kind: 'unknown',
                def: null,
                sub: null,
            };
            this.nodes.push(n);
            this.byId.set(id, n);
        });
        if (json.links != null && !Array.isArray(json.links))
            throw new WorkflowError(`${where}: links is not an array`);
        // The first link of an id (in file order) wins.
        this.links = new Map();
        (json.links ?? []).forEach((e, order) => {
            const l = readLink(e, order);
            if (l && !this.links.has(l.id)) this.links.set(l.id, l);
        });
        if (defId !== null) {
            this.inputNode = idText(json.inputNode?.id) ?? '-10';
            this.outputNode = idText(json.outputNode?.id) ?? '-20';
            this.ioOutputs = Array.isArray(json.outputs) ? json.outputs : [];
        }
    }

    classify(defs, subgraphs) {
        for (const n of this.nodes) {
            if (n.type === 'Reroute') n.kind = 'reroute';
            else if (n.type === 'PrimitiveNode') n.kind = 'primitive';
            else if (n.type === 'Note' || n.type === 'MarkdownNote') n.kind = 'note';
            else if (subgraphs.has(n.type)) {
                n.kind = 'subgraph';
                n.sub = subgraphs.get(n.type);
            } else if (isObject(defs[n.type])) {
                n.kind = 'real';
                n.def = defs[n.type];
                n.specs = inputSpecs(n.def);
            }
        }
    }

    /** Indexes a definition: which inputs promote an inner widget, which link feeds each
     * output. */
    indexDefinition() {
        const fromInput = [...this.links.values()]
            .filter((l) => l.origin === this.inputNode)
            .sort((a, b) => a.originSlot - b.originSlot || a.id - b.id);
        this.promos = new Map();
        for (const l of fromInput) {
            if (this.promos.has(l.originSlot)) continue;
            const t = this.byId.get(l.target);
            const s = t ? slotWithLink(t, l) : -1;
            const w = s >= 0 ? t.inputs[s]?.widget?.name : undefined;
            if (typeof w !== 'string') continue;
            const spec = t.specs?.find((x) => x.name === w);
            this.promos.set(l.originSlot, { control: !!(spec && spec.widget && spec.control) });
        }
        this.toOutput = [...this.links.values()]
            .filter((l) => l.target === this.outputNode)
            .sort((a, b) => a.targetSlot - b.targetSlot || a.order - b.order);
    }

    outputLink(slot) {
        const ids = this.ioOutputs[slot]?.linkIds;
        if (Array.isArray(ids) && isInt(ids[0])) {
            const l = this.links.get(ids[0]);
            if (l && l.target === this.outputNode && l.targetSlot === slot) return l;
        }
        return this.toOutput.find((l) => l.targetSlot === slot) ?? null;
    }
}

function slotWithLink(t, l) {
    if (t.inputs[l.targetSlot]?.link === l.id) return l.targetSlot;
    return t.inputs.findIndex((s) => s?.link === l.id);
}

function collectDefinitions(obj, out, depth, doc) {
    const subs = obj?.definitions?.subgraphs;
    if (!Array.isArray(subs)) return;
    if (depth > MAX_DEPTH)
        throw new WorkflowError(`subgraph definitions nested deeper than ${MAX_DEPTH} levels`);
    for (const s of subs) {
        if (!isObject(s) || typeof s.id !== 'string' || !s.id || out.has(s.id)) continue;
        out.set(s.id, new Graph(s, `subgraph ${s.id}`, doc, s.id));
        collectDefinitions(s, out, depth + 1, doc);
    }
}

// ---- execution order --------------------------------------------------------------------

/** LGraph.computeExecutionOrder on a serialized graph: node indexes in emission order. */
export function executionOrder(g) {
    const remaining = new Map();
    const queue = [];
    const visited = new Set();
    const placed = new Set();
    g.nodes.forEach((n, i) => {
        const k = n.inputs.filter((s) => s && s.link != null).length;
        if (k === 0) queue.push(i);
        else remaining.set(i, k);
    });
    const order = [];
    for (let head = 0; head < queue.length; head++) {
        const i = queue[head];
        order.push(i);
        placed.add(i);
        for (const o of g.nodes[i].outputs) {
            for (const lid of Array.isArray(o?.links) ? o.links : []) {
                const l = g.links.get(lid);
                if (!l || visited.has(l.id)) continue;
                visited.add(l.id);
                const t = g.byId.get(l.target);
                if (!t) continue;
                const ti = g.nodes.indexOf(t);
                // A node that started with no linked inputs has no count (NaN in the
                // editor): it never becomes ready again.
                if (remaining.has(ti)) {
                    const left = remaining.get(ti) - 1;
                    remaining.set(ti, left);
                    if (left === 0) queue.push(ti);
                }
            }
        }
    }
    // Nodes left in cycles follow in the iteration order of a JS object keyed by id:
    // array-index keys ascending first, then the rest in insertion order.
    const isIndex = (id) => /^(0|[1-9][0-9]{0,9})$/.test(id) && Number(id) <= 4294967294;
    const rest = g.nodes.map((n, i) => i).filter((i) => !placed.has(i));
    rest.sort((a, b) => {
        const ia = isIndex(g.nodes[a].id),
            ib = isIndex(g.nodes[b].id);
        if (ia !== ib) return ia ? -1 : 1;
        if (ia && g.nodes[a].id !== g.nodes[b].id)
            return Number(g.nodes[a].id) - Number(g.nodes[b].id);
        return a - b;
    });
    return order.concat(rest);
}

// ---- link resolution --------------------------------------------------------------------

function slotType(slots, i) {
    const t = slots[i]?.type;
    return typeof t === 'string' ? t : '*';
}

const wildcard = (t) => !t || t === '*';

/** LiteGraph.isValidConnection on two type strings. */
export function typesMatch(a, b) {
    if (wildcard(a) || wildcard(b) || a === b) return true;
    if (!a.includes(',') && !b.includes(',')) return a.toLowerCase() === b.toLowerCase();
    const la = a.toLowerCase().split(','),
        lb = b.toLowerCase().split(',');
    if (la.includes('') || lb.includes('')) return true;
    return la.some((x) => x === '*' || lb.some((y) => y === '*' || y === x));
}

/** The input of a bypassed node that stands in for its output `slot` feeding `type`. */
function bypassInput(n, slot, type) {
    if (!n.outputs[slot]) return -1;
    const outType = slotType(n.outputs, slot);
    if (type === '*' || type === '') return slot < n.inputs.length ? slot : 0;
    if (n.inputs[slot]) {
        const t = slotType(n.inputs, slot);
        if (typesMatch(t, outType) && typesMatch(t, type)) return slot;
    }
    for (let i = 0; i < n.inputs.length; i++) if (slotType(n.inputs, i) === type) return i;
    for (let i = 0; i < n.inputs.length; i++) {
        const t = slotType(n.inputs, i);
        if (typesMatch(t, outType) && typesMatch(t, type)) return i;
    }
    return -1;
}

const NONE = Object.freeze({ kind: 'none' });

class Converter {
    constructor(doc, random) {
        this.doc = doc;
        this.random = random;
        this.frames = new Map(); // prefix -> frame (instances)
        this.exec = [];
    }

    newFrame(parent, instance) {
        const f = {
            g: instance ? instance.sub : this.doc.root,
            parent,
            instance,
            depth: parent ? parent.depth + 1 : 0,
            prefix: instance ? `${parent.prefix}${instance.id}:` : '',
        };
        if (instance) {
            f.promoted = this.promotedPositions(f);
            this.frames.set(f.prefix, f);
        }
        return f;
    }

    // Where each promoted widget value sits in the instance's widgets_values.
    promotedPositions(f) {
        const g = f.g;
        const n = f.instance.inputs.length;
        let count = 0;
        for (let k = 0; k < n; k++) count += g.promos.has(k) ? 1 : 0;
        const wv = f.instance.json.widgets_values;
        const legacy = Array.isArray(wv) && wv.length > count;
        const out = [];
        let idx = 0;
        for (let k = 0; k < n; k++) {
            const p = g.promos.get(k);
            out.push(p ? idx : -1);
            if (p) idx += 1 + (legacy && p.control ? 1 : 0);
        }
        return out;
    }

    expand(f, order) {
        const nodes = order ? order.map((i) => f.g.nodes[i]) : f.g.nodes;
        for (const n of nodes) {
            if (n.kind !== 'subgraph') {
                if (this.exec.length + this.frames.size > MAX_EXEC)
                    throw new WorkflowError(`the workflow expands to more than ${MAX_EXEC} nodes`);
                this.exec.push({ f, n, id: f.prefix + n.id });
            } else if (n.mode === 2 || n.mode === 4) {
                continue;
            } else if (f.depth + 1 > MAX_DEPTH) {
                throw new WorkflowError(
                    `subgraphs nested deeper than ${MAX_DEPTH} levels at ` +
                        `node ${f.prefix}${n.id} (does a subgraph contain itself?)`,
                );
            } else {
                this.expand(this.newFrame(f, n), null);
            }
        }
    }

    resolveInput(f, n, slot, type, hops) {
        if (++hops.n > MAX_HOPS) return NONE;
        const linkId = n.inputs[slot]?.link;
        const l = isInt(linkId) ? f.g.links.get(linkId) : undefined;
        if (!l) return NONE;
        type ??= slotType(n.inputs, slot);
        if (f.instance && l.origin === f.g.inputNode)
            return this.resolveInstanceInput(f, l.originSlot, hops);
        const o = f.g.byId.get(l.origin);
        return o ? this.resolveOutput(f, o, l.originSlot, type, hops) : NONE;
    }

    resolveInstanceInput(f, k, hops) {
        if (isInt(f.instance.inputs[k]?.link))
            return this.resolveInput(f.parent, f.instance, k, null, hops);
        const pos = f.promoted[k] ?? -1;
        const wv = f.instance.json.widgets_values;
        if (pos >= 0 && Array.isArray(wv) && pos < wv.length)
            return { kind: 'value', value: wv[pos], primitive: false };
        return NONE;
    }

    resolveOutput(f, n, slot, type, hops) {
        if (++hops.n > MAX_HOPS) return NONE;
        if (n.mode === 4) {
            const i = bypassInput(n, slot, type);
            return i >= 0 ? this.resolveInput(f, n, i, null, hops) : NONE;
        }
        switch (n.kind) {
            case 'subgraph': {
                if (n.mode === 2) return NONE;
                const child = this.frames.get(`${f.prefix}${n.id}:`);
                const l = child ? child.g.outputLink(slot) : null;
                if (!l) return NONE;
                if (l.origin === child.g.inputNode)
                    return this.resolveInstanceInput(child, l.originSlot, hops);
                const inner = child.g.byId.get(l.origin);
                return inner ? this.resolveOutput(child, inner, l.originSlot, type, hops) : NONE;
            }
            case 'primitive': {
                const wv = n.json.widgets_values;
                if (slot === 0 && Array.isArray(wv) && wv.length)
                    return { kind: 'value', value: wv[0], primitive: true };
                return NONE;
            }
            case 'reroute':
                return n.inputs[slot] ? this.resolveInput(f, n, slot, type, hops) : NONE;
            case 'note':
                return NONE;
            default:
                return { kind: 'link', f, n, slot };
        }
    }

    // The editor's serialization of one widget value into inputs.
    putValue(inputs, name, value, spec) {
        if (value === undefined) return;
        if (Array.isArray(value)) inputs[name] = { __value__: value };
        else if (
            typeof value === 'string' &&
            spec?.type === 'STRING' &&
            spec.options.dynamicPrompts
        )
            inputs[name] = expandDynamicPrompt(value, this.random);
        else inputs[name] = value;
    }

    emit(e) {
        const { n } = e;
        const inputs = {};
        if (n.kind === 'real') {
            const { values } = storedWidgetValues(n.specs, n.json.widgets_values);
            for (const s of n.specs) {
                if (!s.widget) continue;
                this.putValue(
                    inputs,
                    s.name,
                    values.has(s.name) ? values.get(s.name) : defaultValue(s),
                    s,
                );
            }
        }
        n.inputs.forEach((slot, s) => {
            const name = slot?.name;
            if (typeof name !== 'string') return;
            const r = this.resolveInput(e.f, n, s, null, { n: 0 });
            if (r.kind === 'link') {
                inputs[name] = [r.f.prefix + r.n.id, r.slot];
            } else if (r.kind === 'value') {
                const w = typeof slot.widget?.name === 'string' ? slot.widget.name : null;
                const key = r.primitive && w ? w : name;
                const spec = n.specs?.find((x) => x.name === key);
                // A PrimitiveNode only ever writes into widgets.
                if (r.primitive && !w && !(spec && spec.widgetTyped)) return;
                this.putValue(inputs, key, r.value, spec);
            }
        });
        const title = typeof n.json.title === 'string' ? n.json.title : displayName(n.def, n.type);
        return { inputs, class_type: n.type, _meta: { title } };
    }
}

/** The ids of a workflow's top-level nodes in the editor's execution order. */
export function workflowExecutionOrder(workflow) {
    const g = new Graph(workflow, 'workflow', { root: workflow });
    return executionOrder(g).map((i) => g.nodes[i].id);
}

/**
 * Converts a UI workflow into an API prompt. defs is /object_info; opts.random replaces
 * Math.random for dynamic prompts. Returns the prompt object (keys in emission order).
 * Throws WorkflowError for a workflow that cannot be read.
 */
export function graphToPrompt(workflow, defs, opts = {}) {
    if (!isObject(workflow)) throw new WorkflowError('the workflow is not a JSON object');
    const doc = { root: null };
    const subgraphs = new Map();
    collectDefinitions(workflow, subgraphs, 0, { root: workflow });
    doc.root = new Graph(workflow, 'workflow', { root: workflow });
    doc.root.classify(defs ?? {}, subgraphs);
    for (const g of subgraphs.values()) g.classify(defs ?? {}, subgraphs);
    for (const g of subgraphs.values()) g.indexDefinition();
    const c = new Converter(doc, opts.random ?? Math.random);
    c.expand(c.newFrame(null, null), executionOrder(doc.root));
    const prompt = {};
    for (const e of c.exec) {
        const { n } = e;
        if (
            VIRTUAL_TYPES.has(n.type) ||
            n.kind === 'reroute' ||
            n.kind === 'primitive' ||
            n.kind === 'note' ||
            n.mode === 2 ||
            n.mode === 4
        )
            continue;
        prompt[e.id] = c.emit(e);
    }
    // A link to a node that was not emitted (muted, say) is removed.
    for (const node of Object.values(prompt)) {
        for (const [k, v] of Object.entries(node.inputs)) {
            if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && !(v[0] in prompt))
                delete node.inputs[k];
        }
    }
    return prompt;
}
