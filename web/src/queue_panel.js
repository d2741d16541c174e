// The queue and history side panel: the running prompt (with Interrupt), pending prompts
// (with Cancel), and finished ones, newest first, with their status, result thumbnails and
// Load / Re-run / Delete. Everything comes from GET /queue and GET /history and is
// refreshed whenever the server broadcasts a status change.

function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
        if (k === 'class') e.className = v;
        else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
        else if (k === 'dataset') Object.assign(e.dataset, v);
        else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
}

function statusOf(entry) {
    const s = entry?.status;
    if (!s) return 'unknown';
    const msgs = Array.isArray(s.messages) ? s.messages.map((m) => m?.[0]) : [];
    if (msgs.includes('execution_interrupted')) return 'interrupted';
    if (s.status_str === 'error' || msgs.includes('execution_error')) return 'error';
    return s.completed ? 'success' : (s.status_str ?? 'unknown');
}

function outputImages(entry) {
    const out = [];
    for (const o of Object.values(entry?.outputs ?? {}))
        for (const img of Array.isArray(o?.images) ? o.images : []) out.push(img);
    return out;
}

export class QueuePanel {
    /**
     * root: the panel element. app: {api, loadWorkflowObject(wf), rerun(item), toast(msg)}.
     */
    constructor(root, app) {
        this.root = root;
        this.app = app;
        this.pending = false;
        this.timer = null;
        this.list = el('div', { class: 'queue-list' });
        root.append(
            el(
                'div',
                { class: 'panel-head' },
                el('span', {}, 'Queue & history'),
                el(
                    'button',
                    { class: 'small', id: 'history-clear', onclick: () => this.clearHistory() },
                    'Clear history',
                ),
            ),
            this.list,
        );
    }

    /** Refreshes soon; bursts of status messages collapse into one request. */
    refreshSoon() {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.refresh(), 150);
    }

    async refresh() {
        if (this.pending) {
            this.again = true;
            return;
        }
        this.pending = true;
        try {
            const [queue, history] = await Promise.all([
                this.app.api.getQueue(),
                this.app.api.getHistory(64),
            ]);
            this.render(queue, history);
        } catch {
            // The server is away; the connection indicator says so. Keep the last list.
        } finally {
            this.pending = false;
            if (this.again) {
                this.again = false;
                this.refreshSoon();
            }
        }
    }

    async clearHistory() {
        await this.app.api.clearHistory().catch((e) => this.app.toast(String(e.message)));
        this.refresh();
    }

    item(kind, label, id, number, buttons, extra = []) {
        return el(
            'div',
            { class: `queue-item ${kind} ${label}`, dataset: { promptId: id, kind } },
            el(
                'div',
                { class: 'qi-head' },
                el('span', { class: 'qi-badge' }, label),
                el(
                    'span',
                    { class: 'qi-id', title: id },
                    `#${number ?? '?'} ${String(id).slice(0, 8)}`,
                ),
            ),
            ...extra,
            el('div', { class: 'qi-buttons' }, ...buttons),
        );
    }

    render(queue, history) {
        const rows = [];
        const running = Array.isArray(queue?.queue_running) ? queue.queue_running : [];
        const pending = (Array.isArray(queue?.queue_pending) ? queue.queue_pending : [])
            .slice()
            .sort((a, b) => Number(a?.[0]) - Number(b?.[0]));
        for (const q of running) {
            rows.push(
                this.item('running', 'running', q[1], q[0], [
                    el(
                        'button',
                        { class: 'small', onclick: () => this.app.api.interrupt(q[1]) },
                        'Interrupt',
                    ),
                ]),
            );
        }
        for (const q of pending) {
            rows.push(
                this.item('pending', 'pending', q[1], q[0], [
                    el(
                        'button',
                        {
                            class: 'small',
                            onclick: async () => {
                                await this.app.api.deleteQueueItems([q[1]]);
                                this.refresh();
                            },
                        },
                        'Cancel',
                    ),
                ]),
            );
        }
        const entries = Object.entries(history ?? {}).reverse();
        for (const [id, entry] of entries) {
            const status = statusOf(entry);
            const imgs = outputImages(entry)
                .slice(0, 4)
                .map((f) =>
                    el('img', {
                        class: 'qi-thumb',
                        src: this.app.api.viewUrl(f),
                        alt: f.filename ?? '',
                    }),
                );
            const wf = entry?.prompt?.[3]?.extra_pnginfo?.workflow;
            const buttons = [
                el('button', { class: 'small', onclick: () => this.app.rerun(entry) }, 'Re-run'),
                el(
                    'button',
                    {
                        class: 'small',
                        onclick: async () => {
                            await this.app.api.deleteHistoryItems([id]);
                            this.refresh();
                        },
                    },
                    'Delete',
                ),
            ];
            if (wf)
                buttons.unshift(
                    el(
                        'button',
                        { class: 'small', onclick: () => this.app.loadWorkflowObject(wf) },
                        'Load',
                    ),
                );
            const item = this.item(
                'history',
                status,
                id,
                entry?.prompt?.[0],
                buttons,
                imgs.length ? [el('div', { class: 'qi-thumbs' }, ...imgs)] : [],
            );
            item.dataset.status = status;
            item.dataset.kind = 'history';
            rows.push(item);
        }
        if (!rows.length) rows.push(el('div', { class: 'queue-empty' }, 'Nothing queued yet.'));
        this.list.replaceChildren(...rows);
    }
}
