#!/usr/bin/env bash
# Builds, tests and benchmarks kiln's CUDA backend on a GPU machine in one go.
#
#   tools/device_run.sh bundle   # here (needs nvcc): a Release build with the CUDA backend
#                                # into build-cuda-dev/, and the files the GPU machine
#                                # needs into build-cuda-carry/ (ignored by git: /build*/)
#   tools/device_run.sh run      # there, in the repository root, with
#                                # build-cuda-carry.tar.gz carried along: GPU tests, compute-sanitizer, benchmarks;
#                                # logs and a summary go to $OUT (or ./device-out)
#   tools/device_run.sh bench    # there: the UNet benchmark REPEAT times (the spread)
#   tools/device_run.sh profile  # there: one batch-2 UNet call under Nsight Compute (each
#                                # kernel's time, their sum against the call's)
#   tools/device_run.sh e2e      # there: the fp32 fixture workflow check and the fp16
#                                # end-to-end benchmark over the server (bench_serve.py:
#                                # batch 1/4/8, 16 queued prompts, hires fix; SCENARIOS=...)
# KILN_DEV_BUILD and KILN_DEV_CARRY (absolute paths) move the two folders.
#
# The GPU machine has the CUDA toolkit (cudart, cuBLAS) but not libuv/libxxhash or
# libwebsockets, so the bundle carries those (and libwebsockets' libuv plugin, which it
# opens at run time from the system library folder, where `run` and `e2e` put it). The
# full-size SD1.5 fp16 test compares against a float32 CPU run that needs BLAS, which the
# GPU machine lacks: `bundle` computes it here (tools/bench/sd15_cpu_ref) and carries it.
# The build bakes in the absolute source path (fixtures are found through it), so `run`
# links this checkout and the carried fixtures to the same paths.
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
    # -U: forget a BLAS found by an earlier configure of this folder without the filter
    PKG_CONFIG_LIBDIR=$pc cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
        -DKILN_CUDA=ON -U 'OPENBLAS*' -U 'pkgcfg_lib_OPENBLAS*' >/dev/null
    local targets="" f
    for f in "$ROOT"/tests/gpu/test_*.c "$ROOT"/tools/bench/bench_gpu*.c; do
        [ -e "$f" ] && targets="$targets $(basename "${f%.c}")"
    done
    # the CLI (target kiln_cli, file kiln) for the fixture workflow and the end-to-end
    # benchmark, and make_checkpoint for its full-size random checkpoint
    cmake --build "$BUILD" -j2 --target $targets kiln_cli make_checkpoint
    # the CPU float32 reference for test_gpu_sd15_f16, from a build with BLAS
    local refbuild=$ROOT/build-ref
    cmake -S "$ROOT" -B "$refbuild" -DCMAKE_BUILD_TYPE=Release -DKILN_CUDA=OFF >/dev/null
    cmake --build "$refbuild" -j2 --target sd15_cpu_ref
    rm -rf "$CARRY"
    mkdir -p "$CARRY/bin" "$CARRY/lib" "$CARRY/shared/fixtures"
    for exe in $targets kiln make_checkpoint; do
        strip -o "$CARRY/bin/$exe" "$BUILD/$exe"
    done
    targets="$targets kiln make_checkpoint"
    cp /usr/lib/x86_64-linux-gnu/libwebsockets-evlib_uv.so "$CARRY/lib/"
    "$refbuild/sd15_cpu_ref" -o "$CARRY/sd15_ref.safetensors"
    # the shared libraries the GPU machine's image lacks (whatever ldd resolves outside CUDA
    # and the C runtime)
    for exe in $targets; do ldd "$BUILD/$exe"; done | awk '/=> \// {print $3}' | sort -u |
        grep -vE "cuda|libc\.so|libm\.so|libstdc|libgcc|libpthread|libdl|librt|ld-linux" |
        while read -r so; do cp -L "$so" "$CARRY/lib/"; done
    local fix=$ROOT/../shared/fixtures/sd15-tiny
    if [ -d "$fix" ]; then
        mkdir -p "$CARRY/shared/fixtures/sd15-tiny"
        cp "$fix"/checkpoint.safetensors "$fix"/workflow_api.json "$fix"/euler_normal.png \
            "$fix"/clip.safetensors "$fix"/unet.safetensors "$fix"/vae.safetensors \
            "$fix"/samples.safetensors "$fix"/noise.safetensors "$fix"/tokens.json \
            "$CARRY/shared/fixtures/sd15-tiny/"
        cp -r "$ROOT/../shared/fixtures/clip-tokenizer" "$CARRY/shared/fixtures/"
    fi
    # what travels to the GPU machine: one compressed archive (the folder itself is larger
    # than what a device call may carry); `run` and `e2e` unpack it there
    tar -C "$(dirname "$CARRY")" -czf "$CARRY.tar.gz" "$(basename "$CARRY")"
    du -sh "$CARRY" "$CARRY.tar.gz"
}

# The links and library path every step on the GPU machine needs (see the header).
setup_env() {
    # unpack afresh each call: a warm machine keeps the folder from an earlier archive
    if [ -f "$CARRY.tar.gz" ]; then
        rm -rf "$CARRY"
        tar -C "$(dirname "$CARRY")" -xzf "$CARRY.tar.gz"
    fi
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
    export KILN_SD15_REF=$CARRY/sd15_ref.safetensors
    local evlib=/usr/lib/x86_64-linux-gnu/libwebsockets-evlib_uv.so
    [ -e "$evlib" ] || cp "$CARRY/lib/libwebsockets-evlib_uv.so" "$evlib" 2>/dev/null || true
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
    for t in $(cd "$CARRY/bin" && ls test_gpu_*); do
        echo "== $t" >>"$log"
        ( cd "$out" && timeout 300 "$CARRY/bin/$t" ) >>"$log" 2>&1
        rc=$?
        echo "$t: $([ $rc = 0 ] && echo PASS || echo "FAIL (exit $rc)")" >>"$summary"
    done
    if [ "${MEMCHECK:-1}" = 1 ] && command -v compute-sanitizer >/dev/null &&
        [ -x "$CARRY/bin/test_gpu_unet" ]; then
        echo "== compute-sanitizer memcheck: tiny UNet on the GPU" >>"$log"
        ( cd "$out" && timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 \
            "$CARRY/bin/test_gpu_unet" --no-fork test_tiny_unet_gpu_matches_cpu ) >>"$log" 2>&1
        rc=$?
        echo "memcheck tiny UNet: $([ $rc = 0 ] && echo CLEAN || echo "FAIL (exit $rc)")" \
            >>"$summary"
        # the whole fixture workflow (text encode, sampling, decode, save) on a GPU lane
        echo "== compute-sanitizer memcheck: tiny pipeline through the engine" >>"$log"
        ( cd "$out" && KILN_CUDA_DTYPE=fp32 timeout 400 compute-sanitizer --tool memcheck \
            --error-exitcode 9 "$CARRY/bin/test_gpu_fixtures" --no-fork \
            test_workflow_on_gpu_lane ) >>"$log" 2>&1
        rc=$?
        echo "memcheck tiny pipeline: $([ $rc = 0 ] && echo CLEAN || echo "FAIL (exit $rc)")" \
            >>"$summary"
    fi
    # the UNet benchmark in both activation layouts (the engine uses channels-last on GPUs)
    local b runs="bench_gpu_ops:1 bench_gpu_unet:1 bench_gpu_unet:0"
    for b in $runs; do
        local exe=${b%:*} cl=${b#*:} tag=${b/:/_cl}
        [ -x "$CARRY/bin/$exe" ] || continue
        echo "== $exe, KILN_SD_CHANNELS_LAST=$cl" >>"$log"
        # the table on stdout; the per-shape conv path timings (stderr) in $tag.log
        ( cd "$out" && KILN_SD_CHANNELS_LAST=$cl KILN_CUDA_CONV_LOG=1 timeout 300 \
            "$CARRY/bin/$exe" 2>"$out/$tag.log" ) | tee "$out/$tag.txt" >>"$log"
    done
    grep -E "^cudnn" "$log"
    cat "$summary"
    for b in $runs; do
        [ -f "$out/${b/:/_cl}.txt" ] && { echo "== $b"; cat "$out/${b/:/_cl}.txt"; }
    done
    grep -E "FAIL|failed|error" "$log" | head -40
}

# End to end: the fp32 fixture workflow through `kiln run` (PNG within 1 of ComfyUI's),
# then the fp16 benchmark over the server (tools/bench/bench_serve.py), the way ComfyUI
# was measured. SCENARIOS and RUNS pick what it times (default: all, 5 runs each).
e2e() {
    local out=${OUT:-$ROOT/device-out} rc=0
    mkdir -p "$out"
    setup_env
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
    local fix=$CARRY/shared/fixtures
    timeout 240 bash "$ROOT/tests/gpu/gpu_workflow.sh" "$CARRY/bin/kiln" "$fix/sd15-tiny" \
        "$fix/clip-tokenizer" /tmp/gpu-wf || { rc=1; tail -5 /tmp/gpu-wf/run.log; }
    echo "fixture workflow on the GPU: $([ $rc = 0 ] && echo PASS || echo FAIL)"
    KILN_CUDA_DTYPE=fp16 timeout 560 python3 "$ROOT/tools/bench/bench_serve.py" \
        --kiln "$CARRY/bin/kiln" --make-checkpoint "$CARRY/bin/make_checkpoint" \
        --tokenizer "$fix/clip-tokenizer" --work /tmp/bench-serve --out "$out" \
        --runs "${RUNS:-5}" --scenarios "${SCENARIOS:-b1,b4,b8,q16,hires}" || rc=1
    cp /tmp/bench-serve/serve.log "$out/" 2>/dev/null
    return $rc
}

# The UNet benchmark REPEAT times (default 3) in the engine's layout, for the spread
# between runs (each run picks its convolution algorithms anew).
bench() {
    local out=${OUT:-$ROOT/device-out} i
    mkdir -p "$out"
    setup_env
    for i in $(seq "${REPEAT:-3}"); do
        echo "== bench_gpu_unet run $i"
        ( cd "$out" && timeout 170 "$CARRY/bin/bench_gpu_unet" ) | tee "$out/bench_gpu_unet_$i.txt" |
            sed -n '1,8p'
    done
}

# One batch-2 UNet call under Nsight Compute: each kernel's GPU time (ncu_b2.csv), and
# their sum beside the call's event-to-event time, which also holds the launch gaps.
profile() {
    local out=${OUT:-$ROOT/device-out}
    mkdir -p "$out"
    setup_env
    ( cd "$out" && timeout 200 "$CARRY/bin/bench_gpu_unet" 20 1,2 )
    # at the clocks and cache state the call really runs with, not ncu's locked base clock
    ( cd "$out" && KILN_BENCH_PROFILE_LAST=1 timeout 400 ncu --profile-from-start off \
        --clock-control none --cache-control none \
        --metrics gpu__time_duration.sum --csv "$CARRY/bin/bench_gpu_unet" 3 2 \
        >"$out/ncu_b2.csv" 2>"$out/ncu.log" )
    python3 "$ROOT/tools/bench/ncu_summary.py" "$out/ncu_b2.csv"
}

case "${1:-}" in
bundle) bundle ;;
profile) profile ;;
run) run ;;
e2e) e2e ;;
bench) bench ;;
*) echo "usage: $0 bundle|run|e2e|bench|profile" >&2; exit 2 ;;
esac
