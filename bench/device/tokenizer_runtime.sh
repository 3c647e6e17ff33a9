#!/bin/bash
# Runs on the GPU machine (device tool) from the repository root, with the
# bundle (.devbundle: tokenizer_test, runtime_loader_test, runtime_config_test,
# llama_cpu_test, runtime_dump) carried. Checks the tokenizer and the CPU
# model runtime against Hugging Face:
#  1. golden_ids.json against `tokenizers` and transformers' AutoTokenizer
#     (tests/golden/tokenizer/verify_golden.py) -> $OUT/golden_verify.json;
#  2. quantd's tokenizer and runtime unit tests (golden dir from the repo);
#  3. runtime_check.py: CPU logits vs transformers float32 on tiny models of
#     every supported variant (GQA Llama, tied, llama3 RoPE, Qwen2 q/k/v
#     bias, Mistral sliding window) -> $OUT/runtime_<variant>.json.
# Logs under $OUT; about 2 minutes.
set -u
. bench/device/common.sh

step "versions"
python3 -c "import tokenizers, transformers, torch; print('tokenizers', tokenizers.__version__,
'transformers', transformers.__version__, 'torch', torch.__version__)" 2>&1 | tee "$OUT/versions.txt"

step "golden ids vs Hugging Face"
python3 tests/golden/tokenizer/verify_golden.py --json "$OUT/golden_verify.json" 2>&1 \
  | grep -v Warning | tee "$OUT/golden_verify.txt"

step "unit tests"
export QUANTD_TOKENIZER_GOLDEN_DIR=$PWD/tests/golden/tokenizer
for t in tokenizer_test runtime_config_test runtime_loader_test llama_cpu_test; do
  if [ -x "$B/$t" ]; then
    "$B/$t" --gtest_brief=1 2>&1 | tail -6 | tee -a "$OUT/tests.txt"
  else
    echo "missing $B/$t" | tee -a "$OUT/tests.txt"
  fi
done

step "CPU runtime vs transformers (float32)"
W=/tmp/runtime_check
rm -rf $W && mkdir -p $W
for v in llama tied llama3_rope qwen2_bias mistral; do
  timeout 300 python3 tests/interop/runtime_check.py --dump-tool "$B/runtime_dump" \
    --variant $v --length 96 --workdir $W/$v --json "$OUT/runtime_$v.json" 2>&1 \
    | grep -v Warning | tail -3 | tee -a "$OUT/runtime_check.txt"
done
