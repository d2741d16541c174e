#!/usr/bin/env bash
# Load benchmark of `kiln serve` (see bench_server.mjs for what it measures): starts the
# server on a free loopback port with a scratch base folder, runs the node client, prints
# the tables, stops the server. Usage: tools/bench/bench_server.sh PATH/TO/kiln [--quick]
set -eu
KILN=${1:?usage: bench_server.sh PATH/TO/kiln [--quick]}
shift
SRC=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/kiln_bench_server_XXXXXX)
PID=""
trap '[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT

if [ ! -f "$SRC/tests/integration/node_modules/ws/package.json" ]; then
    npm ci --prefix "$SRC/tests/integration" --no-audit --no-fund --loglevel=error ||
        { echo "bench_server: npm ci failed (is the npm registry reachable?)"; exit 1; }
fi
# --verbose logs each request with the time the server took to answer it (from the
# request line to the response being ready); the client reports those next to its own.
(cd "$WORK" && exec "$KILN" serve --port 0 --base-directory "$WORK/base" --verbose) \
    >"$WORK/out" 2>"$WORK/err" &
PID=$!
PORT=""
for _ in $(seq 1 200); do
    PORT=$(sed -n 's/^kiln: serving on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$WORK/out")
    [ -n "$PORT" ] && break
    sleep 0.05
done
[ -n "$PORT" ] || { echo "bench_server: the server did not start"; cat "$WORK/err"; exit 1; }
echo "kiln serve on port $PORT (pid $PID), $(nproc) cores"
rc=0
node "$SRC/tools/bench/bench_server.mjs" "$PORT" "$PID" "$WORK/base" "$WORK/err" "$@" || rc=$?
kill -TERM "$PID"
wait "$PID" || true
PID=""
exit $rc
