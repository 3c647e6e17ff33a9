#!/bin/sh
# The README's demo command: installs what is needed, builds, generates a
# small random Llama-shaped model, starts quantd, quantizes the model to
# int4 through quantctl while watching its progress, prints the result and
# a metrics sample, and stops the server.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh

DEMO=quantd-demo
rm -rf "$DEMO"
mkdir -p "$DEMO/models" "$DEMO/outputs" "$DEMO/data"
./build/tests/fixtures/quantd-make-test-model "$DEMO/models/demo-llama" \
  --hidden 512 --intermediate 1536 --layers 8 --heads 8 --kv-heads 4

./build/server/quantd --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
  --data-dir "$DEMO/data" --model-root "$DEMO/models" --output-root "$DEMO/outputs" \
  --log-level warn &
QUANTD_PID=$!
trap 'kill $QUANTD_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  [ -s "$DEMO/data/ports.json" ] && break
  sleep 0.1
done
GRPC_PORT=$(sed 's/.*"grpc":\([0-9]*\).*/\1/' "$DEMO/data/ports.json")
METRICS_PORT=$(sed 's/.*"metrics":\([0-9]*\).*/\1/' "$DEMO/data/ports.json")
export QUANTD_SERVER="127.0.0.1:$GRPC_PORT"
echo "quantd is serving gRPC on $QUANTD_SERVER and metrics on 127.0.0.1:$METRICS_PORT"

./build/client/quantctl capabilities
./build/client/quantctl quantize --model demo-llama --method int4 --group-size 128 \
  --output demo-llama-int4 --wait
./build/client/quantctl list
echo "--- a few metrics ---"
curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | grep -E '^quantd_(jobs_finished_total|job_duration_seconds_sum|written_bytes_total)'
echo "--- output folder $DEMO/outputs/demo-llama-int4 ---"
ls -l "$DEMO/outputs/demo-llama-int4"
kill -TERM $QUANTD_PID
wait $QUANTD_PID || true
trap - EXIT
