# Thin wrapper over CMake: the README's commands.
BUILD  ?= build
PREFIX ?= /usr/local
CC     ?= cc
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all build demo test bench bench-quick install clean

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

BENCH_ALLOCATORS ?= glibc,jemalloc,jemalloc-bg,tcmalloc,tcmalloc-release,mimalloc,mimalloc-purge,tidemalloc,tidemalloc-norelease
BENCH_REPS ?= 5

bench: build
	python3 bench/run.py --build $(BUILD) --out bench/results --reps $(BENCH_REPS) \
		--allocators $(BENCH_ALLOCATORS) --syscalls

bench-quick: build
	python3 bench/run.py --build $(BUILD) --quick --out $(BUILD)/bench-quick

install: $(BUILD)/CMakeCache.txt
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX)
	cmake --build $(BUILD) -j $(JOBS)
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD)
