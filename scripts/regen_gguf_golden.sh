#!/bin/bash
# Regenerates the GGUF golden bytes (tests/golden/gguf/<TYPE>[_imatrix].bin:
# quantd's QuantizeGgml of the fixed 4 x 512 input of
# tests/core/ggml_quants_test.cc) after an intended change; review the diff.
# With QUANTD_GGML_LIB set (scripts/llama_cpp_oracle.sh) it first checks that
# the bytes equal ggml's, so the new goldens are llama-quantize's bytes.
#   scripts/regen_gguf_golden.sh [BUILD_DIR=build]
set -eu
BUILD=${1:-build}
ninja -C "$BUILD" ggml_quants_test
if [ -n "${QUANTD_GGML_LIB:-}" ]; then
  "$BUILD/tests/core/ggml_quants_test" --gtest_filter='GgmlOracleTest.Bytes*'
fi
QUANTD_REGENERATE_GOLDEN=1 "$BUILD/tests/core/ggml_quants_test" --gtest_filter='*GoldenBytes*'
"$BUILD/tests/core/ggml_quants_test" --gtest_filter='*GoldenBytes*'
git status --short tests/golden/gguf
