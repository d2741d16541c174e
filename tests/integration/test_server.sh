#!/usr/bin/env bash
# `kiln serve` end to end, part 1: the queueing and discovery routes through curl, and the
# WebSocket protocol through node's `ws` (test_server_ws.mjs): the full message sequence
# of the example workflows, history, cached re-runs, concurrent clients, prompts
# submitted over the socket. Usage: test_server.sh PATH/TO/kiln
set -u
KILN=${1:?usage: test_server.sh PATH/TO/kiln}
. "$(dirname "$0")/server_lib.sh"
node_setup
start_server "$WORK/base" || exit 1
WF="$SRC/workflows"

discovery() {
    expect 200 GET /prompt && jcheck "$WORK/body" 'd.exec_info.queue_remaining === 0' &&
    expect 200 GET /api/prompt &&
    expect 200 GET /object_info &&
    jcheck "$WORK/body" 'd.EmptyImage.input.required.width[0] === "INT"
        && d.SaveImage.output_node' &&
    expect 200 GET /api/object_info/ImageInvert &&
    jcheck "$WORK/body" 'Object.keys(d).join() === "ImageInvert"' &&
    expect 200 GET /object_info/NoSuchNode && jcheck "$WORK/body" 'Object.keys(d).length === 0' &&
    expect 200 GET /api/system_stats &&
    jcheck "$WORK/body" 'd.system.ram_total > 0 && d.system.ram_free > 0 && d.system.os === "posix"
        && Array.isArray(d.system.argv) && d.system.embedded_python === false
        && d.devices[0].type === "cpu" && d.devices[0].vram_total === d.system.ram_total' &&
    expect 200 GET /api/embeddings && jcheck "$WORK/body" 'Array.isArray(d) && d.length === 0' &&
    expect 200 GET /api/extensions && jcheck "$WORK/body" 'Array.isArray(d) && d.length === 0' &&
    expect 200 GET /api/features &&
    jcheck "$WORK/body" 'd.supports_preview_metadata === true
        && d.max_upload_size === 104857600' &&
    expect 200 GET /api/models &&
    jcheck "$WORK/body" 'd.includes("checkpoints") && d.includes("loras")'
}

models() {
    mkdir -p "$BASE/models/checkpoints/sub" "$BASE/models/embeddings" &&
    : >"$BASE/models/checkpoints/b.safetensors" && : >"$BASE/models/checkpoints/sub/a.ckpt" &&
    : >"$BASE/models/checkpoints/notes.txt" && : >"$BASE/models/embeddings/style.pt" &&
    expect 200 GET /api/models/checkpoints &&
    jcheck "$WORK/body" 'd.join() === "b.safetensors,sub/a.ckpt"' &&
    expect 200 GET /embeddings && jcheck "$WORK/body" 'JSON.stringify(d) === "[\"style\"]"' &&
    expect 404 GET /models/nonsense
}

# ComfyUI's numbering: the counter moves for every request without a number, rejected
# ones included, `front` negates it, a client number is a float and leaves it alone.
numbering() {
    body_of "$WF/invert_api.json" >"$WORK/ok.json" &&
    body_of "$WF/invert_api.json" '{"front": true}' >"$WORK/front.json" &&
    body_of "$WF/invert_api.json" '{"number": 42, "prompt_id": "client-chosen"}' \
        >"$WORK/num.json" &&
    body_of "$WF/invalid_api.json" >"$WORK/invalid.json" &&
    expect 200 POST /prompt --data-binary @"$WORK/ok.json" &&
    local n0; n0=$(jval "$WORK/body" d.number) &&
    expect 400 POST /prompt --data-binary @"$WORK/invalid.json" &&
    jcheck "$WORK/body" 'd.error.type === "prompt_outputs_failed_validation"
        && d.error.details === ""
        && d.node_errors["1"].errors.length === 2 && d.node_errors["1"].class_type === "EmptyImage"
        && JSON.stringify(d.node_errors["1"].dependent_outputs) === "[\"3\"]"
        && d.node_errors["4"].errors[0].type === "required_input_missing"' &&
    expect 400 POST /prompt -d '{"client_id": "x"}' &&
    jcheck "$WORK/body" 'd.error.type === "no_prompt" && d.error.message === "No prompt provided"
        && JSON.stringify(d.node_errors) === "{}"' &&
    expect 200 POST /prompt --data-binary @"$WORK/front.json" &&
    jcheck "$WORK/body" "d.number === -($n0 + 3)" &&
    expect 200 POST /prompt --data-binary @"$WORK/num.json" &&
    grep -q '"number": 42.0' "$WORK/body" &&
    jcheck "$WORK/body" 'd.prompt_id === "client-chosen"' &&
    expect 200 POST /prompt --data-binary @"$WORK/ok.json" &&
    jcheck "$WORK/body" "d.number === $n0 + 4"
}

# A prompt with one valid and one invalid output is queued with the valid one, and the
# 200 reports the other's errors.
partial() {
    node -e '
        const p = JSON.parse(require("fs").readFileSync(process.argv[1]));
        p["8"] = {class_type: "ImageInvert", inputs: {}};
        p["9"] = {class_type: "PreviewImage", inputs: {images: ["8", 0]}};
        console.log(JSON.stringify({prompt: p}));' "$WF/invert_api.json" >"$WORK/partial.json" &&
    expect 200 POST /prompt --data-binary @"$WORK/partial.json" &&
    jcheck "$WORK/body" 'd.node_errors["8"].errors[0].type === "required_input_missing"' &&
    local id; id=$(jval "$WORK/body" d.prompt_id) &&
    wait_history "$id" && jcheck "$WORK/hist.json" "JSON.stringify(d['$id'].prompt[4]) === '[\"3\"]'
        && d['$id'].status.status_str === 'success'"
}

queue_routes() {
    slow_prompt "$WORK/slow.json" 11 40 && body_of "$WORK/slow.json" >"$WORK/slow_body.json" &&
    local slow a b c
    slow=$(post_prompt "$WORK/slow_body.json") &&
    for _ in $(seq 1 200); do
        curl -s "$(URL /queue)" | grep -q "\"queue_running\": \[\[" && break; sleep 0.05
    done &&
    a=$(post_prompt "$WORK/ok.json") && b=$(post_prompt "$WORK/ok.json") &&
    c=$(post_prompt "$WORK/front.json") &&
    expect 200 GET /api/queue &&
    jcheck "$WORK/body" "d.queue_running.length === 1 && d.queue_running[0][1] === '$slow'
        && d.queue_pending.length === 3 && d.queue_pending[0][1] === '$c'
        && d.queue_pending.every(i => i.length === 5 && i[4][0] === '3')" &&
    expect 200 GET /prompt && jcheck "$WORK/body" 'd.exec_info.queue_remaining === 4' &&
    expect 200 POST /queue -d "{\"delete\": [\"$b\"]}" &&
    expect 200 GET /queue &&
    jcheck "$WORK/body" "d.queue_pending.length === 2
        && !d.queue_pending.some(i => i[1] === '$b')" &&
    expect 200 POST /api/queue -d '{"clear": true}' &&
    expect 200 GET /queue &&
    jcheck "$WORK/body" "d.queue_pending.length === 0 && d.queue_running.length === 1" &&
    expect 200 POST /interrupt && wait_history "$slow" &&
    jcheck "$WORK/hist.json" "d['$slow'].status.status_str === 'error'
        && d['$slow'].status.messages.at(-1)[0] === 'execution_interrupted'" &&
    expect 200 GET /history/"$a" && jcheck "$WORK/body" 'Object.keys(d).length === 0'
}

history_routes() {
    expect 200 GET /history && local n
    n=$(jval "$WORK/body" 'Object.keys(d).length') &&
    [ "$n" -ge 3 ] && cp "$WORK/body" "$WORK/all.json" &&
    expect 200 GET '/history?max_items=2' &&
    jcheck "$WORK/body" "JSON.stringify(Object.keys(d)) === JSON.stringify(Object.keys(
        JSON.parse(require('fs').readFileSync('$WORK/all.json'))).slice(-2))" &&
    expect 200 GET '/api/history?max_items=1&offset=0' &&
    jcheck "$WORK/body" "Object.keys(d)[0] === Object.keys(
        JSON.parse(require('fs').readFileSync('$WORK/all.json')))[0]" &&
    expect 400 GET '/history?max_items=lots' &&
    local first; first=$(jval "$WORK/all.json" 'Object.keys(d)[0]') &&
    expect 200 POST /history -d "{\"delete\": [\"$first\"]}" &&
    expect 200 GET /history/"$first" && jcheck "$WORK/body" 'Object.keys(d).length === 0' &&
    expect 200 POST /api/history -d '{"clear": true}' &&
    expect 200 GET /history && jcheck "$WORK/body" 'Object.keys(d).length === 0'
}

free_route() {
    body_of "$WF/batch_scale_api.json" '{"client_id": "free-test"}' >"$WORK/bs.json" &&
    local p1 p2 p3
    p1=$(post_prompt "$WORK/bs.json") && wait_history "$p1" &&
    p2=$(post_prompt "$WORK/bs.json") && wait_history "$p2" &&
    jcheck "$WORK/hist.json" "d['$p2'].status.messages[1][1].nodes.length === 7" &&
    expect 200 POST /free -d '{"free_memory": true}' && sleep 0.3 &&
    p3=$(post_prompt "$WORK/bs.json") && wait_history "$p3" &&
    jcheck "$WORK/hist.json" "d['$p3'].status.messages[1][1].nodes.length === 0"
}

check "WebSocket sequence of invert_api.json, history, cached re-run" \
    ws_scenario sequence "$WF/invert_api.json"
check "WebSocket sequence of batch_scale_api.json (concurrent branches, preview)" \
    ws_scenario sequence "$WF/batch_scale_api.json"
check "two clients receive only their own events" \
    ws_scenario two_clients "$WF/invert_api.json" "$WF/batch_scale_api.json"
check "prompts submitted over the WebSocket" \
    ws_scenario ws_submit "$WF/invert_api.json" "$WF/invalid_api.json"
check "discovery routes and their /api aliases" discovery
check "model folders" models
check "POST /prompt numbering, front, client number and prompt_id, 400 bodies" numbering
check "200 with node_errors when some outputs are invalid" partial
check "GET/POST /queue: running, pending, delete, clear; /interrupt" queue_routes
check "history: all, max_items, offset, by id, delete, clear" history_routes
check "POST /free drops the cache" free_route
stop_server TERM; rc=$?
check "SIGTERM stops the server cleanly (exit status 0)" test "$rc" -eq 0
finish
