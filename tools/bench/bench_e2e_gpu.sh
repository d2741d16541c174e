#!/usr/bin/env bash
# End-to-end SD1.5 on the GPU through `kiln run`: a full-size random checkpoint
# (make_checkpoint --sd15 --dtype f16), 512x512, 20 steps euler/normal, cfg 8. One prompt
# holds N independent chains (text encode, KSampler, VAE decode, SaveImage) sharing the
# loader, so the checkpoint loads once; event lines are timestamped as they arrive and the
# gaps between successive KSampler starts are one image (or batch) each, warm after the
# first. Usage: bench_e2e_gpu.sh BIN_DIR TOKENIZER_DIR OUT_DIR [BATCH] [CHAINS]
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
"$BIN/kiln" run "$OUT/wf.json" --base-directory "$BASE" --json 2>"$OUT/kiln.err" |
    python3 -c '
import sys, time, json
for line in sys.stdin:
    sys.stdout.write("%.6f %s" % (time.monotonic(), line)); sys.stdout.flush()
' >"$OUT/events.txt"
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
warm = gaps[1:] if len(gaps) > 2 else gaps
med = statistics.median(warm)
print("batch %d: per chain %s s; median (after warm-up) %.3f s; %.2f images/s"
      % (batch, " ".join("%.3f" % g for g in gaps), med, batch / med))
PY
