#!/bin/bash
# One device call that checks a session's GPU-facing changes, from the
# repository root, with the bundle (.devbundle, scripts/device-bundle.sh) and
# the compressed-tensors wheels (.whl) carried:
#   1. the quantize kernel benchmarks on 4096 x 14336 BF16 (fraction of the
#      device-to-device copy measured in the same run; target >= 80%)
#   2. the GPU kernel tests (CUDA against the scalar reference, bit for bit)
#   3. the end-to-end tests (service, GGUF, evaluate) against a quantd that
#      has a GPU worker
#   4. transformers + compressed-tensors load quantd's FP8 128x128-block folder
# Every step has a time limit; the whole script stays under BUDGET seconds.
set -u
BUDGET=${BUDGET:-330}  # seconds for the whole script
. bench/device/common.sh
export QUANTD_BIN=$B/quantd QUANTCTL_BIN=$B/quantctl
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"

gtest() {  # gtest LIMIT BINARY: runs it, one summary line into tests.txt
  local t=$2
  if [ -x "$B/$t" ]; then
    limited "$1" "$B/$t" --gtest_brief=1 > "$OUT/$t.log" 2>&1
    echo "$t (rc $?): $(grep -E '^\[  (PASSED|FAILED|SKIPPED) |TIMED OUT|SKIPPED \(' "$OUT/$t.log" \
      | tr '\n' ' ')" | tee -a "$OUT/tests.txt"
  else
    echo "$t: missing from .devbundle/bin" | tee -a "$OUT/tests.txt"
  fi
}

step "kernel benchmarks, 4096 x 14336 BF16"
for b in bnb_bench nvfp4_bench fp8_bench rtn_bench; do
  [ -x "$B/$b" ] && limited 40 "$B/$b" 2>&1 | tee "$OUT/$b.txt"
done

step "GPU kernel tests"
for t in bnb_kernels_test nvfp4_kernels_test ggml_kernels_test cuda_encoder_test; do
  gtest 60 $t
done

step "end-to-end tests"
for t in e2e_test gguf_e2e_test evaluate_e2e_test; do gtest 90 $t; done

step "interop: FP8 128x128 blocks in transformers"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl > /dev/null 2>&1
  export PYTHONPATH=/tmp/site
fi
W=/tmp/interop-verify
rm -rf $W && mkdir -p $W/models $W/outputs $W/data
"$B/quantd-make-test-model" $W/models/base --hidden 512 --intermediate 1536 --layers 4 \
  --heads 8 --kv-heads 4 > /dev/null
"$B/quantd" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --data-dir $W/data \
  --model-root $W/models --output-root $W/outputs --log-level warn &
QPID=$!
for _ in $(seq 1 100); do [ -s $W/data/ports.json ] && break; sleep 0.1; done
export QUANTD_SERVER=127.0.0.1:$(sed 's/.*"grpc":\([0-9]*\).*/\1/' $W/data/ports.json)
"$B/quantctl" workers
limited 60 "$B/quantctl" quantize --model base --method fp8 --option strategy=block \
  --output fp8-block --wait > /dev/null 2>&1 || echo "FAILED: fp8 block"
kill -TERM $QPID; wait $QPID
limited 90 python3 tests/interop/hf_load_check.py --base $W/models/base \
  --quantized $W/outputs/fp8-block --json "$OUT/interop_fp8_block.json" 2>&1 \
  | grep -v -E "Warning|it/s]" | tail -8
step "done"
