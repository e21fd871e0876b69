# The front door. `make` builds, `make run` installs what is missing, builds and starts the
# server, `make test` installs, builds and runs every test (also under ASan/UBSan).
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
JOBS       ?= $(shell nproc)
CMAKE_GEN  := -G "Unix Makefiles"

.PHONY: all build run test test-release test-slow test-asan deps fuzz fuzz-smoke bench clean format

all: build

deps:
	@./scripts/install-deps

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Release

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

# The API on 127.0.0.1:3000 with its state in /var/lib/daytona (root: it creates sandboxes).
run: deps build
	./$(BUILD)/bin/daytonad serve

$(BUILD_ASAN)/Makefile:
	cmake -S . -B $(BUILD_ASAN) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DDT_SANITIZE=ON

# The node WebSocket interop test's packages (`ws`, as the official SDK uses it), into the build
# directory; strict: the npm registry is part of the test environment.
test-release: deps build
	DT_NPM_DEPS_STRICT=1 ./scripts/npm-deps $(BUILD)/node/agent
	DT_NPM_DEPS_STRICT=1 ./scripts/npm-deps-sdk $(BUILD)/node/sdk
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600 -LE slow

test-asan: deps $(BUILD_ASAN)/Makefile
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	DT_NPM_DEPS_STRICT=1 ./scripts/npm-deps $(BUILD_ASAN)/node/agent
	DT_NPM_DEPS_STRICT=1 ./scripts/npm-deps-sdk $(BUILD_ASAN)/node/sdk
	cd $(BUILD_ASAN) && ctest --output-on-failure -j $(JOBS) -L 'unit|integration' --timeout 900

# Long tests outside `make test`: the default snapshot built from the Debian mirror (minutes).
test-slow: deps build
	cd $(BUILD) && ctest --output-on-failure -L slow

# Everything: the release build's suite, the sanitizer build's suite, and a short fuzz run.
test: test-release test-asan fuzz-smoke

$(BUILD_FUZZ)/Makefile:
	CC=clang-14 cmake -S . -B $(BUILD_FUZZ) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DDT_FUZZ=ON

fuzz: deps $(BUILD_FUZZ)/Makefile
	cmake --build $(BUILD_FUZZ) -j $(JOBS)

# Each harness for a few seconds over its seed corpus (CI); longer runs: scripts/fuzz NAME SECONDS.
fuzz-smoke: fuzz
	./scripts/fuzz-all 10

bench: build
	./bench/runtime
	./bench/agent
	/usr/bin/python3 ./bench/images

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i
