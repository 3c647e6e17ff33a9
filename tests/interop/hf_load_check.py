#!/usr/bin/env python3
"""Loads quantd outputs with transformers (and the library each format needs)
and checks that the logits of a prompt agree with the base model whose
quantized weights were replaced by quantd's dequantized values, decoded here
independently from the published layout.

Runs on a machine with torch and transformers (the GPU machine):

  hf_load_check.py --base MODEL_DIR --quantized OUT_DIR [--quantized OUT_DIR ...]
                   [--tolerance 1e-4] [--json results.json]

Both models run in float32 so that dequantization is exact on both sides:
the tolerance bounds max|a-b|/max|b| of the logits. Exit status 0 when every
output loads and agrees.
"""
import argparse
import json
import sys
import time

import torch
from safetensors import safe_open


def unpack_int32(packed: torch.Tensor, bits: int, count: int, dim: int) -> torch.Tensor:
    """Values i of each int32 word sit at bits [bits*i, bits*i+bits), offset by 2^(bits-1)."""
    per_word = 32 // bits
    mask = (1 << bits) - 1
    words = packed.to(torch.int64) & 0xFFFFFFFF
    shifts = torch.arange(per_word, dtype=torch.int64) * bits
    if dim == 1:
        vals = (words.unsqueeze(-1) >> shifts) & mask  # [rows, words, per_word]
        vals = vals.reshape(words.shape[0], -1)[:, :count]
    else:
        vals = (words.unsqueeze(1) >> shifts.view(1, -1, 1)) & mask  # [words, per_word, cols]
        vals = vals.reshape(-1, words.shape[1])[:count, :]
    return vals - (1 << (bits - 1))


def dequantize_pack_quantized(f, module: str, bits: int, group_size) -> torch.Tensor:
    packed = f.get_tensor(module + ".weight_packed")
    scale = f.get_tensor(module + ".weight_scale").to(torch.float32)
    rows, cols = (int(x) for x in f.get_tensor(module + ".weight_shape"))
    q = unpack_int32(packed, bits, cols, dim=1).to(torch.float32)
    groups = scale.shape[1]
    zp = torch.zeros_like(scale)
    if module + ".weight_zero_point" in f.keys():
        zp = unpack_int32(f.get_tensor(module + ".weight_zero_point"), bits, rows, dim=0).to(
            torch.float32)
    gs = cols // groups
    q = q.view(rows, groups, gs)
    return ((q - zp.unsqueeze(-1)) * scale.unsqueeze(-1)).view(rows, cols)


def reference_state(base_dir: str, quant_dir: str):
    """The base model's weights with every quantized module replaced by our decoding."""
    from transformers import AutoModelForCausalLM
    cfg = json.load(open(f"{quant_dir}/config.json"))["quantization_config"]
    weights = cfg["config_groups"]["group_0"]["weights"]
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    import glob
    replaced = 0
    for path in sorted(glob.glob(f"{quant_dir}/*.safetensors")):
        with safe_open(path, "pt") as f:
            for key in f.keys():
                if not key.endswith(".weight_packed"):
                    continue
                module = key[: -len(".weight_packed")]
                w = dequantize_pack_quantized(f, module, weights["num_bits"], weights["group_size"])
                param = model.get_parameter(module + ".weight")
                with torch.no_grad():
                    param.copy_(w)
                replaced += 1
    return model, replaced


def logits(model, ids, device):
    model.to(device).eval()
    with torch.no_grad():
        return model(ids.to(device)).logits.float().cpu()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--quantized", action="append", required=True)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--json")
    args = ap.parse_args()
    from transformers import AutoModelForCausalLM
    import transformers
    import compressed_tensors
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(args.base, dtype=torch.float32)
    ids = torch.randint(3, base.config.vocab_size, (2, 64))
    base_logits = logits(base, ids, device)
    results = []
    ok = True
    for qdir in args.quantized:
        t0 = time.time()
        row = {"output": qdir, "transformers": transformers.__version__,
               "compressed_tensors": compressed_tensors.__version__}
        try:
            qmodel = AutoModelForCausalLM.from_pretrained(qdir, dtype=torch.float32)
            row["load_seconds"] = round(time.time() - t0, 2)
            q_logits = logits(qmodel, ids, device)
            ref_model, replaced = reference_state(args.base, qdir)
            ref_logits = logits(ref_model, ids, device)
            err = ((q_logits - ref_logits).abs().max() / ref_logits.abs().max()).item()
            base_err = ((q_logits - base_logits).norm() / base_logits.norm()).item()
            top1 = (q_logits.argmax(-1) == base_logits.argmax(-1)).float().mean().item()
            row.update(modules_quantized=replaced, max_rel_err_vs_quantd_dequant=err,
                       rel_l2_vs_base=base_err, top1_agreement_vs_base=top1,
                       passed=err <= args.tolerance)
            ok &= err <= args.tolerance
            del qmodel, ref_model
        except Exception as e:  # report and continue with the next output
            row.update(passed=False, error=f"{type(e).__name__}: {e}")
            ok = False
        results.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        json.dump(results, open(args.json, "w"), indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
