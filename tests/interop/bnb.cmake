# Interop for the bitsandbytes formats (nf4 / fp4 4-bit blockwise, with and
# without double quantization, and LLM.int8): an independent Python reader
# (numpy + safetensors, written from bitsandbytes' published quantize and
# dequantize definitions) recomputes the block absmax and every code from
# the source weights and decodes the files to exactly our DecodeRef values.
# Skipped (exit 77) when the interpreter lacks numpy or safetensors.
# Included by CMakeLists.txt here, after it has chosen _quantd_interop_python.
add_executable(write_bnb ${CMAKE_CURRENT_LIST_DIR}/write_bnb.cc)
target_link_libraries(write_bnb PRIVATE quantd_kernels)

if(_quantd_interop_python)
  add_test(NAME interop_read_bnb
           COMMAND ${_quantd_interop_python} ${CMAKE_CURRENT_LIST_DIR}/read_bnb.py
                   --generator $<TARGET_FILE:write_bnb>
                   --workdir ${CMAKE_CURRENT_BINARY_DIR}/bnb)
  set_tests_properties(interop_read_bnb PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
endif()
