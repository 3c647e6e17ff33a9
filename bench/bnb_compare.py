#!/usr/bin/env python3
"""bitsandbytes' own quantize speed on the GPU, to set beside bench/bnb_bench.cc.

For a random BF16 4096 x 14336 matrix already on the GPU: the median time of
bitsandbytes.functional.quantize_4bit (nf4, fp4, nf4 with double
quantization; blocksize 64) and int8_vectorwise_quant (LLM.int8 on the
float16 weight), as GB/s of (input + output) bytes, next to torch's
device-to-device copy bandwidth (read + write) measured in the same run.
Then the Linear weights of a Llama-3-8B-shaped model (32 layers of q, k,
v, o, gate, up, down; random BF16 on the GPU, no host transfers): the total
time bitsandbytes needs to quantize all of them per method.

Usage: bnb_compare.py [--json out.json] [--layers 32]
"""
import argparse
import json
import sys
import time

import torch


def median_ms(fn, reps=20, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def out_bytes(result):
    if isinstance(result, torch.Tensor):
        return result.numel() * result.element_size()
    if isinstance(result, (tuple, list)):
        return sum(out_bytes(r) for r in result if r is not None)
    total = 0  # QuantState
    for name in ("absmax", "code"):
        t = getattr(result, name, None)
        if isinstance(t, torch.Tensor):
            total += t.numel() * t.element_size()
    if getattr(result, "state2", None) is not None:
        total += out_bytes(result.state2)
    return total


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--layers", type=int, default=32)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("SKIP: no CUDA device")
        return 0
    import bitsandbytes as bnb
    import bitsandbytes.functional as F

    dev = torch.device("cuda")
    w = (torch.randn(4096, 14336, device=dev) * 0.02).to(torch.bfloat16)
    in_bytes = w.numel() * w.element_size()
    dst = torch.empty_like(w)
    copy_ms = median_ms(lambda: dst.copy_(w))
    copy_gbps = 2 * in_bytes / copy_ms / 1e6
    methods = {
        "nf4-b64": lambda x: F.quantize_4bit(x, blocksize=64, quant_type="nf4"),
        "fp4-b64": lambda x: F.quantize_4bit(x, blocksize=64, quant_type="fp4"),
        "nf4-b64-dq": lambda x: F.quantize_4bit(x, blocksize=64, quant_type="nf4",
                                                compress_statistics=True),
        "int8-bnb": lambda x: F.int8_vectorwise_quant(x.to(torch.float16)),
    }
    print(f"bitsandbytes {bnb.__version__}, torch {torch.__version__}, "
          f"{torch.cuda.get_device_name(0)}")
    print(f"4096 x 14336 BF16; device-to-device copy {copy_gbps:.0f} GB/s (read + write)")
    print(f"{'method':<12} {'ms':>8} {'GB/s':>8} {'of copy':>8}")
    rows = []
    for name, fn in methods.items():
        ms = median_ms(lambda: fn(w))
        total = in_bytes + out_bytes(fn(w))
        gbps = total / ms / 1e6
        rows.append({"method": name, "ms": ms, "gbps": gbps, "of_copy": gbps / copy_gbps})
        print(f"{name:<12} {ms:8.3f} {gbps:8.0f} {100 * gbps / copy_gbps:7.0f}%")

    # Llama-3-8B Linear shapes (out, in).
    h, inter, kv = 4096, 14336, 1024
    shapes = [(h, h), (kv, h), (kv, h), (h, h), (inter, h), (inter, h), (h, inter)]
    weights = [(torch.randn(o, i, device=dev) * 0.02).to(torch.bfloat16) for o, i in shapes]
    print(f"\nLlama-3-8B Linear weights ({args.layers} layers, "
          f"{args.layers * sum(o * i for o, i in shapes) / 1e9:.2f} G params), GPU-resident:")
    model = []
    for name, fn in methods.items():
        torch.cuda.synchronize()
        t0 = time.time()
        for _ in range(args.layers):
            for x in weights:
                fn(x)
        torch.cuda.synchronize()
        s = time.time() - t0
        model.append({"method": name, "seconds": s})
        print(f"{name:<12} {s:8.3f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"bitsandbytes": bnb.__version__, "device": torch.cuda.get_device_name(0),
                       "copy_gbps": copy_gbps, "matrix": rows, "llama3_8b": model}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
