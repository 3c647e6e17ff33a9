#!/bin/bash
# Runs on the GPU machine (device tool) from the repository root, with the
# bundle from scripts/device-bundle.sh (.devbundle) and Python wheels (.whl)
# carried: the GPU tests, the end-to-end test with a GPU worker, the kernel
# benchmark, and the transformers interop check. Writes logs under $OUT.
set -u
. bench/device/common.sh
export QUANTD_BIN=$B/quantd QUANTCTL_BIN=$B/quantctl
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi

step "GPU unit tests"
for t in devices_test cuda_encoder_test cpu_encoder_test rtn_int_test; do
  [ -x "$B/$t" ] && "$B/$t" --gtest_brief=1 2>&1 | tail -4 | tee -a "$OUT/tests.txt"
done
step "end-to-end test, GPU worker"
"$B/e2e_test" --gtest_brief=1 2>&1 | tail -4 | tee -a "$OUT/tests.txt"

step "RTN kernel benchmark"
"$B/rtn_bench" 2>&1 | tee "$OUT/rtn_bench.txt"

step "interop: transformers + compressed-tensors load quantd outputs"
W=/tmp/interop
rm -rf $W && mkdir -p $W/models $W/outputs $W/data
"$B/quantd-make-test-model" $W/models/base --hidden 512 --intermediate 1536 --layers 4 \
  --heads 8 --kv-heads 4 > /dev/null
"$B/quantd" --listen 127.0.0.1:0 --metrics-listen "" --data-dir $W/data --model-root $W/models \
  --output-root $W/outputs --log-level warn &
QPID=$!
for _ in $(seq 1 100); do [ -s $W/data/ports.json ] && break; sleep 0.1; done
export QUANTD_SERVER=127.0.0.1:$(sed 's/.*"grpc":\([0-9]*\).*/\1/' $W/data/ports.json)
"$B/quantctl" workers
q() { "$B/quantctl" quantize --model base "$@" --wait > /dev/null 2>&1 || echo "FAILED: $*"; }
q --method int4 --output int4-g128-sym
q --method int4 --group-size 32 --output int4-g32-sym
q --method int4 --asym --output int4-g128-asym
q --method int8 --output int8-channel
"$B/quantctl" -o json list > "$OUT/interop_jobs.json"
kill -TERM $QPID; wait $QPID
python3 tests/interop/hf_load_check.py --base $W/models/base \
  --quantized $W/outputs/int4-g128-sym --quantized $W/outputs/int4-g32-sym \
  --quantized $W/outputs/int4-g128-asym --quantized $W/outputs/int8-channel \
  --json "$OUT/interop.json" 2>&1 | grep -v Warning | tail -8
