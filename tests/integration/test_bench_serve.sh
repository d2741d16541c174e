#!/usr/bin/env bash
# Smoke test of tools/bench/bench_serve.py, the end-to-end benchmark over `kiln serve`'s
# protocol: its WebSocket client and PNG check on hand-made data, every scenario on the
# tiny fixture checkpoint at 64 x 64 (the JSON must hold positive figures for each, and
# per-node times for KSampler and VAEDecode), GPU sampling through a stand-in nvidia-smi,
# a failing checkpoint (exit 1 with the server's error), and Ctrl-C in the middle of a run
# (exit 130, the server stopped).
set -u
KILN=${1:?usage: test_bench_serve.sh PATH/TO/kiln}
SRC=${KILN_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
SHARED=${KILN_SHARED_DIR:-$SRC/../shared}
FIX=$SHARED/fixtures/sd15-tiny
TOK=$SHARED/fixtures/clip-tokenizer
BENCH=$SRC/tools/bench/bench_serve.py
WORK=$(mktemp -d /tmp/kiln_bench_serve_XXXXXX)
trap 'rm -rf "$WORK"' EXIT
passed=0 failed=0

check() { # check NAME COMMAND...: runs COMMAND, counts the result
    local name=$1; shift
    if ( "$@" ) >"$WORK/last.log" 2>&1; then
        echo "ok   $name"; passed=$((passed + 1))
    else
        echo "FAIL $name"; sed 's/^/    /' "$WORK/last.log" | tail -n 40; failed=$((failed + 1))
    fi
}

# No kiln server may outlive the script that started it (its command line names the base).
# Nor may it have reported memory errors or undefined behaviour (sanitized builds).
no_server_left() { # no_server_left WORK_DIR
    if pgrep -f -- "--base-directory $1/base" >/dev/null; then
        echo "a kiln serve for $1 is still running"; return 1
    fi
    if grep -E 'Sanitizer|runtime error' "$1/serve.log"; then
        echo "the server's log has sanitizer reports"; return 1
    fi
}

self_test() {
    python3 "$BENCH" --self-test
}

all_scenarios() {
    local w=$WORK/all
    python3 "$BENCH" --kiln "$KILN" --checkpoint "$FIX/checkpoint.safetensors" \
        --tokenizer "$TOK" --work "$w" --out "$w/out" --size 64 --steps 3 --hires-steps 2 \
        --runs 2 --warmup 1 --scenarios b1,b4,b8,q16,hires >"$w.log" 2>&1 ||
        { cat "$w.log"; return 1; }
    cat "$w.log"
    grep -q '^device: ' "$w.log" && grep -q '^| b1 | 2 | ' "$w.log" &&
    grep -q '^| KSampler | ' "$w.log" && no_server_left "$w" &&
    python3 - "$w/out/bench_serve.json" "$w/base/output/bench" <<'PY'
import json, os, sys
d = json.load(open(sys.argv[1]))
sc = d["scenarios"]
assert sorted(sc) == ["b1", "b4", "b8", "hires", "q16"], sorted(sc)
want = {"b1": ["latency_s", "it_per_s"], "b4": ["latency_s", "it_per_s", "images_per_s"],
        "b8": ["latency_s", "it_per_s", "images_per_s"], "q16": ["images_per_s", "total_s"],
        "hires": ["latency_s", "it_per_s"]}
for name, keys in want.items():
    m = sc[name]["metrics"]
    for k in keys:
        assert len(m[k]["values"]) == 2, (name, k, m[k])
        assert 0 < m[k]["min"] <= m[k]["median"] <= m[k]["max"], (name, k, m[k])
    # Only the loader and the constant empty latent may come from the cache.
    assert set(sc[name]["cached"]) <= {"CheckpointLoaderSimple", "EmptyLatentImage"}, sc[name]
    assert sc[name]["gpu_busy_pct"] is None or 0 <= sc[name]["gpu_busy_pct"] <= 100
# Images per second follow from the batch and the latency.
for name, b in (("b4", 4), ("b8", 8)):
    m = sc[name]["metrics"]
    assert sorted(m["images_per_s"]["values"]) == sorted(b / v for v in m["latency_s"]["values"])
assert sc["q16"]["prompts_per_run"] == 16 and sc["hires"]["size"] == 96
node = sc["b1"]["per_node"]
for cls in ("KSampler", "VAEDecode", "SaveImage", "CLIPTextEncode"):
    assert node[cls]["median"] > 0, (cls, node)
assert "CheckpointLoaderSimple" not in node
# Every run's images, warm-up runs included: (1 + 2) x batch for b1, b4, b8 and hires,
# and 1 + 2 x 16 for q16.
pngs = [f for f in os.listdir(sys.argv[2]) if f.endswith(".png")]
assert len(pngs) == 3 * (1 + 4 + 8 + 1) + 33, len(pngs)
assert sum(f.startswith("hires_0") for f in pngs) == 2, pngs
assert sum(f.startswith("hires_warmup_") for f in pngs) == 1, pngs
print("json ok:", len(pngs), "images")
PY
}

failing_checkpoint() {
    local w=$WORK/bad
    mkdir -p "$w"
    # The first 8 bytes, read as the header length, are far over any limit.
    printf 'this is not a safetensors file\n' >"$w/broken.safetensors"
    python3 "$BENCH" --kiln "$KILN" --checkpoint "$w/broken.safetensors" --tokenizer "$TOK" \
        --work "$w" --size 64 --steps 2 --runs 1 --scenarios b1 >"$w.log" 2>&1
    local rc=$?
    cat "$w.log"
    [ "$rc" = 1 ] &&
        grep -q '^bench_serve: prompt .* failed (execution_error) in node 1 (CheckpointLoader' \
            "$w.log" &&
        grep -q 'broken.safetensors' "$w.log" &&
        [ ! -e "$w/bench_serve.json" ] && no_server_left "$w"
}

interrupted() {
    local w=$WORK/int
    python3 "$BENCH" --kiln "$KILN" --checkpoint "$FIX/checkpoint.safetensors" \
        --tokenizer "$TOK" --work "$w" --size 64 --steps 2000 --runs 1 --warmup 0 \
        --scenarios b1 >"$w.log" 2>&1 &
    local pid=$!
    # Once the server is up, the prompt (2,000 steps) is soon posted and sampling.
    for _ in $(seq 1 600); do
        grep -q '^kiln serve on port' "$w.log" 2>/dev/null && break
        sleep 0.1
    done
    sleep 1.5
    kill -INT "$pid"
    wait "$pid"
    local rc=$?
    cat "$w.log"
    [ "$rc" = 130 ] && grep -q 'bench_serve: interrupted' "$w.log" && no_server_left "$w"
}

# The nvidia-smi fallback, with a stand-in that reports a constant 42 % utilization.
gpu_sampling() {
    local w=$WORK/smi
    mkdir -p "$w/bin"
    cat >"$w/bin/nvidia-smi" <<'SH'
#!/bin/sh
case "$*" in
*name,driver_version*) echo "Fake GPU 9000, 555.42" ;;
*utilization.gpu*-lms*) while :; do echo 42; sleep 0.05; done ;;
*) exit 9 ;;
esac
SH
    chmod +x "$w/bin/nvidia-smi"
    PATH=$w/bin:$PATH python3 "$BENCH" --kiln "$KILN" \
        --checkpoint "$FIX/checkpoint.safetensors" --tokenizer "$TOK" --work "$w" \
        --size 64 --steps 20 --runs 3 --scenarios b1 --gpu-sampler nvidia-smi >"$w.log" 2>&1 ||
        { cat "$w.log"; return 1; }
    cat "$w.log"
    grep -q '^device: Fake GPU 9000, driver 555.42$' "$w.log" &&
        grep -q '^| b1 | 3 | .* | s | 42.0 |$' "$w.log" && no_server_left "$w" &&
        ! pgrep -f "$w/bin/nvidia-smi" >/dev/null &&
        python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["gpu_sampling"] == "nvidia-smi" and d["scenarios"]["b1"]["gpu_busy_pct"] == 42.0, d
' "$w/bench_serve.json"
}

check self_test self_test
check all_scenarios all_scenarios
check gpu_sampling gpu_sampling
check failing_checkpoint failing_checkpoint
check interrupted interrupted
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
