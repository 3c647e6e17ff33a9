#!/usr/bin/env python3
"""Compares quantd's CPU runtime with transformers on the same tokens.

runtime_dump (tests/interop/runtime_dump.cc) writes our float32 logits; this
script runs the model with transformers in float32 (eval mode, eager
attention, no cache) and prints the normalized error
||ours - ref||_2 / ||ref||_2 over all positions, the largest absolute
difference relative to max|ref|, the top-1 agreement and the mean
KL(ref || ours).

  runtime_check.py --dump-tool build/tests/interop/runtime_dump \
                   [--model MODEL_DIR] [--tokens 1,450,...] [--text "..."] \
                   [--workdir DIR] [--threads N] [--tolerance 1e-4] [--json out.json]

Without --model it generates the tiny test model (runtime_dump
--write-tiny-model, GQA 4/2 heads) in --workdir, turned into --variant:
llama (as written), tied (tied embeddings), llama3_rope (Llama 3.1 "llama3"
RoPE scaling, theta 500000), qwen2_bias (Qwen2ForCausalLM with q/k/v
biases), mistral (MistralForCausalLM, sliding window 16). Token ids: --tokens, else --text encoded
with the model's tokenizer (transformers AutoTokenizer), else a fixed
pseudo-random sequence. Exit status: 0 when the normalized error is within
--tolerance, 1 otherwise, 77 (skip) when torch, transformers or numpy is
missing.
"""
import argparse
import json
import os
import subprocess
import sys
import time

try:
    import numpy as np
    import torch
    import transformers
    from transformers import AutoModelForCausalLM
except ImportError as e:  # the GPU machine has them; CI machines may not
    print(f"runtime_check: skipped ({e})")
    sys.exit(77)

DEFAULT_TEXT = ("The history of the English language began with the arrival of three Germanic "
                "tribes who invaded Britain during the 5th century AD. Angles, Saxons and Jutes "
                "crossed the North Sea from what today is Denmark and northern Germany.")


def load_reference(model_dir):
    kwargs = {"attn_implementation": "eager"}
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, **kwargs)
    except TypeError:  # transformers < 4.56 names it torch_dtype
        model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32,
                                                     **kwargs)
    return model.eval()


def make_variant(dump_tool, path, variant):
    """Writes the tiny model at `path` as `variant` (see the docstring)."""
    cmd = [dump_tool, "--write-tiny-model", path]
    if variant == "tied":
        cmd.append("--tied")
    subprocess.run(cmd, check=True)
    config_path = os.path.join(path, "config.json")
    config = json.load(open(config_path))
    if variant == "llama3_rope":
        config["rope_theta"] = 500000.0
        config["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                  "high_freq_factor": 4.0,
                                  "original_max_position_embeddings": 32}
    elif variant == "qwen2_bias":
        from safetensors.torch import load_file, save_file
        config.update(architectures=["Qwen2ForCausalLM"], model_type="qwen2",
                      use_sliding_window=False)
        weights_path = os.path.join(path, "model.safetensors")
        weights = load_file(weights_path)
        rng = np.random.default_rng(11)
        for name in list(weights):
            if name.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight")):
                rows = weights[name].shape[0]
                bias = torch.from_numpy(rng.standard_normal(rows) * 0.5)
                weights[name[:-len("weight")] + "bias"] = bias.to(weights[name].dtype)
        save_file(weights, weights_path, metadata={"format": "pt"})
    elif variant == "mistral":
        config.update(architectures=["MistralForCausalLM"], model_type="mistral",
                      sliding_window=16)
    elif variant not in ("llama", "tied"):
        raise SystemExit(f"unknown variant {variant}")
    with open(config_path, "w") as f:
        json.dump(config, f, indent=2)


def pick_tokens(args, vocab):
    if args.tokens:
        return [int(t) for t in args.tokens.split(",")]
    if os.path.exists(os.path.join(args.model, "tokenizer.json")) and vocab > 1000:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(args.model)
        return tok(args.text)["input_ids"]
    rng = np.random.default_rng(7)
    return [1] + [int(x) for x in rng.integers(3, vocab, size=args.length - 1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump-tool", required=True)
    ap.add_argument("--model")
    ap.add_argument("--variant", default="llama",
                    choices=["llama", "tied", "llama3_rope", "qwen2_bias", "mistral"])
    ap.add_argument("--tokens")
    ap.add_argument("--text", default=DEFAULT_TEXT)
    ap.add_argument("--length", type=int, default=64, help="random sequence length")
    ap.add_argument("--workdir", default="runtime_check_work")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--json")
    args = ap.parse_args()

    os.makedirs(args.workdir, exist_ok=True)
    if not args.model:
        args.model = os.path.join(args.workdir, "tiny_" + args.variant)
        if not os.path.exists(args.model):
            make_variant(args.dump_tool, args.model, args.variant)
    config = json.load(open(os.path.join(args.model, "config.json")))
    vocab = int(config["vocab_size"])
    tokens = pick_tokens(args, vocab)

    out_path = os.path.join(args.workdir, "logits.f32")
    run = subprocess.run([args.dump_tool, "--model", args.model, "--tokens",
                          ",".join(map(str, tokens)), "--out", out_path, "--threads",
                          str(args.threads)], check=True, capture_output=True, text=True)
    ours_info = json.loads(run.stdout.strip().splitlines()[-1])
    ours = np.fromfile(out_path, dtype=np.float32).reshape(len(tokens), vocab).astype(np.float64)

    torch.manual_seed(0)
    model = load_reference(args.model)
    t0 = time.time()
    with torch.no_grad():
        ref = model(torch.tensor([tokens]), use_cache=False).logits[0].double().numpy()
    ref_seconds = time.time() - t0

    diff = ours - ref
    norm_err = float(np.linalg.norm(diff) / np.linalg.norm(ref))
    max_rel = float(np.abs(diff).max() / np.abs(ref).max())
    top1 = float((ours.argmax(-1) == ref.argmax(-1)).mean())

    def log_softmax(x):
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    lp_ref, lp_ours = log_softmax(ref), log_softmax(ours)
    kl = float((np.exp(lp_ref) * (lp_ref - lp_ours)).sum(-1).mean())
    result = {
        "model": args.model,
        "variant": args.variant,
        "config": {k: config.get(k) for k in ("architectures", "num_attention_heads",
                                              "num_key_value_heads", "tie_word_embeddings",
                                              "rope_scaling", "sliding_window")},
        "tokens": len(tokens),
        "normalized_error": norm_err,
        "max_abs_diff_over_max_abs": max_rel,
        "top1_agreement": top1,
        "mean_kl_ref_ours": kl,
        "tolerance": args.tolerance,
        "ours": ours_info,
        "transformers_seconds": ref_seconds,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    ok = norm_err <= args.tolerance
    print(f"runtime_check: normalized error {norm_err:.3e} "
          f"({'within' if ok else 'OVER'} {args.tolerance:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
