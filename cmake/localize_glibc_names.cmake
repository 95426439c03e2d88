# cmake -DIN=libtidemalloc.a -DOUT=libtidemalloc_san.a -DOBJCOPY=... -DREADELF=... -P localize_glibc_names.cmake
#
# Copies the static library and makes local every symbol it exports with
# default visibility that is not a tide_ name: the glibc-named aliases
# (malloc, free, calloc, ...).  Used by sanitizer builds for the INTERNAL
# tests (see tests/CMakeLists.txt); the tide_ names and the hidden internal
# symbols the tests reach are left as they are.
execute_process(COMMAND ${READELF} -sW ${IN}
                OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${READELF} -sW ${IN} failed (${rc})")
endif()
# Keep the list split sane: no ';' or brackets in the elements.
string(REPLACE ";" " " out "${out}")
string(REPLACE "[" " " out "${out}")
string(REPLACE "]" " " out "${out}")
string(REPLACE "\n" ";" lines "${out}")
set(names "")
foreach(l IN LISTS lines)
  # Num: Value Size Type Bind Vis Ndx Name   (Ndx numeric = defined here)
  if(l MATCHES "^ *[0-9]+: +[0-9a-f]+ +[0-9]+ +[A-Z_]+ +(GLOBAL|WEAK) +DEFAULT +[0-9]+ +([^ ]+) *$")
    set(name "${CMAKE_MATCH_2}")
    if(NOT name MATCHES "^tide_")
      list(APPEND names "${name}")
    endif()
  endif()
endforeach()
list(REMOVE_DUPLICATES names)
if(NOT names)
  message(FATAL_ERROR "no glibc-named symbol found in ${IN}: the parsing of readelf's output is wrong")
endif()
set(args "")
foreach(n IN LISTS names)
  list(APPEND args "--localize-symbol=${n}")
endforeach()
string(REPLACE ";" " " shown "${names}")
message(STATUS "localized in ${OUT}: ${shown}")
execute_process(COMMAND ${OBJCOPY} ${args} ${IN} ${OUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${OBJCOPY} failed (${rc})")
endif()
