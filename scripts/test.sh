#!/bin/sh
# The README's test command: installs what is needed, builds, and runs every
# test (GPU tests skip where no GPU is present).
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh "$@"
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 600
