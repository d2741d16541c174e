# Thin wrapper over CMake: `make run` installs, builds and runs the main job;
# `make test` installs, builds (plain and sanitized) and runs every test.
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
CMAKE_FLAGS ?=

.PHONY: all setup web build build-asan run test test-plain test-asan bench clean

all: build

setup:
	@bash tools/setup.sh

# The browser editor: npm ci with the committed lockfile, then a Vite build into web/dist,
# which `kiln serve` serves. Rebuilt only when its sources change.
WEB_SOURCES := $(shell find web/src web/index.html web/package.json web/package-lock.json \
                 web/vite.config.js -type f 2>/dev/null)
web/dist/index.html: $(WEB_SOURCES) | setup
	cd web && npm ci --no-audit --no-fund && npm run build
	@touch $@

web: web/dist/index.html

build: setup web
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

build-asan: setup
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DKILN_SANITIZE=ON -DKILN_CUDA=OFF $(CMAKE_FLAGS) >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# The main job: txt2img on a random-weight tiny SD1.x model, headless, no download. The
# model and a demo byte-level tokenizer are generated under demo/ the first time; the image
# lands in demo/output/. Real checkpoints and the real CLIP tokenizer: see docs/sd15.md.
run: build
	@test -f demo/models/checkpoints/kiln-demo-tiny.safetensors || \
	    ./$(BUILD)/make_checkpoint --tiny --seed 1 \
	    -o demo/models/checkpoints/kiln-demo-tiny.safetensors
	@test -f demo/models/tokenizers/clip/vocab.json -a \
	    -f demo/models/tokenizers/clip/merges.txt || \
	    ./$(BUILD)/make_checkpoint --tokenizer demo/models/tokenizers/clip
	./$(BUILD)/kiln run workflows/demo_txt2img_api.json --base-directory demo

test-plain: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE gpu

test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS) -LE gpu

test: test-plain test-asan

bench: build
	./$(BUILD)/bench_engine

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
