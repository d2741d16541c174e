#!/usr/bin/env bash
# End-to-end: the example workflows in workflows/ run through the real `kiln` binary —
# both formats, PNG metadata round trip, the cache across runs, --set, validation errors.
set -u
KILN=${1:?usage: test_cli_workflows.sh PATH/TO/kiln}
SRC=${KILN_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
WORK=$(mktemp -d /tmp/kiln_cli_XXXXXX)
trap 'rm -rf "$WORK"' EXIT
passed=0 failed=0

check() { # check NAME COMMAND...: runs COMMAND, counts the result
    local name=$1; shift
    if ( "$@" ) >"$WORK/last.log" 2>&1; then
        echo "ok   $name"; passed=$((passed + 1))
    else
        echo "FAIL $name"; sed 's/^/    /' "$WORK/last.log" | tail -n 30; failed=$((failed + 1))
    fi
}

run_api() {
    "$KILN" run "$SRC/workflows/invert_api.json" --base-directory "$WORK/a" >"$WORK/a.out" &&
    test -f "$WORK/a/output/kiln/invert_00001_.png" && test -f "$WORK/a/output/kiln/invert_00002_.png" &&
    grep -q 'node 3 (SaveImage)' "$WORK/a.out" && grep -q '^done: 3 executed' "$WORK/a.out"
}

# The same workflow again in one process is a different story (a fresh engine has an empty
# cache); what a second run must do is number its files after the first ones.
run_api_again() {
    "$KILN" run "$SRC/workflows/invert_api.json" --base-directory "$WORK/a" >/dev/null &&
    test -f "$WORK/a/output/kiln/invert_00003_.png" && test -f "$WORK/a/output/kiln/invert_00004_.png"
}

run_ui() {
    "$KILN" run "$SRC/workflows/invert_ui.json" --base-directory "$WORK/u" --json >"$WORK/u.out" &&
    test -f "$WORK/u/output/kiln/ui_invert_00001_.png" &&
    ! grep -q '"node":"7"' "$WORK/u.out" &&     # the muted PreviewImage never runs
    ! grep -q '"node":"5"' "$WORK/u.out" &&     # the bypassed scale node never runs
    grep -q '"type":"execution_success"' "$WORK/u.out"
}

png_round_trip() {
    # Running the saved PNG reproduces the same prompt: a 320x192 canvas (from the PrimitiveNode).
    "$KILN" run "$WORK/u/output/kiln/ui_invert_00001_.png" --base-directory "$WORK/p" --json \
        >"$WORK/p.out" && test -f "$WORK/p/output/kiln/ui_invert_00001_.png" &&
    "$KILN" validate "$WORK/u/output/kiln/ui_invert_00001_.png" --json | grep -q '"width":320' &&
    cmp "$WORK/u/output/kiln/ui_invert_00001_.png" "$WORK/p/output/kiln/ui_invert_00001_.png"
}

set_override() {
    "$KILN" run "$SRC/workflows/invert_api.json" --base-directory "$WORK/s" \
        --set 1.batch_size=3 --set 3.inputs.filename_prefix=over/x >/dev/null &&
    test -f "$WORK/s/output/over/x_00003_.png" && ! test -f "$WORK/s/output/over/x_00004_.png"
}

batch_and_preview() {
    "$KILN" run "$SRC/workflows/batch_scale_api.json" --base-directory "$WORK/b" --json >"$WORK/b.out" &&
    test -f "$WORK/b/output/kiln/batch_00003_.png" && grep -q '"type":"temp"' "$WORK/b.out"
}

invalid_reports_all() {
    local rc=0
    "$KILN" validate "$SRC/workflows/invalid_api.json" --base-directory "$WORK/i" 2>"$WORK/i.err" || rc=$?
    test "$rc" -eq 1 && grep -q 'value_smaller_than_min\|smaller than min' "$WORK/i.err" &&
    grep -q 'bigger than max' "$WORK/i.err" && grep -q 'Value not in list' "$WORK/i.err" &&
    grep -q 'Required input is missing' "$WORK/i.err"
}

invalid_json_body() {
    local rc=0
    "$KILN" run "$SRC/workflows/invalid_api.json" --base-directory "$WORK/j" --json >"$WORK/j.out" || rc=$?
    test "$rc" -eq 1 && grep -q '"prompt_outputs_failed_validation"' "$WORK/j.out" &&
    grep -q '"node_errors"' "$WORK/j.out"
}

garbage_inputs() {
    printf '{"1": {"class_type": ' >"$WORK/trunc.json"
    printf 'not json at all' >"$WORK/garbage.json"
    printf '\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR' >"$WORK/bad.png"
    for f in trunc.json garbage.json bad.png missing.json; do
        local rc=0
        "$KILN" run "$WORK/$f" --base-directory "$WORK/g" >/dev/null 2>&1 || rc=$?
        test "$rc" -eq 1 || { echo "$f: exit $rc"; return 1; }
    done
}

nodes_listing() {
    "$KILN" nodes | grep -q '^SaveImage' && "$KILN" nodes --json | grep -q '"ImageInvert"'
}

check "api workflow runs and saves a batch" run_api
check "a second run continues the file counter" run_api_again
check "ui workflow (primitive, reroute, bypass, mute, note, group)" run_ui
check "a saved PNG runs again and reproduces itself" png_round_trip
check "--set overrides inputs" set_override
check "batch, scale and preview" batch_and_preview
check "validate reports every problem" invalid_reports_all
check "--json prints the 400 body" invalid_json_body
check "malformed files fail cleanly" garbage_inputs
check "kiln nodes lists definitions" nodes_listing

echo "$passed passed, $failed failed"
test "$failed" -eq 0
