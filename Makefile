# Thin wrapper over CMake: `make run` installs, builds and runs the main job;
# `make test` installs, builds (plain and sanitized) and runs every test.
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
CMAKE_FLAGS ?=

.PHONY: all setup build build-asan run test test-plain test-asan bench clean

all: build

setup:
	@bash tools/setup.sh

build: setup
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

build-asan: setup
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DKILN_SANITIZE=ON -DKILN_CUDA=OFF $(CMAKE_FLAGS) >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# The main job: run the example workflow headless; images land in output/.
run: build
	./$(BUILD)/kiln run workflows/invert_api.json --output-directory output

test-plain: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE gpu

test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS) -LE gpu

test: test-plain test-asan

bench: build
	./$(BUILD)/bench_engine

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
