#!/usr/bin/env python3
"""Reads quantd's GGUF exports with llama.cpp's own Python package (PyPI `gguf`).

Runs `GENERATOR DIR CASES...` (tests/interop/write_gguf_export.cc: the real
pipeline on a generated tiny Llama model with F32 weights), then opens every
DIR/outputs/<case>.gguf with gguf.GGUFReader and checks:
  - metadata: general.*, llama.* hyper-parameters, tokenizer.* keys;
  - tensor names, ggml shapes, and types, against an independent Python
    transcription of llama-quantize's rules for this model;
  - gguf.quants.dequantize() of every tensor against the original weights
    (Q/K rows permuted here as convert_hf_to_gguf does) within each type's
    bound, and, for quantized tensors, equal to quantd's DecodeRef
    (DIR/ref/<case>.safetensors) exactly.
Exit status: 0 pass, 1 fail, 77 skipped (no numpy, safetensors or gguf).
"""

import argparse
import json
import subprocess
import sys

try:
    import numpy as np
    from safetensors.numpy import load_file
    import gguf
    from gguf import GGMLQuantizationType as Q
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(77)

CASES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_S", "Q3_K_M",
         "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "Q4_K_M+imatrix",
         "Q4_0+imatrix"]
FTYPE_IDS = {"F32": 0, "F16": 1, "BF16": 32, "Q8_0": 7, "Q4_0": 2, "Q4_1": 3, "Q5_0": 8, "Q5_1": 9,
             "Q2_K": 10, "Q3_K_S": 11, "Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15,
             "Q5_K_S": 16, "Q5_K_M": 17, "Q6_K": 18}
DEFAULT = {"F32": Q.F32, "F16": Q.F16, "BF16": Q.BF16, "Q8_0": Q.Q8_0, "Q4_0": Q.Q4_0, "Q4_1": Q.Q4_1,
           "Q5_0": Q.Q5_0, "Q5_1": Q.Q5_1, "Q2_K": Q.Q2_K, "Q3_K_S": Q.Q3_K, "Q3_K_M": Q.Q3_K,
           "Q3_K_L": Q.Q3_K, "Q4_K_S": Q.Q4_K, "Q4_K_M": Q.Q4_K, "Q5_K_S": Q.Q5_K,
           "Q5_K_M": Q.Q5_K, "Q6_K": Q.Q6_K}
# Relative RMS error bound of gguf's dequantization against the original
# (Gaussian weights): generous multiples of what each type achieves.
BOUND = {Q.F32: 0.0, Q.F16: 1e-3, Q.BF16: 5e-3, Q.Q8_0: 0.01, Q.Q6_K: 0.025, Q.Q5_K: 0.045,
         Q.Q5_0: 0.05, Q.Q5_1: 0.05, Q.Q4_K: 0.09, Q.Q4_0: 0.1, Q.Q4_1: 0.1, Q.Q3_K: 0.2,
         Q.Q2_K: 0.45}

# The tiny model write_gguf_export.cc generates.
LAYERS, HIDDEN, FF, HEADS, KV_HEADS, VOCAB = 4, 256, 512, 4, 2, 259
HEAD_DIM = HIDDEN // HEADS


def use_more_bits(i, n):
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def expected_type(name, ftype, imatrix):
    """llama-quantize's choice for this (untied, non-GQA>=4, 4-layer) model."""
    if name.endswith("_norm.weight") or name == "rope_freqs.weight":
        return Q.F32
    base = DEFAULT[ftype]
    if base in (Q.F32, Q.F16, Q.BF16):
        return base
    layer = int(name.split(".")[1]) if name.startswith("blk.") else -1
    t = base
    if name == "output.weight":
        t = Q.Q8_0 if base == Q.Q8_0 else Q.Q6_K
    elif ".attn_v." in name:
        t = {"Q2_K": Q.Q3_K, "Q3_K_M": Q.Q5_K if layer < 2 else Q.Q4_K, "Q3_K_L": Q.Q5_K,
             "Q4_K_S": Q.Q5_K if layer < 4 else base}.get(ftype, base)
        if ftype in ("Q4_K_M", "Q5_K_M") and use_more_bits(layer, LAYERS):
            t = Q.Q6_K
    elif ".ffn_down." in name:
        n = LAYERS
        if ftype == "Q2_K":
            t = Q.Q3_K
        elif ftype == "Q3_K_M":
            t = Q.Q5_K if layer < n // 16 else Q.Q4_K
        elif ftype == "Q3_K_L":
            t = Q.Q5_K
        elif ftype in ("Q4_K_M", "Q5_K_M") and use_more_bits(layer, n):
            t = Q.Q6_K
        elif ftype == "Q4_K_S" and layer < n // 8:
            t = Q.Q5_K
        elif ftype in ("Q4_0", "Q5_0") and imatrix and layer < n // 8:
            t = Q.Q4_1 if ftype == "Q4_0" else Q.Q5_1
    elif ".attn_output." in name:
        t = {"Q2_K": Q.Q3_K, "Q3_K_M": Q.Q4_K, "Q3_K_L": Q.Q5_K}.get(ftype, base)
    return t


def permute(w, n_head):
    """convert_hf_to_gguf's LlamaModel.permute."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


HF_NAMES = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj",
            "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
            "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
            "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def original(name, weights):
    if name == "token_embd.weight":
        return weights["model.embed_tokens.weight"]
    if name == "output_norm.weight":
        return weights["model.norm.weight"]
    if name == "output.weight":
        return weights["lm_head.weight"]
    _, layer, kind, _ = name.split(".")
    w = weights[f"model.layers.{layer}.{HF_NAMES[kind]}.weight"]
    if kind == "attn_q":
        w = permute(w, HEADS)
    elif kind == "attn_k":
        w = permute(w, KV_HEADS)
    return w


class Checker:
    def __init__(self):
        self.failures = []

    def check(self, ok, msg):
        if not ok:
            self.failures.append(msg)
            print("FAIL:", msg)


def field(reader, key):
    f = reader.get_field(key)
    return None if f is None else f.contents()


def check_case(c, case, info, workdir, weights, tok_json):
    ftype = info["gguf_type"]
    imatrix = info["imatrix"]
    path = f"{workdir}/outputs/{info['file']}"
    reader = gguf.GGUFReader(path)
    ref = load_file(f"{workdir}/ref/{case}.safetensors")

    meta = {
        "general.architecture": "llama", "general.file_type": FTYPE_IDS[ftype],
        "general.quantization_version": 2, "general.alignment": 32, "general.type": "model",
        "llama.block_count": LAYERS, "llama.context_length": 2048,
        "llama.embedding_length": HIDDEN, "llama.feed_forward_length": FF,
        "llama.attention.head_count": HEADS, "llama.attention.head_count_kv": KV_HEADS,
        "llama.rope.dimension_count": HEAD_DIM, "llama.vocab_size": VOCAB,
        "llama.attention.key_length": HEAD_DIM, "llama.attention.value_length": HEAD_DIM,
        "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt-2",
        "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.unknown_token_id": 0, "tokenizer.ggml.add_bos_token": True,
        "tokenizer.ggml.add_eos_token": False,
    }
    for key, want in meta.items():
        got = field(reader, key)
        c.check(got == want, f"{case}: {key} = {got!r}, expected {want!r}")
    c.check(abs(field(reader, "llama.rope.freq_base") - 10000.0) < 1e-3, f"{case}: freq_base")
    c.check(abs(field(reader, "llama.attention.layer_norm_rms_epsilon") - 1e-5) < 1e-9,
            f"{case}: rms eps")
    tokens = field(reader, "tokenizer.ggml.tokens")
    vocab = {v: k for k, v in tok_json["model"]["vocab"].items()}
    c.check(len(tokens) == VOCAB and all(tokens[i] == vocab[i] for i in range(VOCAB)),
            f"{case}: token list differs from tokenizer.json")
    types = field(reader, "tokenizer.ggml.token_type")
    c.check(list(types[:3]) == [3, 3, 3] and all(t == 1 for t in types[3:]),
            f"{case}: token types {list(types[:5])}...")
    c.check(reader.get_field("tokenizer.ggml.merges") is not None, f"{case}: no merges key")
    tmpl = field(reader, "tokenizer.chat_template")
    c.check(tmpl is not None and "add_generation_prompt" in tmpl, f"{case}: chat template")

    names = [t.name for t in reader.tensors]
    expected_names = ["token_embd.weight"]
    for l in range(LAYERS):
        expected_names += [f"blk.{l}.{k}.weight" for k in HF_NAMES]
    expected_names += ["output_norm.weight", "output.weight"]
    c.check(names == expected_names, f"{case}: tensor names/order {names}")

    worst = {}
    for t in reader.tensors:
        want_type = expected_type(t.name, ftype, imatrix)
        c.check(t.tensor_type == want_type,
                f"{case}: {t.name} is {t.tensor_type.name}, expected {want_type.name}")
        c.check(info["types"].get(t.name) == t.tensor_type.name,
                f"{case}: job result says {t.name} is {info['types'].get(t.name)}")
        orig = original(t.name, weights).astype(np.float32)
        c.check(list(t.shape) == list(reversed(orig.shape)),
                f"{case}: {t.name} ggml shape {list(t.shape)} vs {orig.shape}")
        deq = gguf.quants.dequantize(t.data, t.tensor_type).reshape(orig.shape)
        err = float(np.sqrt(np.mean((deq - orig) ** 2)) / np.sqrt(np.mean(orig ** 2)))
        bound = BOUND[t.tensor_type]
        c.check(err <= bound, f"{case}: {t.name} {t.tensor_type.name} rel. error {err:.4g} > {bound}")
        k = t.tensor_type.name
        worst[k] = max(worst.get(k, 0.0), err)
        if t.tensor_type not in (Q.F32, Q.F16, Q.BF16):
            c.check(t.name in ref, f"{case}: no DecodeRef for {t.name}")
            if t.name in ref:
                same = np.array_equal(deq, ref[t.name].reshape(orig.shape))
                diff = float(np.max(np.abs(deq - ref[t.name].reshape(orig.shape))))
                c.check(same, f"{case}: {t.name} gguf dequantization != DecodeRef "
                              f"(max |diff| {diff:.3g})")
    bpw = info["metrics"]["bits_per_weight"]
    total_bytes = sum(int(t.n_bytes) for t in reader.tensors)
    total_elems = sum(int(t.n_elements) for t in reader.tensors)
    c.check(abs(bpw - 8.0 * total_bytes / total_elems) < 1e-9, f"{case}: bits_per_weight {bpw}")
    print(f"{case:16s} {bpw:7.3f} bpw  worst rel. error: " +
          ", ".join(f"{k} {v:.4f}" for k, v in sorted(worst.items())))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--generator", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    subprocess.run([args.generator, args.workdir, *CASES], check=True)
    with open(f"{args.workdir}/summary.json") as f:
        summary = json.load(f)
    weights = load_file(f"{args.workdir}/models/tiny/model.safetensors")
    with open(f"{args.workdir}/models/tiny/tokenizer.json") as f:
        tok_json = json.load(f)
    c = Checker()
    for case in CASES:
        name = case.replace("+imatrix", "-imatrix")
        c.check(name in summary, f"{case}: not produced")
        if name in summary:
            check_case(c, name, summary[name], args.workdir, weights, tok_json)
    if c.failures:
        print(f"{len(c.failures)} failure(s)")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
