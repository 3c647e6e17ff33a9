#!/bin/bash
# GGUF export on the GPU machine (device tool), from the repository root with
# the bundle from scripts/device-bundle.sh (.devbundle). Needs the binaries
# ggml_kernels_test, gguf_e2e_test (optional), model_bench, gguf_bench.
#   1. the ggml CUDA kernels against the CPU reference, bit for bit;
#   2. a Llama-3-8B-shaped random BF16 model (model_bench --generate) to
#      Q4_K_M end to end on the H100 (target <= 20 s) and on the CPU path
#      (all cores), with the pipeline's breakdown;
#   3. the per-core CPU encode rate of each type.
# Logs under $OUT; finishes in about 4-6 minutes.
set -u
. bench/device/common.sh
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
nproc | tee -a "$OUT/gpu.txt"

step "ggml CUDA kernels vs CPU reference"
timeout 300 "$B/ggml_kernels_test" 2>&1 | tail -25 | tee "$OUT/ggml_kernels_test.txt"
if [ -x "$B/gguf_e2e_test" ]; then
  step "gguf end-to-end (quantd + quantctl)"
  QUANTD_BIN=$B/quantd QUANTCTL_BIN=$B/quantctl timeout 300 "$B/gguf_e2e_test" --gtest_brief=1 \
    2>&1 | tail -6 | tee "$OUT/gguf_e2e_test.txt"
fi

M=/tmp/gguf8b/llama8b
step "generate the 8B-shaped BF16 model"
# An unknown method makes model_bench only generate (its plan fails at once).
[ -d $M ] || timeout 300 "$B/model_bench" --model $M --generate --methods none --device cpu \
  2>&1 | head -3 | tee "$OUT/generate.txt"
du -sh $M | tee -a "$OUT/generate.txt"

step "8B BF16 -> Q4_K_M on the GPU"
timeout 240 "$B/gguf_bench" --model $M --devices cuda --types Q4_K_M 2>&1 | tee "$OUT/gguf_bench_cuda.txt"
step "8B BF16 -> Q4_K_M on the GPU, second run"
timeout 240 "$B/gguf_bench" --model $M --devices cuda --types Q4_K_M 2>&1 | tail -12 \
  | tee "$OUT/gguf_bench_cuda2.txt"
step "8B BF16 -> Q4_K_M on the CPU path ($(nproc) threads)"
timeout 300 "$B/gguf_bench" --model $M --devices cpu --types Q4_K_M 2>&1 | tail -12 \
  | tee "$OUT/gguf_bench_cpu.txt"
step "per-core CPU rate"
timeout 120 "$B/gguf_bench" --rate --rate-rows 256 2>&1 | tee "$OUT/gguf_rate.txt"
df -h /tmp | tail -1
