# Interop for the fp8 format (compressed-tensors float-quantized): an
# independent Python reader (numpy + safetensors, written from the E4M3 bit
# definition and compressed-tensors' FP8 quantization) recomputes every
# scale and code of what our encoder writes. Skipped (exit 77) when the
# interpreter lacks numpy or safetensors. Included by CMakeLists.txt here,
# after it has chosen _quantd_interop_python.
add_executable(write_fp8 ${CMAKE_CURRENT_LIST_DIR}/write_fp8.cc)
target_link_libraries(write_fp8 PRIVATE quantd_kernels)

if(_quantd_interop_python)
  add_test(NAME interop_read_fp8
           COMMAND ${_quantd_interop_python} ${CMAKE_CURRENT_LIST_DIR}/read_fp8.py
                   --generator $<TARGET_FILE:write_fp8>
                   --workdir ${CMAKE_CURRENT_BINARY_DIR}/fp8)
  set_tests_properties(interop_read_fp8 PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
endif()
