# GGUF export against llama.cpp's own Python reader (PyPI gguf):
# write_gguf_export runs the real pipeline on a generated tiny Llama model
# for every file type; gguf_export.py opens each file with gguf.GGUFReader
# and checks metadata, names, shapes, types and dequantized values.
# Skipped (77) when the interpreter lacks numpy, safetensors or gguf.
add_executable(write_gguf_export ${CMAKE_CURRENT_LIST_DIR}/write_gguf_export.cc)
target_link_libraries(write_gguf_export PRIVATE quantd_kernels quantd_test_fixtures)
if(_quantd_interop_python)
  add_test(NAME interop_gguf_export
           COMMAND ${_quantd_interop_python} ${CMAKE_CURRENT_LIST_DIR}/gguf_export.py
                   --generator $<TARGET_FILE:write_gguf_export>
                   --workdir ${CMAKE_CURRENT_BINARY_DIR}/gguf_export)
  set_tests_properties(interop_gguf_export PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
endif()

# The same files against llama.cpp itself (bytes equal llama_model_quantize's
# for every file type, with and without an imatrix; llama-simple runs each):
# needs LLAMA_CPP_BIN and LLAMA_CPP_SRC in the environment
# (scripts/llama_cpp_oracle.sh builds them); skipped (77) without.
if(_quantd_interop_python)
  add_test(NAME interop_gguf_llama_cpp
           COMMAND ${_quantd_interop_python} ${CMAKE_CURRENT_LIST_DIR}/llama_cpp_check.py
                   --generator $<TARGET_FILE:write_gguf_export>
                   --workdir ${CMAKE_CURRENT_BINARY_DIR}/gguf_llama_cpp)
  set_tests_properties(interop_gguf_llama_cpp PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600)
endif()
