#!/usr/bin/env bash
# End-to-end SD1.5 on the GPU through `kiln run`: a full-size random checkpoint
# (make_checkpoint --sd15 --dtype f16), 512x512, 20 steps euler/normal, cfg 8. One prompt
# holds N independent chains (text encode, KSampler, VAE decode, SaveImage) sharing the
# loader, so the checkpoint loads once; event lines are timestamped as they arrive, and the
# summary splits sampling (KSampler start to KSampler start, warm after the first) from
# decode + save. It fails when the run fails or saves fewer images than it should, and
# prints the saved images' pixel statistics.
# Usage: bench_e2e_gpu.sh BIN_DIR TOKENIZER_DIR OUT_DIR [BATCH] [CHAINS]
set -eu
BIN=$1 TOK=$2 OUT=$3 BATCH=${4:-1} N=${5:-5}
BASE=$OUT/base
mkdir -p "$BASE/models/checkpoints" "$BASE/models/tokenizers/clip"
cp -n "$TOK"/vocab.json "$TOK"/merges.txt "$BASE/models/tokenizers/clip/" 2>/dev/null || true
CK=$BASE/models/checkpoints/sd15-random.safetensors
[ -f "$CK" ] || "$BIN/make_checkpoint" --sd15 --dtype f16 --seed 1 -o "$CK" >/dev/null
python3 - "$OUT/wf.json" "$BATCH" "$N" <<'PY'
import json, sys
path, batch, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
wf = {"1": {"class_type": "CheckpointLoaderSimple",
            "inputs": {"ckpt_name": "sd15-random.safetensors"}},
      "2": {"class_type": "EmptyLatentImage",
            "inputs": {"width": 512, "height": 512, "batch_size": batch}},
      "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}}}
for k in range(n):
    b = 10 * (k + 1)
    wf[str(b)] = {"class_type": "CLIPTextEncode",
                  "inputs": {"text": "a photo of a cat number %d" % k, "clip": ["1", 1]}}
    wf[str(b + 1)] = {"class_type": "KSampler", "inputs": {
        "seed": k, "steps": 20, "cfg": 8.0, "sampler_name": "euler", "scheduler": "normal",
        "denoise": 1.0, "model": ["1", 0], "positive": [str(b), 0], "negative": ["3", 0],
        "latent_image": ["2", 0]}}
    wf[str(b + 2)] = {"class_type": "VAEDecode",
                      "inputs": {"samples": [str(b + 1), 0], "vae": ["1", 2]}}
    wf[str(b + 3)] = {"class_type": "SaveImage",
                      "inputs": {"filename_prefix": "bench", "images": [str(b + 2), 0]}}
json.dump(wf, open(path, "w"))
PY
rm -f "$BASE"/output/bench_*.png
"$BIN/kiln" run "$OUT/wf.json" --base-directory "$BASE" --json 2>"$OUT/kiln.err" |
    python3 -c '
import sys, time, json
for line in sys.stdin:
    sys.stdout.write("%.6f %s" % (time.monotonic(), line)); sys.stdout.flush()
' >"$OUT/events.txt"
# A failed node must not pass for a fast one: the run has to succeed and save every image.
rc=${PIPESTATUS[0]}
if [ "$rc" != 0 ] || ! grep -q '"execution_success"' "$OUT/events.txt"; then
    echo "bench_e2e_gpu: kiln run failed (exit $rc):" >&2
    grep -E '"execution_error"' "$OUT/events.txt" | head -3 >&2
    tail -5 "$OUT/kiln.err" >&2
    exit 1
fi
saved=$(ls "$BASE"/output/bench_*.png 2>/dev/null | wc -l)
if [ "$saved" != $((N * BATCH)) ]; then
    echo "bench_e2e_gpu: $saved images saved, expected $((N * BATCH))" >&2
    exit 1
fi
python3 - "$OUT/events.txt" "$BATCH" <<'PY'
import json, sys, statistics
rows = []
for line in open(sys.argv[1]):
    t, js = line.split(" ", 1)
    try:
        ev = json.loads(js)
    except ValueError:
        continue
    rows.append((float(t), ev))
starts = [t for t, ev in rows if ev["type"] == "executing" and ev["data"].get("node")
          and int(ev["data"]["node"]) % 10 == 1 and int(ev["data"]["node"]) > 10]
end = [t for t, ev in rows if ev["type"] == "execution_success"]
marks = starts + end[-1:]
gaps = [b - a for a, b in zip(marks, marks[1:])]
batch = int(sys.argv[2])
# The engine runs every chain's KSampler before the decodes (see the node order below), so
# the gaps between KSampler starts time sampling alone, and the last gap (the last KSampler
# to success) holds one sampling plus every chain's VAE decode and save.
ks = gaps[:-1]
samp = statistics.median(ks[1:] if len(ks) > 1 else ks)
decode = (gaps[-1] - samp) / len(starts)
per = samp + decode
print("batch %d: gaps %s s; sampling %.3f s (median after the first), decode + save %.3f s "
      "per chain; %.3f s per prompt, %.2f images/s"
      % (batch, " ".join("%.3f" % g for g in gaps), samp, decode, per, batch / per))
# The order the engine ran the chains' nodes in, since the gaps above only mean "one chain"
# when each chain's decode and save run before the next KSampler starts.
order = [ev["data"]["node"] for t, ev in rows
         if ev["type"] == "executing" and ev["data"].get("node")]
print("node order: " + " ".join(order))
if starts and end:
    print("first KSampler start to success: %.3f s for %d chains" % (end[-1] - starts[0],
                                                                       len(starts)))
PY
# Sanity of what was saved: per-image mean and standard deviation of the 8-bit pixels (a
# uniform image, e.g. from NaNs clamped away, has a standard deviation of 0).
python3 - "$BASE"/output/bench_*.png <<'PY' || echo "image stats: PIL/numpy not available"
import sys
import numpy as np
from PIL import Image
for p in sys.argv[1:4]:
    a = np.asarray(Image.open(p).convert("RGB"), dtype=np.float64)
    print("%s: %dx%d mean %.2f std %.2f min %d max %d" % (p.rsplit("/", 1)[-1], a.shape[1],
          a.shape[0], a.mean(), a.std(), a.min(), a.max()))
PY
