#!/usr/bin/env python3
"""Checks golden_ids.json against Hugging Face tokenizers installed here.

For every tokenizer folder under tests/golden/tokenizer/ it encodes the
golden texts with `tokenizers` (Tokenizer.from_file) and with transformers'
AutoTokenizer (the fast tokenizer users get; plus, for llama2, the slow
SentencePiece LlamaTokenizer when sentencepiece is installed) and compares
ids with and without special tokens and both decodings. Run from the
repository root:

  python3 tests/golden/tokenizer/verify_golden.py [--json out.json]

Exit status 0 when everything matches, 1 on any mismatch, 77 when neither
tokenizers nor transformers is installed.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def compare(label, encode, decode, golden, texts, report):
    bad = []
    for case in golden["cases"]:
        text = texts[case["text"]]
        ids = encode(text, True)
        got = {"ids": ids, "ids_no_special": encode(text, False),
               "decoded": decode(case["ids"], False),
               "decoded_skip_special": decode(case["ids"], True)}
        for key, value in got.items():
            if value != case[key]:
                bad.append({"text": case["text"], "field": key,
                            "expected": case[key] if key.startswith("dec") else case[key][:40],
                            "got": value if key.startswith("dec") else value[:40]})
    report[label] = {"cases": len(golden["cases"]), "mismatches": len(bad), "first": bad[:3]}
    print(f"{label:40s} {len(golden['cases'])} cases, {len(bad)} mismatches")
    return not bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args()
    try:
        import tokenizers
    except ImportError:
        tokenizers = None
    try:
        import transformers
    except ImportError:
        transformers = None
    if tokenizers is None and transformers is None:
        print("verify_golden: skipped (no tokenizers, no transformers)")
        return 77
    with open(os.path.join(HERE, "golden_ids.json"), encoding="utf-8") as f:
        golden = json.load(f)
    texts = golden["texts"]
    report = {"golden_tokenizers_version": golden.get("tokenizers_version"),
              "tokenizers": getattr(tokenizers, "__version__", None),
              "transformers": getattr(transformers, "__version__", None), "checks": {}}
    ok = True
    for name, entry in golden["tokenizers"].items():
        folder = os.path.join(HERE, name)
        if tokenizers is not None:
            tok = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
            ok &= compare(f"{name} tokenizers", lambda t, s: tok.encode(t, add_special_tokens=s).ids,
                          lambda i, s: tok.decode(i, skip_special_tokens=s), entry, texts,
                          report["checks"])
        if transformers is not None:
            try:
                fast = transformers.AutoTokenizer.from_pretrained(folder)
            except Exception as e:  # report and go on with the other checks
                report["checks"][f"{name} transformers"] = {"error": repr(e)}
                print(f"{name} transformers: cannot load ({e!r})")
                ok = False
                continue
            ok &= compare(f"{name} transformers {type(fast).__name__}",
                          lambda t, s: fast(t, add_special_tokens=s)["input_ids"],
                          lambda i, s: fast.decode(i, skip_special_tokens=s,
                                                   clean_up_tokenization_spaces=False),
                          entry, texts, report["checks"])
            if name == "llama2":
                try:
                    import sentencepiece as spm
                except ImportError:
                    continue
                # The SentencePiece library on the texts without special
                # token strings (it does not split those out).
                sp = spm.SentencePieceProcessor(model_file=os.path.join(folder, "tokenizer.model"))
                bad = 0
                for case in entry["cases"]:
                    text = texts[case["text"]]
                    if "<" not in text and [entry["bos_id"]] + sp.encode(text) != case["ids"]:
                        bad += 1
                report["checks"]["llama2 sentencepiece"] = {"mismatches": bad}
                print(f"{'llama2 sentencepiece':40s} {bad} mismatches")
                ok &= bad == 0
    report["ok"] = bool(ok)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1, ensure_ascii=False)
    print("verify_golden:", "all match" if ok else "MISMATCHES")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
