// PNG text-chunk reading: tEXt/iTXt/zTXt, the workflow-then-prompt fallback, and files
// that are not PNGs or are cut short.
import assert from 'node:assert/strict';
import test from 'node:test';
import zlib from 'node:zlib';

import { PngError, graphFromPng, readPngText } from '../../src/lib/png.js';

function crc32(buf) {
    let c = ~0;
    for (const b of buf) {
        c ^= b;
        for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
    }
    return ~c >>> 0;
}

function chunk(type, data) {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, 'latin1');
    Buffer.from(data).copy(out, 8);
    out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
}

function png(...chunks) {
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(1, 0);
    ihdr.writeUInt32BE(1, 4);
    ihdr[8] = 8;
    ihdr[9] = 2;
    const idat = zlib.deflateSync(Buffer.from([0, 1, 2, 3]));
    return Buffer.concat([
        Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
        chunk('IHDR', ihdr),
        ...chunks,
        chunk('IDAT', idat),
        chunk('IEND', Buffer.alloc(0)),
    ]);
}

const text = (k, v) => chunk('tEXt', Buffer.from(`${k}\0${v}`, 'latin1'));

test('tEXt workflow wins over prompt', async () => {
    const wf = { nodes: [{ id: 1, type: 'SaveImage' }], links: [], version: 0.4 };
    const buf = png(
        text('prompt', '{"1": {"class_type": "SaveImage", "inputs": {}}}'),
        text('workflow', JSON.stringify(wf)),
    );
    assert.deepEqual(await graphFromPng(buf), { workflow: wf });
    const all = await readPngText(buf);
    assert.deepEqual(Object.keys(all), ['prompt', 'workflow']);
});

test('prompt is the fallback; damaged JSON is skipped', async () => {
    const buf = png(
        text('workflow', '{not json'),
        text('prompt', '{"5": {"class_type": "X", "inputs": {}}}'),
    );
    assert.deepEqual(await graphFromPng(buf), { prompt: { 5: { class_type: 'X', inputs: {} } } });
    assert.equal(await graphFromPng(png(text('parameters', 'a1111 text'))), null);
});

test('ASCII-escaped JSON (Python json.dumps) decodes to the original text', async () => {
    const buf = png(text('workflow', '{"nodes": [], "links": [], "title": "caf\\u00e9 \\u2728"}'));
    assert.equal((await graphFromPng(buf)).workflow.title, 'café ✨');
});

test('iTXt (plain and deflated) and zTXt', async () => {
    const itxt = Buffer.concat([
        Buffer.from('workflow\0\0\0\0\0'),
        Buffer.from('{"a": "ü"}', 'utf8'),
    ]);
    assert.deepEqual(await graphFromPng(png(chunk('iTXt', itxt))), { workflow: { a: 'ü' } });
    const z = Buffer.concat([
        Buffer.from('workflow\0\x01\0\0\0', 'latin1'),
        zlib.deflateSync(Buffer.from('{"b": 2}')),
    ]);
    assert.deepEqual(await graphFromPng(png(chunk('iTXt', z))), { workflow: { b: 2 } });
    const zt = Buffer.concat([
        Buffer.from('prompt\0\0', 'latin1'),
        zlib.deflateSync(Buffer.from('{"c": 3}')),
    ]);
    assert.deepEqual(await graphFromPng(png(chunk('zTXt', zt))), { prompt: { c: 3 } });
});

test('not a PNG, or truncated', async () => {
    await assert.rejects(readPngText(Buffer.from('GIF89a....')), PngError);
    const whole = png(text('workflow', '{}'));
    await assert.rejects(readPngText(whole.subarray(0, 40)), /inside a chunk header/);
    await assert.rejects(readPngText(whole.subarray(0, 50)), /runs past the end/);
});
