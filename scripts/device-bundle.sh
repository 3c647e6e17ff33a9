#!/bin/sh
# Packs built binaries and the shared libraries they need (those the GPU
# machine lacks: gRPC, Abseil, protobuf, spdlog, ...) into .devbundle/, so
# tests and benchmarks built here run on a machine with a GPU but without
# these packages:   LD_LIBRARY_PATH=.devbundle/lib .devbundle/bin/<program>
#
#   scripts/device-bundle.sh BUILD_DIR program...   (paths relative to BUILD_DIR)
#
# cuBLAS (libcublas, libcublasLt: ~600 MB) is not packed: the GPU machine has
# CUDA 13; put its lib64 (or PyTorch's nvidia/cu13/lib) on LD_LIBRARY_PATH.
set -eu
cd "$(dirname "$0")/.."
build=$1
shift
rm -rf .devbundle
mkdir -p .devbundle/bin .devbundle/lib
for p in "$@"; do
  cp "$build/$p" .devbundle/bin/
  strip --strip-debug ".devbundle/bin/$(basename "$p")"
  ldd "$build/$p" | awk '/=> \// {print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libcublas*|libstdc++.so*|libgcc_s.so*|ld-linux*|libpthread.so*|libdl.so*|librt.so*|libcuda.so*|libnvidia*)
        ;;
      *) cp -L -n "$lib" .devbundle/lib/ ;;
    esac
  done
done
du -sh .devbundle
