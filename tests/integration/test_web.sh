#!/usr/bin/env bash
# End-to-end test of the browser editor (web/): builds it when its build is stale, starts
# `kiln serve` on a free loopback port with a temporary base directory (the SD1.x test
# checkpoint and tokenizer linked in when the fixtures exist), runs the editor's unit
# tests and its headless-Chromium tests (web/tests/e2e, playwright-core), stops the
# server and prints "N passed, N failed". Installs nothing: it checks for node, npm and
# chromium and says what is missing.
#
# usage: tests/integration/test_web.sh path/to/kiln
set -uo pipefail

KILN=${1:-}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WEB="$ROOT/web"
SHARED=${KILN_SHARED_DIR:-$ROOT/../shared}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

die() {
    echo "test_web: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

# ---- prerequisites ----------------------------------------------------------------------

[ -n "$KILN" ] || die "usage: $0 path/to/kiln"
[ -x "$KILN" ] || die "no kiln binary at '$KILN'"
KILN=$(cd "$(dirname "$KILN")" && pwd)/$(basename "$KILN")
command -v node >/dev/null || die "node is not installed (Node.js >= 20.19 is needed)"
command -v npm >/dev/null || die "npm is not installed"
node_ok='const [a, b] = process.versions.node.split(".").map(Number);
process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1);'
node -e "$node_ok" ||
    die "node $(node --version) is too old: the editor's build (Vite) needs >= 20.19"
[ -x "$CHROMIUM" ] ||
    die "no Chromium at $CHROMIUM (Debian: apt-get install chromium; or set CHROMIUM)"
"$KILN" serve --help >/dev/null 2>&1 || die "'$KILN serve' does not run: is the server built in?"

# ---- build the editor when its build is stale --------------------------------------------

cd "$WEB" || die "no web/ directory"
# Two runs at once (plain and sanitized builds under `make -j`) share web/: one builds.
exec 9>"$WEB/.build-lock"
flock 9 || die "cannot lock web/.build-lock"
lock=node_modules/.package-lock.json
if [ ! -f "$lock" ] || [ package-lock.json -nt "$lock" ]; then
    echo "test_web: npm ci"
    npm ci --no-audit --no-fund >/dev/null || die "npm ci failed"
fi
stale=0
if [ ! -f dist/index.html ]; then
    stale=1
elif [ -n "$(find src index.html vite.config.js package-lock.json -newer dist/index.html \
    -print -quit)" ]; then
    stale=1
fi
if [ "$stale" = 1 ]; then
    echo "test_web: npm run build"
    npm run build >/dev/null 2>&1 || die "npm run build failed (run it in web/ to see why)"
fi
flock -u 9
exec 9>&-

# ---- a server with a scratch base directory ----------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/kiln-web-test.XXXXXX")
BASE="$TMP/base"
PID_FILE="$TMP/server.pid"
LOG="$TMP/server.log"
mkdir -p "$BASE/models/checkpoints" "$BASE/models/tokenizers" "$BASE/input" "$BASE/output"
if [ -f "$SHARED/fixtures/sd15-tiny/checkpoint.safetensors" ]; then
    ln -s "$SHARED/fixtures/sd15-tiny/checkpoint.safetensors" \
        "$BASE/models/checkpoints/checkpoint.safetensors"
fi
if [ -d "$SHARED/fixtures/clip-tokenizer" ]; then
    ln -s "$SHARED/fixtures/clip-tokenizer" "$BASE/models/tokenizers/clip"
fi

stop_server() { # SIGTERM (a clean shutdown), then SIGKILL after 10 s
    [ -f "$PID_FILE" ] || return 0
    local pid
    pid=$(cat "$PID_FILE")
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null
    rm -f "$PID_FILE"
}
cleanup() {
    stop_server
    rm -rf "$TMP"
}
trap cleanup EXIT

start_server() { # $1: port (0 picks a free one)
    "$KILN" serve --listen 127.0.0.1 --port "$1" --base-directory "$BASE" \
        --front-end-root "$WEB/dist" >>"$LOG" 2>&1 &
    echo $! >"$PID_FILE"
}

start_server 0
PORT=""
for _ in $(seq 1 200); do
    PORT=$(sed -n 's|.*serving on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$LOG" | head -n 1)
    [ -n "$PORT" ] && break
    kill -0 "$(cat "$PID_FILE")" 2>/dev/null || break
    sleep 0.05
done
[ -n "$PORT" ] || { cat "$LOG" >&2; die "kiln serve did not start"; }
URL="http://127.0.0.1:$PORT"
echo "test_web: kiln serve on $URL, base $BASE"

# ---- the tests ------------------------------------------------------------------------------

passed=0
failed=0
run_suite() { # $1: name, rest: command
    local name=$1 out
    shift
    out=$("$@" 2>&1)
    local rc=$?
    echo "$out" | grep -E '^(not ok|ok) |^# (tests|pass|fail) |^# .*graph mode' |
        sed "s/^/[$name] /"
    if [ $rc -ne 0 ]; then
        echo "$out" | grep -vE '^(ok) ' | tail -n 80 >&2
    fi
    local p f
    p=$(echo "$out" | sed -n 's/^# pass \([0-9]*\)$/\1/p' | tail -n 1)
    f=$(echo "$out" | sed -n 's/^# fail \([0-9]*\)$/\1/p' | tail -n 1)
    if [ -z "$p" ] && [ -z "$f" ]; then
        p=0
        f=1
    fi
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
    if [ $rc -ne 0 ] && [ "${f:-0}" = 0 ]; then
        failed=$((failed + 1))
    fi
}

run_suite unit node --test --test-reporter=tap tests/unit/

export KILN_URL="$URL" KILN_BASE="$BASE" KILN_PID_FILE="$PID_FILE" KILN_SERVER_LOG="$LOG"
export CHROMIUM
KILN_RESTART_CMD=$(node -e 'console.log(JSON.stringify(process.argv.slice(1)))' \
    "$KILN" serve --listen 127.0.0.1 --port "$PORT" --base-directory "$BASE" \
    --front-end-root "$WEB/dist")
export KILN_RESTART_CMD
run_suite e2e node --test --test-reporter=tap --test-concurrency=1 --test-timeout=300000 \
    tests/e2e/

# A sanitized server that reported a problem (at any time, shutdown included) fails the
# run even when every page-level check passed.
stop_server
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$LOG"; then
    echo "test_web: the server log has sanitizer reports:" >&2
    grep -E -A 12 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$LOG" | head -n 60 >&2
    failed=$((failed + 1))
fi
if [ "$failed" -ne 0 ]; then
    echo "--- server log (last 40 lines) ---" >&2
    tail -n 40 "$LOG" >&2
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
