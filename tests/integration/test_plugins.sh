#!/usr/bin/env bash
# End-to-end plugin packs through the real `kiln` binary: the example pack built the way
# its README says (one cc line, no kiln library), loaded with --plugins and from the
# default <base>/plugins folder, running workflows/example_pack_api.json; the broken packs
# of tests/plugins refused one line each while the engine runs on; a failing node ends
# its run with an error; and, from a CMake build tree, `cmake --install` plus pkg-config
# building the pack against the installed headers.
set -u
KILN=${1:?usage: test_plugins.sh PATH/TO/kiln}
SRC=${KILN_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=$(cd "$(dirname "$KILN")" && pwd)
WORK=$(mktemp -d /tmp/kiln_plugins_XXXXXX)
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

WORKFLOW="$SRC/workflows/example_pack_api.json"

# The files a successful run of the example workflow leaves under $1/output.
example_outputs() {
    local f
    for f in gray_00001_ gray_00002_ palette_00001_ vignette_00001_ vignette_00002_; do
        test -s "$1/output/example/$f.png" || { echo "missing $f.png"; return 1; }
    done
    ! test -e "$1/output/example/gray_00003_.png"
}

build_like_the_readme() {
    mkdir -p "$WORK/ext" &&
    cc -shared -fPIC -I"$SRC/include" "$SRC"/nodes/example/*.c -o "$WORK/ext/example.so" &&
    test -s "$WORK/ext/example.so"
}

links_nothing_of_kiln() {
    # Every kiln_* call goes through the host table: the library needs no kiln symbol, and
    # exports the entry point.
    ! nm -D --undefined-only "$WORK/ext/example.so" | grep -q 'kiln' &&
    nm -D --defined-only "$WORK/ext/example.so" | grep -q ' T kiln_plugin_init$'
}

run_with_plugins_flag() {
    "$KILN" run "$WORKFLOW" --plugins "$WORK/ext" --base-directory "$WORK/a" \
        >"$WORK/a.out" 2>"$WORK/a.err" &&
    grep -q "plugin '$WORK/ext/example.so': loaded pack 'example' with 6 nodes" "$WORK/a.err" &&
    grep -q '^done: 12 executed' "$WORK/a.out" &&
    grep -q 'node 8 (ExampleGrayscale)' "$WORK/a.out" &&
    example_outputs "$WORK/a"
}

run_from_default_folder() {
    mkdir -p "$WORK/b/plugins" && cp "$WORK/ext/example.so" "$WORK/b/plugins/" &&
    "$KILN" run "$WORKFLOW" --base-directory "$WORK/b" --json >"$WORK/b.out" 2>/dev/null &&
    grep -q '"type":"execution_success"' "$WORK/b.out" && example_outputs "$WORK/b"
}

without_the_pack_validation_fails() {
    local rc=0
    "$KILN" run "$WORKFLOW" --base-directory "$WORK/c" >/dev/null 2>"$WORK/c.err" || rc=$?
    test "$rc" -eq 1 && grep -q 'ExampleBlend does not exist' "$WORK/c.err"
}

nodes_lists_the_pack() {
    "$KILN" nodes --plugins "$WORK/ext" --base-directory "$WORK/d" --json 2>/dev/null \
        >"$WORK/d.out" &&
    grep -q '"ExampleApplyPalette"' "$WORK/d.out" &&
    grep -q '"python_module":"custom_nodes.example"' "$WORK/d.out"
}

build_broken_packs() {
    local src
    mkdir -p "$WORK/broken" &&
    for src in "$SRC"/tests/plugins/*.c; do
        cc -shared -fPIC -I"$SRC/include" "$src" \
            -o "$WORK/broken/$(basename "$src" .c).so" || return 1
    done
    printf 'not a library\n' >"$WORK/broken/junk.so"
}

broken_refused_engine_runs() {
    "$KILN" run "$WORKFLOW" --plugins "$WORK/broken" --plugins "$WORK/ext" \
        --base-directory "$WORK/e" >"$WORK/e.out" 2>"$WORK/e.err" || return 1
    local f
    for f in no_entry abi_tagged abi_major dup_names dup_core bad_widget init_fails junk; do
        test "$(grep -c "plugin '$WORK/broken/$f.so': refused: " "$WORK/e.err")" -eq 1 ||
            { echo "$f.so: no refusal line"; cat "$WORK/e.err"; return 1; }
    done
    grep -q 'missing entry point kiln_plugin_init' "$WORK/e.err" &&
    grep -q 'built for ABI major 2 (ABI 2.3), kiln has 1' "$WORK/e.err" &&
    grep -q "node 'SaveImage': duplicate node name (already registered by pack 'core')" \
        "$WORK/e.err" &&
    grep -q "loaded pack 'example' with 6 nodes" "$WORK/e.err" &&
    grep -q '^done: 12 executed' "$WORK/e.out" && example_outputs "$WORK/e"
}

failing_node_fails_the_run() {
    local rc=0
    printf '%s' '{"1": {"class_type": "BrokenFails", "inputs": {"x": 5}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}' >"$WORK/fail.json"
    "$KILN" run "$WORK/fail.json" --plugins "$WORK/broken" --base-directory "$WORK/f" \
        >"$WORK/f.out" 2>/dev/null || rc=$?
    test "$rc" -ne 0 &&
    grep -q 'error in node 1 (BrokenFails): BrokenFails refuses x=5' "$WORK/f.out"
}

wrong_output_type_fails_the_run() {
    local rc=0
    printf '%s' '{"1": {"class_type": "BrokenWrongType", "inputs": {"x": 1}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}' >"$WORK/type.json"
    "$KILN" run "$WORK/type.json" --plugins "$WORK/broken" --base-directory "$WORK/g" --json \
        >"$WORK/g.out" 2>/dev/null || rc=$?
    test "$rc" -ne 0 && grep -q '"type":"execution_error"' "$WORK/g.out" &&
    grep -q 'is declared IMAGE but the node set a value of type INT' "$WORK/g.out"
}

installed_headers_and_pkg_config() {
    cmake --install "$BUILD" --prefix "$WORK/prefix" >/dev/null &&
    test -x "$WORK/prefix/bin/kiln" && test -f "$WORK/prefix/include/kiln/node.h" &&
    local pc="$WORK/prefix/share/pkgconfig" cflags &&
    cflags=$(PKG_CONFIG_PATH="$pc" pkg-config --cflags kiln) &&
    test -z "$(PKG_CONFIG_PATH="$pc" pkg-config --libs kiln)" &&
    mkdir -p "$WORK/inst" &&
    # the README's command for installed headers, from a copy outside the source tree
    cp -r "$SRC/nodes/example" "$WORK/src_copy" &&
    (cd "$WORK/src_copy" && cc -O2 -shared -fPIC -fvisibility=hidden $cflags *.c \
        -o "$WORK/inst/example.so") &&
    "$WORK/prefix/bin/kiln" run "$WORKFLOW" --plugins "$WORK/inst" --base-directory "$WORK/h" \
        >/dev/null 2>&1 && example_outputs "$WORK/h"
}

check "the example pack builds with the README's cc line" build_like_the_readme
check "the pack needs no kiln symbol from the linker" links_nothing_of_kiln
check "kiln run --plugins DIR runs the example workflow" run_with_plugins_flag
check "<base>/plugins is loaded by default" run_from_default_folder
check "without the pack the workflow fails validation" without_the_pack_validation_fails
check "kiln nodes lists the pack as custom_nodes.example" nodes_lists_the_pack
check "the broken packs build as plugins" build_broken_packs
check "broken packs are refused one line each, the rest runs" broken_refused_engine_runs
check "a failing plugin node fails the run with its message" failing_node_fails_the_run
check "a wrong output type is an execution_error" wrong_output_type_fails_the_run
if [ -f "$BUILD/cmake_install.cmake" ] && command -v cmake >/dev/null &&
    command -v pkg-config >/dev/null; then
    check "cmake --install, then pkg-config builds the pack outside the tree" \
        installed_headers_and_pkg_config
else
    echo "skip cmake --install (no CMake build tree next to $KILN)"
fi

echo "$passed passed, $failed failed"
test "$failed" -eq 0
