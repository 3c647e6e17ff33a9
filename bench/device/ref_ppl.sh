#!/bin/bash
# Runs on the GPU machine (device tool) from the repository root, with the
# bundle from scripts/device-bundle.sh (.devbundle: quantd, quantctl): the
# reference model's perplexity on the whole of wikitext-2 from quantd's
# evaluate job (GPU worker), under both protocols, against transformers
# (float32) on the same chunks (tests/interop/ref_model_ppl.py; bound 0.1%).
#   SHARED=DIR (models/, data/; default ../shared or ./shared)  about 2 minutes
set -u
. bench/device/common.sh
SHARED=${SHARED:-../shared}
[ -d "$SHARED/models" ] || SHARED=./shared
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
W=/tmp/refppl
rm -rf $W && mkdir -p $W/data $W/outputs
"$B/quantd" --listen 127.0.0.1:0 --metrics-listen "" --data-dir $W/data --model-root "$SHARED" \
  --output-root $W/outputs --cpu-workers 1 --log-level warn > "$OUT/quantd.log" 2>&1 &
QPID=$!
trap 'kill -TERM $QPID 2>/dev/null; wait $QPID 2>/dev/null' EXIT
for _ in $(seq 1 100); do [ -s $W/data/ports.json ] && break; sleep 0.1; done
export QUANTD_SERVER=127.0.0.1:$(sed 's/.*"grpc":\([0-9]*\).*/\1/' $W/data/ports.json)
rc=0
for M in "$SHARED"/models/*/; do
  N=$(basename "$M")
  ARGS=()
  for P in llama gptq; do
    step "quantd evaluate $N, protocol $P, GPU"
    timeout 200 "$B/quantctl" -o json evaluate --model "models/$N" --dataset data/wikitext2_test.txt \
      --protocol $P --max-tokens 0 --device gpu --generate 0 --wait > "$OUT/eval_${N}_$P.json" || rc=1
    ARGS+=(--quantd "$P=$OUT/eval_${N}_$P.json")
  done
  step "transformers on the same chunks"
  timeout 200 python3 tests/interop/ref_model_ppl.py --model "$M" \
    --dataset "$SHARED/data/wikitext2_test.txt" "${ARGS[@]}" --json "$OUT/ref_ppl_$N.json" 2>&1 \
    | grep -v -i warning
  [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
done
exit $rc
