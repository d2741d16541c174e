# Shared by tests/integration/test_server*.sh (sourced, not run): starting and stopping a
# real `kiln serve` on a free loopback port, curl helpers, JSON checks through node, the
# node `ws` package for WebSocket clients, and the pass/fail bookkeeping. The caller sets
# KILN (the binary) before sourcing.
SRC=${KILN_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
IT="$SRC/tests/integration"
WORK=$(mktemp -d /tmp/kiln_srv_XXXXXX)
passed=0 failed=0
SERVER_PID="" PORT="" BASE=""

stop_server() { # stop_server [SIGNAL]: stops the server, waits (30 s at most), returns its status
    local sig=${1:-TERM} rc=0
    [ -n "$SERVER_PID" ] || return 0
    kill -"$sig" "$SERVER_PID" 2>/dev/null
    for _ in $(seq 1 300); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "the server did not stop within 30 s of SIG$sig"
        kill -KILL "$SERVER_PID"; rc=124
    fi
    wait "$SERVER_PID" 2>/dev/null || { [ $rc -ne 0 ] || rc=$?; }
    SERVER_PID=""
    return $rc
}

cleanup() {
    stop_server KILL
    rm -rf "$WORK"
}
trap cleanup EXIT

check() { # check NAME COMMAND...: runs COMMAND (in this shell: it may start or stop the
           # server), counts the result
    local name=$1; shift
    if "$@" >"$WORK/last.log" 2>&1; then
        echo "ok   $name"; passed=$((passed + 1))
    else
        echo "FAIL $name"; sed 's/^/    /' "$WORK/last.log" | tail -n 40; failed=$((failed + 1))
        if [ -s "$WORK/server.err" ]; then
            echo "    --- server log (last lines):"; tail -n 25 "$WORK/server.err" | sed 's/^/    /'
        fi
    fi
}

finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}

# The ws package, installed from the committed lockfile the first time (npm ci). Several
# test files may start at once, so the install is serialized with flock.
node_setup() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        echo "FAIL node and npm are needed for the WebSocket tests (Debian: nodejs npm)"
        exit 1
    fi
    [ -f "$IT/node_modules/ws/package.json" ] && return 0
    (
        flock 9
        [ -f "$IT/node_modules/ws/package.json" ] ||
            npm ci --prefix "$IT" --no-audit --no-fund --loglevel=error >"$WORK/npm.log" 2>&1
    ) 9>/tmp/kiln-test-npm.lock
    if [ ! -f "$IT/node_modules/ws/package.json" ]; then
        echo "FAIL npm ci --prefix tests/integration failed (is the npm registry reachable?):"
        sed 's/^/    /' "$WORK/npm.log" | tail -n 20
        exit 1
    fi
}

# start_server BASE_DIR [FLAGS...]: serves BASE_DIR on a free port (sets PORT, BASE,
# SERVER_PID); the working folder is $WORK so that no web/ folder is found by accident.
start_server() {
    BASE=$1; shift
    mkdir -p "$BASE"
    local out="$WORK/server.$$.$RANDOM"
    (cd "$WORK" && exec "$KILN" serve --port 0 --base-directory "$BASE" "$@") \
        >"$out.out" 2>>"$WORK/server.err" &
    SERVER_PID=$!
    for _ in $(seq 1 400); do
        PORT=$(sed -n 's/^kiln: serving on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$out.out")
        [ -n "$PORT" ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "server did not start:"; cat "$out.out" "$WORK/server.err"
    return 1
}

URL() { echo "http://127.0.0.1:$PORT$1"; }

# http METHOD PATH [CURL ARGS...]: prints "STATUS" on the first line, then the body.
http() {
    local m=$1 p=$2; shift 2
    curl -s -o "$WORK/body" -w '%{http_code}\n' -X "$m" "$@" "$(URL "$p")"
    cat "$WORK/body"
}

# expect STATUS METHOD PATH [CURL ARGS...]: the body goes to $WORK/body.
expect() {
    local want=$1; shift
    local got
    got=$(curl -s -o "$WORK/body" -w '%{http_code}' -X "$1" "${@:3}" "$(URL "$2")")
    if [ "$got" != "$want" ]; then
        echo "$1 $2: status $got, expected $want"; cat "$WORK/body"; echo
        return 1
    fi
}

# jcheck FILE 'EXPR': EXPR (JavaScript, the parsed JSON is d) must be true.
jcheck() {
    node -e '
        const fs = require("fs");
        const d = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
        let ok = false;
        try { ok = Function("d", "return (" + process.argv[2] + ");")(d); }
        catch (e) { console.log(e.message); }
        if (!ok) {
            console.log("check failed: " + process.argv[2]);
            console.log(JSON.stringify(d).slice(0, 2000));
            process.exit(1);
        }
    ' "$1" "$2"
}

# jval FILE 'EXPR': prints EXPR (JavaScript over the parsed JSON d).
jval() {
    node -e 'const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
             console.log(Function("d", "return (" + process.argv[2] + ");")(d))' "$1" "$2"
}

# post_prompt FILE_WITH_BODY: POST /prompt; prints the prompt_id (fails unless 200).
post_prompt() {
    expect 200 POST /prompt --data-binary @"$1" >&2 || return 1
    sed -n 's/^{"prompt_id": "\([^"]*\)".*/\1/p' "$WORK/body"
}

# body_of API_PROMPT_FILE [EXTRA JSON MEMBERS]: a POST /prompt body around a prompt file.
body_of() {
    node -e '
        const fs = require("fs");
        const b = {prompt: JSON.parse(fs.readFileSync(process.argv[1]))};
        Object.assign(b, JSON.parse(process.argv[2] || "{}"));
        process.stdout.write(JSON.stringify(b));
    ' "$1" "${2:-}"
}

# wait_history ID [SECONDS]: waits until /history/ID has an entry.
wait_history() {
    local id=$1 n=$(( ${2:-60} * 10 ))
    for _ in $(seq 1 "$n"); do
        curl -s "$(URL "/history/$id")" >"$WORK/hist.json"
        grep -q "\"$id\"" "$WORK/hist.json" && return 0
        sleep 0.1
    done
    echo "no history entry for $id"; return 1
}

# ws_scenario NAME ARGS...: runs one scenario of test_server_ws.mjs against $PORT.
ws_scenario() {
    node "$IT/test_server_ws.mjs" "$1" "$PORT" "$BASE" "${@:2}"
}

# A prompt slow enough to be caught running: big lanczos rescales, one per node, so
# that an interrupt takes effect at the next node boundary. COLOR varies the signature.
slow_prompt() { # slow_prompt FILE COLOR [NODES]
    node -e '
        const [file, color, nodes] = [process.argv[1], +process.argv[2], +process.argv[3]];
        const p = {"1": {class_type: "EmptyImage",
                         inputs: {width: 1024, height: 1024, batch_size: 1, color}}};
        let prev = "1";
        for (let i = 0; i < nodes; i++) {
            const id = String(i + 2);
            p[id] = {class_type: "ImageScaleBy", inputs: {upscale_method: "lanczos",
                     scale_by: i % 2 ? 0.5 : 2.0, image: [prev, 0]}};
            prev = id;
        }
        p["99"] = {class_type: "PreviewImage", inputs: {images: [prev, 0]}};
        require("fs").writeFileSync(file, JSON.stringify(p));
    ' "$1" "$2" "${3:-8}"
}

# A prompt with many tiny nodes (a long chain of inverts on an 8x8 image): many
# messages, each progress_state larger than the last.
wide_prompt() { # wide_prompt FILE NODES
    node -e '
        const [file, nodes] = [process.argv[1], +process.argv[2]];
        const p = {"1": {class_type: "EmptyImage",
                         inputs: {width: 8, height: 8, batch_size: 1, color: 5}}};
        let prev = "1";
        for (let i = 0; i < nodes; i++) {
            const id = String(i + 2);
            p[id] = {class_type: "ImageInvert", inputs: {image: [prev, 0]}};
            prev = id;
        }
        p["999"] = {class_type: "PreviewImage", inputs: {images: [prev, 0]}};
        require("fs").writeFileSync(file, JSON.stringify(p));
    ' "$1" "$2"
}

# A copy of an API prompt whose node "1" gets another color (a fresh cache signature).
recolor() { # recolor IN OUT COLOR
    node -e '
        const p = JSON.parse(require("fs").readFileSync(process.argv[1]));
        p["1"].inputs.color = +process.argv[3];
        require("fs").writeFileSync(process.argv[2], JSON.stringify(p));
    ' "$1" "$2" "$3"
}
