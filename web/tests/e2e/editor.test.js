// End-to-end tests of the editor in headless Chromium against a real `kiln serve` (started
// by tests/integration/test_web.sh). Each test acts through the page (buttons, canvas
// widgets, file pickers, drag-and-drop) and checks what the page shows and what the
// server did. The tests share one browser and run in order; screenshots land in
// docs/screenshots/.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { graphFromPng, readPngText } from '../../src/lib/png.js';
import {
    api,
    centerOn,
    chooseCombo,
    dropFile,
    env,
    events,
    graphSummary,
    launch,
    openEditor,
    repoRoot,
    screenshot,
    startServer,
    stopServer,
    typeNumber,
    typeText,
    waitFor,
    widgetPoint,
    widgetValue,
} from './helpers.js';

const FIXTURES = path.resolve(repoRoot, '../shared/fixtures/sd15-tiny');
const TXT2IMG = [
    'CheckpointLoaderSimple',
    'CLIPTextEncode',
    'EmptyLatentImage',
    'KSampler',
    'VAEDecode',
    'SaveImage',
];

let browser;
let page;
let objectInfo;
let sdMode; // true: the txt2img default graph runs; false: the core-node fallback

before(async () => {
    objectInfo = (await api('/object_info')).body;
    const ckpts = objectInfo.CheckpointLoaderSimple?.input?.required?.ckpt_name?.[0] ?? [];
    const sdReady =
        TXT2IMG.every((t) => t in objectInfo) && ckpts.includes('checkpoint.safetensors');
    if (env.graphMode === 'default')
        assert.ok(
            sdReady,
            'KILN_E2E_GRAPH=default but the SD1.x nodes or the test checkpoint are missing',
        );
    sdMode = env.graphMode === 'core' ? false : sdReady;
    console.log(
        `# graph mode: ${sdMode ? 'txt2img default graph (SD1.x pack)' : 'core-node fallback'}`,
    );
    browser = await launch();
    page = browser.page;
});

after(async () => {
    await browser?.close();
});

/** Waits for the end of the page's current prompt; returns its result. */
function waitForResult(p = page, timeout = 120000) {
    return waitFor(
        p,
        () => {
            const s = kiln.exec.summary();
            return s.result && s.promptId ? s : null;
        },
        undefined,
        timeout,
    );
}

/** Latest history entry for a prompt id. */
async function historyOf(promptId) {
    const { body } = await api(`/history/${promptId}`);
    return body?.[promptId];
}

async function queueAndWait() {
    const before = await page.evaluate(() => kiln.queued.length);
    await page.click('#queue-button');
    await waitFor(page, (n) => kiln.queued.length > n, before, 10000);
    const id = await page.evaluate(() => kiln.queued.at(-1));
    await waitFor(
        page,
        (pid) => {
            const s = kiln.exec.summary();
            return s.promptId === pid && s.result ? s.result : null;
        },
        id,
        120000,
    );
    return id;
}

/** A core-node graph: EmptyImage -> ImageInvert -> SaveImage, in the editor's format. */
function coreWorkflow(prefix) {
    return {
        last_node_id: 3,
        last_link_id: 2,
        version: 0.4,
        groups: [],
        config: {},
        extra: {},
        nodes: [
            {
                id: 1,
                type: 'EmptyImage',
                pos: [60, 120],
                size: [300, 130],
                flags: {},
                order: 0,
                mode: 0,
                outputs: [{ name: 'IMAGE', type: 'IMAGE', links: [1] }],
                properties: {},
                widgets_values: [96, 64, 1, 16744448],
            },
            {
                id: 2,
                type: 'ImageInvert',
                pos: [420, 120],
                size: [220, 50],
                flags: {},
                order: 1,
                mode: 0,
                inputs: [{ name: 'image', type: 'IMAGE', link: 1 }],
                outputs: [{ name: 'IMAGE', type: 'IMAGE', links: [2] }],
                properties: {},
            },
            {
                id: 3,
                type: 'SaveImage',
                pos: [700, 120],
                size: [320, 300],
                flags: {},
                order: 2,
                mode: 0,
                inputs: [{ name: 'images', type: 'IMAGE', link: 2 }],
                properties: {},
                widgets_values: [prefix],
            },
        ],
        links: [
            [1, 1, 0, 2, 0, 'IMAGE'],
            [2, 2, 0, 3, 0, 'IMAGE'],
        ],
    };
}

test('the page loads with node definitions from the server', async () => {
    await openEditor(page);
    const types = await page.evaluate(() => Object.keys(kiln.LiteGraph.registered_node_types));
    for (const name of Object.keys(objectInfo))
        assert.ok(types.includes(name), `node type ${name} from /object_info is registered`);
    // Widgets follow the definitions: EmptyImage's INT ranges and steps.
    const empty = await page.evaluate(() => {
        const n = kiln.LiteGraph.createNode('EmptyImage');
        return n.widgets.map((w) => ({
            name: w.name,
            type: w.type,
            min: w.options.min,
            max: w.options.max,
            step: w.options.step2,
            value: w.value,
        }));
    });
    const def = objectInfo.EmptyImage.input.required;
    assert.deepEqual(
        empty.map((w) => w.name),
        Object.keys(def),
    );
    for (const w of empty) {
        assert.equal(w.type, 'number');
        assert.equal(w.min, def[w.name][1].min);
        assert.equal(w.max, def[w.name][1].max);
        assert.equal(w.value, def[w.name][1].default);
    }
    // Sockets are typed and coloured as in ComfyUI.
    const colours = await page.evaluate(() => kiln.canvas.default_connection_color_byType);
    assert.equal(colours.IMAGE, '#64B5F6');
    assert.equal(colours.LATENT, '#FF9CF9');
    assert.equal(colours.MODEL, '#B39DDB');
    // A fresh browser opens on ComfyUI's txt2img default graph.
    const graph = await graphSummary(page);
    assert.deepEqual(
        graph.map((n) => `${n.id}:${n.type}`),
        [
            '3:KSampler',
            '4:CheckpointLoaderSimple',
            '5:EmptyLatentImage',
            '6:CLIPTextEncode',
            '7:CLIPTextEncode',
            '8:VAEDecode',
            '9:SaveImage',
        ],
    );
    if ('KSampler' in objectInfo) {
        const ks = graph.find((n) => n.id === 3);
        assert.deepEqual(ks.values, [156680208700286, 'randomize', 20, 8, 'euler', 'normal', 1]);
    }
    assert.equal(await page.textContent('#connection'), 'connected');
    assert.deepEqual(browser.errors, []);
});

test('the default graph queues and runs; progress and the image reach the page', async () => {
    await page.click('#default-button');
    const mark = (await events(page)).length;
    let saveNode;
    if (sdMode) {
        // Set the txt2img graph up for the test checkpoint, through the widgets.
        await chooseCombo(page, 4, 'ckpt_name', 'checkpoint.safetensors');
        await typeText(page, 6, 'text', 'a photo of a cat');
        await typeText(page, 7, 'text', '');
        await typeNumber(page, 5, 'width', 64);
        await typeNumber(page, 5, 'height', 64);
        await typeNumber(page, 3, 'seed', 42);
        await typeNumber(page, 3, 'steps', 12);
        await typeNumber(page, 3, 'cfg', 7.5);
        assert.equal(await widgetValue(page, 3, 'control_after_generate'), 'randomize');
        saveNode = 9;
    } else {
        // SWITCH (KILN_E2E_GRAPH): without the SD1.x pack the same flow runs a core graph.
        await page.evaluate((wf) => kiln.loadWorkflowObject(wf), coreWorkflow('ComfyUI'));
        saveNode = 3;
    }
    const id = await queueAndWait();
    assert.equal(await page.evaluate(() => kiln.exec.summary().result), 'success');
    // The result image is on the SaveImage node, loaded from /view.
    const img = await waitFor(
        page,
        (n) => {
            const i = kiln.graph.getNodeById(n).imgs?.[0];
            return i && i.complete && i.naturalWidth
                ? { src: i.src, w: i.naturalWidth, h: i.naturalHeight }
                : null;
        },
        saveNode,
        20000,
    );
    assert.match(img.src, /\/api\/view\?filename=ComfyUI_\d{5}_\.png&type=output&subfolder=$/);
    assert.deepEqual([img.w, img.h], sdMode ? [64, 64] : [96, 64]);
    await page.evaluate(() => kiln.fitView());
    await screenshot(page, 'editor-done.png');

    // What reached the page over the WebSocket, in order.
    const got = (await events(page, mark)).filter(
        (e) => !e.data?.prompt_id || e.data.prompt_id === id,
    );
    const types = got.map((e) => e.type);
    for (const t of ['execution_start', 'executing', 'executed', 'execution_success'])
        assert.ok(types.includes(t), `${t} reached the page`);
    assert.ok(types.indexOf('execution_start') < types.indexOf('execution_success'));
    if (sdMode) {
        const progress = got.filter((e) => e.type === 'progress');
        assert.deepEqual(
            progress.map((e) => e.data.value),
            [...Array(12).keys()].map((i) => i + 1),
        );
        assert.ok(progress.every((e) => e.data.max === 12 && String(e.data.node) === '3'));
        assert.ok(got.some((e) => e.type === 'executing' && e.data.node === '3'));
    }
    const executed = got.find((e) => e.type === 'executed');
    assert.equal(String(executed.data.node), String(saveNode));

    // The prompt that ran, as the server stored it, and the saved file's text chunks.
    const entry = await historyOf(id);
    assert.equal(entry.status.status_str, 'success');
    const file = entry.outputs[String(saveNode)].images[0];
    const png = fs.readFileSync(path.join(env.base, 'output', file.subfolder, file.filename));
    const text = await readPngText(png);
    const workflow = JSON.parse(text.workflow);
    assert.equal(workflow.nodes.length, 7 - (sdMode ? 0 : 4));
    if (sdMode) {
        const ran = entry.prompt[2]['3'].inputs;
        assert.equal(ran.seed, 42);
        assert.equal(ran.steps, 12);
        assert.equal(ran.cfg, 7.5);
        assert.deepEqual(JSON.parse(text.prompt)['6'].inputs.text, 'a photo of a cat');
        // control_after_generate "randomize" drew a new seed after queueing.
        const seed = await widgetValue(page, 3, 'seed');
        assert.notEqual(seed, 42);
        assert.ok(Number.isInteger(seed) && seed >= 0 && seed <= 1125899906842624);
    }
    assert.deepEqual(browser.errors, []);
});

test('a saved workflow JSON opens, runs, re-runs from history and saves back', async () => {
    const file = path.join(repoRoot, 'workflows/invert_ui.json');
    const original = JSON.parse(fs.readFileSync(file, 'utf8'));
    const [chooser] = await Promise.all([
        page.waitForEvent('filechooser'),
        page.click('#open-button'),
    ]);
    await chooser.setFiles(file);
    await waitFor(page, () => kiln.graph._nodes.length === 8, undefined, 5000);
    const graph = await graphSummary(page);
    assert.deepEqual(
        graph.map((n) => [n.id, n.type, n.mode]),
        original.nodes.map((n) => [n.id, n.type, n.mode]).sort((a, b) => a[0] - b[0]),
    );
    assert.deepEqual(graph.find((n) => n.id === 1).values, [512, 192, 1, 3355443]);
    assert.deepEqual(graph.find((n) => n.id === 6).values, [320, 'fixed']);
    assert.equal(graph.find((n) => n.id === 6).title, 'width');
    assert.equal(await page.evaluate(() => kiln.graph._groups.length), 1);
    // Converted as the editor converts: the primitive drives width, the reroute and the
    // bypassed scale pass the image through, the muted preview and the note are left out.
    const prompt = await page.evaluate(() => kiln.toPrompt().prompt);
    assert.deepEqual(Object.keys(prompt), ['1', '2', '3']);
    assert.deepEqual(prompt['1'].inputs, {
        width: 320,
        height: 192,
        batch_size: 1,
        color: 3355443,
    });
    assert.deepEqual(prompt['2'].inputs, { image: ['1', 0] });
    assert.deepEqual(prompt['3'].inputs, { filename_prefix: 'kiln/ui_invert', images: ['2', 0] });

    const id = await queueAndWait();
    const img = await waitFor(
        page,
        () => {
            const i = kiln.graph.getNodeById(3).imgs?.[0];
            return i?.complete && i.naturalWidth ? [i.naturalWidth, i.naturalHeight] : null;
        },
        undefined,
        20000,
    );
    assert.deepEqual(img, [320, 192]);

    // The history panel lists it; Re-run queues the same prompt again, Delete removes it.
    const item = page.locator(`.queue-item[data-kind=history][data-prompt-id="${id}"]`);
    await item.waitFor({ timeout: 10000 });
    assert.equal(await item.getAttribute('data-status'), 'success');
    const count = await page.evaluate(() => kiln.queued.length);
    await item.locator('button', { hasText: 'Re-run' }).click();
    await waitFor(page, (n) => kiln.queued.length > n, count, 10000);
    const rerun = await page.evaluate(() => kiln.queued.at(-1));
    await page
        .locator(`.queue-item[data-kind=history][data-prompt-id="${rerun}"][data-status=success]`)
        .waitFor({ timeout: 30000 });
    assert.deepEqual((await historyOf(rerun)).prompt[2], (await historyOf(id)).prompt[2]);
    // Nothing changed, so the server ran nothing: every node is marked cached, and the
    // saved image still shows (from the cached `executed`).
    await waitFor(
        page,
        (pid) => kiln.exec.summary().promptId === pid && kiln.exec.summary().result,
        rerun,
        30000,
    );
    assert.deepEqual(
        await page.evaluate(() =>
            kiln.graph._nodes
                .filter((n) => n.kilnState?.cached)
                .map((n) => n.id)
                .sort(),
        ),
        [1, 2, 3],
    );
    assert.equal(await page.evaluate(() => kiln.graph.getNodeById(3).imgs.length), 1);
    await page
        .locator(`.queue-item[data-prompt-id="${rerun}"] button`, { hasText: 'Delete' })
        .click();
    await page
        .locator(`.queue-item[data-prompt-id="${rerun}"]`)
        .waitFor({ state: 'detached', timeout: 10000 });
    assert.equal(await historyOf(rerun), undefined);

    // Batch count 2 queues two prompts in one click.
    await page.fill('#batch-count', '2');
    const n0 = await page.evaluate(() => kiln.queued.length);
    await page.click('#queue-button');
    await waitFor(page, (n) => kiln.queued.length === n + 2, n0, 10000);
    await page.fill('#batch-count', '1');
    await waitFor(
        page,
        () =>
            kiln.exec.summary().result === 'success' &&
            kiln.exec.summary().promptId === kiln.queued.at(-1),
        undefined,
        30000,
    );

    // Export API downloads the prompt that Queue sends.
    const [apiDownload] = await Promise.all([
        page.waitForEvent('download'),
        page.click('#export-api-button'),
    ]);
    assert.equal(apiDownload.suggestedFilename(), 'workflow_api.json');
    assert.deepEqual(JSON.parse(fs.readFileSync(await apiDownload.path(), 'utf8')), prompt);

    // Save downloads the graph in the editor's format; it matches the file it came from,
    // except that queueing wrote the primitive's value into the widget it drives.
    const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.click('#save-button'),
    ]);
    const saved = JSON.parse(fs.readFileSync(await download.path(), 'utf8'));
    const byId = (wf) => Object.fromEntries(wf.nodes.map((n) => [n.id, n]));
    const a = byId(saved),
        b = byId(original);
    assert.deepEqual(a[1].widgets_values, [320, 192, 1, 3355443]);
    b[1].widgets_values = [320, 192, 1, 3355443];
    for (const [nid, n] of Object.entries(b)) {
        assert.equal(a[nid].type, n.type);
        assert.equal(a[nid].mode, n.mode);
        assert.deepEqual(
            a[nid].widgets_values ?? [],
            n.widgets_values ?? [],
            `widgets of node ${nid}`,
        );
        assert.deepEqual(
            (a[nid].inputs ?? []).map((i) => [i.name, i.link]),
            (n.inputs ?? []).map((i) => [i.name, i.link]),
            `inputs of node ${nid}`,
        );
    }
    assert.deepEqual(
        saved.links.map((l) => l.slice(0, 5)).sort((x, y) => x[0] - y[0]),
        original.links.map((l) => l.slice(0, 5)),
    );
    assert.deepEqual(browser.errors, []);
});

test('a PNG restores its graph: workflow chunk dropped, prompt chunk opened', async () => {
    const out = path.join(env.base, 'output/kiln');
    const pngName = fs
        .readdirSync(out)
        .filter((f) => /^ui_invert_\d+_\.png$/.test(f))
        .sort()[0];
    const bytes = fs.readFileSync(path.join(out, pngName));
    const expected = (await graphFromPng(bytes)).workflow;
    await page.click('#clear-button');
    assert.equal(await page.evaluate(() => kiln.graph._nodes.length), 0);
    await dropFile(page, pngName, bytes, 'image/png');
    await waitFor(page, () => kiln.graph._nodes.length === 8, undefined, 5000);
    const graph = await graphSummary(page);
    assert.deepEqual(
        graph.map((n) => [n.id, n.type]),
        expected.nodes.map((n) => [n.id, n.type]).sort((x, y) => x[0] - y[0]),
    );
    assert.deepEqual(graph.find((n) => n.id === 3).values, ['kiln/ui_invert']);
    assert.equal(await page.evaluate(() => kiln.graph._links.size), expected.links.length);

    // A PNG that ComfyUI saved (prompt chunk only) opens as an API prompt.
    const comfy = path.join(FIXTURES, 'euler_normal.png');
    const apiPrompt = (await graphFromPng(fs.readFileSync(comfy))).prompt;
    const [chooser] = await Promise.all([
        page.waitForEvent('filechooser'),
        page.click('#open-button'),
    ]);
    await chooser.setFiles(comfy);
    const absent = [...new Set(Object.values(apiPrompt).map((n) => n.class_type))].filter(
        (t) => !(t in objectInfo),
    );
    if (absent.length) {
        // Without the SD1.x pack the page names the node types it cannot show.
        const toast = page.locator('.toast', { hasText: 'node types this server does not have' });
        await toast.waitFor({ timeout: 5000 });
        const text = await toast.textContent();
        for (const t of absent) assert.ok(text.includes(t), `${t} is named in "${text}"`);
        return;
    }
    await waitFor(page, () => kiln.graph._nodes.length === 7, undefined, 5000);
    const roundTrip = await page.evaluate(() => kiln.toPrompt().prompt);
    for (const [nid, n] of Object.entries(apiPrompt)) {
        assert.equal(roundTrip[nid].class_type, n.class_type);
        assert.deepEqual(roundTrip[nid].inputs, n.inputs, `inputs of node ${nid}`);
    }
    assert.deepEqual(Object.keys(roundTrip).sort(), Object.keys(apiPrompt).sort());
    assert.deepEqual(browser.errors, []);
});

test('a validation error is shown on the node and input it belongs to', async () => {
    const wf = coreWorkflow('bad');
    wf.nodes[0].widgets_values = [99999, 64, 1, 0]; // width above EmptyImage's max
    await dropFile(page, 'invalid.json', Buffer.from(JSON.stringify(wf)), 'application/json');
    await waitFor(
        page,
        () => kiln.graph.getNodeById(1)?.widgets?.[0]?.value === 99999,
        undefined,
        5000,
    );
    await page.click('#queue-button');
    const errors = await waitFor(
        page,
        () => {
            const out = kiln.graph._nodes
                .filter((n) => n.kilnState?.errors)
                .map((n) => ({
                    id: n.id,
                    inputs: [...n.kilnState.errors.inputs],
                    messages: n.kilnState.errors.messages,
                }));
            return out.length ? out : null;
        },
        undefined,
        10000,
    );
    assert.deepEqual(
        errors.map((e) => [e.id, e.inputs]),
        [[1, ['width']]],
    );
    assert.match(errors[0].messages[0], /bigger than max/);
    assert.equal(await page.evaluate(() => kiln.graph.getNodeById(1).has_errors), true);
    const list = await page.locator('#errors .error-item').allTextContents();
    assert.equal(list.length, 1);
    assert.match(list[0], /^#1 EmptyImage: /);
    await centerOn(page, 2);
    await screenshot(page, 'editor-validation-error.png');
    // Fixing the value and queueing again clears the marks.
    await typeNumber(page, 1, 'width', 48);
    await queueAndWait();
    assert.equal(
        await page.evaluate(() => kiln.graph._nodes.some((n) => n.kilnState?.errors)),
        false,
    );
    assert.equal(await page.locator('#errors').isHidden(), true);
});

test('an execution error is shown on the node that failed', async () => {
    // A file that passes validation (it exists) but cannot be decoded when the node runs.
    fs.writeFileSync(path.join(env.base, 'input/broken.png'), 'this is not a PNG');
    const prompt = {
        10: {
            class_type: 'LoadImage',
            inputs: { image: 'broken.png' },
            _meta: { title: 'Load Image' },
        },
        11: { class_type: 'ImageInvert', inputs: { image: ['10', 0] } },
        12: { class_type: 'SaveImage', inputs: { images: ['11', 0], filename_prefix: 'never' } },
    };
    await dropFile(
        page,
        'broken_api.json',
        Buffer.from(JSON.stringify(prompt)),
        'application/json',
    );
    await waitFor(
        page,
        () => kiln.graph.getNodeById(10)?.widgets?.[0]?.value === 'broken.png',
        undefined,
        5000,
    );
    const id = await queueAndWait();
    assert.equal(await page.evaluate(() => kiln.exec.summary().result), 'error');
    const marked = await page.evaluate(() =>
        kiln.graph._nodes
            .filter((n) => n.kilnState?.errors)
            .map((n) => ({
                id: n.id,
                kind: n.kilnState.errors.kind,
                msg: n.kilnState.errors.messages[0],
            })),
    );
    assert.equal(marked.length, 1);
    assert.equal(marked[0].id, 10);
    assert.equal(marked[0].kind, 'execution');
    const entry = await historyOf(id);
    const err = entry.status.messages.find((m) => m[0] === 'execution_error')[1];
    assert.equal(String(err.node_id), '10');
    assert.ok(marked[0].msg.includes(String(err.exception_message).trim()), marked[0].msg);
    assert.match(
        await page.locator('#errors .error-item').first().textContent(),
        /^#10 Load Image: /,
    );
    assert.equal(await page.textContent('#run-status'), 'failed');
    await screenshot(page, 'editor-execution-error.png');

    // An image dropped on the LoadImage node is uploaded to input/ and selected.
    await centerOn(page, 10);
    const at = await widgetPoint(page, 10, 'image');
    const image = fs.readFileSync(path.join(env.base, 'output/ComfyUI_00001_.png'));
    await dropFile(page, 'dropped.png', image, 'image/png', at);
    await waitFor(
        page,
        () => kiln.graph.getNodeById(10).widgets[0].value === 'dropped.png',
        undefined,
        10000,
    );
    assert.deepEqual(fs.readFileSync(path.join(env.base, 'input/dropped.png')), image);
    assert.deepEqual(browser.errors, []);
});

test('Interrupt stops a running prompt', async () => {
    let runningNode;
    if (sdMode) {
        await page.click('#default-button');
        await chooseCombo(page, 4, 'ckpt_name', 'checkpoint.safetensors');
        await typeNumber(page, 5, 'width', 64);
        await typeNumber(page, 5, 'height', 64);
        await typeNumber(page, 3, 'steps', 400);
        runningNode = 3;
    } else {
        // SWITCH (KILN_E2E_GRAPH): core nodes only; a chain of large resizes runs long
        // enough to be interrupted between nodes.
        const nodes = [
            {
                id: 1,
                type: 'EmptyImage',
                mode: 0,
                pos: [40, 40],
                outputs: [{ name: 'IMAGE', type: 'IMAGE', links: [1] }],
                widgets_values: [2048, 2048, 1, 0],
            },
        ];
        const links = [];
        for (let i = 2; i <= 13; i++) {
            nodes.push({
                id: i,
                type: 'ImageScale',
                mode: 0,
                pos: [40 + ((i - 1) % 4) * 320, 40 + Math.floor((i - 1) / 4) * 200],
                inputs: [{ name: 'image', type: 'IMAGE', link: i - 1 }],
                outputs: [{ name: 'IMAGE', type: 'IMAGE', links: [i] }],
                widgets_values: ['lanczos', i % 2 ? 2048 : 2040, i % 2 ? 2048 : 2040, 'disabled'],
            });
            links.push([i - 1, i - 1, 0, i, 0, 'IMAGE']);
        }
        nodes.push({
            id: 14,
            type: 'SaveImage',
            mode: 0,
            pos: [40 + 320 * 2, 640],
            inputs: [{ name: 'images', type: 'IMAGE', link: 13 }],
            widgets_values: ['interrupted'],
        });
        links.push([13, 13, 0, 14, 0, 'IMAGE']);
        await page.evaluate((wf) => kiln.loadWorkflowObject(wf), {
            nodes,
            links,
            version: 0.4,
            extra: {},
        });
        runningNode = null;
    }
    const mark = (await events(page)).length;
    const n0 = await page.evaluate(() => kiln.queued.length);
    await page.click('#queue-button');
    const id = await waitFor(page, (n) => kiln.queued.length > n && kiln.queued.at(-1), n0, 10000);
    // Wait until it is well under way, take the mid-run picture, then interrupt.
    await waitFor(
        page,
        ([pid, sd]) => {
            const s = kiln.exec.summary();
            return s.promptId === pid && (sd ? s.value >= 150 : s.done >= 3) && !s.result;
        },
        [id, sdMode],
        60000,
    );
    await page.evaluate(() => kiln.fitView());
    await screenshot(page, 'editor-running.png');
    const running = await page.evaluate(() => kiln.exec.summary().running);
    if (runningNode) {
        // The executing node is outlined and carries its progress bar; the overall bar
        // is part way.
        assert.equal(running, String(runningNode));
        const st = await page.evaluate((n) => {
            const node = kiln.graph.getNodeById(n);
            return {
                running: node.kilnState.running,
                progress: node.progress,
                overall: kiln.exec.summary().fraction,
                bar: document.getElementById('overall-progress').style.width,
            };
        }, runningNode);
        assert.equal(st.running, true);
        assert.ok(st.progress >= 150 / 400 && st.progress < 1, `node progress ${st.progress}`);
        assert.ok(st.overall > 0.5 && st.overall < 1, `overall ${st.overall}`);
        assert.match(st.bar, /^\d+%$/);
    }
    await page.click('#interrupt-button');
    const result = await waitForResult();
    assert.equal(result.result, 'interrupted');
    assert.equal(await page.textContent('#run-status'), 'interrupted');
    const got = (await events(page, mark)).map((e) => e.type);
    assert.ok(got.includes('execution_interrupted'));
    assert.ok(!got.includes('execution_success'));
    assert.equal(
        await page.evaluate(() => kiln.graph._nodes.some((n) => n.kilnState?.running)),
        false,
    );
    const entry = await historyOf(id);
    assert.equal(entry.status.completed, false);
    assert.ok(entry.status.messages.some((m) => m[0] === 'execution_interrupted'));
    await page
        .locator(`.queue-item[data-prompt-id="${id}"][data-status=interrupted]`)
        .waitFor({ timeout: 10000 });
});

test('the graph survives a reload, and the page reconnects after a server restart', async () => {
    await page.evaluate((wf) => kiln.loadWorkflowObject(wf), coreWorkflow('after_restart'));
    await typeNumber(page, 1, 'height', 40);
    await page.waitForTimeout(1300); // the graph is saved to localStorage every second
    await page.reload();
    await page.waitForSelector('body[data-ready=true]');
    assert.deepEqual(
        (await graphSummary(page)).map((n) => [n.id, n.values]),
        [
            [1, [96, 40, 1, 16744448]],
            [2, []],
            [3, ['after_restart']],
        ],
    );
    await openEditor(page);

    await stopServer();
    await page.waitForSelector('#connection:not([data-state=open])', { timeout: 10000 });
    await screenshot(page, 'editor-disconnected.png');
    await startServer();
    // No reload: the socket comes back by itself and events flow again.
    await page.waitForSelector('#connection[data-state=open]', { timeout: 20000 });
    const mark = (await events(page)).length;
    const id = await queueAndWait();
    assert.equal(await page.evaluate(() => kiln.exec.summary().result), 'success');
    const got = (await events(page, mark))
        .filter((e) => e.data?.prompt_id === id)
        .map((e) => e.type);
    assert.ok(got.includes('execution_start') && got.includes('execution_success'));
    const img = await waitFor(
        page,
        () => {
            const i = kiln.graph.getNodeById(3).imgs?.[0];
            return i?.complete && i.naturalWidth ? [i.naturalWidth, i.naturalHeight] : null;
        },
        undefined,
        20000,
    );
    assert.deepEqual(img, [96, 40]);
    assert.deepEqual(browser.errors, []);
});

test('workflows of every kind survive the canvas: load, save, convert', async () => {
    // The converter fixtures (tests/data/ui) with definitions shaped like their test pack:
    // loading each into the canvas and converting the graph the page saves gives the
    // expected API prompt, so widget sockets, primitives, reroutes, bypass/mute, old
    // widget layouts, unknown nodes and subgraph instances all round-trip.
    const stub = JSON.parse(
        fs.readFileSync(
            path.join(repoRoot, 'web/tests/unit/fixtures/object_info_stub.json'),
            'utf8',
        ),
    );
    const fresh = await browser.context.newPage();
    try {
        await openEditor(fresh);
        await fresh.evaluate((defs) => kiln.registerDefs(defs), stub);
        for (const name of [
            'default_graph',
            'bypass_mute',
            'reroute_primitive',
            'old_values',
            'schema1_subgraph',
        ]) {
            const wf = JSON.parse(
                fs.readFileSync(path.join(repoRoot, `tests/data/ui/${name}.json`), 'utf8'),
            );
            const want = JSON.parse(
                fs.readFileSync(path.join(repoRoot, `tests/data/ui/${name}_api.json`), 'utf8'),
            );
            const got = await fresh.evaluate((w) => {
                kiln.loadWorkflowObject(w, { quiet: true });
                const p = kiln.toPrompt().prompt;
                return Object.fromEntries(
                    Object.entries(p).map(([k, v]) => [
                        k,
                        { class_type: v.class_type, inputs: v.inputs },
                    ]),
                );
            }, wf);
            assert.deepEqual(got, want, name);
        }
    } finally {
        await fresh.close();
    }
    assert.deepEqual(browser.errors, []);
});
