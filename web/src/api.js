// The page's only way to reach kiln: the ComfyUI-compatible HTTP routes under /api and the
// /ws WebSocket (../shared/docs/comfyui-compat.md §4-§5). The socket reconnects by itself
// with a capped back-off and reuses its client id, so the server routes the events of
// prompts queued before a restart back to this page. Listeners receive every JSON message
// as an event named after its type, binary preview frames as "b_preview", and the
// connection state as "connection" ({state: "connecting" | "open" | "closed"}).

const PREVIEW_IMAGE = 1;
const TEXT = 3;
const PREVIEW_IMAGE_WITH_METADATA = 4;

/** An HTTP answer that was not 2xx; body is the parsed JSON body when there is one. */
export class ApiError extends Error {
    constructor(status, body, text) {
        super(
            typeof body?.error === 'string'
                ? body.error
                : (body?.error?.message ??
                      `HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ''}`),
        );
        this.status = status;
        this.body = body;
    }
}

function randomId() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

export class KilnApi extends EventTarget {
    /**
     * base: the server's origin and path prefix ("" = the page's own). The client id is
     * kept in sessionStorage so a reload reconnects as the same client.
     */
    constructor(base = '') {
        super();
        this.base = base.replace(/\/$/, '');
        this.clientId = sessionStorage.getItem('kiln.clientId') || randomId();
        sessionStorage.setItem('kiln.clientId', this.clientId);
        this.state = 'closed';
        this.socket = null;
        this.retryMs = 250;
        this.closedOnPurpose = false;
    }

    // ---- HTTP ---------------------------------------------------------------------------

    apiUrl(route) {
        return `${this.base}/api${route}`;
    }

    async fetchApi(route, init = {}) {
        const res = await fetch(this.apiUrl(route), { cache: 'no-store', ...init });
        const text = await res.text();
        let body = null;
        if (text) {
            try {
                body = JSON.parse(text);
            } catch {
                body = null;
            }
        }
        if (!res.ok) throw new ApiError(res.status, body, body ? '' : text);
        return body;
    }

    postJson(route, data) {
        return this.fetchApi(route, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify(data),
        });
    }

    getObjectInfo() {
        return this.fetchApi('/object_info');
    }

    /**
     * POST /prompt with this page's client id. extraData is stored with the prompt
     * (extra_pnginfo.workflow goes into saved PNGs). Resolves with {prompt_id, number,
     * node_errors}; a 400 rejects with an ApiError whose body holds {error, node_errors}.
     */
    queuePrompt(prompt, extraData = {}, opts = {}) {
        const body = { client_id: this.clientId, prompt, extra_data: extraData };
        if (opts.front) body.front = true;
        return this.postJson('/prompt', body);
    }

    getQueue() {
        return this.fetchApi('/queue');
    }

    getHistory(maxItems = 200) {
        return this.fetchApi(`/history?max_items=${maxItems}`);
    }

    deleteQueueItems(ids) {
        return this.postJson('/queue', { delete: ids });
    }

    deleteHistoryItems(ids) {
        return this.postJson('/history', { delete: ids });
    }

    clearHistory() {
        return this.postJson('/history', { clear: true });
    }

    interrupt(promptId) {
        return this.postJson('/interrupt', promptId ? { prompt_id: promptId } : {});
    }

    async uploadImage(file, subfolder = '') {
        const form = new FormData();
        form.append('image', file, file.name);
        form.append('type', 'input');
        form.append('subfolder', subfolder);
        return this.fetchApi('/upload/image', { method: 'POST', body: form });
    }

    /** The /view URL of an output file record {filename, subfolder, type}. */
    viewUrl(file) {
        const q = new URLSearchParams({
            filename: file.filename ?? '',
            type: file.type ?? 'output',
            subfolder: file.subfolder ?? '',
        });
        return `${this.apiUrl('/view')}?${q}`;
    }

    // ---- WebSocket ------------------------------------------------------------------------

    setState(state) {
        if (this.state === state) return;
        this.state = state;
        this.dispatchEvent(new CustomEvent('connection', { detail: { state } }));
    }

    /** Opens the socket; it then stays open, reconnecting after every loss. */
    connect() {
        this.closedOnPurpose = false;
        this.open();
    }

    open() {
        const loc = this.base ? new URL(this.base, location.href) : location;
        const proto = loc.protocol === 'https:' ? 'wss:' : 'ws:';
        const path = this.base ? new URL(this.base, location.href).pathname.replace(/\/$/, '') : '';
        const url = `${proto}//${loc.host}${path}/ws?clientId=${encodeURIComponent(this.clientId)}`;
        this.setState('connecting');
        let ws;
        try {
            ws = new WebSocket(url);
        } catch {
            this.scheduleReconnect();
            return;
        }
        ws.binaryType = 'arraybuffer';
        this.socket = ws;
        ws.addEventListener('open', () => {
            this.retryMs = 250;
            ws.send(
                JSON.stringify({
                    type: 'feature_flags',
                    data: { supports_preview_metadata: true },
                }),
            );
            this.setState('open');
            this.dispatchEvent(new CustomEvent('connected'));
        });
        ws.addEventListener('message', (ev) => this.onMessage(ev));
        ws.addEventListener('close', () => {
            if (this.socket !== ws) return;
            this.socket = null;
            this.setState('closed');
            if (!this.closedOnPurpose) this.scheduleReconnect();
        });
        // An error is always followed by close, which schedules the retry.
    }

    scheduleReconnect() {
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.open(), this.retryMs);
        this.retryMs = Math.min(this.retryMs * 2, 2000);
    }

    close() {
        this.closedOnPurpose = true;
        clearTimeout(this.retryTimer);
        this.socket?.close();
    }

    onMessage(ev) {
        if (ev.data instanceof ArrayBuffer) {
            this.onBinary(ev.data);
            return;
        }
        let msg;
        try {
            msg = JSON.parse(ev.data);
        } catch {
            return;
        }
        if (!msg || typeof msg.type !== 'string') return;
        if (msg.type === 'status' && msg.data?.sid) {
            this.clientId = msg.data.sid;
            sessionStorage.setItem('kiln.clientId', this.clientId);
        }
        this.dispatchEvent(new CustomEvent(msg.type, { detail: msg.data ?? {} }));
    }

    onBinary(buf) {
        if (buf.byteLength < 4) return;
        const view = new DataView(buf);
        const type = view.getUint32(0);
        if (type === PREVIEW_IMAGE && buf.byteLength >= 8) {
            const mime = view.getUint32(4) === 2 ? 'image/png' : 'image/jpeg';
            this.dispatchEvent(
                new CustomEvent('b_preview', {
                    detail: { blob: new Blob([buf.slice(8)], { type: mime }), meta: null },
                }),
            );
        } else if (type === PREVIEW_IMAGE_WITH_METADATA && buf.byteLength >= 8) {
            const len = view.getUint32(4);
            if (8 + len > buf.byteLength) return;
            let meta = null;
            try {
                meta = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, len)));
            } catch {
                return;
            }
            const mime = meta?.image_type === 'image/png' ? 'image/png' : 'image/jpeg';
            this.dispatchEvent(
                new CustomEvent('b_preview', {
                    detail: { blob: new Blob([buf.slice(8 + len)], { type: mime }), meta },
                }),
            );
        } else if (type === TEXT && buf.byteLength >= 8) {
            const len = view.getUint32(4);
            if (8 + len > buf.byteLength) return;
            const dec = new TextDecoder();
            this.dispatchEvent(
                new CustomEvent('progress_text', {
                    detail: {
                        node: dec.decode(new Uint8Array(buf, 8, len)),
                        text: dec.decode(new Uint8Array(buf, 8 + len)),
                    },
                }),
            );
        }
    }
}
