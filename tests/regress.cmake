# Regression tests of issue 8 (test_regress.c) and the "memory goes back
# with no help from the program" checks of issue 9 (test_quiet.c).
# (harness: harness.h, thread helpers: mt_common.h)

# One check per defect; crashes and hangs are caught in children with an
# alarm.  `test_regress <group>` runs one group: fork keys align tcache
# trim mallopt sbrk.
tide_add_test(test_regress SOURCES test_regress.c TIMEOUT 180)
