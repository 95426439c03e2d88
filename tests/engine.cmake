# Unit tests of the bin/chunk engine: link the static library so the test
# can look at internal state (hidden symbols stay linkable in an archive).
add_executable(test_engine test_engine.c)
target_compile_options(test_engine PRIVATE ${TIDE_TEST_FLAGS})
target_include_directories(test_engine PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}
                           ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(test_engine PRIVATE tidemalloc_static Threads::Threads)
add_test(NAME test_engine COMMAND test_engine)
set_tests_properties(test_engine PROPERTIES TIMEOUT 120)

foreach(t test_tcache test_release test_trim)
  add_executable(${t} ${t}.c)
  target_compile_options(${t} PRIVATE ${TIDE_TEST_FLAGS})
  target_include_directories(${t} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}
                             ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${t} PRIVATE tidemalloc_static Threads::Threads)
  add_test(NAME ${t} COMMAND ${t})
  set_tests_properties(${t} PROPERTIES TIMEOUT 120)
endforeach()

# `make install` layout: library, header, pkg-config file usable by a program.
add_test(NAME test_install COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/install.sh ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
set_tests_properties(test_install PROPERTIES TIMEOUT 300)

# The cache sized from the environment.
add_test(NAME test_tcache_env_bytes COMMAND test_tcache)
set_tests_properties(test_tcache_env_bytes PROPERTIES TIMEOUT 60 ENVIRONMENT "TIDEMALLOC_TCACHE_BYTES=8192")
add_test(NAME test_tcache_env_glibc COMMAND test_tcache)
set_tests_properties(test_tcache_env_glibc PROPERTIES TIMEOUT 60
                     ENVIRONMENT "GLIBC_TUNABLES=glibc.malloc.tcache_count=5:glibc.malloc.tcache_max=100")
