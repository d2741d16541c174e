#!/usr/bin/env bash
# CPU smoke benchmark of a full-size SD1.5 (not a CI test: minutes on a 2-core machine).
# Writes a random-weight checkpoint with SD1.5's exact shapes (1.07 G parameters) into
# $WORK, runs the txt2img example through `kiln run` at $SIZE x $SIZE for $STEPS steps,
# prints the per-node wall times and the peak memory, and fails unless the saved PNG is
# finite-looking: NaN or infinite activations would turn it into one flat colour.
#
#   tools/bench/sd15_cpu_smoke.sh                 # 512 x 512, 2 steps, f16 weights
#   SIZE=256 STEPS=4 DTYPE=f32 tools/bench/sd15_cpu_smoke.sh
#
# BUILD names the build folder (default build), WORK the scratch base directory (default
# /tmp/kiln_sd15_smoke; the 2-4 GB checkpoint is kept there between runs).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$SRC/build}
SIZE=${SIZE:-512}
STEPS=${STEPS:-2}
DTYPE=${DTYPE:-f16}
WORK=${WORK:-/tmp/kiln_sd15_smoke}
CKPT=sd15-random-$DTYPE.safetensors

for bin in kiln make_checkpoint; do
    [ -x "$BUILD/$bin" ] || { echo "missing $BUILD/$bin: build first (make build)" >&2; exit 2; }
done
mkdir -p "$WORK/models/checkpoints"
if [ ! -f "$WORK/models/checkpoints/$CKPT" ]; then
    echo "== writing a random SD1.5-sized checkpoint ($DTYPE)"
    t0=$(date +%s%N)
    "$BUILD/make_checkpoint" --sd15 --dtype "$DTYPE" --seed 1 -o "$WORK/models/checkpoints/$CKPT"
    echo "   $(( ($(date +%s%N) - t0) / 1000000 )) ms"
fi
[ -f "$WORK/models/tokenizers/clip/vocab.json" ] ||
    "$BUILD/make_checkpoint" --tokenizer "$WORK/models/tokenizers/clip" >/dev/null

echo "== txt2img ${SIZE}x${SIZE}, $STEPS steps (euler, cfg 8), $(nproc) cores"
rm -rf "$WORK/output"
LOG=$WORK/run.log
# One lane: nodes run one after another, so each "done in" line is that node's own time
# (with several lanes a node's time runs until the next node starts).
/usr/bin/time -f "peak RSS %M KiB, wall %e s" -o "$WORK/time.txt" \
    "$BUILD/kiln" run "$SRC/workflows/sd15_txt2img_api.json" --base-directory "$WORK" --lanes 1 \
    --set 4.ckpt_name="$CKPT" --set 5.width="$SIZE" --set 5.height="$SIZE" \
    --set 3.steps="$STEPS" | tee "$LOG"
echo "== per-node times"
grep ' done in ' "$LOG"
cat "$WORK/time.txt"

PNG=$(find "$WORK/output" -name '*.png' | head -n 1)
[ -n "$PNG" ] || { echo "FAIL: no image was saved" >&2; exit 1; }
# Decodes the PNG (stdlib only) and checks that the pixels are not all one value.
python3 - "$PNG" <<'EOF'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
pos, idat, w, h = 8, b"", 0, 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
        assert depth == 8 and ctype == 2, "expected 8-bit RGB"
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
raw, stride, bpp = zlib.decompress(idat), w * 3, 3
prev, pixels = bytearray(stride), bytearray()
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    pixels += line
    prev = line
mean = sum(pixels) / len(pixels)
std = (sum((v - mean) ** 2 for v in pixels) / len(pixels)) ** 0.5
print(f"image {w}x{h}: mean {mean:.1f}, std {std:.1f}, min {min(pixels)}, max {max(pixels)}")
if std < 1.0:
    sys.exit("FAIL: the image is uniform (NaN or inf in the pipeline?)")
print("ok: no NaN")
EOF
