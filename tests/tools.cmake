# The tidemalloc command (tools/, issue 12): run, stats, heapmap against real
# programs, through the copy in the build tree (build/tidemalloc).  The test
# script and the command need /usr/bin/python3 (Debian's, with
# python3-matplotlib for the heap maps; a missing matplotlib fails the
# heapmap test with the apt-get line).
# obs_target: the threaded program `stats` and `heapmap` look at (not a test
# by itself; plain libc, the command preloads the library).
add_executable(obs_target obs_target.c)
target_compile_options(obs_target PRIVATE ${TIDE_TEST_FLAGS})
target_link_libraries(obs_target PRIVATE Threads::Threads)
set_target_properties(obs_target PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR})
add_dependencies(obs_target tidemalloc)
set(TIDE_TOOL_TEST ${CMAKE_CURRENT_SOURCE_DIR}/test_tool.py)
foreach(part run children stats fork security heapmap install)
  add_test(NAME tool_${part}
           COMMAND /usr/bin/python3 ${TIDE_TOOL_TEST} ${part} ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR})
  set_tests_properties(tool_${part} PROPERTIES TIMEOUT 300)
endforeach()
set_tests_properties(tool_security PROPERTIES SKIP_RETURN_CODE 77)

# Secure mode (set-user-ID): tidemalloc reads none of its environment
# (tests/secure.sh; skipped without root, setpriv or a suid-honouring /tmp).
add_executable(secure_target secure_target.c)
target_compile_options(secure_target PRIVATE ${TIDE_TEST_FLAGS})
target_link_libraries(secure_target PRIVATE tidemalloc)
add_test(NAME secure_env COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/secure.sh $<TARGET_FILE:secure_target>)
set_tests_properties(secure_env PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 60)
