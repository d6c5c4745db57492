# Install-time half of prequalify.pc (cmake/install.cmake sets the inputs):
# the prefix is CMAKE_INSTALL_PREFIX as given to `cmake --install`.
if(IS_ABSOLUTE "${LUADIR}")
  set(PQ_PC_LUADIR "${LUADIR}")
else()
  set(PQ_PC_LUADIR "\${prefix}/${LUADIR}")
endif()
configure_file("${PQ_PC_IN}" "${PQ_PC_OUT}" @ONLY)
