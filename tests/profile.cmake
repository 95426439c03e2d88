# Allocation-site profiling (src/prof.h): test_profile.c checks the reports
# of a program with a known top call site; profile.sh drives the
# `tidemalloc profile` command (tools/tidemalloc_cmd/profile.py) on it and
# on python3.
set(TIDE_PROFILE_OUT ${CMAKE_CURRENT_BINARY_DIR}/profile-out)
file(MAKE_DIRECTORY ${TIDE_PROFILE_OUT})
tide_add_test(test_profile SOURCES test_profile.c
  ARGS ${TIDE_PROFILE_OUT}/test
  ENV TIDEMALLOC_PROFILE=seed:12345,out:${TIDE_PROFILE_OUT}/atexit.%p)
# dladdr must find keep_big: export the program's symbols.
set_target_properties(test_profile PROPERTIES ENABLE_EXPORTS ON)
tide_add_variant(test_profile_off test_profile)
