# Thread, fork, OOM, arena, tunable, static-link and LD_PRELOAD tests.
# (test sources: test_threads.c test_fork.c test_oom.c test_cancel.c test_last_thread.c test_channel_fd.c test_limits.c test_bgfail.c test_bgsig.c test_arena.c
#  test_tunables.c test_static.c preload.sh; shared helpers: mt_common.h)


tide_add_test(test_threads SOURCES test_threads.c TIMEOUT 240)
tide_add_test(test_fork SOURCES test_fork.c TIMEOUT 280)
tide_add_test(test_oom SOURCES test_oom.c TIMEOUT 240)
# malloc, free and malloc_stats are no cancellation points (test_cancel.c):
# with and without the background thread (without it, the allocating
# threads refresh the statistics and read /proc themselves).
tide_add_test(test_cancel SOURCES test_cancel.c TIMEOUT 120)
# a process ends when its last thread does, the background thread running
tide_add_test(test_last_thread SOURCES test_last_thread.c TIMEOUT 200)
# the statistics channel's number taken by the program: its file untouched
tide_add_test(test_channel_fd SOURCES test_channel_fd.c TIMEOUT 120 ENV TIDEMALLOC_HEAPMAP_MS=100)
tide_add_variant(test_cancel_nobg test_cancel TIMEOUT 120 ENV TIDEMALLOC_BACKGROUND_THREAD=0)
# RLIMIT_FSIZE and no memory for the statistics channel's pages: no
# SIGXFSZ, no SIGBUS (test_limits.c).
tide_add_test(test_limits SOURCES test_limits.c TIMEOUT 120)
# The background thread cannot be created (seccomp denies clone): no retry
# storm, release at free time still works (test_bgfail.c).
tide_add_test(test_bgfail SOURCES test_bgfail.c INTERNAL TIMEOUT 120)
set_tests_properties(test_bgfail PROPERTIES SKIP_RETURN_CODE 77)
# The background thread takes neither its creator's signal mask (the
# program's handlers never run on it) nor its scheduling (test_bgsig.c).
tide_add_test(test_bgsig SOURCES test_bgsig.c INTERNAL TIMEOUT 120)

# Arena limit: default (8 x cpus), environment, tunables, mallopt.
tide_add_test(test_arena SOURCES test_arena.c TIMEOUT 120)
tide_add_variant(test_arena_env_max1 test_arena ARGS 1 ENV MALLOC_ARENA_MAX=1)
tide_add_variant(test_arena_env_max2 test_arena ARGS 2 ENV MALLOC_ARENA_MAX=2)
tide_add_variant(test_arena_tunable_max2 test_arena ARGS 2 ENV GLIBC_TUNABLES=glibc.malloc.arena_max=2)
tide_add_variant(test_arena_mallopt_max1 test_arena ARGS mallopt 1)
tide_add_variant(test_arena_mallopt_max3 test_arena ARGS mallopt 3)

# Environment tunables: malformed values must be read without crashing; the
# observable ones are checked (see test_tunables.c for the modes).
tide_add_test(test_tunables SOURCES test_tunables.c ARGS basic TIMEOUT 120)
tide_add_variant(test_tunables_arena_max_abc test_tunables ARGS basic ENV MALLOC_ARENA_MAX=abc)
tide_add_variant(test_tunables_mmap_threshold_negative test_tunables ARGS basic
                 ENV MALLOC_MMAP_THRESHOLD_=-5)
tide_add_variant(test_tunables_trim_threshold_overflow test_tunables ARGS basic
                 ENV MALLOC_TRIM_THRESHOLD_=99999999999999999999999)
tide_add_variant(test_tunables_glibc_tunables_garbage test_tunables ARGS basic
                 ENV GLIBC_TUNABLES=garbage)
tide_add_variant(test_tunables_glibc_tunables_mixed test_tunables ARGS mmap4096 nocache
                 ENV GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4096:glibc.malloc.tcache_count=0:bad)
tide_add_variant(test_tunables_perturb test_tunables ARGS perturb 165 ENV MALLOC_PERTURB_=165)
tide_add_variant(test_tunables_perturb_tunable test_tunables ARGS perturb 90
                 ENV GLIBC_TUNABLES=glibc.malloc.perturb=90)
tide_add_variant(test_tunables_check3 test_tunables ARGS basic ENV MALLOC_CHECK_=3)
tide_add_variant(test_tunables_top_pad test_tunables ARGS toppad 16777216 ENV MALLOC_TOP_PAD_=16777216)
tide_add_variant(test_tunables_mmap_max0 test_tunables ARGS mmapmax0 ENV MALLOC_MMAP_MAX_=0)
tide_add_variant(test_tunables_mmap_threshold_4096 test_tunables ARGS mmap4096
                 ENV MALLOC_MMAP_THRESHOLD_=4096)
tide_add_variant(test_tunables_decay_background test_tunables ARGS basic
                 ENV TIDEMALLOC_DECAY_MS=0 TIDEMALLOC_BACKGROUND_THREAD=1)
tide_add_variant(test_tunables_all_malformed test_tunables ARGS basic
                 ENV MALLOC_ARENA_MAX= MALLOC_ARENA_TEST=0x MALLOC_TOP_PAD_=xyz MALLOC_MMAP_MAX_=-1
                     MALLOC_PERTURB_=notanumber MALLOC_CHECK_=9999999999999999999999
                     MALLOC_MMAP_THRESHOLD_=12abc MALLOC_TRIM_THRESHOLD_=-1
                     TIDEMALLOC_DECAY_MS=garbage TIDEMALLOC_BACKGROUND_THREAD=maybe
                     "GLIBC_TUNABLES=glibc.malloc.arena_max=:=::glibc.malloc.=5:glibc.malloc.tcache_max=99999999999999999999999999:glibc.malloc.perturb=-1:glibc.malloc.mmap_threshold=0x:glibc.malloc")
string(REPEAT "glibc.malloc.no_such_tunable=1:" 200 TIDE_LONG_TUNABLES)
tide_add_variant(test_tunables_long_glibc_tunables test_tunables ARGS basic
                 ENV "GLIBC_TUNABLES=${TIDE_LONG_TUNABLES}glibc.malloc.arena_max=2")

# libtidemalloc.a: fully static (-static against glibc's libc.a) and linked
# into an ordinary dynamic executable.
foreach(variant static static_dynexe)
  add_executable(test_${variant} test_static.c)
  target_compile_options(test_${variant} PRIVATE ${TIDE_TEST_FLAGS})
  target_include_directories(test_${variant} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}
                             ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(test_${variant} PRIVATE tidemalloc_static Threads::Threads)
  add_test(NAME test_${variant} COMMAND test_${variant})
  set_tests_properties(test_${variant} PROPERTIES TIMEOUT 120)
endforeach()
target_link_options(test_static PRIVATE -static)

# Real programs under LD_PRELOAD=libtidemalloc.so, output compared with a run
# without it (tests/preload.sh).
# php, postgres: skipped (77) where they are not installed, but for CI.
foreach(suite python gcc sort misc git php postgres)
  add_test(NAME preload_${suite}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/preload.sh $<TARGET_FILE:tidemalloc> ${suite})
  set_tests_properties(preload_${suite} PROPERTIES TIMEOUT 240 SKIP_RETURN_CODE 77)
endforeach()
