#!/bin/bash
# Runs on the GPU machine (device tool) from the repository root, with the
# bundle from scripts/device-bundle.sh (.devbundle): the evaluate job's tests
# (unit + end to end, CPU worker), an evaluation of the reference model on the
# GPU worker and on the CPU worker (same protocol, same tokens: their
# perplexities must agree within the backends' stated error), and
# bench/quality_report.sh (GPU), which writes docs/quality.md (copied to
# $OUT/quality.md). Binaries (.devbundle/bin): quantd, quantctl,
# eval_protocol_test, eval_metrics_test, eval_evaluator_test,
# evaluate_e2e_test. Needs ../shared or ./shared (models/, data/).
# QUALITY_MAX_TOKENS (default 131072) bounds the tokens per protocol so the
# whole script stays under ~7 minutes; 0 evaluates all of wikitext-2.
set -u
. bench/device/common.sh
export QUANTD_BIN=$B/quantd QUANTCTL_BIN=$B/quantctl
SHARED=../shared
[ -d "$SHARED/models" ] || SHARED=./shared
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"

for t in eval_protocol_test eval_metrics_test eval_evaluator_test evaluate_e2e_test; do
  step "$t"
  timeout 200 "$B/$t" --gtest_brief=1 > "$OUT/$t.txt" 2>&1
  echo "$t exit $?"
  grep -E "PASSED|FAILED|SKIPPED|Failure|Expected|Which is|actual" "$OUT/$t.txt" | head -30
done

step "reference model: GPU worker vs CPU worker (llama protocol, 16384 tokens)"
W=/tmp/evalgpu
rm -rf $W && mkdir -p $W/data $W/outputs
"$B/quantd" --listen 127.0.0.1:0 --metrics-listen "" --data-dir $W/data --model-root "$SHARED" \
  --output-root $W/outputs --cpu-workers 1 --log-level warn > "$OUT/quantd_gpu_cpu.log" 2>&1 &
QPID=$!
for _ in $(seq 1 100); do [ -s $W/data/ports.json ] && break; sleep 0.1; done
export QUANTD_SERVER=127.0.0.1:$(sed 's/.*"grpc":\([0-9]*\).*/\1/' $W/data/ports.json)
"$B/quantctl" workers
for M in "$SHARED"/models/*/; do
  N=models/$(basename "$M")
  for D in gpu cpu; do
    timeout 120 "$B/quantctl" -o json evaluate --model "$N" --dataset data/wikitext2_test.txt \
      --max-tokens 16384 --device $D --generate 16 --wait > "$OUT/eval_${D}_$(basename "$M").json" \
      2> "$OUT/eval_${D}.err"
    echo "$D exit $?"
    python3 - "$OUT/eval_${D}_$(basename "$M").json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
for m in j.get("result", {}).get("evaluation", {}).get("models", []):
    print(m["model"], m.get("device"), "ppl", m.get("perplexity"), "+-", m.get("perplexityStderr"),
          "tok/s", round(m.get("tokensPerSecond", 0)), "gen:", repr(m.get("generation", ""))[:80])
print("error:", j.get("error", {}).get("message", "")) if j.get("state") != "JOB_STATE_SUCCEEDED" else None
PY
  done
  # A reference comparison on the GPU (KL of the model with itself must be 0).
  timeout 120 "$B/quantctl" evaluate --model "$N" --reference "$N" \
    --dataset data/wikitext2_test.txt --max-tokens 16384 --device gpu --generate 0 --wait \
    2>&1 | tail -8
done
kill -TERM $QPID; wait $QPID

step "quality report (GPU), max tokens ${QUALITY_MAX_TOKENS:-131072}"
timeout 330 bash bench/quality_report.sh --bin "$B" --shared "$SHARED" --out "$OUT/quality.md" \
  --max-tokens "${QUALITY_MAX_TOKENS:-131072}" --device gpu 2>&1 | tail -20
echo "quality_report exit ${PIPESTATUS[0]}"
head -c 6000 "$OUT/quality.md" 2>/dev/null
