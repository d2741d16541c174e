// Widget value rules that run in the page: number snapping (INT steps shifted by min,
// FLOAT rounding) and the control_after_generate steps, plus the default graph's API form.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';

import { defaultGraph } from '../../src/default_graph.js';
import { graphToPrompt } from '../../src/lib/convert.js';
import { applyControl, snapNumber } from '../../src/widgets.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const read = (p) => JSON.parse(fs.readFileSync(path.resolve(here, p), 'utf8'));

test('INT values snap to the step grid that starts at min, within range', () => {
    const w = { value: 512, options: { min: 16, max: 16384, step2: 8 } };
    assert.equal(snapNumber(w, 517, true), 520);
    assert.equal(snapNumber(w, 515, true), 512);
    assert.equal(snapNumber(w, 3, true), 16);
    assert.equal(snapNumber(w, 99999, true), 16384);
    const odd = { value: 5, options: { min: 1, max: 100, step2: 2 } };
    assert.equal(snapNumber(odd, 4, true), 5); // grid 1, 3, 5, ...
    assert.equal(snapNumber(odd, 'abc', true), 5); // not a number: unchanged
});

test('FLOAT values round to `round` without binary noise', () => {
    const w = { value: 8, options: { min: 0, max: 100, step2: 0.1, round: 0.01, precision: 2 } };
    assert.equal(snapNumber(w, 7.456, false), 7.46);
    assert.equal(snapNumber(w, 0.1 + 0.2, false), 0.3);
    assert.equal(snapNumber(w, -1, false), 0);
});

function seedPair(value, mode, options = { min: 0, max: 18446744073709551615, step2: 1 }) {
    const target = { type: 'number', value, options };
    return { target, control: { value: mode, kilnControlFor: target } };
}

test('control_after_generate on numbers', () => {
    let p = seedPair(42, 'fixed');
    applyControl(p.control);
    assert.equal(p.target.value, 42);
    p = seedPair(42, 'increment');
    applyControl(p.control);
    assert.equal(p.target.value, 43);
    p = seedPair(0, 'decrement');
    applyControl(p.control);
    assert.equal(p.target.value, 0); // clamped at min
    p = seedPair(42, 'randomize');
    applyControl(p.control, () => 0.5);
    assert.equal(p.target.value, 562949953421312); // half of the 2^50 cap
    applyControl(p.control, () => 0);
    assert.equal(p.target.value, 0);
    applyControl(p.control, () => 0.9999999999);
    assert.ok(p.target.value <= 1125899906842624 && Number.isSafeInteger(p.target.value));
    p = seedPair(10, 'randomize', { min: 10, max: 20, step2: 5 });
    const seen = new Set();
    for (const r of [0, 0.3, 0.5, 0.7, 0.99]) {
        applyControl(p.control, () => r);
        seen.add(p.target.value);
    }
    assert.deepEqual(
        [...seen].sort((a, b) => a - b),
        [10, 15, 20],
    );
});

test('control_after_generate on combos', () => {
    const target = { type: 'combo', value: 'b', options: { values: ['a', 'b', 'c'] } };
    const control = { value: 'increment', kilnControlFor: target };
    applyControl(control);
    assert.equal(target.value, 'c');
    applyControl(control);
    assert.equal(target.value, 'c'); // stays at the end
    control.value = 'increment-wrap';
    applyControl(control);
    assert.equal(target.value, 'a');
    control.value = 'decrement';
    applyControl(control);
    assert.equal(target.value, 'a');
    control.value = 'randomize';
    applyControl(control, () => 0.7);
    assert.equal(target.value, 'c');
});

test("the default graph is ComfyUI's and converts to its known API form", () => {
    const defs = read('fixtures/object_info_stub.json');
    const prompt = graphToPrompt(defaultGraph(), defs);
    const want = read('../../../tests/data/ui/default_graph_api.json');
    const got = Object.fromEntries(
        Object.entries(prompt).map(([k, v]) => [k, { class_type: v.class_type, inputs: v.inputs }]),
    );
    assert.deepEqual(got, want);
    assert.equal(defaultGraph().nodes.length, 7);
});
