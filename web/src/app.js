// The editor: node definitions from /object_info turned into canvas node types, the
// LiteGraph canvas, the toolbar (queue with batch count, interrupt, open, save, export),
// queueing exactly as ComfyUI's editor does (convert, POST, then apply the widgets'
// control_after_generate), live progress through ExecutionView, the queue/history panel,
// file loading by picker or drag-and-drop, persistence in localStorage, and the
// connection indicator for the self-reconnecting WebSocket.
import { LGraph, LGraphCanvas, LiteGraph } from '@comfyorg/litegraph';

import { ApiError, KilnApi } from './api.js';
import { defaultGraph } from './default_graph.js';
import { ExecutionView } from './execution.js';
import { WorkflowError, graphToPrompt } from './lib/convert.js';
import { registerNodeDefs } from './nodes.js';
import { QueuePanel } from './queue_panel.js';
import { applyTheme } from './theme.js';
import { registerVirtualNodes } from './virtual_nodes.js';
import { applyControl, endWidgetFrame } from './widgets.js';
import { loadApiPrompt, loadUiWorkflow, readGraphFile, serializeWorkflow } from './workflow.js';

const STORAGE_KEY = 'kiln.workflow';

const $ = (id) => document.getElementById(id);

function download(name, text) {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

export class App {
    constructor() {
        this.api = new KilnApi();
        this.defs = {};
        this.queued = []; // prompt ids this page queued, oldest first
        this.lastSaved = '';
        this.LiteGraph = LiteGraph; // for the console and the end-to-end tests
    }

    // ---- start-up -------------------------------------------------------------------------

    async start() {
        this.setConnection('connecting');
        this.api.addEventListener('connection', (e) => this.setConnection(e.detail.state));
        this.defs = await this.loadDefinitions();
        const widgetCtx = {
            host: $('canvas-host'),
            getCanvas: () => this.canvas,
            onChange: () => this.redraw(),
            upload: (node, widget) => this.pickUpload(node, widget),
        };
        this.widgetCtx = widgetCtx;
        registerVirtualNodes(widgetCtx);
        registerNodeDefs(this.defs, widgetCtx);
        LiteGraph.release_link_on_empty_shows_menu = true;
        LiteGraph.alt_drag_do_clone_nodes = true;

        this.graph = new LGraph();
        this.canvas = new LGraphCanvas($('graph-canvas'), this.graph);
        applyTheme(this.canvas);
        this.canvas.show_info = false;
        this.canvas.render_canvas_border = false;
        this.canvas.onDrawForeground = () => endWidgetFrame();
        new ResizeObserver(() => this.resizeCanvas()).observe($('canvas-host'));
        this.resizeCanvas();

        this.exec = new ExecutionView(this);
        this.exec.addEventListener('change', () => this.renderRunStatus());
        this.panel = new QueuePanel($('queue-panel'), this);
        this.bindToolbar();
        this.bindDrop();
        this.bindKeys();

        this.restoreGraph();
        this.api.addEventListener('status', () => this.panel.refreshSoon());
        this.api.addEventListener('execution_success', () => this.panel.refreshSoon());
        this.api.addEventListener('execution_error', () => this.panel.refreshSoon());
        this.api.addEventListener('execution_interrupted', () => this.panel.refreshSoon());
        this.api.addEventListener(
            'executing',
            (e) => e.detail?.node == null && this.panel.refreshSoon(),
        );
        this.api.addEventListener('connected', () => this.onConnected());
        this.api.connect();
        this.panel.refresh();
        setInterval(() => this.persist(), 1000);
        addEventListener('beforeunload', () => this.persist());
        document.body.dataset.ready = 'true';
    }

    /** Registers node classes for definitions the server did not send (tests, embedders);
     * they are also used when converting. */
    registerDefs(defs) {
        registerNodeDefs(defs, this.widgetCtx);
        this.defs = { ...this.defs, ...defs };
    }

    /** GET /object_info, retried until the server answers. */
    async loadDefinitions() {
        for (let wait = 250; ; wait = Math.min(wait * 2, 2000)) {
            try {
                return await this.api.getObjectInfo();
            } catch (e) {
                this.setMessage(`waiting for the server: ${e.message}`);
                await new Promise((r) => setTimeout(r, wait));
            }
        }
    }

    /** Sizes the canvas to its host in device pixels (sharp on high-DPI screens) and
     * scales its context so that LiteGraph keeps drawing in CSS pixels. */
    resizeCanvas() {
        const host = $('canvas-host');
        const dpr = Math.max(1, window.devicePixelRatio || 1);
        const el = this.canvas.canvas;
        const w = Math.round(host.clientWidth * dpr);
        const h = Math.round(host.clientHeight * dpr);
        el.style.width = `${host.clientWidth}px`;
        el.style.height = `${host.clientHeight}px`;
        if (el.width !== w || el.height !== h) {
            this.canvas.resize(w, h); // resets the context's transform
            el.getContext('2d').scale(dpr, dpr);
        }
        this.redraw();
    }

    redraw() {
        this.canvas?.setDirty(true, true);
    }

    // ---- graph in and out ---------------------------------------------------------------

    restoreGraph() {
        const saved = localStorage.getItem(STORAGE_KEY);
        if (saved) {
            try {
                this.loadWorkflowObject(JSON.parse(saved), { quiet: true });
                return;
            } catch (e) {
                this.toast(`could not restore the last graph: ${e.message}`);
            }
        }
        this.loadWorkflowObject(defaultGraph(), { quiet: true });
    }

    persist() {
        if (!this.graph) return;
        let text;
        try {
            text = JSON.stringify(serializeWorkflow(this.graph));
        } catch {
            return;
        }
        if (text !== this.lastSaved) {
            try {
                localStorage.setItem(STORAGE_KEY, text);
                this.lastSaved = text;
            } catch (e) {
                // Over the storage quota: keep editing, say it once.
                if (!this.storageFull)
                    this.toast(
                        `the graph is too large to keep across reloads (${e.message})`,
                        true,
                    );
                this.storageFull = true;
            }
        }
    }

    afterLoad(missing, what, quiet) {
        this.exec.resetNodes(true);
        this.showErrorList([]);
        if (missing.length)
            this.toast(`${what}: node types this server does not have: ${missing.join(', ')}`);
        else if (!quiet) this.toast(`loaded ${what}`);
        this.persist();
        this.redraw();
    }

    loadWorkflowObject(wf, { quiet = false, what = 'workflow' } = {}) {
        const missing = loadUiWorkflow(this.graph, wf);
        const ds = wf?.extra?.ds;
        if (ds && Array.isArray(ds.offset) && typeof ds.scale === 'number') {
            this.canvas.ds.offset = [...ds.offset];
            this.canvas.ds.scale = ds.scale;
        } else {
            this.fitView();
        }
        this.afterLoad(missing, what, quiet);
    }

    loadPromptObject(prompt, what = 'API prompt') {
        const missing = loadApiPrompt(this.graph, prompt);
        this.fitView();
        this.afterLoad(missing, what, false);
    }

    async loadFile(file) {
        try {
            const found = await readGraphFile(file);
            if (found.workflow) this.loadWorkflowObject(found.workflow, { what: file.name });
            else this.loadPromptObject(found.prompt, file.name);
        } catch (e) {
            this.toast(e.message, true);
        }
    }

    /** Pans and zooms so that every node is in view (zooming in no further than 1:1). */
    fitView() {
        const nodes = this.graph._nodes;
        const ds = this.canvas.ds;
        if (!nodes.length) {
            ds.offset = [0, 0];
            ds.scale = 1;
            return;
        }
        const th = LiteGraph.NODE_TITLE_HEIGHT;
        const x0 = Math.min(...nodes.map((n) => n.pos[0]));
        const y0 = Math.min(...nodes.map((n) => n.pos[1] - th));
        const x1 = Math.max(...nodes.map((n) => n.pos[0] + n.size[0]));
        const y1 = Math.max(...nodes.map((n) => n.pos[1] + n.size[1]));
        const w = this.canvas.canvas.clientWidth,
            h = this.canvas.canvas.clientHeight;
        const scale = Math.min(1, (w - 80) / (x1 - x0), (h - 80) / (y1 - y0));
        ds.scale = Math.max(0.1, scale);
        ds.offset = [(w / ds.scale - (x1 - x0)) / 2 - x0, (h / ds.scale - (y1 - y0)) / 2 - y0];
        this.redraw();
    }

    /** The canvas node a server node id names ("12:5" inside a subgraph: node 12). */
    nodeForId(id) {
        if (id == null || !this.graph) return null;
        const top = String(id).split(':')[0];
        return (
            this.graph.getNodeById(Number.isNaN(Number(top)) ? top : Number(top)) ??
            this.graph.getNodeById(top) ??
            null
        );
    }

    // ---- queueing -----------------------------------------------------------------------

    /** The graph as the editor queues it: {workflow, prompt}. Throws WorkflowError. */
    toPrompt() {
        for (const n of this.graph._nodes) n.applyToGraph?.();
        const workflow = serializeWorkflow(this.graph);
        const prompt = graphToPrompt(workflow, this.defs);
        // A widget without a value (an empty combo) is saved as null but, like the
        // editor's undefined, left out of the prompt.
        for (const n of this.graph._nodes) {
            const inputs = prompt[String(n.id)]?.inputs;
            for (const w of inputs ? (n.widgets ?? []) : [])
                if (w.kilnSpec && w.value === undefined && inputs[w.name] === null)
                    delete inputs[w.name];
        }
        return { workflow, prompt };
    }

    /** Queues the graph `count` times, stepping control widgets after each, as ComfyUI. */
    async queue(count = 1) {
        this.exec.clearErrors();
        this.showErrorList([]);
        for (let i = 0; i < count; i++) {
            let p;
            try {
                p = this.toPrompt();
            } catch (e) {
                this.toast(
                    e instanceof WorkflowError ? e.message : `cannot convert: ${e.message}`,
                    true,
                );
                return false;
            }
            try {
                const res = await this.api.queuePrompt(p.prompt, {
                    extra_pnginfo: { workflow: p.workflow },
                });
                this.exec.track(res.prompt_id, p.prompt);
                this.queued.push(res.prompt_id);
                this.renderRunStatus();
                if (res.node_errors && Object.keys(res.node_errors).length)
                    this.showErrorList(this.exec.showValidationErrors(res.node_errors));
            } catch (e) {
                this.onQueueError(e);
                return false;
            }
            for (const n of this.graph._nodes)
                for (const w of n.widgets ?? []) if (w.kilnControlFor) applyControl(w);
            this.redraw();
        }
        this.persist();
        this.panel.refreshSoon();
        return true;
    }

    onQueueError(e) {
        this.exec.current = null;
        this.exec.lastResult = null;
        this.renderRunStatus();
        this.setMessage('not queued');
        if (e instanceof ApiError && e.body?.node_errors) {
            const list = this.exec.showValidationErrors(e.body.node_errors);
            const head = e.body.error?.message ?? e.message;
            const details = e.body.error?.details;
            this.showErrorList(
                list,
                list.length ? head : `${head}${details ? `: ${details}` : ''}`,
            );
            this.toast(head, true);
        } else {
            this.toast(`queue failed: ${e.message}`, true);
        }
    }

    async rerun(entry) {
        const prompt = entry?.prompt?.[2];
        if (!prompt) {
            this.toast('this history entry has no prompt', true);
            return;
        }
        const extra = { ...(entry.prompt[3] ?? {}) };
        delete extra.client_id;
        try {
            const res = await this.api.queuePrompt(prompt, extra);
            this.exec.track(res.prompt_id, prompt);
            this.queued.push(res.prompt_id);
        } catch (e) {
            this.onQueueError(e);
        }
        this.panel.refreshSoon();
    }

    onExecutionError(d) {
        const node = this.nodeForId(d.node_id);
        this.showErrorList(
            [
                {
                    nodeId: String(d.node_id),
                    classType: d.node_type ?? node?.type ?? '',
                    messages: [`${d.exception_type}: ${String(d.exception_message ?? '').trim()}`],
                    inputs: new Set(),
                },
            ],
            'Execution failed',
        );
    }

    /** On every (re)connection: the server may have restarted with other models. */
    async onConnected() {
        this.panel.refresh();
        // The server may have restarted with other models: refresh the combo lists.
        try {
            const defs = await this.api.getObjectInfo();
            this.defs = defs;
            for (const n of this.graph._nodes) {
                const def = defs[n.type];
                for (const w of n.widgets ?? []) {
                    const spec = w.kilnSpec;
                    if (!def || !spec?.combo || w.kilnControlFor) continue;
                    const entry =
                        def.input?.required?.[spec.name] ?? def.input?.optional?.[spec.name];
                    const list = Array.isArray(entry?.[0]) ? entry[0] : entry?.[1]?.options;
                    if (Array.isArray(list))
                        w.options.values = list.includes(w.value) ? [...list] : [...list, w.value];
                }
            }
            this.redraw();
        } catch {
            // Still starting; the next reconnect tries again.
        }
    }

    // ---- uploads --------------------------------------------------------------------------

    pickUpload(node, widget) {
        const input = document.createElement('input');
        input.type = 'file';
        input.accept = 'image/*';
        input.addEventListener('change', () => {
            if (input.files?.[0]) this.uploadTo(node, widget, input.files[0]);
        });
        input.click();
    }

    async uploadTo(node, widget, file) {
        try {
            const res = await this.api.uploadImage(file);
            const name = res.subfolder ? `${res.subfolder}/${res.name}` : res.name;
            if (!widget.options.values.includes(name))
                widget.options.values = [...widget.options.values, name];
            widget.value = name;
            node.setImages?.([
                this.api.viewUrl({ filename: res.name, subfolder: res.subfolder, type: 'input' }),
            ]);
            this.redraw();
        } catch (e) {
            this.toast(`upload failed: ${e.message}`, true);
        }
    }

    // ---- DOM ----------------------------------------------------------------------------

    bindToolbar() {
        $('queue-button').addEventListener('click', () => {
            const n = Math.max(1, Math.min(100, Number($('batch-count').value) || 1));
            this.queue(n);
        });
        $('interrupt-button').addEventListener('click', () => {
            this.api.interrupt().catch((e) => this.toast(`interrupt failed: ${e.message}`, true));
        });
        $('open-button').addEventListener('click', () => $('file-input').click());
        $('file-input').addEventListener('change', (e) => {
            const f = e.target.files?.[0];
            if (f) this.loadFile(f);
            e.target.value = '';
        });
        $('save-button').addEventListener('click', () => {
            download('workflow.json', JSON.stringify(serializeWorkflow(this.graph), null, 2));
        });
        $('export-api-button').addEventListener('click', () => {
            try {
                download('workflow_api.json', JSON.stringify(this.toPrompt().prompt, null, 2));
            } catch (e) {
                this.toast(e.message, true);
            }
        });
        $('default-button').addEventListener('click', () => {
            this.loadWorkflowObject(defaultGraph(), { what: 'the default graph' });
        });
        $('clear-button').addEventListener('click', () => {
            this.graph.clear();
            this.graph.kilnDefinitions = null;
            this.afterLoad([], 'an empty graph', true);
        });
    }

    bindDrop() {
        const host = $('canvas-host');
        host.addEventListener('dragover', (e) => {
            e.preventDefault();
            e.dataTransfer.dropEffect = 'copy';
        });
        host.addEventListener('drop', (e) => {
            e.preventDefault();
            const file = e.dataTransfer?.files?.[0];
            if (!file) return;
            // An image dropped onto a node with an upload button goes to that node.
            const [x, y] = this.canvas.convertEventToCanvasOffset(e);
            const node = this.graph.getNodeOnPos(x, y);
            const upload = node?.widgets?.find((w) => w.kilnUploadFor);
            if (upload && file.type.startsWith('image/')) {
                this.uploadTo(node, upload.kilnUploadFor, file);
                return;
            }
            this.loadFile(file);
        });
    }

    bindKeys() {
        addEventListener('keydown', (e) => {
            const inText = /^(textarea|input|select)$/i.test(e.target?.localName ?? '');
            if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') {
                e.preventDefault();
                $('queue-button').click();
            } else if (!inText && (e.ctrlKey || e.metaKey) && (e.key === 'm' || e.key === 'b')) {
                e.preventDefault();
                const mode = e.key === 'm' ? 2 : 4;
                for (const n of Object.values(this.canvas.selected_nodes ?? {}))
                    n.mode = n.mode === mode ? 0 : mode;
                this.redraw();
            }
        });
    }

    setConnection(state) {
        const el = $('connection');
        el.dataset.state = state;
        el.textContent =
            { open: 'connected', connecting: 'connecting…', closed: 'disconnected' }[state] ??
            state;
    }

    setMessage(text) {
        $('run-status').textContent = text;
    }

    renderRunStatus() {
        const s = this.exec.summary();
        const bar = $('overall-progress');
        bar.style.width = `${Math.round(s.fraction * 100)}%`;
        bar.dataset.result = s.result ?? '';
        const status = $('run-status');
        status.dataset.promptId = s.promptId ?? '';
        status.dataset.result = s.result ?? '';
        if (!s.promptId) {
            status.textContent = '';
            return;
        }
        if (s.result === 'success') status.textContent = `done · ${s.total} nodes`;
        else if (s.result === 'error') status.textContent = 'failed';
        else if (s.result === 'interrupted') status.textContent = 'interrupted';
        else
            status.textContent =
                `${s.done}/${s.total} nodes${s.runningTitle ? ` · ${s.runningTitle}` : ''}` +
                `${s.max > 0 ? ` ${s.value}/${s.max}` : ''}`;
    }

    /** Fills the error list under the canvas; entries centre their node when clicked. */
    showErrorList(list, heading) {
        const box = $('errors');
        box.replaceChildren();
        box.hidden = !list.length && !heading;
        if (heading) {
            const h = document.createElement('div');
            h.className = 'errors-head';
            h.textContent = heading;
            box.append(h);
        }
        for (const e of list) {
            const node = this.nodeForId(e.nodeId);
            const item = document.createElement('div');
            item.className = 'error-item';
            item.dataset.nodeId = e.nodeId;
            const title = node?.title ?? e.classType;
            item.textContent = `#${e.nodeId} ${title}: ${e.messages.join('; ')}`;
            item.addEventListener('click', () => node && this.canvas.centerOnNode(node));
            box.append(item);
        }
    }

    toast(message, isError = false) {
        const t = document.createElement('div');
        t.className = `toast${isError ? ' error' : ''}`;
        t.textContent = message;
        const box = $('toasts');
        box.append(t);
        while (box.children.length > 3) box.firstChild.remove();
        setTimeout(() => t.remove(), isError ? 8000 : 4000);
    }
}
