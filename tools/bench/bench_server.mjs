// Load benchmark of `kiln serve` over loopback (run through bench_server.sh, which starts
// the server):  node bench_server.mjs PORT SERVER_PID BASE_DIR SERVER_LOG [--quick]
// 1. GET /object_info and 2. POST /prompt (a trivial workflow, 50 concurrent submitters):
//    requests/s and p50/p99 latency over keep-alive connections, saturated (each
//    submitter sends its next request as soon as the last is answered, so latency there
//    is mostly queueing: 50 in flight / throughput) and paced (each submitter sends one
//    request every 50 ms on average, 1,000 requests/s in all: the time to accept one).
// 3. 200 WebSocket clients connected while 1,000 prompts go through, each submitted for
//    one of them: every client must receive exactly its own prompts' events (nothing
//    lost: seq has no gap and each prompt ends with executing null; nothing misrouted).
// 4. The server's RSS: peak (VmHWM), and after each of four identical rounds of 3, the
//    same 200 client ids each time and the history cleared between rounds (flat).
import fs from 'node:fs';
import http from 'node:http';
import {createRequire} from 'node:module';

// ws comes from tests/integration (npm ci --prefix tests/integration).
const require = createRequire(new URL('../../tests/integration/package.json', import.meta.url));
const WebSocket = require('ws');

const [port, pid, baseDir, serverLog] = process.argv.slice(2);
const quick = process.argv.includes('--quick');
const agent = new http.Agent({keepAlive: true, maxSockets: 256});

function request(method, path, body) {
    return new Promise((resolve, reject) => {
        const t0 = process.hrtime.bigint();
        const req = http.request({host: '127.0.0.1', port, method, path, agent,
            headers: body ? {'content-type': 'application/json',
                'content-length': Buffer.byteLength(body)} : {}}, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => resolve({status: res.statusCode,
                ms: Number(process.hrtime.bigint() - t0) / 1e6,
                body: Buffer.concat(chunks).toString()}));
        });
        req.on('error', reject);
        if (body) req.write(body);
        req.end();
    });
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

// The server runs with --verbose: each request's log line carries the time it took to
// answer (request line to response ready). logMark/serverTimes read one phase's lines.
const logMark = () => fs.statSync(serverLog).size;
function serverTimes(from, route) {
    const fd = fs.openSync(serverLog, 'r');
    const size = fs.fstatSync(fd).size;
    const buf = Buffer.alloc(size - from);
    fs.readSync(fd, buf, 0, buf.length, from);
    fs.closeSync(fd);
    const re = new RegExp(`^kiln: \\[info\\] ${route} -> \\d+ \\(([0-9.]+) ms\\)$`);
    const t = buf.toString().split('\n').map((l) => l.match(re)).filter(Boolean).map((m) => +m[1]);
    t.sort((a, b) => a - b);
    return {p50: pct(t, 0.5), p99: pct(t, 0.99)};
}

// load() over one route, with the server's own view of the same requests.
async function phase(route, n, conc, make, gapMs = 0) {
    const mark = logMark();
    const r = await load(n, conc, make, gapMs);
    await new Promise((res) => setTimeout(res, 200));
    r.server = serverTimes(mark, route);
    return r;
}

// n requests, `conc` in flight at a time (each sender pausing `gapMs` on average between
// its requests); returns req/s and latency percentiles.
async function load(n, conc, make, gapMs = 0) {
    const lat = [];
    let next = 0, bad = 0;
    const t0 = process.hrtime.bigint();
    await Promise.all(Array.from({length: conc}, async () => {
        while (next < n) {
            const i = next++;
            if (gapMs) await new Promise((res) => setTimeout(res, Math.random() * 2 * gapMs));
            const r = await make(i);
            if (r.status !== 200) bad++;
            lat.push(r.ms);
        }
    }));
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    lat.sort((a, b) => a - b);
    return {n, conc, rps: n / secs, p50: pct(lat, 0.5), p99: pct(lat, 0.99), bad};
}

function rss() {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => +(s.match(new RegExp(`${k}:\\s+(\\d+)`)) || [0, 0])[1];
    return {rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024};
}

const tiny = (color) => ({
    1: {class_type: 'EmptyImage', inputs: {width: 8, height: 8, batch_size: 1, color}},
    2: {class_type: 'ImageInvert', inputs: {image: ['1', 0]}},
    3: {class_type: 'PreviewImage', inputs: {images: ['2', 0]}},
});

async function waitIdle() {
    for (;;) {
        const r = JSON.parse((await request('GET', '/prompt')).body);
        if (r.exec_info.queue_remaining === 0) return;
        await new Promise((res) => setTimeout(res, 100));
    }
}

// 200 clients, `prompts` prompts spread over them; checks delivery and routing.
async function fanout(nClients, prompts, round) {
    const clients = await Promise.all(Array.from({length: nClients}, (_, i) => new Promise(
        (resolve, reject) => {
            const id = `bench-${i}`;
            const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?clientId=${id}`);
            const c = {id, ws, events: [], seqs: [], statuses: 0, done: new Map()};
            ws.on('message', (d) => {
                const m = JSON.parse(d);
                if (m.type === 'status') { c.statuses++; if (m.data.sid) resolve(c); return; }
                c.events.push(m);
                c.seqs.push(m.seq);
                if (m.type === 'executing' && m.data.node === null) {
                    c.done.set(m.data.prompt_id, process.hrtime.bigint());
                }
            });
            ws.on('error', reject);
        })));
    const owner = new Map(), sent = new Map();
    const t0 = process.hrtime.bigint();
    const acc = await load(prompts, 50, async (i) => {
        const c = clients[i % nClients];
        const body = JSON.stringify({prompt: tiny(round * 100000 + i), client_id: c.id});
        const r = await request('POST', '/prompt', body);
        const pid = JSON.parse(r.body).prompt_id;
        owner.set(pid, c);
        sent.set(pid, process.hrtime.bigint());
        return r;
    });
    await waitIdle();
    await new Promise((res) => setTimeout(res, 300));
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    let lost = 0, misrouted = 0, gaps = 0;
    const e2e = [];
    for (const c of clients) {
        // Sessions outlive connections, so a client's seq continues across rounds.
        c.seqs.forEach((s, k) => { if (s !== c.seqs[0] + k) gaps++; });
        for (const m of c.events) {
            if (m.data.prompt_id && owner.get(m.data.prompt_id) !== c) misrouted++;
        }
    }
    for (const [pidKey, c] of owner) {
        const end = c.done.get(pidKey);
        if (!end) { lost++; continue; }
        e2e.push(Number(end - sent.get(pidKey)) / 1e6);
    }
    e2e.sort((a, b) => a - b);
    const events = clients.reduce((a, c) => a + c.events.length, 0);
    const statuses = clients.reduce((a, c) => a + c.statuses, 0);
    for (const c of clients) c.ws.close();
    return {clients: nClients, prompts, secs, promptsPerSec: prompts / secs, accept: acc,
        events, statuses, lost, misrouted, gaps, e2eP50: pct(e2e, 0.5), e2eP99: pct(e2e, 0.99)};
}

const fmt = (x, d = 2) => (typeof x === 'number' ? x.toFixed(d) : String(x));

const rows = [];
const base = rss();
// Warm up both paths (caches, pool threads, allocator).
await load(200, 8, () => request('GET', '/object_info'));
await load(200, 8, () => request('POST', '/prompt', JSON.stringify({prompt: tiny(1)})));
await waitIdle();

const oi = await phase('GET /object_info', quick ? 500 : 3000, 16,
    () => request('GET', '/object_info'));
rows.push(['GET /object_info', oi]);
const triv = JSON.stringify({prompt: tiny(1)});
const pp = await phase('POST /prompt', quick ? 1000 : 5000, 50,
    () => request('POST', '/prompt', triv));
rows.push(['POST /prompt, saturated', pp]);
await waitIdle();
const paced = await phase('POST /prompt', quick ? 1000 : 5000, 50,
    () => request('POST', '/prompt', triv), 50);
rows.push(['POST /prompt, paced (1,000/s)', paced]);
await waitIdle();
await request('POST', '/history', JSON.stringify({clear: true}));
const afterHttp = rss();

const nPrompts = quick ? 200 : 1000;
const rounds = [];
for (let k = 1; k <= 4; k++) {
    const f = await fanout(200, nPrompts, k);
    await request('POST', '/history', JSON.stringify({clear: true}));
    // PreviewImage numbers its files by scanning temp/; keep rounds comparable.
    fs.rmSync(`${baseDir}/temp`, {recursive: true, force: true});
    fs.mkdirSync(`${baseDir}/temp`);
    rounds.push([k, f, rss()]);
}

console.log('\n| test | requests | concurrency | req/s | p50 ms | p99 ms | ' +
    'server p50 ms | server p99 ms | errors |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const [name, r] of rows) {
    console.log(`| ${name} | ${r.n} | ${r.conc} | ${fmt(r.rps, 0)} | ${fmt(r.p50)} | ` +
        `${fmt(r.p99)} | ${fmt(r.server.p50, 3)} | ${fmt(r.server.p99, 3)} | ${r.bad} |`);
}
console.log('\n| WebSocket round | clients | prompts | prompts/s | accept p99 ms | ' +
    'done p50 ms | done p99 ms | events | status msgs | lost | misrouted | seq gaps |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const [k, f] of rounds) {
    console.log(`| ${k} | ${f.clients} | ${f.prompts} | ${fmt(f.promptsPerSec, 0)} | ` +
        `${fmt(f.accept.p99)} | ${fmt(f.e2eP50)} | ${fmt(f.e2eP99)} | ${f.events} | ` +
        `${f.statuses} | ${f.lost} | ${f.misrouted} | ${f.gaps} |`);
}
console.log('\n| server memory | MiB |');
console.log('|---|---|');
console.log(`| RSS at start | ${fmt(base.rss, 1)} |`);
console.log(`| RSS after the HTTP tests | ${fmt(afterHttp.rss, 1)} |`);
for (const [k, , m] of rounds) console.log(`| RSS after WebSocket round ${k} | ${fmt(m.rss, 1)} |`);
console.log(`| peak RSS (VmHWM) | ${fmt(rounds.at(-1)[2].hwm, 1)} |`);
const ok = rounds.every(([, f]) => f.lost + f.misrouted + f.gaps === 0) &&
    oi.bad + pp.bad + paced.bad === 0;
console.log(ok ? '\nall messages delivered and routed correctly' : '\nFAILED: see the table');
process.exit(ok ? 0 : 1);
