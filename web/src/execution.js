// What a running prompt looks like on the canvas, driven by the server's WebSocket
// events (../shared/docs/comfyui-compat.md §5): the executing node outlined, its progress
// bar, cached nodes marked, result images from `executed` and live previews from binary
// frames shown on their nodes, execution errors on the failing node, and an overall
// progress figure. Validation errors from a refused POST /prompt land here too.

/** Normalizes a 400 body's node_errors into [{nodeId, classType, messages, inputs}]. */
export function nodeErrorList(nodeErrors) {
    const out = [];
    for (const [nodeId, entry] of Object.entries(nodeErrors ?? {})) {
        const errors = Array.isArray(entry?.errors) ? entry.errors : [];
        out.push({
            nodeId,
            classType: entry?.class_type ?? '',
            messages: errors.map((e) =>
                e?.details ? `${e.message}: ${e.details}` : String(e?.message ?? e),
            ),
            inputs: new Set(
                errors.map((e) => e?.extra_info?.input_name).filter((n) => typeof n === 'string'),
            ),
        });
    }
    return out;
}

export class ExecutionView extends EventTarget {
    /**
     * app: {graph, api, nodeForId(id), redraw()}. The view listens to app.api's events
     * and dispatches "change" whenever its summary (see summary()) changes.
     */
    constructor(app) {
        super();
        this.app = app;
        this.prompts = new Map(); // prompt_id -> {nodes: Set, number}
        this.current = null; // {id, done: Set, running: node id | null, value, max}
        this.lastResult = null; // "success" | "error" | "interrupted"
        this.previewUrls = new Map();
        this.log = []; // every event type received, in order (shown in the status line)
        const on = (type, fn) =>
            app.api.addEventListener(type, (ev) => {
                this.log.push(type);
                if (this.log.length > 500) this.log.splice(0, 100);
                fn.call(this, ev.detail);
                this.changed();
            });
        on('execution_start', this.onStart);
        on('execution_cached', this.onCached);
        on('executing', this.onExecuting);
        on('progress', this.onProgress);
        on('executed', this.onExecuted);
        on('execution_success', this.onSuccess);
        on('execution_error', this.onError);
        on('execution_interrupted', this.onInterrupted);
        on('b_preview', this.onPreview);
    }

    changed() {
        this.app.redraw();
        this.dispatchEvent(new Event('change'));
    }

    /** Remembers what was queued, for the overall progress of that prompt. */
    track(promptId, prompt) {
        this.prompts.set(promptId, { nodes: new Set(Object.keys(prompt)) });
    }

    nodes() {
        return this.app.graph._nodes ?? [];
    }

    /** Clears run decorations (not validation errors unless `errorsToo`). */
    resetNodes(errorsToo) {
        for (const n of this.nodes()) {
            if (!n.kilnState) continue;
            n.kilnState.running = false;
            n.kilnState.cached = false;
            n.progress = undefined;
            if (errorsToo || n.kilnState.errors?.kind === 'execution') n.kilnState.errors = null;
        }
    }

    /** Shows validation errors from a refused prompt; returns the list shown. */
    showValidationErrors(nodeErrors) {
        const list = nodeErrorList(nodeErrors);
        for (const e of list) {
            const node = this.app.nodeForId(e.nodeId);
            if (node?.kilnState)
                node.kilnState.errors = {
                    kind: 'validation',
                    messages: e.messages,
                    inputs: e.inputs,
                };
        }
        this.changed();
        return list;
    }

    clearErrors() {
        for (const n of this.nodes()) if (n.kilnState) n.kilnState.errors = null;
        this.changed();
    }

    onStart(d) {
        this.resetNodes(true);
        this.current = { id: d.prompt_id, done: new Set(), running: null, value: 0, max: 0 };
        this.lastResult = null;
    }

    mine(d) {
        return this.current && (!d.prompt_id || d.prompt_id === this.current.id);
    }

    onCached(d) {
        if (!this.mine(d)) return;
        for (const id of d.nodes ?? []) {
            this.current.done.add(String(id));
            const node = this.app.nodeForId(id);
            if (node?.kilnState) node.kilnState.cached = true;
        }
    }

    setRunning(id) {
        const prev = this.current?.running;
        if (prev != null) {
            this.current.done.add(prev);
            const p = this.app.nodeForId(prev);
            if (p?.kilnState) {
                p.kilnState.running = false;
                p.progress = undefined;
            }
        }
        if (this.current) Object.assign(this.current, { running: id, value: 0, max: 0 });
        const node = id != null ? this.app.nodeForId(id) : null;
        if (node?.kilnState) {
            node.kilnState.running = true;
            node.kilnState.cached = false;
        }
    }

    onExecuting(d) {
        // A reconnect replays `executing` for the running node without a prompt id.
        if (!this.current && d.node != null)
            this.current = {
                id: d.prompt_id ?? null,
                done: new Set(),
                running: null,
                value: 0,
                max: 0,
            };
        if (!this.current) return;
        if (d.prompt_id && this.current.id && d.prompt_id !== this.current.id) return;
        const id = d.node == null ? null : String(d.display_node ?? d.node);
        this.setRunning(id);
        if (id == null) {
            this.current.finished = true;
            this.lastResult ??= 'success';
        }
    }

    onProgress(d) {
        if (!this.mine(d)) return;
        const id = String(d.node ?? this.current.running);
        const node = this.app.nodeForId(id);
        if (node && d.max > 0) node.progress = Math.min(1, d.value / d.max);
        if (id === this.current.running || this.current.running == null) {
            this.current.value = d.value;
            this.current.max = d.max;
        }
    }

    onExecuted(d) {
        if (this.current && this.mine(d)) this.current.done.add(String(d.display_node ?? d.node));
        const node = this.app.nodeForId(d.display_node ?? d.node);
        const images = d.output?.images;
        if (node && Array.isArray(images) && images.length) {
            this.revokePreview(node);
            node.setImages?.(images.map((f) => this.app.api.viewUrl(f)));
            node.kilnOutputs = images;
        }
    }

    onSuccess(d) {
        if (!this.mine(d)) return;
        this.lastResult = 'success';
        this.setRunning(null);
    }

    onError(d) {
        if (this.current && this.mine(d)) this.lastResult = 'error';
        const node = this.app.nodeForId(d.node_id);
        if (node?.kilnState) {
            const text = String(d.exception_message ?? '').trim();
            const msg = `${d.exception_type ?? 'Error'}: ${text}`;
            node.kilnState.errors = { kind: 'execution', messages: [msg], inputs: new Set() };
            node.kilnState.running = false;
        }
        this.app.onExecutionError?.(d);
    }

    onInterrupted(d) {
        if (this.current && this.mine(d)) this.lastResult = 'interrupted';
        const node = this.app.nodeForId(d.node_id);
        if (node?.kilnState) {
            node.kilnState.running = false;
            node.progress = undefined;
        }
    }

    revokePreview(node) {
        const url = this.previewUrls.get(node);
        if (url) {
            URL.revokeObjectURL(url);
            this.previewUrls.delete(node);
        }
    }

    onPreview({ blob, meta }) {
        const id = meta?.display_node_id ?? meta?.node_id ?? this.current?.running;
        const node = id != null ? this.app.nodeForId(id) : null;
        if (!node?.setImages) return;
        this.revokePreview(node);
        const url = URL.createObjectURL(blob);
        this.previewUrls.set(node, url);
        node.setImages([url]);
    }

    /**
     * The run in numbers: {promptId, running (node id), runningTitle, value, max,
     * done, total, fraction (0..1), result}.
     */
    summary() {
        const c = this.current;
        if (!c) return { promptId: null, fraction: 0, result: this.lastResult };
        const total = this.prompts.get(c.id)?.nodes.size ?? Math.max(c.done.size + 1, 1);
        const step = c.max > 0 ? c.value / c.max : 0;
        const done = Math.min(c.done.size, total);
        let fraction =
            c.finished || this.lastResult === 'success'
                ? 1
                : Math.min(1, (done + (c.running != null ? step : 0)) / total);
        if (this.lastResult === 'error' || this.lastResult === 'interrupted')
            fraction = done / total;
        const node = c.running != null ? this.app.nodeForId(c.running) : null;
        return {
            promptId: c.id,
            running: c.running,
            runningTitle: node?.title ?? null,
            value: c.value,
            max: c.max,
            done,
            total,
            fraction,
            result: this.lastResult,
        };
    }
}
