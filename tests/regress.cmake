# Regression tests of issue 8 (test_regress.c) and the "memory goes back
# with no help from the program" checks of issue 9 (test_quiet.c).
# (harness: harness.h, thread helpers: mt_common.h)

# One check per defect; crashes and hangs are caught in children with an
# alarm.  `test_regress <group>` runs one group: fork keys align tcache
# trim mallopt sbrk.
tide_add_test(test_regress SOURCES test_regress.c TIMEOUT 300)
# The children's alarm only catches hangs: the tcache group's children take
# 4-19 s of CPU under the sanitizers on a loaded 2-core machine, over the
# harness default of 20 s (seen killed in ASan and TSan runs, never hung).
set_tests_properties(test_regress PROPERTIES ENVIRONMENT HARNESS_CHILD_TIMEOUT=90)

# Issue 9: freed memory goes back to the system while the program makes no
# allocator call (RSS - baseline <= 1.25 x live + 8 MiB within 5 s of the
# last free; polled up to 15 s so the time is reported).  One entry per
# mode; see test_quiet.c.  Each mode peaks below 1 GiB and, once the bound
# holds, runs for a few seconds.
tide_add_test(test_quiet_mt SOURCES test_quiet.c ARGS mt TIMEOUT 120)
foreach(m st churn swing cache threads256 fork quiet)
  tide_add_variant(test_quiet_${m} test_quiet_mt ARGS ${m} TIMEOUT 120)
endforeach()
tide_add_variant(test_quiet_unshare test_quiet_mt ARGS unshare TIMEOUT 120)
set_tests_properties(test_quiet_unshare PROPERTIES SKIP_RETURN_CODE 77)
tide_add_variant(test_quiet_swing_ns test_quiet_mt ARGS swing-ns TIMEOUT 120)
set_tests_properties(test_quiet_swing_ns PROPERTIES SKIP_RETURN_CODE 77)
tide_add_variant(test_quiet_swing_contained test_quiet_mt ARGS swing-contained TIMEOUT 120)
set_tests_properties(test_quiet_swing_contained PROPERTIES SKIP_RETURN_CODE 77)
tide_add_variant(test_quiet_optout test_quiet_mt ARGS optout TIMEOUT 120
                 ENV TIDEMALLOC_BACKGROUND_THREAD=0)
