#!/usr/bin/env python3
"""Perplexity of quantd's CUDA (and CPU) runtime against transformers.

Generates small random models with transformers (Llama with GQA and untied
lm_head; Qwen2 with q/k/v bias and tied embeddings; Llama with llama3 RoPE
scaling when this transformers version builds it), saves them as BF16
safetensors, and computes the perplexity of the same token chunks with
bench/llama_ppl (quantd) and with transformers (the saved BF16 weights run
in float32, eager attention). Protocols: "gptq" (every position but the
last of each chunk scored) and "llama" (second half scored), context 512,
4 chunks. The lm_head is scaled up after initialisation so that the logits
spread (std ~2.4) and logit errors show in the perplexity. The CUDA
backend rounds activations to BF16 before every GEMM (~5e-3 normalised
logit error), which moves a perplexity over ~1000-2000 scored tokens by a
few 1e-4; the CPU backend (float32) should agree to ~1e-6.

  runtime_check_cuda.py --ppl-tool .devbundle/bin/llama_ppl [--workdir DIR]
                        [--tolerance 1e-3] [--json out.json]

Exit status: 0 when every CUDA perplexity is within --tolerance (relative)
of transformers', 1 otherwise, 77 (skip) without torch/transformers/numpy
or without a CUDA device.
"""
import argparse
import json
import os
import subprocess
import sys

try:
    import numpy as np
    import torch
    import transformers
except ImportError as e:
    print(f"runtime_check_cuda: skipped ({e})")
    sys.exit(77)

CONTEXT = 512
CHUNKS = 4


def make_model(kind, path, seed):
    torch.manual_seed(seed)
    common = dict(hidden_size=256, intermediate_size=704, num_hidden_layers=4,
                  num_attention_heads=8, num_key_value_heads=2, vocab_size=1000,
                  max_position_embeddings=2048, rms_norm_eps=1e-5, initializer_range=0.05)
    if kind == "qwen2":
        cfg = transformers.Qwen2Config(tie_word_embeddings=True, **common)
        model = transformers.Qwen2ForCausalLM(cfg)
    elif kind == "llama3_rope":
        rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 128}
        cfg = transformers.LlamaConfig(tie_word_embeddings=False, rope_theta=500000.0,
                                       rope_scaling=rope, **common)
        if getattr(cfg, "rope_parameters", None) is not None:  # transformers 5.x
            cfg.rope_parameters = dict(rope, rope_theta=500000.0)
        model = transformers.LlamaForCausalLM(cfg)
        if getattr(model.model.rotary_emb, "rope_type", None) != "llama3":
            return None
    else:
        cfg = transformers.LlamaConfig(tie_word_embeddings=False, **common)
        model = transformers.LlamaForCausalLM(cfg)
    with torch.no_grad():
        model.lm_head.weight.mul_(3.0)  # logits of std ~2.4
        if kind == "qwen2":  # Qwen2 always has q/k/v biases; make them count
            for layer in model.model.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj,
                             layer.self_attn.v_proj):
                    proj.bias.normal_(0.0, 0.1)
    model = model.to(torch.bfloat16)
    model.save_pretrained(path, safe_serialization=True)
    return path


def reference_ppl(path, chunks, scored_from, device):
    kwargs = {"attn_implementation": "eager"}
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                                  **kwargs)
    except TypeError:  # transformers < 4.56
        model = transformers.AutoModelForCausalLM.from_pretrained(
            path, torch_dtype=torch.float32, **kwargs)
    model = model.eval().to(device)
    nll, count = 0.0, 0
    with torch.no_grad():
        for c in chunks:
            logits = model(torch.tensor([c], device=device), use_cache=False).logits[0].double()
            lp = torch.log_softmax(logits, dim=-1)
            for p in range(scored_from, len(c) - 1):
                nll -= float(lp[p, c[p + 1]])
                count += 1
    return float(np.exp(nll / count)), count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ppl-tool", required=True)
    ap.add_argument("--workdir", default="runtime_check_cuda_work")
    ap.add_argument("--tolerance", type=float, default=1e-3)
    ap.add_argument("--json")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("runtime_check_cuda: skipped (no CUDA device for torch)")
        return 77
    os.makedirs(args.workdir, exist_ok=True)
    rng = np.random.default_rng(11)
    tokens = [int(x) for x in rng.integers(0, 1000, size=CONTEXT * CHUNKS)]
    tok_path = os.path.join(args.workdir, "tokens.txt")
    with open(tok_path, "w") as f:
        f.write(" ".join(map(str, tokens)))
    chunks = [tokens[i * CONTEXT:(i + 1) * CONTEXT] for i in range(CHUNKS)]

    results, ok = [], True
    for seed, kind in enumerate(["llama", "qwen2", "llama3_rope"]):
        path = make_model(kind, os.path.join(args.workdir, kind), seed)
        if path is None:
            print(f"{kind}: this transformers does not build llama3 RoPE from the config; skipped")
            continue
        for protocol, scored_from in (("gptq", 0), ("llama", CONTEXT // 2)):
            run = subprocess.run([args.ppl_tool, "--model", path, "--tokens", tok_path,
                                  "--context", str(CONTEXT), "--scored-from", str(scored_from)],
                                 capture_output=True, text=True)
            if run.returncode != 0:
                print(run.stderr)
                return 1
            ours = json.loads(run.stdout.strip().splitlines()[-1])
            ref, count = reference_ppl(path, chunks, scored_from, "cuda")
            row = {"model": kind, "protocol": protocol, "scored": count, "transformers_ppl": ref}
            for backend in ("cuda", "cpu"):
                row[f"{backend}_ppl"] = ours[backend]["ppl"]
                row[f"{backend}_rel_diff"] = ours[backend]["ppl"] / ref - 1.0
                if ours[backend]["scored"] != count:
                    print(f"{kind}/{protocol}/{backend}: scored {ours[backend]['scored']} "
                          f"positions, transformers {count}")
                    ok = False
            ok = ok and abs(row["cuda_rel_diff"]) <= args.tolerance
            results.append(row)
            print(f"{kind:12s} {protocol:6s} transformers {ref:10.4f}  cuda {row['cuda_ppl']:10.4f} "
                  f"({row['cuda_rel_diff']:+.2e})  cpu {row['cpu_ppl']:10.4f} "
                  f"({row['cpu_rel_diff']:+.2e})")
    summary = {"context": CONTEXT, "chunks": CHUNKS, "tolerance": args.tolerance, "ok": ok,
               "results": results, "torch": torch.__version__,
               "transformers": transformers.__version__}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    print(f"runtime_check_cuda: {'all within' if ok else 'NOT all within'} {args.tolerance:g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
