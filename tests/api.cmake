# API conformance, shadow-model randomized tests and heap-corruption checks.
# Sources: test_api.c, test_shadow.c, test_corruption.c (harness: harness.h).

# glibc-compatible behaviour of every public entry point.
tide_add_test(test_api SOURCES test_api.c TIMEOUT 120)

# Random malloc/free/realloc/calloc/memalign/... sequences against a shadow
# model, 4 seeds x 50000 operations, under several parameter settings.
# (test_shadow <variant> [ops-per-seed] [seed...]; SHADOW_SEED=n replays one)
tide_add_test(test_shadow          SOURCES test_shadow.c ARGS default  TIMEOUT 180)
tide_add_test(test_shadow_fast     SOURCES test_shadow.c ARGS fast     TIMEOUT 180)
tide_add_test(test_shadow_mmap     SOURCES test_shadow.c ARGS mmap     TIMEOUT 180)
tide_add_test(test_shadow_trim     SOURCES test_shadow.c ARGS trim     TIMEOUT 180)
tide_add_test(test_shadow_perturb  SOURCES test_shadow.c ARGS perturb  TIMEOUT 180)
tide_add_test(test_shadow_notcache SOURCES test_shadow.c ARGS notcache TIMEOUT 180)
# The same against the build with the engine's internal assertions (slower:
# fewer operations).
tide_add_test(test_shadow_debug    SOURCES test_shadow.c DEBUG ARGS default 10000 TIMEOUT 240)

# Heap corruption -> abort with glibc's message (each scenario in a child).
tide_add_test(test_corruption SOURCES test_corruption.c TIMEOUT 120)

# Default-mode hardening checks (issue 11): one scenario per check, and
# the properties of checksums, keyed links and the secret page.
tide_add_test(test_harden SOURCES test_harden.c INTERNAL TIMEOUT 120)
