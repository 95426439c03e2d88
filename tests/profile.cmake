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
# The command, on test_profile and on python3 (PYTHONMALLOC=malloc).
add_test(NAME profile_cmd
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/profile_cmd.py
                 ${PROJECT_SOURCE_DIR}/tools $<TARGET_FILE:tidemalloc> $<TARGET_FILE:test_profile>
                 ${TIDE_PROFILE_OUT}/cmd)
set_tests_properties(profile_cmd PROPERTIES TIMEOUT 300)
