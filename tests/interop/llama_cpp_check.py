#!/usr/bin/env python3
"""quantd's GGUF files against llama.cpp itself (not run in CI: needs a llama.cpp build).

  1. GENERATOR (tests/interop/write_gguf_export.cc) writes a tiny Llama model
     with F32 weights and quantd's GGUF of it for every file type (some also
     with a legacy importance matrix), plus an F32 GGUF.
  2. llama-quantize turns that F32 GGUF into each file type (with the same
     importance matrix where quantd used one); every tensor's type and bytes
     must equal quantd's file. Without llama-quantize in the build, the check
     compiles tests/interop/llama_quantize_min.cc against libllama, which calls
     llama_model_quantize() with llama-quantize's default parameters.
  3. llama-simple loads every quantd file and generates a few tokens.

Usage:
  llama_cpp_check.py --generator build-gguf/tests/interop/write_gguf_export \
      --llama-src /tmp/lcpp/llama_cpp_python-0.3.36/vendor/llama.cpp \
      --llama-bin /tmp/lcpp/build/bin --workdir /tmp/llama_cpp_check
scripts/llama_cpp_oracle.sh downloads and builds llama.cpp for it; LLAMA_CPP_BIN and
LLAMA_CPP_SRC may replace the two options (the ctest interop_gguf_llama_cpp uses them).
Exit status: 0 pass, 1 fail, 77 skipped (no gguf/numpy or no llama.cpp build).
"""

import argparse
import json
import os
import re
import subprocess
import sys

try:
    import numpy as np  # noqa: F401  (gguf needs it)
    import gguf
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(77)

FTYPES = {"Q8_0": 7, "Q4_0": 2, "Q4_1": 3, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10, "Q3_K_S": 11,
          "Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15, "Q5_K_S": 16, "Q5_K_M": 17,
          "Q6_K": 18, "F16": 1, "BF16": 32}
IMATRIX_CASES = ["Q2_K", "Q3_K_M", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K_M", "Q5_K_M", "Q6_K"]


def quantizer(args, workdir):
    tool = os.path.join(args.llama_bin, "llama-quantize")
    if os.path.exists(tool):
        def run(src, dst, ftype, imatrix):
            cmd = [tool] + (["--imatrix", imatrix] if imatrix else []) + [src, dst, ftype, "2"]
            return subprocess.run(cmd, capture_output=True, text=True)
        return run, "llama-quantize"
    exe = os.path.join(workdir, "llama_quantize_min")
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run(["g++", "-std=c++17", "-O1", os.path.join(here, "llama_quantize_min.cc"),
                    "-I", os.path.join(args.llama_src, "include"),
                    "-I", os.path.join(args.llama_src, "ggml", "include"),
                    "-L", args.llama_bin, "-lllama", f"-Wl,-rpath,{args.llama_bin}", "-o", exe],
                   check=True)

    def run(src, dst, ftype, imatrix):
        cmd = [exe, src, dst, str(FTYPES[ftype]), "2"] + ([imatrix] if imatrix else [])
        return subprocess.run(cmd, capture_output=True, text=True)
    return run, "llama_model_quantize (tests/interop/llama_quantize_min.cc)"


def write_f32_gguf(like_path, out_path, workdir):
    """An F32 GGUF of the tiny model written with gguf-py: `like_path`'s metadata
    (file type set to 0) and the original weights, Q/K permuted as
    convert_hf_to_gguf does. For generators that cannot write the F32 file type."""
    from safetensors.numpy import load_file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gguf_export import original
    weights = load_file(os.path.join(workdir, "models", "tiny", "model.safetensors"))
    r = gguf.GGUFReader(like_path)
    w = gguf.GGUFWriter(out_path, arch=r.get_field("general.architecture").contents())
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        val = 0 if name == "general.file_type" else f.contents()
        sub = f.types[-1] if f.types[0] == gguf.GGUFValueType.ARRAY else None
        if sub is not None and len(val) == 0:
            continue  # gguf-py writes no empty arrays (the tiny vocab has no merges)
        w.add_key_value(name, val, f.types[0], sub_type=sub)
    for t in r.tensors:
        w.add_tensor(t.name, np.ascontiguousarray(original(t.name, weights).astype(np.float32)))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def compare(ours_path, theirs_path):
    """Differences in tensor names, types and bytes (empty when equal)."""
    ours = {t.name: t for t in gguf.GGUFReader(ours_path).tensors}
    theirs = {t.name: t for t in gguf.GGUFReader(theirs_path).tensors}
    problems = []
    if sorted(ours) != sorted(theirs):
        problems.append(f"tensor names differ: {sorted(set(ours) ^ set(theirs))}")
    for name in sorted(set(ours) & set(theirs)):
        a, b = ours[name], theirs[name]
        if a.tensor_type != b.tensor_type:
            problems.append(f"{name}: ours {a.tensor_type.name}, llama.cpp {b.tensor_type.name}")
        elif list(a.shape) != list(b.shape):
            problems.append(f"{name}: shape {list(a.shape)} vs {list(b.shape)}")
        elif bytes(a.data.tobytes()) != bytes(b.data.tobytes()):
            da, db = a.data.tobytes(), b.data.tobytes()
            first = next(i for i in range(min(len(da), len(db))) if da[i] != db[i]) \
                if len(da) == len(db) else -1
            problems.append(f"{name} ({a.tensor_type.name}): bytes differ (first at {first})")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--generator", required=True)
    ap.add_argument("--llama-src", default=os.environ.get("LLAMA_CPP_SRC", ""))
    ap.add_argument("--llama-bin", default=os.environ.get("LLAMA_CPP_BIN", ""))
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--f32-via-gguf-py", action="store_true",
                    help="write the F32 input with gguf-py instead of the generator")
    args = ap.parse_args()
    if not args.llama_bin or not os.path.exists(os.path.join(args.llama_bin, "llama-simple")):
        print("SKIP: no llama.cpp build (--llama-bin with llama-simple and libllama.so)")
        return 77
    if not os.path.exists(os.path.join(args.llama_bin, "llama-quantize")) and not args.llama_src:
        print("SKIP: no llama-quantize in --llama-bin and no --llama-src to build the driver")
        return 77
    cases = ["F32"] + list(FTYPES) + [f"{t}+imatrix" for t in IMATRIX_CASES]
    gen_cases = cases[1:] if args.f32_via_gguf_py else cases
    subprocess.run([args.generator, args.workdir, *gen_cases], check=True)
    with open(os.path.join(args.workdir, "summary.json")) as f:
        summary = json.load(f)
    if args.f32_via_gguf_py:
        write_f32_gguf(os.path.join(args.workdir, "outputs", summary["Q8_0"]["file"]),
                       os.path.join(args.workdir, "outputs", "F32.gguf"), args.workdir)
        summary["F32"] = {"file": "F32.gguf"}
    run_quantize, how = quantizer(args, args.workdir)
    theirs_dir = os.path.join(args.workdir, "llama_cpp")
    os.makedirs(theirs_dir, exist_ok=True)
    src = os.path.join(args.workdir, "outputs", "F32.gguf")
    imatrix = os.path.join(args.workdir, "models", "tiny.imatrix")
    failures = 0
    print(f"quantizer: {how}")
    for case in cases[1:]:
        ftype = case.split("+")[0]
        name = case.replace("+imatrix", "-imatrix")
        ours = os.path.join(args.workdir, "outputs", summary[name]["file"])
        theirs = os.path.join(theirs_dir, f"{name}.gguf")
        r = run_quantize(src, theirs, ftype, imatrix if "+imatrix" in case else None)
        if r.returncode != 0:
            print(f"FAIL {case}: quantizer exit {r.returncode}\n{r.stderr[-2000:]}")
            failures += 1
            continue
        problems = compare(ours, theirs)
        n = len(gguf.GGUFReader(ours).tensors)
        status = "bytes equal" if not problems else f"{len(problems)} tensor(s) differ"
        print(f"{case:16s} {n} tensors: {status}")
        for p in problems[:8]:
            print("   ", p)
        failures += bool(problems)
    simple = os.path.join(args.llama_bin, "llama-simple")
    for case in cases:
        if case == "F32" and args.f32_via_gguf_py:
            continue  # not quantd's file
        name = case.replace("+imatrix", "-imatrix")
        path = os.path.join(args.workdir, "outputs", summary[name]["file"])
        r = subprocess.run([simple, "-m", path, "-n", "8", "-ngl", "0", "Hello world"],
                           capture_output=True, text=True, errors="replace", timeout=120)
        m = re.search(r"decoded (\d+) tokens", r.stdout + r.stderr)
        ok = r.returncode == 0 and m is not None and int(m.group(1)) > 0
        if not ok:
            failures += 1
            print(f"FAIL llama-simple {case}: exit {r.returncode}\n{(r.stdout + r.stderr)[-3000:]}")
        else:
            text = r.stdout.strip().replace("\n", " ")[:60]
            print(f"llama-simple {case:16s} ran: {text!r}")
    print("OK" if failures == 0 else f"{failures} failure(s)")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
