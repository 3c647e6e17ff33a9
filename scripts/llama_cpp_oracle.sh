#!/bin/bash
# Builds the parts of llama.cpp that quantd's GGUF checks compare against, from
# the llama.cpp that PyPI's llama-cpp-python sdist vendors (no git clone):
#   libggml-base.so  -> QUANTD_GGML_LIB for the GgmlOracleTest tests
#                       (tests/core/ggml_quants_test.cc: bytes equal
#                       ggml_quantize_chunk, with and without an imatrix)
#   libllama.so, llama-simple -> tests/interop/llama_cpp_check.py (bytes equal
#                       llama_model_quantize for every file type; llama.cpp
#                       loads and runs every quantd file)
#
#   scripts/llama_cpp_oracle.sh [WORKDIR=/tmp/lcpp] [JOBS=2]
#
# Then, with a quantd build in build-gguf:
#   QUANTD_GGML_LIB=$WORKDIR/build/bin/libggml-base.so build-gguf/tests/core/ggml_quants_test
#   python3 tests/interop/llama_cpp_check.py --generator build-gguf/tests/interop/write_gguf_export \
#     --llama-src $WORKDIR/src/vendor/llama.cpp --llama-bin $WORKDIR/build/bin --workdir /tmp/llcheck
set -eu
WORKDIR=${1:-/tmp/lcpp}
JOBS=${2:-2}
mkdir -p "$WORKDIR"
cd "$WORKDIR"
if [ ! -d src/vendor/llama.cpp ]; then
  pip download --no-deps --no-binary :all: llama-cpp-python -d "$WORKDIR"
  mkdir -p src
  tar xzf llama_cpp_python-*.tar.gz -C src --strip-components=1
fi
cmake -S src/vendor/llama.cpp -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_UI=OFF -DGGML_NATIVE=ON > cmake.log
ninja -C build -j"$JOBS" ggml-base llama-simple
echo "built: $(ls build/bin)"
