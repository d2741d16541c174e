#!/usr/bin/env bash
# Builds, tests and benchmarks kiln's CUDA backend on a GPU machine in one go.
#
#   tools/device_run.sh bundle   # here (needs nvcc): a Release build with the CUDA backend
#                                # into build-cuda-dev/, and the files the GPU machine
#                                # needs into build-cuda-carry/ (ignored by git: /build*/)
#   tools/device_run.sh run      # there, in the repository root, with build-cuda-carry/
#                                # carried along: GPU tests, compute-sanitizer, benchmarks;
#                                # logs and a summary go to $OUT (or ./device-out)
#   tools/device_run.sh e2e      # there: the fp32 fixture workflow check and the fp16
#                                # end-to-end benchmark (batch 1 and 8) through `kiln run`
# KILN_DEV_BUILD and KILN_DEV_CARRY (absolute paths) move the two folders.
#
# The GPU machine has the CUDA toolkit (cudart, cuBLAS) but not libuv/libxxhash, so the
# bundle carries those. The build bakes in the absolute source path (fixtures are found
# through it), so `run` links this checkout and the carried fixtures to the same paths.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${KILN_DEV_BUILD:-$ROOT/build-cuda-dev}   # both overridable, to keep builds apart
CARRY=${KILN_DEV_CARRY:-$ROOT/build-cuda-carry}
SRC_AT=/work/main           # where the build expects the sources
SHARED_AT=/work/shared      # and the shared fixtures (KILN_SHARED_DIR)

bundle() {
    set -e
    # No OpenBLAS in the device build: the CPU reference side of the GPU tests is small,
    # and its library is too large to carry.
    local pc=$BUILD/pkgconfig
    mkdir -p "$pc"
    local d f
    for d in $(pkg-config --variable pc_path pkg-config | tr : ' ') /usr/share/pkgconfig; do
        for f in "$d"/*.pc; do
            [ -e "$f" ] && [[ "$(basename "$f")" != openblas* ]] && ln -sf "$f" "$pc/"
        done
    done
    PKG_CONFIG_LIBDIR=$pc cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
        -DKILN_CUDA=ON >/dev/null
    local targets="" f
    for f in "$ROOT"/tests/gpu/test_*.c "$ROOT"/tools/bench/bench_gpu*.c; do
        [ -e "$f" ] && targets="$targets $(basename "${f%.c}")"
    done
    # the CLI (target kiln_cli, file kiln) for the fixture workflow and the end-to-end
    # benchmark, and make_checkpoint for its full-size random checkpoint
    cmake --build "$BUILD" -j2 --target $targets kiln_cli make_checkpoint
    rm -rf "$CARRY"
    mkdir -p "$CARRY/bin" "$CARRY/lib" "$CARRY/shared/fixtures"
    for exe in $targets kiln make_checkpoint; do
        strip -o "$CARRY/bin/$exe" "$BUILD/$exe"
    done
    targets="$targets kiln make_checkpoint"
    # the shared libraries the GPU machine's image lacks (whatever ldd resolves outside CUDA
    # and the C runtime)
    for exe in $targets; do ldd "$BUILD/$exe"; done | awk '/=> \// {print $3}' | sort -u |
        grep -vE "cuda|libc\.so|libm\.so|libstdc|libgcc|libpthread|libdl|librt|ld-linux" |
        while read -r so; do cp -L "$so" "$CARRY/lib/"; done
    local fix=$ROOT/../shared/fixtures/sd15-tiny
    if [ -d "$fix" ]; then
        mkdir -p "$CARRY/shared/fixtures/sd15-tiny"
        cp "$fix"/checkpoint.safetensors "$fix"/workflow_api.json "$fix"/euler_normal.png \
            "$CARRY/shared/fixtures/sd15-tiny/"
        cp -r "$ROOT/../shared/fixtures/clip-tokenizer" "$CARRY/shared/fixtures/"
    fi
    du -sh "$CARRY"
}

# The links and library path every step on the GPU machine needs (see the header).
setup_env() {
    if [ "$ROOT" != "$SRC_AT" ] && [ ! -e "$SRC_AT" ]; then
        mkdir -p "$(dirname "$SRC_AT")" && ln -s "$ROOT" "$SRC_AT"
    fi
    # "/work/main/../shared" resolves against the link's target: cover both spellings.
    [ -e "$SHARED_AT" ] || ln -s "$CARRY/shared" "$SHARED_AT"
    [ -e "$(dirname "$ROOT")/shared" ] || ln -s "$CARRY/shared" "$(dirname "$ROOT")/shared"
    local cuda_lib=""
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
        [ -d "$d" ] && cuda_lib="$cuda_lib:$d"
    done
    # cuDNN is opened at run time (kernels/cuda/conv_dnn.cu): the toolkit's copy, or the one
    # in PyTorch's wheels
    dnn=""  # global: run() logs it
    dnn=$(find /usr/local/cuda/ /usr/lib/x86_64-linux-gnu /opt -name 'libcudnn.so.9' 2>/dev/null |
        head -1)
    [ -n "$dnn" ] && cuda_lib="$cuda_lib:$(dirname "$dnn")"
    export LD_LIBRARY_PATH="$CARRY/lib$cuda_lib:${LD_LIBRARY_PATH:-}"
}

run() {
    local out=${OUT:-$ROOT/device-out}
    mkdir -p "$out"
    setup_env
    local log=$out/device.log summary=$out/summary.txt
    : >"$summary"
    {
        echo "== device"; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm \
            --format=csv 2>&1
        echo "== libraries"; ldd "$CARRY/bin/test_gpu_ops" | grep -E "not found|cuda|cublas|uv|xxhash"
        echo "cudnn: ${dnn:-none}"
    } >"$log" 2>&1
    local t rc
    for t in test_gpu_runtime test_gpu_ops test_gpu_unet; do
        [ -x "$CARRY/bin/$t" ] || continue
        echo "== $t" >>"$log"
        ( cd "$out" && timeout 300 "$CARRY/bin/$t" ) >>"$log" 2>&1
        rc=$?
        echo "$t: $([ $rc = 0 ] && echo PASS || echo "FAIL (exit $rc)")" >>"$summary"
    done
    if command -v compute-sanitizer >/dev/null && [ -x "$CARRY/bin/test_gpu_unet" ]; then
        echo "== compute-sanitizer memcheck: tiny UNet on the GPU" >>"$log"
        ( cd "$out" && timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 \
            "$CARRY/bin/test_gpu_unet" --no-fork test_tiny_unet_gpu_matches_cpu ) >>"$log" 2>&1
        rc=$?
        echo "memcheck tiny UNet: $([ $rc = 0 ] && echo CLEAN || echo "FAIL (exit $rc)")" \
            >>"$summary"
    fi
    for b in bench_gpu_ops bench_gpu_unet; do
        [ -x "$CARRY/bin/$b" ] || continue
        echo "== $b" >>"$log"
        # the table on stdout; the per-shape conv path timings (stderr) in $b.log
        ( cd "$out" && KILN_CUDA_CONV_LOG=1 timeout 300 "$CARRY/bin/$b" 2>"$out/$b.log" ) |
            tee "$out/$b.txt" >>"$log"
    done
    grep -E "^cudnn" "$log"
    cat "$summary"
    for b in bench_gpu_ops bench_gpu_unet; do
        [ -f "$out/$b.txt" ] && cat "$out/$b.txt"
    done
    grep -E "FAIL|failed|error" "$log" | head -40
}

# End to end through `kiln run`: the fp32 fixture workflow (PNG within 1 of ComfyUI's) and
# the fp16 benchmark at batch 1 and 8, with the saved images' statistics.
e2e() {
    local out=${OUT:-$ROOT/device-out} rc=0
    mkdir -p "$out"
    setup_env
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
    local fix=$CARRY/shared/fixtures
    timeout 240 bash "$ROOT/tests/gpu/gpu_workflow.sh" "$CARRY/bin/kiln" "$fix/sd15-tiny" \
        "$fix/clip-tokenizer" /tmp/gpu-wf || { rc=1; tail -5 /tmp/gpu-wf/run.log; }
    cp /tmp/gpu-wf/base/output/kiln_fixture_00001_.png "$out/" 2>/dev/null
    local b
    for b in "1 5" "8 3"; do
        set -- $b
        KILN_CUDA_DTYPE=fp16 timeout 300 bash "$ROOT/tools/bench/bench_e2e_gpu.sh" \
            "$CARRY/bin" "$fix/clip-tokenizer" /tmp/e2e "$1" "$2" || rc=1
        cp /tmp/e2e/base/output/bench_00001_.png "$out/bench_b$1.png" 2>/dev/null
    done
    return $rc
}

case "${1:-}" in
bundle) bundle ;;
run) run ;;
e2e) e2e ;;
*) echo "usage: $0 bundle|run|e2e" >&2; exit 2 ;;
esac
