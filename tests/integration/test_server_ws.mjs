// WebSocket scenarios for tests/integration/test_server*.sh, run through node's `ws`
// package against a live `kiln serve`:  node test_server_ws.mjs SCENARIO PORT BASE [ARGS]
// Each scenario checks message types, order and fields against ComfyUI's protocol
// (comfyui-compat.md §5) and kiln's extensions (WebSocket submission, seq + replay),
// prints "ok SCENARIO" and exits 0, or prints what went wrong and exits 1.
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';

const [scenario, port, base, ...args] = process.argv.slice(2);
const url = (p) => `http://127.0.0.1:${port}${p}`;

function fail(msg, extra) {
    console.log(`FAIL ${scenario}: ${msg}`);
    if (extra !== undefined) console.log(JSON.stringify(extra, null, 1).slice(0, 6000));
    process.exit(1);
}
function assert(cond, msg, extra) {
    if (!cond) fail(msg, extra);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const readJSON = (f) => JSON.parse(fs.readFileSync(f, 'utf8'));
const sorted = (a) => [...a].sort();
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

async function http(method, p, body) {
    const res = await fetch(url(p), {method, body: body === undefined ? undefined :
        typeof body === 'string' ? body : JSON.stringify(body)});
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return {status: res.status, json, text};
}

async function submit(prompt, extra = {}) {
    const r = await http('POST', '/prompt', {prompt, ...extra});
    assert(r.status === 200, `POST /prompt answered ${r.status}`, r.text);
    return r.json;
}

// A WebSocket client that records every message and lets a scenario wait for one.
class Client {
    constructor(id, query = '', headers = {}) {
        this.id = id;
        this.msgs = [];
        this.binary = [];
        this.waiters = [];
        this.closed = null;
        const q = id === null ? '' : `clientId=${encodeURIComponent(id)}`;
        this.ws = new WebSocket(`ws://127.0.0.1:${port}/ws?${q}${query}`, {headers});
        this.ws.on('message', (data, isBinary) => {
            if (isBinary) { this.binary.push(data); return; }
            const m = JSON.parse(data.toString());
            this.msgs.push(m);
            this.waiters = this.waiters.filter((w) => !w.test(m));
        });
        this.ws.on('close', (code) => { this.closed = code; });
        this.ws.on('error', (e) => { this.error = e; });
    }
    open() {
        return this.waitFor((m) => m.type === 'status' && m.data.sid !== undefined);
    }
    waitFor(pred, ms = 60000, what = 'a message') {
        const found = this.msgs.find(pred);
        if (found) return Promise.resolve(found);
        return new Promise((resolve) => {
            const timer = setTimeout(() => fail(`timed out waiting for ${what}`,
                this.msgs.slice(-20)), ms);
            this.waiters.push({test: (m) => {
                if (!pred(m)) return false;
                clearTimeout(timer);
                resolve(m);
                return true;
            }});
        });
    }
    done(pid, ms) {
        return this.waitFor((m) => m.type === 'executing' && m.data.node === null &&
            m.data.prompt_id === pid, ms, `the end of ${pid}`);
    }
    send(obj) { this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj)); }
    of(pid) { return this.msgs.filter((m) => m.data && m.data.prompt_id === pid); }
    close() { this.ws.close(); }
}

function outputNodes(prompt) {
    return Object.keys(prompt).filter((k) => ['SaveImage', 'PreviewImage']
        .includes(prompt[k].class_type));
}

// Numbered messages carry seq 1, 2, 3, ... without gaps or repeats.
function checkSeq(msgs, first) {
    const seqs = msgs.filter((m) => m.seq !== undefined).map((m) => m.seq);
    seqs.forEach((s, i) => assert(s === first + i, `seq ${s} at position ${i}`, seqs));
    return seqs;
}

// The full §5.5 sequence of one prompt that ran every node.
function checkFirstRun(c, pid, prompt, number) {
    const all = c.msgs;
    const idx = (pred) => all.findIndex(pred);
    const start = idx((m) => m.type === 'execution_start' && m.data.prompt_id === pid);
    const cached = idx((m) => m.type === 'execution_cached' && m.data.prompt_id === pid);
    const success = idx((m) => m.type === 'execution_success' && m.data.prompt_id === pid);
    const end = idx((m) => m.type === 'executing' && m.data.node === null &&
        m.data.prompt_id === pid);
    assert(start >= 0 && cached === start + 1 && success > cached && end > success,
        'execution_start, execution_cached, ..., execution_success, executing null', all);
    assert(idx((m) => m.type === 'status' && m.data.status.exec_info.queue_remaining >= 1)
        < start, 'a status with the prompt queued precedes execution_start', all);
    const between = all.slice(success + 1, end);
    assert(between.length === 1 && between[0].type === 'status' &&
        between[0].data.status.exec_info.queue_remaining === 0 && between[0].seq === undefined,
        'exactly the status broadcast between execution_success and executing null', between);
    for (const i of [start, cached, success]) {
        assert(Number.isInteger(all[i].data.timestamp) && all[i].data.timestamp > 1.6e12,
            `${all[i].type} has an integer ms timestamp`, all[i]);
    }
    assert(same(all[cached].data.nodes, []), 'nothing cached on a first run', all[cached]);
    const executing = all.filter((m) => m.type === 'executing' && m.data.prompt_id === pid &&
        m.data.node !== null);
    assert(same(sorted(executing.map((m) => m.data.node)), sorted(Object.keys(prompt))),
        'every node executes once', executing);
    for (const m of executing) {
        const i = all.indexOf(m);
        assert(m.data.display_node === m.data.node, 'display_node equals node', m);
        const ps = all[i - 1];
        assert(ps.type === 'progress_state' && ps.data.prompt_id === pid &&
            ps.data.nodes[m.data.node].state === 'running' &&
            ps.data.nodes[m.data.node].node_id === m.data.node &&
            ps.data.nodes[m.data.node].parent_node_id === null,
            'progress_state (running) right before executing', [ps, m]);
    }
    for (const id of outputNodes(prompt)) {
        const i = idx((m) => m.type === 'executed' && m.data.node === id);
        assert(i > 0, `executed for output node ${id}`, all);
        const ex = all[i].data;
        assert(ex.display_node === id && ex.prompt_id === pid && Array.isArray(ex.output.images) &&
            ex.output.images.length > 0 && ex.output.images.every((im) =>
                typeof im.filename === 'string' && typeof im.subfolder === 'string' &&
                ['output', 'temp'].includes(im.type)), `executed ${id} fields`, ex);
        assert(all[i + 1].type === 'progress_state' &&
            all[i + 1].data.nodes[id].state === 'finished', 'progress_state finished after executed',
            all[i + 1]);
        for (const im of ex.output.images) {
            const f = path.join(base, im.type, im.subfolder, im.filename);
            assert(fs.existsSync(f), `${f} exists`);
        }
    }
    assert(all.filter((m) => m.type === 'executed').every((m) => outputNodes(prompt)
        .includes(m.data.node)), 'only output nodes send executed', all);
    checkSeq(all, all.find((m) => m.seq !== undefined).seq);
    return all.filter((m) => m.type === 'executed' && m.data.prompt_id === pid);
}

function checkHistory(h, pid, number, prompt, clientId, status) {
    const e = h[pid];
    assert(e, `history has ${pid}`, h);
    assert(e.prompt[0] === number && e.prompt[1] === pid && same(sorted(e.prompt[4]),
        sorted(outputNodes(prompt))) && e.prompt[3].client_id === clientId &&
        same(sorted(Object.keys(e.prompt[2])), sorted(Object.keys(prompt))),
        'history prompt = [number, id, prompt, extra_data, outputs]', e.prompt);
    assert(e.status.status_str === status && e.status.completed === (status === 'success'),
        'history status', e.status);
    const names = e.status.messages.map((m) => m[0]);
    return {e, names};
}

// ---- scenarios --------------------------------------------------------------------------

const scenarios = {
    // The §5.5 sequence, history, then an identical re-run served from the cache.
    async sequence() {
        const prompt = readJSON(args[0]);
        const c = new Client('seq-client');
        const hello = await c.open();
        assert(c.msgs[0] === hello && hello.data.sid === 'seq-client' &&
            Number.isInteger(hello.data.status.exec_info.queue_remaining) && hello.seq === undefined,
            'the first message is status with the sid', hello);
        const r = await submit(prompt, {client_id: c.id});
        assert(typeof r.prompt_id === 'string' && /^[0-9a-f-]{36}$/.test(r.prompt_id) &&
            Number.isInteger(r.number) && same(r.node_errors, {}), 'the 200 body', r);
        await c.done(r.prompt_id);
        const executed = checkFirstRun(c, r.prompt_id, prompt, r.number);
        const h = (await http('GET', `/history/${r.prompt_id}`)).json;
        const {e, names} = checkHistory(h, r.prompt_id, r.number, prompt, c.id, 'success');
        assert(same(names, ['execution_start', 'execution_cached', 'execution_success']),
            'history messages', names);
        for (const ex of executed) {
            assert(same(e.outputs[ex.data.node], ex.data.output), 'history outputs = executed',
                [e.outputs, ex]);
            assert(e.meta[ex.data.node].display_node === ex.data.node, 'history meta', e.meta);
        }
        // An identical prompt again: everything cached, outputs re-sent, no new file.
        const files = fs.readdirSync(path.join(base, 'output'), {recursive: true}).length;
        const before = c.msgs.length;
        const r2 = await submit(prompt, {client_id: c.id});
        await c.done(r2.prompt_id);
        const again = c.msgs.slice(before).filter((m) => m.data.prompt_id === r2.prompt_id);
        const types = again.map((m) => m.type);
        const cachedMsg = again.find((m) => m.type === 'execution_cached');
        assert(same(sorted(cachedMsg.data.nodes), sorted(Object.keys(prompt))),
            'the re-run reports every node in execution_cached', cachedMsg);
        assert(!again.some((m) => m.type === 'executing' && m.data.node !== null),
            'no node executes on an identical re-run', types);
        const ex2 = again.filter((m) => m.type === 'executed');
        assert(same(ex2.map((m) => [m.data.node, m.data.output]).sort(),
            executed.map((m) => [m.data.node, m.data.output]).sort()),
            'cached output nodes re-send their UI', [ex2, executed]);
        assert(types[0] === 'execution_start' && types.at(-2) === 'execution_success' &&
            types.at(-1) === 'executing', 'the re-run sequence', types);
        assert(fs.readdirSync(path.join(base, 'output'), {recursive: true}).length === files,
            'no new file on an identical re-run');
        c.close();
    },

    // Two clients, each receives only its own prompt's events; a third receives none.
    async two_clients() {
        const [pa, pb] = [readJSON(args[0]), readJSON(args[1])];
        const a = new Client('client-a'), b = new Client('client-b'), idle = new Client('idle');
        await Promise.all([a.open(), b.open(), idle.open()]);
        const [ra, rb] = await Promise.all([submit(pa, {client_id: 'client-a'}),
            submit(pb, {client_id: 'client-b'})]);
        await Promise.all([a.done(ra.prompt_id), b.done(rb.prompt_id)]);
        await idle.waitFor((m) => m.type === 'status' &&
            m.data.status.exec_info.queue_remaining === 0 && idle.msgs.length > 1);
        for (const [c, mine, other] of [[a, ra.prompt_id, rb.prompt_id],
            [b, rb.prompt_id, ra.prompt_id]]) {
            const events = c.msgs.filter((m) => m.type !== 'status');
            assert(events.length > 5 && events.every((m) => m.data.prompt_id === mine),
                `${c.id} receives only its own events`, events.filter((m) =>
                    m.data.prompt_id !== mine));
            assert(!c.of(other).length, `${c.id} sees nothing of the other prompt`);
            assert(c.msgs.filter((m) => m.type === 'status').length >= 2,
                `${c.id} receives the status broadcasts`);
        }
        assert(idle.msgs.every((m) => m.type === 'status'), 'the idle client only gets status',
            idle.msgs);
        for (const c of [a, b, idle]) c.close();
    },

    // kiln's extension: prompts submitted over the socket, plus feature negotiation.
    async ws_submit() {
        const [good, bad] = [readJSON(args[0]), readJSON(args[1])];
        const c = new Client('ws-submitter');
        await c.open();
        c.send({type: 'feature_flags', data: {supports_preview_metadata: true}});
        const ff = await c.waitFor((m) => m.type === 'feature_flags');
        assert(ff.data.supports_preview_metadata === true &&
            typeof ff.data.max_upload_size === 'number', 'feature_flags reply', ff);
        c.send({type: 'feature_flags', data: {}});   // only the first message counts
        c.send('this is not JSON');
        c.send({type: 'nonsense', data: {}});
        c.send({type: 'prompt', data: {prompt: good}});
        const q = await c.waitFor((m) => m.type === 'prompt_queued');
        assert(typeof q.data.prompt_id === 'string' && Number.isInteger(q.data.number) &&
            same(q.data.node_errors, {}) && Number.isInteger(q.seq), 'prompt_queued', q);
        await c.done(q.data.prompt_id);
        const i = c.msgs.indexOf(q);
        const start = c.msgs.findIndex((m) => m.type === 'execution_start' &&
            m.data.prompt_id === q.data.prompt_id);
        assert(start > i, 'prompt_queued precedes the execution events', c.msgs);
        assert(c.msgs.filter((m) => m.type === 'feature_flags').length === 1,
            'a second feature_flags is ignored');
        c.send({type: 'prompt', data: {prompt: bad}});
        const e = await c.waitFor((m) => m.type === 'prompt_error');
        assert(e.data.error.type === 'prompt_outputs_failed_validation' &&
            Object.keys(e.data.node_errors).length > 0, 'prompt_error carries the 400 body', e);
        c.send({type: 'prompt', data: {}});
        const e2 = await c.waitFor((m) => m.type === 'prompt_error' && m !== e);
        assert(e2.data.error.type === 'no_prompt', 'prompt_error no_prompt', e2);
        const own = {...good, 1: {...good[1], inputs: {...good[1].inputs, color: 123}}};
        c.send({type: 'prompt', data: {prompt: own, prompt_id: 'my-own-id'}});
        const q2 = await c.waitFor((m) => m.type === 'prompt_queued' && m !== q);
        assert(q2.data.prompt_id === 'my-own-id' && q2.data.number > q.data.number,
            'a client prompt_id is kept', q2);
        await c.done('my-own-id');
        checkSeq(c.msgs, 1);
        c.close();
    },

    // /interrupt: global, then by prompt_id (a wrong id is a no-op).
    async interrupt() {
        const [slow1, slow2, quick] = [readJSON(args[0]), readJSON(args[1]), readJSON(args[2])];
        const c = new Client('interrupter');
        await c.open();
        const r = await submit(slow1, {client_id: c.id});
        await c.waitFor((m) => m.type === 'executing' && m.data.prompt_id === r.prompt_id &&
            m.data.node !== null);
        assert((await http('POST', '/interrupt')).status === 200, '/interrupt answers 200');
        const intr = await c.waitFor((m) => m.type === 'execution_interrupted');
        assert(intr.data.prompt_id === r.prompt_id && typeof intr.data.node_id === 'string' &&
            typeof intr.data.node_type === 'string' && Array.isArray(intr.data.executed) &&
            Number.isInteger(intr.data.timestamp), 'execution_interrupted fields', intr);
        await c.done(r.prompt_id);
        assert(!c.of(r.prompt_id).some((m) => m.type === 'execution_success'),
            'no execution_success after an interrupt');
        const h = (await http('GET', `/history/${r.prompt_id}`)).json;
        const {names} = checkHistory(h, r.prompt_id, r.number, slow1, c.id, 'error');
        assert(names.at(-1) === 'execution_interrupted', 'history ends interrupted', names);
        // By prompt_id: another id does nothing, the right one interrupts.
        const r2 = await submit(slow2, {client_id: c.id});
        const first = await c.waitFor((m) => m.type === 'executing' &&
            m.data.prompt_id === r2.prompt_id && m.data.node !== null);
        await http('POST', '/interrupt', {prompt_id: 'not-the-running-one'});
        await c.waitFor((m) => m.type === 'executing' && m.data.prompt_id === r2.prompt_id &&
            m.data.node !== null && m !== first, 60000, 'a further node after a no-op interrupt');
        await http('POST', '/interrupt', {prompt_id: r2.prompt_id});
        await c.waitFor((m) => m.type === 'execution_interrupted' &&
            m.data.prompt_id === r2.prompt_id);
        await c.done(r2.prompt_id);
        const r3 = await submit(quick, {client_id: c.id});
        await c.done(r3.prompt_id);
        assert(c.of(r3.prompt_id).some((m) => m.type === 'execution_success'),
            'the queue goes on after interrupts');
        c.close();
    },

    // Missed events are replayed with ?since=N; without it, a reconnect during a run gets
    // ComfyUI's executing hint.
    async replay() {
        const [quick, slow] = [readJSON(args[0]), readJSON(args[1])];
        // A prompt for a client that is not connected: its events wait in the session.
        const r = await submit(quick, {client_id: 'late'});
        const h = await (async () => {
            for (let i = 0; i < 600; i++) {
                const x = (await http('GET', `/history/${r.prompt_id}`)).json;
                if (x[r.prompt_id]) return x;
                await sleep(50);
            }
            fail('the prompt never finished');
        })();
        assert(h[r.prompt_id].status.status_str === 'success', 'ran without a socket');
        const c = new Client('late', '&since=0');
        await c.done(r.prompt_id);
        const got = c.msgs.slice(1);
        assert(got[0].type === 'execution_start' && got[0].seq === 1, 'the replay starts at seq 1',
            got);
        const seqs = checkSeq(c.msgs, 1);
        c.close();
        const tail = new Client('late', `&since=${seqs.at(-1) - 2}`);
        await tail.done(r.prompt_id);
        await sleep(200);
        assert(tail.msgs.length === 3 && tail.msgs[1].seq === seqs.at(-1) - 1,
            'since=N replays only what follows N', tail.msgs);
        tail.close();
        // Disconnect in the middle of a prompt, come back with the last seq seen.
        const m = new Client('midway');
        await m.open();
        const r2 = await submit(slow, {client_id: 'midway'});
        await m.waitFor((x) => x.type === 'executing' && x.data.node !== null);
        const last = checkSeq(m.msgs, 1).at(-1);
        m.ws.terminate();
        const hint = new Client('midway');
        await hint.open();
        const h2 = await hint.waitFor((x) => x.type === 'executing', 30000);
        assert(hint.msgs.indexOf(h2) === 1 && typeof h2.data.node === 'string' &&
            h2.data.prompt_id === undefined && h2.seq === undefined,
            'a plain reconnect during a run gets the executing hint', hint.msgs);
        hint.close();
        const back = new Client('midway', `&since=${last}`);
        await back.done(r2.prompt_id);
        checkSeq(back.msgs, last + 1);
        assert(back.msgs.some((x) => x.type === 'execution_success'), 'nothing was lost');
        back.close();
    },

    // A client that vanishes while its prompt runs hurts nobody.
    async disconnect() {
        const [slow, quick] = [readJSON(args[0]), readJSON(args[1])];
        const d = new Client('vanishing');
        await d.open();
        const r = await submit(slow, {client_id: 'vanishing'});
        await d.waitFor((m) => m.type === 'execution_start');
        d.ws.terminate();
        const e = new Client('bystander');
        await e.open();
        const r2 = await submit(quick, {client_id: 'bystander'});
        await e.done(r2.prompt_id, 120000);
        const h = (await http('GET', `/history/${r.prompt_id}`)).json;
        assert(h[r.prompt_id] && h[r.prompt_id].status.status_str === 'success',
            'the vanished client\'s prompt completed', h);
        e.close();
    },

    // A client that stops reading is disconnected once its send queue overflows; the
    // others are served, and the slow one can catch up from its session after reconnecting.
    async slow_reader() {
        const wide = readJSON(args[0]);
        const s = new Client('sloth'), f = new Client('fast');
        await Promise.all([s.open(), f.open()]);
        s.ws._socket.pause();
        const ids = [];
        for (let i = 0; i < 24; i++) {
            const p = {...wide, 1: {...wide[1], inputs: {...wide[1].inputs, color: 1000 + i}}};
            ids.push((await submit(p, {client_id: 'sloth'})).prompt_id);
        }
        const r = await submit({...wide, 1: {...wide[1], inputs: {...wide[1].inputs,
            color: 7}}}, {client_id: 'fast'});
        await f.done(r.prompt_id, 120000);
        s.ws._socket.resume();
        for (let i = 0; i < 200 && s.closed === null; i++) await sleep(50);
        // 1008 when the close frame gets through, 1006 when the socket stayed full and
        // the server had to cut it.
        assert(s.closed === 1008 || s.closed === 1006,
            `the slow client is disconnected (close code ${s.closed})`);
        const last = s.msgs.filter((m) => m.seq !== undefined).map((m) => m.seq).at(-1) || 0;
        const back = new Client('sloth', `&since=${last}`);
        await back.done(ids.at(-1), 60000);
        back.close();
        f.close();
    },

    // Refused handshakes and oversized messages.
    async bad_ws() {
        const good = readJSON(args[0]);
        const evil = new Client('x', '', {Origin: 'http://evil.example'});
        for (let i = 0; i < 100 && !evil.error && evil.closed === null; i++) await sleep(20);
        assert(evil.msgs.length === 0 && (evil.error || evil.closed !== null),
            'a cross-origin handshake is refused');
        const wrong = new WebSocket(`ws://127.0.0.1:${port}/not-ws`);
        const refused = await new Promise((res) => {
            wrong.on('open', () => res(false));
            wrong.on('error', () => res(true));
        });
        assert(refused, 'a WebSocket on another path is refused');
        const c = new Client('big-talker');
        await c.open();
        c.send('x'.repeat(3 * 1024 * 1024));
        const err = await c.waitFor((m) => m.type === 'error');
        assert(/size limit/.test(err.data.message), 'an oversized message is refused', err);
        c.ws.send(Buffer.from([1, 2, 3]));   // binary from a client is ignored
        c.send({type: 'prompt', data: {prompt: good}});
        const q = await c.waitFor((m) => m.type === 'prompt_queued');
        await c.done(q.data.prompt_id);
        assert(c.closed === null, 'the connection survived');
        c.close();
    },
};

if (!scenarios[scenario]) fail(`unknown scenario ${scenario}`);
await scenarios[scenario]();
console.log(`ok ${scenario}`);
process.exit(0);
