// The page's workflow -> API conversion against the expected API forms in
// tests/data/ui (the same pairs the server-side converter is tested with, using node
// definitions shaped like that test's stub pack), plus the rules that a fixture pair
// cannot show: key order, titles, dynamic prompts, widget layouts and hostile input.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';

import {
    WorkflowError,
    graphToPrompt,
    isUiWorkflow,
    typesMatch,
    workflowExecutionOrder,
} from '../../src/lib/convert.js';
import { expandDynamicPrompt } from '../../src/lib/dynprompt.js';
import { inputSpecs, storedWidgetValues, widgetLayout } from '../../src/lib/nodeinfo.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const dataDir = path.resolve(here, '../../../tests/data/ui');
const defs = JSON.parse(fs.readFileSync(path.join(here, 'fixtures/object_info_stub.json'), 'utf8'));

const load = (name) => JSON.parse(fs.readFileSync(path.join(dataDir, name), 'utf8'));

function stripMeta(prompt) {
    const out = {};
    for (const [id, n] of Object.entries(prompt))
        out[id] = { class_type: n.class_type, inputs: n.inputs };
    return out;
}

// Deterministic stand-in for Math.random.
function seeded(seed) {
    let s = seed >>> 0;
    return () => {
        s = (s * 1664525 + 1013904223) >>> 0;
        return s / 4294967296;
    };
}

for (const name of [
    'default_graph',
    'bypass_mute',
    'reroute_primitive',
    'old_values',
    'schema1_subgraph',
]) {
    test(`${name}.json converts to ${name}_api.json`, () => {
        const wf = load(`${name}.json`);
        assert.ok(isUiWorkflow(wf));
        const got = stripMeta(graphToPrompt(wf, defs, { random: seeded(1) }));
        assert.deepStrictEqual(got, load(`${name}_api.json`));
    });
}

test('default graph: titles, execution order, wire order and exact seed', () => {
    const wf = load('default_graph.json');
    const prompt = graphToPrompt(wf, defs);
    assert.equal(prompt['4']._meta.title, 'Load Checkpoint');
    assert.equal(prompt['3']._meta.title, 'KSampler');
    assert.equal(prompt['9']._meta.title, 'Save Image');
    assert.equal(prompt['3'].inputs.seed, 156680208700286);
    // The editor's execution order (LGraph.computeExecutionOrder on the same nodes).
    const order = workflowExecutionOrder(wf);
    assert.deepEqual(order, ['5', '4', '6', '7', '3', '8', '9']);
    // A plain object keyed by integer ids serializes in ascending order, as the editor's
    // own output object does.
    assert.match(
        JSON.stringify(prompt),
        /^\{"3":\{"inputs":\{"seed":156680208700286,"steps":20,"cfg":8,/,
    );
});

test('bypass and mute: muted links dropped, bypass picks the typed input', () => {
    const prompt = graphToPrompt(load('bypass_mute.json'), defs);
    assert.equal(prompt['7'], undefined);
    assert.equal(prompt['10'], undefined);
    assert.equal(prompt['12'], undefined);
    assert.equal(prompt['3'].inputs.negative, undefined);
    assert.deepEqual(prompt['9'].inputs.images, ['8', 0]);
});

test('subgraph ids, nested titles and muted instances', () => {
    const prompt = graphToPrompt(load('schema1_subgraph.json'), defs);
    assert.equal(prompt['12:5:1']._meta.title, 'CLIPTextEncode');
    assert.equal(prompt['15:1'], undefined);
    assert.deepEqual(
        Object.keys(prompt).filter((k) => k.includes(':')),
        ['10:1', '11:1', '12:5:1', '16:1'],
    );
});

test('old and missing widget values', () => {
    const prompt = graphToPrompt(load('old_values.json'), defs);
    assert.equal(prompt['11']._meta.title, 'My Save');
    assert.equal(prompt['9']._meta.title, 'UnknownThing');
    assert.equal(prompt['5']._meta.title, 'Load Checkpoint');
});

test('dynamic prompts: comments, choices, escapes', () => {
    const r = seeded(7);
    assert.equal(expandDynamicPrompt('a /* gone */b // to the end\nc', r), 'a b \nc');
    assert.equal(expandDynamicPrompt('see http://example.com now', r), 'see http:');
    assert.equal(expandDynamicPrompt('a {red|red|red} cat', r), 'a red cat');
    assert.equal(expandDynamicPrompt('{}', r), '');
    assert.equal(expandDynamicPrompt('x{y|y', r), 'xy');
    assert.equal(expandDynamicPrompt('{a{b|b}c|a{b|b}c}', r), 'abc');
    assert.equal(expandDynamicPrompt('\\{a|b\\}', r), '{a|b}');
    assert.equal(expandDynamicPrompt('{a\\|b}', r), 'a|b');
    assert.equal(expandDynamicPrompt('\\\\{x}', r), '\\\\x');
    assert.equal(expandDynamicPrompt('}|{', r), '}|');
    assert.equal(expandDynamicPrompt('ends with \\', r), 'ends with \\');
    // Math.random() near 1 picks the last option, near 0 the first.
    assert.equal(
        expandDynamicPrompt('{p|q|r}', () => 0.999),
        'r',
    );
    assert.equal(
        expandDynamicPrompt('{p|q|r}', () => 0),
        'p',
    );
    const seen = new Set();
    const rnd = seeded(3);
    for (let i = 0; i < 200; i++) seen.add(expandDynamicPrompt('{0|1|2}', rnd));
    assert.deepEqual([...seen].sort(), ['0', '1', '2']);
});

test('widget layout: controls, uploads, forceInput phantoms, pre-control files', () => {
    const ks = inputSpecs(defs.KSampler);
    assert.deepEqual(
        ks.filter((s) => s.widget).map((s) => s.name),
        ['seed', 'steps', 'cfg', 'sampler_name', 'scheduler', 'denoise'],
    );
    assert.deepEqual(
        widgetLayout(ks, [1, 'fixed', 20, 8, 'euler', 'normal', 1]).map((s) => [
            s.spec.name,
            s.pos,
            s.controlPos,
        ]),
        [
            ['seed', 0, 1],
            ['steps', 2, -1],
            ['cfg', 3, -1],
            ['sampler_name', 4, -1],
            ['scheduler', 5, -1],
            ['denoise', 6, -1],
        ],
    );
    // A file from before control widgets: position 1 holds steps.
    const old = storedWidgetValues(ks, [5, 30, 6.5, 'dpmpp_2m', 'karras', 0.5]);
    assert.equal(old.values.get('steps'), 30);
    assert.equal(old.values.get('denoise'), 0.5);
    const li = inputSpecs(defs.LoadImage);
    assert.equal(li[0].upload, true);
    const force = inputSpecs(defs.ForceNode);
    const ph = storedWidgetValues(force, [3, 0.5, 'b', 'fixed', 'hi']);
    assert.deepEqual(
        [...ph.values],
        [
            ['strength', 0.5],
            ['mode', 'b'],
            ['label', 'hi'],
        ],
    );
    assert.equal(ph.controls.get('mode'), 'fixed');
});

test('LiteGraph type matching', () => {
    assert.ok(typesMatch('IMAGE', 'image'));
    assert.ok(typesMatch('INT,FLOAT', 'FLOAT'));
    assert.ok(typesMatch('*', 'LATENT'));
    assert.ok(!typesMatch('IMAGE', 'MASK'));
    assert.ok(!typesMatch('INT,FLOAT', 'STRING'));
});

test('unreadable workflows throw WorkflowError, odd links are dropped', () => {
    assert.throws(() => graphToPrompt([], defs), WorkflowError);
    assert.throws(() => graphToPrompt({ nodes: {}, links: [] }, defs), WorkflowError);
    assert.throws(() => graphToPrompt({ nodes: [{ id: 1 }], links: [] }, defs), /no type/);
    assert.throws(
        () =>
            graphToPrompt(
                {
                    nodes: [
                        { id: 1, type: 'VAEDecode' },
                        { id: 1, type: 'VAEDecode' },
                    ],
                    links: [],
                },
                defs,
            ),
        /duplicate node id 1/,
    );
    assert.throws(
        () => graphToPrompt({ nodes: [{ id: 1, type: 'workflow>Group' }], links: [] }, defs),
        /legacy group node/,
    );
    const prompt = graphToPrompt(
        {
            nodes: [
                { id: 1, type: 'EmptyLatentImage', outputs: [{ links: [1, 2, 3] }] },
                {
                    id: 2,
                    type: 'VAEDecode',
                    inputs: [
                        { name: 'samples', link: 1 },
                        { name: 'vae', link: 3 },
                    ],
                },
            ],
            links: [[1, 1, 0, 2, 0, 'LATENT'], 'junk', [2, 1], [3, 99, 0, 2, 1, 'VAE']],
        },
        defs,
    );
    assert.deepEqual(prompt['2'].inputs, { samples: ['1', 0] });
});

test('a cycle of reroutes resolves to nothing instead of looping', () => {
    const prompt = graphToPrompt(
        {
            nodes: [
                {
                    id: 1,
                    type: 'Reroute',
                    inputs: [{ name: '', type: '*', link: 2 }],
                    outputs: [{ links: [1, 3] }],
                },
                {
                    id: 2,
                    type: 'Reroute',
                    inputs: [{ name: '', type: '*', link: 1 }],
                    outputs: [{ links: [2] }],
                },
                {
                    id: 3,
                    type: 'VAEDecode',
                    inputs: [{ name: 'samples', type: 'LATENT', link: 3 }],
                },
            ],
            links: [
                [1, 1, 0, 2, 0, '*'],
                [2, 2, 0, 1, 0, '*'],
                [3, 1, 0, 3, 0, 'LATENT'],
            ],
        },
        defs,
    );
    assert.deepEqual(prompt, {
        3: { inputs: {}, class_type: 'VAEDecode', _meta: { title: 'VAE Decode' } },
    });
});
