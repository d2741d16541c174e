#!/usr/bin/env bash
# `kiln serve` end to end, part 3: execution events under stress, through node's `ws`
# (test_server_ws.mjs): interrupts (global and by prompt_id), replay of missed events
# after a reconnect (seq + since), ComfyUI's executing hint on reconnect, a client
# vanishing mid-execution, a client too slow to read (dropped once its bounded send
# queue overflows, while the others are served), refused handshakes and oversized
# messages. Usage: test_server_events.sh PATH/TO/kiln
set -u
KILN=${1:?usage: test_server_events.sh PATH/TO/kiln}
. "$(dirname "$0")/server_lib.sh"
node_setup
start_server "$WORK/base" --ws-send-queue 2 --max-upload-size 2 || exit 1
WF="$SRC/workflows"
slow_prompt "$WORK/long1.json" 21 40
slow_prompt "$WORK/long2.json" 22 40
slow_prompt "$WORK/short1.json" 23 3
slow_prompt "$WORK/short2.json" 24 3
recolor "$WF/invert_api.json" "$WORK/quick1.json" 31
recolor "$WF/invert_api.json" "$WORK/quick2.json" 32
recolor "$WF/invert_api.json" "$WORK/quick3.json" 33
wide_prompt "$WORK/wide.json" 80

check "interrupt: global and by prompt_id; the queue goes on" \
    ws_scenario interrupt "$WORK/long1.json" "$WORK/long2.json" "$WORK/quick1.json"
check "reconnect: replay with since=N, executing hint without it" \
    ws_scenario replay "$WORK/quick2.json" "$WORK/short1.json"
check "a client disconnecting mid-execution" \
    ws_scenario disconnect "$WORK/short2.json" "$WORK/quick3.json"
check "a client too slow to read is dropped, others are served, replay recovers" \
    ws_scenario slow_reader "$WORK/wide.json"
check "the server logged the slow client" grep -q 'send queue overflow' "$WORK/server.err"
check "refused handshakes, oversized and binary messages" \
    ws_scenario bad_ws "$WF/invert_api.json"
stop_server TERM; rc=$?
check "SIGTERM stops the server cleanly (exit status 0)" test "$rc" -eq 0
finish
