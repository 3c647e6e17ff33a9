# syntax=docker/dockerfile:1
#
# quantd image: builds quantd, quantctl and quantd-make-test-model with the
# CUDA kernels, then copies them into a small CUDA base image.
#
#   docker build -t quantd .
#   docker run --gpus all -p 127.0.0.1:7470:7470 -p 127.0.0.1:7471:7471 \
#     -v "$PWD/models:/models:ro" quantd
#
# Build arguments:
#   CUDA_VERSION      NVIDIA CUDA image version (13.x needs host driver >= 580)
#   CUDA_ARCHS        CMAKE_CUDA_ARCHITECTURES (see cmake/QuantdCuda.cmake);
#                     e.g. --build-arg CUDA_ARCHS=90-real for a faster H100-only build
#   BUILD_JOBS        parallel compile jobs (default: all cores); lower it if
#                     nvcc runs out of memory
ARG CUDA_VERSION=13.0.0
ARG UBUNTU=ubuntu24.04

# ---------------------------------------------------------------- build ----
FROM nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU} AS build
# pipefail: a failing ldd in the library-copy pipeline below fails the build.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Same packages as scripts/install-deps.sh, less the test-only ones
# (gtest/gmock, prometheus, python). All exist in Ubuntu 24.04 (libcli11-dev
# and prometheus-cpp-dev are in universe, which the image enables); its
# CMake is 3.28. Versions are those of the Ubuntu release (not pinned).
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      libabsl-dev libspdlog-dev prometheus-cpp-dev nlohmann-json3-dev libcli11-dev \
      libssl-dev libsqlite3-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

ARG CUDA_ARCHS="80-real;89-real;90-real;100-real;120"
ARG BUILD_JOBS=
# QUANTD_CUDA=ON: fail loudly rather than silently build a CPU-only image.
RUN cmake -S . -B /build -G Ninja \
      -DCMAKE_BUILD_TYPE=Release \
      -DQUANTD_BUILD_TESTS=OFF -DQUANTD_BUILD_BENCH=OFF \
      -DQUANTD_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS}" \
 && cmake --build /build ${BUILD_JOBS:+-j ${BUILD_JOBS}} \
      --target quantd quantctl quantd-make-test-model

# Stage the binaries and the shared libraries they need. The libraries are
# found with ldd rather than listed by package name, so the runtime stage
# needs no -dev packages and no guessing at Ubuntu's t64 runtime package names.
# Left out: glibc (the runtime image has the same one and it must match its
# ld.so) and the driver's libcuda/libnvidia-ml, which the NVIDIA Container
# Toolkit mounts at run time (quantd links cudart statically and dlopens NVML).
RUN mkdir -p /out/bin /out/lib \
 && install -m 0755 -s /build/server/quantd /build/client/quantctl \
      /build/tests/fixtures/quantd-make-test-model /out/bin/ \
 && ldd /out/bin/* | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u \
    | grep -Ev '/(ld-linux[^/]*|libc|libm|libdl|libpthread|librt|libresolv|libutil|libcuda|libnvidia-ml)\.so' \
    | xargs -r cp -vL -t /out/lib/

# -------------------------------------------------------------- runtime ----
# "base" rather than "runtime": quantd links the CUDA runtime statically and
# needs nothing else from the toolkit (no cuBLAS etc.), so the larger image
# would only add unused libraries.
FROM nvidia/cuda:${CUDA_VERSION}-base-${UBUNTU}

# compute: CUDA; utility: NVML, for the quantd_gpu_* metrics.
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    LD_LIBRARY_PATH=/opt/quantd/lib${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}} \
    QUANTD_SERVER=127.0.0.1:7470

COPY --from=build /out/lib/ /opt/quantd/lib/
COPY --from=build /out/bin/ /usr/local/bin/
COPY deploy/quantd.toml /etc/quantd/quantd.toml

# Fail the build here, not at first start, if a library was missed.
RUN ldd /usr/local/bin/quantd /usr/local/bin/quantctl > /tmp/ldd.txt \
 && ! grep 'not found' /tmp/ldd.txt && rm /tmp/ldd.txt \
 && quantd --help >/dev/null \
 && groupadd --system --gid 10001 quantd \
 && useradd --system --uid 10001 --gid quantd --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin quantd \
 && mkdir -p /data /models /outputs \
 && chown quantd:quantd /data /outputs

# Numeric, so that orchestrators can verify runAsNonRoot.
USER 10001:10001
WORKDIR /data
VOLUME ["/data", "/models", "/outputs"]
# 7470: gRPC, 7471: Prometheus /metrics
EXPOSE 7470 7471

# No grpc_health_probe in the image: quantctl exits 0 only when the server
# answers. Assumes the gRPC port is 7470 (as in deploy/quantd.toml). Shell
# form because Docker wants exit 1 for unhealthy and quantctl exits 3.
# hadolint ignore=DL3025
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD quantctl --server 127.0.0.1:7470 --timeout 3 workers >/dev/null || exit 1

# SIGTERM (docker stop's signal) drains: running jobs get drain-seconds,
# then are requeued. Give the container longer than that to stop
# (docker stop -t / compose stop_grace_period).
STOPSIGNAL SIGTERM
CMD ["quantd", "--config", "/etc/quantd/quantd.toml"]
