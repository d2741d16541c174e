// Shared pieces of the end-to-end tests: the environment contract with
// tests/integration/test_web.sh, a headless Chromium from Debian's package driven by
// playwright-core, and helpers that act on the editor the way a person does (clicks on
// canvas widgets, typing, file pickers, drag-and-drop) or read its state.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../../..');

function need(name) {
    const v = process.env[name];
    if (!v)
        throw new Error(
            `${name} is not set: run these tests through tests/integration/test_web.sh ` +
                '(it starts `kiln serve` and sets KILN_URL, KILN_BASE, KILN_PID_FILE and ' +
                'KILN_RESTART_CMD)',
        );
    return v;
}

/** Where the server is and how to restart it (set by test_web.sh). */
export const env = {
    url: need('KILN_URL').replace(/\/$/, ''),
    base: need('KILN_BASE'),
    pidFile: process.env.KILN_PID_FILE ?? '',
    restartCmd: process.env.KILN_RESTART_CMD ? JSON.parse(process.env.KILN_RESTART_CMD) : null,
    serverLog: process.env.KILN_SERVER_LOG ?? '',
    screenshots: process.env.KILN_SCREENSHOTS ?? path.join(repoRoot, 'docs/screenshots'),
    chromium: process.env.CHROMIUM ?? '/usr/bin/chromium',
    // The switch for the "default graph runs" test: "auto" runs ComfyUI's txt2img default
    // graph when the server has the SD1.x nodes and the test checkpoint, else a graph of
    // core nodes; "default" requires the SD1.x path, "core" forces the fallback.
    graphMode: process.env.KILN_E2E_GRAPH ?? 'auto',
};

export async function api(route, init) {
    const res = await fetch(`${env.url}/api${route}`, init);
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Starts Chromium with a fresh profile; returns {context, page, close()}. */
export async function launch() {
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-web-e2e-'));
    const context = await chromium.launchPersistentContext(profile, {
        executablePath: env.chromium,
        headless: true,
        viewport: { width: 1600, height: 900 },
        acceptDownloads: true,
        args: [
            '--headless',
            '--no-sandbox',
            '--disable-gpu',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
        ],
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e.stack ?? e)));
    return {
        context,
        page,
        errors,
        async close() {
            await context.close();
            fs.rmSync(profile, { recursive: true, force: true });
        },
    };
}

/** Opens the editor and waits until it has its node types and a live socket. */
export async function openEditor(page) {
    await page.goto(`${env.url}/`);
    await page.waitForSelector('body[data-ready=true]', { timeout: 30000 });
    await page.waitForSelector('#connection[data-state=open]', { timeout: 30000 });
    // Record every event the page receives, for assertions about what reached it.
    await page.evaluate(() => {
        window.__events = [];
        for (const t of [
            'status',
            'execution_start',
            'execution_cached',
            'executing',
            'progress',
            'executed',
            'execution_success',
            'execution_error',
            'execution_interrupted',
            'b_preview',
            'progress_state',
        ])
            kiln.api.addEventListener(t, (e) =>
                window.__events.push({ type: t, data: e.detail?.blob ? {} : e.detail }),
            );
    });
}

export async function waitFor(page, fn, arg, timeout = 60000) {
    const handle = await page.waitForFunction(fn, arg, { timeout, polling: 50 });
    return handle.jsonValue();
}

export async function screenshot(page, name) {
    fs.mkdirSync(env.screenshots, { recursive: true });
    // Messages of earlier steps would only clutter the picture.
    await page.evaluate(() => document.getElementById('toasts').replaceChildren());
    await page.screenshot({ path: path.join(env.screenshots, name) });
}

/** The screen position of a canvas widget's centre (or of its left/right arrow). */
export async function widgetPoint(page, nodeId, widgetName, where = 'center') {
    return page.evaluate(
        ([id, name, at]) => {
            const node = kiln.graph.getNodeById(id);
            const w = node.widgets.find((x) => x.name === name);
            const { scale, offset } = kiln.canvas.ds;
            const rect = kiln.canvas.canvas.getBoundingClientRect();
            const lx = at === 'left' ? 20 : at === 'right' ? node.size[0] - 20 : node.size[0] / 2;
            const ly = w.y + (w.computedHeight ?? 24) / 2 - 2;
            return {
                x: rect.left + (node.pos[0] + lx + offset[0]) * scale,
                y: rect.top + (node.pos[1] + ly + offset[1]) * scale,
            };
        },
        [nodeId, widgetName, where],
    );
}

/** Makes sure a node is on screen (centres it) before clicking its widgets. */
export async function centerOn(page, nodeId) {
    await page.evaluate((id) => {
        kiln.canvas.centerOnNode(kiln.graph.getNodeById(id));
        kiln.canvas.setDirty(true, true);
    }, nodeId);
    await page.waitForTimeout(100);
}

/** Picks a combo value the way a person does: click the widget, click the menu entry. */
export async function chooseCombo(page, nodeId, widgetName, value) {
    await centerOn(page, nodeId);
    const p = await widgetPoint(page, nodeId, widgetName);
    await page.mouse.click(p.x, p.y);
    const entry = page.locator('.litecontextmenu .litemenu-entry', { hasText: value }).first();
    await entry.waitFor({ timeout: 5000 });
    await entry.click();
    const got = await widgetValue(page, nodeId, widgetName);
    assert.equal(got, value, `combo ${widgetName} of node ${nodeId}`);
}

/** Types a number into a number widget through LiteGraph's value prompt. */
export async function typeNumber(page, nodeId, widgetName, value) {
    await centerOn(page, nodeId);
    const p = await widgetPoint(page, nodeId, widgetName);
    await page.mouse.click(p.x, p.y);
    const input = page.locator('.graphdialog input').last();
    await input.waitFor({ timeout: 5000 });
    await input.fill(String(value));
    await input.press('Enter');
    await page.waitForTimeout(50);
}

export function widgetValue(page, nodeId, widgetName) {
    return page.evaluate(
        ([id, name]) => kiln.graph.getNodeById(id).widgets.find((w) => w.name === name).value,
        [nodeId, widgetName],
    );
}

/** Fills the textarea of a multiline widget. */
export async function typeText(page, nodeId, widgetName, text) {
    await centerOn(page, nodeId);
    const ta = page.locator(
        `textarea.kiln-multiline[data-node="${nodeId}"][data-widget="${widgetName}"]`,
    );
    await ta.fill(text);
}

/** Drops a file onto the canvas, as a drag from the desktop does; `at` is the point in
 * page coordinates (default: an empty corner of the canvas). */
export async function dropFile(page, name, bytes, mime, at = null) {
    const data = Buffer.from(bytes).toString('base64');
    await page.evaluate(
        ([n, b64, type, point]) => {
            const raw = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([raw], n, { type }));
            const host = document.getElementById('canvas-host');
            const r = host.getBoundingClientRect();
            const init = {
                bubbles: true,
                cancelable: true,
                dataTransfer: dt,
                clientX: point ? point.x : r.left + 40,
                clientY: point ? point.y : r.top + r.height - 40,
            };
            host.dispatchEvent(new DragEvent('dragover', init));
            host.dispatchEvent(new DragEvent('drop', init));
        },
        [name, data, mime, at],
    );
}

/** A summary of the graph on the canvas: nodes by id with type, mode, title, values. */
export function graphSummary(page) {
    return page.evaluate(() =>
        kiln.graph._nodes
            .map((n) => ({
                id: n.id,
                type: n.type,
                mode: n.mode,
                title: n.title,
                values: (n.widgets ?? []).map((w) => w.value),
            }))
            .sort((a, b) => String(a.id).localeCompare(String(b.id), 'en', { numeric: true })),
    );
}

/** Events the page received since openEditor (or since `from`). */
export function events(page, from = 0) {
    return page.evaluate((i) => window.__events.slice(i), from);
}

// ---- the server process -------------------------------------------------------------------

function alive(pid) {
    try {
        process.kill(pid, 0);
        return true;
    } catch {
        return false;
    }
}

/** Stops the server (SIGTERM, as an operator would) and waits for it to exit. */
export async function stopServer() {
    assert.ok(env.pidFile && env.restartCmd, 'KILN_PID_FILE and KILN_RESTART_CMD are needed');
    const pid = Number(fs.readFileSync(env.pidFile, 'utf8').trim());
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
    if (alive(pid)) process.kill(pid, 'SIGKILL');
}

/** Starts the server again with the same command line; records its pid for clean-up. */
export async function startServer() {
    const [cmd, ...args] = env.restartCmd;
    const log = env.serverLog ? fs.openSync(env.serverLog, 'a') : 'ignore';
    const child = spawn(cmd, args, { detached: true, stdio: ['ignore', log, log] });
    child.unref();
    fs.writeFileSync(env.pidFile, `${child.pid}\n`);
    for (let i = 0; i < 400; i++) {
        try {
            const res = await fetch(`${env.url}/api/object_info/SaveImage`);
            if (res.ok) return child.pid;
        } catch {
            // Not listening yet.
        }
        await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('the server did not come back within 20 s');
}
