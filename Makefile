# Thin wrapper over CMake: the README's commands.
BUILD  ?= build
PREFIX ?= /usr/local
CC     ?= cc
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all build demo test test-asan test-tsan bench bench-quick install deb clean

# `make`: build everything and run the demonstration.
all: demo

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	$(BUILD)/demo/tide-demo --lib $(BUILD)/libtidemalloc.so

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900

# The suite under the sanitizers (-DTIDE_SANITIZE, see tests/CMakeLists.txt):
# ASan+UBSan in build-asan/, TSan in build-tsan/; only the tests labelled
# "sanitize" run.
test-asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTIDE_SANITIZE=address
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest -L sanitize --output-on-failure -j $(JOBS) --timeout 600

test-tsan:
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTIDE_SANITIZE=thread
	cmake --build build-tsan -j $(JOBS)
	cd build-tsan && ctest -L sanitize --output-on-failure -j $(JOBS) --timeout 600

BENCH_ALLOCATORS ?= glibc,jemalloc,jemalloc-bg,tcmalloc,tcmalloc-release,mimalloc,mimalloc-purge,tidemalloc,tidemalloc-norelease
BENCH_REPS ?= 3

bench: build
	python3 bench/run.py --build $(BUILD) --out bench/results --reps $(BENCH_REPS) \
		--allocators $(BENCH_ALLOCATORS) --syscalls

bench-quick: build
	python3 bench/run.py --build $(BUILD) --quick --out $(BUILD)/bench-quick

install: $(BUILD)/CMakeCache.txt
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX)
	cmake --build $(BUILD) -j $(JOBS)
	cmake --install $(BUILD)

# Debian package from a staged `cmake --install` (prefix /usr, multiarch
# libdir), built in $(BUILD)/deb-build: writes $(BUILD)/tidemalloc_<ver>_<arch>.deb.
deb:
	bash scripts/make_deb.sh . $(BUILD)

clean:
	rm -rf $(BUILD)
