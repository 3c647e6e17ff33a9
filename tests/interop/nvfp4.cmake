# NVFP4 interop (included by tests/interop/CMakeLists.txt): write_nvfp4
# encodes test weights in the compressed-tensors and ModelOpt layouts;
# read_nvfp4.py (numpy + safetensors, written from the tools' published
# code) decodes them, re-quantizes the sources with the tools' formulas and
# compares bit for bit. Skipped (exit 77) without numpy or safetensors.
add_executable(write_nvfp4 ${CMAKE_CURRENT_LIST_DIR}/write_nvfp4.cc)
target_link_libraries(write_nvfp4 PRIVATE quantd_kernels)
if(_quantd_interop_python)
  add_test(NAME interop_read_nvfp4
           COMMAND ${_quantd_interop_python} ${CMAKE_CURRENT_LIST_DIR}/read_nvfp4.py
                   --generator $<TARGET_FILE:write_nvfp4>
                   --workdir ${CMAKE_CURRENT_BINARY_DIR}/nvfp4)
  set_tests_properties(interop_read_nvfp4 PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
endif()
