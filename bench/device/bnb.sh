#!/bin/bash
# The bitsandbytes formats (nf4 / fp4 / double quant, LLM.int8) on the GPU
# machine (device tool), from the repository root, with the bundle
# (.devbundle: bin + lib, CUDA sm_90 build) and bitsandbytes (.pylib)
# carried:
#   1. GPU tests: the bnb4 and bnb_int8 CUDA kernels, alone and through
#      CudaEncoder (chunked; double quantization from the scratch absmax),
#      against the scalar reference bit for bit (bnb_kernels_test), the
#      format tests (bnb_test), and cuda_encoder_test (the shared encoder,
#      which gained element-indexed parts)
#   2. kernel benchmark on 4096 x 14336 BF16: GB/s and fraction of the
#      device-to-device copy measured in the same run (bench/bnb_bench.cc),
#      and bitsandbytes' own quantize on the same matrix and on the Linear
#      weights of a Llama-3-8B-shaped model (bench/bnb_compare.py)
#   3. interop: the interop reader (read_bnb.py), then transformers +
#      bitsandbytes load quantd's nf4, fp4, nf4 double-quant and int8
#      outputs of a small generated model and the logits of a short prompt
#      agree with the model dequantized by quantd (bnb_load_check.py)
# Binaries: bnb_kernels_test bnb_test cuda_encoder_test bnb_bench write_bnb quantd quantctl
# quantd-make-test-model. Every step has a time limit; the whole script stays
# under 7 minutes. Writes logs and JSON under $OUT.
set -u
BUDGET=${BUDGET:-420}  # seconds for the whole script
. bench/device/common.sh
export PYTHONPATH=$PWD/.pylib${PYTHONPATH:+:$PYTHONPATH}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
python3 -c 'import bitsandbytes, torch, transformers; print("bitsandbytes", bitsandbytes.__version__, "torch", torch.__version__, "transformers", transformers.__version__)' 2>&1 | grep -v Warning | tee "$OUT/versions.txt"


step "bitsandbytes GPU tests"
for t in bnb_kernels_test bnb_test cuda_encoder_test; do
  if [ -x "$B/$t" ]; then
    limited 100 "$B/$t" --gtest_brief=1 > "$OUT/$t.txt" 2>&1
    echo "$t: $(grep -E '^\[  (PASSED|FAILED|SKIPPED)|FAILED  ' "$OUT/$t.txt" | tr '\n' ' ')" \
      | tee -a "$OUT/tests.txt"
  else
    echo "$t: missing from .devbundle/bin" | tee -a "$OUT/tests.txt"
  fi
done

step "kernel benchmark, 4096 x 14336 BF16"
[ -x "$B/bnb_bench" ] && limited 90 "$B/bnb_bench" 2>&1 | tee "$OUT/bnb_bench.txt"
step "bitsandbytes' own quantize, same matrix and Llama-3-8B Linear shapes"
limited 90 python3 bench/bnb_compare.py --json "$OUT/bnb_compare.json" 2>&1 | grep -v Warning \
  | tee "$OUT/bnb_compare.txt"

step "interop reader (read_bnb.py)"
[ -x "$B/write_bnb" ] && limited 60 python3 tests/interop/read_bnb.py --generator "$B/write_bnb" \
  --workdir /tmp/bnb_interop 2>&1 | tee "$OUT/read_bnb.txt"

step "interop: transformers + bitsandbytes load quantd's outputs"
W=/tmp/interop_bnb
rm -rf $W && mkdir -p $W/models $W/outputs $W/data
"$B/quantd-make-test-model" $W/models/base --hidden 512 --intermediate 1424 --layers 4 \
  --heads 8 --kv-heads 4 > /dev/null
"$B/quantd" --listen 127.0.0.1:0 --metrics-listen "" --data-dir $W/data --model-root $W/models \
  --output-root $W/outputs --log-level warn &
QPID=$!
for _ in $(seq 1 100); do [ -s $W/data/ports.json ] && break; sleep 0.1; done
export QUANTD_SERVER=127.0.0.1:$(sed 's/.*"grpc":\([0-9]*\).*/\1/' $W/data/ports.json)
"$B/quantctl" -o json capabilities > "$OUT/capabilities.json" 2>&1
q() { limited 60 "$B/quantctl" quantize --model base "$@" --wait > /dev/null 2>&1 || echo "FAILED: $*"; }
# compute_dtype float32: bitsandbytes then dequantizes and multiplies in
# float32, so the logits can be compared at 1e-4 (bnb_load_check.py).
q --method nf4 --option compute_dtype=float32 --output nf4
q --method fp4 --option compute_dtype=float32 --output fp4
q --method nf4 --option compute_dtype=float32 --option double_quant=true --output nf4-dq
q --method fp4 --group-size 128 --option compute_dtype=float32 --option double_quant=true \
  --output fp4-b128-dq
q --method int8 --option layout=bitsandbytes --output int8-bnb
q --method nf4 --option compute_dtype=float32 --device cpu --output nf4-cpu-worker
q --method nf4 --option compute_dtype=float32 --option double_quant=true --device cpu \
  --output nf4-dq-cpu-worker
q --method int8 --option layout=bitsandbytes --device cpu --output int8-bnb-cpu-worker
"$B/quantctl" -o json list > "$OUT/interop_bnb_jobs.json"
kill -TERM $QPID; wait $QPID
# The GPU worker's outputs (auto picks the GPU) must equal the CPU worker's
# byte for byte.
for pair in nf4:nf4-cpu-worker nf4-dq:nf4-dq-cpu-worker int8-bnb:int8-bnb-cpu-worker; do
  for f in $W/outputs/${pair%%:*}/*.safetensors; do
    cmp "$f" "$W/outputs/${pair##*:}/$(basename "$f")" && echo "same bytes: $pair $(basename "$f")"
  done
done 2>&1 | tee "$OUT/gpu_vs_cpu_worker.txt"
limited 180 python3 tests/interop/bnb_load_check.py --base $W/models/base \
  --quantized $W/outputs/nf4 --quantized $W/outputs/fp4 --quantized $W/outputs/nf4-dq \
  --quantized $W/outputs/fp4-b128-dq --quantized $W/outputs/int8-bnb \
  --json "$OUT/bnb_interop.json" 2>&1 | grep -v Warning | tail -12
echo; echo "bnb.sh finished in $(( $(date +%s) - START )) s"
