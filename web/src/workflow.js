// Moving graphs in and out of the canvas: the editor's saved (UI) format with unconnected
// widget sockets compressed away, loading UI workflows of either schema, loading API-format
// prompts (nodes created, widgets set, links made, then laid out), and telling the
// formats apart in files and PNGs.
import { LiteGraph } from '@comfyorg/litegraph';

import { isUiWorkflow } from './lib/convert.js';
import { graphFromPng } from './lib/png.js';

function clone(v) {
    return JSON.parse(JSON.stringify(v));
}

/**
 * The graph in the editor's saved format (schema 0.4). Widget sockets that nothing is
 * linked to are dropped and the links' target slots renumbered, as ComfyUI saves.
 */
export function serializeWorkflow(graph) {
    const wf = clone(graph.serialize());
    const links = new Map((wf.links ?? []).filter(Array.isArray).map((l) => [l[0], l]));
    for (const node of wf.nodes ?? []) {
        // Nodes of unknown types (subgraph instances among them) are saved as loaded.
        if (!Array.isArray(node.inputs) || !LiteGraph.registered_node_types[node.type]) continue;
        const kept = [];
        for (const input of node.inputs) {
            if (input.widget && input.link == null) continue;
            delete input.localized_name;
            delete input.pos;
            delete input.boundingRect;
            const l = input.link != null ? links.get(input.link) : null;
            if (l) l[4] = kept.length;
            kept.push(input);
        }
        node.inputs = kept;
    }
    if (!wf.definitions && graph.kilnDefinitions) wf.definitions = clone(graph.kilnDefinitions);
    if (wf.definitions && !wf.definitions.subgraphs?.length && !graph.kilnDefinitions)
        delete wf.definitions;
    wf.extra = { ...(wf.extra ?? {}), frontendVersion: 'kiln-web' };
    return wf;
}

/** Node types a workflow uses that no registered class provides. */
export function missingTypes(wf) {
    const subgraphs = new Set((wf.definitions?.subgraphs ?? []).map((s) => s?.id));
    const out = new Set();
    for (const n of wf.nodes ?? []) {
        if (
            typeof n?.type === 'string' &&
            !LiteGraph.registered_node_types[n.type] &&
            !subgraphs.has(n.type)
        )
            out.add(n.type);
    }
    return [...out];
}

/** Replaces the graph's contents with a UI workflow. Returns the missing node types. */
export function loadUiWorkflow(graph, wf) {
    const data = clone(wf);
    graph.kilnDefinitions = data.definitions?.subgraphs?.length ? clone(data.definitions) : null;
    // Subgraph definitions are kept for saving and queueing; their instances show as
    // plain nodes here.
    delete data.definitions;
    // LiteGraph reads link arrays only for version 0.4; the editor treats every version
    // but 1 that way.
    if (data.version !== 1) {
        data.version = 0.4;
        data.links = (Array.isArray(data.links) ? data.links : []).filter(
            (l) => Array.isArray(l) && l.length >= 5,
        );
    }
    graph.kilnConfiguring = true;
    try {
        graph.configure(data);
    } finally {
        graph.kilnConfiguring = false;
    }
    for (const node of graph._nodes) node.onAfterGraphConfigured?.();
    graph.setDirtyCanvas(true, true);
    return missingTypes(wf);
}

/**
 * Replaces the graph's contents with the nodes of an API-format prompt, as ComfyUI's
 * loadApiJson does: each node created with its id and title, constants put into widgets,
 * links connected by input name, then the graph arranged in columns. Returns the missing
 * node types.
 */
export function loadApiPrompt(graph, prompt) {
    graph.clear();
    graph.kilnDefinitions = null;
    const missing = new Set();
    const ids = Object.keys(prompt);
    const nodes = new Map();
    for (const id of ids) {
        const data = prompt[id];
        const node = LiteGraph.createNode(String(data?.class_type ?? ''));
        if (!node) {
            missing.add(String(data?.class_type));
            continue;
        }
        node.id = Number.isNaN(Number(id)) ? id : Number(id);
        if (typeof data._meta?.title === 'string') node.title = data._meta.title;
        graph.add(node);
        nodes.set(id, node);
    }
    for (const [id, node] of nodes) {
        const inputs = prompt[id].inputs ?? {};
        for (const [name, value] of Object.entries(inputs)) {
            if (Array.isArray(value) && value.length === 2) {
                const src = nodes.get(String(value[0]));
                const slot = node.inputs.findIndex((i) => i.name === name);
                if (src && slot >= 0) src.connect(Number(value[1]), node, slot);
                continue;
            }
            const w = node.widgets?.find((x) => x.name === name);
            if (!w) continue;
            const v =
                value && typeof value === 'object' && '__value__' in value
                    ? value.__value__
                    : value;
            if (w.type === 'combo' && !w.options.values.includes(v))
                w.options.values = [...w.options.values, v];
            w.value = v;
            // A prompt carries the value that ran: keep it.
            if (w.kilnControl) w.kilnControl.value = 'fixed';
        }
    }
    graph.arrange(80);
    graph.setDirtyCanvas(true, true);
    return [...missing];
}

/** True for an object that looks like an API-format prompt. */
export function isApiPrompt(doc) {
    if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return false;
    const values = Object.values(doc);
    return (
        values.length > 0 &&
        values.every((n) => n && typeof n === 'object' && typeof n.class_type === 'string')
    );
}

/**
 * Reads a dropped or opened file into {workflow} or {prompt}. Rejects with a message for
 * files that hold neither.
 */
export async function readGraphFile(file) {
    const buf = await file.arrayBuffer();
    const head = new Uint8Array(buf.slice(0, 8));
    const isPng = head[0] === 0x89 && head[1] === 0x50 && head[2] === 0x4e && head[3] === 0x47;
    if (isPng) {
        const found = await graphFromPng(buf);
        if (!found) throw new Error(`${file.name}: this PNG holds no workflow or prompt`);
        return found;
    }
    let doc;
    try {
        doc = JSON.parse(new TextDecoder().decode(buf));
    } catch (e) {
        throw new Error(`${file.name}: not a PNG and not valid JSON (${e.message})`);
    }
    if (isUiWorkflow(doc)) return { workflow: doc };
    if (isApiPrompt(doc)) return { prompt: doc };
    if (isUiWorkflow(doc?.workflow)) return { workflow: doc.workflow };
    throw new Error(`${file.name}: neither a saved workflow nor an API-format prompt`);
}
