#!/bin/sh
# Configures and builds quantd into build/ (CUDA kernels too where nvcc is
# found). Extra arguments go to CMake's configure step.
set -eu
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DQUANTD_PYTHON="$(pwd)/build/venv/bin/python" "$@"
cmake --build build -j "$(nproc)"
