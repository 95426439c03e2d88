# dlopen(RTLD_DEEPBIND): a plugin allocates and frees with tidemalloc
# (src/dlopen.c).  Three builds of one plugin (bound now with RELRO, bound
# lazily, and a control), a plugin with a malloc of its own, one whose
# dependency has one, one whose constructor frees what the C library
# allocated; the test finds them in its own directory, the lazy one also
# by bare name through its run path.
foreach(v now lazy ctl)
  add_library(deepbind_${v} MODULE deepbind_lib.c)
  set_target_properties(deepbind_${v} PROPERTIES PREFIX "" OUTPUT_NAME deepbind_${v})
  target_compile_options(deepbind_${v} PRIVATE -O1 -fno-builtin)
endforeach()
target_link_options(deepbind_now PRIVATE -Wl,-z,now -Wl,-z,relro)
target_link_options(deepbind_lazy PRIVATE -Wl,-z,lazy -Wl,-z,norelro)
target_link_options(deepbind_ctl PRIVATE -Wl,-z,now -Wl,-z,relro)
add_library(deepbind_own MODULE deepbind_own.c)
set_target_properties(deepbind_own PROPERTIES PREFIX "" OUTPUT_NAME deepbind_own)
target_compile_options(deepbind_own PRIVATE -O1 -fno-builtin)

# a plugin whose constructor frees what the C library allocated for it
add_library(deepbind_ctor MODULE deepbind_ctor.c)
set_target_properties(deepbind_ctor PROPERTIES PREFIX "" OUTPUT_NAME deepbind_ctor)
target_compile_options(deepbind_ctor PRIVATE -O1 -fno-builtin)

# a plugin whose malloc comes from a dependency of its own
add_library(deepbind_alloc SHARED deepbind_alloc.c)
set_target_properties(deepbind_alloc PROPERTIES OUTPUT_NAME deepbind_alloc)
target_compile_options(deepbind_alloc PRIVATE -O1 -fno-builtin)
add_library(deepbind_priv MODULE deepbind_priv.c)
set_target_properties(deepbind_priv PROPERTIES PREFIX "" OUTPUT_NAME deepbind_priv)
target_compile_options(deepbind_priv PRIVATE -O1 -fno-builtin)
target_link_libraries(deepbind_priv PRIVATE deepbind_alloc)

tide_add_test(test_deepbind SOURCES test_deepbind.c TIMEOUT 120
              ENV TIDE_DEEPBIND_DIR=${CMAKE_CURRENT_BINARY_DIR})
add_dependencies(test_deepbind deepbind_now deepbind_lazy deepbind_ctl deepbind_own deepbind_priv deepbind_ctor)
target_link_libraries(test_deepbind PRIVATE ${CMAKE_DL_LIBS})
# the bare-name stage: the modules' directory in the program's DT_RUNPATH
target_link_options(test_deepbind PRIVATE -Wl,--enable-new-dtags)
set_target_properties(test_deepbind PROPERTIES BUILD_RPATH ${CMAKE_CURRENT_BINARY_DIR})
