#!/usr/bin/env python3
"""Loads quantd's bitsandbytes outputs (nf4 / fp4, with and without double
quantization, LLM.int8) with transformers + bitsandbytes and checks that the
logits of a short prompt agree with the base model whose quantized weights
are replaced by quantd's dequantized values (decoded here from the files by
bitsandbytes' published definition; tests/interop/read_bnb.py proves this
decoding equals quantd's DecodeRef bit for bit).

Runs on the GPU machine (torch, transformers, bitsandbytes on PYTHONPATH):

  bnb_load_check.py --base MODEL_DIR --quantized OUT_DIR [...] [--json out.json]

The reference is quantd's decode in float32 and, for 4-bit, also rounded
to the quant state's dtype (bitsandbytes' dequantize_4bit returns that dtype;
transformers may set it to the model's on load): the closer one counts, and
the loaded quant states' dtypes are reported.

Tolerances on max|a - b| / max|b| of the logits (float32 reference):
  4-bit  1e-4  quantd writes bnb_4bit_compute_dtype float32 for the check
               (option compute_dtype=float32): bitsandbytes dequantizes to
               the source dtype (code * absmax in float32, rounded once, as
               the reference here does), then multiplies in float32;
  int8   5e-2  LLM.int8 also quantizes the activations to int8 per token
               (outlier columns above llm_int8_threshold stay float16), which
               the float32 reference does not; the weights are exact.
Each output must also load without missing or unexpected keys and have
every quantized Linear replaced by bitsandbytes' Linear4bit / Linear8bitLt.
Exit status 0 when every output loads and agrees.
"""
import argparse
import glob
import json
import sys
import time

import torch
from safetensors import safe_open

TOLERANCE = {"4bit": 1e-4, "int8": 5e-2}
PROMPT = [1, 450, 4996, 17354, 1701, 432, 17204, 975, 278, 17366, 11203, 29889, 13, 1576, 3]


def dequantize_4bit(f, module: str):
    keys = set(f.keys())
    state_key = [k for k in keys if k.startswith(module + ".weight.quant_state.bitsandbytes__")][0]
    state = json.loads(bytes(f.get_tensor(state_key).tolist()).decode("utf-8"))
    rows, cols = state["shape"]
    bs = state["blocksize"]
    packed = f.get_tensor(module + ".weight").reshape(-1).to(torch.int64)
    codes = torch.stack((packed >> 4, packed & 15), dim=1).reshape(-1)[: rows * cols]
    qmap = f.get_tensor(module + ".weight.quant_map").to(torch.float32)
    absmax = f.get_tensor(module + ".weight.absmax")
    if "nested_offset" in state:
        nested = f.get_tensor(module + ".weight.nested_absmax")
        nmap = f.get_tensor(module + ".weight.nested_quant_map")
        n = absmax.numel()
        absmax = nmap[absmax.to(torch.int64)] * nested.repeat_interleave(256)[:n]
        absmax = absmax + torch.tensor(float(state["nested_offset"]), dtype=torch.float32)
    scale = absmax.to(torch.float32).repeat_interleave(bs)[: rows * cols]
    # code * absmax in float32; dequantize_4bit then rounds it once to the
    # quant state's dtype, which transformers may replace by the model's
    # (float32) when it loads a checkpoint: check() tries both.
    return (qmap[codes] * scale).reshape(rows, cols), getattr(torch, state["dtype"])


def dequantize_int8(f, module: str) -> torch.Tensor:
    w = f.get_tensor(module + ".weight").to(torch.float32)
    scb = f.get_tensor(module + ".SCB").to(torch.float32)
    return w * scb.unsqueeze(1) * torch.tensor(7.874015718698502e-3, dtype=torch.float32)


def decoded_weights(qdir: str):
    cfg = json.load(open(f"{qdir}/config.json"))["quantization_config"]
    assert cfg["quant_method"] == "bitsandbytes", cfg
    kind = "4bit" if cfg.get("load_in_4bit") else "int8"
    out = {}
    for path in sorted(glob.glob(f"{qdir}/*.safetensors")):
        with safe_open(path, "pt") as f:
            for key in f.keys():
                if kind == "4bit" and key.endswith(".weight.quant_map"):
                    module = key[: -len(".weight.quant_map")]
                    out[module] = dequantize_4bit(f, module)
                elif kind == "int8" and key.endswith(".SCB"):
                    module = key[: -len(".SCB")]
                    out[module] = dequantize_int8(f, module)
    return cfg, kind, out


def logits(model, device):
    ids = torch.tensor([PROMPT], device=device)
    with torch.no_grad():
        return model(input_ids=ids).logits.float().cpu()


def check(base: str, qdir: str, device: str) -> dict:
    from transformers import AutoModelForCausalLM
    import bitsandbytes as bnb
    cfg, kind, weights = decoded_weights(qdir)
    vocab = json.load(open(f"{base}/config.json"))["vocab_size"]
    prompt_ok = max(PROMPT) < vocab
    if not prompt_ok:
        PROMPT[:] = [t % vocab for t in PROMPT]
    # References: quantd's decode in float32, and rounded to the quant
    # state's dtype (what bitsandbytes' dequantize_4bit returns when the
    # state keeps the checkpoint's dtype); LLM.int8 has one.
    wants = {}
    for variant in (("f32", "state_dtype") if kind == "4bit" else ("f32",)):
        ref = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        for module, w in weights.items():
            if kind == "4bit":
                w, dtype = w
                if variant == "state_dtype":
                    w = w.to(dtype)
            with torch.no_grad():
                ref.get_parameter(module + ".weight").copy_(w.to(torch.float32))
        ref.to(device)
        wants[variant] = logits(ref, device)
        del ref
    t0 = time.time()
    model, info = AutoModelForCausalLM.from_pretrained(
        qdir, dtype=torch.float32 if kind == "4bit" else torch.float16, device_map=device,
        output_loading_info=True)
    load_s = time.time() - t0
    layer = bnb.nn.Linear4bit if kind == "4bit" else bnb.nn.Linear8bitLt
    replaced = sum(isinstance(model.get_submodule(m), layer) for m in weights)
    got = logits(model, device)
    errs = {v: float((got - w).abs().max() / w.abs().max()) for v, w in wants.items()}
    best = min(errs, key=errs.get)
    err, want = errs[best], wants[best]
    agree = float((got.argmax(-1) == want.argmax(-1)).float().mean())
    states = {str(getattr(getattr(model.get_submodule(m).weight, "quant_state", None), "dtype",
                          None)) for m in weights}
    tol = TOLERANCE[kind]
    missing = list(info.get("missing_keys", [])) + list(info.get("unexpected_keys", []))
    ok = err <= tol and replaced == len(weights) and not missing
    return {"output": qdir, "kind": kind, "quant_type": cfg.get("bnb_4bit_quant_type"),
            "double_quant": cfg.get("bnb_4bit_use_double_quant"),
            "compute_dtype": cfg.get("bnb_4bit_compute_dtype"),
            "quantized_modules": len(weights), "bnb_modules": replaced,
            "missing_or_unexpected": missing[:8], "max_rel_err": err, "tolerance": tol,
            "matching_reference": best, "errors_by_reference": errs,
            "loaded_quant_state_dtypes": sorted(states),
            "argmax_agreement": agree, "load_seconds": load_s, "ok": ok}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--quantized", action="append", required=True)
    ap.add_argument("--json")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    results = []
    for qdir in args.quantized:
        try:
            r = check(args.base, qdir, device)
        except Exception as e:  # report and go on with the next output
            r = {"output": qdir, "ok": False, "error": f"{type(e).__name__}: {e}"}
        results.append(r)
        print(json.dumps(r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "torch": torch.__version__, "results": results}, f,
                      indent=2)
    passed = sum(r["ok"] for r in results)
    print(f"{passed}/{len(results)} bitsandbytes outputs load and agree")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
