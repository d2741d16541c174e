#!/usr/bin/env bash
# End-to-end: the Stable Diffusion example workflows and the sd15-tiny fixture workflow run
# through the real `kiln` binary on the tiny fixture model (linked, never copied, into a
# scratch models folder), with --set shrinking the examples to 64 x 64 and a few steps.
# Pixel-exact comparisons with ComfyUI live in tests/unit/test_sd_nodes.c.
set -u
KILN=${1:?usage: test_sd_workflows.sh PATH/TO/kiln}
SRC=${KILN_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
SHARED=${KILN_SHARED_DIR:-$SRC/../shared}
FIX=$SHARED/fixtures/sd15-tiny
WORK=$(mktemp -d /tmp/kiln_sd_XXXXXX)
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

# A base directory with the fixture checkpoint, and the CLIP tokenizer unless $2 is "notok".
make_base() {
    local b=$WORK/$1
    mkdir -p "$b/models/checkpoints" "$b/input"
    ln -s "$FIX/checkpoint.safetensors" "$b/models/checkpoints/checkpoint.safetensors"
    if [ "${2:-}" != notok ]; then
        mkdir -p "$b/models/tokenizers/clip"
        ln -s "$SHARED/fixtures/clip-tokenizer/vocab.json" "$b/models/tokenizers/clip/vocab.json"
        ln -s "$SHARED/fixtures/clip-tokenizer/merges.txt" "$b/models/tokenizers/clip/merges.txt"
    fi
    ln -s "$FIX/euler_normal.png" "$b/input/example.png"
}

TINY=(--set 4.ckpt_name=checkpoint.safetensors)

fixture_workflow() {
    make_base f &&
    "$KILN" run "$FIX/workflow_api.json" --base-directory "$WORK/f" >"$WORK/f.out" &&
    test -f "$WORK/f/output/kiln_fixture_00001_.png" &&
    grep -q '^  progress 6/6' "$WORK/f.out" && grep -q '^done: 7 executed' "$WORK/f.out"
}

txt2img_api() {
    make_base t &&
    "$KILN" run "$SRC/workflows/sd15_txt2img_api.json" --base-directory "$WORK/t" "${TINY[@]}" \
        --set 5.width=64 --set 5.height=64 --set 3.steps=3 >"$WORK/t.out" &&
    test -f "$WORK/t/output/ComfyUI_00001_.png" && grep -q '^  progress 3/3' "$WORK/t.out"
}

txt2img_ui() {
    make_base u &&
    "$KILN" run "$SRC/workflows/sd15_txt2img_ui.json" --base-directory "$WORK/u" "${TINY[@]}" \
        --set 5.width=64 --set 5.height=64 --set 3.steps=3 >"$WORK/u.out" &&
    test -f "$WORK/u/output/ComfyUI_00001_.png" && grep -q '^  progress 3/3' "$WORK/u.out" &&
    grep -q '^done: 7 executed' "$WORK/u.out"
}

hires_api() {
    make_base h &&
    "$KILN" run "$SRC/workflows/sd15_hires_api.json" --base-directory "$WORK/h" "${TINY[@]}" \
        --set 5.width=64 --set 5.height=64 --set 3.steps=3 --set 11.steps=4 >"$WORK/h.out" &&
    # denoise 0.5: the second pass samples the last 4 steps of an 8-step schedule.
    test -f "$WORK/h/output/kiln/hires_00001_.png" && grep -q '^  progress 4/4' "$WORK/h.out" &&
    grep -q '^done: 9 executed' "$WORK/h.out"
}

img2img_api() {
    make_base i &&
    "$KILN" run "$SRC/workflows/sd15_img2img_api.json" --base-directory "$WORK/i" "${TINY[@]}" \
        --set 3.steps=5 >"$WORK/i.out" &&
    # denoise 0.6: the last 5 steps of an 8-step schedule.
    test -f "$WORK/i/output/kiln/img2img_00001_.png" && grep -q '^  progress 5/5' "$WORK/i.out"
}

missing_tokenizer() {
    make_base n notok &&
    ! "$KILN" run "$FIX/workflow_api.json" --base-directory "$WORK/n" >"$WORK/n.out" 2>&1 &&
    grep -q 'vocab.json and merges.txt' "$WORK/n.out" && grep -q 'models/tokenizers/clip/' "$WORK/n.out"
}

check fixture_workflow fixture_workflow
check txt2img_api txt2img_api
check txt2img_ui txt2img_ui
check hires_api hires_api
check img2img_api img2img_api
check missing_tokenizer missing_tokenizer
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
