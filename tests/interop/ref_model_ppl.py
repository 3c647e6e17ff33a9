#!/usr/bin/env python3
"""Perplexity of a real model folder: quantd's evaluate job against transformers.

Rebuilds the token chunks of quantd's protocols from the same text and the
same tokenizer.json (the `tokenizers` library, which the golden-id tests show
gives quantd's ids), runs transformers in float32 on them and compares with the
perplexity and scored-token count that `quantctl -o json evaluate` reported:

  llama: BOS + text, non-overlapping chunks of 512 whose first token is BOS,
         positions 256..510 scored (as llama-perplexity);
  gptq:  BOS + text, non-overlapping chunks of 2048, positions 0..2046 scored.

  ref_model_ppl.py --model DIR --dataset FILE --quantd llama=EVAL.json
                   [--quantd gptq=EVAL.json] [--max-tokens N] [--tolerance 1e-3]
                   [--json out.json]

Exit status: 0 when every protocol's perplexity is within --tolerance
(relative) of transformers' and the scored counts are equal, 1 otherwise,
77 (skip) without torch/transformers/tokenizers or a CUDA device.
"""
import argparse
import json
import math
import sys

try:
    import torch
    import transformers
    from tokenizers import Tokenizer
except ImportError as e:
    print(f"ref_model_ppl: skipped ({e})")
    sys.exit(77)

PROTOCOLS = {"llama": (512, True), "gptq": (2048, False)}  # context, BOS in every chunk


def chunks_for(ids, bos, context, bos_every_chunk, max_tokens):
    seq = [bos] + ids
    n = len(seq) // context
    if max_tokens > 0:
        n = min(n, max_tokens // context)
    out = []
    for i in range(n):
        c = seq[i * context:(i + 1) * context]
        if bos_every_chunk:
            c[0] = bos
        out.append(c)
    return out


def transformers_ppl(model, chunks, scored_from, batch=8):
    nll, count = 0.0, 0
    with torch.no_grad():
        for b in range(0, len(chunks), batch):
            x = torch.tensor(chunks[b:b + batch], device="cuda")
            logits = model(x, use_cache=False).logits.float()
            lp = torch.log_softmax(logits[:, scored_from:-1].double(), dim=-1)
            tgt = x[:, scored_from + 1:]
            nll -= float(lp.gather(-1, tgt.unsqueeze(-1)).sum())
            count += tgt.numel()
    return math.exp(nll / count), count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--quantd", action="append", required=True, help="PROTOCOL=EVAL.json")
    ap.add_argument("--max-tokens", type=int, default=0)
    ap.add_argument("--tolerance", type=float, default=1e-3)
    ap.add_argument("--json")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("ref_model_ppl: skipped (no CUDA device for torch)")
        return 77
    tok = Tokenizer.from_file(f"{args.model}/tokenizer.json")
    cfg = json.load(open(f"{args.model}/config.json"))
    bos = cfg["bos_token_id"]
    text = open(args.dataset, encoding="utf-8").read()
    ids = tok.encode(text, add_special_tokens=False).ids
    model = transformers.AutoModelForCausalLM.from_pretrained(
        args.model, dtype=torch.float32, attn_implementation="eager").eval().cuda()
    ok, rows = True, []
    for spec in args.quantd:
        protocol, path = spec.split("=", 1)
        job = json.load(open(path))
        ev = job["result"]["evaluation"]
        m = ev["models"][0]
        ours, ours_scored = float(m["perplexity"]), int(ev["protocol"]["scoredTokens"])
        ours_tokens = int(ev["protocol"]["datasetTokens"])
        context, bos_every = PROTOCOLS[protocol]
        scored_from = context // 2 if protocol == "llama" else 0
        chunks = chunks_for(ids, bos, context, bos_every, args.max_tokens)
        ref, count = transformers_ppl(model, chunks, scored_from)
        rel = ours / ref - 1.0
        good = abs(rel) <= args.tolerance and ours_scored == count and ours_tokens == len(ids)
        ok = ok and good
        rows.append({"protocol": protocol, "chunks": len(chunks), "scored": count,
                     "quantd_scored": ours_scored,
                     "dataset_tokens": len(ids), "quantd_dataset_tokens": ours_tokens, "transformers_ppl": ref, "quantd_ppl": ours,
                     "rel_diff": rel, "device": m.get("device", "")})
        print(f"{protocol:6s} {len(ids)} text tokens (quantd {ours_tokens}), {len(chunks)} chunks, "
              f"{count} scored (quantd {ours_scored}): "
              f"transformers {ref:.4f}  quantd {ours:.4f} ({rel:+.2e}) {'ok' if good else 'FAIL'}")
    summary = {"model": args.model, "tokens": len(ids), "tolerance": args.tolerance, "ok": ok,
               "results": rows, "torch": torch.__version__,
               "transformers": transformers.__version__,
               "gpu": torch.cuda.get_device_name(0)}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    print(f"ref_model_ppl: {'all within' if ok else 'NOT all within'} {args.tolerance:g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
