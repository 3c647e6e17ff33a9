#!/bin/bash
# Runs on the GPU machine (device tool) from the repository root, with the
# bundle from scripts/device-bundle.sh (.devbundle): the CUDA runtime's tests
# (kernels vs references, logits vs the CPU backend), its throughput on a
# Llama-3-8B-shaped random BF16 model at context 2048 (and the CPU backend on
# a SmolLM-135M-shaped one), and perplexity vs transformers on tiny generated
# models. Binaries (.devbundle/bin): llama_cuda_ops_test, llama_cuda_test,
# llama_bench, llama_ppl. Writes logs and JSON under $OUT. Typically 2-4 minutes,
# at most 7.5 (timeouts).
set -u
. bench/device/common.sh
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"

for t in llama_cuda_ops_test llama_cuda_test; do
  step "$t"
  timeout 100 "$B/$t" --gtest_output=json:"$OUT/$t.json" > "$OUT/$t.txt" 2>&1
  echo "$t exit $?"
  grep -E "^\[ (model|generate) \]|^\[  FAILED|^\[  PASSED|^\[  SKIPPED|Failure|Expected|Which is|actual" \
    "$OUT/$t.txt" | head -60
done

step "llama_bench: 8B-shaped BF16, context 2048, batches 1/4/8; CPU SmolLM-135M-shaped"
timeout 150 "$B/llama_bench" --batches 1,4,8 --reps 3 --cpu-seq 512 --json "$OUT/llama_bench.json" \
  2>&1 | tee "$OUT/llama_bench.txt"
echo "llama_bench exit ${PIPESTATUS[0]}"

step "perplexity vs transformers (tiny generated models)"
timeout 100 python3 tests/interop/runtime_check_cuda.py --ppl-tool "$B/llama_ppl" \
  --workdir /tmp/runtime_check_cuda --json "$OUT/runtime_check_cuda.json" 2>&1 \
  | grep -v -i warning | tail -12 | tee "$OUT/runtime_check_cuda.txt"
echo "runtime_check_cuda exit ${PIPESTATUS[0]}"
