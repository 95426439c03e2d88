# Heap-misuse suite (issue 11): tests/misuse/misuse_<family>.c, one program
# per technique family, each technique in a forked child (misuse.h).  All
# carry the label "misuse":  ctest -L misuse
# `build/tests/test_misuse_<family> --summary` prints one line per technique
# (caught / EXPLOITED / otherwise); tests/misuse/summary.sh runs them all.
#
# Registered for the ordinary build only: under ASan/TSan the sanitizer owns
# malloc and the misuse would meet its allocator, not ours; there the
# programs are still compiled (they must build everywhere).
set(TIDE_MISUSE_FAMILIES forged interior double_free links overflow unlink metadata realloc harden)
# Families whose techniques only the checks catch (header checksums,
# ownership, keyed links): a build with -DTIDE_CHECKS=OFF (the benchmarks'
# "checks off") registers them DISABLED ("Not Run (Disabled)" in ctest).
set(TIDE_MISUSE_NEED_CHECKS forged interior double_free links overflow unlink realloc)
foreach(f IN LISTS TIDE_MISUSE_FAMILIES)
  if(TIDE_SANITIZE STREQUAL "address" OR TIDE_SANITIZE STREQUAL "thread")
    tide_add_test(test_misuse_${f} SOURCES misuse/misuse_${f}.c NOTEST)
  else()
    tide_add_test(test_misuse_${f} SOURCES misuse/misuse_${f}.c TIMEOUT 120)
    set_tests_properties(test_misuse_${f} PROPERTIES LABELS misuse)
    if(NOT TIDE_CHECKS AND f IN_LIST TIDE_MISUSE_NEED_CHECKS)
      set_tests_properties(test_misuse_${f} PROPERTIES DISABLED TRUE)
    endif()
  endif()
endforeach()

# Sweeps of wild pointers (every 16 bytes over the heaps' edges and inside
# live blocks) through free, realloc and malloc_usable_size, each in a
# forked child: a named abort, never a fault or a return.
if(TIDE_SANITIZE STREQUAL "address" OR TIDE_SANITIZE STREQUAL "thread")
  tide_add_test(test_wild SOURCES test_wild.c INTERNAL NOTEST)
else()
  tide_add_test(test_wild SOURCES test_wild.c INTERNAL TIMEOUT 300)
  set_tests_properties(test_wild PROPERTIES LABELS misuse)
endif()

# The strong mode's promises (poison, bounded quarantine, guard pages, on and
# off), switched on by mallopt and by the environment; and the randomized
# shadow-model test with the mode on.  Ordinary build only (the guard-page
# checks expect a plain SIGSEGV, which ASan/TSan intercept).
if(NOT TIDE_SANITIZE STREQUAL "address" AND NOT TIDE_SANITIZE STREQUAL "thread")
  tide_add_test(test_strong SOURCES test_strong.c TIMEOUT 120)
  tide_add_variant(test_strong_env test_strong ARGS env ENV TIDEMALLOC_HARDEN=1 TIMEOUT 120)
  tide_add_variant(test_shadow_harden test_shadow ARGS default ENV TIDEMALLOC_HARDEN=1 TIMEOUT 300)
else()
  tide_add_test(test_strong SOURCES test_strong.c NOTEST)
endif()
