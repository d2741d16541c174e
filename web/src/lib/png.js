// Text chunks of a PNG file: how a saved image carries its workflow. SaveImage writes a
// `prompt` chunk (the API prompt) and one chunk per extra_pnginfo key, normally
// `workflow` (the editor's graph), as Latin-1 tEXt holding ASCII-escaped JSON
// (../shared/docs/comfyui-compat.md §7). iTXt (UTF-8, possibly deflated) and zTXt are read
// too, for files other tools rewrote.

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

/** Thrown for bytes that are not a readable PNG. */
export class PngError extends Error {}

async function inflate(bytes) {
    if (typeof DecompressionStream === 'undefined')
        throw new PngError('compressed text chunks need DecompressionStream');
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
}

const latin1 = (b) => new TextDecoder('latin1').decode(b);
const utf8 = (b) => new TextDecoder('utf-8').decode(b);

/**
 * The text chunks of a PNG as {keyword: text} (the first chunk of a keyword wins).
 * Rejects with PngError when the bytes are not a PNG or a chunk runs past the end.
 */
export async function readPngText(buffer) {
    const bytes = new Uint8Array(buffer);
    if (bytes.length < 8 || SIGNATURE.some((v, i) => bytes[i] !== v))
        throw new PngError('not a PNG file');
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out = {};
    let off = 8;
    while (off < bytes.length) {
        if (off + 8 > bytes.length) throw new PngError('the file ends inside a chunk header');
        const len = view.getUint32(off);
        const type = latin1(bytes.subarray(off + 4, off + 8));
        const start = off + 8;
        if (start + len + 4 > bytes.length)
            throw new PngError(`chunk ${type} runs past the end of the file`);
        const data = bytes.subarray(start, start + len);
        if (type === 'tEXt' || type === 'zTXt' || type === 'iTXt') {
            const entry = await readTextChunk(type, data);
            if (entry && !(entry[0] in out)) out[entry[0]] = entry[1];
        }
        if (type === 'IEND') break;
        off = start + len + 4;
    }
    return out;
}

async function readTextChunk(type, data) {
    const nul = data.indexOf(0);
    if (nul <= 0) return null;
    const key = latin1(data.subarray(0, nul));
    if (type === 'tEXt') return [key, latin1(data.subarray(nul + 1))];
    if (type === 'zTXt') return [key, latin1(await inflate(data.subarray(nul + 2)))];
    // iTXt: keyword\0 flag method language\0 translated\0 text
    const compressed = data[nul + 1] === 1;
    let p = nul + 3;
    for (let k = 0; k < 2; k++) {
        const z = data.indexOf(0, p);
        if (z < 0) return null;
        p = z + 1;
    }
    const body = data.subarray(p);
    return [key, utf8(compressed ? await inflate(body) : body)];
}

/**
 * What a PNG says about the graph that made it: {workflow} from the `workflow` chunk,
 * else {prompt} from the `prompt` chunk (API format), else null. Chunks holding invalid
 * JSON are skipped.
 */
export async function graphFromPng(buffer) {
    const text = await readPngText(buffer);
    for (const key of ['workflow', 'prompt']) {
        if (!(key in text)) continue;
        try {
            const value = JSON.parse(text[key]);
            if (value && typeof value === 'object') return { [key]: value };
        } catch {
            // A damaged chunk: try the next one.
        }
    }
    return null;
}
