#!/bin/sh
# Installs what quantd builds and tests with, from Debian 12's packages, and a
# Python virtual environment (build/venv) with the independent readers the
# interop tests use (numpy, safetensors, gguf from PyPI) and grpcio for the
# Python client.
set -eu
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PACKAGES="build-essential cmake ninja-build pkg-config git ca-certificates curl \
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
  libabsl-dev libspdlog-dev prometheus-cpp-dev nlohmann-json3-dev libcli11-dev \
  libssl-dev libsqlite3-dev libgtest-dev libgmock-dev prometheus \
  python3 python3-venv python3-pip"

missing=""
for p in $PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi

if [ ! -x build/venv/bin/python ]; then
  mkdir -p build
  python3 -m venv build/venv
fi
if ! build/venv/bin/python -c "import numpy, safetensors, gguf, grpc, grpc_tools" 2>/dev/null; then
  build/venv/bin/pip install -q --disable-pip-version-check numpy safetensors gguf grpcio grpcio-tools
fi
