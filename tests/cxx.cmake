# C++'s operator new and delete (src/cxx.c): a C++ program whose every
# form of new and delete is tidemalloc's, failures included, and one with
# operators of its own, which it keeps.  C++17 (std::align_val_t) with
# sized deallocation (clang 14 has it off by default).
tide_add_test(test_cxx SOURCES test_cxx.cc TIMEOUT 120 LIBS ${CMAKE_DL_LIBS})
tide_add_test(test_cxx_own SOURCES test_cxx_own.cc TIMEOUT 60)
foreach(t test_cxx test_cxx_own)
  set_target_properties(${t} PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
  target_compile_options(${t} PRIVATE -fsized-deallocation)
endforeach()
