#!/usr/bin/env bash
# The sd15-tiny fixture workflow through `kiln run` on the GPU lanes in float32
# (KILN_CUDA_DTYPE=fp32): the saved PNG must match ComfyUI's euler_normal.png within 1 per
# channel. Usage: gpu_workflow.sh KILN FIXTURE_DIR TOKENIZER_DIR WORK_DIR
set -eu
KILN=$1 FIX=$2 TOK=$3 WORK=$4
B=$WORK/base
mkdir -p "$B/models/checkpoints" "$B/models/tokenizers/clip"
ln -sf "$FIX/checkpoint.safetensors" "$B/models/checkpoints/checkpoint.safetensors"
ln -sf "$TOK/vocab.json" "$TOK/merges.txt" "$B/models/tokenizers/clip/"
KILN_CUDA_DTYPE=fp32 "$KILN" run "$FIX/workflow_api.json" --base-directory "$B" >"$WORK/run.log"
python3 - "$B/output/kiln_fixture_00001_.png" "$FIX/euler_normal.png" <<'PY'
import struct, sys, zlib
def png(path):  # 8-bit RGB/RGBA, not interlaced
    d = open(path, "rb").read(); i = 8; idat = b""
    while i < len(d):
        n, = struct.unpack(">I", d[i:i + 4]); k = d[i + 4:i + 8]; c = d[i + 8:i + 8 + n]
        if k == b"IHDR": w, h, bd, ct = struct.unpack(">IIBB", c[:10])
        if k == b"IDAT": idat += c
        i += 12 + n
    ch = {2: 3, 6: 4}[ct]; raw = zlib.decompress(idat); out = []; prev = bytearray(w * ch)
    for y in range(h):
        f = raw[y * (w * ch + 1)]; row = bytearray(raw[y * (w * ch + 1) + 1:(y + 1) * (w * ch + 1)])
        for x in range(len(row)):
            a = row[x - ch] if x >= ch else 0; b = prev[x]; c = prev[x - ch] if x >= ch else 0
            if f == 1: row[x] = (row[x] + a) & 255
            elif f == 2: row[x] = (row[x] + b) & 255
            elif f == 3: row[x] = (row[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[x] = (row[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out.append(bytes(row)); prev = row
    return w, h, ch, out
g, r = png(sys.argv[1]), png(sys.argv[2])
assert g[:2] == r[:2], (g[:3], r[:3])
diff = max(abs(g[3][y][x * g[2] + c] - r[3][y][x * r[2] + c])
           for y in range(g[1]) for x in range(g[0]) for c in range(3))
print("gpu fixture workflow: %dx%d, max |diff| %d (bound 1)" % (g[0], g[1], diff))
sys.exit(0 if diff <= 1 else 1)
PY
