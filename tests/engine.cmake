# Unit tests of the engine, the thread cache, page release and trimming:
# they read internal state (INTERNAL: static library, src/ headers).
foreach(t test_engine test_tcache test_release test_release_batch test_trim test_meta test_own_range)
  tide_add_test(${t} SOURCES ${t}.c INTERNAL TIMEOUT 120)
endforeach()
# Fresh top pages faulted in by range (release.c populate_top); the
# tunable from the environment turns it off.
tide_add_test(test_populate SOURCES test_populate.c INTERNAL TIMEOUT 60)
tide_add_variant(test_populate_env_off test_populate ARGS off TIMEOUT 60 ENV TIDEMALLOC_POPULATE=0)
# A thread's sub-heap grows by top_pad beyond the request (heap.c
# tm_heap_grow): commits per pad, not per page.
tide_add_test(test_subgrow SOURCES test_subgrow.c INTERNAL TIMEOUT 60)
# Prefetch hints on class lists (tcache.h): each names the entry
# TC_HINT_DIST further down its run; runs kept per arena.
tide_add_test(test_hints SOURCES test_hints.c INTERNAL TIMEOUT 60)

# The cache sized from the environment.
# The statistics channel goes quiet with the program: rounds on a
# simulated clock, a heap map due every 100 ms, no background thread.
tide_add_test(test_obs_quiet SOURCES test_obs_quiet.c INTERNAL TIMEOUT 60
              ENV TIDEMALLOC_HEAPMAP_MS=100 TIDEMALLOC_BACKGROUND_THREAD=0)

tide_add_variant(test_tcache_env_bytes test_tcache TIMEOUT 60 ENV TIDEMALLOC_TCACHE_BYTES=8192)
tide_add_variant(test_tcache_env_glibc test_tcache TIMEOUT 60
                 ENV GLIBC_TUNABLES=glibc.malloc.tcache_count=5:glibc.malloc.tcache_max=100)

# `make install` layout: library, header, pkg-config file usable by a program.
add_test(NAME test_install COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/install.sh ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
set_tests_properties(test_install PROPERTIES TIMEOUT 300)
# `make deb`: the Debian package's contents, without installing it (tests/deb.sh).
add_test(NAME test_deb COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/deb.sh ${PROJECT_SOURCE_DIR})
set_tests_properties(test_deb PROPERTIES TIMEOUT 900)
# The man pages render without a warning (tests/man.sh: man-db, groff).
add_test(NAME man_pages COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/man.sh ${PROJECT_SOURCE_DIR})

# Page release where transparent huge pages back the heap (src/thp.h):
# released ranges leave huge pages; TIDEMALLOC_THP=0 as the control.
tide_add_test(test_thp SOURCES test_thp.c TIMEOUT 120)
set_tests_properties(test_thp PROPERTIES SKIP_RETURN_CODE 77)
# Which units the marks cover: live regions keep huge pages; past the
# budget (lowered by the test) a release marks its whole heap.
tide_add_test(test_thp_budget SOURCES test_thp_budget.c INTERNAL TIMEOUT 60
              ENV GLIBC_TUNABLES=glibc.malloc.hugetlb=1 TIDEMALLOC_DECAY_MS=0)
tide_add_variant(test_thp_budget_whole test_thp_budget ARGS budget TIMEOUT 60
                 ENV GLIBC_TUNABLES=glibc.malloc.hugetlb=1 TIDEMALLOC_DECAY_MS=0)
set_tests_properties(test_thp_budget test_thp_budget_whole PROPERTIES SKIP_RETURN_CODE 77)
# Heaps advised huge (hugetlb=1) grow by whole units, so faults take huge
# pages (src/thp.h tm_thp_grow_to).
tide_add_test(test_thp_grow SOURCES test_thp_grow.c TIMEOUT 60)
set_tests_properties(test_thp_grow PROPERTIES SKIP_RETURN_CODE 77)
