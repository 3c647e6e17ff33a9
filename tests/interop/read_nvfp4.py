#!/usr/bin/env python3
"""Independent reader of NVFP4 weights in compressed-tensors' and ModelOpt's
layouts (docs/research/nvfp4_format.md).

Written from the published definitions, not from quantd's C++:
  compressed-tensors: compressors/nvfp4/helpers.py unpack_fp4_from_uint8
    (low nibble first), dequant w = fp4 * (weight_scale / weight_global_scale)
    (lifecycle/forward.py _dequantize); quantization: generate_gparam
    (global = 448 * 6 / amax), calculate_qparams (scale = fp8(global *
    amax_block / 6), 0 -> eps 0.125), FP4_E2M1_DATA.cast_to_fp4 thresholds.
  ModelOpt: NVFP4QTensor (qtensor/nvfp4_tensor.py): weight_scale_2 =
    amax / (6 * 448), block scale = fp8(max(amax_block / (6 * scale_2) or 1,
    2^-9)), _cast_fp4 (searchsorted over the E2M1 bounds, ties to even),
    dequant w = fp4 * (weight_scale * weight_scale_2).
It reads the files quantd wrote, decodes every tensor and checks the values
equal quantd's DecodeRef exactly, re-quantizes the source with the tools'
formulas in numpy float32 and checks the codes and scales bit for bit, and
checks names, dtypes, shapes and the config files vLLM reads.

Usage: read_nvfp4.py --generator BIN --workdir DIR
  runs `BIN DIR` (tests/interop/write_nvfp4.cc), then verifies
  DIR/quantized.safetensors against DIR/expected.safetensors and
  DIR/config.json. Exit status: 0 pass, 1 fail, 77 skipped (python3 lacks
  numpy or safetensors).
"""

import argparse
import json
import struct
import subprocess
import sys

try:
    import numpy as np
    from safetensors import safe_open
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(77)

F32 = np.float32
E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], dtype=F32)
# quantd raises a smaller tensor amax (zero tensors included) to this.
MIN_TENSOR_AMAX = F32(2.0 ** -100)


def e4m3_table():
    """float8_e4m3fn: bias 7, 3 mantissa bits, no infinities, 0x7f/0xff NaN."""
    vals = np.empty(256, dtype=F32)
    for code in range(256):
        sign = -1.0 if code & 0x80 else 1.0
        e, m = (code >> 3) & 0xF, code & 7
        if e == 15 and m == 7:
            vals[code] = np.nan
        elif e == 0:
            vals[code] = sign * m * 2.0 ** -9
        else:
            vals[code] = sign * (1 + m / 8) * 2.0 ** (e - 7)
    return vals


E4M3 = e4m3_table()


def to_e4m3(v):
    """Round non-negative float32 to float8_e4m3fn, nearest, ties to even,
    after clamping to 448 (as compressed-tensors does before its cast)."""
    v = np.minimum(v.astype(F32), F32(448))
    pos = E4M3[:127]  # codes 0..126, increasing
    hi = np.clip(np.searchsorted(pos, v, side="left"), 0, 126)
    lo = np.maximum(hi - 1, 0)
    dlo, dhi = v - pos[lo], pos[hi] - v
    pick_hi = (dhi < dlo) | ((dhi == dlo) & (hi % 2 == 0))
    return np.where(pick_hi, hi, lo).astype(np.uint8)


def read_safetensors(path):
    """Every tensor as (dtype name, numpy array of its raw element type)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    dtypes = {"F32": np.float32, "F16": np.float16, "U8": np.uint8, "F8_E4M3": np.uint8,
              "BF16": np.uint16}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        a = np.frombuffer(data[base + begin:base + end], dtype=dtypes[info["dtype"]])
        out[name] = (info["dtype"], a.reshape(info["shape"]))
    with safe_open(path, framework="numpy") as st:
        if set(st.keys()) != set(out):
            raise AssertionError(f"{path}: safetensors sees {sorted(st.keys())}")
        for name, (dtype, a) in out.items():
            if dtype in ("F32", "U8"):
                np.testing.assert_array_equal(st.get_tensor(name), a)
    return out


def unpack(packed, rows, cols):
    """Nibble codes [rows, cols]: byte j holds element 2j low, 2j + 1 high."""
    codes = np.empty((rows, cols), dtype=np.uint8)
    codes[:, 0::2] = packed & 0x0F
    codes[:, 1::2] = packed >> 4
    return codes


def ct_reference(x, amax):
    """compressed-tensors' quantization in float32: codes and scale codes."""
    g = F32(448 * 6) / max(F32(amax), MIN_TENSOR_AMAX)
    blocks = x.reshape(x.shape[0], -1, 16)
    bmax = np.abs(blocks).max(axis=2)
    scale = to_e4m3((bmax / F32(6)) * g)
    scale = np.where(scale == 0, np.uint8(0x20), scale)  # eps 0.125
    d = E4M3[scale] / g
    q = blocks / d[:, :, None]
    a = np.abs(q)
    mag = np.select([a <= 0.25, a < 0.75, a <= 1.25, a < 1.75, a <= 2.5, a < 3.5, a <= 5.0],
                    [0, 1, 2, 3, 4, 5, 6], 7)
    codes = mag + np.where(blocks < 0, 8, 0)
    return codes.reshape(x.shape).astype(np.uint8), scale, g


def modelopt_reference(x, amax):
    """ModelOpt's NVFP4QTensor quantization in float32."""
    g2 = max(F32(amax), MIN_TENSOR_AMAX) / F32(6.0 * 448.0)
    blocks = x.reshape(x.shape[0], -1, 16)
    bmax = np.abs(blocks).max(axis=2)
    per_block = bmax / (F32(6.0) * g2)
    per_block = np.where(per_block == 0, F32(1.0), per_block)
    per_block = np.maximum(per_block, F32(2.0 ** -9))
    scale = to_e4m3(per_block)
    q = blocks / (E4M3[scale] * g2)[:, :, None]
    a = np.abs(q)
    bounds = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5], dtype=F32)
    ordinal = np.searchsorted(bounds, a, side="left")
    ordinal = ordinal + np.isin(a, bounds[[1, 3, 5]])
    codes = ordinal + np.where(blocks < 0, 8, 0)
    return codes.reshape(x.shape).astype(np.uint8), scale, g2


def check_config(name, case):
    q = case["quantization_config"]
    if case["layout"] == "compressed-tensors":
        assert q["quant_method"] == "compressed-tensors", name
        assert q["format"] == "nvfp4-pack-quantized", name
        assert q["quantization_status"] == "compressed", name
        group = q["config_groups"]["group_0"]
        assert group["format"] == "nvfp4-pack-quantized", name
        assert group["input_activations"] is None, name  # NVFP4A16
        w = group["weights"]
        assert (w["num_bits"], w["type"], w["strategy"], w["group_size"], w["symmetric"],
                w["dynamic"]) == (4, "float", "tensor_group", 16, True, False), f"{name}: {w}"
        assert "scale_dtype" not in w and "zp_dtype" not in w, name
        assert case["hf_quant_config"] is None, name
    else:
        hf = case["hf_quant_config"]["quantization"]
        assert hf["quant_algo"] == "W4A16_NVFP4" and hf["group_size"] == 16, name
        # vLLM requires these keys in hf_quant_config.json.
        for key in ("group_size", "kv_cache_quant_algo", "exclude_modules"):
            assert key in hf, f"{name}: {key}"
        assert q["quant_method"] == "modelopt" and q["quant_algo"] == "W4A16_NVFP4", name
        assert q["config_groups"]["group_0"]["weights"]["type"] == "float", name


def check_case(name, case, q, expected):
    rows, cols = case["rows"], case["cols"]
    ct = case["layout"] == "compressed-tensors"
    names = ("weight_packed", "weight_scale", "weight_global_scale") if ct else \
            ("weight", "weight_scale", "weight_scale_2")
    for suffix in ("weight_packed", "weight", "weight_global_scale", "weight_scale_2"):
        if suffix not in names:
            assert f"{name}.{suffix}" not in q, f"{name}: unexpected {suffix}"
    pdt, packed = q[f"{name}.{names[0]}"]
    sdt, scale = q[f"{name}.{names[1]}"]
    gdt, glob = q[f"{name}.{names[2]}"]
    assert pdt == "U8" and packed.shape == (rows, cols // 2), f"{name}: packed {pdt} {packed.shape}"
    assert sdt == "F8_E4M3" and scale.shape == (rows, cols // 16), f"{name}: scale {scale.shape}"
    assert gdt == "F32" and glob.shape == ((1,) if ct else ()), f"{name}: global {glob.shape}"
    g = F32(glob.reshape(-1)[0])

    codes = unpack(packed, rows, cols)
    block_scale = np.repeat(E4M3[scale], 16, axis=1)
    per_element = block_scale / g if ct else block_scale * g
    deq = E2M1[codes] * per_element
    _, decoded = expected[f"{name}.decoded"]
    if not np.array_equal(deq, decoded):
        bad = tuple(np.argwhere(deq != decoded)[0])
        raise AssertionError(f"{name}: reader gives {deq[bad]} at {bad}, DecodeRef {decoded[bad]}")

    _, source = expected[f"{name}.source"]
    want_codes, want_scale, want_g = (ct_reference if ct else modelopt_reference)(
        source, case["tensor_amax"])
    assert g == want_g, f"{name}: global scale {g}, tool formula {want_g}"
    if not np.array_equal(scale, want_scale):
        bad = tuple(np.argwhere(scale != want_scale)[0])
        raise AssertionError(f"{name}: scale code {scale[bad]:#x} at {bad}, "
                             f"tool formula {want_scale[bad]:#x}")
    if not np.array_equal(codes, want_codes):
        bad = tuple(np.argwhere(codes != want_codes)[0])
        raise AssertionError(f"{name}: code {codes[bad]} at {bad} (x = {source[bad]}), "
                             f"tool formula {want_codes[bad]}")
    err = np.abs(deq - source)
    bound = np.where(E4M3[scale] < 2.0 ** -6, 3.0, 1.0)  # in block divisors
    assert np.all(err <= np.repeat(bound, 16, axis=1) * np.abs(per_element) * (1 + 1e-6)), name
    return g, f"{name}: {rows}x{cols} {case['layout']}, global {g:.6g}, " \
              f"max error {err.max():.3g}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--generator", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    subprocess.run([args.generator, args.workdir], check=True)
    q = read_safetensors(f"{args.workdir}/quantized.safetensors")
    expected = read_safetensors(f"{args.workdir}/expected.safetensors")
    with open(f"{args.workdir}/config.json") as f:
        cases = json.load(f)
    assert cases, "no cases"
    group_scales = {}
    for name, case in cases.items():
        check_config(name, case)
        g, line = check_case(name, case, q, expected)
        print(line)
        if case["group"]:
            group_scales.setdefault(case["group"], set()).add(float(g))
    for group, scales in group_scales.items():
        assert len(scales) == 1, f"fused group {group} has global scales {scales}"
    print(f"{len(cases)} passed, 0 failed ({len(group_scales)} fused groups share their scale)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (AssertionError, subprocess.CalledProcessError) as e:
        print(f"FAIL: {e}")
        sys.exit(1)
