#!/usr/bin/env bash
# `kiln serve` end to end, part 4: no accepted prompt is lost across restarts. The server
# is killed with SIGKILL between accepting prompts and running them and must run them
# after a restart (numbers kept, the counter continuing); a clean SIGTERM puts the
# interrupted prompt back in the queue and saves the history; a prompt that was running
# through two crashes is dropped instead of crash-looping; a torn journal line is
# skipped. Usage: test_server_restart.sh PATH/TO/kiln
set -u
KILN=${1:?usage: test_server_restart.sh PATH/TO/kiln}
. "$(dirname "$0")/server_lib.sh"
node_setup
WF="$SRC/workflows"
B="$WORK/base"
slow_prompt "$WORK/slow1.json" 41 40 && body_of "$WORK/slow1.json" >"$WORK/slow1_body.json"
slow_prompt "$WORK/slow2.json" 42 40 && body_of "$WORK/slow2.json" >"$WORK/slow2_body.json"
for i in 1 2 3 4; do
    recolor "$WF/invert_api.json" "$WORK/q$i.json" "$((50 + i))"
    body_of "$WORK/q$i.json" >"$WORK/q${i}_body.json"
done

wait_running() { # wait_running ID: until /queue shows ID running
    for _ in $(seq 1 400); do
        curl -s "$(URL /queue)" >"$WORK/queue.json"
        grep -q "\"queue_running\": \[\[[^,]*, \"$1\"" "$WORK/queue.json" && return 0
        sleep 0.05
    done
    echo "$1 never ran"; cat "$WORK/queue.json"; return 1
}

number_of() { jval "$1" d.number; }

start_server "$B" || exit 1
S1=$(post_prompt "$WORK/slow1_body.json")
Q1=$(post_prompt "$WORK/q1_body.json"); N1=$(number_of "$WORK/body")
Q2=$(post_prompt "$WORK/q2_body.json"); N2=$(number_of "$WORK/body")

accepted_then_killed() {
    wait_running "$S1" &&
    grep -q "\"prompt_id\": \"$Q1\"" "$B/user/kiln_queue.jsonl" &&
    grep -q "\"prompt_id\": \"$Q2\"" "$B/user/kiln_queue.jsonl" &&
    { stop_server KILL; [ -z "$SERVER_PID" ]; }
}
check "prompts accepted while one runs, then SIGKILL" accepted_then_killed

restored() {
    start_server "$B" &&
    expect 200 GET /queue &&
    jcheck "$WORK/body" "[...d.queue_running, ...d.queue_pending].map(i => i[1]).sort().join()
        === ['$S1', '$Q1', '$Q2'].sort().join()" &&
    wait_running "$S1" && expect 200 POST /interrupt &&
    wait_history "$Q1" && jcheck "$WORK/hist.json" "d['$Q1'].status.status_str === 'success'
        && d['$Q1'].prompt[0] === $N1" &&
    wait_history "$Q2" && jcheck "$WORK/hist.json" "d['$Q2'].prompt[0] === $N2" &&
    expect 200 POST /prompt --data-binary @"$WORK/q3_body.json" &&
    jcheck "$WORK/body" "d.number > $N2"
}
check "after a restart every accepted prompt runs, numbers kept, counter continues" restored

S2=$(post_prompt "$WORK/slow2_body.json")
clean_stop() {
    wait_running "$S2" &&
    Q4=$(post_prompt "$WORK/q4_body.json") && echo "$Q4" >"$WORK/q4.id" &&
    stop_server TERM && test -s "$B/user/kiln_history.jsonl" &&
    grep -q "\"$Q1\"" "$B/user/kiln_history.jsonl" &&
    grep -q "\"prompt_id\": \"$S2\"" "$B/user/kiln_queue.jsonl" &&
    grep -q "\"prompt_id\": \"$Q4\"" "$B/user/kiln_queue.jsonl"
}
check "SIGTERM interrupts the running prompt, keeps it queued, saves history" clean_stop

after_clean_stop() {
    local q4; q4=$(cat "$WORK/q4.id") &&
    start_server "$B" &&
    expect 200 GET "/history/$Q1" &&
    jcheck "$WORK/body" "d['$Q1'].status.status_str === 'success'" &&
    wait_running "$S2" && expect 200 POST /interrupt &&
    wait_history "$q4" && jcheck "$WORK/hist.json" "d['$q4'].status.status_str === 'success'" &&
    stop_server TERM
}
check "history and queue survive a clean restart" after_clean_stop

# Many submitters while the server is stopped under them: every prompt that got its 200
# must run after the restart, whether the server was killed or stopped cleanly.
under_load() { # under_load SIGNAL
    local L="$WORK/load_$1"
    start_server "$L" || return 1
    node -e '
        const [port, out] = [process.argv[1], process.argv[2]];
        const body = JSON.stringify({prompt: JSON.parse(require("fs").readFileSync(process.argv[3]))});
        const ids = [];
        let next = 0;
        const one = () => fetch(`http://127.0.0.1:${port}/prompt`, {method: "POST", body})
            .then(async (r) => { if (r.status === 200) ids.push((await r.json()).prompt_id); })
            .catch(() => {});
        const worker = async () => { while (next++ < 2000) await one(); };
        Promise.all(Array.from({length: 25}, worker)).then(() =>
            require("fs").writeFileSync(out, ids.join("\n") + "\n"));
    ' "$PORT" "$L.ids" "$WORK/q1.json" &
    local client=$!
    sleep 0.4
    stop_server "$1"
    wait "$client"
    local n; n=$(grep -c . "$L.ids")
    echo "$n prompts accepted before SIG$1"
    [ "$n" -gt 0 ] && start_server "$L" || return 1
    for _ in $(seq 1 600); do
        expect 200 GET /prompt && grep -q '"queue_remaining": 0' "$WORK/body" && break
        sleep 0.1
    done
    expect 200 GET /history &&
    node -e '
        const fs = require("fs");
        const h = JSON.parse(fs.readFileSync(process.argv[1]));
        const ids = fs.readFileSync(process.argv[2], "utf8").split("\n").filter(Boolean);
        const missing = ids.filter((id) => !h[id] || h[id].status.status_str !== "success");
        console.log(`${ids.length} accepted, ${Object.keys(h).length} in history, ` +
            `${missing.length} missing`);
        process.exit(missing.length ? 1 : 0);
    ' "$WORK/body" "$L.ids" &&
    stop_server TERM
}
check "SIGKILL under load: every accepted prompt runs after the restart" under_load KILL
check "SIGTERM under load: every accepted prompt runs after the restart" under_load TERM

# A journal written by a server that died twice while running prompt "loop", plus a torn
# last line: "loop" is dropped, "next" runs, the counter continues from the record.
crash_loop() {
    local C="$WORK/crash"
    mkdir -p "$C/user" &&
    node -e '
        const fs = require("fs");
        const p = JSON.parse(fs.readFileSync(process.argv[1]));
        const put = (q, id) => JSON.stringify({put: {q, number: q, prompt_id: id, prompt: p,
            extra_data: {}, outputs: ["3"], attempts: 0}});
        fs.writeFileSync(process.argv[2], [JSON.stringify({counter: 7, next_qid: 3}),
            put(1, "loop"), JSON.stringify({start: 1}), JSON.stringify({start: 1}),
            put(2, "next"), "{\"put\": {\"q\": 3, \"numb"].join("\n"));
    ' "$WORK/q1.json" "$C/user/kiln_queue.jsonl" &&
    start_server "$C" && wait_history next &&
    jcheck "$WORK/hist.json" 'd.next.status.status_str === "success" && d.next.prompt[0] === 2' &&
    expect 200 GET /history/loop && jcheck "$WORK/body" 'Object.keys(d).length === 0' &&
    grep -q 'prompt loop was running' "$WORK/server.err" &&
    grep -q 'unreadable line' "$WORK/server.err" &&
    expect 200 POST /prompt --data-binary @"$WORK/q2_body.json" &&
    jcheck "$WORK/body" 'd.number === 7' &&
    stop_server TERM
}
check "a crash-looping prompt is dropped, a torn journal line skipped" crash_loop
finish
