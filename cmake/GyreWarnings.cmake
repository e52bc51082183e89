# The project's warning list (STYLE.md); errors when GYRE_WERROR is ON (CI).
add_library(gyre_warnings INTERFACE)
target_compile_options(gyre_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wnon-virtual-dtor>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${GYRE_WERROR}>>:-Werror>
  # GCC 12 reports -Wrestrict on `"literal" + std::string` at -O3 (GCC bug 105329, a false
  # positive inside libstdc++).
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU>,$<VERSION_LESS:$<CXX_COMPILER_VERSION>,13>>:-Wno-restrict>)
# Applied to gyre's own targets only (PRIVATE), never exported to users.
function(gyre_warnings target)
  target_link_libraries(${target} PRIVATE $<BUILD_INTERFACE:gyre_warnings>)
endfunction()
